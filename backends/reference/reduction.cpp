// The reference kernels of the reductions and normalisations
// (ir/ops/reduction.cpp): reduce_sum / reduce_mean / reduce_max, softmax,
// log_softmax, layer_norm and cumsum. Float sums accumulate in double;
// integer sums stay in integers (wrapping like numpy).
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "backends/reference/kernel_helpers.h"
#include "backends/reference/kernel_table.h"

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
  const Tensor* residual = ctx.input(3);
  const int64_t residualRows = residual && cols > 0 ? residual->numElements() / cols : 0;

  return visitDType(x.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (kIsFloatStorage<T>) {
      const T* in = x.data<T>();
      const T* ps = scale.data<T>();
      const T* pb = bias ? bias->data<T>() : nullptr;
      T* out = ctx.outputs[0]->data<T>();
      // x + residual rounded to T, as an add op before the norm would give.
      std::vector<T> summed(residual ? static_cast<size_t>(cols) : 0);
      for (int64_t r = 0; r < rows; ++r) {
        const T* row = in + r * cols;
        if (residual) {
          const T* add = residual->data<T>() + r % residualRows * cols;
          for (int64_t j = 0; j < cols; ++j)
            summed[static_cast<size_t>(j)] = convertValue<T>(loadAsDouble(row[j]) + loadAsDouble(add[j]));
          row = summed.data();
        }
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

}  // namespace

void addReductionKernels(ReferenceKernelTable& table) {
  table.add(OpKind::ReduceSum, reduceKernel<Reduction::Sum>);
  table.add(OpKind::ReduceMean, reduceKernel<Reduction::Mean>);
  table.add(OpKind::ReduceMax, reduceKernel<Reduction::Max>);
  table.add(OpKind::Softmax, softmaxKernel<false>);
  table.add(OpKind::LogSoftmax, softmaxKernel<true>);
  table.add(OpKind::LayerNorm, layerNormKernel);
  table.add(OpKind::Cumsum, cumsumKernel);
}

}  // namespace kiln
