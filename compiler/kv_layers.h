// The decoder's KV layers, found in the compiled graph's structure and
// recorded in the artifact (docs/artifact.md, "KV layers"), so the runtime
// steps a decoder by the record instead of matching patterns at load time.
#pragma once

#include <vector>

#include "ir/graph.h"
#include "runtime/executor.h"

namespace kiln {

// The attention ops whose past_k/past_v operands are graph inputs and whose
// present_k/present_v results are graph outputs, each a layer the runtime
// can step (rt::describeKvLayers accepts it: the pasts read by that op alone
// and not returned, the presents read by nothing, rank 4 with static kv
// heads and head dims; docs/kv-cache.md). In graph order.
std::vector<rt::KvLayerSite> findKvLayers(const Graph& graph);

}  // namespace kiln
