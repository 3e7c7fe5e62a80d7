// Sink transposes: a transpose that keeps the last axis last moves past the
// ops that work row by row on that axis (a matmul by a 2-D weight, an
// elementwise op with an operand that varies along the last axis only, a
// slice of one axis, a reshape that splits the last axis) toward its
// consumers, and transposes that meet compose (or cancel). torch.nn's
// MultiheadAttention runs sequence-first: [B, S, E] transposed to
// [S, B, E], projected, sliced into q, k, v and split into heads, then
// transposed to [B, H, S, D]; sunk, the two transposes compose into the
// [0, 2, 1, 3] head split that the layout pass folds into the attention.
#pragma once

#include <memory>

#include "passes/pass.h"

namespace kiln {

std::unique_ptr<Pass> createSinkTransposes();

}  // namespace kiln
