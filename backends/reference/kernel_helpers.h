// Helpers shared by the reference kernels (backends/reference/*.cpp) and the
// device kernels that fall back to their loops or mirror them: the error for
// an unsupported dtype, concrete shapes and axes, numpy broadcasting, the
// compute type of each dtype, ONNX value conversion and the activations.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "ir/dtype.h"
#include "ir/status.h"
#include "ir/latent_attention.h"
#include "ir/tensor.h"
#include "runtime/kernel.h"

namespace kiln::ops {

// The error a kernel returns for a dtype it has no loop for (inference
// normally rejects it first).
Status unsupportedDType(const KernelContext& ctx, DType dtype);

// ---- Concrete shapes and axes.

// For kernels, after inference has validated the axis.
inline int64_t wrapAxis(int64_t axis, size_t rank) {
  return axis < 0 ? axis + static_cast<int64_t>(rank) : axis;
}

int64_t product(std::span<const int64_t> dims);
// Splits `shape` around `axis` into (outer, extent, inner) element counts:
// the usual layout of softmax, cumsum, concat, gather.
struct AxisSplit {
  int64_t outer = 1, extent = 1, inner = 1;
};
AxisSplit splitAtAxis(const std::vector<int64_t>& shape, int64_t axis);

// Walks the elements of a broadcast result in row-major order and tracks the
// offset of the matching element in each input (inputs may have lower rank;
// a dim of 1 is repeated). Usage:
//   BroadcastWalker walk(out.shape(), {&a.shape(), &b.shape()});
//   for (int64_t i = 0; i < n; ++i, walk.next()) out[i] = f(a[walk.offset(0)], b[walk.offset(1)]);
class BroadcastWalker {
 public:
  BroadcastWalker(const std::vector<int64_t>& outShape,
                  std::vector<const std::vector<int64_t>*> inputShapes);
  int64_t offset(size_t input) const { return offsets_[input]; }
  void next();

 private:
  std::vector<int64_t> outShape_;
  std::vector<int64_t> counters_;
  // strides_[input * rank + d]: the input's stride along output dim d (0 when broadcast).
  std::vector<int64_t> strides_;
  std::vector<int64_t> offsets_;
};

// The strides of `operand` along each dim of `target` when it broadcasts to
// it (aligned to the trailing dims; 0 along a broadcast dim).
std::vector<int64_t> broadcastStrides(const std::vector<int64_t>& operand,
                                      const std::vector<int64_t>& target);

// An attention mask as additive values (a false bool or a zero key-padding
// entry is -inf) and its strides over the scores [B, H, S, L]; no values
// without a mask.
struct AdditiveMask {
  std::vector<double> values;
  std::vector<int64_t> strides = std::vector<int64_t>(4, 0);
};
AdditiveMask additiveMask(const Tensor* mask, bool keyPadding, const std::vector<int64_t>& scores);

// ---- Compute types: 16-bit floats compute in float and round back on store;
// ---- every other type computes natively (integers stay exact).

template <class T> struct ComputeTypeOf { using type = T; };
template <> struct ComputeTypeOf<Half> { using type = float; };
template <> struct ComputeTypeOf<BFloat16> { using type = float; };
template <class T> using ComputeType = typename ComputeTypeOf<T>::type;

template <class T>
inline constexpr bool kIsFloatStorage =
    std::is_floating_point_v<T> || std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

template <class T>
inline ComputeType<T> toCompute(T v) {
  if constexpr (std::is_same_v<T, Half>) return halfToFloat(v.bits);
  else if constexpr (std::is_same_v<T, BFloat16>) return bfloat16ToFloat(v.bits);
  else return v;
}
template <class T>
inline T fromCompute(ComputeType<T> v) {
  if constexpr (std::is_same_v<T, Half>) return Half{floatToHalf(v)};
  else if constexpr (std::is_same_v<T, BFloat16>) return BFloat16{floatToBFloat16(v)};
  else return v;
}

// Converts a value of any storage type to another with ONNX Cast semantics
// and no undefined behaviour: float to integer truncates toward zero, NaN
// becomes 0 and out-of-range values saturate; anything to bool is `!= 0`;
// integer narrowing wraps (two's complement, as numpy does).
template <class To, class From>
To convertValue(From v) {
  constexpr bool kFrom16 = std::is_same_v<From, Half> || std::is_same_v<From, BFloat16>;
  constexpr bool kTo16 = std::is_same_v<To, Half> || std::is_same_v<To, BFloat16>;
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (kFrom16) {
    return convertValue<To>(toCompute(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From{0};
  } else if constexpr (kTo16) {
    return fromCompute<To>(convertValue<float>(v));
  } else if constexpr (std::is_floating_point_v<From> && std::is_integral_v<To>) {
    if (std::isnan(v)) return To{0};
    const double truncated = std::trunc(static_cast<double>(v));
    // lowest() is 0 or -2^digits and 2^digits is one past max(); both exact in double.
    if (truncated < static_cast<double>(std::numeric_limits<To>::lowest()))
      return std::numeric_limits<To>::lowest();
    if (truncated >= std::ldexp(1.0, std::numeric_limits<To>::digits))
      return std::numeric_limits<To>::max();
    return static_cast<To>(truncated);
  } else if constexpr (std::is_same_v<To, float> && std::is_same_v<From, double>) {
    // Beyond FLT_MAX plus half an ulp the conversion would be undefined; IEEE rounds to inf.
    constexpr double kOverflow = 0x1.ffffffp+127;
    if (v >= kOverflow) return std::numeric_limits<float>::infinity();
    if (v <= -kOverflow) return -std::numeric_limits<float>::infinity();
    return static_cast<float>(v);
  } else {
    return static_cast<To>(v);
  }
}

// ---- Activations shared by the fused ops and matmul's epilogue (C is float
// ---- or double).

// GELU, exact form: x/2 * (1 + erf(x / sqrt(2))).
template <class C>
inline C geluErf(C x) {
  return C(0.5) * x * (C(1) + std::erf(x * C(0.70710678118654752440)));
}
// GELU, tanh approximation: x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))).
template <class C>
inline C geluTanh(C x) {
  return C(0.5) * x * (C(1) + std::tanh(C(0.79788456080286535588) * (x + C(0.044715) * x * x * x)));
}
// SiLU (swish): x * sigmoid(x).
template <class C>
inline C silu(C x) {
  return x / (C(1) + std::exp(-x));
}

// latent_attention's RoPE (ir/latent_attention.h), shared by its kernels:
// each rope pair of new token s in batch b turns at position past + s, by
// inv_freq or by the cos/sin tables' columns of its frequency, as
// y_re = x_re cos_re - x_im sin_re, y_im = x_im cos_im + x_re sin_im (the
// rotate-half form, per pair), in double.
class LatentRope {
 public:
  LatentRope(const KernelContext& ctx, const latent::Attrs& a, int64_t batch, int64_t seq, int64_t past);

  template <class X, class Y>
  void rotate(const X* x, int64_t b, int64_t s, Y* y) const {
    for (size_t pair = 0; pair < a_.ropeFrequencies.size(); ++pair) {
      const latent::TableColumns at = latent::ropeSlots(a_, pair);
      const double re = static_cast<double>(toCompute(x[at.re])), im = static_cast<double>(toCompute(x[at.im]));
      const Angles t = angles(b, s, pair);
      y[at.re] = static_cast<Y>(re * t.cosRe - im * t.sinRe);
      y[at.im] = static_cast<Y>(im * t.cosIm + re * t.sinIm);
    }
  }

 private:
  struct Angles {
    double cosRe, sinRe, cosIm, sinIm;
  };
  Angles angles(int64_t b, int64_t s, size_t pair) const;

  const KernelContext& ctx_;
  const latent::Attrs& a_;
  int64_t past_;
  std::vector<int64_t> cosAt_, sinAt_;  // the tables' strides over [B, 1, S, D]
};

}  // namespace kiln::ops
