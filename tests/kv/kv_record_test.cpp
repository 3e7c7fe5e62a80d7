// The KV layer record (docs/artifact.md, "KV layers"): the compiler finds the
// decoder's KV layers and the artifact records them, the runtime steps by the
// record; a record that does not fit the program is refused; a version 3
// artifact (data/decoder.v3.kiln, written before the record existed) loads
// and runs statelessly, and stepping it fails saying to recompile.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "compiler/artifact_writer.h"
#include "compiler/compiler.h"
#include "compiler/kv_layers.h"
#include "ir/text.h"
#include "runtime/artifact.h"
#include "tests/kv/kv_test_support.h"

namespace kiln::rt {
namespace {

using namespace kvtest;
namespace fs = std::filesystem;

const std::string kData = KILN_KV_TEST_DATA;

class KvRecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("kiln_kv_record_" + std::to_string(::getpid()) + "_" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The graph compiled as it is (no passes) and written to `name`.
  std::string write(Graph graph, const std::string& name) {
    CompileOptions noPasses;
    noPasses.pipeline.emplace();
    Expected<CompileResult> compiled = compile(std::move(graph), noPasses);
    EXPECT_TRUE(compiled.isOk()) << compiled.status().message();
    const std::string file = (dir_ / name).string();
    if (compiled) {
      EXPECT_TRUE(writeArtifact(*compiled, file).isOk());
    }
    return file;
  }

  fs::path dir_;
};

TEST_F(KvRecordTest, TheCompilersLayersRoundTripAndTheRuntimeStepsByThem) {
  const Graph decoder = parseFile(kData + "/decoder.kir");
  const std::vector<KvLayerSite> found = findKvLayers(decoder);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0], (KvLayerSite{3, 1, 2, 1, 2}));  // after gather, rms_norm and matmul
  EXPECT_EQ(found[1].pastKeyInput, 3u);
  EXPECT_EQ(found[1].presentValueOutput, 4u);

  auto loaded = loadArtifact(write(parseFile(kData + "/decoder.kir"), "decoder.kiln"));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
  ASSERT_TRUE(loaded->kvLayers.has_value());
  EXPECT_EQ(*loaded->kvLayers, found);
  auto executor = createExecutor(*loaded);
  ASSERT_TRUE(executor.isOk()) << executor.status().message();
  ASSERT_EQ((*executor)->kvLayers().size(), 2u);
  EXPECT_EQ(static_cast<const KvLayerSite&>((*executor)->kvLayers()[1]), found[1]);
  Session session(**executor);
  Tensor logits = stepLogits(session, {1, 2, 3});
  EXPECT_EQ(logits.shape(), (std::vector<int64_t>{1, 3, 16}));
  EXPECT_EQ(session.kvLength(), 3);
}

TEST_F(KvRecordTest, AProgramWithoutKvPairsRecordsNone) {
  auto loaded = loadArtifact(write(parseFile(PROJECT_SOURCE_DIR "/tests/runtime/data/mlp.kir"), "mlp.kiln"));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
  ASSERT_TRUE(loaded->kvLayers.has_value());
  EXPECT_TRUE(loaded->kvLayers->empty());
}

// The KV layer section's first entry, found through the section table.
size_t firstKvEntry(const std::vector<uint8_t>& bytes) {
  const auto table = readAt<uint64_t>(bytes.data(), kHeaderSectionTableAt);
  const auto count = readAt<uint32_t>(bytes.data(), kHeaderSectionCountAt);
  for (uint32_t i = 0; i < count; ++i) {
    const size_t entry = table + i * kArtifactSectionEntrySize;
    if (readAt<uint32_t>(bytes.data(), entry) == static_cast<uint32_t>(SectionKind::KvLayers))
      return readAt<uint64_t>(bytes.data(), entry + 8) + 4;  // past the count
  }
  ADD_FAILURE() << "no KV layer section";
  return 0;
}

TEST_F(KvRecordTest, ARecordThatDoesNotFitTheProgramIsRefused) {
  const std::string file = write(parseFile(kData + "/decoder.kir"), "decoder.kiln");
  std::ifstream in(file, std::ios::binary);
  const std::vector<uint8_t> good((std::istreambuf_iterator<char>(in)), {});
  const size_t entry = firstKvEntry(good);
  auto loadWith = [&](size_t field, uint32_t value) {
    std::vector<uint8_t> bytes = good;
    std::memcpy(&bytes[entry + 4 * field], &value, 4);
    const uint64_t sum = artifactChecksum(bytes.data() + kArtifactHeaderSize, bytes.size() - kArtifactHeaderSize);
    std::memcpy(&bytes[kHeaderChecksumAt], &sum, 8);
    std::ofstream((dir_ / "bad.kiln").string(), std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    auto loaded = loadArtifact((dir_ / "bad.kiln").string());
    return loaded ? std::string("loaded") : loaded.status().message();
  };
  const std::string prefix = "cannot load artifact '" + (dir_ / "bad.kiln").string() + "': corrupt: KV layers: ";
  EXPECT_EQ(loadWith(0, 0), prefix + "KV layer 0: op 0 is not an attention op with past and present keys and values");
  EXPECT_EQ(loadWith(1, 3), prefix + "KV layer 0: graph input 3 is not a past input of op 3 alone");
  EXPECT_EQ(loadWith(4, 9), prefix + "KV layer 0: graph output 9 is not a present output of op 3 alone");
  EXPECT_EQ(loadWith(0, 9), prefix + "KV layer 0: op 9 is not an attention op with past and present keys and values");
}

TEST(KvRecordVersion3, LoadsAndRunsStatelesslyButRefusesToStep) {
  auto old = loadArtifact(kData + "/decoder.v3.kiln");
  ASSERT_TRUE(old.isOk()) << old.status().message();
  EXPECT_EQ(old->formatVersion, 3u);
  EXPECT_FALSE(old->kvLayers.has_value());
  auto executor = createExecutor(*old);
  ASSERT_TRUE(executor.isOk()) << executor.status().message();
  EXPECT_TRUE((*executor)->kvLayers().empty());

  // Stateless, with an empty past for each of the four past inputs.
  std::vector<Tensor> past(4, Tensor::allocate(DType::F32, {1, 1, 0, 4}));
  const std::vector<Tensor> outputs = runStateless(**executor, tokens({1, 2, 3}), past);
  ASSERT_EQ(outputs.size(), 5u);
  EXPECT_EQ(outputs[1].shape(), (std::vector<int64_t>{1, 1, 3, 4}));

  Session session(**executor);
  auto stepped = session.step({tokens({1})});
  ASSERT_FALSE(stepped.isOk());
  EXPECT_EQ(stepped.status().message(),
            "graph @decoder cannot be stepped: its KV layers were not recorded (an artifact older than format "
            "version 4); recompile it to step it, or run it with explicit past inputs");
  EXPECT_EQ(session.loadKv(past).message(), stepped.status().message());
}

}  // namespace
}  // namespace kiln::rt
