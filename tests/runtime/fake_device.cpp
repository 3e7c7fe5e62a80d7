// A device for device_registry_test only, registered from this test library
// as a backend registers from its own: no runtime file names it.
#include "runtime/device.h"

namespace kiln::rt {
namespace {

class FakeDevice final : public Device {
 public:
  static constexpr std::string_view kName = "fake";
  std::string_view name() const override { return kName; }
  bool hasMemory(std::string_view memory) const override { return memory == "fake_memory"; }
  bool supports(const OpDef& def) const override { return false; }
  Expected<std::shared_ptr<void>> reserveArena(std::string_view memory, size_t bytes) override {
    return Status::error("the fake device reserves nothing");
  }
  Expected<Tensor> allocate(DType dtype, const std::vector<int64_t>& shape) override {
    return Status::error("the fake device allocates nothing");
  }
  Status run(const OpDef& def, const Attributes& attrs, std::span<const Tensor* const> inputs,
             std::span<Tensor* const> outputs, const KvCacheBinding* kvCache) override {
    return Status::error("the fake device runs nothing");
  }
};

const DeviceRegistration<FakeDevice> kRegistration;

}  // namespace
}  // namespace kiln::rt
