// Elementwise ops (ONNX semantics): unary math, binary arithmetic and
// comparisons with numpy broadcasting, logic, variadic min/max, where, cast,
// clip and identity. Their reference kernels: backends/reference/elementwise.cpp.
#include "ir/elementwise_dtypes.h"
#include "ir/op_registry.h"
#include "ir/ops/op_helpers.h"

namespace kiln {
namespace {

using namespace ops;

bool acceptsDType(Accepts accepts, DType t) {
  switch (accepts) {
    case Accepts::Float: return isFloat(t);
    case Accepts::Numeric: return t != DType::Bool;
    case Accepts::Signed: return t != DType::Bool && t != DType::U8;
    case Accepts::Bool: return t == DType::Bool;
    case Accepts::Any: return true;
  }
  return false;
}

std::string_view acceptsName(Accepts accepts) {
  switch (accepts) {
    case Accepts::Float: return "a float tensor (f32, f16, bf16, f64)";
    case Accepts::Numeric: return "a numeric tensor (not bool)";
    case Accepts::Signed: return "a signed numeric tensor (not u8 or bool)";
    case Accepts::Bool: return "a bool tensor";
    case Accepts::Any: return "a tensor";
  }
  return "";
}

Status requireAccepted(const InferContext& ctx, size_t i, Accepts accepts, std::string_view what) {
  if (!acceptsDType(accepts, ctx.type(i).dtype))
    return ctx.error(what, " must be ", acceptsName(accepts), ", got ", ctx.type(i).str());
  return Status::ok();
}

template <OpKind kKind>
Status inferUnary(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireAccepted(ctx, 0, acceptedDTypes(kKind), "x"));
  results.push_back(ctx.type(0));
  return Status::ok();
}

template <OpKind kKind>
Status inferBinary(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireAccepted(ctx, 0, acceptedDTypes(kKind), "a"));
  KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, 1));
  Expected<Shape> shape = broadcastAllOperands(ctx);
  if (!shape) return shape.status();
  results.push_back({hasBoolResult(kKind) ? DType::Bool : ctx.type(0).dtype, std::move(*shape)});
  return Status::ok();
}

// ---- pow: the exponent may have another numeric dtype (ONNX Pow-15); the
// ---- result has the base's dtype.

Status inferPow(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireAccepted(ctx, 0, Accepts::Numeric, "base"));
  KILN_RETURN_IF_ERROR(requireAccepted(ctx, 1, Accepts::Numeric, "exponent"));
  Expected<Shape> shape = broadcastAllOperands(ctx);
  if (!shape) return shape.status();
  results.push_back({ctx.type(0).dtype, std::move(*shape)});
  return Status::ok();
}

// ---- min / max: variadic with broadcasting.

Status inferVariadicNumeric(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireAccepted(ctx, 0, Accepts::Numeric, "operand 0"));
  for (size_t i = 1; i < ctx.numOperands(); ++i) KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, i));
  Expected<Shape> shape = broadcastAllOperands(ctx);
  if (!shape) return shape.status();
  results.push_back({ctx.type(0).dtype, std::move(*shape)});
  return Status::ok();
}

// ---- where(condition, x, y): three-way broadcasting.

Status inferWhere(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireAccepted(ctx, 0, Accepts::Bool, "condition"));
  KILN_RETURN_IF_ERROR(requireSameDType(ctx, 1, 2));
  Expected<Shape> shape = broadcastAllOperands(ctx);
  if (!shape) return shape.status();
  results.push_back({ctx.type(1).dtype, std::move(*shape)});
  return Status::ok();
}

// ---- cast {to}.

Status inferCast(const InferContext& ctx, std::vector<TensorType>& results) {
  const std::string to = ctx.attrs().getString("to");
  std::optional<DType> dtype = parseDType(to);
  if (!dtype)
    return ctx.error("attribute to = \"", to,
                     "\" is not a dtype (f32, f16, bf16, f64, i64, i32, i8, u8, bool)");
  results.push_back({*dtype, ctx.type(0).shape});
  return Status::ok();
}

// ---- clip(x, min?, max?): bounds are scalars of x's dtype; min > max gives
// ---- max everywhere, as numpy's clip does.

Status inferClip(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireAccepted(ctx, 0, Accepts::Numeric, "x"));
  for (size_t i : {size_t{1}, size_t{2}}) {
    if (!ctx.has(i)) continue;
    const char* what = i == 1 ? "min" : "max";
    KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, i));
    KILN_RETURN_IF_ERROR(requireScalarLike(ctx, i, what));
  }
  results.push_back(ctx.type(0));
  return Status::ok();
}

// In place: every kernel of these ops reads element i of its operands before
// it writes element i of the result, and the planner lets the result take
// over an operand only when their shapes and element sizes match.
template <OpKind kKind>
void addUnary(OpRegistry& registry, std::string_view summary, FlopsFn flops = kArithmetic) {
  registry.add(OpDef{.kind = kKind, .summary = summary, .operands = {"x"}, .minOperands = 1,
                     .maxOperands = 1, .attrs = {}, .infer = inferUnary<kKind>,
                     .inplaceOperands = {0}, .flops = flops});
}

template <OpKind kKind>
void addBinary(OpRegistry& registry, std::string_view summary) {
  registry.add(OpDef{.kind = kKind, .summary = summary, .operands = {"a", "b"}, .minOperands = 2,
                     .maxOperands = 2, .attrs = {}, .infer = inferBinary<kKind>,
                     .inplaceOperands = {0, 1}, .flops = kArithmetic});
}

}  // namespace

void registerElementwiseOps(OpRegistry& registry) {
  addUnary<OpKind::Sqrt>(registry, "square root", kTranscendental);
  addUnary<OpKind::Reciprocal>(registry, "1 / x");
  addUnary<OpKind::Neg>(registry, "-x");
  addUnary<OpKind::Exp>(registry, "e^x", kTranscendental);
  addUnary<OpKind::Log>(registry, "natural logarithm", kTranscendental);
  addUnary<OpKind::Tanh>(registry, "hyperbolic tangent", kTranscendental);
  addUnary<OpKind::Erf>(registry, "Gauss error function", kTranscendental);
  addUnary<OpKind::Sigmoid>(registry, "1 / (1 + e^-x)", kTranscendental);
  addUnary<OpKind::Relu>(registry, "max(x, 0)");
  addUnary<OpKind::Cos>(registry, "cosine", kTranscendental);
  addUnary<OpKind::Sin>(registry, "sine", kTranscendental);
  addUnary<OpKind::Abs>(registry, "absolute value");
  addUnary<OpKind::Not>(registry, "logical not of a bool tensor");
  registry.add(OpDef{.kind = OpKind::Identity, .summary = "x itself (a view of its bytes)", .operands = {"x"},
                     .minOperands = 1, .maxOperands = 1, .attrs = {}, .infer = inferUnary<OpKind::Identity>,
                     .resultIsView = true});

  addBinary<OpKind::Add>(registry, "a + b, numpy broadcasting");
  addBinary<OpKind::Sub>(registry, "a - b, numpy broadcasting");
  addBinary<OpKind::Mul>(registry, "a * b, numpy broadcasting");
  addBinary<OpKind::Div>(registry, "a / b, numpy broadcasting; integers truncate toward zero");
  addBinary<OpKind::Equal>(registry, "a == b as bool, numpy broadcasting");
  addBinary<OpKind::Less>(registry, "a < b as bool, numpy broadcasting");
  addBinary<OpKind::Greater>(registry, "a > b as bool, numpy broadcasting");
  addBinary<OpKind::And>(registry, "logical and of bool tensors, numpy broadcasting");
  addBinary<OpKind::Or>(registry, "logical or of bool tensors, numpy broadcasting");
  registry.add(OpDef{.kind = OpKind::Pow,
                     .summary = "base ^ exponent, numpy broadcasting; the exponent may have another dtype",
                     .operands = {"base", "exponent"}, .minOperands = 2, .maxOperands = 2,
                     .attrs = {}, .infer = inferPow, .inplaceOperands = {0, 1},
                     .flops = kTranscendental});

  registry.add(OpDef{.kind = OpKind::Min, .summary = "elementwise minimum of one or more tensors, broadcasting",
                     .operands = {"inputs..."}, .minOperands = 1, .maxOperands = -1,
                     .attrs = {}, .infer = inferVariadicNumeric, .inplaceOperands = {0, 1}, .flops = kArithmetic});
  registry.add(OpDef{.kind = OpKind::Max, .summary = "elementwise maximum of one or more tensors, broadcasting",
                     .operands = {"inputs..."}, .minOperands = 1, .maxOperands = -1,
                     .attrs = {}, .infer = inferVariadicNumeric, .inplaceOperands = {0, 1}, .flops = kArithmetic});
  registry.add(OpDef{.kind = OpKind::Where, .summary = "condition ? x : y, three-way broadcasting",
                     .operands = {"condition", "x", "y"}, .minOperands = 3, .maxOperands = 3,
                     .attrs = {}, .infer = inferWhere, .inplaceOperands = {1, 2},
                     .flops = kArithmetic});
  registry.add(OpDef{.kind = OpKind::Cast, .summary = "converts to dtype `to` (ONNX Cast semantics)",
                     .operands = {"x"}, .minOperands = 1, .maxOperands = 1,
                     .attrs = {{"to", AttrKind::String, true}},
                     .infer = inferCast, .inplaceOperands = {0}, .flops = kArithmetic});
  registry.add(OpDef{.kind = OpKind::Clip, .summary = "clamps x to the optional scalar bounds min and max",
                     .operands = {"x", "min", "max"}, .minOperands = 1, .maxOperands = 3,
                     .attrs = {}, .infer = inferClip, .inplaceOperands = {0}, .flops = kArithmetic});
}

}  // namespace kiln
