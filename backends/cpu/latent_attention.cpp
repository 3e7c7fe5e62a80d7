// The CPU kernel of latent_attention (ir/latent_attention.h) on the fused
// attention kernel's units (attention.h). It writes the new latent rows (rope
// part rotated) where they belong, then attends in one of two forms:
//
// - absorbed: every head's query taken into the latent space (q W_UK |
//   rope(q W_QR)) scores the cached rows as they are, one kv "head" of width
//   r + d_R shared by all H heads, whose values are the rows' first r dims;
//   the weighted latents then go through W_UV. The cache is read once per
//   step for all heads: decode's form.
// - expanded: per head, keys [W_UK c | k_R] and values W_UV^T c made once for
//   every cached row, then ordinary multi-head attention of head dim
//   d_q + d_R (d_R without key_up) and value dim d_v.
//
// Which runs is the one of fewer multiply-adds at the step's shape
// (chooseExpanded): expanding costs L H r (d_q + d_v) once but each score
// and weighted sum is d_q + d_R + d_v wide instead of r + d_R + r, so a
// long prefill expands and a decode step (S = 1) absorbs (d_q counts only
// with key_up).
#include "backends/cpu/latent_attention.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "backends/cpu/attention.h"
#include "backends/cpu/kernels.h"
#include "backends/reference/kernel_helpers.h"
#include "ir/latent_attention.h"

namespace kiln::cpu {
namespace {

using namespace latent;

struct LatentProblem {
  int64_t batch, seq, heads, queryDims, rope, rank, width, valueDim, past, keys;
  int64_t nope;          // the expanded keys' no-rope dims: queryDims with key_up, else 0
  const float* keyUp;    // [H, queryDims, rank], or null
  const float* ropeUp;   // [H, queryDims, rope], or null when rope = 0
  const float* valueUp;  // [H, rank, valueDim]
  float* rows;           // [B][rowsPerBatch][width]: the cache, present, or scratch
  int64_t rowsPerBatch;
};

// Threads for `work` multiply-adds: one below what a fork costs.
int threadsFor(int64_t work) { return work < (int64_t{1} << 16) ? 1 : numThreads(); }

// The past (when not already in place) and the new rows, rope parts rotated.
void stageRows(const KernelContext& ctx, const Attrs& a, const LatentProblem& lp, bool copyPast) {
  const int64_t W = lp.width;
  const ops::LatentRope rope(ctx, a, lp.batch, lp.seq, lp.past);
  const float* latent = ctx.input(kLatent)->data<float>();
  for (int64_t b = 0; b < lp.batch; ++b) {
    float* rows = lp.rows + b * lp.rowsPerBatch * W;
    if (copyPast && lp.past > 0)
      std::memcpy(rows, ctx.input(kPast)->data<float>() + b * lp.past * W, lp.past * W * sizeof(float));
    for (int64_t s = 0; s < lp.seq; ++s) {
      const float* from = latent + (b * lp.seq + s) * W;
      float* to = rows + (lp.past + s) * W;
      std::memcpy(to, from, lp.rank * sizeof(float));
      rope.rotate(from + lp.rank, b, s, to + lp.rank);
    }
  }
}

// bf16 bits to float: the high half of the float's bits (inline, so the
// widening loop vectorises).
inline float widen(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

// A bf16 cache (cache_dtype): the attention reads every row widened to f32
// scratch, which becomes lp.rows; the new rows are rounded into the cache (or
// the present result) first and read back rounded, as the reference does.
Tensor widenBf16Rows(const KernelContext& ctx, const Attrs& a, LatentProblem& lp) {
  const int64_t W = lp.width, P = lp.past, L = lp.keys;
  uint16_t* stored = nullptr;
  int64_t storedPerBatch = L;
  if (const KvCacheBinding* cache = ctx.kvCache) {
    stored = static_cast<uint16_t*>(cache->keys), storedPerBatch = cache->capacity;
  } else if (ctx.outputs.size() == kNumResults) {
    stored = ctx.outputs[kPresent]->data<uint16_t>();
  }
  const uint16_t* pastInput = ctx.input(kPast) && !ctx.kvCache ? ctx.input(kPast)->data<uint16_t>() : nullptr;
  Tensor widened = Tensor::allocateUninitialized(DType::F32, {lp.batch, L, W});
  lp.rows = widened.data<float>(), lp.rowsPerBatch = L;
  for (int64_t b = 0; b < lp.batch; ++b) {
    const uint16_t* past = pastInput ? pastInput + b * P * W : stored + b * storedPerBatch * W;
    if (stored && pastInput) std::memcpy(stored + b * storedPerBatch * W, past, P * W * sizeof(uint16_t));
    float* rows = lp.rows + b * L * W;
    for (int64_t i = 0; i < P * W; ++i) rows[i] = widen(past[i]);
  }
  stageRows(ctx, a, lp, false);
  for (int64_t b = 0; b < lp.batch; ++b)
    for (int64_t i = P * W; i < L * W; ++i) {
      const uint16_t bits = floatToBFloat16(lp.rows[b * L * W + i]);
      if (stored) stored[b * storedPerBatch * W + i] = bits;
      lp.rows[b * L * W + i] = widen(bits);
    }
  return widened;
}

// y += x up, x [n] and up [n, width].
void addProduct(const float* x, const float* up, int64_t n, int64_t width, float* y) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < width; ++c) y[c] += x[i] * up[i * width + c];
}

// The queries as the chosen form reads them, [B, S, H, width]: absorbed,
// q W_UK[h] | rope(q W_QR[h]); expanded, q (with key_up) | rope(q W_QR[h]).
Tensor loadQueries(const KernelContext& ctx, const Attrs& a, const LatentProblem& lp, bool expanded) {
  const int64_t dq = lp.queryDims, front = expanded ? lp.nope : lp.rank, outWidth = front + lp.rope;
  Tensor queries = Tensor::allocate(DType::F32, {lp.batch, lp.seq, lp.heads, outWidth});
  const float* q = ctx.input(kQ)->data<float>();
  const ops::LatentRope rope(ctx, a, lp.batch, lp.seq, lp.past);
  const int64_t tokens = lp.batch * lp.seq * lp.heads;
#pragma omp parallel for num_threads(threadsFor(tokens * dq * (lp.rank + lp.rope))) schedule(static)
  for (int64_t i = 0; i < tokens; ++i) {
    const int64_t h = i % lp.heads, token = i / lp.heads;
    const float* x = q + i * dq;
    float* y = queries.data<float>() + i * outWidth;
    if (expanded) std::copy_n(x, lp.nope, y);
    else if (lp.keyUp) addProduct(x, lp.keyUp + h * dq * lp.rank, dq, lp.rank, y);
    if (lp.rope == 0) continue;
    // The rope query into its slots (zeros: allocate clears), turned in place: a pair is read
    // whole before it is written.
    float* ropeQuery = y + front;
    addProduct(x, lp.ropeUp + h * dq * lp.rope, dq, lp.rope, ropeQuery);
    rope.rotate(ropeQuery, token / lp.seq, token % lp.seq, ropeQuery);
  }
  return queries;
}

// Expanded keys [B, H, L, nope + rope] and values [B, H, L, valueDim] of every row.
void expandRows(const LatentProblem& lp, float* keys, float* values) {
  const int64_t K = lp.nope + lp.rope, L = lp.keys;
  const int64_t items = lp.batch * lp.heads * L;
#pragma omp parallel for num_threads(threadsFor(items * lp.rank * (lp.nope + lp.valueDim))) schedule(static)
  for (int64_t i = 0; i < items; ++i) {
    const int64_t t = i % L, h = i / L % lp.heads, b = i / L / lp.heads;
    const float* row = lp.rows + (b * lp.rowsPerBatch + t) * lp.width;
    float* key = keys + i * K;
    float* value = values + i * lp.valueDim;
    std::fill_n(key, lp.nope, 0.f);
    std::fill_n(value, lp.valueDim, 0.f);
    for (int64_t c = 0; c < lp.rank; ++c) {
      for (int64_t n = 0; n < lp.nope; ++n) key[n] += row[c] * lp.keyUp[(h * lp.nope + n) * lp.rank + c];
      const float* up = lp.valueUp + (h * lp.rank + c) * lp.valueDim;
      for (int64_t e = 0; e < lp.valueDim; ++e) value[e] += row[c] * up[e];
    }
    std::copy_n(row + lp.rank, lp.rope, key + lp.nope);
  }
}

// out[b, s, h] = latentOut[b, s, h] W_UV[h].
void projectValues(const LatentProblem& lp, const float* latentOut, float* out) {
  const int64_t items = lp.batch * lp.seq * lp.heads;
#pragma omp parallel for num_threads(threadsFor(items * lp.rank * lp.valueDim)) schedule(static)
  for (int64_t i = 0; i < items; ++i) {
    const int64_t h = i % lp.heads;
    float* y = out + i * lp.valueDim;
    std::fill_n(y, lp.valueDim, 0.f);
    for (int64_t c = 0; c < lp.rank; ++c) {
      const float weight = latentOut[i * lp.rank + c];
      const float* up = lp.valueUp + (h * lp.rank + c) * lp.valueDim;
      for (int64_t e = 0; e < lp.valueDim; ++e) y[e] += weight * up[e];
    }
  }
}

// Multiply-adds of each form (the file comment): the expanded one pays for
// expanding every row once and then reads narrower rows per score.
bool chooseExpanded(const LatentProblem& lp) {
  const int64_t pairs = lp.batch * lp.heads * lp.seq * lp.keys;
  const int64_t absorbed = lp.batch * lp.seq * lp.heads * (lp.queryDims * (lp.keyUp ? lp.rank : 0) +
                                                           lp.rank * lp.valueDim) +
                           pairs * (lp.width + lp.rank);
  const int64_t expanded =
      lp.batch * lp.heads * lp.keys * lp.rank * (lp.nope + lp.valueDim) + pairs * (lp.nope + lp.rope + lp.valueDim);
  return expanded < absorbed;
}

}  // namespace

std::optional<Status> runLatentAttention(const KernelContext& ctx, Isa isa, LatentForm* form) {
  Expected<Attrs> attrs = readAttrs(ctx.attrs);
  const Tensor* q = ctx.input(kQ);
  if (!attrs || !q || q->dtype() != DType::F32 || ctx.outputs.empty()) return std::nullopt;
  const Attrs& a = *attrs;
  LatentProblem lp{};
  lp.batch = q->shape()[0], lp.seq = q->shape()[1], lp.heads = a.heads;
  lp.rope = a.ropeDims, lp.rank = a.rank, lp.width = a.rank + a.ropeDims;
  lp.queryDims = q->shape()[2] / a.heads;
  lp.valueDim = ctx.input(kValueUp)->shape()[2];
  if (lp.rank <= 0 || lp.valueDim <= 0) return std::nullopt;
  lp.keyUp = ctx.input(kKeyUp) ? ctx.input(kKeyUp)->data<float>() : nullptr;
  lp.ropeUp = lp.rope > 0 ? ctx.input(kRopeUp)->data<float>() : nullptr;
  lp.nope = lp.keyUp ? lp.queryDims : 0;
  lp.valueUp = ctx.input(kValueUp)->data<float>();
  const KvCacheBinding* cache = ctx.kvCache;
  lp.past = cache ? cache->past : ctx.input(kPast) ? ctx.input(kPast)->shape()[2] : 0;
  lp.keys = lp.past + lp.seq;
  if (cache && lp.keys > cache->capacity)
    return Status::error("latent_attention: ", lp.past, " cached + ", lp.seq,
                         " new tokens exceed the KV cache capacity ", cache->capacity);

  Tensor scratchRows;
  if (a.cacheType == DType::BF16) {
    scratchRows = widenBf16Rows(ctx, a, lp);
  } else if (cache) {
    lp.rows = static_cast<float*>(cache->keys), lp.rowsPerBatch = cache->capacity;
  } else if (ctx.outputs.size() == kNumResults) {
    lp.rows = ctx.outputs[kPresent]->data<float>(), lp.rowsPerBatch = lp.keys;
  } else {
    scratchRows = Tensor::allocateUninitialized(DType::F32, {lp.batch, lp.keys, lp.width});
    lp.rows = scratchRows.data<float>(), lp.rowsPerBatch = lp.keys;
  }
  if (a.cacheType != DType::BF16) stageRows(ctx, a, lp, cache == nullptr);

  const bool expanded = chooseExpanded(lp);
  if (form) *form = expanded ? LatentForm::Expanded : LatentForm::Absorbed;
  const Tensor queries = loadQueries(ctx, a, lp, expanded);
  AttentionProblem p;
  p.batch = lp.batch, p.heads = lp.heads, p.seq = lp.seq, p.keys = lp.keys, p.causal = a.causal;
  p.queryScale = static_cast<float>(a.scale);
  MaskStorage maskValues;
  if (!loadAttentionMask(ctx.input(kMask), a.keyPaddingMask, maskValues, p)) return std::nullopt;
  const int64_t queryWidth = queries.shape()[3], H = lp.heads, S = lp.seq;
  p.queries = {queries.data<float>(), S * H * queryWidth, queryWidth, H * queryWidth};
  p.headDim = queryWidth;
  p.segmentCount = 1;
  float* out = ctx.outputs[kOut]->data<float>();
  if (expanded) {
    const int64_t K = lp.nope + lp.rope, Dv = lp.valueDim, L = lp.keys;
    const Tensor keys = Tensor::allocateUninitialized(DType::F32, {lp.batch, H, L, K});
    const Tensor values = Tensor::allocateUninitialized(DType::F32, {lp.batch, H, L, Dv});
    expandRows(lp, keys.data<float>(), values.data<float>());
    p.kvHeads = H, p.group = 1, p.valueDim = Dv;
    p.segments[0] = {{keys.data<float>(), H * L * K, L * K, K}, {values.data<float>(), H * L * Dv, L * Dv, Dv}, 0, L};
    p.out = out, p.outBatchStride = S * H * Dv, p.outHeadStride = Dv, p.outRowStride = H * Dv;
    runAttentionProblem(p, isa);
    return Status::ok();
  }
  // One kv head of every row, whose first r dims are also its value.
  const int64_t W = lp.width, R = lp.rank;
  p.kvHeads = 1, p.group = H, p.valueDim = R;
  p.segments[0] = {{lp.rows, lp.rowsPerBatch * W, 0, W}, {lp.rows, lp.rowsPerBatch * W, 0, W}, 0, lp.keys};
  const Tensor latentOut = Tensor::allocateUninitialized(DType::F32, {lp.batch, S, H, R});
  p.out = latentOut.data<float>(), p.outBatchStride = S * H * R, p.outHeadStride = R, p.outRowStride = H * R;
  runAttentionProblem(p, isa);
  projectValues(lp, latentOut.data<float>(), out);
  return Status::ok();
}

namespace {

std::optional<Status> latentAttentionKernel(const KernelContext& ctx) { return runLatentAttention(ctx, activeIsa()); }

}  // namespace

void addLatentAttentionKernels(KernelTable& table) {
  table[static_cast<size_t>(OpKind::LatentAttention)] = &latentAttentionKernel;
}

}  // namespace kiln::cpu
