// The CPU matmul's own kernels (gemm.h): the single-row product on packed
// f32 columns and the bf16 rounding of a. They are templates over the vector
// traits of vector_simd.h (gemm_simd.h), built once per instruction set in
// vector_scalar.cpp, vector_avx2.cpp and vector_avx512.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ir/activation.h"

namespace kiln::cpu {

// oneDNN's packed layouts here (f32 BA16a64b, bf16 BA16a64b2a) keep b in
// blocks of 64 columns, each block's rows contiguous: the single-row kernel
// reads them, and a block range is a packed b of its own.
inline constexpr int64_t kColumnBlock = 64;

// One packed K-chunk of an f32 b as the single-row kernel reads it: for each
// block of 64 columns, `paddedRows` rows of 64 floats, the first `rows` real.
struct Panel {
  const float* data = nullptr;
  int64_t k0 = 0, rows = 0, paddedRows = 0;
};

// sums[j] = a @ b's column j for the 64-column blocks [first, last) of the
// `count` chunks at `panels` (sums holds (last - first) * 64 floats).
// One per instruction set (gemm_simd.h), in the table kernelsFor(isa)
// returns (vector_isa.h), beside the bf16 rounding of a (gemm.h's
// roundToBf16).
using RowBlocksFn = void (*)(const float* a, const Panel* panels, size_t count, int64_t first, int64_t last,
                             float* sums);

// Rows of a product a thread takes at a time in tileBlock: with one 64-column
// block of a chunk (32 KiB) they stay in its L1 and L2 caches.
inline constexpr int64_t kTileBlockRows = 48;

// What the last K-chunk of a tile block writes: out = act(sums + bias) +
// residual over the block's `width` (<= 64) columns.
struct TileEpilogue {
  const float* bias = nullptr;      // at the block's first column, or null
  Activation activation = Activation::None;
  const float* residual = nullptr;  // at the block's first row and column, `ld` floats a row; may be out
  float* out = nullptr;             // at the block's first row and column, `ld` floats a row
  int64_t ld = 0, width = 0;
};

// The product of a's rows [0, rows) (rows <= kTileBlockRows; `lda` floats
// apart, read in place) and the 64-column block `block` of the `count`
// chunks at `panels`, with `epilogue`; `sums` holds the running sums
// (rows x 64 floats). Each chunk is accumulated in registers over its rows of
// b (in two halves) and then added to the sums: the chunked order that keeps
// the error below ONNX Runtime's. Only where the instruction set has the
// registers for it (AVX-512); null elsewhere.
using TileBlockFn = void (*)(const float* a, int64_t lda, int64_t rows, const Panel* panels, size_t count,
                             int64_t block, const TileEpilogue& epilogue, float* sums);

}  // namespace kiln::cpu
