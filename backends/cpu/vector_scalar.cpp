// The CPU kernels written over vector traits (vector_simd.h,
// attention_block.h) one float at a time: the path for CPUs without AVX2 and
// FMA, with the same polynomials as the vector paths (but attention's exp,
// libm's here: Math::expOrZero).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "backends/cpu/isa_kernels.h"
#include "ir/dtype.h"

namespace kiln::cpu::vec {
namespace {

struct Scalar {
  using F = float;
  using M = bool;
  static constexpr int64_t kWidth = 1;
  static constexpr int kRegisters = 16;

  static F zero() { return 0.0f; }
  static F set1(float v) { return v; }
  static F load(const float* p) { return *p; }
  static F loadN(const float* p, int64_t n, float fill) { return n > 0 ? *p : fill; }
  static F loadMasked(const float* p, M m) { return m ? *p : 0.0f; }
  static F loadInt8(const int8_t* p) { return static_cast<float>(*p); }
  static F loadInt8N(const int8_t* p, int64_t n) { return n > 0 ? static_cast<float>(*p) : 0.0f; }
  static void store(float* p, F v) { *p = v; }
  static void storeN(float* p, F v, int64_t n) {
    if (n > 0) *p = v;
  }
  static void storeBf16(uint16_t* p, F v) { *p = floatToBFloat16(v); }
  static void storeBf16N(uint16_t* p, F v, int64_t n) {
    if (n > 0) storeBf16(p, v);
  }

  static F add(F a, F b) { return a + b; }
  static F sub(F a, F b) { return a - b; }
  static F mul(F a, F b) { return a * b; }
  static F div(F a, F b) { return a / b; }
  static F sqrt(F a) { return std::sqrt(a); }
  static F neg(F a) { return -a; }
  static F abs(F a) { return std::fabs(a); }
  // Fused through double, not std::fma (a slow library call without the
  // instruction): a product of floats is exact in double, so the sum rounds
  // once more to float, as an FMA does (but for rare double-rounding ties).
  static F fmadd(F a, F b, F c) { return static_cast<float>(static_cast<double>(a) * b + c); }
  static F fnmadd(F a, F b, F c) { return static_cast<float>(c - static_cast<double>(a) * b); }
  static F fmsub(F a, F b, F c) { return static_cast<float>(static_cast<double>(a) * b - c); }
  // Two roundings: a plain float multiply and add, several times faster than
  // the exact fmadd where a long sum need not round once a term.
  static F mulAdd(F a, F b, F c) { return a * b + c; }
  static F max(F a, F b) { return a > b ? a : b; }
  static F min(F a, F b) { return a < b ? a : b; }
  static F copySign(F magnitude, F sign) { return std::copysign(magnitude, sign); }
  static F round(F a) { return std::nearbyint(a); }
  static F ldexp(F p, F n) { return std::isnan(n) ? p + n : std::ldexp(p, static_cast<int>(n)); }

  static M lt(F a, F b) { return a < b; }
  static M le(F a, F b) { return a <= b; }
  static M gt(F a, F b) { return a > b; }
  static M isNan(F a) { return std::isnan(a); }
  static F select(M m, F ifSet, F ifClear) { return m ? ifSet : ifClear; }
  static F keepN(F v, int64_t n) { return n > 0 ? v : 0.0f; }
  static M tailMask(int64_t n) { return n > 0; }

  using D = double;
  static void widen(F v, D& low, D& high) { low = high = v; }
  static F narrow(D low, D) { return static_cast<float>(low); }
  static D dset1(double v) { return v; }
  static D dadd(D a, D b) { return a + b; }
  static D dsub(D a, D b) { return a - b; }
  static D dmul(D a, D b) { return a * b; }

  static float reduceMax(F v) { return v; }
  static float reduceSum(F v) { return v; }
  static double sumDouble(F v) { return v; }
  static F sumLanes(const F* v) { return v[0]; }
  template <int R>
  static void storeGroups(F v, float* p, int64_t) {
    *p = v;
  }
};

}  // namespace

const IsaKernels& scalarKernels() {
  static const IsaKernels kernels = isaKernels<Scalar>();
  return kernels;
}

}  // namespace kiln::cpu::vec
