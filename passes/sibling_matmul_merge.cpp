#include "passes/sibling_matmul_merge.h"

#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "passes/pattern_utils.h"

namespace kiln {

namespace {

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
  if (!op.is(OpKind::Matmul) || op.results.size() != 1) return std::nullopt;
  if (op.operands.size() > 3 && op.operands[3] != kNoValue) return std::nullopt;  // residual
  if (op.attrs.getString("activation", "none") != "none") return std::nullopt;
  if (!isWeight(graph, op.operands[1])) return std::nullopt;
  const TensorType& weightType = graph.value(op.operands[1]).type;
  if (weightType.rank() != 2 || !isFloat(weightType.dtype)) return std::nullopt;
  const bool transposeB = op.attrs.getBool("transpose_b");
  const int64_t k = *weightType.shape[transposeB ? 1 : 0].constant();
  if (op.operands.size() > 2 && op.operands[2] != kNoValue) {
    // A bias operand merges only as a constant vector over the N columns.
    const ValueId bias = op.operands[2];
    if (!isWeight(graph, bias)) return std::nullopt;
    const TensorType& biasType = graph.value(bias).type;
    if (biasType.rank() != 1 || biasType.dtype != weightType.dtype ||
        biasType.shape[0] != weightType.shape[transposeB ? 0 : 1])
      return std::nullopt;
  }
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
  if (user >= 0 && !rewriter.isMarked(user) && rewriter.op(user).is(OpKind::Add)) {
    const ValueId bias = otherOperand(rewriter.op(user), member.result);
    if (isBias(bias)) {
      member.bias = bias;
      member.result = rewriter.op(user).results[0];
      member.ops.push_back(user);
    }
  }
  return member;
}

// One block of a concatenation: `extent` entries along the axis, read from
// `data` (laid out like the result, with `extent` on the axis), or zeros
// when `data` is null.
struct Block {
  const void* data = nullptr;
  int64_t extent = 0;
};

// The blocks side by side along `axis` of `shape` (whose axis extent is
// ignored). Weights are large (all of a layer's Q/K/V or gate/up
// projections): the result is written once, in contiguous runs, never
// zero-filled first.
Tensor concatenate(DType dtype, std::vector<int64_t> shape, size_t axis, const std::vector<Block>& blocks) {
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= shape[d];
  for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
  shape[axis] = 0;
  for (const Block& block : blocks) shape[axis] += block.extent;
  Tensor out = Tensor::allocateUninitialized(dtype, std::move(shape));
  const size_t unit = static_cast<size_t>(inner) * dtypeSize(dtype);  // bytes per axis entry
  char* to = static_cast<char*>(out.data());
  for (int64_t o = 0; o < outer; ++o) {
    for (const Block& block : blocks) {
      const size_t bytes = static_cast<size_t>(block.extent) * unit;
      if (block.data) std::memcpy(to, static_cast<const char*>(block.data) + static_cast<size_t>(o) * bytes, bytes);
      else std::memset(to, 0, bytes);  // all-zero bits: 0 in every float type
      to += bytes;
    }
  }
  return out;
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
    // Weights are [K, N] (N on axis 1), or [N, K] with transpose_b; members
    // without a bias contribute zeros to the merged bias.
    std::vector<Block> weightBlocks, biasBlocks;
    for (const Member& member : members) {
      weightBlocks.push_back({graph.value(member.weight).data->data(), member.width});
      const ValueId bias = member.bias;
      biasBlocks.push_back({bias != kNoValue ? graph.value(bias).data->data() : nullptr, member.width});
    }
    const size_t axis = transposeB ? 0 : 1;
    // The blocks point into the weights' storage, which outlives the pass.
    Tensor weight = concatenate(dtype, graph.value(members.front().weight).data->shape(), axis, weightBlocks);
    Tensor bias = anyBias ? concatenate(dtype, {0}, 0, biasBlocks) : Tensor();
    const std::string baseName = graph.value(members.front().weight).name;
    std::vector<ValueId> operands = {input, rewriter.addWeight(baseName + ".merged", std::move(weight))};
    if (anyBias) operands.push_back(rewriter.addWeight(baseName + ".merged_bias", std::move(bias)));

    const int32_t anchor = members.front().index;
    Expected<ValueId> product = rewriter.create1(anchor, OpKind::Matmul, operands, attrs, location);
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
        anchor, OpKind::Split, splitOperands, splitAttrs, static_cast<int>(members.size()), location);
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
