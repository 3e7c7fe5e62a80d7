// The CPU latent_attention kernel (backends/cpu/latent_attention.h) against
// the reference kernel, which accumulates in double: random inputs in both
// forms (a decode step absorbs, a long prefill expands), with and without
// key_up and rope dims, rotate-half and interleaved RoPE from inv_freq or
// cos/sin tables, masks, past operands and the session's cache, under each
// instruction set this CPU has.
#include "backends/cpu/latent_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/status.h"
#include "ir/tensor.h"

namespace kiln::cpu {
namespace {

constexpr double kTolerance = 2e-5;  // relative, for values above 1

enum class Rope { None, HalfInvFreq, InterleavedTables };
enum class Mask { None, Scores, KeyPadding };
enum class Past { None, Operand, Cache };

struct Case {
  int64_t batch = 1, heads = 4, seq = 1, past = 0;
  int64_t queryDims = 8, ropeDims = 4, rank = 12, valueDim = 8;
  bool keyUp = true;
  bool bf16Cache = false;  // cache_dtype = "bf16": past, present and the cache in bf16
  bool causal = true;
  Rope rope = Rope::HalfInvFreq;
  Mask mask = Mask::None;
  Past pastMode = Past::None;
  LatentForm form = LatentForm::Absorbed;  // the form the kernel must pick

  int64_t width() const { return rank + ropeDims; }
  int64_t keys() const { return past + seq; }
  std::string str() const {
    return cat("B", batch, " H", heads, " S", seq, " P", past, " dq", queryDims, keyUp ? " key_up" : "", " rope",
               ropeDims, " r", rank, " dv", valueDim, bf16Cache ? " bf16 cache" : "");
  }
};

Tensor randomTensor(std::vector<int64_t> shape, std::mt19937& rng, DType dtype = DType::F32) {
  Tensor t = Tensor::allocate(dtype, std::move(shape));
  std::uniform_real_distribution<float> dist(-1, 1);
  for (int64_t i = 0; i < t.numElements(); ++i) {
    if (dtype == DType::BF16) t.data<uint16_t>()[i] = floatToBFloat16(dist(rng));
    else t.data<float>()[i] = dist(rng);
  }
  return t;
}

struct Inputs {
  Tensor q, latent, keyUp, valueUp, mask, cos, sin, past, invFreq, ropeUp;
  Attributes attrs;
  std::vector<const Tensor*> operands() const {
    auto at = [](const Tensor& t) { return t.shape().empty() ? nullptr : &t; };
    return {&q, &latent, at(keyUp), &valueUp, at(mask), at(cos), at(sin), at(past), at(invFreq), at(ropeUp)};
  }
};

Inputs makeInputs(const Case& c, std::mt19937& rng) {
  Inputs in;
  const int64_t B = c.batch, H = c.heads, S = c.seq, L = c.keys(), frequencies = 6;
  in.q = randomTensor({B, S, H * c.queryDims}, rng);
  in.latent = randomTensor({B, S, c.width()}, rng);
  if (c.keyUp) in.keyUp = randomTensor({H, c.queryDims, c.rank}, rng);
  if (c.ropeDims > 0) in.ropeUp = randomTensor({H, c.queryDims, c.ropeDims}, rng);
  in.valueUp = randomTensor({H, c.rank, c.valueDim}, rng);
  const DType cache = c.bf16Cache ? DType::BF16 : DType::F32;
  if (c.pastMode == Past::Operand) in.past = randomTensor({B, 1, c.past, c.width()}, rng, cache);
  std::vector<int64_t> pairFrequencies;
  for (int64_t p = 0; p < c.ropeDims / 2; ++p) pairFrequencies.push_back((p * 5) % frequencies);
  if (c.rope == Rope::HalfInvFreq) {
    in.invFreq = Tensor::allocate(DType::F32, {frequencies});
    for (int64_t i = 0; i < frequencies; ++i) in.invFreq.data<float>()[i] = std::pow(0.3f, static_cast<float>(i));
  } else if (c.rope == Rope::InterleavedTables) {
    in.cos = randomTensor({1, 1, S, 2 * frequencies}, rng);
    in.sin = randomTensor({1, 1, S, 2 * frequencies}, rng);
  }
  if (c.mask == Mask::Scores) {
    in.mask = randomTensor({B, 1, S, L}, rng);
  } else if (c.mask == Mask::KeyPadding) {
    in.mask = Tensor::allocate(DType::I64, {B, L});
    for (int64_t i = 0; i < B * L; ++i) in.mask.data<int64_t>()[i] = i % 5 != 3;
  }
  in.attrs.set("heads", H);
  in.attrs.set("rank", c.rank);
  in.attrs.set("scale", 0.3);
  in.attrs.set("causal", c.causal);
  if (c.rope != Rope::None) {
    in.attrs.set("rope", std::string(c.rope == Rope::HalfInvFreq ? "half" : "interleaved"));
    in.attrs.set("rope_dims", c.ropeDims);
    in.attrs.set("rope_frequencies", pairFrequencies);
  }
  if (c.mask == Mask::KeyPadding) in.attrs.set("mask_layout", std::string("key_padding"));
  if (c.bf16Cache) in.attrs.set("cache_dtype", std::string("bf16"));
  return in;
}

const OpDef& latentDef() { return *OpRegistry::global().find("latent_attention"); }

void expectClose(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  int reported = 0;
  for (int64_t i = 0; i < want.numElements() && reported < 5; ++i) {
    const double g = got.elementAsDouble(i), w = want.elementAsDouble(i);
    if (std::fabs(g - w) <= kTolerance * std::max(1.0, std::fabs(w))) continue;
    ADD_FAILURE() << what << " element " << i << ": got " << g << ", reference " << w;
    ++reported;
  }
}

// The reference and the kernel on the same inputs (a cache each, alike at
// the start); every output and, in the cache mode, the cache compared.
void check(const Case& c, Isa isa) {
  SCOPED_TRACE(cat(c.str(), " isa ", isaName(isa)));
  std::mt19937 rng(7);
  const Inputs in = makeInputs(c, rng);
  const std::vector<const Tensor*> operands = in.operands();
  const bool cached = c.pastMode == Past::Cache;
  const int64_t capacity = c.keys() + 2;
  const DType cache = c.bf16Cache ? DType::BF16 : DType::F32;
  Tensor referenceCache = randomTensor({c.batch, 1, capacity, c.width()}, rng, cache);
  Tensor kernelCache = referenceCache.clone();
  KvCacheBinding referenceBinding{referenceCache.data(), nullptr, capacity, c.past};
  KvCacheBinding kernelBinding{kernelCache.data(), nullptr, capacity, c.past};
  const int results = c.pastMode == Past::Operand ? 2 : 1;
  std::vector<Tensor> expected, actual;
  expected.push_back(Tensor::allocate(DType::F32, {c.batch, c.seq, c.heads * c.valueDim}));
  if (results == 2) expected.push_back(Tensor::allocate(cache, {c.batch, 1, c.keys(), c.width()}));
  for (const Tensor& t : expected) actual.push_back(Tensor::allocate(t.dtype(), t.shape()));
  std::vector<Tensor*> want, got;
  for (size_t i = 0; i < expected.size(); ++i) want.push_back(&expected[i]), got.push_back(&actual[i]);
  const KernelContext reference{latentDef(), in.attrs, operands, want, cached ? &referenceBinding : nullptr};
  const Status ran = referenceKernel(OpKind::LatentAttention)(reference);
  ASSERT_TRUE(ran.isOk()) << ran.message();
  LatentForm form{};
  const KernelContext kernel{latentDef(), in.attrs, operands, got, cached ? &kernelBinding : nullptr};
  const std::optional<Status> fast = runLatentAttention(kernel, isa, &form);
  ASSERT_TRUE(fast.has_value()) << "the kernel declined an f32 case";
  ASSERT_TRUE(fast->isOk()) << fast->message();
  EXPECT_EQ(form, c.form) << "the kernel picked the other form";
  expectClose(actual[0], expected[0], "out");
  if (results == 2) expectClose(actual[1], expected[1], "present");
  if (cached) expectClose(kernelCache, referenceCache, "cache");
}

void checkEveryIsa(const Case& c) {
  for (Isa isa : isasOfThisCpu()) check(c, isa);
}

TEST(LatentAttentionKernel, DecodeStepsAbsorbOverALongPast) {
  Case c;
  c.past = 700, c.pastMode = Past::Operand;
  checkEveryIsa(c);
  c.pastMode = Past::Cache;
  checkEveryIsa(c);
  c.batch = 2, c.seq = 2, c.rope = Rope::InterleavedTables;
  checkEveryIsa(c);
}

TEST(LatentAttentionKernel, LongPrefillsExpand) {
  Case c;
  c.seq = 96, c.queryDims = 4, c.rank = 32, c.form = LatentForm::Expanded;
  checkEveryIsa(c);
  c.rope = Rope::InterleavedTables, c.pastMode = Past::Operand, c.past = 5;
  checkEveryIsa(c);
}

// Every score from the rope part (as --latent-attention exact makes with
// RoPE), absorbed and expanded, and every score from the latent (no RoPE).
TEST(LatentAttentionKernel, NoKeyUpAndNoRopeDims) {
  Case c;
  c.keyUp = false, c.ropeDims = 8, c.rank = 8, c.past = 40, c.pastMode = Past::Cache;
  checkEveryIsa(c);
  c.seq = 64, c.past = 0, c.pastMode = Past::None, c.form = LatentForm::Expanded;
  checkEveryIsa(c);
  c.keyUp = true, c.rope = Rope::None, c.ropeDims = 0, c.queryDims = 6;
  checkEveryIsa(c);
}

// cache_dtype = "bf16": rows rounded as they are appended, read widened.
TEST(LatentAttentionKernel, Bf16Cache) {
  Case c;
  c.bf16Cache = true, c.past = 300;
  for (Past mode : {Past::Operand, Past::Cache}) {
    c.pastMode = mode;
    checkEveryIsa(c);
  }
  c.seq = 96, c.past = 4, c.queryDims = 4, c.rank = 32, c.form = LatentForm::Expanded;
  checkEveryIsa(c);
}

TEST(LatentAttentionKernel, Masks) {
  Case c;
  c.batch = 2, c.seq = 3, c.past = 20, c.pastMode = Past::Operand, c.causal = false;
  for (Mask mask : {Mask::Scores, Mask::KeyPadding}) {
    c.mask = mask;
    checkEveryIsa(c);
  }
}

TEST(LatentAttentionKernel, CacheCapacityExceededIsAnError) {
  Case c;
  std::mt19937 rng(1);
  const Inputs in = makeInputs(c, rng);
  Tensor cache = randomTensor({1, 1, 4, c.width()}, rng);
  KvCacheBinding binding{cache.data(), nullptr, 4, 4};
  Tensor out = Tensor::allocate(DType::F32, {1, 1, c.heads * c.valueDim});
  Tensor* outputs[] = {&out};
  const std::vector<const Tensor*> operands = in.operands();
  const KernelContext ctx{latentDef(), in.attrs, operands, outputs, &binding};
  const std::optional<Status> ran = runLatentAttention(ctx, Isa::Scalar);
  ASSERT_TRUE(ran.has_value());
  EXPECT_EQ(ran->message(), referenceKernel(OpKind::LatentAttention)(ctx).message());
  EXPECT_NE(ran->message().find("exceed the KV cache capacity 4"), std::string::npos) << ran->message();
}

}  // namespace
}  // namespace kiln::cpu
