#include "passes/precision_bf16.h"

#include <string>

#include "ir/dtype.h"
#include "ir/op_registry.h"
#include "ir/tensor.h"
#include "passes/weight_precision.h"

namespace kiln {

namespace {

// `weights` as bf16, each element rounded to nearest even.
Tensor toBFloat16(const Tensor& weights) {
  Tensor out = Tensor::allocateUninitialized(DType::BF16, weights.shape());
  const float* from = weights.data<float>();
  BFloat16* to = out.data<BFloat16>();
  for (int64_t i = 0; i < weights.numElements(); ++i) to[i] = BFloat16{floatToBFloat16(from[i])};
  return out;
}

// The weights are what dominates the artifact's size and a matmul's memory
// traffic; the matmul op takes them in bf16 beside an f32 a (rounding a to
// bf16, accumulating in f32 or wider). Attention, norms, softmax, embedding
// tables and every other op keep their f32 operands: their error would
// compound where the products' does not.
class PrecisionBf16 final : public Pass {
 public:
  std::string_view name() const override { return "precision_bf16"; }
  std::string_view summary() const override {
    return "converts the constant f32 weight b of each f32 matmul and gemm to bf16; the rest stays f32";
  }

  Expected<bool> run(Graph& graph) override {
    ConvertedWeights converted;  // f32 weight -> its bf16 copy
    int64_t matmuls = 0, notConstant = 0;
    for (Op& op : graph.ops()) {
      if (!op.isOneOf({OpKind::Matmul, OpKind::Gemm}) || op.operands.size() < 2) continue;
      if (graph.value(op.operands[0]).type.dtype != DType::F32) continue;
      const ValueId b = op.operands[1];
      const Value& weight = graph.value(b);
      if (weight.kind != ValueKind::Weight || !weight.data) {
        ++notConstant;
        continue;
      }
      if (weight.type.dtype != DType::F32) continue;
      auto [entry, isNew] = converted.try_emplace(b);
      if (isNew) {
        Tensor data = toBFloat16(*weight.data);
        const std::string name = graph.uniqueName(weight.name + ".bf16");
        entry->second = {graph.addWeight(name, std::move(data))};  // invalidates `weight`
      }
      op.operands[1] = entry->second[0];
      ++matmuls;
    }

    // matmul and gemm both count as matmuls.
    statistics_.add("matmuls-converted", matmuls);
    statistics_.add("matmuls-b-not-constant", notConstant);
    statistics_.add("weights-converted", static_cast<int64_t>(converted.size()));
    finishConversion(graph, converted, statistics_);
    return !converted.empty();
  }
};

}  // namespace

std::unique_ptr<Pass> createPrecisionBf16() { return std::make_unique<PrecisionBf16>(); }

}  // namespace kiln
