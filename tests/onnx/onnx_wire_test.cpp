// The wire-level scan of a ModelProto (onnx_wire.h): models written byte by
// byte, with fields in unusual orders, packed and unpacked dims, unknown
// fields of every wire type and repeated graph fields, give the payloads'
// spans and a payload-free model that protobuf parses to the original minus
// the raw_data; malformed and truncated bytes give errors that say where and,
// inside an initializer, which one.
#include "frontend/onnx/onnx_wire.h"

#include <gtest/gtest.h>

#include <onnx/onnx_pb.h>

namespace kiln {
namespace {

std::string varint(uint64_t value) {
  std::string out;
  while (value >= 0x80) {
    out += static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  return out + static_cast<char>(value);
}
std::string tag(uint64_t field, uint32_t wireType) { return varint(field << 3 | wireType); }
std::string varintField(uint64_t field, uint64_t value) { return tag(field, 0) + varint(value); }
std::string bytesField(uint64_t field, const std::string& payload) {
  return tag(field, 2) + varint(payload.size()) + payload;
}

// ModelProto / GraphProto / TensorProto field numbers.
constexpr int kIrVersion = 1, kGraph = 7, kOpsetImport = 8;
constexpr int kNode = 1, kGraphName = 2, kInitializer = 5, kOutput = 12;
constexpr int kDims = 1, kDataType = 2, kName = 8, kRawData = 9;

std::string payloadOf(size_t bytes, char seed) {
  std::string p(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) p[i] = static_cast<char>(seed + i * 13);
  return p;
}

// A model whose graph holds a node, an output and two initializers: "w"
// with raw_data before its name and unpacked dims after it, "b" with packed
// dims; unknown fields of every wire type at each level.
struct Sample {
  std::string bytes, wPayload, bPayload;
  size_t graphStart = 0, graphEnd = 0;  // the graph field
};

Sample sampleModel() {
  Sample s;
  s.wPayload = payloadOf(24, 'a');  // f32[2, 3]
  s.bPayload = payloadOf(12, 'k');  // f32[3]
  const std::string unknowns = varintField(99, 300) + tag(98, 5) + "abcd" + tag(97, 1) + "12345678" +
                               bytesField(96, "opaque") + tag(95, 3) + varintField(1, 7) + tag(95, 4);
  const std::string w = bytesField(kRawData, s.wPayload) + bytesField(kName, "w") + varintField(kDims, 2) +
                        varintField(kDims, 3) + unknowns + varintField(kDataType, 1);
  const std::string b = varintField(kDataType, 1) + bytesField(kDims, varint(3)) + bytesField(kName, "b") +
                        bytesField(kRawData, s.bPayload);
  const std::string node = bytesField(1, "w") + bytesField(1, "b") + bytesField(2, "y") + bytesField(4, "Add");
  const std::string output = bytesField(1, "y");
  const std::string graph = bytesField(kNode, node) + bytesField(kInitializer, w) + unknowns +
                            bytesField(kGraphName, "g") + bytesField(kInitializer, b) + bytesField(kOutput, output);
  s.bytes = unknowns + varintField(kIrVersion, 8);
  s.graphStart = s.bytes.size();
  s.bytes += bytesField(kGraph, graph);
  s.graphEnd = s.bytes.size();
  s.bytes += bytesField(kOpsetImport, varintField(2, 17));
  return s;
}

TEST(OnnxWireScan, FindsEachRawDataAndParsesWithoutThem) {
  const Sample sample = sampleModel();
  Expected<ScannedModel> scan = scanOnnxModel(sample.bytes);
  ASSERT_TRUE(scan) << scan.status().message();
  ASSERT_EQ(scan->initializers.size(), 2u);
  EXPECT_EQ(scan->initializers[0].name, "w");
  EXPECT_EQ(scan->initializers[1].name, "b");
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_TRUE(scan->initializers[i].rawData);
    const ByteSpan span = *scan->initializers[i].rawData;
    EXPECT_EQ(sample.bytes.substr(span.offset, span.length), i == 0 ? sample.wPayload : sample.bPayload);
  }
  EXPECT_LT(scan->withoutPayloads.size(), sample.bytes.size() - 30);

  // Protobuf reads the payload-free bytes as the original model with its
  // initializers' raw_data emptied: every other field, unknown ones too.
  onnx::ModelProto original, stripped;
  ASSERT_TRUE(original.ParseFromString(sample.bytes));
  ASSERT_TRUE(stripped.ParseFromString(scan->withoutPayloads));
  EXPECT_EQ(original.graph().initializer(0).raw_data(), sample.wPayload);
  EXPECT_EQ(original.graph().initializer(1).dims_size(), 1);
  for (onnx::TensorProto& init : *original.mutable_graph()->mutable_initializer()) init.set_raw_data("");
  EXPECT_EQ(stripped.SerializeAsString(), original.SerializeAsString());
  EXPECT_EQ(stripped.graph().initializer(0).name(), "w");
  EXPECT_TRUE(stripped.graph().initializer(0).has_raw_data());
}

TEST(OnnxWireScan, RepeatedGraphFieldsMergeTheirInitializersInOrder) {
  // Protobuf merges a repeated message field, appending the repeated fields.
  auto graph = [](const std::string& name, const std::string& payload) {
    return bytesField(kGraph, bytesField(kInitializer, bytesField(kName, name) + bytesField(kRawData, payload)));
  };
  const std::string bytes = graph("first", "1234") + varintField(kIrVersion, 8) + graph("second", "56");
  Expected<ScannedModel> scan = scanOnnxModel(bytes);
  ASSERT_TRUE(scan) << scan.status().message();
  onnx::ModelProto parsed;
  ASSERT_TRUE(parsed.ParseFromString(scan->withoutPayloads));
  ASSERT_EQ(parsed.graph().initializer_size(), 2);
  ASSERT_EQ(scan->initializers.size(), 2u);
  EXPECT_EQ(parsed.graph().initializer(0).name(), scan->initializers[0].name);
  EXPECT_EQ(parsed.graph().initializer(1).name(), scan->initializers[1].name);
  EXPECT_EQ(scan->initializers[1].rawData->length, 2u);
}

TEST(OnnxWireScan, TypedAndExternalInitializersHaveNoSpan) {
  // float_data (field 4, packed) = [1.0]; external_data (13) entries and
  // data_location (14) EXTERNAL.
  const std::string typed = bytesField(kName, "t") + bytesField(4, std::string("\x00\x00\x80\x3f", 4));
  const std::string external = bytesField(kName, "e") +
                               bytesField(13, bytesField(1, "location") + bytesField(2, "weights.bin")) +
                               varintField(14, 1);
  const std::string bytes =
      bytesField(kGraph, bytesField(kInitializer, typed) + bytesField(kInitializer, external));
  Expected<ScannedModel> scan = scanOnnxModel(bytes);
  ASSERT_TRUE(scan) << scan.status().message();
  ASSERT_EQ(scan->initializers.size(), 2u);
  EXPECT_FALSE(scan->initializers[0].rawData);
  EXPECT_FALSE(scan->initializers[1].rawData);
  EXPECT_EQ(scan->initializers[1].name, "e");
  EXPECT_EQ(scan->withoutPayloads, bytes);  // nothing to elide: unchanged
}

std::string scanError(const std::string& bytes) {
  Expected<ScannedModel> scan = scanOnnxModel(bytes);
  return scan ? std::string("<scanned>") : scan.status().message();
}

TEST(OnnxWireScan, MalformedWireIsRefusedSayingWhere) {
  EXPECT_EQ(scanError(varintField(kIrVersion, 8) + "\x80"),
            "byte 2: the field tag (a varint) runs past the end of its message at byte 3 (truncated file?)");
  EXPECT_EQ(scanError(tag(kIrVersion, 0) + "\xff\xff"),
            "byte 1: the value of field 1 (a varint) runs past the end of its message at byte 3 (truncated file?)");
  EXPECT_EQ(scanError(tag(kGraph, 2) + "\x80"),
            "byte 1: the length of field 7 (a varint) runs past the end of its message at byte 2 (truncated file?)");
  EXPECT_EQ(scanError(tag(kIrVersion, 0) + std::string(10, '\xff') + "\x01"),
            "byte 1: the value of field 1 is a varint longer than 10 bytes");
  EXPECT_EQ(scanError(std::string("\x07", 1)), "byte 0: a field numbered 0, which protobuf does not allow");
  EXPECT_EQ(scanError(tag(3, 6)), "byte 0: field 3 has wire type 6, which protobuf does not define");
  EXPECT_EQ(scanError(tag(14, 4)), "byte 0: an end-group tag (field 14) outside any group");
  EXPECT_EQ(scanError(tag(5, 3) + varintField(1, 1) + tag(6, 4)),
            "byte 3: the group of field 5 ends with the end tag of field 6");
  EXPECT_EQ(scanError(tag(5, 3) + varintField(1, 1)),
            "byte 3: the field tag (a varint) runs past the end of its message at byte 3 (truncated file?)");
  EXPECT_EQ(scanError(tag(98, 5) + "ab"),
            "byte 0: field 98's 4-byte value runs past the end of its message at byte 4 (truncated file?)");
  EXPECT_EQ(scanError(bytesField(kOpsetImport, "xyz").substr(0, 4)),
            "byte 0: field 8 has 3 bytes from byte 2, past the end of its message at byte 4 (truncated file?)");
  // Inside the graph and inside an initializer, errors say so.
  EXPECT_EQ(scanError(bytesField(kGraph, tag(3, 7))),
            "the graph: byte 2: field 3 has wire type 7, which protobuf does not define");
  EXPECT_EQ(scanError(bytesField(kGraph, bytesField(kInitializer, bytesField(kName, "w") + tag(2, 6)))),
            "initializer 'w' (number 1 of the graph): byte 7: field 2 has wire type 6, which protobuf does not "
            "define");
}

TEST(OnnxWireScan, EveryCutIsRefusedAndACutInAnInitializerNamesIt) {
  const Sample sample = sampleModel();
  const size_t wAt = sample.bytes.find(sample.wPayload);
  const size_t bAt = sample.bytes.find(sample.bPayload);
  for (size_t length = 0; length < sample.bytes.size(); ++length) {
    const std::string cut = sample.bytes.substr(0, length);
    Expected<ScannedModel> scan = scanOnnxModel(cut);
    // A cut between the top-level fields leaves a shorter, valid model
    // (the importer then finds no graph or no opset); anywhere in the graph
    // field it is refused.
    if (length <= sample.graphStart || length >= sample.graphEnd) continue;
    ASSERT_FALSE(scan) << "a model cut to " << length << " bytes was scanned";
    const std::string& message = scan.status().message();
    EXPECT_NE(message.find("(truncated file?)"), std::string::npos) << message;
    // In w's raw_data (its name comes after it) or in b's (named before).
    if (length > wAt && length < wAt + sample.wPayload.size()) {
      EXPECT_EQ(message.rfind("the graph's initializer number 1: ", 0), 0u) << message;
    }
    if (length > bAt && length < bAt + sample.bPayload.size()) {
      EXPECT_EQ(message.rfind("initializer 'b' (number 2 of the graph): byte ", 0), 0u) << message;
      EXPECT_NE(message.find("field 9 (raw_data) has 12 bytes"), std::string::npos) << message;
    }
  }
}

}  // namespace
}  // namespace kiln
