#include "compiler/compiler.h"

#include <algorithm>
#include <set>

#include "ir/verifier.h"

namespace kiln {
namespace {

std::vector<std::string> pipelineOf(const CompileOptions& options) {
  std::vector<std::string> pipeline = options.pipeline.value_or(defaultPipeline());
  if (options.passes.passOptions.latent.mode &&
      std::find(pipeline.begin(), pipeline.end(), "latent_attention") == pipeline.end()) {
    // After attention fusion and its clean-up (dce drops the fused
    // patterns, which still read the KV inputs), before the projections merge.
    auto fusion = std::find(pipeline.begin(), pipeline.end(), "attention_fusion");
    size_t at = 0;  // without attention fusion: first, for attention ops the source has
    if (fusion != pipeline.end()) {
      at = static_cast<size_t>(fusion - pipeline.begin()) + 1;
      if (at < pipeline.size() && pipeline[at] == "canonicalize") ++at;
    }
    pipeline.insert(pipeline.begin() + static_cast<std::ptrdiff_t>(at), {"dce", "latent_attention"});
  }
  if (options.precision == Precision::BF16) pipeline.push_back("precision_bf16");
  if (options.precision == Precision::Int8Weights) pipeline.push_back("precision_int8_weights");
  // Placement last: it sees the program every other pass made.
  const bool placing = !options.passes.passOptions.placement.targets.empty();
  if (placing && std::find(pipeline.begin(), pipeline.end(), "device_placement") == pipeline.end())
    pipeline.push_back("device_placement");
  return pipeline;
}

PassManagerOptions managerOptionsOf(const CompileOptions& options) {
  PassManagerOptions manager = options.passes;
  // Referenced weights are the model file's bytes: no pass may make new ones from them.
  if (options.weights == WeightStorage::Reference)
    for (const char* pass : {"sibling_matmul_merge", "regroup_projections"}) manager.disabledPasses.push_back(pass);
  return manager;
}

// Every symbol given a bound must be one of the compiled program's: a bound
// for no symbol is a misspelling.
Status checkBoundSymbols(const Graph& graph, const SymbolBindings& bounds) {
  std::set<std::string> symbols;
  for (const Value& value : graph.values())
    for (const Dim& dim : value.type.shape)
      for (const std::string& symbol : dim.symbols()) symbols.insert(symbol);
  for (const auto& [symbol, value] : bounds) {
    if (symbols.count(symbol)) continue;
    std::string known;
    for (const std::string& s : symbols) known += cat(known.empty() ? "" : ", ", s);
    return Status::error("--max-shape: the compiled program has no symbol '", symbol, "' (",
                         known.empty() ? std::string("it has none") : "its symbols: " + known, ")");
  }
  return Status::ok();
}

}  // namespace

Expected<Compiler> Compiler::create(CompileOptions options) {
  Expected<PassManager> manager = PassManager::create(pipelineOf(options), managerOptionsOf(options));
  if (!manager) return manager.status();
  return Compiler(std::move(options), std::move(*manager));
}

Expected<PipelineRecord> Compiler::runPasses(Graph& graph) const {
  Expected<PipelineRecord> record = manager_.run(graph);
  if (!record && !options_.source.empty()) return record.status().withContext(cat(options_.source, ": "));
  return record;
}

Expected<CompileResult> Compiler::compile(Graph graph) const {
  if (Status valid = verifyGraph(graph); !valid)
    return valid.withContext(cat(options_.source.empty() ? "" : options_.source + ": ",
                                 "the graph to compile is invalid: "));
  CompileResult result;
  Expected<PipelineRecord> record = runPasses(graph);
  if (!record) return record.status();
  result.record = std::move(*record);
  result.graph = std::move(graph);
  result.pipeline = pipeline();
  result.weights = options_.weights;
  result.architectures = options_.architectures;
  KILN_RETURN_IF_ERROR(checkBoundSymbols(result.graph, options_.maxShapes));
  Expected<rt::MemoryPlan> plan =
      rt::planMemory(result.graph, rt::planningBounds(result.graph, options_.maxShapes));
  if (plan) result.plan = std::move(*plan);
  else result.notPlanned = plan.status().message();
  return result;
}

Expected<CompileResult> compile(Graph graph, const CompileOptions& options) {
  Expected<Compiler> compiler = Compiler::create(options);
  if (!compiler) return compiler.status();
  return compiler->compile(std::move(graph));
}

}  // namespace kiln
