// latent_attention: multi-head latent attention over a cache of one latent
// row per token (ir/latent_attention.h). The latent_attention pass makes it;
// its reference kernel is backends/reference/latent_attention.cpp.
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "ir/latent_attention.h"
#include "ir/op_registry.h"
#include "ir/ops/op_helpers.h"

namespace kiln {
namespace {

using namespace ops;
using namespace latent;

bool sameDim(const Dim& a, const Dim& b) { return mayBeEqual(a, b); }

// The projections: key_up [H, d_q, r] (optional), value_up [H, r, d_v],
// rope_up [H, d_q, d_R] (exactly when d_R > 0).
Status inferUpProjections(const InferContext& ctx, const Attrs& a, int64_t queryDims) {
  if (ctx.has(kRopeUp) != (a.ropeDims > 0))
    return ctx.error("rope_up must be given exactly when rope_dims > 0 (rope_dims = ", a.ropeDims, ")");
  for (size_t i : {kKeyUp, kValueUp, kRopeUp}) {
    if (!ctx.has(i)) continue;
    const char* what = i == kKeyUp ? "key_up" : i == kValueUp ? "value_up" : "rope_up";
    KILN_RETURN_IF_ERROR(requireSameDType(ctx, kQ, i));
    KILN_RETURN_IF_ERROR(requireRank(ctx, i, 3, what));
    const Shape& shape = ctx.type(i).shape;
    if (!sameDim(shape[0], Dim(a.heads))) return ctx.error(what, " ", shapeStr(shape), " must have ", a.heads, " heads");
  }
  for (auto [i, width] : {std::pair{kKeyUp, a.rank}, {kRopeUp, a.ropeDims}}) {
    if (!ctx.has(i)) continue;
    const Shape& up = ctx.type(i).shape;
    if (!sameDim(up[1], Dim(queryDims)) || !sameDim(up[2], Dim(width)))
      return ctx.error(i == kKeyUp ? "key_up " : "rope_up ", shapeStr(up), " must be [heads, d_q, ",
                       i == kKeyUp ? "rank" : "rope_dims", "] = [", a.heads, ", ", queryDims, ", ", width, "]");
  }
  if (!sameDim(ctx.type(kValueUp).shape[1], Dim(a.rank)))
    return ctx.error("value_up ", shapeStr(ctx.type(kValueUp).shape), " must be [heads, rank = ", a.rank,
                     ", d_v]");
  return Status::ok();
}

// cos/sin tables [B, 1, S, D] (D even, every rope frequency a column pair of
// them) or inv_freq [F] (every frequency below F).
Status inferRope(const InferContext& ctx, const Attrs& a, const Dim& batch, const Dim& seq) {
  if (a.rope == Pairing::None) {
    if (ctx.has(kCos) || ctx.has(kSin) || ctx.has(kInvFreq))
      return ctx.error("cos/sin or inv_freq are given but rope = \"none\"");
    return Status::ok();
  }
  std::optional<int64_t> count;  // how many frequencies the operands hold
  if (ctx.has(kInvFreq)) {
    if (ctx.has(kCos) || ctx.has(kSin)) return ctx.error("rope takes cos and sin or inv_freq, not both");
    KILN_RETURN_IF_ERROR(requireFloat(ctx, kInvFreq, "inv_freq"));
    KILN_RETURN_IF_ERROR(requireRank(ctx, kInvFreq, 1, "inv_freq"));
    count = ctx.type(kInvFreq).shape[0].constant();
  } else {
    if (!ctx.has(kCos) || !ctx.has(kSin)) return ctx.error("rope needs both cos and sin, or inv_freq");
    const Dim width = ctx.type(kCos).shape.empty() ? Dim(1) : ctx.type(kCos).shape.back();
    for (size_t i : {kCos, kSin}) {
      KILN_RETURN_IF_ERROR(requireSameDType(ctx, kQ, i));
      KILN_RETURN_IF_ERROR(
          requireBroadcastsTo(ctx, i, {batch, Dim(1), seq, width}, i == kCos ? "cos" : "sin", "[batch, 1, seq, D] ="));
    }
    if (std::optional<int64_t> w = width.constant()) {
      if (*w % 2 != 0) return ctx.error("cos/sin tables must have an even width, got ", *w);
      count = *w / 2;
    }
  }
  for (int64_t f : a.ropeFrequencies)
    if (count && f >= *count)
      return ctx.error("rope_frequencies names frequency ", f, " but the rope operands hold ", *count);
  return Status::ok();
}

Status inferLatentAttention(const InferContext& ctx, std::vector<TensorType>& results) {
  Expected<Attrs> attrs = readAttrs(ctx.attrs());
  if (!attrs) return ctx.error(attrs.status().message());
  const Attrs& a = *attrs;
  KILN_RETURN_IF_ERROR(requireFloat(ctx, kQ, "q"));
  for (size_t i : {kLatent, kValueUp})
    if (!ctx.has(i)) return ctx.error("q, latent and value_up are required");
  KILN_RETURN_IF_ERROR(requireRank(ctx, kQ, 3, "q"));
  KILN_RETURN_IF_ERROR(requireRank(ctx, kLatent, 3, "latent"));
  KILN_RETURN_IF_ERROR(requireSameDType(ctx, kQ, kLatent));
  const Shape& q = ctx.type(kQ).shape;
  const Shape& latentShape = ctx.type(kLatent).shape;
  const Dim &batch = q[0], &seq = q[1];
  const int64_t rowWidth = a.rank + a.ropeDims;
  const std::optional<int64_t> qWidth = q[2].constant();
  if (!qWidth || *qWidth % a.heads != 0)
    return ctx.error("q ", shapeStr(q), " must be [batch, seq, heads * d_q] with static width, heads = ", a.heads);
  const int64_t queryDims = *qWidth / a.heads;
  if (!sameDim(latentShape[0], batch) || !sameDim(latentShape[1], seq) || !sameDim(latentShape[2], Dim(rowWidth)))
    return ctx.error("latent ", shapeStr(latentShape), " must be [batch, seq, rank + rope_dims] = [", batch.str(),
                     ", ", seq.str(), ", ", rowWidth, "]");
  KILN_RETURN_IF_ERROR(inferUpProjections(ctx, a, queryDims));

  Dim past(0);
  if (ctx.has(kPast)) {
    KILN_RETURN_IF_ERROR(requireDType(ctx, kPast, a.cacheType, "past (cache_dtype)"));
    KILN_RETURN_IF_ERROR(requireRank(ctx, kPast, 4, "past"));
    const Shape& p = ctx.type(kPast).shape;
    if (!sameDim(p[0], batch) || !sameDim(p[1], Dim(1)) || !sameDim(p[3], Dim(rowWidth)))
      return ctx.error("past ", shapeStr(p), " must be [batch, 1, past, rank + rope_dims = ", rowWidth, "]");
    past = p[2];
  }
  const Dim keys = past + seq;
  KILN_RETURN_IF_ERROR(inferRope(ctx, a, batch, seq));
  KILN_RETURN_IF_ERROR(requireAttentionMask(ctx, kMask, a.keyPaddingMask, a.heads, batch, seq, keys));
  if (ctx.numResults() > 2) return ctx.error("has 1 result (out) or 2 (out, present), got ", ctx.numResults());
  const DType dtype = ctx.type(kQ).dtype;
  results.push_back({dtype, {batch, seq, ctx.type(kValueUp).shape[2] * Dim(a.heads)}});
  if (ctx.numResults() == 2) results.push_back({a.cacheType, {batch, Dim(1), keys, Dim(rowWidth)}});
  return Status::ok();
}

// Per head and query: the latent and rope queries (2 d_q (r + d_R)), per key
// its score (2 (r + d_R)), softmax (5) and weighted sum (2 r), then W_UV (2 r d_v).
double latentAttentionFlops(const CostContext& ctx) {
  const Attributes& attrs = ctx.attrs();
  const double heads = static_cast<double>(attrs.getInt("heads", 1));
  const double rank = static_cast<double>(attrs.getInt("rank", 0));
  const double ropeDims = static_cast<double>(attrs.getInt("rope_dims", 0));
  const double queries = ctx.dim(kQ, 0) * ctx.dim(kQ, 1);
  double keys = ctx.dim(kLatent, 1);
  if (ctx.present(kPast)) keys += ctx.dim(kPast, 2);
  const double queryDims = ctx.dim(kQ, 2) / heads, valueDims = ctx.dim(kValueUp, 2);
  const double perQueryHead = 2 * queryDims * (rank + ropeDims) + keys * (4 * rank + 2 * ropeDims + 5) +
                              2 * rank * valueDims;
  return queries * heads * perQueryHead + 6 * queries * (heads + 1) * ropeDims;
}

}  // namespace

void registerLatentAttentionOps(OpRegistry& registry) {
  registry.add(OpDef{
      .kind = OpKind::LatentAttention,
      .summary = "multi-head latent attention over one cached row per token (latent c | rope key): scores "
                 "(q W_UK) c + rope(q W_QR) k_R, out W_UV^T sum p c; causal, masks, RoPE, KV-cache append",
      .operands = {"q", "latent", "key_up", "value_up", "mask", "cos", "sin", "past", "inv_freq", "rope_up"},
      .minOperands = 2, .maxOperands = 10, .minResults = 1, .maxResults = 2,
      .attrs = {{"heads", AttrKind::Int, true},
                {"rank", AttrKind::Int, true},
                {"rope_dims", AttrKind::Int},
                {"scale", AttrKind::Float, true},
                {"causal", AttrKind::Bool},
                {"rope", AttrKind::String},
                {"rope_frequencies", AttrKind::Ints},
                {"mask_layout", AttrKind::String},
                {"cache_dtype", AttrKind::String},
                // What the attention it replaced cached per token (keys and values of every kv
                // head): the "before" of `kiln inspect`'s KV line. Information only.
                {"source_kv_width", AttrKind::Int}},
      .infer = inferLatentAttention, .flops = latentAttentionFlops});
}

}  // namespace kiln
