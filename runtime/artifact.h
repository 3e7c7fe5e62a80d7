// Loading a .kiln artifact: one file holding the planned program: the text
// IR (weights without data), its memory plan (every register's device,
// memory, buffer, offset and live range) and the weights. A weight is embedded,
// aligned to 64 bytes so a loader maps the file and views it in place, or
// referenced: a byte range of another file (the ONNX model or its external
// data, `kiln compile --weights reference`), which the loader maps too.
// The compiler writes it (compiler/artifact_writer.h); what both sides share
// is runtime/artifact_format.h. Byte layout, versioning and errors:
// docs/artifact.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/status.h"
#include "runtime/artifact_format.h"
#include "runtime/executor.h"
#include "runtime/planning/memory_plan.h"

namespace kiln::rt {

// Where one weight's bytes are.
struct WeightLocation {
  ValueId weight = kNoValue;
  int32_t file = -1;    // index into Artifact::weightFiles; -1: embedded in the artifact
  uint64_t offset = 0;  // from the start of the artifact, or of the weight file
  uint64_t bytes = 0;
  // How a weight referenced at an offset that is not a multiple of its
  // element size is held (kernels take typed pointers):
  //   Viewed: in place all the same, when only the CPU's gathers read it
  //     (they copy rows as bytes): an embedding table's unused rows are then
  //     never read, as when it is embedded;
  //   Copied: read into aligned memory at load;
  //   Released: copied, when only the CPU's matmuls (as b) and gathers read
  //     it: a copy the CPU lets go page by page as it packs the weight, and
  //     whose pages a kernel that reads them later pins, which reads them
  //     again (runtime/weight_copies.h; until then they read as zeros).
  enum class Unaligned : uint8_t { No, Viewed, Copied, Released };
  Unaligned unaligned = Unaligned::No;
};

// One device's ahead-of-time code (Device::compileAhead): a view into the
// mapped file, which the Artifact keeps mapped.
struct DeviceCode {
  std::string device;
  std::span<const uint8_t> code;
  uint32_t programs = 0;     // from the blob's summary
  uint64_t binaryBytes = 0;  // likewise
};

// A loaded artifact. The graph's weights are views into the mapped file,
// which stays mapped while any of them (or a copy) is alive.
struct Artifact {
  Graph graph;
  // The plan `kiln compile` made, its registers indexed by the graph's
  // ValueIds; none when the program has a dim known only at run time.
  std::optional<MemoryPlan> plan;
  // The decoder's KV layers as the compiler recorded them (empty: none);
  // nullopt for an artifact older than format version 4, which recorded
  // none: it runs, but cannot be stepped.
  KvLayerRecord kvLayers;
  uint32_t formatVersion = 0;
  uint64_t fileSize = 0;
  uint64_t weightBytes = 0;  // sum of the weights' data sizes
  uint64_t embeddedWeightBytes = 0, referencedWeightBytes = 0;
  std::vector<SectionInfo> sections;
  std::vector<WeightFileInfo> weightFiles;
  std::vector<WeightLocation> weightLocations;  // in the weight table's order
  // The devices' code, in the section's order (none before format version 5).
  std::vector<DeviceCode> deviceCode;
  std::shared_ptr<const void> mapping;  // keeps the file mapped for deviceCode
};

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
// none), stepping the KV layers it records. Each device's code goes to it
// first (Device::loadAhead), so the first run builds nothing. When a device
// the program is placed on cannot be used here (not in this runtime, or no
// driver), the program runs on the host alone instead, said once on stderr
// (runtime/host_fallback.h). The artifact must outlive it.
Expected<std::unique_ptr<Executor>> createExecutor(const Artifact& artifact);

}  // namespace kiln::rt
