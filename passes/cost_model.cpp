#include "passes/cost_model.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "ir/op_registry.h"

namespace kiln {

namespace {

bool containsIgnoringCase(std::string_view text, std::string_view word) {
  auto it = std::search(text.begin(), text.end(), word.begin(), word.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  });
  return it != text.end();
}

class OpCoster {
 public:
  OpCoster(const Graph& graph, const Op& op, const CostModel& model)
      : graph_(graph), op_(op), model_(model) {}

  OpCost cost() const {
    const OpDef& def = *op_.def;
    if (def.resultIsView) return {};
    const double results = bytes(op_.results);
    OpCost cost;
    switch (def.traffic) {
      case Traffic::OperandsAndResults: cost.bytes = bytes(op_.operands) + results; break;
      case Traffic::ResultsOnly: cost.bytes = results; break;
      case Traffic::SelectedElements:
        cost.bytes = bytes({op_.operands.begin() + 1, op_.operands.end()}) + 2 * results;
        break;
    }
    if (def.flops) cost.flops = def.flops(context());
    return cost;
  }

 private:
  double bytes(const std::vector<ValueId>& values) const {
    double total = 0;
    for (ValueId id : values) {
      if (id == kNoValue) continue;
      const TensorType& type = graph_.value(id).type;
      double n = static_cast<double>(dtypeSize(type.dtype));
      for (const Dim& d : type.shape) n *= static_cast<double>(model_.dimValue(d));
      total += n;
    }
    return total;
  }

  CostContext context() const {
    const auto types = [&](const std::vector<ValueId>& values) {
      std::vector<const TensorType*> out;
      for (ValueId id : values) out.push_back(id == kNoValue ? nullptr : &graph_.value(id).type);
      return out;
    };
    return CostContext(op_.attrs, types(op_.operands), types(op_.results),
                       [this](const Dim& d) { return static_cast<double>(model_.dimValue(d)); });
  }

  const Graph& graph_;
  const Op& op_;
  const CostModel& model_;
};

}  // namespace

int64_t CostModel::symbolValue(const std::string& symbol) const {
  if (auto it = bindings.find(symbol); it != bindings.end()) return it->second;
  if (containsIgnoringCase(symbol, "batch")) return batchSize;
  if (containsIgnoringCase(symbol, "past")) return pastLength;
  return sequenceLength;
}

int64_t CostModel::dimValue(const Dim& dim) const {
  if (dim.isUnknown()) return unknownDim;
  if (std::optional<int64_t> value = dim.constant()) return *value;
  SymbolBindings values;
  for (const std::string& symbol : dim.symbols()) values[symbol] = symbolValue(symbol);
  return dim.substitute(values).constant().value_or(unknownDim);
}

OpCost opCost(const Graph& graph, const Op& op, const CostModel& model) {
  return OpCoster(graph, op, model).cost();
}

GraphCost graphCost(const Graph& graph, const CostModel& model) {
  GraphCost total;
  for (const Op& op : graph.ops()) {
    const OpCost cost = opCost(graph, op, model);
    total.bytes += cost.bytes;
    total.flops += cost.flops;
    total.seconds += cost.bytes / model.bytesPerSecond + cost.flops / model.flopsPerSecond;
    bool unknown = false;
    for (ValueId id : op.operands)
      if (id != kNoValue)
        for (const Dim& d : graph.value(id).type.shape) unknown = unknown || d.isUnknown();
    for (ValueId id : op.results)
      for (const Dim& d : graph.value(id).type.shape) unknown = unknown || d.isUnknown();
    if (unknown) ++total.opsWithUnknownDims;
  }
  return total;
}

}  // namespace kiln
