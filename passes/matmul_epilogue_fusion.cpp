#include "passes/matmul_epilogue_fusion.h"

#include <optional>
#include <string>
#include <vector>

#include "passes/pattern_utils.h"

namespace kiln {

namespace {

// A matmul with its epilogue, as the fused op will read.
struct Epilogue {
  ValueId a = kNoValue, b = kNoValue, bias = kNoValue, residual = kNoValue;
  Attributes attrs;
  std::string location;
  ValueId result = kNoValue;  // the value the fused matmul replaces
  std::vector<int32_t> ops;   // the ops it replaces
  bool fromGemm = false;
  bool foldedRowViews = false;
  Shape aShape;  // when not empty, a is read viewed as this shape
  bool addedBias = false, addedActivation = false, addedResidual = false;
};

int32_t soleUserOfKind(const Rewriter& rewriter, ValueId value, OpKind kind) {
  const int32_t user = rewriter.soleUser(value);
  if (user < 0 || rewriter.isMarked(user) || !rewriter.op(user).is(kind)) return -1;
  return user;
}

// `factor` * weight, as a new weight; nullopt when the product cannot be made.
std::optional<ValueId> scaledWeight(Rewriter& rewriter, ValueId weight, double factor) {
  const Value& value = rewriter.graph().value(weight);
  const Tensor scalar = filledTensor(value.type.dtype, {}, factor);
  Expected<Tensor> scaled = evaluateConstant(OpKind::Mul, {&*value.data, &scalar});
  if (!scaled) return std::nullopt;
  return rewriter.addWeight(value.name + ".scaled", *scaled);
}

// gemm (a, b, c?) {alpha, beta, trans_a, trans_b} as matmul (a, b, bias?, residual?).
std::optional<Epilogue> fromGemm(Rewriter& rewriter, const Op& gemm) {
  Graph& graph = rewriter.graph();
  Epilogue epilogue;
  epilogue.fromGemm = true;
  epilogue.a = gemm.operands[0];
  epilogue.b = gemm.operands[1];
  const ValueId c = gemm.operands.size() > 2 ? gemm.operands[2] : kNoValue;
  const double alpha = gemm.attrs.getFloat("alpha", 1.0);
  const double beta = gemm.attrs.getFloat("beta", 1.0);
  const ValueId result = gemm.results[0];
  // alpha and beta fold into constant operands; check both before making any.
  const bool scaleB = isWeight(graph, epilogue.b);
  if (alpha != 1.0 && !scaleB && !isWeight(graph, epilogue.a)) return std::nullopt;
  if (c != kNoValue && beta != 1.0 && !isWeight(graph, c)) return std::nullopt;
  if (alpha != 1.0) {
    ValueId& scaledOperand = scaleB ? epilogue.b : epilogue.a;
    std::optional<ValueId> scaled = scaledWeight(rewriter, scaledOperand, alpha);
    if (!scaled) return std::nullopt;
    scaledOperand = *scaled;
  }
  ValueId addend = c;
  if (c != kNoValue && beta != 1.0) {
    std::optional<ValueId> scaled = scaledWeight(rewriter, c, beta);
    if (!scaled) return std::nullopt;
    addend = *scaled;
  }
  if (addend != kNoValue) {
    const TensorType& cType = graph.value(addend).type;
    const TensorType& yType = graph.value(result).type;
    if (cType.rank() == 1 && compatibleDims(cType.shape[0], yType.shape.back())) epilogue.bias = addend;
    else epilogue.residual = addend;
  }
  if (gemm.attrs.getBool("trans_a")) epilogue.attrs.set("transpose_a", true);
  if (gemm.attrs.getBool("trans_b")) epilogue.attrs.set("transpose_b", true);
  return epilogue;
}

// The leading dims of `shape` whose product is `rows`, with the product of
// the rest as one last dim; nothing when no split gives exactly `rows`.
std::optional<Shape> rowsAndWidth(const Shape& shape, const Dim& rows) {
  Dim lead(1);
  for (size_t p = 0; p + 1 < shape.size(); ++p) {
    lead = lead * shape[p];
    if (!(lead == rows)) continue;
    Dim width(1);
    for (size_t t = p + 1; t < shape.size(); ++t) width = width * shape[t];
    Shape split(shape.begin(), shape.begin() + static_cast<std::ptrdiff_t>(p) + 1);
    split.push_back(width);
    return split;
  }
  return std::nullopt;
}

// x [..., K] (or [..., k1, k2] with k1 * k2 = K) viewed as rows [M, K] for a
// product by a 2-D b whose [M, N] result is only viewed back as [..., N]
// (transformers' Conv1D: GPT-2's projections): the product of x itself, or
// of x viewed as [..., K], so the epilogue after the view (GPT-2's GELU, its
// residual adds) folds in too, and layout can absorb a head merge before it.
void foldRowViews(const Rewriter& rewriter, Epilogue& epilogue) {
  const Graph& graph = rewriter.graph();
  if (epilogue.attrs.getBool("transpose_a") || epilogue.residual != kNoValue) return;
  const Op* rows = rewriter.producer(epilogue.a, OpKind::Reshape);
  if (!rows || graph.value(epilogue.b).type.rank() != 2) return;
  const ValueId x = rows->operands[0];
  const Shape& rowsShape = graph.value(epilogue.a).type.shape;
  if (rowsShape.size() != 2 || rowsShape[0].isUnknown() || rowsShape[1].isUnknown()) return;
  std::optional<Shape> aShape = rowsAndWidth(graph.value(x).type.shape, rowsShape[0]);
  if (!aShape || aShape->size() < 3 || !(aShape->back() == rowsShape[1])) return;
  const int32_t back = soleUserOfKind(rewriter, epilogue.result, OpKind::Reshape);
  if (back < 0) return;
  const ValueId viewed = rewriter.op(back).results[0];
  Shape expected(aShape->begin(), aShape->end() - 1);
  expected.push_back(graph.value(epilogue.result).type.shape.back());
  for (const Dim& dim : expected)
    if (dim.isUnknown()) return;
  if (graph.value(viewed).type.shape != expected) return;
  // The rows view goes with the product when nothing else reads it, so a
  // transpose before it is left with one reader for layout to fold.
  if (rewriter.soleUser(epilogue.a) >= 0) epilogue.ops.push_back(rewriter.producerIndex(epilogue.a));
  epilogue.a = x;
  if (*aShape != graph.value(x).type.shape) epilogue.aShape = *aShape;
  epilogue.result = viewed;
  epilogue.ops.push_back(back);
  epilogue.foldedRowViews = true;
}

// Extends the product at `epilogue.result` by bias, activation and residual,
// each when the epilogue has no such part yet and nothing later is folded in.
void extend(const Rewriter& rewriter, Epilogue& epilogue) {
  const Graph& graph = rewriter.graph();
  const TensorType& productType = graph.value(epilogue.result).type;
  if (epilogue.bias == kNoValue && epilogue.residual == kNoValue &&
      epilogue.attrs.getString("activation", "none") == "none") {
    if (int32_t addIndex = soleUserOfKind(rewriter, epilogue.result, OpKind::Add); addIndex >= 0) {
      const ValueId bias = otherOperand(rewriter.op(addIndex), epilogue.result);
      if (isWeight(graph, bias)) {
        const TensorType& biasType = graph.value(bias).type;
        if (biasType.rank() == 1 && biasType.dtype == productType.dtype && !productType.shape.empty() &&
            compatibleDims(biasType.shape[0], productType.shape.back())) {
          epilogue.bias = bias;
          epilogue.result = rewriter.op(addIndex).results[0];
          epilogue.ops.push_back(addIndex);
          epilogue.addedBias = true;
        }
      }
    }
  }
  if (epilogue.residual == kNoValue && epilogue.attrs.getString("activation", "none") == "none") {
    if (std::optional<ActivationMatch> activation = findActivationOf(rewriter, epilogue.result)) {
      epilogue.attrs.set("activation", std::string(activationName(activation->activation)));
      epilogue.result = rewriter.op(activation->ops.front()).results[0];
      epilogue.ops.insert(epilogue.ops.end(), activation->ops.begin(), activation->ops.end());
      epilogue.addedActivation = true;
    }
  }
  if (epilogue.residual == kNoValue) {
    if (int32_t addIndex = soleUserOfKind(rewriter, epilogue.result, OpKind::Add); addIndex >= 0) {
      const ValueId residual = otherOperand(rewriter.op(addIndex), epilogue.result);
      const TensorType& yType = graph.value(epilogue.result).type;
      if (residual != kNoValue && residual != epilogue.result) {
        const TensorType& rType = graph.value(residual).type;
        // The residual broadcasts to y; it must not widen the result.
        std::optional<Shape> widened = broadcastShapes(yType.shape, rType.shape);
        if (rType.dtype == yType.dtype && widened && refines(TensorType{yType.dtype, *widened}, yType) &&
            rType.rank() <= yType.rank()) {
          epilogue.residual = residual;
          epilogue.result = rewriter.op(addIndex).results[0];
          epilogue.ops.push_back(addIndex);
          epilogue.addedResidual = true;
        }
      }
    }
  }
}

class MatmulEpilogueFusion final : public Pass {
 public:
  std::string_view name() const override { return "matmul_epilogue_fusion"; }
  std::string_view summary() const override {
    return "folds bias, activation (relu, gelu, gelu_tanh, silu, tanh) and residual adds into matmul; gemm to "
           "matmul";
  }

  Expected<bool> run(Graph& graph) override {
    Rewriter rewriter(graph);
    int64_t biases = 0, activations = 0, residuals = 0, gemms = 0, rowViews = 0;
    for (size_t i = 0; i < rewriter.originalOpCount(); ++i) {
      const int32_t index = static_cast<int32_t>(i);
      if (rewriter.isMarked(index)) continue;
      const Op& op = rewriter.op(index);
      const OpKind kind = op.kind();
      if ((kind != OpKind::Matmul && kind != OpKind::Gemm) || op.results.size() != 1) continue;
      if (!isFloat(graph.value(op.results[0]).type.dtype)) continue;

      std::optional<Epilogue> epilogue;
      if (kind == OpKind::Gemm) {
        epilogue = fromGemm(rewriter, rewriter.op(index));
      } else {
        epilogue.emplace();
        const Op& matmul = rewriter.op(index);
        epilogue->a = matmul.operands[0];
        epilogue->b = matmul.operands[1];
        if (matmul.operands.size() > 2) epilogue->bias = matmul.operands[2];
        if (matmul.operands.size() > 3) epilogue->residual = matmul.operands[3];
        epilogue->attrs = matmul.attrs;
      }
      if (!epilogue) continue;
      epilogue->result = rewriter.op(index).results[0];
      epilogue->location = rewriter.op(index).location;
      epilogue->ops = {index};
      foldRowViews(rewriter, *epilogue);
      extend(rewriter, *epilogue);
      if (!epilogue->fromGemm && !epilogue->foldedRowViews && !epilogue->addedBias &&
          !epilogue->addedActivation && !epilogue->addedResidual)
        continue;

      KILN_RETURN_IF_ERROR(rewrite(rewriter, *epilogue));
      biases += epilogue->addedBias;
      activations += epilogue->addedActivation;
      residuals += epilogue->addedResidual;
      gemms += epilogue->fromGemm;
      rowViews += epilogue->foldedRowViews;
    }
    statistics_.add("biases", biases);
    statistics_.add("activations", activations);
    statistics_.add("residuals", residuals);
    statistics_.add("gemms", gemms);
    statistics_.add("row-views-folded", rowViews);
    KILN_RETURN_IF_ERROR(rewriter.commit());
    return rewriter.changed();
  }

 private:
  static Status rewrite(Rewriter& rewriter, const Epilogue& epilogue) {
    const int32_t root = rewriter.producerIndex(epilogue.result);
    ValueId a = epilogue.a;
    if (!epilogue.aShape.empty()) {
      Attributes view;
      view.set("shape", std::vector<Dim>(epilogue.aShape.begin(), epilogue.aShape.end()));
      Expected<ValueId> viewed = rewriter.create1(root, OpKind::Reshape, {a}, view, epilogue.location);
      if (!viewed) return viewed.status();
      a = *viewed;
    }
    std::vector<ValueId> operands = {a, epilogue.b, epilogue.bias, epilogue.residual};
    while (operands.back() == kNoValue) operands.pop_back();
    Attributes attrs = epilogue.attrs;
    if (attrs.getString("activation", "none") == "none") attrs.erase("activation");
    Expected<ValueId> fused = rewriter.create1(root, OpKind::Matmul, operands, attrs, epilogue.location);
    if (!fused) return fused.status();
    KILN_RETURN_IF_ERROR(rewriter.replace(epilogue.result, *fused));
    rewriter.mark(epilogue.ops);
    return Status::ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createMatmulEpilogueFusion() {
  return std::make_unique<MatmulEpilogueFusion>();
}

}  // namespace kiln
