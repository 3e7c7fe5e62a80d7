// The device registry: the CPU device and a fake one from a test-only library
// (fake_device.cpp) are found by name, listed, shared, and a name is taken once.
#include <gtest/gtest.h>

#include "runtime/device.h"

namespace kiln::rt {
namespace {

std::unique_ptr<Device> noDevice() { return nullptr; }

TEST(DeviceRegistry, FindsTheCpuDevice) {
  Device* cpu = findDevice("cpu");
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->name(), "cpu");
  EXPECT_TRUE(cpu->hasMemory("host"));
  EXPECT_EQ(findDevice("cpu"), cpu);  // one device serves every session
}

TEST(DeviceRegistry, FindsADeviceRegisteredFromAnotherLibrary) {
  Device* fake = findDevice("fake");
  ASSERT_NE(fake, nullptr);
  EXPECT_EQ(fake->name(), "fake");
  EXPECT_TRUE(fake->hasMemory("fake_memory"));
  EXPECT_EQ(findDevice("fake"), fake);
}

TEST(DeviceRegistry, FindsNoUnknownDevice) {
  EXPECT_EQ(findDevice("gpu"), nullptr);
  EXPECT_EQ(findDevice(""), nullptr);
  EXPECT_EQ(findDevice("cpu "), nullptr);
}

TEST(DeviceRegistry, ListsEveryDeviceByName) {
  std::vector<std::string_view> names;
  for (Device* device : registeredDevices()) names.push_back(device->name());
  // The backends' devices (cuda and opencl too: they register whether or
  // not a driver is there) and the test's own.
  EXPECT_EQ(names, (std::vector<std::string_view>{"cpu", "cuda", "fake", "opencl"}));
  EXPECT_EQ(registeredDevices().front(), findDevice("cpu"));
}

TEST(DeviceRegistry, RefusesATakenNameAnEmptyNameAndNoFactory) {
  Device* cpu = findDevice("cpu");
  EXPECT_EQ(registerDevice("cpu", noDevice).message(), "device 'cpu' is registered twice");
  EXPECT_EQ(registerDevice("", noDevice).message(), "cannot register a device without a name");
  EXPECT_EQ(registerDevice("gpu", nullptr).message(), "cannot register device 'gpu' without a factory");
  EXPECT_EQ(findDevice("cpu"), cpu);
  EXPECT_EQ(findDevice("gpu"), nullptr);
  EXPECT_EQ(registeredDevices().size(), 4u);
}

}  // namespace
}  // namespace kiln::rt
