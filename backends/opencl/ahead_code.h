// The OpenCL device's ahead-of-time code, the blob compileAhead writes into
// an artifact and loadAhead reads back (layout: docs/artifact.md, "Device
// code"): the programs the ops placed on the device will build, each as its
// OpenCL C source and, when the compiling machine had an OpenCL device, that
// driver's binary, valid on a device of the same key (ClContext::deviceKey).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ir/dim.h"
#include "ir/graph.h"
#include "ir/status.h"

namespace kiln::opencl {

inline constexpr uint32_t kAheadCodeVersion = 1;

struct AheadProgram {
  std::string source;
  std::string options;          // clBuildProgram's
  std::vector<uint8_t> binary;  // empty: none (built from source at load)
};

struct AheadCode {
  std::string key;  // the device the binaries are for; empty when there are none
  std::vector<AheadProgram> programs;
};

std::vector<uint8_t> encodeAheadCode(const AheadCode& code);
// An error saying what is wrong with a blob that is not one encodeAheadCode wrote.
Expected<AheadCode> decodeAheadCode(std::span<const uint8_t> blob);

// The shapes programs are predicted at: the bounds, then each symbol at 1
// or 2. A generated kernel's text depends on which dims are 1 (a broadcast
// walk is in order over a dim of 1), so these cover the runs within the
// bounds and past them (a run may pass them): batch 1 or more, one token or
// several.
std::vector<SymbolBindings> predictionShapes(const SymbolBindings& bounds);

// The distinct program sources that the kernels of the ops `graph` places
// on the OpenCL device will build, predicted from their types at each of
// predictionShapes(bounds), in that order. An op with a dim that has no
// value at a shape is skipped there.
std::vector<std::string> predictedPrograms(const Graph& graph, const SymbolBindings& bounds);

}  // namespace kiln::opencl
