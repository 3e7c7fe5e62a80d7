#include "backends/cpu/gemm.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <string_view>
#include <dnnl.hpp>
#include <functional>
#include <numeric>
#include <unordered_map>

#include "ir/tensor.h"
#include "ir/type.h"

namespace kiln::cpu {

namespace {

using dnnl::memory;

int64_t productOf(const std::vector<int64_t>& dims, size_t begin, size_t end) {
  return std::accumulate(dims.begin() + static_cast<ptrdiff_t>(begin),
                         dims.begin() + static_cast<ptrdiff_t>(end), int64_t{1}, std::multiplies<>());
}

std::optional<dnnl::algorithm> eltwiseFor(const std::string& activation, float& alpha) {
  alpha = 0.f;
  if (activation == "relu") return dnnl::algorithm::eltwise_relu;
  if (activation == "gelu") return dnnl::algorithm::eltwise_gelu_erf;
  if (activation == "gelu_tanh") return dnnl::algorithm::eltwise_gelu_tanh;
  if (activation == "tanh") return dnnl::algorithm::eltwise_tanh;
  if (activation == "silu") {
    alpha = 1.f;  // swish(x) = x * sigmoid(alpha * x)
    return dnnl::algorithm::eltwise_swish;
  }
  return std::nullopt;
}

// One matmul problem: batch x [M, K] @ [K, N], operands row-major or
// transposed (read through strides).
struct Problem {
  int64_t batch, M, K, N;
  bool transA, transB;
  bool bias, residual, packB;
  std::string activation;

  std::string key() const {
    return cat(batch, ',', M, ',', K, ',', N, ',', transA, transB, bias, residual, packB, activation);
  }
  memory::desc aDesc() const {
    if (batch == 1)
      return memory::desc({M, K}, memory::data_type::f32, transA ? memory::dims{1, M} : memory::dims{K, 1});
    return memory::desc({batch, M, K}, memory::data_type::f32,
                        transA ? memory::dims{M * K, 1, M} : memory::dims{M * K, K, 1});
  }
  memory::desc bDesc() const {
    if (batch == 1)
      return memory::desc({K, N}, memory::data_type::f32, transB ? memory::dims{1, K} : memory::dims{N, 1});
    return memory::desc({batch, K, N}, memory::data_type::f32,
                        transB ? memory::dims{K * N, 1, K} : memory::dims{K * N, N, 1});
  }
  memory::desc bAnyDesc() const { return memory::desc({K, N}, memory::data_type::f32, memory::format_tag::any); }
  memory::desc cDesc() const {
    return batch == 1 ? memory::desc({M, N}, memory::data_type::f32, memory::format_tag::ab)
                      : memory::desc({batch, M, N}, memory::data_type::f32, memory::format_tag::abc);
  }
  memory::desc biasDesc() const {
    return batch == 1 ? memory::desc({1, N}, memory::data_type::f32, memory::format_tag::ab)
                      : memory::desc({1, 1, N}, memory::data_type::f32, memory::format_tag::abc);
  }
};

struct Compiled {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul primitive;
};

struct PackedWeight {
  Tensor source;  // holds the weight's storage, so its address stays this weight's
  bool transB;
  memory packed;
};

}  // namespace

struct Gemm::State {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  mutable std::mutex mutex;
  std::map<std::string, std::shared_ptr<const Compiled>> compiled;
  std::multimap<const void*, PackedWeight> packed;
};

int gemmThreadsFromEnv() {
  if (const char* env = std::getenv("KILN_NUM_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n > 0 && n <= 1024) return static_cast<int>(n);
  }
  return 2;
}

bool onednnMatmulFromEnv() {
  const char* env = std::getenv("KILN_GEMM");
  return env && std::string_view(env) == "onednn";
}

Gemm::Gemm(int threads) : threads_(threads > 0 ? threads : 1), state_(std::make_unique<State>()) {}
Gemm::~Gemm() = default;

void Gemm::forgetWeight(const void* data) {
  std::lock_guard lock(state_->mutex);
  state_->packed.erase(data);
}

size_t Gemm::packedWeights() const {
  std::lock_guard lock(state_->mutex);
  return state_->packed.size();
}

std::optional<Status> Gemm::runMatmul(const KernelContext& ctx, bool bIsWeight) {
  const Tensor& a = *ctx.input(0);
  const Tensor& b = *ctx.input(1);
  const Tensor* bias = ctx.input(2);
  const Tensor* residual = ctx.input(3);
  Tensor& out = *ctx.outputs[0];
  if (a.dtype() != DType::F32 || b.dtype() != DType::F32 || out.dtype() != DType::F32) return std::nullopt;
  if (a.numElements() == 0 || b.numElements() == 0 || out.numElements() == 0) return std::nullopt;

  Problem p;
  p.transA = ctx.attrs.getBool("transpose_a");
  p.transB = ctx.attrs.getBool("transpose_b");
  p.activation = ctx.attrs.getString("activation", "none");
  float alpha = 0.f;
  const std::optional<dnnl::algorithm> eltwise = eltwiseFor(p.activation, alpha);
  if (p.activation != "none" && !eltwise) return std::nullopt;

  const std::vector<int64_t>& sa = a.shape();
  const std::vector<int64_t>& sb = b.shape();
  const size_t ra = sa.size(), rb = sb.size();
  p.M = ra >= 2 ? (p.transA ? sa.back() : sa[ra - 2]) : 1;
  p.K = p.transA ? sa[ra - 2] : sa.back();
  p.N = rb >= 2 ? (p.transB ? sb[rb - 2] : sb.back()) : 1;
  const size_t batchRankA = ra >= 2 ? ra - 2 : 0, batchRankB = rb >= 2 ? rb - 2 : 0;
  const int64_t batchA = productOf(sa, 0, batchRankA), batchB = productOf(sb, 0, batchRankB);
  if (batchB == 1 && (!p.transA || batchA == 1)) {
    // One b for every batch of a: the batches are more rows of one product.
    p.batch = 1;
    p.M *= batchA;
  } else if (std::vector<int64_t>(sa.begin(), sa.begin() + static_cast<ptrdiff_t>(batchRankA)) ==
             std::vector<int64_t>(sb.begin(), sb.begin() + static_cast<ptrdiff_t>(batchRankB))) {
    p.batch = batchA;
  } else {
    return std::nullopt;  // broadcast batch dims: the reference walks them
  }
  if (p.M * p.N * p.batch != out.numElements()) return std::nullopt;
  // A bias is one row of N broadcast over the result; a residual is the full result.
  p.bias = bias != nullptr;
  if (bias && (bias->dtype() != DType::F32 || bias->numElements() != p.N || bias->shape().empty() ||
               bias->shape().back() != p.N))
    return std::nullopt;
  p.residual = residual != nullptr;
  if (residual && (residual->dtype() != DType::F32 || residual->shape() != out.shape())) return std::nullopt;
  p.packB = bIsWeight && p.batch == 1;

  State& s = *state_;
  std::shared_ptr<const Compiled> compiled;
  const std::string key = p.key();
  {
    std::lock_guard lock(s.mutex);
    auto it = s.compiled.find(key);
    if (it != s.compiled.end()) compiled = it->second;
  }
  try {
    if (!compiled) {
      dnnl::post_ops ops;
      if (eltwise) ops.append_eltwise(1.f, *eltwise, alpha, 0.f);
      if (p.residual) ops.append_sum(1.f);  // dst = act(a @ b + bias) + dst, dst holding the residual
      dnnl::primitive_attr attr;
      attr.set_post_ops(ops);
      const memory::desc bMd = p.packB ? p.bAnyDesc() : p.bDesc();
      const dnnl::matmul::desc desc = p.bias ? dnnl::matmul::desc(p.aDesc(), bMd, p.biasDesc(), p.cDesc())
                                             : dnnl::matmul::desc(p.aDesc(), bMd, p.cDesc());
      dnnl::matmul::primitive_desc pd(desc, attr, s.engine);
      auto made = std::make_shared<Compiled>(Compiled{pd, dnnl::matmul(pd)});
      std::lock_guard lock(s.mutex);
      compiled = s.compiled.emplace(key, std::move(made)).first->second;
    }

    dnnl::stream stream(s.engine);
    memory bMem;
    if (p.packB) {
      const memory::desc packedMd = compiled->pd.weights_desc();
      std::lock_guard lock(s.mutex);  // packing once per weight and layout
      auto [first, last] = s.packed.equal_range(b.data());
      for (auto it = first; it != last && !bMem; ++it)
        if (it->second.transB == p.transB && it->second.packed.get_desc() == packedMd) bMem = it->second.packed;
      if (!bMem) {
        memory plain(p.bDesc(), s.engine, b.data());
        memory packed(packedMd, s.engine);
        dnnl::reorder(plain, packed).execute(stream, plain, packed);
        stream.wait();
        s.packed.emplace(b.data(), PackedWeight{b, p.transB, packed});
        bMem = packed;
      }
    } else {
      bMem = memory(p.bDesc(), s.engine, b.data());
    }

    if (residual && residual->data() != out.data())
      std::memcpy(out.data(), residual->data(), out.byteSize());
    memory aMem(p.aDesc(), s.engine, a.data());
    memory cMem(p.cDesc(), s.engine, out.data());
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, aMem}, {DNNL_ARG_WEIGHTS, bMem}, {DNNL_ARG_DST, cMem}};
    if (bias) args.emplace(DNNL_ARG_BIAS, memory(p.biasDesc(), s.engine, bias->data()));
    // OpenMP's thread count is per calling thread: set it for this one.
    omp_set_num_threads(threads_);
    compiled->primitive.execute(stream, args);
    stream.wait();
  } catch (const dnnl::error& e) {
    return Status::error("matmul", ctx.attrs.getString("activation", "none") == "none" ? "" : " (fused)",
                         ": oneDNN failed on a", shapeStr(sa), " b", shapeStr(sb), ": ", e.what());
  }
  return Status::ok();
}

}  // namespace kiln::cpu
