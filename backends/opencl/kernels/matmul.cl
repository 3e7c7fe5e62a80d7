// c = act(op(a) @ op(b) + bias) + residual over broadcast batches: one
// work-group of 16x16 items per 64x64 tile of c, each item accumulating a
// 4x4 block of it in registers from 64x16 and 16x64 tiles of a and b staged
// in local memory (zero-padded at the edges, so any M, N, K works).
#define TILE 64
#define TILE_K 16
#define GROUP 16
#define BLOCK (TILE / GROUP)
// Products are summed in chunks of CHUNK_K along k, each chunk's sum then
// added to the total: the two-level order keeps the rounding error of long
// dot products near the CPU backend's (kGemmChunkK, backends/cpu/gemm.h),
// where one running sum over k = 3072 drifts past 1e-4 on GPT-2's logits.
#define CHUNK_K 128

// All longs, so the host's struct lays out the same (matmul.cpp).
typedef struct {
  long M, N, K, transA, transB, activation;
  // How bias and residual are read: 0 absent, 1 a row of N (by column),
  // 2 the result's shape (by element), 3 broadcast (strides over outDims).
  long biasMode, residualMode;
  long batchDims[4];  // the result's batch dims, padded on the left with 1
  long aBatchStrides[4], bBatchStrides[4];  // elements per step of each batch dim (0: broadcast)
  long outDims[KILN_MAX_RANK];  // the result's dims, padded on the left with 1
  long biasStrides[KILN_MAX_RANK], residualStrides[KILN_MAX_RANK];
} MatmulShape;

inline long epilogueOffset(long mode, const long* strides, const long* dims, long element, long column) {
  if (mode == 1) return column;
  if (mode == 2) return element;
  long at = 0;
  for (int d = KILN_MAX_RANK - 1; d >= 0; --d) {
    at += (element % dims[d]) * strides[d];
    element /= dims[d];
  }
  return at;
}

__kernel __attribute__((reqd_work_group_size(GROUP, GROUP, 1)))
void matmul(__global const float* a, long aOffset, __global const float* b, long bOffset,
            __global const float* bias, long biasOffset, __global const float* residual, long residualOffset,
            __global float* c, long cOffset, MatmulShape s) {
  __local float aTile[TILE_K][TILE];
  __local float bTile[TILE_K][TILE];
  const int tx = get_local_id(0), ty = get_local_id(1);
  const int item = ty * GROUP + tx;
  const long n0 = get_group_id(0) * TILE, m0 = get_group_id(1) * TILE;
  const long batch = get_global_id(2);
  long rest = batch;
  for (int d = 3; d >= 0; --d) {
    const long index = rest % s.batchDims[d];
    rest /= s.batchDims[d];
    aOffset += index * s.aBatchStrides[d];
    bOffset += index * s.bBatchStrides[d];
  }
  float acc[BLOCK][BLOCK], part[BLOCK][BLOCK];
  for (int i = 0; i < BLOCK; ++i)
    for (int j = 0; j < BLOCK; ++j) acc[i][j] = part[i][j] = 0.0f;

  for (long k0 = 0; k0 < s.K; k0 += TILE_K) {
    // Neighbouring items load neighbouring addresses, whichever way a and b lie.
    for (int l = 0; l < TILE * TILE_K / (GROUP * GROUP); ++l) {
      const int e = item + l * GROUP * GROUP;
      const int am = s.transA ? e % TILE : e / TILE_K, ak = s.transA ? e / TILE : e % TILE_K;
      const long m = m0 + am, k = k0 + ak;
      aTile[ak][am] = m < s.M && k < s.K ? a[aOffset + (s.transA ? k * s.M + m : m * s.K + k)] : 0.0f;
      const int bn = s.transB ? e / TILE_K : e % TILE, bk = s.transB ? e % TILE_K : e / TILE;
      const long n = n0 + bn, kb = k0 + bk;
      bTile[bk][bn] = n < s.N && kb < s.K ? b[bOffset + (s.transB ? n * s.K + kb : kb * s.N + n)] : 0.0f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int k = 0; k < TILE_K; ++k) {
      float av[BLOCK], bv[BLOCK];
      for (int i = 0; i < BLOCK; ++i) av[i] = aTile[k][ty + GROUP * i];
      for (int j = 0; j < BLOCK; ++j) bv[j] = bTile[k][tx + GROUP * j];
      for (int i = 0; i < BLOCK; ++i)
        for (int j = 0; j < BLOCK; ++j) part[i][j] = fma(av[i], bv[j], part[i][j]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if ((k0 + TILE_K) % CHUNK_K == 0 || k0 + TILE_K >= s.K) {
      for (int i = 0; i < BLOCK; ++i)
        for (int j = 0; j < BLOCK; ++j) {
          acc[i][j] += part[i][j];
          part[i][j] = 0.0f;
        }
    }
  }

  for (int i = 0; i < BLOCK; ++i) {
    const long m = m0 + ty + GROUP * i;
    for (int j = 0; j < BLOCK; ++j) {
      const long n = n0 + tx + GROUP * j;
      if (m >= s.M || n >= s.N) continue;
      const long element = (batch * s.M + m) * s.N + n;
      float v = acc[i][j];
      if (s.biasMode) v += bias[biasOffset + epilogueOffset(s.biasMode, s.biasStrides, s.outDims, element, n)];
      v = k_activate((int)s.activation, v);
      if (s.residualMode)
        v += residual[residualOffset + epilogueOffset(s.residualMode, s.residualStrides, s.outDims, element, n)];
      c[cOffset + element] = v;
    }
  }
}
