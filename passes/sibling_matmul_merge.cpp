#include "passes/sibling_matmul_merge.h"

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "passes/pattern_utils.h"

namespace kiln {

namespace {

bool isWeight(const Graph& graph, ValueId id) {
  return id != kNoValue && graph.value(id).kind == ValueKind::Weight && graph.value(id).data;
}

// One matmul of a group, with the bias folded in (its operand, or the add of a
// 1-D constant that is the product's only use).
struct Member {
  int32_t index = -1;
  ValueId weight = kNoValue, bias = kNoValue;
  int64_t width = 0;          // N: the columns this member contributes
  ValueId result = kNoValue;  // what the split part replaces
  std::vector<int32_t> ops;
};

// Matmuls that may merge: same input, same flags, same dtype and same K.
using GroupKey = std::tuple<ValueId, bool, bool, DType, int64_t>;

std::optional<GroupKey> groupKey(const Graph& graph, const Op& op) {
  if (op.def->name != "matmul" || op.results.size() != 1) return std::nullopt;
  if (op.operands.size() > 3 && op.operands[3] != kNoValue) return std::nullopt;  // residual
  if (op.attrs.getString("activation", "none") != "none") return std::nullopt;
  if (!isWeight(graph, op.operands[1])) return std::nullopt;
  const TensorType& weightType = graph.value(op.operands[1]).type;
  if (weightType.rank() != 2 || !isFloat(weightType.dtype)) return std::nullopt;
  const bool transposeB = op.attrs.getBool("transpose_b");
  const int64_t k = *weightType.shape[transposeB ? 1 : 0].constant();
  return GroupKey{op.operands[0], op.attrs.getBool("transpose_a"), transposeB, weightType.dtype, k};
}

Member describeMember(const Rewriter& rewriter, int32_t index) {
  const Graph& graph = rewriter.graph();
  const Op& op = rewriter.op(index);
  Member member;
  member.index = index;
  member.weight = op.operands[1];
  member.width = *graph.value(member.weight).type.shape[op.attrs.getBool("transpose_b") ? 0 : 1].constant();
  member.result = op.results[0];
  member.ops = {index};
  auto isBias = [&](ValueId id) {
    if (!isWeight(graph, id)) return false;
    const TensorType& type = graph.value(id).type;
    return type.rank() == 1 && type.shape[0] == Dim(member.width) &&
           type.dtype == graph.value(member.weight).type.dtype;
  };
  if (op.operands.size() > 2 && op.operands[2] != kNoValue) {
    member.bias = op.operands[2];
    return member;
  }
  const int32_t user = rewriter.soleUser(member.result);
  if (user >= 0 && !rewriter.isMarked(user) && rewriter.op(user).def->name == "add") {
    const ValueId bias = otherOperand(rewriter.op(user), member.result);
    if (isBias(bias)) {
      member.bias = bias;
      member.result = rewriter.op(user).results[0];
      member.ops.push_back(user);
    }
  }
  return member;
}

Expected<Tensor> concatenate(const std::vector<Tensor>& parts, int64_t axis) {
  std::vector<const Tensor*> inputs;
  for (const Tensor& part : parts) inputs.push_back(&part);
  Attributes attrs;
  attrs.set("axis", axis);
  return evaluateConstant("concat", inputs, attrs);
}

class SiblingMatmulMerge final : public Pass {
 public:
  std::string_view name() const override { return "sibling_matmul_merge"; }
  std::string_view summary() const override {
    return "merges matmuls that share an input and a K into one over concatenated weights, then split";
  }

  Expected<bool> run(Graph& graph) override {
    Rewriter rewriter(graph);
    // Groups in the order of their first member.
    std::map<GroupKey, std::vector<int32_t>> groups;
    std::vector<GroupKey> order;
    for (size_t i = 0; i < rewriter.originalOpCount(); ++i) {
      std::optional<GroupKey> key = groupKey(graph, rewriter.op(static_cast<int32_t>(i)));
      if (!key) continue;
      std::vector<int32_t>& members = groups[*key];
      if (members.empty()) order.push_back(*key);
      members.push_back(static_cast<int32_t>(i));
    }
    int64_t merged = 0, matmuls = 0;
    for (const GroupKey& key : order) {
      const std::vector<int32_t>& indices = groups[key];
      if (indices.size() < 2) continue;
      std::vector<Member> members;
      for (int32_t index : indices) members.push_back(describeMember(rewriter, index));
      Expected<bool> done = merge(rewriter, members, std::get<2>(key));
      if (!done) return done.status();
      if (!*done) continue;
      ++merged;
      matmuls += static_cast<int64_t>(members.size());
    }
    statistics_.add("groups-merged", merged);
    statistics_.add("matmuls-merged", matmuls);
    KILN_RETURN_IF_ERROR(rewriter.commit());
    return rewriter.changed();
  }

 private:
  static Expected<bool> merge(Rewriter& rewriter, const std::vector<Member>& members, bool transposeB) {
    Graph& graph = rewriter.graph();
    const Op& first = rewriter.op(members.front().index);
    const ValueId input = first.operands[0];
    Attributes attrs = first.attrs;
    const std::string location = first.location;
    const DType dtype = graph.value(first.operands[1]).type.dtype;

    bool anyBias = false;
    for (const Member& member : members) anyBias = anyBias || member.bias != kNoValue;
    // Tensors share storage when copied: hold them by value, as adding
    // weights below moves the graph's values.
    std::vector<Tensor> weights, biases;
    for (const Member& member : members) {
      weights.push_back(*graph.value(member.weight).data);
      if (!anyBias) continue;
      // Members without a bias contribute zeros to the merged bias.
      biases.push_back(member.bias != kNoValue ? *graph.value(member.bias).data
                                               : filledTensor(dtype, {member.width}, 0.0));
    }
    Expected<Tensor> weight = concatenate(weights, transposeB ? 0 : 1);
    if (!weight) return weight.status();
    Expected<Tensor> bias = anyBias ? concatenate(biases, 0) : Expected<Tensor>(Tensor());
    if (!bias) return bias.status();
    const std::string baseName = graph.value(members.front().weight).name;
    std::vector<ValueId> operands = {input, rewriter.addWeight(baseName + ".merged", *weight)};
    if (anyBias) operands.push_back(rewriter.addWeight(baseName + ".merged_bias", *bias));

    const int32_t anchor = members.front().index;
    Expected<ValueId> product = rewriter.create1(anchor, "matmul", operands, attrs, location);
    if (!product) return product.status();
    std::vector<ValueId> splitOperands = {*product};
    bool equalWidths = true;
    for (const Member& member : members) equalWidths = equalWidths && member.width == members.front().width;
    if (!equalWidths) {
      Tensor sizes = Tensor::allocate(DType::I64, {static_cast<int64_t>(members.size())});
      for (size_t i = 0; i < members.size(); ++i) sizes.data<int64_t>()[i] = members[i].width;
      splitOperands.push_back(rewriter.addWeight("split_sizes", sizes));
    }
    Attributes splitAttrs;
    splitAttrs.set("axis", int64_t{-1});
    Expected<std::vector<ValueId>> parts = rewriter.create(
        anchor, "split", splitOperands, splitAttrs, static_cast<int>(members.size()), location);
    if (!parts) return parts.status();
    for (size_t i = 0; i < members.size(); ++i) {
      KILN_RETURN_IF_ERROR(rewriter.replace(members[i].result, (*parts)[i]));
      rewriter.mark(members[i].ops);
    }
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> createSiblingMatmulMerge() { return std::make_unique<SiblingMatmulMerge>(); }

}  // namespace kiln
