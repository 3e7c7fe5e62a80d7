#include "backends/cpu/int8_matmul.h"

#include <optional>
#include <vector>

#include "backends/cpu/gemm_kernels.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/parallel.h"
#include "backends/cpu/vector_isa.h"

namespace kiln::cpu {

namespace {

std::optional<Int8Product> productOf(const KernelContext& ctx) {
  const Tensor& a = *ctx.input(0);
  const Tensor& b = *ctx.input(1);
  const Tensor* bias = ctx.input(3);
  const Tensor* residual = ctx.input(4);
  Tensor& out = *ctx.outputs[0];
  const int64_t K = b.shape()[0], N = b.shape()[1];
  if (bias && (bias->numElements() != N || bias->shape().back() != N)) return std::nullopt;
  if (residual && residual->shape() != out.shape()) return std::nullopt;
  const std::optional<Activation> activation = parseActivation(ctx.attrs.getString("activation", "none"));
  if (!activation) return std::nullopt;
  return Int8Product{a.data<float>(),
                     K,
                     b.data<int8_t>(),
                     ctx.input(2)->data<float>(),
                     K,
                     N,
                     ctx.attrs.getInt("group", 1),
                     bias ? bias->data<float>() : nullptr,
                     *activation,
                     residual ? residual->data<float>() : nullptr,
                     out.data<float>()};
}

}  // namespace

std::optional<Status> runMatmulInt8(const KernelContext& ctx, Isa isa) {
  const std::optional<Int8Product> p = productOf(ctx);
  if (!p) return std::nullopt;
  const int64_t rows = p->K == 0 ? ctx.outputs[0]->numElements() / std::max<int64_t>(p->N, 1)
                                 : ctx.input(0)->numElements() / p->K;
  const vec::IsaKernels& kernels = vec::kernelsFor(isa);
  // Threads as the f32 matmul takes them (gemm_kernels.h), the work
  // counted as the equivalent amount (flops, or weights read per row).
  const int64_t products = rows * p->K * p->N;
  if (kernels.int8Tiles && rows >= kTileRows) {
    const int64_t blocks = (p->N + kColumnBlock - 1) / kColumnBlock;
    parallelFor(blocks, 2 * products * (kParallelWork / kParallelFlops), 1, [&](int64_t first, int64_t last) {
      for (int64_t block = first; block < last; ++block) kernels.int8Tiles(*p, 0, rows, block);
    });
  } else {
    // Threads split b's rows (each a contiguous stream) and sum their own
    // partial products, which int8Finish adds up.
    const int64_t parts = threadsForWork(p->K, products * (kParallelWork / kParallelRowWeights), kInt8RowStep);
    std::vector<float> sums(static_cast<size_t>(parts * rows * p->N), 0.0f);
    parallelParts(p->K, parts, kInt8RowStep, [&](int64_t part, int64_t kBegin, int64_t kEnd) {
      kernels.int8Rows(*p, rows, kBegin, kEnd, sums.data() + part * rows * p->N);
    });
    kernels.int8Finish(*p, rows, sums.data(), parts);
  }
  return Status::ok();
}

void addInt8MatmulKernels(KernelTable& table) {
  table[static_cast<size_t>(OpKind::MatmulInt8)] = [](const KernelContext& ctx) {
    return runMatmulInt8(ctx, activeIsa());
  };
}

}  // namespace kiln::cpu
