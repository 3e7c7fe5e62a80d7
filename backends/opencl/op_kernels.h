// The OpenCL device's kernels by op kind: each a host function that checks
// the op's dtypes and shapes and enqueues its OpenCL kernels on the device's
// queue. A kind without one is one the device does not support.
#pragma once

#include <array>

#include "backends/opencl/cl_context.h"
#include "ir/op_kind.h"
#include "runtime/kernel.h"

namespace kiln::opencl {

using OpenClKernel = Status (*)(ClContext& cl, const KernelContext& ctx);

class OpenClKernelTable {
 public:
  void add(OpKind kind, OpenClKernel kernel) { kernels_[static_cast<size_t>(kind)] = kernel; }
  OpenClKernel get(OpKind kind) const { return kernels_[static_cast<size_t>(kind)]; }

 private:
  std::array<OpenClKernel, kNumOpKinds> kernels_{};
};

// Every kernel, filled once by the family files.
const OpenClKernelTable& openclKernels();

void addElementwiseKernels(OpenClKernelTable& table);  // elementwise_ops.cpp
void addShapeKernels(OpenClKernelTable& table);        // shape_ops.cpp
void addNormKernels(OpenClKernelTable& table);         // norm_ops.cpp
void addMatmulKernels(OpenClKernelTable& table);       // matmul.cpp
void addAttentionKernels(OpenClKernelTable& table);    // attention.cpp

// The error for a dtype an op's OpenCL kernel has no loop for.
Status unsupportedDType(const KernelContext& ctx, DType dtype);

}  // namespace kiln::opencl
