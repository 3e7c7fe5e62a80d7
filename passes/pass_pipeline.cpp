#include "passes/pass_pipeline.h"

#include <memory>

#include "ir/verifier.h"
#include "passes/pass_registry.h"

namespace kiln {

Expected<std::vector<PassRunReport>> runPasses(Graph& graph, const std::vector<std::string>& names) {
  std::vector<std::unique_ptr<Pass>> passes;
  for (const std::string& name : names) {
    Expected<std::unique_ptr<Pass>> pass = createPass(name);
    if (!pass) return pass.status();
    passes.push_back(std::move(*pass));
  }

  std::vector<PassRunReport> reports;
  for (const std::unique_ptr<Pass>& pass : passes) {
    Expected<bool> changed = pass->run(graph);
    if (!changed) return changed.status().withContext(cat("pass '", pass->name(), "': "));
    Status valid = verifyGraph(graph);
    if (!valid)
      return valid.withContext(cat("the graph is invalid after pass '", pass->name(), "': "));
    reports.push_back({std::string(pass->name()), *changed, pass->statistics()});
  }
  return reports;
}

}  // namespace kiln
