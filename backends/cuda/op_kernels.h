// The CUDA device's kernels by op kind: each a host function that checks the
// op's dtypes and shapes and launches its kernels, and the kernel programs
// it needs (a file of kernels/, or generated map kernels), which
// compileAhead compiles for every op placed on the device. A kind without
// one is one the device does not run.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/cuda/cuda_context.h"
#include "ir/graph.h"
#include "ir/op_kind.h"
#include "runtime/kernel.h"

namespace kiln::cuda {

using CudaKernel = Status (*)(CudaContext& cuda, const KernelContext& ctx);

// A kernel program as compileAhead compiles it and the runtime loads it:
// a fixed one (the prelude and a file of kernels/), or a piece of the
// program kMapsProgram, which gathers every generated map kernel a model
// uses (usedPrograms puts the prelude before them).
struct ProgramText {
  std::string name;    // "norms", "maps"
  std::string source;  // CUDA C; for a piece of "maps", one kernel without the prelude
};
inline constexpr std::string_view kMapsProgram = "maps";
// The programs an op placed on the device needs, from its types; none when
// its dtypes have no kernel (running it then says so).
using CudaPrograms = std::vector<ProgramText> (*)(const Graph& graph, const Op& op);

struct CudaKernelEntry {
  CudaKernel run = nullptr;
  CudaPrograms programs = nullptr;
};

class CudaKernelTable {
 public:
  void add(OpKind kind, CudaKernel run, CudaPrograms programs) {
    entries_[static_cast<size_t>(kind)] = {run, programs};
  }
  const CudaKernelEntry& get(OpKind kind) const { return entries_[static_cast<size_t>(kind)]; }

 private:
  std::array<CudaKernelEntry, kNumOpKinds> entries_{};
};

// Every kernel, filled once by the family files.
const CudaKernelTable& cudaKernels();
void addNormKernels(CudaKernelTable& table);         // norm_ops.cpp
void addElementwiseKernels(CudaKernelTable& table);  // elementwise_ops.cpp

// A fixed program of kernels/: the prelude (kernels/common.cu), then `library`.
ProgramText libraryProgram(std::string name, std::string_view library);

// A kernel's arguments in order, as cuLaunchKernel takes them: each value's
// bytes kept here, their address handed over.
class CudaArgs {
 public:
  template <class T>
  void add(T value) {
    addBytes(&value, sizeof(T));
  }
  // A tensor (or null) as the device pointer its kernel reads.
  void add(const Tensor* tensor) { add<CUdeviceptr>(tensor ? reinterpret_cast<uintptr_t>(tensor->data()) : 0); }
  // A struct passed by value.
  void addBytes(const void* data, size_t size) {
    const auto* bytes = static_cast<const uint8_t*>(data);
    values_.emplace_back(bytes, bytes + size);
  }
  std::vector<void*> pointers() {
    std::vector<void*> out;
    for (std::vector<uint8_t>& value : values_) out.push_back(value.data());
    return out;
  }

 private:
  std::vector<std::vector<uint8_t>> values_;
};

// Every tensor of the op in this device's memory (absent operands aside),
// else an error naming the op and the tensor's type.
Status checkOnDevice(const CudaContext& cuda, const KernelContext& ctx);

// The error for a dtype an op's CUDA kernel has no loop for.
Status unsupportedDType(const KernelContext& ctx, DType dtype);

}  // namespace kiln::cuda
