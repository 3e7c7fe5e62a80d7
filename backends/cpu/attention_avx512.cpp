// The attention unit kernel (attention_block.h) with AVX-512 (F, BW, VL, DQ)
// and FMA: 16 floats a vector, score tiles of 4x4, 2x8 or 1x16 (rows x keys).
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps(), a self-initialised
// variable, as the unused source of unmasked operations;
// -Wmaybe-uninitialized reports it wherever they are inlined.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstdint>

#define KILN_ATTENTION_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#include "backends/cpu/attention_block.h"

namespace kiln::cpu {
namespace {

#define KILN_AVX512 KILN_ATTENTION_TARGET __attribute__((always_inline)) static inline

struct Avx512Ops {
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int W = 16;
  static constexpr int kValueColumns = 4;

  KILN_AVX512 V zero() { return _mm512_setzero_ps(); }
  KILN_AVX512 V broadcast(float x) { return _mm512_set1_ps(x); }
  KILN_AVX512 V load(const float* p) { return _mm512_loadu_ps(p); }
  KILN_AVX512 V loadMasked(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  KILN_AVX512 Mask tailMask(int64_t n) { return static_cast<Mask>((1u << n) - 1); }
  KILN_AVX512 void store(float* p, V x) { _mm512_storeu_ps(p, x); }
  KILN_AVX512 V add(V a, V b) { return _mm512_add_ps(a, b); }
  KILN_AVX512 V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  KILN_AVX512 V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  KILN_AVX512 V max(V a, V b) { return _mm512_max_ps(a, b); }
  KILN_AVX512 V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }

  // Halves, quarters, pairs, then neighbours (no 256-bit extracts).
  KILN_AVX512 float reduceMax(V x) {
    x = _mm512_max_ps(x, _mm512_shuffle_f32x4(x, x, _MM_SHUFFLE(1, 0, 3, 2)));
    x = _mm512_max_ps(x, _mm512_shuffle_f32x4(x, x, _MM_SHUFFLE(2, 3, 0, 1)));
    x = _mm512_max_ps(x, _mm512_permute_ps(x, _MM_SHUFFLE(1, 0, 3, 2)));
    x = _mm512_max_ps(x, _mm512_permute_ps(x, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_cvtss_f32(x);
  }
  KILN_AVX512 float reduceSum(V x) {
    x = _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, _MM_SHUFFLE(1, 0, 3, 2)));
    x = _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, _MM_SHUFFLE(2, 3, 0, 1)));
    x = _mm512_add_ps(x, _mm512_permute_ps(x, _MM_SHUFFLE(1, 0, 3, 2)));
    x = _mm512_add_ps(x, _mm512_permute_ps(x, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_cvtss_f32(x);
  }

  // exp(x) = 2^n * e^r with n = round(x / ln 2) and |r| <= ln(2) / 2 (ln 2
  // in two parts), e^r by the Cephes expf polynomial (about 1 ulp). Below
  // -87.34 the result would leave the normal floats: 0 (so -inf gives 0).
  KILN_AVX512 V exp(V x) {
    const V lowest = _mm512_set1_ps(-87.3365478515625f);
    const V clamped = _mm512_max_ps(x, lowest);
    const V n = _mm512_roundscale_ps(_mm512_mul_ps(clamped, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), clamped);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    V poly = _mm512_set1_ps(1.9875691500e-4f);
    poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.3981999507e-3f));
    poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(8.3334519073e-3f));
    poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(4.1665795894e-2f));
    poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(1.6666665459e-1f));
    poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(5.0000001201e-1f));
    poly = _mm512_fmadd_ps(poly, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
    const Mask representable = _mm512_cmp_ps_mask(x, lowest, _CMP_GE_OQ);
    return _mm512_maskz_mov_ps(representable, _mm512_scalef_ps(poly, n));
  }

  // Lane i = sum of the lanes of a[i]: 128-bit quarters folded pairwise
  // (a[4..7] and a[8..11] enter swapped so that the lanes come out in
  // order), then the four floats left of each vector.
  KILN_AVX512 V sumLanes(const V* a) {
    static constexpr int kOrder[16] = {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15};
    V halves[8];
    for (int i = 0; i < 8; ++i) {
      const V x = a[kOrder[i]], y = a[kOrder[i + 8]];
      halves[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(1, 0, 1, 0)),
                                _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 2, 3, 2)));
    }
    V quarters[4];
    for (int i = 0; i < 4; ++i)
      quarters[i] = _mm512_add_ps(_mm512_shuffle_f32x4(halves[i], halves[i + 4], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_f32x4(halves[i], halves[i + 4], _MM_SHUFFLE(3, 1, 3, 1)));
    const V pairs0 = _mm512_add_ps(_mm512_unpacklo_ps(quarters[0], quarters[1]),
                                   _mm512_unpackhi_ps(quarters[0], quarters[1]));
    const V pairs1 = _mm512_add_ps(_mm512_unpacklo_ps(quarters[2], quarters[3]),
                                   _mm512_unpackhi_ps(quarters[2], quarters[3]));
    const __m512d lo = _mm512_unpacklo_pd(_mm512_castps_pd(pairs0), _mm512_castps_pd(pairs1));
    const __m512d hi = _mm512_unpackhi_pd(_mm512_castps_pd(pairs0), _mm512_castps_pd(pairs1));
    return _mm512_add_ps(_mm512_castpd_ps(lo), _mm512_castpd_ps(hi));
  }

  // Row r's lanes [r*KT, (r+1)*KT) stored through a mask at the address
  // that puts lane r*KT at dst + r * stride (stride >= KT).
  template <int R>
  KILN_AVX512 void storeTile(V sums, float* dst, int64_t stride) {
    constexpr int KT = W / R;
    constexpr unsigned kRowLanes = (1u << KT) - 1;
    for (int r = 0; r < R; ++r)
      _mm512_mask_storeu_ps(dst + r * (stride - KT), static_cast<Mask>(kRowLanes << (r * KT)), sums);
  }
};

#undef KILN_AVX512

}  // namespace

KILN_ATTENTION_TARGET void attendUnitAvx512(const AttentionProblem& p, const AttentionUnit& unit, float* scratch) {
  attendUnit<Avx512Ops>(p, unit, scratch);
}

}  // namespace kiln::cpu
