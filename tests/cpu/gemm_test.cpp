// The matmul path of backends/cpu/gemm.h against the reference kernel
// (backends/reference/linalg.cpp), which accumulates in double (and, for a
// bf16 b, rounds a to bf16 first, so both are computed from the same bf16
// factors): random shapes with
// tails, transposes, batch forms, a single row, every epilogue, f32 and bf16
// weights, on every instruction set this CPU has; the packed-weight cache;
// the release of a weight's file pages; the bf16 rounding.
#include "backends/cpu/gemm.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backends/cpu/cpu_device.h"
#include "backends/reference/reference.h"
#include "ir/tensor.h"
#include "runtime/weight_copies.h"

namespace kiln::cpu {
namespace {

Tensor randomTensor(DType dtype, std::vector<int64_t> shape, std::mt19937& rng) {
  Tensor t = Tensor::allocate(dtype, std::move(shape));
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (int64_t i = 0; i < t.numElements(); ++i) {
    if (dtype == DType::BF16) t.data<BFloat16>()[i] = BFloat16{floatToBFloat16(dist(rng))};
    else t.data<float>()[i] = dist(rng);
  }
  return t;
}

Tensor randomF32(std::vector<int64_t> shape, std::mt19937& rng) {
  return randomTensor(DType::F32, std::move(shape), rng);
}

const OpDef& matmulDef() { return *OpRegistry::global().find("matmul"); }

double maxAbsDifference(const Tensor& x, const Tensor& y) {
  double diff = 0;
  for (int64_t i = 0; i < x.numElements(); ++i)
    diff = std::max(diff, std::fabs(double(x.data<float>()[i]) - y.data<float>()[i]));
  return diff;
}

// f32 accumulation of K products of factors in [-1, 1], in chunks, plus the
// epilogue's roundings; far below what a lost chunk or a doubled bias gives.
double tolerance(int64_t K) { return 1e-5 + 2e-7 * static_cast<double>(K); }

struct Case {
  std::vector<int64_t> a, b;
  bool transA = false, transB = false;
  std::string activation = "none";
  bool bias = false, residual = false, weight = false, inPlaceResidual = false;
  DType bType = DType::F32;
};

struct Outcome {
  bool ran = false;
  double diff = 0;
};

// Runs the case through `gemm` and through the reference kernel.
Outcome runCase(Gemm& gemm, const Case& c, std::mt19937& rng) {
  Tensor a = randomF32(c.a, rng), b = randomTensor(c.bType, c.b, rng);
  Attributes attrs;
  attrs.set("transpose_a", c.transA);
  attrs.set("transpose_b", c.transB);
  std::vector<const Tensor*> ab{&a, &b};
  Expected<std::vector<Tensor>> plain = evaluateOp(matmulDef(), attrs, ab, 1);
  EXPECT_TRUE(static_cast<bool>(plain)) << plain.status().message();
  const std::vector<int64_t> outShape = plain->at(0).shape();
  attrs.set("activation", c.activation);
  Tensor bias = randomF32({outShape.back()}, rng);
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
  std::optional<Status> status = gemm.runMatmul(KernelContext{matmulDef(), attrs, inputs, outputs}, c.weight);
  if (!status) return {};
  EXPECT_TRUE(status->isOk()) << status->message();
  return {true, maxAbsDifference(out, expected->at(0))};
}

// Random products: M, K, N across the K-chunk and 16/64-column block tails.
void checkRandomProducts(DType bType, int trials, unsigned seed) {
  const std::vector<std::string> activations{"none", "relu", "gelu", "gelu_tanh", "silu", "tanh"};
  for (Isa isa : isasOfThisCpu()) {
    Gemm gemm(isa);
    std::mt19937 rng(seed);
    for (int trial = 0; trial < trials; ++trial) {
      std::uniform_int_distribution<int64_t> small(1, 40), large(1, 3 * kGemmChunkK + 40);
      const int64_t M = trial % 6 == 0 ? 1 : small(rng), K = trial % 2 ? large(rng) : small(rng);
      const int64_t N = trial % 3 ? large(rng) : small(rng);
      Case c;
      c.bType = bType;
      c.transA = trial % 5 == 1;
      c.transB = trial % 3 == 1;
      c.activation = activations[static_cast<size_t>(trial) % activations.size()];
      c.bias = trial % 2 == 0;
      c.residual = trial % 4 < 2;
      c.inPlaceResidual = c.residual && trial % 8 == 0;
      const bool batched = trial % 7 >= 5;  // [2, 3, M, K] @ [2, 3, K, N]
      c.weight = !batched && trial % 3 != 2;
      c.a = c.transA ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K};
      c.b = c.transB ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N};
      if (batched) {
        c.a.insert(c.a.begin(), {2, 3});
        c.b.insert(c.b.begin(), {2, 3});
      } else if (!c.transA && trial % 4 == 3) {
        c.a.insert(c.a.begin(), 3);  // a batch of activations against one weight
      }
      const Outcome outcome = runCase(gemm, c, rng);
      ASSERT_TRUE(outcome.ran) << "declined trial " << trial << " (" << isaName(isa) << ")";
      EXPECT_LT(outcome.diff, tolerance(K)) << isaName(isa) << " trial " << trial << " M=" << M << " K=" << K
                                            << " N=" << N << " " << c.activation << (c.weight ? " weight" : "");
    }
  }
}

TEST(Gemm, F32MatchesReferenceOnRandomShapesAndEpilogues) { checkRandomProducts(DType::F32, 84, 11); }

TEST(Gemm, Bf16WeightsMatchReferenceOfTheRoundedFactors) { checkRandomProducts(DType::BF16, 42, 12); }

// A single row against a packed f32 weight runs our kernel; one row of a
// batch of rows runs oneDNN's. Both agree with the reference and each other.
TEST(Gemm, SingleRowMatchesManyRows) {
  for (Isa isa : isasOfThisCpu()) {
    Gemm gemm(isa);
    std::mt19937 rng(21);
    for (int64_t K : {int64_t{1}, int64_t{17}, kGemmChunkK, 2 * kGemmChunkK + 19, int64_t{1000}}) {
      for (int64_t N : {1, 63, 64, 200, 333}) {
        Tensor rows = randomF32({5, K}, rng), b = randomF32({K, N}, rng), bias = randomF32({N}, rng);
        Tensor row = Tensor::view(DType::F32, {1, K}, rows.data<float>() + 2 * K);
        Attributes attrs;
        attrs.set("activation", std::string("gelu_tanh"));
        std::vector<const Tensor*> rowInputs{&row, &b, &bias}, rowsInputs{&rows, &b, &bias};
        Expected<std::vector<Tensor>> expected = evaluateOp(matmulDef(), attrs, rowInputs, 1);
        ASSERT_TRUE(static_cast<bool>(expected));
        Tensor one = Tensor::allocate(DType::F32, {1, N}), five = Tensor::allocate(DType::F32, {5, N});
        std::vector<Tensor*> oneOut{&one}, fiveOut{&five};
        ASSERT_TRUE(gemm.runMatmul(KernelContext{matmulDef(), attrs, rowInputs, oneOut}, true)->isOk());
        ASSERT_TRUE(gemm.runMatmul(KernelContext{matmulDef(), attrs, rowsInputs, fiveOut}, true)->isOk());
        EXPECT_LT(maxAbsDifference(one, expected->at(0)), tolerance(K)) << isaName(isa) << " K=" << K << " N=" << N;
        Tensor fiveRow = Tensor::view(DType::F32, {1, N}, five.data<float>() + 2 * N);
        EXPECT_LT(maxAbsDifference(one, fiveRow), 2 * tolerance(K)) << isaName(isa) << " K=" << K << " N=" << N;
      }
    }
  }
}

TEST(Gemm, PacksAWeightOnceWhateverTheRows) {
  Gemm gemm;
  std::mt19937 rng(3);
  Tensor b = randomF32({300, 80}, rng);
  Attributes attrs;
  for (int64_t M : {1, 4, 33, 128, 1}) {
    Tensor a = randomF32({M, 300}, rng);
    std::vector<const Tensor*> inputs{&a, &b};
    Expected<std::vector<Tensor>> expected = evaluateOp(matmulDef(), attrs, inputs, 1);
    ASSERT_TRUE(static_cast<bool>(expected));
    Tensor out = Tensor::allocate(DType::F32, {M, 80});
    std::vector<Tensor*> outputs{&out};
    std::optional<Status> status = gemm.runMatmul(KernelContext{matmulDef(), attrs, inputs, outputs}, true);
    ASSERT_TRUE(status && status->isOk());
    EXPECT_LT(maxAbsDifference(out, expected->at(0)), tolerance(300)) << "M=" << M;
    EXPECT_EQ(gemm.packedWeights(), 1u) << "M=" << M;
  }
  gemm.forgetWeight(b.data());
  EXPECT_EQ(gemm.packedWeights(), 0u);
}

TEST(Gemm, BroadcastResidual) {
  // ViT's position rows [1, S, N] added to every image's product [B, S, N],
  // and a [N] row: the kernel runs them (written out in full), as the
  // reference computes them.
  std::mt19937 rng(11);
  Tensor a = randomF32({3, 17, 40}, rng), b = randomF32({40, 24}, rng);
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{1, 17, 24}, std::vector<int64_t>{24}}) {
    Tensor residual = randomF32(shape, rng);
    Attributes attrs;
    attrs.set("activation", std::string("gelu"));
    std::vector<const Tensor*> inputs{&a, &b, nullptr, &residual};
    Expected<std::vector<Tensor>> expected = evaluateOp(matmulDef(), attrs, inputs, 1);
    ASSERT_TRUE(static_cast<bool>(expected)) << expected.status().message();
    for (bool weight : {false, true}) {
      Gemm gemm;
      Tensor out = Tensor::allocate(DType::F32, {3, 17, 24});
      std::vector<Tensor*> outputs{&out};
      std::optional<Status> status = gemm.runMatmul(KernelContext{matmulDef(), attrs, inputs, outputs}, weight);
      ASSERT_TRUE(status.has_value()) << "the broadcast residual fell back to the reference";
      ASSERT_TRUE(status->isOk()) << status->message();
      EXPECT_LT(maxAbsDifference(out, expected->at(0)), tolerance(40));
    }
  }
}

TEST(Gemm, ThreadCountsAgree) {
  std::mt19937 rng(8);
  Tensor a = randomF32({64, 700}, rng), b = randomF32({700, 300}, rng), residual = randomF32({64, 300}, rng);
  Attributes attrs;
  attrs.set("activation", std::string("silu"));
  std::vector<const Tensor*> inputs{&a, &b, nullptr, &residual};
  Expected<std::vector<Tensor>> expected = evaluateOp(matmulDef(), attrs, inputs, 1);
  ASSERT_TRUE(static_cast<bool>(expected));
  for (const char* threads : {"1", "2", "3"}) {
    ::setenv("KILN_NUM_THREADS", threads, 1);
    Gemm gemm;
    for (bool weight : {false, true}) {
      Tensor out = Tensor::allocate(DType::F32, {64, 300});
      std::vector<Tensor*> outputs{&out};
      ASSERT_TRUE(gemm.runMatmul(KernelContext{matmulDef(), attrs, inputs, outputs}, weight)->isOk());
      EXPECT_LT(maxAbsDifference(out, expected->at(0)), tolerance(700)) << threads << " threads";
    }
  }
  ::unsetenv("KILN_NUM_THREADS");
}

// Runs every case on every instruction set with KILN_NUM_THREADS=3 against
// the reference kernel, within tolerance(maxK).
void checkOnThreeThreads(const std::vector<Case>& cases, unsigned seed, int64_t maxK) {
  ::setenv("KILN_NUM_THREADS", "3", 1);
  for (Isa isa : isasOfThisCpu()) {
    Gemm gemm(isa);
    std::mt19937 rng(seed);
    for (size_t i = 0; i < cases.size(); ++i) {
      const Outcome outcome = runCase(gemm, cases[i], rng);
      ASSERT_TRUE(outcome.ran) << "case " << i;
      EXPECT_LT(outcome.diff, tolerance(maxK)) << isaName(isa) << " case " << i;
    }
  }
  ::unsetenv("KILN_NUM_THREADS");
}

// Products large enough to be split across threads: by rows, by batches, and
// (a transposed) not at all, with an in-place residual after an activation;
// a tall one (M above kMaxPassRows) in blocks of rows, the last one short,
// f32 in several K-chunks and bf16, a read in place and transposed.
TEST(Gemm, LargeProductsSplitAcrossThreads) {
  std::vector<Case> cases(8);
  cases[0].a = {200, 300}, cases[0].b = {300, 250}, cases[0].weight = true, cases[0].bias = true;
  cases[0].residual = cases[0].inPlaceResidual = true, cases[0].activation = "gelu";
  cases[1].a = {4, 300, 50}, cases[1].b = {4, 300, 70}, cases[1].transA = true, cases[1].residual = true;
  cases[2].a = {300, 200}, cases[2].b = {300, 90}, cases[2].transA = true, cases[2].weight = true;
  cases[3].a = {150, 300}, cases[3].b = {200, 300}, cases[3].transB = true, cases[3].weight = true;
  cases[3].bType = DType::BF16, cases[3].bias = true;
  cases[4].a = {2, 100}, cases[4].b = {100, 8192}, cases[4].weight = true, cases[4].activation = "silu";
  cases[5].a = {600, 300}, cases[5].b = {300, 200}, cases[5].weight = true, cases[5].bias = true;
  cases[5].residual = cases[5].inPlaceResidual = true, cases[5].activation = "gelu";
  cases[6].a = {300, 600}, cases[6].b = {300, 130}, cases[6].transA = true, cases[6].weight = true;
  cases[7].a = {700, 100}, cases[7].b = {100, 150}, cases[7].weight = true, cases[7].bType = DType::BF16;
  checkOnThreeThreads(cases, 13, 300);
}

// Rows against a packed f32 weight (tiles on AVX-512): rows not a multiple
// of a tile or of a block of rows, columns not a multiple of 64, K across
// chunks; more threads than column blocks (the rows split instead).
TEST(Gemm, TiledProductsMatchTheReference) {
  std::vector<Case> cases(4);
  cases[0].a = {101, 300}, cases[0].b = {300, 130}, cases[0].bias = true, cases[0].activation = "gelu_tanh";
  cases[1].a = {2, 53, 129}, cases[1].b = {129, 40}, cases[1].residual = cases[1].inPlaceResidual = true;
  cases[2].a = {7, 64}, cases[2].b = {64, 200}, cases[2].bias = true, cases[2].residual = true;
  cases[3].a = {97, 1000}, cases[3].b = {1000, 64}, cases[3].bias = true, cases[3].activation = "tanh";
  for (Case& c : cases) c.weight = true;
  checkOnThreeThreads(cases, 21, 1000);
}

// The K-chunked accumulation is more exact than one f32 chain over the whole
// K (oneDNN's order alone, and a naive loop's): RMS error against a double
// product of the same factors.
TEST(Gemm, ChunkedAccumulationBeatsOneChain) {
  std::mt19937 rng(5);
  const int64_t M = 64, K = 2048, N = 128;
  Tensor a = randomF32({M, K}, rng), b = randomF32({K, N}, rng);
  Attributes attrs;
  std::vector<const Tensor*> inputs{&a, &b};
  double chainSquares = 0, exact = 0;
  std::vector<double> products(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double sum = 0;
      float chain = 0;
      for (int64_t k = 0; k < K; ++k) {
        sum += static_cast<double>(a.data<float>()[m * K + k]) * b.data<float>()[k * N + n];
        chain = std::fma(a.data<float>()[m * K + k], b.data<float>()[k * N + n], chain);
      }
      products[static_cast<size_t>(m * N + n)] = sum;
      chainSquares += (chain - sum) * (chain - sum);
      exact += sum * sum;
    }
  ASSERT_GT(exact, 0.0);
  for (Isa isa : isasOfThisCpu()) {
    Gemm gemm(isa);
    Tensor out = Tensor::allocate(DType::F32, {M, N});
    std::vector<Tensor*> outputs{&out};
    ASSERT_TRUE(gemm.runMatmul(KernelContext{matmulDef(), attrs, inputs, outputs}, true)->isOk());
    double squares = 0;
    for (size_t i = 0; i < products.size(); ++i) squares += std::pow(out.data<float>()[i] - products[i], 2);
    EXPECT_LT(std::sqrt(squares), 0.6 * std::sqrt(chainSquares)) << isaName(isa);
  }
}

TEST(Gemm, SessionsOnSeveralThreadsShareOnePackedWeight) {
  Gemm gemm;
  std::mt19937 rng(9);
  Tensor b = randomF32({300, 40}, rng), bias = randomF32({40}, rng);
  std::vector<Tensor> as, expected;
  Attributes attrs;
  attrs.set("activation", std::string("silu"));
  for (int t = 0; t < 4; ++t) {
    as.push_back(randomF32({t + 1, 300}, rng));
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
        Tensor out = Tensor::allocate(DType::F32, expected[static_cast<size_t>(t)].shape());
        std::vector<const Tensor*> inputs{&as[static_cast<size_t>(t)], &b, &bias};
        std::vector<Tensor*> outputs{&out};
        std::optional<Status> status = gemm.runMatmul(KernelContext{matmulDef(), attrs, inputs, outputs}, true);
        if (!status || !status->isOk()) {
          worst[static_cast<size_t>(t)] = 1e9;
          return;
        }
        worst[static_cast<size_t>(t)] =
            std::max(worst[static_cast<size_t>(t)], maxAbsDifference(out, expected[static_cast<size_t>(t)]));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (size_t t = 0; t < 4; ++t) EXPECT_LT(worst[t], tolerance(300)) << "thread " << t;
  EXPECT_EQ(gemm.packedWeights(), 1u);
}

TEST(Gemm, DeclinesWhatItDoesNotCover) {
  Gemm gemm;
  std::mt19937 rng(5);
  Attributes attrs;
  // Broadcast batch dims go to the reference kernel.
  Tensor a = randomF32({2, 1, 4, 8}, rng), b = randomF32({1, 3, 8, 5}, rng);
  Tensor out = Tensor::allocate(DType::F32, {2, 3, 4, 5});
  std::vector<const Tensor*> inputs{&a, &b};
  std::vector<Tensor*> outputs{&out};
  EXPECT_FALSE(gemm.runMatmul(KernelContext{matmulDef(), attrs, inputs, outputs}, false).has_value());
  // So do integers, and a bias that is not one row of N.
  Tensor ai = Tensor::allocate(DType::I64, {2, 2}), bi = Tensor::allocate(DType::I64, {2, 2});
  Tensor oi = Tensor::allocate(DType::I64, {2, 2});
  std::vector<const Tensor*> intInputs{&ai, &bi};
  std::vector<Tensor*> intOutputs{&oi};
  EXPECT_FALSE(gemm.runMatmul(KernelContext{matmulDef(), attrs, intInputs, intOutputs}, false).has_value());
  Tensor a2 = randomF32({4, 8}, rng), b2 = randomF32({8, 5}, rng), fullBias = randomF32({4, 5}, rng);
  Tensor out2 = Tensor::allocate(DType::F32, {4, 5});
  std::vector<const Tensor*> biased{&a2, &b2, &fullBias};
  std::vector<Tensor*> outputs2{&out2};
  EXPECT_FALSE(gemm.runMatmul(KernelContext{matmulDef(), attrs, biased, outputs2}, false).has_value());
}

TEST(Gemm, OnlyKilnGemmReferenceTurnsItOff) {
  ::unsetenv("KILN_GEMM");
  EXPECT_TRUE(onednnMatmulFromEnv());
  ::setenv("KILN_GEMM", "onednn", 1);
  EXPECT_TRUE(onednnMatmulFromEnv());
  ::setenv("KILN_GEMM", "reference", 1);
  EXPECT_FALSE(onednnMatmulFromEnv());
  ::unsetenv("KILN_GEMM");
}

// ---- The release of a packed weight's source pages.

// A private read-only mapping of a temporary file of `floats` random floats.
struct MappedFile {
  void* base = nullptr;
  size_t bytes = 0;
  std::vector<float> values;

  MappedFile(size_t floats, std::mt19937& rng, int protection = PROT_READ) : bytes(floats * sizeof(float)) {
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    values.resize(floats);
    for (float& v : values) v = dist(rng);
    char path[] = "/tmp/kiln_gemm_test_XXXXXX";
    const int fd = ::mkstemp(path);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, values.data(), bytes), static_cast<ssize_t>(bytes));
    base = ::mmap(nullptr, bytes, protection, MAP_PRIVATE, fd, 0);
    ::close(fd);
    ::unlink(path);
    EXPECT_NE(base, MAP_FAILED);
    // Touch every page, as the loader's checksum does.
    volatile float sink = 0;
    for (size_t i = 0; i < floats; i += 256) sink = sink + static_cast<const float*>(base)[i];
  }
  ~MappedFile() { ::munmap(base, bytes); }
  const float* data() const { return static_cast<const float*>(base); }
};

// Resident kB of the mapping that starts at `base`, from /proc/self/smaps.
long residentKb(const void* base) {
  std::ifstream smaps("/proc/self/smaps");
  char prefix[32];
  std::snprintf(prefix, sizeof prefix, "%lx-", reinterpret_cast<unsigned long>(base));
  std::string line;
  bool inMapping = false;
  while (std::getline(smaps, line)) {
    // A mapping's header starts "begin-end " in hex; its fields follow it.
    const std::string first = line.substr(0, line.find(' '));
    const size_t dash = first.find('-');
    if (dash != std::string::npos && first.find_first_not_of("0123456789abcdef-") == std::string::npos)
      inMapping = line.rfind(prefix, 0) == 0;
    else if (inMapping && line.rfind("Rss:", 0) == 0)
      return std::strtol(line.c_str() + 4, nullptr, 10);
  }
  return -1;
}

TEST(GemmPages, PackingAFileBackedWeightReleasesItsPages) {
  std::mt19937 rng(31);
  const int64_t K = 512, N = 256;  // 512 KiB
  MappedFile file(static_cast<size_t>(K * N), rng);
  const long before = residentKb(file.base);
  ASSERT_GE(before, 500) << "the mapping's pages should be resident after the first touch";
  Tensor b = Tensor::view(DType::F32, {K, N}, file.base);
  Tensor a = randomF32({8, K}, rng);
  Attributes attrs;
  std::vector<const Tensor*> inputs{&a, &b};
  Expected<std::vector<Tensor>> expected = evaluateOp(matmulDef(), attrs, inputs, 1);
  ASSERT_TRUE(static_cast<bool>(expected));
  Gemm gemm;
  Tensor out = Tensor::allocate(DType::F32, {8, N});
  std::vector<Tensor*> outputs{&out};
  ASSERT_TRUE(gemm.runMatmul(KernelContext{matmulDef(), attrs, inputs, outputs}, true)->isOk());
  EXPECT_LT(maxAbsDifference(out, expected->at(0)), tolerance(K));
  EXPECT_EQ(residentKb(file.base), 0) << "resident before packing: " << before << " kB";
  // The released pages read back from the file unchanged.
  EXPECT_EQ(std::memcmp(file.data(), file.values.data(), file.bytes), 0);
}

TEST(GemmPages, WrittenAndAnonymousPagesStay) {
  std::mt19937 rng(32);
  const long page = ::sysconf(_SC_PAGESIZE);
  MappedFile file(static_cast<size_t>(4 * page) / sizeof(float), rng, PROT_READ | PROT_WRITE);
  float* written = static_cast<float*>(file.base) + page / static_cast<long>(sizeof(float));  // page 1
  *written = 42.f;
  EXPECT_EQ(releaseCleanPages(file.base, file.bytes), static_cast<size_t>(3 * page));
  EXPECT_EQ(*written, 42.f);  // the private copy stayed
  EXPECT_EQ(std::memcmp(file.data(), file.values.data(), static_cast<size_t>(page)), 0);

  std::vector<float> heap(static_cast<size_t>(64 * page) / sizeof(float), 7.f);
  EXPECT_EQ(releaseCleanPages(heap.data(), heap.size() * sizeof(float)), 0u);
  EXPECT_TRUE(std::all_of(heap.begin(), heap.end(), [](float v) { return v == 7.f; }));
  // Only whole pages inside the range: a range within one page releases nothing.
  EXPECT_EQ(releaseCleanPages(static_cast<char*>(file.base) + 8, static_cast<size_t>(page) - 16), 0u);
}

TEST(GemmPages, TheDeviceReleasesOnlyAdoptedWeights) {
  ::unsetenv("KILN_GEMM");
  std::mt19937 rng(33);
  const int64_t K = 256, N = 512;
  MappedFile adopted(static_cast<size_t>(K * N), rng), notAdopted(static_cast<size_t>(K * N), rng);
  Tensor weight = Tensor::view(DType::F32, {K, N}, adopted.base);
  Tensor other = Tensor::view(DType::F32, {K, N}, notAdopted.base);
  CpuDevice device;
  const Tensor* lent[] = {&weight};
  device.adoptConstants(lent);
  Tensor a = randomF32({4, K}, rng);
  Attributes attrs;
  for (const Tensor* b : {&weight, &other}) {
    std::vector<const Tensor*> refInputs{&a, b};
    Expected<std::vector<Tensor>> expected = evaluateOp(matmulDef(), attrs, refInputs, 1);
    ASSERT_TRUE(static_cast<bool>(expected));
    Tensor out = Tensor::allocate(DType::F32, {4, N});
    const Tensor* inputs[] = {&a, b, nullptr, nullptr};
    Tensor* outputs[] = {&out};
    ASSERT_TRUE(device.run(matmulDef(), attrs, inputs, outputs, nullptr).isOk());
    EXPECT_LT(maxAbsDifference(out, expected->at(0)), tolerance(K));
  }
  EXPECT_EQ(residentKb(adopted.base), 0);
  EXPECT_GE(residentKb(notAdopted.base), 500);
  device.forgetConstants(lent);
}

// A weight the loader copied out of an unaligned place in its file
// (runtime/weight_copies.h): packing it lets the copy go, and whatever reads
// it later (a repack, the reference kernel) reads it from the file again.
TEST(GemmPages, PackingAReleasableCopyLetsItGoUntilReadAgain) {
  ::unsetenv("KILN_GEMM");
  std::mt19937 rng(34);
  const int64_t K = 256, N = 128;
  std::vector<float> values(static_cast<size_t>(K * N));
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (float& v : values) v = dist(rng);
  char path[] = "/tmp/kiln_gemm_copy_XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "abc", 3, 0), 3);
  const size_t bytes = values.size() * sizeof(float);
  ASSERT_EQ(::pwrite(fd, values.data(), bytes, 3), static_cast<ssize_t>(bytes));
  struct stat info;
  ASSERT_EQ(::fstat(fd, &info), 0);
  const int64_t mtimeNs = static_cast<int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
  void* data = nullptr;
  Expected<std::shared_ptr<void>> owner = rt::readWeightCopy(
      {fd, 3, bytes, static_cast<uint64_t>(info.st_size), mtimeNs, "weight @b", true}, &data);
  ::close(fd);
  ::unlink(path);
  ASSERT_TRUE(owner.isOk()) << owner.status().message();
  Tensor b = Tensor::view(DType::F32, {K, N}, data, *owner);
  Tensor a = randomF32({4, K}, rng);
  Attributes attrs;
  std::vector<const Tensor*> refInputs{&a, &b};
  Expected<std::vector<Tensor>> expected = evaluateOp(matmulDef(), attrs, refInputs, 1);
  ASSERT_TRUE(static_cast<bool>(expected));
  auto runOn = [&](auto&& runner) {
    Tensor out = Tensor::allocate(DType::F32, {4, N});
    const Tensor* inputs[] = {&a, &b, nullptr, nullptr};
    Tensor* outputs[] = {&out};
    ASSERT_TRUE(runner(KernelContext{matmulDef(), attrs, inputs, outputs}).isOk());
    EXPECT_LT(maxAbsDifference(out, expected->at(0)), tolerance(K));
  };
  Gemm gemm;
  auto viaGemm = [&](const KernelContext& ctx) { return *gemm.runMatmul(ctx, true); };
  runOn(viaGemm);
  EXPECT_EQ(rt::residentWeightCopyBytes(), 0u) << "packed: the copy should be released, chunk by chunk";
  runOn(viaGemm);  // from the packed form
  gemm.forgetWeight(b.data());
  runOn(viaGemm);  // packed again from the bytes read again
  EXPECT_EQ(rt::residentWeightCopyBytes(), 0u);

  ::setenv("KILN_GEMM", "reference", 1);
  CpuDevice reference;  // reads b in place: it must pin the copy, which reads it again
  ::unsetenv("KILN_GEMM");
  const Tensor* lent[] = {&b};
  reference.adoptConstants(lent);
  runOn([&](const KernelContext& ctx) { return reference.run(ctx.def, ctx.attrs, ctx.inputs, ctx.outputs, nullptr); });
  EXPECT_EQ(rt::residentWeightCopyBytes(), bytes);
  reference.forgetConstants(lent);
}

// ---- bf16 rounding.

TEST(Bf16Rounding, EveryIsaMatchesTheScalarRounding) {
  std::mt19937 rng(41);
  std::vector<float> values;
  const float specials[] = {0.f, -0.f, 1.f, -1.f, 1.00390625f /* a tie: rounds to even */, 1.01171875f,
                            std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                            std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::signaling_NaN(), std::numeric_limits<float>::min(),
                            std::numeric_limits<float>::denorm_min(), 3e-39f};
  values.assign(std::begin(specials), std::end(specials));
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 5000; ++i) {
    uint32_t v = bits(rng);
    float f;
    std::memcpy(&f, &v, sizeof f);
    values.push_back(f);
  }
  for (Isa isa : isasOfThisCpu()) {
    for (size_t n : {values.size(), size_t{1}, size_t{15}, size_t{31}, size_t{33}}) {
      std::vector<uint16_t> got(n, 0xdead);
      roundToBf16(values.data(), got.data(), static_cast<int64_t>(n), isa);
      for (size_t i = 0; i < n; ++i) {
        const uint16_t want = floatToBFloat16(values[i]);
        const bool denormal = std::fpclassify(values[i]) == FP_SUBNORMAL;
        // AVX512-BF16's conversion flushes denormals to a zero of their sign.
        if (isa == Isa::Avx512 && denormal && got[i] == (want & 0x8000)) continue;
        ASSERT_EQ(got[i], want) << isaName(isa) << " value " << i << " of " << n << ": " << values[i];
      }
    }
  }
}

}  // namespace
}  // namespace kiln::cpu
