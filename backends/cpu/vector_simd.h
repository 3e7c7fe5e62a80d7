// The vector kernels of vector_isa.h, written once over a vector type V and
// compiled once per instruction set: vector_avx512.cpp and vector_avx2.cpp
// include this file under `#pragma GCC target`, vector_scalar.cpp with a
// one-float V. The same files build the attention kernel
// (attention_block.h) and the matmul's own kernels (gemm_simd.h) over the
// same V. Everything here is a template over V and every V has internal
// linkage, so the copies never meet at link time and no AVX code leaks into
// the scalar path.
//
// V provides, with F a register of V::kWidth floats and M a lane mask:
//   kRegisters, the vector registers the instruction set has
//   zero() set1(f) load(p) store(p, v); loadN(p, n, fill) reads lanes < n
//   and sets the rest to fill; storeN(p, v, n) writes lanes < n (n < kWidth;
//   neither touches memory past lane n); tailMask(n) sets lanes < n (n <=
//   kWidth) and loadMasked(p, mask) reads those lanes, zero elsewhere;
//   loadInt8(p) reads kWidth int8s as floats, loadInt8N(p, n) lanes < n of
//   them (0 elsewhere; nothing past lane n read);
//   storeBf16(p, v) writes the lanes rounded to bf16 (nearest even, NaN
//   quiet) as uint16_t, storeBf16N(p, v, n) lanes < n of them
//   add sub mul div sqrt neg abs; fmadd(a, b, c) = a*b + c,
//   fnmadd(a, b, c) = c - a*b, fmsub(a, b, c) = a*b - c, each rounded once
//   (so fmsub(a, b, a*b) is the product's rounding error); mulAdd(a, b, c) =
//   a*b + c as fast as the instruction set does it (fmadd with FMA; two
//   roundings on the scalar V), for sums that need not round once a term;
//   max(a, b) = a > b ? a : b and
//   min(a, b) = a < b ? a : b lane by lane (b when either is NaN, as x86 does)
//   copySign(magnitude, sign); round (to nearest even); ldexp(p, n) = p * 2^n
//   for integral n in [-152, 130], NaN when p is NaN
//   lt le gt isNan -> M; select(M, ifSet, ifClear); keepN(v, n) zeroes
//   lanes >= n
//   vector Vs only (the scalar V's expOrZero is libm's): ldexpNormal(p, n) =
//   p * 2^n for integral n in [-126, 127]; keepWhere(M, v) zeroes the lanes
//   M clears
//   reduceMax(v), reduceSum(v) -> float; sumDouble(v) -> the lanes summed in
//   double; sumLanes(v) of kWidth registers -> one whose lane i sums the
//   lanes of v[i]; storeGroups<R>(v, p, stride) stores the R groups of
//   kWidth / R lanes, group r at p + r * stride; AVX-512 only (the
//   attention's transposed keys): transposeSquare(rows, dst, stride) stores
//   the kWidth x kWidth block whose row i starts at rows[i] transposed
//   D, a register of doubles: widen(v, low, high) splits v's lanes into two
//   (the scalar V copies its one lane into both), narrow(low, high) rounds
//   them back; dset1 dadd dsub dmul
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "backends/cpu/vector_isa.h"

namespace kiln::cpu::vec {

template <class V>
struct Math {
  using F = typename V::F;

  static F constant(float c) { return V::set1(c); }

  // c0 + x * (c1 + x * (c2 + ...)).
  static F horner(F, float last) { return V::set1(last); }
  template <class... Rest>
  static F horner(F x, float c0, float c1, Rest... rest) {
    return V::fmadd(horner(x, c1, rest...), x, V::set1(c0));
  }

  // x clamped to [lo, hi]; NaN stays NaN (max and min return their second
  // operand when either is NaN).
  static F clamp(F x, float lo, float hi) { return V::min(V::set1(hi), V::max(V::set1(lo), x)); }

  // e^x = p * 2^n: x = n ln2 + r with |r| <= ln2/2 (ln2 in two parts,
  // Cody-Waite), p = e^r from Cephes' expf polynomial (about 1 ulp).
  struct Exponential {
    F p, n;
  };
  static Exponential exponential(F x) {
    const F n = V::round(V::mul(x, constant(1.44269504088896341f)));
    F r = V::fnmadd(n, constant(0.693359375f), x);
    r = V::fnmadd(n, constant(-2.12194440e-4f), r);
    const F p = horner(r, 5.0000001201e-1f, 1.6666665459e-1f, 4.1665795894e-2f, 8.3334519073e-3f,
                       1.3981999507e-3f, 1.9875691500e-4f);
    return {V::fmadd(p, V::mul(r, r), V::add(r, constant(1.0f))), n};
  }

  // e^x. Clamping to [-104, 89] keeps n in ldexp's range; past it e^x is 0
  // or inf in f32 anyway.
  static F exp(F x) {
    const Exponential e = exponential(clamp(x, -104.0f, 89.0f));
    return V::ldexp(e.p, e.n);
  }

  // e^x for x <= 0 where that is a normal float, else 0 (x below ln 2^-126,
  // -inf and NaN included). No result underflows: a denormal or underflowing
  // result costs a microcode assist on x86, and attention's masked and
  // far-below-max scores would take one per lane. One float at a time,
  // libm's expf (denormals and all) is faster than the polynomial, whose
  // fused steps the scalar V emulates in double: 25% of attention's time.
  static F expOrZero(F x) {
    if constexpr (V::kWidth == 1) {
      return std::exp(x);
    } else {
      const F lowest = constant(-87.3365478515625f);
      const Exponential e = exponential(V::max(x, lowest));
      return V::keepWhere(V::le(lowest, x), V::ldexpNormal(e.p, e.n));
    }
  }

  // tanh: Cephes' tanhf polynomial below |x| = 0.625, where 1 - 2/(e^2|x| + 1)
  // would cancel; that form above it.
  static F tanh(F x) {
    const F ax = V::abs(x);
    const F z = V::mul(x, x);
    const F p = horner(z, -3.33332819422e-1f, 1.33314422036e-1f, -5.37397155531e-2f, 2.06390887954e-2f,
                       -5.70498872745e-3f);
    const F small = V::fmadd(V::mul(z, x), p, x);
    const F e = exp(V::add(ax, ax));
    const F large = V::sub(constant(1.0f), V::div(constant(2.0f), V::add(e, constant(1.0f))));
    return V::select(V::lt(ax, constant(0.625f)), small, V::copySign(large, x));
  }

  // erf(x) for |x| <= 1: x * P(x^2), a near-minimax fit (relative error
  // 1.2e-9 before f32 rounding).
  static F erfSmall(F x) {
    const F p = horner(V::mul(x, x), 1.1283791065216064f, -0.3761262595653534f, 0.1128358542919159f,
                       -0.026853812858462334f, 0.005188329610973597f, -0.0008010208839550614f,
                       7.853907300159335e-05f);
    return V::mul(x, p);
  }

  // erfc(a) for a in [1, 10] (the caller clamps): e^-a^2 * Q(1/a) / a, with
  // Q(t) = a * erfc(a) * e^a^2 fitted on t in [0.1, 1] (relative error 4e-8).
  // a^2 is split exactly (fma) so e^-a^2 keeps its accuracy for large a.
  static F erfcLarge(F a) {
    const F t = V::div(constant(1.0f), a);
    const F square = V::mul(a, a);
    const F squareLow = V::fmsub(a, a, square);
    F e = exp(V::neg(square));
    e = V::fnmadd(e, squareLow, e);  // e^-(square + low) = e^-square * (1 - low)
    const F q = horner(t, 0.5642076730728149f, -0.0006439025746658444f, -0.27248743176460266f,
                       -0.07870952785015106f, 0.809405505657196f, -1.1319139003753662f, 0.6168564558029175f,
                       0.17186503112316132f, -0.4562883973121643f, 0.25748854875564575f,
                       -0.052196402102708817f);
    return V::mul(V::mul(e, q), t);
  }

  static F erf(F x) {
    const F ax = V::abs(x);
    const F large = V::sub(constant(1.0f), erfcLarge(clamp(ax, 1.0f, 10.0f)));
    return V::select(V::le(ax, constant(1.0f)), erfSmall(x), V::copySign(large, x));
  }

  static F sigmoid(F x) { return V::div(constant(1.0f), V::add(constant(1.0f), exp(V::neg(x)))); }

  // x * sigmoid(x), written as the reference writes it: x / (1 + e^-x).
  static F silu(F x) { return V::div(x, V::add(constant(1.0f), exp(V::neg(x)))); }

  // x/2 * (1 + erf(x / sqrt 2)). Past |x / sqrt 2| = 1 it is computed from
  // erfc: x - x/2 * erfc(z) above zero, x/2 * erfc(-z) below, which does not
  // cancel in the negative tail.
  static F gelu(F x) {
    const F z = V::mul(x, constant(0.70710678118654752f));
    const F az = V::abs(z);
    const F half = V::mul(constant(0.5f), x);
    const F small = V::fmadd(half, erfSmall(z), half);
    const F c = erfcLarge(clamp(az, 1.0f, 10.0f));
    const F large = V::select(V::gt(z, V::zero()), V::fnmadd(half, c, x), V::mul(half, c));
    return V::select(V::le(az, constant(1.0f)), small, large);
  }

  // x/2 * (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), as the equal
  // x / (1 + e^-2u): one exp, and no cancellation for negative x.
  static F geluTanh(F x) {
    constexpr double kScale = 2.0 * 0.79788456080286535588;
    const F twoU = V::mul(x, V::fmadd(V::mul(x, x), constant(static_cast<float>(kScale * 0.044715)),
                                      constant(static_cast<float>(kScale))));
    return V::div(x, V::add(constant(1.0f), exp(V::neg(twoU))));
  }
};

template <class V>
struct Kernels {
  using F = typename V::F;
  using M = Math<V>;
  static constexpr int64_t W = V::kWidth;

  // What rowSum adds up: x, x^2. (Function objects, not lambdas: GCC does
  // not give a lambda in a template the target pragma.)
  struct Values {
    F operator()(F acc, F v) const { return V::add(acc, v); }
  };
  struct Squares {
    F operator()(F acc, F v) const { return V::fmadd(v, v, acc); }
  };

  // Sum over a row of accumulate(acc, x[j]): four float accumulators, added
  // into a double every 16 vectors, so each float partial sums only a few
  // terms and the row total keeps the reference's double accuracy to within
  // f32 rounding. Lanes past the end read `fill`, chosen to add nothing.
  template <class Accumulate>
  static double rowSum(const float* x, int64_t n, float fill, Accumulate accumulate) {
    double total = 0.0;
    int64_t j = 0;
    while (j + 4 * W <= n) {
      F a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
      const int64_t blockEnd = j + 16 * W;
      for (; j + 4 * W <= n && j < blockEnd; j += 4 * W) {
        a0 = accumulate(a0, V::load(x + j));
        a1 = accumulate(a1, V::load(x + j + W));
        a2 = accumulate(a2, V::load(x + j + 2 * W));
        a3 = accumulate(a3, V::load(x + j + 3 * W));
      }
      total += V::sumDouble(V::add(V::add(a0, a1), V::add(a2, a3)));
    }
    F a = V::zero();
    for (; j + W <= n; j += W) a = accumulate(a, V::load(x + j));
    if (j < n) a = accumulate(a, V::loadN(x + j, n - j, fill));
    return total + V::sumDouble(a);
  }

  // Sums of d and d^2 over a row, d = x - centre, as rowSum adds (pairs of
  // float accumulators into doubles every 16 vectors). Near the mean, d is
  // exact and small, so both sums keep their accuracy however far the row
  // sits from zero.
  struct CentredSums {
    double values = 0.0, squares = 0.0;
  };
  static CentredSums centredSums(const float* x, int64_t n, F centre) {
    CentredSums sums;
    int64_t j = 0;
    while (j + 2 * W <= n) {
      F a0 = V::zero(), a1 = V::zero(), q0 = V::zero(), q1 = V::zero();
      const int64_t blockEnd = j + 16 * W;
      for (; j + 2 * W <= n && j < blockEnd; j += 2 * W) {
        const F d0 = V::sub(V::load(x + j), centre), d1 = V::sub(V::load(x + j + W), centre);
        a0 = V::add(a0, d0);
        a1 = V::add(a1, d1);
        q0 = V::fmadd(d0, d0, q0);
        q1 = V::fmadd(d1, d1, q1);
      }
      sums.values += V::sumDouble(V::add(a0, a1));
      sums.squares += V::sumDouble(V::add(q0, q1));
    }
    for (; j < n; j += W) {
      const int64_t count = n - j < W ? n - j : W;
      const F d = V::keepN(V::sub(part(x, j, count), centre), count);
      sums.values += V::sumDouble(d);
      sums.squares += V::sumDouble(V::mul(d, d));
    }
    return sums;
  }

  // A per-row double (1/rms, 1/sum) as the float nearest it plus the float
  // nearest the rest, so a product with it rounds about once, as the
  // reference's double arithmetic does.
  struct Split {
    F high, low;
    explicit Split(double v)
        : high(V::set1(static_cast<float>(v))), low(V::set1(static_cast<float>(v - static_cast<float>(v)))) {}
    Split(F h, F l) : high(h), low(l) {}
    // this * s, the product's rounding error kept in the low part.
    Split times(F s) const {
      const F h = V::mul(s, high);
      return Split(h, V::fmadd(s, low, V::fmsub(s, high, h)));
    }
    F applyTo(F x) const { return V::fmadd(x, high, V::mul(x, low)); }
  };

  // count floats at q + j: a whole vector, or the row's tail.
  static F part(const float* q, int64_t j, int64_t count) {
    return count == W ? V::load(q + j) : V::loadN(q + j, count, 0.0f);
  }
  static void put(float* q, int64_t j, int64_t count, F v) {
    if (count == W) V::store(q + j, v);
    else V::storeN(q + j, v, count);
  }

  // x * (1/rms) * scale with the factor's rounding compensated: as exact as
  // the reference's double product rounded once but for about 1% of the
  // elements, which are one ulp off.
  static void rmsNorm(const NormRows& p, int64_t begin, int64_t end) {
    const int64_t n = p.cols;
    for (int64_t r = begin; r < end; ++r) {
      const float* x = p.x + r * n;
      float* y = p.y + r * n;
      const double squares = rowSum(x, n, 0.0f, Squares{});
      const Split inverseRms(1.0 / std::sqrt(squares / static_cast<double>(n) + p.epsilon));
      for (int64_t j = 0; j < n; j += W) {
        const int64_t count = n - j < W ? n - j : W;
        const Split factor = p.scale ? inverseRms.times(part(p.scale, j, count)) : inverseRms;
        put(y, j, count, factor.applyTo(part(x, j, count)));
      }
    }
  }

  // layer_norm's last step runs in double, in the reference's order, and
  // rounds once: its results are the reference's but for the rare double
  // rounding tie. (In f32, even compensated, a tenth of them were 1-2 ulps
  // off, which the norms of a model carry to its output.)
  using D = typename V::D;
  struct Wide {
    D low, high;
    explicit Wide(F v) { V::widen(v, low, high); }
  };

  static void layerNorm(const NormRows& p, int64_t begin, int64_t end) {
    const int64_t n = p.cols;
    for (int64_t r = begin; r < end; ++r) {
      const float* x = p.x + r * n;
      float* y = p.y + r * n;
      // A first mean to centre on, then the exact one from the centred sums.
      const float guess = static_cast<float>(rowSum(x, n, 0.0f, Values{}) / static_cast<double>(n));
      const CentredSums sums = centredSums(x, n, V::set1(guess));
      const double shift = sums.values / static_cast<double>(n);
      const double mean = guess + shift;
      const double spread = sums.squares / static_cast<double>(n) - shift * shift;
      const double variance = spread > 0.0 ? spread : 0.0;  // (no std::max: no std templates under the target pragma)
      const double invStd = 1.0 / std::sqrt(variance + p.epsilon);
      const D meanD = V::dset1(mean), invStdD = V::dset1(invStd);
      for (int64_t j = 0; j < n; j += W) {
        const int64_t count = n - j < W ? n - j : W;
        const Wide v(part(x, j, count)), s(part(p.scale, j, count));
        D low = V::dmul(V::dmul(V::dsub(v.low, meanD), invStdD), s.low);
        D high = V::dmul(V::dmul(V::dsub(v.high, meanD), invStdD), s.high);
        if (p.bias) {
          const Wide b(part(p.bias, j, count));
          low = V::dadd(low, b.low);
          high = V::dadd(high, b.high);
        }
        put(y, j, count, V::narrow(low, high));
      }
      if (p.mean) p.mean[r] = static_cast<float>(mean);
      if (p.invStd) p.invStd[r] = static_cast<float>(invStd);
    }
  }

  // e^(x - m). x - m rounds in f32 (the reference subtracts in double), and
  // e^ turns that absolute error into a relative one of up to |x - m| ulps;
  // its exact rounding error (TwoSum) corrects the result: e^(s + err) =
  // e^s (1 + err). Far below the max the result is 0 or NaN anyway, and
  // err (NaN for -inf) is dropped there.
  static F shiftedExp(F x, F m) {
    const F s = V::sub(x, m);
    const F xBack = V::add(s, m);
    const F mBack = V::sub(xBack, s);
    F err = V::sub(V::sub(x, xBack), V::sub(m, mBack));
    err = V::select(V::lt(s, V::set1(-80.0f)), V::zero(), err);
    const F e = M::exp(s);
    return V::fmadd(e, err, e);
  }

  // exp(x - max) / sum: the max, then the exponentials stored and summed
  // (float partials into a double, as rowSum), then one scaling pass.
  static void softmax(const float* in, float* out, int64_t n, int64_t begin, int64_t end) {
    const float lowest = -std::numeric_limits<float>::infinity();
    for (int64_t r = begin; r < end; ++r) {
      const float* x = in + r * n;
      float* y = out + r * n;
      F m0 = V::set1(lowest), m1 = m0, m2 = m0, m3 = m0;
      int64_t j = 0;
      for (; j + 4 * W <= n; j += 4 * W) {
        m0 = V::max(m0, V::load(x + j));
        m1 = V::max(m1, V::load(x + j + W));
        m2 = V::max(m2, V::load(x + j + 2 * W));
        m3 = V::max(m3, V::load(x + j + 3 * W));
      }
      for (; j + W <= n; j += W) m0 = V::max(m0, V::load(x + j));
      if (j < n) m0 = V::max(m0, V::loadN(x + j, n - j, lowest));
      // A NaN the max skipped still makes its exponential, so the row, NaN.
      const F highest = V::set1(V::reduceMax(V::max(V::max(m0, m1), V::max(m2, m3))));

      double total = 0.0;
      F acc = V::zero();
      int64_t vectors = 0;
      for (j = 0; j + W <= n; j += W) {
        const F e = shiftedExp(V::load(x + j), highest);
        V::store(y + j, e);
        acc = V::add(acc, e);
        if (++vectors % 16 == 0) {
          total += V::sumDouble(acc);
          acc = V::zero();
        }
      }
      if (j < n) {
        const F e = V::keepN(shiftedExp(V::loadN(x + j, n - j, 0.0f), highest), n - j);
        V::storeN(y + j, e, n - j);
        acc = V::add(acc, e);
      }
      total += V::sumDouble(acc);

      const Split inverse(1.0 / total);
      for (j = 0; j < n; j += W) {
        const int64_t count = n - j < W ? n - j : W;
        put(y, j, count, inverse.applyTo(part(y, j, count)));
      }
    }
  }

  static void swigluPacked(const float* in, float* out, int64_t half, int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* gate = in + r * 2 * half;
      const float* up = gate + half;
      float* y = out + r * half;
      int64_t j = 0;
      for (; j + W <= half; j += W) V::store(y + j, V::mul(M::silu(V::load(gate + j)), V::load(up + j)));
      if (j < half) {
        const int64_t k = half - j;
        V::storeN(y + j, V::mul(M::silu(V::loadN(gate + j, k, 0.0f)), V::loadN(up + j, k, 0.0f)), k);
      }
    }
  }

  // ---- vector programs

  // An argument over one block: contiguous floats, or one value everywhere.
  struct Source {
    const float* data = nullptr;
    float value = 0.0f;
    F load(int64_t i) const { return data ? V::load(data + i) : V::set1(value); }
    F loadN(int64_t i, int64_t n) const { return data ? V::loadN(data + i, n, 0.0f) : V::set1(value); }
    float at(int64_t i) const { return data ? data[i] : value; }
  };

  template <VectorOp kOp>
  static F unary(F u) {
    if constexpr (kOp == VectorOp::Neg) return V::neg(u);
    else if constexpr (kOp == VectorOp::Exp) return M::exp(u);
    else if constexpr (kOp == VectorOp::Sqrt) return V::sqrt(u);
    else if constexpr (kOp == VectorOp::Reciprocal) return V::div(V::set1(1.0f), u);
    else if constexpr (kOp == VectorOp::Tanh) return M::tanh(u);
    else if constexpr (kOp == VectorOp::Erf) return M::erf(u);
    else if constexpr (kOp == VectorOp::Sigmoid) return M::sigmoid(u);
    else if constexpr (kOp == VectorOp::Relu) return V::select(V::lt(u, V::zero()), V::zero(), u);  // keeps NaN
    else if constexpr (kOp == VectorOp::Gelu) return M::gelu(u);
    else if constexpr (kOp == VectorOp::GeluTanh) return M::geluTanh(u);
    else return M::silu(u);
  }

  // max and min as the reference picks them: NaN when either is NaN, else
  // `a < b ? b : a` and `b < a ? b : a`.
  template <VectorOp kOp>
  static F binary(F a, F b) {
    if constexpr (kOp == VectorOp::Add) return V::add(a, b);
    else if constexpr (kOp == VectorOp::Sub) return V::sub(a, b);
    else if constexpr (kOp == VectorOp::Mul) return V::mul(a, b);
    else if constexpr (kOp == VectorOp::Div) return V::div(a, b);
    else if constexpr (kOp == VectorOp::Max) return V::select(V::isNan(b), b, V::max(b, a));
    else return V::select(V::isNan(b), b, V::min(b, a));
  }

  template <VectorOp kOp>
  static void map1(Source a, float* y, int64_t m) {
    int64_t i = 0;
    for (; i + W <= m; i += W) V::store(y + i, unary<kOp>(a.load(i)));
    if (i < m) V::storeN(y + i, unary<kOp>(a.loadN(i, m - i)), m - i);
  }

  template <VectorOp kOp>
  static void map2(Source a, Source b, float* y, int64_t m) {
    int64_t i = 0;
    for (; i + W <= m; i += W) V::store(y + i, binary<kOp>(a.load(i), b.load(i)));
    if (i < m) V::storeN(y + i, binary<kOp>(a.loadN(i, m - i), b.loadN(i, m - i)), m - i);
  }

  // One instruction over m elements. pow and log call the libm functions the
  // reference calls.
  static void apply(VectorOp op, Source a, Source b, float* y, int64_t m) {
    switch (op) {
      case VectorOp::Add: return map2<VectorOp::Add>(a, b, y, m);
      case VectorOp::Sub: return map2<VectorOp::Sub>(a, b, y, m);
      case VectorOp::Mul: return map2<VectorOp::Mul>(a, b, y, m);
      case VectorOp::Div: return map2<VectorOp::Div>(a, b, y, m);
      case VectorOp::Max: return map2<VectorOp::Max>(a, b, y, m);
      case VectorOp::Min: return map2<VectorOp::Min>(a, b, y, m);
      case VectorOp::Pow:
        for (int64_t i = 0; i < m; ++i) y[i] = std::pow(a.at(i), b.at(i));
        return;
      case VectorOp::Log:
        for (int64_t i = 0; i < m; ++i) y[i] = std::log(a.at(i));
        return;
      case VectorOp::Neg: return map1<VectorOp::Neg>(a, y, m);
      case VectorOp::Exp: return map1<VectorOp::Exp>(a, y, m);
      case VectorOp::Sqrt: return map1<VectorOp::Sqrt>(a, y, m);
      case VectorOp::Reciprocal: return map1<VectorOp::Reciprocal>(a, y, m);
      case VectorOp::Tanh: return map1<VectorOp::Tanh>(a, y, m);
      case VectorOp::Erf: return map1<VectorOp::Erf>(a, y, m);
      case VectorOp::Sigmoid: return map1<VectorOp::Sigmoid>(a, y, m);
      case VectorOp::Relu: return map1<VectorOp::Relu>(a, y, m);
      case VectorOp::Gelu: return map1<VectorOp::Gelu>(a, y, m);
      case VectorOp::GeluTanh: return map1<VectorOp::GeluTanh>(a, y, m);
      case VectorOp::Silu: return map1<VectorOp::Silu>(a, y, m);
      // Integer programs run on the reference (vectorProgram refuses them).
      case VectorOp::Abs: case VectorOp::Equal: case VectorOp::Less: case VectorOp::Greater: case VectorOp::Not:
      case VectorOp::And: case VectorOp::Or: case VectorOp::CastI32: case VectorOp::CastI64: case VectorOp::CastBool:
        return;
    }
  }

  // Elements [first, last) of the result, row segment by row segment, each
  // in blocks small enough that an instruction's values stay in L1.
  static void program(const VectorProgram& p, int64_t first, int64_t last) {
    constexpr int64_t kBlock = 256;
    alignas(64) float values[kMaxInstructions - 1][kBlock];
    const int64_t rowLength = p.rowLength;
    int64_t at = first;
    while (at < last) {
      const int64_t row = at / rowLength;
      const int64_t rowStart = row * rowLength;
      const int64_t segmentEnd = rowStart + rowLength < last ? rowStart + rowLength : last;
      Source streams[kMaxStreams];
      for (int k = 0; k < p.numStreams; ++k) {
        const VectorStream& s = p.streams[k];
        if (s.kind == VectorStream::Kind::Contiguous) streams[k].data = s.data + rowStart % s.period;
        else streams[k].value = s.data[(rowStart / s.repeat) % s.period];
      }
      for (int64_t j = at - rowStart; rowStart + j < segmentEnd; j += kBlock) {
        const int64_t m = segmentEnd - rowStart - j < kBlock ? segmentEnd - rowStart - j : kBlock;
        for (int i = 0; i < p.length; ++i) {
          const VectorInstruction& ins = p.code[i];
          Source args[2];
          for (int k = 0; k < ins.arity; ++k) {
            const VectorArg& arg = ins.args[k];
            switch (arg.kind) {
              case VectorArg::Kind::Stream: {
                const Source& s = streams[arg.index];
                args[k] = s.data ? Source{s.data + j, 0.0f} : s;
                break;
              }
              case VectorArg::Kind::Value: args[k] = Source{values[arg.index], 0.0f}; break;
              case VectorArg::Kind::Literal: args[k] = Source{nullptr, arg.literal}; break;
            }
          }
          float* y = i + 1 == p.length ? p.out + rowStart + j : values[i];
          apply(ins.op, args[0], args[1], y, m);
        }
      }
      at = segmentEnd;
    }
  }
};

}  // namespace kiln::cpu::vec
