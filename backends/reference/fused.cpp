// The reference kernels of the ops that the optimisation passes produce
// (ir/ops/fused.cpp): attention (with its masks, RoPE, KV-cache append, GQA
// and layouts), rms_norm, gelu / silu / swiglu and fused_elementwise.
// Kernels are templated on the storage type so the f32 paths run plain typed
// loops; reductions (dot products, softmax sums, mean squares) accumulate in
// double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "backends/reference/kernel_helpers.h"
#include "backends/reference/kernel_table.h"
#include "ir/attention.h"
#include "ir/elementwise_program.h"
#include "ir/relative_position.h"

namespace kiln {
namespace {

using namespace ops;
using namespace attention;
using AttentionAttrs = attention::Attrs;

// ---- attention

// Where element (b, h, s, 0) of a per-head tensor lies; the head dim is contiguous.
struct HeadStrides {
  int64_t batch = 0, head = 0, seq = 0;
};

// `width` is the row length of the bsd layouts: H*D, or (Hq + 2*Hkv)*D packed.
HeadStrides headStrides(Layout layout, int64_t heads, int64_t seq, int64_t headDim, int64_t width) {
  if (layout == Layout::BHSD) return {heads * seq * headDim, seq * headDim, headDim};
  return {seq * width, headDim, width};
}

// The attention problem on concrete shapes (inference has validated them).
struct AttentionShape {
  int64_t batch, heads, kvHeads, seq, newKeys, past, keys, headDim, valueDim;
};

AttentionShape attentionShape(const KernelContext& ctx, const AttentionAttrs& a) {
  const std::vector<int64_t>& q = ctx.input(kQ)->shape();
  AttentionShape s{};
  s.batch = q[0];
  s.heads = a.heads;
  s.kvHeads = a.kvHeads;
  if (a.qkvLayout == Layout::BSDPacked) {
    s.seq = q[1], s.headDim = q[2] / (a.heads + 2 * a.kvHeads), s.newKeys = q[1], s.valueDim = s.headDim;
  } else if (a.qkvLayout == Layout::BHSD) {
    const std::vector<int64_t>& k = ctx.input(kK)->shape();
    s.seq = q[2], s.headDim = q[3], s.newKeys = k[2], s.valueDim = ctx.input(kV)->shape()[3];
  } else {
    const std::vector<int64_t>& k = ctx.input(kK)->shape();
    s.seq = q[1], s.headDim = q[2] / a.heads, s.newKeys = k[1], s.valueDim = ctx.input(kV)->shape()[2] / a.kvHeads;
  }
  // A session's KV cache holds the past in place of the past_k operand.
  s.past = ctx.kvCache ? ctx.kvCache->past : ctx.input(kPastK) ? ctx.input(kPastK)->shape()[2] : 0;
  s.keys = s.past + s.newKeys;
  return s;
}

// cos and sin per (batch, position, d < width) in the compute type;
// batchStride is 0 when every batch shares one table. Element d turns with
// its partner (attention::ropePartner); the dims from width on are not turned.
template <class C>
struct RopeTables {
  std::vector<C> cos, sin;
  int64_t batchStride = 0, width = 0;
  bool interleaved = false;

  // y = x * cos + rotated(x) * sin, rotated(x)[d] = -+x[partner(d)], on the
  // first `width` of the head's `headDim` dims.
  template <class T>
  void apply(const T* x, int64_t b, int64_t s, int64_t headDim, C* y) const {
    const size_t row = static_cast<size_t>(b * batchStride + s * width);
    for (int64_t d = 0; d < width; ++d) {
      const C partner = toCompute(x[ropePartner(interleaved, d, width)]);
      const C rotated = ropeNegatesPartner(interleaved, d, width) ? -partner : partner;
      y[d] = toCompute(x[d]) * cos[row + static_cast<size_t>(d)] + rotated * sin[row + static_cast<size_t>(d)];
    }
    for (int64_t d = width; d < headDim; ++d) y[d] = toCompute(x[d]);
  }
};

// From the cos/sin operands, broadcast over [B, 1, S, D].
template <class T>
RopeTables<ComputeType<T>> ropeFromTables(const KernelContext& ctx, const AttentionShape& sh, int64_t D,
                                          bool interleaved) {
  const int64_t B = sh.batch, S = sh.seq;
  const std::vector<int64_t> table = {B, 1, S, D};
  const std::vector<int64_t> cosAt = broadcastStrides(ctx.input(kCos)->shape(), table);
  const std::vector<int64_t> sinAt = broadcastStrides(ctx.input(kSin)->shape(), table);
  const T* cos = ctx.input(kCos)->data<T>();
  const T* sin = ctx.input(kSin)->data<T>();
  RopeTables<ComputeType<T>> rope{{}, {}, S * D, D, interleaved};
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t d = 0; d < D; ++d) {
        rope.cos.push_back(toCompute(cos[b * cosAt[0] + s * cosAt[2] + d * cosAt[3]]));
        rope.sin.push_back(toCompute(sin[b * sinAt[0] + s * sinAt[2] + d * sinAt[3]]));
      }
  return rope;
}

// From inv_freq: the new tokens sit at positions P..P+S-1 (P = keys - S, the
// past length); angle = position * inv_freq[i] for both dims of pair i,
// cos and sin evaluated in double.
template <class C>
RopeTables<C> ropeFromFrequencies(const Tensor& invFreq, const AttentionShape& sh, int64_t D, bool interleaved) {
  const int64_t S = sh.seq;
  const int64_t first = sh.keys - S;
  RopeTables<C> rope{std::vector<C>(static_cast<size_t>(S * D)), std::vector<C>(static_cast<size_t>(S * D)), 0, D,
                     interleaved};
  for (int64_t s = 0; s < S; ++s)
    for (int64_t d = 0; d < D; ++d) {
      const double angle = static_cast<double>(first + s) * invFreq.elementAsDouble(ropeFrequency(interleaved, d, D));
      rope.cos[static_cast<size_t>(s * D + d)] = static_cast<C>(std::cos(angle));
      rope.sin[static_cast<size_t>(s * D + d)] = static_cast<C>(std::sin(angle));
    }
  return rope;
}

template <class T>
Status attentionLoops(const KernelContext& ctx, const AttentionAttrs& a) {
  using C = ComputeType<T>;
  const AttentionShape sh = attentionShape(ctx, a);
  const int64_t B = sh.batch, Hq = sh.heads, Hkv = sh.kvHeads, S = sh.seq, newKeys = sh.newKeys,
                P = sh.past, L = sh.keys, D = sh.headDim, Dv = sh.valueDim;
  const int64_t group = Hq / Hkv;

  std::optional<RopeTables<C>> rope;
  const int64_t width = ropeWidth(a, D);
  if (a.rope)
    rope = ctx.input(kInvFreq) ? ropeFromFrequencies<C>(*ctx.input(kInvFreq), sh, width, a.ropeInterleaved)
                               : ropeFromTables<T>(ctx, sh, width, a.ropeInterleaved);
  auto load = [&](const T* x, int64_t b, int64_t s, int64_t n, bool rotate, C* y) {
    if (rotate) rope->apply(x, b, s, n, y);
    else for (int64_t d = 0; d < n; ++d) y[d] = toCompute(x[d]);
  };

  // Where the rows of q, k and v start, and their strides.
  const T* q = ctx.input(kQ)->data<T>();
  const T *k = nullptr, *v = nullptr;
  HeadStrides qAt, kAt, vAt;
  if (a.qkvLayout == Layout::BSDPacked) {
    const int64_t width = (Hq + 2 * Hkv) * D;
    k = q + Hq * D;
    v = k + Hkv * D;
    qAt = kAt = vAt = headStrides(a.qkvLayout, Hq + 2 * Hkv, S, D, width);
  } else {
    k = ctx.input(kK)->data<T>();
    v = ctx.input(kV)->data<T>();
    qAt = headStrides(a.qkvLayout, Hq, S, D, Hq * D);
    kAt = headStrides(a.qkvLayout, Hkv, newKeys, D, Hkv * D);
    vAt = headStrides(a.qkvLayout, Hkv, newKeys, Dv, Hkv * Dv);
  }

  // Key and value rows: per (batch, kv head) `rowsPerHead` rows of D (Dv),
  // the past at [0, P) and the new tokens (k roped) at [P, L). A session's
  // KV cache holds them between runs: the past stays where it is and the new
  // rows are appended in place. Otherwise they go to present_k/present_v
  // (the past copied in first, as the op's results require) or, without
  // those results, to scratch rows.
  T *keyRows = nullptr, *valueRows = nullptr;
  int64_t rowsPerHead = L;
  std::vector<T> scratchKeys, scratchValues;
  if (const KvCacheBinding* cache = ctx.kvCache) {
    if (L > cache->capacity)
      return Status::error("attention: ", P, " cached + ", newKeys, " new tokens exceed the KV cache capacity ",
                           cache->capacity);
    keyRows = static_cast<T*>(cache->keys);
    valueRows = static_cast<T*>(cache->values);
    rowsPerHead = cache->capacity;
  } else {
    if (ctx.outputs.size() == 3) {
      keyRows = ctx.outputs[1]->data<T>();
      valueRows = ctx.outputs[2]->data<T>();
    } else {
      scratchKeys.resize(static_cast<size_t>(B * Hkv * L * D));
      scratchValues.resize(static_cast<size_t>(B * Hkv * L * Dv));
      keyRows = scratchKeys.data();
      valueRows = scratchValues.data();
    }
    const T* pastK = ctx.input(kPastK) ? ctx.input(kPastK)->data<T>() : nullptr;
    const T* pastV = ctx.input(kPastV) ? ctx.input(kPastV)->data<T>() : nullptr;
    for (int64_t head = 0; head < B * Hkv && P > 0; ++head) {
      std::copy_n(pastK + head * P * D, P * D, keyRows + head * L * D);
      std::copy_n(pastV + head * P * Dv, P * Dv, valueRows + head * L * Dv);
    }
  }

  // q as [B, Hq, S, D] in the compute type; the new k/v rows after the past.
  std::vector<C> queries(static_cast<size_t>(B * Hq * S * D));
  std::vector<C> row(static_cast<size_t>(std::max(D, Dv)));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t s = 0; s < S; ++s)
        load(q + b * qAt.batch + h * qAt.head + s * qAt.seq, b, s, D, a.rope,
             queries.data() + ((b * Hq + h) * S + s) * D);
    for (int64_t h = 0; h < Hkv; ++h) {
      T* keyHead = keyRows + (b * Hkv + h) * rowsPerHead * D;
      T* valueHead = valueRows + (b * Hkv + h) * rowsPerHead * Dv;
      for (int64_t t = 0; t < newKeys; ++t) {
        load(k + b * kAt.batch + h * kAt.head + t * kAt.seq, b, t, D, a.rope, row.data());
        for (int64_t d = 0; d < D; ++d) keyHead[(P + t) * D + d] = fromCompute<T>(row[static_cast<size_t>(d)]);
        const T* value = v + b * vAt.batch + h * vAt.head + t * vAt.seq;
        std::copy_n(value, Dv, valueHead + (P + t) * Dv);
      }
    }
  }

  const AdditiveMask mask = additiveMask(ctx.input(kMask), a.keyPaddingMask, {B, Hq, S, L});
  const std::vector<int64_t>& maskAt = mask.strides;
  const HeadStrides outAt = headStrides(a.outLayout, Hq, S, Dv, Hq * Dv);
  T* out = ctx.outputs[0]->data<T>();
  std::vector<double> scores(static_cast<size_t>(L));
  std::vector<double> sum(static_cast<size_t>(Dv));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < Hq; ++h) {
      const T* keyHead = keyRows + (b * Hkv + h / group) * rowsPerHead * D;
      const T* valueHead = valueRows + (b * Hkv + h / group) * rowsPerHead * Dv;
      for (int64_t i = 0; i < S; ++i) {
        const C* query = queries.data() + ((b * Hq + h) * S + i) * D;
        T* y = out + b * outAt.batch + h * outAt.head + i * outAt.seq;
        // Causal: query i sits at position i + (L - S) of the keys.
        const int64_t visible = a.causal ? std::clamp<int64_t>(i + (L - S) + 1, 0, L) : L;
        const int64_t first = firstVisibleKey(a, visible);
        const double* maskRow = mask.values.empty() ? nullptr
                                                    : mask.values.data() + b * maskAt[0] + h * maskAt[1] + i * maskAt[2];
        double highest = -std::numeric_limits<double>::infinity();
        for (int64_t j = first; j < visible; ++j) {
          const T* key = keyHead + j * D;
          double dot = 0.0;
          for (int64_t d = 0; d < D; ++d)
            dot += static_cast<double>(query[d]) * static_cast<double>(toCompute(key[d]));
          double score = dot * a.scale;
          if (maskRow) score += maskRow[j * maskAt[3]];
          scores[static_cast<size_t>(j)] = score;
          if (score > highest) highest = score;
        }
        // A row with every key masked out attends to nothing: zeros, not NaN.
        if (highest == -std::numeric_limits<double>::infinity()) {
          for (int64_t d = 0; d < Dv; ++d) y[d] = fromCompute<T>(C{0});
          continue;
        }
        double total = 0.0;
        std::fill(sum.begin(), sum.end(), 0.0);
        for (int64_t j = first; j < visible; ++j) {
          const double weight = std::exp(scores[static_cast<size_t>(j)] - highest);
          total += weight;
          if (weight == 0.0) continue;
          const T* value = valueHead + j * Dv;
          for (int64_t d = 0; d < Dv; ++d)
            sum[static_cast<size_t>(d)] += weight * static_cast<double>(toCompute(value[d]));
        }
        for (int64_t d = 0; d < Dv; ++d) y[d] = fromCompute<T>(static_cast<C>(sum[static_cast<size_t>(d)] / total));
      }
    }
  }
  return Status::ok();
}

Status attentionKernel(const KernelContext& ctx) {
  Expected<AttentionAttrs> attrs = readAttrs(ctx.attrs);
  if (!attrs) return Status::error("attention: ", attrs.status().message());
  const DType dtype = ctx.input(kQ)->dtype();
  return visitDType(dtype, [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (kIsFloatStorage<T>) return attentionLoops<T>(ctx, *attrs);
    else return unsupportedDType(ctx, dtype);
  });
}

// ---- rms_norm: x / sqrt(mean(x^2 over axis..last) + epsilon) * scale

template <class T>
void rmsNormLoops(const KernelContext& ctx) {
  using C = ComputeType<T>;
  const Tensor& x = *ctx.input(0);
  const Tensor* scale = ctx.input(1);
  const int64_t axis = wrapAxis(ctx.attrs.getInt("axis", -1), x.rank());
  const double epsilon = ctx.attrs.getFloat("epsilon", 1e-5);
  const std::vector<int64_t> normalized(x.shape().begin() + axis, x.shape().end());
  const int64_t cols = product(normalized);
  const int64_t rows = cols == 0 ? 0 : x.numElements() / cols;
  // The scale element of each normalized position.
  std::vector<C> scaleRow(static_cast<size_t>(cols), C{1});
  if (scale) {
    BroadcastWalker walk(normalized, {&scale->shape()});
    for (int64_t j = 0; j < cols; ++j, walk.next())
      scaleRow[static_cast<size_t>(j)] = toCompute(scale->data<T>()[walk.offset(0)]);
  }
  const T* in = x.data<T>();
  T* out = ctx.outputs[0]->data<T>();
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = in + r * cols;
    double squares = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
      const double value = toCompute(row[j]);
      squares += value * value;
    }
    const double inverseRms = 1.0 / std::sqrt(squares / static_cast<double>(cols) + epsilon);
    for (int64_t j = 0; j < cols; ++j)
      out[r * cols + j] = fromCompute<T>(
          static_cast<C>(toCompute(row[j]) * inverseRms * scaleRow[static_cast<size_t>(j)]));
  }
}

Status rmsNormKernel(const KernelContext& ctx) {
  const DType dtype = ctx.input(0)->dtype();
  return visitDType(dtype, [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (kIsFloatStorage<T>) {
      rmsNormLoops<T>(ctx);
      return Status::ok();
    } else {
      return unsupportedDType(ctx, dtype);
    }
  });
}

// ---- gelu (x) {approximate = "none" | "tanh"}, silu (x)

bool geluIsTanh(const Attributes& attrs) { return attrs.getString("approximate", "none") == "tanh"; }

// y[i] = fn(x[i]) in the compute type, for the float dtypes.
template <class Fn>
Status floatUnaryKernel(const KernelContext& ctx, Fn fn) {
  const Tensor& x = *ctx.input(0);
  return visitDType(x.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (kIsFloatStorage<T>) {
      const T* in = x.data<T>();
      T* out = ctx.outputs[0]->data<T>();
      const int64_t n = x.numElements();
      for (int64_t i = 0; i < n; ++i) out[i] = fromCompute<T>(fn(toCompute(in[i])));
      return Status::ok();
    } else {
      return unsupportedDType(ctx, x.dtype());
    }
  });
}

Status geluKernel(const KernelContext& ctx) {
  if (geluIsTanh(ctx.attrs)) return floatUnaryKernel(ctx, [](auto x) { return geluTanh(x); });
  return floatUnaryKernel(ctx, [](auto x) { return geluErf(x); });
}

Status siluKernel(const KernelContext& ctx) {
  return floatUnaryKernel(ctx, [](auto x) { return silu(x); });
}

// ---- swiglu (gate, up) or swiglu (x) on packed gate | up

template <class T>
void swigluPackedLoops(const Tensor& x, Tensor& y) {
  const T* in = x.data<T>();
  T* out = y.data<T>();
  const int64_t half = y.shape().back();
  const int64_t rows = half == 0 ? 0 : y.numElements() / half;
  for (int64_t r = 0; r < rows; ++r) {
    const T* gate = in + r * 2 * half;
    const T* up = gate + half;
    for (int64_t j = 0; j < half; ++j)
      out[r * half + j] = fromCompute<T>(silu(toCompute(gate[j])) * toCompute(up[j]));
  }
}

Status swigluKernel(const KernelContext& ctx) {
  const Tensor& gate = *ctx.input(0);
  Tensor& y = *ctx.outputs[0];
  return visitDType(gate.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (kIsFloatStorage<T>) {
      if (!ctx.input(1)) {
        swigluPackedLoops<T>(gate, y);
        return Status::ok();
      }
      const Tensor& up = *ctx.input(1);
      const T* g = gate.data<T>();
      const T* u = up.data<T>();
      T* out = y.data<T>();
      const int64_t n = y.numElements();
      if (gate.shape() == y.shape() && up.shape() == y.shape()) {
        for (int64_t i = 0; i < n; ++i) out[i] = fromCompute<T>(silu(toCompute(g[i])) * toCompute(u[i]));
      } else {
        BroadcastWalker walk(y.shape(), {&gate.shape(), &up.shape()});
        for (int64_t i = 0; i < n; ++i, walk.next())
          out[i] = fromCompute<T>(silu(toCompute(g[walk.offset(0)])) * toCompute(u[walk.offset(1)]));
      }
      return Status::ok();
    } else {
      return unsupportedDType(ctx, gate.dtype());
    }
  });
}

// ---- relative_position_bias (table) -> [H, S, T]

Status relativePositionBiasKernel(const KernelContext& ctx) {
  const Tensor& table = *ctx.input(0);
  Tensor& y = *ctx.outputs[0];
  const int64_t buckets = table.shape()[0], heads = table.shape()[1];
  const int64_t queries = y.shape()[1], keys = y.shape()[2];
  const bool bidirectional = ctx.attrs.getBool("bidirectional", false);
  const int64_t maxDistance = ctx.attrs.getInt("max_distance");
  // One bucket per distance j - i in [1 - S, T - 1], not per element.
  std::vector<int64_t> bucketAt(static_cast<size_t>(std::max<int64_t>(queries + keys - 1, 0)));
  for (size_t d = 0; d < bucketAt.size(); ++d)
    bucketAt[d] = relative_position::bucket(static_cast<int64_t>(d) - (queries - 1), buckets, maxDistance,
                                            bidirectional);
  return visitDType(table.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (kIsFloatStorage<T>) {
      const T* rows = table.data<T>();
      T* out = y.data<T>();
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < queries; ++i)
          for (int64_t j = 0; j < keys; ++j)
            *out++ = rows[bucketAt[static_cast<size_t>(j - i + queries - 1)] * heads + h];
      return Status::ok();
    } else {
      return unsupportedDType(ctx, table.dtype());
    }
  });
}

// ---- fused_elementwise (x0, x1, ...) {program}

template <class C>
void applyElementOp(ElementOp op, const C* a, const C* b, C* y, int64_t n) {
  switch (op) {
    case ElementOp::Add: for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i]; break;
    case ElementOp::Sub: for (int64_t i = 0; i < n; ++i) y[i] = a[i] - b[i]; break;
    case ElementOp::Mul: for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i]; break;
    case ElementOp::Div: for (int64_t i = 0; i < n; ++i) y[i] = a[i] / b[i]; break;
    case ElementOp::Pow: for (int64_t i = 0; i < n; ++i) y[i] = std::pow(a[i], b[i]); break;
    case ElementOp::Max:
      for (int64_t i = 0; i < n; ++i)
        y[i] = std::isnan(a[i]) || std::isnan(b[i]) ? std::numeric_limits<C>::quiet_NaN() : a[i] < b[i] ? b[i] : a[i];
      break;
    case ElementOp::Min:
      for (int64_t i = 0; i < n; ++i)
        y[i] = std::isnan(a[i]) || std::isnan(b[i]) ? std::numeric_limits<C>::quiet_NaN() : b[i] < a[i] ? b[i] : a[i];
      break;
    case ElementOp::Neg: for (int64_t i = 0; i < n; ++i) y[i] = -a[i]; break;
    case ElementOp::Exp: for (int64_t i = 0; i < n; ++i) y[i] = std::exp(a[i]); break;
    case ElementOp::Log: for (int64_t i = 0; i < n; ++i) y[i] = std::log(a[i]); break;
    case ElementOp::Sqrt: for (int64_t i = 0; i < n; ++i) y[i] = std::sqrt(a[i]); break;
    case ElementOp::Reciprocal: for (int64_t i = 0; i < n; ++i) y[i] = C{1} / a[i]; break;
    case ElementOp::Tanh: for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(a[i]); break;
    case ElementOp::Erf: for (int64_t i = 0; i < n; ++i) y[i] = std::erf(a[i]); break;
    case ElementOp::Sigmoid: for (int64_t i = 0; i < n; ++i) y[i] = C{1} / (C{1} + std::exp(-a[i])); break;
    // `x < 0 ? 0 : x` keeps NaN, as the relu op does.
    case ElementOp::Relu: for (int64_t i = 0; i < n; ++i) y[i] = a[i] < C{0} ? C{0} : a[i]; break;
    case ElementOp::Gelu: for (int64_t i = 0; i < n; ++i) y[i] = geluErf(a[i]); break;
    case ElementOp::GeluTanh: for (int64_t i = 0; i < n; ++i) y[i] = geluTanh(a[i]); break;
    case ElementOp::Silu: for (int64_t i = 0; i < n; ++i) y[i] = silu(a[i]); break;
    // Integer programs only (programDTypes keeps them out of float ones).
    case ElementOp::Abs: case ElementOp::Equal: case ElementOp::Less: case ElementOp::Greater:
    case ElementOp::Not: case ElementOp::And: case ElementOp::Or: case ElementOp::CastI32:
    case ElementOp::CastI64: case ElementOp::CastBool:
      break;
  }
}

// An integer result wrapped to `dtype`'s width, as that dtype's op computes it.
int64_t wrapTo(DType dtype, uint64_t v) {
  switch (dtype) {
    case DType::I32: return static_cast<int32_t>(v);
    case DType::I8: return static_cast<int8_t>(v);
    case DType::U8: return static_cast<uint8_t>(v);
    case DType::Bool: return v != 0;
    default: return static_cast<int64_t>(v);
  }
}

// One integer-program instruction; `dtype` is its value's.
int64_t applyIndexOp(ElementOp op, int64_t a, int64_t b, DType dtype) {
  const auto ua = static_cast<uint64_t>(a), ub = static_cast<uint64_t>(b);
  switch (op) {
    case ElementOp::Add: return wrapTo(dtype, ua + ub);
    case ElementOp::Sub: return wrapTo(dtype, ua - ub);
    case ElementOp::Mul: return wrapTo(dtype, ua * ub);
    case ElementOp::Max: return a < b ? b : a;
    case ElementOp::Min: return b < a ? b : a;
    case ElementOp::Neg: return wrapTo(dtype, 0 - ua);
    case ElementOp::Abs: return a < 0 ? wrapTo(dtype, 0 - ua) : a;
    case ElementOp::Equal: return a == b;
    case ElementOp::Less: return a < b;
    case ElementOp::Greater: return a > b;
    case ElementOp::Not: return !a;
    case ElementOp::And: return a && b;
    case ElementOp::Or: return a || b;
    case ElementOp::CastI32: case ElementOp::CastI64: case ElementOp::CastBool: return wrapTo(dtype, ua);
    default: return 0;  // float ops: programDTypes keeps them out
  }
}

// An integer program, element by element (index arithmetic: small tensors).
Status indexProgramLoops(const KernelContext& ctx, const std::vector<ProgramInstruction>& program) {
  std::vector<DType> operandTypes;
  std::vector<const std::vector<int64_t>*> shapes;
  for (const Tensor* input : ctx.inputs) {
    operandTypes.push_back(input->dtype());
    shapes.push_back(&input->shape());
  }
  Expected<std::vector<DType>> dtypes = programDTypes(program, operandTypes);
  if (!dtypes) return Status::error("fused_elementwise: ", dtypes.status().message());
  Tensor& y = *ctx.outputs[0];
  BroadcastWalker walk(y.shape(), shapes);
  std::vector<int64_t> operands(ctx.inputs.size()), values(program.size());
  auto argument = [&](const ProgramArg& arg) {
    return arg.kind == ProgramArg::Kind::Operand ? operands[arg.index]
           : arg.kind == ProgramArg::Kind::Value ? values[arg.index]
                                                 : static_cast<int64_t>(arg.literal);
  };
  for (int64_t i = 0; i < y.numElements(); ++i, walk.next()) {
    for (size_t k = 0; k < operands.size(); ++k) operands[k] = ctx.inputs[k]->elementAsInt(walk.offset(k));
    for (size_t r = 0; r < program.size(); ++r)
      values[r] = applyIndexOp(program[r].op, argument(program[r].args[0]),
                               program[r].args.size() > 1 ? argument(program[r].args[1]) : 0, (*dtypes)[r]);
    visitDType(y.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_integral_v<T>) y.data<T>()[i] = static_cast<T>(values.back());
    });
  }
  return Status::ok();
}

// Runs the program a block of elements at a time: each instruction is one
// tight loop over the block, so the dispatch cost is per block, not per element.
template <class T>
void fusedElementwiseLoops(const KernelContext& ctx, const std::vector<ProgramInstruction>& program) {
  using C = ComputeType<T>;
  constexpr int64_t kBlock = 256;
  const size_t numOperands = ctx.inputs.size();
  Tensor& y = *ctx.outputs[0];
  const int64_t n = y.numElements();
  bool broadcasts = false;
  std::vector<const std::vector<int64_t>*> shapes;
  for (size_t k = 0; k < numOperands; ++k) {
    shapes.push_back(&ctx.input(k)->shape());
    broadcasts = broadcasts || ctx.input(k)->shape() != y.shape();
  }
  BroadcastWalker walk(y.shape(), shapes);

  std::vector<C> operands(numOperands * kBlock), values(program.size() * kBlock);
  // Literal arguments point into blocks filled with their value.
  std::vector<std::vector<C>> literals;
  std::vector<std::vector<const C*>> args(program.size());
  for (size_t r = 0; r < program.size(); ++r)
    for (const ProgramArg& arg : program[r].args) {
      switch (arg.kind) {
        case ProgramArg::Kind::Operand: args[r].push_back(operands.data() + arg.index * kBlock); break;
        case ProgramArg::Kind::Value: args[r].push_back(values.data() + arg.index * kBlock); break;
        case ProgramArg::Kind::Literal:
          literals.emplace_back(kBlock, static_cast<C>(arg.literal));
          args[r].push_back(literals.back().data());
          break;
      }
    }

  T* out = y.data<T>();
  const C* result = values.data() + (program.size() - 1) * kBlock;
  for (int64_t base = 0; base < n; base += kBlock) {
    const int64_t m = std::min(kBlock, n - base);
    for (int64_t i = 0; i < m; ++i) {
      for (size_t k = 0; k < numOperands; ++k)
        operands[k * kBlock + static_cast<size_t>(i)] =
            toCompute(ctx.input(k)->data<T>()[broadcasts ? walk.offset(k) : base + i]);
      if (broadcasts) walk.next();
    }
    for (size_t r = 0; r < program.size(); ++r)
      applyElementOp(program[r].op, args[r][0], args[r].size() > 1 ? args[r][1] : nullptr,
                     values.data() + r * kBlock, m);
    for (int64_t i = 0; i < m; ++i) out[base + i] = fromCompute<T>(result[i]);
  }
}

Status fusedElementwiseKernel(const KernelContext& ctx) {
  const ElementwiseProgram* program = ctx.attrs.getProgram("program");
  if (!program)
    return Status::error("fused_elementwise: program \"", ctx.attrs.getString("program"), "\" is not parsed");
  const DType dtype = ctx.input(0)->dtype();
  if (!isFloat(dtype)) return indexProgramLoops(ctx, program->instructions);
  return visitDType(dtype, [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (kIsFloatStorage<T>) {
      fusedElementwiseLoops<T>(ctx, program->instructions);
      return Status::ok();
    } else {
      return unsupportedDType(ctx, dtype);
    }
  });
}

}  // namespace

void addFusedKernels(ReferenceKernelTable& table) {
  table.add(OpKind::Attention, attentionKernel);
  table.add(OpKind::RmsNorm, rmsNormKernel);
  table.add(OpKind::Gelu, geluKernel);
  table.add(OpKind::Silu, siluKernel);
  table.add(OpKind::Swiglu, swigluKernel);
  table.add(OpKind::RelativePositionBias, relativePositionBiasKernel);
  table.add(OpKind::FusedElementwise, fusedElementwiseKernel);
}

}  // namespace kiln
