#include "backends/opencl/op_kernels.h"

namespace kiln::opencl {

const OpenClKernelTable& openclKernels() {
  static const OpenClKernelTable table = [] {
    OpenClKernelTable t;
    addElementwiseKernels(t);
    addShapeKernels(t);
    addNormKernels(t);
    addMatmulKernels(t);
    addAttentionKernels(t);
    return t;
  }();
  return table;
}

Status unsupportedDType(const KernelContext& ctx, DType dtype) {
  return Status::error(ctx.def.name, ": the OpenCL device has no kernel for dtype ", dtypeName(dtype));
}

}  // namespace kiln::opencl
