// The attention unit kernel (attention_block.h) with AVX2 and FMA: 8 floats
// a vector, score tiles of 4x2, 2x4 or 1x8 (rows x keys).
#include <immintrin.h>

#include <cstdint>

#define KILN_ATTENTION_TARGET __attribute__((target("avx2,fma")))
#include "backends/cpu/attention_block.h"

namespace kiln::cpu {
namespace {

#define KILN_AVX2 KILN_ATTENTION_TARGET __attribute__((always_inline)) static inline

struct Avx2Ops {
  using V = __m256;
  using Mask = __m256i;
  static constexpr int W = 8;
  static constexpr int kValueColumns = 2;  // 4 rows x 2 vectors of 16 registers

  KILN_AVX2 V zero() { return _mm256_setzero_ps(); }
  KILN_AVX2 V broadcast(float x) { return _mm256_set1_ps(x); }
  KILN_AVX2 V load(const float* p) { return _mm256_loadu_ps(p); }
  KILN_AVX2 V loadMasked(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  KILN_AVX2 Mask tailMask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  KILN_AVX2 void store(float* p, V x) { _mm256_storeu_ps(p, x); }
  KILN_AVX2 V add(V a, V b) { return _mm256_add_ps(a, b); }
  KILN_AVX2 V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  KILN_AVX2 V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  KILN_AVX2 V max(V a, V b) { return _mm256_max_ps(a, b); }
  KILN_AVX2 V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }

  KILN_AVX2 float reduceMax(V x) {
    __m128 v = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    v = _mm_max_ps(v, _mm_movehl_ps(v, v));
    v = _mm_max_ss(v, _mm_shuffle_ps(v, v, 1));
    return _mm_cvtss_f32(v);
  }
  KILN_AVX2 float reduceSum(V x) {
    __m128 v = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_shuffle_ps(v, v, 1));
    return _mm_cvtss_f32(v);
  }

  // As Avx512Ops::exp, with 2^n built in the exponent bits.
  KILN_AVX2 V exp(V x) {
    const V lowest = _mm256_set1_ps(-87.3365478515625f);
    const V clamped = _mm256_max_ps(x, lowest);
    const V n = _mm256_round_ps(_mm256_mul_ps(clamped, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), clamped);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    V poly = _mm256_set1_ps(1.9875691500e-4f);
    poly = _mm256_fmadd_ps(poly, r, _mm256_set1_ps(1.3981999507e-3f));
    poly = _mm256_fmadd_ps(poly, r, _mm256_set1_ps(8.3334519073e-3f));
    poly = _mm256_fmadd_ps(poly, r, _mm256_set1_ps(4.1665795894e-2f));
    poly = _mm256_fmadd_ps(poly, r, _mm256_set1_ps(1.6666665459e-1f));
    poly = _mm256_fmadd_ps(poly, r, _mm256_set1_ps(5.0000001201e-1f));
    poly = _mm256_fmadd_ps(poly, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
    const __m256i exponent = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    const V result = _mm256_mul_ps(poly, _mm256_castsi256_ps(exponent));
    return _mm256_andnot_ps(_mm256_cmp_ps(x, lowest, _CMP_LT_OQ), result);
  }

  // Lane i = sum of the lanes of a[i]: two rounds of horizontal adds leave
  // each vector's 128-bit halves summed in place, then the halves meet.
  KILN_AVX2 V sumLanes(const V* a) {
    const V q0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    const V q1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
  }

  template <int R>
  KILN_AVX2 void storeTile(V sums, float* dst, int64_t stride) {
    const __m128 lo = _mm256_castps256_ps128(sums), hi = _mm256_extractf128_ps(sums, 1);
    if constexpr (R == 4) {
      _mm_storel_pi(reinterpret_cast<__m64*>(dst), lo);
      _mm_storeh_pi(reinterpret_cast<__m64*>(dst + stride), lo);
      _mm_storel_pi(reinterpret_cast<__m64*>(dst + 2 * stride), hi);
      _mm_storeh_pi(reinterpret_cast<__m64*>(dst + 3 * stride), hi);
    } else if constexpr (R == 2) {
      _mm_storeu_ps(dst, lo);
      _mm_storeu_ps(dst + stride, hi);
    } else {
      _mm256_storeu_ps(dst, sums);
    }
  }
};

#undef KILN_AVX2

}  // namespace

KILN_ATTENTION_TARGET void attendUnitAvx2(const AttentionProblem& p, const AttentionUnit& unit, float* scratch) {
  attendUnit<Avx2Ops>(p, unit, scratch);
}

}  // namespace kiln::cpu
