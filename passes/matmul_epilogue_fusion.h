// Matmul epilogue fusion: folds what follows a matmul into its optional
// operands and attributes: a bias add (1-D constant on the last dim), an
// activation (ReLU, GELU in its erf and tanh spellings, SiLU, tanh as bert's
// pooler applies it) and a residual add. A gemm becomes the matmul form (alpha and beta folded into constants).
#pragma once

#include <memory>

#include "passes/pass.h"

namespace kiln {

std::unique_ptr<Pass> createMatmulEpilogueFusion();

}  // namespace kiln
