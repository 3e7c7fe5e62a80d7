#include "backends/kernel_gen/elementwise_bodies.h"

#include <algorithm>
#include <cmath>
#include <span>
#include <cstdio>

#include "backends/reference/kernel_helpers.h"
#include "ir/status.h"

namespace kiln::kernelgen {
namespace {

bool isIntegerDType(DType dtype) { return dtype == DType::I64 || dtype == DType::I32; }

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

}  // namespace


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
    const std::string negated = cat("k_sub_", scalarType(dtype), "(0, a0)");
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
    return cat("r = k_", name, "_", scalarType(dtype), "(a0, a1);");
  }
  return "";
}

// min or max of a0 and a1; "" for a dtype without a kernel.
std::string variadicBody(OpKind kind, DType dtype) {
  const bool isMin = kind == OpKind::Min;
  if (dtype == DType::F32) return isMin ? "r = k_min(a0, a1);" : "r = k_max(a0, a1);";
  if (isIntegerDType(dtype)) return isMin ? "r = a1 < a0 ? a1 : a0;" : "r = a0 < a1 ? a1 : a0;";
  return "";
}

// where moves whole elements as words of their size.
MapFunction whereFunction(DType dtype) {
  const std::string word = wordType(dtypeSize(dtype));
  return {word, {"uchar", word, word}, "r = a0 ? a1 : a2;"};
}

// ONNX Cast among f32, i64, i32 and bool (convertValue in kernel_helpers.h).
std::string castBody(DType from, DType to) {
  if (from == to) return "r = a0;";
  if (to == DType::Bool) return "r = (uchar)(a0 != 0);";
  if (from == DType::F32) return to == DType::I64 ? "r = k_float_to_long(a0);" : "r = k_float_to_int(a0);";
  if (to == DType::F32) return "r = convert_float(a0);";
  if (from == DType::I64 && to == DType::I32) return "r = k_long_to_int(a0);";
  return cat("r = (", scalarType(to), ")a0;");  // widening, or from bool (0 or 1)
}

// clip's body: the bounds present follow x as a1 (and a2).
std::string clipBody(bool hasLow, bool hasHigh) {
  std::string body = "r = a0;";
  if (hasLow) body += " if (r < a1) r = a1;";
  const std::string high = hasLow ? "a2" : "a1";
  if (hasHigh) body += cat(" if (r > ", high, ") r = ", high, ";");
  return body;
}

std::string geluBody(const Attributes& attrs) {
  return attrs.getString("approximate", "none") == "tanh" ? "r = k_gelu_tanh(a0);" : "r = k_gelu(a0);";
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

namespace {

constexpr OpKind kUnary[] = {OpKind::Abs, OpKind::Cos,        OpKind::Erf,  OpKind::Exp,     OpKind::Log,
                             OpKind::Neg, OpKind::Not,        OpKind::Reciprocal, OpKind::Relu, OpKind::Sigmoid,
                             OpKind::Sin, OpKind::Sqrt,       OpKind::Tanh};
constexpr OpKind kBinary[] = {OpKind::Add,   OpKind::Sub,  OpKind::Mul,     OpKind::Div, OpKind::Equal,
                              OpKind::Less,  OpKind::Greater, OpKind::And, OpKind::Or};
constexpr OpKind kOthers[] = {OpKind::Pow,  OpKind::Min,  OpKind::Max,    OpKind::Where,  OpKind::Cast,
                              OpKind::Clip, OpKind::Gelu, OpKind::Silu, OpKind::Swiglu, OpKind::FusedElementwise};

bool among(OpKind kind, std::span<const OpKind> kinds) { return std::ranges::find(kinds, kind) != kinds.end(); }

using Walk = MapOperand::Walk;

// The present operands: their indices and dtypes, in order.
struct Present {
  std::vector<size_t> index;
  std::vector<DType> dtype;
};

Present present(const std::vector<std::optional<DType>>& inputs) {
  Present p;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i]) {
      p.index.push_back(i);
      p.dtype.push_back(*inputs[i]);
    }
  return p;
}

// One step of `body` over these operands (dtypes beside them); none when a
// type or the body is missing.
std::vector<MapStep> single(DType result, const std::vector<MapOperand>& operands, const std::vector<DType>& dtypes,
                            const std::string& body) {
  MapStep step{{scalarType(result), {}, body}, operands};
  for (DType d : dtypes) step.fn.operandTypes.push_back(scalarType(d));
  const bool typed = !step.fn.resultType.empty() && std::ranges::none_of(step.fn.operandTypes, &std::string::empty);
  return typed && !body.empty() ? std::vector<MapStep>{step} : std::vector<MapStep>{};
}

// Every present operand broadcast to the result.
std::vector<MapStep> broadcast(DType result, const Present& in, const std::string& body) {
  std::vector<MapOperand> operands;
  for (size_t i : in.index) operands.push_back({Walk::Broadcast, i});
  return single(result, operands, in.dtype, body);
}

bool allF32(const std::vector<DType>& dtypes) {
  return std::ranges::all_of(dtypes, [](DType d) { return d == DType::F32; });
}

std::vector<MapStep> variadicSteps(OpKind kind, const Present& in, DType output) {
  const std::string body = variadicBody(kind, output);
  if (body.empty()) return {};
  if (in.index.size() == 1) return broadcast(output, in, "r = a0;");
  std::vector<MapStep> steps = single(output, {{Walk::Broadcast, in.index[0]}, {Walk::Broadcast, in.index[1]}},
                                      {in.dtype[0], in.dtype[1]}, body);
  for (size_t k = 2; k < in.index.size() && !steps.empty(); ++k) {
    std::vector<MapStep> next =
        single(output, {{Walk::Result, 0}, {Walk::Broadcast, in.index[k]}}, {output, in.dtype[k]}, body);
    if (next.empty()) return {};
    steps.push_back(next[0]);
  }
  return steps;
}

std::vector<MapStep> swigluSteps(const Present& in, DType output) {
  if (in.index.size() == 2) return broadcast(output, in, kSwigluBody);
  return single(output, {{Walk::FirstHalf, in.index[0]}, {Walk::SecondHalf, in.index[0]}}, {in.dtype[0], in.dtype[0]},
                kSwigluBody);
}

}  // namespace

std::vector<int64_t> walkStrides(const MapOperand& operand, const std::vector<int64_t>& input,
                                 const std::vector<int64_t>& result) {
  switch (operand.walk) {
    case MapOperand::Walk::Result: return rowMajorStrides(result);
    case MapOperand::Walk::FirstHalf:
    case MapOperand::Walk::SecondHalf: return rowMajorStrides(input);
    case MapOperand::Walk::Broadcast: break;
  }
  return ops::broadcastStrides(input, result);
}

StridedTensor walkTensor(const MapOperand& operand, std::span<const Tensor* const> inputs, const Tensor& out) {
  const Tensor& walked = operand.walk == MapOperand::Walk::Result ? out : *inputs[operand.input];
  // The second half of rows packed as gate | up starts a result row on.
  const int64_t offset = operand.walk == MapOperand::Walk::SecondHalf && !out.shape().empty() ? out.shape().back() : 0;
  return {&walked, walkStrides(operand, walked.shape(), out.shape()), offset};
}

std::vector<std::optional<DType>> operandDtypes(std::span<const Tensor* const> inputs) {
  std::vector<std::optional<DType>> dtypes;
  for (const Tensor* input : inputs) dtypes.push_back(input ? std::optional<DType>(input->dtype()) : std::nullopt);
  return dtypes;
}

bool isElementwise(OpKind kind) { return among(kind, kUnary) || among(kind, kBinary) || among(kind, kOthers); }

std::vector<MapStep> elementwiseSteps(OpKind kind, const Attributes& attrs,
                                      const std::vector<std::optional<DType>>& inputs, DType output) {
  const Present in = present(inputs);
  if (in.index.empty()) return {};
  const bool f32 = allF32(in.dtype);
  const std::vector<MapStep> none;
  switch (kind) {
    case OpKind::Pow: return f32 ? broadcast(output, in, "r = pow(a0, a1);") : none;
    case OpKind::Min:
    case OpKind::Max: return variadicSteps(kind, in, output);
    case OpKind::Where: {
      MapStep step{whereFunction(output), {}};
      for (size_t i : in.index) step.operands.push_back({Walk::Broadcast, i});
      return {step};
    }
    case OpKind::Cast: return broadcast(output, in, castBody(in.dtype[0], output));
    case OpKind::Clip:
      return f32 ? broadcast(output, in, clipBody(inputs.size() > 1 && inputs[1], inputs.size() > 2 && inputs[2]))
                 : none;
    case OpKind::Gelu: return f32 ? broadcast(output, in, geluBody(attrs)) : none;
    case OpKind::Silu: return f32 ? broadcast(output, in, kSiluBody) : none;
    case OpKind::Swiglu: return f32 ? swigluSteps(in, output) : none;
    case OpKind::FusedElementwise: {
      const ElementwiseProgram* program = attrs.getProgram("program");
      if (!program || program->instructions.empty() || !f32) return none;
      return broadcast(output, in, programBody(*program));
    }
    default: break;
  }
  if (among(kind, kUnary)) return broadcast(output, in, unaryBody(kind, in.dtype[0]));
  if (among(kind, kBinary)) return broadcast(output, in, binaryBody(kind, in.dtype[0]));
  return none;
}

}  // namespace kiln::kernelgen
