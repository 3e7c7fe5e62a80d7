#include "ir/op_registry.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace kiln {

std::optional<OpKind> opKindNamed(std::string_view name) {
  for (size_t i = 0; i < kNumOpKinds; ++i)
    if (kOpNames[i] == name) return static_cast<OpKind>(i);
  return std::nullopt;
}

const OpRegistry& OpRegistry::global() {
  static const OpRegistry registry = [] {
    OpRegistry r;
    registerElementwiseOps(r);
    registerReductionOps(r);
    registerLinalgOps(r);
    registerShapeOps(r);
    registerFusedOps(r);
    registerLatentAttentionOps(r);
    registerTransferOps(r);
    for (size_t i = 0; i < kNumOpKinds; ++i)
      if (!r.ops_[i]) {
        std::fprintf(stderr, "kiln: op '%s' of ir/ops.def has no OpDef\n", std::string(kOpNames[i]).c_str());
        std::abort();
      }
    return r;
  }();
  return registry;
}

void OpRegistry::add(OpDef def) {
  std::unique_ptr<OpDef>& slot = ops_[static_cast<size_t>(def.kind)];
  def.name = opName(def.kind);
  if (slot) {
    std::fprintf(stderr, "kiln: op '%s' is declared twice in the registry\n", std::string(def.name).c_str());
    std::abort();
  }
  slot = std::make_unique<OpDef>(std::move(def));
}

const OpDef* OpRegistry::find(std::string_view name) const {
  std::optional<OpKind> kind = opKindNamed(name);
  return kind ? ops_[static_cast<size_t>(*kind)].get() : nullptr;
}

std::vector<const OpDef*> OpRegistry::all() const {
  std::vector<const OpDef*> out;
  for (const auto& def : ops_) out.push_back(def.get());
  std::sort(out.begin(), out.end(), [](const OpDef* a, const OpDef* b) { return a->name < b->name; });
  return out;
}

double CostContext::dim(size_t i, int64_t axis) const {
  if (!present(i)) return 1;
  const TensorType& type = *operands_[i];
  const int64_t rank = static_cast<int64_t>(type.rank());
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) return 1;
  return dimValue_(type.shape[static_cast<size_t>(axis)]);
}

double CostContext::elementsOf(const TensorType& type) const {
  double n = 1;
  for (const Dim& d : type.shape) n *= dimValue_(d);
  return n;
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

// Counts and attributes; errors read like inference errors: "relu(f32[2]): ...".
Status checkAttributes(const InferContext& ctx) {
  const OpDef& def = ctx.def();
  for (const auto& [name, value] : ctx.attrs().all()) {
    auto spec = std::find_if(def.attrs.begin(), def.attrs.end(),
                             [&](const AttrSpec& s) { return s.name == name; });
    if (spec == def.attrs.end()) return ctx.error("has no attribute '", name, "'");
    AttrKind kind = attrKind(value);
    bool compatible = kind == spec->kind ||
                      (spec->kind == AttrKind::Float && kind == AttrKind::Int) ||
                      (spec->kind == AttrKind::Bool && kind == AttrKind::Int) ||
                      (spec->kind == AttrKind::Floats && kind == AttrKind::Ints) ||
                      (spec->kind == AttrKind::Dims && kind == AttrKind::Ints) ||
                      (spec->kind == AttrKind::Program && kind == AttrKind::String) ||
                      (spec->kind == AttrKind::Ints && kind == AttrKind::Floats &&
                       std::get<std::vector<double>>(value).empty());
    if (!compatible)
      return ctx.error("attribute '", name, "' must be ", attrKindName(spec->kind), ", got ",
                       attrKindName(kind), " ", attrValueStr(value));
  }
  for (const AttrSpec& spec : def.attrs)
    if (spec.required && !ctx.attrs().has(std::string(spec.name)))
      return ctx.error("requires attribute '", spec.name, "'");
  return Status::ok();
}

// "1 operand", "2 to 3 operands", "at least 1 operand".
std::string countText(int min, int max, const char* noun) {
  std::string number = max < 0 ? cat("at least ", min) : min == max ? cat(min) : cat(min, " to ", max);
  return cat(number, " ", noun, (max == 1 && min == 1) || (max < 0 && min == 1) ? "" : "s");
}

Status checkCounts(const InferContext& ctx) {
  const OpDef& def = ctx.def();
  size_t operands = ctx.numOperands();
  if (operands < static_cast<size_t>(def.minOperands) ||
      (def.maxOperands >= 0 && operands > static_cast<size_t>(def.maxOperands)))
    return ctx.error("takes ", countText(def.minOperands, def.maxOperands, "operand"), ", got ", operands);
  int results = ctx.numResults();
  if (results < def.minResults || (def.maxResults >= 0 && results > def.maxResults))
    return ctx.error("has ", countText(def.minResults, def.maxResults, "result"), ", got ", results);
  for (int i = 0; i < def.minOperands; ++i)
    if (!ctx.has(static_cast<size_t>(i)))
      return ctx.error("operand ", i, " (",
                       i < static_cast<int>(def.operands.size()) ? def.operands[static_cast<size_t>(i)] : "",
                       ") is required");
  return Status::ok();
}

}  // namespace

std::optional<Attributes> typedAttributes(const OpDef& def, size_t numOperands, const Attributes& attrs) {
  std::optional<Attributes> typed;
  for (const AttrSpec& spec : def.attrs) {
    if (spec.kind != AttrKind::Program) continue;
    const std::string name(spec.name);
    const auto it = attrs.all().find(name);
    if (it == attrs.all().end() || attrKind(it->second) != AttrKind::String) continue;
    Expected<ElementwiseProgram> program = parseElementwiseProgram(std::get<std::string>(it->second), numOperands);
    if (!program) continue;
    if (!typed) typed = attrs;
    typed->set(name, std::move(*program));
  }
  return typed;
}

Status inferResultTypes(const OpDef& def, const Attributes& attrs,
                        std::span<const OperandInfo> operands, int numResults,
                        std::vector<TensorType>& results, const SymbolBindings* bindings) {
  InferContext ctx(def, attrs, operands, numResults, bindings);
  KILN_RETURN_IF_ERROR(checkCounts(ctx));
  KILN_RETURN_IF_ERROR(checkAttributes(ctx));
  results.clear();
  KILN_RETURN_IF_ERROR(def.infer(ctx, results));
  if (static_cast<int>(results.size()) != numResults)
    return ctx.error("inference gave ", results.size(), " results, expected ", numResults);
  return Status::ok();
}

}  // namespace kiln
