// Stateful decoding through the public C API and the C++ wrapper, linked to
// libkiln_runtime.so only: KV pair introspection, the kv_capacity option,
// kiln_session_step / reset / kv_length, and the cache-full status. The
// artifacts come from data/decoder.kir and tests/runtime/data/mlp.kir (the
// kv.make_artifact fixtures), and data/decoder.v3.kiln (format version 3).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "kiln/kiln.hpp"

namespace {

std::string artifact(const std::string& name) { return std::string(KILN_KV_ARTIFACT_DIR) + "/" + name; }

struct CModel {
  kiln_model* model = nullptr;
  explicit CModel(const std::string& name) {
    EXPECT_EQ(kiln_model_load(artifact(name).c_str(), &model), KILN_OK) << kiln_last_error();
  }
  ~CModel() { kiln_model_free(model); }
};

kiln_session* createSession(const kiln_model* model, int64_t capacity) {
  kiln_session_options options{};
  options.struct_size = sizeof options;
  options.kv_capacity = capacity;
  kiln_session* session = nullptr;
  EXPECT_EQ(kiln_session_create(model, &options, &session), KILN_OK) << kiln_last_error();
  return session;
}

// input_ids [1, n] of `ids`; the vectors must outlive the call.
kiln_tensor idsTensor(const std::vector<int64_t>& ids, const int64_t* shape) {
  return kiln_tensor{"input_ids", KILN_DTYPE_I64, 2, shape, ids.data()};
}

std::vector<float> values(const kiln_tensor& t) {
  size_t n = 1;
  for (size_t i = 0; i < t.rank; ++i) n *= static_cast<size_t>(t.shape[i]);
  const float* data = static_cast<const float*>(t.data);
  return std::vector<float>(data, data + n);
}

TEST(CApiKv, DescribesTheKvPairs) {
  CModel decoder("decoder.kiln");
  ASSERT_EQ(kiln_model_num_kv_pairs(decoder.model), 4u);
  const char *input = nullptr, *output = nullptr;
  ASSERT_EQ(kiln_model_kv_pair(decoder.model, 0, &input, &output), KILN_OK);
  EXPECT_STREQ(input, "past.0.key");
  EXPECT_STREQ(output, "present.0.key");
  ASSERT_EQ(kiln_model_kv_pair(decoder.model, 3, &input, &output), KILN_OK);
  EXPECT_STREQ(input, "past.1.value");
  EXPECT_STREQ(output, "present.1.value");
  EXPECT_EQ(kiln_model_kv_pair(decoder.model, 4, &input, &output), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "KV pair index 4 is out of range: the model has 4");

  CModel mlp("mlp.kiln");
  EXPECT_EQ(kiln_model_num_kv_pairs(mlp.model), 0u);
}

TEST(CApiKv, SessionOptionsCarryTheCapacity) {
  CModel decoder("decoder.kiln");
  kiln_session* session = createSession(decoder.model, 32);
  EXPECT_EQ(kiln_session_kv_capacity(session), 32);
  EXPECT_EQ(kiln_session_kv_length(session), 0);
  kiln_session_free(session);

  // Zero, NULL options and a struct from before kv_capacity: the default.
  session = createSession(decoder.model, 0);
  EXPECT_EQ(kiln_session_kv_capacity(session), 4096);
  kiln_session_free(session);
  ASSERT_EQ(kiln_session_create(decoder.model, nullptr, &session), KILN_OK);
  EXPECT_EQ(kiln_session_kv_capacity(session), 4096);
  kiln_session_free(session);
  kiln_session_options older{};
  older.struct_size = sizeof(size_t);
  older.kv_capacity = 7;  // past struct_size: not read
  ASSERT_EQ(kiln_session_create(decoder.model, &older, &session), KILN_OK) << kiln_last_error();
  EXPECT_EQ(kiln_session_kv_capacity(session), 4096);
  kiln_session_free(session);

  kiln_session_options negative{};
  negative.struct_size = sizeof negative;
  negative.kv_capacity = -1;
  EXPECT_EQ(kiln_session_create(decoder.model, &negative, &session), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(),
               "kiln_session_create: options->kv_capacity is -1; it must be >= 0 (0: the default)");
  EXPECT_EQ(kiln_session_kv_length(nullptr), 0);
  EXPECT_EQ(kiln_session_kv_capacity(nullptr), 0);
}

TEST(CApiKv, StepsMatchAStatelessRunAndFillTheCacheUpToItsCapacity) {
  CModel decoder("decoder.kiln");
  // Stateless: the 4-token prefix at once, with an empty past.
  const std::vector<int64_t> all = {1, 2, 3, 4};
  const int64_t allShape[] = {1, 4}, emptyShape[] = {1, 1, 0, 4};
  std::vector<kiln_tensor> inputs = {idsTensor(all, allShape)};
  for (const char* name : {"past.0.key", "past.0.value", "past.1.key", "past.1.value"})
    inputs.push_back(kiln_tensor{name, KILN_DTYPE_F32, 4, emptyShape, nullptr});
  kiln_session* stateless = createSession(decoder.model, 0);
  kiln_tensor full[5];
  ASSERT_EQ(kiln_session_run(stateless, inputs.data(), inputs.size(), full, 5), KILN_OK) << kiln_last_error();
  const std::vector<float> wholeLogits = values(full[0]);  // [1, 4, 16]

  kiln_session* session = createSession(decoder.model, 4);
  const std::vector<int64_t> prompt = {1, 2, 3};
  const int64_t promptShape[] = {1, 3}, oneShape[] = {1, 1};
  kiln_tensor in = idsTensor(prompt, promptShape);
  kiln_tensor logits;
  ASSERT_EQ(kiln_session_step(session, &in, 1, &logits, 1), KILN_OK) << kiln_last_error();
  EXPECT_STREQ(logits.name, "logits");
  ASSERT_EQ(logits.rank, 3u);
  EXPECT_EQ(logits.shape[1], 3);
  EXPECT_EQ(kiln_session_kv_length(session), 3);
  const std::vector<float> prefill = values(logits);
  for (size_t i = 0; i < prefill.size(); ++i) EXPECT_NEAR(prefill[i], wholeLogits[i], 1e-5f);

  const std::vector<int64_t> next = {4};
  in = idsTensor(next, oneShape);
  ASSERT_EQ(kiln_session_step(session, &in, 1, &logits, 1), KILN_OK) << kiln_last_error();
  EXPECT_EQ(kiln_session_kv_length(session), 4);
  const std::vector<float> decoded = values(logits);
  for (size_t i = 0; i < decoded.size(); ++i) EXPECT_NEAR(decoded[i], wholeLogits[48 + i], 1e-5f);

  // Full: the step fails with its own status and the session keeps its state.
  EXPECT_EQ(kiln_session_step(session, &in, 1, &logits, 1), KILN_ERROR_KV_CACHE_FULL);
  EXPECT_STREQ(kiln_last_error(), "KV cache full: 4 cached + 1 new tokens exceed capacity 4");
  EXPECT_EQ(kiln_session_kv_length(session), 4);
  ASSERT_EQ(kiln_session_reset(session), KILN_OK);
  EXPECT_EQ(kiln_session_kv_length(session), 0);
  in = idsTensor(prompt, promptShape);
  ASSERT_EQ(kiln_session_step(session, &in, 1, &logits, 1), KILN_OK) << kiln_last_error();
  EXPECT_EQ(values(logits), prefill);
  kiln_session_free(session);
  kiln_session_free(stateless);
}

TEST(CApiKv, StepRefusesWhatItCannotTake) {
  CModel decoder("decoder.kiln");
  kiln_session* session = createSession(decoder.model, 0);
  const std::vector<int64_t> ids = {1};
  const int64_t shape[] = {1, 1}, pastShape[] = {1, 1, 0, 4};
  kiln_tensor in[2] = {idsTensor(ids, shape), {"past.0.key", KILN_DTYPE_F32, 4, pastShape, nullptr}};
  kiln_tensor out[5];
  EXPECT_EQ(kiln_session_step(session, in, 2, out, 1), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(),
               "input 'past.0.key' is a KV pair's past input: a step reads it from the session's KV cache");
  EXPECT_EQ(kiln_session_step(session, in, 1, out, 5), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(),
               "kiln_session_step: a step has 1 output(s) (the model's outputs but its KV pairs' present ones), "
               "got room for 5");
  EXPECT_EQ(kiln_session_step(session, in, 0, out, 1), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "missing input 'input_ids'");
  EXPECT_EQ(kiln_session_step(nullptr, in, 1, out, 1), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_session_reset(nullptr), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_session_kv_length(session), 0);
  kiln_session_free(session);

  CModel mlp("mlp.kiln");
  session = createSession(mlp.model, 0);
  EXPECT_EQ(kiln_session_step(session, nullptr, 0, nullptr, 0), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(),
               "kiln_session_step: the model has no KV pairs (an attention op whose past keys and values are "
               "model inputs and whose present ones are model outputs); use kiln_session_run");
  kiln_session_free(session);
}

TEST(CApiKv, AVersion3ArtifactHasNoKvPairsAndStepsSayToRecompile) {
  // data/decoder.v3.kiln: data/decoder.kir written before the KV layer record.
  kiln_model* model = nullptr;
  ASSERT_EQ(kiln_model_load((std::string(KILN_KV_TEST_DATA) + "/decoder.v3.kiln").c_str(), &model), KILN_OK)
      << kiln_last_error();
  EXPECT_EQ(kiln_model_num_kv_pairs(model), 0u);
  kiln_session* session = createSession(model, 0);
  EXPECT_EQ(kiln_session_step(session, nullptr, 0, nullptr, 0), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(),
               "kiln_session_step: graph @decoder cannot be stepped: its KV layers were not recorded (an "
               "artifact older than format version 4); recompile it to step it, or run it with explicit past "
               "inputs");
  kiln_session_free(session);
  kiln_model_free(model);
}

TEST(CApiKv, TheWrapperStepsAndThrowsOnAFullCache) {
  kiln::api::Model model(artifact("decoder.kiln"));
  ASSERT_EQ(model.kvPairs().size(), 4u);
  EXPECT_EQ(model.kvPairs()[1], (std::pair<std::string, std::string>{"past.0.value", "present.0.value"}));
  kiln::api::Session session(model, kiln::api::SessionOptions{3});
  EXPECT_EQ(session.kvCapacity(), 3);
  const std::vector<int64_t> prompt = {5, 6};
  std::vector<kiln::api::Output> outputs =
      session.step({kiln::api::Input::of("input_ids", {1, 2}, prompt.data())});
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].name(), "logits");
  EXPECT_EQ(outputs[0].values<float>().size(), 32u);
  EXPECT_EQ(session.kvLength(), 2);
  try {
    session.step({kiln::api::Input::of("input_ids", {1, 2}, prompt.data())});
    ADD_FAILURE() << "a step past the capacity ran";
  } catch (const kiln::api::Error& error) {
    EXPECT_EQ(error.status(), KILN_ERROR_KV_CACHE_FULL);
    EXPECT_STREQ(error.what(), "KV cache full: 2 cached + 2 new tokens exceed capacity 3");
  }
  EXPECT_EQ(session.kvLength(), 2);
  session.reset();
  EXPECT_EQ(session.kvLength(), 0);
}

}  // namespace
