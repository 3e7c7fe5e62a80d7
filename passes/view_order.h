// Whether a chain of views (transposes and reshapes) leaves a tensor's
// elements in their row-major order: then the chain is one reshape. Each
// element position is tracked as a sequence of "atoms", the source's axes
// (split where a reshape splits one); a transpose permutes the axes, a
// reshape regroups the atoms in order. The chain keeps the order when the
// atoms end in the order they started (ViT's patch embedding: [B, 4, 4, E]
// transposed to [B, E, 4, 4], flattened to [B, E, 16] and transposed to
// [B, 16, E] is [B, 4, 4, E] viewed as [B, 16, E]).
#pragma once

#include <vector>

#include "ir/graph.h"

namespace kiln {

// `steps` are the ops from the view of `source` to the last, in order, each
// a transpose or a dims reshape reading the one before. Reshapes that split
// a symbolic dim, or that cannot be followed atom by atom, answer false.
bool keepsElementOrder(const Graph& graph, ValueId source, const std::vector<const Op*>& steps);

}  // namespace kiln
