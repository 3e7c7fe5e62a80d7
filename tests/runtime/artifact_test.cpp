// The .kiln artifact: a round trip with weights of every dtype and the
// memory plan, and each refusal (missing, truncated, wrong magic, older or
// newer version, corrupt, bad section or weight table, a plan that does not
// match the program) with the message that says which.
#include "runtime/artifact.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "compiler/artifact_writer.h"
#include "compiler/compiler.h"
#include "ir/text.h"
#include "runtime/executor.h"

namespace kiln::rt {
namespace {

namespace fs = std::filesystem;

// Every dtype as a weight, with values that survive the dtype exactly.
constexpr std::string_view kAllDTypes =
    "graph @main(%x: f32[n, 2]) -> (%y: f32[n, 3]) {\n"
    "  weight @w : f32[2, 3] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]\n"
    "  weight @half : f16[3] = [0.5, -2.0, 1024.0]\n"
    "  weight @brain : bf16[2] = [1.5, -0.25]\n"
    "  weight @wide : f64[2] = [0.1, 1e+100]\n"
    "  weight @\"layer.0/ids:0\" : i64[3] = [-1, 0, 9000000000]\n"
    "  weight @small : i32[1] = [-7]\n"
    "  weight @tiny : i8[3] = [-128, 0, 127]\n"
    "  weight @bytes : u8[2] = [0, 255]\n"
    "  weight @flags : bool[3] = [true, false, true]\n"
    "  weight @scalar : f32[] = [42.0]\n"
    "  %y = matmul %x, @w : f32[n, 3] loc(\"MatMul_0\")\n"
    "  return %y\n"
    "}\n";

class ArtifactTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("kiln_artifact_" + std::to_string(::getpid()) + "_" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes kAllDTypes as an artifact and returns its path.
  std::string writeSample() {
    auto graph = parseGraph(kAllDTypes);
    EXPECT_TRUE(graph.isOk()) << graph.status().message();
    std::string file = path("sample.kiln");
    CompileOptions noPasses;
    noPasses.pipeline.emplace();
    Expected<CompileResult> compiled = compile(std::move(*graph), noPasses);
    EXPECT_TRUE(compiled.isOk()) << compiled.status().message();
    Status written = writeArtifact(*compiled, file);
    EXPECT_TRUE(written.isOk()) << written.message();
    return file;
  }

  static std::vector<uint8_t> readBytes(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
  }
  static void writeBytes(const std::string& file, const std::vector<uint8_t>& bytes) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  // Rewrites the header checksum so a deliberately bad table gets past it.
  static void resign(std::vector<uint8_t>& bytes) {
    uint64_t sum = artifactChecksum(bytes.data() + kArtifactHeaderSize, bytes.size() - kArtifactHeaderSize);
    std::memcpy(bytes.data() + 24, &sum, 8);
  }
  template <class T>
  static void put(std::vector<uint8_t>& bytes, size_t offset, T value) {
    std::memcpy(bytes.data() + offset, &value, sizeof(T));
  }
  template <class T>
  static T get(const std::vector<uint8_t>& bytes, size_t offset) {
    T value;
    std::memcpy(&value, bytes.data() + offset, sizeof(T));
    return value;
  }
  // The file offset of the section-table entry of `kind`.
  static size_t entryOf(const std::vector<uint8_t>& bytes, SectionKind kind) {
    const size_t table = get<uint64_t>(bytes, 32);
    for (uint32_t i = 0; i < get<uint32_t>(bytes, 40); ++i) {
      size_t entry = table + i * kArtifactSectionEntrySize;
      if (get<uint32_t>(bytes, entry) == static_cast<uint32_t>(kind)) return entry;
    }
    ADD_FAILURE() << "no section of kind " << static_cast<uint32_t>(kind);
    return table;
  }
  static size_t sectionAt(const std::vector<uint8_t>& bytes, SectionKind kind) {
    return get<uint64_t>(bytes, entryOf(bytes, kind) + 8);
  }

  // The load error for `file`, with the path prefix removed.
  static std::string loadError(const std::string& file, LoadFailure expected = LoadFailure::Invalid) {
    LoadFailure failure = LoadFailure::None;
    auto loaded = loadArtifact(file, &failure);
    if (loaded) return "<loaded>";
    EXPECT_EQ(failure, expected);
    std::string prefix = "cannot load artifact '" + file + "': ";
    const std::string& message = loaded.status().message();
    EXPECT_EQ(message.rfind(prefix, 0), 0u) << message;
    return message.substr(prefix.size());
  }

  fs::path dir_;
};

TEST_F(ArtifactTest, RoundTripsProgramAndWeightsOfEveryDType) {
  auto original = parseGraph(kAllDTypes);
  ASSERT_TRUE(original.isOk()) << original.status().message();
  std::string file = writeSample();
  auto loaded = loadArtifact(file);
  ASSERT_TRUE(loaded.isOk()) << loaded.status().message();

  // Printing with data shows every weight's values came back.
  EXPECT_EQ(printGraph(loaded->graph), printGraph(*original));
  EXPECT_EQ(printGraph(loaded->graph), kAllDTypes);
  EXPECT_EQ(loaded->formatVersion, kArtifactFormatVersion);
  EXPECT_EQ(loaded->fileSize, fs::file_size(file));
  EXPECT_EQ(loaded->weightBytes, 24u + 6 + 4 + 16 + 24 + 4 + 3 + 2 + 3 + 4);
  EXPECT_EQ(loaded->sections.size(), 6u);  // program, plan, KV layers, device code, weight table, weight data
  ASSERT_TRUE(loaded->kvLayers.has_value());
  EXPECT_TRUE(loaded->kvLayers->empty());
  for (ValueId w : loaded->graph.weights()) {
    auto address = reinterpret_cast<uintptr_t>(loaded->graph.value(w).data->data());
    EXPECT_EQ(address % kWeightAlignment, 0u) << loaded->graph.value(w).name;
  }

  // The plan comes back as planMemory made it at the default bounds (n = 2048).
  auto expected = planMemory(*original, planningBounds(*original, {}));
  ASSERT_TRUE(expected.isOk()) << expected.status().message();
  ASSERT_TRUE(loaded->plan.has_value());
  const MemoryPlan& plan = *loaded->plan;
  EXPECT_EQ(plan.bounds, (SymbolBindings{{"n", 2048}}));
  EXPECT_EQ(plan.peakBytes, 2048u * 3 * 4);
  EXPECT_EQ(plan.naiveBytes, expected->naiveBytes);
  EXPECT_EQ(plan.lowerBoundBytes, expected->lowerBoundBytes);
  EXPECT_EQ(plan.buffers, expected->buffers);
  ASSERT_EQ(plan.registers.size(), loaded->graph.values().size());
  for (size_t v = 0; v < plan.registers.size(); ++v) {
    const RegisterPlan& got = plan.registers[v];
    // Same text, same order: the parsed ValueIds are the original's.
    const RegisterPlan& want = expected->registers[v];
    EXPECT_EQ(got.value, static_cast<ValueId>(v));
    EXPECT_EQ(got.kind, want.kind) << v;
    EXPECT_EQ(got.device, "cpu");
    EXPECT_EQ(got.memory, "host");
    EXPECT_EQ(got.buffer, want.buffer) << v;
    EXPECT_EQ(got.offset, want.offset) << v;
    EXPECT_EQ(got.bytes, want.bytes) << v;
    EXPECT_EQ(got.liveStart, want.liveStart) << v;
    EXPECT_EQ(got.liveEnd, want.liveEnd) << v;
  }
  const RegisterPlan& y = plan.registers[static_cast<size_t>(*loaded->graph.find("y"))];
  EXPECT_EQ(y.kind, RegisterPlan::Arena);
  EXPECT_EQ(y.bytes, 2048u * 3 * 4);
  EXPECT_EQ(y.liveStart, 0);
  EXPECT_EQ(y.liveEnd, 1);  // an output: live past the last op
}

TEST_F(ArtifactTest, PlanOfValuesByNameSurvivesAReorderedProgram) {
  // Built through the graph API, the weight comes after the op's result, so
  // the parsed program numbers the values differently; the plan follows the
  // names, views included.
  Graph graph;
  ValueId x = graph.addInput("x", TensorType{DType::F32, {Dim::symbol("seq"), 4}});
  graph.addOp(OpRegistry::global().find("relu"), {x}, {TensorType{DType::F32, {Dim::symbol("seq"), 4}}}, {},
              "", {"r"});
  ValueId r = *graph.find("r");
  Tensor bias = Tensor::allocate(DType::F32, {4});
  ValueId b = graph.addWeight("b", bias);
  graph.addOp(OpRegistry::global().find("add"), {r, b}, {TensorType{DType::F32, {Dim::symbol("seq"), 4}}}, {},
              "", {"s"});
  ValueId sum = *graph.find("s");
  Attributes attrs;
  attrs.set("shape", std::vector<Dim>{Dim::symbol("seq") * 2, 2});
  graph.addOp(OpRegistry::global().find("reshape"), {sum},
              {TensorType{DType::F32, {Dim::symbol("seq") * 2, 2}}}, attrs, "", {"v"});
  graph.setOutputs({*graph.find("v")});
  auto plan = planMemory(graph, {{"seq", 16}});
  ASSERT_TRUE(plan.isOk()) << plan.status().message();
  ASSERT_EQ(plan->registers[static_cast<size_t>(*graph.find("v"))].kind, RegisterPlan::View);
  Status written = writeArtifact(graph, &*plan, path("reordered.kiln"));
  ASSERT_TRUE(written.isOk()) << written.message();

  auto loaded = loadArtifact(path("reordered.kiln"));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
  ASSERT_TRUE(loaded->plan.has_value());
  const Graph& parsed = loaded->graph;
  EXPECT_NE(*parsed.find("b"), b);  // the ids moved
  for (const char* name : {"x", "r", "b", "s", "v"}) {
    const RegisterPlan& want = plan->registers[static_cast<size_t>(*graph.find(name))];
    const RegisterPlan& got = loaded->plan->registers[static_cast<size_t>(*parsed.find(name))];
    EXPECT_EQ(got.value, *parsed.find(name)) << name;
    EXPECT_EQ(got.kind, want.kind) << name;
    EXPECT_EQ(got.offset, want.offset) << name;
    EXPECT_EQ(got.bytes, want.bytes) << name;
    EXPECT_EQ(got.liveStart, want.liveStart) << name;
    EXPECT_EQ(got.liveEnd, want.liveEnd) << name;
  }
  EXPECT_EQ(loaded->plan->registers[static_cast<size_t>(*parsed.find("v"))].viewOf, *parsed.find("s"));
}

TEST_F(ArtifactTest, AProgramThatCannotBePlannedIsWrittenWithoutAPlanAndStillRuns) {
  // The reshape's target comes in as data, so its result has `?` dims.
  auto graph = parseGraph(
      "graph @main(%x: f32[6], %shape: i64[2]) -> (%y: f32[?, ?]) {\n"
      "  %r = reshape %x, %shape : f32[?, ?]\n"
      "  %y = relu %r : f32[?, ?]\n"
      "  return %y\n"
      "}\n");
  ASSERT_TRUE(graph.isOk()) << graph.status().message();
  ASSERT_TRUE(writeArtifact(*graph, nullptr, path("unplanned.kiln")).isOk());
  auto loaded = loadArtifact(path("unplanned.kiln"));
  ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
  EXPECT_FALSE(loaded->plan.has_value());
  EXPECT_EQ(loaded->sections.size(), 5u);
  auto executor = createExecutor(*loaded);
  ASSERT_TRUE(executor.isOk()) << executor.status().message();
  EXPECT_FALSE((*executor)->planned());
  Tensor x = Tensor::allocate(DType::F32, {6});
  for (int i = 0; i < 6; ++i) x.data<float>()[i] = static_cast<float>(i - 3);
  Tensor shape = Tensor::allocate(DType::I64, {2});
  shape.data<int64_t>()[0] = 3;
  shape.data<int64_t>()[1] = 2;
  auto outputs = (*executor)->run({x, shape});
  ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
  EXPECT_EQ((*outputs)[0].shape(), (std::vector<int64_t>{3, 2}));
  const float* y = (*outputs)[0].data<float>();
  EXPECT_EQ(std::vector<float>(y, y + 6), (std::vector<float>{0, 0, 0, 0, 1, 2}));
}

TEST_F(ArtifactTest, LoadedGraphRunsAndWeightsOutliveTheArtifact) {
  std::string file = writeSample();
  Tensor weight;
  {
    auto loaded = loadArtifact(file);
    ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
    auto executor = Executor::create(loaded->graph);
    ASSERT_TRUE(executor.isOk()) << executor.status().message();
    Tensor x = Tensor::allocate(DType::F32, {1, 2});
    x.data<float>()[0] = 1;
    x.data<float>()[1] = 2;
    auto outputs = (*executor)->run({x});
    ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
    const float* y = (*outputs)[0].data<float>();
    EXPECT_EQ(std::vector<float>(y, y + 3), (std::vector<float>{9, 12, 15}));
    weight = *loaded->graph.value(*loaded->graph.find("w")).data;
  }
  // The mapping stays while a view of it is alive.
  EXPECT_EQ(weight.data<float>()[5], 6.0f);
}

TEST_F(ArtifactTest, RefusesAMissingFile) {
  EXPECT_EQ(loadError(path("absent.kiln"), LoadFailure::Io),
            "cannot open the file: No such file or directory");
}

TEST_F(ArtifactTest, RefusesATruncatedFile) {
  std::vector<uint8_t> bytes = readBytes(writeSample());
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(bytes.size() / 2));
  writeBytes(path("cut.kiln"), cut);
  EXPECT_EQ(loadError(path("cut.kiln")), "truncated: the header declares " + std::to_string(bytes.size()) +
                                             " bytes but the file has " + std::to_string(cut.size()));

  cut.resize(30);
  writeBytes(path("stub.kiln"), cut);
  EXPECT_EQ(loadError(path("stub.kiln")), "truncated: 30 bytes, smaller than the 64-byte header");
  writeBytes(path("empty.kiln"), {});
  EXPECT_EQ(loadError(path("empty.kiln")), "truncated: 0 bytes, smaller than the 64-byte header");
}

TEST_F(ArtifactTest, RefusesAFileThatIsNotAnArtifact) {
  std::string text(kAllDTypes);
  writeBytes(path("model.kir"), std::vector<uint8_t>(text.begin(), text.end()));
  EXPECT_EQ(loadError(path("model.kir")), "not a kiln artifact (wrong magic)");
  writeBytes(path("short.txt"), {'h', 'i'});
  EXPECT_EQ(loadError(path("short.txt")), "not a kiln artifact (wrong magic)");
}

TEST_F(ArtifactTest, RefusesANewerFormatVersion) {
  std::vector<uint8_t> bytes = readBytes(writeSample());
  put<uint32_t>(bytes, 8, kArtifactFormatVersion + 1);
  writeBytes(path("newer.kiln"), bytes);
  EXPECT_EQ(loadError(path("newer.kiln")), "format version " + std::to_string(kArtifactFormatVersion + 1) +
                                               " is newer than this runtime's " +
                                               std::to_string(kArtifactFormatVersion));
}

TEST_F(ArtifactTest, RefusesAnOlderFormatVersion) {
  std::vector<uint8_t> bytes = readBytes(writeSample());
  put<uint32_t>(bytes, 8, 1);  // version 1 held no memory plan
  writeBytes(path("older.kiln"), bytes);
  EXPECT_EQ(loadError(path("older.kiln")),
            "format version 1 is older than this runtime's 5 (it reads versions 2 to 5), recompile");
}

TEST_F(ArtifactTest, RefusesAPlanThatDoesNotMatchTheProgram) {
  const std::vector<uint8_t> good = readBytes(writeSample());
  // The plan section: u32 symbol count (1), u32 length (1), "n", i64 2048,
  // u64 peak, u64 naive, u64 lower bound, i32 buffers, u32 register count,
  // then the registers in value order: %x first, then the weights, then %y.
  const size_t plan = sectionAt(good, SectionKind::Plan);
  ASSERT_EQ(get<uint32_t>(good, plan), 1u);
  ASSERT_EQ(get<int64_t>(good, plan + 9), 2048);
  const size_t countAt = plan + 17 + 24 + 4;
  ASSERT_EQ(get<uint32_t>(good, countAt), 12u);

  std::vector<uint8_t> bytes = good;
  put<int64_t>(bytes, plan + 9, 1024);  // a bound the sizes were not planned for
  resign(bytes);
  writeBytes(path("bound.kiln"), bytes);
  EXPECT_EQ(loadError(path("bound.kiln")),
            "corrupt: memory plan: %x has 16384 bytes; its type f32[n, 2] needs 8192 at the plan's bounds");

  bytes = good;
  put<uint32_t>(bytes, countAt, 11);
  resign(bytes);
  writeBytes(path("count.kiln"), bytes);
  EXPECT_EQ(loadError(path("count.kiln")), "corrupt: memory plan: 11 register(s) for a program of 12 value(s)");

  // %x's register: u32 length, "x", u8 kind, u8 3 "cpu", u8 4 "host", i32
  // buffer, u64 offset, u64 bytes, ...
  const size_t x = countAt + 4;
  ASSERT_EQ(get<uint8_t>(good, x + 4), 'x');
  bytes = good;
  put<uint8_t>(bytes, x + 5, 0);  // an input planned as an arena register
  resign(bytes);
  writeBytes(path("kind.kiln"), bytes);
  EXPECT_EQ(loadError(path("kind.kiln")), "corrupt: memory plan: %x is an input but has kind arena");

  bytes = good;
  put<uint8_t>(bytes, x + 7, 'g');  // device "gpu"
  resign(bytes);
  writeBytes(path("device.kiln"), bytes);
  ASSERT_EQ(loadError(path("device.kiln")), "<loaded>");
  auto loaded = loadArtifact(path("device.kiln"));
  auto executor = createExecutor(*loaded);
  ASSERT_FALSE(executor.isOk());
  EXPECT_EQ(executor.status().message(),
            "the memory plan's register for %x is on device 'gpu', which this runtime does not have");
}

TEST_F(ArtifactTest, WritingRefusesAPlanOfAnotherGraph) {
  auto graph = parseGraph(kAllDTypes);
  ASSERT_TRUE(graph.isOk());
  auto other = parseGraph("graph @main(%x: f32[2]) -> (%y: f32[2]) {\n  %y = relu %x : f32[2]\n  return %y\n}\n");
  ASSERT_TRUE(other.isOk());
  auto plan = planMemory(*other, {});
  ASSERT_TRUE(plan.isOk());
  EXPECT_EQ(writeArtifact(*graph, &*plan, path("mismatch.kiln")).message(),
            "cannot write artifact '" + path("mismatch.kiln") + "': the memory plan has 2 register(s) for a graph of 12 value(s)");
}

TEST_F(ArtifactTest, RefusesCorruptContents) {
  std::vector<uint8_t> bytes = readBytes(writeSample());
  bytes[bytes.size() - 1] ^= 0x10;  // a bit of the last weight
  writeBytes(path("flipped.kiln"), bytes);
  EXPECT_EQ(loadError(path("flipped.kiln")).rfind("corrupt: checksum mismatch (header has 0x", 0), 0u);

  std::vector<uint8_t> longer = readBytes(path("sample.kiln"));
  longer.push_back(0);
  writeBytes(path("longer.kiln"), longer);
  EXPECT_EQ(loadError(path("longer.kiln")), "corrupt: the file has " + std::to_string(longer.size()) +
                                                " bytes but the header declares " +
                                                std::to_string(longer.size() - 1));
}

TEST_F(ArtifactTest, RefusesABadSectionTable) {
  const std::vector<uint8_t> good = readBytes(writeSample());
  const size_t table = get<uint64_t>(good, 32);
  const uint64_t fileSize = good.size();

  std::vector<uint8_t> bytes = good;
  const size_t data = entryOf(good, SectionKind::WeightData);
  put<uint64_t>(bytes, data + 16, fileSize);  // weight data size
  resign(bytes);
  writeBytes(path("past_end.kiln"), bytes);
  EXPECT_EQ(loadError(path("past_end.kiln")),
            "bad section table: section " + std::to_string((data - table) / kArtifactSectionEntrySize) +
                " (weight data) spans [" + std::to_string(get<uint64_t>(good, data + 8)) + ", " +
                std::to_string(get<uint64_t>(good, data + 8) + fileSize) + ") outside the file's contents [" +
                std::to_string(table + 6 * kArtifactSectionEntrySize) + ", " + std::to_string(fileSize) + ")");

  bytes = good;
  put<uint32_t>(bytes, entryOf(good, SectionKind::Plan), static_cast<uint32_t>(SectionKind::Program));
  resign(bytes);
  writeBytes(path("two_programs.kiln"), bytes);
  EXPECT_EQ(loadError(path("two_programs.kiln")), "bad section table: more than one program section");

  bytes = good;
  put<uint32_t>(bytes, table, 99);  // the program's kind: now unknown, so no program
  resign(bytes);
  writeBytes(path("no_program.kiln"), bytes);
  EXPECT_EQ(loadError(path("no_program.kiln")), "bad section table: no program section");

  bytes = good;
  put<uint32_t>(bytes, 40, 0);  // section count
  resign(bytes);
  writeBytes(path("no_sections.kiln"), bytes);
  EXPECT_EQ(loadError(path("no_sections.kiln")), "bad section table: 0 sections (1 to 64 allowed)");

  bytes = good;
  const size_t program = entryOf(good, SectionKind::Program);
  put<uint64_t>(bytes, program + 16, get<uint64_t>(good, program + 16) + 1);  // into the next section
  resign(bytes);
  writeBytes(path("overlap.kiln"), bytes);
  EXPECT_EQ(loadError(path("overlap.kiln")), "bad section table: sections program and memory plan overlap");
}

TEST_F(ArtifactTest, RefusesABadWeightTable) {
  std::vector<uint8_t> bytes = readBytes(writeSample());
  const size_t weightTable = sectionAt(bytes, SectionKind::WeightTable);
  // The first entry is @w: u32 count, u32 name length, "w", u32 file,
  // u64 offset, u64 bytes, u64 fingerprint.
  ASSERT_EQ(get<uint32_t>(bytes, weightTable + 4), 1u);
  put<uint64_t>(bytes, weightTable + 4 + 4 + 1 + 4 + 8, 20);
  resign(bytes);
  writeBytes(path("bad_weight.kiln"), bytes);
  EXPECT_EQ(loadError(path("bad_weight.kiln")),
            "bad weight table: weight @w has 20 bytes; its type f32[2, 3] needs 24");
}

TEST_F(ArtifactTest, RefusesEveryTruncation) {
  const std::vector<uint8_t> good = readBytes(writeSample());
  for (size_t n = 0; n < good.size(); ++n) {
    writeBytes(path("cut.kiln"), std::vector<uint8_t>(good.begin(), good.begin() + static_cast<ptrdiff_t>(n)));
    EXPECT_EQ(loadError(path("cut.kiln")).rfind("truncated: ", 0), 0u) << n << " bytes";
  }
}

TEST_F(ArtifactTest, DamageBehindAValidChecksumIsRefusedNotCrashedOn) {
  // Random bytes overwritten, then the checksum recomputed, so the section
  // table, weight table and program parsers see the damage. Each file either
  // loads (the damage hit only weight values, or left text that still
  // parses) or is refused with a message; none crashes.
  const std::vector<uint8_t> good = readBytes(writeSample());
  std::mt19937 random(20240611);
  int refused = 0;
  for (int round = 0; round < 300; ++round) {
    std::vector<uint8_t> bytes = good;
    for (int hit = 0; hit < 1 + round % 4; ++hit) {
      size_t at = kArtifactHeaderSize + random() % (bytes.size() - kArtifactHeaderSize);
      bytes[at] = static_cast<uint8_t>(random());
    }
    resign(bytes);
    writeBytes(path("damaged.kiln"), bytes);
    auto loaded = loadArtifact(path("damaged.kiln"));
    if (!loaded) {
      ++refused;
      EXPECT_EQ(loaded.status().message().rfind("cannot load artifact '", 0), 0u);
    }
  }
  EXPECT_GT(refused, 100);
}

TEST_F(ArtifactTest, WritingNeedsEveryWeightsData) {
  auto graph = parseGraph(
      "graph @main(%x: f32[2]) -> (%y: f32[2]) {\n"
      "  weight @w : f32[2]\n"
      "  %y = add %x, @w : f32[2]\n"
      "  return %y\n"
      "}\n");
  ASSERT_TRUE(graph.isOk()) << graph.status().message();
  Status written = writeArtifact(*graph, nullptr, path("out.kiln"));
  EXPECT_EQ(written.message(), "cannot write artifact '" + path("out.kiln") + "': weight @w has no data");
  EXPECT_FALSE(fs::exists(path("out.kiln")));
}

TEST(ArtifactChecksum, IsPinnedAndSeesEveryByte) {
  // Pinned values of the documented hash (docs/artifact.md), so a change to
  // it cannot go unnoticed: bytes 0, 1, ..., n-1.
  auto sequence = [](size_t n) {
    std::vector<uint8_t> bytes(n);
    for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(i);
    return bytes;
  };
  EXPECT_EQ(artifactChecksum(nullptr, 0), 0x3fdf455f9dcf1e62ull);
  EXPECT_EQ(artifactChecksum(sequence(3).data(), 3), 0xc2af8245515e02e4ull);
  EXPECT_EQ(artifactChecksum(sequence(100).data(), 100), 0x6ac1e58032166597ull);

  // Flipping any one bit of any byte changes it, for lengths around the
  // word and block sizes.
  for (size_t n : {1u, 7u, 8u, 31u, 32u, 33u, 70u}) {
    std::vector<uint8_t> bytes = sequence(n);
    uint64_t base = artifactChecksum(bytes.data(), n);
    for (size_t i = 0; i < n; ++i) {
      bytes[i] ^= 0x01;
      EXPECT_NE(artifactChecksum(bytes.data(), n), base) << "n=" << n << " byte " << i;
      bytes[i] ^= 0x01;
    }
  }
}

}  // namespace
}  // namespace kiln::rt
