// ONNX import: a model file (opsets 13 to 21 of the ai.onnx domain) becomes a
// kiln Graph. Graph inputs keep their ONNX names and their dynamic dims stay
// symbolic (dim_param `batch` -> symbol `batch`); initializers, Constant
// nodes and ONNX external data become weights; each node becomes registry ops
// through the Builder, so every result type is inferred. The weights of
// initializers are not copied: they view the model file (or its external-data
// files) mapped read-only, found by a wire-level scan (onnx_wire.h), so that
// protobuf parses the model without its payloads.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "frontend/onnx/mapped_file.h"
#include "ir/dim.h"
#include "ir/graph.h"
#include "ir/status.h"

namespace kiln {

struct OnnxImportOptions {
  // Specialises graph inputs: name -> dims. A constant binds the ONNX symbol
  // at that position everywhere it occurs (`input_ids=1x128` makes `batch`
  // 1 in every input); a symbol renames it (`input_ids=batchx128` keeps the
  // batch dynamic, named `batch`). The rank must match the model's.
  std::map<std::string, std::vector<Dim>> inputShapes;
  // An initializer's data in the file (raw_data or external data) of fewer
  // bytes is copied; larger ones are views of the mapped file. Small weights
  // are the ones passes read value by value, and cost less embedded in an
  // artifact than referenced (docs/artifact.md).
  uint64_t copyBelowBytes = 4096;
};

// The ONNX opset range of the ai.onnx domain the importer accepts. Models of
// an older opset are accepted too when every node's op is defined there
// exactly as at opset 13 (the same schema version), since the converters
// implement the opset 13 forms.
inline constexpr int64_t kMinOnnxOpset = 13;
inline constexpr int64_t kMaxOnnxOpset = 21;

// What the ONNX file holds, for the compile report (counted before import).
struct OnnxModelStats {
  int64_t nodes = 0;             // nodes of the main graph
  int64_t nonConstantNodes = 0;  // those whose op type is not Constant
};

// `stats`, when given, is filled as soon as the file is parsed.
// `weightFiles`, when given, receives the mapped files the weights may view
// (the model and each external-data file), for an artifact writer to tell
// which weights are those files' bytes unchanged.
Expected<Graph> importOnnxFile(const std::string& path, const OnnxImportOptions& options,
                               OnnxModelStats* stats = nullptr, std::vector<MappedFile>* weightFiles = nullptr);

// Parses one `--input-shape` value, `NAME=DIMS` with DIMS separated by `x`
// (`input_ids=1x128`, `input_ids=batchx128`, `scalar=` for rank 0). Each dim
// is a non-negative integer or a symbol name [A-Za-z_][A-Za-z0-9_]*. The
// name is everything before the last `=`.
Expected<std::pair<std::string, std::vector<Dim>>> parseInputShapeOption(const std::string& text);

// The ONNX op types the importer converts (sorted), for docs and --help.
std::vector<std::string> supportedOnnxOps();

}  // namespace kiln
