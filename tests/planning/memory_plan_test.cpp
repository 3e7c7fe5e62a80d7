// Memory plans of small graphs (text IR), with offsets checked by hand:
// liveness in op order, inputs and weights outside the arena, views sharing
// their operand's slot, in-place results taking over an operand's slot at
// its last read, sizes at the bounds, and the errors.
#include "runtime/planning/memory_plan.h"

#include <gtest/gtest.h>

#include "ir/text.h"
#include "tests/unit/op_test_support.h"

namespace kiln::rt {
namespace {

using namespace testsupport;

const RegisterPlan& reg(const MemoryPlan& plan, const Graph& graph, const std::string& name) {
  return plan.registers.at(static_cast<size_t>(graph.find(name).value()));
}

TEST(MemoryPlan, EachDevicesRegistersGetAnArenaOfTheirOwn) {
  // %xd, %a and %b live in opencl's memory, %y in the host's: each space
  // starts at offset 0. The uploaded weight %wd has no slot.
  const Graph graph = parse(R"(graph @main(%x: f32[4, 4]) -> (%y: f32[4, 4]) {
  weight @w : f32[4, 4]
  %xd = transfer %x {from = "cpu", to = "opencl"} : f32[4, 4] on "opencl"
  %wd = transfer @w {from = "cpu", to = "opencl"} : f32[4, 4] on "opencl"
  %a = matmul %xd, %wd : f32[4, 4] on "opencl"
  %b = matmul %a, %wd : f32[4, 4] on "opencl"
  %y = transfer %b {from = "opencl", to = "cpu"} : f32[4, 4]
  return %y
}
)");
  Expected<MemoryPlan> plan = planMemory(graph, {});
  ASSERT_TRUE(plan.isOk()) << plan.status().message();
  for (const char* name : {"xd", "a", "b"}) {
    EXPECT_EQ(reg(*plan, graph, name).device, "opencl") << name;
    EXPECT_EQ(reg(*plan, graph, name).memory, "opencl") << name;
    EXPECT_EQ(reg(*plan, graph, name).kind, RegisterPlan::Arena) << name;
  }
  EXPECT_EQ(reg(*plan, graph, "wd").kind, RegisterPlan::Weight);
  EXPECT_EQ(reg(*plan, graph, "wd").memory, "opencl");
  EXPECT_EQ(reg(*plan, graph, "y").memory, std::string(kHostMemory));
  EXPECT_EQ(reg(*plan, graph, "y").offset, 0u);
  EXPECT_EQ(reg(*plan, graph, "x").memory, std::string(kHostMemory));
  // opencl: %xd, %a, %b with %xd's slot free again for %b (128 bytes); host: %y.
  EXPECT_EQ(plan->peakBytes, 128u + 64u);
  EXPECT_EQ(plan->buffers, 3);
}

TEST(MemoryPlan, ChainReusesSlotsOnceTheirLastReadIsPast) {
  // 16 floats per register, 64 bytes. %a is last read by op 1, so %c (op 2)
  // takes its slot; %y takes %b's.
  const Graph graph = parse(R"(graph @main(%x: f32[4, 4]) -> (%y: f32[4, 4]) {
  weight @w : f32[4, 4]
  %a = matmul %x, @w : f32[4, 4]
  %b = matmul %a, @w : f32[4, 4]
  %c = matmul %b, @w : f32[4, 4]
  %y = matmul %c, @w : f32[4, 4]
  return %y
}
)");
  Expected<MemoryPlan> plan = planMemory(graph, {});
  ASSERT_TRUE(plan.isOk()) << plan.status().message();
  EXPECT_EQ(reg(*plan, graph, "a").offset, 0u);
  EXPECT_EQ(reg(*plan, graph, "b").offset, 64u);
  EXPECT_EQ(reg(*plan, graph, "c").offset, 0u);
  EXPECT_EQ(reg(*plan, graph, "y").offset, 64u);
  EXPECT_EQ(reg(*plan, graph, "c").buffer, 0);
  EXPECT_EQ(reg(*plan, graph, "y").buffer, 1);
  EXPECT_EQ(plan->peakBytes, 128u);
  EXPECT_EQ(plan->naiveBytes, 256u);
  EXPECT_EQ(plan->lowerBoundBytes, 128u);
  EXPECT_EQ(plan->buffers, 2);

  const RegisterPlan& a = reg(*plan, graph, "a");
  EXPECT_EQ(a.kind, RegisterPlan::Arena);
  EXPECT_EQ(a.bytes, 64u);
  EXPECT_EQ(a.liveStart, 0);
  EXPECT_EQ(a.liveEnd, 1);
  EXPECT_EQ(a.device, "cpu");
  EXPECT_EQ(a.memory, "host");
  // The output lives past the last op (op 3).
  EXPECT_EQ(reg(*plan, graph, "y").liveStart, 3);
  EXPECT_EQ(reg(*plan, graph, "y").liveEnd, 4);
  // Inputs and weights are not in the arena.
  const RegisterPlan& x = reg(*plan, graph, "x");
  EXPECT_EQ(x.kind, RegisterPlan::Input);
  EXPECT_EQ(x.buffer, -1);
  EXPECT_EQ(x.liveEnd, 0);
  const RegisterPlan& w = reg(*plan, graph, "w");
  EXPECT_EQ(w.kind, RegisterPlan::Weight);
  EXPECT_EQ(w.buffer, -1);
  EXPECT_EQ(w.bytes, 64u);
  EXPECT_EQ(w.liveEnd, 3);
}

TEST(MemoryPlan, ElementwiseResultsTakeOverTheirOperandAtItsLastRead) {
  // batch = 2: 16 floats, 64 bytes each. %b overwrites %a; %c cannot
  // overwrite %b, which it reads twice; %y overwrites %c. The input is the
  // caller's and is never overwritten.
  const Graph graph = parse(R"(graph @main(%x: f32[batch, 8]) -> (%y: f32[batch, 8]) {
  %a = exp %x : f32[batch, 8]
  %b = tanh %a : f32[batch, 8]
  %c = add %b, %b : f32[batch, 8]
  %y = neg %c : f32[batch, 8]
  return %y
}
)");
  Expected<MemoryPlan> plan = planMemory(graph, {{"batch", 2}});
  ASSERT_TRUE(plan.isOk()) << plan.status().message();
  EXPECT_EQ(reg(*plan, graph, "a").offset, 0u);
  EXPECT_EQ(reg(*plan, graph, "b").offset, 0u);
  EXPECT_EQ(reg(*plan, graph, "c").offset, 64u);
  EXPECT_EQ(reg(*plan, graph, "y").offset, 64u);
  EXPECT_EQ(plan->peakBytes, 128u);
  EXPECT_EQ(plan->naiveBytes, 256u);
  // Step 2 holds %b and %c.
  EXPECT_EQ(plan->lowerBoundBytes, 128u);
  EXPECT_EQ(plan->buffers, 2);
  EXPECT_EQ(plan->bounds.at("batch"), 2);
}

TEST(MemoryPlan, InPlaceNeedsTheSameShapeAndAnOperandAtItsLastRead) {
  // %s (4 floats) broadcasts in the add, so the result cannot take it over;
  // %e has the result's shape and is read for the last time: the add
  // writes into %e (operand 1).
  const Graph graph = parse(R"(graph @main(%x: f32[4, 4], %v: f32[1, 4]) -> (%y: f32[4, 4], %t: f32[4, 4]) {
  %s = exp %v : f32[1, 4]
  %e = exp %x : f32[4, 4]
  %t = sigmoid %x : f32[4, 4]
  %y = add %s, %e : f32[4, 4]
  %z = relu %t : f32[4, 4]
  return %y, %t
}
)");
  Expected<MemoryPlan> plan = planMemory(graph, {});
  ASSERT_TRUE(plan.isOk()) << plan.status().message();
  // Ops 0-2 stack %s, %e and %t; the add (op 3) writes into %e.
  EXPECT_EQ(reg(*plan, graph, "s").offset, 0u);
  EXPECT_EQ(reg(*plan, graph, "e").offset, 64u);
  EXPECT_EQ(reg(*plan, graph, "t").offset, 128u);
  EXPECT_EQ(reg(*plan, graph, "y").offset, 64u);
  // %z is never read but its op writes it: it gets a slot of its own at
  // its step; %t is an output, so %z cannot overwrite it. %s is free by then.
  EXPECT_EQ(reg(*plan, graph, "z").offset, 0u);
  EXPECT_EQ(reg(*plan, graph, "z").liveStart, 4);
  EXPECT_EQ(reg(*plan, graph, "z").liveEnd, 4);
  EXPECT_EQ(plan->peakBytes, 192u);
  EXPECT_EQ(plan->naiveBytes, 64u * 5);
  EXPECT_EQ(plan->lowerBoundBytes, 192u);
}

TEST(MemoryPlan, ViewsShareTheirOperandsSlotAndExtendItsLife) {
  const Graph graph = parse(R"(graph @main(%x: f32[2, 8]) -> (%y: f32[16]) {
  %a = exp %x : f32[2, 8]
  %v = reshape %a {shape = [16]} : f32[16]
  %b = sigmoid %x : f32[2, 8]
  %w = reshape %b {shape = [16]} : f32[16]
  %y = sub %v, %w : f32[16]
  return %y
}
)");
  Expected<MemoryPlan> plan = planMemory(graph, {});
  ASSERT_TRUE(plan.isOk()) << plan.status().message();
  const RegisterPlan& a = reg(*plan, graph, "a");
  const RegisterPlan& v = reg(*plan, graph, "v");
  EXPECT_EQ(a.kind, RegisterPlan::Arena);
  EXPECT_EQ(a.liveEnd, 4);  // %v is read by op 4
  EXPECT_EQ(v.kind, RegisterPlan::View);
  EXPECT_EQ(v.viewOf, graph.find("a").value());
  EXPECT_EQ(v.offset, a.offset);
  EXPECT_EQ(v.buffer, a.buffer);
  EXPECT_EQ(v.liveStart, 1);
  EXPECT_EQ(v.liveEnd, 4);
  EXPECT_EQ(reg(*plan, graph, "b").offset, 64u);
  EXPECT_EQ(reg(*plan, graph, "w").offset, 64u);
  EXPECT_EQ(reg(*plan, graph, "w").viewOf, graph.find("b").value());
  // The sub writes over %a through its view %v (operand 0).
  EXPECT_EQ(reg(*plan, graph, "y").offset, 0u);
  EXPECT_EQ(plan->peakBytes, 128u);
  EXPECT_EQ(plan->naiveBytes, 64u * 5);
  EXPECT_EQ(plan->lowerBoundBytes, 128u);
  EXPECT_EQ(plan->buffers, 2);
}

TEST(MemoryPlan, ViewsOfViewsOutputsAndInputs) {
  const Graph graph = parse(R"(graph @main(%x: f32[2, 8]) -> (%v: f32[4, 4], %u: f32[16]) {
  %a = exp %x : f32[2, 8]
  %r = reshape %a {shape = [16]} : f32[16]
  %v = reshape %r {shape = [4, 4]} : f32[4, 4]
  %u = reshape %x {shape = [16]} : f32[16]
  %b = exp %x : f32[2, 8]
  return %v, %u
}
)");
  Expected<MemoryPlan> plan = planMemory(graph, {});
  ASSERT_TRUE(plan.isOk()) << plan.status().message();
  // A view of a view names the register that owns the bytes.
  EXPECT_EQ(reg(*plan, graph, "v").viewOf, graph.find("a").value());
  // %v is an output: %a's slot is live past the last op, and %b cannot use it.
  EXPECT_EQ(reg(*plan, graph, "a").liveEnd, 5);
  EXPECT_EQ(reg(*plan, graph, "b").offset, 64u);
  // A view of an input is the caller's memory.
  const RegisterPlan& u = reg(*plan, graph, "u");
  EXPECT_EQ(u.kind, RegisterPlan::View);
  EXPECT_EQ(u.viewOf, graph.find("x").value());
  EXPECT_EQ(u.buffer, -1);
  EXPECT_EQ(plan->peakBytes, 128u);
  EXPECT_EQ(plan->buffers, 2);
}

TEST(MemoryPlan, SizesAtTheBoundsRoundedUpToTheAlignment) {
  const Graph graph = parse(R"(graph @main(%x: f32[batch, seq, 5]) -> (%y: f16[batch, seq + 1, 5]) {
  %p = constant_of_shape {dtype = "f16", shape = [batch, seq + 1, 5]} : f16[batch, seq + 1, 5]
  %y = neg %p : f16[batch, seq + 1, 5]
  return %y
}
)");
  Expected<MemoryPlan> plan = planMemory(graph, {{"batch", 2}, {"seq", 9}});
  ASSERT_TRUE(plan.isOk()) << plan.status().message();
  // 2 * 10 * 5 halves = 200 bytes -> 256.
  EXPECT_EQ(reg(*plan, graph, "p").bytes, 256u);
  EXPECT_EQ(reg(*plan, graph, "y").offset, 0u);  // in place
  EXPECT_EQ(plan->peakBytes, 256u);
  EXPECT_EQ(plan->naiveBytes, 512u);
  // 2 * 9 * 5 floats = 360 bytes; the input is not in the arena.
  EXPECT_EQ(reg(*plan, graph, "x").bytes, 384u);
}

TEST(MemoryPlan, UnboundSymbolIsAnErrorNamingTheRegister) {
  const Graph graph = parse(R"(graph @main(%x: f32[batch, seq]) -> (%y: f32[batch, seq]) {
  %y = exp %x : f32[batch, seq]
  return %y
}
)");
  Expected<MemoryPlan> plan = planMemory(graph, {{"batch", 1}});
  ASSERT_FALSE(plan.isOk());
  EXPECT_NE(plan.status().message().find("register %y : f32[batch, seq]"), std::string::npos)
      << plan.status().message();
  EXPECT_NE(plan.status().message().find("symbol seq has no bound"), std::string::npos)
      << plan.status().message();
}

TEST(MemoryPlan, UnknownDimIsAnErrorNamingTheRegister) {
  const Graph graph = parse(R"(graph @main(%x: f32[6], %s: i64[2]) -> (%r: f32[?, ?]) {
  %r = reshape %x, %s : f32[?, ?]
  return %r
}
)");
  Expected<MemoryPlan> plan = planMemory(graph, {});
  ASSERT_FALSE(plan.isOk());
  EXPECT_NE(plan.status().message().find("register %r : f32[?, ?] has a dim unknown"), std::string::npos)
      << plan.status().message();
}

TEST(MemoryPlan, NegativeDimAtTheBoundsIsAnError) {
  const Graph graph = parse(R"(graph @main(%x: f32[seq]) -> (%y: f32[seq - 4]) {
  %y = slice %x {ends = [seq], starts = [4]} : f32[seq - 4]
  return %y
}
)");
  Expected<MemoryPlan> plan = planMemory(graph, {{"seq", 2}});
  ASSERT_FALSE(plan.isOk());
  EXPECT_NE(plan.status().message().find("dim seq - 4 is -2 at the bounds"), std::string::npos)
      << plan.status().message();
}

TEST(MemoryPlan, EmptyGraphAndPassThrough) {
  const Graph graph = parse(R"(graph @main(%x: f32[4]) -> (%x: f32[4]) {
  return %x
}
)");
  Expected<MemoryPlan> plan = planMemory(graph, {});
  ASSERT_TRUE(plan.isOk()) << plan.status().message();
  EXPECT_EQ(plan->peakBytes, 0u);
  EXPECT_EQ(plan->naiveBytes, 0u);
  EXPECT_EQ(plan->lowerBoundBytes, 0u);
  EXPECT_EQ(plan->buffers, 0);
  EXPECT_EQ(reg(*plan, graph, "x").kind, RegisterPlan::Input);
}

TEST(PlanningBounds, BatchLikeSymbolsOneOthers2048UnlessGiven) {
  const Graph graph = parse(R"(graph @main(%x: f32[batch, seq, past_sequence], %m: f32[Batch_Size]) -> (%y: f32[batch, seq, past_sequence]) {
  %y = exp %x : f32[batch, seq, past_sequence]
  return %y
}
)");
  const SymbolBindings bounds = planningBounds(graph, {{"seq", 128}});
  EXPECT_EQ(bounds, (SymbolBindings{{"Batch_Size", 1}, {"batch", 1}, {"past_sequence", 2048}, {"seq", 128}}));
}

}  // namespace
}  // namespace kiln::rt
