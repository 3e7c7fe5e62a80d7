#include "passes/norm_fusion.h"

#include <charconv>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "passes/pattern_utils.h"

namespace kiln {

namespace {

// The op that is the sole use of `value` when it is of `kind` and still
// free; -1 otherwise.
int32_t soleUserOfKind(const Rewriter& rewriter, ValueId value, OpKind kind) {
  const int32_t user = rewriter.soleUser(value);
  if (user < 0 || rewriter.isMarked(user) || !rewriter.op(user).is(kind)) return -1;
  return user;
}

// x^2 spelled pow(x, 2) or mul(x, x): returns x.
ValueId squaredBase(const Rewriter& rewriter, ValueId square, std::vector<int32_t>& ops) {
  if (const Op* pow = rewriter.producer(square, OpKind::Pow);
      pow && isSplat(rewriter.graph(), pow->operands[1], 2.0)) {
    ops.push_back(rewriter.producerIndex(square));
    return pow->operands[0];
  }
  if (const Op* mul = rewriter.producer(square, OpKind::Mul); mul && mul->operands[0] == mul->operands[1]) {
    ops.push_back(rewriter.producerIndex(square));
    return mul->operands[0];
  }
  return kNoValue;
}

struct NormMatch {
  bool centered = false;  // LayerNorm (subtracts the mean) rather than RMSNorm
  ValueId x = kNoValue;
  int64_t axis = -1;      // first normalised axis, counted from the end
  double epsilon = 0.0;
  ValueId scale = kNoValue, bias = kNoValue;
  ValueId result = kNoValue;  // the value the fused op replaces
  std::vector<int32_t> ops;
};

// After var + eps: base / sqrt(v), base * (1 / sqrt(v)), base * reciprocal(sqrt(v))
// or base * pow(v, -0.5). Returns the normalised value.
ValueId matchDivideByRoot(const Rewriter& rewriter, ValueId v, ValueId base, std::vector<int32_t>& ops) {
  const Graph& graph = rewriter.graph();
  ValueId inverse = kNoValue;
  if (int32_t sqrtIndex = soleUserOfKind(rewriter, v, OpKind::Sqrt); sqrtIndex >= 0) {
    ops.push_back(sqrtIndex);
    const ValueId root = rewriter.op(sqrtIndex).results[0];
    if (int32_t divIndex = soleUserOfKind(rewriter, root, OpKind::Div); divIndex >= 0) {
      const Op& div = rewriter.op(divIndex);
      if (div.operands[1] != root) return kNoValue;
      ops.push_back(divIndex);
      if (div.operands[0] == base) return div.results[0];
      if (!isSplat(graph, div.operands[0], 1.0)) return kNoValue;
      inverse = div.results[0];
    } else if (int32_t recipIndex = soleUserOfKind(rewriter, root, OpKind::Reciprocal); recipIndex >= 0) {
      ops.push_back(recipIndex);
      inverse = rewriter.op(recipIndex).results[0];
    }
  } else if (int32_t powIndex = soleUserOfKind(rewriter, v, OpKind::Pow); powIndex >= 0) {
    const Op& pow = rewriter.op(powIndex);
    if (pow.operands[0] != v || !isSplat(graph, pow.operands[1], -0.5)) return kNoValue;
    ops.push_back(powIndex);
    inverse = pow.results[0];
  }
  if (inverse == kNoValue) return kNoValue;
  const int32_t mulIndex = soleUserOfKind(rewriter, inverse, OpKind::Mul);
  if (mulIndex < 0 || otherOperand(rewriter.op(mulIndex), inverse) != base) return kNoValue;
  ops.push_back(mulIndex);
  return rewriter.op(mulIndex).results[0];
}

// Anchored on the reduce_mean of a square (the variance, or the mean square).
std::optional<NormMatch> matchNorm(const Rewriter& rewriter, int32_t varianceIndex) {
  const Graph& graph = rewriter.graph();
  const Op& variance = rewriter.op(varianceIndex);
  NormMatch match;
  match.ops = {varianceIndex};
  const ValueId base = squaredBase(rewriter, variance.operands[0], match.ops);
  if (base == kNoValue) return std::nullopt;
  const TensorType& baseType = graph.value(base).type;
  const int64_t rank = static_cast<int64_t>(baseType.rank());
  if (!isFloat(baseType.dtype) || rank == 0) return std::nullopt;
  const std::optional<std::vector<int64_t>> axes = keptReductionAxes(graph, variance);
  // The normalised axes must run to the last one.
  if (!axes || axes->back() != rank - 1 || axes->front() + static_cast<int64_t>(axes->size()) != rank)
    return std::nullopt;
  match.axis = axes->front() - rank;

  const ValueId meanSquare = variance.results[0];
  const int32_t addIndex = soleUserOfKind(rewriter, meanSquare, OpKind::Add);
  if (addIndex < 0) return std::nullopt;
  const Op& addEps = rewriter.op(addIndex);
  const std::optional<double> epsilon = splatValue(graph, otherOperand(addEps, meanSquare));
  if (!epsilon || *epsilon < 0.0 || graph.value(addEps.results[0]).type.rank() != baseType.rank())
    return std::nullopt;
  match.epsilon = *epsilon;
  match.ops.push_back(addIndex);
  match.result = matchDivideByRoot(rewriter, addEps.results[0], base, match.ops);
  if (match.result == kNoValue) return std::nullopt;

  match.x = base;
  if (const Op* sub = rewriter.producer(base, OpKind::Sub)) {
    const Op* mean = rewriter.producer(sub->operands[1], OpKind::ReduceMean);
    if (mean && mean->operands[0] == sub->operands[0] && keptReductionAxes(graph, *mean) == axes) {
      match.centered = true;
      match.x = sub->operands[0];
      match.ops.push_back(rewriter.producerIndex(base));
      match.ops.push_back(rewriter.producerIndex(sub->operands[1]));
    }
  }

  // The weight (and LayerNorm's bias) cover exactly the normalised dims.
  const TensorType& xType = graph.value(match.x).type;
  const Shape normalized(xType.shape.end() + match.axis, xType.shape.end());
  auto isParameter = [&](ValueId id) {
    const Value& v = graph.value(id);
    return id != kNoValue && v.kind == ValueKind::Weight && v.data &&
           compatibleTypes(v.type, TensorType{xType.dtype, normalized});
  };
  if (int32_t mulIndex = soleUserOfKind(rewriter, match.result, OpKind::Mul); mulIndex >= 0) {
    const ValueId weight = otherOperand(rewriter.op(mulIndex), match.result);
    if (isParameter(weight)) {
      match.scale = weight;
      match.result = rewriter.op(mulIndex).results[0];
      match.ops.push_back(mulIndex);
    }
  }
  if (match.centered && match.scale != kNoValue) {
    if (int32_t addIndex = soleUserOfKind(rewriter, match.result, OpKind::Add); addIndex >= 0) {
      const ValueId bias = otherOperand(rewriter.op(addIndex), match.result);
      if (isParameter(bias)) {
        match.bias = bias;
        match.result = rewriter.op(addIndex).results[0];
        match.ops.push_back(addIndex);
      }
    }
  }
  if (!rewriter.isConfined(match.ops, rewriter.producerIndex(match.result))) return std::nullopt;
  return match;
}

// The shortest decimal that reads back as the same float: the constant was
// f32 (or narrower), so 1e-05 stays 1e-05 rather than 9.99999974e-06.
double shortestAsFloat(double value) {
  char text[32];
  const std::to_chars_result written =
      std::to_chars(text, text + sizeof text, static_cast<float>(value));
  return std::strtod(std::string(text, written.ptr).c_str(), nullptr);
}

class NormFusion final : public Pass {
 public:
  std::string_view name() const override { return "norm_fusion"; }
  std::string_view summary() const override {
    return "recognises RMSNorm and LayerNorm in their primitive chains (rms_norm, layer_norm); folds the add "
           "before a layer_norm into its residual";
  }

  Expected<bool> run(Graph& graph) override {
    Rewriter rewriter(graph);
    int64_t rmsNorms = 0, layerNorms = 0;
    for (size_t i = 0; i < rewriter.originalOpCount(); ++i) {
      const int32_t index = static_cast<int32_t>(i);
      if (rewriter.isMarked(index) || !rewriter.op(index).is(OpKind::ReduceMean)) continue;
      std::optional<NormMatch> match = matchNorm(rewriter, index);
      if (!match) continue;
      Expected<bool> fused = rewrite(rewriter, *match);
      if (!fused) return fused.status();
      if (!*fused) continue;
      ++(match->centered ? layerNorms : rmsNorms);
    }
    statistics_.add("rms-norms", rmsNorms);
    statistics_.add("layer-norms", layerNorms);
    KILN_RETURN_IF_ERROR(rewriter.commit());
    const bool changed = rewriter.changed();
    Expected<int64_t> residuals = foldResidualAdds(graph);
    if (!residuals) return residuals.status();
    statistics_.add("residuals-folded", *residuals);
    return changed || *residuals > 0;
  }

 private:
  // layer_norm(a + b), the add read by nothing else: layer_norm(a, residual
  // = b), b the trailing dims of a (an embedding's position rows). An add of
  // a matmul's result is left for matmul_epilogue_fusion, which folds it
  // into the product as it is written.
  static Expected<int64_t> foldResidualAdds(Graph& graph) {
    Rewriter rewriter(graph);
    int64_t folded = 0;
    for (size_t i = 0; i < rewriter.originalOpCount(); ++i) {
      const Op norm = rewriter.op(static_cast<int32_t>(i));
      if (!norm.is(OpKind::LayerNorm) || norm.operands.size() > 3) continue;
      const int32_t addIndex = rewriter.producerIndex(norm.operands[0]);
      if (addIndex < 0 || rewriter.soleUser(norm.operands[0]) != static_cast<int32_t>(i)) continue;
      const Op& add = rewriter.op(addIndex);
      if (!add.is(OpKind::Add) || add.operands.size() != 2 || !summandsFit(rewriter, add)) continue;
      const bool firstFull = graph.value(add.operands[0]).type == graph.value(add.results[0]).type;
      std::vector<ValueId> operands = norm.operands;
      operands.resize(3, kNoValue);
      operands[0] = add.operands[firstFull ? 0 : 1];
      operands.push_back(add.operands[firstFull ? 1 : 0]);
      std::vector<TensorType> types;
      if (!rewriter.inferTypes({OpKind::LayerNorm, operands, norm.attrs}, static_cast<int>(norm.results.size()), types))
        continue;
      Expected<std::vector<ValueId>> fused = rewriter.create(static_cast<int32_t>(i), OpKind::LayerNorm, operands,
                                                             norm.attrs, static_cast<int>(norm.results.size()),
                                                             norm.location);
      if (!fused) return fused.status();
      for (size_t r = 0; r < norm.results.size(); ++r)
        KILN_RETURN_IF_ERROR(rewriter.replace(norm.results[r], (*fused)[r]));
      rewriter.mark(std::vector<int32_t>{static_cast<int32_t>(i), addIndex});
      ++folded;
    }
    KILN_RETURN_IF_ERROR(rewriter.commit());
    return folded;
  }

  // One summand has the add's type; neither is a matmul's result.
  static bool summandsFit(const Rewriter& rewriter, const Op& add) {
    const Graph& graph = rewriter.graph();
    const TensorType& sum = graph.value(add.results[0]).type;
    bool full = false;
    for (ValueId summand : add.operands) {
      full = full || graph.value(summand).type == sum;
      const int32_t producer = rewriter.producerIndex(summand);
      if (producer >= 0 && rewriter.op(producer).isOneOf({OpKind::Matmul, OpKind::Gemm})) return false;
    }
    return full;
  }
  static Expected<bool> rewrite(Rewriter& rewriter, const NormMatch& match) {
    const int32_t root = rewriter.producerIndex(match.result);
    const std::string location = rewriter.op(root).location;
    Attributes attrs;
    attrs.set("axis", match.axis);
    attrs.set("epsilon", shortestAsFloat(match.epsilon));
    std::vector<ValueId> operands = {match.x};
    OpKind kind = OpKind::RmsNorm;
    if (match.centered) {
      kind = OpKind::LayerNorm;
      ValueId scale = match.scale;
      if (scale == kNoValue) {
        // layer_norm needs a scale: ones, when the normalised dims are known.
        const TensorType& xType = rewriter.graph().value(match.x).type;
        TensorType scaleType{xType.dtype, Shape(xType.shape.end() + match.axis, xType.shape.end())};
        std::optional<std::vector<int64_t>> dims = scaleType.staticDims();
        if (!dims) return false;
        scale = rewriter.addWeight("layer_norm.ones", filledTensor(xType.dtype, *dims, 1.0));
      }
      operands.push_back(scale);
      if (match.bias != kNoValue) operands.push_back(match.bias);
    } else if (match.scale != kNoValue) {
      operands.push_back(match.scale);
    }
    Expected<ValueId> fused = rewriter.create1(root, kind, operands, attrs, location);
    if (!fused) return fused.status();
    KILN_RETURN_IF_ERROR(rewriter.replace(match.result, *fused));
    rewriter.mark(match.ops);
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> createNormFusion() { return std::make_unique<NormFusion>(); }

}  // namespace kiln
