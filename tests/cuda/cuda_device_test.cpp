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

#include "ir/op_registry.h"

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

TEST(CudaWithoutDriver, TheDeviceIsRegisteredAndRunsOnlyTransfers) {
  rt::Device* device = rt::findDevice("cuda");
  ASSERT_NE(device, nullptr);
  EXPECT_TRUE(device->hasMemory("cuda"));
  EXPECT_FALSE(device->hasMemory("host"));
  EXPECT_TRUE(device->supports(opDef(OpKind::Transfer)));
  EXPECT_FALSE(device->supports(opDef(OpKind::Matmul))) << "no kernels yet: nothing may be placed here";
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

}  // namespace
}  // namespace kiln::cuda
