// Elementwise ops (ONNX semantics): unary math, binary arithmetic and
// comparisons with numpy broadcasting, logic, variadic min/max, where, cast,
// clip and identity. Integers compute natively (wrapping like numpy, never
// through double); 16-bit floats compute in float and round back.
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "ir/op_registry.h"
#include "ir/ops/op_helpers.h"

namespace kiln {
namespace {

using namespace ops;

// The dtypes an op accepts for its main operand(s).
enum class Accepts { Float, Numeric, Signed, Bool, Any };

bool acceptsDType(Accepts accepts, DType t) {
  switch (accepts) {
    case Accepts::Float: return isFloat(t);
    case Accepts::Numeric: return t != DType::Bool;
    case Accepts::Signed: return t != DType::Bool && t != DType::U8;
    case Accepts::Bool: return t == DType::Bool;
    case Accepts::Any: return true;
  }
  return false;
}

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

std::string_view acceptsName(Accepts accepts) {
  switch (accepts) {
    case Accepts::Float: return "a float tensor (f32, f16, bf16, f64)";
    case Accepts::Numeric: return "a numeric tensor (not bool)";
    case Accepts::Signed: return "a signed numeric tensor (not u8 or bool)";
    case Accepts::Bool: return "a bool tensor";
    case Accepts::Any: return "a tensor";
  }
  return "";
}

Status requireAccepted(const InferContext& ctx, size_t i, Accepts accepts, std::string_view what) {
  if (!acceptsDType(accepts, ctx.type(i).dtype))
    return ctx.error(what, " must be ", acceptsName(accepts), ", got ", ctx.type(i).str());
  return Status::ok();
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

// ---- Unary ops: each declares the dtypes it accepts and its scalar function.

struct Sqrt {
  static constexpr Accepts kAccepts = Accepts::Float;
  template <class C> static C apply(C x) { return std::sqrt(x); }
};
struct Reciprocal {
  static constexpr Accepts kAccepts = Accepts::Float;
  template <class C> static C apply(C x) { return C{1} / x; }
};
struct Neg {
  static constexpr Accepts kAccepts = Accepts::Signed;
  template <class C> static C apply(C x) { return negValue(x); }
};
struct Exp {
  static constexpr Accepts kAccepts = Accepts::Float;
  template <class C> static C apply(C x) { return std::exp(x); }
};
struct Log {
  static constexpr Accepts kAccepts = Accepts::Float;
  template <class C> static C apply(C x) { return std::log(x); }
};
struct Tanh {
  static constexpr Accepts kAccepts = Accepts::Float;
  template <class C> static C apply(C x) { return std::tanh(x); }
};
struct Erf {
  static constexpr Accepts kAccepts = Accepts::Float;
  template <class C> static C apply(C x) { return std::erf(x); }
};
struct Sigmoid {
  static constexpr Accepts kAccepts = Accepts::Float;
  template <class C> static C apply(C x) { return C{1} / (C{1} + std::exp(-x)); }
};
struct Relu {
  static constexpr Accepts kAccepts = Accepts::Numeric;
  // `x < 0 ? 0 : x` keeps NaN, as numpy's maximum(x, 0) does.
  template <class C> static C apply(C x) {
    if constexpr (std::is_unsigned_v<C>) return x;
    else return x < C{0} ? C{0} : x;
  }
};
struct Cos {
  static constexpr Accepts kAccepts = Accepts::Float;
  template <class C> static C apply(C x) { return std::cos(x); }
};
struct Sin {
  static constexpr Accepts kAccepts = Accepts::Float;
  template <class C> static C apply(C x) { return std::sin(x); }
};
struct Abs {
  static constexpr Accepts kAccepts = Accepts::Numeric;
  template <class C> static C apply(C x) {
    if constexpr (std::is_unsigned_v<C>) return x;
    else return x < C{0} ? negValue(x) : x;
  }
};
struct Not {
  static constexpr Accepts kAccepts = Accepts::Bool;
  static bool apply(bool x) { return !x; }
};
struct Identity {
  static constexpr Accepts kAccepts = Accepts::Any;
};

template <class Fn>
Status inferUnary(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireAccepted(ctx, 0, Fn::kAccepts, "x"));
  results.push_back(ctx.type(0));
  return Status::ok();
}

template <class Fn>
Status unaryKernel(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  Tensor& y = *ctx.outputs[0];
  return visitDType(x.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (acceptsStorage<T>(Fn::kAccepts)) {
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
  static constexpr Accepts kAccepts = Accepts::Numeric;
  static constexpr bool kBoolResult = false;
  template <class C> static C apply(C a, C b) { return addValues(a, b); }
};
struct Sub {
  static constexpr Accepts kAccepts = Accepts::Numeric;
  static constexpr bool kBoolResult = false;
  template <class C> static C apply(C a, C b) { return subValues(a, b); }
};
struct Mul {
  static constexpr Accepts kAccepts = Accepts::Numeric;
  static constexpr bool kBoolResult = false;
  template <class C> static C apply(C a, C b) { return mulValues(a, b); }
};
struct Div {
  static constexpr Accepts kAccepts = Accepts::Numeric;
  static constexpr bool kBoolResult = false;
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
  static constexpr Accepts kAccepts = Accepts::Any;
  static constexpr bool kBoolResult = true;
  template <class C> static bool apply(C a, C b) { return a == b; }
};
struct Less {
  static constexpr Accepts kAccepts = Accepts::Numeric;
  static constexpr bool kBoolResult = true;
  template <class C> static bool apply(C a, C b) { return a < b; }
};
struct Greater {
  static constexpr Accepts kAccepts = Accepts::Numeric;
  static constexpr bool kBoolResult = true;
  template <class C> static bool apply(C a, C b) { return a > b; }
};
struct And {
  static constexpr Accepts kAccepts = Accepts::Bool;
  static constexpr bool kBoolResult = true;
  static bool apply(bool a, bool b) { return a && b; }
};
struct Or {
  static constexpr Accepts kAccepts = Accepts::Bool;
  static constexpr bool kBoolResult = true;
  static bool apply(bool a, bool b) { return a || b; }
};

template <class Fn>
Status inferBinary(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireAccepted(ctx, 0, Fn::kAccepts, "a"));
  KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, 1));
  Expected<Shape> shape = broadcastAllOperands(ctx);
  if (!shape) return shape.status();
  results.push_back({Fn::kBoolResult ? DType::Bool : ctx.type(0).dtype, std::move(*shape)});
  return Status::ok();
}

template <class T>
Status checkNoZeroDivisor(const KernelContext& ctx, const Tensor& divisor) {
  const T* values = divisor.data<T>();
  for (int64_t i = 0; i < divisor.numElements(); ++i)
    if (values[i] == T{0})
      return Status::error(ctx.def.name, ": integer division by zero (divisor element ", i, ")");
  return Status::ok();
}

template <class Fn>
Status binaryKernel(const KernelContext& ctx) {
  const Tensor& a = *ctx.input(0);
  const Tensor& b = *ctx.input(1);
  Tensor& out = *ctx.outputs[0];
  return visitDType(a.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (acceptsStorage<T>(Fn::kAccepts)) {
      if constexpr (std::is_same_v<Fn, Div> && std::is_integral_v<T>)
        KILN_RETURN_IF_ERROR(checkNoZeroDivisor<T>(ctx, b));
      using R = std::conditional_t<Fn::kBoolResult, bool, T>;
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      R* po = out.data<R>();
      BroadcastWalker walk(out.shape(), {&a.shape(), &b.shape()});
      const int64_t n = out.numElements();
      for (int64_t i = 0; i < n; ++i, walk.next()) {
        auto r = Fn::apply(toCompute(pa[walk.offset(0)]), toCompute(pb[walk.offset(1)]));
        if constexpr (Fn::kBoolResult) po[i] = r;
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

Status inferPow(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireAccepted(ctx, 0, Accepts::Numeric, "base"));
  KILN_RETURN_IF_ERROR(requireAccepted(ctx, 1, Accepts::Numeric, "exponent"));
  Expected<Shape> shape = broadcastAllOperands(ctx);
  if (!shape) return shape.status();
  results.push_back({ctx.type(0).dtype, std::move(*shape)});
  return Status::ok();
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

Status inferVariadicNumeric(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireAccepted(ctx, 0, Accepts::Numeric, "operand 0"));
  for (size_t i = 1; i < ctx.numOperands(); ++i) KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, i));
  Expected<Shape> shape = broadcastAllOperands(ctx);
  if (!shape) return shape.status();
  results.push_back({ctx.type(0).dtype, std::move(*shape)});
  return Status::ok();
}

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

Status inferWhere(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireAccepted(ctx, 0, Accepts::Bool, "condition"));
  KILN_RETURN_IF_ERROR(requireSameDType(ctx, 1, 2));
  Expected<Shape> shape = broadcastAllOperands(ctx);
  if (!shape) return shape.status();
  results.push_back({ctx.type(1).dtype, std::move(*shape)});
  return Status::ok();
}

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

// ---- cast {to}.

Status inferCast(const InferContext& ctx, std::vector<TensorType>& results) {
  const std::string to = ctx.attrs().getString("to");
  std::optional<DType> dtype = parseDType(to);
  if (!dtype)
    return ctx.error("attribute to = \"", to,
                     "\" is not a dtype (f32, f16, bf16, f64, i64, i32, i8, u8, bool)");
  results.push_back({*dtype, ctx.type(0).shape});
  return Status::ok();
}

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

// ---- clip(x, min?, max?): bounds are scalars of x's dtype; min > max gives
// ---- max everywhere, as numpy's clip does.

Status inferClip(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireAccepted(ctx, 0, Accepts::Numeric, "x"));
  for (size_t i : {size_t{1}, size_t{2}}) {
    if (!ctx.has(i)) continue;
    const char* what = i == 1 ? "min" : "max";
    KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, i));
    KILN_RETURN_IF_ERROR(requireScalarLike(ctx, i, what));
  }
  results.push_back(ctx.type(0));
  return Status::ok();
}

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

// In place: every kernel of this file reads element i of its operands before
// it writes element i of the result, and the planner lets the result take
// over an operand only when their shapes and element sizes match.
template <class Fn>
void addUnary(OpRegistry& registry, OpKind kind, std::string_view summary, FlopsFn flops = kArithmetic) {
  registry.add(OpDef{.kind = kind, .summary = summary, .operands = {"x"}, .minOperands = 1,
                     .maxOperands = 1, .attrs = {}, .infer = inferUnary<Fn>, .reference = unaryKernel<Fn>,
                     .inplaceOperands = {0}, .flops = flops});
}

template <class Fn>
void addBinary(OpRegistry& registry, OpKind kind, std::string_view summary) {
  registry.add(OpDef{.kind = kind, .summary = summary, .operands = {"a", "b"}, .minOperands = 2,
                     .maxOperands = 2, .attrs = {}, .infer = inferBinary<Fn>, .reference = binaryKernel<Fn>,
                     .inplaceOperands = {0, 1}, .flops = kArithmetic});
}

}  // namespace

void registerElementwiseOps(OpRegistry& registry) {
  addUnary<Sqrt>(registry, OpKind::Sqrt, "square root", kTranscendental);
  addUnary<Reciprocal>(registry, OpKind::Reciprocal, "1 / x");
  addUnary<Neg>(registry, OpKind::Neg, "-x");
  addUnary<Exp>(registry, OpKind::Exp, "e^x", kTranscendental);
  addUnary<Log>(registry, OpKind::Log, "natural logarithm", kTranscendental);
  addUnary<Tanh>(registry, OpKind::Tanh, "hyperbolic tangent", kTranscendental);
  addUnary<Erf>(registry, OpKind::Erf, "Gauss error function", kTranscendental);
  addUnary<Sigmoid>(registry, OpKind::Sigmoid, "1 / (1 + e^-x)", kTranscendental);
  addUnary<Relu>(registry, OpKind::Relu, "max(x, 0)");
  addUnary<Cos>(registry, OpKind::Cos, "cosine", kTranscendental);
  addUnary<Sin>(registry, OpKind::Sin, "sine", kTranscendental);
  addUnary<Abs>(registry, OpKind::Abs, "absolute value");
  addUnary<Not>(registry, OpKind::Not, "logical not of a bool tensor");
  registry.add(OpDef{.kind = OpKind::Identity, .summary = "x itself (a view of its bytes)", .operands = {"x"},
                     .minOperands = 1, .maxOperands = 1, .attrs = {}, .infer = inferUnary<Identity>,
                     .reference = identityKernel, .resultIsView = true});

  addBinary<Add>(registry, OpKind::Add, "a + b, numpy broadcasting");
  addBinary<Sub>(registry, OpKind::Sub, "a - b, numpy broadcasting");
  addBinary<Mul>(registry, OpKind::Mul, "a * b, numpy broadcasting");
  addBinary<Div>(registry, OpKind::Div, "a / b, numpy broadcasting; integers truncate toward zero");
  addBinary<Equal>(registry, OpKind::Equal, "a == b as bool, numpy broadcasting");
  addBinary<Less>(registry, OpKind::Less, "a < b as bool, numpy broadcasting");
  addBinary<Greater>(registry, OpKind::Greater, "a > b as bool, numpy broadcasting");
  addBinary<And>(registry, OpKind::And, "logical and of bool tensors, numpy broadcasting");
  addBinary<Or>(registry, OpKind::Or, "logical or of bool tensors, numpy broadcasting");
  registry.add(OpDef{.kind = OpKind::Pow,
                     .summary = "base ^ exponent, numpy broadcasting; the exponent may have another dtype",
                     .operands = {"base", "exponent"}, .minOperands = 2, .maxOperands = 2,
                     .attrs = {}, .infer = inferPow, .reference = powKernel, .inplaceOperands = {0, 1},
                     .flops = kTranscendental});

  registry.add(OpDef{.kind = OpKind::Min, .summary = "elementwise minimum of one or more tensors, broadcasting",
                     .operands = {"inputs..."}, .minOperands = 1, .maxOperands = -1,
                     .attrs = {}, .infer = inferVariadicNumeric, .reference = variadicKernel<Min>,
                     .inplaceOperands = {0, 1}, .flops = kArithmetic});
  registry.add(OpDef{.kind = OpKind::Max, .summary = "elementwise maximum of one or more tensors, broadcasting",
                     .operands = {"inputs..."}, .minOperands = 1, .maxOperands = -1,
                     .attrs = {}, .infer = inferVariadicNumeric, .reference = variadicKernel<Max>,
                     .inplaceOperands = {0, 1}, .flops = kArithmetic});
  registry.add(OpDef{.kind = OpKind::Where, .summary = "condition ? x : y, three-way broadcasting",
                     .operands = {"condition", "x", "y"}, .minOperands = 3, .maxOperands = 3,
                     .attrs = {}, .infer = inferWhere, .reference = whereKernel, .inplaceOperands = {1, 2},
                     .flops = kArithmetic});
  registry.add(OpDef{.kind = OpKind::Cast, .summary = "converts to dtype `to` (ONNX Cast semantics)",
                     .operands = {"x"}, .minOperands = 1, .maxOperands = 1,
                     .attrs = {{"to", AttrKind::String, true}},
                     .infer = inferCast, .reference = castKernel, .inplaceOperands = {0}, .flops = kArithmetic});
  registry.add(OpDef{.kind = OpKind::Clip, .summary = "clamps x to the optional scalar bounds min and max",
                     .operands = {"x", "min", "max"}, .minOperands = 1, .maxOperands = 3,
                     .attrs = {}, .infer = inferClip, .reference = clipKernel, .inplaceOperands = {0}, .flops = kArithmetic});
}

}  // namespace kiln
