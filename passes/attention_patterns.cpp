#include "passes/attention_patterns.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "backends/reference/reference.h"
#include "ir/op_registry.h"
#include "passes/pattern_utils.h"

namespace kiln {

const Op* producerOf(const Graph& graph, ValueId id, OpKind kind) {
  if (id == kNoValue) return nullptr;
  const Value& value = graph.value(id);
  if (value.kind != ValueKind::OpResult || value.producer < 0) return nullptr;
  const Op& op = graph.ops()[static_cast<size_t>(value.producer)];
  return op.is(kind) ? &op : nullptr;
}

std::optional<double> scalarWeight(const Graph& graph, ValueId id) {
  if (id == kNoValue) return std::nullopt;
  const Value& value = graph.value(id);
  if (value.kind != ValueKind::Weight || !value.data || value.data->numElements() != 1)
    return std::nullopt;
  return value.data->elementAsDouble(0);
}

namespace {

const TensorType& typeOf(const Graph& graph, ValueId id) { return graph.value(id).type; }

// x[..., start:end:step] on the last axis with a positive step, bounds
// resolved against the static last dim of x.
struct LastAxisSlice {
  ValueId x = kNoValue;
  int64_t start = 0, end = 0, step = 1;
};

std::optional<LastAxisSlice> matchLastAxisSlice(const Graph& graph, ValueId id) {
  const Op* slice = producerOf(graph, id, OpKind::Slice);
  if (!slice) return std::nullopt;
  std::optional<AxisSlice> cut = sliceOfOneAxis(graph, *slice);
  if (!cut || cut->axis + 1 != static_cast<int64_t>(typeOf(graph, slice->operands[0]).rank())) return std::nullopt;
  return LastAxisSlice{slice->operands[0], cut->start, cut->end, cut->step};
}

// neg(y), or y * -1: y.
std::optional<ValueId> matchNegation(const Graph& graph, ValueId id) {
  if (const Op* neg = producerOf(graph, id, OpKind::Neg)) return neg->operands[0];
  if (std::optional<ScaledValue> scaled = matchScale(graph, id); scaled && scaled->factor == -1.0)
    return scaled->base;
  return std::nullopt;
}

// concat(-x[..., h:], x[..., :h]) on the last axis with h = D / 2: x.
std::optional<ValueId> matchRotateHalf(const Graph& graph, ValueId id) {
  const Op* concat = producerOf(graph, id, OpKind::Concat);
  if (!concat || concat->operands.size() != 2) return std::nullopt;
  const int64_t rank = static_cast<int64_t>(typeOf(graph, id).rank());
  const int64_t axis = concat->attrs.getInt("axis");
  if (axis != -1 && axis != rank - 1) return std::nullopt;
  std::optional<ValueId> negated = matchNegation(graph, concat->operands[0]);
  if (!negated) return std::nullopt;
  std::optional<LastAxisSlice> upper = matchLastAxisSlice(graph, *negated);
  std::optional<LastAxisSlice> lower = matchLastAxisSlice(graph, concat->operands[1]);
  if (!upper || !lower || upper->x != lower->x || upper->step != 1 || lower->step != 1) return std::nullopt;
  std::optional<int64_t> dim = typeOf(graph, upper->x).shape.back().constant();
  if (!dim || *dim % 2 != 0) return std::nullopt;
  const int64_t half = *dim / 2;
  if (upper->start != half || upper->end != *dim || lower->start != 0 || lower->end != half)
    return std::nullopt;
  return upper->x;
}

// y with a trailing axis of 1 appended: unsqueeze(y, -1) or the reshape
// canonicalisation makes of it. y.
std::optional<ValueId> matchTrailingUnit(const Graph& graph, ValueId id) {
  const Value& value = graph.value(id);
  if (value.kind != ValueKind::OpResult || value.producer < 0) return std::nullopt;
  const Op& op = graph.ops()[static_cast<size_t>(value.producer)];
  if (!op.isOneOf({OpKind::Reshape, OpKind::Unsqueeze})) return std::nullopt;
  Shape expected = typeOf(graph, op.operands[0]).shape;
  expected.push_back(Dim(1));
  if (value.type.shape != expected) return std::nullopt;
  return op.operands[0];
}

// reshape(concat(unsqueeze(-x[..., 1::2], -1), unsqueeze(x[..., ::2], -1), -1),
// [..., D]): the pairs (2i, 2i+1) of x turned to (-x[2i+1], x[2i]). x.
std::optional<ValueId> matchRotateEveryTwo(const Graph& graph, ValueId id) {
  const Op* flatten = producerOf(graph, id, OpKind::Reshape);
  if (!flatten) return std::nullopt;
  const ValueId stackedId = flatten->operands[0];
  const Op* stack = producerOf(graph, stackedId, OpKind::Concat);
  const int64_t rank = static_cast<int64_t>(typeOf(graph, stackedId).rank());
  if (!stack || stack->operands.size() != 2 || rank < 2) return std::nullopt;
  const int64_t axis = stack->attrs.getInt("axis");
  if (axis != -1 && axis != rank - 1) return std::nullopt;
  std::optional<ValueId> negatedColumn = matchTrailingUnit(graph, stack->operands[0]);
  std::optional<ValueId> evenColumn = matchTrailingUnit(graph, stack->operands[1]);
  if (!negatedColumn || !evenColumn) return std::nullopt;
  std::optional<ValueId> oddColumn = matchNegation(graph, *negatedColumn);
  if (!oddColumn) return std::nullopt;
  std::optional<LastAxisSlice> odd = matchLastAxisSlice(graph, *oddColumn);
  std::optional<LastAxisSlice> even = matchLastAxisSlice(graph, *evenColumn);
  if (!odd || !even || odd->x != even->x || odd->step != 2 || even->step != 2) return std::nullopt;
  const Shape& x = typeOf(graph, odd->x).shape;
  std::optional<int64_t> dim = x.back().constant();
  if (!dim || *dim % 2 != 0 || odd->start != 1 || even->start != 0 || odd->end != *dim || even->end < *dim - 1)
    return std::nullopt;
  if (typeOf(graph, id).shape != x) return std::nullopt;
  return odd->x;
}

// Shapes equal dim by dim, with `skip` (an index into `longer`) left out.
bool equalExceptAxis(const Shape& longer, const Shape& shorter, size_t skip) {
  if (longer.size() != shorter.size() + 1) return false;
  for (size_t i = 0, j = 0; i < longer.size(); ++i) {
    if (i == skip) continue;
    if (longer[i] != shorter[j++]) return false;
  }
  return true;
}

}  // namespace

std::optional<ScaledValue> matchScale(const Graph& graph, ValueId id) {
  const Value& value = graph.value(id);
  if (value.kind != ValueKind::OpResult || value.producer < 0) return std::nullopt;
  const Op& op = graph.ops()[static_cast<size_t>(value.producer)];
  const bool isMul = op.is(OpKind::Mul), isDiv = op.is(OpKind::Div);
  if ((!isMul && !isDiv) || op.operands.size() != 2) return std::nullopt;
  for (size_t constantSide : {size_t{1}, size_t{0}}) {
    if (isDiv && constantSide == 0) break;
    const ValueId base = op.operands[1 - constantSide];
    std::optional<double> c = scalarWeight(graph, op.operands[constantSide]);
    if (!c || !std::isfinite(*c) || *c == 0.0) continue;
    if (typeOf(graph, op.operands[constantSide]).rank() > typeOf(graph, base).rank()) continue;
    return ScaledValue{base, isDiv ? 1.0 / *c : *c};
  }
  return std::nullopt;
}

namespace {

std::optional<RopeMatch> matchWholeRope(const Graph& graph, ValueId id) {
  const Op* add = producerOf(graph, id, OpKind::Add);
  if (!add || add->operands.size() != 2) return std::nullopt;
  for (size_t first : {size_t{0}, size_t{1}}) {
    const Op* direct = producerOf(graph, add->operands[first], OpKind::Mul);
    const Op* rotated = producerOf(graph, add->operands[1 - first], OpKind::Mul);
    if (!direct || !rotated) continue;
    for (size_t r : {size_t{0}, size_t{1}}) {
      bool interleaved = false;
      std::optional<ValueId> x = matchRotateHalf(graph, rotated->operands[r]);
      if (!x && (x = matchRotateEveryTwo(graph, rotated->operands[r]))) interleaved = true;
      if (!x) continue;
      const ValueId sin = rotated->operands[1 - r];
      for (size_t d : {size_t{0}, size_t{1}})
        if (direct->operands[d] == *x) return RopeMatch{*x, direct->operands[1 - d], sin, 0, interleaved};
    }
  }
  return std::nullopt;
}

// concat(rope(x[..., :W]), x[..., W:]) on the last axis.
std::optional<RopeMatch> matchPartialRope(const Graph& graph, ValueId id) {
  const Op* concat = producerOf(graph, id, OpKind::Concat);
  if (!concat || concat->operands.size() != 2) return std::nullopt;
  const int64_t rank = static_cast<int64_t>(typeOf(graph, id).rank()), axis = concat->attrs.getInt("axis");
  if (axis != -1 && axis != rank - 1) return std::nullopt;
  std::optional<RopeMatch> turned = matchWholeRope(graph, concat->operands[0]);
  if (!turned) return std::nullopt;
  std::optional<LastAxisSlice> head = matchLastAxisSlice(graph, turned->x);
  std::optional<LastAxisSlice> tail = matchLastAxisSlice(graph, concat->operands[1]);
  if (!head || !tail || head->x != tail->x || head->step != 1 || tail->step != 1 || head->start != 0 ||
      tail->start != head->end)
    return std::nullopt;
  if (typeOf(graph, head->x).shape.back().constant() != tail->end) return std::nullopt;
  return RopeMatch{head->x, turned->cos, turned->sin, head->end, turned->interleaved};
}

std::optional<RopeMatch> matchRopeInPlace(const Graph& graph, ValueId id) {
  if (std::optional<RopeMatch> whole = matchWholeRope(graph, id)) return whole;
  return matchPartialRope(graph, id);
}

// A table broadcast over the heads axis of [B, S, H, W]: [., S, 1, W].
bool broadcastsOverHeads(const Graph& graph, ValueId table) {
  const Shape& shape = typeOf(graph, table).shape;
  return shape.size() == 4 && shape[2] == Dim(1);
}

}  // namespace

std::optional<RopeMatch> matchRope(const Graph& graph, ValueId id) {
  if (std::optional<RopeMatch> inPlace = matchRopeInPlace(graph, id)) return inPlace;
  const Op* transpose = producerOf(graph, id, OpKind::Transpose);
  if (!transpose || transpose->attrs.getInts("perm") != std::vector<int64_t>{0, 2, 1, 3}) return std::nullopt;
  std::optional<RopeMatch> seqFirst = matchRopeInPlace(graph, transpose->operands[0]);
  if (!seqFirst || !broadcastsOverHeads(graph, seqFirst->cos) || !broadcastsOverHeads(graph, seqFirst->sin))
    return std::nullopt;
  seqFirst->seqFirst = true;
  return seqFirst;
}

std::optional<ValueId> matchRepeatKv(const Graph& graph, ValueId id) {
  const Shape& repeated = typeOf(graph, id).shape;
  if (repeated.size() != 4) return std::nullopt;

  // Single kv head: expand([B, 1, T, D]) to [B, H, T, D].
  if (const Op* expand = producerOf(graph, id, OpKind::Expand)) {
    const ValueId kv = expand->operands[0];
    const Shape& shape = typeOf(graph, kv).shape;
    if (shape.size() == 4 && shape[1] == Dim(1) && shape[0] == repeated[0] &&
        shape[2] == repeated[2] && shape[3] == repeated[3] && repeated[1].isConstant())
      return kv;
    return std::nullopt;
  }

  const Op* merge = producerOf(graph, id, OpKind::Reshape);
  if (!merge) return std::nullopt;
  const ValueId expandedId = merge->operands[0];
  const Op* expand = producerOf(graph, expandedId, OpKind::Expand);
  if (!expand) return std::nullopt;
  const Shape& expanded = typeOf(graph, expandedId).shape;  // [B, Hkv, n, T, D]
  const ValueId insertedId = expand->operands[0];
  const Shape& inserted = typeOf(graph, insertedId).shape;  // [B, Hkv, 1, T, D]
  if (expanded.size() != 5 || inserted.size() != 5 || inserted[2] != Dim(1)) return std::nullopt;
  std::optional<int64_t> kvHeads = expanded[1].constant(), copies = expanded[2].constant();
  std::optional<int64_t> heads = repeated[1].constant();
  if (!kvHeads || !copies || !heads || *kvHeads * *copies != *heads) return std::nullopt;
  if (expanded[0] != repeated[0] || expanded[3] != repeated[2] || expanded[4] != repeated[3])
    return std::nullopt;
  if (!equalExceptAxis(expanded, {inserted[0], inserted[1], inserted[3], inserted[4]}, 2)) return std::nullopt;

  const Value& insertedValue = graph.value(insertedId);
  if (insertedValue.kind != ValueKind::OpResult || insertedValue.producer < 0) return std::nullopt;
  const Op& insert = graph.ops()[static_cast<size_t>(insertedValue.producer)];
  if (!insert.is(OpKind::Reshape) && !insert.is(OpKind::Unsqueeze)) return std::nullopt;
  const ValueId kv = insert.operands[0];
  if (!equalExceptAxis(inserted, typeOf(graph, kv).shape, 2)) return std::nullopt;
  return kv;
}

std::optional<KvAppend> matchKvAppend(const Graph& graph, ValueId id) {
  const Op* concat = producerOf(graph, id, OpKind::Concat);
  if (!concat || concat->operands.size() != 2 || typeOf(graph, id).rank() != 4) return std::nullopt;
  const int64_t axis = concat->attrs.getInt("axis");
  if (axis != 2 && axis != -2) return std::nullopt;
  return KvAppend{concat->operands[0], concat->operands[1]};
}

// ---- Values computed from positions and masks: following axes.

namespace {

// Axes of a value followed through ops that move no data across them;
// nullopt for an axis of size 1, which has nothing to follow.
using FollowedAxes = std::vector<std::optional<size_t>>;

// The axes whose dim is not 1; nothing when a dim is unknown.
std::optional<std::vector<size_t>> nonUnitAxes(const Shape& shape) {
  std::vector<size_t> axes;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i].isUnknown()) return std::nullopt;
    if (shape[i] != Dim(1)) axes.push_back(i);
  }
  return axes;
}

// A reshape that only inserts or removes 1-dims keeps the order of the other
// dims, so each followed axis moves to the same place among them.
std::optional<FollowedAxes> followReshape(const Shape& from, const Shape& to, const FollowedAxes& axes) {
  std::optional<std::vector<size_t>> in = nonUnitAxes(from), out = nonUnitAxes(to);
  if (!in || !out || in->size() != out->size()) return std::nullopt;
  for (size_t i = 0; i < in->size(); ++i)
    if (from[(*in)[i]] != to[(*out)[i]]) return std::nullopt;
  FollowedAxes moved;
  for (const std::optional<size_t>& axis : axes) {
    if (!axis) {
      moved.push_back(std::nullopt);
      continue;
    }
    auto at = std::find(in->begin(), in->end(), *axis);
    if (at == in->end()) return std::nullopt;
    moved.push_back((*out)[static_cast<size_t>(at - in->begin())]);
  }
  return moved;
}

// Broadcasting (expand, or an elementwise op with a scalar) aligns trailing
// dims and must not stretch a followed axis.
std::optional<FollowedAxes> followBroadcast(const Shape& from, const Shape& to, const FollowedAxes& axes) {
  if (to.size() < from.size()) return std::nullopt;
  const size_t offset = to.size() - from.size();
  FollowedAxes moved;
  for (const std::optional<size_t>& axis : axes) {
    if (axis && (from[*axis].isUnknown() || from[*axis] != to[*axis + offset])) return std::nullopt;
    moved.push_back(axis ? std::optional<size_t>(*axis + offset) : std::nullopt);
  }
  return moved;
}

// The followed axes of a value of shape `shape`: those not of dim 1.
FollowedAxes unitAxesDropped(const Shape& shape, std::vector<size_t> axes) {
  FollowedAxes followed;
  for (size_t axis : axes) followed.push_back(shape[axis] == Dim(1) ? std::nullopt : std::optional<size_t>(axis));
  return followed;
}

bool isReshapeLike(const Op& op) {
  return op.isOneOf({OpKind::Reshape, OpKind::Unsqueeze, OpKind::Squeeze, OpKind::Flatten});
}

// A cast that keeps every value it can meet here (small integers, 0/1 masks,
// large negative fills): integer or bool to anything but bool, float to float.
bool keepsValues(const Graph& graph, const Op& cast) {
  const DType from = typeOf(graph, cast.operands[0]).dtype, to = typeOf(graph, cast.results[0]).dtype;
  return to != DType::Bool && (!isFloat(from) || isFloat(to));
}

// Views (reshape-like ops and expand) and value-keeping casts from `base` to
// a value, in dataflow order.
struct ViewChain {
  ValueId base = kNoValue;
  std::vector<const Op*> ops;
};

ViewChain viewChainTo(const Graph& graph, ValueId id, bool casts) {
  ViewChain chain{id, {}};
  while (true) {
    const Value& value = graph.value(chain.base);
    if (value.kind != ValueKind::OpResult || value.producer < 0) break;
    const Op& op = graph.ops()[static_cast<size_t>(value.producer)];
    const bool view = isReshapeLike(op) || op.is(OpKind::Expand);
    if (!view && !(casts && op.is(OpKind::Cast) && keepsValues(graph, op))) break;
    chain.ops.insert(chain.ops.begin(), &op);
    chain.base = op.operands[0];
  }
  return chain;
}

std::optional<FollowedAxes> followChain(const Graph& graph, const ViewChain& chain, FollowedAxes axes) {
  for (const Op* op : chain.ops) {
    const Shape& from = typeOf(graph, op->operands[0]).shape;
    const Shape& to = typeOf(graph, op->results[0]).shape;
    std::optional<FollowedAxes> moved =
        isReshapeLike(*op) ? followReshape(from, to, axes) : followBroadcast(from, to, axes);
    if (!moved) return std::nullopt;
    axes = std::move(*moved);
  }
  return axes;
}

// A weight of shape [1, ..., 1, n] with data: n.
std::optional<int64_t> lastAxisVector(const Graph& graph, ValueId id) {
  const Value& value = graph.value(id);
  if (value.kind != ValueKind::Weight || !value.data || value.type.rank() == 0) return std::nullopt;
  for (size_t i = 0; i + 1 < value.type.rank(); ++i)
    if (value.type.shape[i] != Dim(1)) return std::nullopt;
  return value.type.shape.back().constant();
}

// range(past, past + seq) with step 1 in the dim-list form.
bool isPositionRange(const Op& range, const Dim& past, const Dim& seq) {
  if (!range.operands.empty() || range.attrs.getInt("delta", 1) != 1) return false;
  std::optional<std::vector<Dim>> start = range.attrs.getDims("start"), limit = range.attrs.getDims("limit");
  if (!start || !limit || start->size() != 1 || limit->size() != 1) return false;
  return (*start)[0] == past && (*limit)[0] - (*start)[0] == seq;
}

// The axes of positions * inv_freq, [..., S, D/2]: the position axis (the
// range's, followed through views and casts) and the frequency axis (last).
std::optional<FollowedAxes> positionFrequencyAxes(const Graph& graph, const Op& mul, const Dim& past, const Dim& seq,
                                                  ValueId& invFreq) {
  const Shape& product = typeOf(graph, mul.results[0]).shape;
  if (mul.operands.size() != 2 || product.empty()) return std::nullopt;
  for (size_t side : {size_t{0}, size_t{1}}) {
    const ValueId weight = mul.operands[side], positions = mul.operands[1 - side];
    std::optional<int64_t> half = lastAxisVector(graph, weight);
    const Shape& positionShape = typeOf(graph, positions).shape;
    if (!half || !isFloat(typeOf(graph, weight).dtype) || product.back() != Dim(*half) ||
        positionShape.empty() || positionShape.back() != Dim(1))
      continue;
    const ViewChain chain = viewChainTo(graph, positions, /*casts=*/true);
    const Op* range = producerOf(graph, chain.base, OpKind::Range);
    if (!range || !isPositionRange(*range, past, seq)) continue;
    std::optional<FollowedAxes> axes = followChain(graph, chain, unitAxesDropped(typeOf(graph, chain.base).shape, {0}));
    if (axes) axes = followBroadcast(positionShape, product, *axes);
    if (!axes) continue;
    axes->push_back(product.size() - 1);
    invFreq = weight;
    return axes;
  }
  return std::nullopt;
}

// `table` is `fn`(angles) reached through views, varying only along its last
// two axes (position, then head dim) given the angles' followed axes.
bool isRopeTable(const Graph& graph, ValueId table, OpKind fn, ValueId angles, const FollowedAxes& axes) {
  const ViewChain chain = viewChainTo(graph, table, /*casts=*/false);
  const Op* op = producerOf(graph, chain.base, fn);
  if (!op || op->operands[0] != angles) return false;
  std::optional<FollowedAxes> moved = followChain(graph, chain, axes);
  const size_t rank = typeOf(graph, table).rank();
  if (!moved || rank < 2 || rank > 4 || (*moved)[1] != rank - 1) return false;
  return !(*moved)[0] || (*moved)[0] == rank - 2;
}

}  // namespace

std::optional<ValueId> matchRopeFrequencies(const Graph& graph, ValueId cos, ValueId sin, const Dim& past,
                                            const Dim& seq) {
  const Op* cosOp = producerOf(graph, viewChainTo(graph, cos, false).base, OpKind::Cos);
  if (!cosOp) return std::nullopt;
  const ValueId angles = cosOp->operands[0];
  const Op* concat = producerOf(graph, angles, OpKind::Concat);
  if (!concat || concat->operands.size() != 2 || concat->operands[0] != concat->operands[1]) return std::nullopt;
  const int64_t rank = static_cast<int64_t>(typeOf(graph, angles).rank());
  const int64_t axis = concat->attrs.getInt("axis");
  if (axis != -1 && axis != rank - 1) return std::nullopt;
  const Op* mul = producerOf(graph, concat->operands[0], OpKind::Mul);
  if (!mul) return std::nullopt;
  ValueId invFreq = kNoValue;
  std::optional<FollowedAxes> axes = positionFrequencyAxes(graph, *mul, past, seq, invFreq);
  if (!axes || !isRopeTable(graph, cos, OpKind::Cos, angles, *axes) || !isRopeTable(graph, sin, OpKind::Sin, angles, *axes))
    return std::nullopt;
  return invFreq;
}

}  // namespace kiln
