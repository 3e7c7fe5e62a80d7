// The .kiln artifact: one file holding the planned program: the text IR
// (weights without data), its memory plan (every register's device, memory,
// buffer, offset and live range) and the weights, each aligned to 64 bytes so
// a loader maps the file and views them in place. Byte layout, versioning and
// errors: docs/artifact.md.
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
inline constexpr uint32_t kArtifactFormatVersion = 2;
inline constexpr size_t kArtifactHeaderSize = 64;
inline constexpr size_t kArtifactSectionEntrySize = 32;
inline constexpr size_t kWeightAlignment = 64;

enum class SectionKind : uint32_t {
  Program = 1,      // UTF-8 text IR from printGraph, weights without data
  WeightTable = 2,  // name -> (file offset, byte size) for each weight
  WeightData = 3,   // the weights' bytes, each at a 64-byte aligned offset
  Plan = 4,         // the memory plan (absent when the program cannot be planned)
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
  std::vector<SectionInfo> sections;
};

// Writes `graph` (verified first; every weight must have data) and `plan` (a
// plan of this graph from planMemory, or null for none) to `path`, replacing
// it atomically.
Status writeArtifact(const Graph& graph, const MemoryPlan* plan, const std::string& path);
// The same, planned at the default bounds (planningBounds); without a plan
// when the graph cannot be planned.
Status writeArtifact(const Graph& graph, const std::string& path);

// Why a load failed: the file could not be opened or read, or its contents
// are not a valid artifact.
enum class LoadFailure { None, Io, Invalid };

// Maps and validates the file (size, magic, version, checksum, sections),
// parses the program, attaches the weights, verifies the graph and checks the
// plan against it. Errors say which check failed; `failure`, when given, says
// which kind.
Expected<Artifact> loadArtifact(const std::string& path, LoadFailure* failure = nullptr);

// The executor of a loaded artifact, by its plan (or planned now when it has
// none). The artifact must outlive it.
Expected<std::unique_ptr<Executor>> createExecutor(const Artifact& artifact);

// The checksum stored in the header: a 64-bit hash of the bytes after it.
uint64_t artifactChecksum(const void* data, size_t size);

}  // namespace kiln::rt
