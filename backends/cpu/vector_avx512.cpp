// The CPU kernels written over vector traits (vector_simd.h,
// attention_block.h) on AVX-512 F/BW/VL/DQ with FMA. The target pragma below
// covers only this file's own functions (the standard headers come first,
// outside it), and they run only when activeIsa() says the CPU has these
// instructions, so the binary still runs on CPUs without.
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps(), a
// self-initialised variable, as the unused source of unmasked operations;
// -Wmaybe-uninitialized reports it wherever they are inlined.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "backends/cpu/attention.h"
#include "backends/cpu/gemm_kernels.h"
#include "backends/cpu/vector_isa.h"

#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")

#include "backends/cpu/isa_kernels.h"

namespace kiln::cpu::vec {
namespace {

struct Avx512 {
  using F = __m512;
  using M = __mmask16;
  static constexpr int64_t kWidth = 16;
  static constexpr int kRegisters = 32;

  static F zero() { return _mm512_setzero_ps(); }
  static F set1(float v) { return _mm512_set1_ps(v); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static F loadN(const float* p, int64_t n, float fill) { return _mm512_mask_loadu_ps(set1(fill), tailMask(n), p); }
  static F loadMasked(const float* p, M m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F loadInt8(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static F loadInt8N(const int8_t* p, int64_t n) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(tailMask(n), p)));
  }
  static void storeN(float* p, F v, int64_t n) { _mm512_mask_storeu_ps(p, tailMask(n), v); }
  // As Avx2::bf16Bits, 16 lanes of 32 bits.
  static __m512i bf16Bits(F v) {
    const __m512i bits = _mm512_castps_si512(v);
    const __m512i high = _mm512_srli_epi32(bits, 16);
    const __m512i lsb = _mm512_and_si512(high, _mm512_set1_epi32(1));
    const __m512i rounded =
        _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(0x7fff)), lsb), 16);
    return _mm512_mask_blend_epi32(isNan(v), rounded, _mm512_or_si512(high, _mm512_set1_epi32(0x40)));
  }
  static void storeBf16(uint16_t* p, F v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(bf16Bits(v)));
  }
  static void storeBf16N(uint16_t* p, F v, int64_t n) {
    _mm512_mask_cvtepi32_storeu_epi16(p, tailMask(n), bf16Bits(v));
  }

  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F sqrt(F a) { return _mm512_sqrt_ps(a); }
  static F neg(F a) { return _mm512_xor_ps(a, set1(-0.0f)); }
  static F abs(F a) { return _mm512_abs_ps(a); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F fnmadd(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
  static F fmsub(F a, F b, F c) { return _mm512_fmsub_ps(a, b, c); }
  static F mulAdd(F a, F b, F c) { return fmadd(a, b, c); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F min(F a, F b) { return _mm512_min_ps(a, b); }
  static F copySign(F magnitude, F sign) {
    const F signBit = set1(-0.0f);
    return _mm512_or_ps(_mm512_andnot_ps(signBit, magnitude), _mm512_and_ps(signBit, sign));
  }
  static F round(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static F ldexp(F p, F n) { return _mm512_scalef_ps(p, n); }
  static F ldexpNormal(F p, F n) { return ldexp(p, n); }

  static M lt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M le(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static M gt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M isNan(F a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static F select(M m, F ifSet, F ifClear) { return _mm512_mask_blend_ps(m, ifClear, ifSet); }
  static F keepWhere(M m, F v) { return _mm512_maskz_mov_ps(m, v); }
  static F keepN(F v, int64_t n) { return _mm512_maskz_mov_ps(tailMask(n), v); }
  static M tailMask(int64_t n) { return static_cast<M>((1u << n) - 1u); }

  using D = __m512d;
  static void widen(F v, D& low, D& high) {
    low = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    high = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  }
  static F narrow(D low, D high) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(low)), _mm512_cvtpd_ps(high), 1);
  }
  static D dset1(double v) { return _mm512_set1_pd(v); }
  static D dadd(D a, D b) { return _mm512_add_pd(a, b); }
  static D dsub(D a, D b) { return _mm512_sub_pd(a, b); }
  static D dmul(D a, D b) { return _mm512_mul_pd(a, b); }

  // Halves, quarters, pairs, then neighbours (no 256-bit extracts).
  static float reduceMax(F v) {
    v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm512_max_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    v = _mm512_max_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm512_max_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_cvtss_f32(v);
  }
  static float reduceSum(F v) {
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_cvtss_f32(v);
  }
  static double sumDouble(F v) {
    const __m512d low = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d high = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return _mm512_reduce_add_pd(_mm512_add_pd(low, high));
  }

  // Lane i = sum of the lanes of v[i]: 128-bit quarters folded pairwise
  // (v[4..7] and v[8..11] enter swapped so that the lanes come out in
  // order), then the four floats left of each vector.
  static F sumLanes(const F* v) {
    static constexpr int kOrder[16] = {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15};
    F halves[8];
    for (int i = 0; i < 8; ++i) {
      const F x = v[kOrder[i]], y = v[kOrder[i + 8]];
      halves[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(1, 0, 1, 0)),
                                _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 2, 3, 2)));
    }
    F quarters[4];
    for (int i = 0; i < 4; ++i)
      quarters[i] = _mm512_add_ps(_mm512_shuffle_f32x4(halves[i], halves[i + 4], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_f32x4(halves[i], halves[i + 4], _MM_SHUFFLE(3, 1, 3, 1)));
    const F pairs0 = _mm512_add_ps(_mm512_unpacklo_ps(quarters[0], quarters[1]),
                                   _mm512_unpackhi_ps(quarters[0], quarters[1]));
    const F pairs1 = _mm512_add_ps(_mm512_unpacklo_ps(quarters[2], quarters[3]),
                                   _mm512_unpackhi_ps(quarters[2], quarters[3]));
    const __m512d low = _mm512_unpacklo_pd(_mm512_castps_pd(pairs0), _mm512_castps_pd(pairs1));
    const __m512d high = _mm512_unpackhi_pd(_mm512_castps_pd(pairs0), _mm512_castps_pd(pairs1));
    return _mm512_add_ps(_mm512_castpd_ps(low), _mm512_castpd_ps(high));
  }
  // Group r's lanes stored through a mask at the address that puts its
  // first lane at p + r * stride (stride >= kWidth / R).
  template <int R>
  static void storeGroups(F v, float* p, int64_t stride) {
    constexpr int64_t kGroup = kWidth / R;
    constexpr unsigned kGroupLanes = (1u << kGroup) - 1u;
    for (int r = 0; r < R; ++r)
      _mm512_mask_storeu_ps(p + r * (stride - kGroup), static_cast<M>(kGroupLanes << (r * kGroup)), v);
  }
  // The 16 x 16 block whose row i starts at rows[i] stored transposed: row d
  // at dst + d * stride. Pairs, then quads within 128-bit lanes, then lanes.
  static void transposeSquare(const float* const* rows, float* dst, int64_t stride) {
    F a[16], b[16];
    for (int i = 0; i < 16; ++i) a[i] = load(rows[i]);
    for (int i = 0; i < 16; i += 2) {
      b[i] = _mm512_unpacklo_ps(a[i], a[i + 1]);
      b[i + 1] = _mm512_unpackhi_ps(a[i], a[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
      a[i] = _mm512_shuffle_ps(b[i], b[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
      a[i + 1] = _mm512_shuffle_ps(b[i], b[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
      a[i + 2] = _mm512_shuffle_ps(b[i + 1], b[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
      a[i + 3] = _mm512_shuffle_ps(b[i + 1], b[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int h = 0; h < 16; h += 8)
      for (int i = 0; i < 4; ++i) {
        b[h + i] = _mm512_shuffle_f32x4(a[h + i], a[h + i + 4], 0x88);
        b[h + i + 4] = _mm512_shuffle_f32x4(a[h + i], a[h + i + 4], 0xdd);
      }
    for (int i = 0; i < 8; ++i) {
      store(dst + i * stride, _mm512_shuffle_f32x4(b[i], b[i + 8], 0x88));
      store(dst + (i + 8) * stride, _mm512_shuffle_f32x4(b[i], b[i + 8], 0xdd));
    }
  }
};

}  // namespace

}  // namespace kiln::cpu::vec

// AVX-512 with the BF16 extension, which only the rounding uses: its
// conversion instruction rounds to bf16 as the others do, but flushes
// denormals to zero.
#pragma GCC push_options
#pragma GCC target("avx512bf16")

namespace kiln::cpu::vec {
namespace {

struct Avx512Bf16 : Avx512 {
  static void storeBf16(uint16_t* p, F v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
  }
  static void storeBf16N(uint16_t* p, F v, int64_t n) {
    _mm256_mask_storeu_epi16(p, tailMask(n), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
  }
};

// flatten: the loop template was compiled without BF16 and would call the
// conversion above once a vector; inlined here, it runs with BF16 allowed.
__attribute__((flatten)) void roundToBf16WithBf16(const float* src, uint16_t* dst, int64_t n) {
  roundToBf16<Avx512Bf16>(src, dst, n);
}

}  // namespace
}  // namespace kiln::cpu::vec

#pragma GCC pop_options

namespace kiln::cpu::vec {

// The tiled matmuls, f32 and int8 (only AVX-512 has the registers for their
// tiles), and the bf16 rounding by the CPU's own conversion where it has
// AVX512-BF16.
const IsaKernels& avx512Kernels() {
  static const IsaKernels kernels = [] {
    IsaKernels made = isaKernels<Avx512>();
    made.tileBlock = &tileBlock<Avx512>;
    made.int8Tiles = &int8Tiles<Avx512>;
    if (cpuHasAvx512Bf16()) made.roundToBf16 = &roundToBf16WithBf16;
    return made;
  }();
  return kernels;
}

}  // namespace kiln::cpu::vec
