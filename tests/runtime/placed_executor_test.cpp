// A placed program on two devices: the CPU and "staging", a test device with
// a memory space of its own (host RAM behind it, tagged so each kernel can
// check it reads only its own memory). The executor gives each space an
// arena, runs a transfer into host memory on the source device, uploads a
// transferred weight once per executor, and the results equal the
// unplaced program's bit for bit.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>

#include "backends/reference/reference.h"
#include "ir/text.h"
#include "runtime/executor.h"
#include "runtime/host_fallback.h"

namespace kiln::rt {
namespace {

// Host RAM, but every block it hands out is remembered, so run() can refuse
// a tensor that is not in its memory (as a real device could not read it).
class StagingDevice final : public Device {
 public:
  static constexpr std::string_view kName = "staging";
  static inline std::atomic<int> uploads{0}, transfers{0};

  std::string_view name() const override { return kName; }
  bool hasMemory(std::string_view memory) const override { return memory == "staging"; }
  bool supports(const OpDef& def) const override { return referenceKernel(def.kind) != nullptr; }
  Expected<std::shared_ptr<void>> reserveArena(std::string_view memory, size_t bytes) override {
    Tensor block = Tensor::allocate(DType::U8, {static_cast<int64_t>(bytes)});
    remember(block.data(), bytes);
    return std::shared_ptr<void>(block.data(), [block](void*) {});
  }
  Expected<Tensor> allocate(DType dtype, const std::vector<int64_t>& shape) override {
    Tensor tensor = Tensor::allocate(dtype, shape);
    remember(tensor.data(), tensor.byteSize());
    return tensor;
  }
  Status run(const OpDef& def, const Attributes& attrs, std::span<const Tensor* const> inputs,
             std::span<Tensor* const> outputs, const KvCacheBinding* kvCache) override {
    if (def.kind == OpKind::Transfer) {
      const bool upload = !mine(inputs[0]->data());
      ++(upload ? uploads : transfers);
    } else {
      for (const Tensor* input : inputs)
        if (input && !mine(input->data())) return Status::error("staging read host memory");
    }
    return referenceKernel(def.kind)(KernelContext{def, attrs, inputs, outputs, kvCache});
  }

 private:
  void remember(void* data, size_t bytes) {
    std::lock_guard lock(mutex_);
    blocks_.insert({static_cast<char*>(data), bytes});
  }
  bool mine(const void* data) const {
    std::lock_guard lock(mutex_);
    auto it = blocks_.upper_bound({static_cast<const char*>(data), SIZE_MAX});
    if (it == blocks_.begin()) return false;
    --it;
    return static_cast<const char*>(data) < it->first + it->second;
  }
  mutable std::mutex mutex_;
  std::set<std::pair<const char*, size_t>> blocks_;
};

const DeviceRegistration<StagingDevice> kRegistration;

constexpr const char* kUnplaced = R"(graph @main(%x: f32[2, 4]) -> (%z: f32[2, 3]) {
  weight @w : f32[4, 3] = [1.0, 2.0, 3.0, -4.0, 5.0, 6.0, 7.0, -8.0, 9.0, 10.0, 11.0, 12.0]
  %y = matmul %x, @w : f32[2, 3]
  %z = relu %y : f32[2, 3]
  return %z
}
)";

// The matmul on staging; the relu back on the CPU.
constexpr const char* kPlaced = R"(graph @main(%x: f32[2, 4]) -> (%z: f32[2, 3]) {
  weight @w : f32[4, 3] = [1.0, 2.0, 3.0, -4.0, 5.0, 6.0, 7.0, -8.0, 9.0, 10.0, 11.0, 12.0]
  %xs = transfer %x {from = "cpu", to = "staging"} : f32[2, 4] on "staging"
  %ws = transfer @w {from = "cpu", to = "staging"} : f32[4, 3] on "staging"
  %ys = matmul %xs, %ws : f32[2, 3] on "staging"
  %y = transfer %ys {from = "staging", to = "cpu"} : f32[2, 3]
  %z = relu %y : f32[2, 3]
  return %z
}
)";

std::vector<float> runOnce(Session& session) {
  Tensor x = Tensor::allocate(DType::F32, {2, 4});
  for (int i = 0; i < 8; ++i) x.data<float>()[i] = static_cast<float>(i) * 0.5f - 1.0f;
  Expected<std::vector<Tensor>> outputs = session.run({x});
  EXPECT_TRUE(outputs.isOk()) << outputs.status().message();
  if (!outputs) return {};
  const float* data = (*outputs)[0].data<float>();
  return std::vector<float>(data, data + 6);
}

TEST(PlacedExecutor, RunsAcrossTwoDevicesAsTheUnplacedProgramDoes) {
  Expected<Graph> unplaced = parseGraph(kUnplaced), placed = parseGraph(kPlaced);
  ASSERT_TRUE(unplaced.isOk() && placed.isOk());
  Expected<std::unique_ptr<Executor>> reference = Executor::create(*unplaced);
  ASSERT_TRUE(reference.isOk()) << reference.status().message();
  StagingDevice::uploads = StagingDevice::transfers = 0;
  Expected<std::unique_ptr<Executor>> executor = Executor::create(*placed);
  ASSERT_TRUE(executor.isOk()) << executor.status().message();
  EXPECT_EQ(StagingDevice::uploads.load(), 1);  // @w, at creation

  Session referenceSession(**reference), session(**executor);
  const std::vector<float> expected = runOnce(referenceSession);
  for (int run = 0; run < 2; ++run) {
    EXPECT_EQ(runOnce(session), expected);
    // %x in (8 floats), %ys out (6 floats); @w's upload is not a run's.
    EXPECT_EQ(session.lastRun().transfers, 2);
    EXPECT_EQ(session.lastRun().transferBytes, (8u + 6u) * sizeof(float));
  }
  EXPECT_EQ(referenceSession.lastRun().transfers, 0);
  EXPECT_EQ(StagingDevice::uploads.load(), 1 + 2);  // %x each run; @w never again
  EXPECT_EQ(StagingDevice::transfers.load(), 2);    // %ys back to the host, each run

  const MemoryPlan& plan = (*executor)->plan();
  EXPECT_EQ(plan.registers[static_cast<size_t>(*placed->find("ys"))].memory, "staging");
  EXPECT_EQ(plan.registers[static_cast<size_t>(*placed->find("ws"))].kind, RegisterPlan::Weight);
  EXPECT_EQ(plan.registers[static_cast<size_t>(*placed->find("z"))].memory, "host");
}

TEST(PlacedExecutor, RefusesADeviceTheRuntimeLacks) {
  std::string text = kPlaced;
  for (size_t at; (at = text.find("staging")) != std::string::npos;) text.replace(at, 7, "nowhere");
  Expected<Graph> graph = parseGraph(text);
  ASSERT_TRUE(graph.isOk()) << graph.status().message();
  Expected<std::unique_ptr<Executor>> executor = Executor::create(*graph);
  ASSERT_FALSE(executor.isOk());
  EXPECT_NE(executor.status().message().find("is on device 'nowhere', which this runtime does not have"),
            std::string::npos)
      << executor.status().message();
}

TEST(PlacedExecutor, FallsBackToTheHostWithoutTheDevice) {
  std::string text = kPlaced;
  for (size_t at; (at = text.find("staging")) != std::string::npos;) text.replace(at, 7, "nowhere");
  Expected<Graph> placed = parseGraph(text), unplaced = parseGraph(kUnplaced);
  ASSERT_TRUE(placed.isOk() && unplaced.isOk());
  const auto unusable = unusableDevices(*placed);
  ASSERT_EQ(unusable.size(), 1u);
  EXPECT_EQ(unusable[0].first, "nowhere");
  EXPECT_EQ(unusable[0].second, "this runtime has no such device");
  EXPECT_TRUE(unusableDevices(*unplaced).empty());

  KvLayerRecord layers = std::vector<KvLayerSite>{};
  Expected<Graph> onHost = onHostOnly(*placed, layers);
  ASSERT_TRUE(onHost.isOk()) << onHost.status().message();
  for (const Op& op : onHost->ops()) {
    EXPECT_FALSE(op.is(OpKind::Transfer));
    EXPECT_TRUE(op.device.empty());
  }
  EXPECT_EQ(onHost->value(onHost->outputs()[0]).name, "z");
  Expected<std::unique_ptr<Executor>> executor =
      Executor::createOwning(std::make_shared<const Graph>(std::move(*onHost)), layers);
  ASSERT_TRUE(executor.isOk()) << executor.status().message();
  Expected<std::unique_ptr<Executor>> reference = Executor::create(*unplaced);
  ASSERT_TRUE(reference.isOk());
  Session session(**executor), referenceSession(**reference);
  EXPECT_EQ(runOnce(session), runOnce(referenceSession));
}

}  // namespace
}  // namespace kiln::rt
