// The reduction ops (ir/ops/reduction.cpp and
// backends/reference/reduction.cpp): reference kernels against
// hand-computed values (through evaluateOp), type inference on symbolic
// shapes with known and unknown axes, and the errors for bad operands.
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

Tensor axesOf(const std::vector<int64_t>& axes) { return i64({static_cast<int64_t>(axes.size())}, axes); }

// Inference on operand types, with values where known (weights); a null type is an absent operand.
Expected<std::vector<TensorType>> infer(std::string_view op, std::vector<OperandInfo> operands,
                                        const Attributes& a = {}, int numResults = 1) {
  std::vector<TensorType> results;
  Status status = inferResultTypes(*OpRegistry::global().find(op), a, operands, numResults, results);
  if (!status) return status;
  return results;
}

std::string inferredStr(const Expected<std::vector<TensorType>>& r) {
  if (!r) return "error: " + r.status().message();
  std::string out;
  for (const TensorType& t : r.value()) out += (out.empty() ? "" : ", ") + t.str();
  return out;
}

// The ONNX ReduceSum example: shape [3, 2, 2].
Tensor onnxExample() { return f32({3, 2, 2}, {5, 1, 20, 2, 30, 1, 40, 2, 55, 1, 60, 2}); }

TEST(ReductionOps, ReduceOverGivenAxes) {
  Tensor x = onnxExample();
  Tensor axis1 = axesOf({1});
  expectClose(run("reduce_sum", {&x, &axis1}), DType::F32, {3, 1, 2}, {25, 3, 70, 3, 115, 3});
  expectClose(run("reduce_sum", {&x, &axis1}, attrs({{"keepdims", false}})), DType::F32, {3, 2},
              {25, 3, 70, 3, 115, 3});
  Tensor outer = axesOf({0, 2});
  expectClose(run("reduce_sum", {&x, &outer}, attrs({{"keepdims", int64_t{0}}})), DType::F32, {2}, {93, 126});
  Tensor last = axesOf({2});
  expectClose(run("reduce_mean", {&x, &last}), DType::F32, {3, 2, 1}, {3, 11, 15.5, 21, 28, 31});
  Tensor negative = axesOf({-2});
  expectClose(run("reduce_max", {&x, &negative}, attrs({{"keepdims", false}})), DType::F32, {3, 2},
              {20, 2, 40, 2, 60, 2});
}

TEST(ReductionOps, AbsentOrEmptyAxes) {
  Tensor x = onnxExample();
  expectClose(run("reduce_mean", {&x}), DType::F32, {1, 1, 1}, {18.25});
  expectClose(run("reduce_sum", {&x}, attrs({{"keepdims", false}})), DType::F32, {}, {219});
  expectClose(run("reduce_max", {&x, nullptr}), DType::F32, {1, 1, 1}, {60});
  Tensor none = axesOf({});
  expectClose(run("reduce_sum", {&x, &none}), DType::F32, {1, 1, 1}, {219});
  Tensor same = run("reduce_sum", {&x, &none}, attrs({{"noop_with_empty_axes", true}}));
  expectClose(same, DType::F32, {3, 2, 2}, {5, 1, 20, 2, 30, 1, 40, 2, 55, 1, 60, 2});
}

TEST(ReductionOps, IntegerReductionsStayExact) {
  const int64_t big = int64_t{1} << 53;
  Tensor x = i64({3}, {big, 1, 1});
  EXPECT_EQ(ints(run("reduce_sum", {&x})), (std::vector<int64_t>{big + 2}));
  Tensor y = make(DType::I32, {2, 2}, {1, 2, 3, 3});
  Tensor axis1 = axesOf({1});
  Tensor mean = run("reduce_mean", {&y, &axis1}, attrs({{"keepdims", false}}));
  EXPECT_EQ(mean.dtype(), DType::I32);
  EXPECT_EQ(ints(mean), (std::vector<int64_t>{1, 3}));  // 1.5 truncates
  Tensor z = i64({2}, {big + 1, big + 3});
  EXPECT_EQ(ints(run("reduce_max", {&z})), (std::vector<int64_t>{big + 3}));
}

TEST(ReductionOps, HalfSumsAccumulateWide) {
  // Summed in half, 2048 + 1 + 1 would stay 2048 (each +1 ties to even).
  Tensor h = make(DType::F16, {3}, {2048, 1, 1});
  expectClose(run("reduce_sum", {&h}), DType::F16, {1}, {2050}, 0.0);
}

TEST(ReductionOps, NaNAndEmptyReductions) {
  Tensor x = f32({2, 2}, {kNaN, 1, 1, kNaN});
  Tensor axis1 = axesOf({1});
  expectClose(run("reduce_max", {&x, &axis1}), DType::F32, {2, 1}, {kNaN, kNaN});
  Tensor empty = f32({2, 0}, {});
  expectClose(run("reduce_sum", {&empty, &axis1}), DType::F32, {2, 1}, {0, 0});
  expectClose(run("reduce_max", {&empty, &axis1}), DType::F32, {2, 1}, {-kInf, -kInf});
  expectClose(run("reduce_mean", {&empty, &axis1}), DType::F32, {2, 1}, {kNaN, kNaN});
}

TEST(ReductionOps, ReduceInferenceWithKnownAxes) {
  TensorType x{DType::F32, dims({"batch", "seq", "768"})};
  TensorType axesType{DType::I64, dims({"1"})};
  Tensor last = axesOf({-1});
  EXPECT_EQ(inferredStr(infer("reduce_mean", {{&x, nullptr}, {&axesType, &last}})), "f32[batch, seq, 1]");
  EXPECT_EQ(inferredStr(infer("reduce_mean", {{&x, nullptr}, {&axesType, &last}}, attrs({{"keepdims", false}}))),
            "f32[batch, seq]");
  EXPECT_EQ(inferredStr(infer("reduce_sum", {{&x, nullptr}}, attrs({{"keepdims", false}}))), "f32[]");
  TensorType noAxes{DType::I64, dims({"0"})};
  EXPECT_EQ(inferredStr(infer("reduce_sum", {{&x, nullptr}, {&noAxes, nullptr}},
                              attrs({{"noop_with_empty_axes", true}}))),
            "f32[batch, seq, 768]");
  EXPECT_EQ(inferredStr(infer("reduce_sum", {{&x, nullptr}, {&noAxes, nullptr}})), "f32[1, 1, 1]");
}

TEST(ReductionOps, ReduceInferenceWithUnknownAxes) {
  TensorType x{DType::F32, dims({"batch", "seq", "768"})};
  TensorType two{DType::I64, dims({"2"})};
  // Which dims are reduced is unknown, so every dim is; the rank is not.
  EXPECT_EQ(inferredStr(infer("reduce_max", {{&x, nullptr}, {&two, nullptr}})), "f32[?, ?, ?]");
  EXPECT_EQ(inferredStr(infer("reduce_max", {{&x, nullptr}, {&two, nullptr}}, attrs({{"keepdims", false}}))),
            "f32[?]");
  TensorType n{DType::I64, dims({"n"})};
  EXPECT_EQ(inferredStr(infer("reduce_max", {{&x, nullptr}, {&n, nullptr}}, attrs({{"keepdims", false}}))),
            "error: reduce_max(f32[batch, seq, 768], i64[n]): keepdims = false needs the number of axes "
            "to be static, got axes i64[n]");
}

TEST(ReductionOps, ReduceErrors) {
  Tensor x = onnxExample();
  Tensor outOfRange = axesOf({3});
  EXPECT_EQ(errorOf("reduce_sum", {&x, &outOfRange}),
            "reduce_sum(f32[3, 2, 2], i64[1]): axes[0] = 3 is out of range for rank 3 (valid: [-3, 2])");
  Tensor repeated = axesOf({1, -2});
  EXPECT_EQ(errorOf("reduce_sum", {&x, &repeated}),
            "reduce_sum(f32[3, 2, 2], i64[2]): axes names axis 1 more than once");
  Tensor floatAxes = f32({1}, {0});
  EXPECT_EQ(errorOf("reduce_mean", {&x, &floatAxes}),
            "reduce_mean(f32[3, 2, 2], f32[1]): axes must be i64, got f32[1]");
  Tensor flags = make(DType::Bool, {2}, {1, 0});
  EXPECT_NE(errorOf("reduce_max", {&flags}).find("x must be a numeric tensor"), std::string::npos);
}

TEST(ReductionOps, Softmax) {
  Tensor x = f32({1, 3}, {1, 2, 3});
  expectClose(run("softmax", {&x}), DType::F32, {1, 3}, {0.09003057317038046, 0.24472847105479764, 0.6652409557748219});
  expectClose(run("log_softmax", {&x}), DType::F32, {1, 3},
              {-2.4076059644443806, -1.4076059644443804, -0.4076059644443804});
  Tensor m = f32({2, 2}, {1, 2, 3, 4});
  expectClose(run("softmax", {&m}, attrs({{"axis", int64_t{0}}})), DType::F32, {2, 2},
              {0.11920292202211755, 0.11920292202211755, 0.8807970779778823, 0.8807970779778823});
  expectClose(run("log_softmax", {&m}, attrs({{"axis", int64_t{-2}}})), DType::F32, {2, 2},
              {-2.1269280110429727, -2.1269280110429727, -0.12692801104297263, -0.12692801104297263});
  // Shifting by the max keeps large inputs finite.
  Tensor large = f32({2}, {1000, 1001});
  expectClose(run("softmax", {&large}), DType::F32, {2}, {0.2689414213699951, 0.7310585786300049});
  expectClose(run("log_softmax", {&large}), DType::F32, {2}, {-1.3132616875182228, -0.31326168751822286});
  Tensor h = make(DType::F16, {2}, {0, 0});
  expectClose(run("softmax", {&h}), DType::F16, {2}, {0.5, 0.5}, 0.0);
}

TEST(ReductionOps, SoftmaxErrors) {
  Tensor m = f32({2, 2}, {1, 2, 3, 4});
  EXPECT_EQ(errorOf("softmax", {&m}, attrs({{"axis", int64_t{2}}})),
            "softmax(f32[2, 2]): axis = 2 is out of range for rank 2 (valid: [-2, 1])");
  Tensor n = i64({2}, {1, 2});
  EXPECT_NE(errorOf("log_softmax", {&n}).find("x must be a float tensor"), std::string::npos);
  TensorType symbolic{DType::F32, dims({"batch", "heads", "seq", "past + seq"})};
  EXPECT_EQ(inferredStr(infer("softmax", {{&symbolic, nullptr}})), "f32[batch, heads, seq, past + seq]");
}

TEST(ReductionOps, LayerNorm) {
  Tensor x = f32({2, 3}, {1, 2, 3, 2, 4, 6});
  Tensor scale = f32({3}, {1, 2, 3});
  Tensor bias = f32({3}, {0.5, 0, 0});
  // Rows have mean 2 and 4, variance 2/3 and 8/3; both normalise to +-sqrt(1.5).
  std::vector<Tensor> r = runAll("layer_norm", {&x, &scale, &bias}, attrs({{"epsilon", 0.0}}), 3);
  expectClose(r[0], DType::F32, {2, 3}, {-0.7247448713915890, 0, 3.674234614174767,
                                         -0.7247448713915890, 0, 3.674234614174767});
  expectClose(r[1], DType::F32, {2, 1}, {2, 4});
  expectClose(r[2], DType::F32, {2, 1}, {1.224744871391589, 0.6123724356957945});
  // Default epsilon 1e-5; no bias.
  Tensor pair = f32({2}, {0, 2});
  Tensor ones = f32({2}, {1, 1});
  expectClose(run("layer_norm", {&pair, &ones}), DType::F32, {2}, {-0.9999950000374997, 0.9999950000374997});
  // axis = 0 normalises everything (mean 3, variance 8/3); scale [3] broadcasts over [2, 3].
  Tensor unit = f32({3}, {1, 1, 1});
  expectClose(run("layer_norm", {&x, &unit}, attrs({{"axis", int64_t{0}}, {"epsilon", 0.0}})), DType::F32, {2, 3},
              {-1.224744871391589, -0.6123724356957945, 0, -0.6123724356957945, 0.6123724356957945,
               1.8371173070873836});
}

// layer_norm(x, scale, bias, residual) normalises x + residual, the residual's
// rows repeating over x's leading dims; so does an add before the norm.
TEST(ReductionOps, LayerNormOfASumWithAResidual) {
  Tensor x = f32({2, 3}, {0, 1, 2, 1, 3, 5});
  Tensor row = f32({3}, {1, 1, 1});
  Tensor scale = f32({3}, {1, 2, 3});
  Tensor bias = f32({3}, {0.5, 0, 0});
  Tensor summed = f32({2, 3}, {1, 2, 3, 2, 4, 6});  // x + row
  const Attributes a = attrs({{"epsilon", 0.0}});
  const std::vector<Tensor> expected = runAll("layer_norm", {&summed, &scale, &bias}, a, 3);
  const std::vector<Tensor> fused = runAll("layer_norm", {&x, &scale, &bias, &row}, a, 3);
  for (size_t r = 0; r < 3; ++r) EXPECT_EQ(valuesOf(fused[r]), valuesOf(expected[r])) << "result " << r;
  EXPECT_EQ(valuesOf(run("layer_norm", {&x, &scale, nullptr, &x}, a)),
            valuesOf(run("layer_norm", {&x, &scale}, a)));  // x + x normalises as x

  TensorType batched{DType::F32, dims({"batch", "seq", "8"})};
  TensorType rows{DType::F32, dims({"seq", "8"})}, wide{DType::F32, dims({"batch", "batch", "seq", "8"})};
  TensorType w{DType::F32, dims({"8"})}, other{DType::F32, dims({"4"})};
  EXPECT_EQ(inferredStr(infer("layer_norm", {{&batched, nullptr}, {&w, nullptr}, {nullptr, nullptr}, {&rows, nullptr}})),
            "f32[batch, seq, 8]");
  EXPECT_NE(inferredStr(infer("layer_norm", {{&batched, nullptr}, {&w, nullptr}, {nullptr, nullptr}, {&other, nullptr}}))
                .find("residual [4] must be the trailing dims of x [batch, seq, 8]"),
            std::string::npos);
  EXPECT_NE(inferredStr(infer("layer_norm", {{&batched, nullptr}, {&w, nullptr}, {nullptr, nullptr}, {&wide, nullptr}}))
                .find("must be the trailing dims"),
            std::string::npos);
}

TEST(ReductionOps, LayerNormInferenceAndErrors) {
  TensorType x{DType::F32, dims({"batch", "seq", "8"})};
  TensorType w{DType::F32, dims({"8"})};
  EXPECT_EQ(inferredStr(infer("layer_norm", {{&x, nullptr}, {&w, nullptr}, {&w, nullptr}}, {}, 3)),
            "f32[batch, seq, 8], f32[batch, seq, 1], f32[batch, seq, 1]");
  TensorType w2{DType::F32, dims({"seq", "8"})};
  EXPECT_EQ(inferredStr(infer("layer_norm", {{&x, nullptr}, {&w2, nullptr}}, attrs({{"axis", int64_t{1}}}), 2)),
            "f32[batch, seq, 8], f32[batch, 1, 1]");
  TensorType hidden{DType::F32, dims({"batch", "hidden"})};
  EXPECT_EQ(inferredStr(infer("layer_norm", {{&hidden, nullptr}, {&w, nullptr}})), "f32[batch, hidden]");

  TensorType w4{DType::F32, dims({"4"})};
  EXPECT_EQ(inferredStr(infer("layer_norm", {{&x, nullptr}, {&w4, nullptr}})),
            "error: layer_norm(f32[batch, seq, 8], f32[4]): scale [4] does not broadcast to the normalized "
            "dims [8]");
  TensorType wh{DType::F16, dims({"8"})};
  EXPECT_NE(inferredStr(infer("layer_norm", {{&x, nullptr}, {&w, nullptr}, {&wh, nullptr}})).find(
                "operands 0 and 2 must have the same dtype"),
            std::string::npos);
  Tensor small = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor wide = f32({2, 3}, {1, 1, 1, 1, 1, 1});
  EXPECT_NE(errorOf("layer_norm", {&small, &wide}).find("scale [2, 3] does not broadcast"), std::string::npos);
}

TEST(ReductionOps, Cumsum) {
  Tensor x = make(DType::F64, {5}, {1, 2, 3, 4, 5});
  Tensor axis = make(DType::I32, {}, {0});
  expectClose(run("cumsum", {&x, &axis}), DType::F64, {5}, {1, 3, 6, 10, 15});
  expectClose(run("cumsum", {&x, &axis}, attrs({{"exclusive", true}})), DType::F64, {5}, {0, 1, 3, 6, 10});
  expectClose(run("cumsum", {&x, &axis}, attrs({{"reverse", true}})), DType::F64, {5}, {15, 14, 12, 9, 5});
  expectClose(run("cumsum", {&x, &axis}, attrs({{"exclusive", int64_t{1}}, {"reverse", int64_t{1}}})), DType::F64,
              {5}, {14, 12, 9, 5, 0});
  Tensor m = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor rows = i64({1}, {0});
  expectClose(run("cumsum", {&m, &rows}), DType::F32, {2, 3}, {1, 2, 3, 5, 7, 9});
  Tensor lastAxis = i64({}, {-1});
  expectClose(run("cumsum", {&m, &lastAxis}), DType::F32, {2, 3}, {1, 3, 6, 4, 9, 15});
  const int64_t big = int64_t{1} << 53;
  Tensor n = i64({3}, {big, 1, 1});
  EXPECT_EQ(ints(run("cumsum", {&n, &rows})), (std::vector<int64_t>{big, big + 1, big + 2}));
}

TEST(ReductionOps, CumsumInferenceAndErrors) {
  TensorType x{DType::I64, dims({"batch", "seq"})};
  TensorType axisType{DType::I64, {}};
  EXPECT_EQ(inferredStr(infer("cumsum", {{&x, nullptr}, {&axisType, nullptr}})), "i64[batch, seq]");
  Tensor two = i64({}, {2});
  EXPECT_EQ(inferredStr(infer("cumsum", {{&x, nullptr}, {&axisType, &two}})),
            "error: cumsum(i64[batch, seq], i64[]): axis = 2 is out of range for rank 2 (valid: [-2, 1])");
  TensorType floatAxis{DType::F32, {}};
  EXPECT_NE(inferredStr(infer("cumsum", {{&x, nullptr}, {&floatAxis, nullptr}})).find(
                "axis must be an integer tensor"),
            std::string::npos);
  TensorType vectorAxis{DType::I64, dims({"2"})};
  EXPECT_NE(inferredStr(infer("cumsum", {{&x, nullptr}, {&vectorAxis, nullptr}})).find(
                "axis must be a scalar or a 1-element 1-D tensor"),
            std::string::npos);
}

}  // namespace
}  // namespace kiln
