// The .kiln artifact: one file holding the planned program: the text IR
// (weights without data), its memory plan (every register's device, memory,
// buffer, offset and live range) and the weights. A weight is embedded,
// aligned to 64 bytes so a loader maps the file and views it in place, or
// referenced: a byte range of another file (the ONNX model or its external
// data, `kiln compile --weights reference`), which the loader maps too.
// Byte layout, versioning and errors: docs/artifact.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/status.h"
#include "runtime/executor.h"
#include "runtime/planning/memory_plan.h"

namespace kiln::rt {

inline constexpr char kArtifactMagic[8] = {'K', 'I', 'L', 'N', 'A', 'R', 'T', '\0'};
inline constexpr uint32_t kArtifactFormatVersion = 3;
// Version 2 (every weight embedded, no weight-file section) still loads.
inline constexpr uint32_t kOldestReadableFormatVersion = 2;
inline constexpr size_t kArtifactHeaderSize = 64;
inline constexpr size_t kArtifactSectionEntrySize = 32;
inline constexpr size_t kWeightAlignment = 64;

enum class SectionKind : uint32_t {
  Program = 1,      // UTF-8 text IR from printGraph, weights without data
  WeightTable = 2,  // name -> where its bytes are (embedded or in a weight file) and their size
  WeightData = 3,   // the embedded weights' bytes, each at a 64-byte aligned offset
  Plan = 4,         // the memory plan (absent when the program cannot be planned)
  WeightFiles = 5,  // the files referenced weights lie in (absent when none is)
};

// A file holding referenced weights, as it was when the artifact was
// written: a load refuses it when its size or modification time differ.
struct WeightFileInfo {
  std::string path;  // absolute
  uint64_t size = 0;
  int64_t mtimeNs = 0;  // modification time, ns since the epoch
};

// Where one weight's bytes are.
struct WeightLocation {
  ValueId weight = kNoValue;
  int32_t file = -1;    // index into Artifact::weightFiles; -1: embedded in the artifact
  uint64_t offset = 0;  // from the start of the artifact, or of the weight file
  uint64_t bytes = 0;
  // Referenced at an offset that is not a multiple of its element size:
  // read into aligned memory at load instead of viewed in place.
  bool copiedAtLoad = false;
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
  // The plan `kiln compile` made, its registers indexed by the graph's
  // ValueIds; none when the program has a dim known only at run time.
  std::optional<MemoryPlan> plan;
  uint32_t formatVersion = 0;
  uint64_t fileSize = 0;
  uint64_t weightBytes = 0;  // sum of the weights' data sizes
  uint64_t embeddedWeightBytes = 0, referencedWeightBytes = 0;
  std::vector<SectionInfo> sections;
  std::vector<WeightFileInfo> weightFiles;
  std::vector<WeightLocation> weightLocations;  // in the weight table's order
};

// Embed: every weight's bytes go into the artifact. Reference: a weight whose
// data are the bytes of one of the writer's weight files, unchanged, is
// recorded as that file's byte range; the others are embedded.
enum class WeightStorage { Embed, Reference };

// Memory holding the whole of a file's bytes (a mapping of it), which must
// stay valid while the artifact is written.
struct WeightSource {
  WeightFileInfo file;
  const void* data = nullptr;
};

struct ArtifactWriteOptions {
  WeightStorage weights = WeightStorage::Embed;
  std::vector<WeightSource> sources;  // for WeightStorage::Reference
};

// What the writer did with the weights.
struct ArtifactWriteStats {
  int64_t embeddedWeights = 0, referencedWeights = 0;
  uint64_t embeddedBytes = 0, referencedBytes = 0;
  // Referenced at an offset that is not a multiple of the element size
  // (the loader copies them into aligned memory), counted in referenced*.
  int64_t unalignedWeights = 0;
  uint64_t unalignedBytes = 0;
  std::vector<std::string> referencedFiles;  // the weight-file section's paths
};

// Writes `graph` (verified first; every weight must have data) and `plan` (a
// plan of this graph from planMemory, or null for none) to `path`, replacing
// it atomically. `stats`, when given, says where the weights went.
Status writeArtifact(const Graph& graph, const MemoryPlan* plan, const std::string& path,
                     const ArtifactWriteOptions& options = {}, ArtifactWriteStats* stats = nullptr);
// The same, planned at the default bounds (planningBounds); without a plan
// when the graph cannot be planned.
Status writeArtifact(const Graph& graph, const std::string& path);

// Why a load failed: the file could not be opened or read, or its contents
// are not a valid artifact.
enum class LoadFailure { None, Io, Invalid };

// Maps and validates the file (size, magic, version, checksum, sections),
// parses the program, attaches the weights (mapping each referenced weight
// file once, read-only, after checking it is the file that was compiled),
// verifies the graph and checks the plan against it. Errors say which check
// failed; `failure`, when given, says which kind (a referenced weight file
// that cannot be opened is Io; one that changed is Invalid).
Expected<Artifact> loadArtifact(const std::string& path, LoadFailure* failure = nullptr);

// The executor of a loaded artifact, by its plan (or planned now when it has
// none). The artifact must outlive it.
Expected<std::unique_ptr<Executor>> createExecutor(const Artifact& artifact);

// The checksum stored in the header: a 64-bit hash of the bytes after it.
uint64_t artifactChecksum(const void* data, size_t size);
// What the weight table records of a referenced weight's bytes, checked at
// load: the checksum of their first, middle and last 64 bytes (of all of
// them when there are at most 192). A sample, so that writing an artifact
// never reads the referenced weights whole (docs/artifact.md).
uint64_t referencedWeightFingerprint(const void* data, uint64_t size);

}  // namespace kiln::rt
