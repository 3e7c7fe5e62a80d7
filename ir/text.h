// The text form of a graph. print(parse(text)) == text, byte for byte, for any
// text that print produced. Example:
//
//   graph @main(%x: f32[batch, 4]) -> (%y: f32[batch, 4]) {
//     weight @w : f32[4, 4] = [1.0, 0.0, ...]
//     %0 = matmul %x, @w : f32[batch, 4]
//     %y = relu %0 : f32[batch, 4] loc("Relu_1")
//     return %y
//   }
#pragma once

#include <string>
#include <string_view>

#include "ir/graph.h"
#include "ir/status.h"

namespace kiln {

struct PrintOptions {
  // Weights with more elements than this print without data
  // (`weight @w : f32[512, 128]`); negative prints every weight's data.
  int64_t maxInlineWeightElements = -1;
};

std::string printGraph(const Graph& graph, const PrintOptions& options = {});

// Parses text; errors give `line:column` and what was expected. The parsed
// graph is not verified (see verifyGraph), so the verifier's diagnostics can
// be tested on text.
Expected<Graph> parseGraph(std::string_view text);

}  // namespace kiln
