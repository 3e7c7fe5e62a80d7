#include "passes/unfold_heads.h"

#include <map>
#include <optional>
#include <vector>

#include "ir/op_registry.h"
#include "passes/attention_patterns.h"
#include "passes/pattern_utils.h"

namespace kiln {

namespace {

// The batch and head counts a folded [B*H, ., .] value splits into.
struct Heads {
  Dim batch;
  int64_t heads = 0;
};

const Shape& shapeOf(const Rewriter& rw, ValueId v) { return rw.graph().value(v).type.shape; }

// A created op's result, or kNoValue when inference refused it (the unfold
// functions return kNoValue for a value they cannot unfold).
ValueId made(Expected<ValueId> created) { return created ? *created : kNoValue; }

// Records the split the first unfolded operand shows; later ones must agree.
bool agrees(std::optional<Heads>& heads, const Dim& batch, int64_t count) {
  if (!heads) heads = Heads{batch, count};
  return heads->batch == batch && heads->heads == count;
}

class UnfoldHeads final : public Pass {
 public:
  std::string_view name() const override { return "unfold_heads"; }
  std::string_view summary() const override {
    return "rewrites attention whose heads are folded into the batch ([B*H, S, T] scores from 3-D matmuls) "
           "over [B, H, S, T], for attention_fusion";
  }

  Expected<bool> run(Graph& graph) override {
    Rewriter rw(graph);
    int64_t unfolded = 0;
    for (size_t i = 0; i < rw.originalOpCount(); ++i)
      if (rw.op(static_cast<int32_t>(i)).is(OpKind::Softmax)) unfolded += unfoldAt(rw, static_cast<int32_t>(i));
    statistics_.add("heads-unfolded", unfolded);
    if (unfolded == 0) return false;
    KILN_RETURN_IF_ERROR(rw.commit());
    return true;
  }

 private:
  // The ops from a 3-D scores matmul up to `v` (the softmax input), in graph
  // order, the matmul first: views, casts and elementwise ops with the scores
  // as one operand.
  std::optional<std::vector<int32_t>> chainTo(const Rewriter& rw, ValueId v, int depth = 0) const {
    const int32_t index = rw.producerIndex(v);
    if (index < 0 || depth > 12 || rw.isMarked(index)) return std::nullopt;
    const Op& op = rw.op(index);
    if (op.is(OpKind::Matmul)) {
      if (shapeOf(rw, v).size() != 3 || op.operands.size() != 2) return std::nullopt;
      return std::vector<int32_t>{index};
    }
    const bool elementwise = op.is(OpKind::Add) || op.is(OpKind::Sub) || op.is(OpKind::Mul) ||
                             op.is(OpKind::Div) || op.is(OpKind::Where) || op.is(OpKind::Cast);
    if (!elementwise && !op.is(OpKind::Reshape)) return std::nullopt;
    for (size_t slot = 0; slot < (op.is(OpKind::Reshape) ? 1 : op.operands.size()); ++slot) {
      if (op.operands[slot] == kNoValue) continue;
      std::optional<std::vector<int32_t>> chain = chainTo(rw, op.operands[slot], depth + 1);
      if (!chain) continue;
      chain->push_back(index);
      return chain;
    }
    return std::nullopt;
  }

  // v [B*H, x, y] as a value [B, H, x, y] (made before `anchor` when needed).
  ValueId unfold(Rewriter& rw, int32_t anchor, ValueId v, std::optional<Heads>& heads) {
    const Shape& s = shapeOf(rw, v);
    if (s.size() != 3) return kNoValue;
    if (const Op* reshape = rw.producer(v, OpKind::Reshape)) {  // a merge of [B, H, x, y]
      const ValueId x = reshape->operands[0];
      const Shape& xs = shapeOf(rw, x);
      if (xs.size() == 4 && xs[1].constant() && xs[0] * xs[1] == s[0] && xs[2] == s[1] && xs[3] == s[2] &&
          agrees(heads, xs[0], *xs[1].constant()))
        return x;
    }
    if (const Op* transpose = rw.producer(v, OpKind::Transpose)) {
      const Op copy = *transpose;
      const std::vector<int64_t> perm = copy.attrs.getInts("perm");
      if (perm.size() == 3 && perm[0] == 0) return unfoldTransposed(rw, anchor, copy, perm, heads);
      return unfoldSplit(rw, anchor, copy, heads);
    }
    if (const Op* concat = rw.producer(v, OpKind::Concat)) {
      const Op copy = *concat;
      return unfoldConcat(rw, anchor, copy, heads);
    }
    for (OpKind kind : {OpKind::Mul, OpKind::Div})
      if (const Op* scaled = rw.producer(v, kind)) {
        const Op copy = *scaled;  // creating ops may move the op list
        if (!scalarWeight(rw.graph(), copy.operands[1])) return kNoValue;
        const ValueId inner = unfold(rw, anchor, copy.operands[0], heads);
        if (inner == kNoValue) return kNoValue;
        return made(rw.create1(anchor, kind, {inner, copy.operands[1]}, copy.attrs, copy.location));
      }
    return kNoValue;
  }

  // concat(past, fresh) along the keys of a KV cache whose heads are folded
  // into the batch (BLOOM's [B*H, T, D] values; its keys [B*H, D, T], kᵀ) as
  // the append attention fusion matches: concat(past, fresh) on axis 2 of
  // [B, H, T, D], the cache (an input) viewed as [B, H, ., .] and keys
  // transposed into it and back. The 3-D concat (the present output) becomes
  // a view of the 4-D one.
  ValueId unfoldConcat(Rewriter& rw, int32_t anchor, const Op& concat, std::optional<Heads>& heads) {
    int64_t axis = concat.attrs.getInt("axis");
    if (axis < 0) axis += 3;
    if (concat.operands.size() != 2 || (axis != 1 && axis != 2)) return kNoValue;
    const bool keysLast = axis == 2;
    // Its one reader is the matmul being unfolded; the rest are graph outputs.
    if (rw.users(concat.results[0]).size() != 1) return kNoValue;
    ValueId fresh = unfold(rw, anchor, concat.operands[1], heads);
    if (fresh == kNoValue || !heads) return kNoValue;
    ValueId past = liftOperand(rw, anchor, concat.operands[0], *heads);
    if (past == kNoValue || past == concat.operands[0]) return kNoValue;
    Attributes swapLast, along, merge;
    swapLast.set("perm", std::vector<int64_t>{0, 1, 3, 2});
    along.set("axis", int64_t{2});
    merge.set("shape", std::vector<Dim>(shapeOf(rw, concat.results[0])));
    // The present view goes last, after the attention that will replace the
    // 4-D concat (by its present result, for the uses placed after it).
    const auto last = static_cast<int32_t>(rw.originalOpCount());
    auto transposed = [&](int32_t at, ValueId v) {
      return v == kNoValue ? kNoValue : made(rw.create1(at, OpKind::Transpose, {v}, swapLast, concat.location));
    };
    if (keysLast) {
      past = transposed(anchor, past);
      fresh = transposed(anchor, fresh);
    }
    const ValueId joined = past == kNoValue || fresh == kNoValue
                               ? kNoValue
                               : made(rw.create1(anchor, OpKind::Concat, {past, fresh}, along, concat.location));
    const ValueId presentRows = keysLast ? transposed(last, joined) : joined;
    const ValueId present = presentRows == kNoValue
                                ? kNoValue
                                : made(rw.create1(last, OpKind::Reshape, {presentRows}, merge, concat.location));
    if (present == kNoValue) return kNoValue;
    presents_.emplace_back(concat.results[0], present);
    return keysLast ? transposed(anchor, joined) : joined;
  }

  // transpose(folded, [0, 2, 1]) (GPT-NeoX's kᵀ) as the transpose of the
  // unfolded value's last two axes.
  ValueId unfoldTransposed(Rewriter& rw, int32_t anchor, const Op& transpose, const std::vector<int64_t>& perm,
                           std::optional<Heads>& heads) {
    const ValueId inner = unfold(rw, anchor, transpose.operands[0], heads);
    if (inner == kNoValue) return kNoValue;
    Attributes order;
    order.set("perm", std::vector<int64_t>{0, 1, perm[1] + 1, perm[2] + 1});
    return made(rw.create1(anchor, OpKind::Transpose, {inner}, order, transpose.location));
  }

  // transpose(reshape(x [P, B, H*D] -> [P, B*H, D]), perm) with B*H moved
  // first (torch.nn's heads) as transpose(reshape(x -> [P, B, H, D]), perm4).
  ValueId unfoldSplit(Rewriter& rw, int32_t anchor, const Op& transpose, std::optional<Heads>& heads) {
    const std::vector<int64_t> perm = transpose.attrs.getInts("perm");
    const Op* reshape = rw.producer(transpose.operands[0], OpKind::Reshape);
    if (perm.size() != 3 || perm[0] != 1 || !reshape) return kNoValue;
    const ValueId x = reshape->operands[0];
    const Shape xs = shapeOf(rw, x), rs = shapeOf(rw, transpose.operands[0]);
    if (xs.size() != 3 || rs.size() != 3 || xs[0] != rs[0]) return kNoValue;
    const int64_t width = xs[2].constant().value_or(0), headDim = rs[2].constant().value_or(0);
    if (width <= 0 || headDim <= 0 || width % headDim != 0) return kNoValue;
    const int64_t count = width / headDim;
    if (xs[1] * Dim(count) != rs[1] || !agrees(heads, xs[1], count)) return kNoValue;
    Attributes split, order;
    split.set("shape", std::vector<Dim>{xs[0], xs[1], Dim(count), Dim(headDim)});
    std::vector<int64_t> perm4;  // axis 1 of the 3-D view is axes 1, 2 (B, H) of the 4-D one
    for (int64_t axis : perm) {
      if (axis == 0) perm4.push_back(0);
      if (axis == 1) perm4.insert(perm4.end(), {1, 2});
      if (axis == 2) perm4.push_back(3);
    }
    order.set("perm", perm4);
    const std::string location = transpose.location;
    const ValueId heads4 = made(rw.create1(anchor, OpKind::Reshape, {x}, split, location));
    if (heads4 == kNoValue) return kNoValue;
    return made(rw.create1(anchor, OpKind::Transpose, {heads4}, order, location));
  }

  // An operand of a chain op: a [B*H, x, y] one viewed as [B, H, x, y];
  // one that broadcasts over the batch and heads, or is 4-D already (after
  // the chain's own reshape to [B, H, S, T]), stays as it is.
  ValueId liftOperand(Rewriter& rw, int32_t anchor, ValueId v, const Heads& heads) {
    const Shape& s = shapeOf(rw, v);
    if (s.size() != 3 || s[0] == Dim(1)) return v;
    if (s[0] != heads.batch * Dim(heads.heads)) return kNoValue;
    Attributes split;
    split.set("shape", std::vector<Dim>{heads.batch, Dim(heads.heads), s[1], s[2]});
    return made(rw.create1(anchor, OpKind::Reshape, {v}, split));
  }

  // The softmax at `index`, its scores chain and the matmul reading its
  // probabilities, made again over [B, H, ., .]. 1 when it did, 0 when the
  // pattern is not there (nothing created stays).
  int64_t unfoldAt(Rewriter& rw, int32_t index) {
    const Op softmax = rw.op(index);
    const int64_t rank = static_cast<int64_t>(shapeOf(rw, softmax.operands[0]).size());
    const int64_t axis = softmax.attrs.getInt("axis", -1);
    if (axis != -1 && axis != rank - 1) return 0;
    std::optional<std::vector<int32_t>> chain = chainTo(rw, softmax.operands[0]);
    if (!chain) return 0;
    int32_t reader = rw.soleUser(softmax.results[0]);
    std::vector<int32_t> after;
    if (reader >= 0 && rw.op(reader).is(OpKind::Reshape)) {
      after.push_back(reader);
      reader = rw.soleUser(rw.op(reader).results[0]);
    }
    if (reader < 0 || !rw.op(reader).is(OpKind::Matmul) || rw.op(reader).operands.size() != 2) return 0;
    const size_t readerRank = shapeOf(rw, rw.op(reader).results[0]).size();
    if (readerRank != 3 && readerRank != 4) return 0;
    for (int32_t op : *chain)
      if (rw.soleUser(rw.op(op).results[0]) < 0) return 0;
    const size_t created = rw.createdCount();
    presents_.clear();
    if (!rebuild(rw, *chain, softmax, reader)) {
      rw.discardCreated(created);
      return 0;
    }
    for (const auto& [concat, view] : presents_)
      if (!rw.replace(concat, view).isOk()) return 0;
    for (int32_t op : *chain) rw.mark(op);
    rw.mark({index, reader});
    rw.mark(after);
    return 1;
  }

  // The 3-D KV-cache concats of the softmax being unfolded and the views of
  // their 4-D replacements that take their uses once the rebuild succeeds.
  std::vector<std::pair<ValueId, ValueId>> presents_;

  bool rebuild(Rewriter& rw, const std::vector<int32_t>& chain, const Op& softmax, int32_t readerIndex) {
    const Op scores = rw.op(chain.front()), reader = rw.op(readerIndex);
    std::optional<Heads> heads;
    const ValueId a = unfold(rw, readerIndex, scores.operands[0], heads);
    const ValueId b = a == kNoValue ? kNoValue : unfold(rw, readerIndex, scores.operands[1], heads);
    // A 4-D reader (GPT-NeoX: the scores reshaped back before the softmax) reads v as it is.
    const bool folded = shapeOf(rw, reader.results[0]).size() == 3;
    const ValueId v = b == kNoValue ? kNoValue
                      : folded      ? unfold(rw, readerIndex, reader.operands[1], heads)
                                    : reader.operands[1];
    if (v == kNoValue) return false;
    std::map<ValueId, ValueId> lifted;
    const ValueId s4 = made(rw.create1(readerIndex, OpKind::Matmul, {a, b}, scores.attrs, scores.location));
    if (s4 == kNoValue) return false;
    lifted[scores.results[0]] = s4;
    for (size_t i = 1; i < chain.size(); ++i) {
      const Op op = rw.op(chain[i]);
      if (op.is(OpKind::Reshape)) {
        lifted[op.results[0]] = lifted.at(op.operands[0]);
        continue;
      }
      std::vector<ValueId> operands;
      for (ValueId o : op.operands) {
        const ValueId operand = o == kNoValue     ? kNoValue
                                : lifted.count(o) ? lifted.at(o)
                                                  : liftOperand(rw, readerIndex, o, *heads);
        if (o != kNoValue && operand == kNoValue) return false;
        operands.push_back(operand);
      }
      Expected<ValueId> made = rw.create1(readerIndex, op.kind(), operands, op.attrs, op.location);
      if (!made) return false;
      lifted[op.results[0]] = *made;
    }
    Attributes lastAxis;
    lastAxis.set("axis", int64_t{-1});
    Expected<ValueId> probs =
        rw.create1(readerIndex, OpKind::Softmax, {lifted.at(softmax.operands[0])}, lastAxis, softmax.location);
    if (!probs) return false;
    Expected<ValueId> out = rw.create1(readerIndex, OpKind::Matmul, {*probs, v}, reader.attrs, reader.location);
    if (!out) return false;
    if (!folded) return rw.replace(reader.results[0], *out).isOk();
    Attributes merge;
    merge.set("shape", std::vector<Dim>(shapeOf(rw, reader.results[0])));
    Expected<ValueId> merged = rw.create1(readerIndex, OpKind::Reshape, {*out}, merge, reader.location);
    return merged && rw.replace(reader.results[0], *merged).isOk();
  }
};

}  // namespace

std::unique_ptr<Pass> createUnfoldHeads() { return std::make_unique<UnfoldHeads>(); }

}  // namespace kiln
