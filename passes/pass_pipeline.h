// Runs passes by name in order, verifying the graph after each. The full pass
// manager (print-after, per-pass timing profile) builds on this.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/pass.h"

namespace kiln {

struct PassRunReport {
  std::string name;
  bool changed = false;
  PassStatistics statistics;
};

// Unknown names are refused before any pass runs. A verifier failure after a
// pass is an error naming that pass (a bug in the pass, not in the input).
Expected<std::vector<PassRunReport>> runPasses(Graph& graph, const std::vector<std::string>& names);

}  // namespace kiln
