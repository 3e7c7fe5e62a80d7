#include "passes/relative_position_fusion.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ir/relative_position.h"
#include "passes/mask_semantics.h"
#include "passes/pattern_utils.h"

namespace kiln {

namespace {

struct BucketParams {
  bool bidirectional = false;
  int64_t maxDistance = 0;
};

// The lengths the bucket arithmetic is evaluated at, in turn, until its
// buckets have reached their last ones (a max_distance of up to about the
// last length is recognised); and a short one, checked last.
constexpr int64_t kSampleLengths[] = {64, 256, 1024};
constexpr int64_t kShortLength = 3;

// The bucket of each distance d in [1 - S, T - 1] at [d + S - 1], read
// from the evaluated [S, T] indices; nothing when an index depends on more
// than j - i.
std::optional<std::vector<int64_t>> bucketsByDistance(const Tensor& indices) {
  if (indices.rank() != 2) return std::nullopt;
  const int64_t queries = indices.shape()[0], keys = indices.shape()[1];
  std::vector<int64_t> byDistance(static_cast<size_t>(std::max<int64_t>(queries + keys - 1, 0)), -1);
  for (int64_t i = 0; i < queries; ++i)
    for (int64_t j = 0; j < keys; ++j) {
      int64_t& slot = byDistance[static_cast<size_t>(j - i + queries - 1)];
      const int64_t bucket = indices.elementAsInt(i * keys + j);
      if (slot >= 0 && slot != bucket) return std::nullopt;
      slot = bucket;
    }
  return byDistance;
}

bool agrees(const std::vector<int64_t>& byDistance, int64_t queries, int64_t buckets, const BucketParams& p) {
  for (size_t d = 0; d < byDistance.size(); ++d)
    if (relative_position::bucket(static_cast<int64_t>(d) - (queries - 1), buckets, p.maxDistance,
                                  p.bidirectional) != byDistance[d])
      return false;
  return true;
}

// Both ends of the distances evaluated lie in their direction's last bucket,
// so farther distances (which T5's arithmetic puts there too) add nothing.
bool saturated(const std::vector<int64_t>& byDistance, int64_t buckets, bool bidirectional) {
  const int64_t lastBefore = bidirectional ? buckets / 2 - 1 : buckets - 1;
  const bool beforeDone = byDistance.front() == lastBefore;
  return bidirectional ? beforeDone && byDistance.back() == buckets - 1 : beforeDone;
}

// The direction and max_distance whose buckets the evaluated ones are.
std::optional<BucketParams> paramsOf(const std::vector<int64_t>& byDistance, int64_t queries, int64_t buckets) {
  const auto longest = static_cast<int64_t>(byDistance.size());
  for (bool bidirectional : {false, true}) {
    if (!saturated(byDistance, buckets, bidirectional)) continue;
    const int64_t maxExact = (bidirectional ? buckets / 2 : buckets) / 2;
    for (int64_t maxDistance = maxExact + 1; maxExact >= 1 && maxDistance <= 2 * longest; ++maxDistance) {
      const BucketParams params{bidirectional, maxDistance};
      if (agrees(byDistance, queries, buckets, params)) return params;
    }
  }
  return std::nullopt;
}

SymbolBindings bindAll(const std::vector<std::string>& symbols, int64_t length) {
  SymbolBindings bindings;
  for (const std::string& symbol : symbols) bindings[symbol] = length;
  return bindings;
}

// What the index arithmetic computes, when it is T5's buckets over `buckets`.
std::optional<BucketParams> recognise(const Graph& graph, ValueId indices, int64_t buckets) {
  const ConeEvaluator cone(graph, indices);
  if (!cone.valid() || !cone.probesRead().empty()) return std::nullopt;
  const std::vector<std::string> symbols = cone.symbols();
  auto evaluatedAt = [&](int64_t length) -> std::optional<std::pair<std::vector<int64_t>, int64_t>> {
    std::optional<Tensor> value = cone.evaluate(bindAll(symbols, length));
    if (!value || value->rank() != 2) return std::nullopt;
    std::optional<std::vector<int64_t>> byDistance = bucketsByDistance(*value);
    if (!byDistance || byDistance->empty()) return std::nullopt;
    return std::make_pair(std::move(*byDistance), value->shape()[0]);
  };
  for (int64_t length : kSampleLengths) {
    auto sampled = evaluatedAt(length);
    if (!sampled) return std::nullopt;
    std::optional<BucketParams> params = paramsOf(sampled->first, sampled->second, buckets);
    if (!params) continue;
    auto shortSample = evaluatedAt(kShortLength);
    if (!shortSample || !agrees(shortSample->first, shortSample->second, buckets, *params)) return std::nullopt;
    return params;
  }
  return std::nullopt;
}

class RelativePositionFusion final : public Pass {
 public:
  std::string_view name() const override { return "relative_position_fusion"; }
  std::string_view summary() const override {
    return "fuses T5's relative position buckets (recognised by evaluating their arithmetic), the table gather "
           "and the head transpose into one relative_position_bias op";
  }

  Expected<bool> run(Graph& graph) override {
    Rewriter rewriter(graph);
    int64_t fused = 0;
    for (int32_t index = 0; index < static_cast<int32_t>(rewriter.originalOpCount()); ++index) {
      const Op& transpose = rewriter.op(index);
      if (!transpose.is(OpKind::Transpose) || transposePermutation(graph, transpose) != std::vector<int64_t>{2, 0, 1})
        continue;
      const Op* gather = rewriter.producer(transpose.operands[0], OpKind::Gather);
      if (!gather || rewriter.soleUser(transpose.operands[0]) != index || gather->attrs.getInt("axis", 0) != 0 ||
          graph.value(gather->operands[0]).kind != ValueKind::Weight)
        continue;
      const TensorType& table = graph.value(gather->operands[0]).type;
      const TensorType& indices = graph.value(gather->operands[1]).type;
      const std::optional<int64_t> buckets = table.rank() == 2 ? table.shape[0].constant() : std::nullopt;
      if (!buckets || indices.rank() != 2 || !isFloat(table.dtype)) continue;
      std::optional<BucketParams> params = recognise(graph, gather->operands[1], *buckets);
      if (!params) continue;
      Attributes attrs;
      attrs.set("bidirectional", params->bidirectional);
      attrs.set("max_distance", params->maxDistance);
      attrs.set("lengths", std::vector<Dim>(indices.shape.begin(), indices.shape.end()));
      const ValueId result = transpose.results[0];
      const int32_t gatherIndex = rewriter.producerIndex(transpose.operands[0]);
      const std::string location = transpose.location;
      Expected<ValueId> bias = rewriter.create1(index, OpKind::RelativePositionBias,
                                                {rewriter.op(gatherIndex).operands[0]}, attrs, location);
      if (!bias) return bias.status();
      if (rewriter.graph().value(*bias).type != rewriter.graph().value(result).type) {
        rewriter.discardCreated(rewriter.createdCount() - 1);
        continue;
      }
      KILN_RETURN_IF_ERROR(rewriter.replace(result, *bias));
      rewriter.mark({index, gatherIndex});
      ++fused;
    }
    statistics_.add("relative-position-biases", fused);
    KILN_RETURN_IF_ERROR(rewriter.commit());
    return rewriter.changed();
  }
};

}  // namespace

std::unique_ptr<Pass> createRelativePositionFusion() { return std::make_unique<RelativePositionFusion>(); }

}  // namespace kiln
