// The executor on small graphs: results by hand, input checks with their
// exact messages, symbol binding, and op errors with their context; sessions
// running by the memory plan (results in the arena, views, in-place reuse,
// plans made for runs past the bounds), and several sessions on threads.
#include "runtime/executor.h"

#include <gtest/gtest.h>

#include <thread>

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

// A session reuses the last run's shapes while the bindings stay, except
// for ops whose shapes come from operand values: the same contradicting
// reshape is caught on a session's second run as on its first.
TEST(Session, RunsAtTheSameBindingsReinferOnlyValueDependentShapes) {
  Graph graph = parse(
      "graph @main(%x: f32[a, b], %shape: i64[2]) -> (%y: f32[a, b], %z: f32[a, b]) {\n"
      "  %y = reshape %x, %shape : f32[a, b] loc(\"Reshape_3\")\n"
      "  %z = relu %x : f32[a, b]\n"
      "  return %y, %z\n"
      "}\n");
  auto executor = makeExecutor(graph);
  ASSERT_TRUE(executor);
  Session session(*executor);
  const Tensor x = tensorOf<float>({2, 3}, {-1, 2, -3, 4, -5, 6});
  for (int round = 0; round < 2; ++round) {
    auto ran = session.run({x, tensorOf<int64_t>({2}, {2, 3})});
    ASSERT_TRUE(ran.isOk()) << ran.status().message();
    EXPECT_EQ(valuesOf<float>((*ran)[1]), (std::vector<float>{0, 2, 0, 4, 0, 6})) << "round " << round;
  }
  auto contradicting = session.run({x, tensorOf<int64_t>({2}, {3, 2})});
  ASSERT_FALSE(contradicting.isOk());
  EXPECT_EQ(contradicting.status().message(),
            "op 'reshape' defining %y (loc \"Reshape_3\"): result %y is f32[3, 2] but the graph "
            "declares f32[a, b] (a = 2, b = 3)");
  // Other bindings, then the first again: each run's shapes are its own.
  for (int64_t rows : {2, 1, 2}) {
    std::vector<float> values(static_cast<size_t>(rows * 3), -2.f);
    values.back() = 7.f;
    auto ran = session.run({tensorOf<float>({rows, 3}, values), tensorOf<int64_t>({2}, {rows, 3})});
    ASSERT_TRUE(ran.isOk()) << ran.status().message();
    EXPECT_EQ((*ran)[1].shape(), (std::vector<int64_t>{rows, 3}));
    EXPECT_EQ(valuesOf<float>((*ran)[1]).back(), 7.f);
  }
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

// Four ops whose results the planner packs: %a and %b reuse %x-sized slots
// in place, %v is a view (no bytes of its own), and only the output outlives
// the run.
constexpr std::string_view kChain =
    "graph @main(%x: f32[n, 4]) -> (%y: f32[n, 2, 2]) {\n"
    "  weight @w : f32[4] = [1.0, 2.0, 3.0, 4.0]\n"
    "  %a = mul %x, %x : f32[n, 4]\n"
    "  %b = sub %a, @w : f32[n, 4]\n"
    "  %c = neg %b : f32[n, 4]\n"
    "  %v = reshape %c {shape = [n, 2, 2]} : f32[n, 2, 2]\n"
    "  %y = relu %v : f32[n, 2, 2]\n"
    "  return %y\n"
    "}\n";

// kChain by hand: relu(w - x*x), flat.
std::vector<float> chainReference(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  const float w[] = {1, 2, 3, 4};
  for (size_t i = 0; i < x.size(); ++i) y[i] = std::max(0.0f, -(x[i] * x[i] - w[i % 4]));
  return y;
}

std::unique_ptr<Executor> executorWithBounds(const Graph& graph, const SymbolBindings& bounds) {
  auto plan = planMemory(graph, bounds);
  EXPECT_TRUE(plan.isOk()) << plan.status().message();
  if (!plan) return nullptr;
  auto executor = Executor::create(graph, std::move(*plan));
  EXPECT_TRUE(executor.isOk()) << executor.status().message();
  return executor.isOk() ? std::move(*executor) : nullptr;
}

TEST(Session, ResultsLiveInTheArenaAtTheirPlannedOffsets) {
  Graph graph = parse(kChain);
  auto executor = executorWithBounds(graph, {{"n", 8}});
  ASSERT_TRUE(executor);
  const MemoryPlan& plan = executor->plan();
  // At n = 8 each f32[n, 4] register is 128 bytes; in-place reuse and the
  // view leave two slots live at once at most (%x is the caller's).
  EXPECT_EQ(plan.peakBytes, 128u);
  EXPECT_EQ(plan.registers[static_cast<size_t>(*graph.find("v"))].kind, RegisterPlan::View);

  Session session(*executor);
  Tensor x = tensorOf<float>({2, 4}, {1, -1, 0, 2, 0.5f, 3, -2, 1});
  auto first = session.run({x});
  ASSERT_TRUE(first.isOk()) << first.status().message();
  EXPECT_EQ(session.lastRun().registersOffPlan, 0);
  EXPECT_FALSE(session.lastRun().replanned);
  EXPECT_EQ(session.lastRun().arenaBytes, 128u);
  EXPECT_EQ((*first)[0].shape(), (std::vector<int64_t>{2, 2, 2}));
  EXPECT_EQ(valuesOf<float>((*first)[0]), (std::vector<float>{0, 1, 3, 0, 0.75f, 0, 0, 3}));
  EXPECT_EQ(valuesOf<float>((*first)[0]), chainReference(valuesOf<float>(x)));

  // A second run writes the same slot: the output is at the same address,
  // and nothing of the first run leaks into it.
  Tensor x2 = tensorOf<float>({1, 4}, {3, 3, 3, 3});
  auto second = session.run({x2});
  ASSERT_TRUE(second.isOk()) << second.status().message();
  EXPECT_EQ((*second)[0].data(), (*first)[0].data());
  EXPECT_EQ(valuesOf<float>((*second)[0]), std::vector<float>(4, 0.0f));
}

TEST(Session, InPlaceAndViewResultsComputeWhatSeparateBuffersWould) {
  // %s feeds two ops, so the first may not take it over; %t takes %s at its
  // last read; %u is a view of the input, and as an output it is copied.
  Graph graph = parse(
      "graph @main(%x: f32[n], %y: f32[n]) -> (%t: f32[n], %u: f32[n, 1], %s2: f32[n]) {\n"
      "  %s = add %x, %y : f32[n]\n"
      "  %s2 = mul %s, %s : f32[n]\n"
      "  %t = sub %s, %y : f32[n]\n"
      "  %u = reshape %x {shape = [n, 1]} : f32[n, 1]\n"
      "  return %t, %u, %s2\n"
      "}\n");
  auto executor = makeExecutor(graph);
  ASSERT_TRUE(executor);
  Session session(*executor);
  Tensor x = tensorOf<float>({3}, {1, 2, 3});
  Tensor y = tensorOf<float>({3}, {10, 20, 30});
  auto outputs = session.run({x, y});
  ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
  EXPECT_EQ(valuesOf<float>((*outputs)[0]), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(valuesOf<float>((*outputs)[1]), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(valuesOf<float>((*outputs)[2]), (std::vector<float>{121, 484, 1089}));
  EXPECT_NE((*outputs)[1].data(), x.data());  // the view of the input is copied out
  x.data<float>()[0] = 100;
  EXPECT_EQ((*outputs)[1].data<float>()[0], 1.0f);
}

TEST(Session, RunsPastTheBoundsUnderAPlanForTheirBindings) {
  Graph graph = parse(kChain);
  auto executor = executorWithBounds(graph, {{"n", 2}});
  ASSERT_TRUE(executor);
  EXPECT_EQ(executor->plan().peakBytes, 64u);  // 32 bytes rounded up to 64
  Session session(*executor);

  std::vector<float> values(40);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 7) - 3.5f;
  auto big = session.run({tensorOf<float>({10, 4}, values)});
  ASSERT_TRUE(big.isOk()) << big.status().message();
  EXPECT_TRUE(session.lastRun().replanned);
  EXPECT_EQ(session.lastRun().registersOffPlan, 0);
  EXPECT_EQ(session.lastRun().arenaBytes, 192u);  // 160 bytes at n = 10, aligned
  EXPECT_EQ(valuesOf<float>((*big)[0]), chainReference(values));

  // Back within the bounds: the compiled plan, in the arena already there.
  auto small = session.run({tensorOf<float>({1, 4}, {-1, -1, -1, -1})});
  ASSERT_TRUE(small.isOk()) << small.status().message();
  EXPECT_FALSE(session.lastRun().replanned);
  EXPECT_EQ(session.lastRun().arenaBytes, 192u);
  EXPECT_EQ(valuesOf<float>((*small)[0]), (std::vector<float>{0, 1, 2, 3}));
}

TEST(Executor, KeepsTheLastFewPlansMadeAtRunTime) {
  Graph graph = parse(kChain);
  auto executor = executorWithBounds(graph, {{"n", 2}});
  ASSERT_TRUE(executor);
  bool replanned = true;
  auto within = executor->planFor({{"n", 2}}, &replanned);
  ASSERT_TRUE(within.isOk());
  EXPECT_FALSE(replanned);
  EXPECT_EQ(&(*within)->plan, &executor->plan());

  auto first = executor->planFor({{"n", 100}}, &replanned);
  ASSERT_TRUE(first.isOk());
  EXPECT_TRUE(replanned);
  EXPECT_EQ((*first)->plan.bounds, (SymbolBindings{{"n", 100}}));
  EXPECT_EQ((*first)->plan.peakBytes, 1600u);
  EXPECT_EQ(*executor->planFor({{"n", 100}}), *first);  // cached
  // Up to n = 4 the compiled plan's 64-byte slots still fit; kPlanCacheSize
  // other bindings past that push the plan for n = 100 out.
  EXPECT_EQ(*executor->planFor({{"n", 4}}), *within);
  for (int64_t n = 10; n < 10 + static_cast<int64_t>(Executor::kPlanCacheSize); ++n)
    ASSERT_TRUE(executor->planFor({{"n", n}}).isOk());
  EXPECT_NE(*executor->planFor({{"n", 100}}), *first);
}

TEST(Session, AGraphThatCannotBePlannedAllocatesEachResult) {
  // The shape operand makes %r's dims known only at run time.
  Graph graph = parse(
      "graph @main(%x: f32[4], %shape: i64[2]) -> (%y: f32[?, ?]) {\n"
      "  %r = reshape %x, %shape : f32[?, ?]\n"
      "  %y = neg %r : f32[?, ?]\n"
      "  return %y\n"
      "}\n");
  auto executor = makeExecutor(graph);
  ASSERT_TRUE(executor);
  EXPECT_FALSE(executor->planned());
  EXPECT_NE(executor->unplannedReason().find("has a dim unknown at compile time"), std::string::npos)
      << executor->unplannedReason();
  Session session(*executor);
  auto outputs = session.run({tensorOf<float>({4}, {1, 2, 3, 4}), tensorOf<int64_t>({2}, {2, 2})});
  ASSERT_TRUE(outputs.isOk()) << outputs.status().message();
  EXPECT_EQ((*outputs)[0].shape(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(valuesOf<float>((*outputs)[0]), (std::vector<float>{-1, -2, -3, -4}));
  EXPECT_EQ(session.lastRun().arenaBytes, 0u);
  EXPECT_EQ(session.lastRun().registersOffPlan, 2);
}

TEST(Executor, RefusesAPlanForAnotherGraphOrAnUnknownDeviceOrMemory) {
  Graph graph = parse(kChain);
  Graph other = parse(kAddRelu);
  auto otherPlan = planMemory(other, {{"batch", 1}});
  ASSERT_TRUE(otherPlan.isOk());
  auto mismatched = Executor::create(graph, *otherPlan);
  ASSERT_FALSE(mismatched.isOk());
  EXPECT_EQ(mismatched.status().message(), "the memory plan has 5 register(s); the graph has 7 value(s)");

  auto plan = planMemory(graph, {{"n", 2}});
  ASSERT_TRUE(plan.isOk());
  MemoryPlan onVram = *plan;
  onVram.registers[static_cast<size_t>(*graph.find("b"))].memory = "vram";
  auto vram = Executor::create(graph, onVram);
  ASSERT_FALSE(vram.isOk());
  EXPECT_EQ(vram.status().message(),
            "the memory plan's register for %b is in memory 'vram', which device 'cpu' does not have");
}

TEST(Session, SessionsOfOneExecutorRunOnThreadsAtOnce) {
  // Each thread's session has its own arena; the executor (graph, weights,
  // plans and the cache of plans made at run time) is shared. Half the
  // threads run past the bounds, so plans are made and cached concurrently.
  Graph graph = parse(kChain);
  auto executor = executorWithBounds(graph, {{"n", 4}});
  ASSERT_TRUE(executor);
  constexpr int kThreads = 6, kRuns = 40;
  std::vector<int> correct(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Session session(*executor);
      for (int i = 0; i < kRuns; ++i) {
        const int64_t rows = 1 + (t + i) % (t % 2 ? 9 : 4);  // odd threads go up to 9 rows
        std::vector<float> x(static_cast<size_t>(rows * 4));
        for (size_t k = 0; k < x.size(); ++k) x[k] = 0.25f * static_cast<float>(t) - 0.5f * static_cast<float>(k % 5);
        auto outputs = session.run({tensorOf<float>({rows, 4}, x)});
        if (outputs && valuesOf<float>((*outputs)[0]) == chainReference(x)) ++correct[static_cast<size_t>(t)];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(correct, std::vector<int>(kThreads, kRuns));
}

TEST(CpuDevice, ReservesAnArenaWithoutTouchingIt) {
  cpu::CpuDevice device;
  auto arena = device.reserveArena("host", size_t{1} << 30);  // 1 GiB of address space, no pages yet
  ASSERT_TRUE(arena.isOk()) << arena.status().message();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(arena->get()) % kArenaAlignment, 0u);
  static_cast<char*>(arena->get())[(size_t{1} << 30) - 1] = 1;  // the last byte is there
  auto empty = device.reserveArena("host", 0);
  ASSERT_TRUE(empty.isOk());
  EXPECT_EQ(empty->get(), nullptr);
  EXPECT_EQ(device.reserveArena("vram", 64).status().message(),
            "device 'cpu' has no memory space 'vram' (it has 'host')");
  EXPECT_EQ(findDevice("cpu")->name(), "cpu");
  EXPECT_EQ(findDevice("gpu"), nullptr);
}

TEST(CpuDevice, RunsReferenceKernelsAndRefusesBadAllocations) {
  cpu::CpuDevice device;
  // It falls back to the reference backend, which has a kernel for every op.
  for (const OpDef* def : OpRegistry::global().all()) EXPECT_TRUE(device.supports(*def)) << def->name;
  const OpDef* add = OpRegistry::global().find("add");
  ASSERT_NE(add, nullptr);
  Tensor a = tensorOf<float>({2}, {1, 2});
  Tensor b = tensorOf<float>({2}, {10, 20});
  auto sum = device.allocate(DType::F32, {2});
  ASSERT_TRUE(sum.isOk());
  const Tensor* inputs[] = {&a, &b};
  Tensor* outputs[] = {&*sum};
  Status ran = device.run(*add, Attributes{}, inputs, outputs, nullptr);
  ASSERT_TRUE(ran.isOk()) << ran.message();
  EXPECT_EQ(valuesOf<float>(*sum), (std::vector<float>{11, 22}));

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
