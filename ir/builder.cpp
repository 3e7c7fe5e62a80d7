#include "ir/builder.h"

namespace kiln {

std::vector<OperandInfo> operandInfos(const Graph& graph, const std::vector<ValueId>& operands) {
  std::vector<OperandInfo> infos(operands.size());
  for (size_t i = 0; i < operands.size(); ++i) {
    if (operands[i] == kNoValue) continue;
    const Value& v = graph.value(operands[i]);
    infos[i].type = &v.type;
    infos[i].value = v.data ? &*v.data : nullptr;
  }
  return infos;
}

Expected<std::vector<ValueId>> Builder::append(const OpDef& def, std::vector<ValueId> operands,
                                               Attributes attrs, int numResults, std::string location) {
  std::vector<TensorType> resultTypes;
  Status inferred = inferResultTypes(def, attrs, operandInfos(graph_, operands), numResults, resultTypes);
  if (!inferred) return inferred.withContext(location.empty() ? "" : cat("node '", location, "': "));
  int32_t index = graph_.addOp(&def, std::move(operands), std::move(resultTypes), std::move(attrs),
                               std::move(location));
  return graph_.ops()[static_cast<size_t>(index)].results;
}

Expected<std::vector<ValueId>> Builder::create(OpKind kind, std::vector<ValueId> operands, Attributes attrs,
                                               int numResults, std::string location) {
  return append(opDef(kind), std::move(operands), std::move(attrs), numResults, std::move(location));
}

Expected<ValueId> Builder::create1(OpKind kind, std::vector<ValueId> operands, Attributes attrs,
                                   std::string location) {
  auto results = create(kind, std::move(operands), std::move(attrs), 1, std::move(location));
  if (!results) return results.status();
  return results->front();
}

Expected<std::vector<ValueId>> Builder::create(std::string_view opName,
                                               std::vector<ValueId> operands, Attributes attrs,
                                               int numResults, std::string location) {
  std::optional<OpKind> kind = opKindNamed(opName);
  if (!kind)
    return Status::error("unknown op '", opName, "'",
                         location.empty() ? std::string() : cat(" (node '", location, "')"));
  return create(*kind, std::move(operands), std::move(attrs), numResults, std::move(location));
}

Expected<ValueId> Builder::create1(std::string_view opName, std::vector<ValueId> operands,
                                   Attributes attrs, std::string location) {
  auto results = create(opName, std::move(operands), std::move(attrs), 1, std::move(location));
  if (!results) return results.status();
  return results->front();
}

}  // namespace kiln
