// The fused attention kernel's driver (attention.h): reads the op's operands
// and attributes into an AttentionProblem, stages the new key/value rows,
// and runs the units on the OpenMP threads. The unit kernel
// (attention_block.h) is built per instruction set in vector_scalar.cpp,
// vector_avx2.cpp and vector_avx512.cpp.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "backends/cpu/attention.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/vector_isa.h"
#include "backends/reference/kernel_helpers.h"
#include "ir/attention.h"

namespace kiln::cpu {
namespace {

using namespace attention;

// y = x * cos + rotated(x) * sin: rotate_half(x) = [-x2, x1], or with
// `interleaved` the pairs (2i, 2i+1) turned to (-x[2i+1], x[2i]); in the
// reference's order of float operations (this file is built without FMA
// contraction, so roped keys match the reference's bit for bit).
// Partial rotary turns only the first `width` of the head's D dims.
void rotate(const float* x, const float* cos, const float* sin, int64_t width, int64_t D, bool interleaved,
            float* y) {
  if (interleaved) {
    for (int64_t d = 0; d < width; d += 2) {
      y[d] = x[d] * cos[d] + -x[d + 1] * sin[d];
      y[d + 1] = x[d + 1] * cos[d + 1] + x[d] * sin[d + 1];
    }
  } else {
    const int64_t half = width / 2;
    for (int64_t d = 0; d < half; ++d) y[d] = x[d] * cos[d] + -x[d + half] * sin[d];
    for (int64_t d = half; d < width; ++d) y[d] = x[d] * cos[d] + x[d - half] * sin[d];
  }
  std::copy(x + width, x + D, y + width);
}

// cos and sin of (first + s) * inv_freq[i] for s in [0, S) at the two dims
// of pair i ([s][i] and [s][i + D/2], or [s][2i] and [s][2i + 1]), evaluated
// in double as the reference does. Every kAnchor-th position calls cos/sin;
// those between step by the angle-sum rotation (an error near 1e-15, far
// below a float's rounding), which keeps a 128-token prefill from spending
// ~0.2 ms a layer in libm.
void ropeFromFrequencies(const Tensor& invFreq, int64_t first, int64_t S, int64_t D, bool interleaved, float* cos,
                         float* sin) {
  constexpr int64_t kAnchor = 16;
  const int64_t half = D / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double frequency = invFreq.elementAsDouble(i);
    const double stepCos = std::cos(frequency), stepSin = std::sin(frequency);
    const int64_t firstDim = interleaved ? 2 * i : i, secondDim = interleaved ? 2 * i + 1 : i + half;
    for (int64_t s0 = 0; s0 < S; s0 += kAnchor) {
      const double angle = static_cast<double>(first + s0) * frequency;
      double c = std::cos(angle), s = std::sin(angle);
      for (int64_t pos = s0; pos < std::min(S, s0 + kAnchor); ++pos) {
        cos[pos * D + firstDim] = cos[pos * D + secondDim] = static_cast<float>(c);
        sin[pos * D + firstDim] = sin[pos * D + secondDim] = static_cast<float>(s);
        const double next = c * stepCos - s * stepSin;
        s = s * stepCos + c * stepSin;
        c = next;
      }
    }
  }
}

// Where the new key and value rows go before attention reads them: the
// session's KV cache or present_k/present_v (past copied in first), or
// roped keys into scratch while values stay in place.
struct RowStaging {
  HeadRows newKeys, newValues;  // sources, rows [0, T)
  const float* pastKeys = nullptr;
  const float* pastValues = nullptr;
  bool copyPast = false;
  float* keys = nullptr;
  float* values = nullptr;  // null: values are read in place
  int64_t rowsPerHead = 0, firstNewRow = 0;
  int64_t past = 0;
};

// Rows [begin, end) of one (batch, kv head) of the staged sequence: the past
// copy for rows below `past` (when copied), then the new rows.
void stageRows(const AttentionProblem& p, const RowStaging& st, int64_t b, int64_t h, int64_t begin,
               int64_t end) {
  const int64_t D = p.headDim, Dv = p.valueDim;
  const int64_t head = b * p.kvHeads + h;
  float* keys = st.keys + head * st.rowsPerHead * D;
  float* values = st.values ? st.values + head * st.rowsPerHead * Dv : nullptr;
  const int64_t pastEnd = st.copyPast ? st.past : 0;
  if (begin < pastEnd) {
    const int64_t n = std::min(end, pastEnd) - begin;
    std::memcpy(keys + begin * D, st.pastKeys + (head * st.past + begin) * D, n * D * sizeof(float));
    std::memcpy(values + begin * Dv, st.pastValues + (head * st.past + begin) * Dv, n * Dv * sizeof(float));
  }
  for (int64_t t = std::max(begin, pastEnd) - pastEnd; t < end - pastEnd; ++t) {
    float* key = keys + (st.firstNewRow + t) * D;
    if (p.ropeCos)
      rotate(st.newKeys.row(b, h, t), p.ropeCos + b * p.ropeBatchStride + t * p.ropeWidth,
             p.ropeSin + b * p.ropeBatchStride + t * p.ropeWidth, p.ropeWidth, D, p.ropeInterleaved, key);
    else
      std::memcpy(key, st.newKeys.row(b, h, t), D * sizeof(float));
    if (values) std::memcpy(values + (st.firstNewRow + t) * Dv, st.newValues.row(b, h, t), Dv * sizeof(float));
  }
}

// The chunks of one (row block, batch, kv head) written as partials: the
// running max and sum of each rescale their accumulators to a common max.
void mergeRows(const AttentionProblem& p, const float* partials, int64_t chunks, int64_t blockRows,
               int64_t b, int64_t kvHead, int64_t rowBegin, int64_t rowEnd) {
  const int64_t rowFloats = partialRowFloats(p.valueDim);
  for (int64_t rho = rowBegin; rho < rowEnd; ++rho) {
    const int64_t s = rho / p.group, h = kvHead * p.group + rho % p.group;
    float* out = p.out + b * p.outBatchStride + h * p.outHeadStride + s * p.outRowStride;
    const float* first = partials + (rho - rowBegin) * rowFloats;
    const int64_t chunkStride = blockRows * rowFloats;
    float highest = -std::numeric_limits<float>::infinity();
    for (int64_t c = 0; c < chunks; ++c) highest = std::max(highest, first[c * chunkStride]);
    std::fill_n(out, p.valueDim, 0.f);
    if (highest == -std::numeric_limits<float>::infinity()) continue;  // every key masked
    float total = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      const float* chunk = first + c * chunkStride;
      if (chunk[0] == -std::numeric_limits<float>::infinity()) continue;
      const float weight = std::exp(chunk[0] - highest);
      total += weight * chunk[1];
      for (int64_t d = 0; d < p.valueDim; ++d) out[d] += weight * chunk[2 + d];
    }
    for (int64_t d = 0; d < p.valueDim; ++d) out[d] /= total;
  }
}

// Fork/join costs microseconds: problems below this many multiply-adds run
// on one thread.
constexpr int64_t kSerialWork = int64_t{1} << 16;
// A chunk of keys (for the decode split) is at least this long.
constexpr int64_t kMinChunkKeys = 256;
// Rows staged per work item.
constexpr int64_t kStageRows = 256;

HeadRows rowsOf(const float* data, Layout layout, int64_t heads, int64_t seq, int64_t dim, int64_t width) {
  if (layout == Layout::BHSD) return {data, heads * seq * dim, seq * dim, dim};
  return {data, seq * width, dim, width};
}

// Runs the units of `p` on the threads, after staging `stagedRows` rows of
// every (batch, kv head) when `staging` is given.
void attendUnits(const AttentionProblem& p, const RowStaging* staging, int64_t stagedRows, Isa isa) {
  const int64_t B = p.batch, Hq = p.heads, Hkv = p.kvHeads, S = p.seq, L = p.keys, D = p.headDim,
                Dv = p.valueDim;
  const int64_t stageItemsPerHead = (stagedRows + kStageRows - 1) / kStageRows;
  // Units: blocks of query rows per (batch, kv head), heaviest (last,
  // under a causal mask) first; when those are too few to share among the
  // threads (a decode step), each is split into key chunks merged at the end.
  const int64_t rowsPerKvHead = p.group * S;
  // Blocks of equal size, a multiple of the 4-row tiles.
  const int64_t fewestBlocks = std::max<int64_t>(1, (rowsPerKvHead + kMaxUnitRows - 1) / kMaxUnitRows);
  const int64_t blockRows =
      std::min(kMaxUnitRows, ((rowsPerKvHead + fewestBlocks - 1) / fewestBlocks + 3) / 4 * 4);
  const int64_t rowBlocks = (rowsPerKvHead + blockRows - 1) / blockRows;
  const int64_t heads = B * Hkv;
  const int64_t work = B * Hq * S * L * (D + Dv);
  const int threads = work < kSerialWork ? 1 : numThreads();
  int64_t chunkKeys = std::max<int64_t>(L, 1);
  if (threads > 1 && heads * rowBlocks < 4 * threads) {
    const int64_t chunks = std::min((4 * threads + heads * rowBlocks - 1) / (heads * rowBlocks),
                                    (L + kMinChunkKeys - 1) / kMinChunkKeys);
    if (chunks > 1) chunkKeys = ((L + chunks - 1) / chunks + kKeyBlock - 1) / kKeyBlock * kKeyBlock;
  }
  const int64_t chunks = std::max<int64_t>(1, (L + chunkKeys - 1) / chunkKeys);
  const int64_t units = rowBlocks * heads * chunks;
  const Tensor partials =
      Tensor::allocateUninitialized(DType::F32, {chunks > 1 ? units * blockRows * partialRowFloats(Dv) : 0});
  // Per thread, 64-byte aligned.
  const int64_t scratchFloats = padded(unitScratchFloats(p));
  const Tensor scratch = Tensor::allocateUninitialized(DType::F32, {threads * scratchFloats});
  const Isa usable = std::min(isa, detectedIsa());
  const AttendUnitFn attend = vec::kernelsFor(usable).attendUnit;

#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    if (staging) {
#pragma omp for schedule(static)
      for (int64_t item = 0; item < heads * stageItemsPerHead; ++item) {
        const int64_t head = item / stageItemsPerHead, piece = item % stageItemsPerHead;
        stageRows(p, *staging, head / Hkv, head % Hkv, piece * kStageRows,
                  std::min(stagedRows, (piece + 1) * kStageRows));
      }
    }
    float* mine = scratch.data<float>() + omp_get_thread_num() * scratchFloats;
#pragma omp for schedule(dynamic, 1)
    for (int64_t u = 0; u < units; ++u) {
      const int64_t block = rowBlocks - 1 - u / (heads * chunks);
      const int64_t head = u % (heads * chunks) / chunks, chunk = u % chunks;
      AttentionUnit unit;
      unit.batch = head / Hkv;
      unit.kvHead = head % Hkv;
      unit.rowBegin = block * blockRows;
      unit.rowEnd = std::min(rowsPerKvHead, unit.rowBegin + blockRows);
      unit.keyBegin = chunk * chunkKeys;
      unit.keyEnd = std::min(L, unit.keyBegin + chunkKeys);
      if (chunks > 1) unit.partial = partials.data<float>() + u * blockRows * partialRowFloats(Dv);
      attend(p, unit, mine);
    }
    if (chunks > 1) {
#pragma omp for schedule(static)
      for (int64_t group = 0; group < rowBlocks * heads; ++group) {
        const int64_t block = rowBlocks - 1 - group / heads, head = group % heads;
        const int64_t rowBegin = block * blockRows;
        mergeRows(p, partials.data<float>() + group * chunks * blockRows * partialRowFloats(Dv), chunks, blockRows,
                  head / Hkv, head % Hkv, rowBegin, std::min(rowsPerKvHead, rowBegin + blockRows));
      }
    }
  }
}

}  // namespace

// Per batch row of a [B or 1, L] key-padding mask (values as loadAttentionMask
// makes them): one past its last real key.
std::vector<int64_t> keyPaddingEnds(const std::vector<float>& values, const std::vector<int64_t>& strides,
                                    const AttentionProblem& p) {
  std::vector<int64_t> ends(static_cast<size_t>(p.batch), 0);
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t j = p.keys - 1; j >= 0 && ends[static_cast<size_t>(b)] == 0; --j)
      if (values[static_cast<size_t>(b * strides[0] + j * strides[3])] == 0.f) ends[static_cast<size_t>(b)] = j + 1;
  return ends;
}

bool loadAttentionMask(const Tensor* m, bool keyPadding, MaskStorage& storage, AttentionProblem& p) {
  if (!m) return !keyPadding;
  std::vector<float>& values = storage.values;
  const float blocked = -std::numeric_limits<float>::infinity();
  std::vector<int64_t> strides;
  if (keyPadding) {
    if (m->dtype() != DType::Bool && !isInteger(m->dtype())) return false;
    values.resize(static_cast<size_t>(m->numElements()));
    for (int64_t i = 0; i < m->numElements(); ++i)
      values[static_cast<size_t>(i)] = m->elementAsDouble(i) != 0.0 ? 0.f : blocked;
    const std::vector<int64_t> padding = ops::broadcastStrides(m->shape(), {p.batch, p.keys});
    strides = {padding[0], 0, 0, padding[1]};
    storage.keyEnds = keyPaddingEnds(values, strides, p);
    p.keyEnds = storage.keyEnds.data();
  } else {
    if (m->dtype() == DType::F64 || (m->dtype() != DType::Bool && !isFloat(m->dtype()))) return false;
    if (m->dtype() != DType::F32) {
      values.resize(static_cast<size_t>(m->numElements()));
      for (int64_t i = 0; i < m->numElements(); ++i)
        values[static_cast<size_t>(i)] = m->dtype() == DType::Bool ? (m->data<bool>()[i] ? 0.f : blocked)
                                                                   : static_cast<float>(m->elementAsDouble(i));
    }
    strides = ops::broadcastStrides(m->shape(), {p.batch, p.heads, p.seq, p.keys});
  }
  p.mask = values.empty() ? m->data<float>() : values.data();
  std::copy(strides.begin(), strides.end(), p.maskStride);
  return true;
}

void runAttentionProblem(const AttentionProblem& p, Isa isa) { attendUnits(p, nullptr, 0, isa); }

void loadQueryRow(const AttentionProblem& p, int64_t b, int64_t h, int64_t s, float* dst) {
  const int64_t D = p.headDim;
  const float* x = p.queries.row(b, h, s);
  if (p.ropeCos) {
    const int64_t at = b * p.ropeBatchStride + s * p.ropeWidth;
    rotate(x, p.ropeCos + at, p.ropeSin + at, p.ropeWidth, D, p.ropeInterleaved, dst);
    for (int64_t d = 0; d < D; ++d) dst[d] *= p.queryScale;
  } else {
    for (int64_t d = 0; d < D; ++d) dst[d] = x[d] * p.queryScale;
  }
  std::fill(dst + D, dst + padded(D), 0.f);
}

std::optional<Status> runAttention(const KernelContext& ctx, Isa isa) {
  Expected<Attrs> attrs = readAttrs(ctx.attrs);
  const Tensor* q = ctx.input(kQ);
  if (!attrs || !q || q->dtype() != DType::F32 || ctx.outputs.empty()) return std::nullopt;
  const Attrs& a = *attrs;
  const bool packed = a.qkvLayout == Layout::BSDPacked;
  const Tensor* k = ctx.input(kK);
  const Tensor* v = ctx.input(kV);
  const size_t rank = a.qkvLayout == Layout::BHSD ? 4 : 3;
  if (q->rank() != rank || (!packed && (!k || !v || k->rank() != rank || v->rank() != rank))) return std::nullopt;

  AttentionProblem p;
  p.batch = q->shape()[0];
  p.heads = a.heads;
  p.kvHeads = a.kvHeads;
  p.group = a.heads / a.kvHeads;
  const int64_t B = p.batch, Hq = a.heads, Hkv = a.kvHeads;
  int64_t T = 0;
  if (packed) {
    p.seq = T = q->shape()[1];
    p.headDim = p.valueDim = q->shape()[2] / (Hq + 2 * Hkv);
  } else if (a.qkvLayout == Layout::BHSD) {
    p.seq = q->shape()[2], p.headDim = q->shape()[3], T = k->shape()[2], p.valueDim = v->shape()[3];
  } else {
    p.seq = q->shape()[1], p.headDim = q->shape()[2] / Hq, T = k->shape()[1], p.valueDim = v->shape()[2] / Hkv;
  }
  const int64_t S = p.seq, D = p.headDim, Dv = p.valueDim;
  if (D <= 0 || Dv <= 0) return std::nullopt;
  const KvCacheBinding* cache = ctx.kvCache;
  const Tensor* pastK = ctx.input(kPastK);
  const Tensor* pastV = ctx.input(kPastV);
  if (!cache && (pastK != nullptr) != (pastV != nullptr)) return std::nullopt;
  const int64_t P = cache ? cache->past : pastK ? pastK->shape()[2] : 0;
  const int64_t L = P + T;
  p.keys = L;
  p.causal = a.causal;
  p.window = a.window;
  if (cache && L > cache->capacity)
    return Status::error("attention: ", P, " cached + ", T, " new tokens exceed the KV cache capacity ",
                         cache->capacity);

  // Rows of q and of the new k and v.
  HeadRows newKeys, newValues;
  if (packed) {
    const int64_t width = (Hq + 2 * Hkv) * D;
    p.queries = rowsOf(q->data<float>(), Layout::BSD, Hq, S, D, width);
    newKeys = rowsOf(q->data<float>() + Hq * D, Layout::BSD, Hkv, S, D, width);
    newValues = rowsOf(q->data<float>() + (Hq + Hkv) * D, Layout::BSD, Hkv, S, D, width);
  } else {
    if (k->dtype() != DType::F32 || v->dtype() != DType::F32) return std::nullopt;
    p.queries = rowsOf(q->data<float>(), a.qkvLayout, Hq, S, D, Hq * D);
    newKeys = rowsOf(k->data<float>(), a.qkvLayout, Hkv, T, D, Hkv * D);
    newValues = rowsOf(v->data<float>(), a.qkvLayout, Hkv, T, Dv, Hkv * Dv);
  }
  p.queryScale = static_cast<float>(a.scale);

  // RoPE tables [B or 1][S][W] (W: the turned dims); the new keys use the
  // rows of their own positions.
  std::vector<float> ropeCos, ropeSin;
  if (a.rope) {
    const int64_t W = p.ropeWidth = ropeWidth(a, D);
    p.ropeInterleaved = a.ropeInterleaved;
    if (const Tensor* invFreq = ctx.input(kInvFreq)) {
      ropeCos.resize(static_cast<size_t>(S * W));
      ropeSin.resize(static_cast<size_t>(S * W));
      ropeFromFrequencies(*invFreq, L - S, S, W, a.ropeInterleaved, ropeCos.data(), ropeSin.data());
    } else {
      const Tensor* cos = ctx.input(kCos);
      const Tensor* sin = ctx.input(kSin);
      if (!cos || !sin || cos->dtype() != DType::F32 || sin->dtype() != DType::F32) return std::nullopt;
      const std::vector<int64_t> table = {B, 1, S, W};
      const std::vector<int64_t> cosAt = ops::broadcastStrides(cos->shape(), table);
      const std::vector<int64_t> sinAt = ops::broadcastStrides(sin->shape(), table);
      const int64_t tables = cosAt[0] == 0 && sinAt[0] == 0 ? 1 : B;
      p.ropeBatchStride = tables == 1 ? 0 : S * W;
      ropeCos.resize(static_cast<size_t>(tables * S * W));
      ropeSin.resize(static_cast<size_t>(tables * S * W));
      for (int64_t b = 0; b < tables; ++b)
        for (int64_t s = 0; s < S; ++s)
          for (int64_t d = 0; d < W; ++d) {
            const size_t at = static_cast<size_t>((b * S + s) * W + d);
            ropeCos[at] = cos->data<float>()[b * cosAt[0] + s * cosAt[2] + d * cosAt[3]];
            ropeSin[at] = sin->data<float>()[b * sinAt[0] + s * sinAt[2] + d * sinAt[3]];
          }
    }
    p.ropeCos = ropeCos.data();
    p.ropeSin = ropeSin.data();
  }

  MaskStorage maskValues;
  if (!loadAttentionMask(ctx.input(kMask), a.keyPaddingMask, maskValues, p)) return std::nullopt;

  // Where attention reads the keys and values, and what is staged first.
  RowStaging staging{newKeys, newValues};
  staging.past = P;
  Tensor scratchKeys;
  if (cache || ctx.outputs.size() == 3) {
    if (cache) {
      staging.keys = static_cast<float*>(cache->keys);
      staging.values = static_cast<float*>(cache->values);
      staging.rowsPerHead = cache->capacity;
    } else {
      staging.keys = ctx.outputs[1]->data<float>();
      staging.values = ctx.outputs[2]->data<float>();
      staging.rowsPerHead = L;
      staging.copyPast = P > 0;
      staging.pastKeys = pastK ? pastK->data<float>() : nullptr;
      staging.pastValues = pastV ? pastV->data<float>() : nullptr;
    }
    staging.firstNewRow = P;
    const int64_t rows = staging.rowsPerHead;
    p.segments[0] = {{staging.keys, Hkv * rows * D, rows * D, D},
                     {staging.values, Hkv * rows * Dv, rows * Dv, Dv}, 0, L};
    p.segmentCount = 1;
  } else {
    if (P > 0)
      p.segments[p.segmentCount++] = {{pastK->data<float>(), Hkv * P * D, P * D, D},
                                      {pastV->data<float>(), Hkv * P * Dv, P * Dv, Dv}, 0, P};
    HeadRows keys = newKeys;
    if (a.rope) {  // the roped keys exist nowhere else: scratch
      scratchKeys = Tensor::allocateUninitialized(DType::F32, {B, Hkv, T, D});
      staging.keys = scratchKeys.data<float>();
      staging.rowsPerHead = T;
      keys = {staging.keys, Hkv * T * D, T * D, D};
    }
    p.segments[p.segmentCount++] = {keys, newValues, P, L};
  }
  const bool staged = staging.keys != nullptr;
  const int64_t stagedRows = (staging.copyPast ? P : 0) + T;

  p.out = ctx.outputs[0]->data<float>();
  if (a.outLayout == Layout::BHSD) {
    p.outBatchStride = Hq * S * Dv, p.outHeadStride = S * Dv, p.outRowStride = Dv;
  } else {
    p.outBatchStride = S * Hq * Dv, p.outHeadStride = Dv, p.outRowStride = Hq * Dv;
  }

  attendUnits(p, staged ? &staging : nullptr, stagedRows, isa);
  return Status::ok();
}

namespace {

std::optional<Status> attentionKernel(const KernelContext& ctx) { return runAttention(ctx, activeIsa()); }

}  // namespace

void addAttentionKernels(KernelTable& table) { table[static_cast<size_t>(OpKind::Attention)] = &attentionKernel; }

}  // namespace kiln::cpu
