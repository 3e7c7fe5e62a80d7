#include "passes/elementwise_fusion.h"

#include <algorithm>
#include <cmath>
#include <charconv>
#include <map>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "ir/elementwise_program.h"
#include "passes/pattern_utils.h"

namespace kiln {

namespace {

// The program instruction of an op fused_elementwise can evaluate (with its
// operand count); nullopt for every other op.
std::optional<ElementOp> elementOpOf(const Op& op) {
  static constexpr std::pair<OpKind, ElementOp> kElementOps[] = {
      {OpKind::Add, ElementOp::Add},   {OpKind::Sub, ElementOp::Sub},
      {OpKind::Mul, ElementOp::Mul},   {OpKind::Div, ElementOp::Div},
      {OpKind::Pow, ElementOp::Pow},   {OpKind::Max, ElementOp::Max},
      {OpKind::Min, ElementOp::Min},   {OpKind::Neg, ElementOp::Neg},
      {OpKind::Exp, ElementOp::Exp},   {OpKind::Log, ElementOp::Log},
      {OpKind::Sqrt, ElementOp::Sqrt}, {OpKind::Reciprocal, ElementOp::Reciprocal},
      {OpKind::Tanh, ElementOp::Tanh}, {OpKind::Erf, ElementOp::Erf},
      {OpKind::Sigmoid, ElementOp::Sigmoid}, {OpKind::Relu, ElementOp::Relu},
      {OpKind::Silu, ElementOp::Silu}, {OpKind::Gelu, ElementOp::Gelu},
      {OpKind::Abs, ElementOp::Abs},   {OpKind::Equal, ElementOp::Equal},
      {OpKind::Less, ElementOp::Less}, {OpKind::Greater, ElementOp::Greater},
      {OpKind::Not, ElementOp::Not},   {OpKind::And, ElementOp::And},
      {OpKind::Or, ElementOp::Or}};
  if (op.is(OpKind::Cast) && op.operands.size() == 1) {
    const std::string to = op.attrs.getString("to");
    if (to == "i32") return ElementOp::CastI32;
    if (to == "i64") return ElementOp::CastI64;
    if (to == "bool") return ElementOp::CastBool;
    return std::nullopt;
  }
  for (const auto& [kind, element] : kElementOps) {
    if (!op.is(kind)) continue;
    const bool tanhGelu = element == ElementOp::Gelu && op.attrs.getString("approximate", "none") == "tanh";
    const ElementOp chosen = tanhGelu ? ElementOp::GeluTanh : element;
    if (op.operands.size() != elementOpArity(chosen)) return std::nullopt;
    return chosen;
  }
  return std::nullopt;
}

// What program an op can join: f32 arithmetic, or index arithmetic (integers
// and bools); never both in one program.
enum class ProgramKind { None, Float, Index };

bool isIndexType(DType dtype) { return dtype == DType::Bool || isInteger(dtype); }

ProgramKind programKindOf(const Graph& graph, const Op& op) {
  std::optional<ElementOp> element = op.results.size() == 1 ? elementOpOf(op) : std::nullopt;
  if (!element) return ProgramKind::None;
  std::vector<DType> dtypes;
  for (ValueId id : op.operands) {
    if (id == kNoValue) return ProgramKind::None;
    dtypes.push_back(graph.value(id).type.dtype);
  }
  const DType result = graph.value(op.results[0]).type.dtype;
  const auto f32 = [](DType d) { return d == DType::F32; };
  if (!isIndexOp(*element) && f32(result) && std::all_of(dtypes.begin(), dtypes.end(), f32)) return ProgramKind::Float;
  if (!isIndexType(result) || !std::all_of(dtypes.begin(), dtypes.end(), isIndexType)) return ProgramKind::None;
  // The instruction must type as the op does (integer div, say, does not).
  ProgramInstruction instruction{*element, {}};
  for (size_t k = 0; k < dtypes.size(); ++k) instruction.args.push_back({ProgramArg::Kind::Operand, k, 0.0});
  Expected<std::vector<DType>> typed = programDTypes({instruction}, dtypes);
  return typed && typed->back() == result ? ProgramKind::Index : ProgramKind::None;
}

// A one-element weight (f32, or an integer or bool in an index program),
// written into the program as a literal.
std::optional<std::string> literal(const Graph& graph, ValueId id) {
  const Value& v = graph.value(id);
  if (v.kind != ValueKind::Weight || !v.data || v.data->numElements() != 1) return std::nullopt;
  char text[32];
  if (isIndexType(v.data->dtype())) {
    const std::to_chars_result written = std::to_chars(text, text + sizeof text, v.data->elementAsInt(0));
    return std::string(text, written.ptr);
  }
  const float value = v.data->data<float>()[0];
  if (std::isnan(value)) return std::nullopt;
  // The shortest text that reads back as the same float.
  const std::to_chars_result written = std::to_chars(text, text + sizeof text, value);
  return std::string(text, written.ptr);
}

struct FusedProgram {
  std::string program;
  std::vector<ValueId> operands;
};

// The group's ops (ascending) as a program. With inlineConstants, one-element
// weights become literals.
FusedProgram buildProgram(const Graph& graph, const std::vector<int32_t>& group, bool inlineConstants) {
  FusedProgram fused;
  std::map<ValueId, std::string> names;  // members' results: %k; operands: $i
  for (size_t k = 0; k < group.size(); ++k) {
    const Op& op = graph.ops()[static_cast<size_t>(group[k])];
    std::string instruction(elementOpName(*elementOpOf(op)));
    for (ValueId id : op.operands) {
      auto known = names.find(id);
      std::string arg;
      if (known != names.end()) {
        arg = known->second;
      } else if (std::optional<std::string> text = inlineConstants ? literal(graph, id) : std::nullopt) {
        arg = *text;
      } else {
        arg = cat("$", fused.operands.size());
        fused.operands.push_back(id);
        names[id] = arg;
      }
      instruction += " " + arg;
    }
    if (k) fused.program += "; ";
    fused.program += instruction;
    names[op.results[0]] = cat("%", k);
  }
  return fused;
}

// Whether broadcasting `operands` gives `type`'s shape (inlined constants of a
// higher rank would otherwise be lost).
bool broadcastsTo(const Graph& graph, const std::vector<ValueId>& operands, const TensorType& type) {
  if (operands.empty()) return false;
  Shape shape = graph.value(operands.front()).type.shape;
  for (ValueId id : operands) {
    std::optional<Shape> next = broadcastShapes(shape, graph.value(id).type.shape);
    if (!next) return false;
    shape = *next;
  }
  return shape.size() == type.rank() &&
         (refines(TensorType{type.dtype, shape}, type) || refines(type, TensorType{type.dtype, shape}));
}

class ElementwiseFusion final : public Pass {
 public:
  std::string_view name() const override { return "elementwise_fusion"; }
  std::string_view summary() const override {
    return "fuses chains of f32 elementwise ops, or of integer and bool index arithmetic, into one "
           "fused_elementwise program";
  }

  Expected<bool> run(Graph& graph) override {
    Rewriter rewriter(graph);
    const size_t count = rewriter.originalOpCount();
    // Backwards: an op joins its users' group when all of them are in one.
    std::vector<int32_t> groupOf(count, -1);
    std::vector<std::vector<int32_t>> groups;  // members, descending
    std::vector<ProgramKind> kinds;            // by group
    for (size_t i = count; i-- > 0;) {
      const Op& op = graph.ops()[i];
      const ProgramKind kind = programKindOf(graph, op);
      if (kind == ProgramKind::None) continue;
      const ValueId result = op.results[0];
      const std::vector<int32_t>& users = rewriter.users(result);
      int32_t group = -1;
      if (!rewriter.isGraphOutput(result) && !users.empty()) {
        group = groupOf[static_cast<size_t>(users.front())];
        for (int32_t user : users)
          if (groupOf[static_cast<size_t>(user)] != group) group = -1;
        if (group >= 0 && kinds[static_cast<size_t>(group)] != kind) group = -1;
      }
      if (group < 0) {
        group = static_cast<int32_t>(groups.size());
        groups.emplace_back();
        kinds.push_back(kind);
      }
      groupOf[i] = group;
      groups[static_cast<size_t>(group)].push_back(static_cast<int32_t>(i));
    }

    int64_t fusedGroups = 0, fusedOps = 0;
    for (std::vector<int32_t>& group : groups) {
      if (group.size() < 2) continue;
      std::reverse(group.begin(), group.end());
      const int32_t root = group.back();
      const ValueId result = graph.ops()[static_cast<size_t>(root)].results[0];
      const TensorType& type = graph.value(result).type;
      FusedProgram fused = buildProgram(graph, group, true);
      if (!broadcastsTo(graph, fused.operands, type)) fused = buildProgram(graph, group, false);
      if (!broadcastsTo(graph, fused.operands, type)) continue;
      Attributes attrs;
      attrs.set("program", fused.program);
      const std::string location = graph.ops()[static_cast<size_t>(root)].location;
      Expected<ValueId> op = rewriter.create1(root, OpKind::FusedElementwise, fused.operands, attrs, location);
      if (!op) return op.status();
      KILN_RETURN_IF_ERROR(rewriter.replace(result, *op));
      rewriter.mark(group);
      ++fusedGroups;
      fusedOps += static_cast<int64_t>(group.size());
    }
    statistics_.add("groups", fusedGroups);
    statistics_.add("ops-fused", fusedOps);
    KILN_RETURN_IF_ERROR(rewriter.commit());
    return rewriter.changed();
  }
};

}  // namespace

std::unique_ptr<Pass> createElementwiseFusion() { return std::make_unique<ElementwiseFusion>(); }

}  // namespace kiln
