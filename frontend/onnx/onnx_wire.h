// A scan of a serialized ONNX ModelProto at the protobuf wire level, so that
// importing a model never copies its weights: it finds where each graph
// initializer's raw_data lies in the file, and rebuilds the model's bytes
// without those payloads (each raw_data emptied, the enclosing length
// prefixes rewritten) for protobuf to parse. Only ModelProto.graph (field 7),
// GraphProto.initializer (field 5) and TensorProto.name / raw_data (fields 8
// and 9) are looked into; every other field is copied as it is, in its
// place, whatever its order, so protobuf sees the same model but for the
// emptied payloads. docs/onnx-frontend.md ("Weights stay in the file").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/status.h"

namespace kiln {

// Bytes [offset, offset + length) of the scanned buffer.
struct ByteSpan {
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct ScannedInitializer {
  std::string name;  // as the scan met it; empty when the payload came first
  // The raw_data payload (the last one, when the field repeats, as protobuf
  // keeps); none for a tensor with typed fields or external data.
  std::optional<ByteSpan> rawData;
};

struct ScannedModel {
  // The model with every graph initializer's raw_data emptied.
  std::string withoutPayloads;
  // The graph's initializers in the order protobuf parses them (a repeated
  // graph field merges, appending its initializers).
  std::vector<ScannedInitializer> initializers;
};

// Scans `bytes`, a serialized ModelProto. A malformed wire structure in the
// parts it walks (a varint or a length running past its message, an unknown
// wire type, unbalanced groups) is an error saying where; an initializer's
// error names it ("initializer 'w' (number 3): ...").
Expected<ScannedModel> scanOnnxModel(std::string_view bytes);

}  // namespace kiln
