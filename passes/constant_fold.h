// Constant folding: an op whose operands are all weights with data is run
// once at compile time (its reference kernel, through evaluateOp) and its
// results become weights. Results over kConstantFoldMaxElements elements are
// left to run time, so folding never inflates the artifact much.
#pragma once

#include <cstdint>
#include <memory>

#include "passes/pass.h"

namespace kiln {

inline constexpr int64_t kConstantFoldMaxElements = int64_t{1} << 20;

std::unique_ptr<Pass> createConstantFold();

}  // namespace kiln
