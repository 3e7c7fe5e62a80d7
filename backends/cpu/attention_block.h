// The per-unit attention kernel (attention.h), templated on a struct of
// vector operations. Each instruction set's source file defines
// KILN_ATTENTION_TARGET (the target attribute its intrinsics need; empty for
// scalar code) and its Ops, includes this header and instantiates
// attendUnit<Ops>. Everything here is in an anonymous namespace so that the
// copies built for different instruction sets never meet at link time.
//
// Ops provides: V (a vector of W floats), Mask (which lanes a partial load
// reads), W, kValueColumns (value vectors accumulated at once), and static
// zero, broadcast, load, loadMasked, tailMask, store, add, sub, mul, max,
// fmadd (a * b + c), reduceMax, reduceSum, exp (of x <= 0; exactly 0 for
// -inf), sumLanes (W vectors -> one vector whose lane i is the sum of the
// lanes of vector i) and storeTile<R> (a sumLanes result holding R rows of
// W / R scores, row r to dst + r * stride).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "backends/cpu/attention.h"

#ifndef KILN_ATTENTION_TARGET
#error "define KILN_ATTENTION_TARGET before including attention_block.h"
#endif

namespace kiln::cpu {
namespace {

constexpr float kBlocked = -std::numeric_limits<float>::infinity();

// One query row of a unit.
struct RowState {
  const float* maskRow = nullptr;  // the mask at key 0 of this row, or null
  float* out = nullptr;
  int64_t limit = 0;  // keys [0, limit) are visible (causal), else all
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
};

// Scores of R query rows against W / R keys: one accumulator vector per
// (row, key) over the head dim, summed across lanes into one vector.
template <class Ops, int R>
KILN_ATTENTION_TARGET inline void scoreTile(const UnitState& st, const float* q, const float* const* keys,
                                            float* dst) {
  using V = typename Ops::V;
  constexpr int KT = Ops::W / R;
  const int64_t D = st.p.headDim;
  const int64_t full = D / Ops::W;
  V acc[R * KT];
  for (int i = 0; i < R * KT; ++i) acc[i] = Ops::zero();
  int64_t off = 0;
  for (int64_t i = 0; i < full; ++i, off += Ops::W) {
    V qv[R];
    for (int r = 0; r < R; ++r) qv[r] = Ops::load(q + r * st.queryStride + off);
    for (int k = 0; k < KT; ++k) {
      const V kv = Ops::load(keys[k] + off);
      for (int r = 0; r < R; ++r) acc[r * KT + k] = Ops::fmadd(qv[r], kv, acc[r * KT + k]);
    }
  }
  if (off < D) {  // queries are zero-padded; keys are read only up to D
    const typename Ops::Mask tail = Ops::tailMask(D - off);
    V qv[R];
    for (int r = 0; r < R; ++r) qv[r] = Ops::load(q + r * st.queryStride + off);
    for (int k = 0; k < KT; ++k) {
      const V kv = Ops::loadMasked(keys[k] + off, tail);
      for (int r = 0; r < R; ++r) acc[r * KT + k] = Ops::fmadd(qv[r], kv, acc[r * KT + k]);
    }
  }
  Ops::template storeTile<R>(Ops::sumLanes(acc), dst, kKeyBlock);
}

// Scores of rows [i, i + R) against keys [j0, j0 + count) of `seg`; a tile
// that runs past the last key repeats it and its extra columns are ignored.
template <class Ops, int R>
KILN_ATTENTION_TARGET inline void scoreRows(const UnitState& st, const KeySegment& seg, int64_t i, int64_t j0,
                                            int64_t count) {
  constexpr int KT = Ops::W / R;
  const float* keys[KT];
  for (int64_t jt = 0; jt < count; jt += KT) {
    for (int k = 0; k < KT; ++k)
      keys[k] = seg.keys.row(st.u.batch, st.u.kvHead, std::min(jt + k, count - 1) + j0 - seg.begin);
    scoreTile<Ops, R>(st, st.queries + i * st.queryStride, keys, st.scores + i * kKeyBlock + jt);
  }
}

// The keys of [j0, j0 + count) that rows [i, i + n) see, counted from j0.
inline int64_t visibleIn(const UnitState& st, int64_t i, int64_t n, int64_t j0, int64_t count) {
  int64_t visible = 0;
  for (int64_t r = i; r < i + n; ++r)
    visible = std::max(visible, std::clamp(st.row[r].limit - j0, int64_t{0}, count));
  return visible;
}

template <class Ops, int R>
KILN_ATTENTION_TARGET inline int64_t scoreRowTiles(const UnitState& st, const KeySegment& seg, int64_t i,
                                                   int64_t j0, int64_t count) {
  for (; i + R <= st.rows; i += R)
    if (const int64_t visible = visibleIn(st, i, R, j0, count); visible > 0)
      scoreRows<Ops, R>(st, seg, i, j0, visible);
  return i;
}

// The mask's values for keys [j0, j0 + valid) added to one row's scores.
template <class Ops>
KILN_ATTENTION_TARGET inline void addMask(const AttentionProblem& p, const float* maskRow, int64_t j0,
                                          int64_t valid, float* s) {
  const int64_t stride = p.maskStride[3];
  const float* m = maskRow + j0 * stride;
  int64_t j = 0;
  if (stride == 1)
    for (; j + Ops::W <= valid; j += Ops::W) Ops::store(s + j, Ops::add(Ops::load(s + j), Ops::load(m + j)));
  for (; j < valid; ++j) s[j] += m[j * stride];
}

// Online softmax of one row over a block: turns its scores into weights
// exp(score - running max), zero past the visible keys, and rescales the
// running sum; row.alpha is the factor for the accumulator.
template <class Ops>
KILN_ATTENTION_TARGET inline void softmaxRow(const UnitState& st, int64_t i, int64_t j0, int64_t count) {
  using V = typename Ops::V;
  RowState& row = st.row[i];
  float* s = st.scores + i * kKeyBlock;
  const int64_t valid = std::clamp(row.limit - j0, int64_t{0}, count);
  const int64_t width = (count + Ops::W - 1) / Ops::W * Ops::W;
  float newMax = kBlocked;
  if (valid > 0) {
    if (row.maskRow) addMask<Ops>(st.p, row.maskRow, j0, valid, s);
    for (int64_t j = valid; j < width; ++j) s[j] = kBlocked;
    V highest = Ops::broadcast(kBlocked);
    for (int64_t j = 0; j < valid; j += Ops::W) highest = Ops::max(highest, Ops::load(s + j));
    newMax = std::max(row.max, Ops::reduceMax(highest));
  }
  if (newMax == kBlocked) {  // no visible key here, or none unmasked so far: the row is unchanged
    for (int64_t j = 0; j < width; j += Ops::W) Ops::store(s + j, Ops::zero());
    row.alpha = 1;
    row.valid = 0;
    return;
  }
  row.alpha = std::exp(row.max - newMax);
  const V shift = Ops::broadcast(newMax);
  V total = Ops::zero();
  for (int64_t j = 0; j < width; j += Ops::W) {
    const V weight = Ops::exp(Ops::sub(Ops::load(s + j), shift));
    Ops::store(s + j, weight);
    total = Ops::add(total, weight);
  }
  row.sum = row.sum * row.alpha + Ops::reduceSum(total);
  row.max = newMax;
  row.valid = valid;
}

// acc[r] = acc[r] * alpha[r] + sum_j weight[r][j] * value[j] for NC vectors
// of the value dim from column `col` (the last of them partial if Masked).
template <class Ops, int R, int NC, bool Masked>
KILN_ATTENTION_TARGET inline void accumulateColumns(const UnitState& st, int64_t i, const float* values,
                                                    int64_t valueRowStride, int64_t count, int64_t col,
                                                    typename Ops::Mask mask) {
  using V = typename Ops::V;
  V acc[R][NC];
  for (int r = 0; r < R; ++r) {
    const V alpha = Ops::broadcast(st.row[i + r].alpha);
    for (int c = 0; c < NC; ++c)
      acc[r][c] = Ops::mul(Ops::load(st.acc + (i + r) * st.valueStride + col + c * Ops::W), alpha);
  }
  const float* weights = st.scores + i * kKeyBlock;
  for (int64_t j = 0; j < count; ++j) {
    const float* value = values + j * valueRowStride + col;
    V v[NC];
    for (int c = 0; c < NC; ++c)
      v[c] = Masked ? Ops::loadMasked(value + c * Ops::W, mask) : Ops::load(value + c * Ops::W);
    for (int r = 0; r < R; ++r) {
      const V w = Ops::broadcast(weights[r * kKeyBlock + j]);
      for (int c = 0; c < NC; ++c) acc[r][c] = Ops::fmadd(w, v[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < NC; ++c) Ops::store(st.acc + (i + r) * st.valueStride + col + c * Ops::W, acc[r][c]);
}

template <class Ops, int R>
KILN_ATTENTION_TARGET inline int64_t accumulateRowTiles(const UnitState& st, const KeySegment& seg, int64_t i,
                                                        int64_t j0) {
  const int64_t Dv = st.p.valueDim;
  const int64_t full = Dv / Ops::W;
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
    const typename Ops::Mask all = Ops::tailMask(Ops::W);
    int64_t c = 0;
    for (; c + Ops::kValueColumns <= full; c += Ops::kValueColumns)
      accumulateColumns<Ops, R, Ops::kValueColumns, false>(st, i, values, stride, count, c * Ops::W, all);
    for (; c < full; ++c) accumulateColumns<Ops, R, 1, false>(st, i, values, stride, count, c * Ops::W, all);
    if (full * Ops::W < Dv)
      accumulateColumns<Ops, R, 1, true>(st, i, values, stride, count, full * Ops::W,
                                         Ops::tailMask(Dv - full * Ops::W));
  }
  return i;
}

// Keys [j0, j0 + count) of one segment, count <= kKeyBlock.
template <class Ops>
KILN_ATTENTION_TARGET inline void attendBlock(const UnitState& st, const KeySegment& seg, int64_t j0,
                                              int64_t count) {
  int64_t i = 0;
  if constexpr (Ops::W >= 4) i = scoreRowTiles<Ops, 4>(st, seg, i, j0, count);
  if constexpr (Ops::W >= 2) i = scoreRowTiles<Ops, 2>(st, seg, i, j0, count);
  scoreRowTiles<Ops, 1>(st, seg, i, j0, count);
  for (int64_t r = 0; r < st.rows; ++r) softmaxRow<Ops>(st, r, j0, count);
  i = accumulateRowTiles<Ops, 4>(st, seg, 0, j0);
  i = accumulateRowTiles<Ops, 2>(st, seg, i, j0);
  accumulateRowTiles<Ops, 1>(st, seg, i, j0);
}

template <class Ops>
KILN_ATTENTION_TARGET void attendUnit(const AttentionProblem& p, const AttentionUnit& u, float* scratch) {
  RowState rows[kMaxUnitRows];
  UnitState st{p, u, u.rowEnd - u.rowBegin, padded(p.headDim), padded(p.valueDim), nullptr, nullptr, nullptr, rows};
  st.queries = scratch;
  st.scores = st.queries + kMaxUnitRows * st.queryStride;
  st.acc = st.scores + kMaxUnitRows * kKeyBlock;

  int64_t lastVisible = 0;
  for (int64_t i = 0; i < st.rows; ++i) {
    const int64_t rho = u.rowBegin + i;
    const int64_t s = rho / p.group, h = u.kvHead * p.group + rho % p.group;
    loadQueryRow(p, u.batch, h, s, st.queries + i * st.queryStride);
    RowState& row = rows[i];
    row.limit = p.causal ? std::clamp(s + p.keys - p.seq + 1, int64_t{0}, p.keys) : p.keys;
    if (p.mask)
      row.maskRow = p.mask + u.batch * p.maskStride[0] + h * p.maskStride[1] + s * p.maskStride[2];
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
      attendBlock<Ops>(st, seg, j0, std::min(kKeyBlock, end - j0));
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
