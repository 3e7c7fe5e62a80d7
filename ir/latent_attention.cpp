#include "ir/latent_attention.h"

#include <string>

namespace kiln::latent {

Expected<Attrs> readAttrs(const Attributes& attrs) {
  Attrs a;
  a.heads = attrs.getInt("heads");
  a.rank = attrs.getInt("rank");
  a.ropeDims = attrs.getInt("rope_dims", 0);
  a.scale = attrs.getFloat("scale", 1.0);
  a.causal = attrs.getBool("causal");
  if (a.heads <= 0) return Status::error("heads must be positive, got ", a.heads);
  if (a.rank < 0 || a.ropeDims < 0)
    return Status::error("rank and rope_dims must not be negative, got rank = ", a.rank, ", rope_dims = ",
                         a.ropeDims);
  const std::string maskLayout = attrs.getString("mask_layout", "scores");
  if (maskLayout != "scores" && maskLayout != "key_padding")
    return Status::error("unknown mask_layout \"", maskLayout, "\" (expected scores or key_padding)");
  a.keyPaddingMask = maskLayout == "key_padding";
  const std::string cache = attrs.getString("cache_dtype", "f32");
  if (cache != "f32" && cache != "bf16")
    return Status::error("unknown cache_dtype \"", cache, "\" (expected f32 or bf16)");
  a.cacheType = cache == "bf16" ? DType::BF16 : DType::F32;
  const std::string rope = attrs.getString("rope", "none");
  if (rope == "half") a.rope = Pairing::Half;
  else if (rope == "interleaved") a.rope = Pairing::Interleaved;
  else if (rope != "none")
    return Status::error("unknown rope \"", rope, "\" (expected none, half or interleaved)");
  a.ropeFrequencies = attrs.getInts("rope_frequencies");
  if (a.rope == Pairing::None) {
    if (a.ropeDims != 0 || !a.ropeFrequencies.empty())
      return Status::error("rope = \"none\" takes no rope dims: rope_dims = ", a.ropeDims, ", ",
                           a.ropeFrequencies.size(), " rope_frequencies");
    return a;
  }
  if (a.ropeDims == 0 || a.ropeDims % 2 != 0)
    return Status::error("rope_dims must be even and positive with rope = \"", rope, "\", got ", a.ropeDims);
  if (static_cast<int64_t>(a.ropeFrequencies.size()) * 2 != a.ropeDims)
    return Status::error("rope_frequencies must have rope_dims / 2 = ", a.ropeDims / 2, " entries, got ",
                         a.ropeFrequencies.size());
  for (int64_t f : a.ropeFrequencies)
    if (f < 0) return Status::error("rope_frequencies must not be negative, got ", f);
  return a;
}

TableColumns tableColumns(const Attrs& a, size_t pair, int64_t tableWidth) {
  const int64_t f = a.ropeFrequencies[pair];
  if (a.rope == Pairing::Interleaved) return {2 * f, 2 * f + 1};
  return {f, f + tableWidth / 2};
}

TableColumns ropeSlots(const Attrs& a, size_t pair) {
  const auto p = static_cast<int64_t>(pair);
  if (a.rope == Pairing::Interleaved) return {2 * p, 2 * p + 1};
  return {p, p + a.ropeDims / 2};
}

}  // namespace kiln::latent
