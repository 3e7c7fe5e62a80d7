// The `kiln compile --report` document: what the ONNX file held, what the
// passes did to the IR (per-pass time, op counts, statistics), where the
// compile time went, the fusion gain under the cost model, and the memory
// plan's size at the compile bounds. Every field is described in
// docs/report.md.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "compiler/artifact_writer.h"
#include "frontend/onnx/onnx_importer.h"
#include "ir/graph.h"
#include "passes/cost_model.h"
#include "passes/device_placement.h"
#include "passes/latent_attention.h"
#include "passes/pass_manager.h"
#include "runtime/planning/memory_plan.h"

namespace kiln::tools {

struct CompileReport {
  std::string model;
  OnnxModelStats onnx;
  int64_t irOpsInitial = 0;
  int64_t irOpsFinal = 0;
  std::map<std::string, int64_t> opsByKind;  // final graph
  std::string pipeline;                      // as --passes would spell it
  std::string precision = "f32";             // --precision
  std::string weightsMode = "embed";         // --weights
  ArtifactWriteStats weights;                // where the artifact writer put them
  PipelineRecord record;
  CostModel costModel;
  SymbolBindings symbols;  // the final graph's symbols and their cost-model values
  double importMs = 0, writeMs = 0, compileMs = 0;

  // The memory plan at the compile bounds; none when the program could not
  // be planned (notPlanned says why).
  struct Memory {
    size_t peakBytes = 0, naiveBytes = 0, lowerBoundBytes = 0;
    int32_t buffers = 0;
    int64_t registers = 0;  // op results (views included): what naiveBytes counts
    SymbolBindings bounds;
  };
  std::optional<Memory> memory;
  std::string notPlanned;
  // Set when device_placement placed the program (--targets).
  std::optional<PlacementReport> placement;
  // Set when --latent-attention asked for latent_attention.
  std::optional<LatentAttentionReport> latent;

  // Fills the fields that come from the final graph (ops, symbols).
  void describeFinalGraph(const Graph& graph);
  void describePlan(const rt::MemoryPlan& plan);
  // cost(unfused) / cost(fused); 0 when the fused cost is 0.
  double fusionGainRatio() const;

  std::string toJson() const;
  std::string toTable() const;  // the readable form, for `--report -`
};

}  // namespace kiln::tools
