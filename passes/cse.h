// Common subexpression elimination: weights with equal dtype, shape and
// bytes become one weight; then an op with the same kind, operands,
// attributes and result types as an earlier op is replaced by it (operands
// of commutative ops compare in any order).
#pragma once

#include <memory>

#include "passes/pass.h"

namespace kiln {

std::unique_ptr<Pass> createCommonSubexpressionElimination();

}  // namespace kiln
