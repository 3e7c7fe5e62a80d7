// The vector kernels (backends/cpu/vector_kernels.h) against the registry
// reference kernels on random data: many shapes (one row, odd widths with
// vector tails, rows long enough to be split across threads), broadcast
// patterns, the result written over an operand, and every instruction set
// this CPU has. The vector exp/tanh/erf/sigmoid against libm in double,
// in ulps.
#include "backends/cpu/vector_kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/kernels.h"
#include "backends/reference/reference.h"
#include "ir/tensor.h"

namespace kiln::cpu {
namespace {

std::mt19937& rng() {
  static std::mt19937 generator(11);
  return generator;
}

Tensor randomF32(std::vector<int64_t> shape, float lo = -3.0f, float hi = 3.0f) {
  Tensor t = Tensor::allocate(DType::F32, std::move(shape));
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numElements(); ++i) t.data<float>()[i] = dist(rng());
  return t;
}

Tensor ints(DType dtype, std::vector<int64_t> shape, const std::vector<int64_t>& values) {
  Tensor t = Tensor::allocate(dtype, std::move(shape));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::I64) t.data<int64_t>()[i] = values[i];
    else t.data<int32_t>()[i] = static_cast<int32_t>(values[i]);
  }
  return t;
}

Attributes attrs(std::initializer_list<std::pair<std::string, AttrValue>> values) {
  Attributes a;
  for (const auto& [name, value] : values) a.set(name, value);
  return a;
}

// Distance in representable floats; NaN against NaN is 0.
int64_t ulps(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : std::numeric_limits<int64_t>::max();
  auto ordered = [](float f) {
    const auto bits = static_cast<int64_t>(std::bit_cast<int32_t>(f));
    return bits < 0 ? std::numeric_limits<int32_t>::min() - bits : bits;
  };
  return std::abs(ordered(a) - ordered(b));
}

// How a case places the result: in fresh memory, or over operand k (a copy
// of it, so the reference's inputs stay intact).
constexpr int kFresh = -1;

struct Outcome {
  bool declined = false;
  std::vector<Tensor> expected, actual;
  std::vector<Tensor> inputs;  // the vector kernel's copies, which an aliased result lives in
};

// Runs `op` with the reference (evaluateOp) and with the vector kernel on
// `isa`, the vector result written over operand `aliased` when it is not
// kFresh.
Outcome runBoth(const std::string& op, const Attributes& a, const std::vector<const Tensor*>& inputs, Isa isa,
                int aliased = kFresh, int numResults = 1) {
  const OpDef& def = *OpRegistry::global().find(op);
  Outcome outcome;
  Expected<std::vector<Tensor>> expected = evaluateOp(def, a, inputs, numResults);
  EXPECT_TRUE(static_cast<bool>(expected)) << op << ": " << expected.status().message();
  if (!expected) return outcome;
  outcome.expected = *expected;

  std::vector<Tensor>& copies = outcome.inputs;
  for (const Tensor* t : inputs) copies.push_back(t ? t->clone() : Tensor{});
  std::vector<const Tensor*> fastInputs;
  for (size_t i = 0; i < inputs.size(); ++i) fastInputs.push_back(inputs[i] ? &copies[i] : nullptr);
  for (int r = 0; r < numResults; ++r) {
    const Tensor& e = outcome.expected[static_cast<size_t>(r)];
    if (r == 0 && aliased != kFresh) {
      const Tensor& target = copies[static_cast<size_t>(aliased)];
      EXPECT_EQ(target.byteSize(), e.byteSize()) << op << ": aliasing needs equal sizes";
      outcome.actual.push_back(Tensor::view(e.dtype(), e.shape(), target.data()));
    } else {
      outcome.actual.push_back(Tensor::allocate(e.dtype(), e.shape()));
    }
  }
  std::vector<Tensor*> outputs;
  for (Tensor& t : outcome.actual) outputs.push_back(&t);
  // As Graph::addOp leaves them: programs parsed.
  const Attributes typed = typedAttributes(def, inputs.size(), a).value_or(a);
  const std::optional<Status> ran = runVectorKernel(def.kind, KernelContext{def, typed, fastInputs, outputs}, isa);
  if (!ran) {
    outcome.declined = true;
    return outcome;
  }
  EXPECT_TRUE(ran->isOk()) << op << ": " << ran->message();
  return outcome;
}

// Each element within atol + rtol * |expected|; NaN where the reference has NaN.
void expectNear(const Tensor& actual, const Tensor& expected, double atol, double rtol, const std::string& what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  int failures = 0;
  for (int64_t i = 0; i < expected.numElements() && failures < 5; ++i) {
    const double e = expected.elementAsDouble(i), a = actual.elementAsDouble(i);
    const bool ok = std::isnan(e) ? std::isnan(a) : std::isinf(e) ? a == e : std::abs(a - e) <= atol + rtol * std::abs(e);
    if (!ok) {
      ++failures;
      ADD_FAILURE() << what << ": element " << i << " is " << a << ", the reference " << e;
    }
  }
}

void expectSameBytes(const Tensor& actual, const Tensor& expected, const std::string& what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  EXPECT_EQ(std::memcmp(actual.data(), expected.data(), expected.byteSize()), 0) << what;
}

std::string describe(const std::string& op, const std::vector<int64_t>& shape, int aliased = kFresh) {
  std::string text = op + " " + shapeStr(shape);
  if (aliased != kFresh) text += " over operand " + std::to_string(aliased);
  return text;
}

class VectorKernels : public ::testing::TestWithParam<Isa> {};

constexpr double kUlp = 1.0 / (1 << 23);  // of 1.0f
// The norms round about once, as the reference does in double: a couple of
// ulps of the larger of the value and 1.
constexpr double kNormTolerance = 3 * kUlp;

INSTANTIATE_TEST_SUITE_P(Isas, VectorKernels, ::testing::ValuesIn(isasOfThisCpu()),
                         [](const ::testing::TestParamInfo<Isa>& info) { return std::string(isaName(info.param)); });

// Shapes with one row, widths below, at and past a vector, odd tails, and
// long rows.
const std::vector<std::vector<int64_t>> kRowShapes = {
    {1, 1}, {1, 7}, {3, 16}, {5, 33}, {2, 3, 128}, {16, 128}, {4, 1000}, {1, 4097}, {64, 1031}};

TEST_P(VectorKernels, MathFunctionsAgainstLibm) {
  struct Function {
    vec::VectorOp op;
    double (*exact)(double);
    float lo, hi;
    int64_t maxUlps;
  };
  const Function functions[] = {
      {vec::VectorOp::Exp, [](double x) { return std::exp(x); }, -104.0f, 89.0f, 2},
      {vec::VectorOp::Tanh, [](double x) { return std::tanh(x); }, -10.0f, 10.0f, 3},
      {vec::VectorOp::Erf, [](double x) { return std::erf(x); }, -5.0f, 5.0f, 3},
      {vec::VectorOp::Sigmoid, [](double x) { return 1.0 / (1.0 + std::exp(-x)); }, -30.0f, 30.0f, 3},
  };
  for (const Function& f : functions) {
    std::vector<float> x;
    std::uniform_real_distribution<float> wide(f.lo, f.hi), narrow(-1e-3f, 1e-3f);
    for (int i = 0; i < 200000; ++i) x.push_back(wide(rng()));
    for (int i = 0; i < 2000; ++i) x.push_back(narrow(rng()));
    for (float special : {0.0f, -0.0f, 1e-30f, -1e-30f, 0.625f, -0.625f, 1.0f, -1.0f, f.lo, f.hi}) x.push_back(special);
    std::vector<float> y(x.size());
    applyUnary(f.op, x.data(), y.data(), static_cast<int64_t>(x.size()), GetParam());
    int64_t worst = 0;
    float worstAt = 0.0f;
    for (size_t i = 0; i < x.size(); ++i) {
      const int64_t d = ulps(y[i], static_cast<float>(f.exact(x[i])));
      if (d > worst) worst = d, worstAt = x[i];
    }
    EXPECT_LE(worst, f.maxUlps) << "op " << static_cast<int>(f.op) << " at x = " << worstAt;
  }
  // Special values: NaN stays NaN; the infinities and overflow saturate.
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {std::nanf(""), inf, -inf, 200.0f, -200.0f};
  std::vector<float> y(x.size());
  applyUnary(vec::VectorOp::Exp, x.data(), y.data(), 5, GetParam());
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], inf);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_EQ(y[3], inf);
  EXPECT_EQ(y[4], 0.0f);
  applyUnary(vec::VectorOp::Tanh, x.data(), y.data(), 5, GetParam());
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 1.0f);
  EXPECT_EQ(y[2], -1.0f);
  applyUnary(vec::VectorOp::Erf, x.data(), y.data(), 5, GetParam());
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 1.0f);
  EXPECT_EQ(y[2], -1.0f);
}

TEST_P(VectorKernels, RmsNorm) {
  for (const std::vector<int64_t>& shape : kRowShapes) {
    const int64_t cols = shape.back();
    Tensor x = randomF32(shape);
    Tensor scale = randomF32({cols});
    Tensor splat = randomF32({1});
    const Attributes a = attrs({{"epsilon", 1e-6}});
    for (const Tensor* s : std::vector<const Tensor*>{nullptr, &scale, &splat})
      for (int aliased : {kFresh, 0}) {
        const std::string what = describe("rms_norm", shape, aliased);
        Outcome o = runBoth("rms_norm", a, {&x, s}, GetParam(), aliased);
        ASSERT_FALSE(o.declined) << what;
        expectNear(o.actual[0], o.expected[0], kNormTolerance, kNormTolerance, what);
      }
  }
  // Normalising the last two dims; a scale that broadcasts over part of them
  // is left to the reference.
  Tensor x = randomF32({3, 4, 24});
  Tensor scale = randomF32({4, 24});
  Tensor column = randomF32({4, 1});
  const Attributes overTwo = attrs({{"axis", int64_t{-2}}});
  Outcome o = runBoth("rms_norm", overTwo, {&x, &scale}, GetParam());
  ASSERT_FALSE(o.declined);
  expectNear(o.actual[0], o.expected[0], kNormTolerance, kNormTolerance, "rms_norm over two dims");
  EXPECT_TRUE(runBoth("rms_norm", overTwo, {&x, &column}, GetParam()).declined);
}

TEST_P(VectorKernels, LayerNorm) {
  for (const std::vector<int64_t>& shape : kRowShapes) {
    const int64_t cols = shape.back();
    // An offset makes the mean matter (cancellation in the variance).
    Tensor x = randomF32(shape, 7.0f, 13.0f);
    Tensor scale = randomF32({cols});
    Tensor bias = randomF32({cols});
    const Attributes a = attrs({{"epsilon", 1e-12}});
    for (const Tensor* b : std::vector<const Tensor*>{nullptr, &bias})
      for (int aliased : {kFresh, 0}) {
        const std::string what = describe("layer_norm", shape, aliased);
        Outcome o = runBoth("layer_norm", a, {&x, &scale, b}, GetParam(), aliased);
        ASSERT_FALSE(o.declined) << what;
        expectNear(o.actual[0], o.expected[0], kNormTolerance, kNormTolerance, what);
      }
    // The optional mean and inv_std_dev results.
    Outcome o = runBoth("layer_norm", a, {&x, &scale, &bias}, GetParam(), kFresh, 3);
    ASSERT_FALSE(o.declined);
    for (size_t r = 0; r < 3; ++r) expectNear(o.actual[r], o.expected[r], 2e-6, 1e-6, describe("layer_norm stats", shape));
    // A residual of x's shape, and one row repeated over every row of x, in place too.
    Tensor same = randomF32(shape), row = randomF32({cols});
    for (const Tensor* residual : {&same, &row})
      for (int aliased : {kFresh, 0}) {
        const std::string what = describe("layer_norm residual", shape, aliased);
        Outcome added = runBoth("layer_norm", a, {&x, &scale, &bias, residual}, GetParam(), aliased);
        ASSERT_FALSE(added.declined) << what;
        expectNear(added.actual[0], added.expected[0], kNormTolerance, kNormTolerance, what);
      }
  }
}

TEST_P(VectorKernels, SoftmaxOverTheLastAxis) {
  for (const std::vector<int64_t>& shape : kRowShapes)
    for (int aliased : {kFresh, 0}) {
      Tensor x = randomF32(shape, -20.0f, 20.0f);
      // Masked positions (-inf) in all but one-column rows, and a large offset.
      for (int64_t i = 0; shape.back() > 1 && i < x.numElements(); i += 5) x.data<float>()[i] = -INFINITY;
      x.data<float>()[x.numElements() - 1] = 80.0f;
      Outcome o = runBoth("softmax", {}, {&x}, GetParam(), aliased);
      ASSERT_FALSE(o.declined);
      expectNear(o.actual[0], o.expected[0], 1e-12, 4 * kUlp, describe("softmax", shape, aliased));
    }
  // A row of -inf is NaN, as the reference makes it.
  Tensor masked = Tensor::allocate(DType::F32, {2, 3});
  std::fill_n(masked.data<float>(), 6, -INFINITY);
  Outcome o = runBoth("softmax", {}, {&masked}, GetParam());
  expectNear(o.actual[0], o.expected[0], 0, 0, "softmax of -inf");
  Tensor x = randomF32({4, 6});
  EXPECT_TRUE(runBoth("softmax", attrs({{"axis", int64_t{0}}}), {&x}, GetParam()).declined);
}

// reduce_sum over one axis (first, middle, last, negative), keepdims or not,
// within a rounding of the reference's double sum; several axes it declines.
TEST_P(VectorKernels, ReduceSumOverOneAxis) {
  const std::vector<int64_t> shape = {3, 37, 19};
  Tensor x = randomF32(shape, -2.0f, 2.0f);
  for (int64_t axis : {0, 1, 2, -2})
    for (int64_t keep : {0, 1}) {
      Tensor axes = Tensor::allocate(DType::I64, {1});
      *axes.data<int64_t>() = axis;
      Outcome o = runBoth("reduce_sum", attrs({{"keepdims", keep}}), {&x, &axes}, GetParam());
      ASSERT_FALSE(o.declined);
      expectNear(o.actual[0], o.expected[0], 1e-6, kUlp, describe("reduce_sum", shape) + " axis " +
                                                             std::to_string(axis));
    }
  Tensor twoAxes = Tensor::allocate(DType::I64, {2});
  twoAxes.data<int64_t>()[0] = 0, twoAxes.data<int64_t>()[1] = 1;
  EXPECT_TRUE(runBoth("reduce_sum", attrs({{"keepdims", int64_t{1}}}), {&x, &twoAxes}, GetParam()).declined);
}

TEST_P(VectorKernels, Activations) {
  const std::vector<std::pair<std::string, Attributes>> ops = {
      {"gelu", {}}, {"gelu", attrs({{"approximate", std::string("tanh")}})}, {"silu", {}}};
  for (const auto& [op, a] : ops)
    for (const std::vector<int64_t>& shape : kRowShapes)
      for (int aliased : {kFresh, 0}) {
        Tensor x = randomF32(shape, -12.0f, 12.0f);
        Outcome o = runBoth(op, a, {&x}, GetParam(), aliased);
        ASSERT_FALSE(o.declined);
        // The reference's own rounding in 1 + erf / 1 + tanh is about an ulp of 1.
        expectNear(o.actual[0], o.expected[0], 2e-7, 1e-6, describe(op, shape, aliased));
      }
}

TEST_P(VectorKernels, Swiglu) {
  for (const std::vector<int64_t>& shape : kRowShapes) {
    std::vector<int64_t> packedShape = shape;
    packedShape.back() *= 2;
    Tensor packed = randomF32(packedShape, -8.0f, 8.0f);
    Outcome o = runBoth("swiglu", {}, {&packed}, GetParam());
    ASSERT_FALSE(o.declined);
    expectNear(o.actual[0], o.expected[0], 1e-7, 1e-6, describe("swiglu packed", packedShape));
    Tensor gate = randomF32(shape, -8.0f, 8.0f), up = randomF32(shape);
    for (int aliased : {kFresh, 0, 1}) {
      Outcome two = runBoth("swiglu", {}, {&gate, &up}, GetParam(), aliased);
      ASSERT_FALSE(two.declined);
      expectNear(two.actual[0], two.expected[0], 1e-7, 1e-6, describe("swiglu", shape, aliased));
    }
  }
  // Broadcasting: a column of gates against rows of up.
  Tensor column = randomF32({4, 1}), rows = randomF32({4, 6});
  Outcome o = runBoth("swiglu", {}, {&column, &rows}, GetParam());
  ASSERT_FALSE(o.declined);
  expectNear(o.actual[0], o.expected[0], 1e-7, 1e-6, "swiglu [4, 1] x [4, 6]");
}

TEST_P(VectorKernels, BinaryOpsWithBroadcasts) {
  struct Operands {
    std::vector<int64_t> a, b;
  };
  const std::vector<Operands> cases = {
      {{2, 3, 37}, {2, 3, 37}}, {{2, 3, 37}, {37}},    {{2, 3, 37}, {3, 37}}, {{37}, {2, 3, 37}},
      {{2, 3, 37}, {2, 3, 1}},  {{2, 3, 37}, {1}},     {{2, 3, 37}, {}},      {{4, 1}, {1, 5}},
      {{64, 1031}, {1031}},     {{64, 1031}, {64, 1}}, {{1, 1}, {1, 1}}};
  for (const std::string op : {"add", "sub", "mul", "div"})
    for (const Operands& c : cases) {
      Tensor a = randomF32(c.a), b = randomF32(c.b, 0.5f, 3.0f);
      Outcome fresh = runBoth(op, {}, {&a, &b}, GetParam());
      ASSERT_FALSE(fresh.declined) << op << " " << shapeStr(c.a) << " " << shapeStr(c.b);
      expectSameBytes(fresh.actual[0], fresh.expected[0], op + " " + shapeStr(c.a) + " " + shapeStr(c.b));
      for (int aliased : {0, 1}) {
        if ((aliased == 0 ? c.a : c.b) != fresh.expected[0].shape()) continue;
        Outcome o = runBoth(op, {}, {&a, &b}, GetParam(), aliased);
        expectSameBytes(o.actual[0], o.expected[0], describe(op, fresh.expected[0].shape(), aliased));
      }
    }
  // A broadcast that is not one run of dims, and integers, go to the reference.
  Tensor a = randomF32({2, 3, 4}), b = randomF32({2, 1, 4});
  EXPECT_TRUE(runBoth("add", {}, {&a, &b}, GetParam()).declined);
  Tensor i = ints(DType::I64, {3}, {1, 2, 3});
  EXPECT_TRUE(runBoth("add", {}, {&i, &i}, GetParam()).declined);
}

TEST_P(VectorKernels, FusedElementwisePrograms) {
  const std::vector<std::string> programs = {
      "mul $0 $1; add %0 $2; tanh %1",
      "max $0 $1; min %0 $2; relu %1; neg %2; exp %3",
      "sub $0 1.5; div %0 $1; reciprocal %1; mul %2 $2",
      "mul $1 $1; add %0 0.25; sqrt %1; sigmoid %2; erf $0; add %3 %4",
      "gelu $0; gelu_tanh $1; silu $2; add %0 %1; mul %3 %2",
      "pow $1 2; log $1; sub %0 %1; add %2 $0",
      "add $0 $1; add %0 $2"};
  struct Operands {
    std::vector<int64_t> x0, x1, x2;
  };
  const std::vector<Operands> shapes = {{{2, 5, 33}, {2, 5, 33}, {2, 5, 33}},
                                        {{2, 5, 33}, {5, 33}, {2, 5, 33}},
                                        {{2, 5, 33}, {}, {33}},
                                        {{2, 5, 33}, {2, 5, 1}, {1, 1, 33}},
                                        {{1, 16, 128}, {16, 128}, {1, 16, 128}},
                                        {{8, 4096}, {4096}, {8, 1}},
                                        {{3}, {3}, {1}}};
  for (const std::string& text : programs)
    for (const Operands& s : shapes)
      for (int aliased : {kFresh, 0}) {
        Tensor x0 = randomF32(s.x0, -4.0f, 4.0f), x1 = randomF32(s.x1, 0.5f, 3.0f), x2 = randomF32(s.x2);
        const Attributes a = attrs({{"program", text}});
        const std::string what = "\"" + text + "\" on " + shapeStr(s.x0) + shapeStr(s.x1) + shapeStr(s.x2);
        Outcome o = runBoth("fused_elementwise", a, {&x0, &x1, &x2}, GetParam(), aliased);
        if (aliased != kFresh && o.expected[0].shape() != s.x0) continue;
        ASSERT_FALSE(o.declined) << what;
        expectNear(o.actual[0], o.expected[0], 1e-6, 2e-6, what);
      }
  // Broadcasts the vector program does not lay out go to the reference.
  Tensor x = randomF32({2, 3, 4}), middle = randomF32({2, 1, 4});
  EXPECT_TRUE(runBoth("fused_elementwise", attrs({{"program", std::string("add $0 $1")}}), {&x, &middle},
                      GetParam()).declined);
}

TEST_P(VectorKernels, Gather) {
  Tensor table = randomF32({50, 24});
  for (DType dtype : {DType::I64, DType::I32}) {
    Tensor ids = ints(dtype, {2, 7}, {0, 49, -1, 3, 3, 17, -50, 8, 9, 10, 11, 12, 13, 14});
    Outcome o = runBoth("gather", attrs({{"axis", int64_t{0}}}), {&table, &ids}, GetParam());
    ASSERT_FALSE(o.declined);
    expectSameBytes(o.actual[0], o.expected[0], "gather rows");
  }
  // Along an inner axis (bert's first token), and an index out of range.
  Tensor hidden = randomF32({2, 9, 16});
  Tensor first = ints(DType::I64, {}, {0});
  Outcome o = runBoth("gather", attrs({{"axis", int64_t{1}}}), {&hidden, &first}, GetParam());
  expectSameBytes(o.actual[0], o.expected[0], "gather axis 1");
  Tensor bad = ints(DType::I64, {2}, {1, 50});
  Tensor out = Tensor::allocate(DType::F32, {2, 24});
  std::vector<const Tensor*> inputs = {&table, &bad};
  std::vector<Tensor*> outputs = {&out};
  const Attributes axis0 = attrs({{"axis", int64_t{0}}});
  const std::optional<Status> status =
      runVectorKernel(OpKind::Gather, KernelContext{opDef(OpKind::Gather), axis0, inputs, outputs}, GetParam());
  ASSERT_TRUE(status.has_value());
  EXPECT_NE(status->message().find("gather: index 50 is out of range for axis 0 of size 50"), std::string::npos)
      << status->message();
}

TEST_P(VectorKernels, Slice) {
  Tensor x = randomF32({4, 6, 10});
  struct Case {
    std::vector<int64_t> starts, ends, axes;
  };
  const std::vector<Case> cases = {{{0}, {3}, {0}},          {{1, 2}, {3, 5}, {1, 2}}, {{-4}, {1000}, {2}},
                                   {{2}, {4}, {-3}},         {{0, 0, 0}, {4, 6, 10}, {0, 1, 2}},
                                   {{1, 0}, {3, 6}, {0, 1}}, {{5}, {2}, {1}}};
  for (const Case& c : cases) {
    // As operands, and as the dim-list attributes the executor resolves.
    Tensor starts = ints(DType::I64, {static_cast<int64_t>(c.starts.size())}, c.starts);
    Tensor ends = ints(DType::I64, {static_cast<int64_t>(c.ends.size())}, c.ends);
    Tensor axes = ints(DType::I64, {static_cast<int64_t>(c.axes.size())}, c.axes);
    Outcome o = runBoth("slice", {}, {&x, &starts, &ends, &axes}, GetParam());
    ASSERT_FALSE(o.declined);
    expectSameBytes(o.actual[0], o.expected[0], "slice operands " + shapeStr(c.starts) + shapeStr(c.ends));
    std::vector<Dim> startDims(c.starts.begin(), c.starts.end()), endDims(c.ends.begin(), c.ends.end());
    Attributes a;
    a.set("starts", startDims);
    a.set("ends", endDims);
    a.set("axes", c.axes);
    o = runBoth("slice", a, {&x}, GetParam());
    ASSERT_FALSE(o.declined);
    expectSameBytes(o.actual[0], o.expected[0], "slice attributes " + shapeStr(c.starts) + shapeStr(c.ends));
  }
  Tensor starts = ints(DType::I64, {1}, {0}), ends = ints(DType::I64, {1}, {6}), axes = ints(DType::I64, {1}, {1});
  Tensor steps = ints(DType::I64, {1}, {2});
  EXPECT_TRUE(runBoth("slice", {}, {&x, &starts, &ends, &axes, &steps}, GetParam()).declined);
}

TEST_P(VectorKernels, SplitAndConcat) {
  Tensor x = randomF32({3, 8, 12});
  for (int64_t axis : {0, 1, 2, -1}) {
    const int64_t dim = x.shape()[static_cast<size_t>(axis < 0 ? axis + 3 : axis)];
    Outcome halves = runBoth("split", attrs({{"axis", axis}}), {&x}, GetParam(), kFresh, 2);
    ASSERT_FALSE(halves.declined);
    const int64_t first = dim == 3 ? 1 : dim / 4;
    Tensor sizes = ints(DType::I64, {2}, {first, dim - first});
    Outcome uneven = runBoth("split", attrs({{"axis", axis}}), {&x, &sizes}, GetParam(), kFresh, 2);
    ASSERT_FALSE(uneven.declined);
    for (size_t r = 0; r < 2; ++r) {
      expectSameBytes(halves.actual[r], halves.expected[r], "split axis " + std::to_string(axis));
      expectSameBytes(uneven.actual[r], uneven.expected[r], "uneven split axis " + std::to_string(axis));
    }
    Outcome joined = runBoth("concat", attrs({{"axis", axis}}), {&uneven.expected[0], &x, &uneven.expected[1]},
                             GetParam());
    ASSERT_FALSE(joined.declined);
    expectSameBytes(joined.actual[0], joined.expected[0], "concat axis " + std::to_string(axis));
  }
}

// Tensors large enough that each kernel splits its rows (or elements)
// across the threads (KILN_NUM_THREADS, default 2).
TEST_P(VectorKernels, LargeTensorsSplitAcrossThreads) {
  const Isa isa = GetParam();
  Tensor x = randomF32({512, 4096});
  Tensor scale = randomF32({4096}), bias = randomF32({4096});
  Outcome o = runBoth("rms_norm", {}, {&x, &scale}, isa, 0);
  expectNear(o.actual[0], o.expected[0], kNormTolerance, kNormTolerance, "rms_norm [512, 4096]");
  o = runBoth("layer_norm", {}, {&x, &scale, &bias}, isa, 0);
  expectNear(o.actual[0], o.expected[0], kNormTolerance, kNormTolerance, "layer_norm [512, 4096]");
  // A residual added and normalised a few rows at a time, each thread's last few short.
  Tensor normed = randomF32({1001, 600}), residual = randomF32({1001, 600});
  Tensor rowScale = randomF32({600}), rowBias = randomF32({600});
  o = runBoth("layer_norm", {}, {&normed, &rowScale, &rowBias, &residual}, isa, 0);
  expectNear(o.actual[0], o.expected[0], kNormTolerance, kNormTolerance, "layer_norm [1001, 600] + residual");
  o = runBoth("add", {}, {&x, &scale}, isa, 0);
  expectSameBytes(o.actual[0], o.expected[0], "add [512, 4096] + [4096]");

  Tensor half = randomF32({128, 4096}, -8.0f, 8.0f);
  o = runBoth("softmax", {}, {&half}, isa, 0);
  expectNear(o.actual[0], o.expected[0], 1e-12, 4 * kUlp, "softmax [128, 4096]");
  o = runBoth("gelu", {}, {&half}, isa, 0);
  expectNear(o.actual[0], o.expected[0], 2e-7, 1e-6, "gelu [128, 4096]");
  o = runBoth("swiglu", {}, {&x}, isa);
  expectNear(o.actual[0], o.expected[0], 1e-7, 1e-6, "swiglu [512, 4096] packed");

  // 16 MiB of copies.
  Tensor table = randomF32({8192, 512});
  std::vector<int64_t> rows;
  for (int i = 0; i < 8192; ++i) rows.push_back((i * 37) % 8192);
  Tensor ids = ints(DType::I64, {8192}, rows);
  o = runBoth("gather", attrs({{"axis", int64_t{0}}}), {&table, &ids}, isa);
  expectSameBytes(o.actual[0], o.expected[0], "gather 8192 rows of 512");
  Tensor wide = randomF32({4200, 1100});
  Tensor bounds[] = {ints(DType::I64, {2}, {100, 50}), ints(DType::I64, {2}, {4200, 1074})};
  o = runBoth("slice", {}, {&wide, &bounds[0], &bounds[1]}, isa);
  ASSERT_FALSE(o.declined);
  expectSameBytes(o.actual[0], o.expected[0], "slice [4200, 1100] to [4100, 1024]");
  Tensor square = randomF32({4096, 1024});
  o = runBoth("split", attrs({{"axis", int64_t{-1}}}), {&square}, isa, kFresh, 2);
  for (size_t r = 0; r < 2; ++r) expectSameBytes(o.actual[r], o.expected[r], "split [4096, 1024]");
  o = runBoth("concat", attrs({{"axis", int64_t{-1}}}), {&o.expected[1], &o.expected[0]}, isa);
  expectSameBytes(o.actual[0], o.expected[0], "concat [4096, 512] x 2");
}

TEST(VectorKernelTable, EveryVectorKernelIsRegisteredForItsOp) {
  for (OpKind op : vectorKernelOps()) {
    EXPECT_EQ(opDef(op).kind, op) << opName(op);
    EXPECT_NE(fastKernelFor(op), nullptr) << opName(op);
  }
}

}  // namespace
}  // namespace kiln::cpu
