// Ops that the optimisation passes produce: attention (with its masks, RoPE,
// KV-cache append, GQA and layouts), rms_norm, the gelu / silu / swiglu
// activations and fused_elementwise (a chain of elementwise ops in one op).
// The matmul epilogue (bias, activation, residual) lives with matmul in
// linalg.cpp. Kernels are templated on the storage type so the f32 paths run
// plain typed loops; reductions (dot products, softmax sums, mean squares)
// accumulate in double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "ir/op_registry.h"
#include "ir/ops/op_helpers.h"

namespace kiln {
namespace {

using namespace ops;

// ---- attention (q, k, v, mask?, cos?, sin?, past_k?, past_v?)
// {heads, kv_heads, scale, causal, rope, qkv_layout, out_layout}
//   -> (out, present_k?, present_v?)

enum AttentionOperand : size_t { kQ, kK, kV, kMask, kCos, kSin, kPastK, kPastV };

enum class Layout { BHSD, BSD };

std::optional<Layout> parseLayout(const std::string& name) {
  if (name == "bhsd") return Layout::BHSD;
  if (name == "bsd") return Layout::BSD;
  return std::nullopt;
}

// Reads and checks the attributes shared by inference and the kernel.
struct AttentionAttrs {
  int64_t heads = 0, kvHeads = 0;
  double scale = 1.0;
  bool causal = false;
  bool rope = false;
  Layout qkvLayout = Layout::BHSD, outLayout = Layout::BHSD;
};

template <class Context>
Expected<AttentionAttrs> readAttentionAttrs(const Attributes& attrs, const Context& fail) {
  AttentionAttrs a;
  a.heads = attrs.getInt("heads");
  a.kvHeads = attrs.getInt("kv_heads");
  a.scale = attrs.getFloat("scale", 1.0);
  a.causal = attrs.getBool("causal");
  if (a.heads <= 0 || a.kvHeads <= 0)
    return fail("heads and kv_heads must be positive, got heads = ", a.heads, ", kv_heads = ", a.kvHeads);
  if (a.heads % a.kvHeads != 0)
    return fail("heads (", a.heads, ") is not a multiple of kv_heads (", a.kvHeads, ")");
  const std::string rope = attrs.getString("rope", "none");
  if (rope != "none" && rope != "half")
    return fail("unknown rope \"", rope, "\" (expected none or half)");
  a.rope = rope == "half";
  const std::string qkvLayout = attrs.getString("qkv_layout", "bhsd");
  const std::string outLayout = attrs.getString("out_layout", "bhsd");
  const std::optional<Layout> qkv = parseLayout(qkvLayout);
  if (!qkv) return fail("unknown qkv_layout \"", qkvLayout, "\" (expected bhsd or bsd)");
  const std::optional<Layout> out = parseLayout(outLayout);
  if (!out) return fail("unknown out_layout \"", outLayout, "\" (expected bhsd or bsd)");
  a.qkvLayout = *qkv;
  a.outLayout = *out;
  return a;
}

// The per-head view of a q/k/v operand: batch, heads, sequence and head dim.
struct HeadDims {
  Dim batch, heads, seq, headDim;
};

// Splits operand `i` into heads: [B, H, S, D] in bhsd, [B, S, H*D] in bsd
// (where H*D must divide by H).
Expected<HeadDims> headDims(const InferContext& ctx, size_t i, std::string_view what, Layout layout,
                            int64_t heads) {
  const Shape& shape = ctx.type(i).shape;
  if (layout == Layout::BHSD) {
    if (shape.size() != 4)
      return ctx.error(what, " must have rank 4 ([batch, heads, seq, head_dim]) in the bhsd layout, got ",
                       ctx.type(i).str());
    if (!mayBeEqual(shape[1], Dim(heads)))
      return ctx.error(what, " ", shapeStr(shape), " has ", shape[1].str(), " heads, expected ", heads);
    return HeadDims{shape[0], Dim(heads), shape[2], shape[3]};
  }
  if (shape.size() != 3)
    return ctx.error(what, " must have rank 3 ([batch, seq, heads*head_dim]) in the bsd layout, got ",
                     ctx.type(i).str());
  const std::optional<int64_t> width = shape[2].constant();
  if (width && *width % heads != 0)
    return ctx.error(what, " ", shapeStr(shape), ": last dim ", *width, " does not split into ", heads,
                     " heads");
  return HeadDims{shape[0], Dim(heads), shape[1], shape[2] / Dim(heads)};
}

Status requireDimMatch(const InferContext& ctx, const Dim& a, const Dim& b, std::string_view what) {
  if (!mayBeEqual(a, b)) return ctx.error(what, " differ: ", a.str(), " vs ", b.str());
  return Status::ok();
}

Status inferAttention(const InferContext& ctx, std::vector<TensorType>& results) {
  Expected<AttentionAttrs> attrs = readAttentionAttrs(
      ctx.attrs(), [&](const auto&... parts) -> Status { return ctx.error(parts...); });
  if (!attrs) return attrs.status();
  const AttentionAttrs& a = *attrs;
  if (ctx.numResults() == 2)
    return ctx.error("has 1 result (out) or 3 (out, present_k, present_v), got 2");
  KILN_RETURN_IF_ERROR(requireFloat(ctx, kQ, "q"));
  KILN_RETURN_IF_ERROR(requireSameDType(ctx, kQ, kK));
  KILN_RETURN_IF_ERROR(requireSameDType(ctx, kQ, kV));
  const DType dtype = ctx.type(kQ).dtype;

  Expected<HeadDims> q = headDims(ctx, kQ, "q", a.qkvLayout, a.heads);
  if (!q) return q.status();
  Expected<HeadDims> k = headDims(ctx, kK, "k", a.qkvLayout, a.kvHeads);
  if (!k) return k.status();
  Expected<HeadDims> v = headDims(ctx, kV, "v", a.qkvLayout, a.kvHeads);
  if (!v) return v.status();
  KILN_RETURN_IF_ERROR(requireDimMatch(ctx, q->batch, k->batch, "batch dims of q and k"));
  KILN_RETURN_IF_ERROR(requireDimMatch(ctx, q->batch, v->batch, "batch dims of q and v"));
  KILN_RETURN_IF_ERROR(requireDimMatch(ctx, k->seq, v->seq, "sequence lengths of k and v"));
  KILN_RETURN_IF_ERROR(requireDimMatch(ctx, q->headDim, k->headDim, "head dims of q and k"));
  const Dim& batch = q->batch;
  const Dim& seq = q->seq;
  const Dim& headDim = q->headDim.isUnknown() ? k->headDim : q->headDim;

  // The KV cache: past_k [B, Hkv, P, D] and past_v [B, Hkv, P, Dv], always bhsd.
  if (ctx.has(kPastK) != ctx.has(kPastV)) return ctx.error("past_k and past_v must be given together");
  Dim past(0);
  if (ctx.has(kPastK)) {
    KILN_RETURN_IF_ERROR(requireSameDType(ctx, kQ, kPastK));
    KILN_RETURN_IF_ERROR(requireSameDType(ctx, kQ, kPastV));
    Expected<HeadDims> pk = headDims(ctx, kPastK, "past_k", Layout::BHSD, a.kvHeads);
    if (!pk) return pk.status();
    Expected<HeadDims> pv = headDims(ctx, kPastV, "past_v", Layout::BHSD, a.kvHeads);
    if (!pv) return pv.status();
    KILN_RETURN_IF_ERROR(requireDimMatch(ctx, batch, pk->batch, "batch dims of q and past_k"));
    KILN_RETURN_IF_ERROR(requireDimMatch(ctx, batch, pv->batch, "batch dims of q and past_v"));
    KILN_RETURN_IF_ERROR(requireDimMatch(ctx, pk->seq, pv->seq, "sequence lengths of past_k and past_v"));
    KILN_RETURN_IF_ERROR(requireDimMatch(ctx, headDim, pk->headDim, "head dims of q and past_k"));
    KILN_RETURN_IF_ERROR(requireDimMatch(ctx, v->headDim, pv->headDim, "head dims of v and past_v"));
    past = pk->seq;
  }
  const Dim keys = past + k->seq;

  if (a.rope) {
    if (!ctx.has(kCos) || !ctx.has(kSin)) return ctx.error("rope = \"half\" needs both cos and sin");
    if (std::optional<int64_t> d = headDim.constant(); d && *d % 2 != 0)
      return ctx.error("rope = \"half\" needs an even head dim, got ", *d);
    // The rotation is per position: the new keys sit at the queries' positions.
    KILN_RETURN_IF_ERROR(requireDimMatch(ctx, seq, k->seq, "rope: sequence lengths of q and the new k"));
    const Shape table = {batch, Dim(1), seq, headDim};
    for (size_t i : {kCos, kSin}) {
      KILN_RETURN_IF_ERROR(requireSameDType(ctx, kQ, i));
      KILN_RETURN_IF_ERROR(requireBroadcastsTo(ctx, i, table, i == kCos ? "cos" : "sin",
                                               "[batch, 1, seq, head_dim] ="));
    }
  } else if (ctx.has(kCos) || ctx.has(kSin)) {
    return ctx.error("cos/sin are given but rope = \"none\"");
  }

  if (ctx.has(kMask)) {
    const DType maskType = ctx.type(kMask).dtype;
    if (maskType != DType::Bool && !isFloat(maskType))
      return ctx.error("mask must be bool (true = attend) or float (added to the scores), got ",
                       ctx.type(kMask).str());
    KILN_RETURN_IF_ERROR(requireBroadcastsTo(ctx, kMask, {batch, Dim(a.heads), seq, keys}, "mask",
                                             "the scores [batch, heads, seq, past + kv_seq] ="));
  }

  const Dim& valueDim = v->headDim;
  if (a.outLayout == Layout::BHSD) {
    results.push_back({dtype, {batch, Dim(a.heads), seq, valueDim}});
  } else {
    // heads * Dv written as v's width times the group size stays exact for symbolic widths.
    const Dim width = a.qkvLayout == Layout::BSD ? ctx.type(kV).shape[2] * Dim(a.heads / a.kvHeads)
                                                 : valueDim * Dim(a.heads);
    results.push_back({dtype, {batch, seq, width}});
  }
  if (ctx.numResults() == 3) {
    results.push_back({dtype, {batch, Dim(a.kvHeads), keys, headDim}});
    results.push_back({dtype, {batch, Dim(a.kvHeads), keys, valueDim}});
  }
  return Status::ok();
}

// Where element (b, h, s, 0) of a per-head tensor lies; the head dim is contiguous.
struct HeadStrides {
  int64_t batch = 0, head = 0, seq = 0;
};

HeadStrides headStrides(Layout layout, int64_t heads, int64_t seq, int64_t headDim) {
  if (layout == Layout::BHSD) return {heads * seq * headDim, seq * headDim, headDim};
  return {seq * heads * headDim, headDim, heads * headDim};
}

// The attention problem on concrete shapes (inference has validated them).
struct AttentionShape {
  int64_t batch, heads, kvHeads, seq, newKeys, past, keys, headDim, valueDim;
};

AttentionShape attentionShape(const KernelContext& ctx, const AttentionAttrs& a) {
  const std::vector<int64_t>& q = ctx.input(kQ)->shape();
  const std::vector<int64_t>& k = ctx.input(kK)->shape();
  const std::vector<int64_t>& v = ctx.input(kV)->shape();
  AttentionShape s{};
  s.batch = q[0];
  s.heads = a.heads;
  s.kvHeads = a.kvHeads;
  if (a.qkvLayout == Layout::BHSD) {
    s.seq = q[2], s.headDim = q[3], s.newKeys = k[2], s.valueDim = v[3];
  } else {
    s.seq = q[1], s.headDim = q[2] / a.heads, s.newKeys = k[1], s.valueDim = v[2] / a.kvHeads;
  }
  s.past = ctx.input(kPastK) ? ctx.input(kPastK)->shape()[2] : 0;
  s.keys = s.past + s.newKeys;
  return s;
}

// cos/sin broadcast over [B, 1, S, D]; rotate-half pairs element d with d +- D/2.
template <class T>
struct RopeTables {
  const T* cos = nullptr;
  const T* sin = nullptr;
  std::vector<int64_t> cosStrides, sinStrides;

  // y = x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1].
  template <class C>
  void apply(const T* x, int64_t b, int64_t s, int64_t headDim, C* y) const {
    const int64_t half = headDim / 2;
    const T* c = cos + b * cosStrides[0] + s * cosStrides[2];
    const T* sn = sin + b * sinStrides[0] + s * sinStrides[2];
    for (int64_t d = 0; d < headDim; ++d) {
      const C rotated = d < half ? -toCompute(x[d + half]) : toCompute(x[d - half]);
      y[d] = toCompute(x[d]) * toCompute(c[d * cosStrides[3]]) + rotated * toCompute(sn[d * sinStrides[3]]);
    }
  }
};

template <class T>
Status attentionLoops(const KernelContext& ctx, const AttentionAttrs& a) {
  using C = ComputeType<T>;
  const AttentionShape sh = attentionShape(ctx, a);
  const int64_t B = sh.batch, Hq = sh.heads, Hkv = sh.kvHeads, S = sh.seq, newKeys = sh.newKeys,
                P = sh.past, L = sh.keys, D = sh.headDim, Dv = sh.valueDim;
  const int64_t group = Hq / Hkv;

  std::optional<RopeTables<T>> rope;
  if (a.rope) {
    const std::vector<int64_t> table = {B, 1, S, D};
    rope = RopeTables<T>{ctx.input(kCos)->data<T>(), ctx.input(kSin)->data<T>(),
                         broadcastStrides(ctx.input(kCos)->shape(), table),
                         broadcastStrides(ctx.input(kSin)->shape(), table)};
  }
  auto load = [&](const T* x, int64_t b, int64_t s, int64_t n, bool rotate, C* y) {
    if (rotate) rope->apply(x, b, s, n, y);
    else for (int64_t d = 0; d < n; ++d) y[d] = toCompute(x[d]);
  };

  // q as [B, Hq, S, D]; keys and values with the cache prepended as [B, Hkv, L, D].
  const std::vector<size_t> size = {static_cast<size_t>(B * Hq * S * D), static_cast<size_t>(B * Hkv * L * D),
                                    static_cast<size_t>(B * Hkv * L * Dv)};
  std::vector<C> queries(size[0]), keys(size[1]), values(size[2]);
  const HeadStrides qAt = headStrides(a.qkvLayout, Hq, S, D);
  const HeadStrides kAt = headStrides(a.qkvLayout, Hkv, newKeys, D);
  const HeadStrides vAt = headStrides(a.qkvLayout, Hkv, newKeys, Dv);
  const T* q = ctx.input(kQ)->data<T>();
  const T* k = ctx.input(kK)->data<T>();
  const T* v = ctx.input(kV)->data<T>();
  const T* pastK = ctx.input(kPastK) ? ctx.input(kPastK)->data<T>() : nullptr;
  const T* pastV = ctx.input(kPastV) ? ctx.input(kPastV)->data<T>() : nullptr;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t s = 0; s < S; ++s)
        load(q + b * qAt.batch + h * qAt.head + s * qAt.seq, b, s, D, a.rope,
             queries.data() + ((b * Hq + h) * S + s) * D);
    for (int64_t h = 0; h < Hkv; ++h) {
      C* keyRows = keys.data() + (b * Hkv + h) * L * D;
      C* valueRows = values.data() + (b * Hkv + h) * L * Dv;
      for (int64_t p = 0; p < P; ++p) {
        load(pastK + ((b * Hkv + h) * P + p) * D, b, p, D, false, keyRows + p * D);
        load(pastV + ((b * Hkv + h) * P + p) * Dv, b, p, Dv, false, valueRows + p * Dv);
      }
      for (int64_t t = 0; t < newKeys; ++t) {
        load(k + b * kAt.batch + h * kAt.head + t * kAt.seq, b, t, D, a.rope, keyRows + (P + t) * D);
        load(v + b * vAt.batch + h * vAt.head + t * vAt.seq, b, t, Dv, false, valueRows + (P + t) * Dv);
      }
    }
  }
  if (ctx.outputs.size() == 3) {
    T* presentK = ctx.outputs[1]->data<T>();
    T* presentV = ctx.outputs[2]->data<T>();
    for (size_t i = 0; i < keys.size(); ++i) presentK[i] = fromCompute<T>(keys[i]);
    for (size_t i = 0; i < values.size(); ++i) presentV[i] = fromCompute<T>(values[i]);
  }

  // The mask as additive values (a false bool is -inf), indexed by its strides over [B, Hq, S, L].
  std::vector<double> mask;
  std::vector<int64_t> maskAt(4, 0);
  if (const Tensor* m = ctx.input(kMask)) {
    mask.resize(static_cast<size_t>(m->numElements()));
    const double blocked = -std::numeric_limits<double>::infinity();
    if (m->dtype() == DType::Bool) {
      for (size_t i = 0; i < mask.size(); ++i) mask[i] = m->data<bool>()[i] ? 0.0 : blocked;
    } else {
      for (size_t i = 0; i < mask.size(); ++i) mask[i] = m->elementAsDouble(static_cast<int64_t>(i));
    }
    maskAt = broadcastStrides(m->shape(), {B, Hq, S, L});
  }

  const HeadStrides outAt = headStrides(a.outLayout, Hq, S, Dv);
  T* out = ctx.outputs[0]->data<T>();
  std::vector<double> scores(static_cast<size_t>(L));
  std::vector<double> sum(static_cast<size_t>(Dv));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < Hq; ++h) {
      const C* keyRows = keys.data() + (b * Hkv + h / group) * L * D;
      const C* valueRows = values.data() + (b * Hkv + h / group) * L * Dv;
      for (int64_t i = 0; i < S; ++i) {
        const C* query = queries.data() + ((b * Hq + h) * S + i) * D;
        T* y = out + b * outAt.batch + h * outAt.head + i * outAt.seq;
        // Causal: query i sits at position i + (L - S) of the keys.
        const int64_t visible = a.causal ? std::clamp<int64_t>(i + (L - S) + 1, 0, L) : L;
        const double* maskRow = mask.empty() ? nullptr
                                             : mask.data() + b * maskAt[0] + h * maskAt[1] + i * maskAt[2];
        double highest = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < visible; ++j) {
          const C* key = keyRows + j * D;
          double dot = 0.0;
          for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(query[d]) * static_cast<double>(key[d]);
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
        for (int64_t j = 0; j < visible; ++j) {
          const double weight = std::exp(scores[static_cast<size_t>(j)] - highest);
          total += weight;
          if (weight == 0.0) continue;
          const C* value = valueRows + j * Dv;
          for (int64_t d = 0; d < Dv; ++d) sum[static_cast<size_t>(d)] += weight * static_cast<double>(value[d]);
        }
        for (int64_t d = 0; d < Dv; ++d) y[d] = fromCompute<T>(static_cast<C>(sum[static_cast<size_t>(d)] / total));
      }
    }
  }
  return Status::ok();
}

Status attentionKernel(const KernelContext& ctx) {
  Expected<AttentionAttrs> attrs = readAttentionAttrs(
      ctx.attrs, [](const auto&... parts) -> Status { return Status::error("attention: ", parts...); });
  if (!attrs) return attrs.status();
  const DType dtype = ctx.input(kQ)->dtype();
  return visitDType(dtype, [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (kIsFloatStorage<T>) return attentionLoops<T>(ctx, *attrs);
    else return unsupportedDType(ctx, dtype);
  });
}

}  // namespace

void registerFusedOps(OpRegistry& registry) {
  registry.add(OpDef{
      .name = "attention",
      .summary = "softmax(q k^T * scale + mask) v per head, with optional causal mask, rotate-half RoPE, "
                 "KV-cache append (present_k/v) and grouped kv heads",
      .operands = {"q", "k", "v", "mask", "cos", "sin", "past_k", "past_v"},
      .minOperands = 3, .maxOperands = 8, .minResults = 1, .maxResults = 3,
      .attrs = {{"heads", AttrKind::Int, true},
                {"kv_heads", AttrKind::Int, true},
                {"scale", AttrKind::Float, true},
                {"causal", AttrKind::Bool},
                {"rope", AttrKind::String},
                {"qkv_layout", AttrKind::String},
                {"out_layout", AttrKind::String}},
      .infer = inferAttention, .reference = attentionKernel});
}

}  // namespace kiln
