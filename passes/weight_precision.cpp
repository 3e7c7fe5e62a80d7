#include "passes/weight_precision.h"

namespace kiln {

void finishConversion(Graph& graph, const ConvertedWeights& converted, PassStatistics& statistics) {
  std::vector<bool> stillRead(graph.values().size(), false);
  for (const Op& op : graph.ops())
    for (ValueId id : op.operands)
      if (id != kNoValue) stillRead[static_cast<size_t>(id)] = true;
  for (ValueId id : graph.outputs()) stillRead[static_cast<size_t>(id)] = true;
  int64_t kept = 0, bytesSaved = 0;
  for (const auto& [f32, made] : converted) {
    for (ValueId id : made) bytesSaved -= static_cast<int64_t>(graph.value(id).data->byteSize());
    if (stillRead[static_cast<size_t>(f32)]) ++kept;
    else bytesSaved += static_cast<int64_t>(graph.value(f32).data->byteSize());
  }
  statistics.add("f32-weights-kept", kept);
  statistics.add("weight-bytes-saved", bytesSaved);
  if (!converted.empty()) graph.compact();
}

}  // namespace kiln
