// The Rewriter's operations that only some passes use (passes/pattern_utils.h):
// bypass (attention fusion, canonicalize), discardCreated (attention fusion's
// fallback forms) and reform (canonicalize), checked on the printed graph and
// on the use lists the matchers read.
#include <gtest/gtest.h>

#include <string>

#include "ir/text.h"
#include "passes/pattern_utils.h"

namespace kiln {
namespace {

Graph parse(const std::string& text) {
  Expected<Graph> graph = parseGraph(text);
  EXPECT_TRUE(graph) << graph.status().message();
  return std::move(*graph);
}

ValueId named(const Graph& graph, const std::string& name) { return *graph.find(name); }

// present = concat(past, fresh) is read by the pattern (before the new op)
// and is the graph output; only the output moves, and keeps its name.
TEST(RewriterTest, BypassMovesOnlyLaterUsesAndKeepsOutputNames) {
  Graph graph = parse(R"(graph @main(%past: f32[2], %fresh: f32[2]) -> (%present: f32[4], %out: f32[4]) {
  %present = concat %past, %fresh {axis = 0} : f32[4]
  %inner = neg %present : f32[4]
  %out = abs %inner : f32[4]
  return %present, %out
}
)");
  Rewriter rewriter(graph);
  const ValueId present = named(graph, "present");
  Attributes axis;
  axis.set("axis", int64_t{0});
  Expected<ValueId> copy =
      rewriter.create1(2, OpKind::Concat, {named(graph, "past"), named(graph, "fresh")}, axis);
  ASSERT_TRUE(copy);
  rewriter.bypass(present, *copy);
  EXPECT_EQ(rewriter.users(present), std::vector<int32_t>{1});  // the neg, placed before the copy
  EXPECT_FALSE(rewriter.isGraphOutput(present));
  EXPECT_TRUE(rewriter.isGraphOutput(*copy));
  ASSERT_TRUE(rewriter.commit());
  EXPECT_EQ(printGraph(graph), R"(graph @main(%past: f32[2], %fresh: f32[2]) -> (%present: f32[4], %out: f32[4]) {
  %present_unfused = concat %past, %fresh {axis = 0} : f32[4]
  %inner = neg %present_unfused : f32[4]
  %present = concat %past, %fresh {axis = 0} : f32[4]
  %out = abs %inner : f32[4]
  return %present, %out
}
)");
}

TEST(RewriterTest, DiscardCreatedDropsOpsAndTheirUses) {
  Graph graph = parse(R"(graph @main(%x: f32[4]) -> (%y: f32[4]) {
  %y = neg %x : f32[4]
  return %y
}
)");
  const std::string before = printGraph(graph);
  Rewriter rewriter(graph);
  const ValueId x = named(graph, "x");
  const size_t created = rewriter.createdCount();
  ASSERT_TRUE(rewriter.create1(0, OpKind::Abs, {x}));
  EXPECT_EQ(rewriter.users(x).size(), 2u);
  rewriter.discardCreated(created);
  EXPECT_EQ(rewriter.createdCount(), created);
  EXPECT_EQ(rewriter.users(x), std::vector<int32_t>{0});
  EXPECT_EQ(printGraph(graph), before);
}

TEST(RewriterTest, ReformKeepsResultsAndMovesUses) {
  Graph graph = parse(R"(graph @main(%x: f32[4], %z: f32[4]) -> (%y: f32[4]) {
  %y = neg %x : f32[4]
  return %y
}
)");
  Rewriter rewriter(graph);
  const OpForm form{OpKind::Abs, {named(graph, "z")}, {}};
  std::vector<TensorType> types;
  ASSERT_TRUE(rewriter.inferTypes(form, 1, types));
  EXPECT_EQ(types[0], graph.value(named(graph, "y")).type);
  rewriter.reform(0, form);
  EXPECT_TRUE(rewriter.users(named(graph, "x")).empty());
  EXPECT_EQ(rewriter.users(named(graph, "z")), std::vector<int32_t>{0});
  ASSERT_TRUE(rewriter.commit());
  EXPECT_EQ(printGraph(graph), R"(graph @main(%x: f32[4], %z: f32[4]) -> (%y: f32[4]) {
  %y = abs %z : f32[4]
  return %y
}
)");
}

}  // namespace
}  // namespace kiln
