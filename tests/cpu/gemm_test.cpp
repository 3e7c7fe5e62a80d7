// The oneDNN matmul path (backends/cpu/gemm.h) against the registry's
// reference kernel, which accumulates in double: random shapes, transposes,
// batch dims and every epilogue, within an f32 accumulation tolerance.
#include "backends/cpu/gemm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ir/tensor.h"

namespace kiln::cpu {
namespace {

Tensor randomF32(std::vector<int64_t> shape, std::mt19937& rng) {
  Tensor t = Tensor::allocate(DType::F32, std::move(shape));
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (int64_t i = 0; i < t.numElements(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

const OpDef& matmulDef() { return *OpRegistry::global().find("matmul"); }

struct Case {
  std::vector<int64_t> a, b;
  bool transA = false, transB = false;
  std::string activation = "none";
  bool bias = false, residual = false, weight = false, inPlaceResidual = false;
};

// Runs the case with oneDNN and with the reference; returns the max abs
// difference, or -1 when the fast path declined the case.
double maxDifference(Gemm& gemm, const Case& c, std::mt19937& rng) {
  Tensor a = randomF32(c.a, rng), b = randomF32(c.b, rng);
  Attributes attrs;
  attrs.set("transpose_a", c.transA);
  attrs.set("transpose_b", c.transB);
  std::vector<const Tensor*> ab{&a, &b};
  Expected<std::vector<Tensor>> plain = evaluateOp(matmulDef(), attrs, ab, 1);
  EXPECT_TRUE(static_cast<bool>(plain)) << plain.status().message();
  const std::vector<int64_t> outShape = plain->at(0).shape();
  attrs.set("activation", c.activation);
  Tensor bias = randomF32({outShape.empty() ? 1 : outShape.back()}, rng);
  Tensor residual = randomF32(outShape, rng);
  std::vector<const Tensor*> inputs{&a, &b, c.bias ? &bias : nullptr, c.residual ? &residual : nullptr};
  Expected<std::vector<Tensor>> expected = evaluateOp(matmulDef(), attrs, inputs, 1);
  EXPECT_TRUE(static_cast<bool>(expected)) << expected.status().message();

  Tensor out = Tensor::allocate(DType::F32, outShape);
  if (c.inPlaceResidual) {
    std::copy_n(residual.data<float>(), residual.numElements(), out.data<float>());
    inputs[3] = &out;
  }
  std::vector<Tensor*> outputs{&out};
  KernelContext ctx{matmulDef(), attrs, inputs, outputs};
  std::optional<Status> status = gemm.runMatmul(ctx, c.weight);
  if (!status) return -1;
  EXPECT_TRUE(status->isOk()) << status->message();
  double diff = 0;
  for (int64_t i = 0; i < out.numElements(); ++i)
    diff = std::max(diff, std::fabs(double(out.data<float>()[i]) - expected->at(0).data<float>()[i]));
  return diff;
}

TEST(Gemm, MatchesReferenceOnRandomShapesAndEpilogues) {
  Gemm gemm(2);
  std::mt19937 rng(11);
  const std::vector<std::string> activations{"none", "relu", "gelu", "gelu_tanh", "silu", "tanh"};
  int checked = 0;
  for (int trial = 0; trial < 60; ++trial) {
    std::uniform_int_distribution<int64_t> dim(1, 70);
    const int64_t M = dim(rng), K = dim(rng), N = dim(rng);
    Case c;
    c.transA = trial % 5 == 1;
    c.transB = trial % 3 == 1;
    c.activation = activations[trial % activations.size()];
    c.bias = trial % 2 == 0;
    c.residual = trial % 4 < 2;
    c.inPlaceResidual = c.residual && trial % 8 == 0;
    const bool batched = trial % 7 >= 4;  // [2, 3, M, K] @ [2, 3, K, N]
    c.weight = !batched && trial % 3 != 2;
    c.a = c.transA ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K};
    c.b = c.transB ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N};
    if (batched) {
      c.a.insert(c.a.begin(), {2, 3});
      c.b.insert(c.b.begin(), {2, 3});
    } else if (!c.transA && trial % 2 == 1) {
      c.a.insert(c.a.begin(), 3);  // a batch of activations against one weight
    }
    const double diff = maxDifference(gemm, c, rng);
    ASSERT_GE(diff, 0) << "the fast path declined trial " << trial;
    // f32 accumulation over K <= 70 terms of magnitude <= 1 (plus epilogue).
    EXPECT_LT(diff, 2e-5) << "trial " << trial << " M=" << M << " K=" << K << " N=" << N << " "
                          << c.activation;
    ++checked;
  }
  EXPECT_EQ(checked, 60);
  EXPECT_GT(gemm.packedWeights(), 0u);
}

TEST(Gemm, PacksAWeightOnceAndReusesIt) {
  Gemm gemm(2);
  std::mt19937 rng(3);
  Tensor a = randomF32({4, 32}, rng), b = randomF32({32, 16}, rng);
  Attributes attrs;
  std::vector<const Tensor*> inputs{&a, &b};
  Expected<std::vector<Tensor>> expected = evaluateOp(matmulDef(), attrs, inputs, 1);
  ASSERT_TRUE(static_cast<bool>(expected));
  for (int run = 0; run < 3; ++run) {
    Tensor out = Tensor::allocate(DType::F32, {4, 16});
    std::vector<Tensor*> outputs{&out};
    KernelContext ctx{matmulDef(), attrs, inputs, outputs};
    std::optional<Status> status = gemm.runMatmul(ctx, /*bIsWeight=*/true);
    ASSERT_TRUE(status && status->isOk());
    for (int64_t i = 0; i < out.numElements(); ++i)
      EXPECT_NEAR(out.data<float>()[i], expected->at(0).data<float>()[i], 1e-5);
  }
  EXPECT_EQ(gemm.packedWeights(), 1u);
  gemm.forgetWeight(b.data());
  EXPECT_EQ(gemm.packedWeights(), 0u);
}

TEST(Gemm, SessionsOnSeveralThreadsShareOnePackedWeight) {
  Gemm gemm(1);
  std::mt19937 rng(9);
  Tensor b = randomF32({48, 40}, rng), bias = randomF32({40}, rng);
  std::vector<Tensor> as, expected;
  Attributes attrs;
  attrs.set("activation", std::string("silu"));
  for (int t = 0; t < 4; ++t) {
    as.push_back(randomF32({t + 1, 48}, rng));
    std::vector<const Tensor*> inputs{&as.back(), &b, &bias};
    Expected<std::vector<Tensor>> ref = evaluateOp(matmulDef(), attrs, inputs, 1);
    ASSERT_TRUE(static_cast<bool>(ref));
    expected.push_back(ref->at(0));
  }
  std::vector<double> worst(4, 0.0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int run = 0; run < 20; ++run) {
        Tensor out = Tensor::allocate(DType::F32, expected[t].shape());
        std::vector<const Tensor*> inputs{&as[t], &b, &bias};
        std::vector<Tensor*> outputs{&out};
        std::optional<Status> status = gemm.runMatmul(KernelContext{matmulDef(), attrs, inputs, outputs}, true);
        if (!status || !status->isOk()) {
          worst[t] = 1e9;
          return;
        }
        for (int64_t i = 0; i < out.numElements(); ++i)
          worst[t] = std::max(worst[t], std::fabs(double(out.data<float>()[i]) - expected[t].data<float>()[i]));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < 4; ++t) EXPECT_LT(worst[t], 1e-5) << "thread " << t;
  EXPECT_EQ(gemm.packedWeights(), 1u);
}

TEST(Gemm, DeclinesWhatItDoesNotCover) {
  Gemm gemm(2);
  std::mt19937 rng(5);
  // Broadcast batch dims, and a non-f32 dtype, go to the reference kernel.
  Tensor a = randomF32({2, 1, 4, 8}, rng), b = randomF32({1, 3, 8, 5}, rng);
  Attributes attrs;
  Tensor out = Tensor::allocate(DType::F32, {2, 3, 4, 5});
  std::vector<const Tensor*> inputs{&a, &b};
  std::vector<Tensor*> outputs{&out};
  EXPECT_FALSE(gemm.runMatmul(KernelContext{matmulDef(), attrs, inputs, outputs}, false).has_value());
  Tensor ai = Tensor::allocate(DType::I64, {2, 2}), bi = Tensor::allocate(DType::I64, {2, 2});
  Tensor oi = Tensor::allocate(DType::I64, {2, 2});
  std::vector<const Tensor*> intInputs{&ai, &bi};
  std::vector<Tensor*> intOutputs{&oi};
  EXPECT_FALSE(gemm.runMatmul(KernelContext{matmulDef(), attrs, intInputs, intOutputs}, false).has_value());
}

TEST(Gemm, OnlyKilnGemmOnednnSelectsThisPath) {
  ::setenv("KILN_GEMM", "onednn", 1);
  EXPECT_TRUE(onednnMatmulFromEnv());
  ::setenv("KILN_GEMM", "reference", 1);
  EXPECT_FALSE(onednnMatmulFromEnv());
  ::unsetenv("KILN_GEMM");
  EXPECT_FALSE(onednnMatmulFromEnv());
}

TEST(Gemm, ThreadsComeFromTheEnvironment) {
  ::setenv("KILN_NUM_THREADS", "3", 1);
  EXPECT_EQ(gemmThreadsFromEnv(), 3);
  ::setenv("KILN_NUM_THREADS", "zero", 1);
  EXPECT_EQ(gemmThreadsFromEnv(), 2);
  ::unsetenv("KILN_NUM_THREADS");
  EXPECT_EQ(gemmThreadsFromEnv(), 2);
}

}  // namespace
}  // namespace kiln::cpu
