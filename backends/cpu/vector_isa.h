// What the CPU device's own kernels run on one instruction set: row loops
// with no threading, no shapes and no checks (the op-level code in
// vector_kernels.cpp, attention.cpp and gemm.cpp splits the work across
// threads and declines what these do not cover). One table per instruction
// set, each built from the same templates (isa_kernels.h) in its own file:
// vector_scalar.cpp, vector_avx2.cpp, vector_avx512.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/cpu/isa.h"
#include "ir/elementwise_program.h"

namespace kiln::cpu {
struct AttentionProblem;
struct AttentionUnit;
struct Int8Product;
struct Panel;
struct TileEpilogue;
}  // namespace kiln::cpu

namespace kiln::cpu::vec {

// Rows of `cols` floats: y = normalise(x) * scale (+ bias). scale and bias
// are full rows or null; mean and invStd (layer_norm's optional results) get
// one float per row or are null. y may be x.
struct NormRows {
  const float* x = nullptr;
  const float* scale = nullptr;
  const float* bias = nullptr;
  float* y = nullptr;
  float* mean = nullptr;
  float* invStd = nullptr;
  int64_t cols = 0;
  double epsilon = 0.0;
};

// The elementwise operations of a vector program: fused_elementwise's
// (ir/elementwise_program.h), and the plain ops (add, gelu, ...) as
// one-instruction programs.
using VectorOp = ElementOp;

// An instruction argument: operand stream `index`, the value of instruction
// `index`, or a literal.
struct VectorArg {
  enum class Kind : uint8_t { Stream, Value, Literal };
  Kind kind = Kind::Literal;
  uint8_t index = 0;
  float literal = 0.0f;
};

struct VectorInstruction {
  VectorOp op = VectorOp::Add;
  uint8_t arity = 1;
  VectorArg args[2];
};

// How an operand meets the rows of the result. Contiguous: row r's elements
// start at data[(r * rowLength) % period]. PerRow: one value per row,
// data[(r * rowLength / repeat) % period] (a scalar has period 1).
struct VectorStream {
  enum class Kind : uint8_t { Contiguous, PerRow };
  Kind kind = Kind::Contiguous;
  const float* data = nullptr;
  int64_t period = 1;
  int64_t repeat = 1;
};

inline constexpr int kMaxInstructions = 32;
inline constexpr int kMaxStreams = 16;

// A program over rows of `rowLength` floats of `out`; the last instruction
// is the result. out may alias a Contiguous stream of the result's size.
struct VectorProgram {
  const VectorInstruction* code = nullptr;
  int length = 0;
  const VectorStream* streams = nullptr;
  int numStreams = 0;
  float* out = nullptr;
  int64_t rowLength = 0;
};

// Each function handles rows [begin, end), the program elements [begin, end)
// of its result.
struct IsaKernels {
  void (*rmsNorm)(const NormRows& rows, int64_t begin, int64_t end);
  void (*layerNorm)(const NormRows& rows, int64_t begin, int64_t end);
  // Softmax over rows of `cols`; y may be x.
  void (*softmax)(const float* x, float* y, int64_t cols, int64_t begin, int64_t end);
  // y[r, j] = silu(x[r, j]) * x[r, half + j]: rows of 2*half packed gate | up.
  void (*swigluPacked)(const float* x, float* y, int64_t half, int64_t begin, int64_t end);
  void (*program)(const VectorProgram& program, int64_t begin, int64_t end);
  // One attention unit on one thread (attention.h).
  void (*attendUnit)(const AttentionProblem& p, const AttentionUnit& unit, float* scratch);
  // The matmul's single-row kernel and the bf16 rounding of its a
  // (gemm_kernels.h).
  void (*rowBlocks)(const float* a, const Panel* panels, size_t count, int64_t first, int64_t last, float* sums);
  // Blocks of rows against packed f32 columns (gemm_kernels.h's
  // TileBlockFn); null where oneDNN runs them instead (not AVX-512).
  void (*tileBlock)(const float* a, int64_t lda, int64_t rows, const Panel* panels, size_t count, int64_t block,
                    const TileEpilogue& epilogue, float* sums);
  void (*roundToBf16)(const float* src, uint16_t* dst, int64_t n);
  // matmul_int8's kernels (gemm_kernels.h); int8Tiles null where tileBlock is.
  void (*int8Rows)(const Int8Product& p, int64_t rows, int64_t kBegin, int64_t kEnd, float* sums);
  void (*int8Finish)(const Int8Product& p, int64_t rows, const float* sums, int64_t parts);
  void (*int8Tiles)(const Int8Product& p, int64_t rowBegin, int64_t rowEnd, int64_t block);
};

const IsaKernels& scalarKernels();
const IsaKernels& avx2Kernels();
const IsaKernels& avx512Kernels();

inline const IsaKernels& kernelsFor(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return avx512Kernels();
    case Isa::Avx2: return avx2Kernels();
    case Isa::Scalar: break;
  }
  return scalarKernels();
}

}  // namespace kiln::cpu::vec
