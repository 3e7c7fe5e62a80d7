#include "passes/attention_fusion.h"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/op_registry.h"
#include "passes/attention_patterns.h"
#include "passes/mask_semantics.h"
#include "passes/pattern_utils.h"

namespace kiln {

namespace {

// K in [B, Hkv, T, D]: an existing value, or a transpose of one that the
// rewrite creates (perm empty: the value itself).
struct KeySource {
  ValueId value = kNoValue;
  std::vector<int64_t> perm;
};

struct AttentionMatch {
  int32_t outputOp = -1;  // the second matmul; the attention op goes just before it
  std::string location;
  ValueId out = kNoValue;
  ValueId q = kNoValue, v = kNoValue;
  KeySource k;
  ValueId mask = kNoValue;
  bool invertMask = false;  // attend where the mask is false
  // A mask built from a [B, T] key-padding input: that input, read with
  // mask_layout = "key_padding" (scoresMask keeps the mask the scores read).
  bool keyPadding = false;
  ValueId scoresMask = kNoValue;
  bool scoresMaskInverted = false;
  // An additive bias (ALiBi, relative positions: finite where a key is
  // attended) beside the key-padding input: the attention reads them as one
  // additive mask, the bias where a key is kept and -inf where it is padded.
  ValueId bias = kNoValue;
  ValueId cos = kNoValue, sin = kNoValue;
  // cos/sin computed from positions past..past+S-1: the inv_freq weight they
  // came from, which the attention reads instead.
  ValueId invFreq = kNoValue;
  ValueId pastK = kNoValue, pastV = kNoValue;
  ValueId presentK = kNoValue, presentV = kNoValue;  // the concats the present results replace
  int64_t heads = 0, kvHeads = 0;
  double scale = 1.0;
  bool causal = false, rope = false;
  int64_t ropeDims = 0;  // partial rotary: the turned dims of a head
  bool ropeInterleaved = false;
  // RoPE matched on [B, S, H, D] before the transpose to heads first: q and
  // k are transposed and the [., S, 1, W] tables viewed as [., 1, S, W].
  bool ropeSeqFirst = false;
  int64_t window = 0;    // a sliding window of keys (with causal)
  int repeatsRemoved = 0;
  // With rope folded: the rotated Q and K and the scale without Q's inner
  // factors, for a retry without the fold if inference refuses it.
  ValueId rotatedQ = kNoValue, rotatedK = kNoValue;
  double scaleOutsideRope = 1.0;
};

// The fallbacks when inference refuses a match: each gives up one folded
// form, cos/sin tables for inv_freq, the additive mask for the key-padding
// one, then RoPE as separate ops.
AttentionMatch withRopeTables(AttentionMatch m) {
  m.invFreq = kNoValue;
  return m;
}

AttentionMatch withScoresMask(AttentionMatch m) {
  m.keyPadding = false;
  m.mask = m.scoresMask;
  m.invertMask = m.scoresMaskInverted;
  return m;
}

AttentionMatch withoutRope(AttentionMatch m) {
  m.rope = false;
  m.ropeDims = 0;
  m.ropeInterleaved = m.ropeSeqFirst = false;
  m.q = m.rotatedQ;
  m.k.value = m.rotatedK;
  m.scale = m.scaleOutsideRope;
  m.cos = m.sin = m.invFreq = kNoValue;
  return m;
}

std::vector<AttentionMatch> withFallbacks(const AttentionMatch& m) {
  std::vector<AttentionMatch> forms = {m};
  if (m.invFreq != kNoValue) forms.push_back(withRopeTables(forms.back()));
  if (m.keyPadding && m.bias == kNoValue) forms.push_back(withScoresMask(forms.back()));
  if (m.rope) forms.push_back(withoutRope(forms.back()));
  return forms;
}

// Between the first matmul and the softmax: scale factors and masks. An
// additive mask must sit above every scale (the op adds it after scaling);
// a where() mask may sit below one (GPT-J scales the masked scores), its
// fill then scaled by the factors above it.
struct ScoresChain {
  int32_t matmul = -1;
  double scale = 1.0;
  std::vector<ValueId> additiveMasks;
  struct WhereMask {
    ValueId condition = kNoValue, fill = kNoValue;
    bool keepWhereTrue = true;
    double fillScale = 1.0;  // the scale factors above the where
  };
  std::vector<WhereMask> whereMasks;
};

bool isFloatCast(const Graph& graph, const Op& op) {
  return op.is(OpKind::Cast) && isFloat(graph.value(op.operands[0]).type.dtype) &&
         isFloat(graph.value(op.results[0]).type.dtype);
}

// A matmul with no epilogue and no transposed A; transpose_b is read by the caller.
bool isPlainMatmul(const Op& op) {
  return op.is(OpKind::Matmul) && op.operands.size() == 2 && !op.attrs.getBool("transpose_a") &&
         op.attrs.getString("activation", "none") == "none";
}

const Op* producer(const Graph& graph, ValueId id) {
  const Value& value = graph.value(id);
  if (value.kind != ValueKind::OpResult || value.producer < 0) return nullptr;
  return &graph.ops()[static_cast<size_t>(value.producer)];
}

std::optional<int64_t> constantDim(const Graph& graph, ValueId id, size_t axis) {
  const Shape& shape = graph.value(id).type.shape;
  return axis < shape.size() ? shape[axis].constant() : std::nullopt;
}

Shape permuted(const Shape& shape, const std::vector<int64_t>& perm) {
  Shape out;
  for (int64_t p : perm) out.push_back(shape[static_cast<size_t>(p)]);
  return out;
}

class AttentionFusion final : public Pass {
 public:
  std::string_view name() const override { return "attention_fusion"; }
  std::string_view summary() const override {
    return "fuses matmul-softmax-matmul attention (scale, masks, RoPE, GQA, KV cache) into one attention op";
  }

  Expected<bool> run(Graph& graph) override {
    counts_ = {};
    semanticsCache_.clear();
    blockedScore_ = kNoValue;
    flatInvFreq_.clear();
    Rewriter rewriter(graph);
    std::vector<AttentionMatch> matches;
    int64_t softmaxUnfused = 0;
    for (size_t i = 0; i < graph.ops().size(); ++i) {
      if (!graph.ops()[i].is(OpKind::Softmax)) continue;
      if (std::optional<AttentionMatch> match = matchAt(rewriter, static_cast<int32_t>(i)))
        matches.push_back(std::move(*match));
      else
        ++softmaxUnfused;
    }
    Expected<int64_t> fused = rewrite(rewriter, matches);
    if (!fused) return fused.status();
    softmaxUnfused += static_cast<int64_t>(matches.size()) - *fused;

    statistics_.add("attention-fused", *fused);
    statistics_.add("softmax-unfused", softmaxUnfused);
    statistics_.add("causal-masks", counts_.causal);
    statistics_.add("padding-masks", counts_.padding);
    statistics_.add("rope-folded", counts_.rope);
    statistics_.add("repeat-kv-removed", counts_.repeatKv);
    statistics_.add("kv-cache-appends", counts_.kvAppends);
    statistics_.add("rope-from-inv-freq", counts_.invFreq);
    statistics_.add("key-padding-masks", counts_.keyPadding);
    return *fused > 0;
  }

 private:
  // Parses the scores chain backwards from `id` (the softmax input). Masks sit
  // after the scale in dataflow order: once a scale is seen, only scales and
  // casts may precede it.
  bool parseScores(const Rewriter& rewriter, ValueId id, bool additiveAllowed, ScoresChain& chain) const {
    const Graph& graph = rewriter.graph();
    if (rewriter.soleUser(id) < 0) return false;
    const Op* op = producer(graph, id);
    if (!op) return false;
    if (isPlainMatmul(*op) && graph.value(id).type.rank() == 4) {
      chain.matmul = graph.value(id).producer;
      return true;
    }
    if (isFloatCast(graph, *op)) return parseScores(rewriter, op->operands[0], additiveAllowed, chain);
    if (std::optional<ScaledValue> scaled = matchScale(graph, id)) {
      chain.scale *= scaled->factor;
      return parseScores(rewriter, scaled->base, false, chain);
    }
    const ScoresChain saved = chain;
    if (additiveAllowed && op->is(OpKind::Add) && op->operands.size() == 2) {
      for (size_t side : {size_t{0}, size_t{1}}) {
        if (parseScores(rewriter, op->operands[side], true, chain)) {
          chain.additiveMasks.push_back(op->operands[1 - side]);
          return true;
        }
        chain = saved;
      }
    }
    if (op->is(OpKind::Where) && chain.scale > 0) {
      const double fillScale = chain.scale;
      for (size_t side : {size_t{1}, size_t{2}}) {
        if (parseScores(rewriter, op->operands[side], additiveAllowed, chain)) {
          chain.whereMasks.push_back({op->operands[0], op->operands[3 - side], side == 1, fillScale});
          return true;
        }
        chain = saved;
      }
    }
    return false;
  }

  // Scales pre-applied to Q or K multiply into the attention scale.
  ValueId peelScales(const Graph& graph, ValueId id, double& scale) const {
    while (std::optional<ScaledValue> scaled = matchScale(graph, id)) {
      scale *= scaled->factor;
      id = scaled->base;
    }
    return id;
  }

  // Kᵀ as the first matmul's B operand, to K in [B, H, T, D].
  KeySource keyFromTransposed(const Graph& graph, ValueId kt, bool transposeB, double& scale) const {
    if (transposeB) return {peelScales(graph, kt, scale), {}};
    kt = peelScales(graph, kt, scale);
    const std::vector<int64_t> swapLast = {0, 1, 3, 2};
    if (const Op* transpose = producerOf(graph, kt, OpKind::Transpose)) {
      std::vector<int64_t> perm = transpose->attrs.getInts("perm");
      if (perm.size() == 4) {
        for (int64_t& p : perm) p = p < 0 ? p + 4 : p;
        // K = swapLast(Kᵀ) = transpose(source, perm ∘ swapLast).
        std::vector<int64_t> composed;
        for (int64_t s : swapLast) composed.push_back(perm[static_cast<size_t>(s)]);
        if (composed == std::vector<int64_t>{0, 1, 2, 3})
          return {peelScales(graph, transpose->operands[0], scale), {}};
        return {transpose->operands[0], composed};
      }
    }
    return {kt, swapLast};
  }

  std::optional<AttentionMatch> matchAt(const Rewriter& rewriter, int32_t softmaxIndex) {
    const Graph& graph = rewriter.graph();
    const Op& softmax = graph.ops()[static_cast<size_t>(softmaxIndex)];
    const ValueId scoresEnd = softmax.operands[0];
    const TensorType& scoresType = graph.value(scoresEnd).type;
    if (scoresType.rank() != 4) return std::nullopt;
    const int64_t axis = softmax.attrs.getInt("axis", -1);
    if (axis != -1 && axis != 3) return std::nullopt;

    // softmax → casts → the second matmul, each value used once.
    ValueId probs = softmax.results[0];
    const Op* output = nullptr;
    while (true) {
      const int32_t userIndex = rewriter.soleUser(probs);
      if (userIndex < 0) return std::nullopt;
      const Op& user = rewriter.op(userIndex);
      if (isFloatCast(graph, user)) {
        probs = user.results[0];
        continue;
      }
      if (!isPlainMatmul(user) || user.operands[0] != probs || user.attrs.getBool("transpose_b"))
        return std::nullopt;
      output = &user;
      break;
    }

    ScoresChain chain;
    if (!parseScores(rewriter, scoresEnd, true, chain)) return std::nullopt;
    const Op& scoresMatmul = graph.ops()[static_cast<size_t>(chain.matmul)];
    const Shape& scores = graph.value(scoresMatmul.results[0]).type.shape;

    AttentionMatch m;
    m.outputOp = graph.value(output->results[0]).producer;
    m.location = softmax.location;
    m.out = output->results[0];
    m.scale = chain.scale;

    // Q: scales, then rotate-half RoPE (whose input may carry scales too).
    ValueId q = peelScales(graph, scoresMatmul.operands[0], m.scale);
    if (graph.value(q).type.rank() != 4) return std::nullopt;
    std::optional<int64_t> heads = constantDim(graph, q, 1);
    if (!heads) return std::nullopt;
    m.heads = *heads;

    // K and V: [B, H, T, D] after layout; then repeat_kv; then the cache append.
    if (graph.value(scoresMatmul.operands[1]).type.rank() != 4) return std::nullopt;
    KeySource k = keyFromTransposed(graph, scoresMatmul.operands[1],
                                    scoresMatmul.attrs.getBool("transpose_b"), m.scale);
    ValueId v = output->operands[1];
    const Shape keyShape = k.perm.empty() ? graph.value(k.value).type.shape
                                          : permuted(graph.value(k.value).type.shape, k.perm);
    if (keyShape.size() != 4 || graph.value(v).type.rank() != 4) return std::nullopt;

    if (k.perm.empty()) {
      std::optional<ValueId> kvK = matchRepeatKv(graph, k.value);
      std::optional<ValueId> kvV = matchRepeatKv(graph, v);
      if (kvK && kvV && constantDim(graph, *kvK, 1) && constantDim(graph, *kvK, 1) == constantDim(graph, *kvV, 1)) {
        k.value = *kvK;
        v = *kvV;
        m.repeatsRemoved = 2;
      }
      std::optional<KvAppend> appendK = matchKvAppend(graph, k.value);
      std::optional<KvAppend> appendV = matchKvAppend(graph, v);
      if (appendK && appendV) {
        m.presentK = k.value;
        m.presentV = v;
        m.pastK = appendK->past;
        m.pastV = appendV->past;
        k.value = appendK->fresh;
        v = appendV->fresh;
      }
    }
    std::optional<int64_t> kvHeads = k.perm.empty() ? constantDim(graph, k.value, 1) : keyShape[1].constant();
    if (!kvHeads || *kvHeads <= 0 || m.heads % *kvHeads != 0 || constantDim(graph, v, 1) != kvHeads)
      return std::nullopt;
    m.kvHeads = *kvHeads;

    // RoPE folds only when Q and the new K rotate with the same cos and sin.
    if (std::optional<RopeMatch> ropeQ = matchRope(graph, q); ropeQ && k.perm.empty()) {
      std::optional<RopeMatch> ropeK = matchRope(graph, k.value);
      if (ropeK && ropeK->cos == ropeQ->cos && ropeK->sin == ropeQ->sin && ropeK->width == ropeQ->width &&
          ropeK->interleaved == ropeQ->interleaved && ropeK->seqFirst == ropeQ->seqFirst) {
        m.rope = true;
        m.ropeDims = ropeQ->width;
        m.ropeInterleaved = ropeQ->interleaved;
        m.ropeSeqFirst = ropeQ->seqFirst;
        m.rotatedQ = q;
        m.rotatedK = k.value;
        m.scaleOutsideRope = m.scale;
        m.cos = ropeQ->cos;
        m.sin = ropeQ->sin;
        q = peelScales(graph, ropeQ->x, m.scale);
        k.value = ropeK->x;
        const Dim past = m.pastK != kNoValue ? graph.value(m.pastK).type.shape[2] : Dim(0);
        const Dim& seq = graph.value(q).type.shape[m.ropeSeqFirst ? 1 : 2];
        if (std::optional<ValueId> invFreq = matchRopeFrequencies(graph, m.cos, m.sin, past, seq))
          m.invFreq = *invFreq;
      }
    }
    m.q = q;
    m.k = k;
    m.v = v;

    // Masks: those whose meaning is known (mask_semantics.h) become the
    // causal flag and the key-padding mask; at most one other stays an operand.
    std::vector<ValueId> opaque, additives;
    bool opaqueInverted = false;
    for (ValueId additive : chain.additiveMasks) {
      if (!isFloat(graph.value(additive).type.dtype)) return std::nullopt;
      if (!absorbMask(graph, additive, MaskForm::Additive, scores, m))
        additives.push_back(absorbMaskSummand(graph, additive, scores, m));
    }
    for (const ScoresChain::WhereMask& where : chain.whereMasks) {
      if (graph.value(where.condition).type.dtype != DType::Bool ||
          !isMaskingFill(graph, where.fill, scores, where.fillScale))
        return std::nullopt;
      const MaskForm form = where.keepWhereTrue ? MaskForm::KeepWhereTrue : MaskForm::MaskWhereTrue;
      if (!absorbMask(graph, where.condition, form, scores, m)) {
        opaque.push_back(where.condition);
        opaqueInverted = !where.keepWhereTrue;
      }
    }
    if (m.keyPadding && additives.size() == 1 && opaque.empty()) m.bias = additives.front();
    else opaque.insert(opaque.begin(), additives.begin(), additives.end());
    if (opaque.size() + (m.keyPadding ? 1 : 0) > 1) return std::nullopt;
    if (!opaque.empty()) {
      m.mask = opaque.front();
      m.invertMask = opaqueInverted;
    }
    return m;
  }

  // Folds a mask of known meaning into the match: causal and a sliding
  // window as attributes, a key-padding input as the key_padding mask (the
  // mask itself kept for the fallback). False when it has to stay an
  // operand: its meaning is unknown, or it names another key-padding input
  // or window than one before.
  bool absorbMask(const Graph& graph, ValueId mask, MaskForm form, const Shape& scores, AttentionMatch& m) {
    const std::string key = cat(mask, "/", static_cast<int>(form), "/", shapeStr(scores));
    auto [it, inserted] = semanticsCache_.try_emplace(key);
    if (inserted) it->second = maskSemantics(graph, mask, form, scores);
    const std::optional<MaskSemantics>& meaning = it->second;
    if (!meaning || (meaning->window && m.window && meaning->window != m.window)) return false;
    if (meaning->keyPadding != kNoValue) {
      if (m.keyPadding && (m.mask != meaning->keyPadding || m.invertMask != meaning->keyPaddingInverted))
        return false;
      m.keyPadding = true;
      m.mask = meaning->keyPadding;
      m.invertMask = meaning->keyPaddingInverted;
      m.scoresMask = mask;
      m.scoresMaskInverted = form == MaskForm::MaskWhereTrue;
    }
    m.causal = m.causal || meaning->causal;
    m.window = std::max(m.window, meaning->window);
    return true;
  }

  // An additive mask that is a bias plus a mask of known meaning (T5's
  // position bias plus its causal mask): the mask folds into the match and
  // the bias is what stays. Exact: where the mask is 0 the sum is the bias,
  // and where it masks, so does the attention. Returns what stays.
  ValueId absorbMaskSummand(const Graph& graph, ValueId additive, const Shape& scores, AttentionMatch& m) {
    const Op* sum = producerOf(graph, additive, OpKind::Add);
    if (!sum || sum->operands.size() != 2) return additive;
    for (size_t side : {size_t{0}, size_t{1}}) {
      const ValueId rest = sum->operands[1 - side];
      if (!isFloat(graph.value(rest).type.dtype) || !isFloat(graph.value(sum->operands[side]).type.dtype)) continue;
      // absorbMask leaves the match as it was when it refuses.
      if (absorbMask(graph, sum->operands[side], MaskForm::Additive, scores, m)) return rest;
    }
    return additive;
  }

  // inv_freq as the [D/2] weight the attention op reads: the weight itself,
  // or one copy of it reshaped from [1, ..., 1, D/2].
  ValueId flatInvFreq(Rewriter& rewriter, ValueId weight) {
    const Value& value = rewriter.graph().value(weight);
    if (value.type.rank() == 1) return weight;
    auto [it, inserted] = flatInvFreq_.try_emplace(weight, kNoValue);
    if (inserted) {
      Tensor flat = value.data->reshaped({value.data->numElements()});
      it->second = rewriter.addWeight(value.name + ".flat", std::move(flat));  // `value` may move here
    }
    return it->second;
  }

  // The attention op (and the transpose / not it reads) for one match, placed
  // before the second matmul; nothing when inference refuses it or its types
  // contradict the values it replaces (the caller discards what was created).
  // The bias where the key-padding input keeps a key, -inf where it pads
  // one: where(keep [B, 1, 1, T], bias, -inf).
  std::optional<ValueId> maskedBias(Rewriter& rewriter, const AttentionMatch& m) {
    const Shape padding = rewriter.graph().value(m.mask).type.shape;
    Attributes toBool, view;
    toBool.set("to", std::string("bool"));
    view.set("shape", std::vector<Dim>{padding[0], Dim(1), Dim(1), padding[1]});
    Expected<ValueId> keep = rewriter.create1(m.outputOp, OpKind::Cast, {m.mask}, toBool, m.location);
    if (keep && m.invertMask) keep = rewriter.create1(m.outputOp, OpKind::Not, {*keep}, {}, m.location);
    if (keep) keep = rewriter.create1(m.outputOp, OpKind::Reshape, {*keep}, view, m.location);
    if (!keep) return std::nullopt;
    if (blockedScore_ == kNoValue) {
      Tensor blocked = Tensor::allocate(DType::F32, {});
      *blocked.data<float>() = -std::numeric_limits<float>::infinity();
      blockedScore_ = rewriter.addWeight("blocked_score", std::move(blocked));
    }
    Expected<ValueId> masked = rewriter.create1(m.outputOp, OpKind::Where, {*keep, m.bias, blockedScore_}, {}, m.location);
    return masked ? std::optional<ValueId>(*masked) : std::nullopt;
  }

  // A RoPE matched on [B, S, H, D]: q and k transposed to [B, H, S, D] and
  // the [., S, 1, W] tables viewed as [., 1, S, W], as the attention reads them.
  bool toHeadsFirst(Rewriter& rewriter, const AttentionMatch& m, ValueId& q, ValueId& k, ValueId& cos,
                    ValueId& sin) {
    Attributes perm;
    perm.set("perm", std::vector<int64_t>{0, 2, 1, 3});
    for (ValueId* x : {&q, &k}) {
      Expected<ValueId> transposed = rewriter.create1(m.outputOp, OpKind::Transpose, {*x}, perm, m.location);
      if (!transposed) return false;
      *x = *transposed;
    }
    for (ValueId* table : {&cos, &sin}) {
      if (*table == kNoValue) continue;
      const Shape shape = rewriter.graph().value(*table).type.shape;
      Attributes view;
      view.set("shape", std::vector<Dim>{shape[0], Dim(1), shape[1], shape[3]});
      Expected<ValueId> viewed = rewriter.create1(m.outputOp, OpKind::Reshape, {*table}, view, m.location);
      if (!viewed) return false;
      *table = *viewed;
    }
    return true;
  }

  std::optional<std::vector<ValueId>> createAttention(Rewriter& rewriter, const AttentionMatch& m) {
    const Graph& graph = rewriter.graph();
    ValueId q = m.q, k = m.k.value;
    if (!m.k.perm.empty()) {
      Attributes attrs;
      attrs.set("perm", m.k.perm);
      Expected<ValueId> transposed = rewriter.create1(m.outputOp, OpKind::Transpose, {k}, attrs, m.location);
      if (!transposed) return std::nullopt;
      k = *transposed;
    }
    ValueId mask = m.mask;
    if (m.bias != kNoValue) {
      std::optional<ValueId> masked = maskedBias(rewriter, m);
      if (!masked) return std::nullopt;
      mask = *masked;
    } else if (m.invertMask) {
      Expected<ValueId> inverted = rewriter.create1(m.outputOp, OpKind::Not, {mask}, {}, m.location);
      if (!inverted) return std::nullopt;
      mask = *inverted;
    }
    const bool tables = m.invFreq == kNoValue;
    ValueId cos = tables ? m.cos : kNoValue, sin = tables ? m.sin : kNoValue;
    if (m.ropeSeqFirst && !toHeadsFirst(rewriter, m, q, k, cos, sin)) return std::nullopt;
    std::vector<ValueId> operands = {q,       k,       m.v,
                                     mask,    cos,     sin,
                                     m.pastK, m.pastV, tables ? kNoValue : flatInvFreq(rewriter, m.invFreq)};
    while (operands.back() == kNoValue) operands.pop_back();
    Attributes attrs;
    attrs.set("heads", m.heads);
    attrs.set("kv_heads", m.kvHeads);
    attrs.set("scale", m.scale);
    if (m.causal) attrs.set("causal", true);
    if (m.window) attrs.set("window", m.window);
    if (m.rope) attrs.set("rope", std::string(m.ropeInterleaved ? "interleaved" : "half"));
    if (m.rope && m.ropeDims) attrs.set("rope_dims", m.ropeDims);
    if (m.keyPadding && m.bias == kNoValue) attrs.set("mask_layout", std::string("key_padding"));
    const bool appends = m.pastK != kNoValue;
    Expected<std::vector<ValueId>> results =
        rewriter.create(m.outputOp, OpKind::Attention, operands, attrs, appends ? 3 : 1, m.location);
    if (!results) return std::nullopt;
    if (!compatibleTypes(graph.value((*results)[0]).type, graph.value(m.out).type)) return std::nullopt;
    if (appends && (!compatibleTypes(graph.value((*results)[1]).type, graph.value(m.presentK).type) ||
                    !compatibleTypes(graph.value((*results)[2]).type, graph.value(m.presentV).type)))
      return std::nullopt;
    return *results;
  }

  // Creates the attention ops, then routes the uses after each to its
  // results; the bypassed ops stay for dce. Returns how many fused.
  Expected<int64_t> rewrite(Rewriter& rewriter, const std::vector<AttentionMatch>& matches) {
    std::vector<std::pair<ValueId, ValueId>> bypasses;  // replaced value, attention result
    int64_t fused = 0;
    for (const AttentionMatch& match : matches) {
      std::optional<std::vector<ValueId>> results;
      AttentionMatch m;
      for (const AttentionMatch& form : withFallbacks(match)) {
        m = form;
        const size_t created = rewriter.createdCount();
        results = createAttention(rewriter, m);
        if (results) break;
        rewriter.discardCreated(created);
      }
      if (!results) continue;
      bypasses.emplace_back(m.out, (*results)[0]);
      if (m.pastK != kNoValue) {
        bypasses.emplace_back(m.presentK, (*results)[1]);
        bypasses.emplace_back(m.presentV, (*results)[2]);
        ++counts_.kvAppends;
      }
      ++fused;
      if (m.causal) ++counts_.causal;
      if (m.mask != kNoValue) ++counts_.padding;
      if (m.rope) ++counts_.rope;
      if (m.invFreq != kNoValue) ++counts_.invFreq;
      if (m.keyPadding) ++counts_.keyPadding;
      counts_.repeatKv += m.repeatsRemoved;
    }
    if (fused == 0) return fused;
    // After every op is created, so a later attention reading an earlier
    // one's output reads the new value too.
    for (const auto& [from, to] : bypasses) rewriter.bypass(from, to);
    KILN_RETURN_IF_ERROR(rewriter.commit());
    return fused;
  }

  struct Counts {
    int64_t causal = 0, padding = 0, rope = 0, repeatKv = 0, kvAppends = 0, invFreq = 0, keyPadding = 0;
  } counts_;
  std::map<std::string, std::optional<MaskSemantics>> semanticsCache_;
  ValueId blockedScore_ = kNoValue;  // the -inf weight of maskedBias, made once
  std::map<ValueId, ValueId> flatInvFreq_;  // inv_freq weight -> its [D/2] copy
};

}  // namespace

std::unique_ptr<Pass> createAttentionFusion() { return std::make_unique<AttentionFusion>(); }

}  // namespace kiln
