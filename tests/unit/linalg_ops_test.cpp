// The linear algebra ops matmul and gemm (ir/ops/linalg.cpp and
// backends/reference/linalg.cpp): reference kernels against hand-computed
// products, type inference on symbolic shapes, and the errors for operands
// that do not fit.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "ir/op_registry.h"
#include "ir/tensor.h"
#include "tests/unit/op_test_support.h"

namespace kiln {
namespace {

using namespace testsupport;

// The inferred result type as text, or the error message.
std::string inferred(std::string_view op, std::vector<TensorType> types, const Attributes& attrs = {}) {
  std::vector<OperandInfo> operands;
  for (const TensorType& t : types) operands.push_back({&t, nullptr});
  std::vector<TensorType> results;
  Status status = inferResultTypes(*OpRegistry::global().find(op), attrs, operands, 1, results);
  return status ? results[0].str() : status.message();
}

// ---- matmul

TEST(MatmulOp, TwoByThreeTimesThreeByTwo) {
  Tensor a = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = f32({3, 2}, {7, 8, 9, 10, 11, 12});
  Tensor y = run("matmul", {&a, &b});
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(valuesOf(y), (std::vector<double>{58, 64, 139, 154}));
}

TEST(MatmulOp, OneDimensionalOperandsDropTheirAddedDim) {
  Tensor a = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = f32({3, 2}, {7, 8, 9, 10, 11, 12});
  Tensor row = f32({3}, {1, 2, 3});
  Tensor column = f32({3}, {1, 1, 1});

  Tensor vm = run("matmul", {&row, &b});  // [3] x [3, 2] -> [2]
  EXPECT_EQ(vm.shape(), (std::vector<int64_t>{2}));
  EXPECT_EQ(valuesOf(vm), (std::vector<double>{58, 64}));

  Tensor mv = run("matmul", {&a, &column});  // [2, 3] x [3] -> [2]
  EXPECT_EQ(mv.shape(), (std::vector<int64_t>{2}));
  EXPECT_EQ(valuesOf(mv), (std::vector<double>{6, 15}));

  Tensor other = f32({3}, {4, 5, 6});
  Tensor dot = run("matmul", {&row, &other});  // [3] x [3] -> []
  EXPECT_EQ(dot.shape(), (std::vector<int64_t>{}));
  EXPECT_EQ(valuesOf(dot), (std::vector<double>{32}));
}

TEST(MatmulOp, BatchDimsBroadcast) {
  // a: batch [2, 1] of 1x2 rows; b: batch [3] of 2x1 columns -> [2, 3, 1, 1].
  Tensor a = f32({2, 1, 1, 2}, {1, 2, 3, 4});
  Tensor b = f32({3, 2, 1}, {1, 1, 1, 0, 0, 2});
  Tensor y = run("matmul", {&a, &b});
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{2, 3, 1, 1}));
  EXPECT_EQ(valuesOf(y), (std::vector<double>{3, 1, 4, 7, 3, 8}));
}

TEST(MatmulOp, BatchedTimesSharedMatrix) {
  Tensor a = f32({2, 1, 2}, {1, 2, 3, 4});
  Tensor b = f32({2, 2}, {1, 10, 100, 1000});
  Tensor y = run("matmul", {&a, &b});
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{2, 1, 2}));
  EXPECT_EQ(valuesOf(y), (std::vector<double>{201, 2010, 403, 4030}));
}

TEST(MatmulOp, OtherDTypes) {
  for (DType dtype : {DType::F64, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I8, DType::U8}) {
    Tensor a = make(dtype, {1, 2}, {2, 3});
    Tensor b = make(dtype, {2, 2}, {4, 1, 5, 2});
    Tensor y = run("matmul", {&a, &b});
    EXPECT_EQ(y.dtype(), dtype);
    EXPECT_EQ(valuesOf(y), (std::vector<double>{23, 8})) << dtypeName(dtype);
  }
  // 16-bit floats accumulate in float and round once: 1.5 * 2 + 2 * 0.25.
  Tensor a = make(DType::F16, {1, 2}, {1.5, 2});
  Tensor b = make(DType::F16, {2, 1}, {2, 0.25});
  EXPECT_EQ(valuesOf(run("matmul", {&a, &b})), (std::vector<double>{3.5}));
}

TEST(MatmulOp, IntegersWrapLikeNumpy) {
  Tensor a = make(DType::I8, {1, 2}, {100, 100});
  Tensor b = make(DType::I8, {2, 1}, {1, 1});
  EXPECT_EQ(valuesOf(run("matmul", {&a, &b})), (std::vector<double>{-56}));  // 200 - 256
}

TEST(MatmulOp, InfersSymbolicShapes) {
  EXPECT_EQ(inferred("matmul", {{DType::F32, {kBatch, kSeq, 64}}, {DType::F32, {64, 128}}}),
            "f32[batch, seq, 128]");
  TensorType scores = {DType::F32, {kBatch, 4, kSeq, kSeq + kPast}};
  TensorType values = {DType::F32, {kBatch, 4, kSeq + kPast, 16}};
  EXPECT_EQ(inferred("matmul", {scores, values}), "f32[batch, 4, seq, 16]");
  // Batch dims broadcast against 1; a symbolic contraction dim may match at run time.
  EXPECT_EQ(inferred("matmul", {{DType::F32, {1, kSeq, 8}}, {DType::F32, {kBatch, 8, 2}}}),
            "f32[batch, seq, 2]");
  EXPECT_EQ(inferred("matmul", {{DType::F32, {kSeq, kPast}}, {DType::F32, {16, 2}}}), "f32[seq, 2]");
  EXPECT_EQ(inferred("matmul", {{DType::F32, {kSeq}}, {DType::F32, {kSeq}}}), "f32[]");
}

TEST(MatmulOp, Errors) {
  Tensor a = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = f32({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_NE(errorOf("matmul", {&a, &b}).find("contraction dims differ: 3 (last dim of a) vs 4"),
            std::string::npos)
      << errorOf("matmul", {&a, &b});
  EXPECT_NE(inferred("matmul", {{DType::F32, {2, 1, 3}}, {DType::F32, {3, 3, 1}}})
                .find("batch dims [2] and [3] do not broadcast"),
            std::string::npos);
  EXPECT_NE(inferred("matmul", {{DType::F32, {2, 3}}, {DType::F16, {3, 1}}}).find("same dtype"),
            std::string::npos);
  EXPECT_NE(inferred("matmul", {{DType::Bool, {2, 3}}, {DType::Bool, {3, 1}}}).find("numeric"),
            std::string::npos);
  EXPECT_NE(inferred("matmul", {{DType::F32, {}}, {DType::F32, {3}}}).find("rank >= 1"),
            std::string::npos);
  // The message starts with the op and its operand types.
  EXPECT_EQ(inferred("matmul", {{DType::F32, {2, 3}}, {DType::F32, {4}}}).rfind("matmul(f32[2, 3], f32[4]): ", 0),
            0u);
}

// ---- matmul's fused epilogue: transposed operands, bias, activation, residual

TEST(MatmulOp, TransposedOperands) {
  // a = [[1, 2, 3], [4, 5, 6]], b = [[7, 8], [9, 10], [11, 12]] stored transposed.
  Tensor aT = f32({3, 2}, {1, 4, 2, 5, 3, 6});
  Tensor bT = f32({2, 3}, {7, 9, 11, 8, 10, 12});
  Tensor a = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = f32({3, 2}, {7, 8, 9, 10, 11, 12});
  const std::vector<double> expected = {58, 64, 139, 154};
  EXPECT_EQ(valuesOf(run("matmul", {&aT, &b}, attrs({{"transpose_a", true}}))), expected);
  EXPECT_EQ(valuesOf(run("matmul", {&a, &bT}, attrs({{"transpose_b", true}}))), expected);
  Tensor both = run("matmul", {&aT, &bT}, attrs({{"transpose_a", true}, {"transpose_b", true}}));
  EXPECT_EQ(both.shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(valuesOf(both), expected);
  // A 1-D a against a transposed b: [3] x [2, 3]^T -> [2].
  Tensor row = f32({3}, {1, 2, 3});
  Tensor vm = run("matmul", {&row, &bT}, attrs({{"transpose_b", true}}));
  EXPECT_EQ(vm.shape(), (std::vector<int64_t>{2}));
  EXPECT_EQ(valuesOf(vm), (std::vector<double>{58, 64}));
}

TEST(MatmulOp, TransposedOperandsWithBroadcastBatch) {
  // Two batches of q [1, 2] against one shared k stored [2 keys, 2]: q k^T.
  Tensor q = f32({2, 1, 2}, {1, 2, 3, 4});
  Tensor k = f32({2, 2}, {1, 0, 1, 1});
  Tensor scores = run("matmul", {&q, &k}, attrs({{"transpose_b", true}}));
  EXPECT_EQ(scores.shape(), (std::vector<int64_t>{2, 1, 2}));
  EXPECT_EQ(valuesOf(scores), (std::vector<double>{1, 3, 3, 7}));
  // A k per batch: the transposed copy of b must follow the batch.
  Tensor keys = f32({2, 2, 2}, {1, 0, 1, 1, 0, 1, 2, 0});
  EXPECT_EQ(valuesOf(run("matmul", {&q, &keys}, attrs({{"transpose_b", true}}))),
            (std::vector<double>{1, 3, 4, 6}));
  // Batched a^T: each batch of aT is [K = 2, M = 1].
  Tensor aT = f32({2, 2, 1}, {1, 2, 3, 4});
  Tensor b = f32({2, 1}, {10, 1});
  EXPECT_EQ(valuesOf(run("matmul", {&aT, &b}, attrs({{"transpose_a", true}}))),
            (std::vector<double>{12, 34}));
}

TEST(MatmulOp, BiasActivationAndResidual) {
  Tensor a = f32({2, 2}, {1, 2, 3, 4});
  Tensor b = f32({2, 2}, {1, -1, 1, -2});  // a @ b = [[3, -5], [7, -11]]
  Tensor bias = f32({2}, {1, 2});          // -> [[4, -3], [8, -9]]
  Tensor residual = f32({2, 2}, {10, 20, 30, 40});
  EXPECT_EQ(valuesOf(run("matmul", {&a, &b, &bias})), (std::vector<double>{4, -3, 8, -9}));
  EXPECT_EQ(valuesOf(run("matmul", {&a, &b, &bias}, attrs({{"activation", std::string("relu")}}))),
            (std::vector<double>{4, 0, 8, 0}));
  // The residual is added after the activation.
  EXPECT_EQ(valuesOf(run("matmul", {&a, &b, &bias, &residual}, attrs({{"activation", std::string("relu")}}))),
            (std::vector<double>{14, 20, 38, 40}));
  // Residual without bias (absent operand), broadcast from a column.
  Tensor column = f32({2, 1}, {100, 200});
  EXPECT_EQ(valuesOf(run("matmul", {&a, &b, nullptr, &column})), (std::vector<double>{103, 95, 207, 189}));
  // A scalar bias and a bias of the full result shape.
  Tensor scalar = f32({}, {0.5});
  EXPECT_EQ(valuesOf(run("matmul", {&a, &b, &scalar})), (std::vector<double>{3.5, -4.5, 7.5, -10.5}));
  EXPECT_EQ(valuesOf(run("matmul", {&a, &b, &residual})), (std::vector<double>{13, 15, 37, 29}));
}

TEST(MatmulOp, FloatActivations) {
  // One input row [1, 0] picks row 0 of b; bias 0: act(b[0]).
  Tensor a = f32({1, 2}, {1, 0});
  Tensor b = f32({2, 3}, {1, -1, 2, 0, 0, 0});
  auto activated = [&](const char* name) {
    return valuesOf(run("matmul", {&a, &b}, attrs({{"activation", std::string(name)}})));
  };
  // gelu(x) = x/2 (1 + erf(x / sqrt 2)); gelu_tanh uses tanh(sqrt(2/pi)(x + 0.044715 x^3)).
  const std::vector<double> gelu = activated("gelu");
  EXPECT_NEAR(gelu[0], 0.8413447460685429, 1e-6);
  EXPECT_NEAR(gelu[1], -0.15865525393145707, 1e-6);
  EXPECT_NEAR(gelu[2], 1.9544997361036416, 1e-6);
  const std::vector<double> geluTanh = activated("gelu_tanh");
  EXPECT_NEAR(geluTanh[0], 0.8411919906082768, 1e-6);
  EXPECT_NEAR(geluTanh[1], -0.15880800939172324, 1e-6);
  EXPECT_NEAR(geluTanh[2], 1.954597694087775, 1e-6);
  const std::vector<double> silu = activated("silu");  // x / (1 + e^-x)
  EXPECT_NEAR(silu[0], 0.7310585786300049, 1e-6);
  EXPECT_NEAR(silu[1], -0.2689414213699951, 1e-6);
  EXPECT_NEAR(silu[2], 1.7615941559557646, 1e-6);
  const std::vector<double> tanh = activated("tanh");  // bert's pooler
  EXPECT_NEAR(tanh[0], 0.7615941559557649, 1e-6);
  EXPECT_NEAR(tanh[1], -0.7615941559557649, 1e-6);
  EXPECT_NEAR(tanh[2], 0.9640275800758169, 1e-6);
  EXPECT_EQ(activated("none"), (std::vector<double>{1, -1, 2}));
  // f16 applies the epilogue before the single rounding: silu(2) = 1.76159 -> 1.76172 in f16.
  Tensor a16 = make(DType::F16, {1, 1}, {1});
  Tensor b16 = make(DType::F16, {1, 1}, {1.5});
  Tensor bias16 = make(DType::F16, {1}, {0.5});
  EXPECT_EQ(valuesOf(run("matmul", {&a16, &b16, &bias16}, attrs({{"activation", std::string("silu")}}))),
            (std::vector<double>{1.76171875}));
}

TEST(MatmulOp, IntegerEpilogue) {
  Tensor a = make(DType::I32, {1, 2}, {1, 2});
  Tensor b = make(DType::I32, {2, 2}, {1, -3, 1, 1});  // [3, -1]
  Tensor bias = make(DType::I32, {2}, {-5, 0});       // [-2, -1]
  Tensor residual = make(DType::I32, {1, 2}, {7, 7});
  Tensor y = run("matmul", {&a, &b, &bias, &residual}, attrs({{"activation", std::string("relu")}}));
  EXPECT_EQ(y.dtype(), DType::I32);
  EXPECT_EQ(valuesOf(y), (std::vector<double>{7, 7}));
  EXPECT_EQ(valuesOf(run("matmul", {&a, &b, &bias})), (std::vector<double>{-2, -1}));
}

TEST(MatmulOp, EpilogueInfersSymbolicShapes) {
  // x [batch, seq, 64] @ w^T with w [128, 64], bias [128], residual like the result.
  TensorType x = {DType::F32, {kBatch, kSeq, 64}};
  TensorType w = {DType::F32, {128, 64}};
  TensorType bias = {DType::F32, {128}};
  TensorType residual = {DType::F32, {kBatch, kSeq, 128}};
  EXPECT_EQ(inferred("matmul", {x, w, bias, residual},
                     attrs({{"transpose_b", true}, {"activation", std::string("gelu")}})),
            "f32[batch, seq, 128]");
  // q k^T for attention scores: [batch, 4, seq, 16] x [batch, 4, seq + past, 16]^T.
  EXPECT_EQ(inferred("matmul", {{DType::F32, {kBatch, 4, kSeq, 16}}, {DType::F32, {kBatch, 4, kSeq + kPast, 16}}},
                     attrs({{"transpose_b", true}})),
            "f32[batch, 4, seq, past + seq]");
  EXPECT_EQ(inferred("matmul", {{DType::F32, {kSeq, kBatch}}, {DType::F32, {kSeq, 8}}},
                     attrs({{"transpose_a", true}})),
            "f32[batch, 8]");
}

TEST(MatmulOp, EpilogueErrors) {
  TensorType a = {DType::F32, {2, 3}};
  TensorType b = {DType::F32, {3, 4}};
  auto contains = [](const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
  };
  std::string error = inferred("matmul", {a, b, {DType::F32, {3}}});
  EXPECT_TRUE(contains(error, "bias [3] does not broadcast to the result [2, 4]")) << error;
  error = inferred("matmul", {a, b, {DType::F32, {4}}, {DType::F32, {3, 4}}});
  EXPECT_TRUE(contains(error, "residual [3, 4] does not broadcast to the result [2, 4]")) << error;
  error = inferred("matmul", {a, b, {DType::F32, {1, 2, 4}}});
  EXPECT_TRUE(contains(error, "bias [1, 2, 4] does not broadcast")) << error;
  error = inferred("matmul", {a, b, {DType::F16, {4}}});
  EXPECT_TRUE(contains(error, "same dtype")) << error;
  error = inferred("matmul", {a, b}, attrs({{"activation", std::string("swish")}}));
  EXPECT_TRUE(contains(error, "unknown activation \"swish\" (expected none, relu, gelu, gelu_tanh, silu or tanh)"))
      << error;
  error = inferred("matmul", {{DType::I32, {2, 3}}, {DType::I32, {3, 4}}}, attrs({{"activation", std::string("gelu")}}));
  EXPECT_TRUE(contains(error, "activation \"gelu\" needs float operands")) << error;
  error = inferred("matmul", {{DType::I32, {2, 3}}, {DType::I32, {3, 4}}}, attrs({{"activation", std::string("tanh")}}));
  EXPECT_TRUE(contains(error, "activation \"tanh\" needs float operands")) << error;
  error = inferred("matmul", {{DType::F32, {3}}, b}, attrs({{"transpose_a", true}}));
  EXPECT_TRUE(contains(error, "transpose_a needs a of rank >= 2")) << error;
  error = inferred("matmul", {a, b}, attrs({{"transpose_b", true}}));
  EXPECT_TRUE(contains(error, "contraction dims differ: 3 (last dim of a) vs 4 (last dim of b, transposed)"))
      << error;
  error = inferred("matmul", {a, b}, attrs({{"transpose_a", true}}));
  EXPECT_TRUE(contains(error, "contraction dims differ: 2 (second-to-last dim of a, transposed) vs 3")) << error;
  Tensor x = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor w = f32({3, 2}, {1, 2, 3, 4, 5, 6});
  Tensor wide = f32({5}, {1, 2, 3, 4, 5});
  error = errorOf("matmul", {&x, &w, &wide});
  EXPECT_TRUE(contains(error, "bias [5] does not broadcast to the result [2, 2]")) << error;
}

// ---- the mixed form: an f32 a with a bf16 weight b (precision_bf16)

// a rounded to bf16 (nearest even), exact for every test value.
double roundedToBFloat16(double v) { return bfloat16ToFloat(floatToBFloat16(static_cast<float>(v))); }

TEST(MatmulOp, BFloat16WeightRoundsAToBFloat16) {
  // 1.00390625 lies halfway between the bf16 values 1 and 1.0078125 and rounds
  // to the even one, 1; 1.01171875 lies halfway between 1.0078125 and
  // 1.015625 and rounds to 1.015625; 3.14159 becomes 3.140625.
  Tensor a = f32({2, 3}, {1.00390625, 3.14159, -2, 1.01171875, 0, 1});
  Tensor b = make(DType::BF16, {3, 2}, {1, 2, 0.5, -1, 0.25, 4});
  Tensor y = run("matmul", {&a, &b});
  EXPECT_EQ(y.dtype(), DType::F32);
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{2, 2}));
  // Row 0: 1 * 1 + 3.140625 * 0.5 - 2 * 0.25, 1 * 2 - 3.140625 - 2 * 4.
  // Row 1: 1.015625 * 1 + 0.25, 1.015625 * 2 + 4.
  EXPECT_EQ(valuesOf(y), (std::vector<double>{2.0703125, -9.140625, 1.265625, 6.03125}));
}

TEST(MatmulOp, BFloat16WeightEpilogueStaysF32) {
  // bias, activation and residual are f32 and applied to the f32 product
  // unrounded: 0.001 survives, which it would not in bf16 next to 3.
  Tensor a = f32({1, 2}, {1, 2});
  Tensor b = make(DType::BF16, {2, 2}, {1, -1, 1, -2});  // a @ b = [3, -5]
  Tensor bias = f32({2}, {0.001, 1});
  Tensor residual = f32({1, 2}, {0.0001, 10});
  Tensor y = run("matmul", {&a, &b, &bias, &residual}, attrs({{"activation", std::string("relu")}}));
  EXPECT_EQ(y.dtype(), DType::F32);
  expectClose(y, DType::F32, {1, 2}, {3.0011, 10}, 1e-7);
}

// The mixed form equals the f32 form on operands rounded to bf16 beforehand:
// both accumulate the same products in double and round once. Over shapes
// with odd sizes, batches, 1-D operands and both transposes.
TEST(MatmulOp, BFloat16WeightMatchesF32OnRoundedOperands) {
  std::mt19937 random(7);
  std::uniform_real_distribution<double> uniform(-2.0, 2.0);
  auto elements = [](const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  };
  auto randomValues = [&](int64_t n) {
    std::vector<double> v(static_cast<size_t>(n));
    for (double& x : v) x = static_cast<float>(uniform(random));
    return v;
  };
  struct Case {
    std::vector<int64_t> a, b;
    bool transA, transB;
  };
  const Case cases[] = {{{1, 1}, {1, 1}, false, false},   {{3, 5}, {5, 7}, false, false},
                        {{2, 3, 17}, {17, 9}, false, false}, {{4, 13}, {11, 13}, false, true},
                        {{13, 4}, {13, 6}, true, false},  {{2, 5, 3}, {2, 7, 5}, true, true},
                        {{9}, {9, 3}, false, false},      {{2, 9}, {9}, false, false}};
  for (const Case& c : cases) {
    std::vector<double> aValues = randomValues(elements(c.a));
    std::vector<double> bValues = randomValues(elements(c.b));
    Tensor a = f32(c.a, aValues);
    Tensor b = make(DType::BF16, c.b, bValues);
    for (double& v : aValues) v = roundedToBFloat16(v);
    for (double& v : bValues) v = roundedToBFloat16(v);
    Tensor aRounded = f32(c.a, aValues);
    Tensor bRounded = f32(c.b, bValues);
    const Attributes flags = attrs({{"transpose_a", c.transA}, {"transpose_b", c.transB}});
    Tensor mixed = run("matmul", {&a, &b}, flags);
    Tensor expected = run("matmul", {&aRounded, &bRounded}, flags);
    EXPECT_EQ(mixed.dtype(), DType::F32);
    EXPECT_EQ(mixed.shape(), expected.shape());
    EXPECT_EQ(valuesOf(mixed), valuesOf(expected)) << shapeStr(c.a) << " x " << shapeStr(c.b);
    // The rounding of a matters: the f32 product of the unrounded a differs.
    Tensor unroundedA = run("matmul", {&a, &bRounded}, flags);
    if (elements(c.a) > 1) {
      EXPECT_NE(valuesOf(mixed), valuesOf(unroundedA)) << shapeStr(c.a);
    }
  }
}

TEST(MatmulOp, InfersTheBFloat16WeightFormOnly) {
  EXPECT_EQ(inferred("matmul", {{DType::F32, {kBatch, kSeq, 64}}, {DType::BF16, {128, 64}}},
                     attrs({{"transpose_b", true}})),
            "f32[batch, seq, 128]");
  EXPECT_EQ(inferred("matmul", {{DType::F32, {kSeq, 4}}, {DType::BF16, {4, 2}}, {DType::F32, {2}},
                                {DType::F32, {kSeq, 2}}}),
            "f32[seq, 2]");
  // Any other mix is an error naming the op and both dtypes.
  const std::string swapped = inferred("matmul", {{DType::BF16, {2, 3}}, {DType::F32, {3, 1}}});
  EXPECT_EQ(swapped.rfind("matmul(bf16[2, 3], f32[3, 1]): a (bf16) and b (f32) must have the same dtype, "
                          "or be f32 and bf16",
                          0),
            0u)
      << swapped;
  EXPECT_NE(inferred("matmul", {{DType::F64, {2, 3}}, {DType::BF16, {3, 1}}}).find("a (f64) and b (bf16)"),
            std::string::npos);
  EXPECT_NE(inferred("matmul", {{DType::F32, {2, 3}}, {DType::F16, {3, 1}}}).find("a (f32) and b (f16)"),
            std::string::npos);
  // bias and residual stay in a's dtype.
  EXPECT_NE(inferred("matmul", {{DType::F32, {2, 3}}, {DType::BF16, {3, 1}}, {DType::BF16, {1}}})
                .find("operands 0 and 2 must have the same dtype, got f32 and bf16"),
            std::string::npos);
  EXPECT_NE(inferred("matmul", {{DType::F32, {2, 3}}, {DType::BF16, {3, 1}}, {DType::F32, {1}},
                                {DType::BF16, {2, 1}}})
                .find("operands 0 and 3 must have the same dtype"),
            std::string::npos);
}

// ---- gemm

TEST(GemmOp, AlphaBetaAndVectorBias) {
  Tensor a = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = f32({3, 2}, {1, 0, 0, 1, 1, 1});
  Tensor c = f32({2}, {1, 2});
  // a * b = [[4, 5], [10, 11]]; 2 * that + 0.5 * [1, 2] per row.
  Tensor y = run("gemm", {&a, &b, &c}, attrs({{"alpha", 2.0}, {"beta", 0.5}}));
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(valuesOf(y), (std::vector<double>{8.5, 11, 20.5, 23}));
}

TEST(GemmOp, TransposedOperandsAndScalarBias) {
  Tensor aT = f32({3, 2}, {1, 4, 2, 5, 3, 6});
  Tensor bT = f32({2, 3}, {1, 0, 1, 0, 1, 1});
  Tensor c = f32({}, {10});
  Tensor y = run("gemm", {&aT, &bT, &c}, attrs({{"trans_a", true}, {"trans_b", true}}));
  EXPECT_EQ(valuesOf(y), (std::vector<double>{14, 15, 20, 21}));
  // ONNX's integer flags are accepted too.
  Tensor again = run("gemm", {&aT, &bT, &c}, attrs({{"trans_a", int64_t{1}}, {"trans_b", int64_t{1}}}));
  EXPECT_EQ(valuesOf(again), (std::vector<double>{14, 15, 20, 21}));
}

// ---- matmul_int8 (precision_int8_weights)

TEST(MatmulInt8Op, ScalesEachGroupOfRowsPerColumn) {
  // b [3, 2] in groups of 2 rows: rows 0-1 scale by [0.5, 0.25], row 2 by [2, 1].
  Tensor a = f32({1, 3}, {1, 2, 3});
  Tensor b = make(DType::I8, {3, 2}, {2, -4, 1, 8, -1, 3});
  Tensor scale = f32({2, 2}, {0.5, 0.25, 2, 1});
  Tensor bias = f32({2}, {0.5, -1});
  Tensor residual = f32({1, 2}, {10, 20});
  Attributes group = attrs({{"group", int64_t{2}}});
  // [1 + 1 - 6, -1 + 4 + 9] = [-4, 12]; relu(+ bias) = [0, 11]; + residual.
  Tensor y = run("matmul_int8", {&a, &b, &scale, &bias, &residual},
                 attrs({{"group", int64_t{2}}, {"activation", std::string("relu")}}));
  EXPECT_EQ(y.dtype(), DType::F32);
  EXPECT_EQ(valuesOf(y), (std::vector<double>{10, 31}));
  EXPECT_EQ(valuesOf(run("matmul_int8", {&a, &b, &scale}, group)), (std::vector<double>{-4, 12}));
}

TEST(MatmulInt8Op, InfersAndRejects) {
  auto contains = [](const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; };
  const TensorType a{DType::F32, {kBatch, kSeq, 64}}, b{DType::I8, {64, 96}}, scale{DType::F32, {2, 96}};
  const Attributes group32 = attrs({{"group", int64_t{32}}});
  EXPECT_EQ(inferred("matmul_int8", {a, b, scale}, group32), "f32[batch, seq, 96]");
  const std::string noGroup = inferred("matmul_int8", {a, b, scale});
  EXPECT_TRUE(contains(noGroup, "group must be at least 1")) << noGroup;
  const std::string rows = inferred("matmul_int8", {a, b, scale}, attrs({{"group", int64_t{16}}}));
  EXPECT_TRUE(contains(rows, "scale has 2 rows but b's 64 rows in groups of 16 need 4")) << rows;
  const std::string dtype = inferred("matmul_int8", {a, {DType::F32, {64, 96}}, scale}, group32);
  EXPECT_TRUE(contains(dtype, "b") && contains(dtype, "i8")) << dtype;
  const std::string k = inferred("matmul_int8", {{DType::F32, {4, 63}}, b, scale}, group32);
  EXPECT_TRUE(contains(k, "contraction dims differ: 63 (last dim of a) vs 64 (rows of b)")) << k;
  const std::string columns = inferred("matmul_int8", {a, b, {DType::F32, {2, 95}}}, group32);
  EXPECT_TRUE(contains(columns, "scale has 95 columns but b has 96")) << columns;
}

TEST(GemmOp, NoBiasAndColumnBias) {
  Tensor a = f32({2, 2}, {1, 2, 3, 4});
  Tensor b = f32({2, 2}, {1, 1, 1, 1});
  EXPECT_EQ(valuesOf(run("gemm", {&a, &b})), (std::vector<double>{3, 3, 7, 7}));
  EXPECT_EQ(valuesOf(run("gemm", {&a, &b, nullptr})), (std::vector<double>{3, 3, 7, 7}));
  Tensor column = f32({2, 1}, {100, 200});
  EXPECT_EQ(valuesOf(run("gemm", {&a, &b, &column})), (std::vector<double>{103, 103, 207, 207}));
}

TEST(GemmOp, Integers) {
  Tensor a = make(DType::I32, {1, 2}, {2, 3});
  Tensor b = make(DType::I32, {2, 1}, {4, 5});
  Tensor c = make(DType::I32, {1}, {7});
  Tensor y = run("gemm", {&a, &b, &c}, attrs({{"alpha", 2.0}, {"beta", 3.0}}));
  EXPECT_EQ(y.dtype(), DType::I32);
  EXPECT_EQ(valuesOf(y), (std::vector<double>{67}));  // 2 * 23 + 3 * 7
}

TEST(GemmOp, InfersSymbolicShapes) {
  EXPECT_EQ(inferred("gemm", {{DType::F32, {kBatch, 64}}, {DType::F32, {32, 64}}, {DType::F32, {32}}},
                     attrs({{"trans_b", true}})),
            "f32[batch, 32]");
  EXPECT_EQ(inferred("gemm", {{DType::F32, {kSeq, kBatch}}, {DType::F32, {kSeq, 8}}},
                     attrs({{"trans_a", true}})),
            "f32[batch, 8]");
}

TEST(GemmOp, Errors) {
  Tensor a = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = f32({3, 2}, {1, 0, 0, 1, 1, 1});
  Tensor wide = f32({3}, {1, 2, 3});
  EXPECT_NE(errorOf("gemm", {&a, &b, &wide}).find("c [3] does not broadcast to the result [2, 2]"),
            std::string::npos)
      << errorOf("gemm", {&a, &b, &wide});
  EXPECT_NE(errorOf("gemm", {&a, &a}).find("contraction dims differ: 3 (a) vs 2 (b)"), std::string::npos)
      << errorOf("gemm", {&a, &a});
  EXPECT_NE(errorOf("gemm", {&wide, &b}).find("a must have rank 2"), std::string::npos);
  EXPECT_NE(errorOf("gemm", {&a, &b}, attrs({{"trans_a", std::string("yes")}})).find("trans_a"),
            std::string::npos);
}

TEST(GemmOp, BFloat16Weight) {
  // a = [[1.00390625, 3]] rounds to [[1, 3]]; b^T stored [N = 2, K = 2].
  Tensor a = f32({1, 2}, {1.00390625, 3});
  Tensor b = make(DType::BF16, {2, 2}, {1, 2, -1, 0.5});
  Tensor c = f32({2}, {0.001, 0});
  Tensor y = run("gemm", {&a, &b, &c}, attrs({{"trans_b", true}, {"alpha", 2.0}, {"beta", 1.0}}));
  EXPECT_EQ(y.dtype(), DType::F32);
  // 2 * (1 + 6) + 0.001, 2 * (-1 + 1.5).
  expectClose(y, DType::F32, {1, 2}, {14.001, 1}, 1e-7);
  EXPECT_EQ(inferred("gemm", {{DType::F32, {kBatch, 4}}, {DType::BF16, {4, 8}}}), "f32[batch, 8]");
  EXPECT_NE(inferred("gemm", {{DType::BF16, {2, 4}}, {DType::F32, {4, 8}}}).find("a (bf16) and b (f32)"),
            std::string::npos);
}

}  // namespace
}  // namespace kiln
