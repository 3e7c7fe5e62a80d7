// A first-order cost model of a graph: each op costs the bytes it moves over
// the memory bandwidth plus the FLOPs it does at the peak FLOP rate, on one
// representative machine with symbolic dims bound to representative values.
// It ranks graphs (fused vs unfused), it does not predict run times; the
// rules are in docs/report.md.
#pragma once

#include <cstdint>
#include <string>

#include "ir/dim.h"
#include "ir/graph.h"

namespace kiln {

struct CostModel {
  double bytesPerSecond = 100e9;  // memory bandwidth
  double flopsPerSecond = 1e12;   // peak FLOP rate
  // Symbols bound to representative values: `bindings` first, then a name
  // containing "batch" (any case) is batchSize, one containing "past" is
  // pastLength, every other symbol is sequenceLength. Unknown (`?`) dims
  // count as unknownDim.
  SymbolBindings bindings;
  int64_t batchSize = 1;
  int64_t sequenceLength = 128;
  int64_t pastLength = 128;
  int64_t unknownDim = 1;

  int64_t symbolValue(const std::string& symbol) const;
  // The dim's value with every symbol bound; unknown dims give unknownDim.
  int64_t dimValue(const Dim& dim) const;
};

struct OpCost {
  double bytes = 0;
  double flops = 0;
};

struct GraphCost {
  double bytes = 0;
  double flops = 0;
  double seconds = 0;  // sum over ops of bytes/bandwidth + flops/peak
  int64_t opsWithUnknownDims = 0;
};

OpCost opCost(const Graph& graph, const Op& op, const CostModel& model);
GraphCost graphCost(const Graph& graph, const CostModel& model);

}  // namespace kiln
