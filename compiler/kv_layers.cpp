#include "compiler/kv_layers.h"

#include <algorithm>
#include <optional>


namespace kiln {
namespace {

// Where `id` sits in `list` (graph inputs or outputs), if it does.
std::optional<size_t> positionIn(const std::vector<ValueId>& list, ValueId id) {
  auto it = std::find(list.begin(), list.end(), id);
  if (it == list.end()) return std::nullopt;
  return static_cast<size_t>(it - list.begin());
}

}  // namespace

std::vector<rt::KvLayerSite> findKvLayers(const Graph& graph) {
  std::vector<rt::KvLayerSite> layers;
  for (size_t i = 0; i < graph.ops().size(); ++i) {
    std::optional<rt::KvLayerEnds> kv = rt::kvLayerEnds(graph, i);
    if (!kv) continue;
    // A latent layer has no values: its value ends are kNoKvPart.
    const bool latent = kv->pastValue == kNoValue;
    std::optional<size_t> pastKeyInput = positionIn(graph.inputs(), kv->pastKey);
    std::optional<size_t> pastValueInput = latent ? rt::kNoKvPart : positionIn(graph.inputs(), kv->pastValue);
    std::optional<size_t> presentKeyOutput = positionIn(graph.outputs(), kv->presentKey);
    std::optional<size_t> presentValueOutput = latent ? rt::kNoKvPart : positionIn(graph.outputs(), kv->presentValue);
    if (!pastKeyInput || !pastValueInput || !presentKeyOutput || !presentValueOutput) continue;
    const rt::KvLayerSite site{i, *pastKeyInput, *pastValueInput, *presentKeyOutput, *presentValueOutput};
    // A layer is one the runtime will step: the checks its load makes.
    if (rt::describeKvLayers(graph, {site})) layers.push_back(site);
  }
  return layers;
}

}  // namespace kiln
