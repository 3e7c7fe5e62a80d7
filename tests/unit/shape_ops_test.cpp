// The shape and data-movement ops (ir/ops/shape_ops.cpp and
// backends/reference/shape_ops.cpp): reference kernels against
// hand-computed values (through evaluateOp), type inference on
// symbolic shapes with and without known operand values, and the errors for
// bad operands.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "ir/op_registry.h"
#include "ir/tensor.h"
#include "tests/unit/op_test_support.h"

namespace kiln {
namespace {

using namespace testsupport;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

// 0, 1, 2, ... in the given shape.
Tensor iota(std::vector<int64_t> shape) {
  Tensor t = Tensor::allocate(DType::F32, std::move(shape));
  for (int64_t i = 0; i < t.numElements(); ++i) t.data<float>()[i] = static_cast<float>(i);
  return t;
}
// A 1-D i64 tensor (scalar when `scalar`); int64 values must not pass through double.
Tensor ints(const std::vector<int64_t>& values) { return i64({static_cast<int64_t>(values.size())}, values); }
Tensor scalarInt(int64_t value) { return ints({value}).reshaped({}); }

using Shape64 = std::vector<int64_t>;
using Values = std::vector<double>;

#define EXPECT_ERROR(message, fragment) \
  EXPECT_NE((message).find(fragment), std::string::npos) << (message)

// An operand for inference: a type, and the value when it is known.
struct Operand {
  TensorType type;
  const Tensor* value = nullptr;
};
Operand known(const Tensor& t) { return {t.type(), &t}; }

// The inferred result types as text ("f32[batch, 8]; f32[?]"), or the error;
// `bindings` are the run's symbol values (none at compile time).
std::string inferred(std::string_view op, const std::vector<Operand>& inputs, const Attributes& attrs = {},
                     int numResults = 1, const SymbolBindings* bindings = nullptr) {
  std::vector<OperandInfo> operands;
  for (const Operand& in : inputs) operands.push_back({&in.type, in.value});
  std::vector<TensorType> results;
  Status status =
      inferResultTypes(*OpRegistry::global().find(op), attrs, operands, numResults, results, bindings);
  if (!status) return status.message();
  std::string out;
  for (const TensorType& t : results) out += (out.empty() ? "" : "; ") + t.str();
  return out;
}

// ---- reshape

TEST(ReshapeOp, MinusOneAndZero) {
  Tensor x = iota({2, 3, 4});
  Tensor shape = ints({0, -1});
  Tensor y = run("reshape", {&x, &shape});
  EXPECT_EQ(y.shape(), (Shape64{2, 12}));
  EXPECT_EQ(valuesOf(y), valuesOf(x));
  Tensor shape2 = ints({4, 0, -1});  // 0 copies dim 1 (3)
  EXPECT_EQ(run("reshape", {&x, &shape2}).shape(), (Shape64{4, 3, 2}));
  Tensor flat = ints({24});
  EXPECT_EQ(run("reshape", {&x, &flat}).shape(), (Shape64{24}));
}

TEST(ReshapeOp, AllowZeroKeepsZeros) {
  Tensor x = Tensor::allocate(DType::F32, {0, 3, 4});
  Tensor shape = ints({3, 4, 0});
  EXPECT_EQ(run("reshape", {&x, &shape}, attrs({{"allowzero", true}})).shape(), (Shape64{3, 4, 0}));
  // Without allowzero the trailing 0 would copy dim 2 (4): 48 elements from 0.
  EXPECT_ERROR(errorOf("reshape", {&x, &shape}), "cannot reshape [0, 3, 4] (0 elements) to [3, 4, 4]");
  Tensor both = ints({0, -1});
  EXPECT_ERROR(errorOf("reshape", {&x, &both}, attrs({{"allowzero", true}})), "both 0 and -1");
}

TEST(ReshapeOp, Errors) {
  Tensor x = iota({2, 3});
  Tensor twoMinus = ints({-1, -1});
  EXPECT_ERROR(errorOf("reshape", {&x, &twoMinus}), "more than one -1");
  Tensor wrong = ints({4, -1});
  EXPECT_ERROR(errorOf("reshape", {&x, &wrong}), "6 is not a multiple of 4");
  Tensor beyond = ints({2, 3, 0});
  EXPECT_ERROR(errorOf("reshape", {&x, &beyond}), "copies dim 2 (a 0) but the input [2, 3] has rank 2");
  Tensor negative = ints({-2, 3});
  EXPECT_ERROR(errorOf("reshape", {&x, &negative}), "negative dim -2");
  Tensor floats = f32({2}, {3, 2});
  EXPECT_ERROR(errorOf("reshape", {&x, &floats}), "shape must be an i64 or i32 tensor");
}

TEST(ReshapeOp, InfersSymbolicShapes) {
  const TensorType x = {DType::F32, {kBatch, kSeq, 128}};
  Tensor heads = ints({0, 0, 8, -1});
  EXPECT_EQ(inferred("reshape", {{x}, known(heads)}), "f32[batch, seq, 8, 16]");
  Tensor rows = ints({-1, 128});
  EXPECT_EQ(inferred("reshape", {{x}, known(rows)}), "f32[batch*seq, 128]");
  // -1 by polynomial long division: batch*(seq + past)*128 / (batch*(seq + past)*8).
  const TensorType cache = {DType::F32, {kBatch, kSeq + kPast, 128}};
  EXPECT_EQ(inferred("reshape", {{cache}, known(heads)}), "f32[batch, past + seq, 8, 16]");
  Tensor merge = ints({0, -1, 64});
  EXPECT_EQ(inferred("reshape", {{cache}, known(merge)}), "f32[batch, 2*past + 2*seq, 64]");
  // 3*seq / 2 is not a polynomial with integer coefficients.
  Tensor halves = ints({2, -1});
  EXPECT_EQ(inferred("reshape", {{{DType::F32, {kSeq, 3}}}, known(halves)}), "f32[2, ?]");
  // An unknown shape value still fixes the rank.
  EXPECT_EQ(inferred("reshape", {{x}, {{DType::I64, {3}}}}), "f32[?, ?, ?]");
  EXPECT_ERROR(inferred("reshape", {{x}, {{DType::I64, {kSeq}}}}), "must be static");
}

// ---- transpose

TEST(TransposeOp, DefaultReversesDims) {
  Tensor x = iota({2, 3});
  Tensor y = run("transpose", {&x});
  EXPECT_EQ(y.shape(), (Shape64{3, 2}));
  EXPECT_EQ(valuesOf(y), (Values{0, 3, 1, 4, 2, 5}));
}

TEST(TransposeOp, Permutations) {
  Tensor x = iota({2, 2, 3});
  Tensor y = run("transpose", {&x}, attrs({{"perm", std::vector<int64_t>{1, 0, 2}}}));
  EXPECT_EQ(y.shape(), (Shape64{2, 2, 3}));
  EXPECT_EQ(valuesOf(y), (Values{0, 1, 2, 6, 7, 8, 3, 4, 5, 9, 10, 11}));
  Tensor z = run("transpose", {&x}, attrs({{"perm", std::vector<int64_t>{2, 0, 1}}}));
  EXPECT_EQ(z.shape(), (Shape64{3, 2, 2}));
  EXPECT_EQ(valuesOf(z), (Values{0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11}));
  Tensor scalar = f32({}, {5});
  EXPECT_EQ(valuesOf(run("transpose", {&scalar})), (Values{5}));
}

TEST(TransposeOp, InferenceAndErrors) {
  const TensorType x = {DType::F16, {kBatch, kSeq, 4, 16}};
  EXPECT_EQ(inferred("transpose", {{x}}, attrs({{"perm", std::vector<int64_t>{0, 2, 1, 3}}})),
            "f16[batch, 4, seq, 16]");
  EXPECT_EQ(inferred("transpose", {{x}}), "f16[16, 4, seq, batch]");
  EXPECT_ERROR(inferred("transpose", {{x}}, attrs({{"perm", std::vector<int64_t>{0, 1, 1, 2}}})),
               "names axis 1 more than once");
  EXPECT_ERROR(inferred("transpose", {{x}}, attrs({{"perm", std::vector<int64_t>{0, 1}}})),
               "perm [0, 1] has 2 entries for rank 4");
  EXPECT_ERROR(inferred("transpose", {{x}}, attrs({{"perm", std::vector<int64_t>{0, 1, 2, 4}}})),
               "perm[3] = 4 is out of range for rank 4");
}

// ---- flatten

TEST(FlattenOp, Axes) {
  Tensor x = iota({2, 3, 4});
  EXPECT_EQ(run("flatten", {&x}).shape(), (Shape64{2, 12}));
  EXPECT_EQ(run("flatten", {&x}, attrs({{"axis", int64_t{0}}})).shape(), (Shape64{1, 24}));
  EXPECT_EQ(run("flatten", {&x}, attrs({{"axis", int64_t{3}}})).shape(), (Shape64{24, 1}));
  Tensor y = run("flatten", {&x}, attrs({{"axis", int64_t{-1}}}));
  EXPECT_EQ(y.shape(), (Shape64{6, 4}));
  EXPECT_EQ(valuesOf(y), valuesOf(x));
  EXPECT_ERROR(errorOf("flatten", {&x}, attrs({{"axis", int64_t{4}}})), "axis = 4 is out of range for rank 3");
  EXPECT_EQ(inferred("flatten", {{{DType::F32, {kBatch, kSeq, 4}}}}), "f32[batch, 4*seq]");
}

// ---- squeeze / unsqueeze

TEST(SqueezeOp, WithAndWithoutAxes) {
  Tensor x = iota({1, 3, 1, 2});
  Tensor axes = ints({0, -2});
  Tensor y = run("squeeze", {&x, &axes});
  EXPECT_EQ(y.shape(), (Shape64{3, 2}));
  EXPECT_EQ(valuesOf(y), valuesOf(x));
  EXPECT_EQ(run("squeeze", {&x}).shape(), (Shape64{3, 2}));
  Tensor first = ints({0});
  EXPECT_EQ(run("squeeze", {&x, &first}).shape(), (Shape64{3, 1, 2}));
  Tensor notOne = ints({1});
  EXPECT_ERROR(errorOf("squeeze", {&x, &notOne}), "cannot squeeze axis 1 of [1, 3, 1, 2]: its size is 3, not 1");
}

TEST(SqueezeOp, SymbolicDims) {
  const TensorType x = {DType::F32, {kBatch, 1, kSeq}};
  Tensor axes = ints({1});
  EXPECT_EQ(inferred("squeeze", {{x}, known(axes)}), "f32[batch, seq]");
  EXPECT_EQ(inferred("squeeze", {{x}, {{DType::I64, {1}}}}), "f32[?, ?]");
  // Without axes a symbolic dim might be 1, which would change the rank.
  EXPECT_ERROR(inferred("squeeze", {{x}}), "dim 0 (batch) might or might not be squeezed");
}

TEST(UnsqueezeOp, InsertsOnes) {
  Tensor x = iota({3, 4});
  Tensor axes = ints({3, 0});  // unsorted; positions in the result
  Tensor y = run("unsqueeze", {&x, &axes});
  EXPECT_EQ(y.shape(), (Shape64{1, 3, 4, 1}));
  EXPECT_EQ(valuesOf(y), valuesOf(x));
  Tensor last = ints({-1});
  EXPECT_EQ(run("unsqueeze", {&x, &last}).shape(), (Shape64{3, 4, 1}));
  Tensor middle = ints({1, 2});
  EXPECT_EQ(run("unsqueeze", {&x, &middle}).shape(), (Shape64{3, 1, 1, 4}));
  Tensor scalar = f32({}, {7});
  Tensor zero = ints({0});
  EXPECT_EQ(run("unsqueeze", {&scalar, &zero}).shape(), (Shape64{1}));
  Tensor twice = ints({0, 0});
  EXPECT_ERROR(errorOf("unsqueeze", {&x, &twice}), "names axis 0 more than once");
  Tensor far = ints({4});
  EXPECT_ERROR(errorOf("unsqueeze", {&x, &far}), "axes[0] = 4 is out of range for rank 3");
  EXPECT_EQ(inferred("unsqueeze", {{{DType::F32, {kBatch, kSeq}}}, known(middle)}), "f32[batch, 1, 1, seq]");
}

// ---- concat

TEST(ConcatOp, Values) {
  Tensor a = f32({2, 1}, {1, 2});
  Tensor b = f32({2, 2}, {3, 4, 5, 6});
  Tensor y = run("concat", {&a, &b}, attrs({{"axis", int64_t{1}}}));
  EXPECT_EQ(y.shape(), (Shape64{2, 3}));
  EXPECT_EQ(valuesOf(y), (Values{1, 3, 4, 2, 5, 6}));
  Tensor c = f32({1, 2}, {7, 8});
  Tensor z = run("concat", {&b, &c}, attrs({{"axis", int64_t{-2}}}));
  EXPECT_EQ(z.shape(), (Shape64{3, 2}));
  EXPECT_EQ(valuesOf(z), (Values{3, 4, 5, 6, 7, 8}));
  Tensor empty = f32({0, 2}, {});
  EXPECT_EQ(valuesOf(run("concat", {&empty, &c, &empty}, attrs({{"axis", int64_t{0}}}))), (Values{7, 8}));
}

TEST(ConcatOp, InferenceAndErrors) {
  EXPECT_EQ(inferred("concat", {{{DType::F32, {kBatch, kPast, 8}}}, {{DType::F32, {kBatch, kSeq, 8}}}},
                     attrs({{"axis", int64_t{1}}})),
            "f32[batch, past + seq, 8]");
  // A dim that is unknown in one operand takes the other's.
  EXPECT_EQ(inferred("concat", {{{DType::F32, {Dim::unknown(), 2}}}, {{DType::F32, {kBatch, 3}}}},
                     attrs({{"axis", int64_t{1}}})),
            "f32[batch, 5]");
  Tensor a = f32({2, 1}, {1, 2});
  Tensor b = f32({3, 1}, {3, 4, 5});
  EXPECT_ERROR(errorOf("concat", {&a, &b}, attrs({{"axis", int64_t{1}}})),
               "operand 1 has [3, 1] which differs in dim 0 from [2, 1]");
  Tensor i = make(DType::I64, {2, 1}, {1, 2});
  EXPECT_ERROR(errorOf("concat", {&a, &i}, attrs({{"axis", int64_t{0}}})), "same dtype");
  EXPECT_ERROR(errorOf("concat", {&a, &b}), "requires attribute 'axis'");
}

// ---- split

TEST(SplitOp, EqualParts) {
  Tensor x = f32({6}, {1, 2, 3, 4, 5, 6});
  std::vector<Tensor> parts = runAll("split", {&x}, {}, 3);
  EXPECT_EQ(valuesOf(parts[0]), (Values{1, 2}));
  EXPECT_EQ(valuesOf(parts[1]), (Values{3, 4}));
  EXPECT_EQ(valuesOf(parts[2]), (Values{5, 6}));
  // Uneven: the last part is smaller (opset 18), also with num_outputs.
  Tensor seven = f32({7}, {1, 2, 3, 4, 5, 6, 7});
  std::vector<Tensor> uneven = runAll("split", {&seven}, attrs({{"num_outputs", int64_t{3}}}), 3);
  EXPECT_EQ(valuesOf(uneven[0]), (Values{1, 2, 3}));
  EXPECT_EQ(valuesOf(uneven[1]), (Values{4, 5, 6}));
  EXPECT_EQ(valuesOf(uneven[2]), (Values{7}));
}

TEST(SplitOp, GivenSizesAlongAnAxis) {
  Tensor x = iota({2, 6});
  Tensor sizes = ints({2, 4});
  std::vector<Tensor> parts = runAll("split", {&x, &sizes}, attrs({{"axis", int64_t{-1}}}), 2);
  EXPECT_EQ(parts[0].shape(), (Shape64{2, 2}));
  EXPECT_EQ(valuesOf(parts[0]), (Values{0, 1, 6, 7}));
  EXPECT_EQ(parts[1].shape(), (Shape64{2, 4}));
  EXPECT_EQ(valuesOf(parts[1]), (Values{2, 3, 4, 5, 8, 9, 10, 11}));
  Tensor empty = f32({0}, {});
  Tensor zeros = ints({0, 0, 0});
  for (const Tensor& part : runAll("split", {&empty, &zeros}, {}, 3)) EXPECT_EQ(part.shape(), (Shape64{0}));
}

TEST(SplitOp, Errors) {
  Tensor x = f32({6}, {1, 2, 3, 4, 5, 6});
  Tensor sizes = ints({2, 3});
  EXPECT_ERROR(errorOf("split", {&x, &sizes}, {}, 2), "split [2, 3] sums to 5, but dim 0 of [6] is 6");
  EXPECT_ERROR(errorOf("split", {&x, &sizes}, {}, 3), "split has 2 sizes for 3 results");
  EXPECT_ERROR(errorOf("split", {&x}, attrs({{"num_outputs", int64_t{2}}}), 3),
               "num_outputs = 2 but the op has 3 results");
  Tensor two = f32({2}, {1, 2});
  EXPECT_ERROR(errorOf("split", {&two}, {}, 4), "cannot split dim 0 of [2] (2) into 4 parts");
}

TEST(SplitOp, SymbolicDims) {
  EXPECT_EQ(inferred("split", {{{DType::F32, {kBatch, 2 * kSeq}}}}, attrs({{"axis", int64_t{1}}}), 2),
            "f32[batch, seq]; f32[batch, seq]");
  EXPECT_EQ(inferred("split", {{{DType::F32, {kSeq, 4}}}}, {}, 2), "f32[?, 4]; f32[?, 4]");
  Tensor sizes = ints({1, 3});
  EXPECT_EQ(inferred("split", {{{DType::F32, {kSeq, 4}}}, known(sizes)}, attrs({{"axis", int64_t{1}}}), 2),
            "f32[seq, 1]; f32[seq, 3]");
  EXPECT_EQ(inferred("split", {{{DType::F32, {kSeq, 4}}}, {{DType::I64, {2}}}}, {}, 2), "f32[?, 4]; f32[?, 4]");
}

// ---- slice

TEST(SliceOp, ForwardAndBackward) {
  Tensor x = f32({5}, {0, 1, 2, 3, 4});
  Tensor start4 = ints({4}), startMinus2 = ints({-2}), start0 = ints({0});
  Tensor endMin = ints({kMin}), endMax = ints({kMax}), end5 = ints({5});
  Tensor backwards = ints({-1}), byTwo = ints({2}), byMinusTwo = ints({-2});
  Tensor axis0 = ints({0});
  EXPECT_EQ(valuesOf(run("slice", {&x, &start4, &endMin, &axis0, &backwards})), (Values{4, 3, 2, 1, 0}));
  EXPECT_EQ(valuesOf(run("slice", {&x, &startMinus2, &endMax})), (Values{3, 4}));
  EXPECT_EQ(valuesOf(run("slice", {&x, &start0, &end5, nullptr, &byTwo})), (Values{0, 2, 4}));
  EXPECT_EQ(valuesOf(run("slice", {&x, &endMax, &endMin, nullptr, &byMinusTwo})), (Values{4, 2, 0}));
  Tensor far = ints({1000});
  EXPECT_EQ(run("slice", {&x, &far, &far}).shape(), (Shape64{0}));
  Tensor start1 = ints({1}), endMinus1 = ints({-1});
  EXPECT_EQ(valuesOf(run("slice", {&x, &start1, &endMinus1})), (Values{1, 2, 3}));
}

TEST(SliceOp, AxesAndSteps) {
  Tensor x = iota({3, 4});
  Tensor starts = ints({1}), ends = ints({3}), axes = ints({-1});
  Tensor y = run("slice", {&x, &starts, &ends, &axes});
  EXPECT_EQ(y.shape(), (Shape64{3, 2}));
  EXPECT_EQ(valuesOf(y), (Values{1, 2, 5, 6, 9, 10}));
  // Both axes, reversed rows, every other column: ONNX's test_slice_neg_steps pattern.
  Tensor starts2 = ints({10, 3}), ends2 = ints({0, 0}), axes2 = ints({0, 1}), steps2 = ints({-1, -2});
  Tensor z = run("slice", {&x, &starts2, &ends2, &axes2, &steps2});
  EXPECT_EQ(z.shape(), (Shape64{2, 2}));
  EXPECT_EQ(valuesOf(z), (Values{11, 9, 7, 5}));
  Tensor i32Starts = make(DType::I32, {1}, {2}), i32Ends = make(DType::I32, {1}, {3});
  EXPECT_EQ(valuesOf(run("slice", {&x, &i32Starts, &i32Ends})), (Values{8, 9, 10, 11}));
}

TEST(SliceOp, Errors) {
  Tensor x = iota({3, 4});
  Tensor starts = ints({0}), ends = ints({2}), zero = ints({0});
  EXPECT_ERROR(errorOf("slice", {&x, &starts, &ends, nullptr, &zero}), "has a 0 step");
  Tensor twoEnds = ints({2, 2});
  EXPECT_ERROR(errorOf("slice", {&x, &starts, &twoEnds}), "starts [0] and ends [2, 2] differ in length");
  Tensor twoStarts = ints({0, 0}), repeated = ints({1, -1});
  EXPECT_ERROR(errorOf("slice", {&x, &twoStarts, &twoEnds, &repeated}), "names axis 1 more than once");
  Tensor badAxis = ints({2});
  EXPECT_ERROR(errorOf("slice", {&x, &starts, &ends, &badAxis}), "axes[0] = 2 is out of range for rank 2");
}

TEST(SliceOp, SymbolicDims) {
  auto sliced = [](const Dim& dim, int64_t start, int64_t end, int64_t step) {
    Tensor s = ints({start}), e = ints({end}), a = ints({0}), st = ints({step});
    return inferred("slice", {{{DType::F32, {dim, 8}}}, known(s), known(e), known(a), known(st)});
  };
  EXPECT_EQ(sliced(kSeq, 0, kMax, 1), "f32[seq, 8]");
  EXPECT_EQ(sliced(kSeq, -1, kMin, -1), "f32[seq, 8]");
  EXPECT_EQ(sliced(kSeq, kMax, kMin, -1), "f32[seq, 8]");
  EXPECT_EQ(sliced(2 * kSeq, 0, kMax, 2), "f32[seq, 8]");
  EXPECT_EQ(sliced(kSeq + 4, 0, 4, 1), "f32[4, 8]");    // seq + 4 >= 4 always
  EXPECT_EQ(sliced(kSeq + 4, 2, kMax, 1), "f32[seq + 2, 8]");
  EXPECT_EQ(sliced(kSeq + 1, 0, -1, 1), "f32[seq, 8]");
  EXPECT_EQ(sliced(kSeq + 3, -2, kMin, -1), "f32[seq + 2, 8]");
  // Not knowable: seq may be smaller than the bound, or odd.
  EXPECT_EQ(sliced(kSeq, 0, 4, 1), "f32[?, 8]");
  EXPECT_EQ(sliced(kSeq, 1, kMax, 1), "f32[?, 8]");
  EXPECT_EQ(sliced(kSeq, 0, kMax, 2), "f32[?, 8]");
  EXPECT_EQ(sliced(kSeq, 0, kMin, -1), "f32[?, 8]");
  // Unknown values: the sliced axes become `?`.
  const TensorType x = {DType::F32, {kBatch, kSeq, 8}};
  const TensorType bound = {DType::I64, {1}};
  Tensor axis1 = ints({1});
  EXPECT_EQ(inferred("slice", {{x}, {bound}, {bound}, known(axis1)}), "f32[batch, ?, 8]");
  EXPECT_EQ(inferred("slice", {{x}, {bound}, {bound}}), "f32[?, seq, 8]");
  EXPECT_EQ(inferred("slice", {{x}, {bound}, {bound}, {bound}}), "f32[?, ?, ?]");
}

// ---- gather

TEST(GatherOp, RowsWithNegativeAndScalarIndices) {
  Tensor data = iota({3, 2});
  Tensor indices = ints({2, -3});
  Tensor y = run("gather", {&data, &indices});
  EXPECT_EQ(y.shape(), (Shape64{2, 2}));
  EXPECT_EQ(valuesOf(y), (Values{4, 5, 0, 1}));
  Tensor one = scalarInt(1);
  Tensor row = run("gather", {&data, &one});
  EXPECT_EQ(row.shape(), (Shape64{2}));
  EXPECT_EQ(valuesOf(row), (Values{2, 3}));
}

TEST(GatherOp, ColumnsWithMatrixIndices) {
  Tensor data = iota({2, 3});
  Tensor indices = make(DType::I32, {2, 2}, {0, 2, -1, 1});
  Tensor y = run("gather", {&data, &indices}, attrs({{"axis", int64_t{1}}}));
  EXPECT_EQ(y.shape(), (Shape64{2, 2, 2}));
  EXPECT_EQ(valuesOf(y), (Values{0, 2, 2, 1, 3, 5, 5, 4}));
}

TEST(GatherOp, InferenceAndErrors) {
  EXPECT_EQ(inferred("gather", {{{DType::F32, {1000, 64}}}, {{DType::I64, {kBatch, kSeq}}}}),
            "f32[batch, seq, 64]");
  EXPECT_EQ(inferred("gather", {{{DType::F32, {kBatch, kSeq, 64}}}, {{DType::I64, {}}}},
                     attrs({{"axis", int64_t{1}}})),
            "f32[batch, 64]");
  Tensor data = iota({3, 2});
  Tensor outside = ints({0, 3});
  EXPECT_ERROR(errorOf("gather", {&data, &outside}), "index 3 is out of range for axis 0 of size 3");
  Tensor belowRange = ints({-4});
  EXPECT_ERROR(errorOf("gather", {&data, &belowRange}), "index -4 is out of range");
  Tensor floats = f32({1}, {0});
  EXPECT_ERROR(errorOf("gather", {&data, &floats}), "indices must be an i64 or i32 tensor");
  Tensor indices = ints({0});
  EXPECT_ERROR(errorOf("gather", {&data, &indices}, attrs({{"axis", int64_t{2}}})), "axis = 2 is out of range");
}

// ---- expand

TEST(ExpandOp, BroadcastsBothWays) {
  Tensor x = f32({3, 1}, {1, 2, 3});
  Tensor shape = ints({2, 1, 2});
  Tensor y = run("expand", {&x, &shape});
  EXPECT_EQ(y.shape(), (Shape64{2, 3, 2}));
  EXPECT_EQ(valuesOf(y), (Values{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}));
  // A shape with fewer dims keeps x's.
  Tensor row = f32({1, 3}, {1, 2, 3});
  Tensor shorter = ints({3});
  EXPECT_EQ(valuesOf(run("expand", {&row, &shorter})), (Values{1, 2, 3}));
  Tensor same = ints({2, 3});
  EXPECT_EQ(valuesOf(run("expand", {&row, &same})), (Values{1, 2, 3, 1, 2, 3}));
  Tensor wider = ints({2});
  EXPECT_EQ(valuesOf(run("expand", {&x, &wider})), (Values{1, 1, 2, 2, 3, 3}));
  Tensor bad = ints({2, 2});
  EXPECT_ERROR(errorOf("expand", {&x, &bad}), "cannot expand [3, 1] to [2, 2]");
}

TEST(ExpandOp, SymbolicDims) {
  Tensor shape = ints({1, 1, 4});
  EXPECT_EQ(inferred("expand", {{{DType::F32, {kBatch, kSeq, 1}}}, known(shape)}), "f32[batch, seq, 4]");
  EXPECT_EQ(inferred("expand", {{{DType::F32, {3, 1}}}, {{DType::I64, {3}}}}), "f32[?, 3, ?]");
}

// ---- shape / size

TEST(ShapeOp, Windows) {
  Tensor x = iota({2, 3, 4});
  EXPECT_EQ(valuesOf(run("shape", {&x})), (Values{2, 3, 4}));
  EXPECT_EQ(valuesOf(run("shape", {&x}, attrs({{"start", int64_t{1}}}))), (Values{3, 4}));
  EXPECT_EQ(valuesOf(run("shape", {&x}, attrs({{"end", int64_t{-1}}}))), (Values{2, 3}));
  EXPECT_EQ(valuesOf(run("shape", {&x}, attrs({{"start", int64_t{-10}}}))), (Values{2, 3, 4}));
  EXPECT_EQ(valuesOf(run("shape", {&x}, attrs({{"end", int64_t{10}}}))), (Values{2, 3, 4}));
  EXPECT_EQ(run("shape", {&x}, attrs({{"start", int64_t{2}}, {"end", int64_t{1}}})).shape(), (Shape64{0}));
  EXPECT_EQ(run("shape", {&x}).dtype(), DType::I64);
  EXPECT_EQ(inferred("shape", {{{DType::F32, {kBatch, kSeq, 8}}}}, attrs({{"start", int64_t{1}}})), "i64[2]");
}

TEST(SizeOp, CountsElements) {
  Tensor x = iota({2, 3});
  Tensor y = run("size", {&x});
  EXPECT_EQ(y.dtype(), DType::I64);
  EXPECT_EQ(y.shape(), (Shape64{}));
  EXPECT_EQ(valuesOf(y), (Values{6}));
  EXPECT_EQ(inferred("size", {{{DType::F32, {kBatch, kSeq}}}}), "i64[]");
}

// ---- constant_of_shape

TEST(ConstantOfShapeOp, FillsWithValue) {
  Tensor shape = ints({2, 3});
  Tensor y = run("constant_of_shape", {&shape}, attrs({{"value", 1.5}}));
  EXPECT_EQ(y.dtype(), DType::F32);
  EXPECT_EQ(valuesOf(y), (Values{1.5, 1.5, 1.5, 1.5, 1.5, 1.5}));
  Tensor z = run("constant_of_shape", {&shape}, attrs({{"dtype", std::string("i64")}, {"value", int64_t{7}}}));
  EXPECT_EQ(z.dtype(), DType::I64);
  EXPECT_EQ(valuesOf(z), (Values{7, 7, 7, 7, 7, 7}));
  EXPECT_EQ(valuesOf(run("constant_of_shape", {&shape})), (Values{0, 0, 0, 0, 0, 0}));
  Tensor zero = ints({0});
  EXPECT_EQ(run("constant_of_shape", {&zero}, attrs({{"dtype", std::string("i32")}})).shape(), (Shape64{0}));
  Tensor none = ints({});
  EXPECT_EQ(run("constant_of_shape", {&none}).shape(), (Shape64{}));
}

TEST(ConstantOfShapeOp, InferenceAndErrors) {
  EXPECT_EQ(inferred("constant_of_shape", {{{DType::I64, {2}}}}, attrs({{"dtype", std::string("bool")}})),
            "bool[?, ?]");
  Tensor shape = ints({2});
  EXPECT_ERROR(errorOf("constant_of_shape", {&shape}, attrs({{"dtype", std::string("f128")}})),
               "unknown dtype \"f128\"");
  Tensor negative = ints({-1});
  EXPECT_ERROR(errorOf("constant_of_shape", {&negative}), "negative dim");
}

// ---- range

TEST(RangeOp, FloatAndIntegerRanges) {
  Tensor start = f32({}, {1}), limit = f32({}, {5}), delta = f32({}, {2});
  Tensor y = run("range", {&start, &limit, &delta});
  EXPECT_EQ(y.dtype(), DType::F32);
  EXPECT_EQ(valuesOf(y), (Values{1, 3}));
  Tensor s = make(DType::I32, {}, {10}), l = make(DType::I32, {}, {6}), d = make(DType::I32, {}, {-3});
  Tensor down = run("range", {&s, &l, &d});
  EXPECT_EQ(down.dtype(), DType::I32);
  EXPECT_EQ(valuesOf(down), (Values{10, 7}));
  Tensor s64 = scalarInt(0), l64 = scalarInt(5), d64 = scalarInt(1);
  EXPECT_EQ(valuesOf(run("range", {&s64, &l64, &d64})), (Values{0, 1, 2, 3, 4}));
  EXPECT_EQ(run("range", {&l64, &s64, &d64}).shape(), (Shape64{0}));
  Tensor fraction = f32({}, {0.5});
  Tensor zeroStart = f32({}, {0});
  EXPECT_EQ(valuesOf(run("range", {&zeroStart, &delta, &fraction})), (Values{0, 0.5, 1, 1.5}));
}

TEST(RangeOp, InferenceAndErrors) {
  Tensor s = scalarInt(0), d = scalarInt(1);
  EXPECT_EQ(inferred("range", {known(s), {{DType::I64, {}}}, known(d)}), "i64[?]");
  Tensor l = scalarInt(4);
  EXPECT_EQ(inferred("range", {known(s), known(l), known(d)}), "i64[4]");
  Tensor zero = scalarInt(0);
  EXPECT_ERROR(errorOf("range", {&s, &l, &zero}), "delta must not be 0");
  Tensor f = f32({}, {1});
  EXPECT_ERROR(errorOf("range", {&s, &f, &d}), "same dtype");
  Tensor vector = ints({0, 1});
  EXPECT_ERROR(errorOf("range", {&vector, &l, &d}), "start must be a scalar");
}

// ---- dim-list attribute forms (the folded shape arithmetic)

using Dims = std::vector<Dim>;
// A run binding batch = 2, seq = 3, past = 5.
const SymbolBindings kRun = {{"batch", 2}, {"seq", 3}, {"past", 5}};

TEST(ReshapeOp, ShapeAttribute) {
  const TensorType x = {DType::F32, {kBatch, kSeq, 128}};
  const Attributes heads = attrs({{"shape", Dims{kBatch, kSeq, 4, 32}}});
  EXPECT_EQ(inferred("reshape", {{x}}, heads), "f32[batch, seq, 4, 32]");
  // At run time the symbols resolve, on the concrete input type.
  EXPECT_EQ(inferred("reshape", {{{DType::F32, {2, 3, 128}}}}, heads, 1, &kRun), "f32[2, 3, 4, 32]");
  EXPECT_ERROR(inferred("reshape", {{{DType::F32, {2, 3, 128}}}}, attrs({{"shape", Dims{kBatch, kSeq, 4, 16}}}),
                        1, &kRun),
               "cannot reshape [2, 3, 128] (768 elements) to [2, 3, 4, 16] (384 elements)");
  // The dims are literal: 0 is a zero-size dim, not a copy.
  EXPECT_EQ(inferred("reshape", {{{DType::F32, {0, 4}}}}, attrs({{"shape", std::vector<int64_t>{2, 0}}})),
            "f32[2, 0]");
  Tensor data = iota({2, 3});
  Tensor y = run("reshape", {&data}, attrs({{"shape", std::vector<int64_t>{3, 2}}}));
  EXPECT_EQ(y.shape(), (Shape64{3, 2}));
  EXPECT_EQ(valuesOf(y), valuesOf(data));
  Tensor shape = ints({3, 2});
  EXPECT_ERROR(errorOf("reshape", {&data, &shape}, attrs({{"shape", std::vector<int64_t>{3, 2}}})),
               "not both");
  EXPECT_ERROR(errorOf("reshape", {&data}), "needs a shape operand or a shape attribute");
  EXPECT_ERROR(errorOf("reshape", {&data}, attrs({{"shape", std::vector<int64_t>{-1, 2}}})),
               "negative or unknown dim");
}

TEST(ExpandOp, ShapeAttribute) {
  const Attributes repeat = attrs({{"shape", Dims{kBatch, 2, 4, kPast + kSeq, 16}}});
  EXPECT_EQ(inferred("expand", {{{DType::F32, {kBatch, 2, 1, kPast + kSeq, 16}}}}, repeat),
            "f32[batch, 2, 4, past + seq, 16]");
  EXPECT_EQ(inferred("expand", {{{DType::F32, {2, 2, 1, 8, 16}}}}, repeat, 1, &kRun), "f32[2, 2, 4, 8, 16]");
  Tensor x = f32({3, 1}, {1, 2, 3});
  Tensor y = run("expand", {&x}, attrs({{"shape", std::vector<int64_t>{3, 2}}}));
  EXPECT_EQ(valuesOf(y), (Values{1, 1, 2, 2, 3, 3}));
  EXPECT_ERROR(errorOf("expand", {&x}, attrs({{"shape", std::vector<int64_t>{2, 2}}})),
               "cannot expand [3, 1] to [2, 2]");
}

TEST(ConstantOfShapeOp, ShapeAttribute) {
  const Attributes fill = attrs({{"shape", Dims{kBatch, kPast + kSeq}}, {"value", 2.0}});
  EXPECT_EQ(inferred("constant_of_shape", {}, fill), "f32[batch, past + seq]");
  EXPECT_EQ(inferred("constant_of_shape", {}, fill, 1, &kRun), "f32[2, 8]");
  Tensor y = run("constant_of_shape", {}, attrs({{"shape", std::vector<int64_t>{2, 2}}, {"value", 3.0}}));
  EXPECT_EQ(y.shape(), (Shape64{2, 2}));
  EXPECT_EQ(valuesOf(y), (Values{3, 3, 3, 3}));
  EXPECT_ERROR(errorOf("constant_of_shape", {}), "needs a shape operand or a shape attribute");
}

TEST(RangeOp, DimBounds) {
  const Attributes positions = attrs({{"start", Dims{kPast}}, {"limit", Dims{kPast + kSeq}}});
  EXPECT_EQ(inferred("range", {}, positions), "i64[seq]");
  EXPECT_EQ(inferred("range", {}, positions, 1, &kRun), "i64[3]");
  // seq / 2 rounds up, which no polynomial says; 2*seq / 2 is exact.
  EXPECT_EQ(inferred("range", {}, attrs({{"start", Dims{0}}, {"limit", Dims{kSeq}}, {"delta", int64_t{2}}})),
            "i64[?]");
  EXPECT_EQ(inferred("range", {},
                     attrs({{"start", Dims{0}}, {"limit", Dims{kSeq * 2}}, {"delta", int64_t{2}},
                            {"dtype", std::string("i32")}})),
            "i32[seq]");
  EXPECT_EQ(inferred("range", {}, attrs({{"start", Dims{kSeq}}, {"limit", Dims{0}}, {"delta", int64_t{-1}}})),
            "i64[seq]");
  // The kernel reads the bounds the executor has resolved.
  Tensor y = run("range", {}, attrs({{"start", Dims{5}}, {"limit", Dims{8}}}));
  EXPECT_EQ(y.dtype(), DType::I64);
  EXPECT_EQ(valuesOf(y), (Values{5, 6, 7}));
  Tensor down = run("range", {}, attrs({{"start", Dims{4}}, {"limit", Dims{0}}, {"delta", int64_t{-2}},
                                        {"dtype", std::string("i32")}}));
  EXPECT_EQ(down.dtype(), DType::I32);
  EXPECT_EQ(valuesOf(down), (Values{4, 2}));
  EXPECT_ERROR(inferred("range", {}, attrs({{"start", Dims{0}}, {"limit", Dims{kSeq}}, {"delta", int64_t{0}}})),
               "delta must not be 0");
  EXPECT_ERROR(inferred("range", {}, attrs({{"start", Dims{0}}, {"limit", Dims{kSeq}},
                                            {"dtype", std::string("f32")}})),
               "i64 or i32");
  EXPECT_ERROR(inferred("range", {}, attrs({{"start", Dims{0}}})), "start = [dim] and limit = [dim]");
  Tensor s = scalarInt(0), l = scalarInt(4), d = scalarInt(1);
  EXPECT_ERROR(errorOf("range", {&s, &l, &d}, positions), "not both");
  EXPECT_ERROR(errorOf("range", {&s, &l}), "needs start, limit and delta operands");
}

TEST(SliceOp, DimBounds) {
  // The new rows of a KV cache: [past, past + seq) of past + seq.
  const Attributes latest = attrs({{"axes", std::vector<int64_t>{1}}, {"starts", Dims{kPast}},
                                   {"ends", Dims{kPast + kSeq}}});
  EXPECT_EQ(inferred("slice", {{{DType::F32, {kBatch, kPast + kSeq, 16}}}}, latest), "f32[batch, seq, 16]");
  EXPECT_EQ(inferred("slice", {{{DType::F32, {2, 8, 16}}}}, latest, 1, &kRun), "f32[2, 3, 16]");
  // A symbolic bound past a constant dim is assumed in range at compile
  // time; at run time it is clamped as ONNX does, and the executor's check of
  // the declared type reports a model that breaks the assumption.
  const Attributes rows = attrs({{"axes", std::vector<int64_t>{0}}, {"starts", Dims{0}}, {"ends", Dims{kSeq}}});
  EXPECT_EQ(inferred("slice", {{{DType::F32, {64, 8}}}}, rows), "f32[seq, 8]");
  const SymbolBindings longRun = {{"seq", 100}};
  EXPECT_EQ(inferred("slice", {{{DType::F32, {64, 8}}}}, rows, 1, &longRun), "f32[64, 8]");
  // Without axes the bounds cover the leading dims; symbolic bounds that
  // may be negative are not guessed.
  EXPECT_EQ(inferred("slice", {{{DType::F32, {kSeq, 8}}}}, attrs({{"starts", Dims{0, 2}}, {"ends", Dims{kSeq, 6}}})),
            "f32[seq, 4]");
  EXPECT_EQ(inferred("slice", {{{DType::F32, {kSeq, 8}}}},
                     attrs({{"axes", std::vector<int64_t>{0}}, {"starts", Dims{kSeq - 2}}, {"ends", Dims{kSeq}}})),
            "f32[?, 8]");
  Tensor x = iota({4, 3});
  Tensor y = run("slice", {&x}, attrs({{"axes", std::vector<int64_t>{0}}, {"starts", Dims{1}}, {"ends", Dims{3}}}));
  EXPECT_EQ(y.shape(), (Shape64{2, 3}));
  EXPECT_EQ(valuesOf(y), (Values{3, 4, 5, 6, 7, 8}));
  Tensor strided = run("slice", {&x}, attrs({{"axes", std::vector<int64_t>{1}}, {"starts", Dims{0}},
                                             {"ends", Dims{3}}, {"steps", std::vector<int64_t>{2}}}));
  EXPECT_EQ(valuesOf(strided), (Values{0, 2, 3, 5, 6, 8, 9, 11}));
  // Unresolved symbols cannot run.
  EXPECT_ERROR(errorOf("slice", {&x}, rows), "result shape [seq, 3] is not concrete");
  EXPECT_ERROR(errorOf("slice", {&x}, attrs({{"starts", Dims{0}}})), "needs both the starts and the ends attribute");
  Tensor starts = ints({0}), ends = ints({1});
  EXPECT_ERROR(errorOf("slice", {&x, &starts, &ends}, attrs({{"axes", std::vector<int64_t>{0}}})), "not both");
  EXPECT_ERROR(errorOf("slice", {&x}), "needs starts and ends operands or attributes");
}

// ---- patches

TEST(PatchesOp, CutsTheImageIntoRowsOfPatches) {
  // One image of 2 channels, 2x4, in 2x2 patches: two patches, each its
  // channel 0 rows then its channel 1 rows.
  std::vector<double> pixels(16);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<double>(i);
  Tensor x = f32({1, 2, 2, 4}, pixels);
  Tensor y = run("patches", {&x}, attrs({{"size", std::vector<int64_t>{2, 2}}}));
  EXPECT_EQ(y.shape(), (Shape64{1, 2, 8}));
  EXPECT_EQ(valuesOf(y), (Values{0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15}));
}

TEST(PatchesOp, InferenceAndErrors) {
  const Attributes eights = attrs({{"size", std::vector<int64_t>{8, 8}}});
  EXPECT_EQ(inferred("patches", {{{DType::F32, {kBatch, 3, 32, 32}}}}, eights), "f32[batch, 16, 192]");
  EXPECT_TRUE(inferred("patches", {{{DType::F32, {kBatch, 3, 30, 32}}}}, eights).find(
                  "the image's height 30 does not split into patches of 8") != std::string::npos);
  EXPECT_TRUE(inferred("patches", {{{DType::F32, {kBatch, 3, 32}}}}, eights).find("x must be an image batch") !=
              std::string::npos);
  EXPECT_TRUE(inferred("patches", {{{DType::F32, {kBatch, 3, 32, 32}}}}, attrs({{"size", std::vector<int64_t>{8}}}))
                  .find("needs size = [kh, kw]") != std::string::npos);
}

// ---- trilu

TEST(TriluOp, UpperAndLower) {
  Tensor x = f32({3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  EXPECT_EQ(valuesOf(run("trilu", {&x})), (Values{1, 2, 3, 0, 5, 6, 0, 0, 9}));
  Tensor one = scalarInt(1);
  EXPECT_EQ(valuesOf(run("trilu", {&x, &one})), (Values{0, 2, 3, 0, 0, 6, 0, 0, 0}));
  Tensor minusOne = scalarInt(-1);
  EXPECT_EQ(valuesOf(run("trilu", {&x, &minusOne}, attrs({{"upper", false}}))), (Values{0, 0, 0, 4, 0, 0, 7, 8, 0}));
  EXPECT_EQ(valuesOf(run("trilu", {&x}, attrs({{"upper", int64_t{0}}}))), (Values{1, 0, 0, 4, 5, 0, 7, 8, 9}));
}

TEST(TriluOp, KOutOfRangeAndBatches) {
  Tensor x = make(DType::I64, {2, 2, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  Tensor far = scalarInt(6);
  EXPECT_EQ(valuesOf(run("trilu", {&x, &far})), Values(12, 0));
  EXPECT_EQ(valuesOf(run("trilu", {&x, &far}, attrs({{"upper", false}}))), valuesOf(x));
  Tensor farBelow = scalarInt(-7);
  EXPECT_EQ(valuesOf(run("trilu", {&x, &farBelow}, attrs({{"upper", false}}))), Values(12, 0));
  Tensor one = scalarInt(1);
  EXPECT_EQ(valuesOf(run("trilu", {&x, &one})), (Values{0, 2, 3, 0, 0, 6, 0, 8, 9, 0, 0, 12}));
  Tensor empty = Tensor::allocate(DType::I64, {3, 0, 5});
  EXPECT_EQ(run("trilu", {&empty, &far}).shape(), (Shape64{3, 0, 5}));
}

TEST(TriluOp, InferenceAndErrors) {
  EXPECT_EQ(inferred("trilu", {{{DType::F32, {kBatch, kSeq, kSeq}}}}), "f32[batch, seq, seq]");
  Tensor row = f32({3}, {1, 2, 3});
  EXPECT_ERROR(errorOf("trilu", {&row}), "x must have rank >= 2");
  Tensor x = iota({2, 2});
  Tensor ks = ints({1, 2});
  EXPECT_ERROR(errorOf("trilu", {&x, &ks}), "k must be a scalar");
}

}  // namespace
}  // namespace kiln
