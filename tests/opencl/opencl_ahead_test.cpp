// The OpenCL device's ahead-of-time code (compileAhead, loadAhead): the
// programs a placed graph's ops will build are predicted and carried, with
// this machine's binaries; a device that loads them builds nothing when the
// ops first run; a blob for another device key is built from source, saying
// so; a damaged blob is refused with a clear error. Skips, saying why,
// without an OpenCL device.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "backends/opencl/ahead_code.h"
#include "backends/opencl/opencl_device.h"
#include "ir/text.h"

namespace kiln::opencl {
namespace {

// A broadcast add, a softmax and a transpose on the device: three programs
// at n = 16 (two generated map kernels and kernels/norms.cl), and two more
// at n = 1, where the add's broadcast and the transpose walk in order.
constexpr const char* kPlacedGraph = R"(graph @main(%x: f32[n, 8], %b: f32[8]) -> (%z: f32[8, n]) {
  %xd = transfer %x {from = "cpu", to = "opencl"} : f32[n, 8] on "opencl"
  %bd = transfer %b {from = "cpu", to = "opencl"} : f32[8] on "opencl"
  %y = add %xd, %bd : f32[n, 8] on "opencl"
  %s = softmax %y : f32[n, 8] on "opencl"
  %t = transpose %s {perm = [1, 0]} : f32[8, n] on "opencl"
  %z = transfer %t {from = "opencl", to = "cpu"} : f32[8, n]
  return %z
}
)";
const SymbolBindings kBounds = {{"n", 16}};
constexpr size_t kPrograms = 5;

Graph placedGraph() {
  Expected<Graph> graph = parseGraph(kPlacedGraph);
  EXPECT_TRUE(graph) << graph.status().message();
  return graph ? std::move(*graph) : Graph();
}

// Runs every op of the graph at n = 16 with `device` (transfers included),
// returning the output.
Expected<Tensor> runGraph(OpenClDevice& device, const Graph& graph) {
  std::map<ValueId, Tensor> values;
  for (ValueId input : graph.inputs()) {
    Tensor t = Tensor::allocate(DType::F32, *graph.value(input).type.substitute(kBounds).staticDims());
    for (int64_t i = 0; i < t.numElements(); ++i) t.data<float>()[i] = static_cast<float>(i % 7) * 0.25f;
    values[input] = t;
  }
  for (const Op& op : graph.ops()) {
    std::vector<const Tensor*> inputs;
    for (ValueId id : op.operands) inputs.push_back(&values.at(id));
    const std::vector<int64_t> shape = *graph.value(op.results[0]).type.substitute(kBounds).staticDims();
    Expected<Tensor> result = op.placement() == OpenClDevice::kName ? device.allocate(DType::F32, shape)
                                                                    : Tensor::allocate(DType::F32, shape);
    if (!result) return result.status();
    Tensor* outputs[] = {&*result};
    KILN_RETURN_IF_ERROR(device.run(*op.def, op.attrs, inputs, outputs, nullptr));
    values[op.results[0]] = *result;
  }
  return values.at(graph.outputs()[0]);
}

class OpenClAhead : public ::testing::Test {
 protected:
  void SetUp() override {
    Expected<ClContext*> cl = compiler_.context();
    if (!cl) GTEST_SKIP() << "no OpenCL device to test on: " << cl.status().message();
    Expected<std::vector<uint8_t>> blob = compiler_.compileAhead(graph_, kBounds, {});
    ASSERT_TRUE(blob) << blob.status().message();
    blob_ = *blob;
  }

  static ClContext& contextOf(OpenClDevice& device) { return **device.context(); }

  OpenClDevice compiler_;
  Graph graph_ = placedGraph();
  std::vector<uint8_t> blob_;
};

TEST_F(OpenClAhead, CarriesThePredictedProgramsWithBinaries) {
  Expected<AheadCode> code = decodeAheadCode(blob_);
  ASSERT_TRUE(code) << code.status().message();
  EXPECT_EQ(code->key, contextOf(compiler_).deviceKey());
  ASSERT_EQ(code->programs.size(), kPrograms);
  for (const AheadProgram& program : code->programs) {
    EXPECT_FALSE(program.binary.empty());
    EXPECT_EQ(program.options, ClContext::kBuildOptions);
  }
  const std::vector<std::string> predicted = predictedPrograms(graph_, kBounds);
  ASSERT_EQ(predicted.size(), kPrograms);
  for (size_t i = 0; i < kPrograms; ++i) EXPECT_EQ(code->programs[i].source, predicted[i]);
}

TEST_F(OpenClAhead, LoadedProgramsAreUsedAtTheFirstRun) {
  OpenClDevice loader;
  ASSERT_TRUE(loader.loadAhead(blob_));
  ClContext& cl = contextOf(loader);
  EXPECT_EQ(cl.binaryBuilds(), static_cast<int64_t>(kPrograms));
  EXPECT_EQ(cl.sourceBuilds(), 0);
  Expected<Tensor> loaded = runGraph(loader, graph_);
  ASSERT_TRUE(loaded) << loaded.status().message();
  EXPECT_EQ(cl.firstUseBuilds(), 0) << "a program was built at the first run";
  EXPECT_EQ(cl.sourceBuilds(), 0);

  OpenClDevice fresh;  // the same run building at first use, as without the artifact's code
  Expected<Tensor> built = runGraph(fresh, graph_);
  ASSERT_TRUE(built) << built.status().message();
  EXPECT_EQ(contextOf(fresh).firstUseBuilds(), 3);
  EXPECT_EQ(std::memcmp(loaded->data(), built->data(), built->byteSize()), 0);
}

TEST_F(OpenClAhead, AnotherDeviceKeyBuildsFromSourceSayingSo) {
  Expected<AheadCode> code = decodeAheadCode(blob_);
  ASSERT_TRUE(code) << code.status().message();
  code->key = "Other Platform / Other Device / 0.1";
  OpenClDevice loader;
  ::testing::internal::CaptureStderr();
  const Status loaded = loader.loadAhead(encodeAheadCode(*code));
  const std::string said = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(loaded) << loaded.message();
  const std::string ours = contextOf(loader).deviceKey();
  EXPECT_EQ(said, "kiln: opencl: the artifact's programs were built for Other Platform / Other Device / 0.1; "
                  "building them from source for " + ours + "\n");
  ClContext& cl = contextOf(loader);
  EXPECT_EQ(cl.binaryBuilds(), 0);
  EXPECT_EQ(cl.sourceBuilds(), static_cast<int64_t>(kPrograms));
  ASSERT_TRUE(runGraph(loader, graph_));
  EXPECT_EQ(cl.firstUseBuilds(), 0);
}

TEST_F(OpenClAhead, DamagedBinariesAreBuiltFromSource) {
  Expected<AheadCode> code = decodeAheadCode(blob_);
  ASSERT_TRUE(code) << code.status().message();
  for (AheadProgram& program : code->programs) std::fill(program.binary.begin(), program.binary.end(), 0x5a);
  OpenClDevice loader;
  ::testing::internal::CaptureStderr();
  const Status loaded = loader.loadAhead(encodeAheadCode(*code));
  const std::string said = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(loaded) << loaded.message();
  EXPECT_NE(said.find("the driver refused a program binary"), std::string::npos) << said;
  EXPECT_EQ(contextOf(loader).sourceBuilds(), static_cast<int64_t>(kPrograms));
  ASSERT_TRUE(runGraph(loader, graph_));
  EXPECT_EQ(contextOf(loader).firstUseBuilds(), 0);
}

TEST_F(OpenClAhead, CorruptBlobsAreRefusedClearly) {
  OpenClDevice loader;
  // Every cut of the header and the first program, then cuts further in.
  std::vector<size_t> cuts;
  for (size_t n = 0; n < std::min<size_t>(blob_.size(), 200); ++n) cuts.push_back(n);
  for (size_t n = 200; n < blob_.size(); n += blob_.size() / 37 + 1) cuts.push_back(n);
  for (size_t n : cuts) {
    if (n == 0) continue;  // an empty blob is no code, not a bad one
    const Status loaded = loader.loadAhead(std::span<const uint8_t>(blob_.data(), n));
    ASSERT_FALSE(loaded) << "a blob cut to " << n << " bytes loaded";
    EXPECT_EQ(loaded.message().rfind("opencl: bad device code: ", 0), 0u) << loaded.message();
  }
  std::vector<uint8_t> bad = blob_;
  bad[12] = 9;  // the version
  EXPECT_EQ(loader.loadAhead(bad).message(), "opencl: bad device code: version 9 (this runtime reads version 1)");
  bad = blob_;
  std::memset(&bad[0], 0xff, 4);  // four billion programs
  EXPECT_NE(loader.loadAhead(bad).message().find("runs past the end"), std::string::npos);
  bad = blob_;
  bad.push_back(0);
  EXPECT_EQ(loader.loadAhead(bad).message(), "opencl: bad device code: 1 bytes after the last of its 5 programs");
  EXPECT_EQ(contextOf(loader).sourceBuilds() + contextOf(loader).binaryBuilds(), 0);
}

// ---- Without OpenCL: run by the ctest opencl.ahead_no_platform.

TEST(OpenClAheadWithoutPlatform, CompilesSourcesOnly) {
  if (!std::getenv("KILN_EXPECT_NO_OPENCL")) GTEST_SKIP() << "run by opencl.ahead_no_platform, with no OpenCL platform";
  OpenClDevice lone;
  Expected<std::vector<uint8_t>> blob = lone.compileAhead(placedGraph(), kBounds, {});
  ASSERT_TRUE(blob) << blob.status().message();
  Expected<AheadCode> code = decodeAheadCode(*blob);
  ASSERT_TRUE(code) << code.status().message();
  EXPECT_EQ(code->key, "");
  ASSERT_EQ(code->programs.size(), kPrograms);
  for (const AheadProgram& program : code->programs) EXPECT_TRUE(program.binary.empty());
  const Status loaded = lone.loadAhead(*blob);
  EXPECT_EQ(loaded.message().rfind("no OpenCL platform: ", 0), 0u) << loaded.message();
}

}  // namespace
}  // namespace kiln::opencl
