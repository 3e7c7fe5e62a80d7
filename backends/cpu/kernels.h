// The CPU backend's fast kernels. Each one runs an op on the shapes and
// dtypes it covers and declines the rest (returns nullopt), so the op's
// reference kernel (backends/reference) stays the fallback and the accuracy
// yardstick. Kernel files add theirs to one table (kernel_table.cpp), indexed
// by op kind; CpuDevice looks an op up there before its reference kernel.
#pragma once

#include <array>
#include <optional>

#include "runtime/kernel.h"

namespace kiln::cpu {

using FastKernel = std::optional<Status> (*)(const KernelContext& ctx);
using KernelTable = std::array<FastKernel, kNumOpKinds>;  // by OpKind; null: none

// The fast kernel for an op, or null when it has none.
FastKernel fastKernelFor(OpKind kind);

// Threads every CPU kernel and the GEMM library use: KILN_NUM_THREADS when
// set to a positive integer (`kiln bench --threads` sets it), else 2. One
// OpenMP pool serves the kernels and oneDNN (which threads with the same
// OpenMP runtime), so the two never oversubscribe the cores.
int numThreads();

// Registration, one function per kernel file.
void addAttentionKernels(KernelTable& table);  // attention.cpp
void addLatentAttentionKernels(KernelTable& table);  // latent_attention.cpp
void addVectorKernels(KernelTable& table);     // vector_kernels.cpp
void addInt8MatmulKernels(KernelTable& table);  // int8_matmul.cpp

}  // namespace kiln::cpu
