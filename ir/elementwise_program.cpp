#include "ir/elementwise_program.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <cstdlib>
#include <optional>
#include <string>

namespace kiln {
namespace {

struct ElementOpSpec {
  std::string_view name;
  ElementOp op;
  size_t arity;
};

// In ElementOp's order.
constexpr ElementOpSpec kElementOps[] = {
    {"add", ElementOp::Add, 2},        {"sub", ElementOp::Sub, 2},
    {"mul", ElementOp::Mul, 2},        {"div", ElementOp::Div, 2},
    {"pow", ElementOp::Pow, 2},        {"max", ElementOp::Max, 2},
    {"min", ElementOp::Min, 2},        {"neg", ElementOp::Neg, 1},
    {"exp", ElementOp::Exp, 1},        {"log", ElementOp::Log, 1},
    {"sqrt", ElementOp::Sqrt, 1},      {"reciprocal", ElementOp::Reciprocal, 1},
    {"tanh", ElementOp::Tanh, 1},      {"erf", ElementOp::Erf, 1},
    {"sigmoid", ElementOp::Sigmoid, 1}, {"relu", ElementOp::Relu, 1},
    {"gelu", ElementOp::Gelu, 1},      {"gelu_tanh", ElementOp::GeluTanh, 1},
    {"silu", ElementOp::Silu, 1},
    {"abs", ElementOp::Abs, 1},        {"equal", ElementOp::Equal, 2},
    {"less", ElementOp::Less, 2},      {"greater", ElementOp::Greater, 2},
    {"not", ElementOp::Not, 1},        {"and", ElementOp::And, 2},
    {"or", ElementOp::Or, 2},          {"cast_i32", ElementOp::CastI32, 1},
    {"cast_i64", ElementOp::CastI64, 1}, {"cast_bool", ElementOp::CastBool, 1},
};

const ElementOpSpec& specOf(ElementOp op) { return kElementOps[static_cast<size_t>(op)]; }

std::vector<std::string_view> splitOn(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i)
    if (i == text.size() || text[i] == separator) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  return parts;
}

std::vector<std::string_view> words(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    const size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

// A non-negative decimal index ("12"), or nullopt.
std::optional<size_t> parseIndex(std::string_view text) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  size_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<size_t>(c - '0');
  }
  return value;
}

}  // namespace

std::string_view elementOpName(ElementOp op) { return specOf(op).name; }
size_t elementOpArity(ElementOp op) { return specOf(op).arity; }

bool isTranscendental(ElementOp op) {
  switch (op) {
    case ElementOp::Exp: case ElementOp::Log: case ElementOp::Sqrt: case ElementOp::Pow:
    case ElementOp::Tanh: case ElementOp::Erf: case ElementOp::Sigmoid: case ElementOp::Gelu:
    case ElementOp::GeluTanh: case ElementOp::Silu:
      return true;
    default:
      return false;
  }
}

bool isIndexOp(ElementOp op) { return op >= ElementOp::Abs; }

Expected<ElementwiseProgram> parseElementwiseProgram(std::string_view program, size_t numOperands) {
  ElementwiseProgram parsed{std::string(program), {}};
  std::vector<ProgramInstruction>& instructions = parsed.instructions;
  const std::vector<std::string_view> lines = splitOn(program, ';');
  for (size_t n = 0; n < lines.size(); ++n) {
    const std::vector<std::string_view> tokens = words(lines[n]);
    std::string text;
    for (std::string_view token : tokens) {
      if (!text.empty()) text += ' ';
      text.append(token);
    }
    auto fail = [&](const auto&... parts) {
      return Status::error("program instruction ", n, " (\"", text, "\"): ", parts...);
    };
    if (tokens.empty()) return fail("is empty");
    const ElementOpSpec* spec = nullptr;
    for (const ElementOpSpec& candidate : kElementOps)
      if (candidate.name == tokens[0]) spec = &candidate;
    if (!spec) return fail("unknown op \"", tokens[0], "\"");
    if (tokens.size() - 1 != spec->arity)
      return fail(spec->name, " takes ", spec->arity, spec->arity == 1 ? " argument" : " arguments", ", got ",
                  tokens.size() - 1);
    ProgramInstruction instruction{spec->op, {}};
    for (size_t t = 1; t < tokens.size(); ++t) {
      const std::string_view token = tokens[t];
      ProgramArg arg{ProgramArg::Kind::Literal};
      if (token[0] == '$' || token[0] == '%') {
        const std::optional<size_t> index = parseIndex(token.substr(1));
        if (!index) return fail("bad argument \"", token, "\"");
        arg.index = *index;
        if (token[0] == '$') {
          arg.kind = ProgramArg::Kind::Operand;
          if (*index >= numOperands)
            return fail("\"", token, "\" names operand ", *index, " of ", numOperands);
        } else {
          arg.kind = ProgramArg::Kind::Value;
          if (*index >= n) return fail("\"", token, "\" is not the value of an earlier instruction");
        }
      } else {
        const std::string text(token);
        char* end = nullptr;
        arg.literal = std::strtod(text.c_str(), &end);
        if (end != text.c_str() + text.size())
          return fail("bad argument \"", token, "\" (expected $operand, %instruction or a number)");
      }
      instruction.args.push_back(arg);
    }
    instructions.push_back(std::move(instruction));
  }
  return parsed;
}

namespace {

// The dtype an integer-program instruction gives for the dtypes of its
// non-literal arguments (a literal takes theirs); nullopt when they do not
// fit it.
std::optional<DType> indexResult(ElementOp op, const std::vector<DType>& args) {
  if (args.empty() || std::adjacent_find(args.begin(), args.end(), std::not_equal_to<>()) != args.end())
    return std::nullopt;
  const DType shared = args.front();
  const bool logical = shared == DType::Bool;
  switch (op) {
    case ElementOp::Add: case ElementOp::Sub: case ElementOp::Mul: case ElementOp::Max: case ElementOp::Min:
    case ElementOp::Neg: case ElementOp::Abs:
      if (logical) return std::nullopt;
      return shared;
    case ElementOp::Equal: case ElementOp::Less: case ElementOp::Greater:
      return DType::Bool;
    case ElementOp::Not: case ElementOp::And: case ElementOp::Or:
      if (!logical) return std::nullopt;
      return DType::Bool;
    case ElementOp::CastI32: return DType::I32;
    case ElementOp::CastI64: return DType::I64;
    case ElementOp::CastBool: return DType::Bool;
    default: return std::nullopt;  // float ops
  }
}

}  // namespace

Expected<std::vector<DType>> programDTypes(const std::vector<ProgramInstruction>& program,
                                          const std::vector<DType>& operands) {
  if (operands.empty()) return Status::error("a program needs at least one operand");
  const bool floats = isFloat(operands[0]);
  for (DType d : operands)
    if (floats ? d != operands[0] : (isFloat(d) || (d != DType::Bool && !isInteger(d))))
      return Status::error("operands must share one float dtype, or all be integers or bools; got ",
                           dtypeName(operands[0]), " and ", dtypeName(d));
  std::vector<DType> values;
  for (size_t n = 0; n < program.size(); ++n) {
    const ProgramInstruction& instruction = program[n];
    const std::string name(elementOpName(instruction.op));
    if (floats) {
      if (isIndexOp(instruction.op))
        return Status::error("program instruction ", n, " (", name, ") takes integers or bools, not ",
                             dtypeName(operands[0]));
      values.push_back(operands[0]);
      continue;
    }
    std::vector<DType> args;
    for (const ProgramArg& arg : instruction.args) {
      if (arg.kind == ProgramArg::Kind::Literal) {
        if (arg.literal != static_cast<double>(static_cast<int64_t>(arg.literal)))
          return Status::error("program instruction ", n, " (", name, "): an integer program's literal ",
                               arg.literal, " is not an integer");
      } else {
        args.push_back(arg.kind == ProgramArg::Kind::Operand ? operands[arg.index] : values[arg.index]);
      }
    }
    std::optional<DType> result = indexResult(instruction.op, args);
    if (!result)
      return Status::error("program instruction ", n, " (", name, ") does not take these integer or bool arguments");
    values.push_back(*result);
  }
  return values;
}

}  // namespace kiln
