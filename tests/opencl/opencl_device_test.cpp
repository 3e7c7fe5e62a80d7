// The OpenCL device (backends/opencl) against the reference kernels
// (evaluateOp): random inputs of shapes that are no multiple of the kernels'
// tiles, uploaded and downloaded by the device's own transfers. Floats
// compare within |got - want| <= atol + 1e-5 |want| (atol per test: 1e-6 for
// element-wise ops, 1e-5 sqrt(K) for reductions of K terms); integers, bools
// and data movement exactly. Every test skips, saying why, without an
// OpenCL device.
#include "backends/opencl/opencl_device.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/elementwise_program.h"
#include "ir/op_registry.h"

namespace kiln::opencl {
namespace {

constexpr double kRelative = 1e-5;

std::mt19937& rng() {
  static std::mt19937 generator(7);
  return generator;
}

Tensor randomF32(std::vector<int64_t> shape, float lo = -3.0f, float hi = 3.0f) {
  Tensor t = Tensor::allocate(DType::F32, std::move(shape));
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numElements(); ++i) t.data<float>()[i] = dist(rng());
  return t;
}

template <class T>
Tensor filled(std::vector<int64_t> shape, const std::vector<T>& values) {
  Tensor t = Tensor::allocate(DTypeOf<T>::value, std::move(shape));
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

Tensor randomInts(DType dtype, std::vector<int64_t> shape, int64_t lo, int64_t hi) {
  Tensor t = Tensor::allocate(dtype, std::move(shape));
  std::uniform_int_distribution<int64_t> dist(lo, hi);
  for (int64_t i = 0; i < t.numElements(); ++i) {
    const int64_t v = dist(rng());
    if (dtype == DType::I64) t.data<int64_t>()[i] = v;
    else if (dtype == DType::I32) t.data<int32_t>()[i] = static_cast<int32_t>(v);
    else t.data<bool>()[i] = v != 0;
  }
  return t;
}

Attributes attrs(std::initializer_list<std::pair<std::string, AttrValue>> values) {
  Attributes a;
  for (const auto& [name, value] : values) a.set(name, value);
  return a;
}

OpenClDevice& device() {
  static OpenClDevice instance;
  return instance;
}

class OpenCl : public ::testing::Test {
 protected:
  void SetUp() override {
    Expected<Tensor> probe = device().allocate(DType::F32, {1});
    if (!probe) GTEST_SKIP() << "no OpenCL device to test on: " << probe.status().message();
  }

  static Status transfer(const Tensor& from, const Tensor& to) {
    const Tensor* inputs[] = {&from};
    Tensor copy = to;
    Tensor* outputs[] = {&copy};
    return device().run(opDef(OpKind::Transfer), Attributes(), inputs, outputs, nullptr);
  }
  static Tensor upload(const Tensor& host) {
    Expected<Tensor> onDevice = device().allocate(host.dtype(), host.shape());
    EXPECT_TRUE(onDevice) << onDevice.status().message();
    Status copied = transfer(host, *onDevice);
    EXPECT_TRUE(copied) << copied.message();
    return *onDevice;
  }
  static Tensor download(const Tensor& onDevice) {
    Tensor host = Tensor::allocate(onDevice.dtype(), onDevice.shape());
    Status copied = transfer(onDevice, host);
    EXPECT_TRUE(copied) << copied.message();
    return host;
  }

  // Runs the op on the device (inputs uploaded, results allocated there);
  // null inputs are absent operands.
  static Expected<std::vector<Tensor>> runOnDevice(OpKind kind, const Attributes& a,
                                                   const std::vector<const Tensor*>& inputs,
                                                   const std::vector<Tensor>& resultShapes) {
    std::vector<Tensor> uploaded(inputs.size());
    std::vector<const Tensor*> deviceInputs(inputs.size(), nullptr);
    for (size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i]) {
        uploaded[i] = upload(*inputs[i]);
        deviceInputs[i] = &uploaded[i];
      }
    std::vector<Tensor> results;
    std::vector<Tensor*> outputs;
    for (const Tensor& like : resultShapes) results.push_back(*device().allocate(like.dtype(), like.shape()));
    for (Tensor& r : results) outputs.push_back(&r);
    KILN_RETURN_IF_ERROR(device().run(opDef(kind), a, deviceInputs, outputs, nullptr));
    std::vector<Tensor> downloaded;
    for (const Tensor& r : results) downloaded.push_back(download(r));
    return downloaded;
  }

  // The op on the device against its reference kernel.
  static void check(OpKind kind, const Attributes& a, const std::vector<const Tensor*>& inputs, double atol = 1e-6,
                    int numResults = 1) {
    Expected<std::vector<Tensor>> expected = evaluateOp(opDef(kind), a, inputs, numResults);
    ASSERT_TRUE(expected) << expected.status().message();
    Expected<std::vector<Tensor>> actual = runOnDevice(kind, a, inputs, *expected);
    ASSERT_TRUE(actual) << actual.status().message();
    for (size_t r = 0; r < expected->size(); ++r) expectClose((*expected)[r], (*actual)[r], atol);
  }

  static void expectClose(const Tensor& want, const Tensor& got, double atol) {
    ASSERT_EQ(want.shape(), got.shape());
    ASSERT_EQ(want.dtype(), got.dtype());
    if (want.dtype() != DType::F32) {
      EXPECT_EQ(std::memcmp(want.data(), got.data(), want.byteSize()), 0) << "results differ";
      return;
    }
    int reported = 0;
    for (int64_t i = 0; i < want.numElements() && reported < 5; ++i) {
      const float w = want.data<float>()[i], g = got.data<float>()[i];
      const bool same = std::isnan(w) ? std::isnan(g)
                                      : std::isinf(w) ? w == g : std::abs(g - w) <= atol + kRelative * std::abs(w);
      if (!same) {
        ADD_FAILURE() << "element " << i << ": want " << w << ", got " << g;
        ++reported;
      }
    }
  }
};

// ---- Without OpenCL: run by the ctest opencl.no_platform with the ICD
// ---- loader pointed at no vendor (tests/opencl/CMakeLists.txt).

TEST(OpenClWithoutPlatform, EveryCallSaysWhy) {
  if (!std::getenv("KILN_EXPECT_NO_OPENCL")) GTEST_SKIP() << "run by opencl.no_platform, with no OpenCL platform";
  OpenClDevice lone;
  Expected<Tensor> allocated = lone.allocate(DType::F32, {4});
  ASSERT_FALSE(allocated);
  EXPECT_EQ(allocated.status().message().rfind("no OpenCL platform: ", 0), 0u) << allocated.status().message();
  EXPECT_FALSE(lone.reserveArena("opencl", 64));
  const Tensor x = Tensor::allocate(DType::F32, {4});
  Tensor y = Tensor::allocate(DType::F32, {4});
  const Tensor* inputs[] = {&x};
  Tensor* outputs[] = {&y};
  const Status ran = lone.run(opDef(OpKind::Relu), Attributes(), inputs, outputs, nullptr);
  EXPECT_NE(ran.message().find("no OpenCL platform"), std::string::npos) << ran.message();
}

// ---- Memory and transfers.

TEST_F(OpenCl, DeviceTensorsHaveUniqueAddresses) {
  Expected<Tensor> a = device().allocate(DType::F32, {3, 5});
  Expected<Tensor> b = device().allocate(DType::F32, {3, 5});
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->data(), nullptr);
  EXPECT_NE(a->data(), b->data());
  Expected<std::shared_ptr<void>> arena = device().reserveArena("opencl", 1 << 20);
  ASSERT_TRUE(arena) << arena.status().message();
  EXPECT_NE(arena->get(), a->data());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(arena->get()) % rt::kArenaAlignment, 0u);
  Expected<ClContext*> cl = device().context();
  ASSERT_TRUE(cl);
  const std::optional<DeviceAddress> inArena = (*cl)->find(static_cast<char*>(arena->get()) + 4096);
  ASSERT_TRUE(inArena);
  EXPECT_EQ(inArena->offset, 4096u);
  EXPECT_FALSE((*cl)->find(&inArena));  // host memory is no device memory
  EXPECT_FALSE(device().reserveArena("host", 64)) << "the device has no host memory space";
}

TEST_F(OpenCl, TransferRoundTripIsExact) {
  Tensor host = randomF32({3, 1001});
  host.data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  host.data<float>()[1] = -std::numeric_limits<float>::infinity();
  host.data<float>()[2] = std::numeric_limits<float>::denorm_min();
  host.data<float>()[3] = -0.0f;
  const Tensor first = upload(host);
  Expected<Tensor> second = device().allocate(DType::F32, host.shape());
  ASSERT_TRUE(second);
  ASSERT_TRUE(transfer(first, *second));  // device to device
  const Tensor back = download(*second);
  EXPECT_EQ(std::memcmp(back.data(), host.data(), host.byteSize()), 0);
}

TEST_F(OpenCl, ArenaTensorsTransferAtTheirOffsets) {
  Expected<std::shared_ptr<void>> arena = device().reserveArena("opencl", 4096);
  ASSERT_TRUE(arena);
  const Tensor host = randomF32({7, 9});
  const Tensor slot = Tensor::view(DType::F32, {7, 9}, static_cast<char*>(arena->get()) + 1024, *arena);
  ASSERT_TRUE(transfer(host, slot));
  const Tensor back = download(slot);
  EXPECT_EQ(std::memcmp(back.data(), host.data(), host.byteSize()), 0);
}

// ---- matmul

struct MatmulCase {
  std::vector<int64_t> a, b;
  bool transA = false, transB = false;
};

TEST_F(OpenCl, MatmulShapesAndTransposes) {
  const MatmulCase cases[] = {
      {{1, 37}, {37, 53}},                    // one row
      {{70, 129}, {129, 65}},                 // past one tile each way
      {{5, 16}, {16, 64}},
      {{2, 3, 17, 19}, {19, 23}},             // 2-D b under batch dims
      {{3, 1, 17, 19}, {4, 19, 23}},          // broadcast batch dims
      {{19, 17}, {23, 19}, true, true},
      {{2, 40, 33}, {2, 40, 67}, true, false},
      {{2, 33, 40}, {1, 67, 40}, false, true},
      {{37}, {37, 11}},                       // 1-D a
      {{9, 37}, {37}},                        // 1-D b
  };
  for (const MatmulCase& c : cases) {
    const Tensor a = randomF32(c.a, -1, 1), b = randomF32(c.b, -1, 1);
    const int64_t K = c.transA ? c.a[c.a.size() - 2] : c.a.back();
    SCOPED_TRACE(shapeStr(c.a) + " x " + shapeStr(c.b));
    check(OpKind::Matmul, attrs({{"transpose_a", c.transA}, {"transpose_b", c.transB}}), {&a, &b},
          1e-5 * std::sqrt(static_cast<double>(K)));
  }
}

TEST_F(OpenCl, MatmulEpilogue) {
  const Tensor a = randomF32({2, 45, 70}, -1, 1), b = randomF32({70, 77}, -1, 1);
  const Tensor bias = randomF32({77}), rowBias = randomF32({45, 1}), residual = randomF32({2, 45, 77});
  const Tensor broadcastResidual = randomF32({45, 77});
  const double atol = 1e-5 * std::sqrt(70.0);
  for (const char* activation : {"none", "relu", "gelu", "gelu_tanh", "silu", "tanh"}) {
    SCOPED_TRACE(activation);
    check(OpKind::Matmul, attrs({{"activation", std::string(activation)}}), {&a, &b, &bias, &residual}, atol);
  }
  check(OpKind::Matmul, attrs({}), {&a, &b, &rowBias, &broadcastResidual}, atol);
  check(OpKind::Matmul, attrs({}), {&a, &b, nullptr, &residual}, atol);
}

// ---- Norms and softmax.

TEST_F(OpenCl, RmsNorm) {
  const Tensor x = randomF32({3, 7, 333}), scale = randomF32({333}), scale2 = randomF32({7, 333});
  const Tensor row = randomF32({1, 1});
  const double atol = 1e-5;
  check(OpKind::RmsNorm, attrs({{"epsilon", 1e-6}}), {&x, &scale}, atol);
  check(OpKind::RmsNorm, attrs({{"axis", int64_t{-2}}}), {&x, &scale2}, atol);
  check(OpKind::RmsNorm, attrs({}), {&x, nullptr}, atol);
  check(OpKind::RmsNorm, attrs({}), {&row, nullptr}, atol);
}

TEST_F(OpenCl, LayerNorm) {
  const Tensor x = randomF32({5, 300}), scale = randomF32({300}), bias = randomF32({300});
  const Tensor x3 = randomF32({2, 3, 41}), scale3 = randomF32({41}), bias3 = randomF32({3, 1});
  const double atol = 1e-5;
  check(OpKind::LayerNorm, attrs({{"epsilon", 1e-5}}), {&x, &scale, &bias}, atol, 3);
  check(OpKind::LayerNorm, attrs({}), {&x3, &scale3, nullptr}, atol);
  check(OpKind::LayerNorm, attrs({{"axis", int64_t{1}}}), {&x3, &scale3, &bias3}, atol);
  // A residual added first: x's shape, or rows repeated over x's leading dims.
  const Tensor residual = randomF32({5, 300}), rows = randomF32({3, 41});
  check(OpKind::LayerNorm, attrs({}), {&x, &scale, &bias, &residual}, atol, 3);
  check(OpKind::LayerNorm, attrs({}), {&x3, &scale3, nullptr, &rows}, atol);
}

TEST_F(OpenCl, Softmax) {
  // The last axis, a middle one (elements 257 apart), the first, and rows of one.
  const Tensor x = randomF32({4, 3, 257}, -10, 10), one = randomF32({6, 1});
  for (OpKind kind : {OpKind::Softmax, OpKind::LogSoftmax}) {
    check(kind, attrs({}), {&x}, 1e-5);
    check(kind, attrs({{"axis", int64_t{1}}}), {&x}, 1e-5);
    check(kind, attrs({{"axis", int64_t{0}}}), {&x}, 1e-5);
    check(kind, attrs({}), {&one}, 1e-6);
  }
}

TEST_F(OpenCl, Reductions) {
  // Over the middle axis (mean pooling), the last, two axes at once, all of
  // them (no axes), with and without keepdims; rows longer than a work-group.
  const Tensor x = randomF32({3, 301, 5}), wide = randomF32({2, 700});
  const Tensor middle = filled<int64_t>({1}, {1}), last = filled<int64_t>({1}, {-1}), outer = filled<int64_t>({2}, {0, 2});
  for (OpKind kind : {OpKind::ReduceSum, OpKind::ReduceMean, OpKind::ReduceMax}) {
    check(kind, attrs({{"keepdims", true}}), {&x, &middle}, 1e-4);
    check(kind, attrs({{"keepdims", false}}), {&x, &last}, 1e-4);
    check(kind, attrs({{"keepdims", false}}), {&x, &outer}, 1e-4);
    check(kind, attrs({{"keepdims", true}}), {&wide, nullptr}, 1e-3);
    check(kind, attrs({{"noop_with_empty_axes", true}}), {&x, nullptr}, 0);
  }
}

// ---- Element-wise.

TEST_F(OpenCl, UnaryF32) {
  const Tensor x = randomF32({3, 67}), positive = randomF32({3, 67}, 0.01f, 5.0f);
  for (OpKind kind : {OpKind::Abs, OpKind::Cos, OpKind::Erf, OpKind::Exp, OpKind::Neg, OpKind::Relu,
                      OpKind::Sigmoid, OpKind::Sin, OpKind::Tanh, OpKind::Reciprocal}) {
    SCOPED_TRACE(opDef(kind).name);
    check(kind, attrs({}), {&x});
  }
  for (OpKind kind : {OpKind::Log, OpKind::Sqrt}) check(kind, attrs({}), {&positive});
}

TEST_F(OpenCl, UnaryIntegersAndBool) {
  const Tensor i64 = randomInts(DType::I64, {5, 13}, -100, 100), i32 = randomInts(DType::I32, {41}, -9, 9);
  const Tensor flags = randomInts(DType::Bool, {3, 7}, 0, 1);
  for (OpKind kind : {OpKind::Abs, OpKind::Neg, OpKind::Relu}) {
    check(kind, attrs({}), {&i64});
    check(kind, attrs({}), {&i32});
  }
  check(OpKind::Not, attrs({}), {&flags});
}

TEST_F(OpenCl, BinaryWithBroadcasting) {
  const Tensor a = randomF32({4, 1, 5}), b = randomF32({3, 1}), c = randomF32({4, 3, 5});
  for (OpKind kind : {OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div, OpKind::Equal, OpKind::Less,
                      OpKind::Greater}) {
    SCOPED_TRACE(opDef(kind).name);
    check(kind, attrs({}), {&a, &b});
    check(kind, attrs({}), {&c, &a});
  }
  const Tensor base = randomF32({4, 3, 5}, 0.1f, 3.0f);
  check(OpKind::Pow, attrs({}), {&base, &b}, 1e-6);
  const Tensor i = randomInts(DType::I64, {2, 7}, -50, 50), j = randomInts(DType::I64, {7}, -50, 50);
  for (OpKind kind : {OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Equal, OpKind::Less, OpKind::Greater})
    check(kind, attrs({}), {&i, &j});
  const Tensor p = randomInts(DType::Bool, {6, 5}, 0, 1), q = randomInts(DType::Bool, {5}, 0, 1);
  for (OpKind kind : {OpKind::And, OpKind::Or, OpKind::Equal}) check(kind, attrs({}), {&p, &q});
}

TEST_F(OpenCl, MinMaxOverSeveralOperands) {
  const Tensor a = randomF32({2, 3, 4}), b = randomF32({3, 1}), c = randomF32({4});
  Tensor withNan = randomF32({2, 3, 4});
  withNan.data<float>()[5] = std::numeric_limits<float>::quiet_NaN();
  for (OpKind kind : {OpKind::Min, OpKind::Max}) {
    check(kind, attrs({}), {&a, &b, &c});
    check(kind, attrs({}), {&withNan, &a});
    check(kind, attrs({}), {&a});
  }
}

TEST_F(OpenCl, WhereClipCast) {
  const Tensor condition = randomInts(DType::Bool, {3, 1, 6}, 0, 1), x = randomF32({4, 6}), y = randomF32({6});
  check(OpKind::Where, attrs({}), {&condition, &x, &y});
  const Tensor i = randomInts(DType::I64, {4, 6}, -9, 9), j = randomInts(DType::I64, {1}, -9, 9);
  check(OpKind::Where, attrs({}), {&condition, &i, &j});
  const Tensor lo = filled<float>({}, {-1.0f}), hi = filled<float>({}, {0.5f});
  check(OpKind::Clip, attrs({}), {&x, &lo, &hi});
  check(OpKind::Clip, attrs({}), {&x, nullptr, &hi});
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor special = filled<float>({8}, {std::numeric_limits<float>::quiet_NaN(), inf, -inf, -2.7f, 2.7f, 0.0f,
                                             3e9f, -1e20f});
  const Tensor ints = filled<int64_t>({4}, {0, -5, int64_t{1} << 40, std::numeric_limits<int64_t>::min()});
  const Tensor flags = randomInts(DType::Bool, {9}, 0, 1), small = randomInts(DType::I32, {9}, -1000, 1000);
  for (const Tensor* from : {&special, &x, &ints, &flags, &small})
    for (const char* to : {"f32", "i64", "i32", "bool"}) {
      SCOPED_TRACE(std::string(dtypeName(from->dtype())) + " to " + to);
      check(OpKind::Cast, attrs({{"to", std::string(to)}}), {from});
    }
}

TEST_F(OpenCl, GeluSiluSwiglu) {
  const Tensor x = randomF32({3, 101}, -6, 6);
  check(OpKind::Gelu, attrs({}), {&x});
  check(OpKind::Gelu, attrs({{"approximate", std::string("tanh")}}), {&x});
  check(OpKind::Silu, attrs({}), {&x});
  const Tensor gate = randomF32({3, 50}), up = randomF32({50}), packed = randomF32({2, 3, 74});
  check(OpKind::Swiglu, attrs({}), {&gate, &up});
  check(OpKind::Swiglu, attrs({}), {&packed});
}

TEST_F(OpenCl, FusedElementwise) {
  const char* text = "mul $0 $1; add %0 $2; tanh %1; mul %2 0.5; gelu_tanh %3; max %4 -0.25; pow %5 2";
  Expected<ElementwiseProgram> program = parseElementwiseProgram(text, 3);
  ASSERT_TRUE(program) << program.status().message();
  const Tensor a = randomF32({4, 33}), b = randomF32({33}), c = randomF32({4, 1});
  check(OpKind::FusedElementwise, attrs({{"program", *program}}), {&a, &b, &c});
  Expected<ElementwiseProgram> other = parseElementwiseProgram("sigmoid $0; mul %0 $0; sub %1 1e-3", 1);
  ASSERT_TRUE(other);
  check(OpKind::FusedElementwise, attrs({{"program", *other}}), {&a});
}

TEST_F(OpenCl, UnsupportedDTypeIsAClearError) {
  const Tensor a = Tensor::allocate(DType::F16, {4});
  Expected<std::vector<Tensor>> ran = runOnDevice(OpKind::Add, attrs({}), {&a, &a}, {a});
  ASSERT_FALSE(ran);
  EXPECT_NE(ran.status().message().find("f16"), std::string::npos) << ran.status().message();
  EXPECT_NE(ran.status().message().find("add"), std::string::npos) << ran.status().message();
}

// ---- Data movement.

TEST_F(OpenCl, GatherSliceConcatSplit) {
  const Tensor table = randomF32({11, 6}), indices = filled<int64_t>({2, 3}, {0, 10, -1, 3, 3, -11});
  check(OpKind::Gather, attrs({{"axis", int64_t{0}}}), {&table, &indices});
  const Tensor columns = filled<int32_t>({2}, {5, -6});
  check(OpKind::Gather, attrs({{"axis", int64_t{1}}}), {&table, &columns});
  const Tensor wrong = filled<int64_t>({1}, {11});
  Expected<std::vector<Tensor>> outOfRange =
      runOnDevice(OpKind::Gather, attrs({{"axis", int64_t{0}}}), {&table, &wrong}, {randomF32({1, 6})});
  EXPECT_FALSE(outOfRange);

  const Tensor x = randomF32({5, 7, 9});
  const Tensor starts = filled<int64_t>({2}, {1, -2}), ends = filled<int64_t>({2}, {4, 0});
  const Tensor axes = filled<int64_t>({2}, {0, 2}), steps = filled<int64_t>({2}, {2, -3});
  check(OpKind::Slice, attrs({}), {&x, &starts, &ends, &axes, &steps});
  check(OpKind::Slice, attrs({{"starts", std::vector<Dim>{1}}, {"ends", std::vector<Dim>{6}},
                              {"axes", std::vector<int64_t>{1}}}),
        {&x});

  const Tensor p = randomF32({2, 3, 4}), q = randomF32({2, 5, 4}), r = randomF32({2, 1, 4});
  check(OpKind::Concat, attrs({{"axis", int64_t{1}}}), {&p, &q, &r});
  check(OpKind::Concat, attrs({{"axis", int64_t{-1}}}), {&p, &p});
  const Tensor sizes = filled<int64_t>({3}, {2, 4, 3});
  check(OpKind::Split, attrs({{"axis", int64_t{2}}}), {&x, &sizes}, 0, 3);
  check(OpKind::Split, attrs({{"axis", int64_t{1}}, {"num_outputs", int64_t{2}}}), {&x}, 0, 2);
}

TEST_F(OpenCl, TransposeExpandViews) {
  const Tensor x = randomF32({2, 3, 4, 5});
  check(OpKind::Transpose, attrs({{"perm", std::vector<int64_t>{0, 2, 1, 3}}}), {&x});
  check(OpKind::Transpose, attrs({}), {&x});
  const Tensor column = randomF32({3, 1}), shape = filled<int64_t>({3}, {2, 3, 4});
  check(OpKind::Expand, attrs({}), {&column, &shape});
  check(OpKind::Reshape, attrs({{"shape", std::vector<Dim>{6, 20}}}), {&x});
  const Tensor axes = filled<int64_t>({1}, {0});
  check(OpKind::Unsqueeze, attrs({}), {&x, &axes});
  // A view whose result is the input itself copies nothing.
  const Tensor onDevice = upload(x);
  Tensor alias = Tensor::view(DType::F32, {6, 20}, onDevice.data(), nullptr);
  const Tensor* inputs[] = {&onDevice};
  Tensor* outputs[] = {&alias};
  ASSERT_TRUE(device().run(opDef(OpKind::Reshape), attrs({{"shape", std::vector<Dim>{6, 20}}}), inputs, outputs,
                           nullptr));
  const Tensor back = download(onDevice);
  EXPECT_EQ(std::memcmp(back.data(), x.data(), x.byteSize()), 0);
}

// ---- attention

AttrValue text(const char* value) { return std::string(value); }

TEST_F(OpenCl, AttentionBhsdCausalGqa) {
  const Tensor q = randomF32({2, 4, 5, 16}, -1, 1), k = randomF32({2, 2, 5, 16}, -1, 1), v = randomF32({2, 2, 5, 12});
  check(OpKind::Attention, attrs({{"heads", int64_t{4}}, {"kv_heads", int64_t{2}}, {"scale", 0.25}, {"causal", true}}),
        {&q, &k, &v}, 1e-5);
  check(OpKind::Attention,
        attrs({{"heads", int64_t{4}}, {"kv_heads", int64_t{2}}, {"scale", 0.25}, {"causal", true}, {"window", int64_t{2}}}),
        {&q, &k, &v}, 1e-5);
  const Tensor mask = randomInts(DType::Bool, {2, 1, 5, 5}, 0, 1);
  check(OpKind::Attention, attrs({{"heads", int64_t{4}}, {"kv_heads", int64_t{2}}, {"scale", 0.25}}),
        {&q, &k, &v, &mask}, 1e-5);
}

TEST_F(OpenCl, AttentionBsdRopePastAndKeyPadding) {
  const int64_t B = 2, S = 3, P = 4, Hq = 4, Hkv = 1, D = 8;
  const Tensor q = randomF32({B, S, Hq * D}, -1, 1), k = randomF32({B, S, Hkv * D}, -1, 1);
  const Tensor v = randomF32({B, S, Hkv * D}), pastK = randomF32({B, Hkv, P, D}), pastV = randomF32({B, Hkv, P, D});
  const Tensor padding = filled<int64_t>({B, P + S}, {1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1});
  const Tensor invFreq = filled<float>({D / 2}, {1.0f, 0.1f, 0.01f, 0.001f});
  const Attributes a = attrs({{"heads", Hq}, {"kv_heads", Hkv}, {"scale", 0.3}, {"causal", true}, {"rope", text("half")},
                              {"mask_layout", text("key_padding")}, {"qkv_layout", text("bsd")}, {"out_layout", text("bsd")}});
  check(OpKind::Attention, a, {&q, &k, &v, &padding, nullptr, nullptr, &pastK, &pastV, &invFreq}, 1e-5, 3);
}

// GPT-J's pairing (2i, 2i+1), partial rotary, from inv_freq and from tables.
TEST_F(OpenCl, AttentionInterleavedPartialRope) {
  const int64_t B = 2, S = 3, P = 2, Hq = 2, Hkv = 2, D = 8, W = 4;
  const Tensor q = randomF32({B, Hq, S, D}, -1, 1), k = randomF32({B, Hkv, S, D}, -1, 1);
  const Tensor v = randomF32({B, Hkv, S, D}), pastK = randomF32({B, Hkv, P, D}), pastV = randomF32({B, Hkv, P, D});
  const Tensor invFreq = filled<float>({W / 2}, {1.0f, 0.1f});
  const Tensor cos = randomF32({B, 1, S, W}, -1, 1), sin = randomF32({B, 1, S, W}, -1, 1);
  const Attributes a = attrs({{"heads", Hq}, {"kv_heads", Hkv}, {"scale", 0.3}, {"causal", true},
                              {"rope", text("interleaved")}, {"rope_dims", W}});
  check(OpKind::Attention, a, {&q, &k, &v, nullptr, nullptr, nullptr, &pastK, &pastV, &invFreq}, 1e-5, 3);
  check(OpKind::Attention, a, {&q, &k, &v, nullptr, &cos, &sin}, 1e-5);
}

TEST_F(OpenCl, AttentionPackedWithCosSinAndAdditiveMask) {
  const int64_t B = 1, S = 6, Hq = 2, Hkv = 2, D = 10;
  const Tensor qkv = randomF32({B, S, (Hq + 2 * Hkv) * D}, -1, 1);
  const Tensor cos = randomF32({S, D}, -1, 1), sin = randomF32({S, D}, -1, 1), mask = randomF32({1, 1, S, S}, -2, 0);
  const Attributes a = attrs({{"heads", Hq}, {"kv_heads", Hkv}, {"scale", 0.5}, {"rope", text("half")},
                              {"qkv_layout", text("bsd_packed")}, {"out_layout", text("bsd")}});
  check(OpKind::Attention, a, {&qkv, nullptr, nullptr, &mask, &cos, &sin}, 1e-5);
}

TEST_F(OpenCl, AttentionAppendsToTheKvCacheInPlace) {
  const int64_t B = 1, Hq = 2, Hkv = 1, S = 2, D = 8, capacity = 9, past = 3;
  const Tensor q = randomF32({B, Hq, S, D}, -1, 1), k = randomF32({B, Hkv, S, D}, -1, 1), v = randomF32({B, Hkv, S, D});
  const Tensor invFreq = filled<float>({D / 2}, {1.0f, 0.5f, 0.25f, 0.125f});
  Tensor hostKeys = randomF32({B, Hkv, capacity, D}), hostValues = randomF32({B, Hkv, capacity, D});
  const Tensor deviceKeys = upload(hostKeys), deviceValues = upload(hostValues);
  const Attributes a = attrs({{"heads", Hq}, {"kv_heads", Hkv}, {"scale", 0.35}, {"causal", true}, {"rope", text("half")}});
  const std::vector<const Tensor*> inputs = {&q, &k, &v, nullptr, nullptr, nullptr, nullptr, nullptr, &invFreq};
  Tensor want = Tensor::allocate(DType::F32, {B, Hq, S, D});
  Tensor* wantOutputs[] = {&want};
  const KvCacheBinding hostCache{hostKeys.data(), hostValues.data(), capacity, past};
  ASSERT_TRUE(referenceKernel(OpKind::Attention)(KernelContext{opDef(OpKind::Attention), a, inputs, wantOutputs, &hostCache}));

  std::vector<Tensor> uploaded;
  uploaded.reserve(inputs.size());  // deviceInputs points into it
  std::vector<const Tensor*> deviceInputs;
  for (const Tensor* input : inputs) {
    uploaded.push_back(input ? upload(*input) : Tensor());
    deviceInputs.push_back(input ? &uploaded.back() : nullptr);
  }
  Tensor got = *device().allocate(DType::F32, {B, Hq, S, D});
  Tensor* gotOutputs[] = {&got};
  const KvCacheBinding deviceCache{deviceKeys.data(), deviceValues.data(), capacity, past};
  const Status ran = device().run(opDef(OpKind::Attention), a, deviceInputs, gotOutputs, &deviceCache);
  ASSERT_TRUE(ran) << ran.message();
  expectClose(want, download(got), 1e-5);
  expectClose(hostKeys, download(deviceKeys), 1e-6);
  expectClose(hostValues, download(deviceValues), 0);
}

// ---- Threads.

TEST_F(OpenCl, OpsRunFromSeveralThreads) {
  const Tensor a = randomF32({33, 47}, -1, 1), b = randomF32({47, 29}, -1, 1), bias = randomF32({29});
  const std::vector<const Tensor*> operands = {&a, &b, &bias};
  Expected<std::vector<Tensor>> expected = evaluateOp(opDef(OpKind::Matmul), attrs({}), operands, 1);
  ASSERT_TRUE(expected);
  const Tensor deviceA = upload(a), deviceB = upload(b), deviceBias = upload(bias);
  std::vector<Tensor> results(4);
  std::vector<std::thread> threads;
  std::vector<Status> statuses(results.size());
  for (size_t t = 0; t < results.size(); ++t)
    threads.emplace_back([&, t] {
      results[t] = *device().allocate(DType::F32, {33, 29});
      const Tensor* inputs[] = {&deviceA, &deviceB, &deviceBias};
      Tensor* outputs[] = {&results[t]};
      for (int i = 0; i < 20 && statuses[t]; ++i)
        statuses[t] = device().run(opDef(OpKind::Matmul), Attributes(), inputs, outputs, nullptr);
    });
  for (std::thread& thread : threads) thread.join();
  for (size_t t = 0; t < results.size(); ++t) {
    ASSERT_TRUE(statuses[t]) << statuses[t].message();
    expectClose((*expected)[0], download(results[t]), 1e-5 * std::sqrt(47.0));
  }
}

}  // namespace
}  // namespace kiln::opencl
