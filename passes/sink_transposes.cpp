#include "passes/sink_transposes.h"

#include <optional>
#include <vector>

#include "passes/pattern_utils.h"

namespace kiln {

namespace {

using Permutation = std::vector<int64_t>;

// A transpose producing `value` (its permutation normalised, its input in
// `source`); with `rowKeeping`, only one that keeps the last axis last.
std::optional<Permutation> transposeOf(const Rewriter& rw, ValueId value, bool rowKeeping, ValueId& source) {
  const Op* transpose = rw.producer(value, OpKind::Transpose);
  if (!transpose) return std::nullopt;
  Permutation perm = transposePermutation(rw.graph(), *transpose);
  const auto rank = static_cast<int64_t>(perm.size());
  if (rank < 2 || (rowKeeping && perm.back() != rank - 1)) return std::nullopt;
  source = transpose->operands[0];
  return perm;
}

// An operand that varies along the last axis only (a bias row): it
// broadcasts the same way before and after the transpose.
bool alongLastAxisOnly(const Graph& graph, ValueId value) {
  const Shape& shape = graph.value(value).type.shape;
  for (size_t d = 0; d + 1 < shape.size(); ++d)
    if (shape[d] != Dim(1)) return false;
  return true;
}

class SinkTransposes final : public Pass {
 public:
  std::string_view name() const override { return "sink_transposes"; }
  std::string_view summary() const override {
    return "moves transposes that keep the last axis past row-wise ops toward their consumers; composes them";
  }

  Expected<bool> run(Graph& graph) override {
    Rewriter rw(graph);
    int64_t sunk = 0, composed = 0;
    for (size_t i = 0; i < rw.originalOpCount(); ++i) {
      const auto index = static_cast<int32_t>(i);
      if (rw.isMarked(index)) continue;
      const Op op = rw.op(index);  // a copy: creating ops moves the op list
      const bool isTranspose = op.is(OpKind::Transpose);
      Expected<ValueId> moved = isTranspose ? compose(rw, index, op) : sinkPast(rw, index, op);
      if (!moved) return moved.status();
      if (*moved == kNoValue) continue;
      KILN_RETURN_IF_ERROR(rw.replace(op.results[0], *moved));
      rw.mark(index);
      ++(isTranspose ? composed : sunk);
    }
    statistics_.add("transposes-sunk", sunk);
    statistics_.add("transposes-composed", composed);
    KILN_RETURN_IF_ERROR(rw.commit());
    return rw.changed();
  }

 private:
  // transpose(transpose(x, p1), p2): one transpose of x, or x itself.
  static Expected<ValueId> compose(Rewriter& rw, int32_t index, const Op& op) {
    ValueId source = kNoValue;
    std::optional<Permutation> inner = transposeOf(rw, op.operands[0], false, source);
    if (!inner) return kNoValue;
    Permutation perm;
    for (int64_t axis : transposePermutation(rw.graph(), op)) perm.push_back((*inner)[static_cast<size_t>(axis)]);
    // A graph output keeps its name, which an input or weight cannot take.
    if (isIdentityPermutation(perm)) return rw.isGraphOutput(op.results[0]) ? kNoValue : source;
    Attributes attrs;
    attrs.set("perm", perm);
    return rw.create1(index, OpKind::Transpose, {source}, attrs, op.location);
  }

  // op(transpose(x, p), ...) for a row-wise op: transpose(op'(x, ...), p'),
  // or kNoValue when the op is not one.
  static Expected<ValueId> sinkPast(Rewriter& rw, int32_t index, const Op& op) {
    if (op.results.size() != 1 || op.operands.empty()) return kNoValue;
    const Graph& graph = rw.graph();
    for (size_t slot = 0; slot < op.operands.size(); ++slot) {
      ValueId source = kNoValue;
      std::optional<Permutation> perm = transposeOf(rw, op.operands[slot], true, source);
      if (!perm) continue;
      std::optional<OpForm> inner = rowWise(graph, op, slot, source, *perm);
      if (!inner) continue;
      Expected<ValueId> moved = rw.create1(index, inner->kind, inner->operands, inner->attrs, op.location);
      if (!moved) return kNoValue;  // inference refused the moved form: leave the op
      Attributes attrs;
      attrs.set("perm", extended(*perm, graph.value(op.results[0]).type.rank()));
      return rw.create1(index, OpKind::Transpose, {*moved}, attrs, op.location);
    }
    return kNoValue;
  }

  // `perm` over the leading axes, the axes from its last one on kept in place
  // (a reshape that split the last axis adds some).
  static Permutation extended(Permutation perm, size_t rank) {
    for (size_t axis = perm.size(); axis < rank; ++axis) perm.push_back(static_cast<int64_t>(axis));
    return perm;
  }

  // The op made on the transpose's source when it works row by row: a matmul
  // reading it as a by a 2-D b, an elementwise op whose other operand varies
  // along the last axis only, a slice of one axis, a reshape splitting the
  // last axis.
  static std::optional<OpForm> rowWise(const Graph& graph, const Op& op, size_t slot, ValueId source,
                                       const Permutation& perm) {
    std::vector<ValueId> operands = op.operands;
    operands[slot] = source;
    const Shape& from = graph.value(source).type.shape;
    if (op.is(OpKind::Matmul)) {
      const bool residual = op.operands.size() > 3 && op.operands[3] != kNoValue;
      if (slot != 0 || residual || op.attrs.getBool("transpose_a") || graph.value(op.operands[1]).type.rank() != 2)
        return std::nullopt;
      return OpForm{OpKind::Matmul, operands, op.attrs};
    }
    if (op.isOneOf({OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div})) {
      if (op.operands.size() != 2 || !alongLastAxisOnly(graph, op.operands[1 - slot])) return std::nullopt;
      return OpForm{op.kind(), operands, op.attrs};
    }
    if (op.is(OpKind::Slice) && slot == 0) {
      std::optional<AxisSlice> cut = sliceOfOneAxis(graph, op);
      if (!cut) return std::nullopt;
      Attributes attrs;
      attrs.set("axes", std::vector<int64_t>{perm[static_cast<size_t>(cut->axis)]});
      attrs.set("starts", std::vector<int64_t>{cut->start});
      attrs.set("ends", std::vector<int64_t>{cut->end});
      if (cut->step != 1) attrs.set("steps", std::vector<int64_t>{cut->step});
      return OpForm{OpKind::Slice, {source}, attrs};
    }
    if (op.is(OpKind::Reshape) && op.operands.size() == 1 && op.attrs.has("shape")) {
      const Shape& to = graph.value(op.results[0]).type.shape;
      const size_t lead = from.size() - 1;
      if (to.size() <= lead) return std::nullopt;
      Shape split(from.begin(), from.end() - 1);
      for (size_t d = 0; d < lead; ++d)
        if (to[d] != graph.value(op.operands[0]).type.shape[d]) return std::nullopt;
      split.insert(split.end(), to.begin() + static_cast<std::ptrdiff_t>(lead), to.end());
      Attributes attrs;
      attrs.set("shape", std::vector<Dim>(split));
      return OpForm{OpKind::Reshape, {source}, attrs};
    }
    return std::nullopt;
  }
};

}  // namespace

std::unique_ptr<Pass> createSinkTransposes() { return std::make_unique<SinkTransposes>(); }

}  // namespace kiln
