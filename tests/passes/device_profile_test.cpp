// Device profiles: the shipped ones parse, a profile prints and parses back
// unchanged, and refusal() names why an op cannot go on a device.
#include "passes/device_profile.h"

#include <gtest/gtest.h>

#include "ir/text.h"

namespace kiln {
namespace {

TEST(DeviceProfile, ShippedProfilesParse) {
  for (const std::string& name : builtinProfileNames()) {
    Expected<DeviceProfile> profile = loadDeviceProfile(name);
    ASSERT_TRUE(profile.isOk()) << name << ": " << profile.status().message();
    EXPECT_EQ(profile->name, name);
    EXPECT_FALSE(profile->ops.empty()) << name;
  }
  EXPECT_EQ(builtinProfileNames(), (std::vector<std::string>{"cpu", "h100", "npu-like", "pocl"}));
}

TEST(DeviceProfile, EachShippedDeviceHasOneDefault) {
  Expected<DeviceProfile> cpu = defaultDeviceProfile("cpu"), opencl = defaultDeviceProfile("opencl");
  Expected<DeviceProfile> cuda = defaultDeviceProfile("cuda");
  ASSERT_TRUE(cpu.isOk() && opencl.isOk() && cuda.isOk());
  EXPECT_EQ(cpu->name, "cpu");
  EXPECT_EQ(opencl->name, "pocl");  // npu-like runs on opencl too, but is no default
  EXPECT_EQ(cuda->name, "h100");
  EXPECT_FALSE(defaultDeviceProfile("tpu").isOk());
}

TEST(DeviceProfile, PrintsAndParsesBack) {
  Expected<DeviceProfile> npu = loadDeviceProfile("npu-like");
  ASSERT_TRUE(npu.isOk()) << npu.status().message();
  Expected<DeviceProfile> again = parseDeviceProfile(printDeviceProfile(*npu), "printed");
  ASSERT_TRUE(again.isOk()) << again.status().message();
  EXPECT_EQ(printDeviceProfile(*again), printDeviceProfile(*npu));
  EXPECT_EQ(again->ops, npu->ops);
  EXPECT_EQ(again->memoryBytes, npu->memoryBytes);
  EXPECT_TRUE(again->staticShapesOnly);
}

TEST(DeviceProfile, RefusalNamesTheReason) {
  Expected<Graph> graph = parseGraph(R"(graph @g(%x: f32[batch, 4], %i: i64[2], %s: f32[2, 4]) -> (%a: f32[batch, 4], %b: i64[2], %c: f32[2, 4]) {
  %a = relu %x : f32[batch, 4]
  %b = neg %i : i64[2]
  %c = relu %s : f32[2, 4]
  return %a, %b, %c
}
)");
  ASSERT_TRUE(graph.isOk()) << graph.status().message();
  DeviceProfile profile;
  profile.name = "strict";
  profile.ops = {OpKind::Relu, OpKind::Neg};
  profile.dtypes = {DType::F32};
  profile.staticShapesOnly = true;
  EXPECT_EQ(profile.refusal(*graph, graph->ops()[0]).value_or(""), "'strict' takes static shapes only, not f32[batch, 4]");
  EXPECT_EQ(profile.refusal(*graph, graph->ops()[1]).value_or(""), "'strict' has no i64");
  EXPECT_FALSE(profile.refusal(*graph, graph->ops()[2]).has_value());
  profile.ops = {OpKind::Neg};
  EXPECT_EQ(profile.refusal(*graph, graph->ops()[2]).value_or(""), "'strict' has no relu");
}

TEST(DeviceProfile, FloatOnlyOpsRefuseIntegerOperands) {
  Expected<Graph> graph = parseGraph(R"(graph @g(%x: f32[4], %i: i64[4]) -> (%a: f32[4], %b: i64[4]) {
  %a = div %x, %x : f32[4]
  %b = div %i, %i : i64[4]
  return %a, %b
}
)");
  ASSERT_TRUE(graph.isOk()) << graph.status().message();
  Expected<DeviceProfile> pocl = loadDeviceProfile("pocl");
  ASSERT_TRUE(pocl.isOk()) << pocl.status().message();
  EXPECT_EQ(pocl->floatOnly, (std::set<OpKind>{OpKind::Div, OpKind::FusedElementwise}));
  EXPECT_FALSE(pocl->refusal(*graph, graph->ops()[0]).has_value());
  EXPECT_EQ(pocl->refusal(*graph, graph->ops()[1]).value_or(""), "'pocl' runs div on floats only, not i64");
  Expected<DeviceProfile> again = parseDeviceProfile(printDeviceProfile(*pocl), "printed");
  ASSERT_TRUE(again.isOk()) << again.status().message();
  EXPECT_EQ(again->floatOnly, pocl->floatOnly);
}

}  // namespace
}  // namespace kiln
