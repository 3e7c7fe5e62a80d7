// Dataflow matchers for the pieces exporters wrap around an attention core:
// scalar scale factors, rotate-half RoPE, repeat_kv and the past-K/V concat of
// a KV cache (what masks mean: passes/mask_semantics.h). Each matcher looks
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

// RoPE on the last axis, in one of two pairings (D even, h = D / 2):
//   rotate-half:      x * cos + concat(-x[..., h:], x[..., :h]) * sin
//   interleaved (GPT-J): x * cos + rotate_every_two(x) * sin, where
//     rotate_every_two(x) = reshape(concat(unsqueeze(-x[..., 1::2], -1),
//                                          unsqueeze(x[..., ::2], -1), -1), [..., D])
//     turns the adjacent pairs (2i, 2i+1);
// with the operands of the add and of each mul in either order; -y may be
// neg(y) or y * -1. Or partial rotary (Phi, GPT-NeoX, GPT-J): that on the
// first W dims, the rest passed through, concat(rope(x[..., :W]), x[..., W:]);
// then x is the whole head and width W. Or any of those on [B, S, H, D]
// followed by the transpose to [B, H, S, D] (GPT-J ropes before it): then x
// is [B, S, H, D] and the tables [., S, 1, W].
struct RopeMatch {
  ValueId x = kNoValue, cos = kNoValue, sin = kNoValue;
  int64_t width = 0;         // the turned dims when fewer than the head's, else 0
  bool interleaved = false;  // the adjacent-pairs pairing
  bool seqFirst = false;     // x [B, S, H, D]; the rope's result is transposed to [B, H, S, D]
};
std::optional<RopeMatch> matchRope(const Graph& graph, ValueId id);

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

// A KV-cache append: concat(past, fresh) along the sequence axis of [B, H, T, D].
struct KvAppend {
  ValueId past = kNoValue, fresh = kNoValue;
};
std::optional<KvAppend> matchKvAppend(const Graph& graph, ValueId id);

}  // namespace kiln
