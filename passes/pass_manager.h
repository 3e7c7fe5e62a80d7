// The pass manager: runs a pipeline of passes by name, verifying the graph
// after each (unless told not to), printing the IR after chosen passes, and
// recording per pass its wall time, op counts and statistics. It also takes
// the cost of the graph just before the first fusion pass, the "unfused"
// side of the report's fusion_gain_ratio.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "ir/text.h"
#include "passes/cost_model.h"
#include "passes/pass.h"
#include "passes/pass_registry.h"

namespace kiln {

// The pipeline `kiln compile` runs. It holds only passes that exist; its
// intended full order (docs/passes.md) gains each fusion pass as it lands.
const std::vector<std::string>& defaultPipeline();
// The passes that fuse ops or change layouts; the unfused cost is taken
// before the first of them runs.
bool isFusionPass(std::string_view name);

// "canonicalize,cse,dce" -> names; "" -> no passes. Spaces around names are
// ignored; an empty name, or a name that is not a registered pass, is an error.
Expected<std::vector<std::string>> parsePipeline(std::string_view text);
std::string joinPipeline(const std::vector<std::string>& names);

struct PassManagerOptions {
  bool verifyEachPass = true;
  // Print the IR (to irStream) after every run of these passes / after all.
  std::vector<std::string> printIrAfter;
  bool printIrAfterAll = false;
  std::ostream* irStream = nullptr;  // where the IR goes; null: std::cerr
  PrintOptions irPrintOptions;
  // Passes of the pipeline to skip (they appear in the record as skipped).
  std::vector<std::string> disabledPasses;
  // When set, the pass manager measures the graph's cost under this model
  // before the first fusion pass and after the last pass.
  const CostModel* costModel = nullptr;
  // Options of the passes that take any (device_placement's targets).
  PassOptions passOptions;
};

struct PassRecord {
  std::string name;
  bool skipped = false;  // --disable-pass
  bool changed = false;
  double ms = 0;         // the pass alone
  double verifyMs = 0;   // the verifier after it
  int64_t opsBefore = 0, opsAfter = 0;
  PassStatistics statistics;
};

struct PipelineRecord {
  std::vector<PassRecord> passes;
  double totalMs = 0;  // passes and verification
  // With a cost model: the graph before the first fusion pass that ran (the
  // final graph when none ran) and the final graph.
  std::optional<GraphCost> unfusedCost, fusedCost;
};

class PassManager {
 public:
  // Looks up every pass name (of the pipeline, --print-ir-after and
  // --disable-pass) before anything runs; an unknown one is an error that
  // lists the known passes.
  static Expected<PassManager> create(std::vector<std::string> pipeline,
                                      PassManagerOptions options);

  // Runs the pipeline. A pass error, or a graph the verifier rejects after a
  // pass, is an error naming the pass (and its position in the pipeline).
  Expected<PipelineRecord> run(Graph& graph) const;

  const std::vector<std::string>& pipeline() const { return pipeline_; }

 private:
  PassManager(std::vector<std::string> pipeline, PassManagerOptions options)
      : pipeline_(std::move(pipeline)), options_(std::move(options)) {}
  bool printsAfter(std::string_view name) const;
  bool isDisabled(std::string_view name) const;

  std::vector<std::string> pipeline_;
  PassManagerOptions options_;
};

}  // namespace kiln
