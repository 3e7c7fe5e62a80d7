#include "passes/constant_fold.h"

#include <optional>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/op_registry.h"

namespace kiln {

namespace {

class ConstantFold final : public Pass {
 public:
  std::string_view name() const override { return "constant_fold"; }
  std::string_view summary() const override {
    return "evaluates ops whose operands are all weights into new weights (results up to 1M "
           "elements)";
  }

  Expected<bool> run(Graph& graph) override {
    std::vector<ValueId> replacement(graph.values().size());
    for (size_t i = 0; i < replacement.size(); ++i) replacement[i] = static_cast<ValueId>(i);
    std::vector<bool> isOutput(graph.values().size(), false);
    for (ValueId id : graph.outputs()) isOutput[static_cast<size_t>(id)] = true;

    std::vector<int> uses(graph.values().size(), 0);
    for (const Op& op : graph.ops())
      for (ValueId operand : op.operands)
        if (operand != kNoValue) ++uses[static_cast<size_t>(operand)];
    for (ValueId id : graph.outputs()) ++uses[static_cast<size_t>(id)];

    std::vector<Op> kept;
    std::vector<int32_t> keptIndex(graph.values().size(), -1);  // by result: its op's place in kept
    int64_t folded = 0, bytesCreated = 0;
    const size_t opCount = graph.ops().size();
    for (size_t index = 0; index < opCount; ++index) {
      Op op = graph.ops()[index];
      for (ValueId& operand : op.operands)
        if (operand != kNoValue) operand = replacement[static_cast<size_t>(operand)];
      if (std::optional<ValueId> gathered =
              foldRowIntoTable(graph, op, kept, keptIndex, uses, isOutput, bytesCreated)) {
        replacement[static_cast<size_t>(op.results[0])] = *gathered;
        continue;
      }
      std::optional<std::vector<Tensor>> values = tryEvaluate(graph, op, isOutput);
      if (!values) {
        for (ValueId result : op.results) keptIndex[static_cast<size_t>(result)] = static_cast<int32_t>(kept.size());
        kept.push_back(std::move(op));
        continue;
      }
      for (size_t i = 0; i < op.results.size(); ++i) {
        // The weight takes the result's name, so the IR still reads the same.
        const std::string name = graph.value(op.results[i]).name;
        KILN_RETURN_IF_ERROR(graph.rename(op.results[i], graph.uniqueName(name + ".folded")));
        const ValueId weight = graph.addWeight(name, (*values)[i]);
        replacement.push_back(weight);  // the new weight stands for itself
        replacement[static_cast<size_t>(op.results[i])] = weight;
        bytesCreated += static_cast<int64_t>((*values)[i].byteSize());
      }
      ++folded;
    }
    statistics_.add("ops-folded", folded);
    statistics_.add("weight-bytes-created", bytesCreated);
    statistics_.add("skipped-too-large", tooLarge_);
    statistics_.add("skipped-no-kernel", noKernel_);
    statistics_.add("skipped-evaluation-error", evaluationErrors_);
    statistics_.add("rows-folded-into-tables", rowsFolded_);
    if (folded == 0 && rowsFolded_ == 0) return false;
    graph.setOps(std::move(kept));
    graph.compact();
    return true;
  }

 private:
  // The op's results when it can and may be folded; nullopt to keep it.
  std::optional<std::vector<Tensor>> tryEvaluate(const Graph& graph, const Op& op,
                                                 const std::vector<bool>& isOutput) {
    // A placed op's result lives on its device, a weight on the host: an
    // upload of a weight is the runtime's work, done once per executor.
    if (op.results.empty() || op.placement() != kHostDevice) return std::nullopt;
    std::vector<const Tensor*> inputs;
    for (ValueId operand : op.operands) {
      if (operand == kNoValue) {
        inputs.push_back(nullptr);
        continue;
      }
      const Value& value = graph.value(operand);
      if (value.kind != ValueKind::Weight || !value.data) return std::nullopt;
      inputs.push_back(&*value.data);
    }
    for (ValueId result : op.results) {
      // A graph output keeps its op (outputs are op results, not weights).
      if (static_cast<size_t>(result) < isOutput.size() && isOutput[static_cast<size_t>(result)])
        return std::nullopt;
      // A result with symbolic dims depends on the run; one over the cap is
      // cheaper to compute than to store.
      std::optional<int64_t> elements = graph.value(result).type.numElements();
      if (!elements) return std::nullopt;
      if (*elements > kConstantFoldMaxElements) {
        ++tooLarge_;
        return std::nullopt;
      }
    }
    if (!referenceKernel(op.def->kind)) {
      ++noKernel_;
      return std::nullopt;
    }
    Expected<std::vector<Tensor>> values =
        evaluateOp(*op.def, op.attrs, inputs, static_cast<int>(op.results.size()));
    // An op that fails on its constants fails at run time too, with the
    // executor's error; folding leaves it there.
    if (!values) {
      ++evaluationErrors_;
      return std::nullopt;
    }
    for (size_t i = 0; i < op.results.size(); ++i)
      if ((*values)[i].type() != graph.value(op.results[i]).type) {
        ++evaluationErrors_;
        return std::nullopt;
      }
    return std::move(*values);
  }

  // gather(table, i) + c, with c one row [1, .., 1, D] broadcast over the
  // gathered rows, is gather(table + c, i) (RoBERTa adds its token-type row
  // to every word embedding): the add folds into the table when nothing else
  // reads the table or the gather, within the size cap. Returns the gather's
  // result, which then stands for the add's.
  std::optional<ValueId> foldRowIntoTable(Graph& graph, const Op& add, std::vector<Op>& kept,
                                          const std::vector<int32_t>& keptIndex, const std::vector<int>& uses,
                                          const std::vector<bool>& isOutput, int64_t& bytesCreated) {
    if (!add.is(OpKind::Add) || add.operands.size() != 2 || isOutput[static_cast<size_t>(add.results[0])])
      return std::nullopt;
    for (size_t side : {size_t{0}, size_t{1}}) {
      const ValueId rowsId = add.operands[side], rowId = add.operands[1 - side];
      const Value& row = graph.value(rowId);
      const int32_t at = static_cast<size_t>(rowsId) < keptIndex.size() ? keptIndex[static_cast<size_t>(rowsId)] : -1;
      if (at < 0) continue;
      Op* gather = &kept[static_cast<size_t>(at)];
      if (!gather->is(OpKind::Gather) || gather->attrs.getInt("axis", 0) != 0) continue;
      const Value& table = graph.value(gather->operands[0]);
      if (table.kind != ValueKind::Weight || !table.data || table.type.rank() != 2 || row.kind != ValueKind::Weight ||
          !row.data || row.type.dtype != table.type.dtype || uses[static_cast<size_t>(gather->operands[0])] != 1 ||
          uses[static_cast<size_t>(rowsId)] != 1 || graph.value(add.results[0]).type != graph.value(rowsId).type)
        continue;
      const int64_t width = table.data->shape()[1];
      if (row.data->numElements() != width || row.type.rank() > graph.value(rowsId).type.rank() ||
          (row.type.rank() > 0 && row.data->shape().back() != width) ||
          table.data->numElements() > kConstantFoldMaxElements)
        continue;
      const Tensor flatRow = row.data->reshaped({1, width});
      const std::vector<const Tensor*> addends = {&*table.data, &flatRow};
      Expected<std::vector<Tensor>> sum = evaluateOp(opDef(OpKind::Add), {}, addends, 1);
      if (!sum) continue;
      const std::string name = table.name;
      bytesCreated += static_cast<int64_t>((*sum)[0].byteSize());
      gather->operands[0] = graph.addWeight(graph.uniqueName(name + ".with_row"), std::move((*sum)[0]));
      ++rowsFolded_;
      return rowsId;
    }
    return std::nullopt;
  }

  int64_t tooLarge_ = 0, noKernel_ = 0, evaluationErrors_ = 0;
  int64_t rowsFolded_ = 0;
};

}  // namespace

std::unique_ptr<Pass> createConstantFold() { return std::make_unique<ConstantFold>(); }

}  // namespace kiln
