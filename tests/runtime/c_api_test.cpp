// The public C API and the C++ wrapper, through libkiln_runtime.so only.
// The artifacts come from data/*.kir (made by the runtime.make_artifacts
// fixture into KILN_TEST_ARTIFACT_DIR).
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "kiln/kiln.h"
#include "kiln/kiln.hpp"

namespace {

std::string artifact(const std::string& name) { return std::string(KILN_TEST_ARTIFACT_DIR) + "/" + name; }

kiln_model* load(const std::string& name) {
  kiln_model* model = nullptr;
  EXPECT_EQ(kiln_model_load(artifact(name).c_str(), &model), KILN_OK) << kiln_last_error();
  return model;
}

TEST(CApi, DescribesInputsAndOutputs) {
  kiln_model* model = load("mlp.kiln");
  ASSERT_NE(model, nullptr);
  ASSERT_EQ(kiln_model_num_inputs(model), 1u);
  ASSERT_EQ(kiln_model_num_outputs(model), 2u);

  kiln_value_info info;
  ASSERT_EQ(kiln_model_input(model, 0, &info), KILN_OK);
  EXPECT_STREQ(info.name, "x");
  EXPECT_EQ(info.dtype, KILN_DTYPE_F32);
  ASSERT_EQ(info.rank, 2u);
  EXPECT_EQ(info.dims[0], -1);
  EXPECT_STREQ(info.dim_names[0], "batch");
  EXPECT_EQ(info.dims[1], 2);
  EXPECT_EQ(info.dim_names[1], nullptr);

  ASSERT_EQ(kiln_model_output(model, 1, &info), KILN_OK);
  EXPECT_STREQ(info.name, "h");
  EXPECT_EQ(kiln_model_output(model, 2, &info), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "output index 2 is out of range: the model has 2");
  kiln_model_free(model);
}

TEST(CApi, RunsAndFillsOutputsInGraphOrder) {
  kiln_model* model = load("mlp.kiln");
  ASSERT_NE(model, nullptr);
  kiln_session* session = nullptr;
  kiln_session_options options{sizeof(kiln_session_options)};
  ASSERT_EQ(kiln_session_create(model, &options, &session), KILN_OK) << kiln_last_error();

  const float x[] = {1, 2, 1, 1};
  const int64_t shape[] = {2, 2};
  kiln_tensor input{"x", KILN_DTYPE_F32, 2, shape, x};
  kiln_tensor outputs[2];
  ASSERT_EQ(kiln_session_run(session, &input, 1, outputs, 2), KILN_OK) << kiln_last_error();
  // Row 0: h = [5, -1, -0.5], y = relu(h + [0, 1, -1]) = [5, 0, 0];
  // row 1: h = [3, -1, 0], y = [3, 0, 0].
  EXPECT_STREQ(outputs[0].name, "y");
  EXPECT_STREQ(outputs[1].name, "h");
  for (const kiln_tensor& out : outputs) {
    EXPECT_EQ(out.dtype, KILN_DTYPE_F32);
    ASSERT_EQ(out.rank, 2u);
    EXPECT_EQ(out.shape[0], 2);
    EXPECT_EQ(out.shape[1], 3);
  }
  const float* y = static_cast<const float*>(outputs[0].data);
  const float* h = static_cast<const float*>(outputs[1].data);
  EXPECT_EQ(std::vector<float>(y, y + 6), (std::vector<float>{5, 0, 0, 3, 0, 0}));
  EXPECT_EQ(std::vector<float>(h, h + 6), (std::vector<float>{5, -1, -0.5f, 3, -1, 0}));

  // Another batch size through the same session.
  const int64_t one[] = {1, 2};
  input.shape = one;
  ASSERT_EQ(kiln_session_run(session, &input, 1, outputs, 2), KILN_OK) << kiln_last_error();
  EXPECT_EQ(outputs[0].shape[0], 1);
  EXPECT_EQ(static_cast<const float*>(outputs[0].data)[0], 5.0f);

  kiln_session_free(session);
  kiln_model_free(model);
}

TEST(CApi, MatchesInputsByNameAndCopiesPassedThroughInputs) {
  kiln_model* model = load("pair.kiln");
  ASSERT_NE(model, nullptr);
  kiln_session* session = nullptr;
  ASSERT_EQ(kiln_session_create(model, nullptr, &session), KILN_OK);
  // The session keeps the model's data alive.
  kiln_model_free(model);

  float a[] = {10, 20, 30};
  const float b[] = {1, 2, 3};
  const int64_t shape[] = {3};
  kiln_tensor inputs[] = {{"b", KILN_DTYPE_F32, 1, shape, b}, {"a", KILN_DTYPE_F32, 1, shape, a}};
  kiln_tensor outputs[2];
  ASSERT_EQ(kiln_session_run(session, inputs, 2, outputs, 2), KILN_OK) << kiln_last_error();
  const float* d = static_cast<const float*>(outputs[0].data);
  EXPECT_EQ(std::vector<float>(d, d + 3), (std::vector<float>{9, 18, 27}));
  // Output %a is the input itself; the session returns its own copy.
  EXPECT_NE(outputs[1].data, static_cast<const void*>(a));
  a[0] = -1;
  EXPECT_EQ(static_cast<const float*>(outputs[1].data)[0], 10.0f);
  kiln_session_free(session);
}

TEST(CApi, ReportsBadRunArguments) {
  kiln_model* model = load("pair.kiln");
  ASSERT_NE(model, nullptr);
  kiln_session* session = nullptr;
  ASSERT_EQ(kiln_session_create(model, nullptr, &session), KILN_OK);
  const float values[] = {1, 2};
  const int64_t two[] = {2};
  const int64_t three[] = {3};
  kiln_tensor outputs[2];
  auto run = [&](std::vector<kiln_tensor> inputs, size_t nOutputs = 2) {
    return kiln_session_run(session, inputs.data(), inputs.size(), outputs, nOutputs);
  };

  EXPECT_EQ(run({{"a", KILN_DTYPE_F32, 1, two, values}}), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "missing input 'b'");
  EXPECT_EQ(run({{"a", KILN_DTYPE_F32, 1, two, values}, {"c", KILN_DTYPE_F32, 1, two, values}}),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "unknown input 'c'; the model's inputs are 'a', 'b'");
  EXPECT_EQ(run({{"a", KILN_DTYPE_F32, 1, two, values}, {"a", KILN_DTYPE_F32, 1, two, values}}),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "input 'a' is given twice");
  EXPECT_EQ(run({{"a", KILN_DTYPE_I32, 1, two, values}, {"b", KILN_DTYPE_F32, 1, two, values}}),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "input 'a': expected f32[n], got i32[2]");
  std::vector<float> longer(3);
  EXPECT_EQ(run({{"a", KILN_DTYPE_F32, 1, two, values}, {"b", KILN_DTYPE_F32, 1, three, longer.data()}}),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "dim 'n' is 2 in input 'a' but 3 in input 'b'");
  EXPECT_EQ(run({{"a", KILN_DTYPE_F32, 1, two, nullptr}, {"b", KILN_DTYPE_F32, 1, two, values}}),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "input 'a' has no data");
  EXPECT_EQ(run({{"a", KILN_DTYPE_F32, 1, two, values}, {"b", KILN_DTYPE_F32, 1, two, values}}, 1),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(kiln_last_error(), "kiln_session_run: the model has 2 output(s), got room for 1");
  kiln_session_free(session);
  kiln_model_free(model);
}

TEST(CApi, RefusesMissingAndInvalidArtifacts) {
  kiln_model* model = reinterpret_cast<kiln_model*>(1);
  std::string missing = artifact("absent.kiln");
  EXPECT_EQ(kiln_model_load(missing.c_str(), &model), KILN_ERROR_IO);
  EXPECT_EQ(model, nullptr);
  EXPECT_EQ(std::string(kiln_last_error()),
            "cannot load artifact '" + missing + "': cannot open the file: No such file or directory");

  std::string text = artifact("not_an_artifact.kir");
  FILE* f = std::fopen(text.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("graph @main() -> () {\n  return\n}\n", f);
  std::fclose(f);
  EXPECT_EQ(kiln_model_load(text.c_str(), &model), KILN_ERROR_INVALID_ARTIFACT);
  EXPECT_EQ(std::string(kiln_last_error()),
            "cannot load artifact '" + text + "': not a kiln artifact (wrong magic)");
  std::remove(text.c_str());

  EXPECT_EQ(kiln_model_load(nullptr, &model), KILN_ERROR_INVALID_ARGUMENT);
}

TEST(CApi, LastErrorIsPerThread) {
  kiln_model* model = nullptr;
  EXPECT_EQ(kiln_model_load(nullptr, &model), KILN_ERROR_INVALID_ARGUMENT);
  std::string here = kiln_last_error();
  std::string there;
  std::thread other([&] {
    there = kiln_last_error();
    kiln_model* m = nullptr;
    EXPECT_EQ(kiln_model_load(artifact("absent.kiln").c_str(), &m), KILN_ERROR_IO);
  });
  other.join();
  EXPECT_EQ(there, "");
  EXPECT_EQ(kiln_last_error(), here);
}

TEST(CApi, SessionsOfOneModelRunConcurrently) {
  kiln_model* model = load("mlp.kiln");
  ASSERT_NE(model, nullptr);
  std::vector<std::thread> threads;
  std::vector<int> correct(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      kiln_session* session = nullptr;
      if (kiln_session_create(model, nullptr, &session) != KILN_OK) return;
      const float x[] = {static_cast<float>(t), 0};
      const int64_t shape[] = {1, 2};
      kiln_tensor input{"x", KILN_DTYPE_F32, 2, shape, x};
      kiln_tensor outputs[2];
      for (int i = 0; i < 50; ++i) {
        if (kiln_session_run(session, &input, 1, outputs, 2) != KILN_OK) break;
        // h = [t, -t, t/2]
        const float* h = static_cast<const float*>(outputs[1].data);
        correct[static_cast<size_t>(t)] += h[0] == t && h[1] == -t && h[2] == 0.5f * t;
      }
      kiln_session_free(session);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(correct, (std::vector<int>{50, 50, 50, 50}));
  kiln_model_free(model);
}

TEST(CApi, NamesDtypes) {
  EXPECT_STREQ(kiln_dtype_name(KILN_DTYPE_F32), "f32");
  EXPECT_STREQ(kiln_dtype_name(KILN_DTYPE_BF16), "bf16");
  EXPECT_STREQ(kiln_dtype_name(KILN_DTYPE_BOOL), "bool");
  EXPECT_STREQ(kiln_dtype_name(static_cast<kiln_dtype>(42)), "invalid");
  EXPECT_EQ(kiln_dtype_size(KILN_DTYPE_I64), 8u);
  EXPECT_EQ(kiln_dtype_size(KILN_DTYPE_F16), 2u);
  EXPECT_EQ(kiln_dtype_size(static_cast<kiln_dtype>(-1)), 0u);
}

TEST(CxxWrapper, RunsAndThrowsWithTheStatus) {
  kiln::api::Model model(artifact("mlp.kiln"));
  std::vector<kiln::api::ValueInfo> inputs = model.inputs();
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_EQ(inputs[0].dims, (std::vector<int64_t>{-1, 2}));
  EXPECT_EQ(inputs[0].dimNames, (std::vector<std::string>{"batch", ""}));
  EXPECT_EQ(model.output(0).name, "y");

  kiln::api::Session session(model);
  const float x[] = {1, 2};
  std::vector<kiln::api::Output> outputs = session.run({kiln::api::Input::of("x", {1, 2}, x)});
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs[1].name(), "h");
  std::span<const float> h = outputs[1].values<float>();
  EXPECT_EQ(std::vector<float>(h.begin(), h.end()), (std::vector<float>{5, -1, -0.5f}));
  EXPECT_THROW(outputs[1].values<int64_t>(), kiln::api::Error);

  const int64_t ids[] = {1, 2};
  try {
    session.run({kiln::api::Input::of("x", {1, 2}, ids)});
    ADD_FAILURE() << "ran with an i64 input";
  } catch (const kiln::api::Error& e) {
    EXPECT_EQ(e.status(), KILN_ERROR_INVALID_ARGUMENT);
    EXPECT_STREQ(e.what(), "input 'x': expected f32[batch, 2], got i64[1, 2]");
  }
  try {
    kiln::api::Model absent(artifact("absent.kiln"));
    ADD_FAILURE() << "loaded a missing file";
  } catch (const kiln::api::Error& e) {
    EXPECT_EQ(e.status(), KILN_ERROR_IO);
  }
}

}  // namespace
