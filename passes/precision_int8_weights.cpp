#include "passes/precision_int8_weights.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "ir/dtype.h"
#include "ir/op_registry.h"
#include "ir/tensor.h"
#include "passes/weight_precision.h"

namespace kiln {

namespace {

struct QuantizedWeight {
  Tensor values;  // i8 [K, N]
  Tensor scale;   // f32 [ceil(K / group), N]
};

// The weights a quantized b became.
struct Int8Weight {
  ValueId values = kNoValue, scale = kNoValue;
  int64_t group = 0;
};

// `weight` as [K, N] (read transposed from [N, K] when `transposed`) in
// int8: each column's groups of `group` rows scaled so that their largest
// magnitude is 127, each value rounded to nearest even.
QuantizedWeight quantize(const Tensor& weight, bool transposed, int64_t group) {
  const int64_t rows = weight.shape()[0], cols = weight.shape()[1];
  const int64_t K = transposed ? cols : rows, N = transposed ? rows : cols;
  const int64_t groups = (K + group - 1) / group;
  const float* w = weight.data<float>();
  auto at = [&](int64_t k, int64_t n) { return transposed ? w[n * K + k] : w[k * N + n]; };
  QuantizedWeight out{Tensor::allocateUninitialized(DType::I8, {K, N}), Tensor::allocate(DType::F32, {groups, N})};
  float* scale = out.scale.data<float>();
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) scale[k / group * N + n] = std::max(scale[k / group * N + n], std::fabs(at(k, n)));
  for (int64_t i = 0; i < groups * N; ++i) scale[i] /= 127.0f;
  int8_t* q = out.values.data<int8_t>();
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) {
      const float s = scale[k / group * N + n];
      const double v = s > 0.0f ? std::nearbyint(static_cast<double>(at(k, n)) / s) : 0.0;
      q[k * N + n] = static_cast<int8_t>(std::clamp(v, -127.0, 127.0));
    }
  return out;
}

// int8 weights shrink a weight 4x and a decode step's memory traffic with
// it; the product scales each weight element back to f32 as it reads it.
// Only plain 2-D weights of an untransposed a qualify (a transposed b is
// quantized in the [K, N] order the op reads); gemm keeps its f32 weight.
class PrecisionInt8Weights final : public Pass {
 public:
  explicit PrecisionInt8Weights(Int8WeightOptions options) : options_(options) {}
  std::string_view name() const override { return "precision_int8_weights"; }
  std::string_view summary() const override {
    return "turns each f32 matmul of a constant 2-D f32 weight into matmul_int8: the weight in int8 with an "
           "f32 scale per column and group of rows";
  }

  Expected<bool> run(Graph& graph) override {
    ConvertedWeights converted;
    std::map<std::pair<ValueId, bool>, Int8Weight> made;  // by (b, transposed)
    int64_t matmuls = 0, skipped = 0;
    for (Op& op : graph.ops()) {
      if (!op.isOneOf({OpKind::Matmul, OpKind::Gemm}) || graph.value(op.operands[0]).type.dtype != DType::F32)
        continue;
      if (!converts(graph, op)) {
        ++skipped;
        continue;
      }
      const bool transposed = op.attrs.getBool("transpose_b");
      const ValueId b = op.operands[1];
      auto [entry, isNew] = made.try_emplace({b, transposed});
      if (isNew) {
        const Value& weight = graph.value(b);
        const int64_t K = weight.data->shape()[transposed ? 1 : 0];
        const int64_t group = options_.group > 0 ? std::min(options_.group, K) : K;
        QuantizedWeight q = quantize(*weight.data, transposed, group);
        const std::string base = weight.name + (transposed ? ".t" : "");
        const std::string valuesName = graph.uniqueName(base + ".int8");
        const std::string scaleName = graph.uniqueName(base + ".scale");
        entry->second = {graph.addWeight(valuesName, std::move(q.values)),  // invalidates `weight`
                         graph.addWeight(scaleName, std::move(q.scale)), group};
        converted[b].insert(converted[b].end(), {entry->second.values, entry->second.scale});
      }
      rewrite(op, entry->second);
      ++matmuls;
    }
    statistics_.add("matmuls-converted", matmuls);
    statistics_.add("matmuls-kept-f32", skipped);
    statistics_.add("weights-converted", static_cast<int64_t>(made.size()));
    finishConversion(graph, converted, statistics_);
    return !converted.empty();
  }

 private:
  // A matmul of a constant f32 2-D weight b, a untransposed.
  static bool converts(const Graph& graph, const Op& op) {
    if (!op.is(OpKind::Matmul) || op.attrs.getBool("transpose_a")) return false;
    const Value& b = graph.value(op.operands[1]);
    return b.kind == ValueKind::Weight && b.data && b.type.dtype == DType::F32 && b.type.shape.size() == 2;
  }

  static void rewrite(Op& op, const Int8Weight& weight) {
    const ValueId bias = op.operands.size() > 2 ? op.operands[2] : kNoValue;
    const ValueId residual = op.operands.size() > 3 ? op.operands[3] : kNoValue;
    op.operands = {op.operands[0], weight.values, weight.scale, bias, residual};
    while (op.operands.back() == kNoValue) op.operands.pop_back();
    Attributes attrs;
    if (op.attrs.has("activation")) attrs.set("activation", op.attrs.getString("activation"));
    attrs.set("group", weight.group);
    op.attrs = std::move(attrs);
    op.def = &opDef(OpKind::MatmulInt8);
  }

  Int8WeightOptions options_;
};

}  // namespace

std::unique_ptr<Pass> createPrecisionInt8Weights(Int8WeightOptions options) {
  return std::make_unique<PrecisionInt8Weights>(options);
}

}  // namespace kiln
