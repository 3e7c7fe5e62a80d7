// kiln inspect ARTIFACT: what an artifact holds, without running it.
#include <algorithm>
#include <iostream>
#include <map>

#include "ir/op_registry.h"
#include "ir/text.h"
#include "runtime/artifact.h"
#include "tools/common/arguments.h"
#include "tools/kiln/commands.h"

namespace kiln::tools {

int inspectCommand(const std::vector<std::string>& args) {
  std::string artifactPath;
  ArgumentParser parser("kiln inspect ARTIFACT.kiln",
                        "Prints an artifact's format version and size, its inputs and outputs,\n"
                        "weight count and bytes, op counts, and its IR (weights without data).");
  parser.positional("ARTIFACT.kiln", "the artifact from 'kiln compile'", &artifactPath);
  if (Status parsed = parser.parse(args); !parsed) {
    std::cerr << "kiln inspect: " << parsed.message()
              << "\n(run 'kiln inspect --help' for usage)\n";
    return 1;
  }
  if (parser.helpRequested()) {
    std::cout << parser.help();
    return 0;
  }
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
  std::cout << "weights: " << graph.weights().size() << " (" << artifact->weightBytes
            << " bytes)\n";

  std::map<std::string_view, int> opCounts;
  for (const Op& op : graph.ops()) ++opCounts[op.def->name];
  std::vector<std::pair<std::string_view, int>> byCount(opCounts.begin(), opCounts.end());
  std::stable_sort(byCount.begin(), byCount.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::cout << "ops: " << graph.ops().size();
  for (size_t i = 0; i < byCount.size(); ++i)
    std::cout << (i == 0 ? " (" : ", ") << byCount[i].first << " " << byCount[i].second;
  std::cout << (byCount.empty() ? "" : ")") << "\n\n";

  PrintOptions options;
  options.maxInlineWeightElements = 0;  // every weight without its data
  std::cout << printGraph(graph, options);
  return 0;
}

}  // namespace kiln::tools
