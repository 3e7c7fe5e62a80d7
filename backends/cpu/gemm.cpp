#include "backends/cpu/gemm.h"

#include <fcntl.h>
#include <immintrin.h>
#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <dnnl.hpp>
#include <iterator>
#include <span>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "backends/cpu/kernels.h"
#include "ir/ops/op_helpers.h"
#include "ir/tensor.h"
#include "ir/type.h"

namespace kiln::cpu {

namespace {

using dnnl::memory;
using Dims = memory::dims;

// Below these sizes a product runs on the calling thread alone: an OpenMP
// fork/join (a few microseconds, once per K-chunk) costs more than the other
// cores give back (docs/performance.md). Rows: flops of one K-chunk
// (2 batch M N rows); a single row against a weight: elements of b.
constexpr int64_t kParallelChunkFlops = int64_t{1} << 22;
constexpr int64_t kParallelRowWeights = int64_t{1} << 18;
// b with fewer columns stays where it lies: oneDNN's layout pads N to 64.
constexpr int64_t kMinPackedN = 16;
// The single-row kernel's column block (oneDNN's f32 layout BA16a64b).
constexpr int64_t kPanelWidth = 64;

enum class Activation : uint8_t { None, Relu, Gelu, GeluTanh, Silu, Tanh };

std::optional<Activation> parseActivation(std::string_view name) {
  if (name == "none") return Activation::None;
  if (name == "relu") return Activation::Relu;
  if (name == "gelu") return Activation::Gelu;
  if (name == "gelu_tanh") return Activation::GeluTanh;
  if (name == "silu") return Activation::Silu;
  if (name == "tanh") return Activation::Tanh;
  return std::nullopt;
}

dnnl::algorithm eltwiseFor(Activation activation) {
  switch (activation) {
    case Activation::Relu: return dnnl::algorithm::eltwise_relu;
    case Activation::Gelu: return dnnl::algorithm::eltwise_gelu_erf;
    case Activation::GeluTanh: return dnnl::algorithm::eltwise_gelu_tanh;
    case Activation::Silu: return dnnl::algorithm::eltwise_swish;  // x * sigmoid(alpha x), alpha 1
    case Activation::Tanh: return dnnl::algorithm::eltwise_tanh;
    case Activation::None: break;
  }
  return dnnl::algorithm::undef;
}

// As the reference kernel computes it (the single-row kernel's epilogue).
double activate(Activation activation, double v) {
  switch (activation) {
    case Activation::None: return v;
    case Activation::Relu: return v < 0 ? 0 : v;
    case Activation::Gelu: return ops::geluErf(v);
    case Activation::GeluTanh: return ops::geluTanh(v);
    case Activation::Silu: return ops::silu(v);
    case Activation::Tanh: return std::tanh(v);
  }
  return v;
}

const dnnl::engine& cpuEngine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// oneDNN streams are not to be shared between threads; a CPU stream runs
// each primitive on the calling thread (and its OpenMP team).
dnnl::stream& threadStream() {
  thread_local dnnl::stream stream(cpuEngine());
  return stream;
}

int64_t roundUp(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// How a product's K is cut: f32 products in chunks of about kGemmChunkK rows
// (multiples of 16, oneDNN's K block, but the last), bf16 ones whole (their
// error is the bf16 rounding of the factors; chunks would only cost time).
struct KChunks {
  int64_t K = 0, size = 0, count = 1;

  KChunks() = default;
  KChunks(int64_t k, bool whole) : K(k), size(k) {
    if (whole || K <= kGemmChunkK) return;
    const int64_t pieces = (K + kGemmChunkK - 1) / kGemmChunkK;
    size = roundUp((K + pieces - 1) / pieces, 16);
    count = (K + size - 1) / size;
  }
  int64_t begin(int64_t i) const { return i * size; }
  int64_t length(int64_t i) const { return std::min(size, K - i * size); }
};

// One product: batch x [M, K] @ [K, N] -> [M, N]; a and b row-major or
// transposed (read through strides). The key of its plan.
struct PlanKey {
  const void* weight = nullptr;  // b's address when it is packed; null: b is read where it lies
  int64_t batch = 1, M = 0, K = 0, N = 0;
  int threads = 1;
  bool transA = false, transB = false, bias = false, residual = false, bf16 = false;
  Activation activation = Activation::None;

  bool operator==(const PlanKey&) const = default;
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    size_t h = std::hash<const void*>()(k.weight);
    for (int64_t v : {k.batch, k.M, k.K, k.N, int64_t{k.threads}})
      h = h * 0x9e3779b97f4a7c15ull + static_cast<size_t>(v);
    const unsigned flags = k.transA | k.transB << 1 | k.bias << 2 | k.residual << 3 | k.bf16 << 4 |
                           static_cast<unsigned>(k.activation) << 5;
    return h * 0x9e3779b97f4a7c15ull + flags;
  }
};

int threadsFor(const PlanKey& p) {
  // One row against a weight: bound by reading the weight (our kernel for f32).
  if (p.weight && p.M == 1) return p.K * p.N < kParallelRowWeights ? 1 : numThreads();
  const KChunks chunks(p.K, p.bf16);
  return 2 * p.batch * p.M * p.N * chunks.size < kParallelChunkFlops ? 1 : numThreads();
}

// The dtype oneDNN reads both factors in (a is rounded to bf16 for a bf16 b).
memory::data_type factorType(const PlanKey& p) {
  return p.bf16 ? memory::data_type::bf16 : memory::data_type::f32;
}

// a's K-chunk of `rows` columns: a itself (or its bf16 copy) when K is one
// chunk, else a dense copy (oneDNN's fast kernels want a dense a).
memory::desc aChunkDesc(const PlanKey& p, const KChunks& chunks, int64_t rows) {
  const memory::data_type t = factorType(p);
  if (chunks.count > 1)
    return p.batch == 1 ? memory::desc({p.M, rows}, t, memory::format_tag::ab)
                        : memory::desc({p.batch, p.M, rows}, t, memory::format_tag::abc);
  if (p.batch == 1) return memory::desc({p.M, rows}, t, p.transA ? Dims{1, p.M} : Dims{p.K, 1});
  return memory::desc({p.batch, p.M, rows}, t, p.transA ? Dims{p.M * p.K, 1, p.M} : Dims{p.M * p.K, p.K, 1});
}

// Copies f32 a into its chunks, one after another, each [batch][M][rows]
// row-major (a transposed is read transposed); rows of a split across
// `threads`.
void copyChunksOfA(const PlanKey& p, const KChunks& chunks, const float* a, float* dst, int threads) {
  const int64_t rowsOfA = p.batch * p.M;
  auto copyRow = [&](int64_t r) {
    const int64_t b = r / p.M, m = r % p.M;
    const float* src = a + b * p.M * p.K;
    for (int64_t i = 0; i < chunks.count; ++i) {
      const int64_t k0 = chunks.begin(i), width = chunks.length(i);
      float* to = dst + k0 * rowsOfA + r * width;
      if (!p.transA) {
        std::memcpy(to, src + m * p.K + k0, static_cast<size_t>(width) * sizeof(float));
      } else {
        for (int64_t k = 0; k < width; ++k) to[k] = src[(k0 + k) * p.M + m];
      }
    }
  };
  if (threads == 1) {
    for (int64_t r = 0; r < rowsOfA; ++r) copyRow(r);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t r = 0; r < rowsOfA; ++r) copyRow(r);
}

// b's K-chunk in place.
memory::desc bChunkDesc(const PlanKey& p, int64_t rows) {
  const memory::data_type t = factorType(p);
  if (p.batch == 1) return memory::desc({rows, p.N}, t, p.transB ? Dims{1, p.K} : Dims{p.N, 1});
  return memory::desc({p.batch, rows, p.N}, t, p.transB ? Dims{p.K * p.N, 1, p.K} : Dims{p.K * p.N, p.N, 1});
}
int64_t bChunkOffset(const PlanKey& p, int64_t k0) { return p.transB ? k0 : k0 * p.N; }

memory::desc cDesc(const PlanKey& p) {
  return p.batch == 1 ? memory::desc({p.M, p.N}, memory::data_type::f32, memory::format_tag::ab)
                      : memory::desc({p.batch, p.M, p.N}, memory::data_type::f32, memory::format_tag::abc);
}
memory::desc biasDesc(const PlanKey& p) {
  return p.batch == 1 ? memory::desc({1, p.N}, memory::data_type::f32, memory::format_tag::ab)
                      : memory::desc({1, 1, p.N}, memory::data_type::f32, memory::format_tag::abc);
}

// One packed K-chunk of an f32 b as the single-row kernel reads it: for each
// block of 64 columns, `paddedRows` rows of 64 floats, the first `rows` real.
struct Panel {
  const float* data = nullptr;
  int64_t k0 = 0, rows = 0, paddedRows = 0;
};

// Whether oneDNN's layout for a chunk of `rows` rows is BA16a64b f32:
// [N/64][rows/16][16][64], so each 64-column block is a row-major panel.
bool isPanelLayout(const memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.data_type != dnnl_f32 || d.format_kind != dnnl_blocked || d.ndims != 2 || d.offset0 != 0) return false;
  const dnnl_blocking_desc_t& blocking = d.format_desc.blocking;
  return blocking.inner_nblks == 2 && blocking.inner_blks[0] == 16 && blocking.inner_idxs[0] == 0 &&
         blocking.inner_blks[1] == kPanelWidth && blocking.inner_idxs[1] == 1 && blocking.strides[0] == 16 * kPanelWidth &&
         blocking.strides[1] == d.padded_dims[0] * kPanelWidth && d.padded_dims[1] % kPanelWidth == 0;
}

// A constant b reordered into oneDNN's layout, one memory per K-chunk.
struct PackedWeight {
  Tensor source;  // holds the weight's storage, so its address stays this weight's
  std::vector<memory> chunks;
  std::vector<Panel> panels;  // the chunks for the single-row kernel; empty when not BA16a64b f32
};

struct Plan {
  PlanKey key;
  KChunks chunks;
  std::shared_ptr<const PackedWeight> weight;  // null: b is read where it lies
  bool rowKernel = false;                      // one row against packed f32 panels: our kernel
  // The residual is added by the last chunk (a binary post-op), after the
  // activation and after the chunks' sum, so that sum runs at the product's
  // magnitude, not the residual's; a lone chunk with no activation instead
  // starts from the residual (a sum post-op, no copy when it is in place).
  bool residualBinary = false;
  std::vector<dnnl::matmul> primitives;  // one per K-chunk
  std::vector<memory::desc> aDescs, bDescs;
};

// ---- The single-row kernel: acc[0, 64) = a @ b's 64-column block `block`,
// ---- each K-chunk summed in two accumulators (even and odd rows), then
// ---- added to the total: oneDNN's chunked order, and no longer chains.

void rowBlockScalar(const float* a, const Panel* panels, size_t count, int64_t block, float* acc) {
  float total[kPanelWidth] = {};
  for (size_t c = 0; c < count; ++c) {
    const Panel& p = panels[c];
    const float* w = p.data + block * p.paddedRows * kPanelWidth;
    const float* x = a + p.k0;
    float even[kPanelWidth] = {}, odd[kPanelWidth] = {};
    int64_t k = 0;
    for (; k + 2 <= p.rows; k += 2)
      for (int64_t j = 0; j < kPanelWidth; ++j) {
        even[j] += x[k] * w[k * kPanelWidth + j];
        odd[j] += x[k + 1] * w[(k + 1) * kPanelWidth + j];
      }
    if (k < p.rows)
      for (int64_t j = 0; j < kPanelWidth; ++j) even[j] += x[k] * w[k * kPanelWidth + j];
    for (int64_t j = 0; j < kPanelWidth; ++j) total[j] += even[j] + odd[j];
  }
  std::copy_n(total, kPanelWidth, acc);
}

__attribute__((target("avx2,fma"))) void rowBlockAvx2(const float* a, const Panel* panels, size_t count,
                                                      int64_t block, float* acc) {
  // Two passes of 32 columns: 4 accumulators per parity and 4 totals fit the 16 registers.
  for (int64_t half = 0; half < kPanelWidth; half += 32) {
    __m256 t0 = _mm256_setzero_ps(), t1 = t0, t2 = t0, t3 = t0;
    for (size_t c = 0; c < count; ++c) {
      const Panel& p = panels[c];
      const float* w = p.data + block * p.paddedRows * kPanelWidth + half;
      const float* x = a + p.k0;
      __m256 e0 = _mm256_setzero_ps(), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
      int64_t k = 0;
      for (; k + 2 <= p.rows; k += 2) {
        const float* r = w + k * kPanelWidth;
        const __m256 xe = _mm256_set1_ps(x[k]), xo = _mm256_set1_ps(x[k + 1]);
        e0 = _mm256_fmadd_ps(xe, _mm256_loadu_ps(r), e0);
        e1 = _mm256_fmadd_ps(xe, _mm256_loadu_ps(r + 8), e1);
        e2 = _mm256_fmadd_ps(xe, _mm256_loadu_ps(r + 16), e2);
        e3 = _mm256_fmadd_ps(xe, _mm256_loadu_ps(r + 24), e3);
        o0 = _mm256_fmadd_ps(xo, _mm256_loadu_ps(r + kPanelWidth), o0);
        o1 = _mm256_fmadd_ps(xo, _mm256_loadu_ps(r + kPanelWidth + 8), o1);
        o2 = _mm256_fmadd_ps(xo, _mm256_loadu_ps(r + kPanelWidth + 16), o2);
        o3 = _mm256_fmadd_ps(xo, _mm256_loadu_ps(r + kPanelWidth + 24), o3);
      }
      if (k < p.rows) {
        const float* r = w + k * kPanelWidth;
        const __m256 xe = _mm256_set1_ps(x[k]);
        e0 = _mm256_fmadd_ps(xe, _mm256_loadu_ps(r), e0);
        e1 = _mm256_fmadd_ps(xe, _mm256_loadu_ps(r + 8), e1);
        e2 = _mm256_fmadd_ps(xe, _mm256_loadu_ps(r + 16), e2);
        e3 = _mm256_fmadd_ps(xe, _mm256_loadu_ps(r + 24), e3);
      }
      t0 = _mm256_add_ps(t0, _mm256_add_ps(e0, o0));
      t1 = _mm256_add_ps(t1, _mm256_add_ps(e1, o1));
      t2 = _mm256_add_ps(t2, _mm256_add_ps(e2, o2));
      t3 = _mm256_add_ps(t3, _mm256_add_ps(e3, o3));
    }
    _mm256_storeu_ps(acc + half, t0);
    _mm256_storeu_ps(acc + half + 8, t1);
    _mm256_storeu_ps(acc + half + 16, t2);
    _mm256_storeu_ps(acc + half + 24, t3);
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma"))) void rowBlockAvx512(
    const float* a, const Panel* panels, size_t count, int64_t block, float* acc) {
  __m512 t0 = _mm512_setzero_ps(), t1 = t0, t2 = t0, t3 = t0;
  for (size_t c = 0; c < count; ++c) {
    const Panel& p = panels[c];
    const float* w = p.data + block * p.paddedRows * kPanelWidth;
    const float* x = a + p.k0;
    __m512 e0 = _mm512_setzero_ps(), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
    int64_t k = 0;
    for (; k + 2 <= p.rows; k += 2) {
      const float* r = w + k * kPanelWidth;
      const __m512 xe = _mm512_set1_ps(x[k]), xo = _mm512_set1_ps(x[k + 1]);
      e0 = _mm512_fmadd_ps(xe, _mm512_loadu_ps(r), e0);
      e1 = _mm512_fmadd_ps(xe, _mm512_loadu_ps(r + 16), e1);
      e2 = _mm512_fmadd_ps(xe, _mm512_loadu_ps(r + 32), e2);
      e3 = _mm512_fmadd_ps(xe, _mm512_loadu_ps(r + 48), e3);
      o0 = _mm512_fmadd_ps(xo, _mm512_loadu_ps(r + kPanelWidth), o0);
      o1 = _mm512_fmadd_ps(xo, _mm512_loadu_ps(r + kPanelWidth + 16), o1);
      o2 = _mm512_fmadd_ps(xo, _mm512_loadu_ps(r + kPanelWidth + 32), o2);
      o3 = _mm512_fmadd_ps(xo, _mm512_loadu_ps(r + kPanelWidth + 48), o3);
    }
    if (k < p.rows) {
      const float* r = w + k * kPanelWidth;
      const __m512 xe = _mm512_set1_ps(x[k]);
      e0 = _mm512_fmadd_ps(xe, _mm512_loadu_ps(r), e0);
      e1 = _mm512_fmadd_ps(xe, _mm512_loadu_ps(r + 16), e1);
      e2 = _mm512_fmadd_ps(xe, _mm512_loadu_ps(r + 32), e2);
      e3 = _mm512_fmadd_ps(xe, _mm512_loadu_ps(r + 48), e3);
    }
    t0 = _mm512_add_ps(t0, _mm512_add_ps(e0, o0));
    t1 = _mm512_add_ps(t1, _mm512_add_ps(e1, o1));
    t2 = _mm512_add_ps(t2, _mm512_add_ps(e2, o2));
    t3 = _mm512_add_ps(t3, _mm512_add_ps(e3, o3));
  }
  _mm512_storeu_ps(acc, t0);
  _mm512_storeu_ps(acc + 16, t1);
  _mm512_storeu_ps(acc + 32, t2);
  _mm512_storeu_ps(acc + 48, t3);
}

using RowBlockFn = void (*)(const float*, const Panel*, size_t, int64_t, float*);

RowBlockFn rowBlockFor(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return rowBlockAvx512;
    case Isa::Avx2: return rowBlockAvx2;
    case Isa::Scalar: break;
  }
  return rowBlockScalar;
}

// out = act(a @ b + bias) + residual for one row of a; residual may be out.
void runRow(const Plan& plan, RowBlockFn rowBlock, const float* a, const float* bias, const float* residual,
            float* out) {
  const int64_t N = plan.key.N, blocks = (N + kPanelWidth - 1) / kPanelWidth;
  const std::vector<Panel>& panels = plan.weight->panels;
  const Activation activation = plan.key.activation;
  auto runBlock = [&](int64_t block) {
    alignas(64) float acc[kPanelWidth];
    rowBlock(a, panels.data(), panels.size(), block, acc);
    const int64_t n0 = block * kPanelWidth, width = std::min(kPanelWidth, N - n0);
    for (int64_t j = 0; j < width; ++j) {
      double v = acc[j];
      if (bias) v += bias[n0 + j];
      v = activate(activation, v);
      if (residual) v += residual[n0 + j];
      out[n0 + j] = static_cast<float>(v);
    }
  };
  if (plan.key.threads == 1) {
    for (int64_t block = 0; block < blocks; ++block) runBlock(block);
    return;
  }
#pragma omp parallel for num_threads(plan.key.threads) schedule(static)
  for (int64_t block = 0; block < blocks; ++block) runBlock(block);
}

// ---- bf16 rounding of a.

void roundToBf16Scalar(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = floatToBFloat16(src[i]);
}

__attribute__((target("avx2,fma"))) __m256i roundToBf16x8(const float* src) {
  const __m256 x = _mm256_loadu_ps(src);
  const __m256i bits = _mm256_castps_si256(x);
  const __m256i high = _mm256_srli_epi32(bits, 16);
  // Round to nearest even: add 0x7fff plus the lowest kept bit, keep the top half.
  const __m256i lsb = _mm256_and_si256(high, _mm256_set1_epi32(1));
  const __m256i rounded =
      _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i quietNan = _mm256_or_si256(high, _mm256_set1_epi32(0x40));
  const __m256i isNan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  return _mm256_blendv_epi8(rounded, quietNan, isNan);
}

__attribute__((target("avx2,fma"))) void roundToBf16Avx2(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    // packus interleaves the 128-bit lanes; the permute puts them back in order.
    const __m256i packed = _mm256_packus_epi32(roundToBf16x8(src + i), roundToBf16x8(src + i + 8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_permute4x64_epi64(packed, 0xd8));
  }
  roundToBf16Scalar(src + i, dst + i, n - i);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma"))) void roundToBf16Avx512Bf16(
    const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
    _mm512_storeu_si512(dst + i, (__m512i)v);
  }
  for (; i < n; i += 16) {
    const __mmask16 mask = static_cast<__mmask16>(n - i >= 16 ? 0xffff : (1u << (n - i)) - 1);
    const __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, src + i));
    _mm256_mask_storeu_epi16(dst + i, mask, (__m256i)v);
  }
}

bool cpuHasAvx512Bf16() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
  }();
  return has;
}

// Per-thread buffers that grow to the largest request and stay.
struct Scratch {
  std::vector<float> aChunks;    // f32 a cut into dense K-chunks
  std::vector<uint16_t> aBf16;   // a rounded to bf16
  std::vector<float> residual;   // a residual that the result overwrites before it is added
};

template <class T>
T* grown(std::vector<T>& buffer, int64_t n) {
  if (buffer.size() < static_cast<size_t>(n)) buffer.resize(static_cast<size_t>(n));
  return buffer.data();
}

Scratch& threadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

dnnl::memory makeMemory(const memory::desc& md, const void* data) {
  return memory(md, cpuEngine(), const_cast<void*>(data));
}

}  // namespace

struct Gemm::State {
  // Plans by product; building one (and packing its weight) holds the lock
  // exclusively, running one only shares it.
  mutable std::shared_mutex mutex;
  std::unordered_map<PlanKey, std::shared_ptr<const Plan>, PlanKeyHash> plans;
  // Packed weights by (address, K, N, transB): one layout each, whatever M.
  std::map<std::tuple<const void*, int64_t, int64_t, bool>, std::shared_ptr<const PackedWeight>> weights;

  std::shared_ptr<const Plan> build(const PlanKey& key, const Tensor& b);
  std::shared_ptr<const PackedWeight> pack(const PlanKey& key, const Tensor& b, const KChunks& chunks,
                                           std::vector<dnnl::matmul::primitive_desc>& pds);
};

namespace {

dnnl::matmul::primitive_desc chunkPrimitive(const Plan& plan, int64_t i, const memory::desc& bMd) {
  const PlanKey& key = plan.key;
  const bool last = i + 1 == plan.chunks.count;
  dnnl::post_ops ops;
  // The result holds the chunks summed so far (or, for a lone chunk, the residual).
  if (i > 0 || (key.residual && !plan.residualBinary)) ops.append_sum(1.f);
  if (last && key.activation != Activation::None)
    ops.append_eltwise(1.f, eltwiseFor(key.activation), key.activation == Activation::Silu ? 1.f : 0.f, 0.f);
  if (last && plan.residualBinary) ops.append_binary(dnnl::algorithm::binary_add, cDesc(key));
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  const memory::desc aMd = plan.aDescs[static_cast<size_t>(i)];
  // The bias joins the last chunk's product, before the earlier chunks' sum.
  const dnnl::matmul::desc desc = key.bias && last ? dnnl::matmul::desc(aMd, bMd, biasDesc(key), cDesc(key))
                                                   : dnnl::matmul::desc(aMd, bMd, cDesc(key));
  return dnnl::matmul::primitive_desc(desc, attr, cpuEngine());
}

}  // namespace

std::shared_ptr<const PackedWeight> Gemm::State::pack(const PlanKey& key, const Tensor& b, const KChunks& chunks,
                                                      std::vector<dnnl::matmul::primitive_desc>& pds) {
  auto packed = std::make_shared<PackedWeight>();
  packed->source = b;
  const size_t elementSize = dtypeSize(b.dtype());
  dnnl::stream& stream = threadStream();
  bool panels = !key.bf16;
  for (int64_t i = 0; i < chunks.count; ++i) {
    const int64_t k0 = chunks.begin(i), rows = chunks.length(i);
    const memory::desc packedMd = pds[static_cast<size_t>(i)].weights_desc();
    memory plain = makeMemory(bChunkDesc(key, rows), b.data<uint8_t>() + bChunkOffset(key, k0) * elementSize);
    memory chunk(packedMd, cpuEngine());
    dnnl::reorder(plain, chunk).execute(stream, plain, chunk);
    stream.wait();
    packed->chunks.push_back(chunk);
    panels = panels && isPanelLayout(packedMd);
    if (panels)
      packed->panels.push_back(Panel{static_cast<const float*>(chunk.get_data_handle()), k0, rows,
                                     packedMd.data.padded_dims[0]});
    // Rows of a row-major b leave memory chunk by chunk, so its plain and
    // packed forms overlap by one chunk at most.
    if (!key.transB)
      releaseCleanPages(b.data<uint8_t>() + k0 * key.N * elementSize, static_cast<size_t>(rows * key.N) * elementSize);
  }
  if (key.transB) releaseCleanPages(b.data(), b.byteSize());
  if (!panels) packed->panels.clear();
  return packed;
}

std::shared_ptr<const Plan> Gemm::State::build(const PlanKey& key, const Tensor& b) {
  auto plan = std::make_shared<Plan>();
  plan->key = key;
  plan->chunks = KChunks(key.K, key.bf16);
  plan->residualBinary = key.residual && (key.activation != Activation::None || plan->chunks.count > 1);
  for (int64_t i = 0; i < plan->chunks.count; ++i) {
    plan->aDescs.push_back(aChunkDesc(key, plan->chunks, plan->chunks.length(i)));
    plan->bDescs.push_back(bChunkDesc(key, plan->chunks.length(i)));
  }
  // oneDNN sizes a primitive's thread partition when it is created.
  const int previousThreads = omp_get_max_threads();
  omp_set_num_threads(key.threads);
  struct RestoreThreads {
    int threads;
    ~RestoreThreads() { omp_set_num_threads(threads); }
  } restore{previousThreads};

  std::vector<dnnl::matmul::primitive_desc> pds;
  if (key.weight) {
    const auto weightKey = std::make_tuple(key.weight, key.K, key.N, key.transB);
    auto found = weights.find(weightKey);
    if (found == weights.end()) {
      // First use: oneDNN picks the layout (format any), the weight is packed into it.
      for (int64_t i = 0; i < plan->chunks.count; ++i)
        pds.push_back(chunkPrimitive(
            *plan, i, memory::desc({plan->chunks.length(i), key.N}, factorType(key), memory::format_tag::any)));
      plan->weight = pack(key, b, plan->chunks, pds);
      weights.emplace(weightKey, plan->weight);
    } else {
      plan->weight = found->second;
    }
    plan->rowKernel = key.M == 1 && !plan->weight->panels.empty();
    if (plan->rowKernel) return plan;
    if (pds.empty()) {
      try {
        for (int64_t i = 0; i < plan->chunks.count; ++i)
          pds.push_back(chunkPrimitive(*plan, i, plan->weight->chunks[static_cast<size_t>(i)].get_desc()));
      } catch (const dnnl::error&) {
        // No implementation takes the packed layout for this M: read b in place.
        pds.clear();
        plan->weight = nullptr;
      }
    }
  }
  if (!plan->weight)
    for (int64_t i = 0; i < plan->chunks.count; ++i)
      pds.push_back(chunkPrimitive(*plan, i, plan->bDescs[static_cast<size_t>(i)]));
  for (const dnnl::matmul::primitive_desc& pd : pds) plan->primitives.emplace_back(pd);
  return plan;
}

bool onednnMatmulFromEnv() {
  const char* env = std::getenv("KILN_GEMM");
  return !env || std::string_view(env) != "reference";
}

Gemm::Gemm(Isa isa) : isa_(isa), state_(std::make_unique<State>()) {}
Gemm::~Gemm() = default;

void Gemm::forgetWeight(const void* data) {
  std::unique_lock lock(state_->mutex);
  std::erase_if(state_->plans, [&](const auto& entry) { return entry.first.weight == data; });
  std::erase_if(state_->weights, [&](const auto& entry) { return std::get<0>(entry.first) == data; });
}

size_t Gemm::packedWeights() const {
  std::shared_lock lock(state_->mutex);
  return state_->weights.size();
}

std::optional<Status> Gemm::runMatmul(const KernelContext& ctx, bool bIsWeight) {
  const Tensor& a = *ctx.input(0);
  const Tensor& b = *ctx.input(1);
  const Tensor* bias = ctx.input(2);
  const Tensor* residual = ctx.input(3);
  Tensor& out = *ctx.outputs[0];
  if (a.dtype() != DType::F32 || out.dtype() != DType::F32) return std::nullopt;
  if (b.dtype() != DType::F32 && b.dtype() != DType::BF16) return std::nullopt;
  if (a.numElements() == 0 || b.numElements() == 0 || out.numElements() == 0) return std::nullopt;

  PlanKey key;
  key.bf16 = b.dtype() == DType::BF16;
  key.transA = ctx.attrs.getBool("transpose_a");
  key.transB = ctx.attrs.getBool("transpose_b");
  const std::optional<Activation> activation = parseActivation(ctx.attrs.getString("activation", "none"));
  if (!activation) return std::nullopt;
  key.activation = *activation;

  const std::vector<int64_t>& sa = a.shape();
  const std::vector<int64_t>& sb = b.shape();
  const size_t ra = sa.size(), rb = sb.size();
  key.M = ra >= 2 ? (key.transA ? sa.back() : sa[ra - 2]) : 1;
  key.K = key.transA ? sa[ra - 2] : sa.back();
  key.N = rb >= 2 ? (key.transB ? sb[rb - 2] : sb.back()) : 1;
  const std::span<const int64_t> batchA(sa.data(), ra >= 2 ? ra - 2 : 0), batchB(sb.data(), rb >= 2 ? rb - 2 : 0);
  const int64_t batchesA = ops::product(batchA), batchesB = ops::product(batchB);
  if (batchesB == 1 && (!key.transA || batchesA == 1)) {
    // One b for every batch of a: the batches are more rows of one product.
    key.M *= batchesA;
  } else if (std::ranges::equal(batchA, batchB)) {
    key.batch = batchesA;
  } else {
    return std::nullopt;  // broadcast batch dims: the reference walks them
  }
  if (key.M * key.N * key.batch != out.numElements()) return std::nullopt;
  // A bias is one row of N broadcast over the result; a residual is the full result.
  key.bias = bias != nullptr;
  if (bias && (bias->dtype() != DType::F32 || bias->numElements() != key.N || bias->shape().empty() ||
               bias->shape().back() != key.N))
    return std::nullopt;
  key.residual = residual != nullptr;
  if (residual && (residual->dtype() != DType::F32 || residual->shape() != out.shape())) return std::nullopt;
  if (bIsWeight && key.batch == 1 && key.N >= kMinPackedN) key.weight = b.data();
  key.threads = threadsFor(key);

  State& s = *state_;
  std::shared_ptr<const Plan> plan;
  {
    std::shared_lock lock(s.mutex);
    if (auto it = s.plans.find(key); it != s.plans.end()) plan = it->second;
  }
  try {
    if (!plan) {
      std::unique_lock lock(s.mutex);
      auto it = s.plans.find(key);
      plan = it != s.plans.end() ? it->second : s.plans.emplace(key, s.build(key, b)).first->second;
    }
  } catch (const dnnl::error& e) {
    if (e.status == dnnl_unimplemented) return std::nullopt;  // e.g. bf16 on a CPU oneDNN has no kernel for
    return Status::error("matmul: oneDNN cannot build a", shapeStr(sa), " @ b", shapeStr(sb), ": ", e.what());
  }

  if (plan->rowKernel) {
    runRow(*plan, rowBlockFor(isa_), a.data<float>(), bias ? bias->data<float>() : nullptr,
           residual ? residual->data<float>() : nullptr, out.data<float>());
    return Status::ok();
  }
  const void* aData = a.data();
  if (key.bf16) {
    const int64_t n = a.numElements();
    uint16_t* rounded = grown(threadScratch().aBf16, n);
    if (key.threads == 1) {
      roundToBf16(a.data<float>(), rounded, n, isa_);
    } else {
#pragma omp parallel num_threads(key.threads)
      {
        const int64_t begin = n * omp_get_thread_num() / omp_get_num_threads();
        const int64_t end = n * (omp_get_thread_num() + 1) / omp_get_num_threads();
        roundToBf16(a.data<float>() + begin, rounded + begin, end - begin, isa_);
      }
    }
    aData = rounded;
  } else if (plan->chunks.count > 1) {
    float* chunked = grown(threadScratch().aChunks, a.numElements());
    copyChunksOfA(key, plan->chunks, a.data<float>(), chunked, key.threads);
    aData = chunked;
  }

  const void* residualData = residual ? residual->data() : nullptr;
  if (residual && !plan->residualBinary && residualData != out.data()) {
    std::memcpy(out.data(), residualData, out.byteSize());
  } else if (residual && plan->residualBinary && residualData == out.data()) {
    // Chunk 0 writes the result before the last chunk reads the residual.
    float* copy = grown(threadScratch().residual, out.numElements());
    std::memcpy(copy, residualData, out.byteSize());
    residualData = copy;
  }
  const size_t aElement = key.bf16 ? 2 : 4;
  const int previousThreads = omp_get_max_threads();
  omp_set_num_threads(key.threads);
  dnnl_status_t status = dnnl_success;
  try {
    dnnl::stream& stream = threadStream();
    memory cMem = makeMemory(cDesc(key), out.data());
    memory biasMem = bias ? makeMemory(biasDesc(key), bias->data()) : memory();
    memory residualMem = plan->residualBinary ? makeMemory(cDesc(key), residualData) : memory();
    // The binary post-op follows the sum (chunks after the first) and the eltwise.
    const int binaryIndex = (plan->chunks.count > 1 ? 1 : 0) + (key.activation != Activation::None ? 1 : 0);
    for (int64_t i = 0; i < plan->chunks.count && status == dnnl_success; ++i) {
      const size_t c = static_cast<size_t>(i);
      const int64_t k0 = plan->chunks.begin(i);
      // Chunk copies lie one after another; a single chunk is a itself.
      memory aMem = makeMemory(plan->aDescs[c], static_cast<const uint8_t*>(aData) + k0 * key.batch * key.M * aElement);
      memory bMem = plan->weight ? plan->weight->chunks[c]
                                 : makeMemory(plan->bDescs[c], static_cast<const uint8_t*>(b.data()) +
                                                                   bChunkOffset(key, k0) * aElement);
      dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, aMem.get()}, {DNNL_ARG_WEIGHTS, bMem.get()}, {DNNL_ARG_DST, cMem.get()}};
      int count = 3;
      if (bias && i + 1 == plan->chunks.count) args[count++] = {DNNL_ARG_BIAS, biasMem.get()};
      if (plan->residualBinary && i + 1 == plan->chunks.count)
        args[count++] = {DNNL_ARG_ATTR_MULTIPLE_POST_OP(binaryIndex) | DNNL_ARG_SRC_1, residualMem.get()};
      status = dnnl_primitive_execute(plan->primitives[c].get(), stream.get(), count, args);
    }
    if (status == dnnl_success) status = dnnl_stream_wait(stream.get());
  } catch (const dnnl::error& e) {
    status = e.status;
  }
  omp_set_num_threads(previousThreads);
  if (status != dnnl_success)
    return Status::error("matmul: oneDNN failed on a", shapeStr(sa), " @ b", shapeStr(sb), " (status ",
                         static_cast<int>(status), ")");
  return Status::ok();
}

size_t releaseCleanPages(const void* data, size_t bytes) {
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t start = reinterpret_cast<uintptr_t>(data);
  const uintptr_t begin = (start + page - 1) / page * page, end = (start + bytes) / page * page;
  if (begin >= end) return 0;
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  // pagemap: one 64-bit entry per page; bit 63 present, bit 61 a file page or
  // shared anonymous memory (a written page of a private mapping is neither).
  constexpr uint64_t kPresent = uint64_t{1} << 63, kFileOrShared = uint64_t{1} << 61;
  size_t released = 0;
  uintptr_t run = 0;  // start of the current run of releasable pages; 0: none
  auto releaseRun = [&](uintptr_t until) {
    if (run && ::madvise(reinterpret_cast<void*>(run), until - run, MADV_DONTNEED) == 0) released += until - run;
    run = 0;
  };
  uint64_t entries[512];
  uintptr_t at = begin;
  while (at < end) {
    const size_t pages = std::min<size_t>(std::size(entries), (end - at) / page);
    const ssize_t got = ::pread(fd, entries, pages * sizeof(uint64_t), static_cast<off_t>(at / page * sizeof(uint64_t)));
    if (got != static_cast<ssize_t>(pages * sizeof(uint64_t))) break;
    for (size_t i = 0; i < pages; ++i, at += page) {
      const bool clean = (entries[i] & kPresent) && (entries[i] & kFileOrShared);
      if (!clean) releaseRun(at);
      else if (!run) run = at;
    }
  }
  releaseRun(at);
  ::close(fd);
  return released;
}

void roundToBf16(const float* src, uint16_t* dst, int64_t n, Isa isa) {
  if (isa == Isa::Avx512 && cpuHasAvx512Bf16()) return roundToBf16Avx512Bf16(src, dst, n);
  if (isa >= Isa::Avx2) return roundToBf16Avx2(src, dst, n);
  roundToBf16Scalar(src, dst, n);
}

}  // namespace kiln::cpu
