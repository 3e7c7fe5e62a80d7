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

// Each row kernel against the reference on a GPU (its program compiled by
// NVRTC here and loaded as an artifact's would be): floats within 1e-5
// relative plus 1e-5 absolute (float sums against the reference's double).
TEST_F(Cuda, TheRowKernelsMatchTheReference) {
  if (!loadNvrtc()) GTEST_SKIP() << "no NVRTC to compile the kernels with: " << loadNvrtc().status().message();
  Expected<Graph> graph = parseGraph(R"(graph @main(%x: f32[5, 300]) -> (%y: f32[5, 300]) {
  %y = softmax %x : f32[5, 300] on "cuda"
  return %y
}
)");
  ASSERT_TRUE(graph) << graph.status().message();
  Expected<std::vector<uint8_t>> blob = device_.compileAhead(*graph, {}, {});
  ASSERT_TRUE(blob) << blob.status().message();
  ASSERT_TRUE(device_.loadAhead(*blob).isOk());
  Tensor x = Tensor::allocate(DType::F32, {5, 300}), scale = Tensor::allocate(DType::F32, {300});
  Tensor bias = Tensor::allocate(DType::F32, {300});
  for (int64_t i = 0; i < x.numElements(); ++i) x.data<float>()[i] = static_cast<float>((i * 37) % 101) * 0.07f - 3.0f;
  for (int64_t i = 0; i < 300; ++i) scale.data<float>()[i] = 0.5f + static_cast<float>(i % 7) * 0.1f;
  for (int64_t i = 0; i < 300; ++i) bias.data<float>()[i] = static_cast<float>(i % 5) * 0.2f - 0.4f;
  const Attributes none;
  struct Case {
    OpKind kind;
    std::vector<const Tensor*> inputs;
  };
  const Case cases[] = {{OpKind::Softmax, {&x}}, {OpKind::LogSoftmax, {&x}}, {OpKind::RmsNorm, {&x, &scale}},
                        {OpKind::LayerNorm, {&x, &scale, &bias}}};
  for (const Case& c : cases) {
    const OpDef& def = opDef(c.kind);
    std::vector<Tensor> onDevice;
    for (const Tensor* input : c.inputs) {
      Expected<Tensor> uploaded = device_.allocate(DType::F32, input->shape());
      ASSERT_TRUE(uploaded);
      ASSERT_TRUE(context_->copy(uploaded->data(), input->data(), input->byteSize()).isOk());
      onDevice.push_back(*uploaded);
    }
    std::vector<const Tensor*> inputs;
    for (const Tensor& t : onDevice) inputs.push_back(&t);
    Expected<Tensor> out = device_.allocate(DType::F32, x.shape());
    ASSERT_TRUE(out);
    Tensor* outputs[] = {&*out};
    const Status ran = device_.run(def, none, inputs, outputs, nullptr);
    ASSERT_TRUE(ran.isOk()) << def.name << ": " << ran.message();
    Tensor got = Tensor::allocate(DType::F32, x.shape());
    ASSERT_TRUE(context_->copy(got.data(), out->data(), got.byteSize()).isOk());
    Tensor want = Tensor::allocate(DType::F32, x.shape());
    Tensor* wantOutputs[] = {&want};
    ASSERT_TRUE(referenceKernel(c.kind)(KernelContext{def, none, c.inputs, wantOutputs}).isOk());
    for (int64_t i = 0; i < want.numElements(); ++i)
      ASSERT_NEAR(got.data<float>()[i], want.data<float>()[i], 1e-5 + 1e-5 * std::abs(want.data<float>()[i]))
          << def.name << " element " << i;
  }
}

}  // namespace
}  // namespace kiln::cuda
