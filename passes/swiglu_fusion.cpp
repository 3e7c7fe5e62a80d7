#include "passes/swiglu_fusion.h"

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
      const Op* sigmoid = rewriter.producer(factors[s], "sigmoid");
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
      if (op.def->name == "silu") {
        match.gate = op.operands[0];
      } else if (op.def->name == "matmul" && op.attrs.getString("activation", "none") == "silu" &&
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

class SwigluFusion final : public Pass {
 public:
  std::string_view name() const override { return "swiglu_fusion"; }
  std::string_view summary() const override { return "fuses silu(gate) * up into swiglu"; }

  Expected<bool> run(Graph& graph) override {
    Rewriter rewriter(graph);
    int64_t swiglus = 0;
    for (size_t i = 0; i < rewriter.originalOpCount(); ++i) {
      const int32_t index = static_cast<int32_t>(i);
      if (rewriter.isMarked(index) || rewriter.op(index).def->name != "mul") continue;
      std::optional<SwigluMatch> match = matchSwiglu(rewriter, index);
      if (!match) continue;
      KILN_RETURN_IF_ERROR(rewrite(rewriter, index, *match));
      ++swiglus;
    }
    statistics_.add("swiglus", swiglus);
    KILN_RETURN_IF_ERROR(rewriter.commit());
    return rewriter.changed();
  }

 private:
  static Status rewrite(Rewriter& rewriter, int32_t root, const SwigluMatch& match) {
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
      Expected<ValueId> plain = rewriter.create1(root, "matmul", operands, attrs, matmulLocation);
      if (!plain) return plain.status();
      gate = *plain;
    }
    Expected<ValueId> fused = rewriter.create1(root, "swiglu", {gate, match.up}, {}, location);
    if (!fused) return fused.status();
    KILN_RETURN_IF_ERROR(rewriter.replace(result, *fused));
    rewriter.mark(match.ops);
    return Status::ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createSwigluFusion() { return std::make_unique<SwigluFusion>(); }

}  // namespace kiln
