// kiln inspect ARTIFACT: what an artifact holds, without running it: the
// planned program, where each weight's bytes are (embedded or in a weight
// file), the devices' ahead-of-time code, each op's result with its device, buffer, offset and live range.
#include <algorithm>
#include <iostream>
#include <optional>
#include <map>
#include <sstream>

#include "ir/op_registry.h"
#include "ir/text.h"
#include "runtime/artifact.h"
#include "runtime/device.h"
#include "tools/common/arguments.h"
#include "tools/kiln/commands.h"

namespace kiln::tools {

namespace {

// "device = cpu, buffer = 3, offset = 65536, live = [9, 14)": where one op
// result lives. Live ranges are op indices, half-open: [written, last read + 1).
std::string placement(const Graph& graph, const rt::RegisterPlan& r) {
  std::string text = cat("device = ", r.device);
  if (r.memory != "host") text += cat(", memory = ", r.memory);
  if (r.kind == rt::RegisterPlan::View) {
    const Value& source = graph.value(r.viewOf);
    text += cat(", view of ", source.kind == ValueKind::Weight ? "@" : "%", source.name);
  }
  if (r.buffer >= 0) text += cat(", buffer = ", r.buffer, ", offset = ", r.offset);
  else if (r.kind == rt::RegisterPlan::Arena) text += ", no bytes";
  return text + cat(", live = [", r.liveStart, ", ", r.liveEnd + 1, ")");
}

// "embedded at offset 4096", "file 0 at offset 1234": where one weight's
// bytes are.
std::string weightPlace(const rt::WeightLocation& location) {
  if (location.file < 0) return cat("embedded at offset ", location.offset);
  using Unaligned = rt::WeightLocation::Unaligned;
  return cat("file ", location.file, " at offset ", location.offset,
             location.unaligned == Unaligned::Viewed     ? " (unaligned: viewed in place, only gathers read it)"
             : location.unaligned == Unaligned::Copied   ? " (unaligned: copied at load)"
             : location.unaligned == Unaligned::Released ? " (unaligned: copied at load, released once packed)"
                                                         : "");
}

// The program as printGraph gives it, each weight line followed by where its
// bytes are, each op line by where its results live.
std::string plannedProgram(const rt::Artifact& artifact, const rt::MemoryPlan* plan) {
  const Graph& graph = artifact.graph;
  std::map<ValueId, const rt::WeightLocation*> locations;
  for (const rt::WeightLocation& location : artifact.weightLocations) locations[location.weight] = &location;
  const std::vector<ValueId> weights = graph.weights();
  PrintOptions options;
  options.maxInlineWeightElements = 0;  // every weight without its data
  std::istringstream printed(printGraph(graph, options));
  // printGraph: the signature line, one line per weight, one per op, then
  // the return and the closing brace.
  const size_t firstOp = 1 + graph.weights().size();
  std::string out, line;
  for (size_t index = 0; std::getline(printed, line); ++index) {
    out += line;
    if (index >= 1 && index < firstOp) {
      auto location = locations.find(weights[index - 1]);
      if (location != locations.end()) out += "  // " + weightPlace(*location->second);
    }
    if (plan && index >= firstOp && index - firstOp < graph.ops().size()) {
      const Op& op = graph.ops()[index - firstOp];
      for (size_t r = 0; r < op.results.size(); ++r) {
        const rt::RegisterPlan& reg = plan->registers[static_cast<size_t>(op.results[r])];
        out += r == 0 ? "  // " : "; ";
        if (op.results.size() > 1) out += cat("%", graph.value(op.results[r]).name, ": ");
        out += placement(graph, reg);
      }
    }
    out += "\n";
  }
  return out;
}

std::string memorySummary(const Graph& graph, const rt::MemoryPlan* plan) {
  if (!plan)
    return "memory: not planned (a dim is known only at run time); each result is allocated as it runs\n";
  int64_t registers = 0, views = 0;
  for (const rt::RegisterPlan& r : plan->registers) {
    registers += r.kind == rt::RegisterPlan::Arena || r.kind == rt::RegisterPlan::View;
    views += r.kind == rt::RegisterPlan::View;
  }
  std::string bounds;
  for (const auto& [symbol, value] : plan->bounds) bounds += cat(bounds.empty() ? "" : ", ", symbol, " = ", value);
  return cat("memory: arena ", plan->peakBytes, " bytes in ", plan->buffers, " buffers for ", registers,
             " registers (", views, " views); naive ", plan->naiveBytes, ", lower bound ", plan->lowerBoundBytes,
             bounds.empty() ? std::string() : "; planned at " + bounds, "\n");
}

// The KV cache per token, over the recorded KV layers; with latent layers,
// what the attention they replaced cached too.
std::string kvSummary(const rt::Artifact& artifact) {
  if (!artifact.kvLayers) return "kv cache: not recorded (an artifact older than format version 4)\n";
  Expected<std::vector<rt::KvLayer>> layers = rt::describeKvLayers(artifact.graph, *artifact.kvLayers);
  if (!layers || layers->empty()) return "kv cache: none\n";
  int64_t bytes = 0, before = 0, latent = 0;
  for (const rt::KvLayer& layer : *layers) {
    const auto size = static_cast<int64_t>(dtypeSize(layer.dtype));
    const int64_t now = layer.kvHeads * (layer.headDim + layer.valueDim) * size;
    bytes += now;
    const Op& op = artifact.graph.ops()[layer.op];
    latent += op.is(OpKind::LatentAttention);
    // The attention it replaced cached in the model's dtype, q's (a latent cache may be bf16).
    const auto modelSize = static_cast<int64_t>(dtypeSize(artifact.graph.value(op.operands[0]).type.dtype));
    before += op.is(OpKind::LatentAttention) ? op.attrs.getInt("source_kv_width", 0) * modelSize : now;
  }
  std::string text = cat("kv cache: ", layers->size(), " layers, ", bytes, " bytes per token");
  if (latent > 0) text += cat(" (", latent, " latent; before latent attention ", before, ")");
  return text + "\n";
}

}  // namespace

int inspectCommand(const std::vector<std::string>& args) {
  std::string artifactPath;
  ArgumentParser parser("kiln inspect ARTIFACT.kiln",
                        "Prints an artifact's format version and size, its inputs and outputs,\n"
                        "weight count and bytes (embedded, and referenced in weight files, which\n"
                        "it lists), each device's ahead-of-time code (programs and binary bytes),\n"
                        "op counts, KV cache bytes per token (with latent attention, before\n"
                        "and after), memory plan summary, and its planned IR (weights\n"
                        "without data): each weight line ends with where its bytes are (embedded\n"
                        "at an artifact offset, or in weight file N at an offset), each op line\n"
                        "with its result's device, buffer, arena offset and live range\n"
                        "[first op, last op + 1).");
  parser.positional("ARTIFACT.kiln", "the artifact from 'kiln compile'", &artifactPath);
  if (std::optional<int> exitCode = parser.parseOrExitCode(args, "kiln inspect")) return *exitCode;
  Expected<rt::Artifact> artifact = rt::loadArtifact(artifactPath);
  if (!artifact) {
    std::cerr << "kiln inspect: " << artifact.status().message() << "\n";
    return 1;
  }
  const Graph& graph = artifact->graph;

  std::cout << "artifact: " << artifactPath << " (format version " << artifact->formatVersion
            << ", " << artifact->fileSize << " bytes)\n";
  std::cout << "inputs:\n";
  for (ValueId id : graph.inputs())
    std::cout << "  " << graph.value(id).name << ": " << graph.value(id).type.str() << "\n";
  std::cout << "outputs:\n";
  for (ValueId id : graph.outputs())
    std::cout << "  " << graph.value(id).name << ": " << graph.value(id).type.str() << "\n";
  std::cout << "weights: " << graph.weights().size() << " (" << artifact->weightBytes << " bytes), "
            << artifact->embeddedWeightBytes << " embedded, " << artifact->referencedWeightBytes << " referenced\n";
  for (size_t i = 0; i < artifact->weightFiles.size(); ++i) {
    const rt::WeightFileInfo& file = artifact->weightFiles[i];
    std::cout << "weight file " << i << ": " << file.path << " (" << file.size << " bytes)\n";
  }

  for (const rt::DeviceCode& code : artifact->deviceCode) {
    std::cout << "device code: " << code.device << ": " << code.programs << " programs, " << code.binaryBytes
              << " binary bytes (" << code.code.size() << " bytes in all)\n";
    if (const rt::Device* device = rt::findDevice(code.device))
      for (const std::string& line : device->describeAhead(code.code)) std::cout << "  " << line << "\n";
  }

  std::map<std::string_view, int> opCounts;
  for (const Op& op : graph.ops()) ++opCounts[op.def->name];
  std::vector<std::pair<std::string_view, int>> byCount(opCounts.begin(), opCounts.end());
  std::stable_sort(byCount.begin(), byCount.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::cout << "ops: " << graph.ops().size();
  for (size_t i = 0; i < byCount.size(); ++i)
    std::cout << (i == 0 ? " (" : ", ") << byCount[i].first << " " << byCount[i].second;
  std::cout << (byCount.empty() ? "" : ")") << "\n";
  const rt::MemoryPlan* plan = artifact->plan ? &*artifact->plan : nullptr;
  std::cout << kvSummary(*artifact);
  std::cout << memorySummary(graph, plan) << "\n";
  std::cout << plannedProgram(*artifact, plan);
  return 0;
}

}  // namespace kiln::tools
