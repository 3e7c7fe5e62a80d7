// Reductions and normalisations (ONNX semantics): reduce_sum / reduce_mean /
// reduce_max over an optional axes operand, softmax, log_softmax, layer_norm
// and cumsum. Float sums accumulate in double; integer sums stay in integers
// (wrapping like numpy).
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "ir/op_registry.h"
#include "ir/ops/op_helpers.h"

namespace kiln {
namespace {

using namespace ops;

// Integer addition that wraps instead of overflowing.
template <class C>
C wrappingAdd(C a, C b) {
  if constexpr (std::is_integral_v<C>) {
    using U = std::make_unsigned_t<C>;
    return static_cast<C>(static_cast<U>(a) + static_cast<U>(b));
  } else {
    return a + b;
  }
}

// The accumulator of a sum: double for floats, int64 for integers.
template <class T>
using SumType = std::conditional_t<kIsFloatStorage<T>, double, int64_t>;

template <class T>
SumType<T> toSum(T v) {
  if constexpr (kIsFloatStorage<T>) return loadAsDouble(v);
  else return static_cast<int64_t>(v);
}

// ---- reduce_sum / reduce_mean / reduce_max (x, axes?) {keepdims, noop_with_empty_axes}

enum class Reduction { Sum, Mean, Max };

Status inferReduce(const InferContext& ctx, std::vector<TensorType>& results) {
  const TensorType& x = ctx.type(0);
  KILN_RETURN_IF_ERROR(requireNumeric(ctx, 0, "x"));
  const bool keepdims = ctx.attrs().getBool("keepdims", true);
  const bool noopWithEmptyAxes = ctx.attrs().getBool("noop_with_empty_axes", false);

  // The axes: empty when absent; nullopt when present but not known yet.
  std::optional<std::vector<int64_t>> axes = std::vector<int64_t>{};
  std::optional<int64_t> axesCount = 0;
  if (ctx.has(1)) {
    KILN_RETURN_IF_ERROR(requireDType(ctx, 1, DType::I64, "axes"));
    KILN_RETURN_IF_ERROR(requireRank(ctx, 1, 1, "axes"));
    axes = knownInts(ctx, 1);
    axesCount = ctx.type(1).shape[0].constant();
    if (!axes && axesCount == 0) axes = std::vector<int64_t>{};
  }

  if (axes && axes->empty() && noopWithEmptyAxes) {
    results.push_back(x);
    return Status::ok();
  }
  if (!axes) {
    // Which dims are reduced is known only at run time.
    if (keepdims) {
      results.push_back({x.dtype, unknownShape(x.rank())});
      return Status::ok();
    }
    if (!axesCount)
      return ctx.error("keepdims = false needs the number of axes to be static, got axes ",
                       ctx.type(1).str());
    if (*axesCount > static_cast<int64_t>(x.rank()))
      return ctx.error(*axesCount, " axes is more than the rank of x");
    results.push_back({x.dtype, unknownShape(x.rank() - static_cast<size_t>(*axesCount))});
    return Status::ok();
  }

  std::vector<bool> reduced(x.rank(), axes->empty());
  Expected<std::vector<int64_t>> normalized = normalizeAxes(ctx, *axes, x.rank());
  if (!normalized) return normalized.status();
  for (int64_t axis : *normalized) reduced[static_cast<size_t>(axis)] = true;
  Shape shape;
  for (size_t d = 0; d < x.rank(); ++d) {
    if (!reduced[d]) shape.push_back(x.shape[d]);
    else if (keepdims) shape.push_back(Dim(1));
  }
  results.push_back({x.dtype, std::move(shape)});
  return Status::ok();
}

template <Reduction kReduction>
Status reduceKernel(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  Tensor& out = *ctx.outputs[0];
  const bool noopWithEmptyAxes = ctx.attrs.getBool("noop_with_empty_axes", false);
  const std::vector<int64_t> axes = ctx.input(1) ? ctx.input(1)->toInts() : std::vector<int64_t>{};
  if (axes.empty() && noopWithEmptyAxes) {
    if (x.byteSize() != 0) std::memcpy(out.data(), x.data(), x.byteSize());
    return Status::ok();
  }
  // x's shape with the reduced dims set to 1: the output's layout whatever keepdims is.
  std::vector<int64_t> keptShape = x.shape();
  if (axes.empty()) keptShape.assign(x.rank(), 1);
  for (int64_t axis : axes) keptShape[static_cast<size_t>(wrapAxis(axis, x.rank()))] = 1;
  const int64_t outCount = product(keptShape);
  const int64_t inCount = x.numElements();

  return visitDType(x.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) {
      const T* in = x.data<T>();
      T* po = out.data<T>();
      BroadcastWalker walk(x.shape(), {&keptShape});
      if constexpr (kReduction == Reduction::Max) {
        using C = ComputeType<T>;
        // An empty reduction gives the identity of max: -inf, or the lowest integer.
        const C identity = std::numeric_limits<C>::has_infinity ? -std::numeric_limits<C>::infinity()
                                                                 : std::numeric_limits<C>::lowest();
        std::vector<C> acc(static_cast<size_t>(outCount), identity);
        for (int64_t i = 0; i < inCount; ++i, walk.next()) {
          const C v = toCompute(in[i]);
          C& a = acc[static_cast<size_t>(walk.offset(0))];
          if constexpr (std::is_floating_point_v<C>) {
            if (std::isnan(v)) a = v;  // NaN propagates; once there, `v > a` keeps it
          }
          if (v > a) a = v;
        }
        for (int64_t o = 0; o < outCount; ++o) po[o] = fromCompute<T>(acc[static_cast<size_t>(o)]);
      } else {
        using S = SumType<T>;
        std::vector<S> acc(static_cast<size_t>(outCount), S{0});
        for (int64_t i = 0; i < inCount; ++i, walk.next()) {
          S& a = acc[static_cast<size_t>(walk.offset(0))];
          a = wrappingAdd(a, toSum(in[i]));
        }
        const int64_t count = outCount == 0 ? 0 : inCount / outCount;
        for (int64_t o = 0; o < outCount; ++o) {
          S value = acc[static_cast<size_t>(o)];
          if constexpr (kReduction == Reduction::Mean) {
            if constexpr (std::is_integral_v<S>) value = count == 0 ? 0 : value / count;
            else value /= static_cast<double>(count);  // 0 / 0 is NaN, as numpy's mean of nothing
          }
          po[o] = convertValue<T>(value);
        }
      }
      return Status::ok();
    } else {
      return unsupportedDType(ctx, x.dtype());
    }
  });
}

// ---- softmax / log_softmax (x) {axis = -1}

Status inferSoftmax(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireFloat(ctx, 0, "x"));
  Expected<int64_t> axis = normalizeAxis(ctx, ctx.attrs().getInt("axis", -1), ctx.type(0).rank());
  if (!axis) return axis.status();
  results.push_back(ctx.type(0));
  return Status::ok();
}

template <bool kLog>
Status softmaxKernel(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  Tensor& y = *ctx.outputs[0];
  const AxisSplit split = splitAtAxis(x.shape(), wrapAxis(ctx.attrs.getInt("axis", -1), x.rank()));
  return visitDType(x.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (kIsFloatStorage<T>) {
      const T* in = x.data<T>();
      T* out = y.data<T>();
      for (int64_t o = 0; o < split.outer; ++o) {
        for (int64_t i = 0; i < split.inner; ++i) {
          const int64_t base = o * split.extent * split.inner + i;
          auto at = [&](int64_t k) { return base + k * split.inner; };
          // Subtracting the max keeps exp from overflowing.
          double max = -std::numeric_limits<double>::infinity();
          for (int64_t k = 0; k < split.extent; ++k) max = std::max(max, loadAsDouble(in[at(k)]));
          double sum = 0.0;
          for (int64_t k = 0; k < split.extent; ++k) sum += std::exp(loadAsDouble(in[at(k)]) - max);
          const double logSum = std::log(sum);
          for (int64_t k = 0; k < split.extent; ++k) {
            const double shifted = loadAsDouble(in[at(k)]) - max;
            out[at(k)] = convertValue<T>(kLog ? shifted - logSum : std::exp(shifted) / sum);
          }
        }
      }
      return Status::ok();
    } else {
      return unsupportedDType(ctx, x.dtype());
    }
  });
}

// ---- layer_norm (x, scale, bias?) {axis = -1, epsilon = 1e-5} -> (y, mean?, inv_std_dev?)

// The dtype of the optional mean / inv_std_dev results: f32 (ONNX's default
// stash_type), or f64 for an f64 input.
DType statsDType(DType x) { return x == DType::F64 ? DType::F64 : DType::F32; }

// scale and bias broadcast to the normalised dims x.shape[axis:] without growing them.
Status checkNormalizedOperand(const InferContext& ctx, size_t i, const Shape& normalized,
                              std::string_view what) {
  const Shape& shape = ctx.type(i).shape;
  bool ok = shape.size() <= normalized.size();
  for (size_t d = 0; ok && d < shape.size(); ++d) {
    const Dim& s = shape[d];
    const Dim& n = normalized[normalized.size() - shape.size() + d];
    // Undecidable pairs (a symbol against another dim) are checked at run time.
    ok = s == Dim(1) || s == n || !s.isConstant() || !n.isConstant();
  }
  if (!ok)
    return ctx.error(what, " ", shapeStr(shape), " does not broadcast to the normalized dims ",
                     shapeStr(normalized));
  return Status::ok();
}

Status inferLayerNorm(const InferContext& ctx, std::vector<TensorType>& results) {
  const TensorType& x = ctx.type(0);
  KILN_RETURN_IF_ERROR(requireFloat(ctx, 0, "x"));
  Expected<int64_t> axis = normalizeAxis(ctx, ctx.attrs().getInt("axis", -1), x.rank());
  if (!axis) return axis.status();
  const Shape normalized(x.shape.begin() + *axis, x.shape.end());
  KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, 1));
  KILN_RETURN_IF_ERROR(checkNormalizedOperand(ctx, 1, normalized, "scale"));
  if (ctx.has(2)) {
    KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, 2));
    KILN_RETURN_IF_ERROR(checkNormalizedOperand(ctx, 2, normalized, "bias"));
  }
  results.push_back(x);
  Shape statsShape(x.shape.begin(), x.shape.begin() + *axis);
  statsShape.resize(x.rank(), Dim(1));
  for (int r = 1; r < ctx.numResults(); ++r) results.push_back({statsDType(x.dtype), statsShape});
  return Status::ok();
}

// Offsets into a scale/bias tensor for each of the `normalized` elements.
std::vector<int64_t> normalizedOffsets(const std::vector<int64_t>& normalized,
                                       const std::vector<int64_t>& operandShape) {
  const int64_t n = product(normalized);
  std::vector<int64_t> offsets(static_cast<size_t>(n));
  BroadcastWalker walk(normalized, {&operandShape});
  for (int64_t j = 0; j < n; ++j, walk.next()) offsets[static_cast<size_t>(j)] = walk.offset(0);
  return offsets;
}

// Writes row r of an optional mean / inv_std_dev result.
void storeStat(Tensor* stats, int64_t r, double value) {
  if (!stats) return;
  if (stats->dtype() == DType::F64) stats->data<double>()[r] = value;
  else stats->data<float>()[r] = convertValue<float>(value);
}

Status layerNormKernel(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  const Tensor& scale = *ctx.input(1);
  const Tensor* bias = ctx.input(2);
  const int64_t axis = wrapAxis(ctx.attrs.getInt("axis", -1), x.rank());
  const double epsilon = ctx.attrs.getFloat("epsilon", 1e-5);
  const std::vector<int64_t> normalized(x.shape().begin() + axis, x.shape().end());
  const int64_t cols = product(normalized);
  const int64_t rows = cols == 0 ? 0 : x.numElements() / cols;
  const std::vector<int64_t> scaleAt = normalizedOffsets(normalized, scale.shape());
  const std::vector<int64_t> biasAt =
      bias ? normalizedOffsets(normalized, bias->shape()) : std::vector<int64_t>{};
  Tensor* meanOut = ctx.outputs.size() > 1 ? ctx.outputs[1] : nullptr;
  Tensor* invStdOut = ctx.outputs.size() > 2 ? ctx.outputs[2] : nullptr;

  return visitDType(x.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (kIsFloatStorage<T>) {
      const T* in = x.data<T>();
      const T* ps = scale.data<T>();
      const T* pb = bias ? bias->data<T>() : nullptr;
      T* out = ctx.outputs[0]->data<T>();
      for (int64_t r = 0; r < rows; ++r) {
        const T* row = in + r * cols;
        double mean = 0.0;
        for (int64_t j = 0; j < cols; ++j) mean += loadAsDouble(row[j]);
        mean /= static_cast<double>(cols);
        double variance = 0.0;
        for (int64_t j = 0; j < cols; ++j) {
          const double diff = loadAsDouble(row[j]) - mean;
          variance += diff * diff;
        }
        variance /= static_cast<double>(cols);
        const double invStd = 1.0 / std::sqrt(variance + epsilon);
        for (int64_t j = 0; j < cols; ++j) {
          const auto col = static_cast<size_t>(j);
          double v = (loadAsDouble(row[j]) - mean) * invStd * loadAsDouble(ps[scaleAt[col]]);
          if (pb) v += loadAsDouble(pb[biasAt[col]]);
          out[r * cols + j] = convertValue<T>(v);
        }
        storeStat(meanOut, r, mean);
        storeStat(invStdOut, r, invStd);
      }
      return Status::ok();
    } else {
      return unsupportedDType(ctx, x.dtype());
    }
  });
}

// ---- cumsum (x, axis) {exclusive, reverse}

Status inferCumsum(const InferContext& ctx, std::vector<TensorType>& results) {
  const TensorType& x = ctx.type(0);
  KILN_RETURN_IF_ERROR(requireNumeric(ctx, 0, "x"));
  if (!isInteger(ctx.type(1).dtype))
    return ctx.error("axis must be an integer tensor, got ", ctx.type(1).str());
  KILN_RETURN_IF_ERROR(requireScalarLike(ctx, 1, "axis"));
  if (std::optional<std::vector<int64_t>> axis = knownInts(ctx, 1)) {
    Expected<int64_t> normalized = normalizeAxis(ctx, axis->at(0), x.rank());
    if (!normalized) return normalized.status();
  }
  results.push_back(x);
  return Status::ok();
}

Status cumsumKernel(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  Tensor& y = *ctx.outputs[0];
  const bool exclusive = ctx.attrs.getBool("exclusive", false);
  const bool reverse = ctx.attrs.getBool("reverse", false);
  const AxisSplit split = splitAtAxis(x.shape(), wrapAxis(ctx.input(1)->elementAsInt(0), x.rank()));
  return visitDType(x.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) {
      const T* in = x.data<T>();
      T* out = y.data<T>();
      for (int64_t o = 0; o < split.outer; ++o) {
        for (int64_t i = 0; i < split.inner; ++i) {
          const int64_t base = o * split.extent * split.inner + i;
          SumType<T> sum{0};
          for (int64_t step = 0; step < split.extent; ++step) {
            const int64_t k = reverse ? split.extent - 1 - step : step;
            const int64_t at = base + k * split.inner;
            const SumType<T> previous = sum;
            sum = wrappingAdd(sum, toSum(in[at]));
            out[at] = convertValue<T>(exclusive ? previous : sum);
          }
        }
      }
      return Status::ok();
    } else {
      return unsupportedDType(ctx, x.dtype());
    }
  });
}

// One FLOP per element of x.
double perInputElement(const CostContext& ctx) { return ctx.elements(0); }

void addReduce(OpRegistry& registry, OpKind kind, std::string_view summary, KernelFn kernel) {
  registry.add(OpDef{.kind = kind, .summary = summary, .operands = {"x", "axes"},
                     .minOperands = 1, .maxOperands = 2,
                     .attrs = {{"keepdims", AttrKind::Bool}, {"noop_with_empty_axes", AttrKind::Bool}},
                     .infer = inferReduce, .reference = kernel, .flops = perInputElement});
}

}  // namespace

// In place (operand x): softmax, layer_norm and cumsum finish reading a row's
// element before they write the same element of the result, so the result may
// take over x's slot.
void registerReductionOps(OpRegistry& registry) {
  addReduce(registry, OpKind::ReduceSum, "sum over axes (all when absent or empty)",
            reduceKernel<Reduction::Sum>);
  addReduce(registry, OpKind::ReduceMean, "mean over axes (all when absent or empty)",
            reduceKernel<Reduction::Mean>);
  addReduce(registry, OpKind::ReduceMax, "maximum over axes (all when absent or empty)",
            reduceKernel<Reduction::Max>);
  registry.add(OpDef{.kind = OpKind::Softmax, .summary = "exp(x) / sum(exp(x)) along axis",
                     .operands = {"x"}, .minOperands = 1, .maxOperands = 1,
                     .attrs = {{"axis", AttrKind::Int}},
                     .infer = inferSoftmax, .reference = softmaxKernel<false>, .inplaceOperands = {0},
                     .flops = perResultElement<5>});
  registry.add(OpDef{.kind = OpKind::LogSoftmax, .summary = "log(softmax(x)) along axis",
                     .operands = {"x"}, .minOperands = 1, .maxOperands = 1,
                     .attrs = {{"axis", AttrKind::Int}},
                     .infer = inferSoftmax, .reference = softmaxKernel<true>, .inplaceOperands = {0},
                     .flops = perResultElement<5>});
  registry.add(OpDef{.kind = OpKind::LayerNorm,
                     .summary = "normalises x over dims [axis, rank) then scales and shifts; "
                                "optional results mean and inv_std_dev",
                     .operands = {"x", "scale", "bias"}, .minOperands = 2, .maxOperands = 3,
                     .minResults = 1, .maxResults = 3,
                     .attrs = {{"axis", AttrKind::Int}, {"epsilon", AttrKind::Float}},
                     .infer = inferLayerNorm, .reference = layerNormKernel, .inplaceOperands = {0},
                     .flops = perResultElement<8>});
  registry.add(OpDef{.kind = OpKind::Cumsum, .summary = "running sum along the axis operand",
                     .operands = {"x", "axis"}, .minOperands = 2, .maxOperands = 2,
                     .attrs = {{"exclusive", AttrKind::Bool}, {"reverse", AttrKind::Bool}},
                     .infer = inferCumsum, .reference = cumsumKernel, .inplaceOperands = {0},
                     .flops = perInputElement});
}

}  // namespace kiln
