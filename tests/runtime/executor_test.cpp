// The executor on small graphs: results by hand, input checks with their
// exact messages, symbol binding, and op errors with their context.
#include "runtime/executor.h"

#include <gtest/gtest.h>

#include "backends/cpu/cpu_device.h"
#include "ir/text.h"

namespace kiln::rt {
namespace {

Graph parse(std::string_view text) {
  auto graph = parseGraph(text);
  EXPECT_TRUE(graph.isOk()) << graph.status().message();
  return graph.isOk() ? std::move(*graph) : Graph();
}

template <class T>
Tensor tensorOf(std::vector<int64_t> shape, std::vector<T> values) {
  Tensor t = Tensor::allocate(DTypeOf<T>::value, std::move(shape));
  EXPECT_EQ(static_cast<size_t>(t.numElements()), values.size());
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

template <class T>
std::vector<T> valuesOf(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numElements());
}

std::unique_ptr<Executor> makeExecutor(const Graph& graph) {
  auto executor = Executor::create(graph);
  EXPECT_TRUE(executor.isOk()) << executor.status().message();
  return executor.isOk() ? std::move(*executor) : nullptr;
}

std::string runError(const Executor& executor, const std::vector<Tensor>& inputs) {
  auto outputs = executor.run(inputs);
  return outputs ? "<ran>" : outputs.status().message();
}

// relu(x + y) and (x + y) + relu(x + y): %s is read by two ops, so it must
// survive the first and be freed only after the second.
constexpr std::string_view kAddRelu =
    "graph @main(%x: f32[batch, 3], %y: f32[batch, 3]) -> (%u: f32[batch, 3], %r: f32[batch, 3]) {\n"
    "  %s = add %x, %y : f32[batch, 3]\n"
    "  %r = relu %s : f32[batch, 3]\n"
    "  %u = add %s, %r : f32[batch, 3]\n"
    "  return %u, %r\n"
    "}\n";

TEST(Executor, RunsOpsInOrderAndReturnsOutputsInGraphOrder) {
  Graph graph = parse(kAddRelu);
  auto executor = makeExecutor(graph);
  ASSERT_TRUE(executor);
  auto outputs = executor->run(
      {tensorOf<float>({2, 3}, {1, -2, 3, -4, 5, -6}), tensorOf<float>({2, 3}, {0.5f, 1, -4, 1, 1, 1})});
  ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
  ASSERT_EQ(outputs->size(), 2u);
  // s = [1.5, -1, -1, -3, 6, -5]; r = relu(s); u = s + r.
  EXPECT_EQ((*outputs)[0].shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(valuesOf<float>((*outputs)[0]), (std::vector<float>{3, -1, -1, -3, 12, -5}));
  EXPECT_EQ(valuesOf<float>((*outputs)[1]), (std::vector<float>{1.5f, 0, 0, 0, 6, 0}));
}

TEST(Executor, OneExecutorRunsAtEveryBindingOfTheSymbols) {
  Graph graph = parse(kAddRelu);
  auto executor = makeExecutor(graph);
  ASSERT_TRUE(executor);
  for (int64_t batch : {1, 4, 0}) {
    std::vector<float> ones(static_cast<size_t>(batch * 3), 1.0f);
    auto outputs = executor->run({tensorOf<float>({batch, 3}, ones), tensorOf<float>({batch, 3}, ones)});
    ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
    EXPECT_EQ((*outputs)[0].shape(), (std::vector<int64_t>{batch, 3}));
    EXPECT_EQ(valuesOf<float>((*outputs)[0]), std::vector<float>(ones.size(), 4.0f));
  }
}

TEST(Executor, ReadsWeightsAndPassesInputsAndWeightsThrough) {
  Graph graph = parse(
      "graph @main(%x: f32[n, 2]) -> (%y: f32[n, 3], %x: f32[n, 2]) {\n"
      "  weight @w : f32[2, 3] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]\n"
      "  %y = matmul %x, @w : f32[n, 3]\n"
      "  return %y, %x\n"
      "}\n");
  // The text form cannot return a weight; the graph API can.
  graph.setOutputs({graph.outputs()[0], graph.outputs()[1], *graph.find("w")});
  auto executor = makeExecutor(graph);
  ASSERT_TRUE(executor);
  auto outputs = executor->run({tensorOf<float>({1, 2}, {1, -1})});
  ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
  ASSERT_EQ(outputs->size(), 3u);
  EXPECT_EQ(valuesOf<float>((*outputs)[0]), (std::vector<float>{-3, -3, -3}));
  EXPECT_EQ(valuesOf<float>((*outputs)[1]), (std::vector<float>{1, -1}));
  EXPECT_EQ(valuesOf<float>((*outputs)[2]), (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST(Executor, RejectsInputsOfTheWrongDtypeRankOrStaticDim) {
  Graph graph = parse(
      "graph @main(%input_ids: i64[batch, sequence]) -> (%y: i64[batch, sequence]) {\n"
      "  %y = relu %input_ids : i64[batch, sequence]\n"
      "  return %y\n"
      "}\n");
  auto executor = makeExecutor(graph);
  ASSERT_TRUE(executor);
  EXPECT_EQ(runError(*executor, {tensorOf<float>({1, 7}, std::vector<float>(7))}),
            "input 'input_ids': expected i64[batch, sequence], got f32[1, 7]");
  EXPECT_EQ(runError(*executor, {tensorOf<int64_t>({7}, std::vector<int64_t>(7))}),
            "input 'input_ids': expected i64[batch, sequence], got i64[7]");
  EXPECT_EQ(runError(*executor, {}), "graph @main takes 1 input(s) ('input_ids'), got 0");

  Graph fixed = parse(
      "graph @main(%x: f32[2, 3]) -> (%y: f32[2, 3]) {\n"
      "  %y = relu %x : f32[2, 3]\n"
      "  return %y\n"
      "}\n");
  auto fixedExecutor = makeExecutor(fixed);
  ASSERT_TRUE(fixedExecutor);
  EXPECT_EQ(runError(*fixedExecutor, {tensorOf<float>({3, 2}, std::vector<float>(6))}),
            "input 'x': expected f32[2, 3], got f32[3, 2]");
}

TEST(Executor, BindsEachSymbolConsistentlyAcrossInputs) {
  Graph graph = parse(kAddRelu);
  auto executor = makeExecutor(graph);
  ASSERT_TRUE(executor);
  EXPECT_EQ(runError(*executor, {tensorOf<float>({1, 3}, std::vector<float>(3)),
                                 tensorOf<float>({2, 3}, std::vector<float>(6))}),
            "dim 'batch' is 1 in input 'x' but 2 in input 'y'");
}

TEST(Executor, SolvesCompoundInputDims) {
  // `past` is only bound through `seq + past`.
  Graph graph = parse(
      "graph @main(%ids: f32[seq], %mask: f32[past + seq]) -> (%m: f32[past + seq]) {\n"
      "  %m = relu %mask : f32[past + seq]\n"
      "  return %m\n"
      "}\n");
  auto executor = makeExecutor(graph);
  ASSERT_TRUE(executor);
  auto bindings = executor->bindInputs({tensorOf<float>({2}, {1, 2}), tensorOf<float>({5}, {1, 2, 3, 4, 5})});
  ASSERT_TRUE(bindings.isOk()) << bindings.status().message();
  EXPECT_EQ(*bindings, (SymbolBindings{{"past", 3}, {"seq", 2}}));
  EXPECT_EQ(runError(*executor, {tensorOf<float>({2}, {1, 2}), tensorOf<float>({1}, {1})}),
            "input 'mask': expected f32[past + seq] (seq = 2), got f32[1]");
}

TEST(Executor, OpErrorsNameTheOpLocationAndShapes) {
  // `k` may equal 3 at compile time; at run time it is 4.
  Graph graph = parse(
      "graph @main(%x: f32[2, k]) -> (%y: f32[2, 2]) {\n"
      "  weight @w : f32[3, 2] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]\n"
      "  %y = matmul %x, @w : f32[2, 2] loc(\"MatMul_7\")\n"
      "  return %y\n"
      "}\n");
  auto executor = makeExecutor(graph);
  ASSERT_TRUE(executor);
  std::string message = runError(*executor, {tensorOf<float>({2, 4}, std::vector<float>(8))});
  EXPECT_EQ(message.rfind("op 'matmul' defining %y (loc \"MatMul_7\"): matmul(f32[2, 4], f32[3, 2]): ", 0),
            0u)
      << message;
  EXPECT_NE(message.find("contraction dims differ: 4"), std::string::npos) << message;
}

TEST(Executor, ChecksResultShapesAgainstTheDeclaredTypes) {
  // The target shape comes in at run time, so the compiler could not check
  // it; a shape that contradicts the declared [a, b] is caught at run time.
  Graph graph = parse(
      "graph @main(%x: f32[a, b], %shape: i64[2]) -> (%y: f32[a, b]) {\n"
      "  %y = reshape %x, %shape : f32[a, b] loc(\"Reshape_3\")\n"
      "  return %y\n"
      "}\n");
  auto executor = makeExecutor(graph);
  ASSERT_TRUE(executor);
  auto same = executor->run({tensorOf<float>({2, 3}, std::vector<float>(6)), tensorOf<int64_t>({2}, {2, 3})});
  EXPECT_TRUE(same.isOk()) << same.status().message();
  EXPECT_EQ(
      runError(*executor, {tensorOf<float>({2, 3}, std::vector<float>(6)), tensorOf<int64_t>({2}, {3, 2})}),
      "op 'reshape' defining %y (loc \"Reshape_3\"): result %y is f32[3, 2] but the graph "
      "declares f32[a, b] (a = 2, b = 3)");
}

TEST(Executor, RefusesGraphsThatCannotRun) {
  Graph noData = parse(
      "graph @main(%x: f32[2]) -> (%y: f32[2]) {\n"
      "  weight @w : f32[2]\n"
      "  %y = add %x, @w : f32[2]\n"
      "  return %y\n"
      "}\n");
  auto executor = Executor::create(noData);
  ASSERT_FALSE(executor.isOk());
  EXPECT_EQ(executor.status().message(), "weight @w has no data; the graph cannot run");

  Graph badTypes = parse(
      "graph @main(%x: f32[2]) -> (%y: f32[3]) {\n"
      "  %y = relu %x : f32[3]\n"
      "  return %y\n"
      "}\n");
  EXPECT_FALSE(Executor::create(badTypes).isOk());
}

TEST(CpuDevice, RunsReferenceKernelsAndRefusesWhatItCannot) {
  cpu::CpuDevice device;
  const OpDef* add = OpRegistry::global().find("add");
  ASSERT_NE(add, nullptr);
  EXPECT_TRUE(device.supports(*add));
  Tensor a = tensorOf<float>({2}, {1, 2});
  Tensor b = tensorOf<float>({2}, {10, 20});
  auto sum = device.allocate(DType::F32, {2});
  ASSERT_TRUE(sum.isOk());
  const Tensor* inputs[] = {&a, &b};
  Tensor* outputs[] = {&*sum};
  Status ran = device.run(*add, Attributes{}, inputs, outputs);
  ASSERT_TRUE(ran.isOk()) << ran.message();
  EXPECT_EQ(valuesOf<float>(*sum), (std::vector<float>{11, 22}));

  OpDef noKernel;
  noKernel.name = "mystery";
  EXPECT_FALSE(device.supports(noKernel));
  EXPECT_EQ(device.run(noKernel, Attributes{}, inputs, outputs).message(), "op 'mystery' has no CPU kernel");
  EXPECT_EQ(device.allocate(DType::F32, {2, -1}).status().message(),
            "cannot allocate a tensor of shape [2, -1]");
  EXPECT_EQ(device.allocate(DType::F64, {int64_t{1} << 40, int64_t{1} << 30}).status().message(),
            "tensor of shape [1099511627776, 1073741824] is too large to allocate");
  // 1 PiB: beyond any address space, so the allocation fails rather than overcommits.
  EXPECT_EQ(device.allocate(DType::F64, {int64_t{1} << 47}).status().message(),
            "out of memory allocating f64[140737488355328] (1125899906842624 bytes)");
}

}  // namespace
}  // namespace kiln::rt
