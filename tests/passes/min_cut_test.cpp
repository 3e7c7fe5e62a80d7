// The minimum cut behind cost-based placement, on graphs whose cut is known.
#include "passes/min_cut.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(MinCut, CutsTheCheapestEdgesBetweenTheTerminals) {
  // s -> a (3), s -> b (2), a -> b (1), a -> t (2), b -> t (3): the flow is
  // 5, which saturates both edges out of s, so s alone is on its side.
  MinCut cut(4);
  const size_t s = 0, t = 1, a = 2, b = 3;
  cut.addEdge(s, a, 3);
  cut.addEdge(s, b, 2);
  cut.addEdge(a, b, 1);
  cut.addEdge(a, t, 2);
  cut.addEdge(b, t, 3);
  std::vector<bool> sourceSide;
  EXPECT_DOUBLE_EQ(cut.solve(s, t, sourceSide), 5);
  EXPECT_TRUE(sourceSide[s]);
  EXPECT_FALSE(sourceSide[t]);
  EXPECT_FALSE(sourceSide[a]);
  EXPECT_FALSE(sourceSide[b]);
}

TEST(MinCut, InfiniteEdgesAreNeverCut) {
  // a must stay with s (an infinite edge), so the cut pays a -> t (4)
  // rather than s -> a (1).
  MinCut cut(3);
  const size_t s = 0, t = 1, a = 2;
  cut.addEdge(s, a, MinCut::kInfinite);
  cut.addEdge(a, t, 4);
  std::vector<bool> sourceSide;
  EXPECT_DOUBLE_EQ(cut.solve(s, t, sourceSide), 4);
  EXPECT_TRUE(sourceSide[a]);
}

TEST(MinCut, HelperNodesChargeASharedCostOnce) {
  // A value made at h (held on s's side) and read by r1 and r2, which each
  // cost 10 on s's side and nothing on t's: both cross, and the transfer (3)
  // is paid once through the helper node, not once per reader.
  MinCut cut(5);
  const size_t s = 0, t = 1, h = 2, r1 = 3, r2 = 4;
  cut.addEdge(s, h, MinCut::kInfinite);
  const size_t helper = cut.addNode();
  cut.addEdge(h, helper, 3);
  for (size_t r : {r1, r2}) {
    cut.addEdge(r, t, 10);
    cut.addEdge(helper, r, MinCut::kInfinite);
  }
  std::vector<bool> sourceSide;
  EXPECT_DOUBLE_EQ(cut.solve(s, t, sourceSide), 3);
  EXPECT_TRUE(sourceSide[h]);
  EXPECT_FALSE(sourceSide[r1]);
  EXPECT_FALSE(sourceSide[r2]);
}

}  // namespace
}  // namespace kiln
