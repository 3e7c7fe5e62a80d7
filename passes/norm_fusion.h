// Norm fusion: RMSNorm and LayerNorm written out in primitive ops (pow or
// mul, reduce_mean, add eps, sqrt, div or reciprocal, mul by the weight, add
// the bias) become one rms_norm / layer_norm op. Then a layer_norm of an add
// read by nothing else takes one summand as its residual operand (the add of
// a matmul's result is matmul_epilogue_fusion's).
#pragma once

#include <memory>

#include "passes/pass.h"

namespace kiln {

std::unique_ptr<Pass> createNormFusion();

}  // namespace kiln
