// The memory plan of a graph: every register's device, memory space, buffer,
// byte offset in the session's arena and live range, for shapes bounded by
// `bounds` (a value for every symbol). A run whose symbols stay within the
// bounds fits the plan (a dim's size grows with its symbols), which the
// executor checks register by register; a run that does not fit gets a plan
// of its own (see docs/planning.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ir/dim.h"
#include "ir/graph.h"
#include "ir/status.h"

namespace kiln::rt {

// Offsets and slot sizes are multiples of this (a cache line, and enough
// for any vector load).
inline constexpr size_t kPlanAlignment = 64;

// The host CPU's memory space: graph inputs, weights and the registers of
// ops placed on the host (kHostDevice) live there.
inline constexpr std::string_view kHostMemory = "host";

// The memory space a device's registers live in: the host's for the host
// CPU, and for every other device one of its own, named as the device.
std::string memorySpaceOf(std::string_view device);

struct RegisterPlan {
  enum Kind {
    Arena,   // an op result with its own slot in the arena
    Input,   // a graph input: the caller's memory
    Weight,  // a weight: the model's (mmapped) memory, or on another device a
             // transfer of one, which the executor uploads once (no slot)
    View,    // an op result that reinterprets another register's bytes (reshape)
  };
  ValueId value = kNoValue;
  std::string device{kHostDevice}, memory{kHostMemory};
  int32_t buffer = -1;  // Arena and View of an arena register; -1 otherwise
  size_t offset = 0;    // in the arena (Arena, and View of an arena register)
  size_t bytes = 0;     // at the bounds, rounded up to kPlanAlignment
  // Schedule steps (op indices), inclusive: written at liveStart (0 for
  // inputs and weights), last read at liveEnd; graph outputs live to
  // ops().size(), past the last op.
  int64_t liveStart = 0, liveEnd = 0;
  Kind kind = Arena;
  ValueId viewOf = kNoValue;  // View: the register whose bytes it shares (never itself a View)
};

struct MemoryPlan {
  SymbolBindings bounds;
  std::vector<RegisterPlan> registers;  // one per value, indexed by ValueId
  // Summed over the memory spaces, each with an arena of its own:
  size_t peakBytes = 0;        // the arenas' sizes
  size_t naiveBytes = 0;       // one buffer per op result (views included)
  size_t lowerBoundBytes = 0;  // the most arena bytes live at one step
  int32_t buffers = 0;         // distinct slots (offsets) in the arenas
};

// A transfer whose operand is a weight: its result is a per-executor
// constant on the destination device, uploaded once, not computed per run.
bool isWeightUpload(const Graph& graph, const Op& op);

// Plans the graph's op results for the given symbol values: each register in
// its producer's device's memory space (memorySpaceOf), one arena per space.
// An error names the register whose size is unknown at the bounds (a `?`
// dim, or a symbol missing from `bounds`).
Expected<MemoryPlan> planMemory(const Graph& graph, const SymbolBindings& bounds);

// The bounds to plan with: `given` for the symbols it names, and for the
// others the documented defaults: 1 for a batch-like symbol (its name
// contains "batch", any case), kDefaultSymbolBound for the rest.
inline constexpr int64_t kDefaultSymbolBound = 2048;
SymbolBindings planningBounds(const Graph& graph, const SymbolBindings& given);

}  // namespace kiln::rt
