// latent_attention: grouped-query (or multi-head) attention rewritten into
// multi-head latent attention, after TransMLA (Meng et al., arXiv 2502.07864;
// docs/latent-attention.md). Each attention op whose q, k and v are linear
// projections of one activation becomes a latent_attention op fed by one
// down-projection (the cached latent row per token) with the up-projections
// as its operands; the KV cache becomes one latent cache per layer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "passes/latent_compression.h"
#include "passes/pass.h"

namespace kiln {

// How the latent is made (docs/latent-attention.md). Exact: W_DKV stacks
// W_V and W_K (the rope keys kept whole as the rope part), so the rank is
// that of the original cache and outputs equal the original's up to
// rounding. Rank: a latent of `rank` plus `ropeDims` rope dims (RoRoPE, then
// the joint PCA). Compress: rank + rope dims = the original cache's width /
// `factor`, the rope dims picked by the pass.
struct LatentMode {
  enum class Kind : uint8_t { Exact, Rank, Compress } kind = Kind::Exact;
  int64_t rank = 0;
  std::optional<int64_t> ropeDims;
  double factor = 0;
  DType cacheType = DType::F32;  // ",cache=bf16" after any mode: a bf16 latent cache
};

struct LatentAttentionReport {
  int64_t layers = 0;                  // attention ops rewritten
  int64_t kvBytesPerTokenBefore = 0;   // over the rewritten layers with a KV cache, the original cache
  int64_t kvBytesPerTokenAfter = 0;    // and the latent one
  int64_t rank = 0, ropeDims = 0;      // of the last layer rewritten (compress=F splits each layer its own way)
  bool calibrated = false;             // whether calibration data shaped the latent
  std::vector<std::string> skipped;    // per attention op left alone: its location and why
};

// Moments of each requested value (a layer's input x, [..., D]) over the
// calibration data; set by `kiln compile --calibration-dir`.
using Calibrate = std::function<Expected<std::vector<ActivationMoments>>(const Graph& graph,
                                                                        const std::vector<ValueId>& values)>;

struct LatentAttentionOptions {
  // Set by --latent-attention: `kiln compile` then runs the pass after
  // attention fusion. Run by name without it, the pass is exact.
  std::optional<LatentMode> mode;
  // The compressing modes' statistics; unset: the weights alone.
  Calibrate calibrate;
  // Filled when set.
  std::shared_ptr<LatentAttentionReport> report;
};

// "exact", "rank=R[,rope=D_R]" or "compress=F", each optionally followed by
// ",cache=bf16"; an error names what was given.
Expected<LatentMode> parseLatentMode(std::string_view text);

std::unique_ptr<Pass> createLatentAttention(LatentAttentionOptions options = {});

}  // namespace kiln
