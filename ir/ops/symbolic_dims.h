// Facts about symbolic dims that both shape inference (ir/ops/shape_ops.cpp)
// and the canonicalisation of shape arithmetic (passes/canonicalize.cpp)
// rely on. Every symbol is a dim, so it is >= 0 for every binding.
#pragma once

#include <optional>

#include "ir/dim.h"

namespace kiln::ops {

// True when `d` >= 0 for every binding of its symbols.
bool knownNonNegative(const Dim& d);

// q with a == q * b and integer coefficients, by polynomial long division
// ((batch*seq + batch*past) * 128 / (batch*128) = seq + past); nullopt when b
// does not divide a exactly.
std::optional<Dim> divideExactly(const Dim& a, const Dim& b);

}  // namespace kiln::ops
