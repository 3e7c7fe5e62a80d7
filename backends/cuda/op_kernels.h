// The CUDA device's kernels by op kind: each a host function that checks the
// op's dtypes and shapes and launches its kernels, and the kernel program
// (a file of kernels/) they are in, which compileAhead compiles for every op
// placed on the device. A kind without one is one the device does not run.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/cuda/cuda_context.h"
#include "ir/op_kind.h"
#include "runtime/kernel.h"

namespace kiln::cuda {

using CudaKernel = Status (*)(CudaContext& cuda, const KernelContext& ctx);

struct CudaKernelEntry {
  CudaKernel run = nullptr;
  const char* program = nullptr;  // "norms": kernels/norms.cu
};

class CudaKernelTable {
 public:
  void add(OpKind kind, CudaKernel run, const char* program) { entries_[static_cast<size_t>(kind)] = {run, program}; }
  const CudaKernelEntry& get(OpKind kind) const { return entries_[static_cast<size_t>(kind)]; }

 private:
  std::array<CudaKernelEntry, kNumOpKinds> entries_{};
};

// Every kernel, filled once by the family files.
const CudaKernelTable& cudaKernels();
void addNormKernels(CudaKernelTable& table);  // norm_ops.cpp

// A program's CUDA C: the prelude (kernels/common.cu) and its file; "" for
// a name that is none.
std::string programSource(std::string_view program);

// A kernel's arguments in order, as cuLaunchKernel takes them: each value
// kept here, its address handed over.
class CudaArgs {
 public:
  template <class T>
  void add(T value) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "one slot per argument");
    uint64_t slot = 0;
    std::memcpy(&slot, &value, sizeof(T));
    slots_.push_back(slot);
  }
  // A tensor (or null) as the device pointer its kernel reads.
  void add(const Tensor* tensor) { add<CUdeviceptr>(tensor ? reinterpret_cast<uintptr_t>(tensor->data()) : 0); }
  std::vector<void*> pointers() {
    std::vector<void*> out;
    for (uint64_t& slot : slots_) out.push_back(&slot);
    return out;
  }

 private:
  std::vector<uint64_t> slots_;
};

// Every tensor of the op in this device's memory (absent operands aside),
// else an error naming the op and the tensor's type.
Status checkOnDevice(const CudaContext& cuda, const KernelContext& ctx);

// The error for a dtype an op's CUDA kernel has no loop for.
Status unsupportedDType(const KernelContext& ctx, DType dtype);

}  // namespace kiln::cuda
