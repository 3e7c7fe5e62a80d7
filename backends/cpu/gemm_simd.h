// The matmul kernels of gemm_kernels.h, written once over the vector traits
// V of vector_simd.h and compiled once per instruction set with the vector
// kernels (vector_scalar.cpp, vector_avx2.cpp, vector_avx512.cpp). Templates
// over V in an anonymous namespace, so the copies never meet at link time.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/cpu/gemm_kernels.h"
#include "backends/cpu/vector_simd.h"
#include "ir/activation.h"

namespace kiln::cpu {
namespace {

// sum[0, 4 W) += x @ w for `rows` rows of w (64 floats apart): even and odd
// rows in accumulators of their own (chains half as long), added at the end.
// Four vectors of columns keep the 8 accumulators in registers on any V.
// Always inlined: GCC kept the AVX-512 copy out of line, its accumulators
// going through the stack on every call.
template <class V>
__attribute__((always_inline)) inline void addRowPass(const float* x, const float* w, int64_t rows, float* sum) {
  using F = typename V::F;
  constexpr int64_t W = V::kWidth;
  F even[4], odd[4];
  for (int i = 0; i < 4; ++i) even[i] = odd[i] = V::zero();
  int64_t k = 0;
  for (; k + 2 <= rows; k += 2) {
    const float* row = w + k * kColumnBlock;
    const F xe = V::set1(x[k]), xo = V::set1(x[k + 1]);
    for (int i = 0; i < 4; ++i) {
      even[i] = V::mulAdd(xe, V::load(row + i * W), even[i]);
      odd[i] = V::mulAdd(xo, V::load(row + kColumnBlock + i * W), odd[i]);
    }
  }
  if (k < rows) {
    const F xe = V::set1(x[k]);
    for (int i = 0; i < 4; ++i) even[i] = V::mulAdd(xe, V::load(w + k * kColumnBlock + i * W), even[i]);
  }
  for (int i = 0; i < 4; ++i) V::store(sum + i * W, V::add(V::load(sum + i * W), V::add(even[i], odd[i])));
}

// The single-row kernel: chunk after chunk (so each thread streams its
// contiguous share of every chunk), each block's chunk summed as
// addRowPass does and then added to its sum: oneDNN's chunked order.
template <class V>
void rowBlocks(const float* a, const Panel* panels, size_t count, int64_t first, int64_t last, float* sums) {
  constexpr int64_t kPass = 4 * V::kWidth;
  for (int64_t j = 0; j < (last - first) * kColumnBlock; ++j) sums[j] = 0.0f;
  for (size_t c = 0; c < count; ++c) {
    const Panel& p = panels[c];
    for (int64_t block = first; block < last; ++block)
      for (int64_t column = 0; column < kColumnBlock; column += kPass)
        addRowPass<V>(a + p.k0, p.data + block * p.paddedRows * kColumnBlock + column, p.rows,
                      sums + (block - first) * kColumnBlock + column);
  }
}

// Rows of b ahead that a block's first tile asks the cache for.
inline constexpr int64_t kFetchAhead = 16;

// act(x) for a matmul's activation, as the vector kernels compute it.
template <class V>
typename V::F activated(Activation activation, typename V::F x) {
  using K = vec::Kernels<V>;
  switch (activation) {
    case Activation::Relu: return K::template unary<vec::VectorOp::Relu>(x);
    case Activation::Gelu: return K::template unary<vec::VectorOp::Gelu>(x);
    case Activation::GeluTanh: return K::template unary<vec::VectorOp::GeluTanh>(x);
    case Activation::Silu: return K::template unary<vec::VectorOp::Silu>(x);
    case Activation::Tanh: return K::template unary<vec::VectorOp::Tanh>(x);
    case Activation::None: break;
  }
  return x;
}

// MR rows of a @ `rows` rows of a 64-column block (rows 64 floats apart),
// in 4 * MR accumulators, each b row loaded once for MR rows; then added to
// the running sums[MR][64] (the first chain stores instead). The last chain
// (`last` set) adds the bias to its product first, as oneDNN's bias and sum
// post-ops did, and writes act(sum) + residual to the result.
template <class V, int MR>
__attribute__((always_inline)) inline void tileChunk(const float* a, int64_t lda, const float* b, int64_t rows,
                                                     float* sums, bool first, const TileEpilogue* last,
                                                     int64_t row, bool fetch) {
  using F = typename V::F;
  constexpr int64_t W = V::kWidth;
  static_assert(4 * W == kColumnBlock, "a tile spans one column block in four vectors");
  F acc[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < 4; ++j) acc[i][j] = V::zero();
  for (int64_t k = 0; k < rows; ++k) {
    const float* bRow = b + k * kColumnBlock;
    if (fetch)
      for (int c = 0; c < 4; ++c) __builtin_prefetch(bRow + kFetchAhead * kColumnBlock + c * 16);
    const F b0 = V::load(bRow), b1 = V::load(bRow + W), b2 = V::load(bRow + 2 * W), b3 = V::load(bRow + 3 * W);
    for (int i = 0; i < MR; ++i) {
      const F x = V::set1(a[i * lda + k]);
      acc[i][0] = V::mulAdd(x, b0, acc[i][0]);
      acc[i][1] = V::mulAdd(x, b1, acc[i][1]);
      acc[i][2] = V::mulAdd(x, b2, acc[i][2]);
      acc[i][3] = V::mulAdd(x, b3, acc[i][3]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < 4; ++j) {
      float* sum = sums + i * kColumnBlock + j * W;
      using K = vec::Kernels<V>;
      const int64_t column = j * W, n = last ? std::min(W, last->width - column) : W;  // result columns here
      F v = acc[i][j];
      if (last && last->bias && n > 0) v = V::add(v, K::part(last->bias, column, n));
      if (!first) v = V::add(v, V::load(sum));
      if (!last) {
        V::store(sum, v);
        continue;
      }
      if (n <= 0) continue;
      if (last->activation != Activation::None) v = activated<V>(last->activation, v);
      const int64_t at = (row + i) * last->ld + column;
      if (last->residual) v = V::add(v, K::part(last->residual, at, n));
      K::put(last->out, at, n, v);
    }
}

// The rows of a tail tile, fewer than kTileRows.
template <class V>
void tileTail(const float* a, int64_t lda, int64_t rows, const float* b, int64_t k, float* sums, bool first,
              const TileEpilogue* last, int64_t row, bool fetch) {
  switch (rows) {
    case 1: return tileChunk<V, 1>(a, lda, b, k, sums, first, last, row, fetch);
    case 2: return tileChunk<V, 2>(a, lda, b, k, sums, first, last, row, fetch);
    case 3: return tileChunk<V, 3>(a, lda, b, k, sums, first, last, row, fetch);
    case 4: return tileChunk<V, 4>(a, lda, b, k, sums, first, last, row, fetch);
    case 5: return tileChunk<V, 5>(a, lda, b, k, sums, first, last, row, fetch);
    default: return;
  }
}

// Rows of b a tile accumulates in registers before adding them to its sums:
// half a K-chunk, so chains are half as long (the single-row kernel's even
// and odd rows do the same), at the cost of one more pass over the sums.
inline constexpr int64_t kTileChainRows = 64;

// gemm_kernels.h's TileBlockFn: chunk after chunk, each one's block (in the
// L1 cache) read by every tile of the rows.
template <class V>
void tileBlock(const float* a, int64_t lda, int64_t rows, const Panel* panels, size_t count, int64_t block,
               const TileEpilogue& epilogue, float* sums) {
  static_assert(kTileRows == 6, "tileTail covers the rows below kTileRows");
  for (size_t c = 0; c < count; ++c) {
    const Panel& p = panels[c];
    for (int64_t k0 = 0; k0 < p.rows; k0 += kTileChainRows) {
      const int64_t k = std::min(kTileChainRows, p.rows - k0);
      const float* b = p.data + (block * p.paddedRows + k0) * kColumnBlock;
      const float* x = a + p.k0 + k0;
      const bool first = c == 0 && k0 == 0;
      const TileEpilogue* last = c + 1 == count && k0 + k == p.rows ? &epilogue : nullptr;
      int64_t r = 0;
      for (; r + kTileRows <= rows; r += kTileRows)
        tileChunk<V, kTileRows>(x + r * lda, lda, b, k, sums + r * kColumnBlock, first, last, r, r == 0);
      tileTail<V>(x + r * lda, lda, rows - r, b, k, sums + r * kColumnBlock, first, last, r, r == 0);
    }
  }
}

template <class V>
void roundToBf16(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + V::kWidth <= n; i += V::kWidth) V::storeBf16(dst + i, V::load(src + i));
  if (i < n) V::storeBf16N(dst + i, V::loadN(src + i, n - i, 0.0f), n - i);
}

}  // namespace
}  // namespace kiln::cpu
