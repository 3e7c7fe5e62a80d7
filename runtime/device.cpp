#include "runtime/device.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

namespace kiln::rt {
namespace {

struct RegisteredDevice {
  std::string name;
  DeviceFactory make;
  // Made on first lookup, not as the library loads: a device may read its
  // settings then (the CPU device reads KILN_GEMM), after the app's setup.
  std::unique_ptr<Device> device;
};

// Registration runs as libraries load and lookups on any session's thread,
// so one mutex guards both.
struct DeviceRegistry {
  std::mutex mutex;
  std::vector<RegisteredDevice> devices;  // ordered by name
};

// Made on first use, so a registration in another library's static
// initialiser never finds it unconstructed.
DeviceRegistry& registry() {
  static DeviceRegistry instance;
  return instance;
}

std::vector<RegisteredDevice>::iterator lowerBound(std::vector<RegisteredDevice>& devices,
                                                   std::string_view name) {
  return std::lower_bound(devices.begin(), devices.end(), name,
                          [](const RegisteredDevice& d, std::string_view n) { return d.name < n; });
}

Device* made(RegisteredDevice& registered) {
  if (!registered.device) registered.device = registered.make();
  return registered.device.get();
}

}  // namespace

Expected<uint64_t> tensorBytes(DType dtype, const std::vector<int64_t>& shape) {
  uint64_t bytes = dtypeSize(dtype);
  for (int64_t d : shape) {
    if (d < 0) return Status::error("cannot allocate a tensor of shape ", shapeStr(shape));
    if (d != 0 && bytes > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
      return Status::error("tensor of shape ", shapeStr(shape), " is too large to allocate");
    bytes *= static_cast<uint64_t>(d);
  }
  return bytes;
}

Status registerDevice(std::string_view name, DeviceFactory make) {
  if (name.empty()) return Status::error("cannot register a device without a name");
  if (!make) return Status::error("cannot register device '", name, "' without a factory");
  DeviceRegistry& r = registry();
  std::lock_guard lock(r.mutex);
  auto at = lowerBound(r.devices, name);
  if (at != r.devices.end() && at->name == name)
    return Status::error("device '", name, "' is registered twice");
  r.devices.insert(at, RegisteredDevice{std::string(name), make, nullptr});
  return Status::ok();
}

Device* findDevice(std::string_view name) {
  DeviceRegistry& r = registry();
  std::lock_guard lock(r.mutex);
  auto at = lowerBound(r.devices, name);
  return at != r.devices.end() && at->name == name ? made(*at) : nullptr;
}

std::vector<Device*> registeredDevices() {
  DeviceRegistry& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<Device*> devices;
  for (RegisteredDevice& registered : r.devices) devices.push_back(made(registered));
  return devices;
}

namespace detail {

void registerDeviceAtLoad(std::string_view name, DeviceFactory make) {
  Status registered = registerDevice(name, make);
  if (registered) return;
  std::fprintf(stderr, "kiln: %s\n", registered.message().c_str());
  std::abort();
}

}  // namespace detail
}  // namespace kiln::rt
