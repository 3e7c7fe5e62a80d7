// The compile API's policies: which passes run (the default pipeline or a
// given one, precision_bf16 appended for bf16 (precision_int8_weights for
// int8 weights), sibling_matmul_merge and
// regroup_projections skipped for referenced weights), the plan at the
// bounds (or none, and why), the errors (an unknown pass, a bound for no
// symbol, an invalid graph), and the written artifact loading back as
// compiled.
#include "compiler/compiler.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "compiler/artifact_writer.h"
#include "ir/text.h"
#include "runtime/artifact.h"

namespace kiln {
namespace {

const char* kMlp = R"(graph @mlp(%x: f32[batch, 2]) -> (%y: f32[batch, 3]) {
  weight @w : f32[2, 3] = [1.0, -1.0, 0.5, 2.0, 0.0, -0.5]
  %h = matmul %x, @w : f32[batch, 3]
  %y = relu %h : f32[batch, 3]
  return %y
})";

Graph parse(const char* text) {
  Expected<Graph> graph = parseGraph(text);
  EXPECT_TRUE(graph.isOk()) << graph.status().message();
  return graph ? std::move(*graph) : Graph{};
}

CompileOptions withPipeline(std::vector<std::string> passes) {
  CompileOptions options;
  options.pipeline = std::move(passes);
  return options;
}

std::vector<std::string> pipelineOf(const CompileOptions& options) {
  Expected<Compiler> compiler = Compiler::create(options);
  EXPECT_TRUE(compiler.isOk()) << compiler.status().message();
  return compiler ? compiler->pipeline() : std::vector<std::string>{};
}

TEST(CompilePolicies, WithoutAPipelineTheDefaultOneRuns) {
  EXPECT_EQ(pipelineOf({}), defaultPipeline());
}

TEST(CompilePolicies, Bf16AppendsPrecisionBf16LastToWhicheverPipeline) {
  CompileOptions options;
  options.precision = Precision::BF16;
  std::vector<std::string> expected = defaultPipeline();
  expected.push_back("precision_bf16");
  EXPECT_EQ(pipelineOf(options), expected);
  options.pipeline = std::vector<std::string>{"dce"};
  EXPECT_EQ(pipelineOf(options), (std::vector<std::string>{"dce", "precision_bf16"}));
}

TEST(CompilePolicies, Int8WeightsAppendsItsPassLast) {
  CompileOptions options;
  options.precision = Precision::Int8Weights;
  std::vector<std::string> expected = defaultPipeline();
  expected.push_back("precision_int8_weights");
  EXPECT_EQ(pipelineOf(options), expected);
  options.pipeline = std::vector<std::string>{"dce"};
  EXPECT_EQ(pipelineOf(options), (std::vector<std::string>{"dce", "precision_int8_weights"}));
}

TEST(CompilePolicies, ReferencedWeightsSkipThePassesThatMakeWeights) {
  for (WeightStorage storage : {WeightStorage::Embed, WeightStorage::Reference}) {
    CompileOptions options = withPipeline({"regroup_projections", "sibling_matmul_merge", "dce"});
    options.weights = storage;
    Expected<CompileResult> compiled = compile(parse(kMlp), options);
    ASSERT_TRUE(compiled.isOk()) << compiled.status().message();
    ASSERT_EQ(compiled->record.passes.size(), 3u);
    EXPECT_EQ(compiled->record.passes[0].skipped, storage == WeightStorage::Reference);
    EXPECT_EQ(compiled->record.passes[1].skipped, storage == WeightStorage::Reference);
    EXPECT_FALSE(compiled->record.passes[2].skipped);
    EXPECT_EQ(compiled->weights, storage);
  }
}

TEST(CompilePolicies, AnUnknownPassIsAnErrorBeforeAnyGraph) {
  Expected<Compiler> compiler = Compiler::create(withPipeline({"dce", "nope"}));
  ASSERT_FALSE(compiler.isOk());
  EXPECT_NE(compiler.status().message().find("unknown pass 'nope'"), std::string::npos)
      << compiler.status().message();
}

TEST(CompilePlan, IsMadeAtTheGivenBoundsAndTheDefaultsForTheRest) {
  CompileOptions options = withPipeline({});
  options.maxShapes = {{"batch", 4}};
  Expected<CompileResult> compiled = compile(parse(kMlp), options);
  ASSERT_TRUE(compiled.isOk()) << compiled.status().message();
  ASSERT_TRUE(compiled->plan.has_value()) << compiled->notPlanned;
  EXPECT_EQ(compiled->plan->bounds, (SymbolBindings{{"batch", 4}}));
  EXPECT_TRUE(compiled->notPlanned.empty());
}

TEST(CompilePlan, ABoundForNoSymbolOfTheProgramIsAnError) {
  CompileOptions options = withPipeline({});
  options.maxShapes = {{"seq", 16}};
  Expected<CompileResult> compiled = compile(parse(kMlp), options);
  ASSERT_FALSE(compiled.isOk());
  EXPECT_EQ(compiled.status().message(),
            "--max-shape: the compiled program has no symbol 'seq' (its symbols: batch)");
}

TEST(CompilePlan, AProgramWithARunTimeDimHasNoPlanAndSaysWhy) {
  Expected<CompileResult> compiled = compile(parse(R"(graph @main(%x: f32[6], %shape: i64[2]) -> (%y: f32[?, ?]) {
  %r = reshape %x, %shape : f32[?, ?]
  %y = relu %r : f32[?, ?]
  return %y
})"),
                                             withPipeline({}));
  ASSERT_TRUE(compiled.isOk()) << compiled.status().message();
  EXPECT_FALSE(compiled->plan.has_value());
  EXPECT_FALSE(compiled->notPlanned.empty());
}

TEST(CompileErrors, AnInvalidGraphOrAFailingPassNamesTheSource) {
  Graph graph = parse(kMlp);
  graph.value(*graph.find("y")).type.dtype = DType::I64;  // relu of f32 declared i64
  CompileOptions options = withPipeline({});
  options.source = "model.onnx";
  Expected<CompileResult> compiled = compile(std::move(graph), options);
  ASSERT_FALSE(compiled.isOk());
  EXPECT_EQ(compiled.status().message().rfind("model.onnx: the graph to compile is invalid: ", 0), 0u)
      << compiled.status().message();
}

TEST(CompileArtifact, TheWrittenArtifactLoadsAsCompiled) {
  const std::string path = ::testing::TempDir() + "/kiln_compiler_test_" + std::to_string(::getpid()) + ".kiln";
  CompileOptions options;  // the default pipeline
  options.maxShapes = {{"batch", 2}};
  Expected<CompileResult> compiled = compile(parse(kMlp), options);
  ASSERT_TRUE(compiled.isOk()) << compiled.status().message();
  ArtifactWriteStats stats;
  ASSERT_TRUE(writeArtifact(*compiled, path, {}, &stats).isOk());
  EXPECT_EQ(stats.embeddedWeights, static_cast<int64_t>(compiled->graph.weights().size()));
  Expected<rt::Artifact> loaded = rt::loadArtifact(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
  EXPECT_EQ(printGraph(loaded->graph, PrintOptions{.maxInlineWeightElements = 0}),
            printGraph(compiled->graph, PrintOptions{.maxInlineWeightElements = 0}));
  ASSERT_TRUE(loaded->plan.has_value());
  EXPECT_EQ(loaded->plan->peakBytes, compiled->plan->peakBytes);
  EXPECT_EQ(loaded->plan->bounds, compiled->plan->bounds);
}

}  // namespace
}  // namespace kiln
