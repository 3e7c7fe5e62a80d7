// The per-unit attention kernel (attention.h), written once over the vector
// traits V of vector_simd.h (its exp too) and compiled once per instruction
// set: vector_scalar.cpp, vector_avx2.cpp and vector_avx512.cpp include this
// header (through isa_kernels.h, under their target pragma) and put
// attendUnit<V> in their kernel table. Everything here is a
// template over V or in an anonymous namespace, so the copies never meet at
// link time. The standard headers it uses come before the target pragma in
// those files, so their templates keep the default target.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "backends/cpu/attention.h"
#include "backends/cpu/vector_simd.h"

namespace kiln::cpu {
namespace {

constexpr float kBlocked = -std::numeric_limits<float>::infinity();

// Rows ahead whose cache lines a loop over query or key rows asks for: the
// rows lie a whole packed q|k|v row apart (all-MiniLM-L6-v2: 4.5 KiB), so
// the hardware's prefetcher misses them and each load waited on memory.
inline constexpr int64_t kFetchRowsAhead = 4;

// Asks for the cache lines of `floats` floats at `row`.
inline void fetchRow(const float* row, int64_t floats) {
  for (int64_t f = 0; f < floats; f += 16) __builtin_prefetch(row + f);
}

// Value vectors accumulated at once: 4 rows of them take half the registers.
template <class V>
constexpr int kValueColumns = V::kRegisters / 8;

// One query row of a unit.
struct RowState {
  const float* maskRow = nullptr;  // the mask at key 0 of this row, or null
  float* out = nullptr;
  int64_t limit = 0;  // keys [0, limit) are visible (causal, short of trailing padding), else all
  int64_t first = 0;  // and of those only [first, limit) (a sliding window)
  int64_t valid = 0;  // keys of the current block with a weight (0: the row skips it)
  float max = kBlocked, sum = 0, alpha = 1;
};

struct UnitState {
  const AttentionProblem& p;
  const AttentionUnit& u;
  int64_t rows;
  int64_t queryStride, valueStride;  // padded(D), padded(Dv)
  float* queries;                    // [rows][queryStride]
  float* scores;                     // [rows][kKeyBlock]: scores, then weights
  float* acc;                        // [rows][valueStride]: unnormalised output
  RowState* row;
  float* keysT;                      // [D][kKeyBlock]: the block's keys transposed
};

// Scores of R query rows against W / R keys: one accumulator vector per
// (row, key) over the head dim, summed across lanes into one vector.
template <class V, int R>
inline void scoreTile(const UnitState& st, const float* q, const float* const* keys, float* dst) {
  using F = typename V::F;
  constexpr int KT = V::kWidth / R;
  const int64_t D = st.p.headDim;
  const int64_t full = D / V::kWidth;
  F acc[R * KT];
  for (int i = 0; i < R * KT; ++i) acc[i] = V::zero();
  int64_t off = 0;
  for (int64_t i = 0; i < full; ++i, off += V::kWidth) {
    F qv[R];
    for (int r = 0; r < R; ++r) qv[r] = V::load(q + r * st.queryStride + off);
    for (int k = 0; k < KT; ++k) {
      const F kv = V::load(keys[k] + off);
      for (int r = 0; r < R; ++r) acc[r * KT + k] = V::mulAdd(qv[r], kv, acc[r * KT + k]);
    }
  }
  if (off < D) {  // queries are zero-padded; keys are read only up to D
    const typename V::M tail = V::tailMask(D - off);
    F qv[R];
    for (int r = 0; r < R; ++r) qv[r] = V::load(q + r * st.queryStride + off);
    for (int k = 0; k < KT; ++k) {
      const F kv = V::loadMasked(keys[k] + off, tail);
      for (int r = 0; r < R; ++r) acc[r * KT + k] = V::mulAdd(qv[r], kv, acc[r * KT + k]);
    }
  }
  V::template storeGroups<R>(V::sumLanes(acc), dst, kKeyBlock);
}

// Scores of rows [i, i + R) against keys [j0, j0 + count) of `seg`; a tile
// that runs past the last key repeats it and its extra columns are ignored.
template <class V, int R>
inline void scoreRows(const UnitState& st, const KeySegment& seg, int64_t i, int64_t j0, int64_t count) {
  constexpr int KT = V::kWidth / R;
  const float* keys[KT];
  for (int64_t jt = 0; jt < count; jt += KT) {
    for (int k = 0; k < KT; ++k)
      keys[k] = seg.keys.row(st.u.batch, st.u.kvHead, std::min(jt + k, count - 1) + j0 - seg.begin);
    scoreTile<V, R>(st, st.queries + i * st.queryStride, keys, st.scores + i * kKeyBlock + jt);
  }
}

// The keys of [j0, j0 + count) that rows [i, i + n) see, counted from j0.
inline int64_t visibleIn(const UnitState& st, int64_t i, int64_t n, int64_t j0, int64_t count) {
  int64_t visible = 0;
  for (int64_t r = i; r < i + n; ++r) visible = std::max(visible, std::clamp(st.row[r].limit - j0, int64_t{0}, count));
  return visible;
}

template <class V, int R>
inline int64_t scoreRowTiles(const UnitState& st, const KeySegment& seg, int64_t i, int64_t j0, int64_t count) {
  for (; i + R <= st.rows; i += R)
    if (const int64_t visible = visibleIn(st, i, R, j0, count); visible > 0) scoreRows<V, R>(st, seg, i, j0, visible);
  return i;
}

// Units of at least this many query rows score a block against its keys
// transposed (the transpose is paid once for them all); fewer (a decode
// step) take the dot products above.
inline constexpr int64_t kTransposedKeyRows = 8;

// The keys [j0, j0 + count) of `seg` as st.keysT[d][j], zero past count up
// to whole vectors.
template <class V>
inline void transposeKeys(const UnitState& st, const KeySegment& seg, int64_t j0, int64_t count) {
  constexpr int64_t W = V::kWidth;
  const int64_t D = st.p.headDim, width = (count + W - 1) / W * W;
  // Whole W x W squares by the vector transpose (the scalar copy took a
  // third of the unit's time); the rest of the keys and dims element-wise.
  const int64_t squareKeys = count / W * W, squareDims = D / W * W;
  const float* rows[W];
  for (int64_t j = 0; j < squareKeys; j += W) {
    for (int64_t k = 0; k < W; ++k) rows[k] = seg.keys.row(st.u.batch, st.u.kvHead, j0 + j + k - seg.begin);
    for (int64_t d = 0; d < squareDims; d += W) {
      V::transposeSquare(rows, st.keysT + d * kKeyBlock + j, kKeyBlock);
      for (int64_t k = 0; k < W; ++k) rows[k] += W;
    }
    for (int64_t k = 0; k < W; ++k)
      for (int64_t d = squareDims; d < D; ++d) st.keysT[d * kKeyBlock + j + k] = rows[k][d - squareDims];
  }
  for (int64_t j = squareKeys; j < count; ++j) {
    if (j + kFetchRowsAhead < count)
      fetchRow(seg.keys.row(st.u.batch, st.u.kvHead, j0 + j + kFetchRowsAhead - seg.begin), D);
    const float* key = seg.keys.row(st.u.batch, st.u.kvHead, j0 + j - seg.begin);
    for (int64_t d = 0; d < D; ++d) st.keysT[d * kKeyBlock + j] = key[d];
  }
  for (int64_t d = 0; d < D; ++d)
    for (int64_t j = count; j < width; ++j) st.keysT[d * kKeyBlock + j] = 0.f;
}

// Scores of rows [i, i + R) against NK vectors of keys from key `j`: an
// outer product per head dim, the query's element broadcast against a row
// of transposed keys (no sums across lanes).
template <class V, int R, int NK>
inline void scoreTransposed(const UnitState& st, int64_t i, int64_t j) {
  using F = typename V::F;
  F acc[R][NK];
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < NK; ++k) acc[r][k] = V::zero();
  const float* q = st.queries + i * st.queryStride;
  for (int64_t d = 0; d < st.p.headDim; ++d) {
    F keys[NK];
    for (int k = 0; k < NK; ++k) keys[k] = V::load(st.keysT + d * kKeyBlock + j + k * V::kWidth);
    for (int r = 0; r < R; ++r) {
      const F x = V::set1(q[r * st.queryStride + d]);
      for (int k = 0; k < NK; ++k) acc[r][k] = V::mulAdd(x, keys[k], acc[r][k]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < NK; ++k) V::store(st.scores + (i + r) * kKeyBlock + j + k * V::kWidth, acc[r][k]);
}

template <class V, int R>
inline int64_t scoreTransposedRows(const UnitState& st, int64_t i, int64_t j0, int64_t count) {
  for (; i + R <= st.rows; i += R) {
    const int64_t visible = visibleIn(st, i, R, j0, count);
    int64_t j = 0;
    for (; j + 2 * V::kWidth <= visible; j += 2 * V::kWidth) scoreTransposed<V, R, 2>(st, i, j);
    for (; j < visible; j += V::kWidth) scoreTransposed<V, R, 1>(st, i, j);
  }
  return i;
}

// The mask's values for keys [j0, j0 + valid) added to one row's scores.
template <class V>
inline void addMask(const AttentionProblem& p, const float* maskRow, int64_t j0, int64_t valid, float* s) {
  const int64_t stride = p.maskStride[3];
  const float* m = maskRow + j0 * stride;
  int64_t j = 0;
  if (stride == 1)
    for (; j + V::kWidth <= valid; j += V::kWidth) V::store(s + j, V::add(V::load(s + j), V::load(m + j)));
  for (; j < valid; ++j) s[j] += m[j * stride];
}

// Online softmax of one row over a block: turns its scores into weights
// exp(score - running max), zero past the visible keys, and rescales the
// running sum; row.alpha is the factor for the accumulator.
template <class V>
inline void softmaxRow(const UnitState& st, int64_t i, int64_t j0, int64_t count) {
  using F = typename V::F;
  RowState& row = st.row[i];
  float* s = st.scores + i * kKeyBlock;
  const int64_t valid = std::clamp(row.limit - j0, int64_t{0}, count);
  const int64_t width = (count + V::kWidth - 1) / V::kWidth * V::kWidth;
  float newMax = kBlocked;
  if (valid > 0) {
    if (row.maskRow) addMask<V>(st.p, row.maskRow, j0, valid, s);
    for (int64_t j = 0; j < std::min(row.first - j0, valid); ++j) s[j] = kBlocked;  // before the window
    for (int64_t j = valid; j < width; ++j) s[j] = kBlocked;
    F highest = V::set1(kBlocked);
    for (int64_t j = 0; j < valid; j += V::kWidth) highest = V::max(highest, V::load(s + j));
    newMax = std::max(row.max, V::reduceMax(highest));
  }
  if (newMax == kBlocked) {  // no visible key here, or none unmasked so far: the row is unchanged
    for (int64_t j = 0; j < width; j += V::kWidth) V::store(s + j, V::zero());
    row.alpha = 1;
    row.valid = 0;
    return;
  }
  row.alpha = std::exp(row.max - newMax);
  const F shift = V::set1(newMax);
  F total = V::zero();
  for (int64_t j = 0; j < width; j += V::kWidth) {
    const F weight = vec::Math<V>::expOrZero(V::sub(V::load(s + j), shift));
    V::store(s + j, weight);
    total = V::add(total, weight);
  }
  row.sum = row.sum * row.alpha + V::reduceSum(total);
  row.max = newMax;
  row.valid = valid;
}

// acc[r] = acc[r] * alpha[r] + sum_j weight[r][j] * value[j] for NC vectors
// of the value dim from column `col` (the last of them partial if Masked).
template <class V, int R, int NC, bool Masked>
inline void accumulateColumns(const UnitState& st, int64_t i, const float* values, int64_t valueRowStride,
                              int64_t count, int64_t col, typename V::M mask) {
  using F = typename V::F;
  F acc[R][NC];
  for (int r = 0; r < R; ++r) {
    const F alpha = V::set1(st.row[i + r].alpha);
    for (int c = 0; c < NC; ++c)
      acc[r][c] = V::mul(V::load(st.acc + (i + r) * st.valueStride + col + c * V::kWidth), alpha);
  }
  const float* weights = st.scores + i * kKeyBlock;
  for (int64_t j = 0; j < count; ++j) {
    const float* value = values + j * valueRowStride + col;
    F v[NC];
    for (int c = 0; c < NC; ++c)
      v[c] = Masked ? V::loadMasked(value + c * V::kWidth, mask) : V::load(value + c * V::kWidth);
    for (int r = 0; r < R; ++r) {
      const F w = V::set1(weights[r * kKeyBlock + j]);
      for (int c = 0; c < NC; ++c) acc[r][c] = V::mulAdd(w, v[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < NC; ++c) V::store(st.acc + (i + r) * st.valueStride + col + c * V::kWidth, acc[r][c]);
}

template <class V, int R>
inline int64_t accumulateRowTiles(const UnitState& st, const KeySegment& seg, int64_t i, int64_t j0) {
  const int64_t Dv = st.p.valueDim;
  const int64_t full = Dv / V::kWidth;
  const float* values = seg.values.row(st.u.batch, st.u.kvHead, j0 - seg.begin);
  const int64_t stride = seg.values.rowStride;
  for (; i + R <= st.rows; i += R) {
    int64_t count = 0;
    bool rescaled = false;
    for (int r = 0; r < R; ++r) {
      count = std::max(count, st.row[i + r].valid);
      rescaled = rescaled || st.row[i + r].alpha != 1;
    }
    if (count == 0 && !rescaled) continue;
    const typename V::M all = V::tailMask(V::kWidth);
    int64_t c = 0;
    for (; c + kValueColumns<V> <= full; c += kValueColumns<V>)
      accumulateColumns<V, R, kValueColumns<V>, false>(st, i, values, stride, count, c * V::kWidth, all);
    for (; c < full; ++c) accumulateColumns<V, R, 1, false>(st, i, values, stride, count, c * V::kWidth, all);
    if (full * V::kWidth < Dv)
      accumulateColumns<V, R, 1, true>(st, i, values, stride, count, full * V::kWidth,
                                       V::tailMask(Dv - full * V::kWidth));
  }
  return i;
}

// The block's weighted values added to every row's accumulator.
template <class V>
inline void accumulate(const UnitState& st, const KeySegment& seg, int64_t j0) {
  int64_t i = accumulateRowTiles<V, 4>(st, seg, 0, j0);
  i = accumulateRowTiles<V, 2>(st, seg, i, j0);
  accumulateRowTiles<V, 1>(st, seg, i, j0);
}

// accumulate out of line, for AVX-512: inlined into the unit, GCC spilled
// accumulateColumns' value vectors to the stack (30% slower prefill). On
// AVX2 and scalar code, inlined is the faster.
template <class V>
__attribute__((noinline)) void accumulateApart(const UnitState& st, const KeySegment& seg, int64_t j0) {
  accumulate<V>(st, seg, j0);
}

// The block's scores: against its keys transposed for a unit of
// kTransposedKeyRows rows or more where the registers hold 6 x 2 tiles
// (AVX-512), else by dot products.
template <class V>
inline void scoreBlock(const UnitState& st, const KeySegment& seg, int64_t j0, int64_t count) {
  int64_t i = 0;
  if constexpr (V::kRegisters > 16) {
    if (st.rows >= kTransposedKeyRows) {
      transposeKeys<V>(st, seg, j0, count);
      i = scoreTransposedRows<V, 6>(st, i, j0, count);
      i = scoreTransposedRows<V, 2>(st, i, j0, count);
      scoreTransposedRows<V, 1>(st, i, j0, count);
      return;
    }
  }
  if constexpr (V::kWidth >= 4) i = scoreRowTiles<V, 4>(st, seg, i, j0, count);
  if constexpr (V::kWidth >= 2) i = scoreRowTiles<V, 2>(st, seg, i, j0, count);
  scoreRowTiles<V, 1>(st, seg, i, j0, count);
}

// Keys [j0, j0 + count) of one segment, count <= kKeyBlock.
template <class V>
inline void attendBlock(const UnitState& st, const KeySegment& seg, int64_t j0, int64_t count) {
  scoreBlock<V>(st, seg, j0, count);
  for (int64_t r = 0; r < st.rows; ++r) softmaxRow<V>(st, r, j0, count);
  if constexpr (V::kRegisters > 16) accumulateApart<V>(st, seg, j0);
  else accumulate<V>(st, seg, j0);
}

// Query s of head h in batch b, scaled and zero-padded to padded(D), as
// loadQueryRow makes it; with the vector code here when there is no RoPE
// (an encoder's queries: the scalar copy was 3% of all-MiniLM-L6-v2's run).
template <class V>
inline void loadQuery(const AttentionProblem& p, int64_t b, int64_t h, int64_t s, float* dst) {
  if (p.ropeCos) return loadQueryRow(p, b, h, s, dst);
  const float* x = p.queries.row(b, h, s);
  const typename V::F scale = V::set1(p.queryScale);
  const int64_t D = p.headDim;
  int64_t d = 0;
  for (; d + V::kWidth <= D; d += V::kWidth) V::store(dst + d, V::mul(V::load(x + d), scale));
  for (; d < padded(D); d += V::kWidth)
    V::store(dst + d, V::mul(V::loadN(x + d, std::max<int64_t>(D - d, 0), 0.0f), scale));
}

template <class V>
void attendUnit(const AttentionProblem& p, const AttentionUnit& u, float* scratch) {
  RowState rows[kMaxUnitRows];
  UnitState st{p, u, u.rowEnd - u.rowBegin, padded(p.headDim), padded(p.valueDim), nullptr, nullptr, nullptr, rows,
               nullptr};
  st.queries = scratch;
  st.scores = st.queries + kMaxUnitRows * st.queryStride;
  st.acc = st.scores + kMaxUnitRows * kKeyBlock;
  st.keysT = st.acc + kMaxUnitRows * st.valueStride;

  int64_t lastVisible = 0;
  for (int64_t i = 0; i < st.rows; ++i) {
    if (const int64_t ahead = u.rowBegin + i + kFetchRowsAhead; ahead < u.rowEnd)
      fetchRow(p.queries.row(u.batch, u.kvHead * p.group + ahead % p.group, ahead / p.group), p.headDim);
    const int64_t rho = u.rowBegin + i;
    const int64_t s = rho / p.group, h = u.kvHead * p.group + rho % p.group;
    loadQuery<V>(p, u.batch, h, s, st.queries + i * st.queryStride);
    RowState& row = rows[i];
    row.limit = p.causal ? std::clamp(s + p.keys - p.seq + 1, int64_t{0}, p.keys) : p.keys;
    row.first = p.window > 0 && row.limit > p.window ? row.limit - p.window : 0;
    if (p.keyEnds) row.limit = std::min(row.limit, p.keyEnds[u.batch]);  // trailing padding
    if (p.mask) row.maskRow = p.mask + u.batch * p.maskStride[0] + h * p.maskStride[1] + s * p.maskStride[2];
    row.out = p.out + u.batch * p.outBatchStride + h * p.outHeadStride + s * p.outRowStride;
    std::fill_n(st.acc + i * st.valueStride, st.valueStride, 0.f);
    lastVisible = std::max(lastVisible, row.limit);
  }

  // Causal: key blocks after every row's last visible key are never read.
  const int64_t keyEnd = std::min(u.keyEnd, lastVisible);
  for (int k = 0; k < p.segmentCount; ++k) {
    const KeySegment& seg = p.segments[k];
    const int64_t end = std::min(seg.end, keyEnd);
    for (int64_t j0 = std::max(seg.begin, u.keyBegin); j0 < end; j0 += kKeyBlock)
      attendBlock<V>(st, seg, j0, std::min(kKeyBlock, end - j0));
  }

  for (int64_t i = 0; i < st.rows; ++i) {
    const float* acc = st.acc + i * st.valueStride;
    if (u.partial) {
      float* partial = u.partial + i * partialRowFloats(p.valueDim);
      partial[0] = rows[i].max;
      partial[1] = rows[i].sum;
      std::copy_n(acc, st.valueStride, partial + 2);
    } else if (rows[i].max == kBlocked) {  // every key masked: zeros, as the reference
      std::fill_n(rows[i].out, p.valueDim, 0.f);
    } else {
      for (int64_t d = 0; d < p.valueDim; ++d) rows[i].out[d] = acc[d] / rows[i].sum;
    }
  }
}

}  // namespace
}  // namespace kiln::cpu
