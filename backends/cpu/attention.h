// The CPU backend's fused attention kernel (the `attention` op of
// ir/ops/fused.cpp), flash style: per (batch, kv head, block of query rows)
// it streams over blocks of keys with an online softmax (running max and
// sum, the accumulator rescaled per block) and never holds the whole score
// matrix. Query heads of one GQA/MQA group are rows of the same block and
// read their kv head in place; RoPE is applied as rows are loaded; causal
// key blocks past a query block are skipped; a decode step (few query rows,
// many keys) is split over key chunks that are merged at the end.
//
// attention.cpp turns a KernelContext into an AttentionProblem (declining
// what it does not cover, so the reference kernel runs), writes the new key
// and value rows where they belong (KV cache, present_k/present_v, or roped
// scratch), and runs the units on the OpenMP threads; the per-unit kernel is
// a template over the vector traits of vector_simd.h (attention_block.h),
// built once per instruction set with the vector kernels.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "backends/cpu/isa.h"
#include "runtime/kernel.h"

namespace kiln::cpu {

// Runs the attention op with the kernels of `isa` (which this CPU must
// support); nullopt when the case is not covered (non-f32 q, a float64
// mask, an empty head dim). The registered kernel calls it with
// activeIsa(); tests call it once per instruction set.
std::optional<Status> runAttention(const KernelContext& ctx, Isa isa);

// Rows of one operand per (batch, head): row r of head h in batch b starts
// at data + b * batchStride + h * headStride + r * rowStride.
struct HeadRows {
  const float* data = nullptr;
  int64_t batchStride = 0, headStride = 0, rowStride = 0;
  const float* row(int64_t b, int64_t h, int64_t r) const {
    return data + b * batchStride + h * headStride + r * rowStride;
  }
};

// Keys [begin, end) of every (batch, kv head) stored alike: row j at
// keys.row(b, kvHead, j - begin). The past and the new keys may live apart.
struct KeySegment {
  HeadRows keys, values;
  int64_t begin = 0, end = 0;
};

// Everything a unit needs, on concrete shapes (f32 throughout).
struct AttentionProblem {
  int64_t batch = 0, heads = 0, kvHeads = 0, group = 1;
  int64_t seq = 0;       // S: query rows per head
  int64_t keys = 0;      // L: past + new keys
  int64_t headDim = 0;   // D (queries and keys)
  int64_t valueDim = 0;  // Dv
  bool causal = false;   // query s sees keys [0, s + L - S]
  int64_t window = 0;    // > 0: and of those only the last `window`

  HeadRows queries;
  float queryScale = 1;  // the op's scale, folded into the loaded queries
  // RoPE of the queries and new keys: cos/sin rows of ropeWidth at
  // table + b * ropeBatchStride + s * ropeWidth; null without RoPE.
  const float* ropeCos = nullptr;
  const float* ropeSin = nullptr;
  int64_t ropeBatchStride = 0;
  int64_t ropeWidth = 0;  // the dims RoPE turns, rows of the tables (partial rotary: < D)
  bool ropeInterleaved = false;  // pairs (2i, 2i+1) rather than (i, i + ropeWidth/2)

  KeySegment segments[2];
  int segmentCount = 0;

  // Additive mask (0 attends, -inf blocks) over [B, Hq, S, L]: element at
  // mask + b*maskStride[0] + h*maskStride[1] + s*maskStride[2] + j*maskStride[3];
  // null without a mask.
  const float* mask = nullptr;
  int64_t maskStride[4] = {0, 0, 0, 0};
  // With a key-padding mask, per batch row: the keys from here on are all
  // padding, which no query sees, so their blocks are skipped; null without.
  const int64_t* keyEnds = nullptr;

  float* out = nullptr;
  int64_t outBatchStride = 0, outHeadStride = 0, outRowStride = 0;
};

// Query rows of one kv head are numbered rho = s * group + (h mod group), so
// a block of consecutive rows holds the heads of a group at the same
// position (one causal limit) before the next position.
struct AttentionUnit {
  int64_t batch = 0, kvHead = 0;
  int64_t rowBegin = 0, rowEnd = 0;  // rho range, at most kMaxUnitRows
  int64_t keyBegin = 0, keyEnd = 0;  // this unit's share of the keys
  // Null: the unit covers every key and writes `out`. Else the unit writes
  // per row its running max, sum and unnormalised accumulator here
  // (partialRowFloats(Dv) floats a row) for the merge.
  float* partial = nullptr;
};

inline constexpr int64_t kMaxUnitRows = 32;
inline constexpr int64_t kKeyBlock = 64;
inline constexpr int64_t kPadding = 16;  // widest vector, in floats
inline constexpr int64_t padded(int64_t n) { return (n + kPadding - 1) / kPadding * kPadding; }
inline constexpr int64_t partialRowFloats(int64_t valueDim) { return 2 + padded(valueDim); }
// Per-thread scratch of a unit: queries, one block of scores, accumulators,
// and one block of keys transposed ([D][kKeyBlock]).
inline int64_t unitScratchFloats(const AttentionProblem& p) {
  return kMaxUnitRows * (padded(p.headDim) + kKeyBlock + padded(p.valueDim)) + p.headDim * kKeyBlock;
}

// For kernels that build an AttentionProblem of their own
// (latent_attention.cpp). The mask of p's scores [B, H, S, L] as additive
// floats (a false bool or a zero key-padding entry is -inf), in
// storage.values or, an f32 scores mask, read in place, and for key padding
// each batch row's end of real keys in storage.keyEnds; false for what the reference must take
// (a float64 mask, whose values may lie beyond float's range; key padding
// without a mask). Then p's units on the threads, key chunks merged.
struct MaskStorage {
  std::vector<float> values;
  std::vector<int64_t> keyEnds;
};
bool loadAttentionMask(const Tensor* mask, bool keyPadding, MaskStorage& storage, AttentionProblem& p);
void runAttentionProblem(const AttentionProblem& p, Isa isa);

// Query s of head h in batch b, roped and scaled, zero-padded to padded(D).
void loadQueryRow(const AttentionProblem& p, int64_t b, int64_t h, int64_t s, float* dst);

// One unit on one thread; `scratch` holds unitScratchFloats(p) floats,
// 64-byte aligned. One per instruction set (attention_block.h), in the
// table kernelsFor(isa) returns (vector_isa.h).
using AttendUnitFn = void (*)(const AttentionProblem& p, const AttentionUnit& unit, float* scratch);

}  // namespace kiln::cpu
