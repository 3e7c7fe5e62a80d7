#include "ir/op_registry.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace kiln {

const OpRegistry& OpRegistry::global() {
  static const OpRegistry registry = [] {
    OpRegistry r;
    registerElementwiseOps(r);
    registerReductionOps(r);
    registerLinalgOps(r);
    registerShapeOps(r);
    return r;
  }();
  return registry;
}

void OpRegistry::add(OpDef def) {
  std::string name(def.name);
  if (ops_.count(name)) {
    std::fprintf(stderr, "kiln: op '%s' is declared twice in the registry\n", name.c_str());
    std::abort();
  }
  ops_[name] = std::make_unique<OpDef>(std::move(def));
}

const OpDef* OpRegistry::find(std::string_view name) const {
  auto it = ops_.find(std::string(name));
  return it == ops_.end() ? nullptr : it->second.get();
}

std::vector<const OpDef*> OpRegistry::all() const {
  std::vector<const OpDef*> out;
  for (const auto& [name, def] : ops_) out.push_back(def.get());
  std::sort(out.begin(), out.end(), [](const OpDef* a, const OpDef* b) { return a->name < b->name; });
  return out;
}

std::string InferContext::describe() const {
  std::string out = std::string(def_.name) + "(";
  for (size_t i = 0; i < operands_.size(); ++i) {
    if (i) out += ", ";
    out += operands_[i].type ? operands_[i].type->str() : "_";
  }
  return out + ")";
}

namespace {

Status checkAttributes(const OpDef& def, const Attributes& attrs) {
  for (const auto& [name, value] : attrs.all()) {
    auto spec = std::find_if(def.attrs.begin(), def.attrs.end(),
                             [&](const AttrSpec& s) { return s.name == name; });
    if (spec == def.attrs.end())
      return Status::error("op '", def.name, "' has no attribute '", name, "'");
    AttrKind kind = attrKind(value);
    bool compatible = kind == spec->kind ||
                      (spec->kind == AttrKind::Float && kind == AttrKind::Int) ||
                      (spec->kind == AttrKind::Bool && kind == AttrKind::Int) ||
                      (spec->kind == AttrKind::Floats && kind == AttrKind::Ints) ||
                      (spec->kind == AttrKind::Ints && kind == AttrKind::Floats &&
                       std::get<std::vector<double>>(value).empty());
    if (!compatible)
      return Status::error("op '", def.name, "': attribute '", name, "' must be ",
                           attrKindName(spec->kind), ", got ", attrKindName(kind), " ",
                           attrValueStr(value));
  }
  for (const AttrSpec& spec : def.attrs)
    if (spec.required && !attrs.has(std::string(spec.name)))
      return Status::error("op '", def.name, "' requires attribute '", spec.name, "'");
  return Status::ok();
}

Status checkCounts(const OpDef& def, size_t operands, int results) {
  if (operands < static_cast<size_t>(def.minOperands) ||
      (def.maxOperands >= 0 && operands > static_cast<size_t>(def.maxOperands))) {
    std::string expected = def.maxOperands < 0 ? cat("at least ", def.minOperands)
                           : def.minOperands == def.maxOperands
                               ? cat(def.minOperands)
                               : cat(def.minOperands, " to ", def.maxOperands);
    return Status::error("op '", def.name, "' takes ", expected, " operands, got ", operands);
  }
  if (results < def.minResults || (def.maxResults >= 0 && results > def.maxResults)) {
    std::string expected = def.maxResults < 0 ? cat("at least ", def.minResults)
                           : def.minResults == def.maxResults
                               ? cat(def.minResults)
                               : cat(def.minResults, " to ", def.maxResults);
    return Status::error("op '", def.name, "' has ", expected, " results, got ", results);
  }
  return Status::ok();
}

}  // namespace

Status inferResultTypes(const OpDef& def, const Attributes& attrs,
                        std::span<const OperandInfo> operands, int numResults,
                        std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(checkCounts(def, operands.size(), numResults));
  for (int i = 0; i < def.minOperands; ++i)
    if (!operands[static_cast<size_t>(i)].type)
      return Status::error("op '", def.name, "': operand ", i, " (",
                           i < static_cast<int>(def.operands.size()) ? def.operands[static_cast<size_t>(i)] : "",
                           ") is required");
  KILN_RETURN_IF_ERROR(checkAttributes(def, attrs));
  InferContext ctx(def, attrs, operands, numResults);
  results.clear();
  KILN_RETURN_IF_ERROR(def.infer(ctx, results));
  if (static_cast<int>(results.size()) != numResults)
    return ctx.error("inference gave ", results.size(), " results, expected ", numResults);
  return Status::ok();
}

Expected<std::vector<Tensor>> evaluateOp(const OpDef& def, const Attributes& attrs,
                                         std::span<const Tensor* const> inputs, int numResults) {
  std::vector<TensorType> inputTypes(inputs.size());
  std::vector<OperandInfo> operands(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i]) continue;
    inputTypes[i] = inputs[i]->type();
    operands[i] = {&inputTypes[i], inputs[i]};
  }
  std::vector<TensorType> resultTypes;
  KILN_RETURN_IF_ERROR(inferResultTypes(def, attrs, operands, numResults, resultTypes));
  std::vector<Tensor> outputs;
  std::vector<Tensor*> outputPtrs;
  outputs.reserve(resultTypes.size());
  for (const TensorType& t : resultTypes) {
    auto dims = t.staticDims();
    if (!dims)
      return Status::error("op '", def.name, "': result shape ", shapeStr(t.shape),
                           " is not concrete on concrete inputs");
    for (int64_t d : *dims)
      if (d < 0) return Status::error("op '", def.name, "': negative result dim in ", shapeStr(t.shape));
    outputs.push_back(Tensor::allocate(t.dtype, *dims));
  }
  for (Tensor& t : outputs) outputPtrs.push_back(&t);
  if (!def.reference) return Status::error("op '", def.name, "' has no CPU reference kernel");
  KernelContext kernel{def, attrs, inputs, outputPtrs};
  KILN_RETURN_IF_ERROR(def.reference(kernel));
  return outputs;
}

}  // namespace kiln
