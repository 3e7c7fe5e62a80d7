// Regroup projections: a projection x W (+ b) whose output is viewed per head
// and read by slices that each take one part of every head (GPT-NeoX's and
// Phi's query_key_value viewed as [B, S, H, 3*D] or [B, S, H, 3, D]; Falcon's
// [B, S, H + 2, D] with q, k and v heads picked by slice and gather) gets
// its weight's columns (and the bias) permuted so each reader's part is one
// contiguous block: x W' (+ b') split into the blocks, each reshaped to its
// reader's result. The layout pass then reads the split as the attention's
// packed q|k|v rows, and no per-head slice or copy is left.
#pragma once

#include <memory>

#include "passes/pass.h"

namespace kiln {

std::unique_ptr<Pass> createRegroupProjections();

}  // namespace kiln
