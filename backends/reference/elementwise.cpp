// The reference kernels of the elementwise ops (ir/ops/elementwise.cpp):
// unary math, binary arithmetic and comparisons with numpy broadcasting,
// logic, variadic min/max, where, cast, clip and identity. Integers compute
// natively (wrapping like numpy, never through double); 16-bit floats compute
// in float and round back.
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "backends/reference/kernel_helpers.h"
#include "backends/reference/kernel_table.h"
#include "ir/elementwise_dtypes.h"

namespace kiln {
namespace {

using namespace ops;

// Whether storage type T is among the dtypes `accepts` names.
template <class T>
constexpr bool acceptsStorage(Accepts accepts) {
  switch (accepts) {
    case Accepts::Float: return kIsFloatStorage<T>;
    case Accepts::Numeric: return !std::is_same_v<T, bool>;
    case Accepts::Signed: return !std::is_same_v<T, bool> && !std::is_same_v<T, uint8_t>;
    case Accepts::Bool: return std::is_same_v<T, bool>;
    case Accepts::Any: return true;
  }
  return false;
}

// ---- Integer arithmetic that wraps instead of overflowing (signed overflow
// ---- is undefined in C++; numpy wraps).

template <class C>
C addValues(C a, C b) {
  if constexpr (std::is_integral_v<C>) {
    using U = std::make_unsigned_t<C>;
    return static_cast<C>(static_cast<U>(a) + static_cast<U>(b));
  } else {
    return a + b;
  }
}
template <class C>
C subValues(C a, C b) {
  if constexpr (std::is_integral_v<C>) {
    using U = std::make_unsigned_t<C>;
    return static_cast<C>(static_cast<U>(a) - static_cast<U>(b));
  } else {
    return a - b;
  }
}
template <class C>
C mulValues(C a, C b) {
  if constexpr (std::is_integral_v<C>) {
    using U = std::make_unsigned_t<C>;
    return static_cast<C>(static_cast<U>(a) * static_cast<U>(b));
  } else {
    return a * b;
  }
}
template <class C>
C negValue(C a) {
  return subValues(C{0}, a);
}

// ---- Unary ops: each its scalar function; ir/elementwise_dtypes.h says which
// ---- dtypes it takes.

struct Sqrt {
  template <class C> static C apply(C x) { return std::sqrt(x); }
};
struct Reciprocal {
  template <class C> static C apply(C x) { return C{1} / x; }
};
struct Neg {
  template <class C> static C apply(C x) { return negValue(x); }
};
struct Exp {
  template <class C> static C apply(C x) { return std::exp(x); }
};
struct Log {
  template <class C> static C apply(C x) { return std::log(x); }
};
struct Tanh {
  template <class C> static C apply(C x) { return std::tanh(x); }
};
struct Erf {
  template <class C> static C apply(C x) { return std::erf(x); }
};
struct Sigmoid {
  template <class C> static C apply(C x) { return C{1} / (C{1} + std::exp(-x)); }
};
struct Relu {
  // `x < 0 ? 0 : x` keeps NaN, as numpy's maximum(x, 0) does.
  template <class C> static C apply(C x) {
    if constexpr (std::is_unsigned_v<C>) return x;
    else return x < C{0} ? C{0} : x;
  }
};
struct Cos {
  template <class C> static C apply(C x) { return std::cos(x); }
};
struct Sin {
  template <class C> static C apply(C x) { return std::sin(x); }
};
struct Abs {
  template <class C> static C apply(C x) {
    if constexpr (std::is_unsigned_v<C>) return x;
    else return x < C{0} ? negValue(x) : x;
  }
};
struct Not {
  static bool apply(bool x) { return !x; }
};
template <OpKind kKind, class Fn>
Status unaryKernel(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  Tensor& y = *ctx.outputs[0];
  return visitDType(x.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (acceptsStorage<T>(acceptedDTypes(kKind))) {
      const T* in = x.data<T>();
      T* out = y.data<T>();
      const int64_t n = x.numElements();
      for (int64_t i = 0; i < n; ++i) out[i] = fromCompute<T>(Fn::apply(toCompute(in[i])));
      return Status::ok();
    } else {
      return unsupportedDType(ctx, x.dtype());
    }
  });
}

// ---- Binary ops with numpy broadcasting; both operands share a dtype.

struct Add {
  template <class C> static C apply(C a, C b) { return addValues(a, b); }
};
struct Sub {
  template <class C> static C apply(C a, C b) { return subValues(a, b); }
};
struct Mul {
  template <class C> static C apply(C a, C b) { return mulValues(a, b); }
};
struct Div {
  // Integers truncate toward zero; the kernel rejects a zero divisor first.
  // min / -1 overflows, so it wraps to min as numpy does.
  template <class C> static C apply(C a, C b) {
    if constexpr (std::is_integral_v<C> && std::is_signed_v<C>) {
      if (b == C{-1}) return negValue(a);
    }
    return a / b;
  }
};
struct Equal {
  template <class C> static bool apply(C a, C b) { return a == b; }
};
struct Less {
  template <class C> static bool apply(C a, C b) { return a < b; }
};
struct Greater {
  template <class C> static bool apply(C a, C b) { return a > b; }
};
struct And {
  static bool apply(bool a, bool b) { return a && b; }
};
struct Or {
  static bool apply(bool a, bool b) { return a || b; }
};

template <class T>
Status checkNoZeroDivisor(const KernelContext& ctx, const Tensor& divisor) {
  const T* values = divisor.data<T>();
  for (int64_t i = 0; i < divisor.numElements(); ++i)
    if (values[i] == T{0})
      return Status::error(ctx.def.name, ": integer division by zero (divisor element ", i, ")");
  return Status::ok();
}

template <OpKind kKind, class Fn>
Status binaryKernel(const KernelContext& ctx) {
  const Tensor& a = *ctx.input(0);
  const Tensor& b = *ctx.input(1);
  Tensor& out = *ctx.outputs[0];
  return visitDType(a.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (acceptsStorage<T>(acceptedDTypes(kKind))) {
      if constexpr (std::is_same_v<Fn, Div> && std::is_integral_v<T>)
        KILN_RETURN_IF_ERROR(checkNoZeroDivisor<T>(ctx, b));
      using R = std::conditional_t<hasBoolResult(kKind), bool, T>;
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      R* po = out.data<R>();
      BroadcastWalker walk(out.shape(), {&a.shape(), &b.shape()});
      const int64_t n = out.numElements();
      for (int64_t i = 0; i < n; ++i, walk.next()) {
        auto r = Fn::apply(toCompute(pa[walk.offset(0)]), toCompute(pb[walk.offset(1)]));
        if constexpr (hasBoolResult(kKind)) po[i] = r;
        else po[i] = fromCompute<T>(r);
      }
      return Status::ok();
    } else {
      return unsupportedDType(ctx, a.dtype());
    }
  });
}

// ---- pow: the exponent may have another numeric dtype (ONNX Pow-15); the
// ---- result has the base's dtype.

// Exact integer power, wrapping on overflow. A negative exponent gives the
// truncated real result: 1 for base 1, +-1 for base -1, else 0.
template <class T>
T integerPow(T base, int64_t exponent) {
  if (exponent < 0) {
    if (base == T{1}) return T{1};
    if constexpr (std::is_signed_v<T>) {
      if (base == T{-1}) return exponent % 2 == 0 ? T{1} : T{-1};
    }
    return T{0};
  }
  using U = std::make_unsigned_t<T>;
  U result = 1;
  U factor = static_cast<U>(base);
  for (auto e = static_cast<uint64_t>(exponent); e != 0; e >>= 1) {
    if (e & 1) result = static_cast<U>(result * factor);
    factor = static_cast<U>(factor * factor);
  }
  return static_cast<T>(result);
}

template <class T, class E>
T powValue(T base, E exponent) {
  if constexpr (std::is_integral_v<T> && std::is_integral_v<E>)
    return integerPow(base, static_cast<int64_t>(exponent));
  else
    return convertValue<T>(std::pow(loadAsDouble(base), loadAsDouble(exponent)));
}

Status powKernel(const KernelContext& ctx) {
  const Tensor& base = *ctx.input(0);
  const Tensor& exponent = *ctx.input(1);
  Tensor& out = *ctx.outputs[0];
  return visitDType(base.dtype(), [&](auto baseTag) -> Status {
    using T = decltype(baseTag);
    return visitDType(exponent.dtype(), [&](auto exponentTag) -> Status {
      using E = decltype(exponentTag);
      if constexpr (!std::is_same_v<T, bool> && !std::is_same_v<E, bool>) {
        const T* pb = base.data<T>();
        const E* pe = exponent.data<E>();
        T* po = out.data<T>();
        BroadcastWalker walk(out.shape(), {&base.shape(), &exponent.shape()});
        const int64_t n = out.numElements();
        for (int64_t i = 0; i < n; ++i, walk.next())
          po[i] = powValue(pb[walk.offset(0)], pe[walk.offset(1)]);
        return Status::ok();
      } else {
        return unsupportedDType(ctx, DType::Bool);
      }
    });
  });
}

// ---- min / max: variadic with broadcasting; NaN propagates like numpy's
// ---- minimum / maximum.

struct Min {
  template <class C> static C apply(C a, C b) {
    if constexpr (std::is_floating_point_v<C>) {
      if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<C>::quiet_NaN();
    }
    return b < a ? b : a;
  }
};
struct Max {
  template <class C> static C apply(C a, C b) {
    if constexpr (std::is_floating_point_v<C>) {
      if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<C>::quiet_NaN();
    }
    return a < b ? b : a;
  }
};

template <class Fn>
Status variadicKernel(const KernelContext& ctx) {
  Tensor& out = *ctx.outputs[0];
  return visitDType(out.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) {
      std::vector<const T*> data;
      std::vector<const std::vector<int64_t>*> shapes;
      for (const Tensor* input : ctx.inputs) {
        data.push_back(input->data<T>());
        shapes.push_back(&input->shape());
      }
      T* po = out.data<T>();
      BroadcastWalker walk(out.shape(), shapes);
      const int64_t n = out.numElements();
      for (int64_t i = 0; i < n; ++i, walk.next()) {
        ComputeType<T> acc = toCompute(data[0][walk.offset(0)]);
        for (size_t k = 1; k < data.size(); ++k) acc = Fn::apply(acc, toCompute(data[k][walk.offset(k)]));
        po[i] = fromCompute<T>(acc);
      }
      return Status::ok();
    } else {
      return unsupportedDType(ctx, out.dtype());
    }
  });
}

// ---- where(condition, x, y): three-way broadcasting.

Status whereKernel(const KernelContext& ctx) {
  const Tensor& condition = *ctx.input(0);
  const Tensor& x = *ctx.input(1);
  const Tensor& y = *ctx.input(2);
  Tensor& out = *ctx.outputs[0];
  return visitDType(out.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    const bool* pc = condition.data<bool>();
    const T* px = x.data<T>();
    const T* py = y.data<T>();
    T* po = out.data<T>();
    BroadcastWalker walk(out.shape(), {&condition.shape(), &x.shape(), &y.shape()});
    const int64_t n = out.numElements();
    for (int64_t i = 0; i < n; ++i, walk.next())
      po[i] = pc[walk.offset(0)] ? px[walk.offset(1)] : py[walk.offset(2)];
    return Status::ok();
  });
}

// ---- cast {to}: ONNX Cast semantics (convertValue).

Status castKernel(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  Tensor& y = *ctx.outputs[0];
  const int64_t n = x.numElements();
  return visitDType(x.dtype(), [&](auto fromTag) -> Status {
    using From = decltype(fromTag);
    return visitDType(y.dtype(), [&](auto toTag) -> Status {
      using To = decltype(toTag);
      const From* in = x.data<From>();
      To* out = y.data<To>();
      for (int64_t i = 0; i < n; ++i) out[i] = convertValue<To>(in[i]);
      return Status::ok();
    });
  });
}

// ---- clip(x, min?, max?): min > max gives max everywhere, as numpy's clip does.

Status clipKernel(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  const Tensor* low = ctx.input(1);
  const Tensor* high = ctx.input(2);
  Tensor& y = *ctx.outputs[0];
  return visitDType(x.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) {
      using C = ComputeType<T>;
      const T* in = x.data<T>();
      T* out = y.data<T>();
      const C lo = low ? toCompute(low->data<T>()[0]) : C{};
      const C hi = high ? toCompute(high->data<T>()[0]) : C{};
      const int64_t n = x.numElements();
      for (int64_t i = 0; i < n; ++i) {
        C v = toCompute(in[i]);
        if (low && v < lo) v = lo;
        if (high && v > hi) v = hi;
        out[i] = fromCompute<T>(v);
      }
      return Status::ok();
    } else {
      return unsupportedDType(ctx, x.dtype());
    }
  });
}

// ---- identity: a view; the memory planner gives the result x's bytes.

Status identityKernel(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  void* out = ctx.outputs[0]->data();
  if (x.byteSize() != 0 && out != x.data()) std::memcpy(out, x.data(), x.byteSize());
  return Status::ok();
}

template <OpKind kKind, class Fn>
void addUnary(ReferenceKernelTable& table) {
  table.add(kKind, unaryKernel<kKind, Fn>);
}

template <OpKind kKind, class Fn>
void addBinary(ReferenceKernelTable& table) {
  table.add(kKind, binaryKernel<kKind, Fn>);
}

}  // namespace

void addElementwiseKernels(ReferenceKernelTable& table) {
  addUnary<OpKind::Sqrt, Sqrt>(table);
  addUnary<OpKind::Reciprocal, Reciprocal>(table);
  addUnary<OpKind::Neg, Neg>(table);
  addUnary<OpKind::Exp, Exp>(table);
  addUnary<OpKind::Log, Log>(table);
  addUnary<OpKind::Tanh, Tanh>(table);
  addUnary<OpKind::Erf, Erf>(table);
  addUnary<OpKind::Sigmoid, Sigmoid>(table);
  addUnary<OpKind::Relu, Relu>(table);
  addUnary<OpKind::Cos, Cos>(table);
  addUnary<OpKind::Sin, Sin>(table);
  addUnary<OpKind::Abs, Abs>(table);
  addUnary<OpKind::Not, Not>(table);
  table.add(OpKind::Identity, identityKernel);

  addBinary<OpKind::Add, Add>(table);
  addBinary<OpKind::Sub, Sub>(table);
  addBinary<OpKind::Mul, Mul>(table);
  addBinary<OpKind::Div, Div>(table);
  addBinary<OpKind::Equal, Equal>(table);
  addBinary<OpKind::Less, Less>(table);
  addBinary<OpKind::Greater, Greater>(table);
  addBinary<OpKind::And, And>(table);
  addBinary<OpKind::Or, Or>(table);
  table.add(OpKind::Pow, powKernel);

  table.add(OpKind::Min, variadicKernel<Min>);
  table.add(OpKind::Max, variadicKernel<Max>);
  table.add(OpKind::Where, whereKernel);
  table.add(OpKind::Cast, castKernel);
  table.add(OpKind::Clip, clipKernel);
}

}  // namespace kiln
