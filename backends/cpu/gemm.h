// The CPU backend's matmul: oneDNN's matmul primitive, chosen by measurement
// (docs/performance.md), with the op's epilogue (bias, activation, residual)
// fused: oneDNN post-ops, or the residual added as a thread's share of the
// result is written. f32 products, and f32 a times a bf16 weight (the
// `--precision bf16` form: a rounded to bf16, f32 accumulation and result).
//
// Constant weights are packed once into the blocked layout oneDNN picks (one
// layout per weight, whatever M), after which their source pages leave the
// process's resident set (releaseCleanPages). f32 products accumulate in
// K-chunks of kGemmChunkK, each summed into the result, which keeps the
// rounding error at or below ONNX Runtime's (its MLAS sums K-blocks of 256 the
// same way; oneDNN alone runs the whole K through one accumulator). Kernels
// of ours run on the same packed layout: a single row against a packed f32
// weight (decode), and on AVX-512 several rows (tiles of 6 rows by 64
// columns, chains of 64 rows of b, the epilogue written by the last chain). The reference kernel (backends/reference) stays the accuracy yardstick
// and runs whatever this path declines.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "backends/cpu/isa.h"
#include "runtime/kernel.h"

namespace kiln::cpu {

// The K-chunk of f32 products (rows of b accumulated before being summed
// into the result).
inline constexpr int64_t kGemmChunkK = 128;

// Whether the CPU device runs matmuls here: yes unless KILN_GEMM=reference
// (which keeps the reference kernel, for tests and debugging).
bool onednnMatmulFromEnv();

class Gemm {
 public:
  // `isa` picks the vector code of our own kernels (the single-row product,
  // the bf16 rounding of a); oneDNN picks its own.
  explicit Gemm(Isa isa = activeIsa());
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // Runs a `matmul` op (operands a, b, bias?, residual? ; transpose_a,
  // transpose_b, activation): f32 a, b f32 or bf16, f32 result. `bIsWeight`:
  // b is a constant whose bytes stay unchanged and alive until
  // forgetWeight(), so it is packed once (and its clean pages released) for
  // every later call and every session sharing this object. Threads:
  // numThreads(), or one for a small product. Returns nullopt when the op is
  // outside this path (another dtype, broadcast batch dims, a bias or
  // residual that is not a row / the full result); the caller then runs the
  // reference kernel. Safe to call from several threads at once.
  std::optional<Status> runMatmul(const KernelContext& ctx, bool bIsWeight);

  // Drops the packed forms of the weight at `data` (its bytes may change
  // or be freed after this).
  void forgetWeight(const void* data);

  // Packed weights held (for tests).
  size_t packedWeights() const;

 private:
  struct State;
  Isa isa_;
  std::unique_ptr<State> state_;
};

// Drops from this process's resident set the whole pages inside
// [data, data + bytes) that read back unchanged once dropped: pages of a file
// (or shared) mapping this process never wrote, per /proc/self/pagemap; they
// reload from the page cache if touched again. Written pages of a private
// mapping, and anonymous memory, stay. Returns the bytes released (0 where
// /proc/self/pagemap cannot be read).
size_t releaseCleanPages(const void* data, size_t bytes);

// dst[i] = src[i] rounded to bf16 (to nearest even; NaN stays a quiet NaN),
// with `isa`'s vector code (gemm_simd.h): AVX-512 uses the CPU's
// vcvtneps2bf16 where it has AVX512-BF16 (which flushes f32 denormals to
// zero).
void roundToBf16(const float* src, uint16_t* dst, int64_t n, Isa isa);

}  // namespace kiln::cpu
