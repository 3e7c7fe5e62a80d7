#include "runtime/host_fallback.h"

#include <numeric>
#include <set>

#include "runtime/device.h"

namespace kiln::rt {

std::vector<std::pair<std::string, std::string>> unusableDevices(const Graph& graph) {
  std::set<std::string> placed;
  for (const Op& op : graph.ops())
    if (op.placement() != kHostDevice) placed.insert(std::string(op.placement()));
  std::vector<std::pair<std::string, std::string>> unusable;
  for (const std::string& name : placed) {
    Device* device = findDevice(name);
    if (!device) {
      unusable.emplace_back(name, "this runtime has no such device");
      continue;
    }
    auto properties = device->properties();
    if (!properties) unusable.emplace_back(name, properties.status().message());
  }
  return unusable;
}

Expected<Graph> onHostOnly(const Graph& placed, KvLayerRecord& kvLayers) {
  Graph graph = placed;
  std::vector<ValueId> source(graph.values().size());
  std::iota(source.begin(), source.end(), 0);
  std::vector<size_t> newIndex(graph.ops().size());
  std::vector<Op> kept;
  for (size_t i = 0; i < graph.ops().size(); ++i) {
    Op op = graph.ops()[i];
    for (ValueId& operand : op.operands)
      if (operand != kNoValue) operand = source[static_cast<size_t>(operand)];
    if (op.is(OpKind::Transfer)) {
      source[static_cast<size_t>(op.results[0])] = op.operands[0];
      continue;
    }
    op.device.clear();
    newIndex[i] = kept.size();
    kept.push_back(std::move(op));
  }
  std::vector<ValueId> outputs = graph.outputs();
  for (ValueId& output : outputs) {
    const ValueId moved = source[static_cast<size_t>(output)];
    if (moved == output) continue;
    // The value that was moved to the host takes over the output's name.
    const std::string name = graph.value(output).name;
    KILN_RETURN_IF_ERROR(graph.rename(output, graph.uniqueName(name + ".transferred")));
    KILN_RETURN_IF_ERROR(graph.rename(moved, name));
    output = moved;
  }
  graph.setOps(std::move(kept));
  graph.setOutputs(std::move(outputs));
  graph.compact();
  if (kvLayers)
    for (KvLayerSite& site : *kvLayers) site.op = newIndex[site.op];
  return graph;
}

}  // namespace kiln::rt
