// A minimum s-t cut of a small directed graph with real capacities (Dinic's
// max-flow): what the cost-based device placement solves for two devices.
#pragma once

#include <cstddef>
#include <vector>

namespace kiln {

class MinCut {
 public:
  // Capacities at or above this never cut: a constraint, not a cost.
  static constexpr double kInfinite = 1e30;

  explicit MinCut(size_t nodes);
  size_t addNode();
  void addEdge(size_t from, size_t to, double capacity);
  // The cut's capacity, and for each node whether it is on the source's
  // side (reachable from `source` in the residual graph).
  double solve(size_t source, size_t sink, std::vector<bool>& sourceSide);

 private:
  struct Edge {
    size_t to;
    double capacity;
  };
  bool levelGraph(size_t source, size_t sink);
  double push(size_t node, size_t sink, double limit);

  std::vector<Edge> edges_;                // edge i and i ^ 1 are each other's reverse
  std::vector<std::vector<size_t>> out_;   // per node: its edges' indices
  std::vector<int> level_;
  std::vector<size_t> next_;               // per node: the next edge to try
};

}  // namespace kiln
