// `kiln bench --profile`: kernel time by op kind, each kind's achieved rates
// (the cost model's FLOPs and bytes of its ops, passes/cost_model.h, with
// the run's dims) and, given the machine's limits (bench/roofline's JSON),
// how far they are from them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ir/dim.h"
#include "ir/graph.h"
#include "ir/status.h"
#include "ir/tensor.h"

namespace kiln::tools {

// What bench/roofline measured: f32 and bf16 GEMM peak (GFLOP/s; bf16 absent
// where oneDNN has no bf16 kernel) and read bandwidth (GB/s).
struct Roofline {
  double f32Gflops = 0;
  std::optional<double> bf16Gflops;
  double readGbs = 0;
};

Expected<Roofline> loadRoofline(const std::string& path);

// The graph's input symbols bound to the dims of the inputs a run was given
// (graph input order).
SymbolBindings bindingsOf(const Graph& graph, const std::vector<Tensor>& inputs);

// Per op kind: ops, ms per run, share of the run, GFLOP/s and GB/s achieved
// and, with a roofline, the share of the limit (the limit's time over the
// measured time, an op's limit time being its FLOPs at the GEMM peak of its
// precision or its bytes at the read bandwidth, whichever is longer) and
// which of the two bounds it; then the time outside kernels. To stderr.
void printProfile(const Graph& graph, const std::vector<int64_t>& opNanos, int64_t iters, double totalMs,
                  const SymbolBindings& bindings, const Roofline* roofline);

}  // namespace kiln::tools
