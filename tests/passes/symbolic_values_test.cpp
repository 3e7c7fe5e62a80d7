// The symbolic values of shape arithmetic (passes/symbolic_values.h): dims
// compared only when the order holds for every binding, and each op family
// evaluated element by element on hand-computed inputs.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ir/op_registry.h"
#include "passes/symbolic_values.h"
#include "tests/unit/op_test_support.h"

namespace kiln {
namespace {

using namespace testsupport;

SymbolicTensor vec(std::vector<Dim> elements, DType dtype = DType::I64) {
  const auto n = static_cast<int64_t>(elements.size());
  return SymbolicTensor{dtype, {n}, std::move(elements)};
}
SymbolicTensor scalar(Dim element) { return SymbolicTensor{DType::I64, {}, {std::move(element)}}; }

std::string text(const std::optional<SymbolicTensor>& value) {
  if (!value) return "(not known)";
  std::string out = "[";
  for (size_t i = 0; i < value->elements.size(); ++i) out += (i ? ", " : "") + value->elements[i].str();
  return out + "]";
}

// Evaluates `name` on operands given as (type, value or null) with the
// result type `result`.
struct Input {
  TensorType type;
  const SymbolicTensor* value = nullptr;
};
Input of(const SymbolicTensor& v) {
  Shape shape(v.shape.begin(), v.shape.end());
  return {{v.dtype, shape}, &v};
}

std::string evaluate(std::string_view name, const std::vector<Input>& inputs, const TensorType& result,
                     Attributes attrs = {}) {
  Op op;
  op.def = OpRegistry::global().find(name);
  op.attrs = std::move(attrs);
  op.results = {0};
  std::vector<const TensorType*> types;
  std::vector<const SymbolicTensor*> values;
  for (const Input& in : inputs) {
    op.operands.push_back(static_cast<ValueId>(op.operands.size() + 1));
    types.push_back(&in.type);
    values.push_back(in.value);
  }
  return text(evaluateSymbolic(op, types, values, result));
}

TEST(CompareDims, DecidesOnlyWhatHoldsForEveryBinding) {
  EXPECT_EQ(compareDims(kSeq, kSeq), 0);
  EXPECT_EQ(compareDims(kSeq + 1, kSeq), 1);
  EXPECT_EQ(compareDims(kSeq, Dim(-1)), 1);  // a dim is never negative
  EXPECT_EQ(compareDims(Dim(-1), kPast + kSeq), -1);
  EXPECT_EQ(compareDims(kPast + kSeq, kSeq), std::nullopt);  // past may be 0
  EXPECT_EQ(compareDims(kSeq, Dim(1)), std::nullopt);        // seq may be 0, 1 or more
  EXPECT_EQ(compareDims(kSeq, kBatch), std::nullopt);
  EXPECT_EQ(compareDims(Dim::unknown(), Dim(0)), std::nullopt);
}

TEST(EvaluateSymbolic, ShapeGatherConcat) {
  const TensorType x = {DType::F32, {kBatch, kSeq, 128}};
  EXPECT_EQ(evaluate("shape", {{x}}, {DType::I64, {3}}), "[batch, seq, 128]");
  Attributes window;
  window.set("start", int64_t{-2});
  EXPECT_EQ(evaluate("shape", {{x}}, {DType::I64, {2}}, window), "[seq, 128]");
  EXPECT_EQ(evaluate("size", {{x}}, {DType::I64, {}}), "[128*batch*seq]");

  const SymbolicTensor dims = vec({kBatch, kSeq, 128});
  const SymbolicTensor index = scalar(-2);
  Attributes axis0;
  axis0.set("axis", int64_t{0});
  EXPECT_EQ(evaluate("gather", {of(dims), of(index)}, {DType::I64, {}}, axis0), "[seq]");
  // Indices that are not numbers give nothing.
  const SymbolicTensor symbolicIndex = scalar(kSeq);
  EXPECT_EQ(evaluate("gather", {of(dims), of(symbolicIndex)}, {DType::I64, {}}, axis0), "(not known)");

  const SymbolicTensor heads = vec({8, 16});
  const SymbolicTensor batch = vec({kBatch});
  EXPECT_EQ(evaluate("concat", {of(batch), of(heads)}, {DType::I64, {3}}, axis0), "[batch, 8, 16]");
}

TEST(EvaluateSymbolic, Arithmetic) {
  const SymbolicTensor seqPast = vec({kSeq, kPast});
  const SymbolicTensor one = scalar(1);
  EXPECT_EQ(evaluate("add", {of(seqPast), of(one)}, {DType::I64, {2}}), "[seq + 1, past + 1]");
  EXPECT_EQ(evaluate("sub", {of(seqPast), of(one)}, {DType::I64, {2}}), "[seq - 1, past - 1]");
  const SymbolicTensor twice = vec({kSeq * 2, 7, -7});
  const SymbolicTensor two = scalar(2);
  // Exact division of polynomials; numbers truncate toward zero.
  EXPECT_EQ(evaluate("div", {of(twice), of(two)}, {DType::I64, {3}}), "[seq, 3, -3]");
  const SymbolicTensor odd = vec({kSeq + 1});
  EXPECT_EQ(evaluate("div", {of(odd), of(two)}, {DType::I64, {1}}), "[?]");
  const SymbolicTensor bounds = vec({kSeq, kSeq + 2});
  const SymbolicTensor cap = scalar(kSeq + 1);
  EXPECT_EQ(evaluate("min", {of(bounds), of(cap)}, {DType::I64, {2}}), "[seq, seq + 1]");
  EXPECT_EQ(evaluate("max", {of(bounds), of(cap)}, {DType::I64, {2}}), "[seq + 1, seq + 2]");
}

TEST(EvaluateSymbolic, EqualWhereAndCasts) {
  // The exporters' expand target: where(shape == -1, 1, shape).
  const SymbolicTensor wanted = vec({kBatch, 2, -1});
  const SymbolicTensor minusOnes = vec({-1, -1, -1});
  const TensorType bools = {DType::Bool, {3}};
  EXPECT_EQ(evaluate("equal", {of(wanted), of(minusOnes)}, bools), "[0, 0, 1]");
  const SymbolicTensor condition = vec({0, 0, 1}, DType::Bool);
  const SymbolicTensor ones = vec({1, 1, 1});
  EXPECT_EQ(evaluate("where", {of(condition), of(ones), of(wanted)}, {DType::I64, {3}}), "[batch, 2, 1]");
  // seq == 1 depends on the binding.
  const SymbolicTensor seq = vec({kSeq});
  const SymbolicTensor unit = vec({1});
  EXPECT_EQ(evaluate("equal", {of(seq), of(unit)}, {DType::Bool, {1}}), "[?]");
  EXPECT_EQ(evaluate("greater", {of(seq), of(minusOnes)}, bools), "[1, 1, 1]");

  Attributes toI32;
  toI32.set("to", std::string("i32"));
  EXPECT_EQ(evaluate("cast", {of(wanted)}, {DType::I32, {3}}, toI32), "[batch, 2, -1]");
  Attributes toBool;
  toBool.set("to", std::string("bool"));
  const SymbolicTensor mixed = vec({kSeq + 1, 0, kSeq});
  EXPECT_EQ(evaluate("cast", {of(mixed)}, bools, toBool), "[1, 0, ?]");
}

TEST(EvaluateSymbolic, ViewsSlicesAndFills) {
  const SymbolicTensor dims = vec({kBatch, kSeq, 8, 16});
  const SymbolicTensor axes = vec({0});
  EXPECT_EQ(evaluate("unsqueeze", {of(dims), of(axes)}, {DType::I64, {1, 4}}), "[batch, seq, 8, 16]");
  const SymbolicTensor starts = vec({1}), ends = vec({-1});
  EXPECT_EQ(evaluate("slice", {of(dims), of(starts), of(ends)}, {DType::I64, {2}}), "[seq, 8]");
  const SymbolicTensor backStart = vec({-1}), backEnd = vec({-100}), sliceAxes = vec({0}), steps = vec({-2});
  EXPECT_EQ(evaluate("slice", {of(dims), of(backStart), of(backEnd), of(sliceAxes), of(steps)}, {DType::I64, {2}}),
            "[16, seq]");
  Attributes fill;
  fill.set("value", 1.0);
  fill.set("dtype", std::string("i64"));
  const SymbolicTensor shape = vec({2});
  EXPECT_EQ(evaluate("constant_of_shape", {of(shape)}, {DType::I64, {2}}, fill), "[1, 1]");
  const SymbolicTensor row = vec({kSeq, 1});
  EXPECT_EQ(evaluate("expand", {of(row), of(shape)}, {DType::I64, {2, 2}}), "[seq, 1, seq, 1]");
  // Results that are float, large or of unknown shape are not tracked.
  EXPECT_EQ(evaluate("identity", {of(dims)}, {DType::F32, {4}}), "(not known)");
  EXPECT_EQ(evaluate("identity", {of(dims)}, {DType::I64, {kSeq}}), "(not known)");
}

TEST(SymbolicTensor, ConstantsBecomeTensors) {
  const SymbolicTensor value = vec({4, -1, 16}, DType::I32);
  EXPECT_TRUE(value.isConstant());
  const Tensor t = value.toTensor();
  EXPECT_EQ(t.dtype(), DType::I32);
  EXPECT_EQ(t.toInts(), (std::vector<int64_t>{4, -1, 16}));
  std::optional<SymbolicTensor> back = symbolicFromTensor(t);
  ASSERT_TRUE(back);
  EXPECT_EQ(text(back), "[4, -1, 16]");
  EXPECT_FALSE(vec({kSeq}).isConstant());
  EXPECT_FALSE(vec({Dim::unknown()}).complete());
}

}  // namespace
}  // namespace kiln
