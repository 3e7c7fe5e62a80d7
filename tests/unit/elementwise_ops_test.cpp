// The elementwise ops (ir/ops/elementwise.cpp and
// backends/reference/elementwise.cpp): reference kernels against
// hand-computed values (through evaluateOp), type inference on symbolic
// shapes, and the errors for bad shapes and dtypes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ir/op_registry.h"
#include "ir/tensor.h"
#include "tests/unit/op_test_support.h"

namespace kiln {
namespace {

using namespace testsupport;

// Type inference on (possibly symbolic) operand types; null entries are absent operands.
Expected<std::vector<TensorType>> infer(std::string_view op, std::vector<const TensorType*> types,
                                        const Attributes& attrs = {}) {
  std::vector<OperandInfo> operands;
  for (const TensorType* t : types) operands.push_back({t, nullptr});
  std::vector<TensorType> results;
  Status status = inferResultTypes(*OpRegistry::global().find(op), attrs, operands, 1, results);
  if (!status) return status;
  return results;
}

Attributes attr(const std::string& name, AttrValue value) {
  Attributes a;
  a.set(name, std::move(value));
  return a;
}

TEST(ElementwiseOps, UnaryFloatMath) {
  Tensor x = f32({2}, {4.0, 0.25});
  expectClose(run("sqrt", {&x}), DType::F32, {2}, {2.0, 0.5});
  expectClose(run("reciprocal", {&x}), DType::F32, {2}, {0.25, 4.0});
  Tensor e = f32({3}, {0.0, 1.0, -1.0});
  expectClose(run("exp", {&e}), DType::F32, {3}, {1.0, 2.718281828459045, 0.36787944117144233});
  expectClose(run("tanh", {&e}), DType::F32, {3}, {0.0, 0.7615941559557649, -0.7615941559557649});
  expectClose(run("erf", {&e}), DType::F32, {3}, {0.0, 0.8427007929497149, -0.8427007929497149});
  expectClose(run("sigmoid", {&e}), DType::F32, {3}, {0.5, 0.7310585786300049, 0.2689414213699951});
  expectClose(run("neg", {&e}), DType::F32, {3}, {0.0, -1.0, 1.0});
  expectClose(run("abs", {&e}), DType::F32, {3}, {0.0, 1.0, 1.0});
  Tensor l = f32({3}, {1.0, 2.718281828459045, 0.0});
  expectClose(run("log", {&l}), DType::F32, {3}, {0.0, 1.0, -kInf});
  Tensor angles = f32({2}, {0.0, 1.5707963267948966});
  expectClose(run("cos", {&angles}), DType::F32, {2}, {1.0, 0.0});
  expectClose(run("sin", {&angles}), DType::F32, {2}, {0.0, 1.0});
  Tensor r = f32({2, 2}, {-1.5, 0.0, 2.5, kNaN});
  expectClose(run("relu", {&r}), DType::F32, {2, 2}, {0.0, 0.0, 2.5, kNaN});
  // Large negative inputs must not turn sigmoid into NaN.
  Tensor big = f32({2}, {-1000.0, 1000.0});
  expectClose(run("sigmoid", {&big}), DType::F32, {2}, {0.0, 1.0});
}

TEST(ElementwiseOps, UnaryOnF64KeepsDoublePrecision) {
  Tensor x = make(DType::F64, {1}, {2.0});
  Tensor y = run("sqrt", {&x});
  EXPECT_EQ(y.dtype(), DType::F64);
  EXPECT_EQ(y.data<double>()[0], std::sqrt(2.0));
}

TEST(ElementwiseOps, SixteenBitFloatsRoundToNearest) {
  Tensor h = make(DType::F16, {2}, {4.0, 2.0});
  // sqrt(2) = 1.41421356 rounds to the half 1 + 424/1024.
  expectClose(run("sqrt", {&h}), DType::F16, {2}, {2.0, 1.4140625}, 0.0);
  Tensor b = make(DType::BF16, {1}, {1.0});
  // e = 2.71828 rounds to the bfloat16 2 * (1 + 46/128).
  expectClose(run("exp", {&b}), DType::BF16, {1}, {2.71875}, 0.0);
  Tensor ha = make(DType::F16, {2}, {1.0, 2048.0});
  Tensor hb = make(DType::F16, {2}, {0.5, 1.0});
  // 2048 + 1 is not a half: ties to even gives 2048.
  expectClose(run("add", {&ha, &hb}), DType::F16, {2}, {1.5, 2048.0}, 0.0);
}

TEST(ElementwiseOps, IntegerUnaryWraps) {
  const int64_t min = std::numeric_limits<int64_t>::min();
  Tensor x = i64({3}, {5, -3, min});
  EXPECT_EQ(ints(run("neg", {&x})), (std::vector<int64_t>{-5, 3, min}));
  EXPECT_EQ(ints(run("abs", {&x})), (std::vector<int64_t>{5, 3, min}));
  EXPECT_EQ(ints(run("relu", {&x})), (std::vector<int64_t>{5, 0, 0}));
  Tensor small = make(DType::I8, {3}, {-128.0, -3.0, 4.0});
  Tensor negated = run("neg", {&small});
  EXPECT_EQ(negated.dtype(), DType::I8);
  EXPECT_EQ(ints(negated), (std::vector<int64_t>{-128, 3, -4}));
}

TEST(ElementwiseOps, NotOfBool) {
  Tensor x = boolean({3}, {1, 0, 1});
  Tensor y = run("not", {&x});
  EXPECT_EQ(y.dtype(), DType::Bool);
  EXPECT_EQ(valuesOf(y), (std::vector<double>{0, 1, 0}));
}

TEST(ElementwiseOps, ArithmeticBroadcasts) {
  Tensor a = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor row = f32({3}, {10, 20, 30});
  expectClose(run("add", {&a, &row}), DType::F32, {2, 3}, {11, 22, 33, 14, 25, 36});
  expectClose(run("sub", {&row, &a}), DType::F32, {2, 3}, {9, 18, 27, 6, 15, 24});
  Tensor column = f32({2, 1}, {2, 3});
  Tensor line = f32({1, 3}, {1, 2, 4});
  expectClose(run("mul", {&column, &line}), DType::F32, {2, 3}, {2, 4, 8, 3, 6, 12});
  expectClose(run("div", {&line, &column}), DType::F32, {2, 3},
              {0.5, 1.0, 2.0, 1.0 / 3.0, 2.0 / 3.0, 4.0 / 3.0});
  Tensor scalar = f32({}, {2});
  expectClose(run("mul", {&scalar, &a}), DType::F32, {2, 3}, {2, 4, 6, 8, 10, 12});
  Tensor zero = f32({}, {0});
  Tensor signs = f32({3}, {1, -1, 0});
  expectClose(run("div", {&signs, &zero}), DType::F32, {3}, {kInf, -kInf, kNaN});
}

TEST(ElementwiseOps, ArithmeticWithEmptyTensors) {
  Tensor empty = f32({0, 3}, {});
  Tensor row = f32({3}, {1, 2, 3});
  Tensor y = run("add", {&empty, &row});
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{0, 3}));
}

TEST(ElementwiseOps, IntegerArithmeticIsExact) {
  const int64_t big = (int64_t{1} << 53) + 1;  // not a double
  Tensor a = i64({2}, {big, std::numeric_limits<int64_t>::max()});
  Tensor b = i64({2}, {1, 2});
  EXPECT_EQ(ints(run("add", {&a, &b})), (std::vector<int64_t>{big + 1, std::numeric_limits<int64_t>::min() + 1}));
  EXPECT_EQ(ints(run("mul", {&a, &b})), (std::vector<int64_t>{big, -2}));
  // Division truncates toward zero (C++ and ONNX), not toward -inf (numpy).
  Tensor n = i64({4}, {7, -7, 7, -7});
  Tensor d = i64({4}, {2, 2, -2, -2});
  EXPECT_EQ(ints(run("div", {&n, &d})), (std::vector<int64_t>{3, -3, -3, 3}));
  Tensor minimum = make(DType::I32, {1}, {-2147483648.0});
  Tensor minusOne = make(DType::I32, {1}, {-1});
  EXPECT_EQ(ints(run("div", {&minimum, &minusOne})), (std::vector<int64_t>{-2147483648}));
  Tensor u3 = make(DType::U8, {2}, {3, 200});
  Tensor u5 = make(DType::U8, {2}, {5, 100});
  EXPECT_EQ(ints(run("sub", {&u3, &u5})), (std::vector<int64_t>{254, 100}));
  EXPECT_EQ(ints(run("add", {&u3, &u5})), (std::vector<int64_t>{8, 44}));
}

TEST(ElementwiseOps, IntegerDivisionByZeroIsAnError) {
  Tensor n = i64({2}, {1, 2});
  Tensor d = i64({2}, {1, 0});
  EXPECT_NE(errorOf("div", {&n, &d}).find("integer division by zero"), std::string::npos);
}

TEST(ElementwiseOps, Pow) {
  Tensor base = f32({3}, {2, 9, 2});
  Tensor exponent = f32({3}, {3, 0.5, -1});
  expectClose(run("pow", {&base, &exponent}), DType::F32, {3}, {8, 3, 0.5});
  // The exponent may have another dtype; the result has the base's.
  Tensor intExponent = i64({3}, {4, 5, 6});
  Tensor floatBase = f32({3}, {1, 2, 3});
  expectClose(run("pow", {&floatBase, &intExponent}), DType::F32, {3}, {1, 32, 729});
  Tensor intBase = make(DType::I32, {3}, {1, 2, 3});
  Tensor floatExponent = f32({3}, {4, 5, 0.5});
  Tensor mixed = run("pow", {&intBase, &floatExponent});
  EXPECT_EQ(mixed.dtype(), DType::I32);
  EXPECT_EQ(ints(mixed), (std::vector<int64_t>{1, 32, 1}));  // 3^0.5 truncates to 1
  // Integer powers are exact beyond 2^53 and truncate negative exponents.
  Tensor threes = i64({4}, {3, 2, -1, -1});
  Tensor powers = i64({4}, {39, -1, -3, -2});
  EXPECT_EQ(ints(run("pow", {&threes, &powers})), (std::vector<int64_t>{4052555153018976267, 0, -1, 1}));
  Tensor scalarExponent = f32({}, {2});
  expectClose(run("pow", {&base, &scalarExponent}), DType::F32, {3}, {4, 81, 4});
}

TEST(ElementwiseOps, Comparisons) {
  Tensor a = i64({2, 2}, {1, 2, 3, 4});
  Tensor b = i64({2}, {1, 4});
  Tensor eq = run("equal", {&a, &b});
  EXPECT_EQ(eq.dtype(), DType::Bool);
  EXPECT_EQ(eq.shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(valuesOf(eq), (std::vector<double>{1, 0, 0, 1}));
  EXPECT_EQ(valuesOf(run("less", {&a, &b})), (std::vector<double>{0, 1, 0, 0}));
  EXPECT_EQ(valuesOf(run("greater", {&a, &b})), (std::vector<double>{0, 0, 1, 0}));
  Tensor x = f32({3}, {kNaN, 1, -0.0});
  Tensor y = f32({3}, {kNaN, 2, 0.0});
  EXPECT_EQ(valuesOf(run("equal", {&x, &y})), (std::vector<double>{0, 0, 1}));
  EXPECT_EQ(valuesOf(run("less", {&x, &y})), (std::vector<double>{0, 1, 0}));
  Tensor p = boolean({2}, {1, 0});
  Tensor q = boolean({}, {0});
  EXPECT_EQ(valuesOf(run("equal", {&p, &q})), (std::vector<double>{0, 1}));
}

TEST(ElementwiseOps, Logic) {
  Tensor a = boolean({2, 2}, {1, 1, 0, 0});
  Tensor b = boolean({2}, {1, 0});
  EXPECT_EQ(valuesOf(run("and", {&a, &b})), (std::vector<double>{1, 0, 0, 0}));
  EXPECT_EQ(valuesOf(run("or", {&a, &b})), (std::vector<double>{1, 1, 1, 0}));
}

TEST(ElementwiseOps, VariadicMinMax) {
  Tensor a = f32({2, 2}, {1, 5, 3, 7});
  Tensor b = f32({2}, {4, 2});
  Tensor c = f32({}, {3});
  expectClose(run("max", {&a, &b, &c}), DType::F32, {2, 2}, {4, 5, 4, 7});
  expectClose(run("min", {&a, &b, &c}), DType::F32, {2, 2}, {1, 2, 3, 2});
  expectClose(run("max", {&a}), DType::F32, {2, 2}, {1, 5, 3, 7});
  Tensor withNaN = f32({2}, {kNaN, 1});
  Tensor other = f32({2}, {0, kNaN});
  expectClose(run("min", {&withNaN, &other}), DType::F32, {2}, {kNaN, kNaN});
  const int64_t big = (int64_t{1} << 60) + 1;
  Tensor x = i64({2}, {big, -big});
  Tensor y = i64({2}, {big - 1, -big + 1});
  EXPECT_EQ(ints(run("max", {&x, &y})), (std::vector<int64_t>{big, -big + 1}));
}

TEST(ElementwiseOps, WhereBroadcastsThreeWays) {
  Tensor condition = boolean({2, 1}, {1, 0});
  Tensor x = f32({3}, {1, 2, 3});
  Tensor y = f32({}, {-1});
  expectClose(run("where", {&condition, &x, &y}), DType::F32, {2, 3}, {1, 2, 3, -1, -1, -1});
  Tensor c = boolean({2, 2}, {1, 0, 1, 1});
  Tensor a = i64({2, 2}, {1, 2, 3, 4});
  Tensor b = i64({2, 2}, {9, 8, 7, 6});
  EXPECT_EQ(ints(run("where", {&c, &a, &b})), (std::vector<int64_t>{1, 8, 3, 4}));
}

TEST(ElementwiseOps, CastFloatToInteger) {
  Tensor x = f32({6}, {1.9, -1.9, kNaN, 1e10, -1e10, kInf});
  Tensor y = run("cast", {&x}, attr("to", std::string("i32")));
  EXPECT_EQ(y.dtype(), DType::I32);
  // Truncation toward zero; NaN gives 0 and out-of-range values saturate.
  EXPECT_EQ(ints(y), (std::vector<int64_t>{1, -1, 0, 2147483647, -2147483648, 2147483647}));
  Tensor u = run("cast", {&x}, attr("to", std::string("u8")));
  EXPECT_EQ(ints(u), (std::vector<int64_t>{1, 0, 0, 255, 0, 255}));
  Tensor huge = make(DType::F64, {2}, {9.3e18, -9.3e18});
  EXPECT_EQ(ints(run("cast", {&huge}, attr("to", std::string("i64")))),
            (std::vector<int64_t>{std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()}));
}

TEST(ElementwiseOps, CastOtherPairs) {
  Tensor x = f32({4}, {0.0, -0.0, 0.5, kNaN});
  EXPECT_EQ(valuesOf(run("cast", {&x}, attr("to", std::string("bool")))), (std::vector<double>{0, 0, 1, 1}));
  Tensor tenth = f32({1}, {0.1});
  Tensor h = run("cast", {&tenth}, attr("to", std::string("f16")));
  EXPECT_EQ(h.dtype(), DType::F16);
  EXPECT_EQ(h.data<Half>()[0].bits, 0x2e66);
  Tensor hb = run("cast", {&h}, attr("to", std::string("bf16")));
  EXPECT_EQ(hb.dtype(), DType::BF16);
  EXPECT_EQ(hb.data<BFloat16>()[0].bits, floatToBFloat16(halfToFloat(0x2e66)));
  Tensor wide = make(DType::F64, {3}, {1e300, -1e300, 0.1});
  expectClose(run("cast", {&wide}, attr("to", std::string("f32"))), DType::F32, {3},
              {kInf, -kInf, static_cast<double>(0.1f)}, 0.0);
  const int64_t big = (int64_t{1} << 53) + 1;
  Tensor ints64 = i64({2}, {big, -300});
  EXPECT_EQ(ints(run("cast", {&ints64}, attr("to", std::string("i8")))), (std::vector<int64_t>{1, -44}));
  Tensor flags = boolean({2}, {1, 0});
  expectClose(run("cast", {&flags}, attr("to", std::string("f32"))), DType::F32, {2}, {1, 0});
  Tensor same = run("cast", {&ints64}, attr("to", std::string("i64")));
  EXPECT_EQ(ints(same), (std::vector<int64_t>{big, -300}));
}

TEST(ElementwiseOps, CastRejectsUnknownDType) {
  Tensor x = f32({1}, {1});
  EXPECT_NE(errorOf("cast", {&x}, attr("to", std::string("f8"))).find("to = \"f8\" is not a dtype"),
            std::string::npos);
  EXPECT_NE(errorOf("cast", {&x}).find("requires attribute 'to'"), std::string::npos);
}

TEST(ElementwiseOps, Clip) {
  Tensor x = f32({5}, {-3, -1, 0, 2, kNaN});
  Tensor low = f32({}, {-1});
  Tensor high = f32({1}, {1});
  expectClose(run("clip", {&x, &low, &high}), DType::F32, {5}, {-1, -1, 0, 1, kNaN});
  expectClose(run("clip", {&x, nullptr, &high}), DType::F32, {5}, {-3, -1, 0, 1, kNaN});
  expectClose(run("clip", {&x, &low, nullptr}), DType::F32, {5}, {-1, -1, 0, 2, kNaN});
  expectClose(run("clip", {&x}), DType::F32, {5}, {-3, -1, 0, 2, kNaN});
  // min > max gives max everywhere (numpy.clip).
  Tensor two = f32({}, {2});
  Tensor one = f32({}, {1});
  expectClose(run("clip", {&x, &two, &one}), DType::F32, {5}, {1, 1, 1, 1, kNaN});
  Tensor small = make(DType::I8, {3}, {-128, 0, 127});
  Tensor zero = make(DType::I8, {}, {0});
  EXPECT_EQ(ints(run("clip", {&small, nullptr, &zero})), (std::vector<int64_t>{-128, 0, 0}));
}

TEST(ElementwiseOps, ClipRejectsBadBounds) {
  Tensor x = f32({3}, {1, 2, 3});
  Tensor bounds = f32({2}, {0, 1});
  EXPECT_NE(errorOf("clip", {&x, &bounds}).find("min must be a scalar"), std::string::npos);
  Tensor intBound = i64({}, {0});
  EXPECT_NE(errorOf("clip", {&x, nullptr, &intBound}).find("must have the same dtype"), std::string::npos);
}

TEST(ElementwiseOps, IdentityCopies) {
  Tensor x = i64({2}, {(int64_t{1} << 62) + 3, -1});
  Tensor y = run("identity", {&x});
  EXPECT_NE(y.data(), x.data());
  EXPECT_EQ(ints(y), (std::vector<int64_t>{(int64_t{1} << 62) + 3, -1}));
}

TEST(ElementwiseOps, InferenceBroadcastsSymbolicShapes) {
  TensorType x{DType::F32, dims({"batch", "seq", "4"})};
  TensorType bias{DType::F32, dims({"4"})};
  auto r = infer("add", {&x, &bias});
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->at(0).str(), "f32[batch, seq, 4]");

  TensorType column{DType::F32, dims({"batch", "1"})};
  TensorType row{DType::F32, dims({"1", "seq + past"})};
  r = infer("mul", {&column, &row});
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->at(0).str(), "f32[batch, past + seq]");

  r = infer("less", {&column, &row});
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->at(0).str(), "bool[batch, past + seq]");

  TensorType mask{DType::Bool, dims({"1", "1", "seq", "seq"})};
  TensorType scores{DType::F32, dims({"batch", "heads", "seq", "seq"})};
  TensorType fill{DType::F32, {}};
  r = infer("where", {&mask, &scores, &fill});
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->at(0).str(), "f32[batch, heads, seq, seq]");

  r = infer("max", {&x, &bias, &fill});
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->at(0).str(), "f32[batch, seq, 4]");

  r = infer("cast", {&x}, attr("to", std::string("f16")));
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->at(0).str(), "f16[batch, seq, 4]");

  TensorType exponent{DType::I64, {}};
  r = infer("pow", {&x, &exponent});
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->at(0).str(), "f32[batch, seq, 4]");

  TensorType unknown{DType::F32, {Dim::unknown(), Dim(4)}};
  r = infer("sub", {&unknown, &bias});
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->at(0).str(), "f32[?, 4]");

  TensorType scalarBound{DType::F32, {}};
  r = infer("clip", {&x, nullptr, &scalarBound});
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->at(0).str(), "f32[batch, seq, 4]");
}

TEST(ElementwiseOps, InferenceErrorsNameOpAndShapes) {
  TensorType a{DType::F32, dims({"2", "3"})};
  TensorType b{DType::F32, dims({"4"})};
  auto r = infer("add", {&a, &b});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().message(), "add(f32[2, 3], f32[4]): shapes [2, 3], [4] do not broadcast");

  TensorType ints{DType::I64, dims({"3"})};
  r = infer("mul", {&a, &ints});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().message(),
            "mul(f32[2, 3], i64[3]): operands 0 and 1 must have the same dtype, got f32 and i64");

  r = infer("sqrt", {&ints});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().message(), "sqrt(i64[3]): x must be a float tensor (f32, f16, bf16, f64), got i64[3]");

  r = infer("not", {&a});
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("x must be a bool tensor"), std::string::npos);

  TensorType flags{DType::Bool, dims({"3"})};
  r = infer("add", {&flags, &flags});
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("a must be a numeric tensor"), std::string::npos);

  r = infer("where", {&a, &a, &a});
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("condition must be a bool tensor"), std::string::npos);

  TensorType u8{DType::U8, dims({"3"})};
  r = infer("neg", {&u8});
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("x must be a signed numeric tensor"), std::string::npos);

  TensorType seq{DType::F32, dims({"seq"})};
  TensorType five{DType::F32, dims({"5"})};
  TensorType six{DType::F32, dims({"6"})};
  r = infer("max", {&seq, &five, &six});
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("shapes [seq], [5], [6] do not broadcast"), std::string::npos);

  r = infer("add", {&a});
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("takes 2 operands, got 1"), std::string::npos);
}

}  // namespace
}  // namespace kiln
