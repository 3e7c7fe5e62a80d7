// llama-tiny-decode, compiled by kiln from ../shared/models (the
// kv.compile.llama-tiny-decode fixtures; skipped without them): Session::step
// against the stateless run of the whole prefix, on the CPU and with every op
// on OpenCL (the KV cache then in OpenCL memory, the past and present
// transfers skipped by a step).
#include <gtest/gtest.h>

#include <filesystem>

#include "runtime/artifact.h"
#include "tests/kv/kv_test_support.h"

namespace kiln::rt {
namespace {

using namespace kvtest;

// Prefill 5 tokens then 3 decode steps against the whole 8-token prefix;
// with the cache in host memory, its rows against the stateless presents
// (keys and values per layer, or with latent attention the latent rows).
void checkStepsMatchTheStatelessPrefix(const std::string& path, bool cacheOnHost) {
  auto artifact = loadArtifact(path);
  ASSERT_TRUE(artifact.isOk()) << artifact.status().message();
  auto executor = createExecutor(*artifact);
  ASSERT_TRUE(executor.isOk()) << executor.status().message();
  ASSERT_EQ((*executor)->kvLayers().size(), 2u);
  const size_t parts = (*executor)->kvLayers()[0].parts();
  const std::vector<int64_t> all = {17, 301, 42, 5, 499, 88, 250, 3};
  const std::vector<Tensor> whole = runStateless(**executor, tokens(all), emptyPast(**executor));
  ASSERT_EQ(whole.size(), 1 + 2 * parts);

  Session session(**executor);
  Tensor prefill = stepLogits(session, std::vector<int64_t>(all.begin(), all.begin() + 5));
  for (int64_t s = 0; s < 5; ++s) expectNear(logitsRow(prefill, s), logitsRow(whole[0], s), 1e-4f);
  for (int64_t s = 5; s < 8; ++s)
    expectNear(logitsRow(stepLogits(session, {all[static_cast<size_t>(s)]}), 0), logitsRow(whole[0], s), 1e-4f);
  // The cache holds the keys and values the stateless run returned.
  const bool f32Rows = (*executor)->kvLayers()[0].dtype == DType::F32;
  for (size_t l = 0; l < 2 && cacheOnHost && f32Rows; ++l) {
    expectNear(cachedRows(session.kvCache()[l].keys, 8), floats(whole[1 + parts * l]), 1e-5f);
    if (parts == 2) expectNear(cachedRows(session.kvCache()[l].values, 8), floats(whole[2 + 2 * l]), 1e-5f);
  }
}

TEST(KvCacheOnLlama, TinyDecodeStepsMatchTheStatelessPrefix) {
  const std::string path = KILN_KV_LLAMA_ARTIFACT;
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not built (../shared/models missing)";
  checkStepsMatchTheStatelessPrefix(path, true);
}

TEST(KvCacheOnLlama, TinyDecodeStepsOnOpenClMatchTheStatelessPrefix) {
  const std::string path = KILN_KV_LLAMA_OPENCL_ARTIFACT;
  if (!std::filesystem::exists(path))
    GTEST_SKIP() << path << " not built (../shared/models missing, or no OpenCL device)";
  checkStepsMatchTheStatelessPrefix(path, false);
}

// --latent-attention exact: one latent cache per layer, stepped in place;
// and with the cache in bf16 (rows rounded as appended, by steps and
// stateless runs alike).
TEST(KvCacheOnLlama, TinyDecodeLatentStepsMatchTheStatelessPrefix) {
  for (const std::string path : {KILN_KV_LLAMA_LATENT_ARTIFACT, KILN_KV_LLAMA_LATENT_BF16_ARTIFACT}) {
    SCOPED_TRACE(path);
    if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not built (../shared/models missing)";
    checkStepsMatchTheStatelessPrefix(path, true);
  }
}

}  // namespace
}  // namespace kiln::rt
