#include "passes/swiglu_fusion.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "passes/pattern_utils.h"

namespace kiln {

namespace {

struct SwigluMatch {
  ValueId gate = kNoValue, up = kNoValue;
  // Set when the gate is a matmul whose silu epilogue moves into the swiglu.
  int32_t siluMatmul = -1;
  std::vector<int32_t> ops;
};

std::optional<SwigluMatch> matchSwiglu(const Rewriter& rewriter, int32_t root) {
  const ValueId result = rewriter.op(root).results[0];
  const Product product = flattenProduct(rewriter, result);
  if (!nearlyEqual(product.coefficient, 1.0)) return std::nullopt;
  const std::vector<ValueId>& factors = product.factors;
  SwigluMatch match;
  match.ops = product.ops;
  if (factors.size() == 3) {
    // gate * sigmoid(gate) * up
    for (size_t s = 0; s < 3 && match.gate == kNoValue; ++s) {
      const Op* sigmoid = rewriter.producer(factors[s], OpKind::Sigmoid);
      if (!sigmoid) continue;
      for (size_t g = 0; g < 3; ++g) {
        if (g == s || factors[g] != sigmoid->operands[0]) continue;
        match.gate = factors[g];
        match.up = factors[3 - s - g];
        match.ops.push_back(rewriter.producerIndex(factors[s]));
        break;
      }
    }
  } else if (factors.size() == 2) {
    // silu(gate) * up, or matmul{activation = "silu"} * up
    for (size_t s = 0; s < 2 && match.gate == kNoValue; ++s) {
      const int32_t producer = rewriter.producerIndex(factors[s]);
      if (producer < 0 || rewriter.isMarked(producer)) continue;
      const Op& op = rewriter.op(producer);
      if (op.is(OpKind::Silu)) {
        match.gate = op.operands[0];
      } else if (op.is(OpKind::Matmul) && op.attrs.getString("activation", "none") == "silu" &&
                 (op.operands.size() < 4 || op.operands[3] == kNoValue)) {
        match.gate = factors[s];
        match.siluMatmul = producer;
      } else {
        continue;
      }
      match.up = factors[1 - s];
      match.ops.push_back(producer);
    }
  }
  if (match.gate == kNoValue || !rewriter.isConfined(match.ops, root)) return std::nullopt;
  // The product may not broadcast beyond gate and up (constant factors of higher rank).
  const Graph& graph = rewriter.graph();
  std::optional<Shape> shape = broadcastShapes(graph.value(match.gate).type.shape, graph.value(match.up).type.shape);
  const TensorType& resultType = graph.value(result).type;
  if (!shape || shape->size() != resultType.rank() || !isFloat(resultType.dtype)) return std::nullopt;
  return match;
}

// The operand of the split whose two results are `gate` and then `up`, the
// two halves of its last axis, when nothing outside `pattern` reads them (nor
// is either a graph output): a swiglu can read the packed rows itself, and
// the split's copies go. kNoValue otherwise.
ValueId packedGateUp(const Rewriter& rewriter, ValueId gate, ValueId up, const std::vector<int32_t>& pattern) {
  const Op* split = rewriter.producer(gate, OpKind::Split);
  if (!split || split->results.size() != 2 || split->results[0] != gate || split->results[1] != up)
    return kNoValue;
  const Graph& graph = rewriter.graph();
  const TensorType& packed = graph.value(split->operands[0]).type;
  const auto rank = static_cast<int64_t>(packed.rank());
  const int64_t axis = split->attrs.getInt("axis");
  if (rank == 0 || (axis != -1 && axis != rank - 1)) return kNoValue;
  const std::optional<int64_t> width = packed.shape.back().constant();
  for (ValueId half : {gate, up}) {
    const std::optional<int64_t> halfWidth = graph.value(half).type.shape.back().constant();
    if (!width || !halfWidth || *width != 2 * *halfWidth || rewriter.isGraphOutput(half)) return kNoValue;
    for (int32_t user : rewriter.users(half))
      if (std::find(pattern.begin(), pattern.end(), user) == pattern.end()) return kNoValue;
  }
  return split->operands[0];
}

class SwigluFusion final : public Pass {
 public:
  std::string_view name() const override { return "swiglu_fusion"; }
  std::string_view summary() const override {
    return "fuses silu(gate) * up into swiglu, reading gate | up packed when they are the halves of a split";
  }

  Expected<bool> run(Graph& graph) override {
    Rewriter rewriter(graph);
    int64_t swiglus = 0, packed = 0;
    for (size_t i = 0; i < rewriter.originalOpCount(); ++i) {
      const int32_t index = static_cast<int32_t>(i);
      if (rewriter.isMarked(index)) continue;
      const OpKind kind = rewriter.op(index).kind();
      if (kind == OpKind::Mul) {
        std::optional<SwigluMatch> match = matchSwiglu(rewriter, index);
        if (!match) continue;
        Expected<bool> readsPacked = rewrite(rewriter, index, *match);
        if (!readsPacked) return readsPacked.status();
        ++swiglus;
        packed += *readsPacked ? 1 : 0;
      } else if (kind == OpKind::Swiglu && rewriter.op(index).operands.size() == 2) {
        // A swiglu already in the graph (from an earlier run, or written so).
        SwigluMatch match;
        match.gate = rewriter.op(index).operands[0];
        match.up = rewriter.op(index).operands[1];
        match.ops = {index};
        if (match.up == kNoValue || packedGateUp(rewriter, match.gate, match.up, match.ops) == kNoValue) continue;
        Expected<bool> readsPacked = rewrite(rewriter, index, match);
        if (!readsPacked) return readsPacked.status();
        ++packed;
      }
    }
    statistics_.add("swiglus", swiglus);
    statistics_.add("packed-gate-up", packed);
    KILN_RETURN_IF_ERROR(rewriter.commit());
    return rewriter.changed();
  }

 private:
  // Whether the new swiglu reads a packed gate | up.
  static Expected<bool> rewrite(Rewriter& rewriter, int32_t root, const SwigluMatch& match) {
    const ValueId result = rewriter.op(root).results[0];
    const std::string location = rewriter.op(root).location;
    ValueId gate = match.gate;
    if (match.siluMatmul >= 0) {
      // The same matmul without its activation: the swiglu applies it.
      const Op& matmul = rewriter.op(match.siluMatmul);
      Attributes attrs = matmul.attrs;
      attrs.erase("activation");
      const std::vector<ValueId> operands = matmul.operands;
      const std::string matmulLocation = matmul.location;
      Expected<ValueId> plain = rewriter.create1(root, OpKind::Matmul, operands, attrs, matmulLocation);
      if (!plain) return plain.status();
      gate = *plain;
    }
    std::vector<ValueId> operands = {gate, match.up};
    const ValueId packed = match.siluMatmul >= 0 ? kNoValue : packedGateUp(rewriter, gate, match.up, match.ops);
    if (packed != kNoValue) {
      rewriter.mark(rewriter.producerIndex(gate));  // the split
      operands = {packed};
    }
    Expected<ValueId> fused = rewriter.create1(root, OpKind::Swiglu, operands, {}, location);
    if (!fused) return fused.status();
    KILN_RETURN_IF_ERROR(rewriter.replace(result, *fused));
    rewriter.mark(match.ops);
    return packed != kNoValue;
  }
};

}  // namespace

std::unique_ptr<Pass> createSwigluFusion() { return std::make_unique<SwigluFusion>(); }

}  // namespace kiln
