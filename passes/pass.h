// A graph pass: one rewrite over the whole graph, with a name (its --pass
// flag), a one-line summary, and counters that make its effect visible (a
// pass that silently does nothing shows zeros).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ir/graph.h"
#include "ir/status.h"

namespace kiln {

// Named counters in the order a pass first reports them.
class PassStatistics {
 public:
  void add(std::string_view name, int64_t amount);
  const std::vector<std::pair<std::string, int64_t>>& all() const { return counters_; }

 private:
  std::vector<std::pair<std::string, int64_t>> counters_;
};

class Pass {
 public:
  virtual ~Pass() = default;
  virtual std::string_view name() const = 0;
  virtual std::string_view summary() const = 0;
  // Rewrites `graph`; returns whether it changed. An error leaves the graph
  // in an unspecified state.
  virtual Expected<bool> run(Graph& graph) = 0;

  const PassStatistics& statistics() const { return statistics_; }

 protected:
  PassStatistics statistics_;
};

}  // namespace kiln
