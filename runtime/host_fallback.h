// A placed program on a machine that lacks one of its devices (no OpenCL
// driver, say) still runs: on the host alone, as ONNX Runtime falls back to
// its CPU provider. createExecutor (runtime/artifact.h) does it, saying so
// once on stderr.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"
#include "runtime/executor.h"

namespace kiln::rt {

// The devices other than the host that `graph` places ops on and this
// runtime cannot use here, each with why (not registered, or its
// properties() error, e.g. "no OpenCL platform: ...").
std::vector<std::pair<std::string, std::string>> unusableDevices(const Graph& graph);

// `placed` with every op on the host: each transfer goes and its readers
// read the moved value itself (a graph output keeps its name), and the KV
// layers' op indices follow.
Expected<Graph> onHostOnly(const Graph& placed, KvLayerRecord& kvLayers);

}  // namespace kiln::rt
