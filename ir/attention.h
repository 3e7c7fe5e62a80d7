// The attention op's operands, results and attributes, typed: what inference,
// the passes, the cost model and every device's kernel read, declared once.
#pragma once

#include <cstddef>
#include <cstdint>

#include <optional>

#include "ir/attributes.h"
#include "ir/graph.h"
#include "ir/status.h"

namespace kiln::attention {

// Operand slots; k and v are absent (_) when qkv_layout is bsd_packed.
enum Operand : size_t { kQ, kK, kV, kMask, kCos, kSin, kPastK, kPastV, kInvFreq, kNumOperands };
// Results: out, and with a KV cache the keys and values through this step.
enum Result : size_t { kOut, kPresentK, kPresentV, kNumResults };

// bhsd: [B, H, S, D]; bsd: [B, S, H*D]; bsd_packed (q only): [B, S, (H + 2*Hkv)*D]
// holding each token's q | k | v rows.
enum class Layout : uint8_t { BHSD, BSD, BSDPacked };

struct Attrs {
  int64_t heads = 0, kvHeads = 0;
  double scale = 1.0;
  bool causal = false;
  int64_t window = 0;           // > 0 (causal only): a query sees only its last `window` keys
  bool rope = false;            // rope = "half" or "interleaved": RoPE on q and k
  bool ropeInterleaved = false;  // "interleaved" (GPT-J) turns the pairs (2i, 2i+1); "half" (i, i + W/2)
  int64_t ropeDims = 0;         // rope_dims: RoPE on the first this many dims of a head (partial
                                // rotary, Phi and GPT-NeoX); 0: the whole head
  bool keyPaddingMask = false;  // mask_layout = "key_padding": mask [B, T], nonzero = attend
  Layout qkvLayout = Layout::BHSD, outLayout = Layout::BHSD;
};

// The first key a query sees whose visible keys end before `end`: the
// sliding window's start, or 0.
inline int64_t firstVisibleKey(const Attrs& a, int64_t end) {
  return a.window > 0 && end > a.window ? end - a.window : 0;
}

// The dims of a head that RoPE turns: rope_dims, or the whole head.
inline int64_t ropeWidth(const Attrs& a, int64_t headDim) { return a.ropeDims > 0 ? a.ropeDims : headDim; }

// RoPE turns dim d (< width) with its partner: y[d] = x[d] cos[d] + sign
// x[partner] sin[d]. Rotate-half pairs d with d +- width/2, interleaved
// with d ^ 1; the first of a pair takes -x[partner].
inline int64_t ropePartner(bool interleaved, int64_t d, int64_t width) {
  if (interleaved) return d ^ 1;
  return d < width / 2 ? d + width / 2 : d - width / 2;
}
inline bool ropeNegatesPartner(bool interleaved, int64_t d, int64_t width) {
  return interleaved ? d % 2 == 0 : d < width / 2;
}
// The inv_freq entry of dim d: frequency i turns (i, i + width/2) or (2i, 2i+1).
inline int64_t ropeFrequency(bool interleaved, int64_t d, int64_t width) {
  return interleaved ? d / 2 : d % (width / 2);
}

// Reads and checks the attributes; the error names the attribute at fault.
Expected<Attrs> readAttrs(const Attributes& attrs);

// The KV-cache values of an attention op: its past_k and past_v operands
// and its present_k and present_v results; of a latent_attention op, its
// past operand and present result as the keys, no values (kNoValue).
// nullopt for another op, or one without its pasts or present results.
struct KvValues {
  ValueId pastKey = kNoValue, pastValue = kNoValue, presentKey = kNoValue, presentValue = kNoValue;
};
std::optional<KvValues> kvValues(const Op& op);

}  // namespace kiln::attention
