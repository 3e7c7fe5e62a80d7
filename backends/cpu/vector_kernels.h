// The CPU backend's vector kernels: rms_norm, layer_norm, softmax (last
// axis), gelu, silu, swiglu, fused_elementwise and add/sub/mul/div in f32,
// and the data movement of gather, slice (unit steps), split and concat. The
// f32 kernels run on AVX-512, AVX2+FMA or scalar code (vector_isa.h).
// addVectorKernels registers them with the instruction set activeIsa()
// chooses; the entry points here take it explicitly, so tests can run every
// path this CPU has.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "backends/cpu/isa.h"
#include "backends/cpu/vector_isa.h"
#include "runtime/kernel.h"

namespace kiln::cpu {

// The ops that have a vector kernel.
std::vector<OpKind> vectorKernelOps();

// Runs op `op`'s vector kernel with `isa` (which this CPU must support):
// its status, or nullopt when the op has none or the kernel declines the
// operands (dtype, broadcast pattern, axis) so the reference must run.
std::optional<Status> runVectorKernel(OpKind op, const KernelContext& ctx, Isa isa);

// y[i] = op(x[i]) for a unary vector op (exp, tanh, erf, ...), with `isa`.
void applyUnary(vec::VectorOp op, const float* x, float* y, int64_t n, Isa isa);

}  // namespace kiln::cpu
