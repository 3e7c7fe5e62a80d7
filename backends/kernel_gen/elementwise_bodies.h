// The bodies of the generated element-wise kernels (map_source.h): for each
// element-wise op, `r = ...;` from the operands a0, a1, ... in the scalar
// language both dialects share, written to match the op's reference kernel
// (backends/reference/elementwise.cpp, fused.cpp). The functions they call
// (k_gelu, k_add_long, convert_float, ...) are each device prelude's. An
// empty body: the op has no kernel for that dtype.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "backends/kernel_gen/map_source.h"
#include "ir/attributes.h"
#include "ir/dtype.h"
#include "ir/elementwise_program.h"
#include "ir/op_kind.h"

namespace kiln::kernelgen {

// A unary op on a0 of `dtype`.
std::string unaryBody(OpKind kind, DType dtype);
// A binary op on a0, a1 of `dtype` (integer division has none: the
// reference's division by zero is an error a kernel cannot raise).
std::string binaryBody(OpKind kind, DType dtype);
// min or max of a0 and a1.
std::string variadicBody(OpKind kind, DType dtype);
// where(a0, a1, a2), moving whole elements as words of their size.
MapFunction whereFunction(DType dtype);
// ONNX Cast among f32, i64, i32 and bool (convertValue in kernel_helpers.h).
std::string castBody(DType from, DType to);
// clip's body: the bounds present follow x as a1 (and a2).
std::string clipBody(bool hasLow, bool hasHigh);
// gelu, exact or with `approximate = "tanh"`.
std::string geluBody(const Attributes& attrs);
inline constexpr const char* kSiluBody = "r = k_silu(a0);";
inline constexpr const char* kSwigluBody = "r = k_silu(a0) * a1;";
// A float fused_elementwise program, one statement per instruction.
std::string programBody(const ElementwiseProgram& program);

// Whether `kind` is an element-wise op these bodies cover.
bool isElementwise(OpKind kind);
// The map functions an element-wise op runs, in the order it runs them,
// from its operands' dtypes (absent operands nullopt) and its result's:
// one, but min / max run theirs once per operand after the second (the
// running result being a0). Empty when the op has no kernel for its dtypes.
std::vector<MapFunction> elementwiseFunctions(OpKind kind, const Attributes& attrs,
                                              const std::vector<std::optional<DType>>& inputs, DType output);

}  // namespace kiln::kernelgen
