// matmul_int8's kernels (gemm_kernels.h's Int8RowsFn and Int8TilesFn),
// written once over the vector traits of vector_simd.h and compiled once per
// instruction set with the other matmul kernels (gemm_simd.h).
#pragma once

#include <algorithm>
#include <cstdint>

#include "backends/cpu/gemm_kernels.h"
#include "backends/cpu/gemm_simd.h"
#include "backends/cpu/vector_simd.h"

namespace kiln::cpu {
namespace {

// sums[0, count) += x[0..R) * b's rows [k, k + R) over `count` columns, the
// rows scaled by `scale` where kScaled (else the caller scales the sums).
template <class V, int R, bool kScaled>
__attribute__((always_inline)) inline void addRows(const float* x, const int8_t* q, int64_t ldq, const float* scale,
                                                   int64_t count, float* sums) {
  using F = typename V::F;
  F xv[R];
  for (int r = 0; r < R; ++r) xv[r] = V::set1(x[r]);
  int64_t j = 0;
  for (; j + V::kWidth <= count; j += V::kWidth) {
    F sum = V::load(sums + j);
    for (int r = 0; r < R; ++r) {
      const F w = V::loadInt8(q + r * ldq + j);
      sum = V::mulAdd(xv[r], kScaled ? V::mul(w, V::load(scale + j)) : w, sum);
    }
    V::store(sums + j, sum);
  }
  if (j < count) {
    const int64_t n = count - j;
    F sum = V::loadN(sums + j, n, 0.0f);
    for (int r = 0; r < R; ++r) {
      const F w = V::loadInt8N(q + r * ldq + j, n);
      sum = V::mulAdd(xv[r], kScaled ? V::mul(w, V::loadN(scale + j, n, 0.0f)) : w, sum);
    }
    V::storeN(sums + j, sum, n);
  }
}

// gemm_kernels.h's Int8RowsFn. With one group (a scale per column) the rows
// are summed unscaled and int8Finish scales the sums.
template <class V>
void int8Rows(const Int8Product& p, int64_t rows, int64_t kBegin, int64_t kEnd, float* sums) {
  const bool oneGroup = p.group >= p.K;
  for (int64_t column = 0; column < p.N; column += kInt8RowColumns) {
    const int64_t count = std::min(kInt8RowColumns, p.N - column);
    for (int64_t row = 0; row < rows; ++row) {
      const float* x = p.a + row * p.lda;
      float* sum = sums + row * p.N + column;
      int64_t k = kBegin;
      while (k < kEnd) {
        const int8_t* q = p.b + k * p.N + column;
        const int64_t step =
            k + kInt8RowStep <= kEnd && (oneGroup || k / p.group == (k + kInt8RowStep - 1) / p.group) ? kInt8RowStep : 1;
        if (oneGroup) {
          if (step > 1) addRows<V, kInt8RowStep, false>(x + k, q, p.N, nullptr, count, sum);
          else addRows<V, 1, false>(x + k, q, p.N, nullptr, count, sum);
        } else {
          const float* scale = p.scale + k / p.group * p.N + column;
          if (step > 1) addRows<V, kInt8RowStep, true>(x + k, q, p.N, scale, count, sum);
          else addRows<V, 1, true>(x + k, q, p.N, scale, count, sum);
        }
        k += step;
      }
    }
  }
}

// gemm_kernels.h's Int8FinishFn.
template <class V>
void int8Finish(const Int8Product& p, int64_t rows, const float* sums, int64_t parts) {
  using K = vec::Kernels<V>;
  using F = typename V::F;
  const int64_t size = rows * p.N;
  for (int64_t row = 0; row < rows; ++row)
    for (int64_t j = 0; j < p.N; j += V::kWidth) {
      const int64_t n = std::min(V::kWidth, p.N - j), at = row * p.N + j;
      F v = K::part(sums, at, n);
      for (int64_t part = 1; part < parts; ++part) v = V::add(v, K::part(sums + part * size, at, n));
      if (p.group >= p.K) v = V::mul(v, K::part(p.scale, j, n));
      if (p.bias) v = V::add(v, K::part(p.bias, j, n));
      if (p.activation != Activation::None) v = activated<V>(p.activation, v);
      if (p.residual) v = V::add(v, K::part(p.residual, at, n));
      K::put(p.out, at, n, v);
    }
}

// chain[r][0, 64) = b's rows [k0, k0 + rows) of the columns [column, column +
// width) times their scales; columns past width 0.
template <class V>
void scaleChain(const Int8Product& p, int64_t k0, int64_t rows, int64_t column, int64_t width, float* chain) {
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* q = p.b + (k0 + r) * p.N + column;
    const float* scale = p.scale + (k0 + r) / p.group * p.N + column;
    float* to = chain + r * kColumnBlock;
    for (int64_t j = 0; j < kColumnBlock; j += V::kWidth) {
      const int64_t n = std::clamp<int64_t>(width - j, 0, V::kWidth);
      V::store(to + j, n == V::kWidth ? V::mul(V::loadInt8(q + j), V::load(scale + j))
                                      : V::mul(V::loadInt8N(q + j, n), V::loadN(scale + j, n, 0.0f)));
    }
  }
}

template <class V>
void int8Tiles(const Int8Product& p, int64_t rowBegin, int64_t rowEnd, int64_t block) {
  alignas(64) float chain[kTileChainRows * kColumnBlock];
  alignas(64) float sums[kTileBlockRows * kColumnBlock];
  const int64_t column = block * kColumnBlock, width = std::min(kColumnBlock, p.N - column);
  for (int64_t r0 = rowBegin; r0 < rowEnd; r0 += kTileBlockRows) {
    const int64_t rows = std::min(kTileBlockRows, rowEnd - r0);
    const TileEpilogue epilogue{p.bias ? p.bias + column : nullptr, p.activation,
                                p.residual ? p.residual + r0 * p.N + column : nullptr, p.out + r0 * p.N + column,
                                p.N, width};
    for (int64_t k0 = 0; k0 < p.K; k0 += kTileChainRows) {
      const int64_t k = std::min(kTileChainRows, p.K - k0);
      scaleChain<V>(p, k0, k, column, width, chain);
      const float* x = p.a + r0 * p.lda + k0;
      const TileEpilogue* last = k0 + k == p.K ? &epilogue : nullptr;
      int64_t r = 0;
      for (; r + kTileRows <= rows; r += kTileRows)
        tileChunk<V, kTileRows>(x + r * p.lda, p.lda, chain, k, sums + r * kColumnBlock, k0 == 0, last, r, false);
      tileTail<V>(x + r * p.lda, p.lda, rows - r, chain, k, sums + r * kColumnBlock, k0 == 0, last, r, false);
    }
  }
}

}  // namespace
}  // namespace kiln::cpu
