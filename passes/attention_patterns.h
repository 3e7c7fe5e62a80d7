// Dataflow matchers for the pieces exporters wrap around an attention core:
// scalar scale factors, rotate-half RoPE, repeat_kv, the past-K/V concat of a
// KV cache, and the semantic check that a mask is causal. Each matcher looks
// only at the producers of the value it is given (never at op positions) and
// returns what a rewrite needs, or nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace kiln {

// The op that produces `id` when it is an `opName`, else null.
const Op* producerOf(const Graph& graph, ValueId id, OpKind kind);

// The value of a one-element weight with data.
std::optional<double> scalarWeight(const Graph& graph, ValueId id);

// x * c, c * x or x / c with c a one-element weight that does not broadcast
// x to a higher rank: x and the factor (c, or 1 / c).
struct ScaledValue {
  ValueId base = kNoValue;
  double factor = 1.0;
};
std::optional<ScaledValue> matchScale(const Graph& graph, ValueId id);

// Rotate-half RoPE on the last axis (D even, h = D / 2):
//   x * cos + concat(-x[..., h:], x[..., :h]) * sin
// with the operands of the add and of each mul in either order; -y may be
// neg(y) or y * -1.
struct RotateHalfRope {
  ValueId x = kNoValue, cos = kNoValue, sin = kNoValue;
};
std::optional<RotateHalfRope> matchRotateHalfRope(const Graph& graph, ValueId id);

// The exporters' repeat_kv of a [B, Hkv, T, D] tensor to [B, Hkv*n, T, D]:
// reshape(expand(unsqueeze-or-reshape(kv) to [B, Hkv, 1, T, D]) to
// [B, Hkv, n, T, D]), or the single-kv-head broadcast expand([B, 1, T, D]).
// Checked on the static types, so it needs the symbolic shapes that
// canonicalisation gives. Returns kv.
std::optional<ValueId> matchRepeatKv(const Graph& graph, ValueId id);

// RoPE tables computed from the token positions: cos(concat(f, f)) and
// sin(concat(f, f)) on the last axis, f = positions * inv_freq, where
// positions = range(past, past + seq) (step 1, checked symbolically) reaches
// the mul through views (reshape, unsqueeze, squeeze, expand) and casts, and
// the tables reach `cos` and `sin` through views, so that both vary only
// along their last two axes: position and head dim. inv_freq is a weight of
// shape [..., D/2] (other dims 1). Returns inv_freq.
std::optional<ValueId> matchRopeFrequencies(const Graph& graph, ValueId cos, ValueId sin, const Dim& past,
                                            const Dim& seq);

// An additive mask made from a key-padding mask m of shape [B, T] (integer
// or bool): (1 - m) * c with c at or below kMaskedScoreLimit, views and
// value-preserving casts anywhere in the chain, m's axes landing on the batch
// and key axes of the [B, H, S, T] scores. Returns m. The rewrite to a
// key_padding mask assumes m holds only 0 and 1, as tokenizers write it.
std::optional<ValueId> matchKeyPaddingMask(const Graph& graph, ValueId mask, const Shape& scores);

// A KV-cache append: concat(past, fresh) along the sequence axis of [B, H, T, D].
struct KvAppend {
  ValueId past = kNoValue, fresh = kNoValue;
};
std::optional<KvAppend> matchKvAppend(const Graph& graph, ValueId id);

// Evaluates a value that depends on weights and on the shapes of other values
// only (the exporters' mask construction: shape, range, where, trilu, slices
// of a constant buffer), for chosen values of the shape symbols.
class ShapeOnlyEvaluator {
 public:
  // At most this many ops are evaluated; a larger cone is not a mask.
  static constexpr size_t kMaxOps = 256;

  ShapeOnlyEvaluator(const Graph& graph, ValueId id);
  // False when the value reads the data of a graph input (or of a weight
  // without data), or its cone is too large.
  bool valid() const { return valid_; }
  // The symbols in the types and dim attributes of the cone, sorted.
  std::vector<std::string> symbols() const;
  // The value with the symbols bound; nothing when a dim stays unknown or a
  // kernel refuses the bound shapes.
  std::optional<Tensor> evaluate(const SymbolBindings& bindings) const;

 private:
  const Graph& graph_;
  ValueId root_;
  bool valid_ = true;
  std::vector<int32_t> ops_;         // the cone, in graph order
  std::vector<ValueId> shapeLeaves_;  // values read only for their shape
};

// How a mask value selects the keys a query attends.
enum class MaskForm {
  Additive,        // added to the scores: 0 = attend, very negative = masked
  KeepWhereTrue,   // where(mask, scores, fill)
  MaskWhereTrue,   // where(mask, fill, scores)
};

// Masked scores at or below this are an exact zero after softmax in f32.
inline constexpr double kMaskedScoreLimit = -1e4;

// True when `mask` is the causal mask of attention scores of shape `scores`
// ([B, H, S, Tk]: query i attends key j iff j <= i + Tk - S) for several
// bindings of the shape symbols, evaluated on the mask's construction.
bool isCausalMask(const Graph& graph, ValueId mask, MaskForm form, const Shape& scores);

// True when `fill` evaluates (for the same bindings) to values at or below
// kMaskedScoreLimit everywhere: a where() fill that masks.
bool isMaskingFill(const Graph& graph, ValueId fill, const Shape& scores);

}  // namespace kiln
