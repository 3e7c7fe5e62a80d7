#include "passes/min_cut.h"

#include <algorithm>
#include <queue>

namespace kiln {
namespace {
// Residual capacity below this counts as none (the costs are seconds, 1e-9 and up).
constexpr double kEpsilon = 1e-15;
}  // namespace

MinCut::MinCut(size_t nodes) : out_(nodes) {}

size_t MinCut::addNode() {
  out_.emplace_back();
  return out_.size() - 1;
}

void MinCut::addEdge(size_t from, size_t to, double capacity) {
  out_[from].push_back(edges_.size());
  edges_.push_back({to, std::min(capacity, kInfinite)});
  out_[to].push_back(edges_.size());
  edges_.push_back({from, 0});
}

bool MinCut::levelGraph(size_t source, size_t sink) {
  level_.assign(out_.size(), -1);
  level_[source] = 0;
  std::queue<size_t> queue;
  queue.push(source);
  while (!queue.empty()) {
    const size_t node = queue.front();
    queue.pop();
    for (size_t e : out_[node]) {
      const Edge& edge = edges_[e];
      if (edge.capacity <= kEpsilon || level_[edge.to] >= 0) continue;
      level_[edge.to] = level_[node] + 1;
      queue.push(edge.to);
    }
  }
  return level_[sink] >= 0;
}

double MinCut::push(size_t node, size_t sink, double limit) {
  if (node == sink) return limit;
  for (size_t& i = next_[node]; i < out_[node].size(); ++i) {
    const size_t e = out_[node][i];
    Edge& edge = edges_[e];
    if (edge.capacity <= kEpsilon || level_[edge.to] != level_[node] + 1) continue;
    const double pushed = push(edge.to, sink, std::min(limit, edge.capacity));
    if (pushed <= kEpsilon) continue;
    edge.capacity -= pushed;
    edges_[e ^ 1].capacity += pushed;
    return pushed;
  }
  return 0;
}

double MinCut::solve(size_t source, size_t sink, std::vector<bool>& sourceSide) {
  double flow = 0;
  while (levelGraph(source, sink)) {
    next_.assign(out_.size(), 0);
    while (double pushed = push(source, sink, kInfinite)) flow += pushed;
  }
  levelGraph(source, sink);  // what the source still reaches: its side of the cut
  sourceSide.resize(out_.size());
  for (size_t node = 0; node < out_.size(); ++node) sourceSide[node] = level_[node] >= 0;
  return flow;
}

}  // namespace kiln
