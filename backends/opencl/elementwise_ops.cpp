// The element-wise ops on the OpenCL device: each is a body for the
// generated map kernel (map_kernel.h), written to match its reference
// kernel (backends/reference/elementwise.cpp, fused.cpp). f32 throughout;
// the integer and bool forms where the reference models use them.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "backends/opencl/map_kernel.h"
#include "backends/opencl/op_kernels.h"
#include "backends/reference/kernel_helpers.h"
#include "ir/elementwise_program.h"

namespace kiln::opencl {
namespace {

bool isIntegerDType(DType dtype) { return dtype == DType::I64 || dtype == DType::I32; }

// `r = ...;` for a unary op on a0 of `dtype`; "" where there is no kernel.
std::string unaryBody(OpKind kind, DType dtype) {
  if (dtype == DType::F32) {
    switch (kind) {
      case OpKind::Abs: return "r = a0 < 0.0f ? -a0 : a0;";
      case OpKind::Cos: return "r = cos(a0);";
      case OpKind::Erf: return "r = erf(a0);";
      case OpKind::Exp: return "r = exp(a0);";
      case OpKind::Log: return "r = log(a0);";
      case OpKind::Neg: return "r = -a0;";
      case OpKind::Reciprocal: return "r = 1.0f / a0;";
      case OpKind::Relu: return "r = k_relu(a0);";
      case OpKind::Sigmoid: return "r = k_sigmoid(a0);";
      case OpKind::Sin: return "r = sin(a0);";
      case OpKind::Sqrt: return "r = sqrt(a0);";
      case OpKind::Tanh: return "r = tanh(a0);";
      default: return "";
    }
  }
  if (isIntegerDType(dtype)) {
    const std::string negated = cat("k_sub_", clTypeName(dtype), "(0, a0)");
    switch (kind) {
      case OpKind::Abs: return cat("r = a0 < 0 ? ", negated, " : a0;");
      case OpKind::Neg: return cat("r = ", negated, ";");
      case OpKind::Relu: return "r = a0 < 0 ? 0 : a0;";
      default: return "";
    }
  }
  if (dtype == DType::Bool && kind == OpKind::Not) return "r = (uchar)(a0 == 0);";
  return "";
}

// `r = ...;` for a binary op on a0, a1 of `dtype`; "" where there is no kernel.
std::string binaryBody(OpKind kind, DType dtype) {
  switch (kind) {
    case OpKind::Equal: return "r = (uchar)(a0 == a1);";
    case OpKind::Less: return dtype == DType::Bool ? "" : "r = (uchar)(a0 < a1);";
    case OpKind::Greater: return dtype == DType::Bool ? "" : "r = (uchar)(a0 > a1);";
    case OpKind::And: return dtype == DType::Bool ? "r = (uchar)(a0 && a1);" : "";
    case OpKind::Or: return dtype == DType::Bool ? "r = (uchar)(a0 || a1);" : "";
    default: break;
  }
  const char* symbol = kind == OpKind::Add ? "+" : kind == OpKind::Sub ? "-" : kind == OpKind::Mul ? "*" : "/";
  const bool arithmetic = kind == OpKind::Add || kind == OpKind::Sub || kind == OpKind::Mul || kind == OpKind::Div;
  if (!arithmetic) return "";
  if (dtype == DType::F32) return cat("r = a0 ", symbol, " a1;");
  // Integer division by zero is an error in the reference; a kernel cannot raise one.
  if (isIntegerDType(dtype) && kind != OpKind::Div) {
    const char* name = kind == OpKind::Add ? "add" : kind == OpKind::Sub ? "sub" : "mul";
    return cat("r = k_", name, "_", clTypeName(dtype), "(a0, a1);");
  }
  return "";
}

// Runs `body` over the output's shape with every operand broadcast to it.
Status mapBroadcast(ClContext& cl, const KernelContext& ctx, const std::string& body,
                    const std::vector<const Tensor*>& operands) {
  const Tensor& out = *ctx.outputs[0];
  MapFunction fn{clTypeName(out.dtype()), {}, body};
  std::vector<StridedTensor> walked;
  if (fn.resultType.empty()) return unsupportedDType(ctx, out.dtype());
  for (const Tensor* operand : operands) {
    if (clTypeName(operand->dtype()).empty()) return unsupportedDType(ctx, operand->dtype());
    fn.operandTypes.push_back(clTypeName(operand->dtype()));
    walked.push_back(broadcastTo(*operand, out.shape()));
  }
  return runMap(cl, ctx.def.name, fn, out.shape(), wholeTensor(out), walked);
}

Status unaryKernel(ClContext& cl, const KernelContext& ctx) {
  const std::string body = unaryBody(ctx.def.kind, ctx.input(0)->dtype());
  if (body.empty()) return unsupportedDType(ctx, ctx.input(0)->dtype());
  return mapBroadcast(cl, ctx, body, {ctx.input(0)});
}

Status binaryKernel(ClContext& cl, const KernelContext& ctx) {
  const std::string body = binaryBody(ctx.def.kind, ctx.input(0)->dtype());
  if (body.empty()) return unsupportedDType(ctx, ctx.input(0)->dtype());
  return mapBroadcast(cl, ctx, body, {ctx.input(0), ctx.input(1)});
}

Status powKernel(ClContext& cl, const KernelContext& ctx) {
  for (size_t i = 0; i < 2; ++i)
    if (ctx.input(i)->dtype() != DType::F32) return unsupportedDType(ctx, ctx.input(i)->dtype());
  return mapBroadcast(cl, ctx, "r = pow(a0, a1);", {ctx.input(0), ctx.input(1)});
}

// min or max of a0 and a1; "" for a dtype without a kernel.
std::string variadicBody(OpKind kind, DType dtype) {
  const bool isMin = kind == OpKind::Min;
  if (dtype == DType::F32) return isMin ? "r = k_min(a0, a1);" : "r = k_max(a0, a1);";
  if (isIntegerDType(dtype)) return isMin ? "r = a1 < a0 ? a1 : a0;" : "r = a0 < a1 ? a1 : a0;";
  return "";
}

// min / max over any number of operands: the first pair into the result,
// then the result with each further operand, in place.
Status variadicKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& out = *ctx.outputs[0];
  const std::string body = variadicBody(ctx.def.kind, out.dtype());
  if (body.empty()) return unsupportedDType(ctx, out.dtype());
  if (ctx.inputs.size() == 1) return mapBroadcast(cl, ctx, "r = a0;", {ctx.input(0)});
  KILN_RETURN_IF_ERROR(mapBroadcast(cl, ctx, body, {ctx.input(0), ctx.input(1)}));
  for (size_t k = 2; k < ctx.inputs.size(); ++k)
    KILN_RETURN_IF_ERROR(mapBroadcast(cl, ctx, body, {&out, ctx.input(k)}));
  return Status::ok();
}

// where moves whole elements as words of their size.
MapFunction whereFunction(DType dtype) {
  const std::string word = clWordType(dtypeSize(dtype));
  return {word, {"uchar", word, word}, "r = a0 ? a1 : a2;"};
}

Status whereKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& out = *ctx.outputs[0];
  const MapFunction fn = whereFunction(out.dtype());
  const std::vector<StridedTensor> walked = {broadcastTo(*ctx.input(0), out.shape()),
                                             broadcastTo(*ctx.input(1), out.shape()),
                                             broadcastTo(*ctx.input(2), out.shape())};
  return runMap(cl, ctx.def.name, fn, out.shape(), wholeTensor(out), walked);
}

// ONNX Cast among f32, i64, i32 and bool (convertValue in kernel_helpers.h).
std::string castBody(DType from, DType to) {
  if (from == to) return "r = a0;";
  if (to == DType::Bool) return "r = (uchar)(a0 != 0);";
  if (from == DType::F32) return to == DType::I64 ? "r = k_float_to_long(a0);" : "r = k_float_to_int(a0);";
  if (to == DType::F32) return "r = convert_float(a0);";
  if (from == DType::I64 && to == DType::I32) return "r = k_long_to_int(a0);";
  return cat("r = (", clTypeName(to), ")a0;");  // widening, or from bool (0 or 1)
}

Status castKernel(ClContext& cl, const KernelContext& ctx) {
  const DType from = ctx.input(0)->dtype(), to = ctx.outputs[0]->dtype();
  if (clTypeName(from).empty()) return unsupportedDType(ctx, from);
  if (clTypeName(to).empty()) return unsupportedDType(ctx, to);
  return mapBroadcast(cl, ctx, castBody(from, to), {ctx.input(0)});
}

// clip's body: the bounds present follow x as a1 (and a2).
std::string clipBody(bool hasLow, bool hasHigh) {
  std::string body = "r = a0;";
  if (hasLow) body += " if (r < a1) r = a1;";
  const std::string high = hasLow ? "a2" : "a1";
  if (hasHigh) body += cat(" if (r > ", high, ") r = ", high, ";");
  return body;
}

// clip(x, min?, max?): the bounds are scalars, broadcast.
Status clipKernel(ClContext& cl, const KernelContext& ctx) {
  if (ctx.input(0)->dtype() != DType::F32) return unsupportedDType(ctx, ctx.input(0)->dtype());
  std::vector<const Tensor*> operands = {ctx.input(0)};
  for (size_t bound : {1, 2})
    if (ctx.input(bound)) operands.push_back(ctx.input(bound));
  return mapBroadcast(cl, ctx, clipBody(ctx.input(1) != nullptr, ctx.input(2) != nullptr), operands);
}

std::string geluBody(const Attributes& attrs) {
  return attrs.getString("approximate", "none") == "tanh" ? "r = k_gelu_tanh(a0);" : "r = k_gelu(a0);";
}

Status geluKernel(ClContext& cl, const KernelContext& ctx) {
  if (ctx.input(0)->dtype() != DType::F32) return unsupportedDType(ctx, ctx.input(0)->dtype());
  return mapBroadcast(cl, ctx, geluBody(ctx.attrs), {ctx.input(0)});
}

Status siluKernel(ClContext& cl, const KernelContext& ctx) {
  if (ctx.input(0)->dtype() != DType::F32) return unsupportedDType(ctx, ctx.input(0)->dtype());
  return mapBroadcast(cl, ctx, "r = k_silu(a0);", {ctx.input(0)});
}

constexpr const char* kSwigluBody = "r = k_silu(a0) * a1;";

// swiglu(gate, up) broadcasting, or swiglu(x) on rows packed as gate | up:
// then gate and up are two strided walks of x, the second half a row on.
Status swigluKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& gate = *ctx.input(0);
  if (gate.dtype() != DType::F32) return unsupportedDType(ctx, gate.dtype());
  const char* body = kSwigluBody;
  if (ctx.input(1)) return mapBroadcast(cl, ctx, body, {&gate, ctx.input(1)});
  const Tensor& out = *ctx.outputs[0];
  const std::vector<int64_t> strides = rowMajorStrides(gate.shape());
  const std::vector<StridedTensor> halves = {{&gate, strides, 0}, {&gate, strides, out.shape().back()}};
  return runMap(cl, ctx.def.name, MapFunction{"float", {"float", "float"}, body}, out.shape(), wholeTensor(out),
                halves);
}

// ---- fused_elementwise: the program as OpenCL C, one statement per instruction.

std::string floatLiteral(double value) {
  const auto f = static_cast<float>(value);  // the reference computes in float
  if (std::isnan(f)) return "NAN";
  if (std::isinf(f)) return f > 0 ? "INFINITY" : "(-INFINITY)";
  char text[64];
  std::snprintf(text, sizeof text, "(%af)", static_cast<double>(f));
  return text;
}

// One instruction's value: an infix operator or a call of the prelude's functions.
std::string elementExpression(ElementOp op, const std::string& x, const std::string& y) {
  auto call = [&](const char* name) { return cat(name, "(", x, op == ElementOp::Pow ? cat(", ", y) : "", ")"); };
  switch (op) {
    case ElementOp::Add: return cat(x, " + ", y);
    case ElementOp::Sub: return cat(x, " - ", y);
    case ElementOp::Mul: return cat(x, " * ", y);
    case ElementOp::Div: return cat(x, " / ", y);
    case ElementOp::Pow: return call("pow");
    case ElementOp::Max: return cat("k_max(", x, ", ", y, ")");
    case ElementOp::Min: return cat("k_min(", x, ", ", y, ")");
    case ElementOp::Neg: return cat("-", x);
    case ElementOp::Exp: return call("exp");
    case ElementOp::Log: return call("log");
    case ElementOp::Sqrt: return call("sqrt");
    case ElementOp::Reciprocal: return cat("1.0f / ", x);
    case ElementOp::Tanh: return call("tanh");
    case ElementOp::Erf: return call("erf");
    case ElementOp::Sigmoid: return call("k_sigmoid");
    case ElementOp::Relu: return call("k_relu");
    case ElementOp::Gelu: return call("k_gelu");
    case ElementOp::GeluTanh: return call("k_gelu_tanh");
    case ElementOp::Silu: return call("k_silu");
    // Integer programs: programBody's callers keep them off OpenCL.
    case ElementOp::Abs: case ElementOp::Equal: case ElementOp::Less: case ElementOp::Greater: case ElementOp::Not:
    case ElementOp::And: case ElementOp::Or: case ElementOp::CastI32: case ElementOp::CastI64: case ElementOp::CastBool:
      break;
  }
  return x;
}

std::string programBody(const ElementwiseProgram& program) {
  auto argument = [](const ProgramArg& arg) {
    switch (arg.kind) {
      case ProgramArg::Kind::Operand: return cat("a", arg.index);
      case ProgramArg::Kind::Value: return cat("v", arg.index);
      case ProgramArg::Kind::Literal: break;
    }
    return floatLiteral(arg.literal);
  };
  std::string body;
  for (size_t r = 0; r < program.instructions.size(); ++r) {
    const ProgramInstruction& instruction = program.instructions[r];
    const std::string x = argument(instruction.args[0]);
    const std::string y = instruction.args.size() > 1 ? argument(instruction.args[1]) : "";
    body += cat("const float v", r, " = ", elementExpression(instruction.op, x, y), ";\n  ");
  }
  return body + cat("r = v", program.instructions.size() - 1, ";");
}

Status fusedElementwiseKernel(ClContext& cl, const KernelContext& ctx) {
  const ElementwiseProgram* program = ctx.attrs.getProgram("program");
  if (!program || program->instructions.empty())
    return Status::error(ctx.def.name, ": program \"", ctx.attrs.getString("program"), "\" is not parsed");
  for (const Tensor* input : ctx.inputs)
    if (input->dtype() != DType::F32) return unsupportedDType(ctx, input->dtype());
  return mapBroadcast(cl, ctx, programBody(*program), {ctx.inputs.begin(), ctx.inputs.end()});
}

// ---- The programs each kernel above builds, predicted from the op's types.

// The map of `body` over the result's shape, every operand broadcast to it:
// what mapBroadcast builds.
void broadcastSource(const OpTypes& op, const std::string& body, const std::vector<const ShapedType*>& operands,
                     std::vector<std::string>& sources) {
  const ShapedType& out = op.output(0);
  MapFunction fn{clTypeName(out.dtype), {}, body};
  std::vector<std::vector<int64_t>> strides;
  for (const ShapedType* operand : operands) {
    fn.operandTypes.push_back(clTypeName(operand->dtype));
    strides.push_back(ops::broadcastStrides(operand->shape, out.shape));
    if (fn.operandTypes.back().empty()) return;
  }
  if (body.empty() || fn.resultType.empty() || ops::product(out.shape) == 0) return;
  sources.push_back(mapKernelSource(fn, out.shape, rowMajorStrides(out.shape), strides));
}

// Every operand present, in order.
std::vector<const ShapedType*> presentInputs(const OpTypes& op) {
  std::vector<const ShapedType*> present;
  for (const std::optional<ShapedType>& input : op.inputs)
    if (input) present.push_back(&*input);
  return present;
}

bool allF32(const std::vector<const ShapedType*>& types) {
  return std::all_of(types.begin(), types.end(), [](const ShapedType* t) { return t->dtype == DType::F32; });
}

void variadicSources(const OpTypes& op, std::vector<std::string>& sources) {
  const std::vector<const ShapedType*> in = presentInputs(op);
  if (in.size() == 1) return broadcastSource(op, "r = a0;", in, sources);
  const std::string body = variadicBody(op.def.kind, op.output(0).dtype);
  broadcastSource(op, body, {in[0], in[1]}, sources);
  for (size_t k = 2; k < in.size(); ++k) broadcastSource(op, body, {&op.output(0), in[k]}, sources);
}

void whereSources(const OpTypes& op, std::vector<std::string>& sources) {
  const std::vector<int64_t>& out = op.output(0).shape;
  std::vector<std::vector<int64_t>> strides;
  for (const ShapedType* operand : presentInputs(op)) strides.push_back(ops::broadcastStrides(operand->shape, out));
  if (ops::product(out) > 0)
    sources.push_back(mapKernelSource(whereFunction(op.output(0).dtype), out, rowMajorStrides(out), strides));
}

void swigluSources(const OpTypes& op, std::vector<std::string>& sources) {
  const ShapedType& gate = *op.input(0);
  if (gate.dtype != DType::F32) return;
  if (op.input(1)) return broadcastSource(op, kSwigluBody, {&gate, op.input(1)}, sources);
  const std::vector<int64_t>& out = op.output(0).shape;
  const std::vector<int64_t> strides = rowMajorStrides(gate.shape);
  const std::vector<std::vector<int64_t>> halves = {strides, strides};
  if (ops::product(out) > 0)
    sources.push_back(mapKernelSource(MapFunction{"float", {"float", "float"}, kSwigluBody}, out,
                                      rowMajorStrides(out), halves));
}

// The body of a one-map op of its kind: "" where it has no kernel.
std::string mapBody(const OpTypes& op, const std::vector<const ShapedType*>& in) {
  const DType first = in[0]->dtype;
  switch (op.def.kind) {
    case OpKind::Pow: return allF32(in) ? "r = pow(a0, a1);" : "";
    case OpKind::Cast: return clTypeName(first).empty() ? "" : castBody(first, op.output(0).dtype);
    case OpKind::Clip: return first == DType::F32 ? clipBody(op.input(1), op.input(2)) : "";
    case OpKind::Gelu: return first == DType::F32 ? geluBody(op.attrs) : "";
    case OpKind::Silu: return first == DType::F32 ? "r = k_silu(a0);" : "";
    case OpKind::FusedElementwise: {
      const ElementwiseProgram* program = op.attrs.getProgram("program");
      return program && !program->instructions.empty() && allF32(in) ? programBody(*program) : "";
    }
    default: break;
  }
  return in.size() == 1 ? unaryBody(op.def.kind, first) : binaryBody(op.def.kind, first);
}

void elementwiseSources(const OpTypes& op, std::vector<std::string>& sources) {
  const std::vector<const ShapedType*> in = presentInputs(op);
  if (in.empty()) return;
  switch (op.def.kind) {
    case OpKind::Min:
    case OpKind::Max: return variadicSources(op, sources);
    case OpKind::Where: return whereSources(op, sources);
    case OpKind::Swiglu: return swigluSources(op, sources);
    default: return broadcastSource(op, mapBody(op, in), in, sources);
  }
}

}  // namespace

void addElementwiseKernels(OpenClKernelTable& table) {
  for (OpKind kind : {OpKind::Abs, OpKind::Cos, OpKind::Erf, OpKind::Exp, OpKind::Log, OpKind::Neg, OpKind::Not,
                      OpKind::Reciprocal, OpKind::Relu, OpKind::Sigmoid, OpKind::Sin, OpKind::Sqrt, OpKind::Tanh})
    table.add(kind, unaryKernel, elementwiseSources);
  for (OpKind kind : {OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div, OpKind::Equal, OpKind::Less,
                      OpKind::Greater, OpKind::And, OpKind::Or})
    table.add(kind, binaryKernel, elementwiseSources);
  table.add(OpKind::Pow, powKernel, elementwiseSources);
  table.add(OpKind::Min, variadicKernel, elementwiseSources);
  table.add(OpKind::Max, variadicKernel, elementwiseSources);
  table.add(OpKind::Where, whereKernel, elementwiseSources);
  table.add(OpKind::Cast, castKernel, elementwiseSources);
  table.add(OpKind::Clip, clipKernel, elementwiseSources);
  table.add(OpKind::Gelu, geluKernel, elementwiseSources);
  table.add(OpKind::Silu, siluKernel, elementwiseSources);
  table.add(OpKind::Swiglu, swigluKernel, elementwiseSources);
  table.add(OpKind::FusedElementwise, fusedElementwiseKernel, elementwiseSources);
}

}  // namespace kiln::opencl
