// One attention op of the bench models, timed alone: the CPU backend's fused
// kernel (backends/cpu/attention.h) under the active instruction set, and
// with --reference the registry's reference kernel. Random inputs; prints
// per-call median and min in microseconds, and for decode the KV bytes read
// per call over the min time.
//
//   attention_bench PRESET [--past P] [--iters N] [--reference]
//
// PRESET: llama-prefill (128 tokens; 16 heads on 4 kv heads of 64, packed
// q|k|v, RoPE from inv_freq, causal), gpt2-prefill (128 tokens, 12 heads,
// causal), bert (128 tokens, 12 heads, key-padding mask), llama-decode (one
// token on a session KV cache of P past tokens, default 511; the calls cycle
// through enough caches that they come from memory, not the 32 MB L3, as
// in a 4-layer step at a long past). Threads: KILN_NUM_THREADS (default 2).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/attention.h"
#include "backends/cpu/isa.h"
#include "backends/cpu/kernels.h"
#include "backends/reference/reference.h"
#include "ir/tensor.h"

namespace {

using namespace kiln;

Tensor randomF32(std::vector<int64_t> shape, std::mt19937& rng) {
  Tensor t = Tensor::allocateUninitialized(DType::F32, std::move(shape));
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (int64_t i = 0; i < t.numElements(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

int usage() {
  std::fprintf(stderr,
               "usage: attention_bench llama-prefill|gpt2-prefill|bert|llama-decode [--past P] [--iters N] "
               "[--reference]\n");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string preset = argv[1];
  int64_t past = 511;
  int iters = 200;
  bool reference = false;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--past" && i + 1 < argc) past = std::atoll(argv[++i]);
    else if (arg == "--iters" && i + 1 < argc) iters = std::max(1, std::atoi(argv[++i]));
    else if (arg == "--reference") reference = true;
    else return usage();
  }
  const bool decode = preset == "llama-decode";
  const bool llama = preset == "llama-prefill" || decode;
  if (!llama && preset != "gpt2-prefill" && preset != "bert") return usage();

  const int64_t heads = llama ? 16 : 12, kvHeads = llama ? 4 : 12, headDim = 64;
  const int64_t seq = decode ? 1 : 128, keys = (decode ? past : 0) + seq;
  std::mt19937 rng(1);
  Attributes attrs;
  attrs.set("heads", heads);
  attrs.set("kv_heads", kvHeads);
  attrs.set("scale", 0.125);
  attrs.set("causal", preset != "bert");
  attrs.set("rope", std::string(llama ? "half" : "none"));
  attrs.set("qkv_layout", std::string("bsd_packed"));
  attrs.set("out_layout", std::string("bsd"));
  attrs.set("mask_layout", std::string(preset == "bert" ? "key_padding" : "scores"));

  Tensor q = randomF32({1, seq, (heads + 2 * kvHeads) * headDim}, rng);
  Tensor invFreq = Tensor::allocate(DType::F32, {headDim / 2});
  for (int64_t i = 0; i < headDim / 2; ++i)
    invFreq.data<float>()[i] = static_cast<float>(std::pow(10000.0, -2.0 * static_cast<double>(i) / headDim));
  Tensor padding = Tensor::allocate(DType::I64, {1, keys});
  for (int64_t i = 0; i < keys; ++i) padding.data<int64_t>()[i] = i < keys - 16 ? 1 : 0;  // 16 pad tokens
  Tensor out = Tensor::allocate(DType::F32, {1, seq, heads * headDim});
  const std::vector<const Tensor*> inputs{&q,      nullptr, nullptr, preset == "bert" ? &padding : nullptr,
                                          nullptr, nullptr, nullptr, nullptr,
                                          llama ? &invFreq : nullptr};
  Tensor* outputs[] = {&out};

  // Decode: caches of (past + 1) rows, as many as fill 128 MB.
  const int64_t capacity = keys;
  const int64_t cacheBytes = 2 * kvHeads * capacity * headDim * static_cast<int64_t>(sizeof(float));
  const int64_t caches = decode ? std::max<int64_t>(1, (int64_t{128} << 20) / cacheBytes) : 0;
  std::vector<Tensor> storage;
  std::vector<KvCacheBinding> bindings;
  for (int64_t c = 0; c < caches; ++c) {
    storage.push_back(randomF32({1, kvHeads, capacity, headDim}, rng));
    storage.push_back(randomF32({1, kvHeads, capacity, headDim}, rng));
    bindings.push_back({storage[storage.size() - 2].data(), storage.back().data(), capacity, past});
  }

  const OpDef& def = opDef(OpKind::Attention);
  std::vector<double> us;
  for (int i = -3; i < iters; ++i) {  // three untimed calls first
    const KvCacheBinding* cache = decode ? &bindings[static_cast<size_t>(i + 3) % bindings.size()] : nullptr;
    const KernelContext ctx{def, attrs, inputs, outputs, cache};
    const auto start = std::chrono::steady_clock::now();
    const Status ran = reference ? referenceKernel(def.kind)(ctx) : *cpu::runAttention(ctx, cpu::activeIsa());
    const double elapsed = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    if (!ran.isOk()) {
      std::fprintf(stderr, "attention_bench: %s\n", ran.message().c_str());
      return 1;
    }
    if (i >= 0) us.push_back(elapsed);
  }
  std::sort(us.begin(), us.end());
  const std::string kernel = reference ? "reference" : "fused " + std::string(cpu::isaName(cpu::activeIsa()));
  std::printf("{\"preset\": \"%s\", \"kernel\": \"%s\", \"threads\": %d, \"past\": %lld, \"us_median\": %.1f, "
              "\"us_min\": %.1f",
              preset.c_str(), kernel.c_str(), cpu::numThreads(), static_cast<long long>(decode ? past : 0),
              us[us.size() / 2], us.front());
  if (decode) std::printf(", \"kv_gb_per_s_at_min\": %.1f", static_cast<double>(cacheBytes) / us.front() / 1e3);
  std::printf("}\n");
  return 0;
}
