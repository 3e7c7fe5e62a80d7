// The dtypes each elementwise op accepts for its main operand(s), and which
// ops answer in bool: type inference (ir/ops/elementwise.cpp) checks operands
// against them and the reference kernels (backends/reference/elementwise.cpp)
// instantiate their loops for exactly these dtypes.
#pragma once

#include "ir/op_kind.h"

namespace kiln {

enum class Accepts { Float, Numeric, Signed, Bool, Any };

// The unary and binary elementwise ops; pow, min, max, where, cast and clip
// check their operands one by one.
constexpr Accepts acceptedDTypes(OpKind kind) {
  switch (kind) {
    case OpKind::Sqrt: case OpKind::Reciprocal: case OpKind::Exp: case OpKind::Log: case OpKind::Tanh:
    case OpKind::Erf: case OpKind::Sigmoid: case OpKind::Cos: case OpKind::Sin:
      return Accepts::Float;
    case OpKind::Neg:
      return Accepts::Signed;
    case OpKind::Relu: case OpKind::Abs: case OpKind::Add: case OpKind::Sub: case OpKind::Mul:
    case OpKind::Div: case OpKind::Less: case OpKind::Greater:
      return Accepts::Numeric;
    case OpKind::Not: case OpKind::And: case OpKind::Or:
      return Accepts::Bool;
    case OpKind::Identity: case OpKind::Equal:
    default:
      return Accepts::Any;
  }
}

// Comparisons and logic give a bool tensor; arithmetic gives its operands' dtype.
constexpr bool hasBoolResult(OpKind kind) {
  return kind == OpKind::Equal || kind == OpKind::Less || kind == OpKind::Greater || kind == OpKind::And ||
         kind == OpKind::Or;
}

}  // namespace kiln
