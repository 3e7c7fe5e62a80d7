#include "backends/cpu/gemm.h"

#include <fcntl.h>
#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <iterator>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "backends/cpu/gemm_kernels.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/vector_isa.h"
#include "backends/reference/kernel_helpers.h"
#include "ir/activation.h"
#include "ir/tensor.h"
#include "ir/type.h"
#include "runtime/weight_copies.h"

namespace kiln::cpu {

namespace {

using dnnl::memory;
using Dims = memory::dims;

// b with fewer columns stays where it lies: oneDNN's layout pads N to 64.
constexpr int64_t kMinPackedN = 16;
// Bytes of a thread's private result columns (its share of the K-chunks'
// running sums), which should stay in its L2 cache across the chunks.
constexpr int64_t kColumnPassBytes = int64_t{256} << 10;
// Rows of a pass when M is larger than kMaxPassRows: a pass over all of a
// tall M would hold too few columns for oneDNN's kernel and read all of a
// for every 64 columns; a block of rows is read once per column pass of it.
constexpr int64_t kMaxPassRows = 512, kPassRows = 256;
// Tiles run a tall product (over kMaxPassRows rows) or one whose weight
// stays in the cache; a few hundred rows against weights of several MiB
// (llama-bench's prefill, 128 rows) ran 6% faster on oneDNN's column passes,
// whose 8 blocks of 64 columns a pass reuse each chunk of a (measured).
constexpr int64_t kTiledWeightBytes = int64_t{1} << 20;

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
  return 2 * p.batch * p.M * p.N * p.K < kParallelFlops ? 1 : numThreads();
}

// The dtype oneDNN reads both factors in (a is rounded to bf16 for a bf16 b).
memory::data_type factorType(const PlanKey& p) {
  return p.bf16 ? memory::data_type::bf16 : memory::data_type::f32;
}
size_t factorSize(const PlanKey& p) { return p.bf16 ? 2 : 4; }

// a's K-chunk of `rows` columns: a itself (or its bf16 copy) when it is one
// chunk read in place, else a dense copy (oneDNN's fast kernels want it so).
memory::desc aChunkDesc(const PlanKey& p, bool copied, int64_t rows) {
  const memory::data_type t = factorType(p);
  if (copied)
    return p.batch == 1 ? memory::desc({p.M, rows}, t, memory::format_tag::ab)
                        : memory::desc({p.batch, p.M, rows}, t, memory::format_tag::abc);
  if (p.batch == 1) return memory::desc({p.M, rows}, t, p.transA ? Dims{1, p.M} : Dims{p.K, 1});
  return memory::desc({p.batch, p.M, rows}, t, p.transA ? Dims{p.M * p.K, 1, p.M} : Dims{p.M * p.K, p.K, 1});
}

// Copies rows [first, last) of f32 a (of its batch x M rows) into its
// chunks, which lie one after another, each [batch][M][chunk width]
// row-major (a transposed is read transposed).
void copyChunksOfA(const PlanKey& p, const KChunks& chunks, const float* a, float* dst, int64_t first,
                   int64_t last) {
  const int64_t rowsOfA = p.batch * p.M;
  for (int64_t r = first; r < last; ++r) {
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
  }
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

// Whether a packed chunk is in 64-column blocks, each block's (padded) rows
// contiguous: BA16a64b for f32, BA16a64b2a for bf16.
bool isColumnBlocked(const memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.format_kind != dnnl_blocked || d.ndims != 2 || d.offset0 != 0) return false;
  const dnnl_blocking_desc_t& blocking = d.format_desc.blocking;
  const bool f32 = d.data_type == dnnl_f32 && blocking.inner_nblks == 2;
  const bool bf16 = d.data_type == dnnl_bf16 && blocking.inner_nblks == 3 && blocking.inner_blks[2] == 2 &&
                    blocking.inner_idxs[2] == 0;
  return (f32 || bf16) && blocking.inner_blks[0] == 16 && blocking.inner_idxs[0] == 0 &&
         blocking.inner_blks[1] == kColumnBlock && blocking.inner_idxs[1] == 1 &&
         blocking.strides[0] == 16 * kColumnBlock && blocking.strides[1] == d.padded_dims[0] * kColumnBlock &&
         d.padded_dims[1] % kColumnBlock == 0;
}

// The packed layout of `columns` columns of a chunk of `rows` rows.
memory::desc columnBlockedDesc(const PlanKey& p, int64_t rows, int64_t columns) {
  return memory::desc({rows, columns}, factorType(p),
                      p.bf16 ? memory::format_tag::BA16a64b2a : memory::format_tag::BA16a64b);
}

// A constant b reordered into oneDNN's layout, one memory per K-chunk.
struct PackedWeight {
  Tensor source;  // holds the weight's storage, so its address stays this weight's
  std::vector<memory> chunks;
  std::vector<int64_t> paddedRows;  // per chunk
  bool columnBlocked = false;       // every chunk isColumnBlocked
  std::vector<Panel> panels;        // f32 column-blocked chunks, for the single-row kernel
};

// The primitives (one per K-chunk) of a product over `rows` rows and `width` columns.
struct ColumnPass {
  int64_t rows = 0, width = 0;
  std::vector<dnnl::matmul> primitives;
  std::vector<memory::desc> aDescs;  // per K-chunk: the pass's rows of a
  std::vector<memory::desc> bDescs;  // per K-chunk: the pass's blocks of b
  memory::desc cDesc, biasDesc;
};

// How a product runs:
// - the single-row kernel (one row against packed f32 columns);
// - tiles (rows against packed f32 columns, where the instruction set has a
//   TileBlockFn): each thread takes its share of the 64-column blocks (of
//   the rows, when there are fewer blocks than threads), kTileBlockRows rows
//   at a time, a read in place;
// - column passes: each thread computes its own share of the 64-column
//   blocks, in passes narrow enough that the pass's running sums (a private
//   [rows, width] buffer) stay in its cache across the K-chunks, over all of
//   M or, for a tall M, blocks of kPassRows rows (each block's passes in a
//   row, so they read its rows of a from the cache); single-threaded
//   primitives, one OpenMP region a product whatever the chunks (a busy
//   machine makes each region's join wait for a descheduled thread);
// - whole: one primitive per K-chunk over the whole result, on oneDNN's
//   threads (b not packed or not column-blocked, batches, bf16 a transposed).
struct Plan {
  PlanKey key;
  KChunks chunks;
  std::shared_ptr<const PackedWeight> weight;  // null: b is read where it lies
  bool rowKernel = false;
  bool tiled = false;
  bool copyA = false;  // a is cut into dense chunks first (f32: several chunks, or a transposed)
  // Whole: the residual is added by the last chunk (a binary post-op), after
  // the activation and the chunks' sum, so that sum runs at the product's
  // magnitude, not the residual's; a lone chunk with no activation starts
  // from the residual instead (a sum post-op, no copy when it is in place).
  // Column passes add it when they copy their sums out.
  bool residualBinary = false;
  std::vector<dnnl::matmul> whole;             // one per K-chunk
  std::vector<memory::desc> aDescs, bDescs;    // per K-chunk (column passes: aDescs only)
  memory::desc cDesc, biasDesc;                // whole
  size_t scratchpadBytes = 0;                  // the most any of its primitives wants
  std::vector<int64_t> threadColumns;          // column passes: thread t's columns [t], [t + 1]
  int64_t passRows = 0, passWidth = 0;
  std::vector<ColumnPass> passes;              // by rows and width
};

// A per-thread buffer that grows to the largest request and stays, 64-byte
// aligned: oneDNN's AMX kernel reads a bf16 `a` whose rows start off a cache
// line 15-20% slower (512x3072 @ 3072x768: 1.64-1.71 ms against 1.41-1.45).
template <class T>
class GrowingBuffer {
 public:
  T* of(int64_t n) {
    const size_t bytes = (static_cast<size_t>(n) * sizeof(T) + 63) / 64 * 64;
    if (bytes > capacity_) {
      data_.reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
      if (!data_) throw std::bad_alloc();
      capacity_ = bytes;
    }
    return data_.get();
  }

 private:
  std::unique_ptr<T, decltype(&std::free)> data_{nullptr, &std::free};
  size_t capacity_ = 0;
};

struct Scratch {
  GrowingBuffer<float> aChunks;    // f32 a cut into dense K-chunks
  GrowingBuffer<uint16_t> aBf16;   // a rounded to bf16
  GrowingBuffer<float> residual;   // a residual that the result overwrites before it is added
  GrowingBuffer<float> expandedResidual;  // a broadcast residual written out in full
  GrowingBuffer<float> columns;    // a column pass's running sums
  GrowingBuffer<float> rowSums;    // the single-row kernel's column sums
  GrowingBuffer<uint8_t> scratchpad;  // oneDNN's, for the primitive being run
};

Scratch& threadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

// out = act(a @ b + bias) + residual for one row of a; residual may be out.
// Each thread takes a contiguous range of column blocks.
void runRow(const PlanKey& key, const std::vector<Panel>& panels, RowBlocksFn rowBlocks, const float* a,
            const float* bias, const float* residual, float* out) {
  const int64_t N = key.N, blocks = (N + kColumnBlock - 1) / kColumnBlock;
  auto runBlocks = [&](int64_t first, int64_t last) {
    float* sums = threadScratch().rowSums.of((last - first) * kColumnBlock);
    rowBlocks(a, panels.data(), panels.size(), first, last, sums);
    const int64_t n0 = first * kColumnBlock, n1 = std::min(N, last * kColumnBlock);
    for (int64_t n = n0; n < n1; ++n) {
      double v = sums[n - n0];
      if (bias) v += bias[n];
      v = activate(key.activation, v);
      if (residual) v += residual[n];
      out[n] = static_cast<float>(v);
    }
  };
  if (key.threads == 1) return runBlocks(0, blocks);
#pragma omp parallel num_threads(key.threads)
  {
    const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
    runBlocks(blocks * t / n, blocks * (t + 1) / n);
  }
}

// A memory object over `data`, through the C API: no exception escapes an
// OpenMP region.
dnnl_status_t makeMemory(const memory::desc& md, const void* data, memory& made) {
  dnnl_memory_t handle = nullptr;
  const dnnl_status_t status = dnnl_memory_create(&handle, &md.data, cpuEngine().get(), const_cast<void*>(data));
  if (status == dnnl_success) made.reset(handle);
  return status;
}

// This thread's scratchpad for the plan's primitives (none when they want none).
dnnl_status_t makeScratchpad(const Plan& plan, memory& made) {
  if (plan.scratchpadBytes == 0) return dnnl_success;
  const memory::desc md({static_cast<int64_t>(plan.scratchpadBytes)}, memory::data_type::u8, memory::format_tag::x);
  return makeMemory(md, threadScratch().scratchpad.of(static_cast<int64_t>(plan.scratchpadBytes)), made);
}

// The tensors of one call.
struct Operands {
  const float* a;
  const void* b;
  const float* bias;      // null when absent
  const float* residual;  // null when absent
  float* out;
};

// The primitive of K-chunk `i` with its epilogue: the bias and activation on
// the last chunk, the earlier chunks' sum (a sum post-op) on all but the
// first; the residual (whole products only) as Plan::residualBinary says.
dnnl::matmul::primitive_desc chunkPrimitive(const Plan& plan, int64_t i, const memory::desc& aMd,
                                            const memory::desc& bMd, const memory::desc& cMd,
                                            const memory::desc& biasMd, bool residualHere) {
  const PlanKey& key = plan.key;
  const bool last = i + 1 == plan.chunks.count;
  dnnl::post_ops ops;
  if (i > 0 || (residualHere && !plan.residualBinary)) ops.append_sum(1.f);
  if (last && key.activation != Activation::None)
    ops.append_eltwise(1.f, eltwiseFor(key.activation), key.activation == Activation::Silu ? 1.f : 0.f, 0.f);
  if (last && residualHere && plan.residualBinary) ops.append_binary(dnnl::algorithm::binary_add, cMd);
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  // A primitive runs on several threads at once (sessions, column passes of
  // one width): each brings its own scratchpad.
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  // The bias joins the last chunk's product, before the earlier chunks' sum.
  const dnnl::matmul::desc desc =
      key.bias && last ? dnnl::matmul::desc(aMd, bMd, biasMd, cMd) : dnnl::matmul::desc(aMd, bMd, cMd);
  return dnnl::matmul::primitive_desc(desc, attr, cpuEngine());
}

// Chunks between the first and the last, of one size, run one primitive
// (only where their operands lie differs), which saves most of a plan's
// primitive creation.
bool sharesPreviousPrimitive(const KChunks& chunks, int64_t i) {
  return i > 1 && i + 1 < chunks.count && chunks.length(i) == chunks.length(i - 1);
}

// Runs a whole product on the calling thread and oneDNN's.
dnnl_status_t runWhole(const Plan& plan, const Operands& operands, const void* aData) {
  const PlanKey& key = plan.key;
  const int64_t outElements = key.batch * key.M * key.N;
  const float* residual = operands.residual;
  if (residual && !plan.residualBinary && residual != operands.out) {
    std::copy_n(residual, outElements, operands.out);
  } else if (residual && plan.residualBinary && residual == operands.out) {
    // Chunk 0 writes the result before the last chunk reads the residual.
    float* copy = threadScratch().residual.of(outElements);
    std::copy_n(residual, outElements, copy);
    residual = copy;
  }
  dnnl::stream& stream = threadStream();
  memory cMem, biasMem, residualMem, scratchpad;
  dnnl_status_t status = makeMemory(plan.cDesc, operands.out, cMem);
  if (status == dnnl_success) status = makeScratchpad(plan, scratchpad);
  if (status == dnnl_success && operands.bias) status = makeMemory(plan.biasDesc, operands.bias, biasMem);
  if (status == dnnl_success && plan.residualBinary) status = makeMemory(plan.cDesc, residual, residualMem);
  // The binary post-op follows the sum (chunks after the first) and the eltwise.
  const int binaryIndex = (plan.chunks.count > 1 ? 1 : 0) + (key.activation != Activation::None ? 1 : 0);
  for (int64_t i = 0; i < plan.chunks.count && status == dnnl_success; ++i) {
    const size_t c = static_cast<size_t>(i);
    const int64_t k0 = plan.chunks.begin(i);
    const bool last = i + 1 == plan.chunks.count;
    // Chunk copies lie one after another; a lone chunk read in place is a (or its bf16 copy).
    memory aMem, bMem;
    status = makeMemory(plan.aDescs[c], static_cast<const uint8_t*>(aData) + k0 * key.batch * key.M * factorSize(key),
                        aMem);
    if (status != dnnl_success) break;
    if (plan.weight) {
      bMem = plan.weight->chunks[c];
    } else {
      const uint8_t* b = static_cast<const uint8_t*>(operands.b) + bChunkOffset(key, k0) * factorSize(key);
      status = makeMemory(plan.bDescs[c], b, bMem);
      if (status != dnnl_success) break;
    }
    dnnl_exec_arg_t args[6] = {{DNNL_ARG_SRC, aMem.get()}, {DNNL_ARG_WEIGHTS, bMem.get()}, {DNNL_ARG_DST, cMem.get()}};
    int count = 3;
    if (scratchpad) args[count++] = {DNNL_ARG_SCRATCHPAD, scratchpad.get()};
    if (operands.bias && last) args[count++] = {DNNL_ARG_BIAS, biasMem.get()};
    if (plan.residualBinary && last)
      args[count++] = {DNNL_ARG_ATTR_MULTIPLE_POST_OP(binaryIndex) | DNNL_ARG_SRC_1, residualMem.get()};
    status = dnnl_primitive_execute(plan.whole[c].get(), stream.get(), count, args);
  }
  return status == dnnl_success ? dnnl_stream_wait(stream.get()) : status;
}

// One column pass on the calling thread: rows [r0, r0 + rows) and columns
// [c0, c0 + width) of every K-chunk into the thread's running sums, then
// out = sums + residual.
dnnl_status_t runColumnPass(const Plan& plan, const ColumnPass& pass, int64_t r0, int64_t c0, const Operands& operands,
                            const void* aData) {
  const PlanKey& key = plan.key;
  const int64_t M = pass.rows, width = pass.width;
  float* sums = threadScratch().columns.of(M * width);
  dnnl::stream& stream = threadStream();
  memory cMem, biasMem, scratchpad;
  dnnl_status_t status = makeMemory(pass.cDesc, sums, cMem);
  if (status == dnnl_success) status = makeScratchpad(plan, scratchpad);
  if (status == dnnl_success && operands.bias) status = makeMemory(pass.biasDesc, operands.bias + c0, biasMem);
  for (int64_t i = 0; i < plan.chunks.count && status == dnnl_success; ++i) {
    const size_t c = static_cast<size_t>(i);
    const int64_t k0 = plan.chunks.begin(i);
    memory aMem, bMem;
    // Copied chunks lie one after another, each [key.M][length]; a read in place is [key.M][K].
    const int64_t aOffset = plan.copyA ? k0 * key.M + r0 * plan.chunks.length(i) : r0 * key.K + k0;
    status = makeMemory(pass.aDescs[c], static_cast<const uint8_t*>(aData) + aOffset * factorSize(key), aMem);
    // The pass's blocks of a column-blocked chunk are a packed b of their own.
    if (status == dnnl_success)
      status = makeMemory(pass.bDescs[c],
                          static_cast<const uint8_t*>(plan.weight->chunks[c].get_data_handle()) +
                              c0 * plan.weight->paddedRows[c] * factorSize(key),
                          bMem);
    if (status != dnnl_success) break;
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, aMem.get()}, {DNNL_ARG_WEIGHTS, bMem.get()}, {DNNL_ARG_DST, cMem.get()}};
    int count = 3;
    if (scratchpad) args[count++] = {DNNL_ARG_SCRATCHPAD, scratchpad.get()};
    if (operands.bias && i + 1 == plan.chunks.count) args[count++] = {DNNL_ARG_BIAS, biasMem.get()};
    status = dnnl_primitive_execute(pass.primitives[c].get(), stream.get(), count, args);
  }
  if (status == dnnl_success) status = dnnl_stream_wait(stream.get());
  if (status != dnnl_success) return status;
  for (int64_t m = 0; m < M; ++m) {
    float* to = operands.out + (r0 + m) * key.N + c0;
    const float* from = sums + m * width;
    if (operands.residual) {
      const float* residual = operands.residual + (r0 + m) * key.N + c0;  // may be `to`: read before written
      for (int64_t j = 0; j < width; ++j) to[j] = from[j] + residual[j];
    } else {
      std::copy_n(from, width, to);
    }
  }
  return dnnl_success;
}

// The primitives of a column pass of `rows` rows and `width` columns, unless
// the plan has them.
void addColumnPass(Plan& plan, int64_t rows, int64_t width) {
  for (const ColumnPass& pass : plan.passes)
    if (pass.rows == rows && pass.width == width) return;
  PlanKey key = plan.key;
  key.M = rows;  // the pass's view of a
  ColumnPass pass;
  pass.rows = rows, pass.width = width;
  pass.cDesc = memory::desc({rows, width}, memory::data_type::f32, memory::format_tag::ab);
  pass.biasDesc = memory::desc({1, width}, memory::data_type::f32, memory::format_tag::ab);
  for (int64_t i = 0; i < plan.chunks.count; ++i) {
    pass.aDescs.push_back(aChunkDesc(key, plan.copyA, plan.chunks.length(i)));
    pass.bDescs.push_back(columnBlockedDesc(key, plan.chunks.length(i), width));
    if (sharesPreviousPrimitive(plan.chunks, i)) {
      pass.primitives.push_back(pass.primitives.back());
      continue;
    }
    const dnnl::matmul::primitive_desc pd =
        chunkPrimitive(plan, i, pass.aDescs.back(), pass.bDescs.back(), pass.cDesc, pass.biasDesc, false);
    plan.scratchpadBytes = std::max(plan.scratchpadBytes, pd.scratchpad_desc().get_size());
    pass.primitives.emplace_back(pd);
  }
  plan.passes.push_back(std::move(pass));
}

// The column passes of a thread's range [first, last), each at most `width` wide.
template <class F>
void forEachPass(int64_t first, int64_t last, int64_t width, F&& pass) {
  for (int64_t c0 = first; c0 < last; c0 += width) pass(c0, std::min(width, last - c0));
}

}  // namespace

// out = act(a @ b + bias) + residual by tiles (Plan::tiled).
void runTiles(const PlanKey& key, const PackedWeight& weight, TileBlockFn tileBlock, const Operands& operands) {
  const int64_t blocks = (key.N + kColumnBlock - 1) / kColumnBlock;
  // A column block's rows of b (a weight, read from memory once) stay in the
  // cache while every block of a's rows (which the cache holds) passes.
  auto run = [&](int64_t r0, int64_t r1, int64_t first, int64_t last) {
    float* sums = threadScratch().columns.of(kTileBlockRows * kColumnBlock);
    for (int64_t block = first; block < last; ++block) {
      for (int64_t row = r0; row < r1; row += kTileBlockRows) {
        const int64_t rows = std::min(kTileBlockRows, r1 - row);
        const int64_t at = row * key.N + block * kColumnBlock;
        TileEpilogue epilogue;
        epilogue.bias = operands.bias ? operands.bias + block * kColumnBlock : nullptr;
        epilogue.activation = key.activation;
        epilogue.residual = operands.residual ? operands.residual + at : nullptr;
        epilogue.out = operands.out + at;
        epilogue.ld = key.N;
        epilogue.width = std::min(kColumnBlock, key.N - block * kColumnBlock);
        tileBlock(operands.a + row * key.K, key.K, rows, weight.panels.data(), weight.panels.size(), block, epilogue,
                  sums);
      }
    }
  };
  if (key.threads == 1) return run(0, key.M, 0, blocks);
#pragma omp parallel num_threads(key.threads)
  {
    const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
    if (blocks >= n) run(0, key.M, blocks * t / n, blocks * (t + 1) / n);
    else run(key.M * t / n, key.M * (t + 1) / n, 0, blocks);
  }
}

struct Gemm::State {
  // Plans by product; building one (and packing its weight) holds the lock
  // exclusively, running one only shares it.
  mutable std::shared_mutex mutex;
  std::unordered_map<PlanKey, std::shared_ptr<const Plan>, PlanKeyHash> plans;
  // Packed weights by (address, K, N, transB): one layout each, whatever M.
  std::map<std::tuple<const void*, int64_t, int64_t, bool>, std::shared_ptr<const PackedWeight>> weights;

  // tiled: the instruction set has a TileBlockFn.
  std::shared_ptr<const Plan> build(const PlanKey& key, const Tensor& b, bool tiled);
  std::shared_ptr<const PackedWeight> pack(const PlanKey& key, const Tensor& b, const KChunks& chunks);
};

// A weight copy's bytes that could not be read again (runtime/weight_copies.h),
// out of pack() to runMatmul.
struct WeightReadError {
  Status status;
};

// Pins [data, data + bytes) of a weight copy (nothing for other memory).
rt::WeightPin pinOrThrow(const void* data, uint64_t bytes) {
  Expected<rt::WeightPin> pin = rt::WeightPin::of(data, bytes);
  if (!pin) throw WeightReadError{pin.status().withContext("matmul: ")};
  return std::move(*pin);
}

std::shared_ptr<const PackedWeight> Gemm::State::pack(const PlanKey& key, const Tensor& b, const KChunks& chunks) {
  auto packed = std::make_shared<PackedWeight>();
  packed->source = b;
  packed->columnBlocked = true;
  const size_t elementSize = dtypeSize(b.dtype());
  dnnl::stream& stream = threadStream();
  // oneDNN picks the layout (format any) for a primitive of this product.
  const PlanKey& p = key;
  memory::desc packedMd;
  for (int64_t i = 0; i < chunks.count; ++i) {
    const int64_t k0 = chunks.begin(i), rows = chunks.length(i);
    if (i == 0 || rows != chunks.length(i - 1)) {  // chunks of one size share a layout
      const memory::desc aMd({p.M * p.batch, rows}, factorType(p), memory::format_tag::ab);
      const memory::desc cMd({p.M * p.batch, p.N}, memory::data_type::f32, memory::format_tag::ab);
      const memory::desc any({rows, p.N}, factorType(p), memory::format_tag::any);
      packedMd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(aMd, any, cMd), cpuEngine()).weights_desc();
    }
    uint8_t* from = b.data<uint8_t>() + bChunkOffset(key, k0) * elementSize;
    const uint64_t chunkBytes = static_cast<uint64_t>(key.transB ? b.byteSize() : rows * key.N * elementSize);
    const rt::WeightPin pin = pinOrThrow(key.transB ? b.data() : from, chunkBytes);
    memory plain(bChunkDesc(key, rows), cpuEngine(), from);
    memory chunk(packedMd, cpuEngine());
    dnnl::reorder(plain, chunk).execute(stream, plain, chunk);
    stream.wait();
    packed->chunks.push_back(chunk);
    packed->paddedRows.push_back(packedMd.data.padded_dims[0]);
    packed->columnBlocked = packed->columnBlocked && isColumnBlocked(packedMd);
    if (!key.bf16)
      packed->panels.push_back(Panel{static_cast<const float*>(chunk.get_data_handle()), k0, rows,
                                     packedMd.data.padded_dims[0]});
    // Rows of a row-major b leave memory chunk by chunk (a file's clean
    // pages, or the pages of a weight copy, read again if needed), so its
    // plain and packed forms overlap by one chunk at most.
    if (!key.transB) {
      releaseCleanPages(from, static_cast<size_t>(chunkBytes));
      rt::releaseWeightCopy(from, chunkBytes);
    }
  }
  if (key.transB) releaseCleanPages(b.data(), b.byteSize());
  rt::releaseWeightCopy(b.data(), b.byteSize());  // with the pages chunks shared
  if (!packed->columnBlocked) packed->panels.clear();
  return packed;
}

std::shared_ptr<const Plan> Gemm::State::build(const PlanKey& key, const Tensor& b, bool tiled) {
  auto plan = std::make_shared<Plan>();
  plan->key = key;
  plan->chunks = KChunks(key.K, key.bf16);
  if (key.weight) {
    const auto weightKey = std::make_tuple(key.weight, key.K, key.N, key.transB);
    auto found = weights.find(weightKey);
    plan->weight = found != weights.end() ? found->second
                                          : weights.emplace(weightKey, pack(key, b, plan->chunks)).first->second;
    plan->rowKernel = key.M == 1 && !plan->weight->panels.empty();
    plan->tiled = tiled && key.M > 1 && !key.transA && !plan->weight->panels.empty() &&
                  (key.M > kMaxPassRows || key.K * key.N * 4 <= kTiledWeightBytes);
    if (plan->rowKernel || plan->tiled) return plan;
  }
  const bool columns = plan->weight && plan->weight->columnBlocked && !(key.bf16 && (key.transA || std::getenv("XBW"))) &&
                       (key.threads > 1 || key.N * key.M * 4 > kColumnPassBytes);
  plan->copyA = !key.bf16 && (plan->chunks.count > 1 || (columns && key.transA));
  plan->residualBinary = key.residual && (key.activation != Activation::None || plan->chunks.count > 1);

  // oneDNN sizes a primitive's thread partition when it is created: one
  // thread for a column pass, all of them for a whole product.
  const int previousThreads = omp_get_max_threads();
  omp_set_num_threads(columns ? 1 : key.threads);
  struct RestoreThreads {
    int threads;
    ~RestoreThreads() { omp_set_num_threads(threads); }
  } restore{previousThreads};

  for (int64_t i = 0; i < plan->chunks.count; ++i)
    plan->aDescs.push_back(aChunkDesc(key, plan->copyA, plan->chunks.length(i)));
  if (columns) {
    const int64_t blocks = (key.N + kColumnBlock - 1) / kColumnBlock;
    for (int t = 0; t <= key.threads; ++t)
      plan->threadColumns.push_back(std::min(key.N, blocks * t / key.threads * kColumnBlock));
    plan->passRows = key.M <= kMaxPassRows ? key.M : kPassRows;
    plan->passWidth = std::max(kColumnBlock, kColumnPassBytes / (4 * plan->passRows) / kColumnBlock * kColumnBlock);
    for (int t = 0; t < key.threads; ++t)
      forEachPass(plan->threadColumns[static_cast<size_t>(t)], plan->threadColumns[static_cast<size_t>(t) + 1],
                  plan->passWidth, [&](int64_t, int64_t width) {
                    forEachPass(0, key.M, plan->passRows, [&](int64_t, int64_t rows) { addColumnPass(*plan, rows, width); });
                  });
    return plan;
  }
  plan->cDesc = cDesc(key);
  plan->biasDesc = biasDesc(key);
  for (int64_t i = 0; i < plan->chunks.count; ++i) {
    const size_t c = static_cast<size_t>(i);
    plan->bDescs.push_back(plan->weight ? plan->weight->chunks[c].get_desc() : bChunkDesc(key, plan->chunks.length(i)));
    if (sharesPreviousPrimitive(plan->chunks, i)) {
      plan->whole.push_back(plan->whole.back());
      continue;
    }
    const dnnl::matmul::primitive_desc pd =
        chunkPrimitive(*plan, i, plan->aDescs[c], plan->bDescs[c], plan->cDesc, plan->biasDesc, key.residual);
    plan->scratchpadBytes = std::max(plan->scratchpadBytes, pd.scratchpad_desc().get_size());
    plan->whole.emplace_back(pd);
  }
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

namespace {

// A residual that broadcasts to the result (ViT's position rows, the same
// for every image) written out in full, once per run: the kernels read a
// residual of the result's shape.
const float* expandedResidual(const Tensor& residual, const std::vector<int64_t>& shape) {
  const int64_t elements = ops::product(shape);
  float* full = threadScratch().expandedResidual.of(elements);
  ops::BroadcastWalker walk(shape, {&residual.shape()});
  const float* from = residual.data<float>();
  for (int64_t i = 0; i < elements; ++i) {
    full[i] = from[walk.offset(0)];
    walk.next();
  }
  return full;
}

}  // namespace

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
  if (residual && residual->dtype() != DType::F32) return std::nullopt;
  const float* residualData = residual ? residual->data<float>() : nullptr;
  if (residual && residual->shape() != out.shape()) residualData = expandedResidual(*residual, out.shape());
  if (bIsWeight && key.batch == 1 && key.N >= kMinPackedN) key.weight = b.data();
  key.threads = threadsFor(key);

  State& s = *state_;
  const vec::IsaKernels& kernels = vec::kernelsFor(isa_);
  std::shared_ptr<const Plan> plan;
  {
    std::shared_lock lock(s.mutex);
    if (auto it = s.plans.find(key); it != s.plans.end()) plan = it->second;
  }
  try {
    if (!plan) {
      std::unique_lock lock(s.mutex);
      auto it = s.plans.find(key);
      plan = it != s.plans.end() ? it->second
                                 : s.plans.emplace(key, s.build(key, b, kernels.tileBlock != nullptr)).first->second;
    }
  } catch (const dnnl::error& e) {
    if (e.status == dnnl_unimplemented) return std::nullopt;  // e.g. bf16 on a CPU oneDNN has no kernel for
    return Status::error("matmul: oneDNN cannot build a", shapeStr(sa), " @ b", shapeStr(sb), ": ", e.what());
  } catch (const WeightReadError& e) {
    return e.status;
  }

  // A product that reads b in place (unpacked) reads a weight copy's bytes.
  Expected<rt::WeightPin> pin = rt::WeightPin::of(bIsWeight && !plan->weight ? b.data() : nullptr, b.byteSize());
  if (!pin) return pin.status().withContext("matmul: ");
  const Operands operands{a.data<float>(), b.data(), bias ? bias->data<float>() : nullptr, residualData,
                          out.data<float>()};
  if (plan->rowKernel) {
    runRow(key, plan->weight->panels, kernels.rowBlocks, operands.a, operands.bias, operands.residual, operands.out);
    return Status::ok();
  }
  if (plan->tiled) {
    runTiles(key, *plan->weight, kernels.tileBlock, operands);
    return Status::ok();
  }
  // a as oneDNN reads it: in place, rounded to bf16, or cut into dense chunks.
  const int64_t aElements = a.numElements();
  const void* aData = a.data();
  if (key.bf16) aData = threadScratch().aBf16.of(aElements);
  else if (plan->copyA) aData = threadScratch().aChunks.of(aElements);
  auto prepareRows = [&](int64_t first, int64_t last) {
    if (key.bf16) {
      // A batch or transposed a rounds whole: its elements are not row-major rows.
      const int64_t rowLength = aElements / (key.batch * key.M);
      roundToBf16(operands.a + first * rowLength, static_cast<uint16_t*>(const_cast<void*>(aData)) + first * rowLength,
                  (last - first) * rowLength, isa_);
    } else if (plan->copyA) {
      copyChunksOfA(key, plan->chunks, operands.a, static_cast<float*>(const_cast<void*>(aData)), first, last);
    }
  };

  const int previousThreads = omp_get_max_threads();
  std::atomic<int> status{dnnl_success};
  if (plan->passes.empty()) {
    prepareRows(0, key.batch * key.M);
    omp_set_num_threads(key.threads);  // oneDNN's threads for a whole product
    status = runWhole(*plan, operands, aData);
    omp_set_num_threads(previousThreads);
  } else {
    const int threads = key.threads;
#pragma omp parallel num_threads(threads)
    {
      const int64_t team = omp_get_num_threads(), t = omp_get_thread_num();
      prepareRows(key.M * t / team, key.M * (t + 1) / team);
#pragma omp barrier
      // A block of a's rows, then its column passes, which read it from the cache.
      for (int64_t share = t; share < threads; share += team)
        forEachPass(0, key.M, plan->passRows, [&](int64_t r0, int64_t rows) {
          forEachPass(plan->threadColumns[static_cast<size_t>(share)],
                      plan->threadColumns[static_cast<size_t>(share) + 1], plan->passWidth,
                      [&](int64_t c0, int64_t width) {
                        for (const ColumnPass& pass : plan->passes)
                          if (pass.rows == rows && pass.width == width && status == dnnl_success) {
                            const dnnl_status_t passStatus = runColumnPass(*plan, pass, r0, c0, operands, aData);
                            if (passStatus != dnnl_success) status = passStatus;
                          }
                      });
        });
    }
  }
  if (status != dnnl_success)
    return Status::error("matmul: oneDNN failed on a", shapeStr(sa), " @ b", shapeStr(sb), " (status ",
                         status.load(), ")");
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
    const off_t entry = static_cast<off_t>(at / page * sizeof(uint64_t));
    const ssize_t got = ::pread(fd, entries, pages * sizeof(uint64_t), entry);
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
  vec::kernelsFor(isa).roundToBf16(src, dst, n);
}

}  // namespace kiln::cpu
