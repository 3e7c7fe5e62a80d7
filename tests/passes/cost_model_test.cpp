#include "passes/cost_model.h"

#include <gtest/gtest.h>

#include "ir/text.h"
#include "tests/unit/op_test_support.h"

namespace kiln {
namespace {

using namespace testsupport;

OpCost onlyOpCost(const char* text, const CostModel& model = {}) {
  Graph graph = parse(text);
  EXPECT_EQ(graph.ops().size(), 1u);
  return opCost(graph, graph.ops()[0], model);
}

TEST(CostModel, MatmulMovesOperandsAndResultAndDoesTwoFlopsPerMultiplyAdd) {
  const OpCost cost = onlyOpCost(R"(graph @main(%a: f32[2, 3], %b: f32[3, 4]) -> (%c: f32[2, 4]) {
  %c = matmul %a, %b : f32[2, 4]
  return %c
})");
  EXPECT_EQ(cost.bytes, (6 + 12 + 8) * 4);
  EXPECT_EQ(cost.flops, 2 * 2 * 4 * 3);
}

TEST(CostModel, TransposedMatmulTakesKFromTheTransposedOperand) {
  const OpCost cost = onlyOpCost(R"(graph @main(%a: f32[3, 2], %b: f32[4, 3]) -> (%c: f32[2, 4]) {
  %c = matmul %a, %b {transpose_a = true, transpose_b = true} : f32[2, 4]
  return %c
})");
  EXPECT_EQ(cost.flops, 2 * 2 * 4 * 3);
}

TEST(CostModel, SymbolsTakeRepresentativeValues) {
  const char* text = R"(graph @main(%x: f32[batch, seq, 8], %p: f32[past_len, 2]) -> (%y: f32[batch, seq, 8], %q: f32[past_len, 2]) {
  %y = relu %x : f32[batch, seq, 8]
  %q = neg %p : f32[past_len, 2]
  return %y, %q
})";
  Graph graph = parse(text);
  CostModel model;  // batch 1, sequence 128, past 128
  const OpCost relu = opCost(graph, graph.ops()[0], model);
  EXPECT_EQ(relu.flops, 1 * 128 * 8);
  EXPECT_EQ(relu.bytes, 2 * 1 * 128 * 8 * 4);
  model.pastLength = 7;
  model.bindings["seq"] = 3;
  EXPECT_EQ(opCost(graph, graph.ops()[0], model).flops, 3 * 8);
  EXPECT_EQ(opCost(graph, graph.ops()[1], model).flops, 7 * 2);
}

TEST(CostModel, TranscendentalsCostEightFlopsPerElement) {
  EXPECT_EQ(onlyOpCost(R"(graph @main(%x: f32[10]) -> (%y: f32[10]) {
  %y = exp %x : f32[10]
  return %y
})").flops, 80);
}

TEST(CostModel, ViewsAreFreeAndDataMovementDoesNoFlops) {
  const char* text = R"(graph @main(%x: f32[4, 6]) -> (%y: f32[6, 4], %r: f32[24]) {
  weight @shape : i64[1] = [24]
  %y = transpose %x {perm = [1, 0]} : f32[6, 4]
  %r = reshape %x, @shape : f32[24]
  return %y, %r
})";
  Graph graph = parse(text);
  const OpCost transpose = opCost(graph, graph.ops()[0], {});
  EXPECT_EQ(transpose.bytes, 2 * 24 * 4);
  EXPECT_EQ(transpose.flops, 0);
  const OpCost reshape = opCost(graph, graph.ops()[1], {});
  EXPECT_EQ(reshape.bytes, 0);
  EXPECT_EQ(reshape.flops, 0);
}

TEST(CostModel, GatherReadsOnlyTheSelectedRows) {
  const OpCost cost = onlyOpCost(R"(graph @main(%ids: i64[2]) -> (%rows: f32[2, 8]) {
  weight @table : f32[100, 8]
  %rows = gather @table, %ids {axis = 0} : f32[2, 8]
  return %rows
})");
  EXPECT_EQ(cost.bytes, 2 * 8 + 2 * (2 * 8 * 4));
}

TEST(CostModel, AttentionCountsBothProductsAndTheSoftmax) {
  const OpCost cost = onlyOpCost(R"(graph @main(%q: f32[1, 2, 4, 8], %k: f32[1, 2, 4, 8], %v: f32[1, 2, 4, 8]) -> (%o: f32[1, 2, 4, 8]) {
  %o = attention %q, %k, %v {heads = 2, kv_heads = 2, scale = 0.25} : f32[1, 2, 4, 8]
  return %o
})");
  const double scores = 1 * 2 * 4 * 4;
  EXPECT_EQ(cost.flops, 4 * scores * 8 + 5 * scores);
  EXPECT_EQ(cost.bytes, 4 * 64 * 4);
}

TEST(CostModel, GraphCostSumsTimeAtBandwidthAndPeakAndCountsUnknownDims) {
  Graph graph = parse(R"(graph @main(%a: f32[2, 3], %b: f32[3, 4], %x: f32[?]) -> (%c: f32[2, 4], %y: f32[?]) {
  %c = matmul %a, %b : f32[2, 4]
  %y = neg %x : f32[?]
  return %c, %y
})");
  CostModel model;
  model.bytesPerSecond = 100;
  model.flopsPerSecond = 10;
  model.unknownDim = 5;
  const GraphCost cost = graphCost(graph, model);
  EXPECT_EQ(cost.bytes, 104 + 2 * 5 * 4);
  EXPECT_EQ(cost.flops, 48 + 5);
  EXPECT_DOUBLE_EQ(cost.seconds, (104 + 40) / 100.0 + (48 + 5) / 10.0);
  EXPECT_EQ(cost.opsWithUnknownDims, 1);
}

}  // namespace
}  // namespace kiln
