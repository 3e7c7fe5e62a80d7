#include "passes/latent_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ir/attention.h"
#include "ir/latent_attention.h"
#include "passes/latent_compression.h"
#include "passes/pattern_utils.h"

namespace kiln {
namespace {

// ---- Matching: an attention op whose q, k and v are heads of x W + b.

// Columns [first, first + count) of x W + b, W a weight [D, N].
struct HeadProjection {
  ValueId x = kNoValue;
  ValueId flat = kNoValue;  // the projection's [B, S, count] value
  const Tensor* weight = nullptr;
  const Tensor* bias = nullptr;  // [N], or none
  int64_t first = 0, count = 0;
  std::vector<int32_t> ops;  // the chain from the matmul on: dropped with the attention when nothing else reads it
};

// The f32 data of weight `id`; null for anything else (absent included).
const Tensor* weightData(const Graph& graph, ValueId id) {
  if (id == kNoValue) return nullptr;
  const Value& value = graph.value(id);
  if (value.kind != ValueKind::Weight || !value.data || value.data->dtype() != DType::F32) return nullptr;
  return &*value.data;
}

// A bias of `width` broadcast along the last axis only: [N] or [1, ..., 1, N].
const Tensor* lastAxisBias(const Graph& graph, ValueId id, int64_t width) {
  const Tensor* bias = weightData(graph, id);
  if (!bias || bias->rank() == 0 || bias->shape().back() != width || bias->numElements() != width) return nullptr;
  return bias;
}

// flat = [add bias] matmul(x, W), or one result of a split of it on the last axis.
std::optional<HeadProjection> matchFlatProjection(const Rewriter& rw, ValueId flat) {
  const Graph& graph = rw.graph();
  HeadProjection p;
  p.flat = flat;
  std::optional<int64_t> width = graph.value(flat).type.shape.empty() ? std::nullopt
                                                                      : graph.value(flat).type.shape.back().constant();
  if (!width) return std::nullopt;
  p.count = *width;
  ValueId at = flat;
  if (const Op* split = rw.producer(at, OpKind::Split)) {
    p.ops.push_back(rw.producerIndex(at));
    const TensorType& whole = graph.value(split->operands[0]).type;
    const int64_t axis = split->attrs.getInt("axis", 0);
    if (axis != -1 && axis != static_cast<int64_t>(whole.rank()) - 1) return std::nullopt;
    for (ValueId part : split->results) {
      if (part == flat) break;
      std::optional<int64_t> w = graph.value(part).type.shape.back().constant();
      if (!w) return std::nullopt;
      p.first += *w;
    }
    at = split->operands[0];
  }
  std::optional<int64_t> total = graph.value(at).type.shape.back().constant();
  if (!total) return std::nullopt;
  if (const Op* add = rw.producer(at, OpKind::Add)) {
    p.ops.push_back(rw.producerIndex(at));
    for (size_t side : {0, 1}) {
      if (const Tensor* bias = lastAxisBias(graph, add->operands[side], *total)) {
        p.bias = bias;
        at = add->operands[1 - side];
        break;
      }
    }
    if (!p.bias) return std::nullopt;
  }
  const Op* matmul = rw.producer(at, OpKind::Matmul);
  p.ops.push_back(rw.producerIndex(at));
  if (!matmul || matmul->operands.size() != 2 || !matmul->attrs.empty()) return std::nullopt;
  p.weight = weightData(graph, matmul->operands[1]);
  if (!p.weight || p.weight->rank() != 2 || p.weight->shape()[1] != *total) return std::nullopt;
  p.x = matmul->operands[0];
  return p;
}

// bhsd = transpose(reshape(flat, [B, S, H, d]), [0, 2, 1, 3]).
std::optional<HeadProjection> matchHeadProjection(const Rewriter& rw, ValueId bhsd) {
  const Op* transpose = rw.producer(bhsd, OpKind::Transpose);
  if (!transpose || transpose->attrs.getInts("perm") != std::vector<int64_t>{0, 2, 1, 3}) return std::nullopt;
  const Op* reshape = rw.producer(transpose->operands[0], OpKind::Reshape);
  if (!reshape || reshape->operands.size() != 1) return std::nullopt;
  const Shape& from = rw.graph().value(reshape->operands[0]).type.shape;
  const Shape& to = rw.graph().value(reshape->results[0]).type.shape;
  if (from.size() != 3 || to.size() != 4 || !compatibleDims(from[0], to[0]) || !compatibleDims(from[1], to[1]))
    return std::nullopt;
  std::optional<HeadProjection> p = matchFlatProjection(rw, reshape->operands[0]);
  if (p) p->ops.insert(p->ops.end(), {rw.producerIndex(bhsd), rw.producerIndex(transpose->operands[0])});
  return p;
}

// An attention op the pass can rewrite, with its projections and KV ends.
struct Site {
  int32_t op = -1;
  attention::Attrs attrs;
  HeadProjection q, k, v;
  int64_t headDim = 0, valueDim = 0, modelWidth = 0;
  std::optional<attention::KvValues> kv;
  std::vector<double> ropeFrequencies;  // inv_freq, when it is a weight
};

// The attention op at `index` as a Site, or why it is left alone.
Expected<Site> siteAt(const Rewriter& rw, int32_t index) {
  const Op& op = rw.op(index);
  const Graph& graph = rw.graph();
  Expected<attention::Attrs> attrs = attention::readAttrs(op.attrs);
  if (!attrs) return attrs.status();
  if (attrs->window) return Status::error("latent attention has no sliding window");
  if (attrs->ropeDims) return Status::error("latent attention has no partial rotary");
  if (attrs->ropeInterleaved) return Status::error("latent attention takes rotate-half RoPE only");
  if (attrs->qkvLayout != attention::Layout::BHSD)
    return Status::error("q, k and v are not in the bhsd layout attention fusion makes");
  auto operand = [&](size_t slot) { return slot < op.operands.size() ? op.operands[slot] : kNoValue; };
  Site site{index, *attrs, {}, {}, {}, 0, 0, 0, attention::kvValues(op), {}};
  if (const Tensor* invFreq = attrs->rope ? weightData(graph, operand(attention::kInvFreq)) : nullptr)
    for (int64_t j = 0; j < invFreq->numElements(); ++j) site.ropeFrequencies.push_back(invFreq->elementAsDouble(j));
  std::optional<HeadProjection> q = matchHeadProjection(rw, operand(attention::kQ));
  std::optional<HeadProjection> k = matchHeadProjection(rw, operand(attention::kK));
  std::optional<HeadProjection> v = matchHeadProjection(rw, operand(attention::kV));
  if (!q || !k || !v) return Status::error("q, k and v are not all heads of x W + b with f32 weights W and b");
  if (q->x != k->x || q->x != v->x) return Status::error("q, k and v project different activations");
  site.q = *q, site.k = *k, site.v = *v;
  site.headDim = k->count / attrs->kvHeads;
  site.valueDim = v->count / attrs->kvHeads;
  site.modelWidth = q->weight->shape()[0];
  if (q->count != attrs->heads * site.headDim) return Status::error("q and k have different head dims");
  if (op.results.size() == 3 && !site.kv) return Status::error("present keys and values without both pasts");
  if (site.kv) {
    for (ValueId past : {site.kv->pastKey, site.kv->pastValue})
      if (graph.value(past).kind != ValueKind::Input || rw.users(past).size() != 1 || rw.isGraphOutput(past))
        return Status::error("a past is not a graph input that only this attention reads");
    for (ValueId present : {site.kv->presentKey, site.kv->presentValue})
      if (!rw.isGraphOutput(present) || !rw.users(present).empty())
        return Status::error("a present is not a graph output that nothing else reads");
  }
  return site;
}

// ---- The latent weights.

// Copies column `from` of a projection (weight and bias) to column `to`.
struct ColumnCopier {
  const HeadProjection& source;
  Tensor& weight;
  std::optional<Tensor>& bias;

  void operator()(int64_t from, int64_t to) const {
    const int64_t rows = source.weight->shape()[0], width = source.weight->shape()[1];
    const int64_t outWidth = weight.shape()[1];
    const float* w = source.weight->data<float>();
    for (int64_t i = 0; i < rows; ++i) weight.data<float>()[i * outWidth + to] = w[i * width + source.first + from];
    if (source.bias) bias->data<float>()[to] = source.bias->data<float>()[source.first + from];
  }
};

std::optional<Tensor> biasLike(const HeadProjection& a, const HeadProjection& b, int64_t width) {
  if (!a.bias && !b.bias) return std::nullopt;
  return Tensor::allocate(DType::F32, {width});  // zeros where a projection had none
}

// Exact: the latent is v's heads then k's (no rope), or v's heads as the
// latent and k's heads, pair by pair, as the rope part; each query head's
// up-projections pick its kv group's block, so every score and output is
// the original one.
LatentWeights exactWeights(const Site& s) {
  const int64_t H = s.attrs.heads, G = s.attrs.kvHeads, d = s.headDim, dv = s.valueDim, D = s.modelWidth;
  const int64_t group = H / G;
  LatentWeights w;
  const bool rope = s.attrs.rope;
  w.rank = rope ? G * dv : G * (d + dv);
  w.ropeDims = rope ? G * d : 0;
  const int64_t row = w.rank + w.ropeDims, kFirst = rope ? w.rank : 0, vFirst = rope ? 0 : G * d;
  w.down = Tensor::allocate(DType::F32, {D, row});
  w.downBias = biasLike(s.k, s.v, row);
  const ColumnCopier fromK{s.k, w.down, w.downBias}, fromV{s.v, w.down, w.downBias};
  for (int64_t c = 0; c < G * dv; ++c) fromV(c, vFirst + c);
  // Rope pairs in rotate-half order: pair p = g * d/2 + j turns at frequency j.
  const int64_t half = d / 2, pairs = G * half;
  for (int64_t g = 0; g < G; ++g)
    for (int64_t j = 0; j < (rope ? half : d); ++j) {
      if (!rope) {
        fromK(g * d + j, kFirst + g * d + j);
        continue;
      }
      fromK(g * d + j, kFirst + g * half + j);
      fromK(g * d + j + half, kFirst + pairs + g * half + j);
      w.ropeFrequencies.push_back(j);
    }
  if (rope) {
    // W_QR puts each head's pairs in its kv group's slots.
    w.ropeUp = Tensor::allocate(DType::F32, {H, d, w.ropeDims});
    float* up = w.ropeUp->data<float>();
    for (int64_t h = 0; h < H; ++h)
      for (int64_t j = 0; j < half; ++j) {
        const int64_t p = (h / group) * half + j;
        up[(h * d + j) * w.ropeDims + p] = 1.0f;
        up[(h * d + j + half) * w.ropeDims + pairs + p] = 1.0f;
      }
  } else {
    w.keyUp = Tensor::allocate(DType::F32, {H, d, w.rank});
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < d; ++i) w.keyUp->data<float>()[(h * d + i) * w.rank + (h / group) * d + i] = 1.0f;
  }
  w.valueUp = Tensor::allocate(DType::F32, {H, w.rank, dv});
  for (int64_t h = 0; h < H; ++h)
    for (int64_t e = 0; e < dv; ++e)
      w.valueUp.data<float>()[(h * w.rank + vFirst + (h / group) * dv + e) * dv + e] = 1.0f;
  return w;
}

// ---- Rewriting.

// "past_key_values.0.key" -> "past_key_values.0.latent"; otherwise NAME.latent.
std::string latentName(const Graph& graph, const std::string& keyName) {
  const std::string_view suffix = "key";
  const bool endsWithKey = keyName.size() > suffix.size() && keyName.ends_with(suffix);
  const std::string base = endsWithKey ? keyName.substr(0, keyName.size() - suffix.size()) + "latent"
                                       : keyName + ".latent";
  return graph.uniqueName(base);
}

// The graph's KV ends, changed once the rewriter commits: each layer's pair
// of past inputs (present outputs) becomes one latent input (output).
struct InterfaceChange {
  std::vector<std::pair<ValueId, ValueId>> inputs, outputs;  // (key, value) -> latent, by key
  std::vector<ValueId> droppedInputs, droppedOutputs;

  static std::vector<ValueId> apply(std::vector<ValueId> list, const std::vector<std::pair<ValueId, ValueId>>& swaps,
                                    const std::vector<ValueId>& dropped) {
    for (const auto& [from, to] : swaps) std::replace(list.begin(), list.end(), from, to);
    std::erase_if(list, [&](ValueId id) { return std::find(dropped.begin(), dropped.end(), id) != dropped.end(); });
    return list;
  }
};

// x W (+ b) as new ops before `anchor`.
Expected<ValueId> project(Rewriter& rw, int32_t anchor, ValueId x, const std::string& name, const Tensor& weight,
                          const std::optional<Tensor>& bias, const std::string& location) {
  Expected<ValueId> product = rw.create1(anchor, OpKind::Matmul, {x, rw.addWeight(name, weight)}, {}, location);
  if (!product || !bias) return product;
  return rw.create1(anchor, OpKind::Add, {*product, rw.addWeight(name + ".bias", *bias)}, {}, location);
}

Attributes latentAttrs(const Site& s, const LatentWeights& w, DType cache) {
  Attributes attrs;
  attrs.set("heads", s.attrs.heads);
  attrs.set("rank", w.rank);
  if (w.ropeDims > 0) {
    attrs.set("rope_dims", w.ropeDims);
    attrs.set("rope", std::string("half"));
    attrs.set("rope_frequencies", w.ropeFrequencies);
  }
  attrs.set("scale", s.attrs.scale);
  if (s.attrs.causal) attrs.set("causal", true);
  if (s.attrs.keyPaddingMask) attrs.set("mask_layout", std::string("key_padding"));
  if (s.kv) attrs.set("source_kv_width", s.attrs.kvHeads * (s.headDim + s.valueDim));
  if (cache == DType::BF16) attrs.set("cache_dtype", std::string("bf16"));
  return attrs;
}

Status rewriteSite(Rewriter& rw, const Site& s, const LatentWeights& w, DType cache, InterfaceChange& change) {
  Graph& graph = rw.graph();
  // Copies, not a reference to the op: creating ops may move the op list.
  const std::string location = rw.op(s.op).location;
  const std::vector<ValueId> old = rw.op(s.op).operands;
  const ValueId attentionOut = rw.op(s.op).results[attention::kOut];
  auto operand = [&](size_t slot) { return slot < old.size() ? old[slot] : kNoValue; };
  const std::string base = location.empty() ? "latent" : location;
  Expected<ValueId> latentRows = project(rw, s.op, s.q.x, base + ".w_dkv", w.down, w.downBias, location);
  if (!latentRows) return latentRows.status();
  ValueId past = kNoValue;
  if (s.kv) {
    const TensorType& pastKey = graph.value(s.kv->pastKey).type;
    past = graph.addInput(latentName(graph, graph.value(s.kv->pastKey).name),
                          {cache, {pastKey.shape[0], Dim(1), pastKey.shape[2], Dim(w.rank + w.ropeDims)}});
  }
  std::vector<ValueId> operands = {s.q.flat,
                                   *latentRows,
                                   w.keyUp ? rw.addWeight(base + ".w_uk", *w.keyUp) : kNoValue,
                                   rw.addWeight(base + ".w_uv", w.valueUp),
                                   operand(attention::kMask),
                                   w.ropeDims > 0 ? operand(attention::kCos) : kNoValue,
                                   w.ropeDims > 0 ? operand(attention::kSin) : kNoValue,
                                   past,
                                   w.ropeDims > 0 ? operand(attention::kInvFreq) : kNoValue,
                                   w.ropeUp ? rw.addWeight(base + ".w_qr", *w.ropeUp) : kNoValue};
  while (operands.back() == kNoValue) operands.pop_back();
  Expected<std::vector<ValueId>> results =
      rw.create(s.op, OpKind::LatentAttention, operands, latentAttrs(s, w, cache), s.kv ? 2 : 1, location);
  if (!results) return results.status();
  // Back to the [B, H, S, d_v] the attention's users read.
  const Shape heads = graph.value(attentionOut).type.shape;
  Attributes reshape, transpose;
  reshape.set("shape", std::vector<Dim>{heads[0], heads[2], heads[1], heads[3]});
  transpose.set("perm", std::vector<int64_t>{0, 2, 1, 3});
  Expected<ValueId> split = rw.create1(s.op, OpKind::Reshape, {(*results)[latent::kOut]}, reshape, location);
  if (!split) return split.status();
  Expected<ValueId> out = rw.create1(s.op, OpKind::Transpose, {*split}, transpose, location);
  if (!out) return out.status();
  KILN_RETURN_IF_ERROR(rw.replace(attentionOut, *out));
  if (s.kv) {
    const ValueId present = (*results)[latent::kPresent];
    KILN_RETURN_IF_ERROR(graph.rename(present, latentName(graph, graph.value(s.kv->presentKey).name)));
    change.inputs.emplace_back(s.kv->pastKey, past);
    change.outputs.emplace_back(s.kv->presentKey, present);
    change.droppedInputs.push_back(s.kv->pastValue);
    change.droppedOutputs.push_back(s.kv->presentValue);
  }
  rw.mark(s.op);
  // The projections the attention read go too, unless something else reads
  // them (commit keeps an op with users): a later merge would revive them.
  for (const HeadProjection* p : {&s.q, &s.k, &s.v}) rw.mark(p->ops);
  return Status::ok();
}

// The layer's q, k and v projections in double (zeros for a missing bias).
LayerProjections projectionsOf(const Site& s) {
  LayerProjections layer{s.attrs.heads, s.attrs.kvHeads, s.headDim, s.valueDim, s.modelWidth, s.attrs.rope, {}, {}, {},
                         {}, {}, {}};
  auto read = [&](const HeadProjection& p, std::vector<double>& weight, std::vector<double>& bias) {
    const int64_t columns = p.weight->shape()[1];
    for (int64_t r = 0; r < s.modelWidth; ++r)
      for (int64_t c = 0; c < p.count; ++c) weight.push_back(p.weight->data<float>()[r * columns + p.first + c]);
    for (int64_t c = 0; c < p.count; ++c) bias.push_back(p.bias ? p.bias->data<float>()[p.first + c] : 0.0);
  };
  layer.ropeFrequencies = s.ropeFrequencies;
  read(s.q, layer.q, layer.qBias);
  read(s.k, layer.k, layer.kBias);
  read(s.v, layer.v, layer.vBias);
  return layer;
}

// rank=R: a latent of R and D_R rope dims (default d / 2; none without
// RoPE). compress=F: a row of G (d + d_v) / F values, split between latent
// and rope dims where the least is left out (chooseRopeDims).
Expected<LatentWeights> weightsFor(const LatentMode& mode, const Site& s, const ActivationMoments* moments) {
  if (mode.kind == LatentMode::Kind::Exact) return exactWeights(s);
  const LayerProjections layer = projectionsOf(s);
  const int64_t d = s.headDim;
  if (mode.kind == LatentMode::Kind::Rank) {
    if (!s.attrs.rope && mode.ropeDims.value_or(0) > 0)
      return Status::error("rope=", *mode.ropeDims, " asks for rope dims, but this attention has no RoPE");
    const int64_t rope = s.attrs.rope ? mode.ropeDims.value_or(d / 2 / 2 * 2) : 0;
    if (rope > s.attrs.kvHeads * d)
      return Status::error("rope=", rope, " is more than the ", s.attrs.kvHeads * d, " key dims");
    return compressedWeights(layer, moments, mode.rank, rope);
  }
  const int64_t width = s.attrs.kvHeads * (s.headDim + s.valueDim);
  const auto budget = static_cast<int64_t>(std::llround(static_cast<double>(width) / mode.factor));
  if (budget < 2 + (s.attrs.rope ? 2 : 0))
    return Status::error("compress=", mode.factor, " leaves ", budget, " values per token, too few for a latent");
  Expected<int64_t> rope = chooseRopeDims(layer, moments, budget);
  if (!rope) return rope.status();
  return compressedWeights(layer, moments, budget - *rope, *rope);
}

class LatentAttention final : public Pass {
 public:
  explicit LatentAttention(LatentAttentionOptions options) : options_(std::move(options)) {}
  std::string_view name() const override { return "latent_attention"; }
  std::string_view summary() const override {
    return "rewrites attention whose q, k, v are projections into latent attention with one cached latent row "
           "per token (TransMLA: exact, or compressed by RoRoPE and a joint K/V PCA)";
  }

  Expected<bool> run(Graph& graph) override {
    Rewriter rw(graph);
    LatentAttentionReport report;
    std::vector<Site> sites;
    for (size_t i = 0; i < rw.originalOpCount(); ++i) {
      const auto index = static_cast<int32_t>(i);
      if (!rw.op(index).is(OpKind::Attention)) continue;
      Expected<Site> site = siteAt(rw, index);
      if (site) sites.push_back(std::move(*site));
      else report.skipped.push_back(cat(rw.op(index).location, ": ", site.status().message()));
    }
    const LatentMode mode = options_.mode.value_or(LatentMode{});
    std::vector<ActivationMoments> moments;
    if (mode.kind != LatentMode::Kind::Exact && options_.calibrate && !sites.empty()) {
      std::vector<ValueId> inputs;
      for (const Site& site : sites) inputs.push_back(site.q.x);
      Expected<std::vector<ActivationMoments>> measured = options_.calibrate(graph, inputs);
      if (!measured) return measured.status().withContext("latent_attention: calibration: ");
      moments = std::move(*measured);
      report.calibrated = true;
    }
    // Every site's weights before any rewrite: a site points at weight data
    // in the graph, which a rewrite's new weights may move.
    std::vector<LatentWeights> latent;
    for (size_t l = 0; l < sites.size(); ++l) {
      Expected<LatentWeights> weights = weightsFor(mode, sites[l], moments.empty() ? nullptr : &moments[l]);
      if (!weights) return weights.status().withContext(cat("latent_attention: ", rw.op(sites[l].op).location, ": "));
      latent.push_back(std::move(*weights));
    }
    InterfaceChange change;
    const std::vector<ValueId> inputs = graph.inputs();  // addInput appends the latent ones
    for (size_t l = 0; l < sites.size(); ++l) {
      const Site& site = sites[l];
      const LatentWeights& weights = latent[l];
      KILN_RETURN_IF_ERROR(rewriteSite(rw, site, weights, mode.cacheType, change));
      // Per token of a KV cache: the keys and values of every kv head, and one latent row.
      if (site.kv) {
        report.kvBytesPerTokenBefore +=
            static_cast<int64_t>(dtypeSize(DType::F32)) * site.attrs.kvHeads * (site.headDim + site.valueDim);
        report.kvBytesPerTokenAfter +=
            static_cast<int64_t>(dtypeSize(mode.cacheType)) * (weights.rank + weights.ropeDims);
      }
      report.rank = weights.rank, report.ropeDims = weights.ropeDims;
      ++report.layers;
    }
    graph.setInputs(InterfaceChange::apply(inputs, change.inputs, change.droppedInputs));
    graph.setOutputs(InterfaceChange::apply(graph.outputs(), change.outputs, change.droppedOutputs));
    statistics_.add("layers", report.layers);
    statistics_.add("skipped", static_cast<int64_t>(report.skipped.size()));
    statistics_.add("kv-bytes-per-token-before", report.kvBytesPerTokenBefore);
    statistics_.add("kv-bytes-per-token-after", report.kvBytesPerTokenAfter);
    if (options_.report) *options_.report = report;
    KILN_RETURN_IF_ERROR(rw.commit());
    return rw.changed();
  }

 private:
  LatentAttentionOptions options_;
};

}  // namespace

Expected<LatentMode> parseLatentMode(std::string_view text) {
  auto bad = [&]() {
    return Status::error("--latent-attention '", text, "': expected exact, rank=R[,rope=D_R] or compress=F ",
                         "(R, D_R positive integers, D_R even; F a number above 1), then optionally ,cache=bf16");
  };
  LatentMode mode;
  std::string spec(text);
  for (const auto& [suffix, type] : {std::pair{",cache=bf16", DType::BF16}, {",cache=f32", DType::F32}})
    if (spec.size() > std::string_view(suffix).size() && spec.ends_with(suffix)) {
      spec.resize(spec.size() - std::string_view(suffix).size());
      mode.cacheType = type;
    }
  if (spec == "exact") return mode;
  char* end = nullptr;
  if (spec.rfind("compress=", 0) == 0) {
    mode.kind = LatentMode::Kind::Compress;
    mode.factor = std::strtod(spec.c_str() + 9, &end);
    if (end == spec.c_str() + 9 || *end != '\0' || !(mode.factor > 1)) return bad();
    return mode;
  }
  if (spec.rfind("rank=", 0) != 0) return bad();
  mode.kind = LatentMode::Kind::Rank;
  mode.rank = std::strtoll(spec.c_str() + 5, &end, 10);
  if (end == spec.c_str() + 5 || mode.rank < 1) return bad();
  if (*end == '\0') return mode;
  if (std::string_view(end).rfind(",rope=", 0) != 0) return bad();
  const char* rope = end + 6;
  mode.ropeDims = std::strtoll(rope, &end, 10);
  if (end == rope || *end != '\0' || *mode.ropeDims < 0 || *mode.ropeDims % 2 != 0) return bad();
  return mode;
}

std::unique_ptr<Pass> createLatentAttention(LatentAttentionOptions options) {
  return std::make_unique<LatentAttention>(std::move(options));
}

}  // namespace kiln
