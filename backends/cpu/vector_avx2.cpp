// The CPU kernels written over vector traits (vector_simd.h,
// attention_block.h) on AVX2 with FMA. The target pragma below covers only
// this file's own functions (the standard headers come first, outside it),
// and they run only when activeIsa() says the CPU has these instructions, so
// the binary still runs on CPUs without.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "backends/cpu/attention.h"
#include "backends/cpu/gemm_kernels.h"
#include "backends/cpu/vector_isa.h"

#pragma GCC target("avx2,fma")

#include "backends/cpu/isa_kernels.h"

namespace kiln::cpu::vec {
namespace {

struct Avx2 {
  using F = __m256;
  using M = __m256;
  static constexpr int64_t kWidth = 8;
  static constexpr int kRegisters = 16;

  // All ones in lanes < n.
  static __m256i first(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  // 2^k for integral k in [-126, 127], built from the exponent bits.
  static F pow2(__m256i k) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
  }

  static F zero() { return _mm256_setzero_ps(); }
  static F set1(float v) { return _mm256_set1_ps(v); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static F loadN(const float* p, int64_t n, float fill) {
    const M mask = tailMask(n);
    return select(mask, loadMasked(p, mask), set1(fill));
  }
  static F loadMasked(const float* p, M m) { return _mm256_maskload_ps(p, _mm256_castps_si256(m)); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F loadInt8(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static F loadInt8N(const int8_t* p, int64_t n) {
    int8_t lanes[kWidth] = {};
    for (int64_t i = 0; i < n; ++i) lanes[i] = p[i];
    return loadInt8(lanes);
  }
  static void storeN(float* p, F v, int64_t n) { _mm256_maskstore_ps(p, first(n), v); }
  // Round to nearest even: add 0x7fff plus the lowest kept bit, keep the
  // top half; a NaN keeps its top half, made quiet.
  static __m128i bf16Bits(F v) {
    const __m256i bits = _mm256_castps_si256(v);
    const __m256i high = _mm256_srli_epi32(bits, 16);
    const __m256i lsb = _mm256_and_si256(high, _mm256_set1_epi32(1));
    const __m256i rounded =
        _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7fff)), lsb), 16);
    const __m256i quietNan = _mm256_or_si256(high, _mm256_set1_epi32(0x40));
    const __m256i halves = _mm256_blendv_epi8(rounded, quietNan, _mm256_castps_si256(isNan(v)));
    return _mm_packus_epi32(_mm256_castsi256_si128(halves), _mm256_extracti128_si256(halves, 1));
  }
  static void storeBf16(uint16_t* p, F v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), bf16Bits(v)); }
  static void storeBf16N(uint16_t* p, F v, int64_t n) {
    alignas(16) uint16_t lanes[kWidth];
    _mm_store_si128(reinterpret_cast<__m128i*>(lanes), bf16Bits(v));
    for (int64_t i = 0; i < n; ++i) p[i] = lanes[i];
  }

  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F sqrt(F a) { return _mm256_sqrt_ps(a); }
  static F neg(F a) { return _mm256_xor_ps(a, set1(-0.0f)); }
  static F abs(F a) { return _mm256_andnot_ps(set1(-0.0f), a); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F fnmadd(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
  static F fmsub(F a, F b, F c) { return _mm256_fmsub_ps(a, b, c); }
  static F mulAdd(F a, F b, F c) { return fmadd(a, b, c); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F copySign(F magnitude, F sign) {
    const F signBit = set1(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(signBit, magnitude), _mm256_and_ps(signBit, sign));
  }
  static F round(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // In two factors, each a normal float, so results down to the subnormals
  // round once, as a single scaling would.
  static F ldexp(F p, F n) {
    const __m256i k = _mm256_cvtps_epi32(n);
    const __m256i half = _mm256_srai_epi32(k, 1);
    return mul(mul(p, pow2(half)), pow2(_mm256_sub_epi32(k, half)));
  }
  static F ldexpNormal(F p, F n) { return mul(p, pow2(_mm256_cvtps_epi32(n))); }

  static M lt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M le(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static M gt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static M isNan(F a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static F select(M m, F ifSet, F ifClear) { return _mm256_blendv_ps(ifClear, ifSet, m); }
  static F keepWhere(M m, F v) { return _mm256_and_ps(m, v); }
  static F keepN(F v, int64_t n) { return _mm256_and_ps(v, tailMask(n)); }
  static M tailMask(int64_t n) { return _mm256_castsi256_ps(first(n)); }

  using D = __m256d;
  static void widen(F v, D& low, D& high) {
    low = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    high = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
  }
  static F narrow(D low, D high) { return _mm256_set_m128(_mm256_cvtpd_ps(high), _mm256_cvtpd_ps(low)); }
  static D dset1(double v) { return _mm256_set1_pd(v); }
  static D dadd(D a, D b) { return _mm256_add_pd(a, b); }
  static D dsub(D a, D b) { return _mm256_sub_pd(a, b); }
  static D dmul(D a, D b) { return _mm256_mul_pd(a, b); }

  static float reduceMax(F v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
  }
  static float reduceSum(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  static double sumDouble(F v) {
    const __m256d sum = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                                      _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    const __m128d pair = _mm_add_pd(_mm256_castpd256_pd128(sum), _mm256_extractf128_pd(sum, 1));
    return _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)));
  }

  // Lane i = sum of the lanes of v[i]: two rounds of horizontal adds leave
  // each vector's 128-bit halves summed in place, then the halves meet.
  static F sumLanes(const F* v) {
    const F q0 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    const F q1 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
  }
  template <int R>
  static void storeGroups(F v, float* p, int64_t stride) {
    const __m128 low = _mm256_castps256_ps128(v), high = _mm256_extractf128_ps(v, 1);
    if constexpr (R == 4) {
      _mm_storel_pi(reinterpret_cast<__m64*>(p), low);
      _mm_storeh_pi(reinterpret_cast<__m64*>(p + stride), low);
      _mm_storel_pi(reinterpret_cast<__m64*>(p + 2 * stride), high);
      _mm_storeh_pi(reinterpret_cast<__m64*>(p + 3 * stride), high);
    } else if constexpr (R == 2) {
      _mm_storeu_ps(p, low);
      _mm_storeu_ps(p + stride, high);
    } else {
      _mm256_storeu_ps(p, v);
    }
  }
};

}  // namespace

const IsaKernels& avx2Kernels() {
  static const IsaKernels kernels = isaKernels<Avx2>();
  return kernels;
}

}  // namespace kiln::cpu::vec
