// Unfold heads: attention computed with its heads folded into the batch,
// scores [B*H, S, T] from 3-D batched matmuls (torch.nn's MultiheadAttention,
// BLOOM's baddbmm), rewritten over [B, H, S, T], so that attention_fusion
// sees the pattern it matches. Anchored on each softmax: the matmul making
// the scores and the one reading the probabilities must each take operands
// that are views of [B, H, ., .] values (a reshape merging B and H, or
// torch.nn's transpose of a reshape splitting [P, B, H*D] into heads, a
// transpose of the last two axes of those, any of them scaled by a
// constant; a 4-D reader reads v as it is); the ops between them (scale, masks, reshapes)
// are made again in 4-D, a [B*H, ., .] operand of theirs viewed as
// [B, H, ., .]. The 3-D ops are left for dce.
#pragma once

#include <memory>

#include "passes/pass.h"

namespace kiln {

std::unique_ptr<Pass> createUnfoldHeads();

}  // namespace kiln
