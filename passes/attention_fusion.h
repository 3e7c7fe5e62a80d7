// Attention fusion: finds MatMul(Q, Kᵀ) → scale → mask → softmax → MatMul(·, V)
// by dataflow from the softmax and replaces it with one `attention` op
// (bhsd layout), folding in what surrounds it: the scale wherever it is
// applied, causal masks (recognised by evaluating their construction), padding
// masks as an operand, rotate-half RoPE on Q and K, repeat_kv (K and V stay
// at kv_heads) and the past-K/V concat of a KV cache (past operands, present
// results). The ops it bypasses are left for dce.
#pragma once

#include <memory>

#include "passes/pass.h"

namespace kiln {

std::unique_ptr<Pass> createAttentionFusion();

}  // namespace kiln
