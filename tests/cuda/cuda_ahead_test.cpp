// The CUDA device's ahead-of-time code: the kernel programs a placed graph's
// ops use are compiled by NVRTC into a cubin per architecture (sm_80, sm_90)
// and PTX for the newest, carried in a blob that decodes back and refuses
// damage with a clear error; a GPU picks its cubin, else PTX it can take.
// The NVRTC tests skip, saying why, where no CUDA toolkit is installed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

#include "backends/cuda/cuda_ahead.h"
#include "backends/cuda/cuda_device.h"
#include "backends/cuda/nvrtc_api.h"
#include "backends/cuda/op_kernels.h"
#include "ir/text.h"

namespace kiln::cuda {
namespace {

// A layer_norm and a softmax on the device (one program, "norms"), a
// broadcast add and a gelu (a generated map kernel each, both in the
// program "maps"), beside a matmul on the host.
constexpr const char* kPlacedGraph = R"(graph @main(%x: f32[n, 8], %s: f32[8], %b: f32[8], %w: f32[8, 8])
    -> (%z: f32[n, 8]) {
  %xd = transfer %x {from = "cpu", to = "cuda"} : f32[n, 8] on "cuda"
  %sd = transfer %s {from = "cpu", to = "cuda"} : f32[8] on "cuda"
  %bd = transfer %b {from = "cpu", to = "cuda"} : f32[8] on "cuda"
  %n = layer_norm %xd, %sd, %bd : f32[n, 8] on "cuda"
  %a = add %n, %bd : f32[n, 8] on "cuda"
  %g = gelu %a : f32[n, 8] on "cuda"
  %p = softmax %g : f32[n, 8] on "cuda"
  %h = transfer %p {from = "cuda", to = "cpu"} : f32[n, 8]
  %z = matmul %h, %w : f32[n, 8]
  return %z
}
)";

Graph placedGraph() {
  Expected<Graph> graph = parseGraph(kPlacedGraph);
  EXPECT_TRUE(graph) << graph.status().message();
  return graph ? std::move(*graph) : Graph();
}

bool contains(const std::vector<uint8_t>& bytes, std::string_view text) {
  return std::search(bytes.begin(), bytes.end(), text.begin(), text.end()) != bytes.end();
}

CudaCode sampleCode() {
  return {"NVRTC test", {{"norms", {{"sm_80", {1, 2, 3}}, {"sm_90", {4, 5}}, {"compute_90", {'.', 'p', 0}}}}}};
}

std::vector<std::string> namesOf(const std::vector<ProgramText>& programs) {
  std::vector<std::string> names;
  for (const ProgramText& program : programs) names.push_back(program.name);
  return names;
}

TEST(CudaAhead, TheProgramsOfThePlacedOpsOnly) {
  const std::vector<ProgramText> used = usedPrograms(placedGraph());
  EXPECT_EQ(namesOf(used), (std::vector<std::string>{"norms", "maps"}));
  ASSERT_EQ(used.size(), 2u);
  EXPECT_NE(used[0].source.find("extern \"C\" __global__ void layer_norm"), std::string::npos);
  const std::string& maps = used[1].source;
  EXPECT_LT(maps.find("#define KILN_MAX_RANK"), maps.find("__global__ void map_")) << "the prelude first";
  size_t kernels = 0;
  for (size_t at = maps.find("__global__ void map_"); at != std::string::npos;
       at = maps.find("__global__ void map_", at + 1))
    ++kernels;
  EXPECT_EQ(kernels, 2u) << "one kernel for the add, one for the gelu";
  EXPECT_NE(maps.find("int inOrder"), std::string::npos) << "the walk order is the run's";
  EXPECT_NE(maps.find("r = k_gelu(a0);"), std::string::npos);
  Expected<Graph> hostOnly = parseGraph(R"(graph @main(%x: f32[2, 8]) -> (%y: f32[2, 8]) {
  %y = softmax %x : f32[2, 8]
  return %y
}
)");
  ASSERT_TRUE(hostOnly) << hostOnly.status().message();
  EXPECT_TRUE(namesOf(usedPrograms(*hostOnly)).empty());
  CudaDevice device;
  Expected<std::vector<uint8_t>> none = device.compileAhead(*hostOnly, {}, {});
  ASSERT_TRUE(none) << none.status().message();
  EXPECT_TRUE(none->empty()) << "no CUDA op, no device code";
}

TEST(CudaAhead, TheBlobDecodesToWhatWasEncoded) {
  const std::vector<uint8_t> blob = encodeCudaCode(sampleCode());
  uint32_t count = 0;
  uint64_t binaryBytes = 0;
  std::memcpy(&count, blob.data(), 4);
  std::memcpy(&binaryBytes, blob.data() + 4, 8);
  EXPECT_EQ(count, 1u);  // the header every device blob starts with (docs/artifact.md)
  EXPECT_EQ(binaryBytes, 8u);
  Expected<CudaCode> back = decodeCudaCode(blob);
  ASSERT_TRUE(back) << back.status().message();
  EXPECT_EQ(back->compiler, "NVRTC test");
  ASSERT_EQ(back->programs.size(), 1u);
  ASSERT_EQ(back->programs[0].images.size(), 3u);
  EXPECT_EQ(back->programs[0].images[1].architecture, "sm_90");
  EXPECT_EQ(back->programs[0].images[1].code, (std::vector<uint8_t>{4, 5}));
}

TEST(CudaAhead, ADamagedBlobIsRefusedSayingWhat) {
  const std::vector<uint8_t> blob = encodeCudaCode(sampleCode());
  auto message = [](std::vector<uint8_t> bytes) {
    Expected<CudaCode> decoded = decodeCudaCode(bytes);
    return decoded ? std::string("decoded") : decoded.status().message();
  };
  EXPECT_EQ(message({1, 2, 3}), "cuda: bad device code: 3 bytes, shorter than its 16-byte header");
  std::vector<uint8_t> newer = blob;
  newer[12] = 9;
  EXPECT_EQ(message(newer), "cuda: bad device code: version 9 (this runtime reads version 1)");
  std::vector<uint8_t> cut(blob.begin(), blob.end() - 2);
  EXPECT_EQ(message(cut), "cuda: bad device code: image 2 of program 'norms' runs past the end");
  std::vector<uint8_t> longer = blob;
  longer.push_back(0);
  EXPECT_EQ(message(longer), "cuda: bad device code: 1 bytes after the last of its 1 programs");
  std::vector<uint8_t> miscounted = blob;
  miscounted[4] = 7;
  EXPECT_EQ(message(miscounted), "cuda: bad device code: its header counts 7 binary bytes, its programs 8");
  std::vector<uint8_t> huge = blob;
  huge[0] = 0xff, huge[1] = 0xff, huge[2] = 0xff;
  EXPECT_NE(message(huge).find("runs past the end"), std::string::npos) << message(huge);
}

TEST(CudaAhead, InspectSaysWhatEachProgramWasCompiledFor) {
  const CudaDevice device;
  EXPECT_EQ(device.describeAhead(encodeCudaCode(sampleCode())),
            std::vector<std::string>{"norms: sm_80, sm_90, compute_90 (NVRTC test)"});
  EXPECT_EQ(device.describeAhead(std::vector<uint8_t>{1, 2, 3}),
            std::vector<std::string>{"cuda: bad device code: 3 bytes, shorter than its 16-byte header"});
}

TEST(CudaAhead, AGpuTakesItsCubinElsePtxItCanCompile) {
  const CudaProgram program = sampleCode().programs[0];
  ASSERT_NE(pickImage(program, "sm_90"), nullptr);
  EXPECT_EQ(pickImage(program, "sm_90")->architecture, "sm_90");
  EXPECT_EQ(pickImage(program, "sm_80")->architecture, "sm_80");
  ASSERT_NE(pickImage(program, "sm_100"), nullptr);
  EXPECT_EQ(pickImage(program, "sm_100")->architecture, "compute_90") << "a newer GPU compiles the PTX";
  EXPECT_EQ(pickImage(program, "sm_86"), nullptr) << "sm_80's cubin is not sm_86's, and PTX for 90 is too new";
  EXPECT_EQ(pickImage(program, "sm_75"), nullptr);
}

TEST(CudaAhead, LoadingWithoutADriverSaysWhy) {
  if (loadCudaApi()) GTEST_SKIP() << "this machine has a CUDA driver";
  CudaDevice device;
  EXPECT_TRUE(device.loadAhead({}).isOk()) << "no code: nothing to load";
  const Status bad = device.loadAhead(std::vector<uint8_t>{1, 2, 3});
  EXPECT_EQ(bad.message().rfind("cuda: bad device code: ", 0), 0u) << bad.message();
  const Status none = device.loadAhead(encodeCudaCode(sampleCode()));
  EXPECT_EQ(none.message().rfind("no CUDA driver: ", 0), 0u) << none.message();
}

// ---- NVRTC: the kernels compile for every architecture kiln ships.

class CudaNvrtc : public ::testing::Test {
 protected:
  void SetUp() override {
    Expected<const NvrtcApi*> nvrtc = loadNvrtc();
    if (!nvrtc) GTEST_SKIP() << "no CUDA toolkit here: " << nvrtc.status().message();
  }
};

TEST_F(CudaNvrtc, EveryProgramCompilesToCubinForEachArchitectureAndPtx) {
  CudaDevice device;
  Expected<std::vector<uint8_t>> blob = device.compileAhead(placedGraph(), {{"n", 16}}, {});
  ASSERT_TRUE(blob) << blob.status().message();
  Expected<CudaCode> code = decodeCudaCode(*blob);
  ASSERT_TRUE(code) << code.status().message();
  EXPECT_EQ(code->compiler.rfind("NVRTC ", 0), 0u) << code->compiler;
  ASSERT_EQ(code->programs.size(), 2u);
  const CudaProgram& norms = code->programs[0];
  ASSERT_EQ(norms.images.size(), 3u);
  const char elf[] = {0x7f, 'E', 'L', 'F'};
  for (const char* architecture : {"sm_80", "sm_90"}) {
    const auto image = std::ranges::find(norms.images, std::string(architecture), &CudaImage::architecture);
    ASSERT_NE(image, norms.images.end()) << architecture;
    ASSERT_GE(image->code.size(), 4u);
    EXPECT_EQ(std::memcmp(image->code.data(), elf, 4), 0) << architecture << " is not a cubin (ELF)";
    for (const char* kernel : {"layer_norm", "rms_norm", "softmax"})
      EXPECT_TRUE(contains(image->code, kernel)) << architecture << " lacks kernel " << kernel;
  }
  const CudaImage& ptx = norms.images.back();
  EXPECT_EQ(ptx.architecture, "compute_90");
  EXPECT_TRUE(contains(ptx.code, ".target sm_90"));
  EXPECT_TRUE(contains(ptx.code, ".entry layer_norm"));
  const CudaProgram& maps = code->programs[1];
  EXPECT_EQ(maps.name, "maps");
  ASSERT_EQ(maps.images.size(), 3u);
  EXPECT_TRUE(contains(maps.images.back().code, ".entry map_"));
}

TEST_F(CudaNvrtc, TheArchitecturesAskedForAndPtxForTheNewest) {
  CudaDevice device;
  Expected<std::vector<uint8_t>> blob = device.compileAhead(placedGraph(), {{"n", 16}}, {"sm_89", "sm_86"});
  ASSERT_TRUE(blob) << blob.status().message();
  Expected<CudaCode> code = decodeCudaCode(*blob);
  ASSERT_TRUE(code) << code.status().message();
  std::vector<std::string> architectures;
  for (const CudaImage& image : code->programs.at(0).images) architectures.push_back(image.architecture);
  EXPECT_EQ(architectures, (std::vector<std::string>{"sm_89", "sm_86", "compute_89"}));
  EXPECT_EQ(pickImage(code->programs[0], "sm_90")->architecture, "compute_89") << "an sm_90 GPU compiles the PTX";
}

TEST_F(CudaNvrtc, ACompileErrorCarriesTheLog) {
  Expected<std::vector<uint8_t>> broken =
      compileCuda(**loadNvrtc(), "extern \"C\" __global__ void k() { undeclared(); }", "broken.cu", "sm_90");
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.status().message().find("broken.cu"), std::string::npos) << broken.status().message();
  EXPECT_NE(broken.status().message().find("undeclared"), std::string::npos) << broken.status().message();
}

}  // namespace
}  // namespace kiln::cuda
