// The element-wise ops on the OpenCL device: each runs its steps
// (backends/kernel_gen/elementwise_bodies.h, what the CUDA device runs too)
// in the generated map kernel (map_kernel.h), and predicts the programs
// they build from its types. f32 throughout; the integer and bool forms
// where the reference models use them.
#include <optional>
#include <string>
#include <vector>

#include "backends/kernel_gen/elementwise_bodies.h"
#include "backends/opencl/map_kernel.h"
#include "backends/opencl/op_kernels.h"
#include "backends/reference/kernel_helpers.h"

namespace kiln::opencl {
namespace {

using kernelgen::MapOperand;
using kernelgen::MapStep;

// The dtype an error blames when an op has no kernel for its dtypes: its
// first operand that is not f32, else its result's.
DType blamedDType(const std::vector<std::optional<DType>>& inputs, DType output) {
  for (const std::optional<DType>& dtype : inputs)
    if (dtype && *dtype != DType::F32) return *dtype;
  return output;
}

Status elementwiseKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& out = *ctx.outputs[0];
  const std::vector<std::optional<DType>> dtypes = kernelgen::operandDtypes(ctx.inputs);
  const std::vector<MapStep> steps = kernelgen::elementwiseSteps(ctx.def.kind, ctx.attrs, dtypes, out.dtype());
  if (steps.empty()) return unsupportedDType(ctx, blamedDType(dtypes, out.dtype()));
  for (const MapStep& step : steps) {
    std::vector<StridedTensor> walks;
    for (const MapOperand& operand : step.operands) walks.push_back(kernelgen::walkTensor(operand, ctx.inputs, out));
    KILN_RETURN_IF_ERROR(runMap(cl, ctx.def.name, step.fn, out.shape(), wholeTensor(out), walks));
  }
  return Status::ok();
}

// The programs elementwiseKernel builds, predicted from the op's types.
void elementwiseSources(const OpTypes& op, std::vector<std::string>& sources) {
  const ShapedType& out = op.output(0);
  if (ops::product(out.shape) == 0) return;
  std::vector<std::optional<DType>> dtypes;
  for (const std::optional<ShapedType>& input : op.inputs)
    dtypes.push_back(input ? std::optional<DType>(input->dtype) : std::nullopt);
  for (const MapStep& step : kernelgen::elementwiseSteps(op.def.kind, op.attrs, dtypes, out.dtype)) {
    std::vector<std::vector<int64_t>> strides;
    for (const MapOperand& operand : step.operands) {
      const bool result = operand.walk == MapOperand::Walk::Result;
      const std::vector<int64_t>& walked = result ? out.shape : op.input(operand.input)->shape;
      strides.push_back(kernelgen::walkStrides(operand, walked, out.shape));
    }
    sources.push_back(mapKernelSource(step.fn, out.shape, rowMajorStrides(out.shape), strides));
  }
}

}  // namespace

void addElementwiseKernels(OpenClKernelTable& table) {
  for (size_t k = 0; k < kNumOpKinds; ++k)
    if (kernelgen::isElementwise(static_cast<OpKind>(k)))
      table.add(static_cast<OpKind>(k), elementwiseKernel, elementwiseSources);
}

}  // namespace kiln::opencl
