// Every kernel of the CPU device's own for one instruction set V, as the
// table kernelsFor(isa) returns (vector_isa.h): vector_scalar.cpp,
// vector_avx2.cpp and vector_avx512.cpp each build theirs with isaKernels
// under their own target pragma.
#pragma once

#include "backends/cpu/attention_block.h"
#include "backends/cpu/gemm_simd.h"
#include "backends/cpu/int8_gemm_simd.h"
#include "backends/cpu/vector_isa.h"
#include "backends/cpu/vector_simd.h"

namespace kiln::cpu::vec {
namespace {

template <class V>
IsaKernels isaKernels() {
  using K = Kernels<V>;
  return {&K::rmsNorm,       &K::layerNorm,  &K::softmax,   &K::swigluPacked, &K::program,
          &attendUnit<V>, &rowBlocks<V>, nullptr, &roundToBf16<V>, &int8Rows<V>, &int8Finish<V>, nullptr};
}

}  // namespace
}  // namespace kiln::cpu::vec
