// Each diagnostic of verifyGraph, with its exact message.
#include <gtest/gtest.h>

#include "ir/builder.h"
#include "ir/text.h"
#include "ir/verifier.h"
#include "tests/unit/op_test_support.h"

namespace kiln {
namespace {

using namespace testsupport;

std::string verifyText(std::string_view text) {
  Status status = verifyGraph(parse(text));
  return status ? "<verified>" : status.message();
}

std::string verifyMessage(const Graph& graph) {
  Status status = verifyGraph(graph);
  return status ? "<verified>" : status.message();
}

// %x -> relu -> %0 -> neg -> %1, output %1; built (and so typed) by the Builder.
Graph buildChain() {
  Graph g;
  Builder b(g);
  ValueId x = g.addInput("x", TensorType{DType::F32, {Dim::symbol("n"), 4}});
  ValueId r = *b.create1("relu", {x});
  ValueId n = *b.create1("neg", {r});
  g.setOutputs({n});
  return g;
}

TEST(Verifier, AcceptsValidGraphs) {
  EXPECT_EQ(verifyMessage(buildChain()), "<verified>");
  EXPECT_EQ(verifyText("graph @g(%x: f32[batch, 3], %b: f32[2]) -> (%y: f32[batch, 2], %r: f32[2, batch]) {\n"
                       "  weight @w : f32[3, 2] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]\n"
                       "  weight @shape : i64[2] = [2, -1]\n"
                       "  %0 = matmul %x, @w : f32[batch, 2] loc(\"MatMul_0\")\n"
                       "  %1 = add %0, %b : f32[batch, 2]\n"
                       "  %y = relu %1 : f32[batch, 2]\n"
                       "  %r = reshape %y, @shape : f32[2, batch]\n"
                       "  return %y, %r\n"
                       "}\n"),
            "<verified>");
}

TEST(Verifier, AcceptsDeclaredTypesThatRefineUnknownDims) {
  // The shape operand is a graph input, so inference only knows f32[?, ?];
  // the text may state more.
  EXPECT_EQ(verifyText("graph @g(%x: f32[6], %s: i64[2]) -> (%y: f32[3, 2]) {\n"
                       "  %y = reshape %x, %s : f32[3, 2]\n"
                       "  return %y\n"
                       "}\n"),
            "<verified>");
  // ... but not a different rank.
  EXPECT_EQ(verifyText("graph @g(%x: f32[6], %s: i64[2]) -> (%y: f32[6]) {\n"
                       "  %y = reshape %x, %s : f32[6]\n"
                       "  return %y\n"
                       "}\n"),
            "op 'reshape' defining %y: %y is declared f32[6] but inference gives f32[?, ?]");
}

TEST(Verifier, RejectsDeclaredTypeThatDiffersFromInference) {
  EXPECT_EQ(verifyText("graph @g(%x: f32[2]) -> (%y: f32[3]) {\n"
                       "  %y = relu %x : f32[3] loc(\"Relu_1\")\n"
                       "  return %y\n"
                       "}\n"),
            "op 'relu' defining %y (loc \"Relu_1\"): %y is declared f32[3] but inference gives f32[2]");
  EXPECT_EQ(verifyText("graph @g(%x: f32[n]) -> (%y: i64[n]) {\n"
                       "  %y = relu %x : i64[n]\n"
                       "  return %y\n"
                       "}\n"),
            "op 'relu' defining %y: %y is declared i64[n] but inference gives f32[n]");
}

TEST(Verifier, ReportsInferenceErrorsWithOpRegisterAndShapes) {
  std::string message = verifyText("graph @g(%a: f32[2, 3], %b: f32[4, 5]) -> (%3: f32[2, 5]) {\n"
                                   "  %3 = matmul %a, %b : f32[2, 5] loc(\"MatMul_7\")\n"
                                   "  return %3\n"
                                   "}\n");
  EXPECT_EQ(message.rfind("op 'matmul' defining %3 (loc \"MatMul_7\"): matmul(f32[2, 3], f32[4, 5]): ", 0), 0u)
      << message;
}

TEST(Verifier, RejectsWrongOperandCount) {
  EXPECT_EQ(verifyText("graph @g(%x: f32[2]) -> (%y: f32[2]) {\n"
                       "  %y = relu %x, %x : f32[2]\n"
                       "  return %y\n"
                       "}\n"),
            "op 'relu' defining %y: relu(f32[2], f32[2]): takes 1 operand, got 2");
}

TEST(Verifier, RejectsWrongResultCount) {
  EXPECT_EQ(verifyText("graph @g(%x: f32[2]) -> (%a: f32[2]) {\n"
                       "  %a, %b = relu %x : f32[2], f32[2]\n"
                       "  return %a\n"
                       "}\n"),
            "op 'relu' defining %a, %b: relu(f32[2]): has 1 result, got 2");
  EXPECT_EQ(verifyText("graph @g(%x: f32[2]) -> () {\n"
                       "  relu %x loc(\"r\")\n"
                       "  return\n"
                       "}\n"),
            "op 'relu' (loc \"r\"): relu(f32[2]): has 1 result, got 0");
}

TEST(Verifier, RejectsAbsentRequiredOperand) {
  EXPECT_EQ(verifyText("graph @g(%x: f32[2]) -> (%y: f32[2]) {\n"
                       "  %y = add %x, _ : f32[2]\n"
                       "  return %y\n"
                       "}\n"),
            "op 'add' defining %y: add(f32[2], _): operand 1 (b) is required");
}

TEST(Verifier, RejectsUnknownAttribute) {
  EXPECT_EQ(verifyText("graph @g(%x: f32[2]) -> (%y: f32[2]) {\n"
                       "  %y = relu %x {alpha = 0.5} : f32[2]\n"
                       "  return %y\n"
                       "}\n"),
            "op 'relu' defining %y: relu(f32[2]): has no attribute 'alpha'");
}

TEST(Verifier, RejectsAttributeOfWrongKind) {
  EXPECT_EQ(verifyText("graph @g(%x: f32[2]) -> (%y: f16[2]) {\n"
                       "  %y = cast %x {to = 16} : f16[2]\n"
                       "  return %y\n"
                       "}\n"),
            "op 'cast' defining %y: cast(f32[2]): attribute 'to' must be string, got int 16");
}

TEST(Verifier, RejectsMissingRequiredAttribute) {
  EXPECT_EQ(verifyText("graph @g(%x: f32[2]) -> (%y: f16[2]) {\n"
                       "  %y = cast %x : f16[2]\n"
                       "  return %y\n"
                       "}\n"),
            "op 'cast' defining %y: cast(f32[2]): requires attribute 'to'");
}

TEST(Verifier, RejectsUseBeforeDefinition) {
  Graph g = buildChain();
  std::vector<Op> ops = g.ops();
  std::swap(ops[0], ops[1]);
  g.setOps(ops);
  EXPECT_EQ(verifyMessage(g), "op 'neg' defining %1: operand 0 %0 is used before it is defined (by op 1)");
}

TEST(Verifier, RejectsOperandWithoutProducer) {
  Graph g = buildChain();
  g.setOps({g.ops()[1]});
  EXPECT_EQ(verifyMessage(g), "op 'neg' defining %1: operand 0 %0 is not defined by any op");
}

TEST(Verifier, RejectsOperandThatIsNoValue) {
  Graph g = buildChain();
  g.ops()[1].operands[0] = 99;
  EXPECT_EQ(verifyMessage(g), "op 'neg' defining %1: operand 0 refers to no value (id 99)");
}

TEST(Verifier, RejectsResultDefinedTwice) {
  Graph g = buildChain();
  g.setOps({g.ops()[0], g.ops()[0], g.ops()[1]});
  EXPECT_EQ(verifyMessage(g), "op 'relu' defining %0: result %0 is defined twice");
}

TEST(Verifier, RejectsOpWithoutDefinition) {
  Graph g = buildChain();
  g.ops()[0].def = nullptr;
  EXPECT_EQ(verifyMessage(g), "op #0 defining %0: has no op definition");
}

TEST(Verifier, RejectsUndefinedOutput) {
  Graph g = buildChain();
  g.setOps({g.ops()[0]});
  EXPECT_EQ(verifyMessage(g), "graph output 0 %1 is not defined by any op");
  g.setOutputs({42});
  EXPECT_EQ(verifyMessage(g), "graph output 0 refers to no value (id 42)");
}

TEST(Verifier, RejectsWeightDataThatDoesNotMatchItsType) {
  Graph g;
  ValueId w = g.addWeight("w", Tensor::allocate(DType::F32, {3}));
  EXPECT_EQ(verifyMessage(g), "<verified>");
  g.value(w).type = TensorType{DType::F32, {4, 4}};
  EXPECT_EQ(verifyMessage(g), "weight @w: its data is f32[3] (12 bytes) but its type is f32[4, 4] (64 bytes)");
  g.value(w).type = TensorType{DType::I32, {3}};
  EXPECT_EQ(verifyMessage(g), "weight @w: its data is f32[3] (12 bytes) but its type is i32[3] (12 bytes)");
  g.value(w).type = TensorType{DType::F32, {Dim::symbol("n")}};
  EXPECT_EQ(verifyMessage(g), "weight @w: its data is f32[3] (12 bytes) but its type is f32[n] (not static)");
}

TEST(Verifier, AcceptsWeightDeclarationsWithoutData) {
  EXPECT_EQ(verifyText("graph @g(%x: f32[n, 4]) -> (%y: f32[n, 8]) {\n"
                       "  weight @w : f32[4, 8]\n"
                       "  %y = matmul %x, @w : f32[n, 8]\n"
                       "  return %y\n"
                       "}\n"),
            "<verified>");
}

}  // namespace
}  // namespace kiln
