// The .kiln artifact: one file holding the program (text IR, weights without
// data) and the weights, each aligned to 64 bytes so a loader maps the file
// and views them in place. Byte layout, versioning and errors:
// docs/artifact.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/status.h"

namespace kiln::rt {

inline constexpr char kArtifactMagic[8] = {'K', 'I', 'L', 'N', 'A', 'R', 'T', '\0'};
inline constexpr uint32_t kArtifactFormatVersion = 1;
inline constexpr size_t kArtifactHeaderSize = 64;
inline constexpr size_t kArtifactSectionEntrySize = 32;
inline constexpr size_t kWeightAlignment = 64;

enum class SectionKind : uint32_t {
  Program = 1,      // UTF-8 text IR from printGraph, weights without data
  WeightTable = 2,  // name -> (file offset, byte size) for each weight
  WeightData = 3,   // the weights' bytes, each at a 64-byte aligned offset
};

struct SectionInfo {
  uint32_t kind = 0;
  uint64_t offset = 0;  // from the start of the file
  uint64_t size = 0;
};

// A loaded artifact. The graph's weights are views into the mapped file,
// which stays mapped while any of them (or a copy) is alive.
struct Artifact {
  Graph graph;
  uint32_t formatVersion = 0;
  uint64_t fileSize = 0;
  uint64_t weightBytes = 0;  // sum of the weights' data sizes
  std::vector<SectionInfo> sections;
};

// Writes `graph` (verified first; every weight must have data) to `path`,
// replacing it atomically.
Status writeArtifact(const Graph& graph, const std::string& path);

// Why a load failed: the file could not be opened or read, or its contents
// are not a valid artifact.
enum class LoadFailure { None, Io, Invalid };

// Maps and validates the file (size, magic, version, checksum, sections),
// parses the program, attaches the weights and verifies the graph. Errors say
// which check failed; `failure`, when given, says which kind.
Expected<Artifact> loadArtifact(const std::string& path, LoadFailure* failure = nullptr);

// The checksum stored in the header: a 64-bit hash of the bytes after it.
uint64_t artifactChecksum(const void* data, size_t size);

}  // namespace kiln::rt
