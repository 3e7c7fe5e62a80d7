#include "passes/cse.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ir/op_registry.h"

namespace kiln {

namespace {

bool isCommutative(const Op& op) {
  return op.isOneOf({OpKind::Add, OpKind::Mul, OpKind::Min, OpKind::Max, OpKind::And, OpKind::Or, OpKind::Equal});
}

size_t combineHash(size_t seed, size_t value) {
  return seed ^ (value + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2));
}

// Cheap to compute on any size: the byte count, the dtype and up to 96
// bytes from the start, middle and end. Equal weights have equal
// fingerprints; unequal ones almost always differ (memcmp decides).
size_t weightFingerprint(const Tensor& data) {
  size_t hash = std::hash<size_t>{}(data.byteSize());
  hash = combineHash(hash, static_cast<size_t>(data.dtype()));
  for (int64_t d : data.shape()) hash = combineHash(hash, std::hash<int64_t>{}(d));
  const char* bytes = data.data<const char>();
  const size_t size = data.byteSize();
  const size_t sample = std::min<size_t>(32, size);
  for (size_t start : {size_t{0}, (size - sample) / 2, size - sample})
    hash = combineHash(hash, std::hash<std::string_view>{}(std::string_view(bytes + start, sample)));
  return hash;
}

bool sameWeight(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         (a.data() == b.data() || std::memcmp(a.data(), b.data(), a.byteSize()) == 0);
}

// An op's identity for CSE: kind, operands (sorted when commutative),
// attributes and result types.
struct OpKey {
  const OpDef* def;
  std::vector<ValueId> operands;
  const Attributes* attrs;
  std::vector<const TensorType*> resultTypes;

  size_t hash() const {
    size_t h = std::hash<const void*>{}(def);
    for (ValueId id : operands) h = combineHash(h, std::hash<ValueId>{}(id));
    return combineHash(h, resultTypes.size());
  }
  bool operator==(const OpKey& other) const {
    if (def != other.def || operands != other.operands || !(*attrs == *other.attrs) ||
        resultTypes.size() != other.resultTypes.size())
      return false;
    for (size_t i = 0; i < resultTypes.size(); ++i)
      if (*resultTypes[i] != *other.resultTypes[i]) return false;
    return true;
  }
};

class CommonSubexpressionElimination final : public Pass {
 public:
  std::string_view name() const override { return "cse"; }
  std::string_view summary() const override {
    return "merges equal weights, then ops equal to an earlier op (same operands and attributes)";
  }

  Expected<bool> run(Graph& graph) override {
    const std::vector<Value>& values = graph.values();
    replacement_.resize(values.size());
    for (size_t i = 0; i < values.size(); ++i) replacement_[i] = static_cast<ValueId>(i);
    isOutput_.assign(values.size(), false);
    for (ValueId id : graph.outputs()) isOutput_[static_cast<size_t>(id)] = true;

    const int64_t weightsMerged = mergeWeights(graph);
    const int64_t opsMerged = mergeOps(graph, weightsMerged > 0);
    statistics_.add("weights-merged", weightsMerged);
    statistics_.add("weight-bytes-saved", weightBytesSaved_);
    statistics_.add("ops-merged", opsMerged);
    if (weightsMerged == 0 && opsMerged == 0) return false;
    graph.compact();
    return true;
  }

 private:
  int64_t mergeWeights(const Graph& graph) {
    std::unordered_map<size_t, std::vector<ValueId>> byFingerprint;
    int64_t merged = 0;
    for (ValueId id : graph.weights()) {
      const Value& weight = graph.value(id);
      if (!weight.data) continue;  // a declaration without data equals nothing
      std::vector<ValueId>& candidates = byFingerprint[weightFingerprint(*weight.data)];
      auto same = std::find_if(candidates.begin(), candidates.end(), [&](ValueId other) {
        return sameWeight(*graph.value(other).data, *weight.data);
      });
      // A weight that is a graph output keeps its register.
      if (same == candidates.end() || isOutput_[static_cast<size_t>(id)]) {
        candidates.push_back(id);
        continue;
      }
      replacement_[static_cast<size_t>(id)] = *same;
      weightBytesSaved_ += static_cast<int64_t>(weight.data->byteSize());
      ++merged;
    }
    return merged;
  }

  // Rewrites operands through the replacements; `operandsChanged` says the
  // weight merge already changed some.
  int64_t mergeOps(Graph& graph, bool operandsChanged) {
    std::vector<Op> kept;
    kept.reserve(graph.ops().size());
    // Keys point into `kept`'s ops (attributes) and the graph's values, so
    // reserve keeps them stable.
    std::unordered_map<size_t, std::vector<std::pair<OpKey, size_t>>> seen;
    int64_t merged = 0;
    for (const Op& original : graph.ops()) {
      Op op = original;
      for (ValueId& operand : op.operands)
        if (operand != kNoValue) operand = replacement_[static_cast<size_t>(operand)];
      if (op.results.empty()) {
        kept.push_back(std::move(op));
        continue;
      }
      kept.push_back(std::move(op));
      const Op& candidate = kept.back();
      OpKey key{candidate.def, candidate.operands, &candidate.attrs, {}};
      if (isCommutative(candidate)) std::sort(key.operands.begin(), key.operands.end());
      for (ValueId result : candidate.results) key.resultTypes.push_back(&graph.value(result).type);

      std::vector<std::pair<OpKey, size_t>>& bucket = seen[key.hash()];
      auto same = std::find_if(bucket.begin(), bucket.end(),
                               [&](const auto& entry) { return entry.first == key; });
      const bool definesOutput = std::any_of(
          candidate.results.begin(), candidate.results.end(),
          [&](ValueId id) { return isOutput_[static_cast<size_t>(id)]; });
      if (same == bucket.end() || definesOutput) {
        bucket.emplace_back(std::move(key), kept.size() - 1);
        continue;
      }
      const Op& earlier = kept[same->second];
      for (size_t i = 0; i < candidate.results.size(); ++i)
        replacement_[static_cast<size_t>(candidate.results[i])] = earlier.results[i];
      kept.pop_back();
      ++merged;
    }
    if (merged > 0 || operandsChanged) graph.setOps(std::move(kept));
    return merged;
  }

  std::vector<ValueId> replacement_;
  std::vector<bool> isOutput_;
  int64_t weightBytesSaved_ = 0;
};

}  // namespace

std::unique_ptr<Pass> createCommonSubexpressionElimination() {
  return std::make_unique<CommonSubexpressionElimination>();
}

}  // namespace kiln
