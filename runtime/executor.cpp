#include "runtime/executor.h"

#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "backends/cpu/cpu_device.h"
#include "ir/op_registry.h"
#include "ir/verifier.h"

namespace kiln::rt {
namespace {

// `%name`, quoted when the name is not [A-Za-z0-9_.]+ (as the text form does).
std::string registerRef(const std::string& name) {
  bool bare = !name.empty();
  for (char c : name) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
    if (!ok) bare = false;
  }
  return bare ? "%" + name : "%\"" + name + "\"";
}

// "op 'matmul' defining %3 (loc "MatMul_7"): ", the prefix of every op error.
std::string opContext(const Graph& graph, const Op& op) {
  std::string text = cat("op '", op.def ? op.def->name : "?", "'");
  if (!op.results.empty()) {
    text += " defining ";
    for (size_t i = 0; i < op.results.size(); ++i) {
      if (i) text += ", ";
      text += registerRef(graph.value(op.results[i]).name);
    }
  }
  if (!op.location.empty()) text += cat(" (loc \"", op.location, "\")");
  return text + ": ";
}

std::string concreteTypeStr(DType dtype, const std::vector<int64_t>& shape) {
  return cat(dtypeName(dtype), shapeStr(shape));
}

// " (batch = 2, seq = 7)": the bindings of the symbols that appear in `type`.
std::string bindingsNote(const TensorType& type, const SymbolBindings& bindings) {
  std::string note;
  SymbolBindings shown;
  for (const Dim& d : type.shape)
    for (const std::string& s : d.symbols())
      if (auto it = bindings.find(s); it != bindings.end()) shown[s] = it->second;
  for (const auto& [name, value] : shown) note += cat(note.empty() ? " (" : ", ", name, " = ", value);
  return note.empty() ? note : note + ")";
}

enum class Solve { Bound, NoSolution, NotLinear };

// When `dim` (already substituted) is linear in exactly one unbound symbol,
// `c*s + k`, binds s so that it equals `value` (s must come out a whole
// number >= 0).
Solve solveLinear(const Dim& dim, int64_t value, SymbolBindings& bindings) {
  std::optional<std::string> symbol;
  int64_t coefficient = 0, constantTerm = 0;
  for (const auto& [monomial, coeff] : dim.terms()) {
    if (monomial.empty()) {
      constantTerm = coeff;
    } else if (monomial.size() == 1 && !symbol) {
      symbol = monomial[0];
      coefficient = coeff;
    } else {
      return Solve::NotLinear;
    }
  }
  if (!symbol || coefficient == 0) return Solve::NotLinear;
  int64_t rest = value - constantTerm;
  if (rest % coefficient != 0 || rest / coefficient < 0) return Solve::NoSolution;
  bindings[*symbol] = rest / coefficient;
  return Solve::Bound;
}

// Matches a declared (symbolic) shape against a concrete one, binding
// symbols it can. Returns false on a definite mismatch; dims that stay
// symbolic after binding (non-linear in unbound symbols) are not checked.
bool matchShape(const Shape& declared, const std::vector<int64_t>& actual, SymbolBindings& bindings) {
  if (declared.size() != actual.size()) return false;
  for (size_t k = 0; k < declared.size(); ++k) {
    if (declared[k].isUnknown()) continue;
    Dim d = declared[k].substitute(bindings);
    if (auto c = d.constant()) {
      if (*c != actual[k]) return false;
    } else if (solveLinear(d, actual[k], bindings) == Solve::NoSolution) {
      return false;
    }
    // A dim that is not linear in one unbound symbol is left to op inference.
  }
  return true;
}

// The name of `dim` when it is exactly one symbol with coefficient 1.
std::optional<std::string> plainSymbol(const Dim& dim) {
  if (dim.isUnknown() || dim.terms().size() != 1) return std::nullopt;
  const auto& [monomial, coeff] = *dim.terms().begin();
  if (monomial.size() != 1 || coeff != 1) return std::nullopt;
  return monomial[0];
}

}  // namespace

Executor::Executor(const Graph& graph, std::unique_ptr<Device> device)
    : graph_(graph), device_(std::move(device)) {}

Expected<std::unique_ptr<Executor>> Executor::create(const Graph& graph) {
  KILN_RETURN_IF_ERROR(verifyGraph(graph));
  auto device = std::make_unique<cpu::CpuDevice>();
  for (ValueId w : graph.weights()) {
    const Value& v = graph.value(w);
    if (!v.data) return Status::error("weight @", v.name, " has no data; the graph cannot run");
  }
  for (const Op& op : graph.ops()) {
    if (!device->supports(*op.def))
      return Status::error(opContext(graph, op), "no kernel on device '", device->name(), "'");
  }

  std::unique_ptr<Executor> executor(new Executor(graph, std::move(device)));
  // Last use of each op result: the last op reading it, or its producer when
  // nothing reads it. Graph outputs are never released.
  std::vector<int32_t> lastUse(graph.values().size(), -1);
  for (size_t i = 0; i < graph.ops().size(); ++i) {
    const Op& op = graph.ops()[i];
    for (ValueId r : op.results) lastUse[static_cast<size_t>(r)] = static_cast<int32_t>(i);
    for (ValueId o : op.operands)
      if (o != kNoValue) lastUse[static_cast<size_t>(o)] = static_cast<int32_t>(i);
  }
  for (ValueId out : graph.outputs()) lastUse[static_cast<size_t>(out)] = -1;
  executor->releaseAfter_.resize(graph.ops().size());
  for (size_t v = 0; v < graph.values().size(); ++v) {
    if (graph.values()[v].kind == ValueKind::OpResult && lastUse[v] >= 0)
      executor->releaseAfter_[static_cast<size_t>(lastUse[v])].push_back(static_cast<ValueId>(v));
  }
  return executor;
}

Expected<SymbolBindings> Executor::bindInputs(const std::vector<Tensor>& inputs) const {
  const std::vector<ValueId>& graphInputs = graph_.inputs();
  if (inputs.size() != graphInputs.size()) {
    std::string names;
    for (ValueId id : graphInputs) names += cat(names.empty() ? "" : ", ", "'", graph_.value(id).name, "'");
    return Status::error("graph @", graph_.name, " takes ", graphInputs.size(), " input(s) (", names,
                         "), got ", inputs.size());
  }

  SymbolBindings bindings;
  std::map<std::string, std::string, std::less<>> boundBy;  // symbol -> input that bound it
  auto mismatch = [&](size_t i) {
    const Value& v = graph_.value(graphInputs[i]);
    return Status::error("input '", v.name, "': expected ", v.type.str(), ", got ",
                         concreteTypeStr(inputs[i].dtype(), inputs[i].shape()));
  };

  // First the dtype, rank and constant dims, and the dims that are one symbol.
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = graph_.value(graphInputs[i]);
    const Tensor& t = inputs[i];
    if (t.dtype() != v.type.dtype || t.rank() != v.type.rank()) return mismatch(i);
    for (size_t k = 0; k < t.rank(); ++k) {
      const Dim& d = v.type.shape[k];
      int64_t n = t.shape()[k];
      if (n < 0) return mismatch(i);
      if (auto c = d.constant()) {
        if (*c != n) return mismatch(i);
      } else if (auto symbol = plainSymbol(d)) {
        auto [it, inserted] = bindings.emplace(*symbol, n);
        if (inserted) {
          boundBy[*symbol] = v.name;
        } else if (it->second != n) {
          return Status::error("dim '", *symbol, "' is ", it->second, " in input '", boundBy[*symbol],
                               "' but ", n, " in input '", v.name, "'");
        }
      }
    }
    if (t.isNull()) return Status::error("input '", v.name, "' has no data");
  }
  // Then compound dims (`seq + past`), which may bind what is left.
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = graph_.value(graphInputs[i]);
    if (!matchShape(v.type.shape, inputs[i].shape(), bindings)) {
      return Status::error("input '", v.name, "': expected ", v.type.str(), bindingsNote(v.type, bindings),
                           ", got ", concreteTypeStr(inputs[i].dtype(), inputs[i].shape()));
    }
  }
  return bindings;
}

Expected<std::vector<Tensor>> Executor::run(const std::vector<Tensor>& inputs) const {
  Expected<SymbolBindings> bound = bindInputs(inputs);
  if (!bound) return bound.status();
  SymbolBindings& bindings = bound.value();

  // Tensors of inputs and op results by ValueId; weights are read in place.
  std::vector<std::optional<Tensor>> env(graph_.values().size());
  for (size_t i = 0; i < inputs.size(); ++i) env[static_cast<size_t>(graph_.inputs()[i])] = inputs[i];
  auto tensorOf = [&](ValueId id) -> const Tensor* {
    const Value& v = graph_.value(id);
    if (v.kind == ValueKind::Weight) return &*v.data;
    const std::optional<Tensor>& t = env[static_cast<size_t>(id)];
    return t ? &*t : nullptr;
  };

  std::vector<TensorType> operandTypes;
  std::vector<OperandInfo> operandInfos;
  std::vector<const Tensor*> operandTensors;
  std::vector<TensorType> inferred;
  std::vector<Tensor> results;
  std::vector<Tensor*> resultPtrs;
  for (size_t opIndex = 0; opIndex < graph_.ops().size(); ++opIndex) {
    const Op& op = graph_.ops()[opIndex];
    // Built only on failure: this loop is the hot path of every run.
    auto context = [&] { return opContext(graph_, op); };

    size_t n = op.operands.size();
    operandTypes.assign(n, TensorType{});
    operandInfos.assign(n, OperandInfo{});
    operandTensors.assign(n, nullptr);
    for (size_t i = 0; i < n; ++i) {
      if (op.operands[i] == kNoValue) continue;
      const Tensor* t = tensorOf(op.operands[i]);
      if (!t) {  // the verifier rules this out; guard anyway
        return Status::error(context(), "operand ", registerRef(graph_.value(op.operands[i]).name),
                             " has no value");
      }
      operandTypes[i] = t->type();
      operandInfos[i] = OperandInfo{&operandTypes[i], t};
      operandTensors[i] = t;
    }

    // Shapes on the concrete operands, checked against the declared types.
    inferred.clear();
    int numResults = static_cast<int>(op.results.size());
    Status inferStatus = inferResultTypes(*op.def, op.attrs, operandInfos, numResults, inferred, &bindings);
    if (!inferStatus) return inferStatus.withContext(context());
    if (inferred.size() != op.results.size()) {
      return Status::error(context(), "inference gave ", inferred.size(), " result type(s) for ",
                           op.results.size(), " result(s)");
    }
    results.assign(op.results.size(), Tensor{});
    resultPtrs.assign(op.results.size(), nullptr);
    for (size_t r = 0; r < op.results.size(); ++r) {
      const Value& result = graph_.value(op.results[r]);
      std::optional<std::vector<int64_t>> dims = inferred[r].staticDims();
      if (!dims) {
        return Status::error(context(), "inference gave result ", registerRef(result.name),
                             " the non-concrete type ", inferred[r].str(), " on concrete operands");
      }
      if (inferred[r].dtype != result.type.dtype || !matchShape(result.type.shape, *dims, bindings)) {
        return Status::error(context(), "result ", registerRef(result.name), " is ",
                             concreteTypeStr(inferred[r].dtype, *dims), " but the graph declares ",
                             result.type.str(), bindingsNote(result.type, bindings));
      }
      Expected<Tensor> allocated = device_->allocate(inferred[r].dtype, *dims);
      if (!allocated) return allocated.status().withContext(context());
      results[r] = std::move(allocated.value());
      resultPtrs[r] = &results[r];
    }

    const std::optional<Attributes> resolvedAttrs = resolveDimAttributes(op.attrs, bindings);
    Status ran = device_->run(*op.def, resolvedAttrs ? *resolvedAttrs : op.attrs, operandTensors, resultPtrs);
    if (!ran) return ran.withContext(context());

    for (size_t r = 0; r < op.results.size(); ++r)
      env[static_cast<size_t>(op.results[r])] = std::move(results[r]);
    for (ValueId dead : releaseAfter_[opIndex]) env[static_cast<size_t>(dead)].reset();
  }

  std::vector<Tensor> outputs;
  outputs.reserve(graph_.outputs().size());
  for (ValueId out : graph_.outputs()) {
    const Tensor* t = tensorOf(out);
    if (!t) return Status::error("output ", registerRef(graph_.value(out).name), " was not computed");
    outputs.push_back(*t);
  }
  return outputs;
}

}  // namespace kiln::rt
