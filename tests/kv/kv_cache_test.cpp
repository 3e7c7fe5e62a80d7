// Stateful decoding: Session::step keeps a decoder's KV cache and appends to
// it in place. Checked against stateless runs with explicit past inputs (the
// same model, the same tokens) on the test decoder (data/decoder.kir).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "ir/text.h"
#include "runtime/planning/memory_plan.h"
#include "tests/kv/kv_test_support.h"

namespace kiln::rt {
namespace {

using namespace kvtest;

Graph parse(std::string_view text) {
  auto graph = parseGraph(text);
  EXPECT_TRUE(graph.isOk()) << graph.status().message();
  return graph.isOk() ? std::move(*graph) : Graph();
}

const Graph& decoder() {
  static const Graph graph = parseFile(std::string(KILN_KV_TEST_DATA) + "/decoder.kir");
  return graph;
}

std::vector<char> cacheBytes(const Session& session) {
  std::vector<char> bytes;
  for (const Session::KvCache& layer : session.kvCache())
    for (const Tensor* t : {&layer.keys, &layer.values})
      bytes.insert(bytes.end(), static_cast<const char*>(t->data()),
                   static_cast<const char*>(t->data()) + t->byteSize());
  return bytes;
}

const std::vector<int64_t> kPrompt = {1, 2, 3, 4, 5};
const std::vector<int64_t> kContinuation = {9, 14, 0};

TEST(KvCache, FindsTheKvPairsByStructure) {
  auto executor = makeExecutor(decoder());
  ASSERT_TRUE(executor);
  const std::vector<KvLayer>& layers = executor->kvLayers();
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers[0].op, 3u);  // after gather, rms_norm and matmul
  EXPECT_EQ(layers[0].pastKeyInput, 1u);
  EXPECT_EQ(layers[0].pastValueInput, 2u);
  EXPECT_EQ(layers[1].presentKeyOutput, 3u);
  EXPECT_EQ(layers[1].presentValueOutput, 4u);
  EXPECT_EQ(layers[0].kvHeads, 1);
  EXPECT_EQ(layers[0].headDim, 4);
  EXPECT_EQ(layers[0].totalLength.str(), "past + seq");
  EXPECT_EQ(executor->stepInputs(), std::vector<size_t>{0});
  EXPECT_EQ(executor->stepOutputs(), std::vector<size_t>{0});
  // The default bounds: past = seq = 2048.
  EXPECT_EQ(executor->defaultKvCapacity(), 4096);
  EXPECT_EQ(Session(*executor).kvCapacity(), 4096);
  EXPECT_EQ(Session(*executor, SessionOptions{64}).kvCapacity(), 64);
}

TEST(KvCache, PastInputsReadElsewhereAreNoKvPair) {
  // past.key is also an output of its own: the session could not stand in
  // for it, so the model has no KV pairs.
  Graph graph = parse(
      "graph @g(%q: f32[1, seq, 12], %past.key: f32[1, 1, past, 4], %past.value: f32[1, 1, past, 4])"
      " -> (%out: f32[1, seq, 4], %k: f32[1, 1, past + seq, 4], %v: f32[1, 1, past + seq, 4],"
      " %copy: f32[1, 1, past, 4]) {\n"
      "  %out, %k, %v = attention %q, _, _, _, _, _, %past.key, %past.value {heads = 1, kv_heads = 1, "
      "out_layout = \"bsd\", qkv_layout = \"bsd_packed\", scale = 0.5} : f32[1, seq, 4], f32[1, 1, past + seq, 4], "
      "f32[1, 1, past + seq, 4]\n"
      "  %copy = identity %past.key : f32[1, 1, past, 4]\n"
      "  return %out, %k, %v, %copy\n"
      "}\n");
  auto executor = makeExecutor(graph);
  ASSERT_TRUE(executor);
  EXPECT_TRUE(executor->kvLayers().empty());
  EXPECT_EQ(executor->defaultKvCapacity(), 0);
  Session session(*executor);
  auto stepped = session.step({});
  ASSERT_FALSE(stepped.isOk());
  EXPECT_EQ(stepped.status().message(),
            "graph @g has no KV cache to step: no attention op reads past keys and values from graph inputs and "
            "writes the present ones to graph outputs; run it with explicit inputs instead");
}

TEST(KvCache, StepsGiveTheLogitsOfStatelessRuns) {
  auto executor = makeExecutor(decoder());
  ASSERT_TRUE(executor);
  std::vector<int64_t> all = kPrompt;
  all.insert(all.end(), kContinuation.begin(), kContinuation.end());
  // The whole 8-token prefix in one stateless run.
  const std::vector<Tensor> whole = runStateless(*executor, tokens(all), emptyPast(*executor));
  ASSERT_EQ(whole.size(), 5u);

  Session session(*executor);
  Tensor prefill = stepLogits(session, kPrompt);
  ASSERT_EQ(prefill.shape(), (std::vector<int64_t>{1, 5, 16}));
  EXPECT_EQ(session.kvLength(), 5);
  for (int64_t s = 0; s < 5; ++s) expectNear(logitsRow(prefill, s), logitsRow(whole[0], s), 1e-5f);

  // Stateless again, step by step, each run fed the presents of the last:
  // the same kernels on the same rows, so the same bits.
  std::vector<Tensor> chained = runStateless(*executor, tokens(kPrompt), emptyPast(*executor));
  EXPECT_EQ(floats(chained[0]), floats(prefill));
  for (size_t i = 0; i < kContinuation.size(); ++i) {
    Tensor logits = stepLogits(session, {kContinuation[i]});
    ASSERT_EQ(logits.shape(), (std::vector<int64_t>{1, 1, 16}));
    EXPECT_EQ(session.kvLength(), static_cast<int64_t>(6 + i));
    expectNear(logitsRow(logits, 0), logitsRow(whole[0], static_cast<int64_t>(5 + i)), 1e-5f);
    chained = runStateless(*executor, tokens({kContinuation[i]}),
                           std::vector<Tensor>(chained.begin() + 1, chained.end()));
    EXPECT_EQ(floats(chained[0]), floats(logits)) << "step " << i;
  }
  // The cache holds what the stateless runs returned as presents.
  for (size_t l = 0; l < 2; ++l) {
    EXPECT_EQ(cachedRows(session.kvCache()[l].keys, 8), floats(chained[1 + 2 * l])) << "layer " << l;
    EXPECT_EQ(cachedRows(session.kvCache()[l].values, 8), floats(chained[2 + 2 * l])) << "layer " << l;
  }
}

TEST(KvCache, AFullCacheFailsBeforeRunningAndKeepsItsTokens) {
  auto executor = makeExecutor(decoder());
  ASSERT_TRUE(executor);
  Session session(*executor, SessionOptions{8});
  stepLogits(session, kPrompt);
  stepLogits(session, {kContinuation[0]});
  ASSERT_EQ(session.kvLength(), 6);
  const std::vector<char> before = cacheBytes(session);

  Session::StepFailure failure = Session::StepFailure::None;
  auto full = session.step({tokens({7, 7, 7})}, &failure);
  ASSERT_FALSE(full.isOk());
  EXPECT_EQ(full.status().message(), "KV cache full: 6 cached + 3 new tokens exceed capacity 8");
  EXPECT_EQ(failure, Session::StepFailure::CacheFull);
  EXPECT_EQ(session.kvLength(), 6);
  EXPECT_EQ(cacheBytes(session), before);  // not a byte written, past rows or new

  // What fits still runs on the intact past: the last two of 8 tokens.
  std::vector<int64_t> all = kPrompt;
  all.insert(all.end(), kContinuation.begin(), kContinuation.end());
  const std::vector<Tensor> whole = runStateless(*executor, tokens(all), emptyPast(*executor));
  Tensor last = stepLogits(session, {kContinuation[1], kContinuation[2]});
  EXPECT_EQ(session.kvLength(), 8);
  expectNear(logitsRow(last, 0), logitsRow(whole[0], 6), 1e-5f);
  expectNear(logitsRow(last, 1), logitsRow(whole[0], 7), 1e-5f);
  auto more = session.step({tokens({1})}, &failure);
  ASSERT_FALSE(more.isOk());
  EXPECT_EQ(more.status().message(), "KV cache full: 8 cached + 1 new tokens exceed capacity 8");
}

TEST(KvCache, ResetStartsANewSequenceInTheSameMemory) {
  auto executor = makeExecutor(decoder());
  ASSERT_TRUE(executor);
  Session session(*executor);
  stepLogits(session, kPrompt);
  stepLogits(session, {kContinuation[0]});
  const void* keys = session.kvCache()[0].keys.data();
  session.resetKv();
  EXPECT_EQ(session.kvLength(), 0);
  Tensor again = stepLogits(session, {3, 1, 4});
  EXPECT_EQ(session.kvLength(), 3);
  EXPECT_EQ(session.kvCache()[0].keys.data(), keys);

  Session fresh(*executor);
  EXPECT_EQ(floats(again), floats(stepLogits(fresh, {3, 1, 4})));
}

TEST(KvCache, DecodeStepsReadAndExtendThePastInPlace) {
  auto executor = makeExecutor(decoder());
  ASSERT_TRUE(executor);
  Session session(*executor), untouched(*executor);
  stepLogits(session, kPrompt);
  stepLogits(untouched, kPrompt);
  const size_t arenaBytes = session.lastRun().arenaBytes;
  std::vector<const void*> pointers;
  for (const Session::KvCache& layer : session.kvCache()) {
    pointers.push_back(layer.keys.data());
    pointers.push_back(layer.values.data());
  }

  // Overwrite a past key row (layer 0, position 2) in the cache itself.
  float* row2 = session.kvCache()[0].keys.data<float>() + 2 * 4;
  const float poked[4] = {5, -5, 5, -5};
  std::memcpy(row2, poked, sizeof poked);

  for (int64_t id : kContinuation) {
    Tensor logits = stepLogits(session, {id});
    Tensor reference = stepLogits(untouched, {id});
    // The step attended over the poked row where it lies...
    EXPECT_NE(floats(logits), floats(reference));
    // ...and neither rewrote it nor moved the cache: no copy of the past.
    EXPECT_EQ(std::memcmp(row2, poked, sizeof poked), 0);
    std::vector<const void*> now;
    for (const Session::KvCache& layer : session.kvCache()) {
      now.push_back(layer.keys.data());
      now.push_back(layer.values.data());
    }
    EXPECT_EQ(now, pointers);
    // The presents get no memory: the arena is the plan's, nothing off it.
    EXPECT_EQ(session.lastRun().arenaBytes, arenaBytes);
    EXPECT_EQ(session.lastRun().registersOffPlan, 0);
  }
  // The new rows were appended after the prompt's in both sessions alike.
  EXPECT_EQ(cachedRows(session.kvCache()[0].values, 8), cachedRows(untouched.kvCache()[0].values, 8));
}

TEST(KvCache, StepsPastThePlanBoundsKeepTheCompiledPlan) {
  const Graph& graph = decoder();
  auto plan = planMemory(graph, {{"batch", 1}, {"past", 4}, {"seq", 4}});
  ASSERT_TRUE(plan.isOk()) << plan.status().message();
  auto small = Executor::create(graph, std::move(*plan), findKvLayers(graph));
  ASSERT_TRUE(small.isOk()) << small.status().message();
  EXPECT_EQ((*small)->defaultKvCapacity(), 8);
  auto reference = makeExecutor(graph);
  Session session(**small, SessionOptions{32}), wide(*reference);
  EXPECT_EQ(floats(stepLogits(session, {1, 2, 3})), floats(stepLogits(wide, {1, 2, 3})));
  for (int64_t i = 0; i < 12; ++i) {  // up to 15 past tokens, bound 4
    EXPECT_EQ(floats(stepLogits(session, {i % 16})), floats(stepLogits(wide, {i % 16})));
    EXPECT_FALSE(session.lastRun().replanned) << "at " << session.kvLength() << " tokens";
  }
}

TEST(KvCache, RefusesStepsThatDoNotFit) {
  auto executor = makeExecutor(decoder());
  ASSERT_TRUE(executor);
  Session session(*executor);
  Session::StepFailure failure = Session::StepFailure::None;
  auto none = session.step({}, &failure);
  ASSERT_FALSE(none.isOk());
  EXPECT_EQ(none.status().message(),
            "a step of graph @decoder takes 1 input(s) ('input_ids'; the past keys and values come from the KV "
            "cache), got 0");
  EXPECT_EQ(failure, Session::StepFailure::Inputs);
  Tensor floatIds = Tensor::allocate(DType::F32, {1, 2});
  auto wrongType = session.step({floatIds});
  ASSERT_FALSE(wrongType.isOk());
  EXPECT_EQ(wrongType.status().message(), "input 'input_ids': expected i64[batch, seq], got f32[1, 2]");
  EXPECT_EQ(session.kvLength(), 0);

  stepLogits(session, kPrompt);
  auto otherBatch = session.step({tokens({1}, 2)}, &failure);
  ASSERT_FALSE(otherBatch.isOk());
  EXPECT_EQ(otherBatch.status().message(),
            "the KV cache holds 5 token(s) of batch 1; this step has batch 2 (reset the session to change the "
            "batch)");
  EXPECT_EQ(session.kvLength(), 5);

  // After a reset the cache is made again for the new batch; both rows of
  // the batch see the same tokens, so they get the same logits.
  session.resetKv();
  auto two = session.step({tokens({1, 2}, 2)});
  ASSERT_TRUE(two.isOk()) << two.status().message();
  EXPECT_EQ((*two)[0].shape(), (std::vector<int64_t>{2, 2, 16}));
  EXPECT_EQ(session.kvCache()[0].keys.shape(), (std::vector<int64_t>{2, 1, 4096, 4}));
  const std::vector<float> both = floats((*two)[0]);
  EXPECT_EQ(std::vector<float>(both.begin(), both.begin() + 32),
            std::vector<float>(both.begin() + 32, both.end()));
}

TEST(KvCache, StatelessRunsLeaveTheCacheAlone) {
  auto executor = makeExecutor(decoder());
  ASSERT_TRUE(executor);
  Session session(*executor), reference(*executor);
  stepLogits(session, kPrompt);
  stepLogits(reference, kPrompt);
  const std::vector<char> before = cacheBytes(session);
  std::vector<Tensor> inputs = {tokens({4, 4})};
  for (Tensor& past : emptyPast(*executor)) inputs.push_back(past);
  auto ran = session.run(inputs);
  ASSERT_TRUE(ran.isOk()) << ran.status().message();
  EXPECT_EQ(ran->size(), 5u);  // run returns the presents too
  EXPECT_EQ(session.kvLength(), 5);
  EXPECT_EQ(cacheBytes(session), before);
  EXPECT_EQ(floats(stepLogits(session, {8})), floats(stepLogits(reference, {8})));
}

int64_t argmaxOfLastRow(const Tensor& logits) {
  const std::vector<float> row = logitsRow(logits, logits.shape()[1] - 1);
  return std::max_element(row.begin(), row.end()) - row.begin();
}

// The ids tests/lit/tools/generate.test expects of `kiln generate`: greedy
// decoding by steps, and by stateless runs over the whole prefix each time.
TEST(KvCache, GreedyDecodingMatchesStatelessRuns) {
  auto executor = makeExecutor(decoder());
  ASSERT_TRUE(executor);
  const std::vector<int64_t> expected = {12, 8, 4, 10, 5, 12, 8, 5, 12, 8, 4, 10};
  Session session(*executor);
  std::vector<int64_t> stepped, feed = {1, 2, 3};
  for (size_t i = 0; i < expected.size(); ++i) {
    stepped.push_back(argmaxOfLastRow(stepLogits(session, feed)));
    feed = {stepped.back()};
  }
  EXPECT_EQ(stepped, expected);

  std::vector<int64_t> prefix = {1, 2, 3}, rerun;
  for (size_t i = 0; i < expected.size(); ++i) {
    rerun.push_back(argmaxOfLastRow(runStateless(*executor, tokens(prefix), emptyPast(*executor))[0]));
    prefix.push_back(rerun.back());
  }
  EXPECT_EQ(rerun, expected);
}

// A past loaded from tensors is the past a stateless run takes as inputs,
// and a rewind makes the next step see exactly that past again.
TEST(KvCache, ALoadedPastStepsAsAStatelessRunAndRewinds) {
  auto executor = makeExecutor(decoder());
  ASSERT_TRUE(executor);
  // A past of the prompt's presents, from a stateless run.
  const std::vector<Tensor> prefill = runStateless(*executor, tokens(kPrompt), emptyPast(*executor));
  const std::vector<Tensor> past(prefill.begin() + 1, prefill.end());
  const std::vector<Tensor> expected = runStateless(*executor, tokens({kContinuation[0]}), past);

  Session session(*executor);
  ASSERT_TRUE(session.loadKv(past).isOk());
  EXPECT_EQ(session.kvLength(), static_cast<int64_t>(kPrompt.size()));
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(floats(stepLogits(session, {kContinuation[0]})), floats(expected[0])) << "round " << round;
    EXPECT_EQ(session.kvLength(), static_cast<int64_t>(kPrompt.size() + 1));
    ASSERT_TRUE(session.truncateKv(static_cast<int64_t>(kPrompt.size())).isOk());
  }
  Status tooLong = session.truncateKv(static_cast<int64_t>(kPrompt.size() + 1));
  EXPECT_NE(tooLong.message().find("cannot truncate a KV cache of 5 token(s) to 6"), std::string::npos)
      << tooLong.message();
  EXPECT_EQ(session.kvLength(), static_cast<int64_t>(kPrompt.size()));
}

TEST(KvCache, LoadingAPastChecksItsTensors) {
  auto executor = makeExecutor(decoder());
  ASSERT_TRUE(executor);
  Session session(*executor);
  std::vector<Tensor> past = emptyPast(*executor);
  Status missing = session.loadKv(std::vector<Tensor>(past.begin(), past.end() - 1));
  EXPECT_NE(missing.message().find("takes 4 past tensors"), std::string::npos) << missing.message();
  const KvLayer& first = executor->kvLayers()[0];
  past[1] = Tensor::allocate(first.dtype, {1, first.kvHeads, 3, first.valueDim});  // length 3, keys 0
  Status mismatched = session.loadKv(past);
  EXPECT_NE(mismatched.message().find("must be"), std::string::npos) << mismatched.message();
  EXPECT_EQ(session.kvLength(), 0);
}

}  // namespace
}  // namespace kiln::rt
