// Referenced weights (format version 3, `kiln compile --weights reference`):
// weights whose data are a weight file's bytes are recorded as byte ranges of
// it; the loader maps the file, views aligned ranges in place and reads
// unaligned ones into aligned memory, and refuses a file that is missing or
// changed. Also: the embedded weights are written in slices (the checksum is
// hashed on the way), and version 2 artifacts still load.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "compiler/artifact_writer.h"
#include "ir/text.h"
#include "runtime/artifact.h"
#include "runtime/executor.h"
#include "runtime/weight_copies.h"

namespace kiln::rt {
namespace {

namespace fs = std::filesystem;

// Where each weight of kProgram lies in the weight file, and the file's
// size. @w and @half are at offsets that are not a multiple of their element
// size; @tail runs past the end of the file.
constexpr size_t kW = 3, kB = 32, kIds = 48, kHalf = 65, kFlags = 70, kFileSize = 80, kTail = 76;

constexpr std::string_view kProgram =
    "graph @main(%x: f32[n, 2]) -> (%y: f32[n, 3]) {\n"
    "  weight @w : f32[2, 3]\n"
    "  weight @b : f32[3]\n"
    "  weight @ids : i64[2]\n"
    "  weight @half : f16[2]\n"
    "  weight @flags : bool[2]\n"
    "  weight @tail : f32[2]\n"
    "  weight @own : f32[3]\n"
    "  %h = matmul %x, @w : f32[n, 3]\n"
    "  %y = add %h, @b : f32[n, 3]\n"
    "  return %y\n"
    "}\n";

// kProgram with the values the weights get.
constexpr std::string_view kProgramWithValues =
    "graph @main(%x: f32[n, 2]) -> (%y: f32[n, 3]) {\n"
    "  weight @w : f32[2, 3] = [1.0, -1.0, 0.5, 2.0, 0.0, -0.5]\n"
    "  weight @b : f32[3] = [0.25, 1.0, -1.0]\n"
    "  weight @ids : i64[2] = [-7, 9000000000]\n"
    "  weight @half : f16[2] = [1.0, -2.0]\n"
    "  weight @flags : bool[2] = [true, false]\n"
    "  weight @tail : f32[2] = [3.0, 4.0]\n"
    "  weight @own : f32[3] = [1.0, 2.0, 3.0]\n"
    "  %h = matmul %x, @w : f32[n, 3]\n"
    "  %y = add %h, @b : f32[n, 3]\n"
    "  return %y\n"
    "}\n";

class ArtifactReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("kiln_artifact_reference_" + std::to_string(::getpid()) + "_" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    weightFile_ = fs::absolute(dir_ / "weights.bin").lexically_normal().string();

    // The file's bytes, and 8 more after them in memory only (for @tail).
    image_.assign(kFileSize + 8, 0x5a);
    const float w[6] = {1, -1, 0.5f, 2, 0, -0.5f};
    const float b[3] = {0.25f, 1, -1};
    const int64_t ids[2] = {-7, 9000000000};
    const uint16_t half[2] = {0x3c00, 0xc000};  // 1, -2
    const uint8_t flags[2] = {1, 0};
    const float tail[2] = {3, 4};
    std::memcpy(&image_[kW], w, sizeof w);
    std::memcpy(&image_[kB], b, sizeof b);
    std::memcpy(&image_[kIds], ids, sizeof ids);
    std::memcpy(&image_[kHalf], half, sizeof half);
    std::memcpy(&image_[kFlags], flags, sizeof flags);
    std::memcpy(&image_[kTail], tail, sizeof tail);
    writeFile(weightFile_, std::vector<uint8_t>(image_.begin(), image_.begin() + kFileSize));

    auto graph = parseGraph(kProgram);
    ASSERT_TRUE(graph.isOk()) << graph.status().message();
    graph_ = std::move(*graph);
    view("w", DType::F32, {2, 3}, kW);
    view("b", DType::F32, {3}, kB);
    view("ids", DType::I64, {2}, kIds);
    view("half", DType::F16, {2}, kHalf);
    view("flags", DType::Bool, {2}, kFlags);
    view("tail", DType::F32, {2}, kTail);
    Tensor own = Tensor::allocate(DType::F32, {3});
    for (int i = 0; i < 3; ++i) own.data<float>()[i] = static_cast<float>(i + 1);
    graph_.value(*graph_.find("own")).data = own;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  void view(const std::string& name, DType dtype, std::vector<int64_t> shape, size_t offset) {
    graph_.value(*graph_.find(name)).data = Tensor::view(dtype, std::move(shape), image_.data() + offset);
  }

  static void writeFile(const std::string& file, const std::vector<uint8_t>& bytes) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  static std::vector<uint8_t> readFile(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
  }
  static int64_t mtimeNs(const std::string& file) {
    struct stat info;
    EXPECT_EQ(::stat(file.c_str(), &info), 0);
    return static_cast<int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
  }
  static void setMtimeNs(const std::string& file, int64_t ns) {
    const timespec times[2] = {{0, UTIME_OMIT}, {ns / 1'000'000'000, ns % 1'000'000'000}};
    ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
  }

  ArtifactWriteOptions options(WeightStorage storage) const {
    ArtifactWriteOptions o;
    o.weights = storage;
    o.sources.push_back({{weightFile_, kFileSize, mtimeNs(weightFile_)}, image_.data()});
    return o;
  }

  // Writes the program with referenced weights to `name`; returns its path.
  std::string writeReferenced(const std::string& name = "referenced.kiln", ArtifactWriteStats* stats = nullptr) {
    const std::string file = path(name);
    Status written = writeArtifact(graph_, nullptr, file, options(WeightStorage::Reference), stats);
    EXPECT_TRUE(written.isOk()) << written.message();
    return file;
  }

  std::string loadError(const std::string& file, LoadFailure expected) {
    LoadFailure failure = LoadFailure::None;
    auto loaded = loadArtifact(file, &failure);
    if (loaded) return "<loaded>";
    EXPECT_EQ(failure, expected);
    const std::string prefix = "cannot load artifact '" + file + "': ";
    const std::string& message = loaded.status().message();
    EXPECT_EQ(message.rfind(prefix, 0), 0u) << message;
    return message.substr(prefix.size());
  }

  // y = x @ w + b for x = [[1, 2]]. (The test's own graph_ holds weights at
  // unaligned addresses, which only the writer, reading bytes, gets to see.)
  static std::vector<float> run(const Graph& graph) {
    auto executor = Executor::create(graph);
    EXPECT_TRUE(executor.isOk()) << executor.status().message();
    if (!executor) return {};
    Tensor x = Tensor::allocate(DType::F32, {1, 2});
    x.data<float>()[0] = 1;
    x.data<float>()[1] = 2;
    auto outputs = (*executor)->run({x});
    EXPECT_TRUE(outputs.isOk()) << outputs.status().message();
    if (!outputs) return {};
    const float* y = (*outputs)[0].data<float>();
    return std::vector<float>(y, y + 3);
  }

  fs::path dir_;
  std::string weightFile_;
  std::vector<uint8_t> image_;
  Graph graph_;
};

TEST_F(ArtifactReferenceTest, WeightsInTheFileAreReferencedAndLoadAsTheyWere) {
  ArtifactWriteStats stats;
  const std::string file = writeReferenced("referenced.kiln", &stats);
  // @flags is a bool (embedded, as the loader would have to normalise it),
  // @tail is not wholly in the file, @own not in it at all.
  EXPECT_EQ(stats.referencedWeights, 4);
  EXPECT_EQ(stats.referencedBytes, 24u + 12 + 16 + 4);
  EXPECT_EQ(stats.unalignedWeights, 2);  // @w at 3, @half at 65
  EXPECT_EQ(stats.unalignedBytes, 24u + 4);
  EXPECT_EQ(stats.embeddedWeights, 3);
  EXPECT_EQ(stats.embeddedBytes, 2u + 8 + 12);
  EXPECT_EQ(stats.referencedFiles, std::vector<std::string>{weightFile_});

  auto loaded = loadArtifact(file);
  ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
  EXPECT_EQ(loaded->formatVersion, kArtifactFormatVersion);
  EXPECT_EQ(printGraph(loaded->graph), kProgramWithValues);  // every value, as written
  ASSERT_EQ(loaded->weightFiles.size(), 1u);
  EXPECT_EQ(loaded->weightFiles[0].path, weightFile_);
  EXPECT_EQ(loaded->weightFiles[0].size, kFileSize);
  EXPECT_EQ(loaded->weightFiles[0].mtimeNs, mtimeNs(weightFile_));
  EXPECT_EQ(loaded->referencedWeightBytes, stats.referencedBytes);
  EXPECT_EQ(loaded->embeddedWeightBytes, stats.embeddedBytes);
  EXPECT_EQ(loaded->weightBytes, stats.referencedBytes + stats.embeddedBytes);
  EXPECT_LT(loaded->fileSize, 2048u);

  struct Expected {
    int32_t file;
    uint64_t offset;
    bool copied;
  };
  const std::map<std::string, Expected> expected = {
      {"w", {0, kW, true}},       {"b", {0, kB, false}},     {"ids", {0, kIds, false}},
      {"half", {0, kHalf, true}}, {"flags", {-1, 0, false}}, {"tail", {-1, 0, false}},
      {"own", {-1, 0, false}}};
  ASSERT_EQ(loaded->weightLocations.size(), expected.size());
  for (const WeightLocation& location : loaded->weightLocations) {
    const Value& weight = loaded->graph.value(location.weight);
    const Expected& want = expected.at(weight.name);
    EXPECT_EQ(location.file, want.file) << weight.name;
    EXPECT_EQ(location.bytes, weight.data->byteSize()) << weight.name;
    EXPECT_EQ(location.unaligned != WeightLocation::Unaligned::No, want.copied) << weight.name;
    const auto address = reinterpret_cast<uintptr_t>(weight.data->data());
    if (want.file < 0 || want.copied) {
      // Embedded, or copied: 64-byte aligned memory.
      EXPECT_EQ(address % kWeightAlignment, 0u) << weight.name;
    } else {
      // A view into the page-aligned mapping of the file, at its offset.
      EXPECT_EQ(location.offset, want.offset) << weight.name;
      EXPECT_EQ(address % 4096, want.offset % 4096) << weight.name;
    }
  }
  EXPECT_EQ(run(loaded->graph), (std::vector<float>{5.25f, 0, -1.5f}));
}

// How the loader holds each unaligned weight by its readers: a table that
// only gathers read is viewed in place (they copy bytes), so its unused rows
// are never read; a matmul's b, here also a gather's table (a tied
// embedding), is copied, releasably: what the CPU releases, the kernels that
// read it later read again; anything else (an add's operand) is copied for
// good.
TEST_F(ArtifactReferenceTest, UnalignedWeightsAreHeldByTheirReaders) {
  auto graph = parseGraph(
      "graph @main(%i: i64[2], %x: f32[n, 2]) -> (%rows: f32[2, 3], %y: f32[n, 3], %z: f32[2, 3], "
      "%tied: f32[2, 3]) {\n"
      "  weight @table : f32[2, 3]\n"
      "  weight @w : f32[2, 3]\n"
      "  weight @added : f32[2, 3]\n"
      "  %rows = gather @table, %i {axis = 0} : f32[2, 3]\n"
      "  %y = matmul %x, @w : f32[n, 3]\n"
      "  %z = add %rows, @added : f32[2, 3]\n"
      "  %tied = gather @w, %i {axis = 0} : f32[2, 3]\n"
      "  return %rows, %y, %z, %tied\n"
      "}\n");
  ASSERT_TRUE(graph.isOk()) << graph.status().message();
  for (const char* name : {"table", "w", "added"})  // all three the same bytes, at offset 3
    graph->value(*graph->find(name)).data = Tensor::view(DType::F32, {2, 3}, image_.data() + kW);
  const std::string file = path("readers.kiln");
  ASSERT_TRUE(writeArtifact(*graph, nullptr, file, options(WeightStorage::Reference)).isOk());
  auto loaded = loadArtifact(file);
  ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
  using Unaligned = WeightLocation::Unaligned;
  const std::map<std::string, Unaligned> expected = {
      {"table", Unaligned::Viewed}, {"w", Unaligned::Released}, {"added", Unaligned::Copied}};
  const void* w = nullptr;
  for (const WeightLocation& location : loaded->weightLocations) {
    const Value& weight = loaded->graph.value(location.weight);
    EXPECT_EQ(location.unaligned, expected.at(weight.name)) << weight.name;
    const auto address = reinterpret_cast<uintptr_t>(weight.data->data());
    EXPECT_EQ(address % 4096 == kW, location.unaligned == Unaligned::Viewed) << weight.name;
    if (weight.name == "w") w = weight.data->data();
  }

  auto executor = Executor::create(loaded->graph);
  ASSERT_TRUE(executor.isOk()) << executor.status().message();
  Tensor i = Tensor::allocate(DType::I64, {2});
  i.data<int64_t>()[0] = 1;
  Tensor x = Tensor::allocate(DType::F32, {1, 2});
  x.data<float>()[0] = 1;
  x.data<float>()[1] = 2;
  auto values = [](const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + 3 * t.shape()[0]); };
  for (int run = 0; run < 2; ++run) {
    auto outputs = (*executor)->run({i, x});
    ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
    EXPECT_EQ(values((*outputs)[0]), (std::vector<float>{2, 0, -0.5f, 1, -1, 0.5f}));  // rows 1, 0
    EXPECT_EQ(values((*outputs)[1]), (std::vector<float>{5, -1, -0.5f}));
    EXPECT_EQ(values((*outputs)[2]), (std::vector<float>{3, -1, 0, 3, -1, 0}));
    EXPECT_EQ(values((*outputs)[3]), values((*outputs)[0]));
    // As the CPU's matmul would once packed: the next run reads it again.
    EXPECT_TRUE(releaseWeightCopy(w, 24));
  }
}

TEST_F(ArtifactReferenceTest, EmbedModeEmbedsEverything) {
  ArtifactWriteStats stats;
  ASSERT_TRUE(writeArtifact(graph_, nullptr, path("embedded.kiln"), options(WeightStorage::Embed), &stats).isOk());
  EXPECT_EQ(stats.referencedWeights, 0);
  EXPECT_EQ(stats.embeddedWeights, 7);
  EXPECT_TRUE(stats.referencedFiles.empty());
  auto loaded = loadArtifact(path("embedded.kiln"));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
  EXPECT_TRUE(loaded->weightFiles.empty());
  EXPECT_EQ(loaded->referencedWeightBytes, 0u);
  EXPECT_EQ(printGraph(loaded->graph), kProgramWithValues);
  // Without its weight file, the embedded artifact still loads.
  fs::remove(weightFile_);
  EXPECT_TRUE(loadArtifact(path("embedded.kiln")).isOk());
}

TEST_F(ArtifactReferenceTest, RefusesAMissingWeightFile) {
  const std::string file = writeReferenced();
  fs::rename(weightFile_, path("moved.bin"));
  EXPECT_EQ(loadError(file, LoadFailure::Io),
            "weight file '" + weightFile_ +
                "' (referenced by kiln compile --weights reference) cannot be opened: No such file or directory; "
                "restore it, or recompile (--weights embed keeps the weights in the artifact)");
}

TEST_F(ArtifactReferenceTest, RefusesAChangedWeightFile) {
  const std::string file = writeReferenced();
  const std::vector<uint8_t> original = readFile(weightFile_);
  const int64_t mtime = mtimeNs(weightFile_);
  const std::string named = "weight file '" + weightFile_ + "' (referenced by kiln compile --weights reference)";

  // Longer, or cut short.
  std::vector<uint8_t> longer = original;
  longer.push_back(0);
  writeFile(weightFile_, longer);
  setMtimeNs(weightFile_, mtime);
  EXPECT_EQ(loadError(file, LoadFailure::Invalid),
            named + " has changed since the artifact was compiled: it has 81 bytes, 80 then; recompile");
  writeFile(weightFile_, std::vector<uint8_t>(original.begin(), original.begin() + 40));
  EXPECT_EQ(loadError(file, LoadFailure::Invalid),
            named + " has changed since the artifact was compiled: it has 40 bytes, 80 then; recompile");

  // The same bytes, modified later.
  writeFile(weightFile_, original);
  setMtimeNs(weightFile_, mtime + 1'000'000'000);
  EXPECT_EQ(loadError(file, LoadFailure::Invalid),
            named + " has changed since the artifact was compiled: it was modified after; recompile");

  // Other bytes under the same size and modification time: the fingerprint.
  std::vector<uint8_t> changed = original;
  changed[kB + 4] ^= 0x01;  // in @b
  writeFile(weightFile_, changed);
  setMtimeNs(weightFile_, mtime);
  EXPECT_EQ(loadError(file, LoadFailure::Invalid),
            "weight file '" + weightFile_ + "' has changed since the artifact was compiled: the bytes of @b at offset " +
                std::to_string(kB) + " differ; recompile");

  writeFile(weightFile_, original);
  setMtimeNs(weightFile_, mtime);
  EXPECT_TRUE(loadArtifact(file).isOk());
}

// The table entry of weight `name`: the offset of its u32 file field (then
// u64 offset, u64 bytes, u64 fingerprint).
size_t entryFields(const std::vector<uint8_t>& bytes, const std::string& name) {
  auto get32 = [&](size_t at) {
    uint32_t v;
    std::memcpy(&v, &bytes[at], 4);
    return v;
  };
  uint64_t tableAt = 0;
  for (uint32_t i = 0; i < get32(40); ++i) {
    const size_t entry = 64 + i * kArtifactSectionEntrySize;
    if (get32(entry) == static_cast<uint32_t>(SectionKind::WeightTable)) std::memcpy(&tableAt, &bytes[entry + 8], 8);
  }
  size_t at = tableAt + 4;
  for (uint32_t i = 0; i < get32(tableAt); ++i) {
    const uint32_t length = get32(at);
    const std::string entryName(reinterpret_cast<const char*>(&bytes[at + 4]), length);
    if (entryName == name) return at + 4 + length;
    at += 4 + length + 4 + 24;
  }
  ADD_FAILURE() << "no entry for " << name;
  return 0;
}

void resign(std::vector<uint8_t>& bytes) {
  const uint64_t sum = artifactChecksum(bytes.data() + kArtifactHeaderSize, bytes.size() - kArtifactHeaderSize);
  std::memcpy(bytes.data() + 24, &sum, 8);
}

TEST_F(ArtifactReferenceTest, RefusesABadReference) {
  const std::vector<uint8_t> good = readFile(writeReferenced());
  const size_t b = entryFields(good, "b");

  std::vector<uint8_t> bytes = good;
  const uint64_t pastEnd = kFileSize - 8;  // 12 bytes from 72: past the 80
  std::memcpy(&bytes[b + 4], &pastEnd, 8);
  resign(bytes);
  writeFile(path("past_end.kiln"), bytes);
  EXPECT_EQ(loadError(path("past_end.kiln"), LoadFailure::Invalid),
            "bad weight table: weight @b spans [72, 84) past the end of '" + weightFile_ + "' (80 bytes)");

  bytes = good;
  const uint32_t noSuchFile = 3;
  std::memcpy(&bytes[b], &noSuchFile, 4);
  resign(bytes);
  writeFile(path("no_such_file.kiln"), bytes);
  EXPECT_EQ(loadError(path("no_such_file.kiln"), LoadFailure::Invalid),
            "bad weight table: weight @b is in weight file 3 of the 1 listed");

  bytes = good;
  const uint32_t inFile = 0;
  std::memcpy(&bytes[entryFields(good, "flags")], &inFile, 4);
  resign(bytes);
  writeFile(path("bool.kiln"), bytes);
  EXPECT_EQ(loadError(path("bool.kiln"), LoadFailure::Invalid).rfind("bad weight table: bool weight @flags is referenced in '", 0),
            0u);
}

TEST(ReferencedWeightFingerprint, SamplesTheStartMiddleAndEnd) {
  std::vector<uint8_t> bytes(1000);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7);
  // Up to 192 bytes: the checksum of all of them.
  EXPECT_EQ(referencedWeightFingerprint(bytes.data(), 192), artifactChecksum(bytes.data(), 192));
  const uint64_t base = referencedWeightFingerprint(bytes.data(), bytes.size());
  // A byte in [0, 64), [468, 532) or [936, 1000) changes it...
  for (size_t at : {0u, 63u, 468u, 531u, 936u, 999u}) {
    bytes[at] ^= 1;
    EXPECT_NE(referencedWeightFingerprint(bytes.data(), bytes.size()), base) << at;
    bytes[at] ^= 1;
  }
  // ...one elsewhere does not: a sample, never a read of the whole weight.
  bytes[300] ^= 1;
  EXPECT_EQ(referencedWeightFingerprint(bytes.data(), bytes.size()), base);
}

TEST_F(ArtifactReferenceTest, LargeEmbeddedWeightsAreWrittenInSlicesUnderOneChecksum) {
  // Over the writer's 1 MiB slice, of an odd size, between small weights:
  // the loader's checksum of the whole file must match the writer's, which
  // hashed the slices and padding as it wrote them.
  auto graph = parseGraph(
      "graph @main(%x: u8[3]) -> (%y: u8[3]) {\n"
      "  weight @a : u8[3]\n"
      "  weight @big : u8[2097155]\n"
      "  weight @c : u8[5]\n"
      "  %y = identity %x : u8[3]\n"
      "  return %y\n"
      "}\n");
  ASSERT_TRUE(graph.isOk()) << graph.status().message();
  for (const char* name : {"a", "big", "c"}) {
    Value& weight = graph->value(*graph->find(name));
    Tensor data = Tensor::allocate(DType::U8, *weight.type.staticDims());
    for (int64_t i = 0; i < data.numElements(); ++i) data.data<uint8_t>()[i] = static_cast<uint8_t>(i * 31 + 1);
    weight.data = data;
  }
  ASSERT_TRUE(writeArtifact(*graph, nullptr, path("big.kiln")).isOk());
  auto loaded = loadArtifact(path("big.kiln"));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
  const Tensor& big = *loaded->graph.value(*loaded->graph.find("big")).data;
  ASSERT_EQ(big.numElements(), 2097155);
  for (int64_t i : {int64_t{0}, int64_t{1} << 20, int64_t{2097154}})
    EXPECT_EQ(big.data<uint8_t>()[i], static_cast<uint8_t>(i * 31 + 1)) << i;
}

TEST(ArtifactVersion2, StillLoadsAndRuns) {
  // data/mlp.v2.kiln: data/mlp.kir written by the version 2 writer.
  const std::string data = KILN_RUNTIME_TEST_DATA;
  auto old = loadArtifact(data + "/mlp.v2.kiln");
  ASSERT_TRUE(old.isOk()) << old.status().message();
  EXPECT_EQ(old->formatVersion, 2u);
  EXPECT_TRUE(old->weightFiles.empty());
  std::ifstream in(data + "/mlp.kir");
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  auto graph = parseGraph(text);
  ASSERT_TRUE(graph.isOk()) << graph.status().message();
  EXPECT_EQ(printGraph(old->graph), printGraph(*graph));
  ASSERT_TRUE(old->plan.has_value());
  auto executor = createExecutor(*old);
  ASSERT_TRUE(executor.isOk()) << executor.status().message();
  Tensor x = Tensor::allocate(DType::F32, {1, 2});
  x.data<float>()[0] = 1;
  x.data<float>()[1] = 2;
  auto outputs = (*executor)->run({x});
  ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
  const float* y = (*outputs)[0].data<float>();
  // h = [1 + 4, -1 + 0, 0.5 - 1] = [5, -1, -0.5]; y = relu(h + b).
  EXPECT_EQ(std::vector<float>(y, y + 3), (std::vector<float>{5, 0, 0}));
}

}  // namespace
}  // namespace kiln::rt
