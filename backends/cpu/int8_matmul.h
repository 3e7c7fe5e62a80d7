// matmul_int8 on the CPU (ir/ops/linalg.cpp): the weight stays int8 in memory
// and each element is scaled to f32 as a kernel reads it (gemm_kernels.h's
// Int8Product). Under kTileRows rows (decode), threads split b's rows, each
// range one contiguous stream summed into partial sums that int8Finish adds:
// a quarter of an f32 weight's memory traffic. More rows run as tiles over
// 64-column blocks of b, each K-chain scaled to f32 once for all the rows
// (AVX-512; elsewhere the rows' kernel). A bias that is not a row and a
// residual that is not the full result run on the reference kernel.
#pragma once

#include <optional>

#include "backends/cpu/isa.h"
#include "runtime/kernel.h"

namespace kiln::cpu {

// Runs a matmul_int8 op with `isa` (which this CPU must support); nullopt
// when it declines the operands (the reference kernel then runs).
std::optional<Status> runMatmulInt8(const KernelContext& ctx, Isa isa);

}  // namespace kiln::cpu
