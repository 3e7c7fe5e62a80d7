// The ONNX importer: models built here with the ONNX protobuf API import to
// the expected IR text; bad files, unsupported ops and opsets give clear
// errors; external data and TensorProto files round-trip; initializers'
// data in the model or external-data files are views of those files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include <onnx/onnx_pb.h>

#include "frontend/onnx/onnx_importer.h"
#include "frontend/onnx/tensor_proto.h"
#include "ir/text.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

// A scratch folder per test, removed afterwards.
class OnnxImporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("kiln_onnx_test_" + std::to_string(getpid()) + "_" +
                                        info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string save(const onnx::ModelProto& model, const std::string& name = "model.onnx") {
    std::ofstream out(path(name), std::ios::binary);
    model.SerializeToOstream(&out);
    return path(name);
  }

  void writeBytes(const std::string& name, const std::string& bytes) {
    std::ofstream out(path(name), std::ios::binary);
    out << bytes;
  }

  fs::path dir_;
};

// ---- Model construction helpers.

onnx::ModelProto newModel(int64_t opset = 17) {
  onnx::ModelProto model;
  model.set_ir_version(8);
  auto* op = model.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  model.mutable_graph()->set_name("test");
  return model;
}

// dims: digits are a dim_value, other text a dim_param, "" neither.
void addTensorInfo(onnx::ValueInfoProto* info, const std::string& name, int32_t elemType,
                   const std::vector<std::string>& dims) {
  info->set_name(name);
  auto* tensor = info->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(elemType);
  auto* shape = tensor->mutable_shape();
  for (const std::string& d : dims) {
    auto* dim = shape->add_dim();
    if (d.empty()) continue;
    if (std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      dim->set_dim_value(std::stoll(d));
    } else {
      dim->set_dim_param(d);
    }
  }
}

void addInput(onnx::ModelProto& m, const std::string& name, const std::vector<std::string>& dims,
              int32_t elemType = onnx::TensorProto::FLOAT) {
  addTensorInfo(m.mutable_graph()->add_input(), name, elemType, dims);
}

void addOutput(onnx::ModelProto& m, const std::string& name) {
  m.mutable_graph()->add_output()->set_name(name);
}

onnx::NodeProto* addNode(onnx::ModelProto& m, const std::string& opType,
                         const std::vector<std::string>& inputs,
                         const std::vector<std::string>& outputs, const std::string& name = "") {
  onnx::NodeProto* node = m.mutable_graph()->add_node();
  node->set_op_type(opType);
  node->set_name(name);
  for (const auto& i : inputs) node->add_input(i);
  for (const auto& o : outputs) node->add_output(o);
  return node;
}

void addIntAttr(onnx::NodeProto* node, const std::string& name, int64_t value) {
  auto* attr = node->add_attribute();
  attr->set_name(name);
  attr->set_type(onnx::AttributeProto::INT);
  attr->set_i(value);
}

onnx::TensorProto floatTensor(const std::string& name, const std::vector<int64_t>& dims,
                              const std::vector<float>& values) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t.add_dims(d);
  for (float v : values) t.add_float_data(v);
  return t;
}

std::string importText(const std::string& file, const OnnxImportOptions& options = {}) {
  Expected<Graph> graph = importOnnxFile(file, options);
  if (!graph) return "error: " + graph.status().message();
  return printGraph(*graph);
}

std::string importError(const std::string& file, const OnnxImportOptions& options = {}) {
  Expected<Graph> graph = importOnnxFile(file, options);
  if (graph) return "<imported without error>";
  return graph.status().message();
}

// x: f32[batch, 2] @ w (an initializer) -> relu -> y.
onnx::ModelProto matmulReluModel() {
  onnx::ModelProto m = newModel();
  addInput(m, "x", {"batch", "2"});
  *m.mutable_graph()->add_initializer() = floatTensor("w", {2, 2}, {1, -1, 2, 0.5f});
  addNode(m, "MatMul", {"x", "w"}, {"xw"}, "MatMul_0");
  addNode(m, "Relu", {"xw"}, {"y"});  // unnamed: location "Relu_1"
  addOutput(m, "y");
  return m;
}

TEST_F(OnnxImporterTest, SmallModelImportsToExpectedText) {
  EXPECT_EQ(importText(save(matmulReluModel())),
            "graph @main(%x: f32[batch, 2]) -> (%y: f32[batch, 2]) {\n"
            "  weight @w : f32[2, 2] = [1.0, -1.0, 2.0, 0.5]\n"
            "  %0 = matmul %x, @w : f32[batch, 2] loc(\"MatMul_0\")\n"
            "  %y = relu %0 : f32[batch, 2] loc(\"Relu_1\")\n"
            "  return %y\n"
            "}\n");
}

TEST_F(OnnxImporterTest, InputShapeSpecialisesSymbols) {
  onnx::ModelProto m = matmulReluModel();
  addInput(m, "z", {"batch", "", "3"});  // a dim with neither value nor param
  addNode(m, "Relu", {"z"}, {"zr"}, "ReluZ");
  addOutput(m, "zr");
  const std::string file = save(m);

  Expected<Graph> dynamic = importOnnxFile(file, {});
  ASSERT_TRUE(dynamic) << dynamic.status().message();
  EXPECT_EQ(dynamic->value(dynamic->inputs()[1]).type.str(), "f32[batch, z_d1, 3]");

  // A constant binds the symbol in every input that uses it.
  OnnxImportOptions options;
  options.inputShapes["x"] = {Dim(4), Dim(2)};
  Expected<Graph> fixed = importOnnxFile(file, options);
  ASSERT_TRUE(fixed) << fixed.status().message();
  EXPECT_EQ(fixed->value(fixed->inputs()[0]).type.str(), "f32[4, 2]");
  EXPECT_EQ(fixed->value(fixed->inputs()[1]).type.str(), "f32[4, z_d1, 3]");
  EXPECT_EQ(fixed->value(fixed->outputs()[0]).type.str(), "f32[4, 2]");

  // A symbol renames it.
  options.inputShapes["x"] = {Dim::symbol("n"), Dim(2)};
  Expected<Graph> renamed = importOnnxFile(file, options);
  ASSERT_TRUE(renamed) << renamed.status().message();
  EXPECT_EQ(renamed->value(renamed->inputs()[1]).type.str(), "f32[n, z_d1, 3]");
}

TEST_F(OnnxImporterTest, InputShapeErrors) {
  const std::string file = save(matmulReluModel());
  OnnxImportOptions options;
  options.inputShapes["x"] = {Dim(4)};
  EXPECT_NE(importError(file, options).find("--input-shape x=4 has rank 1, the model's input is [batch, 2] (rank 2)"),
            std::string::npos)
      << importError(file, options);
  options.inputShapes["x"] = {Dim(4), Dim(3)};
  EXPECT_NE(importError(file, options).find("--input-shape x=4x3: dim 1 is fixed at 2"), std::string::npos)
      << importError(file, options);
  options.inputShapes.clear();
  options.inputShapes["nope"] = {Dim(1)};
  EXPECT_NE(importError(file, options).find("'nope', which is not a graph input (inputs: x)"),
            std::string::npos)
      << importError(file, options);
}

TEST_F(OnnxImporterTest, DimParamsAreSanitisedAndKeptApart) {
  onnx::ModelProto m = newModel();
  addInput(m, "a", {"seq-len", "seq_len", "2d"});
  addNode(m, "Relu", {"a"}, {"b"});
  addOutput(m, "b");
  Expected<Graph> g = importOnnxFile(save(m), {});
  ASSERT_TRUE(g) << g.status().message();
  EXPECT_EQ(g->value(g->inputs()[0]).type.str(), "f32[seq_len, seq_len_1, dim_2d]");
}

TEST_F(OnnxImporterTest, ParseInputShapeOption) {
  auto a = parseInputShapeOption("input_ids=1x128");
  ASSERT_TRUE(a) << a.status().message();
  EXPECT_EQ(a->first, "input_ids");
  EXPECT_EQ(shapeStr(a->second), "[1, 128]");
  auto b = parseInputShapeOption("past=batchx2x0x16");
  ASSERT_TRUE(b) << b.status().message();
  EXPECT_EQ(shapeStr(b->second), "[batch, 2, 0, 16]");
  auto c = parseInputShapeOption("t=max_x,4");  // commas when a symbol has an x
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_EQ(shapeStr(c->second), "[max_x, 4]");
  auto scalar = parseInputShapeOption("s=");
  ASSERT_TRUE(scalar);
  EXPECT_TRUE(scalar->second.empty());
  EXPECT_FALSE(parseInputShapeOption("noequals"));
  EXPECT_FALSE(parseInputShapeOption("x=1x-2"));
  EXPECT_FALSE(parseInputShapeOption("x=1xx2"));
}

TEST_F(OnnxImporterTest, ConstantsFoldAndOutputsGetTheirOwnRegisters) {
  onnx::ModelProto m = newModel();
  addInput(m, "x", {"2", "3"});
  addNode(m, "Shape", {"x"}, {"s"}, "Shape0");          // static: folds to a weight
  onnx::NodeProto* c = addNode(m, "Constant", {}, {"c"}, "C");
  auto* value = c->add_attribute();
  value->set_name("value_ints");
  value->set_type(onnx::AttributeProto::INTS);
  value->add_ints(6);
  addNode(m, "Reshape", {"x", "c"}, {"r"}, "Reshape0");
  addNode(m, "Identity", {"r"}, {"alias"}, "Id0");      // an alias of r
  addOutput(m, "r");
  addOutput(m, "alias");  // the same register as r: gets an identity
  addOutput(m, "x");      // a graph input: gets an identity
  addOutput(m, "s");      // a folded weight: gets an identity
  EXPECT_EQ(importText(save(m)),
            "graph @main(%x: f32[2, 3]) -> (%r: f32[6], %alias: f32[6], %x_1: f32[2, 3], "
            "%s: i64[2]) {\n"
            "  weight @s_value : i64[2] = [2, 3]\n"
            "  weight @c : i64[1] = [6]\n"
            "  %r = reshape %x, @c {allowzero = false} : f32[6] loc(\"Reshape0\")\n"
            "  %alias = identity %r : f32[6] loc(\"output alias\")\n"
            "  %x_1 = identity %x : f32[2, 3] loc(\"output x\")\n"
            "  %s = identity @s_value : i64[2] loc(\"output s\")\n"
            "  return %r, %alias, %x_1, %s\n"
            "}\n");
}

TEST_F(OnnxImporterTest, DropoutIsTheInputAndItsMaskAllTrue) {
  onnx::ModelProto m = newModel();
  addInput(m, "x", {"n"});
  addNode(m, "Dropout", {"x"}, {"y", "mask"}, "Drop");
  addOutput(m, "y");
  addOutput(m, "mask");
  // The mask's dims are known only at run time (a shape value is not
  // tracked symbolically).
  EXPECT_EQ(importText(save(m)),
            "graph @main(%x: f32[n]) -> (%y: f32[n], %mask: bool[?]) {\n"
            "  %0 = shape %x : i64[1] loc(\"Drop\")\n"
            "  %mask = constant_of_shape %0 {dtype = \"bool\", value = 1.0} : bool[?] "
            "loc(\"Drop\")\n"
            "  %y = identity %x : f32[n] loc(\"output y\")\n"
            "  return %y, %mask\n"
            "}\n");
}

TEST_F(OnnxImporterTest, AttributesConvertToKilnAttributes) {
  onnx::ModelProto m = newModel();
  addInput(m, "a", {"3", "2"});
  addInput(m, "b", {"3", "4"});
  onnx::NodeProto* gemm = addNode(m, "Gemm", {"a", "b"}, {"g"}, "G");
  addIntAttr(gemm, "transA", 1);
  auto* alpha = gemm->add_attribute();
  alpha->set_name("alpha");
  alpha->set_type(onnx::AttributeProto::FLOAT);
  alpha->set_f(0.1f);  // not exact in float: printed as its shortest form
  onnx::NodeProto* cast = addNode(m, "Cast", {"g"}, {"h"}, "K");
  addIntAttr(cast, "to", onnx::TensorProto::FLOAT16);
  addNode(m, "Transpose", {"h"}, {"t"}, "T");  // no perm: reversed dims
  addOutput(m, "t");
  EXPECT_EQ(importText(save(m)),
            "graph @main(%a: f32[3, 2], %b: f32[3, 4]) -> (%t: f16[4, 2]) {\n"
            "  %0 = gemm %a, %b {alpha = 0.1, beta = 1.0, trans_a = true, trans_b = false} "
            ": f32[2, 4] loc(\"G\")\n"
            "  %1 = cast %0 {to = \"f16\"} : f16[2, 4] loc(\"K\")\n"
            "  %t = transpose %1 {perm = [1, 0]} : f16[4, 2] loc(\"T\")\n"
            "  return %t\n"
            "}\n");
}

// ---- Errors.

TEST_F(OnnxImporterTest, MissingFile) {
  const std::string message = importError(path("absent.onnx"));
  EXPECT_NE(message.find("cannot open '" + path("absent.onnx") + "'"), std::string::npos)
      << message;
  EXPECT_NE(message.find("No such file"), std::string::npos) << message;
}

TEST_F(OnnxImporterTest, NotAnOnnxFile) {
  writeBytes("text.onnx", "this is a text file, not a protobuf model\n");
  EXPECT_NE(importError(path("text.onnx")).find("is not a valid ONNX model"), std::string::npos)
      << importError(path("text.onnx"));
  writeBytes("empty.onnx", "");
  EXPECT_NE(importError(path("empty.onnx")).find("is empty"), std::string::npos);
  // Bytes that parse as some protobuf but hold no model.
  writeBytes("other.onnx", std::string("\x08\x01", 2));
  EXPECT_NE(importError(path("other.onnx")).find("not an ONNX model"), std::string::npos)
      << importError(path("other.onnx"));
}

TEST_F(OnnxImporterTest, EveryTruncationIsRefused) {
  std::string bytes;
  matmulReluModel().SerializeToString(&bytes);
  ASSERT_TRUE(importOnnxFile(save(matmulReluModel()), {}));
  for (size_t length = 1; length < bytes.size(); ++length) {
    writeBytes("cut.onnx", bytes.substr(0, length));
    Expected<Graph> g = importOnnxFile(path("cut.onnx"), {});
    EXPECT_FALSE(g) << "a model cut to " << length << " of " << bytes.size()
                    << " bytes was accepted";
  }
  writeBytes("cut.onnx", bytes.substr(0, bytes.size() / 2));
  const std::string message = importError(path("cut.onnx"));
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

// Corrupting any one byte may give an error or (rarely) another valid
// model, but never a crash.
TEST_F(OnnxImporterTest, CorruptBytesNeverCrash) {
  std::string bytes;
  matmulReluModel().SerializeToString(&bytes);
  int refused = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (unsigned char flip : {0x01, 0x80, 0xff}) {
      std::string corrupt = bytes;
      corrupt[i] = static_cast<char>(corrupt[i] ^ flip);
      writeBytes("corrupt.onnx", corrupt);
      refused += importOnnxFile(path("corrupt.onnx"), {}).isOk() ? 0 : 1;
    }
  }
  EXPECT_GT(refused, 0);
}

TEST_F(OnnxImporterTest, UndefinedInputNamesTheNode) {
  onnx::ModelProto m = matmulReluModel();
  m.mutable_graph()->clear_initializer();  // what a lost initializer looks like
  const std::string message = importError(save(m));
  EXPECT_NE(message.find("node 'MatMul_0' (MatMul): input 'w' is not a graph input, an "
                         "initializer or an earlier node's output"),
            std::string::npos)
      << message;
}

TEST_F(OnnxImporterTest, UnsupportedOpsAreListedTogether) {
  onnx::ModelProto m = newModel();
  addInput(m, "x", {"1", "3", "8", "8"});
  addNode(m, "MaxPool", {"x"}, {"a"}, "pool_a");
  addNode(m, "Relu", {"a"}, {"b"}, "relu_b");
  addNode(m, "Resize", {"b"}, {"c"});  // unnamed: Resize_2
  onnx::NodeProto* custom = addNode(m, "FusedMatMul", {"c", "c"}, {"d"}, "fused");
  custom->set_domain("com.microsoft");
  addOutput(m, "d");
  const std::string message = importError(save(m));
  EXPECT_NE(message.find("unsupported ONNX ops in 3 nodes:\n"
                         "  node 'pool_a': MaxPool\n"
                         "  node 'Resize_2': Resize\n"
                         "  node 'fused': FusedMatMul (domain 'com.microsoft')"),
            std::string::npos)
      << message;
}

TEST_F(OnnxImporterTest, UnsupportedOpsetAndDtype) {
  onnx::ModelProto old = matmulReluModel();
  old.mutable_opset_import(0)->set_version(5);
  std::string message = importError(save(old, "old.onnx"));
  EXPECT_NE(message.find("unsupported opset: the model uses ai.onnx opset 5, where these ops differ from "
                         "opset 13: MatMul (version 1, kiln implements version 13), Relu (version 1, kiln "
                         "implements version 13)"),
            std::string::npos)
      << message;

  onnx::ModelProto newer = matmulReluModel();
  newer.mutable_opset_import(0)->set_version(22);
  message = importError(save(newer, "newer.onnx"));
  EXPECT_NE(message.find("unsupported opset: the model uses ai.onnx opset 22; kiln imports opsets 13 to 21"),
            std::string::npos)
      << message;

  onnx::ModelProto wide = newModel();
  addInput(wide, "u", {"2"}, onnx::TensorProto::UINT16);
  addNode(wide, "Relu", {"u"}, {"v"});
  addOutput(wide, "v");
  message = importError(save(wide, "wide.onnx"));
  EXPECT_NE(message.find("graph input 'u': unsupported dtype UINT16"), std::string::npos)
      << message;
}

TEST_F(OnnxImporterTest, NodeErrorsNameNodeOpAndShapes) {
  onnx::ModelProto m = newModel();
  addInput(m, "a", {"2", "3"});
  addInput(m, "b", {"4", "5"});
  addNode(m, "MatMul", {"a", "b"}, {"c"}, "mm");
  addOutput(m, "c");
  const std::string message = importError(save(m));
  EXPECT_NE(message.find("node 'mm' (MatMul, inputs f32[2, 3], f32[4, 5]): matmul("),
            std::string::npos)
      << message;
}

void addIntsAttr(onnx::NodeProto* node, const std::string& name, const std::vector<int64_t>& values) {
  auto* attr = node->add_attribute();
  attr->set_name(name);
  attr->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) attr->add_ints(v);
}

// y = Conv(x, w, b) on a 2-channel 4x4 image with 2x2 kernels at stride 2:
// a patch embedding, which the importer makes a matmul over the patches.
onnx::ModelProto patchConvModel(const std::vector<int64_t>& pads) {
  onnx::ModelProto m = newModel();
  std::vector<float> x(32), w(24), b = {0.5f, -1, 2};
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) - 3;
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.25f * static_cast<float>(i % 5) - 0.5f;
  *m.mutable_graph()->add_initializer() = floatTensor("x", {1, 2, 4, 4}, x);
  *m.mutable_graph()->add_initializer() = floatTensor("w", {3, 2, 2, 2}, w);
  *m.mutable_graph()->add_initializer() = floatTensor("b", {3}, b);
  onnx::NodeProto* conv = addNode(m, "Conv", {"x", "w", "b"}, {"y"}, "patches");
  addIntsAttr(conv, "kernel_shape", {2, 2});
  addIntsAttr(conv, "strides", {2, 2});
  addIntsAttr(conv, "pads", pads);
  addOutput(m, "y");
  return m;
}

TEST_F(OnnxImporterTest, PatchEmbeddingConvComputesTheConvolution) {
  const onnx::ModelProto m = patchConvModel({0, 0, 0, 0});
  Expected<Graph> graph = importOnnxFile(save(m), {});
  ASSERT_TRUE(graph) << graph.status().message();
  // Every operand is constant, so the import folds y to a weight.
  const Op& out = graph->ops().back();
  ASSERT_TRUE(out.is(OpKind::Identity));
  const Value& y = graph->value(out.operands[0]);
  ASSERT_TRUE(y.data);
  ASSERT_EQ(y.data->shape(), (std::vector<int64_t>{1, 3, 2, 2}));
  auto at = [&](const std::string& name, size_t i) {
    for (const auto& t : m.graph().initializer())
      if (t.name() == name) return t.float_data(static_cast<int>(i));
    return 0.0f;
  };
  for (int o = 0; o < 3; ++o)
    for (int r = 0; r < 2; ++r)
      for (int c = 0; c < 2; ++c) {
        float want = at("b", o);
        for (int ch = 0; ch < 2; ++ch)
          for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 2; ++j)
              want += at("x", ch * 16 + (2 * r + i) * 4 + 2 * c + j) * at("w", ((o * 2 + ch) * 2 + i) * 2 + j);
        EXPECT_FLOAT_EQ(y.data->data<float>()[(o * 2 + r) * 2 + c], want) << o << r << c;
      }
}

TEST_F(OnnxImporterTest, ConvOtherThanAPatchEmbeddingIsRefused) {
  const std::string message = importError(save(patchConvModel({1, 1, 1, 1})));
  EXPECT_NE(message.find("node 'patches' (Conv, inputs f32[1, 2, 4, 4], f32[3, 2, 2, 2], f32[3]): "
                         "unsupported Conv: kiln takes a patch embedding only"),
            std::string::npos)
      << message;
}

// y = Loop(3, true, x, []) whose body adds the iteration number to the
// carried x, appends it to a carried sequence and scans it out; z concatenates
// the final sequence. With a trip count known at import the loop unrolls.
// trips_from_shape: the count is dim `shapeAxis` of an input w [batch, 3].
onnx::ModelProto loopModel(const std::string& tripsName, int64_t shapeAxis = 1) {
  onnx::ModelProto m = newModel();
  addInput(m, "x", {"2"});
  if (tripsName == "trips_input") addInput(m, "trips_input", {}, onnx::TensorProto::INT64);
  onnx::TensorProto trips;
  trips.set_name("trips");
  trips.set_data_type(onnx::TensorProto::INT64);
  trips.add_int64_data(3);
  *m.mutable_graph()->add_initializer() = trips;
  if (tripsName == "trips_from_shape") {
    // dim `axis` of w [batch, 3]: 3 when the axis is 1, batch when it is 0.
    addInput(m, "w", {"batch", "3"});
    onnx::TensorProto axis;
    axis.set_name("axis");
    axis.set_data_type(onnx::TensorProto::INT64);
    axis.add_int64_data(shapeAxis);
    *m.mutable_graph()->add_initializer() = axis;
    addNode(m, "Shape", {"w"}, {"w_shape"});
    addNode(m, "Gather", {"w_shape", "axis"}, {"trips_from_shape"});
  }
  addNode(m, "SequenceEmpty", {}, {"empty"});
  onnx::NodeProto* loop = addNode(m, "Loop", {tripsName, "", "x", "empty"}, {"last", "parts", "scanned"}, "loop");
  auto* body = loop->add_attribute();
  body->set_name("body");
  body->set_type(onnx::AttributeProto::GRAPH);
  onnx::GraphProto* g = body->mutable_g();
  for (const char* name : {"i", "cond", "carried", "sequence"}) g->add_input()->set_name(name);
  auto bodyNode = [&](const std::string& op, std::vector<std::string> in, std::vector<std::string> out) {
    onnx::NodeProto* n = g->add_node();
    n->set_op_type(op);
    for (const auto& i : in) n->add_input(i);
    for (const auto& o : out) n->add_output(o);
    return n;
  };
  addIntAttr(bodyNode("Cast", {"i"}, {"i_f32"}), "to", onnx::TensorProto::FLOAT);
  bodyNode("Add", {"carried", "i_f32"}, {"next"});
  bodyNode("SequenceInsert", {"sequence", "next"}, {"grown"});
  bodyNode("Identity", {"cond"}, {"cond_out"});
  bodyNode("Identity", {"next"}, {"scan"});
  for (const char* name : {"cond_out", "next", "grown", "scan"}) g->add_output()->set_name(name);
  addIntAttr(addNode(m, "ConcatFromSequence", {"parts"}, {"z"}, "join"), "axis", 0);
  addOutput(m, "last");
  addOutput(m, "z");
  addOutput(m, "scanned");
  return m;
}

TEST_F(OnnxImporterTest, LoopWithAKnownTripCountUnrolls) {
  Expected<Graph> graph = importOnnxFile(save(loopModel("trips")), {});
  ASSERT_TRUE(graph) << graph.status().message();
  const std::string text = printGraph(*graph);
  EXPECT_NE(text.find("-> (%last: f32[2], %z: f32[6], %scanned: f32[3, 2])"), std::string::npos) << text;
  EXPECT_NE(text.find("loc(\"loop/iteration 2/"), std::string::npos) << text;
  EXPECT_EQ(text.find("iteration 3"), std::string::npos) << text;

  // With x constant everything folds: the values show each iteration's add.
  onnx::ModelProto constant = loopModel("trips");
  constant.mutable_graph()->mutable_input()->DeleteSubrange(0, 1);
  *constant.mutable_graph()->add_initializer() = floatTensor("x", {2}, {10, 20});
  Expected<Graph> folded = importOnnxFile(save(constant, "folded.onnx"), {});
  ASSERT_TRUE(folded) << folded.status().message();
  const Value& z = folded->value(folded->ops()[1].operands[0]);  // the identity of output z
  ASSERT_TRUE(z.data);
  EXPECT_EQ(std::vector<float>(z.data->data<float>(), z.data->data<float>() + 6),
            (std::vector<float>{10, 20, 11, 21, 13, 23}));
}

// repeat_interleave's export loops over a static dim of a tensor whose other
// dims are symbolic: the count is known through the dims, so it unrolls.
TEST_F(OnnxImporterTest, LoopOverAStaticDimOfASymbolicShapeUnrolls) {
  Expected<Graph> graph = importOnnxFile(save(loopModel("trips_from_shape")), {});
  ASSERT_TRUE(graph) << graph.status().message();
  const std::string text = printGraph(*graph);
  EXPECT_NE(text.find("%scanned: f32[3, 2])"), std::string::npos) << text;
  EXPECT_NE(text.find("loc(\"loop/iteration 2/"), std::string::npos) << text;

  const std::string message = importError(save(loopModel("trips_from_shape", 0), "batch_trips.onnx"));
  EXPECT_NE(message.find("unsupported Loop: its trip count is not known at import time"), std::string::npos)
      << message;
}

TEST_F(OnnxImporterTest, LoopWithATripCountKnownOnlyAtRunTimeIsRefused) {
  const std::string message = importError(save(loopModel("trips_input")));
  EXPECT_NE(message.find("node 'loop' (Loop, inputs i64[], _, f32[2], _): unsupported Loop: its trip count is not "
                         "known at import time"),
            std::string::npos)
      << message;
}

TEST_F(OnnxImporterTest, UnknownAttributeIsRefused) {
  onnx::ModelProto m = matmulReluModel();
  addIntAttr(m.mutable_graph()->mutable_node(1), "frobnicate", 1);
  const std::string message = importError(save(m));
  EXPECT_NE(message.find("node 'Relu_1' (Relu, inputs f32[batch, 2]): unsupported attribute "
                         "'frobnicate'"),
            std::string::npos)
      << message;
}

// ---- External data and TensorProto files.

onnx::TensorProto externalTensor(const std::string& name, const std::vector<int64_t>& dims,
                                 const std::string& location, int64_t offset, int64_t length) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t.add_dims(d);
  t.set_data_location(onnx::TensorProto::EXTERNAL);
  auto add = [&](const std::string& key, const std::string& value) {
    auto* entry = t.add_external_data();
    entry->set_key(key);
    entry->set_value(value);
  };
  add("location", location);
  add("offset", std::to_string(offset));
  add("length", std::to_string(length));
  return t;
}

TEST_F(OnnxImporterTest, ExternalDataRoundTrip) {
  // 8 bytes of padding, then the 4 floats of w.
  const float values[4] = {1.5f, -2.0f, 0.25f, 8.0f};
  std::string blob(8, '\x7f');
  blob.append(reinterpret_cast<const char*>(values), sizeof(values));
  fs::create_directories(dir_ / "data");
  writeBytes("data/weights.bin", blob);

  onnx::ModelProto m = matmulReluModel();
  *m.mutable_graph()->mutable_initializer(0) =
      externalTensor("w", {2, 2}, "data/weights.bin", 8, 16);
  Expected<Graph> g = importOnnxFile(save(m), {});
  ASSERT_TRUE(g) << g.status().message();
  std::optional<ValueId> w = g->find("w");
  ASSERT_TRUE(w);
  const Tensor& data = *g->value(*w).data;
  ASSERT_EQ(data.numElements(), 4);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(data.data<float>()[i], values[i]);

  // The file is shorter than offset + length.
  *m.mutable_graph()->mutable_initializer(0) =
      externalTensor("w", {2, 2}, "data/weights.bin", 16, 16);
  std::string message = importError(save(m));
  EXPECT_NE(message.find("initializer 'w': tensor 'w': external data file"), std::string::npos)
      << message;
  EXPECT_NE(message.find("has 24 bytes; bytes [16, 32) are needed"), std::string::npos) << message;

  // A missing file, and a location outside the model's folder.
  *m.mutable_graph()->mutable_initializer(0) = externalTensor("w", {2, 2}, "nope.bin", 0, 16);
  message = importError(save(m));
  EXPECT_NE(message.find("cannot open external data file"), std::string::npos) << message;
  *m.mutable_graph()->mutable_initializer(0) =
      externalTensor("w", {2, 2}, "../weights.bin", 0, 16);
  message = importError(save(m));
  EXPECT_NE(message.find("leaves the model's folder"), std::string::npos) << message;
}

TEST_F(OnnxImporterTest, TensorProtoFileRoundTrip) {
  Tensor f16 = Tensor::allocate(DType::F16, {2});
  f16.data<Half>()[0] = Half{floatToHalf(1.5f)};
  f16.data<Half>()[1] = Half{floatToHalf(-3.0f)};
  ASSERT_TRUE(writeTensorProtoFile(f16, "h", path("h.pb")));
  Expected<Tensor> back = readTensorProtoFile(path("h.pb"));
  ASSERT_TRUE(back) << back.status().message();
  EXPECT_EQ(back->dtype(), DType::F16);
  EXPECT_EQ(back->shape(), (std::vector<int64_t>{2}));
  EXPECT_EQ(back->elementAsDouble(0), 1.5);
  EXPECT_EQ(back->elementAsDouble(1), -3.0);

  Tensor flags = Tensor::allocate(DType::Bool, {3});
  flags.data<bool>()[1] = true;
  ASSERT_TRUE(writeTensorProtoFile(flags, "b", path("b.pb")));
  Expected<Tensor> flagsBack = readTensorProtoFile(path("b.pb"));
  ASSERT_TRUE(flagsBack);
  EXPECT_EQ(flagsBack->toInts(), (std::vector<int64_t>{0, 1, 0}));

  EXPECT_NE(readTensorProtoFile(path("none.pb")).status().message().find("cannot open"),
            std::string::npos);
}

TEST_F(OnnxImporterTest, TypedFieldsAndSizeChecks) {
  onnx::TensorProto halves;
  halves.set_data_type(onnx::TensorProto::FLOAT16);
  halves.add_dims(2);
  halves.add_int32_data(0x3c00);  // 1.0
  halves.add_int32_data(0xc000);  // -2.0
  Expected<Tensor> h = tensorFromProto(halves, ".");
  ASSERT_TRUE(h) << h.status().message();
  EXPECT_EQ(h->elementAsDouble(0), 1.0);
  EXPECT_EQ(h->elementAsDouble(1), -2.0);

  onnx::TensorProto longs;
  longs.set_data_type(onnx::TensorProto::INT64);
  longs.add_int64_data(int64_t{1} << 60);
  Expected<Tensor> l = tensorFromProto(longs, ".");  // no dims: a scalar
  ASSERT_TRUE(l);
  EXPECT_EQ(l->rank(), 0u);
  EXPECT_EQ(l->elementAsInt(0), int64_t{1} << 60);

  onnx::TensorProto shortRaw = floatTensor("s", {3}, {});
  shortRaw.set_raw_data(std::string(8, '\0'));
  EXPECT_NE(tensorFromProto(shortRaw, ".").status().message().find(
                "tensor 's': raw_data has 8 bytes, its dims [3] x f32 need 12"),
            std::string::npos);
  // Huge dims with little data are refused before anything is allocated.
  onnx::TensorProto huge = floatTensor("big", {int64_t{1} << 40, 16}, {});
  huge.set_raw_data(std::string(4, '\0'));
  EXPECT_NE(tensorFromProto(huge, ".").status().message().find("raw_data has 4 bytes"),
            std::string::npos);
  onnx::TensorProto overflow = floatTensor("o", {int64_t{1} << 40, int64_t{1} << 40}, {});
  EXPECT_NE(tensorFromProto(overflow, ".").status().message().find("too large"),
            std::string::npos);
  EXPECT_NE(tensorFromProto(floatTensor("f", {2}, {1.0f}), ".").status().message().find(
                "float_data has 1 elements, its dims [2] need 2"),
            std::string::npos);
}

}  // namespace
}  // namespace kiln

namespace kiln {
namespace {

// ---- Weights stay in the file: views of the mapped model or external data.

// A raw_data initializer of `values`.
onnx::TensorProto rawTensor(const std::string& name, const std::vector<int64_t>& dims,
                            const std::vector<float>& values) {
  onnx::TensorProto t = floatTensor(name, dims, {});
  t.set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
  return t;
}

std::vector<float> ramp(size_t n, float scale) {
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) values[i] = scale * static_cast<float>(i % 97) - 3;
  return values;
}

// Where `tensor`'s data lie in `file`'s mapping, if they do.
std::optional<size_t> offsetIn(const MappedFile& file, const Tensor& tensor) {
  const auto at = reinterpret_cast<uintptr_t>(tensor.data()), base = reinterpret_cast<uintptr_t>(file.bytes().data());
  if (at < base || at - base + tensor.byteSize() > file.size()) return std::nullopt;
  return at - base;
}

TEST_F(OnnxImporterTest, LargeInitializersViewTheMappedModel) {
  // x @ big (2 x 1024 floats: 8 KiB) + small (1024 floats: 4 KiB) ; flags
  // (bool raw bytes 0 and 2) is another output.
  onnx::ModelProto m = newModel();
  addInput(m, "x", {"1", "2"});
  const std::vector<float> big = ramp(2048, 0.25f), small = ramp(1024, -0.5f);
  *m.mutable_graph()->add_initializer() = rawTensor("big", {2, 1024}, big);
  *m.mutable_graph()->add_initializer() = rawTensor("small", {1024}, small);
  onnx::TensorProto flags;
  flags.set_name("flags");
  flags.set_data_type(onnx::TensorProto::BOOL);
  flags.add_dims(2);
  flags.set_raw_data(std::string("\x00\x02", 2));
  *m.mutable_graph()->add_initializer() = flags;
  addNode(m, "MatMul", {"x", "big"}, {"xw"});
  addNode(m, "Add", {"xw", "small"}, {"y"});
  addNode(m, "Identity", {"flags"}, {"f"});
  addOutput(m, "y");
  addOutput(m, "f");
  const std::string file = save(m);
  std::string serialized;
  m.SerializeToString(&serialized);

  for (uint64_t copyBelow : {uint64_t{4096}, uint64_t{8193}, uint64_t{0}}) {
    OnnxImportOptions options;
    options.copyBelowBytes = copyBelow;
    std::vector<MappedFile> files;
    Expected<Graph> g = importOnnxFile(file, options, nullptr, &files);
    ASSERT_TRUE(g) << g.status().message();
    ASSERT_EQ(files.size(), 1u);
    EXPECT_EQ(files[0].path(), fs::absolute(file).lexically_normal().string());
    EXPECT_EQ(files[0].size(), serialized.size());
    EXPECT_EQ(files[0].bytes(), serialized);

    const Tensor& bigData = *g->value(*g->find("big")).data;
    const Tensor& smallData = *g->value(*g->find("small")).data;
    const Tensor& flagData = *g->value(*g->find("flags")).data;
    EXPECT_EQ(std::memcmp(bigData.data(), big.data(), 8192), 0);
    EXPECT_EQ(std::memcmp(smallData.data(), small.data(), 4096), 0);
    // Each at least copyBelow bytes is a view at its raw_data's place.
    const std::string bigBytes(reinterpret_cast<const char*>(big.data()), 8192);
    const std::string smallBytes(reinterpret_cast<const char*>(small.data()), 4096);
    EXPECT_EQ(offsetIn(files[0], bigData),
              copyBelow <= 8192 ? std::optional<size_t>(serialized.find(bigBytes)) : std::nullopt)
        << copyBelow;
    EXPECT_EQ(offsetIn(files[0], smallData),
              copyBelow <= 4096 ? std::optional<size_t>(serialized.find(smallBytes)) : std::nullopt)
        << copyBelow;
    // A bool is copied whatever its size, its bytes made 0 or 1.
    EXPECT_FALSE(offsetIn(files[0], flagData));
    EXPECT_EQ(flagData.toInts(), (std::vector<int64_t>{0, 1}));
  }
}

TEST_F(OnnxImporterTest, ACutInRawDataNamesTheInitializer) {
  onnx::ModelProto m = matmulReluModel();
  *m.mutable_graph()->mutable_initializer(0) = rawTensor("w", {2, 2}, {1, -1, 2, 0.5f});
  std::string bytes;
  m.SerializeToString(&bytes);
  const size_t payload = bytes.find(m.graph().initializer(0).raw_data());
  writeBytes("cut.onnx", bytes.substr(0, payload + 9));
  const std::string message = importError(path("cut.onnx"));
  EXPECT_EQ(message.rfind(cat("'", path("cut.onnx"), "' is not a valid ONNX model: initializer 'w' (number 1 of the "
                              "graph): byte "),
                          0),
            0u)
      << message;
  EXPECT_NE(message.find(cat("field 9 (raw_data) has 16 bytes from byte ", payload,
                             ", past the end of its message at byte ", payload + 9, " (truncated file?)")),
            std::string::npos)
      << message;
}

TEST_F(OnnxImporterTest, ExternalDataIsViewedInItsFile) {
  // Two tensors in one external file (mapped once), one in another.
  const std::vector<float> first = ramp(1024, 0.5f), second = ramp(1024, 2.0f), third = ramp(4, 1.0f);
  std::string blob(64, '\x7f');
  blob.append(reinterpret_cast<const char*>(first.data()), 4096);
  blob.append(reinterpret_cast<const char*>(second.data()), 4096);
  fs::create_directories(dir_ / "data");
  writeBytes("data/weights.bin", blob);
  writeBytes("other.bin", std::string(reinterpret_cast<const char*>(third.data()), 16));

  onnx::ModelProto m = newModel();
  addInput(m, "x", {"1024"});
  *m.mutable_graph()->add_initializer() = externalTensor("a", {1024}, "data/weights.bin", 64, 4096);
  *m.mutable_graph()->add_initializer() = externalTensor("b", {1024}, "./data/weights.bin", 64 + 4096, 4096);
  *m.mutable_graph()->add_initializer() = externalTensor("c", {4}, "other.bin", 0, 16);
  addNode(m, "Add", {"x", "a"}, {"s"});
  addNode(m, "Add", {"s", "b"}, {"y"});
  addNode(m, "Identity", {"c"}, {"z"});
  addOutput(m, "y");
  addOutput(m, "z");
  OnnxImportOptions options;
  options.copyBelowBytes = 16;
  std::vector<MappedFile> files;
  Expected<Graph> g = importOnnxFile(save(m), options, nullptr, &files);
  ASSERT_TRUE(g) << g.status().message();
  ASSERT_EQ(files.size(), 3u);  // the model, then the external files by path
  EXPECT_EQ(files[1].path(), (fs::absolute(dir_) / "data/weights.bin").lexically_normal().string());
  EXPECT_EQ(files[2].path(), (fs::absolute(dir_) / "other.bin").lexically_normal().string());
  EXPECT_EQ(offsetIn(files[1], *g->value(*g->find("a")).data), std::optional<size_t>(64));
  EXPECT_EQ(offsetIn(files[1], *g->value(*g->find("b")).data), std::optional<size_t>(64 + 4096));
  EXPECT_EQ(offsetIn(files[2], *g->value(*g->find("c")).data), std::optional<size_t>(0));
  EXPECT_EQ(std::memcmp(g->value(*g->find("b")).data->data(), second.data(), 4096), 0);

  // A cut external file is refused naming the tensor and the file.
  writeBytes("other.bin", std::string(reinterpret_cast<const char*>(third.data()), 12));
  const std::string message = importError(save(m), options);
  EXPECT_NE(message.find(cat("initializer 'c': tensor 'c': external data file '", path("other.bin"),
                             "' has 12 bytes; bytes [0, 16) are needed (truncated file?)")),
            std::string::npos)
      << message;
}

}  // namespace
}  // namespace kiln
