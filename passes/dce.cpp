#include "passes/dce.h"

#include <vector>

namespace kiln {

namespace {

class DeadCodeElimination final : public Pass {
 public:
  std::string_view name() const override { return "dce"; }
  std::string_view summary() const override {
    return "removes ops whose results reach no graph output, and unused weights";
  }

  Expected<bool> run(Graph& graph) override {
    // Ops are in topological order, so one backward sweep sees every user of
    // a value before the op that defines it.
    std::vector<bool> live(graph.values().size(), false);
    for (ValueId id : graph.outputs()) live[static_cast<size_t>(id)] = true;

    const std::vector<Op>& ops = graph.ops();
    std::vector<bool> keep(ops.size(), false);
    for (size_t i = ops.size(); i-- > 0;) {
      for (ValueId result : ops[i].results)
        if (live[static_cast<size_t>(result)]) keep[i] = true;
      if (!keep[i]) continue;
      for (ValueId operand : ops[i].operands)
        if (operand != kNoValue) live[static_cast<size_t>(operand)] = true;
    }

    int64_t weightsRemoved = 0, weightBytesRemoved = 0;
    for (ValueId id : graph.weights()) {
      if (live[static_cast<size_t>(id)]) continue;
      const Value& weight = graph.value(id);
      ++weightsRemoved;
      if (std::optional<int64_t> n = weight.type.numElements())
        weightBytesRemoved += *n * static_cast<int64_t>(dtypeSize(weight.type.dtype));
    }

    std::vector<Op> kept;
    for (size_t i = 0; i < ops.size(); ++i)
      if (keep[i]) kept.push_back(ops[i]);
    const int64_t opsRemoved = static_cast<int64_t>(ops.size() - kept.size());

    statistics_.add("ops-removed", opsRemoved);
    statistics_.add("weights-removed", weightsRemoved);
    statistics_.add("weight-bytes-removed", weightBytesRemoved);
    if (opsRemoved == 0 && weightsRemoved == 0) return false;
    graph.setOps(std::move(kept));
    graph.compact();
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> createDeadCodeElimination() {
  return std::make_unique<DeadCodeElimination>();
}

}  // namespace kiln
