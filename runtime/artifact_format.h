// The .kiln file format, what its writer (compiler/artifact_writer.h) and
// its loader (runtime/artifact.h) share: the header's and section table's
// layout, the section kinds, the register-kind codes of the memory plan
// section and the checksum. Byte layout and versions: docs/artifact.md.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "runtime/planning/memory_plan.h"

namespace kiln::rt {

// Every integer in the file is little-endian; both sides access them in place.
static_assert(std::endian::native == std::endian::little, "kiln artifacts need a little-endian host");

inline constexpr char kArtifactMagic[8] = {'K', 'I', 'L', 'N', 'A', 'R', 'T', '\0'};
inline constexpr uint32_t kArtifactFormatVersion = 5;
// Version 2 (every weight embedded, no weight-file section), version 3 (no
// KV layer record) and version 4 (no device code) still load.
inline constexpr uint32_t kOldestReadableFormatVersion = 2;
// The first version with the KV layer section, which it requires; an older
// artifact loads with its KV layers unrecorded, and runs statelessly only.
inline constexpr uint32_t kKvLayersSinceFormatVersion = 4;
// The first version with the device code section, which it requires; an
// older artifact's devices build their code at first use.
inline constexpr uint32_t kDeviceCodeSinceFormatVersion = 5;
inline constexpr size_t kArtifactHeaderSize = 64;
inline constexpr size_t kArtifactSectionEntrySize = 32;
inline constexpr uint32_t kMaxArtifactSections = 64;
inline constexpr size_t kWeightAlignment = 64;

// Header field offsets.
inline constexpr size_t kHeaderVersionAt = 8;
inline constexpr size_t kHeaderFlagsAt = 12;
inline constexpr size_t kHeaderTotalSizeAt = 16;
inline constexpr size_t kHeaderChecksumAt = 24;
inline constexpr size_t kHeaderSectionTableAt = 32;
inline constexpr size_t kHeaderSectionCountAt = 40;

enum class SectionKind : uint32_t {
  Program = 1,      // UTF-8 text IR from printGraph, weights without data
  WeightTable = 2,  // name -> where its bytes are (embedded or in a weight file) and their size
  WeightData = 3,   // the embedded weights' bytes, each at a 64-byte aligned offset
  Plan = 4,         // the memory plan (absent when the program cannot be planned)
  WeightFiles = 5,  // the files referenced weights lie in (absent when none is)
  KvLayers = 6,     // the decoder's KV layers (empty when it has none); from version 4
  DeviceCode = 7,   // each device's ahead-of-time code (Device::compileAhead); from version 5
};

// What every device's code blob starts with (Device::compileAhead): its
// program count (u32) and binary bytes (u64); the rest is the device's own.
inline constexpr size_t kDeviceCodeSummarySize = 4 + 8;

// A KV layer section entry: the attention op's index, then the positions of
// past keys and values among the graph inputs and of present keys and values
// among the outputs, each a u32.
inline constexpr size_t kKvLayerEntrySize = 5 * 4;
// The value input and output fields of a latent layer's entry (it caches one tensor).
inline constexpr uint32_t kKvNoPartField = UINT32_MAX;

struct SectionInfo {
  uint32_t kind = 0;
  uint64_t offset = 0;  // from the start of the file
  uint64_t size = 0;
};

// A file holding referenced weights, as it was when the artifact was
// written: a load refuses it when its size or modification time differ.
struct WeightFileInfo {
  std::string path;  // absolute
  uint64_t size = 0;
  int64_t mtimeNs = 0;  // modification time, ns since the epoch
};

// The weight table's file index of an embedded weight.
inline constexpr uint32_t kEmbeddedWeight = 0xffffffffu;

// The memory plan section's register kinds: each kind's code is its index.
inline constexpr RegisterPlan::Kind kRegisterKindOfCode[] = {RegisterPlan::Arena, RegisterPlan::Input,
                                                             RegisterPlan::Weight, RegisterPlan::View};
inline constexpr const char* kRegisterKindNames[] = {"arena", "input", "weight", "view"};

template <class T>
T readAt(const uint8_t* base, size_t offset) {
  T value;
  std::memcpy(&value, base + offset, sizeof(T));
  return value;
}

inline uint64_t alignUp(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

// The checksum over bytes given piece by piece: the same value as over their
// concatenation, so the writer hashes the weights as it writes them. Four
// 64-bit lanes over 32-byte blocks, then whole words, then the tail bytes,
// then an avalanche (defined in docs/artifact.md).
class ChecksumStream {
 public:
  ChecksumStream();
  void update(const void* data, size_t size);
  uint64_t finish() const;

 private:
  static constexpr size_t kBlock = 32;
  void mixBlocks(const uint8_t* p, size_t count);

  uint64_t lanes_[4];
  uint8_t pending_[kBlock] = {};
  size_t pendingSize_ = 0;
  uint64_t total_ = 0;
};

// The checksum stored in the header: a 64-bit hash of the bytes after it.
uint64_t artifactChecksum(const void* data, size_t size);
// What the weight table records of a referenced weight's bytes, checked at
// load: the checksum of their first, middle and last 64 bytes (of all of
// them when there are at most 192). A sample, so that writing an artifact
// never reads the referenced weights whole (docs/artifact.md).
uint64_t referencedWeightFingerprint(const void* data, uint64_t size);

}  // namespace kiln::rt
