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

// Below these sizes a product runs on the calling thread alone: an OpenMP
// fork/join (a few microseconds) costs more than the other cores give back
// (docs/performance.md). Several rows: flops (2 batch M N K); a single row
// against a weight: elements of b.
inline constexpr int64_t kParallelFlops = int64_t{1} << 20;
inline constexpr int64_t kParallelRowWeights = int64_t{1} << 18;

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

// Rows of a tile: 4 * 6 accumulators, 4 vectors of b and one of a fill 29
// of AVX-512's 32 registers.
inline constexpr int kTileRows = 6;

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

// matmul_int8's product: f32 a times an int8 weight b [K, N] whose row k
// scales by scale[k / group] per column, then act(+ bias) + residual.
struct Int8Product {
  const float* a = nullptr;  // rows `lda` floats apart
  int64_t lda = 0;
  const int8_t* b = nullptr;
  const float* scale = nullptr;
  int64_t K = 0, N = 0, group = 0;
  const float* bias = nullptr;      // N floats, or null
  Activation activation = Activation::None;
  const float* residual = nullptr;  // like out, or null; may be out
  float* out = nullptr;             // rows of N floats
};

// Columns of b int8Rows sums at a time (16 KiB of sums a row of a, in L1).
inline constexpr int64_t kInt8RowColumns = 4096;

// Rows of b int8Rows takes together (the sums read and written once for
// four rows), and the multiple of rows each thread's range of them is.
inline constexpr int64_t kInt8RowStep = 4;

// sums[rows][N] += a's rows [0, rows) times b's rows [kBegin, kEnd), scaled,
// over all the columns (unscaled where b has one group: int8Finish scales).
// A thread that takes a range of b's rows reads them as one contiguous
// stream, which the prefetchers follow: the split for a few rows (decode).
using Int8RowsFn = void (*)(const Int8Product& p, int64_t rows, int64_t kBegin, int64_t kEnd, float* sums);

// out = act(the sum of the `parts` partial sums (rows x N floats each, one
// after the other) + bias) + residual, for int8Rows' sums.
using Int8FinishFn = void (*)(const Int8Product& p, int64_t rows, const float* sums, int64_t parts);

// Rows [rowBegin, rowEnd) of the product over the 64-column block `block`:
// K-chains of b's block scaled into f32 once and read by every tile of up to
// kTileBlockRows rows, as tileBlock reads packed f32 columns. AVX-512 only;
// null elsewhere.
using Int8TilesFn = void (*)(const Int8Product& p, int64_t rowBegin, int64_t rowEnd, int64_t block);

}  // namespace kiln::cpu
