// The fused attention kernel (backends/cpu/attention.h) against the registry
// reference kernel, which accumulates in double: random inputs over every
// layout, MHA/GQA/MQA, causal or not, masks, RoPE, past operands, the
// session KV cache, decode steps and odd sizes, under each instruction set
// this CPU has and with 1 to 3 threads.
#include "backends/cpu/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/tensor.h"

namespace kiln::cpu {
namespace {

constexpr double kTolerance = 1e-5;  // relative, for values above 1

enum class Mask { None, Scores, ScoresPerKey, ScoresRank2, Bool, KeyPadding };
enum class Rope { None, Tables, SharedTables, InvFreq };
enum class Past { None, Operands, OperandsOutOnly, Cache };

struct Case {
  std::string layout = "bhsd", outLayout = "bhsd";
  int64_t batch = 1, heads = 4, kvHeads = 4, seq = 8;
  int64_t newKeys = -1;  // -1: seq
  int64_t past = 0, headDim = 16;
  int64_t valueDim = -1;  // -1: headDim
  bool causal = false;
  int64_t window = 0;
  int64_t ropeDims = 0;  // partial rotary; 0: the whole head
  bool interleaved = false;  // GPT-J's rope pairs (2i, 2i+1)
  Mask mask = Mask::None;
  Rope rope = Rope::None;
  Past pastMode = Past::None;
  int64_t cacheSpare = 3;  // cache rows beyond past + new

  int64_t keys() const { return past + newKeys; }
  std::string str() const {
    return layout + "->" + outLayout + " B" + std::to_string(batch) + " H" + std::to_string(heads) + "/" +
           std::to_string(kvHeads) + " S" + std::to_string(seq) + " T" + std::to_string(newKeys) + " P" +
           std::to_string(past) + " D" + std::to_string(headDim) + "/" + std::to_string(valueDim) +
           (causal ? " causal" : "") + (window ? " window" + std::to_string(window) : "") +
           (ropeDims ? " rope_dims" + std::to_string(ropeDims) : "") + (interleaved ? " interleaved" : "") + " mask" + std::to_string(static_cast<int>(mask)) + " rope" +
           std::to_string(static_cast<int>(rope)) + " past" + std::to_string(static_cast<int>(pastMode));
  }
};

Case normalised(Case c) {
  if (c.newKeys < 0 || c.layout == "bsd_packed") c.newKeys = c.seq;
  if (c.valueDim < 0 || c.layout == "bsd_packed") c.valueDim = c.headDim;
  return c;
}

Tensor randomTensor(DType dtype, std::vector<int64_t> shape, std::mt19937& rng, double lo = -1, double hi = 1) {
  Tensor t = Tensor::allocate(dtype, std::move(shape));
  std::uniform_real_distribution<double> dist(lo, hi);
  for (int64_t i = 0; i < t.numElements(); ++i) t.data<float>()[i] = static_cast<float>(dist(rng));
  return t;
}

// Inputs of a case: operands in the op's order (null when absent).
struct Inputs {
  Tensor q, k, v, mask, cos, sin, pastK, pastV, invFreq;
  Attributes attrs;
  std::vector<const Tensor*> operands() const {
    auto at = [](const Tensor& t) { return t.data() ? &t : nullptr; };
    return {&q, at(k), at(v), at(mask), at(cos), at(sin), at(pastK), at(pastV), at(invFreq)};
  }
};

Inputs makeInputs(const Case& c, std::mt19937& rng) {
  Inputs in;
  const int64_t B = c.batch, Hq = c.heads, Hkv = c.kvHeads, S = c.seq, T = c.newKeys, D = c.headDim,
                Dv = c.valueDim, L = c.keys();
  if (c.layout == "bsd_packed") {
    in.q = randomTensor(DType::F32, {B, S, (Hq + 2 * Hkv) * D}, rng);
  } else if (c.layout == "bsd") {
    in.q = randomTensor(DType::F32, {B, S, Hq * D}, rng);
    in.k = randomTensor(DType::F32, {B, T, Hkv * D}, rng);
    in.v = randomTensor(DType::F32, {B, T, Hkv * Dv}, rng);
  } else {
    in.q = randomTensor(DType::F32, {B, Hq, S, D}, rng);
    in.k = randomTensor(DType::F32, {B, Hkv, T, D}, rng);
    in.v = randomTensor(DType::F32, {B, Hkv, T, Dv}, rng);
  }
  if (c.pastMode == Past::Operands || c.pastMode == Past::OperandsOutOnly) {
    in.pastK = randomTensor(DType::F32, {B, Hkv, c.past, D}, rng);
    in.pastV = randomTensor(DType::F32, {B, Hkv, c.past, Dv}, rng);
  }
  std::uniform_real_distribution<double> unit(0, 1);
  switch (c.mask) {
    case Mask::None: break;
    case Mask::Scores:
    case Mask::ScoresPerKey:
    case Mask::ScoresRank2: {
      const std::vector<int64_t> shape = c.mask == Mask::Scores       ? std::vector<int64_t>{B, Hq, S, L}
                                         : c.mask == Mask::ScoresPerKey ? std::vector<int64_t>{B, 1, 1, L}
                                                                        : std::vector<int64_t>{S, L};
      in.mask = randomTensor(DType::F32, shape, rng, -3, 1);
      // Some keys blocked outright, and (per key) every key of batch 0's
      // first rows, to reach the all-masked rows that give zeros.
      for (int64_t i = 0; i < in.mask.numElements(); ++i)
        if (unit(rng) < 0.15 || (c.mask == Mask::Scores && i < 2 * L))
          in.mask.data<float>()[i] = -std::numeric_limits<float>::infinity();
      break;
    }
    case Mask::Bool:
      in.mask = Tensor::allocate(DType::Bool, {B, 1, S, L});
      for (int64_t i = 0; i < in.mask.numElements(); ++i) in.mask.data<bool>()[i] = unit(rng) < 0.7 && i >= L;
      break;
    case Mask::KeyPadding:
      in.mask = Tensor::allocate(DType::I64, {B, L});
      // Batch 0 attends to nothing; the others to a random three quarters.
      for (int64_t i = 0; i < in.mask.numElements(); ++i)
        in.mask.data<int64_t>()[i] = B > 1 && i < L ? 0 : unit(rng) < 0.75 ? 1 : 0;
      break;
  }
  const int64_t W = c.ropeDims ? c.ropeDims : D;  // the turned dims
  if (c.rope == Rope::InvFreq) {
    in.invFreq = Tensor::allocate(DType::F32, {W / 2});
    for (int64_t i = 0; i < W / 2; ++i)
      in.invFreq.data<float>()[i] = static_cast<float>(std::pow(10000.0, -2.0 * static_cast<double>(i) / W));
  } else if (c.rope != Rope::None) {
    const std::vector<int64_t> shape =
        c.rope == Rope::Tables ? std::vector<int64_t>{B, 1, S, W} : std::vector<int64_t>{S, W};
    in.cos = randomTensor(DType::F32, shape, rng, 0, 6.3);
    in.sin = Tensor::allocate(DType::F32, shape);
    for (int64_t i = 0; i < in.cos.numElements(); ++i) {
      const float angle = in.cos.data<float>()[i];
      in.cos.data<float>()[i] = std::cos(angle);
      in.sin.data<float>()[i] = std::sin(angle);
    }
  }
  in.attrs.set("heads", Hq);
  in.attrs.set("kv_heads", Hkv);
  in.attrs.set("scale", 1.0 / std::sqrt(static_cast<double>(D)));
  in.attrs.set("causal", c.causal);
  if (c.window) in.attrs.set("window", c.window);
  in.attrs.set("rope", std::string(c.rope == Rope::None ? "none" : c.interleaved ? "interleaved" : "half"));
  if (c.ropeDims) in.attrs.set("rope_dims", c.ropeDims);
  in.attrs.set("qkv_layout", c.layout);
  in.attrs.set("out_layout", c.outLayout);
  in.attrs.set("mask_layout", std::string(c.mask == Mask::KeyPadding ? "key_padding" : "scores"));
  return in;
}

const OpDef& attentionDef() { return *OpRegistry::global().find("attention"); }

void expectClose(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  int reported = 0;
  for (int64_t i = 0; i < want.numElements() && reported < 5; ++i) {
    const double g = got.data<float>()[i], w = want.data<float>()[i];
    if (std::fabs(g - w) <= kTolerance * std::max(1.0, std::fabs(w))) continue;
    ADD_FAILURE() << what << " element " << i << ": got " << g << ", reference " << w;
    ++reported;
  }
}

// Runs the case with the reference and with the kernel under `isa`, and
// compares every output (and the KV cache, in the cache mode).
void check(Case c, Isa isa, unsigned seed) {
  c = normalised(c);
  SCOPED_TRACE(c.str() + " isa " + std::string(isaName(isa)));
  std::mt19937 rng(seed);
  Inputs in = makeInputs(c, rng);
  const std::vector<const Tensor*> operands = in.operands();
  const int results = c.pastMode == Past::Operands ? 3 : 1;

  std::vector<Tensor> expected, actual;
  std::optional<Tensor> referenceCache[2], kernelCache[2];
  KvCacheBinding referenceBinding, kernelBinding;
  if (c.pastMode == Past::Cache) {
    // Both caches start alike: random past rows and random spare rows.
    const int64_t capacity = c.keys() + c.cacheSpare;
    for (int kv = 0; kv < 2; ++kv) {
      referenceCache[kv] =
          randomTensor(DType::F32, {c.batch, c.kvHeads, capacity, kv == 0 ? c.headDim : c.valueDim}, rng);
      kernelCache[kv] = referenceCache[kv]->clone();
    }
    referenceBinding = {referenceCache[0]->data(), referenceCache[1]->data(), capacity, c.past};
    kernelBinding = {kernelCache[0]->data(), kernelCache[1]->data(), capacity, c.past};
    const std::vector<int64_t> outShape = c.outLayout == "bhsd"
                                              ? std::vector<int64_t>{c.batch, c.heads, c.seq, c.valueDim}
                                              : std::vector<int64_t>{c.batch, c.seq, c.heads * c.valueDim};
    expected.push_back(Tensor::allocate(DType::F32, outShape));
    Tensor* out = &expected[0];
    const KernelContext ctx{attentionDef(), in.attrs, operands, std::span<Tensor* const>(&out, 1), &referenceBinding};
    const Status ran = referenceKernel(OpKind::Attention)(ctx);
    ASSERT_TRUE(ran.isOk()) << ran.message();
  } else {
    Expected<std::vector<Tensor>> ran = evaluateOp(attentionDef(), in.attrs, operands, results);
    ASSERT_TRUE(ran.isOk()) << ran.status().message();
    expected = std::move(*ran);
  }

  std::vector<Tensor*> outputs;
  for (const Tensor& t : expected) actual.push_back(Tensor::allocate(DType::F32, t.shape()));
  for (Tensor& t : actual) outputs.push_back(&t);
  const KernelContext ctx{attentionDef(), in.attrs, operands, outputs,
                          c.pastMode == Past::Cache ? &kernelBinding : nullptr};
  const std::optional<Status> ran = runAttention(ctx, isa);
  ASSERT_TRUE(ran.has_value()) << "the kernel declined an f32 case";
  ASSERT_TRUE(ran->isOk()) << ran->message();

  const char* names[] = {"out", "present_k", "present_v"};
  for (size_t i = 0; i < expected.size(); ++i) expectClose(actual[i], expected[i], names[i]);
  if (c.pastMode == Past::Cache) {
    expectClose(*kernelCache[0], *referenceCache[0], "cached keys");
    expectClose(*kernelCache[1], *referenceCache[1], "cached values");
  }
}

void checkEveryIsa(const Case& c, unsigned seed) {
  for (Isa isa : isasOfThisCpu()) check(c, isa, seed);
}

// KILN_NUM_THREADS for one scope (the kernel reads it on every call).
class ThreadCount {
 public:
  explicit ThreadCount(int n) {
    if (const char* old = std::getenv("KILN_NUM_THREADS")) old_ = old;
    setenv("KILN_NUM_THREADS", std::to_string(n).c_str(), 1);
  }
  ~ThreadCount() {
    if (old_) setenv("KILN_NUM_THREADS", old_->c_str(), 1);
    else unsetenv("KILN_NUM_THREADS");
  }

 private:
  std::optional<std::string> old_;
};

TEST(AttentionKernel, EveryLayoutAndHeadGrouping) {
  unsigned seed = 1;
  for (const char* layout : {"bhsd", "bsd", "bsd_packed"})
    for (const char* outLayout : {"bhsd", "bsd"})
      for (int64_t kvHeads : {4, 2, 1})  // MHA, GQA, MQA
        for (bool causal : {false, true}) {
          Case c;
          c.layout = layout;
          c.outLayout = outLayout;
          c.batch = 2;
          c.kvHeads = kvHeads;
          c.seq = 13;
          c.headDim = 24;
          c.causal = causal;
          checkEveryIsa(c, seed++);
        }
}

TEST(AttentionKernel, CrossAttentionKeysOfAnotherLengthAndValueDim) {
  unsigned seed = 100;
  for (const char* layout : {"bhsd", "bsd"})
    for (int64_t newKeys : {1, 5, 70})
      for (bool causal : {false, true}) {
        Case c;
        c.layout = layout;
        c.heads = 6;
        c.kvHeads = 3;
        c.seq = 9;
        c.newKeys = newKeys;
        c.headDim = 20;
        c.valueDim = 12;
        c.causal = causal;
        checkEveryIsa(c, seed++);
      }
}

TEST(AttentionKernel, Masks) {
  unsigned seed = 200;
  for (Mask mask : {Mask::Scores, Mask::ScoresPerKey, Mask::ScoresRank2, Mask::Bool, Mask::KeyPadding})
    for (bool causal : {false, true})
      for (int64_t past : {0, 9}) {
        Case c;
        c.batch = 3;
        c.heads = 4;
        c.kvHeads = 2;
        c.seq = 11;
        c.past = past;
        c.pastMode = past ? Past::Operands : Past::None;
        c.headDim = 32;
        c.mask = mask;
        c.causal = causal;
        checkEveryIsa(c, seed++);
        c.seq = 1;  // a decode step under the same mask
        checkEveryIsa(c, seed++);
      }
}

TEST(AttentionKernel, RopeFromTablesAndFrequencies) {
  unsigned seed = 300;
  for (Rope rope : {Rope::Tables, Rope::SharedTables, Rope::InvFreq})
    for (const char* layout : {"bhsd", "bsd", "bsd_packed"})
      for (Past past : {Past::None, Past::Operands, Past::Cache}) {
        Case c;
        c.layout = layout;
        c.batch = 2;
        c.heads = 8;
        c.kvHeads = 2;
        c.seq = 10;
        c.past = past == Past::None ? 0 : 21;
        c.pastMode = past;
        c.headDim = 64;
        c.rope = rope;
        c.causal = true;
        checkEveryIsa(c, seed++);
      }
}

// Partial rotary (Phi, GPT-NeoX, GPT-J): RoPE on the first W dims of a head
// only, rotate-half and interleaved, from tables and from inv_freq, with a
// past and a KV cache.
TEST(AttentionKernel, PartialRotaryTurnsOnlyTheFirstDims) {
  unsigned seed = 320;
  for (Rope rope : {Rope::Tables, Rope::SharedTables, Rope::InvFreq})
    for (int64_t width : {2, 16, 32, 48})
      for (Past past : {Past::None, Past::Cache}) {
        Case c;
        c.interleaved = width % 32 == 0;
        c.batch = 2;
        c.heads = 4;
        c.kvHeads = 2;
        c.seq = 9;
        c.past = past == Past::None ? 0 : 11;
        c.pastMode = past;
        c.headDim = 48;
        c.rope = rope;
        c.ropeDims = width;
        c.causal = true;
        checkEveryIsa(c, seed++);
      }
}

// A sliding window (Mistral's) shorter and longer than a key block, with and
// without a past and a key-padding mask: the keys before it are masked.
TEST(AttentionKernel, SlidingWindowMasksKeysBeforeIt) {
  unsigned seed = 350;
  for (int64_t window : {1, 4, 70})
    for (Past past : {Past::None, Past::Operands, Past::Cache})
      for (Mask mask : {Mask::None, Mask::KeyPadding}) {
        Case c;
        c.batch = 2;
        c.heads = 4;
        c.kvHeads = 2;
        c.seq = 13;
        c.past = past == Past::None ? 0 : 90;
        c.pastMode = past;
        c.causal = true;
        c.window = window;
        c.mask = mask;
        checkEveryIsa(c, seed++);
      }
}

TEST(AttentionKernel, PastOperandsWithAndWithoutPresents) {
  unsigned seed = 400;
  for (Past mode : {Past::Operands, Past::OperandsOutOnly})
    for (int64_t past : {1, 40, 300})
      for (int64_t seq : {1, 6}) {
        Case c;
        c.layout = "bsd";
        c.outLayout = "bsd";
        c.batch = 2;
        c.heads = 4;
        c.kvHeads = 1;
        c.seq = seq;
        c.past = past;
        c.pastMode = mode;
        c.headDim = 40;
        c.causal = true;
        checkEveryIsa(c, seed++);
      }
}

TEST(AttentionKernel, KvCacheAppendsInPlace) {
  unsigned seed = 500;
  for (int64_t past : {0, 1, 37})
    for (int64_t seq : {1, 7})
      for (const char* layout : {"bhsd", "bsd_packed"}) {
        Case c;
        c.layout = layout;
        c.outLayout = "bsd";
        c.batch = 2;
        c.heads = 4;
        c.kvHeads = 2;
        c.seq = seq;
        c.past = past;
        c.pastMode = Past::Cache;
        c.headDim = 48;
        c.causal = true;
        c.rope = Rope::InvFreq;
        checkEveryIsa(c, seed++);
      }
}

TEST(AttentionKernel, DecodeStepsLikeLlama) {
  // llama-bench-decode's attention: packed q|k|v, 16 heads on 4 kv heads,
  // head dim 64, RoPE from inv_freq, one new token after 0, 1 or 511.
  unsigned seed = 600;
  for (Past mode : {Past::Operands, Past::Cache})
    for (int64_t past : {0, 1, 511}) {
      Case c;
      c.layout = "bsd_packed";
      c.outLayout = "bsd";
      c.heads = 16;
      c.kvHeads = 4;
      c.seq = 1;
      c.past = past;
      c.pastMode = mode;
      c.headDim = 64;
      c.causal = true;
      c.rope = Rope::InvFreq;
      checkEveryIsa(c, seed++);
    }
}

TEST(AttentionKernel, KeyChunksMergeUnderEveryThreadCount) {
  // Few heads and many keys: the keys split into chunks (more with more
  // threads), some of them wholly masked.
  unsigned seed = 700;
  for (int threads : {1, 2, 3}) {
    ThreadCount scope(threads);
    for (Mask mask : {Mask::None, Mask::KeyPadding, Mask::Scores}) {
      Case c;
      c.heads = 2;
      c.kvHeads = 1;
      c.batch = 2;
      c.seq = 2;
      c.past = 1500;
      c.pastMode = Past::OperandsOutOnly;
      c.headDim = 64;
      c.mask = mask;
      c.causal = true;
      checkEveryIsa(c, seed++);
    }
  }
}

TEST(AttentionKernel, HeadDimsAndSequenceLengths) {
  unsigned seed = 800;
  for (int64_t headDim : {1, 3, 8, 9, 17, 64, 72, 80, 100, 128})
    for (int64_t seq : {1, 5, 33}) {
      Case c;
      c.layout = "bsd";
      c.heads = 4;
      c.kvHeads = 2;
      c.seq = seq;
      c.headDim = headDim;
      c.causal = seq != 5;
      checkEveryIsa(c, seed++);
    }
  for (int64_t valueDim : {1, 7, 16, 31, 130}) {
    Case c;
    c.seq = 19;
    c.headDim = 16;
    c.valueDim = valueDim;
    checkEveryIsa(c, seed++);
  }
}

TEST(AttentionKernel, LongCausalPrefillLikeLlama) {
  unsigned seed = 900;
  for (int64_t seq : {128, 203}) {
    Case c;
    c.layout = "bsd_packed";
    c.outLayout = "bsd";
    c.heads = 8;
    c.kvHeads = 2;
    c.seq = seq;
    c.headDim = 64;
    c.causal = true;
    c.rope = Rope::InvFreq;
    checkEveryIsa(c, seed++);
  }
  Case bert;  // encoder: no causal mask, key padding, head dim 64
  bert.layout = "bsd_packed";
  bert.outLayout = "bsd";
  bert.batch = 2;
  bert.heads = 6;
  bert.kvHeads = 6;
  bert.seq = 77;
  bert.headDim = 64;
  bert.mask = Mask::KeyPadding;
  checkEveryIsa(bert, seed++);
}

TEST(AttentionKernel, CacheCapacityExceededIsAnError) {
  Case c = normalised(Case{});
  std::mt19937 rng(1000);
  Inputs in = makeInputs(c, rng);
  const std::vector<const Tensor*> operands = in.operands();
  Tensor keys = Tensor::allocate(DType::F32, {1, 4, 10, 16}), values = keys.clone();
  const KvCacheBinding binding{keys.data(), values.data(), 10, 5};  // 5 + 8 > 10
  Tensor out = Tensor::allocate(DType::F32, {1, 4, 8, 16});
  Tensor* outputs[] = {&out};
  const KernelContext ctx{attentionDef(), in.attrs, operands, outputs, &binding};
  const Status reference = referenceKernel(OpKind::Attention)(ctx);
  for (Isa isa : isasOfThisCpu()) {
    const std::optional<Status> ran = runAttention(ctx, isa);
    ASSERT_TRUE(ran.has_value());
    EXPECT_FALSE(ran->isOk());
    EXPECT_EQ(ran->message(), reference.message());
  }
}

TEST(AttentionKernel, DeclinesWhatItDoesNotCover) {
  Case c = normalised(Case{});
  std::mt19937 rng(1100);
  Inputs in = makeInputs(c, rng);
  Tensor out = Tensor::allocate(DType::F32, {1, 4, 8, 16});
  Tensor* outputs[] = {&out};

  // A float64 mask (values beyond float's range keep their meaning only in double).
  Tensor mask = Tensor::allocate(DType::F64, {8, 8});
  std::vector<const Tensor*> operands = in.operands();
  operands[3] = &mask;
  EXPECT_FALSE(runAttention(KernelContext{attentionDef(), in.attrs, operands, outputs}, Isa::Scalar).has_value());

  // f16 queries, keys and values.
  Tensor q16 = Tensor::allocate(DType::F16, in.q.shape()), k16 = Tensor::allocate(DType::F16, in.k.shape()),
         v16 = Tensor::allocate(DType::F16, in.v.shape());
  Tensor out16 = Tensor::allocate(DType::F16, {1, 4, 8, 16});
  Tensor* outputs16[] = {&out16};
  const std::vector<const Tensor*> halves{&q16, &k16, &v16};
  EXPECT_FALSE(runAttention(KernelContext{attentionDef(), in.attrs, halves, outputs16}, Isa::Scalar).has_value());
}

}  // namespace
}  // namespace kiln::cpu
