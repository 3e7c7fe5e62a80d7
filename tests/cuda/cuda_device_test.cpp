// The CUDA device (backends/cuda): without a driver (this project's CI and
// its build machines) every call says why; on a machine with an NVIDIA GPU,
// its memory and transfers. Each test skips, saying why, on the other kind
// of machine.
#include "backends/cuda/cuda_device.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <string>

#include "backends/cuda/cuda_ahead.h"
#include "backends/cuda/nvrtc_api.h"
#include "backends/reference/reference.h"
#include "ir/op_registry.h"
#include "ir/text.h"

namespace kiln::cuda {
namespace {

bool startsWithAnyOf(const std::string& message, std::initializer_list<const char*> prefixes) {
  for (const char* prefix : prefixes)
    if (message.rfind(prefix, 0) == 0) return true;
  return false;
}

// ---- Without a driver.

TEST(CudaWithoutDriver, EveryCallSaysWhy) {
  if (loadCudaApi()) GTEST_SKIP() << "this machine has a CUDA driver";
  CudaDevice lone;
  const auto why = {"no CUDA driver: ", "no CUDA device: "};
  Expected<std::vector<std::pair<std::string, std::string>>> properties = lone.properties();
  ASSERT_FALSE(properties);
  EXPECT_TRUE(startsWithAnyOf(properties.status().message(), why)) << properties.status().message();
  Expected<Tensor> allocated = lone.allocate(DType::F32, {4});
  ASSERT_FALSE(allocated);
  EXPECT_EQ(allocated.status().message(), properties.status().message());
  EXPECT_FALSE(lone.reserveArena("cuda", 64));
  const Tensor x = Tensor::allocate(DType::F32, {4});
  Tensor y = Tensor::allocate(DType::F32, {4});
  const Tensor* inputs[] = {&x};
  Tensor* outputs[] = {&y};
  const Status ran = lone.run(opDef(OpKind::Transfer), Attributes(), inputs, outputs, nullptr);
  EXPECT_TRUE(startsWithAnyOf(ran.message(), why)) << ran.message();
  EXPECT_FALSE(lone.synchronize().isOk());
}

TEST(CudaWithoutDriver, TheDeviceIsRegisteredWithItsKernels) {
  rt::Device* device = rt::findDevice("cuda");
  ASSERT_NE(device, nullptr);
  EXPECT_TRUE(device->hasMemory("cuda"));
  EXPECT_FALSE(device->hasMemory("host"));
  for (OpKind kind : {OpKind::Transfer, OpKind::LayerNorm, OpKind::RmsNorm, OpKind::Softmax, OpKind::LogSoftmax})
    EXPECT_TRUE(device->supports(opDef(kind))) << opDef(kind).name;
  EXPECT_FALSE(device->supports(opDef(OpKind::Matmul))) << "no matmul kernel yet";
}

// ---- With a GPU.

class Cuda : public ::testing::Test {
 protected:
  void SetUp() override {
    Expected<CudaContext*> cuda = device_.context();
    if (!cuda) GTEST_SKIP() << "no CUDA device here: " << cuda.status().message();
    context_ = *cuda;
  }
  CudaDevice device_;
  CudaContext* context_ = nullptr;
};

TEST_F(Cuda, PropertiesNameTheArchitectureAndMemory) {
  Expected<std::vector<std::pair<std::string, std::string>>> properties = device_.properties();
  ASSERT_TRUE(properties) << properties.status().message();
  std::map<std::string, std::string> byName(properties->begin(), properties->end());
  EXPECT_EQ(byName["architecture"].rfind("sm_", 0), 0u) << byName["architecture"];
  EXPECT_GT(std::stoll(byName["memory_mb"]), 0);
  EXPECT_GT(std::stoll(byName["multiprocessors"]), 0);
}

TEST_F(Cuda, DeviceMemoryIsOwnedAndAligned) {
  Expected<std::shared_ptr<void>> arena = device_.reserveArena("cuda", 1 << 20);
  ASSERT_TRUE(arena) << arena.status().message();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(arena->get()) % rt::kArenaAlignment, 0u);
  EXPECT_TRUE(context_->owns(static_cast<char*>(arena->get()) + 4096));
  EXPECT_FALSE(context_->owns(static_cast<char*>(arena->get()) + (1 << 20)));
  int onTheStack = 0;
  EXPECT_FALSE(context_->owns(&onTheStack));
  EXPECT_FALSE(device_.reserveArena("host", 64)) << "the device has no host memory space";
}

TEST_F(Cuda, TransferRoundTripIsExact) {
  Tensor host = Tensor::allocate(DType::F32, {3, 1001});
  for (int64_t i = 0; i < host.numElements(); ++i) host.data<float>()[i] = static_cast<float>(i) * 0.37f - 11.0f;
  host.data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  host.data<float>()[1] = -0.0f;
  Expected<Tensor> first = device_.allocate(DType::F32, host.shape());
  Expected<Tensor> second = device_.allocate(DType::F32, host.shape());
  ASSERT_TRUE(first && second);
  Tensor back = Tensor::allocate(DType::F32, host.shape());
  const Tensor* none[] = {nullptr};
  auto transfer = [&](const Tensor& from, Tensor& to) {
    none[0] = &from;
    Tensor* outputs[] = {&to};
    return device_.run(opDef(OpKind::Transfer), Attributes(), none, outputs, nullptr);
  };
  ASSERT_TRUE(transfer(host, *first).isOk());     // host to device
  ASSERT_TRUE(transfer(*first, *second).isOk());  // device to device
  ASSERT_TRUE(transfer(*second, back).isOk());    // device to host
  EXPECT_EQ(std::memcmp(back.data(), host.data(), host.byteSize()), 0);
}

// Every op of a graph placed on the device, run there with the code
// compileAhead made (NVRTC here, loaded as an artifact's would be) and by
// the reference, on the same inputs: floats within 1e-5 relative plus 1e-5
// absolute (float sums against the reference's double), the rest exactly.
class CudaKernels : public Cuda {
 protected:
  // Compiles and loads the graph's code, then checks each op in turn; the
  // graph's inputs are filled with values in [-3, 3) (bools alternate).
  void checkGraph(const char* text) {
    if (!loadNvrtc()) GTEST_SKIP() << "no NVRTC to compile the kernels with: " << loadNvrtc().status().message();
    Expected<Graph> graph = parseGraph(text);
    ASSERT_TRUE(graph) << graph.status().message();
    Expected<std::vector<uint8_t>> blob = device_.compileAhead(*graph, {}, {});
    ASSERT_TRUE(blob) << blob.status().message();
    ASSERT_TRUE(device_.loadAhead(*blob).isOk());
    std::map<ValueId, Tensor> values;
    for (ValueId input : graph->inputs()) values[input] = filled(graph->value(input).type);
    for (const Op& op : graph->ops()) {
      if (op.is(OpKind::Transfer)) {  // the graph's inputs onto the device: runOnDevice uploads them
        values[op.results[0]] = values.at(op.operands[0]);
        continue;
      }
      std::vector<const Tensor*> inputs;
      for (ValueId id : op.operands) inputs.push_back(id == kNoValue ? nullptr : &values.at(id));
      Tensor want = Tensor::allocate(graph->value(op.results[0]).type.dtype,
                                     *graph->value(op.results[0]).type.staticDims());
      Tensor* wantOutputs[] = {&want};
      ASSERT_TRUE(referenceKernel(op.kind())(KernelContext{*op.def, op.attrs, inputs, wantOutputs}).isOk());
      expectSame(runOnDevice(*op.def, op.attrs, inputs, want), want, op.def->name);
      values[op.results[0]] = want;
    }
  }

 private:
  static Tensor filled(const TensorType& type) {
    Tensor t = Tensor::allocate(type.dtype, *type.staticDims());
    for (int64_t i = 0; i < t.numElements(); ++i) {
      const float v = static_cast<float>((i * 37) % 101) * 0.06f - 3.0f;
      if (t.dtype() == DType::F32) t.data<float>()[i] = v;
      else if (t.dtype() == DType::Bool) t.data<bool>()[i] = i % 2 == 0;
      else if (t.dtype() == DType::I64) t.data<int64_t>()[i] = static_cast<int64_t>(v * 10);
    }
    return t;
  }

  // The op run on the device: its inputs uploaded, its result downloaded.
  Tensor runOnDevice(const OpDef& def, const Attributes& attrs, const std::vector<const Tensor*>& inputs,
                     const Tensor& like) {
    std::vector<Tensor> uploaded;
    uploaded.reserve(inputs.size());
    std::vector<const Tensor*> onDevice;
    for (const Tensor* input : inputs) {
      if (!input) {
        onDevice.push_back(nullptr);
        continue;
      }
      Expected<Tensor> copy = device_.allocate(input->dtype(), input->shape());
      EXPECT_TRUE(copy && context_->copy(copy->data(), input->data(), input->byteSize()).isOk());
      uploaded.push_back(copy ? *copy : Tensor());
      onDevice.push_back(&uploaded.back());
    }
    Expected<Tensor> out = device_.allocate(like.dtype(), like.shape());
    EXPECT_TRUE(out);
    Tensor* outputs[] = {&*out};
    const Status ran = device_.run(def, attrs, onDevice, outputs, nullptr);
    EXPECT_TRUE(ran.isOk()) << def.name << ": " << ran.message();
    Tensor got = Tensor::allocate(like.dtype(), like.shape());
    EXPECT_TRUE(context_->copy(got.data(), out->data(), got.byteSize()).isOk());
    return got;
  }

  static void expectSame(const Tensor& got, const Tensor& want, std::string_view op) {
    ASSERT_EQ(got.dtype(), want.dtype());
    if (want.dtype() != DType::F32) {
      EXPECT_EQ(std::memcmp(got.data(), want.data(), want.byteSize()), 0) << op;
      return;
    }
    for (int64_t i = 0; i < want.numElements(); ++i) {
      const float w = want.data<float>()[i], g = got.data<float>()[i];
      if (std::isnan(w)) EXPECT_TRUE(std::isnan(g)) << op << " element " << i;
      else ASSERT_NEAR(g, w, 1e-5 + 1e-5 * std::abs(w)) << op << " element " << i;
    }
  }
};

TEST_F(CudaKernels, TheRowKernelsMatchTheReference) {
  checkGraph(R"(graph @main(%x0: f32[5, 300], %s0: f32[300], %b0: f32[300]) -> (%n: f32[5, 300]) {
  %x = transfer %x0 {from = "cpu", to = "cuda"} : f32[5, 300] on "cuda"
  %s = transfer %s0 {from = "cpu", to = "cuda"} : f32[300] on "cuda"
  %b = transfer %b0 {from = "cpu", to = "cuda"} : f32[300] on "cuda"
  %p = softmax %x : f32[5, 300] on "cuda"
  %l = log_softmax %x : f32[5, 300] on "cuda"
  %r = rms_norm %x, %s : f32[5, 300] on "cuda"
  %nd = layer_norm %x, %s, %b : f32[5, 300] on "cuda"
  %n = transfer %nd {from = "cuda", to = "cpu"} : f32[5, 300]
  return %n
}
)");
}

// Broadcasts (the strided walk), one to three operands,
// integers and bools, and swiglu's packed rows.
TEST_F(CudaKernels, TheElementwiseKernelsMatchTheReference) {
  checkGraph(R"(graph @main(%x0: f32[5, 300], %b0: f32[300], %c0: bool[5, 300], %w0: f32[5, 600])
    -> (%s: f32[5, 300]) {
  %x = transfer %x0 {from = "cpu", to = "cuda"} : f32[5, 300] on "cuda"
  %b = transfer %b0 {from = "cpu", to = "cuda"} : f32[300] on "cuda"
  %c = transfer %c0 {from = "cpu", to = "cuda"} : bool[5, 300] on "cuda"
  %w = transfer %w0 {from = "cpu", to = "cuda"} : f32[5, 600] on "cuda"
  %a = add %x, %b : f32[5, 300] on "cuda"
  %g = gelu %a : f32[5, 300] on "cuda"
  %m = min %x, %a, %g : f32[5, 300] on "cuda"
  %e = exp %m : f32[5, 300] on "cuda"
  %q = div %e, %b : f32[5, 300] on "cuda"
  %i = cast %q {to = "i64"} : i64[5, 300] on "cuda"
  %k = less %x, %b : bool[5, 300] on "cuda"
  %o = or %k, %c : bool[5, 300] on "cuda"
  %v = where %o, %x, %g : f32[5, 300] on "cuda"
  %sd = swiglu %w : f32[5, 300] on "cuda"
  %s = transfer %sd {from = "cuda", to = "cpu"} : f32[5, 300]
  return %s
}
)");
}

}  // namespace
}  // namespace kiln::cuda
