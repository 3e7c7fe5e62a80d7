// bf16 precision: the constant weight b of each f32 matmul (and gemm)
// becomes a bf16 weight (round to nearest even); everything else stays f32.
#pragma once

#include <memory>

#include "passes/pass.h"

namespace kiln {

std::unique_ptr<Pass> createPrecisionBf16();

}  // namespace kiln
