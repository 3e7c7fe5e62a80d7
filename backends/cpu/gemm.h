// The CPU backend's fast f32 matmul: oneDNN's matmul primitive, chosen by
// measurement (docs/performance.md), with the op's epilogue (bias,
// activation, residual) as oneDNN post-ops. Weights are reordered once into
// the blocked layout oneDNN picks and cached; the registry reference kernel
// stays the accuracy yardstick and runs whatever this path declines.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ir/op_registry.h"

namespace kiln::cpu {

// Threads for the GEMM library: KILN_NUM_THREADS when set to a positive
// integer, else 2.
int gemmThreadsFromEnv();
// Whether the CPU device runs f32 matmuls here: KILN_GEMM=onednn (the
// default, KILN_GEMM unset or "reference", keeps the reference kernel).
bool onednnMatmulFromEnv();

class Gemm {
 public:
  explicit Gemm(int threads = gemmThreadsFromEnv());
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  int threads() const { return threads_; }

  // Runs a `matmul` op (operands a, b, bias?, residual? ; transpose_a,
  // transpose_b, activation) on f32 tensors. `bIsWeight`: b is a constant
  // that outlives the call, so its packed copy is cached and reused by every
  // later call (and every session sharing this object). Returns nullopt when
  // the op is outside this path (another dtype, broadcast batch dims, a bias
  // or residual that is not a row / full tensor); the caller then runs the
  // reference kernel.
  std::optional<Status> runMatmul(const KernelContext& ctx, bool bIsWeight);

  // Drops the packed forms of the weight at `data` (its bytes may change
  // or be freed after this).
  void forgetWeight(const void* data);

  // Packed weights held (for tests).
  size_t packedWeights() const;

 private:
  struct State;
  int threads_;
  std::unique_ptr<State> state_;
};

}  // namespace kiln::cpu
