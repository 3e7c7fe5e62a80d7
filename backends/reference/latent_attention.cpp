// The reference kernel of latent_attention (ir/latent_attention.h), in the
// absorbed form: each head's query is taken into the latent space
// (q W_UK), scored against the cached rows as they are, and the weighted
// sum of latents goes through W_UV. Dot products and sums accumulate in double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "backends/reference/kernel_helpers.h"
#include "backends/reference/kernel_table.h"
#include "ir/latent_attention.h"

namespace kiln {
namespace {

using namespace ops;
using namespace latent;

struct LatentShape {
  int64_t batch, seq, heads, queryDims, ropeDims, rank, row, valueDims, past, keys;
};

LatentShape latentShape(const KernelContext& ctx, const Attrs& a) {
  const std::vector<int64_t>& q = ctx.input(kQ)->shape();
  LatentShape s{};
  s.batch = q[0], s.seq = q[1], s.heads = a.heads;
  s.ropeDims = a.ropeDims, s.rank = a.rank, s.row = a.rank + a.ropeDims;
  s.queryDims = q[2] / a.heads;
  s.valueDims = ctx.input(kValueUp)->shape()[2];
  // A session's KV cache holds the past in place of the past operand.
  s.past = ctx.kvCache ? ctx.kvCache->past : ctx.input(kPast) ? ctx.input(kPast)->shape()[2] : 0;
  s.keys = s.past + s.seq;
  return s;
}

// The rows [0, keys) of each batch: the past where it lies (a session's
// cache) or copied into present / scratch, then the new tokens' rows (rope
// part rotated, rounded to the rows' dtype R) appended at [past, keys).
template <class T, class R>
Expected<R*> cacheRows(const KernelContext& ctx, const Attrs& a, const LatentShape& sh, std::vector<R>& scratch,
                       int64_t& rowsPerBatch) {
  R* rows = nullptr;
  rowsPerBatch = sh.keys;
  if (const KvCacheBinding* cache = ctx.kvCache) {
    if (sh.keys > cache->capacity)
      return Status::error("latent_attention: ", sh.past, " cached + ", sh.seq,
                           " new tokens exceed the KV cache capacity ", cache->capacity);
    rows = static_cast<R*>(cache->keys);
    rowsPerBatch = cache->capacity;
  } else {
    if (ctx.outputs.size() == kNumResults) {
      rows = ctx.outputs[kPresent]->data<R>();
    } else {
      scratch.resize(static_cast<size_t>(sh.batch * sh.keys * sh.row));
      rows = scratch.data();
    }
    const R* past = ctx.input(kPast) ? ctx.input(kPast)->data<R>() : nullptr;
    for (int64_t b = 0; b < sh.batch && sh.past > 0; ++b)
      std::copy_n(past + b * sh.past * sh.row, sh.past * sh.row, rows + b * sh.keys * sh.row);
  }
  const LatentRope rope(ctx, a, sh.batch, sh.seq, sh.past);
  const T* latent = ctx.input(kLatent)->data<T>();
  std::vector<double> rotated(static_cast<size_t>(sh.ropeDims));
  for (int64_t b = 0; b < sh.batch; ++b)
    for (int64_t s = 0; s < sh.seq; ++s) {
      const T* from = latent + (b * sh.seq + s) * sh.row;
      R* to = rows + (b * rowsPerBatch + sh.past + s) * sh.row;
      for (int64_t c = 0; c < sh.rank; ++c) to[c] = fromCompute<R>(static_cast<ComputeType<R>>(toCompute(from[c])));
      rope.rotate(from + sh.rank, b, s, rotated.data());
      for (int64_t d = 0; d < sh.ropeDims; ++d)
        to[sh.rank + d] = fromCompute<R>(static_cast<ComputeType<R>>(rotated[static_cast<size_t>(d)]));
    }
  return rows;
}

// q[h] up, the product of q[h] ([d_q]) and up[h] ([d_q, width]), added to out.
template <class T>
void projectQuery(const T* q, const T* up, int64_t queryDims, int64_t width, double* out) {
  for (int64_t i = 0; i < queryDims; ++i) {
    const double qi = static_cast<double>(toCompute(q[i]));
    for (int64_t c = 0; c < width; ++c) out[c] += qi * static_cast<double>(toCompute(up[i * width + c]));
  }
}

// Head h's query at (b, s) as a key row sees it: q W_UK[h] | rope(q W_QR[h]).
template <class T>
void absorbedQuery(const KernelContext& ctx, const LatentRope& rope, const LatentShape& sh, int64_t b, int64_t s,
                   int64_t h, std::vector<double>& query) {
  const int64_t dq = sh.queryDims;
  const T* q = ctx.input(kQ)->data<T>() + ((b * sh.seq + s) * sh.heads + h) * dq;
  std::fill(query.begin(), query.end(), 0.0);
  if (const Tensor* keyUp = ctx.input(kKeyUp))
    projectQuery(q, keyUp->data<T>() + h * dq * sh.rank, dq, sh.rank, query.data());
  if (sh.ropeDims == 0) return;
  // Into its slots, turned in place (a pair is read whole before it is written).
  double* ropeQuery = query.data() + sh.rank;
  projectQuery(q, ctx.input(kRopeUp)->data<T>() + h * dq * sh.ropeDims, dq, sh.ropeDims, ropeQuery);
  rope.rotate(ropeQuery, b, s, ropeQuery);
}

template <class T, class R>
Status latentLoops(const KernelContext& ctx, const Attrs& a) {
  const LatentShape sh = latentShape(ctx, a);
  std::vector<R> scratch;
  int64_t rowsPerBatch = 0;
  Expected<R*> rows = cacheRows<T, R>(ctx, a, sh, scratch, rowsPerBatch);
  if (!rows) return rows.status();
  const AdditiveMask mask = additiveMask(ctx.input(kMask), a.keyPaddingMask, {sh.batch, sh.heads, sh.seq, sh.keys});
  const std::vector<int64_t>& maskAt = mask.strides;
  const LatentRope rope(ctx, a, sh.batch, sh.seq, sh.past);
  const T* valueUp = ctx.input(kValueUp)->data<T>();
  T* out = ctx.outputs[kOut]->data<T>();
  std::vector<double> query(static_cast<size_t>(sh.row)), scores(static_cast<size_t>(sh.keys)),
      sum(static_cast<size_t>(sh.rank));
  for (int64_t b = 0; b < sh.batch; ++b)
    for (int64_t s = 0; s < sh.seq; ++s)
      for (int64_t h = 0; h < sh.heads; ++h) {
        absorbedQuery<T>(ctx, rope, sh, b, s, h, query);
        T* y = out + ((b * sh.seq + s) * sh.heads + h) * sh.valueDims;
        // Causal: query s sits at position past + s of the keys.
        const int64_t visible = a.causal ? std::min(sh.past + s + 1, sh.keys) : sh.keys;
        const double* maskRow =
            mask.values.empty() ? nullptr : mask.values.data() + b * maskAt[0] + h * maskAt[1] + s * maskAt[2];
        double highest = -std::numeric_limits<double>::infinity();
        for (int64_t t = 0; t < visible; ++t) {
          const R* key = *rows + (b * rowsPerBatch + t) * sh.row;
          double dot = 0.0;
          for (int64_t d = 0; d < sh.row; ++d)
            dot += query[static_cast<size_t>(d)] * static_cast<double>(toCompute(key[d]));
          const double score = dot * a.scale + (maskRow ? maskRow[t * maskAt[3]] : 0.0);
          scores[static_cast<size_t>(t)] = score;
          highest = std::max(highest, score);
        }
        std::fill(sum.begin(), sum.end(), 0.0);
        double total = 0.0;
        // A row with every key masked out attends to nothing: zeros, not NaN.
        for (int64_t t = 0; t < visible && highest != -std::numeric_limits<double>::infinity(); ++t) {
          const double weight = std::exp(scores[static_cast<size_t>(t)] - highest);
          total += weight;
          const R* latent = *rows + (b * rowsPerBatch + t) * sh.row;
          for (int64_t c = 0; c < sh.rank; ++c) sum[static_cast<size_t>(c)] += weight * toCompute(latent[c]);
        }
        const T* up = valueUp + h * sh.rank * sh.valueDims;
        for (int64_t d = 0; d < sh.valueDims; ++d) {
          double value = 0.0;
          for (int64_t c = 0; c < sh.rank && total > 0.0; ++c)
            value += sum[static_cast<size_t>(c)] / total * static_cast<double>(toCompute(up[c * sh.valueDims + d]));
          y[d] = fromCompute<T>(static_cast<ComputeType<T>>(value));
        }
      }
  return Status::ok();
}

Status latentAttentionKernel(const KernelContext& ctx) {
  Expected<Attrs> attrs = readAttrs(ctx.attrs);
  if (!attrs) return Status::error("latent_attention: ", attrs.status().message());
  const DType dtype = ctx.input(kQ)->dtype();
  return visitDType(dtype, [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (!kIsFloatStorage<T>) return unsupportedDType(ctx, dtype);
    else if (attrs->cacheType == DType::BF16) return latentLoops<T, BFloat16>(ctx, *attrs);
    else return latentLoops<T, float>(ctx, *attrs);
  });
}

}  // namespace

void addLatentAttentionKernels(ReferenceKernelTable& table) {
  table.add(OpKind::LatentAttention, latentAttentionKernel);
}

}  // namespace kiln
