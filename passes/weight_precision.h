// What the precision passes (precision_bf16, precision_int8_weights) share:
// the accounting of the f32 weights they replaced by narrower copies.
#pragma once

#include <unordered_map>
#include <vector>

#include "ir/graph.h"
#include "passes/pass.h"

namespace kiln {

// Each converted f32 weight and the weights made from it.
using ConvertedWeights = std::unordered_map<ValueId, std::vector<ValueId>>;

// Counts "f32-weights-kept" (converted weights something else still reads:
// a tied embedding table) and "weight-bytes-saved" (the f32 bytes that go
// less the new ones; negative when only kept weights were converted), then
// drops what nothing reads. Call after the ops read the new weights.
void finishConversion(Graph& graph, const ConvertedWeights& converted, PassStatistics& statistics);

}  // namespace kiln
