// The reference kernels of matmul (with its fused epilogue: transposed
// operands, bias, activation, residual) and gemm (ir/ops/linalg.cpp),
// including the mixed form (an f32 a times a bf16 b), and matmul_int8 (an int8
// weight, dequantized, then matmul's f32 product). Loops run i-k-j so the
// innermost loop streams contiguous rows of B and of the result.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "backends/reference/kernel_helpers.h"
#include "backends/reference/kernel_table.h"
#include "ir/activation.h"

namespace kiln {
namespace {

using namespace ops;

// What products accumulate in: double for every float type (this is the
// reference, the accuracy yardstick: one rounding per result, however long K
// is), and wrapping uint64 for integers (numpy wraps on overflow; signed
// overflow would be undefined in C++).
template <class T>
struct Accumulation {
  using type = double;
  static type load(T v) { return static_cast<double>(toCompute(v)); }
  static T store(type v) { return fromCompute<T>(static_cast<ComputeType<T>>(v)); }
};
template <class T>
  requires std::is_integral_v<T>
struct Accumulation<T> {
  using type = uint64_t;
  static type load(T v) { return static_cast<uint64_t>(static_cast<int64_t>(v)); }
  static T store(type v) { return static_cast<T>(static_cast<int64_t>(v)); }
};

// An element of a as the product reads it, b being of storage type W: as is
// when the two match; in the mixed form (f32 a, bf16 b) rounded to bf16 (to
// nearest even) first, so both factors of every product are bf16 values, as
// a bf16 x bf16 -> f32 GEMM computes them.
template <class T, class W>
typename Accumulation<W>::type loadFactorA(T v) {
  if constexpr (std::is_same_v<T, W>) {
    return Accumulation<T>::load(v);
  } else {
    static_assert(std::is_same_v<T, float> && std::is_same_v<W, BFloat16>, "the only mixed form");
    return Accumulation<W>::load(fromCompute<W>(v));
  }
}

// row[n] = sum_k aRow[k] * b[k, n] for row-major b [K, N], into N accumulators.
template <class T, class W = T>
void productRow(const T* aRow, const W* b, int64_t K, int64_t N, typename Accumulation<W>::type* row) {
  using Acc = Accumulation<W>;
  std::fill(row, row + N, typename Acc::type{0});
  for (int64_t k = 0; k < K; ++k) {
    const auto aik = loadFactorA<T, W>(aRow[k]);
    const W* bRow = b + k * N;
    for (int64_t j = 0; j < N; ++j) row[j] += aik * Acc::load(bRow[j]);
  }
}

// c[m, n] = sum_k a[m, k] * b[k, n] for row-major a [M, K], b [K, N]; `row`
// holds N accumulators.
template <class T>
void multiplyMatrices(const T* a, const T* b, T* c, int64_t M, int64_t K, int64_t N,
                      typename Accumulation<T>::type* row) {
  for (int64_t i = 0; i < M; ++i) {
    productRow(a + i * K, b, K, N, row);
    for (int64_t j = 0; j < N; ++j) c[i * N + j] = Accumulation<T>::store(row[j]);
  }
}

// ---- matmul (a, b, bias?, residual?) {transpose_a, transpose_b, activation}
// y = act(op(a) @ op(b) + bias) + residual: the product with its fused epilogue.

// Inference admits only relu for integers, so the float forms never see them.
template <class A>
A activate(Activation activation, A v) {
  if constexpr (std::is_integral_v<A>) {
    // Integers accumulate as wrapped uint64; the sign is the int64 one.
    return activation == Activation::Relu && static_cast<int64_t>(v) < 0 ? A{0} : v;
  } else {
    switch (activation) {
      case Activation::None: return v;
      case Activation::Relu: return v < A{0} ? A{0} : v;
      case Activation::Gelu: return geluErf(v);
      case Activation::GeluTanh: return geluTanh(v);
      case Activation::Silu: return silu(v);
      case Activation::Tanh: return std::tanh(v);
    }
    return v;
  }
}

// T: the storage type of a, bias, residual and the result; W: that of b.
template <class T, class W>
void matmulLoops(const KernelContext& ctx, Activation activation) {
  using Acc = Accumulation<T>;
  static_assert(std::is_same_v<typename Acc::type, typename Accumulation<W>::type>);
  const Tensor& a = *ctx.input(0);
  const Tensor& b = *ctx.input(1);
  const Tensor* bias = ctx.input(2);
  const Tensor* residual = ctx.input(3);
  Tensor& out = *ctx.outputs[0];
  const bool transA = ctx.attrs.getBool("transpose_a");
  const bool transB = ctx.attrs.getBool("transpose_b");
  const std::vector<int64_t>& sa = a.shape();
  const std::vector<int64_t>& sb = b.shape();
  const size_t ra = sa.size(), rb = sb.size();
  const int64_t M = ra >= 2 ? (transA ? sa.back() : sa[ra - 2]) : 1;
  const int64_t K = transA ? sa[ra - 2] : sa.back();
  const int64_t N = rb >= 2 ? (transB ? sb[rb - 2] : sb.back()) : 1;
  const std::vector<int64_t> batchA(sa.begin(), sa.end() - std::min<ptrdiff_t>(2, static_cast<ptrdiff_t>(ra)));
  const std::vector<int64_t> batchB(sb.begin(), sb.end() - std::min<ptrdiff_t>(2, static_cast<ptrdiff_t>(rb)));
  const size_t batchRank = std::max(batchA.size(), batchB.size());
  const std::vector<int64_t> batchOut(out.shape().begin(), out.shape().begin() + static_cast<ptrdiff_t>(batchRank));
  const int64_t batches = product(batchOut);

  std::vector<typename Acc::type> row(static_cast<size_t>(N));
  std::vector<T> transposedA(transA ? static_cast<size_t>(M * K) : 0);
  std::vector<W> transposedB(transB ? static_cast<size_t>(K * N) : 0);
  int64_t transposedBOffset = -1;  // the batch of b in transposedB (a shared weight is copied once)
  const T* pa = a.data<T>();
  const W* pb = b.data<W>();
  T* pc = out.data<T>();
  const std::vector<int64_t> absent;
  BroadcastWalker epilogue(out.shape(), {bias ? &bias->shape() : &absent,
                                         residual ? &residual->shape() : &absent});
  const bool walkEpilogue = bias || residual;
  BroadcastWalker walk(batchOut, {&batchA, &batchB});
  for (int64_t batch = 0; batch < batches; ++batch, walk.next()) {
    // Transposed operands are copied to row-major [M, K] and [K, N] so the
    // product below always streams contiguous rows.
    const T* A = pa + walk.offset(0) * M * K;
    const W* B = pb + walk.offset(1) * K * N;
    if (transA) {
      for (int64_t k = 0; k < K; ++k)
        for (int64_t i = 0; i < M; ++i) transposedA[static_cast<size_t>(i * K + k)] = A[k * M + i];
      A = transposedA.data();
    }
    if (transB) {
      if (walk.offset(1) != transposedBOffset) {
        for (int64_t j = 0; j < N; ++j)
          for (int64_t k = 0; k < K; ++k) transposedB[static_cast<size_t>(k * N + j)] = B[j * K + k];
        transposedBOffset = walk.offset(1);
      }
      B = transposedB.data();
    }
    for (int64_t i = 0; i < M; ++i) {
      productRow(A + i * K, B, K, N, row.data());
      T* cRow = pc + (batch * M + i) * N;
      if (!walkEpilogue && activation == Activation::None) {
        for (int64_t j = 0; j < N; ++j) cRow[j] = Acc::store(row[static_cast<size_t>(j)]);
        continue;
      }
      for (int64_t j = 0; j < N; ++j) {
        auto v = row[static_cast<size_t>(j)];
        if (bias) v += Acc::load(bias->data<T>()[epilogue.offset(0)]);
        v = activate(activation, v);
        if (residual) v += Acc::load(residual->data<T>()[epilogue.offset(1)]);
        cRow[j] = Acc::store(v);
        if (walkEpilogue) epilogue.next();
      }
    }
  }
}

Status matmulKernel(const KernelContext& ctx) {
  const Tensor& a = *ctx.input(0);
  const std::optional<Activation> activation =
      parseActivation(ctx.attrs.getString("activation", "none"));
  if (!activation) return Status::error("matmul: unknown activation");
  if (a.dtype() != ctx.input(1)->dtype()) {
    matmulLoops<float, BFloat16>(ctx, *activation);  // the one mixed form inference admits
    return Status::ok();
  }
  return visitDType(a.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, bool>) {
      return unsupportedDType(ctx, a.dtype());
    } else {
      matmulLoops<T, T>(ctx, *activation);
      return Status::ok();
    }
  });
}

// ---- matmul_int8 (a, b, scale, bias?, residual?) {group, activation}

// b * scale as f32 (each element rounded once, as the CPU kernel scales it).
Tensor dequantized(const Tensor& b, const Tensor& scale, int64_t group) {
  const int64_t K = b.shape()[0], N = b.shape()[1];
  Tensor out = Tensor::allocateUninitialized(DType::F32, {K, N});
  const int8_t* q = b.data<int8_t>();
  const float* s = scale.data<float>();
  float* w = out.data<float>();
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) w[k * N + n] = static_cast<float>(q[k * N + n]) * s[(k / group) * N + n];
  return out;
}

// The product of a and the dequantized weight, as matmul's f32 form computes
// it (in double, rounded once).
Status matmulInt8Kernel(const KernelContext& ctx) {
  const std::optional<Activation> activation = parseActivation(ctx.attrs.getString("activation", "none"));
  if (!activation) return Status::error("matmul_int8: unknown activation");
  const Tensor weight = dequantized(*ctx.input(1), *ctx.input(2), ctx.attrs.getInt("group", 1));
  const Tensor* inputs[] = {ctx.input(0), &weight, ctx.input(3), ctx.input(4)};
  matmulLoops<float, float>(KernelContext{ctx.def, ctx.attrs, inputs, ctx.outputs}, *activation);
  return Status::ok();
}

// ---- gemm

// Copies `x` [rows, cols] (or its transpose) of storage type T into
// accumulation-typed row-major [cols, rows] / [rows, cols], so the product
// runs on contiguous rows; its elements are read as factors of a product
// with a b of storage type W (loadFactorA).
template <class T, class W = T>
std::vector<typename Accumulation<W>::type> loadMatrix(const Tensor& x, bool transpose) {
  const int64_t rows = x.shape()[0], cols = x.shape()[1];
  std::vector<typename Accumulation<W>::type> out(static_cast<size_t>(rows * cols));
  const T* p = x.data<T>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out[static_cast<size_t>(transpose ? c * rows + r : r * cols + c)] = loadFactorA<T, W>(p[r * cols + c]);
  return out;
}

// T: the storage type of a, c and the result; W: that of b.
template <class T, class W>
void gemmLoops(const KernelContext& ctx) {
  using Acc = Accumulation<T>;
  using A = typename Acc::type;
  static_assert(std::is_same_v<A, typename Accumulation<W>::type>);
  const bool transA = ctx.attrs.getBool("trans_a");
  const bool transB = ctx.attrs.getBool("trans_b");
  const double alpha = ctx.attrs.getFloat("alpha", 1.0);
  const double beta = ctx.attrs.getFloat("beta", 1.0);
  Tensor& out = *ctx.outputs[0];
  const int64_t M = out.shape()[0], N = out.shape()[1];
  const int64_t K = transA ? ctx.input(0)->shape()[0] : ctx.input(0)->shape()[1];
  const std::vector<A> a = loadMatrix<T, W>(*ctx.input(0), transA);
  const std::vector<A> b = loadMatrix<W>(*ctx.input(1), transB);
  std::vector<A> products(static_cast<size_t>(M * N));
  std::vector<A> row(static_cast<size_t>(N));
  multiplyMatrices(a.data(), b.data(), products.data(), M, K, N, row.data());

  // y = alpha * product + beta * c, in the compute type for floats and via
  // double (then ONNX Cast rules) for integers.
  const Tensor* c = ctx.input(2);
  const std::vector<int64_t> noBias;
  BroadcastWalker walk(out.shape(), {c ? &c->shape() : &noBias});
  T* y = out.data<T>();
  for (int64_t i = 0; i < M * N; ++i, walk.next()) {
    const A ab = products[static_cast<size_t>(i)];
    if constexpr (std::is_integral_v<T>) {
      double value = alpha * static_cast<double>(static_cast<int64_t>(ab));
      if (c) value += beta * static_cast<double>(c->data<T>()[walk.offset(0)]);
      y[i] = convertValue<T>(value);
    } else {
      A value = static_cast<A>(alpha) * ab;
      if (c) value += static_cast<A>(beta) * Acc::load(c->data<T>()[walk.offset(0)]);
      y[i] = Acc::store(value);
    }
  }
}

Status gemmKernel(const KernelContext& ctx) {
  const DType dtype = ctx.input(0)->dtype();
  if (dtype != ctx.input(1)->dtype()) {
    gemmLoops<float, BFloat16>(ctx);  // the one mixed form inference admits
    return Status::ok();
  }
  return visitDType(dtype, [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, bool>) {
      return unsupportedDType(ctx, dtype);
    } else {
      gemmLoops<T, T>(ctx);
      return Status::ok();
    }
  });
}

}  // namespace

void addLinalgKernels(ReferenceKernelTable& table) {
  table.add(OpKind::Matmul, matmulKernel);
  table.add(OpKind::MatmulInt8, matmulInt8Kernel);
  table.add(OpKind::Gemm, gemmKernel);
}

}  // namespace kiln
