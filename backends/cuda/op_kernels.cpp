#include "backends/cuda/op_kernels.h"

#include "backends/cuda/kernel_sources.h"

namespace kiln::cuda {

const CudaKernelTable& cudaKernels() {
  static const CudaKernelTable table = [] {
    CudaKernelTable t;
    addNormKernels(t);
    addElementwiseKernels(t);
    return t;
  }();
  return table;
}

ProgramText libraryProgram(std::string name, std::string_view library) {
  return {std::move(name), cat(kCommonSource, "\n", library)};
}

Status checkOnDevice(const CudaContext& cuda, const KernelContext& ctx) {
  auto check = [&](const Tensor* tensor) {
    if (!tensor || tensor->byteSize() == 0 || cuda.owns(tensor->data())) return Status::ok();
    return Status::error(ctx.def.name, ": a ", dtypeName(tensor->dtype()), shapeStr(tensor->shape()),
                         " tensor is not in CUDA device memory");
  };
  for (size_t i = 0; i < ctx.inputs.size(); ++i) KILN_RETURN_IF_ERROR(check(ctx.input(i)));
  for (const Tensor* output : ctx.outputs) KILN_RETURN_IF_ERROR(check(output));
  return Status::ok();
}

Status unsupportedDType(const KernelContext& ctx, DType dtype) {
  return Status::error(ctx.def.name, ": the CUDA device has no kernel for dtype ", dtypeName(dtype));
}

}  // namespace kiln::cuda
