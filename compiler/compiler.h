// The compiler library: a verified graph in, the planned program out. It
// holds the compile pipeline and its policies (which passes run, what
// --precision and --weights change, planning at the bounds); `kiln compile`,
// kiln-opt and the tests call it rather than assembling the pass manager and
// the planner themselves. Writing the result is
// compiler/artifact_writer.h. Design: docs/architecture.md.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/dim.h"
#include "ir/graph.h"
#include "ir/status.h"
#include "passes/pass_manager.h"
#include "runtime/planning/memory_plan.h"

namespace kiln {

enum class Precision {
  F32,   // every weight stays f32
  BF16,  // precision_bf16 runs last: matmul weights become bf16
  Int8Weights,  // precision_int8_weights runs last: matmul weights become int8
};

// Where the artifact keeps the weights (docs/artifact.md).
enum class WeightStorage {
  Embed,      // every weight's bytes are copied into the artifact
  Reference,  // a weight still in its source file is recorded as that file's byte range
};

struct CompileOptions {
  // The passes, in order; unset: defaultPipeline().
  std::optional<std::vector<std::string>> pipeline;
  // BF16 appends precision_bf16 (Int8Weights precision_int8_weights), last,
  // so that every fusion pass matches the f32 graph it was written for.
  Precision precision = Precision::F32;
  // Reference disables sibling_matmul_merge, whose concatenated weights
  // would be new ones, embedded: most of the model's bytes read and written
  // again.
  WeightStorage weights = WeightStorage::Embed;
  // The memory plan is made with each of these symbols at its bound
  // (`kiln compile --max-shape`, whose name the error for a symbol the
  // compiled program lacks gives) and the others at planningBounds' defaults.
  SymbolBindings maxShapes;
  // Verification, IR printing, disabled passes and the cost model.
  PassManagerOptions passes;
  // What a pass error names as the graph's source (the model's path); empty:
  // nothing.
  std::string source;
  // Per device ("cuda"), the architectures its ahead-of-time code is
  // compiled for (`kiln compile --cuda-arch`); a device not named here
  // compiles for its default (Device::compileAhead).
  std::map<std::string, std::vector<std::string>, std::less<>> architectures;
};

struct CompileResult {
  Graph graph;                        // after the passes
  std::vector<std::string> pipeline;  // the passes that were to run, disabled ones included
  PipelineRecord record;              // what each did
  WeightStorage weights = WeightStorage::Embed;
  std::map<std::string, std::vector<std::string>, std::less<>> architectures;  // CompileOptions'
  // The plan at the bounds; none when the program has a dim known only at
  // run time (`?`), and notPlanned says why: the runtime then allocates
  // each result as it runs.
  std::optional<rt::MemoryPlan> plan;
  std::string notPlanned;
};

// The compile pipeline for one set of options, checked before any graph is
// at hand: an unknown pass name is an error here.
class Compiler {
 public:
  static Expected<Compiler> create(CompileOptions options);

  // The passes, with the policies applied (as the report spells them).
  const std::vector<std::string>& pipeline() const { return manager_.pipeline(); }
  // Runs the passes on `graph`, verifying after each unless told not to.
  Expected<PipelineRecord> runPasses(Graph& graph) const;
  // Verifies `graph`, runs the passes, then plans memory at the bounds.
  Expected<CompileResult> compile(Graph graph) const;

 private:
  Compiler(CompileOptions options, PassManager manager)
      : options_(std::move(options)), manager_(std::move(manager)) {}

  CompileOptions options_;
  PassManager manager_;
};

// Compiler::create(options), then compile(graph).
Expected<CompileResult> compile(Graph graph, const CompileOptions& options);

}  // namespace kiln
