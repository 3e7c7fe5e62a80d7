// fused_elementwise's program: a chain of elementwise ops written as
// "mul $0 $1; add %0 $2; tanh %1" ($i: operand i, %k: the value of
// instruction k, or a number literal); the last instruction is the result.
// A program computes either in one float dtype (its operands') or on
// integers and bools (index arithmetic: the integer ops, comparisons,
// logic and casts between integer dtypes).
// One parser and one op table for inference, the cost model and every
// device's kernel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ir/dtype.h"
#include "ir/status.h"

namespace kiln {

enum class ElementOp : uint8_t {
  Add, Sub, Mul, Div, Pow, Max, Min,
  Neg, Exp, Log, Sqrt, Reciprocal, Tanh, Erf, Sigmoid, Relu, Gelu, GeluTanh, Silu,
  // Integers and bools only.
  Abs, Equal, Less, Greater, Not, And, Or, CastI32, CastI64, CastBool
};

std::string_view elementOpName(ElementOp op);  // "gelu_tanh"
size_t elementOpArity(ElementOp op);
// exp, log, tanh, ...: several multiply-adds each, where arithmetic is one.
bool isTranscendental(ElementOp op);
// Abs and after: the ops of integer programs only.
bool isIndexOp(ElementOp op);

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

// The dtype of each instruction's value for operands of `operands` dtypes:
// a float program's operands share one float dtype, which every value has;
// an integer program's operands are integers or bools, its arithmetic keeps
// its arguments' (shared) dtype, comparisons and logic give bool, casts their
// dtype, and its literals are integers. The error names the instruction.
Expected<std::vector<DType>> programDTypes(const std::vector<ProgramInstruction>& program,
                                          const std::vector<DType>& operands);

}  // namespace kiln
