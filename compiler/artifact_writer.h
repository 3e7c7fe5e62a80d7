// Writing a .kiln artifact: the compiled program, its memory plan and its
// weights, embedded or referenced in the files they came from. The runtime
// only loads artifacts (runtime/artifact.h); the layout both share is
// runtime/artifact_format.h. Byte layout and versions: docs/artifact.md.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compiler/compiler.h"
#include "ir/graph.h"
#include "ir/status.h"
#include "runtime/artifact_format.h"
#include "runtime/planning/memory_plan.h"

namespace kiln {

// Memory holding the whole of a file's bytes (a mapping of it), which must
// stay valid while the artifact is written.
struct WeightSource {
  rt::WeightFileInfo file;
  const void* data = nullptr;
};

// Embed: every weight's bytes go into the artifact. Reference: a weight whose
// data are the bytes of one of `sources`, unchanged, is recorded as that
// file's byte range; the others are embedded.
struct ArtifactWriteOptions {
  WeightStorage weights = WeightStorage::Embed;
  std::vector<WeightSource> sources;  // for WeightStorage::Reference
  // Per device, the architectures its code is compiled for (CompileOptions').
  std::map<std::string, std::vector<std::string>, std::less<>> architectures;
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
Status writeArtifact(const Graph& graph, const rt::MemoryPlan* plan, const std::string& path,
                     const ArtifactWriteOptions& options = {}, ArtifactWriteStats* stats = nullptr);
// The same for a compile's result, its weights stored as it was compiled for
// (CompileOptions::weights), referenced ones found in `sources`.
Status writeArtifact(const CompileResult& compiled, const std::string& path,
                     const std::vector<WeightSource>& sources = {}, ArtifactWriteStats* stats = nullptr);

}  // namespace kiln
