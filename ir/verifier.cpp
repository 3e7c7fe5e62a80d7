// The graph verifier. Operand/result counts, required operands and attribute
// names and kinds are checked by inferResultTypes (the same checks the Builder
// applies); this file adds what only a whole graph can tell: definition
// before use, declared types against inferred ones, outputs and weight data,
// and placement: every operand on its op's device, outputs on the host.
#include "ir/verifier.h"

#include "ir/builder.h"
#include "ir/op_registry.h"

namespace kiln {
namespace {

class Verifier {
 public:
  explicit Verifier(const Graph& graph)
      : graph_(graph), defined_(graph.values().size(), false) {}

  Status run() {
    for (size_t i = 0; i < graph_.inputs().size(); ++i) {
      ValueId id = graph_.inputs()[i];
      if (!isValid(id)) return Status::error("graph input ", i, " refers to no value (id ", id, ")");
      defined_[static_cast<size_t>(id)] = true;
    }
    for (ValueId id : graph_.weights()) {
      KILN_RETURN_IF_ERROR(verifyWeight(graph_.value(id)));
      defined_[static_cast<size_t>(id)] = true;
    }
    for (size_t i = 0; i < graph_.ops().size(); ++i) KILN_RETURN_IF_ERROR(verifyOp(i));
    for (size_t i = 0; i < graph_.outputs().size(); ++i) {
      ValueId id = graph_.outputs()[i];
      if (!isValid(id)) return Status::error("graph output ", i, " refers to no value (id ", id, ")");
      if (!defined_[static_cast<size_t>(id)])
        return Status::error("graph output ", i, " ", ref(id), " is not defined by any op");
      if (graph_.deviceOf(id) != kHostDevice)
        return Status::error("graph output ", i, " ", ref(id), " is on device '", graph_.deviceOf(id),
                             "'; outputs are returned in host memory (transfer it to '", kHostDevice, "')");
    }
    return Status::ok();
  }

 private:
  bool isValid(ValueId id) const {
    return id >= 0 && static_cast<size_t>(id) < graph_.values().size();
  }

  std::string ref(ValueId id) const {
    const Value& v = graph_.value(id);
    return cat(v.kind == ValueKind::Weight ? "@" : "%", v.name);
  }

  // The data is what inference and the kernels see, so it must be exactly
  // the declared type: same dtype, same dims, hence the same byte size.
  Status verifyWeight(const Value& weight) const {
    if (!weight.data) return Status::ok();
    const Tensor& data = *weight.data;
    auto dims = weight.type.staticDims();
    size_t typeBytes = dims ? static_cast<size_t>(*weight.type.numElements()) * dtypeSize(weight.type.dtype) : 0;
    if (!dims || data.dtype() != weight.type.dtype || data.shape() != *dims) {
      return Status::error("weight @", weight.name, ": its data is ", data.type().str(), " (",
                           data.byteSize(), " bytes) but its type is ", weight.type.str(),
                           dims ? cat(" (", typeBytes, " bytes)") : std::string(" (not static)"));
    }
    if (data.byteSize() != 0 && data.data() == nullptr)
      return Status::error("weight @", weight.name, " of type ", weight.type.str(),
                           " has data without storage");
    return Status::ok();
  }

  // "op 'matmul' defining %3 (loc "MatMul_7")"
  std::string describeOp(size_t index, const Op& op) const {
    std::string out = op.def ? cat("op '", op.def->name, "'") : cat("op #", index);
    for (size_t i = 0; i < op.results.size(); ++i) {
      out += i ? ", " : " defining ";
      out += isValid(op.results[i]) ? ref(op.results[i]) : cat("<invalid id ", op.results[i], ">");
    }
    if (!op.location.empty()) out += cat(" (loc \"", op.location, "\")");
    return out;
  }

  Status verifyOp(size_t index) {
    const Op& op = graph_.ops()[index];
    std::string where = describeOp(index, op);
    if (!op.def) return Status::error(where, ": has no op definition");

    for (ValueId id : op.results) {
      if (!isValid(id)) return Status::error(where, ": a result refers to no value (id ", id, ")");
      const Value& v = graph_.value(id);
      if (v.kind != ValueKind::OpResult)
        return Status::error(where, ": result ", ref(id), " is a graph input or weight");
      if (defined_[static_cast<size_t>(id)])
        return Status::error(where, ": result ", ref(id), " is defined twice");
    }

    for (size_t i = 0; i < op.operands.size(); ++i) {
      ValueId id = op.operands[i];
      if (id == kNoValue) continue;
      if (!isValid(id)) return Status::error(where, ": operand ", i, " refers to no value (id ", id, ")");
      if (defined_[static_cast<size_t>(id)]) continue;
      const Value& v = graph_.value(id);
      if (v.producer > static_cast<int32_t>(index)) {
        return Status::error(where, ": operand ", i, " ", ref(id),
                             " is used before it is defined (by op ", v.producer, ")");
      }
      return Status::error(where, ": operand ", i, " ", ref(id), " is not defined by any op");
    }

    KILN_RETURN_IF_ERROR(verifyPlacement(op, where));

    std::vector<TensorType> inferred;
    Status status = inferResultTypes(*op.def, op.attrs, operandInfos(graph_, op.operands),
                                     static_cast<int>(op.results.size()), inferred);
    if (!status) return status.withContext(where + ": ");
    for (size_t i = 0; i < op.results.size(); ++i) {
      const TensorType& declared = graph_.value(op.results[i]).type;
      if (!refines(declared, inferred[i])) {
        return Status::error(where, ": ", ref(op.results[i]), " is declared ", declared.str(),
                             " but inference gives ", inferred[i].str());
      }
    }

    for (ValueId id : op.results) defined_[static_cast<size_t>(id)] = true;
    return Status::ok();
  }

  // A kernel reads only its own device's memory: an operand elsewhere must
  // come through a transfer, whose `from` and `to` match the placements.
  Status verifyPlacement(const Op& op, const std::string& where) const {
    const std::string_view device = op.placement();
    if (op.is(OpKind::Transfer)) {
      const std::string from = op.attrs.getString("from"), to = op.attrs.getString("to");
      if (to != device)
        return Status::error(where, ": transfers to '", to, "' but is placed on '", device, "'");
      if (!op.operands.empty() && op.operands[0] != kNoValue && graph_.deviceOf(op.operands[0]) != from)
        return Status::error(where, ": transfers from '", from, "' but ", ref(op.operands[0]), " is on '",
                             graph_.deviceOf(op.operands[0]), "'");
      return Status::ok();
    }
    for (ValueId id : op.operands)
      if (id != kNoValue && graph_.deviceOf(id) != device)
        return Status::error(where, ": is placed on '", device, "' but its operand ", ref(id), " is on '",
                             graph_.deviceOf(id), "' (a transfer must move it)");
    return Status::ok();
  }

  const Graph& graph_;
  std::vector<bool> defined_;
};

}  // namespace

Status verifyGraph(const Graph& graph) { return Verifier(graph).run(); }

}  // namespace kiln
