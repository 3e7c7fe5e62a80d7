// The latent_attention op's operands, results and attributes, typed: multi-head
// latent attention (DeepSeek-V2's MLA) as the latent_attention pass makes it
// from grouped-query attention (docs/latent-attention.md). What inference, the
// pass, the cost model and every device's kernel read, declared once.
//
// Per token the cache holds one row of r + d_R values: the latent c (r) and
// the rope key k_R (d_R, stored after RoPE), shared by all heads. Head h, with
// the model's own query q[h], scores key t as
// scale * ((q[h] W_UK[h]) . c_t + rope(q[h] W_QR[h]) . k_R[t]) and returns
// W_UV[h]^T (sum_t p_t c_t): keys and values are never expanded when the
// kernel takes the query into the latent space (q[h] W_UK[h]) and applies
// W_UV after the weighted sum.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ir/attributes.h"
#include "ir/dtype.h"
#include "ir/status.h"

namespace kiln::latent {

// q: [B, S, H * d_q], each head's query as the model projects it.
// latent: [B, S, r + d_R], each new token's c | k_R (before RoPE).
// key_up: [H, d_q, r] (W_UK; absent: no score from the latent);
// value_up: [H, r, d_v] (W_UV); rope_up: [H, d_q, d_R] (W_QR, the rope
// query before RoPE; given exactly when d_R > 0).
// mask, cos, sin, inv_freq as the attention op takes them (cos/sin tables are
// the model's [B, 1, S, head_dim]; rope_frequencies picks their columns).
// past: [B, 1, P, r + d_R], the cached rows.
enum Operand : size_t { kQ, kLatent, kKeyUp, kValueUp, kMask, kCos, kSin, kPast, kInvFreq, kRopeUp, kNumOperands };
// out: [B, S, H * d_v]; present: [B, 1, P + S, r + d_R]. past and present
// hold the rows in cache_dtype (bf16 halves the cache; rows are rounded as
// they are appended and read back widened).
enum Result : size_t { kOut, kPresent, kNumResults };

// How the rope dims pair up: rotate-half ([re..., im...]) or interleaved
// ([re0, im0, re1, im1, ...]); the source model's pairing, kept.
enum class Pairing : uint8_t { None, Half, Interleaved };

struct Attrs {
  int64_t heads = 0, rank = 0, ropeDims = 0;  // H, r, d_R
  double scale = 1.0;
  bool causal = false;
  bool keyPaddingMask = false;  // mask_layout = "key_padding": mask [B, P + S], nonzero = attend
  DType cacheType = DType::F32;  // cache_dtype: the rows' dtype in past and present (f32 or bf16)
  Pairing rope = Pairing::None;
  // One per rope pair (d_R / 2): the frequency it turns at, an index into
  // inv_freq, or into the cos/sin tables' pairs (column f and f + D/2 for
  // half, 2f and 2f + 1 for interleaved, D the tables' width).
  std::vector<int64_t> ropeFrequencies;
};

// Reads and checks the attributes; the error names the attribute at fault.
Expected<Attrs> readAttrs(const Attributes& attrs);

// The cos/sin table columns of rope pair `pair`'s two elements.
struct TableColumns {
  int64_t re = 0, im = 0;
};
TableColumns tableColumns(const Attrs& a, size_t pair, int64_t tableWidth);

// Where rope pair `pair`'s two elements sit within the d_R rope dims.
TableColumns ropeSlots(const Attrs& a, size_t pair);

}  // namespace kiln::latent
