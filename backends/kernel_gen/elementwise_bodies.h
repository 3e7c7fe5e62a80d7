// The bodies of the generated element-wise kernels (map_source.h): for each
// element-wise op, `r = ...;` from the operands a0, a1, ... in the scalar
// language both dialects share, written to match the op's reference kernel
// (backends/reference/elementwise.cpp, fused.cpp). The functions they call
// (k_gelu, k_add_long, convert_float, ...) are each device prelude's. An
// empty body: the op has no kernel for that dtype.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backends/kernel_gen/map_source.h"
#include "ir/attributes.h"
#include "ir/dtype.h"
#include "ir/elementwise_program.h"
#include "ir/op_kind.h"
#include "ir/tensor.h"

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

// How a map kernel walks one of its operands over the op's result shape.
struct MapOperand {
  enum class Walk : uint8_t {
    Broadcast,   // input `input` broadcast to the result's shape
    Result,      // the result itself, as the running value of min / max
    FirstHalf,   // input `input`'s rows packed as gate | up (swiglu): the first half
    SecondHalf,  // ... the second half, a result row on
  } walk = Walk::Broadcast;
  size_t input = 0;  // an index into the op's operands
};

// One map kernel an element-wise op runs over its result's shape.
struct MapStep {
  MapFunction fn;
  std::vector<MapOperand> operands;
};

// The maps an element-wise op runs, in order, from its operands' dtypes
// (absent operands nullopt) and its result's: one, but min / max run the
// first pair into the result and then the result with each further operand.
// Empty when the op has no kernel for these dtypes. Both GPU devices run
// (and predict) exactly these.
std::vector<MapStep> elementwiseSteps(OpKind kind, const Attributes& attrs,
                                      const std::vector<std::optional<DType>>& inputs, DType output);
// A tensor as a map kernel reads or writes it: strides (in elements) along
// each iteration dim, and the element it starts at.
struct StridedTensor {
  const Tensor* tensor = nullptr;
  std::vector<int64_t> strides;
  int64_t offset = 0;
};
// A walked operand's strides over the result's shape, from the walked
// tensor's shape (`input`; the result's for Walk::Result).
std::vector<int64_t> walkStrides(const MapOperand& operand, const std::vector<int64_t>& input,
                                 const std::vector<int64_t>& result);
// How a step walks `operand` of an op with these inputs over its result `out`.
StridedTensor walkTensor(const MapOperand& operand, std::span<const Tensor* const> inputs, const Tensor& out);
// The dtypes of an op's operands as elementwiseSteps takes them.
std::vector<std::optional<DType>> operandDtypes(std::span<const Tensor* const> inputs);

}  // namespace kiln::kernelgen
