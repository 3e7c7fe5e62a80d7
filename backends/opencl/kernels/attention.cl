// Fused attention (backends/opencl/attention.cpp), in two kernels on one
// queue: attention_append writes each (batch, kv head)'s key and value rows
// (the past at [0, P), the new tokens, k roped, at [P, L)) into the KV
// cache, the present results or scratch; attention_rows then runs one item
// per query row, flash-style: one pass over the visible keys with an online
// softmax (running max and sum, the value accumulator rescaled as the max
// grows), never materialising the scores. Head dims up to MAX_HEAD_DIM.
#define MAX_HEAD_DIM 256

// All longs, so the host's struct lays out the same. Strides are in
// elements; the head dim is contiguous.
typedef struct {
  long batch, heads, kvHeads, seq, newKeys, past, keys, headDim, valueDim, rowsPerHead;
  long causal, window, hasMask, rope, ropeWidth, copyPast, ropeInterleaved;
  long qStrides[3], kStrides[3], vStrides[3], outStrides[3];  // per batch, head, position
  long maskStrides[4];                                         // over [B, Hq, S, L]
  long ropeStrides[2];                                         // per batch, position: [.., ropeWidth] rows of cos and sin
} AttentionShape;

// RoPE of element d (below the turned width) of row x: x[d] cos +
// rotated(x)[d] sin; rotate-half turns (d, d +- width/2), interleaved the
// pairs (2i, 2i+1).
inline float roped(const __global float* x, long d, long width, long interleaved, float c, float s) {
  const long halfWidth = width / 2;
  const float rotated = interleaved    ? (d % 2 == 0 ? -x[d + 1] : x[d - 1])
                        : d < halfWidth ? -x[d + halfWidth]
                                        : x[d - halfWidth];
  return x[d] * c + rotated * s;
}

__kernel void attention_append(__global const float* k, long kOffset, __global const float* v, long vOffset,
                               __global const float* pastK, long pastKOffset, __global const float* pastV,
                               long pastVOffset, __global const float* cosTable, long cosOffset,
                               __global const float* sinTable, long sinOffset, __global float* keyRows,
                               long keyRowsOffset, __global float* valueRows, long valueRowsOffset,
                               AttentionShape s) {
  const long d = get_global_id(0), row = get_global_id(1), head = get_global_id(2);  // head: b * Hkv + h
  if (row >= s.keys) return;
  const long b = head / s.kvHeads, h = head % s.kvHeads;
  __global float* keyRow = keyRows + keyRowsOffset + (head * s.rowsPerHead + row) * s.headDim;
  __global float* valueRow = valueRows + valueRowsOffset + (head * s.rowsPerHead + row) * s.valueDim;
  if (row < s.past) {
    if (!s.copyPast) return;  // a KV cache holds its past in place
    if (d < s.headDim) keyRow[d] = pastK[pastKOffset + (head * s.past + row) * s.headDim + d];
    if (d < s.valueDim) valueRow[d] = pastV[pastVOffset + (head * s.past + row) * s.valueDim + d];
    return;
  }
  const long t = row - s.past;
  const __global float* key = k + kOffset + b * s.kStrides[0] + h * s.kStrides[1] + t * s.kStrides[2];
  if (d < s.headDim) {
    const long at = b * s.ropeStrides[0] + t * s.ropeStrides[1] + d;
    keyRow[d] = s.rope && d < s.ropeWidth ? roped(key, d, s.ropeWidth, s.ropeInterleaved, cosTable[cosOffset + at], sinTable[sinOffset + at])
                                          : key[d];
  }
  if (d < s.valueDim) valueRow[d] = v[vOffset + b * s.vStrides[0] + h * s.vStrides[1] + t * s.vStrides[2] + d];
}

__kernel void attention_rows(__global const float* q, long qOffset, __global const float* mask, long maskOffset,
                             __global const float* cosTable, long cosOffset, __global const float* sinTable,
                             long sinOffset, __global const float* keyRows, long keyRowsOffset,
                             __global const float* valueRows, long valueRowsOffset, __global float* out,
                             long outOffset, float scale, AttentionShape s) {
  const long i = get_global_id(0), h = get_global_id(1), b = get_global_id(2);
  if (i >= s.seq) return;
  const long D = s.headDim, Dv = s.valueDim;
  float query[MAX_HEAD_DIM], acc[MAX_HEAD_DIM];
  const __global float* x = q + qOffset + b * s.qStrides[0] + h * s.qStrides[1] + i * s.qStrides[2];
  for (long d = 0; d < D; ++d) {
    const long at = b * s.ropeStrides[0] + i * s.ropeStrides[1] + d;
    query[d] = s.rope && d < s.ropeWidth ? roped(x, d, s.ropeWidth, s.ropeInterleaved, cosTable[cosOffset + at], sinTable[sinOffset + at])
                                         : x[d];
  }
  for (long d = 0; d < Dv; ++d) acc[d] = 0.0f;
  const long kvHead = b * s.kvHeads + h / (s.heads / s.kvHeads);
  const __global float* keys = keyRows + keyRowsOffset + kvHead * s.rowsPerHead * D;
  const __global float* values = valueRows + valueRowsOffset + kvHead * s.rowsPerHead * Dv;
  // Causal: query i sits at position i + (L - S) of the keys.
  const long visible = s.causal ? clamp(i + (s.keys - s.seq) + 1, 0L, s.keys) : s.keys;
  const long first = s.window > 0 && visible > s.window ? visible - s.window : 0;
  const __global float* maskRow =
      mask + maskOffset + b * s.maskStrides[0] + h * s.maskStrides[1] + i * s.maskStrides[2];
  float highest = -INFINITY, total = 0.0f;
  for (long j = first; j < visible; ++j) {
    float dot = 0.0f;
    for (long d = 0; d < D; ++d) dot = fma(query[d], keys[j * D + d], dot);
    const float score = dot * scale + (s.hasMask ? maskRow[j * s.maskStrides[3]] : 0.0f);
    if (score == -INFINITY) continue;  // weight 0
    const float next = fmax(highest, score);
    const float rescale = exp(highest - next), weight = exp(score - next);
    total = total * rescale + weight;
    for (long d = 0; d < Dv; ++d) acc[d] = acc[d] * rescale + weight * values[j * Dv + d];
    highest = next;
  }
  __global float* y = out + outOffset + b * s.outStrides[0] + h * s.outStrides[1] + i * s.outStrides[2];
  // A row with every key masked out attends to nothing: zeros, not NaN.
  for (long d = 0; d < Dv; ++d) y[d] = highest == -INFINITY ? 0.0f : acc[d] / total;
}
