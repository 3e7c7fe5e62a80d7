// The inputs of a run of an artifact's graph, shared by `kiln run` and
// `kiln bench`: read from a directory of input_K.pb files, or random.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/dim.h"
#include "ir/graph.h"
#include "ir/status.h"
#include "ir/tensor.h"

namespace kiln::tools {

// DIR/KIND_INDEX.pb, e.g. DIR/input_0.pb.
std::string dataFile(const std::string& dir, const char* kind, size_t index);

// input_K.pb (ONNX TensorProto) for each graph input, in graph input order;
// a missing or an extra file is an error.
Expected<std::vector<Tensor>> readInputs(const Graph& graph, const std::string& dir);

// Random inputs of the graph's input types: floats uniform in [-1, 1);
// integers and bools 0 or 1, which index any embedding table (token ids,
// token types, positions), except inputs named like a mask: all 1 (attend
// everywhere), so no row is fully masked. `given` (from --input-shape) fixes
// an input's shape and binds its symbols; other symbolic dims are 1 when
// named like 'batch' and 8 otherwise; `?` dims are 1.
Expected<std::vector<Tensor>> randomInputs(const Graph& graph,
                                           const std::map<std::string, std::vector<Dim>>& given,
                                           uint64_t seed);

}  // namespace kiln::tools
