// Graphs placed on the OpenCL device, run by the executor: transfers in and
// out, a weight uploaded through its transfer, device ops in the "opencl"
// arena at their planned offsets, and views within it; the results against
// the same graph on the CPU. Skips, saying why, without an OpenCL device.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "backends/opencl/opencl_device.h"
#include "ir/text.h"
#include "runtime/executor.h"
#include "runtime/planning/memory_plan.h"

namespace kiln::opencl {
namespace {

// x @ w with a gelu epilogue, rms_norm, a reshape view and softmax; `on`
// places every op but the last transfer (empty: all on the CPU).
std::string graphText(bool onDevice) {
  const std::string on = onDevice ? " on \"opencl\"" : "";
  auto in = [&](const std::string& name, const std::string& value, const std::string& type) {
    return onDevice ? "  %" + name + "d = transfer " + value + " {from = \"cpu\", to = \"opencl\"} : " + type + on + "\n"
                    : "";
  };
  const std::string x = onDevice ? "%xd" : "%x", w = onDevice ? "%wd" : "@w", s = onDevice ? "%sd" : "@s";
  return "graph @main(%x: f32[n, 5]) -> (%z: f32[n, 2, 3]) {\n"
         "  weight @w : f32[5, 6] = [0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, 0.8, -0.9, 1.0, 0.2, 0.1, 0.5, -0.3,\n"
         "                           0.25, 0.75, -0.6, 0.9, 0.45, 0.05, -0.15, 0.35, 0.65, -0.85, 0.12, 0.22,\n"
         "                           -0.32, 0.42, 0.52, -0.62]\n"
         "  weight @s : f32[6] = [1.0, 0.5, -1.5, 2.0, 0.25, 1.25]\n" +
         in("x", "%x", "f32[n, 5]") + in("w", "@w", "f32[5, 6]") + in("s", "@s", "f32[6]") +
         "  %y = matmul " + x + ", " + w + " {activation = \"gelu\"} : f32[n, 6]" + on + "\n" +
         "  %r = rms_norm %y, " + s + " {epsilon = 1e-05} : f32[n, 6]" + on + "\n" +
         "  %v = reshape %r {shape = [n, 2, 3]} : f32[n, 2, 3]" + on + "\n" +
         "  %" + (onDevice ? "p" : "z") + " = softmax %v : f32[n, 2, 3]" + on + "\n" +
         (onDevice ? "  %z = transfer %p {from = \"opencl\", to = \"cpu\"} : f32[n, 2, 3]\n" : "") +
         "  return %z\n}\n";
}

Tensor randomInput(int64_t rows) {
  static std::mt19937 generator(3);
  std::uniform_real_distribution<float> dist(-2, 2);
  Tensor t = Tensor::allocate(DType::F32, {rows, 5});
  for (int64_t i = 0; i < t.numElements(); ++i) t.data<float>()[i] = dist(generator);
  return t;
}

class OpenClExecutor : public ::testing::Test {
 protected:
  void SetUp() override {
    rt::Device* device = rt::findDevice("opencl");
    ASSERT_NE(device, nullptr) << "the runtime has no device \"opencl\"";
    Expected<Tensor> probe = device->allocate(DType::F32, {1});
    if (!probe) GTEST_SKIP() << "no OpenCL device to test on: " << probe.status().message();
  }

  static Graph parse(const std::string& text) {
    Expected<Graph> graph = parseGraph(text);
    EXPECT_TRUE(graph) << graph.status().message();
    return graph ? std::move(*graph) : Graph();
  }

  static void expectSame(const Tensor& want, const Tensor& got) {
    ASSERT_EQ(want.shape(), got.shape());
    for (int64_t i = 0; i < want.numElements(); ++i)
      EXPECT_NEAR(got.data<float>()[i], want.data<float>()[i], 1e-5 * (1 + std::abs(want.data<float>()[i])))
          << "element " << i;
  }
};

TEST_F(OpenClExecutor, PlacedGraphMatchesTheCpu) {
  const Graph host = parse(graphText(false)), placed = parse(graphText(true));
  Expected<std::unique_ptr<rt::Executor>> onCpu = rt::Executor::create(host);
  ASSERT_TRUE(onCpu) << onCpu.status().message();
  Expected<rt::MemoryPlan> plan = rt::planMemory(placed, {{"n", 16}});
  ASSERT_TRUE(plan) << plan.status().message();
  Expected<std::unique_ptr<rt::Executor>> onDevice = rt::Executor::create(placed, std::move(*plan));
  ASSERT_TRUE(onDevice) << onDevice.status().message();
  rt::Session session(**onDevice);
  for (int64_t rows : {1, 7, 16, 40}) {  // 40 runs past the plan's bound
    SCOPED_TRACE(rows);
    const Tensor x = randomInput(rows);
    Expected<std::vector<Tensor>> want = (*onCpu)->run({x});
    ASSERT_TRUE(want) << want.status().message();
    Expected<std::vector<Tensor>> got = session.run({x});
    ASSERT_TRUE(got) << got.status().message();
    if (rows <= 16) {
      EXPECT_EQ(session.lastRun().registersOffPlan, 0);  // all in the planned arenas
    }
    expectSame((*want)[0], (*got)[0]);
  }
}

}  // namespace
}  // namespace kiln::opencl
