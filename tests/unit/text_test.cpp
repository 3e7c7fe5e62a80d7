// The text form: exact printing, byte-for-byte round trips, what the parser
// builds, and parse errors with their positions.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ir/op_registry.h"
#include "ir/text.h"
#include "ir/verifier.h"
#include "tests/unit/op_test_support.h"

namespace kiln {
namespace {

using namespace testsupport;

Dim sym(const char* name) { return Dim::symbol(name); }

template <class T>
Tensor makeTensor(DType dtype, std::vector<int64_t> shape, std::vector<T> values) {
  Tensor t = Tensor::allocate(dtype, std::move(shape));
  for (size_t i = 0; i < values.size(); ++i) t.data<T>()[i] = values[i];
  return t;
}

std::string parseError(std::string_view text) {
  auto graph = parseGraph(text);
  if (graph.isOk()) return "<parsed without error>";
  return graph.status().message();
}

// A graph built through the API with every dtype of weight data and the
// float values whose printing is delicate.
Graph buildSampleGraph() {
  const OpRegistry& ops = OpRegistry::global();
  Graph g;
  g.name = "sample";
  TensorType xType{DType::F32, {sym("batch"), sym("seq") + sym("past")}};
  ValueId x = g.addInput("x", xType);
  ValueId w = g.addWeight("w", makeTensor<float>(DType::F32, {2, 3},
                                                 {1.0f, 0.1f, -0.0f, 1e20f, 1e-7f,
                                                  std::numeric_limits<float>::infinity()}));
  g.addWeight("h", makeTensor<Half>(DType::F16, {3},
                                    {Half{floatToHalf(0.5f)}, Half{floatToHalf(-2.0f)},
                                     Half{floatToHalf(65504.0f)}}));
  g.addWeight("b", makeTensor<BFloat16>(DType::BF16, {2},
                                        {BFloat16{floatToBFloat16(1.5f)},
                                         BFloat16{floatToBFloat16(-0.25f)}}));
  g.addWeight("d", makeTensor<double>(DType::F64, {3},
                                      {0.1, std::nan(""), -std::numeric_limits<double>::infinity()}));
  g.addWeight("i64", makeTensor<int64_t>(DType::I64, {2},
                                         {std::numeric_limits<int64_t>::min(), 42}));
  g.addWeight("i32", makeTensor<int32_t>(DType::I32, {2}, {-7, 2147483647}));
  g.addWeight("i8", makeTensor<int8_t>(DType::I8, {2}, {-128, 127}));
  g.addWeight("u8", makeTensor<uint8_t>(DType::U8, {2}, {0, 255}));
  g.addWeight("mask", makeTensor<bool>(DType::Bool, {2, 1}, {true, false}));
  g.addWeight("scalar", makeTensor<float>(DType::F32, {}, {2.0f}));
  g.addWeightDecl("big", TensorType{DType::F32, {512, 128}});

  ValueId r = g.ops()[static_cast<size_t>(
                          g.addOp(ops.find("relu"), {x}, {xType}, {}, "Relu_1"))]
                  .results[0];
  TensorType mmType{DType::F32, {sym("batch"), 3}};
  Attributes attrs;
  attrs.set("trans_b", false);
  attrs.set("alpha", 0.5);
  int32_t gemm = g.addOp(ops.find("gemm"), {r, w, kNoValue}, {mmType}, attrs, "", {"out/0"});
  ValueId y = g.ops()[static_cast<size_t>(gemm)].results[0];
  Attributes splitAttrs;
  splitAttrs.set("axis", int64_t{1});
  TensorType half{DType::F32, {sym("batch"), Dim(2) * sym("seq") - 1}};
  int32_t split = g.addOp(ops.find("split"), {x}, {half, half}, splitAttrs, "Split \"a\"\n",
                          {"lo", "hi"});
  const Op& splitOp = g.ops()[static_cast<size_t>(split)];
  g.setOutputs({y, splitOp.results[1]});
  return g;
}

constexpr std::string_view kSamplePrinted =
    "graph @sample(%x: f32[batch, past + seq]) -> (%\"out/0\": f32[batch, 3], %hi: f32[batch, 2*seq - 1]) {\n"
    "  weight @w : f32[2, 3] = [1.0, 0.1, -0.0, 1e+20, 1e-07, inf]\n"
    "  weight @h : f16[3] = [0.5, -2.0, 65504.0]\n"
    "  weight @b : bf16[2] = [1.5, -0.25]\n"
    "  weight @d : f64[3] = [0.1, nan, -inf]\n"
    "  weight @i64 : i64[2] = [-9223372036854775808, 42]\n"
    "  weight @i32 : i32[2] = [-7, 2147483647]\n"
    "  weight @i8 : i8[2] = [-128, 127]\n"
    "  weight @u8 : u8[2] = [0, 255]\n"
    "  weight @mask : bool[2, 1] = [true, false]\n"
    "  weight @scalar : f32[] = [2.0]\n"
    "  weight @big : f32[512, 128]\n"
    "  %0 = relu %x : f32[batch, past + seq] loc(\"Relu_1\")\n"
    "  %\"out/0\" = gemm %0, @w, _ {alpha = 0.5, trans_b = false} : f32[batch, 3]\n"
    "  %lo, %hi = split %x {axis = 1} : f32[batch, 2*seq - 1], f32[batch, 2*seq - 1] loc(\"Split \\\"a\\\"\\n\")\n"
    "  return %\"out/0\", %hi\n"
    "}\n";

TEST(TextPrint, PrintsEveryConstructCanonically) {
  EXPECT_EQ(printGraph(buildSampleGraph()), kSamplePrinted);
}

TEST(TextPrint, RoundTripsBuiltGraph) {
  std::string printed = printGraph(buildSampleGraph());
  EXPECT_EQ(printGraph(parse(printed)), printed);
}

TEST(TextPrint, HalfPrecisionValuesRoundTripExactly) {
  // 0.1 is not representable in f16/bf16: the printed text is the shortest
  // float that denotes the rounded value, and must read back to the same bits.
  Graph g;
  uint16_t halfBits = floatToHalf(0.1f), bf16Bits = floatToBFloat16(0.1f);
  g.addWeight("h", makeTensor<Half>(DType::F16, {1}, {Half{halfBits}}));
  g.addWeight("b", makeTensor<BFloat16>(DType::BF16, {1}, {BFloat16{bf16Bits}}));
  std::string printed = printGraph(g);
  EXPECT_NE(printed.find("weight @h : f16[1] = [0.099975586]"), std::string::npos) << printed;
  EXPECT_NE(printed.find("weight @b : bf16[1] = [0.100097656]"), std::string::npos) << printed;
  Graph parsed = parse(printed);
  EXPECT_EQ(parsed.value(*parsed.find("h")).data->data<Half>()[0].bits, halfBits);
  EXPECT_EQ(parsed.value(*parsed.find("b")).data->data<BFloat16>()[0].bits, bf16Bits);
  EXPECT_EQ(printGraph(parsed), printed);
}

TEST(TextPrint, ElidesLargeWeightData) {
  Graph g;
  g.addWeight("small", makeTensor<int64_t>(DType::I64, {2}, {3, 4}));
  g.addWeight("large", makeTensor<int64_t>(DType::I64, {3}, {1, 2, 3}));
  PrintOptions options;
  options.maxInlineWeightElements = 2;
  std::string printed = printGraph(g, options);
  EXPECT_EQ(printed,
            "graph @main() -> () {\n"
            "  weight @small : i64[2] = [3, 4]\n"
            "  weight @large : i64[3]\n"
            "  return\n"
            "}\n");
  Graph parsed = parse(printed);
  EXPECT_TRUE(parsed.value(*parsed.find("small")).data.has_value());
  EXPECT_FALSE(parsed.value(*parsed.find("large")).data.has_value());
  EXPECT_EQ(printGraph(parsed, options), printed);
  // maxInlineWeightElements = 0 elides all but empty tensors; negative keeps all.
  options.maxInlineWeightElements = 0;
  EXPECT_EQ(printGraph(g, options).find('='), std::string::npos);
  EXPECT_NE(printGraph(g).find("@large : i64[3] = [1, 2, 3]"), std::string::npos);
}

// Canonical text exercising symbolic dims, attributes of every kind, absent
// operands, multiple results, quoted names and escapes.
constexpr std::string_view kCanonical =
    "graph @\"enc/main\"(%x: f32[batch, seq, 4], %\"past:0\": f32[batch, past, 4], %shape: i64[2], %m: f32[?, 2*seq, seq - 1, batch*seq, 0]) -> (%y: f32[batch, past + seq, 4], %a: f32[batch, past + seq, 2], %r: f32[?, ?], %x: f32[batch, seq, 4]) {\n"
    "  weight @w : f32[4, 4] = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.5, -0.25, 1e-07, 3.4028235e+38]\n"
    "  weight @layers.0.bias : f16[4] = [0.099975586, -2.0, 65504.0, inf]\n"
    "  weight @big : f32[512, 128]\n"
    "  weight @\"w:0\" : f32[] = [2.0]\n"
    "  %cat = concat %\"past:0\", %x {axis = 1} : f32[batch, past + seq, 4]\n"
    "  %0 = matmul %cat, @w : f32[batch, past + seq, 4] loc(\"MatMul_0\")\n"
    "  %1 = add %0, @layers.0.bias : f32[batch, past + seq, 4] loc(\"node \\\"q\\\"\\n\\x01\")\n"
    "  %y = clip %1, _, @\"w:0\" : f32[batch, past + seq, 4]\n"
    "  %a, %b = split %y {axis = -1} : f32[batch, past + seq, 2], f32[batch, past + seq, 2] loc(\"Split\")\n"
    "  %r = reshape %x, %shape {allowzero = 0} : f32[?, ?]\n"
    "  %2 = gemm %r, @w {alpha = 1.0, beta = 0.5, trans_a = false, trans_b = true} : f32[?, 4]\n"
    "  %3 = cast %2 {to = \"f16\"} : f16[?, 4]\n"
    "  %4 = identity %m {e = [], f = [0.5, 1e+100, -inf], i = [1, -2], s = \"a\\\"b\\\\\"} : f32[?, 2*seq, seq - 1, batch*seq, 0]\n"
    "  return %y, %a, %r, %x\n"
    "}\n";

TEST(TextParse, RoundTripsCanonicalText) {
  EXPECT_EQ(printGraph(parse(kCanonical)), kCanonical);
}

TEST(TextParse, BuildsTheGraphTheTextDescribes) {
  Graph g = parse(kCanonical);
  EXPECT_EQ(g.name, "enc/main");
  ASSERT_EQ(g.inputs().size(), 4u);
  const Value& past = g.value(g.inputs()[1]);
  EXPECT_EQ(past.name, "past:0");
  EXPECT_EQ(past.kind, ValueKind::Input);
  EXPECT_EQ(past.type.shape[1], sym("past"));

  const TensorType& m = g.value(g.inputs()[3]).type;
  ASSERT_EQ(m.rank(), 5u);
  EXPECT_TRUE(m.shape[0].isUnknown());
  EXPECT_EQ(m.shape[1], Dim(2) * sym("seq"));
  EXPECT_EQ(m.shape[2], sym("seq") - 1);
  EXPECT_EQ(m.shape[3], sym("batch") * sym("seq"));
  EXPECT_EQ(m.shape[4].constant(), 0);

  const Value& bias = g.value(*g.find("layers.0.bias"));
  EXPECT_EQ(bias.kind, ValueKind::Weight);
  ASSERT_TRUE(bias.data.has_value());
  EXPECT_EQ(bias.data->data<Half>()[0].bits, floatToHalf(0.1f));
  EXPECT_EQ(halfToFloat(bias.data->data<Half>()[2].bits), 65504.0f);
  EXPECT_TRUE(std::isinf(halfToFloat(bias.data->data<Half>()[3].bits)));
  const Value& w = g.value(*g.find("w"));
  EXPECT_EQ(w.data->data<float>()[13], -0.25f);
  EXPECT_EQ(w.data->data<float>()[15], std::numeric_limits<float>::max());
  EXPECT_FALSE(g.value(*g.find("big")).data.has_value());
  EXPECT_EQ(g.value(*g.find("big")).type, (TensorType{DType::F32, {512, 128}}));

  ASSERT_EQ(g.ops().size(), 9u);
  const Op& add = g.ops()[2];
  EXPECT_EQ(add.def->name, "add");
  EXPECT_EQ(add.location, "node \"q\"\n\x01");
  EXPECT_EQ(add.operands[1], *g.find("layers.0.bias"));
  const Op& clip = g.ops()[3];
  ASSERT_EQ(clip.operands.size(), 3u);
  EXPECT_EQ(clip.operands[1], kNoValue);
  const Op& split = g.ops()[4];
  ASSERT_EQ(split.results.size(), 2u);
  EXPECT_EQ(g.value(split.results[1]).name, "b");
  EXPECT_EQ(g.value(split.results[1]).producer, 4);
  EXPECT_EQ(split.attrs.getInt("axis"), -1);
  EXPECT_EQ(split.location, "Split");

  const Attributes& gemm = g.ops()[6].attrs;
  EXPECT_EQ(attrKind(gemm.all().at("alpha")), AttrKind::Float);
  EXPECT_EQ(gemm.getFloat("beta"), 0.5);
  EXPECT_EQ(attrKind(gemm.all().at("trans_b")), AttrKind::Bool);
  EXPECT_TRUE(gemm.getBool("trans_b"));
  EXPECT_EQ(g.ops()[7].attrs.getString("to"), "f16");
  const Attributes& misc = g.ops()[8].attrs;
  EXPECT_EQ(misc.getInts("e"), std::vector<int64_t>{});
  EXPECT_EQ(misc.getFloats("f")[1], 1e100);
  EXPECT_EQ(attrKind(misc.all().at("i")), AttrKind::Ints);
  EXPECT_EQ(misc.getInts("i"), (std::vector<int64_t>{1, -2}));
  EXPECT_EQ(misc.getString("s"), "a\"b\\");

  ASSERT_EQ(g.outputs().size(), 4u);
  EXPECT_EQ(g.value(g.outputs()[1]).name, "a");
  EXPECT_EQ(g.outputs()[3], g.inputs()[0]);
}

TEST(TextParse, AcceptsCommentsAndFreeLayout) {
  constexpr std::string_view loose =
      "// a comment before the graph\n"
      "graph   @g ( %x :f32[ batch ,2 ] )->( %y:f32[batch,2] ){  // trailing comment\n"
      "weight @w:f32[2]=[ 1 , 2.5e0 ]\n"
      "%y=add %x,@w:f32[batch,2]loc( \"n\" )\n"
      "// CHECK: lines of a lit test are comments too\n"
      "return %y }\n";
  EXPECT_EQ(printGraph(parse(loose)),
            "graph @g(%x: f32[batch, 2]) -> (%y: f32[batch, 2]) {\n"
            "  weight @w : f32[2] = [1.0, 2.5]\n"
            "  %y = add %x, @w : f32[batch, 2] loc(\"n\")\n"
            "  return %y\n"
            "}\n");
}

TEST(TextParse, NumberedNamesStayAsWritten) {
  constexpr std::string_view text =
      "graph @main(%0: f32[2]) -> (%2: f32[2]) {\n"
      "  %1 = relu %0 : f32[2]\n"
      "  %2 = neg %1 : f32[2]\n"
      "  return %2\n"
      "}\n";
  Graph g = parse(text);
  EXPECT_EQ(g.value(g.ops()[1].results[0]).name, "2");
  EXPECT_EQ(printGraph(g), text);
}

TEST(TextParse, ZeroResultOpRoundTrips) {
  // Not valid (the verifier rejects it) but printable, so it must parse back.
  constexpr std::string_view text =
      "graph @main(%x: f32[2]) -> () {\n"
      "  relu %x\n"
      "  neg\n"
      "  %0 = relu %x : f32[2]\n"
      "  return\n"
      "}\n";
  Graph g = parse(text);
  ASSERT_EQ(g.ops().size(), 3u);
  EXPECT_TRUE(g.ops()[0].results.empty());
  // `%0 = ...` on the next line starts a statement; it is no operand of neg.
  EXPECT_TRUE(g.ops()[1].operands.empty());
  EXPECT_EQ(g.ops()[2].results.size(), 1u);
  EXPECT_EQ(printGraph(g), text);
}

struct ParseErrorCase {
  const char* name;
  std::string text;
  std::string message;
};

class TextParseError : public testing::TestWithParam<ParseErrorCase> {};

TEST_P(TextParseError, ReportsPositionAndExpectation) {
  EXPECT_EQ(parseError(GetParam().text), GetParam().message);
}

const std::string kHead = "graph @g(%x: f32[2]) -> (%x: f32[2]) {\n";
const std::string kTail = "  return %x\n}\n";

INSTANTIATE_TEST_SUITE_P(
    Cases, TextParseError,
    testing::Values(
        ParseErrorCase{"Empty", "", "1:1: expected 'graph', got end of input"},
        ParseErrorCase{"UnknownOp", kHead + "  %y = frobnicate %x : f32[2]\n" + kTail,
                       "2:8: unknown op 'frobnicate'"},
        ParseErrorCase{"UndefinedRegister", kHead + "  %y = relu %z : f32[2]\n" + kTail,
                       "2:13: use of undefined register %z"},
        ParseErrorCase{"UseBeforeDefinition",
                       kHead + "  %y = relu %z : f32[2]\n  %z = relu %x : f32[2]\n" + kTail,
                       "2:13: use of undefined register %z"},
        ParseErrorCase{"UndefinedWeight", kHead + "  %y = add %x, @w : f32[2]\n" + kTail,
                       "2:16: use of undefined weight @w"},
        ParseErrorCase{"WeightAsRegister",
                       kHead + "  weight @w : f32[2]\n  %y = add %x, %w : f32[2]\n" + kTail,
                       "3:16: %w is a weight; refer to it as @w"},
        ParseErrorCase{"RegisterAsWeight", kHead + "  %y = add %x, @x : f32[2]\n" + kTail,
                       "2:16: @x is a register, not a weight; refer to it as %x"},
        ParseErrorCase{"Redefinition", kHead + "  %x = relu %x : f32[2]\n" + kTail,
                       "2:3: redefinition of %x (names are unique across registers and weights)"},
        ParseErrorCase{"BadDType", kHead + "  %y = relu %x : f33[2]\n" + kTail,
                       "2:18: expected a type such as f32[2, seq], got 'f33'"},
        ParseErrorCase{"BadDim", kHead + "  %y = relu %x : f32[seq +]\n" + kTail,
                       "2:22: invalid dim 'seq +': expected a number or a symbol in dim expression"},
        ParseErrorCase{"MissingColon", kHead + "  %y = relu %x f32[2]\n" + kTail,
                       "2:16: expected ':', got 'f32'"},
        ParseErrorCase{"TooFewResultTypes",
                       kHead + "  %a, %b = split %x {axis = 0} : f32[1]\n" + kTail,
                       "3:3: expected ',' and 1 more result type, got 'return'"},
        ParseErrorCase{"TooManyResultTypes", kHead + "  %a = relu %x : f32[2], f32[2]\n" + kTail,
                       "2:26: expected 1 result type, got more"},
        ParseErrorCase{"DuplicateAttribute",
                       kHead + "  %a = relu %x {axis = 0, axis = 1} : f32[2]\n" + kTail,
                       "2:27: attribute 'axis' is given twice"},
        ParseErrorCase{"MissingAttributeValue", kHead + "  %a = relu %x {axis = } : f32[2]\n" + kTail,
                       "2:24: expected an attribute value, got '}'"},
        ParseErrorCase{"WrongValueCount", kHead + "  weight @w : f32[2, 2] = [1.0, 2.0]\n" + kTail,
                       "2:15: weight @w of type f32[2, 2] needs 4 values, got 2"},
        ParseErrorCase{"NegativeDim", kHead + "  %y = relu %x : f32[2, -1]\n" + kTail,
                       "2:25: invalid dim '-1': a dim cannot be negative"},
        ParseErrorCase{"HugeWeight",
                       kHead + "  weight @w : u8[4294967296, 4294967296] = []\n" + kTail,
                       "2:15: weight @w of type u8[4294967296, 4294967296] is too large"},
        ParseErrorCase{"SymbolicWeightData", kHead + "  weight @w : f32[n] = [1.0]\n" + kTail,
                       "2:15: weight @w has data, so its type needs static dims, got f32[n]"},
        ParseErrorCase{"IntOutOfRange", kHead + "  weight @w : i8[2] = [1, 128]\n" + kTail,
                       "2:27: 128 is out of range for i8"},
        ParseErrorCase{"FloatInIntWeight", kHead + "  weight @w : i32[1] = [1.5]\n" + kTail,
                       "2:25: expected an integer, got '1.5'"},
        ParseErrorCase{"BadBool", kHead + "  weight @w : bool[1] = [1]\n" + kTail,
                       "2:26: expected true or false, got '1'"},
        ParseErrorCase{"BadFloat", kHead + "  weight @w : f16[1] = [abc]\n" + kTail,
                       "2:25: expected a f16 value, got 'abc'"},
        ParseErrorCase{"UnterminatedString", kHead + "  %y = relu %x : f32[2] loc(\"Relu\n",
                       "2:29: expected '\"' to close the string, got end of input"},
        ParseErrorCase{"BadEscape", kHead + "  %y = relu %x : f32[2] loc(\"a\\q\")\n" + kTail,
                       "2:31: expected an escape (\\\", \\\\, \\n, \\t, \\r, \\xHH), got '\\q'"},
        ParseErrorCase{"EmptyQuotedName", kHead + "  %\"\" = relu %x : f32[2]\n" + kTail,
                       "2:4: expected a name, got an empty string"},
        ParseErrorCase{"ReturnNameMismatch", kHead + "  %y = relu %x : f32[2]\n  return %y\n}\n",
                       "3:10: expected %x (output 0 in the signature), got %y"},
        ParseErrorCase{"ReturnTypeMismatch",
                       "graph @g(%x: f32[2]) -> (%y: f32[3]) {\n  %y = relu %x : f32[2]\n  return %y\n}\n",
                       "1:26: output %y is declared f32[3] in the signature but has type f32[2]"},
        ParseErrorCase{"ReturnCountMismatch", kHead + "  return\n}\n",
                       "2:3: return has 0 values but the signature declares 1 output"},
        ParseErrorCase{"MissingReturn", kHead + "}\n",
                       "2:1: expected an op, a weight or 'return', got '}'"},
        ParseErrorCase{"TrailingText", kHead + kTail + "extra\n",
                       "4:1: expected end of input, got 'extra'"}),
    [](const testing::TestParamInfo<ParseErrorCase>& info) { return info.param.name; });

// fused_elementwise's program is parsed once, when the op is built, and
// printed as written: the text round-trips byte for byte, spacing included.
TEST(TextParse, ParsesProgramAttributesOnceAndPrintsThemAsWritten) {
  const std::string text =
      "graph @g(%a: f32[4], %b: f32[4]) -> (%y: f32[4]) {\n"
      "  %y = fused_elementwise %a, %b {program = \"mul $0 $1;  tanh %0\"} : f32[4]\n"
      "  return %y\n"
      "}\n";
  Graph g = parse(text);
  EXPECT_EQ(printGraph(g), text);
  const ElementwiseProgram* program = g.ops()[0].attrs.getProgram("program");
  ASSERT_NE(program, nullptr);
  ASSERT_EQ(program->instructions.size(), 2u);
  EXPECT_EQ(program->instructions[1].op, ElementOp::Tanh);
  EXPECT_EQ(program->instructions[1].args[0].kind, ProgramArg::Kind::Value);
}

// A program that does not parse stays text; the verifier's inference names
// what is wrong.
TEST(TextParse, KeepsABadProgramAsTextForTheVerifierToReject) {
  Graph g = parse(
      "graph @g(%a: f32[4]) -> (%y: f32[4]) {\n"
      "  %y = fused_elementwise %a {program = \"mul $0 $3\"} : f32[4]\n"
      "  return %y\n"
      "}\n");
  EXPECT_EQ(g.ops()[0].attrs.getProgram("program"), nullptr);
  const Status verified = verifyGraph(g);
  ASSERT_FALSE(verified.isOk());
  EXPECT_NE(verified.message().find("\"$3\" names operand 3 of 1"), std::string::npos) << verified.message();
}

}  // namespace
}  // namespace kiln
