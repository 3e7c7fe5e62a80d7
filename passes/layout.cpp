#include "passes/layout.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/builder.h"
#include "ir/op_registry.h"
#include "passes/constant_fold.h"
#include "passes/pattern_utils.h"

namespace kiln {

namespace {

using Permutation = std::vector<int64_t>;

// [0, 1, ..., n-1, n-2]: what a matmul's transpose flag does.
bool swapsLastTwo(const Permutation& perm) {
  const size_t rank = perm.size();
  if (rank < 2) return false;
  for (size_t i = 0; i + 2 < rank; ++i)
    if (perm[i] != static_cast<int64_t>(i)) return false;
  return perm[rank - 2] == static_cast<int64_t>(rank - 1) &&
         perm[rank - 1] == static_cast<int64_t>(rank - 2);
}

// The head split and merge around attention: [B, S, H, D] <-> [B, H, S, D].
bool swapsHeadsAndSequence(const Permutation& perm) { return perm == Permutation{0, 2, 1, 3}; }

bool isOp(const Op* op, OpKind kind) { return op && op->is(kind); }

bool hasAttr(const OpDef& def, std::string_view attr) {
  return std::any_of(def.attrs.begin(), def.attrs.end(),
                     [&](const AttrSpec& spec) { return spec.name == attr; });
}

void toggle(Attributes& attrs, const std::string& flag) {
  if (attrs.getBool(flag)) attrs.erase(flag);  // false is the default
  else attrs.set(flag, true);
}

class LayoutRewriter {
 public:
  LayoutRewriter(Graph& graph, PassStatistics& statistics)
      : graph_(graph), statistics_(statistics), ops_(graph.ops()), removed_(ops_.size(), false) {
    replacement_.resize(graph.values().size());
    for (size_t i = 0; i < replacement_.size(); ++i) replacement_[i] = static_cast<ValueId>(i);
    isOutput_.assign(graph.values().size(), false);
    for (ValueId id : graph.outputs()) isOutput_[index(id)] = true;
    lostUse_.assign(ops_.size(), false);
    collectUsers();
  }

  Expected<bool> run() {
    for (size_t i = 0; i < ops_.size(); ++i) {
      Op& op = ops_[i];
      for (ValueId& operand : op.operands)
        if (operand != kNoValue) operand = replacement_[index(operand)];
      if (op.is(OpKind::Transpose)) {
        KILN_RETURN_IF_ERROR(rewriteTranspose(i));
      } else if (op.is(OpKind::Matmul) && hasAttr(*op.def, "transpose_a")) {
        foldOperandTransposes(op, "transpose_a", "transpose_b", /*rank2Only=*/false);
      } else if (op.is(OpKind::Gemm)) {
        foldOperandTransposes(op, "trans_a", "trans_b", /*rank2Only=*/true);
      }
    }
    collectUsers();
    for (size_t i = 0; i < ops_.size(); ++i) {
      if (removed_[i] || !ops_[i].is(OpKind::Attention)) continue;
      KILN_RETURN_IF_ERROR(absorbHeadSplits(i));
      KILN_RETURN_IF_ERROR(absorbHeadMerge(i));
    }
    removeDeadLayoutOps();
    // The splits of packed q|k|v rows, now that the head splits that read
    // them are gone.
    collectUsers();
    for (size_t i = 0; i < ops_.size(); ++i)
      if (!removed_[i] && ops_[i].is(OpKind::Attention)) absorbQkvSplit(i);
    const int64_t removed = std::count(removed_.begin(), removed_.end(), true);

    statistics_.add("transposes-composed", composed_);
    statistics_.add("transposes-cancelled", cancelled_);
    statistics_.add("weights-transposed", weightsTransposed_);
    statistics_.add("matmul-transposes-folded", matmulFolds_);
    statistics_.add("attention-qkv-absorbed", qkvAbsorbed_);
    statistics_.add("attention-out-absorbed", outAbsorbed_);
    statistics_.add("ops-removed", removed);
    statistics_.add("attention-qkv-packed", qkvPacked_);
    if (!changed_) return false;
    std::vector<Op> kept;
    for (size_t i = 0; i < ops_.size(); ++i)
      if (!removed_[i]) kept.push_back(std::move(ops_[i]));
    graph_.setOps(std::move(kept));
    graph_.compact();
    return true;
  }

 private:
  static size_t index(ValueId id) { return static_cast<size_t>(id); }

  // The live op defining `value`, or null for inputs and weights.
  Op* producer(ValueId value) {
    if (value == kNoValue || index(value) >= graph_.values().size()) return nullptr;
    const Value& v = graph_.value(value);
    if (v.kind != ValueKind::OpResult || v.producer < 0) return nullptr;
    const size_t at = static_cast<size_t>(v.producer);
    return removed_[at] ? nullptr : &ops_[at];
  }

  Permutation permutation(const Op& transpose) const { return transposePermutation(graph_, transpose); }

  // Redirects operand `slot` of `op` to `value`, remembering that the old
  // value's producer may have become dead.
  void redirect(Op& op, size_t slot, ValueId value) {
    if (const Value& old = graph_.value(op.operands[slot]);
        old.kind == ValueKind::OpResult && old.producer >= 0)
      lostUse_[static_cast<size_t>(old.producer)] = true;
    op.operands[slot] = value;
    changed_ = true;
  }

  void replaceResult(size_t opIndex, ValueId by) {
    replacement_[index(ops_[opIndex].results[0])] = by;
    removed_[opIndex] = true;
    changed_ = true;
  }

  void collectUsers() {
    users_.assign(graph_.values().size(), {});
    for (size_t i = 0; i < ops_.size(); ++i) {
      if (removed_[i]) continue;
      for (size_t j = 0; j < ops_[i].operands.size(); ++j)
        if (ops_[i].operands[j] != kNoValue) users_[index(ops_[i].operands[j])].push_back({i, j});
    }
  }

  // True when every use of `value` is a matmul/gemm a or b operand, which
  // takes a transpose of the last two dims as a flag instead.
  bool onlyMatmulOperandUses(ValueId value, size_t rank) const {
    if (isOutput_[index(value)] || users_[index(value)].empty()) return false;
    for (const auto& [user, slot] : users_[index(value)]) {
      const Op& op = ops_[user];
      const bool matmul = op.is(OpKind::Matmul) && hasAttr(*op.def, "transpose_a");
      const bool gemm = op.is(OpKind::Gemm) && rank == 2;
      if (slot > 1 || !(matmul || gemm)) return false;
    }
    return true;
  }

  Status rewriteTranspose(size_t at) {
    Op& op = ops_[at];
    Permutation perm = permutation(op);
    if (Op* inner = producer(op.operands[0]); isOp(inner, OpKind::Transpose)) {
      // y = transpose(x, p1), z = transpose(y, p2): z[i] = x[p1[p2[i]]].
      const Permutation innerPerm = permutation(*inner);
      Permutation composed(perm.size());
      for (size_t i = 0; i < perm.size(); ++i)
        composed[i] = innerPerm[static_cast<size_t>(perm[i])];
      perm = composed;
      op.attrs.set("perm", perm);
      redirect(op, 0, inner->operands[0]);
      ++composed_;
    }
    const ValueId input = op.operands[0];
    const ValueId result = op.results[0];
    if (isOutput_[index(result)]) return Status::ok();  // outputs keep their register
    if (isIdentityPermutation(perm)) {
      replaceResult(at, input);
      ++cancelled_;
      return Status::ok();
    }
    const Value& weight = graph_.value(input);
    if (weight.kind != ValueKind::Weight || !weight.data) return Status::ok();
    if (swapsLastTwo(perm) && onlyMatmulOperandUses(result, perm.size())) return Status::ok();
    if (weight.data->numElements() > kConstantFoldMaxElements) return Status::ok();
    const Tensor* data = &*weight.data;
    Expected<std::vector<Tensor>> transposed = evaluateOp(*op.def, op.attrs, {&data, 1}, 1);
    if (!transposed) return Status::ok();  // left to run time, like constant_fold
    const std::string name = graph_.value(result).name;
    KILN_RETURN_IF_ERROR(graph_.rename(result, graph_.uniqueName(name + ".transposed")));
    const ValueId folded = graph_.addWeight(name, (*transposed)[0]);
    replacement_.push_back(folded);
    isOutput_.push_back(false);
    replaceResult(at, folded);
    ++weightsTransposed_;
    return Status::ok();
  }

  void foldOperandTransposes(Op& op, const std::string& flagA, const std::string& flagB,
                             bool rank2Only) {
    for (size_t slot = 0; slot < 2 && slot < op.operands.size(); ++slot) {
      Op* transpose = producer(op.operands[slot]);
      if (!isOp(transpose, OpKind::Transpose)) continue;
      const Permutation perm = permutation(*transpose);
      if (!swapsLastTwo(perm) || (rank2Only && perm.size() != 2)) continue;
      toggle(op.attrs, slot == 0 ? flagA : flagB);
      redirect(op, slot, transpose->operands[0]);
      ++matmulFolds_;
    }
  }

  // x [B, S, H*D] -> reshape [B, S, H, D] -> transpose(0, 2, 1, 3): x itself
  // in the bsd layout. Returns x, or kNoValue when `value` is not that.
  ValueId headSplitSource(ValueId value, int64_t heads) {
    Op* transpose = producer(value);
    if (!isOp(transpose, OpKind::Transpose) || !swapsHeadsAndSequence(permutation(*transpose)))
      return kNoValue;
    Op* reshape = producer(transpose->operands[0]);
    if (!isOp(reshape, OpKind::Reshape)) return kNoValue;
    const ValueId source = reshape->operands[0];
    const Shape& x = graph_.value(source).type.shape;
    const Shape& split = graph_.value(reshape->results[0]).type.shape;
    if (x.size() != 3 || split.size() != 4) return kNoValue;
    if (x[0] != split[0] || x[1] != split[1] || split[2] != Dim(heads) ||
        x[2] != split[2] * split[3])
      return kNoValue;
    return source;
  }

  // The op's operands and attributes still infer its declared result types.
  bool stillTyped(const Op& op) const {
    std::vector<TensorType> inferred;
    Status status = inferResultTypes(*op.def, op.attrs, operandInfos(graph_, op.operands),
                                     static_cast<int>(op.results.size()), inferred);
    if (!status || inferred.size() != op.results.size()) return false;
    for (size_t i = 0; i < inferred.size(); ++i)
      if (inferred[i] != graph_.value(op.results[i]).type) return false;
    return true;
  }

  Status absorbHeadSplits(size_t at) {
    Op& op = ops_[at];
    if (op.attrs.getString("qkv_layout", "bhsd") != "bhsd" || op.operands.size() < 3)
      return Status::ok();
    const int64_t heads = op.attrs.getInt("heads"), kvHeads = op.attrs.getInt("kv_heads");
    const ValueId sources[3] = {headSplitSource(op.operands[0], heads),
                                headSplitSource(op.operands[1], kvHeads),
                                headSplitSource(op.operands[2], kvHeads)};
    // One layout for all three: absorb only when every one is a head split.
    if (std::find(std::begin(sources), std::end(sources), kNoValue) != std::end(sources))
      return Status::ok();
    Op candidate = op;
    candidate.attrs.set("qkv_layout", std::string("bsd"));
    for (size_t slot = 0; slot < 3; ++slot) candidate.operands[slot] = sources[slot];
    if (!stillTyped(candidate)) return Status::ok();
    for (size_t slot = 0; slot < 3; ++slot) redirect(op, slot, sources[slot]);
    op.attrs = candidate.attrs;
    ++qkvAbsorbed_;
    return Status::ok();
  }

  // The only use of `value`, when it has exactly one and is no graph output.
  const std::pair<size_t, size_t>* soleUse(ValueId value) const {
    const auto& uses = users_[index(value)];
    if (isOutput_[index(value)] || uses.size() != 1) return nullptr;
    return &uses.front();
  }

  // out [B, H, S, D] -> transpose(0, 2, 1, 3) -> reshape [B, S, H*D]: the
  // attention writes the reshape's result directly in the bsd layout.
  Status absorbHeadMerge(size_t at) {
    Op& op = ops_[at];
    if (op.attrs.getString("out_layout", "bhsd") != "bhsd") return Status::ok();
    const auto* toTranspose = soleUse(op.results[0]);
    if (!toTranspose || removed_[toTranspose->first]) return Status::ok();
    const size_t transposeAt = toTranspose->first;
    if (!isOp(&ops_[transposeAt], OpKind::Transpose) ||
        !swapsHeadsAndSequence(permutation(ops_[transposeAt])))
      return Status::ok();
    const auto* toReshape = soleUse(ops_[transposeAt].results[0]);
    if (!toReshape || !isOp(&ops_[toReshape->first], OpKind::Reshape) || toReshape->second != 0)
      return Status::ok();
    const size_t reshapeAt = toReshape->first;
    const Shape& out = graph_.value(op.results[0]).type.shape;
    const ValueId merged = ops_[reshapeAt].results[0];
    const Shape& mergedShape = graph_.value(merged).type.shape;
    if (out.size() != 4 || mergedShape != Shape{out[0], out[2], out[1] * out[3]})
      return Status::ok();
    Op candidate = op;
    candidate.attrs.set("out_layout", std::string("bsd"));
    candidate.results[0] = merged;
    if (!stillTyped(candidate)) return Status::ok();
    op = std::move(candidate);
    removed_[transposeAt] = removed_[reshapeAt] = true;
    lostUse_[reshapeAt] = true;
    changed_ = true;
    ++outAbsorbed_;
    return Status::ok();
  }

  // q, k, v = split(rows) on the last axis with widths Hq*D, Hkv*D, Hkv*D,
  // each read only by this bsd attention: the attention reads the rows
  // packed (qkv_layout = "bsd_packed", k and v absent) and the split goes.
  void absorbQkvSplit(size_t at) {
    Op& op = ops_[at];
    if (op.attrs.getString("qkv_layout", "bhsd") != "bsd" || op.operands.size() < 3) return;
    Op* split = producer(op.operands[0]);
    if (!isOp(split, OpKind::Split) || split->results.size() != 3) return;
    const size_t splitAt = static_cast<size_t>(graph_.value(op.operands[0]).producer);
    const Shape& rows = graph_.value(split->operands[0]).type.shape;
    const int64_t axis = split->attrs.getInt("axis");
    if (rows.empty() || (axis != -1 && axis != static_cast<int64_t>(rows.size()) - 1)) return;
    for (size_t slot = 0; slot < 3; ++slot) {
      const auto* use = soleUse(split->results[slot]);
      if (op.operands[slot] != split->results[slot] || !use || use->first != at || use->second != slot) return;
    }
    // Widths Hq*D, Hkv*D, Hkv*D: the packed layout's head rows.
    const int64_t heads = op.attrs.getInt("heads"), kvHeads = op.attrs.getInt("kv_heads");
    std::optional<int64_t> widths[3];
    for (size_t slot = 0; slot < 3; ++slot) widths[slot] = graph_.value(split->results[slot]).type.shape.back().constant();
    if (!widths[0] || !widths[1] || !widths[2] || heads <= 0 || *widths[0] % heads != 0) return;
    const int64_t headDim = *widths[0] / heads;
    if (*widths[1] != kvHeads * headDim || *widths[2] != kvHeads * headDim) return;
    Op candidate = op;
    candidate.attrs.set("qkv_layout", std::string("bsd_packed"));
    candidate.operands[0] = split->operands[0];
    candidate.operands[1] = candidate.operands[2] = kNoValue;
    if (!stillTyped(candidate)) return;
    op = std::move(candidate);
    removed_[splitAt] = true;
    changed_ = true;
    ++qkvPacked_;
  }

  // Transposes and reshapes whose results lost their last use here.
  void removeDeadLayoutOps() {
    std::vector<int64_t> uses(graph_.values().size(), 0);
    for (size_t i = 0; i < ops_.size(); ++i)
      if (!removed_[i])
        for (ValueId operand : ops_[i].operands)
          if (operand != kNoValue) ++uses[index(operand)];
    for (size_t i = ops_.size(); i-- > 0;) {
      Op& op = ops_[i];
      if (removed_[i] || !lostUse_[i] || !(isOp(&op, OpKind::Transpose) || isOp(&op, OpKind::Reshape)))
        continue;
      const bool dead = std::all_of(op.results.begin(), op.results.end(), [&](ValueId id) {
        return uses[index(id)] == 0 && !isOutput_[index(id)];
      });
      if (!dead) continue;
      removed_[i] = true;
      changed_ = true;
      for (ValueId operand : op.operands) {
        if (operand == kNoValue) continue;
        --uses[index(operand)];
        if (const Value& v = graph_.value(operand); v.kind == ValueKind::OpResult && v.producer >= 0)
          lostUse_[static_cast<size_t>(v.producer)] = true;
      }
    }
  }

  Graph& graph_;
  PassStatistics& statistics_;
  std::vector<Op> ops_;  // rewritten in place; same indices as graph_.ops()
  std::vector<bool> removed_;
  std::vector<ValueId> replacement_;
  std::vector<bool> isOutput_;
  std::vector<bool> lostUse_;  // by op index
  std::vector<std::vector<std::pair<size_t, size_t>>> users_;  // (op, operand slot)
  bool changed_ = false;
  int64_t composed_ = 0, cancelled_ = 0, weightsTransposed_ = 0, matmulFolds_ = 0;
  int64_t qkvAbsorbed_ = 0, outAbsorbed_ = 0, qkvPacked_ = 0;
};

class Layout final : public Pass {
 public:
  std::string_view name() const override { return "layout"; }
  std::string_view summary() const override {
    return "folds transposes into matmul flags and weights, cancels transpose pairs, absorbs the "
           "head split/merge around attention (bsd layouts) and the split of packed q|k|v rows";
  }
  Expected<bool> run(Graph& graph) override { return LayoutRewriter(graph, statistics_).run(); }
};

}  // namespace

std::unique_ptr<Pass> createLayout() { return std::make_unique<Layout>(); }

}  // namespace kiln
