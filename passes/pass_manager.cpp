#include "passes/pass_manager.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>

#include "ir/verifier.h"
#include "passes/pass_registry.h"

namespace kiln {

namespace {

double millisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

bool contains(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// `flag` (when not empty) prefixes the error: where the name came from.
Status checkPassName(std::string_view name, std::string_view flag = {}) {
  Expected<std::unique_ptr<Pass>> pass = createPass(name);
  if (!pass) return flag.empty() ? pass.status() : pass.status().withContext(cat(flag, ": "));
  return Status::ok();
}

}  // namespace

const std::vector<std::string>& defaultPipeline() {
  // The order is explained in docs/passes.md.
  static const std::vector<std::string> pipeline = {
      // Clean-up: shape arithmetic folded, constants evaluated, duplicates
      // merged, dead ops dropped.
      "canonicalize", "constant_fold", "cse", "dce",
      // Fusion (the unfused cost of the report is measured here), with a
      // canonicalisation of what attention fusion leaves.
      "relative_position_fusion", "unfold_heads", "attention_fusion", "dce", "sink_transposes", "dce", "regroup_projections",
      "canonicalize", "norm_fusion",
      "sibling_matmul_merge", "matmul_epilogue_fusion", "swiglu_fusion", "layout", "elementwise_fusion",
      // Clean-up of what fusion left behind.
      "canonicalize", "cse", "dce"};
  return pipeline;
}

bool isFusionPass(std::string_view name) {
  static constexpr std::string_view kFusionPasses[] = {
      "relative_position_fusion", "attention_fusion", "norm_fusion", "regroup_projections",
      "sibling_matmul_merge", "matmul_epilogue_fusion", "swiglu_fusion", "layout", "elementwise_fusion"};
  return std::find(std::begin(kFusionPasses), std::end(kFusionPasses), name) !=
         std::end(kFusionPasses);
}

Expected<std::vector<std::string>> parsePipeline(std::string_view text) {
  std::vector<std::string> names;
  if (text.empty()) return names;
  size_t start = 0;
  while (true) {
    const size_t end = std::min(text.find(',', start), text.size());
    std::string_view name = text.substr(start, end - start);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (name.empty())
      return Status::error("pipeline '", text, "': empty pass name at position ",
                           names.size() + 1);
    KILN_RETURN_IF_ERROR(checkPassName(name));
    names.emplace_back(name);
    if (end == text.size()) break;
    start = end + 1;
  }
  return names;
}

std::string joinPipeline(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : ",") + name;
  return text;
}

Expected<PassManager> PassManager::create(std::vector<std::string> pipeline,
                                          PassManagerOptions options) {
  for (const std::string& name : pipeline) KILN_RETURN_IF_ERROR(checkPassName(name));
  for (const std::string& name : options.printIrAfter)
    KILN_RETURN_IF_ERROR(checkPassName(name, "--print-ir-after"));
  for (const std::string& name : options.disabledPasses)
    KILN_RETURN_IF_ERROR(checkPassName(name, "--disable-pass"));
  return PassManager(std::move(pipeline), std::move(options));
}

bool PassManager::printsAfter(std::string_view name) const {
  return options_.printIrAfterAll || contains(options_.printIrAfter, name);
}

bool PassManager::isDisabled(std::string_view name) const {
  return contains(options_.disabledPasses, name);
}

Expected<PipelineRecord> PassManager::run(Graph& graph) const {
  PipelineRecord record;
  std::ostream& irStream = options_.irStream ? *options_.irStream : std::cerr;
  const auto pipelineStart = std::chrono::steady_clock::now();
  double costMs = 0;  // cost measurements are not part of the pipeline's time
  auto measureCost = [&] {
    const auto start = std::chrono::steady_clock::now();
    GraphCost cost = graphCost(graph, *options_.costModel);
    costMs += millisecondsSince(start);
    return cost;
  };

  for (size_t index = 0; index < pipeline_.size(); ++index) {
    const std::string& name = pipeline_[index];
    PassRecord pass;
    pass.name = name;
    pass.opsBefore = pass.opsAfter = static_cast<int64_t>(graph.ops().size());
    if (isDisabled(name)) {
      pass.skipped = true;
      record.passes.push_back(std::move(pass));
      continue;
    }
    if (options_.costModel && !record.unfusedCost && isFusionPass(name))
      record.unfusedCost = measureCost();

    Expected<std::unique_ptr<Pass>> instance = createPass(name, options_.passOptions);
    if (!instance) return instance.status();
    const std::string where = cat("pass '", name, "' (#", index + 1, " in the pipeline)");
    const auto start = std::chrono::steady_clock::now();
    Expected<bool> changed = (*instance)->run(graph);
    pass.ms = millisecondsSince(start);
    if (!changed) return changed.status().withContext(where + ": ");
    pass.changed = *changed;
    pass.opsAfter = static_cast<int64_t>(graph.ops().size());
    pass.statistics = (*instance)->statistics();

    if (options_.verifyEachPass) {
      const auto verifyStart = std::chrono::steady_clock::now();
      Status valid = verifyGraph(graph);
      pass.verifyMs = millisecondsSince(verifyStart);
      if (!valid)
        return valid.withContext(cat("the graph is invalid after ", where,
                                     " (a bug in that pass): "));
    }
    if (printsAfter(name)) {
      irStream << "// IR after pass '" << name << "' (#" << index + 1 << ", "
               << (pass.changed ? "changed" : "unchanged") << ")\n"
               << printGraph(graph, options_.irPrintOptions);
    }
    record.passes.push_back(std::move(pass));
  }
  record.totalMs = millisecondsSince(pipelineStart) - costMs;
  if (options_.costModel) {
    record.fusedCost = graphCost(graph, *options_.costModel);
    if (!record.unfusedCost) record.unfusedCost = record.fusedCost;
  }
  return record;
}

}  // namespace kiln
