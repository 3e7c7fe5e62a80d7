// fused_elementwise's program: a chain of elementwise float ops written as
// "mul $0 $1; add %0 $2; tanh %1" ($i: operand i, %k: the value of
// instruction k, or a float literal); the last instruction is the result.
// One parser and one op table for inference, the cost model and every
// device's kernel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ir/status.h"

namespace kiln {

enum class ElementOp : uint8_t {
  Add, Sub, Mul, Div, Pow, Max, Min,
  Neg, Exp, Log, Sqrt, Reciprocal, Tanh, Erf, Sigmoid, Relu, Gelu, GeluTanh, Silu
};

std::string_view elementOpName(ElementOp op);  // "gelu_tanh"
size_t elementOpArity(ElementOp op);
// exp, log, tanh, ...: several multiply-adds each, where arithmetic is one.
bool isTranscendental(ElementOp op);

struct ProgramArg {
  enum class Kind : uint8_t { Operand, Value, Literal } kind = Kind::Literal;
  size_t index = 0;  // operand or instruction number
  double literal = 0.0;
};

struct ProgramInstruction {
  ElementOp op = ElementOp::Add;
  std::vector<ProgramArg> args;
};

// A parsed program: the typed value of fused_elementwise's `program`
// attribute (Graph::addOp parses it once; the text form prints `text`).
struct ElementwiseProgram {
  std::string text;  // as written, so the text form round-trips
  std::vector<ProgramInstruction> instructions;
  friend bool operator==(const ElementwiseProgram& a, const ElementwiseProgram& b) { return a.text == b.text; }
};

// Parses and checks a program against the operand count; the error says
// which instruction is wrong and why (the caller names the op).
Expected<ElementwiseProgram> parseElementwiseProgram(std::string_view text, size_t numOperands);

}  // namespace kiln
