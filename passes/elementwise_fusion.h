// Elementwise fusion: chains (and small DAGs) of f32 elementwise ops whose
// inner values have no use outside the chain become one fused_elementwise op
// that evaluates them as a program; single ops stay as they are.
#pragma once

#include <memory>

#include "passes/pass.h"

namespace kiln {

std::unique_ptr<Pass> createElementwiseFusion();

}  // namespace kiln
