// `kiln compile --weights reference` from import to run, on an ONNX model
// whose weights are in an external-data file: the artifact references that
// file (one weight at an aligned offset, one not), loads and runs to the
// same outputs as an artifact with the weights embedded, and is refused with
// the file's name once the file changes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <onnx/onnx_pb.h>

#include "compiler/artifact_writer.h"
#include "compiler/compiler.h"
#include "frontend/onnx/onnx_importer.h"
#include "runtime/artifact.h"
#include "runtime/executor.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

class WeightsReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::absolute(fs::path(::testing::TempDir()) /
                        ("kiln_weights_reference_" + std::to_string(::getpid()) + "_" +
                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .lexically_normal();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static void writeBytes(const std::string& file, const std::string& bytes) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << bytes;
  }

  fs::path dir_;
};

onnx::TensorProto externalTensor(const std::string& name, const std::vector<int64_t>& dims, int64_t offset) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t.add_dims(d);
  t.set_data_location(onnx::TensorProto::EXTERNAL);
  int64_t length = 4;
  for (int64_t d : dims) length *= d;
  for (const auto& [key, value] : {std::pair<std::string, std::string>{"location", "weights.bin"},
                                   {"offset", std::to_string(offset)},
                                   {"length", std::to_string(length)}}) {
    auto* entry = t.add_external_data();
    entry->set_key(key);
    entry->set_value(value);
  }
  return t;
}

void addValue(onnx::ValueInfoProto* info, const std::string& name, const std::vector<int64_t>& dims) {
  info->set_name(name);
  auto* tensor = info->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) tensor->mutable_shape()->add_dim()->set_dim_value(d);
}

std::vector<float> runOn(const rt::Artifact& artifact) {
  auto executor = rt::createExecutor(artifact);
  EXPECT_TRUE(executor.isOk()) << executor.status().message();
  if (!executor) return {};
  Tensor x = Tensor::allocate(DType::F32, {1, 4});
  for (int i = 0; i < 4; ++i) x.data<float>()[i] = 0.5f * static_cast<float>(i) - 0.75f;
  auto outputs = (*executor)->run({x});
  EXPECT_TRUE(outputs.isOk()) << outputs.status().message();
  if (!outputs) return {};
  const float* y = (*outputs)[0].data<float>();
  return std::vector<float>(y, y + 4);
}

TEST_F(WeightsReferenceTest, AnExternalDataModelRunsFromItsWeightFile) {
  // weights.bin: w (f32[4, 4]) at offset 0, b (f32[4]) at offset 67.
  std::string blob(67 + 16, '\0');
  float w[16], b[4];
  for (int i = 0; i < 16; ++i) w[i] = 0.125f * static_cast<float>(i) - 1.0f;
  for (int i = 0; i < 4; ++i) b[i] = 0.25f * static_cast<float>(i);
  std::memcpy(&blob[0], w, sizeof w);
  std::memcpy(&blob[67], b, sizeof b);
  writeBytes(path("weights.bin"), blob);

  onnx::ModelProto model;
  model.set_ir_version(8);
  model.add_opset_import()->set_version(17);
  onnx::GraphProto* graph = model.mutable_graph();
  addValue(graph->add_input(), "x", {1, 4});
  *graph->add_initializer() = externalTensor("w", {4, 4}, 0);
  *graph->add_initializer() = externalTensor("b", {4}, 67);
  auto node = [&](const std::string& op, std::vector<std::string> inputs, const std::string& output) {
    onnx::NodeProto* n = graph->add_node();
    n->set_op_type(op);
    for (const std::string& input : inputs) n->add_input(input);
    n->add_output(output);
  };
  node("MatMul", {"x", "w"}, "xw");
  node("Add", {"xw", "b"}, "sum");
  node("Relu", {"sum"}, "y");
  addValue(graph->add_output(), "y", {1, 4});
  {
    std::ofstream out(path("model.onnx"), std::ios::binary);
    model.SerializeToOstream(&out);
  }

  OnnxImportOptions options;
  options.copyBelowBytes = 0;  // the test's weights are small
  std::vector<MappedFile> files;
  Expected<Graph> imported = importOnnxFile(path("model.onnx"), options, nullptr, &files);
  ASSERT_TRUE(imported) << imported.status().message();
  std::vector<WeightSource> sources;
  for (const MappedFile& file : files)
    sources.push_back({{file.path(), file.size(), file.mtimeNs()}, file.bytes().data()});
  CompileOptions compileOptions;
  compileOptions.pipeline.emplace();  // the imported graph as it is: both weights stay in the file
  compileOptions.weights = WeightStorage::Reference;
  Expected<CompileResult> compiled = compile(std::move(*imported), compileOptions);
  ASSERT_TRUE(compiled) << compiled.status().message();
  ASSERT_TRUE(compiled->plan.has_value()) << compiled->notPlanned;
  ArtifactWriteStats stats;
  ASSERT_TRUE(writeArtifact(*compiled, path("reference.kiln"), sources, &stats).isOk());
  EXPECT_EQ(stats.referencedWeights, 2);
  EXPECT_EQ(stats.unalignedWeights, 1);  // b, at 67
  EXPECT_EQ(stats.referencedFiles, std::vector<std::string>{path("weights.bin")});
  compiled->weights = WeightStorage::Embed;
  ASSERT_TRUE(writeArtifact(*compiled, path("embed.kiln"), sources).isOk());

  auto referenced = rt::loadArtifact(path("reference.kiln"));
  ASSERT_TRUE(referenced.isOk()) << referenced.status().message();
  auto embedded = rt::loadArtifact(path("embed.kiln"));
  ASSERT_TRUE(embedded.isOk()) << embedded.status().message();
  ASSERT_EQ(referenced->weightFiles.size(), 1u);
  EXPECT_EQ(referenced->weightFiles[0].path, path("weights.bin"));
  EXPECT_EQ(referenced->referencedWeightBytes, 80u);
  EXPECT_EQ(embedded->referencedWeightBytes, 0u);
  const std::vector<float> expected = runOn(*embedded);
  ASSERT_EQ(expected.size(), 4u);
  EXPECT_EQ(runOn(*referenced), expected);
  // y = relu(x @ w + b), computed here.
  for (int j = 0; j < 4; ++j) {
    float sum = b[j];
    for (int k = 0; k < 4; ++k) sum += (0.5f * static_cast<float>(k) - 0.75f) * w[k * 4 + j];
    EXPECT_FLOAT_EQ(expected[static_cast<size_t>(j)], std::max(sum, 0.0f)) << j;
  }

  // The weight file cut short: refused, naming it.
  writeBytes(path("weights.bin"), blob.substr(0, 70));
  auto refused = rt::loadArtifact(path("reference.kiln"));
  ASSERT_FALSE(refused.isOk());
  EXPECT_NE(refused.status().message().find("weight file '" + path("weights.bin") +
                                            "' (referenced by kiln compile --weights reference) has changed since "
                                            "the artifact was compiled: it has 70 bytes, 83 then; recompile"),
            std::string::npos)
      << refused.status().message();
}

}  // namespace
}  // namespace kiln
