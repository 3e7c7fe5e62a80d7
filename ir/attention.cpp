#include "ir/attention.h"

#include <optional>
#include <string>

#include "ir/latent_attention.h"

namespace kiln::attention {
namespace {

std::optional<Layout> layoutNamed(const std::string& name) {
  if (name == "bhsd") return Layout::BHSD;
  if (name == "bsd") return Layout::BSD;
  if (name == "bsd_packed") return Layout::BSDPacked;
  return std::nullopt;
}

}  // namespace

Expected<Attrs> readAttrs(const Attributes& attrs) {
  Attrs a;
  a.heads = attrs.getInt("heads");
  a.kvHeads = attrs.getInt("kv_heads");
  a.scale = attrs.getFloat("scale", 1.0);
  a.causal = attrs.getBool("causal");
  a.window = attrs.getInt("window", 0);
  if (a.window < 0 || (a.window > 0 && !a.causal))
    return Status::error("window = ", a.window, ": a sliding window is a positive count of keys, on a causal mask");
  if (a.heads <= 0 || a.kvHeads <= 0)
    return Status::error("heads and kv_heads must be positive, got heads = ", a.heads, ", kv_heads = ", a.kvHeads);
  if (a.heads % a.kvHeads != 0)
    return Status::error("heads (", a.heads, ") is not a multiple of kv_heads (", a.kvHeads, ")");
  const std::string rope = attrs.getString("rope", "none");
  if (rope != "none" && rope != "half" && rope != "interleaved")
    return Status::error("unknown rope \"", rope, "\" (expected none, half or interleaved)");
  a.rope = rope != "none";
  a.ropeInterleaved = rope == "interleaved";
  a.ropeDims = attrs.getInt("rope_dims", 0);
  if (a.ropeDims < 0 || a.ropeDims % 2 != 0 || (a.ropeDims > 0 && !a.rope))
    return Status::error("rope_dims = ", a.ropeDims, ": an even count of dims, with rope = \"half\" or \"interleaved\"");
  const std::string maskLayout = attrs.getString("mask_layout", "scores");
  if (maskLayout != "scores" && maskLayout != "key_padding")
    return Status::error("unknown mask_layout \"", maskLayout, "\" (expected scores or key_padding)");
  a.keyPaddingMask = maskLayout == "key_padding";
  const std::string qkvLayout = attrs.getString("qkv_layout", "bhsd");
  const std::optional<Layout> qkv = layoutNamed(qkvLayout);
  if (!qkv) return Status::error("unknown qkv_layout \"", qkvLayout, "\" (expected bhsd, bsd or bsd_packed)");
  a.qkvLayout = *qkv;
  const std::string outLayout = attrs.getString("out_layout", "bhsd");
  const std::optional<Layout> out = layoutNamed(outLayout);
  if (!out || *out == Layout::BSDPacked)
    return Status::error("unknown out_layout \"", outLayout, "\" (expected bhsd or bsd)");
  a.outLayout = *out;
  return a;
}

std::optional<KvValues> kvValues(const Op& op) {
  const auto operand = [&](size_t slot) { return slot < op.operands.size() ? op.operands[slot] : kNoValue; };
  if (op.is(OpKind::LatentAttention) && op.results.size() == latent::kNumResults) {
    const ValueId past = operand(latent::kPast);
    if (past == kNoValue) return std::nullopt;
    return KvValues{past, kNoValue, op.results[latent::kPresent], kNoValue};
  }
  if (!op.is(OpKind::Attention) || op.results.size() != kNumResults) return std::nullopt;
  KvValues kv{operand(kPastK), operand(kPastV), op.results[kPresentK], op.results[kPresentV]};
  if (kv.pastKey == kNoValue || kv.pastValue == kNoValue || kv.pastKey == kv.pastValue) return std::nullopt;
  return kv;
}

}  // namespace kiln::attention
