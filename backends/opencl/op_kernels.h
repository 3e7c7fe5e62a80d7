// The OpenCL device's kernels by op kind: each a host function that checks
// the op's dtypes and shapes and enqueues its OpenCL kernels on the device's
// queue. A kind without one is one the device does not support.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "backends/opencl/cl_context.h"
#include "ir/op_kind.h"
#include "runtime/kernel.h"

namespace kiln::opencl {

using OpenClKernel = Status (*)(ClContext& cl, const KernelContext& ctx);

// An op as the compiler sees it, its operands and results at concrete
// shapes (the memory plan's bounds): what a kernel's programs are predicted
// from, without running it. An absent operand is nullopt.
struct ShapedType {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
};
struct OpTypes {
  const OpDef& def;
  const Attributes& attrs;
  std::vector<std::optional<ShapedType>> inputs, outputs;
  std::vector<const Tensor*> values;  // per operand: its value when a constant (a weight), else null
  const ShapedType* input(size_t i) const { return i < inputs.size() && inputs[i] ? &*inputs[i] : nullptr; }
  const ShapedType& output(size_t i) const { return *outputs[i]; }
};

// Adds to `sources` the program sources the op's kernel will build when it
// runs at these types (a guess the kernel may miss: it then builds at first
// use). Adds none for a dtype it has no loop for.
using OpenClSources = void (*)(const OpTypes& op, std::vector<std::string>& sources);

class OpenClKernelTable {
 public:
  void add(OpKind kind, OpenClKernel kernel, OpenClSources sources = nullptr) {
    kernels_[static_cast<size_t>(kind)] = kernel;
    sources_[static_cast<size_t>(kind)] = sources;
  }
  OpenClKernel get(OpKind kind) const { return kernels_[static_cast<size_t>(kind)]; }
  OpenClSources sources(OpKind kind) const { return sources_[static_cast<size_t>(kind)]; }

 private:
  std::array<OpenClKernel, kNumOpKinds> kernels_{};
  std::array<OpenClSources, kNumOpKinds> sources_{};
};

// Every kernel, filled once by the family files.
const OpenClKernelTable& openclKernels();

void addElementwiseKernels(OpenClKernelTable& table);  // elementwise_ops.cpp
void addShapeKernels(OpenClKernelTable& table);        // shape_ops.cpp
void addNormKernels(OpenClKernelTable& table);         // norm_ops.cpp
void addMatmulKernels(OpenClKernelTable& table);       // matmul.cpp
void addAttentionKernels(OpenClKernelTable& table);    // attention.cpp

// A fixed program of kernels/: the prelude (common.cl), then `library`.
std::string librarySource(std::string_view library);

// The error for a dtype an op's OpenCL kernel has no loop for.
Status unsupportedDType(const KernelContext& ctx, DType dtype);

}  // namespace kiln::opencl
