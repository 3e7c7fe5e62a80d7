// The matmul kernels of gemm_kernels.h, written once over the vector traits
// V of vector_simd.h and compiled once per instruction set with the vector
// kernels (vector_scalar.cpp, vector_avx2.cpp, vector_avx512.cpp). Templates
// over V in an anonymous namespace, so the copies never meet at link time.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/cpu/gemm_kernels.h"
#include "backends/cpu/vector_simd.h"

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

template <class V>
void roundToBf16(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + V::kWidth <= n; i += V::kWidth) V::storeBf16(dst + i, V::load(src + i));
  if (i < n) V::storeBf16N(dst + i, V::loadN(src + i, n - i, 0.0f), n - i);
}

}  // namespace
}  // namespace kiln::cpu
