// Ops that the optimisation passes produce: attention (with its masks, RoPE,
// KV-cache append, GQA and layouts), rms_norm, the gelu / silu / swiglu
// activations and fused_elementwise (a chain of elementwise ops in one op).
// The matmul epilogue (bias, activation, residual) lives with matmul in
// linalg.cpp. Their reference kernels: backends/reference/fused.cpp.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/attention.h"
#include "ir/elementwise_program.h"
#include "ir/op_registry.h"
#include "ir/ops/op_helpers.h"

namespace kiln {
namespace {

using namespace ops;

// ---- attention (q, k?, v?, mask?, cos?, sin?, past_k?, past_v?, inv_freq?)
// {heads, kv_heads, scale, causal, rope, qkv_layout, out_layout, mask_layout}
//   -> (out, present_k?, present_v?)

using namespace attention;
using AttentionAttrs = attention::Attrs;

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
    return ctx.error(what, " must have rank 3 ([batch, seq, heads*head_dim]) in the bsd layouts, got ",
                     ctx.type(i).str());
  const std::optional<int64_t> width = shape[2].constant();
  if (width && *width % heads != 0)
    return ctx.error(what, " ", shapeStr(shape), ": last dim ", *width, " does not split into ", heads,
                     layout == Layout::BSDPacked ? " head rows (heads + 2*kv_heads)" : " heads");
  return HeadDims{shape[0], Dim(heads), shape[1], shape[2] / Dim(heads)};
}

Status requireDimMatch(const InferContext& ctx, const Dim& a, const Dim& b, std::string_view what) {
  if (!mayBeEqual(a, b)) return ctx.error(what, " differ: ", a.str(), " vs ", b.str());
  return Status::ok();
}

// q, k and v per head: three operands, or the packed rows of q.
struct QkvDims {
  HeadDims q, k, v;
};

Expected<QkvDims> qkvDims(const InferContext& ctx, const AttentionAttrs& a) {
  if (a.qkvLayout == Layout::BSDPacked) {
    if (ctx.has(kK) || ctx.has(kV))
      return ctx.error("qkv_layout = \"bsd_packed\" reads k and v from q's rows: k and v must be absent (_)");
    Expected<HeadDims> rows = headDims(ctx, kQ, "q", Layout::BSDPacked, a.heads + 2 * a.kvHeads);
    if (!rows) return rows.status();
    const HeadDims q{rows->batch, Dim(a.heads), rows->seq, rows->headDim};
    const HeadDims kv{rows->batch, Dim(a.kvHeads), rows->seq, rows->headDim};
    return QkvDims{q, kv, kv};
  }
  if (!ctx.has(kK) || !ctx.has(kV))
    return ctx.error("k and v are required unless qkv_layout = \"bsd_packed\"");
  KILN_RETURN_IF_ERROR(requireSameDType(ctx, kQ, kK));
  KILN_RETURN_IF_ERROR(requireSameDType(ctx, kQ, kV));
  Expected<HeadDims> q = headDims(ctx, kQ, "q", a.qkvLayout, a.heads);
  if (!q) return q.status();
  Expected<HeadDims> k = headDims(ctx, kK, "k", a.qkvLayout, a.kvHeads);
  if (!k) return k.status();
  Expected<HeadDims> v = headDims(ctx, kV, "v", a.qkvLayout, a.kvHeads);
  if (!v) return v.status();
  return QkvDims{*q, *k, *v};
}

// `width`: the dims RoPE turns (rope_dims, or the head dim).
Status inferRope(const InferContext& ctx, const Dim& batch, const Dim& seq, const HeadDims& k, const Dim& headDim,
                 const Dim& width) {
  if (std::optional<int64_t> d = width.constant(); d && *d % 2 != 0)
    return ctx.error("rope needs an even count of turned dims, got ", *d);
  const std::optional<int64_t> head = headDim.constant(), turned = width.constant();
  if (head && turned && *turned > *head) return ctx.error("rope_dims = ", *turned, " is more than the head dim ", *head);
  // The rotation is per position: the new keys sit at the queries' positions.
  KILN_RETURN_IF_ERROR(requireDimMatch(ctx, seq, k.seq, "rope: sequence lengths of q and the new k"));
  if (ctx.has(kInvFreq)) {
    if (ctx.has(kCos) || ctx.has(kSin))
      return ctx.error("rope takes cos and sin or inv_freq, not both");
    KILN_RETURN_IF_ERROR(requireFloat(ctx, kInvFreq, "inv_freq"));
    const Shape& invFreq = ctx.type(kInvFreq).shape;
    const std::optional<int64_t> d = width.constant();
    if (invFreq.size() != 1 || (d && !mayBeEqual(invFreq[0], Dim(*d / 2))))
      return ctx.error("inv_freq must be [rope dims / 2]", d ? cat(" = [", *d / 2, "]") : std::string(),
                       ", got ", ctx.type(kInvFreq).str());
    return Status::ok();
  }
  if (!ctx.has(kCos) || !ctx.has(kSin)) return ctx.error("rope needs both cos and sin, or inv_freq");
  const Shape table = {batch, Dim(1), seq, width};
  for (size_t i : {kCos, kSin}) {
    KILN_RETURN_IF_ERROR(requireSameDType(ctx, kQ, i));
    KILN_RETURN_IF_ERROR(
        requireBroadcastsTo(ctx, i, table, i == kCos ? "cos" : "sin", "[batch, 1, seq, rope dims] ="));
  }
  return Status::ok();
}

Status inferAttention(const InferContext& ctx, std::vector<TensorType>& results) {
  Expected<AttentionAttrs> attrs = readAttrs(ctx.attrs());
  if (!attrs) return ctx.error(attrs.status().message());
  const AttentionAttrs& a = *attrs;
  if (ctx.numResults() == 2)
    return ctx.error("has 1 result (out) or 3 (out, present_k, present_v), got 2");
  KILN_RETURN_IF_ERROR(requireFloat(ctx, kQ, "q"));
  const DType dtype = ctx.type(kQ).dtype;

  Expected<QkvDims> dims = qkvDims(ctx, a);
  if (!dims) return dims.status();
  const HeadDims& q = dims->q;
  const HeadDims& k = dims->k;
  const HeadDims& v = dims->v;
  KILN_RETURN_IF_ERROR(requireDimMatch(ctx, q.batch, k.batch, "batch dims of q and k"));
  KILN_RETURN_IF_ERROR(requireDimMatch(ctx, q.batch, v.batch, "batch dims of q and v"));
  KILN_RETURN_IF_ERROR(requireDimMatch(ctx, k.seq, v.seq, "sequence lengths of k and v"));
  KILN_RETURN_IF_ERROR(requireDimMatch(ctx, q.headDim, k.headDim, "head dims of q and k"));
  const Dim& batch = q.batch;
  const Dim& seq = q.seq;
  const Dim& headDim = q.headDim.isUnknown() ? k.headDim : q.headDim;

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
    KILN_RETURN_IF_ERROR(requireDimMatch(ctx, v.headDim, pv->headDim, "head dims of v and past_v"));
    past = pk->seq;
  }
  const Dim keys = past + k.seq;

  if (a.rope) {
    KILN_RETURN_IF_ERROR(inferRope(ctx, batch, seq, k, headDim, a.ropeDims > 0 ? Dim(a.ropeDims) : headDim));
  } else if (ctx.has(kCos) || ctx.has(kSin) || ctx.has(kInvFreq)) {
    return ctx.error("cos/sin or inv_freq are given but rope = \"none\"");
  }
  KILN_RETURN_IF_ERROR(requireAttentionMask(ctx, kMask, a.keyPaddingMask, a.heads, batch, seq, keys));

  const Dim& valueDim = v.headDim;
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

// ---- rms_norm (x, scale?) {axis = -1, epsilon = 1e-5}:
// x / sqrt(mean(x^2 over axis..last) + epsilon) * scale

Status inferRmsNorm(const InferContext& ctx, std::vector<TensorType>& results) {
  const TensorType& x = ctx.type(0);
  KILN_RETURN_IF_ERROR(requireFloat(ctx, 0, "x"));
  Expected<int64_t> axis = normalizeAxis(ctx, ctx.attrs().getInt("axis", -1), x.rank());
  if (!axis) return axis.status();
  if (ctx.has(1)) {
    KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, 1));
    const Shape normalized(x.shape.begin() + *axis, x.shape.end());
    KILN_RETURN_IF_ERROR(requireBroadcastsTo(ctx, 1, normalized, "scale", "the normalized dims"));
  }
  results.push_back(x);
  return Status::ok();
}

// ---- gelu (x) {approximate = "none" | "tanh"}, silu (x)

Status inferGelu(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireFloat(ctx, 0, "x"));
  const std::string approximate = ctx.attrs().getString("approximate", "none");
  if (approximate != "none" && approximate != "tanh")
    return ctx.error("unknown approximate \"", approximate, "\" (expected none or tanh)");
  results.push_back(ctx.type(0));
  return Status::ok();
}

Status inferSilu(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireFloat(ctx, 0, "x"));
  results.push_back(ctx.type(0));
  return Status::ok();
}

// ---- relative_position_bias (table) {bidirectional, max_distance, lengths = [S, T]}:
// [H, S, T], element (h, i, j) = table[bucket(j - i), h] (ir/relative_position.h)

Status inferRelativePositionBias(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireFloat(ctx, 0, "table"));
  KILN_RETURN_IF_ERROR(requireRank(ctx, 0, 2, "table ([buckets, heads])"));
  std::optional<std::vector<Dim>> lengths = ctx.attrs().getDims("lengths");
  if (!lengths || lengths->size() != 2)
    return ctx.error("needs lengths = [query_length, key_length]");
  const bool bidirectional = ctx.attrs().getBool("bidirectional", false);
  const std::optional<int64_t> buckets = ctx.type(0).shape[0].constant();
  const int64_t maxExact = buckets ? (bidirectional ? *buckets / 2 : *buckets) / 2 : 1;
  if (maxExact < 1)
    return ctx.error("a table of ", ctx.type(0).shape[0].str(), " buckets is too few",
                     bidirectional ? " for both directions (at least 4)" : " (at least 2)");
  if (ctx.attrs().getInt("max_distance", 0) <= maxExact)
    return ctx.error("max_distance ", ctx.attrs().getInt("max_distance", 0), " must exceed the ", maxExact,
                     " exact distances");
  results.push_back({ctx.type(0).dtype, {ctx.type(0).shape[1], ctx.resolve((*lengths)[0]), ctx.resolve((*lengths)[1])}});
  return Status::ok();
}

// ---- swiglu (gate, up): silu(gate) * up, broadcasting; swiglu (x): gate
// and up packed on x's last axis (gate first, as a merged gate|up matmul
// writes them), the result half as wide.

Status inferSwiglu(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireFloat(ctx, 0, "gate"));
  if (!ctx.has(1)) {
    const TensorType& x = ctx.type(0);
    if (x.rank() == 0) return ctx.error("one operand holds gate | up on its last axis: it needs rank >= 1");
    const Dim& width = x.shape.back();
    if (std::optional<int64_t> w = width.constant(); w && *w % 2 != 0)
      return ctx.error("packed gate | up needs an even last dim, got ", x.str());
    Shape shape = x.shape;
    shape.back() = width / Dim(2);
    results.push_back({x.dtype, shape});
    return Status::ok();
  }
  KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, 1));
  Expected<Shape> shape = broadcastAllOperands(ctx);
  if (!shape) return shape.status();
  results.push_back({ctx.type(0).dtype, *shape});
  return Status::ok();
}

// ---- fused_elementwise (x0, x1, ...) {program}: a chain of elementwise ops
// written as "mul $0 $1; add %0 $2; tanh %1" ($i: operand i, %k: the value
// of instruction k, or a float literal); the last instruction is the result.

Status inferFusedElementwise(const InferContext& ctx, std::vector<TensorType>& results) {
  std::vector<DType> dtypes;
  for (size_t i = 0; i < ctx.numOperands(); ++i) {
    if (!ctx.has(i)) return ctx.error("operand ", i, " is absent; every operand is required");
    dtypes.push_back(ctx.type(i).dtype);
  }
  // Still text before the op is built (Graph::addOp parses it): parse it.
  std::optional<ElementwiseProgram> parsedHere;
  const ElementwiseProgram* program = ctx.attrs().getProgram("program");
  if (!program) {
    Expected<ElementwiseProgram> parsed = parseElementwiseProgram(ctx.attrs().getString("program"), ctx.numOperands());
    if (!parsed) return ctx.error(parsed.status().message());
    program = &parsedHere.emplace(std::move(*parsed));
  }
  Expected<std::vector<DType>> values = programDTypes(program->instructions, dtypes);
  if (!values) return ctx.error(values.status().message());
  Expected<Shape> shape = broadcastAllOperands(ctx);
  if (!shape) return shape.status();
  results.push_back({values->back(), *shape});
  return Status::ok();
}

// Q·Kᵀ and P·V (2*S*T*D each per head), softmax with scale and mask (5 per
// score) and, with rope, 6 per element of q and k.
double attentionFlops(const CostContext& ctx) {
  const Attributes& attrs = ctx.attrs();
  const double heads = static_cast<double>(attrs.getInt("heads", 1));
  const std::string layout = attrs.getString("qkv_layout", "bhsd");
  // bsd_packed: q holds the q|k|v rows, (heads + 2*kv_heads) head rows per token; k and v are absent.
  const bool packed = layout == "bsd_packed", bsd = layout == "bsd" || packed;
  const double kvHeads = static_cast<double>(attrs.getInt("kv_heads", 1));
  const double rowHeads = packed ? heads + 2 * kvHeads : heads;
  const double batch = ctx.dim(kQ, 0);
  const double queries = bsd ? ctx.dim(kQ, 1) : ctx.dim(kQ, 2);
  const double headDim = bsd ? ctx.dim(kQ, -1) / rowHeads : ctx.dim(kQ, -1);
  double keys = packed ? queries : bsd ? ctx.dim(kK, 1) : ctx.dim(kK, 2);
  if (ctx.present(kPastK)) keys += ctx.dim(kPastK, 2);
  const double scores = batch * heads * queries * keys;
  double total = 4 * scores * headDim + 5 * scores;
  if (attrs.getString("rope", "none") != "none")
    total += 6 * (packed ? batch * queries * (heads + kvHeads) * headDim : ctx.elements(kQ) + ctx.elements(kK));
  return total;
}

// The program's FLOPs per result element.
double fusedElementwiseFlops(const CostContext& ctx) {
  const ElementwiseProgram* program = ctx.attrs().getProgram("program");
  double perElement = 0;
  if (program)
    for (const ProgramInstruction& instruction : program->instructions)
      perElement += isTranscendental(instruction.op) ? 8 : 1;
  return perElement * ctx.resultElements();
}

}  // namespace

void registerFusedOps(OpRegistry& registry) {
  registry.add(OpDef{
      .kind = OpKind::Attention,
      .summary = "softmax(q k^T * scale + mask) v per head, with optional causal mask (and sliding window), "
                 "key-padding mask, rotate-half or interleaved RoPE (cos/sin tables or inv_freq), KV-cache append (present_k/v), grouped kv "
                 "heads and packed q|k|v rows",
      // k and v are absent (_) when qkv_layout = "bsd_packed".
      .operands = {"q", "k", "v", "mask", "cos", "sin", "past_k", "past_v", "inv_freq"},
      .minOperands = 1, .maxOperands = 9, .minResults = 1, .maxResults = 3,
      .attrs = {{"heads", AttrKind::Int, true},
                {"kv_heads", AttrKind::Int, true},
                {"scale", AttrKind::Float, true},
                {"causal", AttrKind::Bool},
                {"window", AttrKind::Int},
                {"rope", AttrKind::String},
                {"rope_dims", AttrKind::Int},
                {"qkv_layout", AttrKind::String},
                {"out_layout", AttrKind::String},
                {"mask_layout", AttrKind::String}},
      .infer = inferAttention, .flops = attentionFlops});
  registry.add(OpDef{.kind = OpKind::RmsNorm,
                     .summary = "x / sqrt(mean(x^2 over axis..last) + epsilon) * scale",
                     .operands = {"x", "scale"}, .minOperands = 1, .maxOperands = 2,
                     .attrs = {{"axis", AttrKind::Int}, {"epsilon", AttrKind::Float}},
                     .infer = inferRmsNorm, .inplaceOperands = {0},
                     .flops = perResultElement<5>});
  registry.add(OpDef{.kind = OpKind::Gelu,
                     .summary = "x/2 * (1 + erf(x / sqrt 2)), or its tanh approximation",
                     .operands = {"x"}, .minOperands = 1, .maxOperands = 1,
                     .attrs = {{"approximate", AttrKind::String}},
                     .infer = inferGelu, .inplaceOperands = {0},
                     .flops = kTranscendental});
  registry.add(OpDef{.kind = OpKind::Silu,
                     .summary = "x * sigmoid(x)",
                     .operands = {"x"}, .minOperands = 1, .maxOperands = 1,
                     .attrs = {}, .infer = inferSilu, .inplaceOperands = {0},
                     .flops = kTranscendental});
  // One operand: gate | up packed on its last axis; the result is half as
  // wide, so the planner never lets it take over that operand.
  registry.add(OpDef{.kind = OpKind::Swiglu,
                     .summary = "silu(gate) * up, broadcasting; or one operand holding gate | up on its last "
                                "axis",
                     .operands = {"gate", "up"}, .minOperands = 1, .maxOperands = 2,
                     .attrs = {}, .infer = inferSwiglu, .inplaceOperands = {0, 1}, .flops = perResultElement<9>});
  registry.add(OpDef{.kind = OpKind::RelativePositionBias,
                     .summary = "[heads, S, T] bias of a query i and key j from table[bucket(j - i)] "
                                "(T5's relative position buckets)",
                     .operands = {"table"}, .minOperands = 1, .maxOperands = 1,
                     .attrs = {{"bidirectional", AttrKind::Bool}, {"lengths", AttrKind::Dims, true},
                               {"max_distance", AttrKind::Int, true}},
                     .infer = inferRelativePositionBias, .traffic = Traffic::ResultsOnly});
  registry.add(OpDef{.kind = OpKind::FusedElementwise,
                     .summary = "a chain of elementwise ops over broadcast operands, as a program "
                                "(\"mul $0 $1; add %0 $2; tanh %1\"), on floats or on integers and bools",
                     .operands = {"x..."}, .minOperands = 1, .maxOperands = -1,
                     .attrs = {{"program", AttrKind::Program, true}},
                     .infer = inferFusedElementwise, .inplaceOperands = {0, 1, 2, 3, 4, 5, 6, 7},
                     .flops = fusedElementwiseFlops});
}

}  // namespace kiln
