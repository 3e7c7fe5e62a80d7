#include "backends/opencl/op_kernels.h"

#include "backends/opencl/kernel_sources.h"

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

std::string librarySource(std::string_view library) { return cat(kCommonSource, library); }

Status unsupportedDType(const KernelContext& ctx, DType dtype) {
  return Status::error(ctx.def.name, ": the OpenCL device has no kernel for dtype ", dtypeName(dtype));
}

}  // namespace kiln::opencl
