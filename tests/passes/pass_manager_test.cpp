#include "passes/pass_manager.h"

#include <sstream>

#include <gtest/gtest.h>

#include "ir/text.h"
#include "tests/unit/op_test_support.h"

namespace kiln {
namespace {

using namespace testsupport;

// x @ transpose(y) with a dead op: dce removes one op, layout folds the
// transpose into the matmul's flag.
const char* kTransposedMatmul = R"(graph @main(%x: f32[4, 8], %y: f32[4, 8]) -> (%z: f32[4, 4]) {
  %dead = neg %x : f32[4, 8]
  %yt = transpose %y {perm = [1, 0]} : f32[8, 4]
  %z = matmul %x, %yt : f32[4, 4]
  return %z
})";

TEST(ParsePipeline, SplitsOnCommasAndTrimsSpaces) {
  Expected<std::vector<std::string>> names = parsePipeline("cse, dce ,layout");
  ASSERT_TRUE(names.isOk()) << names.status().message();
  EXPECT_EQ(*names, (std::vector<std::string>{"cse", "dce", "layout"}));
  EXPECT_EQ(joinPipeline(*names), "cse,dce,layout");
}

TEST(ParsePipeline, EmptyTextIsNoPasses) {
  Expected<std::vector<std::string>> names = parsePipeline("");
  ASSERT_TRUE(names.isOk());
  EXPECT_TRUE(names->empty());
}

TEST(ParsePipeline, RejectsEmptyAndUnknownNames) {
  Expected<std::vector<std::string>> empty = parsePipeline("cse,,dce");
  ASSERT_FALSE(empty.isOk());
  EXPECT_NE(empty.status().message().find("empty pass name at position 2"), std::string::npos);
  Expected<std::vector<std::string>> unknown = parsePipeline("cse,nope");
  ASSERT_FALSE(unknown.isOk());
  EXPECT_NE(unknown.status().message().find("unknown pass 'nope'"), std::string::npos);
}

TEST(DefaultPipeline, NamesOnlyRegisteredPassesAndEndsWithCleanup) {
  Expected<PassManager> manager = PassManager::create(defaultPipeline(), {});
  ASSERT_TRUE(manager.isOk()) << manager.status().message();
  EXPECT_EQ(defaultPipeline().back(), "dce");
}

TEST(PassManager, RecordsOpCountsChangesAndCostsBeforeTheFirstFusionPass) {
  Graph graph = parse(kTransposedMatmul);
  CostModel model;
  PassManagerOptions options;
  options.costModel = &model;
  Expected<PassManager> manager = PassManager::create({"dce", "layout", "cse"}, options);
  ASSERT_TRUE(manager.isOk()) << manager.status().message();
  Expected<PipelineRecord> record = manager->run(graph);
  ASSERT_TRUE(record.isOk()) << record.status().message();
  ASSERT_EQ(record->passes.size(), 3u);
  EXPECT_EQ(record->passes[0].name, "dce");
  EXPECT_TRUE(record->passes[0].changed);
  EXPECT_EQ(record->passes[0].opsBefore, 3);
  EXPECT_EQ(record->passes[0].opsAfter, 2);
  EXPECT_EQ(record->passes[1].opsAfter, 1);
  EXPECT_FALSE(record->passes[2].changed);
  // Unfused: the transpose (reads and writes 32 floats) and the matmul
  // (32 + 32 + 16 floats); fused: the matmul alone.
  ASSERT_TRUE(record->unfusedCost && record->fusedCost);
  EXPECT_EQ(record->unfusedCost->bytes, (64 + 80) * 4);
  EXPECT_EQ(record->fusedCost->bytes, 80 * 4);
  EXPECT_EQ(record->fusedCost->flops, 2 * 16 * 8);
  EXPECT_EQ(graph.ops().size(), 1u);
}

TEST(PassManager, WithoutAFusionPassBothCostsAreTheFinalGraph) {
  Graph graph = parse(kTransposedMatmul);
  CostModel model;
  PassManagerOptions options;
  options.costModel = &model;
  Expected<PassManager> manager = PassManager::create({"dce"}, options);
  ASSERT_TRUE(manager.isOk());
  Expected<PipelineRecord> record = manager->run(graph);
  ASSERT_TRUE(record.isOk());
  ASSERT_TRUE(record->unfusedCost && record->fusedCost);
  EXPECT_EQ(record->unfusedCost->bytes, record->fusedCost->bytes);
  EXPECT_EQ(record->fusedCost->bytes, (64 + 80) * 4);
}

TEST(PassManager, DisabledPassesAreSkippedAndRecorded) {
  Graph graph = parse(kTransposedMatmul);
  PassManagerOptions options;
  options.disabledPasses = {"layout"};
  Expected<PassManager> manager = PassManager::create({"dce", "layout"}, options);
  ASSERT_TRUE(manager.isOk());
  Expected<PipelineRecord> record = manager->run(graph);
  ASSERT_TRUE(record.isOk());
  EXPECT_TRUE(record->passes[1].skipped);
  EXPECT_EQ(graph.ops().size(), 2u);  // the transpose stays
}

TEST(PassManager, PrintsTheIrAfterTheNamedPass) {
  Graph graph = parse(kTransposedMatmul);
  std::ostringstream ir;
  PassManagerOptions options;
  options.printIrAfter = {"dce"};
  options.irStream = &ir;
  Expected<PassManager> manager = PassManager::create({"dce", "layout"}, options);
  ASSERT_TRUE(manager.isOk());
  ASSERT_TRUE(manager->run(graph).isOk());
  EXPECT_NE(ir.str().find("// IR after pass 'dce' (#1, changed)\ngraph @main"), std::string::npos);
  EXPECT_NE(ir.str().find("transpose"), std::string::npos);
  EXPECT_EQ(ir.str().find("IR after pass 'layout'"), std::string::npos);
}

TEST(PassManager, UnknownNamesInAnyOptionFailBeforeRunning) {
  PassManagerOptions print;
  print.printIrAfter = {"nope"};
  Expected<PassManager> a = PassManager::create({"dce"}, print);
  ASSERT_FALSE(a.isOk());
  EXPECT_EQ(a.status().message().rfind("--print-ir-after: unknown pass 'nope'", 0), 0u);
  PassManagerOptions disable;
  disable.disabledPasses = {"nope"};
  Expected<PassManager> b = PassManager::create({"dce"}, disable);
  ASSERT_FALSE(b.isOk());
  EXPECT_EQ(b.status().message().rfind("--disable-pass: unknown pass 'nope'", 0), 0u);
  EXPECT_FALSE(PassManager::create({"nope"}, {}).isOk());
}

}  // namespace
}  // namespace kiln
