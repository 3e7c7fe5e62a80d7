// canonicalize: one forward sweep over the ops. Each op, its operands renamed
// through earlier rewrites, is rewritten until no rule applies; then its
// result types are inferred again, so `?` dims become symbolic as the shape
// arithmetic before it folds, and the symbolic value of its result (see
// passes/symbolic_values.h) is recorded for the ops after it. The folded
// arithmetic is left dead and removed at the end (by dce).
// Rewrites go through the shared Rewriter: a rule's new form replaces the op
// in place (reform), a no-op is bypassed and marked, and the helper ops a
// rule needs are created just before the op.
//
// Rules:
//   constants    an operand whose value is known to be all numbers becomes a weight
//   shapes       reshape/expand/constant_of_shape with a known (maybe symbolic) target shape take
//                it as the `shape` attribute (reshape's 0 and -1 resolved, -1 by exact polynomial
//                division); slice and range with symbolic bounds take them as attributes
//   positions    gather(table, range(a, b)) -> slice of rows a..b, reshaped like the indices;
//                range(a, b) + k -> range(a + k, b + k); gather_elements whose indices are a
//                range broadcast along the other axes -> gather(table, range); gather(table,
//                indices all k) -> row k, expanded
//   repeats      concat of each element of a split repeated r times (torch's repeat_interleave,
//                its Loop unrolled) -> reshape, expand, reshape
//   views        squeeze, unsqueeze and flatten with a known result shape -> reshape {shape};
//                reshape(reshape(x)) -> reshape(x); reshape or expand to x's own type -> x;
//                transposes and reshapes that keep the elements' order -> one reshape
//   broadcasts   an operand that numpy-broadcasts (elementwise ops, fused_elementwise, matmul's
//                bias and residual) reads past a reshape that only inserts leading 1-dims, when
//                the result type stays; the reshape dies once no consumer needs it
//   no-ops       identity -> x; x * 1, x / 1, x - 0 -> x when the type stays; cast to x's
//                dtype -> x; cast(cast(x)) -> one cast when the inner one is exact;
//                reshape(constant_of_shape) -> constant_of_shape of the new shape
//   sums         concat(p0, p1, ..) + w -> concat(p0 + w0, ..) when each part absorbs its add (a
//                weight expanded, a product's residual)
//   symbols      a concat's operands agree on every other axis at run time: a symbol that is one
//                operand's whole dim there, absent from another's, is that dim everywhere (BLOOM's
//                cache input [batch_heads, ..] concatenated with keys [4*batch, ..])
// Graph outputs keep their names: when an output's op goes, the value that
// replaces it takes the name (or the op stays, when that value is an input,
// a weight or another output).
#include "passes/canonicalize.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/builder.h"
#include "ir/op_registry.h"
#include "ir/ops/symbolic_dims.h"
#include "passes/dce.h"
#include "passes/pattern_utils.h"
#include "passes/symbolic_values.h"
#include "passes/view_order.h"

namespace kiln {

namespace {

using ops::knownNonNegative;

// A constant_of_shape of at most this many elements becomes a weight.
constexpr int64_t kMaxFilledWeightElements = 4096;
// Rules applied to one op before it is committed (each makes progress, so
// this only guards against a cycle between rules).
constexpr int kMaxRewritesPerOp = 8;

// Whether every value of dtype `from` is exactly representable in `to`.
bool isExactCast(DType from, DType to) {
  if (from == to || from == DType::Bool) return true;
  auto integerBits = [](DType t) -> int {  // value bits of an integer type, sign excluded
    switch (t) {
      case DType::U8: return 8;
      case DType::I8: return 7;
      case DType::I32: return 31;
      case DType::I64: return 63;
      default: return 0;
    }
  };
  auto mantissaBits = [](DType t) -> int {  // integers up to 2^bits are exact
    switch (t) {
      case DType::BF16: return 8;
      case DType::F16: return 11;
      case DType::F32: return 24;
      case DType::F64: return 53;
      default: return 0;
    }
  };
  const bool fromSigned = from != DType::U8;
  if (integerBits(from) && integerBits(to))
    return integerBits(to) >= integerBits(from) && (fromSigned ? to != DType::U8 : true);
  if (integerBits(from) && mantissaBits(to)) return mantissaBits(to) >= integerBits(from);
  if (mantissaBits(from) && mantissaBits(to)) {
    // f16 and bf16 differ in range and precision: neither holds the other.
    return mantissaBits(to) > mantissaBits(from) && to != DType::BF16 && to != DType::F16;
  }
  return false;
}

// Whether cast(cast(x, mid), to) == cast(x, to) for x of dtype `from`: the
// inner cast keeps every value, and the outer one converts it the same way.
// Integers that went through a float saturate where a direct integer cast
// wraps, so that route must not narrow.
bool castsCompose(DType from, DType mid, DType to) {
  auto isInteger = [](DType t) {
    return t == DType::I64 || t == DType::I32 || t == DType::I8 || t == DType::U8;
  };
  if (!isExactCast(from, mid)) return false;
  return !(isInteger(from) && !isInteger(mid) && mid != DType::Bool && isInteger(to)) || isExactCast(from, to);
}

// An attribute value for dims: an int list when they are all numbers (so
// the printed form reads back the same), else a dim list.
AttrValue dimsAttr(const std::vector<Dim>& dims) {
  std::vector<int64_t> numbers;
  for (const Dim& d : dims) {
    if (!d.isConstant()) return dims;
    numbers.push_back(*d.constant());
  }
  return numbers;
}

bool isComplete(const Shape& shape) {
  for (const Dim& d : shape)
    if (d.isUnknown()) return false;
  return true;
}

size_t unknownDims(const TensorType& type) {
  size_t n = 0;
  for (const Dim& d : type.shape) n += d.isUnknown() ? 1 : 0;
  return n;
}

// A rewritten op must give the same types as before, or more precise ones.
bool consistent(const std::vector<TensorType>& now, const std::vector<TensorType>& before) {
  if (now.size() != before.size()) return false;
  for (size_t r = 0; r < now.size(); ++r) {
    if (now[r].dtype != before[r].dtype || now[r].rank() != before[r].rank()) return false;
    for (size_t d = 0; d < now[r].rank(); ++d) {
      const Dim &a = now[r].shape[d], &b = before[r].shape[d];
      if (!a.isUnknown() && !b.isUnknown() && a != b) return false;
    }
  }
  return true;
}


// The first operand of `op` that broadcasts numpy-style to the result
// (where leading 1-dims change nothing but, perhaps, the result's rank);
// nullopt for ops without such operands.
std::optional<size_t> firstBroadcastOperand(const Op& op) {
  if (op.isOneOf({OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div, OpKind::Pow, OpKind::Equal,
                  OpKind::Less, OpKind::Greater, OpKind::And, OpKind::Or, OpKind::Min, OpKind::Max,
                  OpKind::Where, OpKind::FusedElementwise}))
    return 0;
  if (op.is(OpKind::Matmul)) return 2;  // bias and residual; a and b are matrices
  return std::nullopt;
}

// `to` is `from` with one or more 1-dims in front, every dim known.
bool insertsLeadingOnes(const Shape& from, const Shape& to) {
  if (to.size() <= from.size() || !isComplete(from) || !isComplete(to)) return false;
  const size_t added = to.size() - from.size();
  for (size_t i = 0; i < added; ++i)
    if (to[i] != Dim(1)) return false;
  return std::equal(from.begin(), from.end(), to.begin() + static_cast<ptrdiff_t>(added));
}

// reshape x {shape = [...]}.
bool isDimsReshape(const Op& op) {
  return op.is(OpKind::Reshape) && op.attrs.has("shape") && op.operands.size() == 1;
}

// An arithmetic sequence start, start + delta, ... (before limit).
struct Sequence {
  Dim start, limit;
  int64_t delta = 1;
};

struct Counters {
  int64_t constantsMaterialized = 0;
  int64_t reshapesFolded = 0;
  int64_t expandsFolded = 0;
  int64_t fillsFolded = 0;
  int64_t slicesFolded = 0;
  int64_t rangesFolded = 0;
  int64_t gathersToSlices = 0;
  int64_t gathersOfOneRow = 0;
  int64_t rangesShifted = 0;
  int64_t viewsToReshape = 0;
  int64_t reshapesComposed = 0;
  int64_t viewChainsFolded = 0;
  int64_t addsOverConcats = 0;
  int64_t castsComposed = 0;
  int64_t opsRemoved = 0;  // identity, x * 1 and the like, and no-op cast, reshape, expand, slice
  int64_t broadcastReshapesBypassed = 0;  // consumers that read past a leading-1 reshape
  int64_t broadcastExpandsBypassed = 0;   // consumers that read past an expand their broadcast repeats
  int64_t broadcastFillsBypassed = 0;     // consumers that read a fill's one value instead
  int64_t clipsToMaxMin = 0;
  int64_t gatherElementsToGathers = 0;
  int64_t repeatInterleavesFolded = 0;
  int64_t symbolsUnified = 0;
  int64_t typesRefined = 0;
};

class Canonicalizer {
 public:
  explicit Canonicalizer(Graph& graph) : graph_(graph), rewriter_(graph) {}

  Expected<bool> run(PassStatistics& statistics);

 private:
  // What a rule does to an op: its single result is replaced by another
  // value (the op goes), or the op becomes another form with the same results.
  struct Rewrite {
    ValueId forwardTo = kNoValue;
    std::optional<OpForm> replacement;
    int64_t* counter = nullptr;
  };

  const TensorType& typeOf(ValueId id) const { return graph_.value(id).type; }
  const SymbolicTensor* knownValue(ValueId id);
  // A known value with every element known.
  const SymbolicTensor* completeValue(ValueId id);
  // A copy: creating ops moves the graph's op list.
  std::optional<Op> producerOf(ValueId id) const;
  Status infer(const Op& op, std::vector<TensorType>& types) const;
  // Creates `form` before the op being processed (with its location);
  // kNoValue when inference refuses it.
  ValueId createBeforeCurrent(OpForm form);
  // Takes the types of op `index`'s results and records their symbolic value.
  void record(int32_t index, const std::vector<TensorType>& types);
  // The symbolic value of the single result of `op` with result types `types`.
  std::optional<SymbolicTensor> symbolicResult(const Op& op, const std::vector<TensorType>& types);
  ValueId weightFor(ValueId id, const SymbolicTensor& value);
  // Replaces operands whose value is all numbers by weights; whether any was.
  bool materializeConstantOperands(int32_t index);
  bool canForward(ValueId result, ValueId source) const;
  // The symbols rule, on the concat at `index` before its inference.
  void unifyConcatDims(int32_t index);
  Status process(int32_t index);

  std::optional<Rewrite> rewrite(const Op& op, const std::vector<TensorType>& types);
  std::optional<Rewrite> rewriteCast(const Op& op);
  std::optional<Rewrite> rewriteReshape(const Op& op, const std::vector<TensorType>& types);
  std::optional<Rewrite> rewriteExpand(const Op& op, const std::vector<TensorType>& types);
  std::optional<Rewrite> rewriteConstantOfShape(const Op& op);
  std::optional<Rewrite> rewriteRange(const Op& op);
  std::optional<Rewrite> rewriteSlice(const Op& op);
  std::optional<Rewrite> rewriteGather(const Op& op, const std::vector<TensorType>& types);
  std::optional<Rewrite> rewriteRangeShift(const Op& op, const std::vector<TensorType>& types);
  std::optional<Rewrite> rewriteNeutralOperand(const Op& op, const std::vector<TensorType>& types);
  std::optional<Rewrite> rewriteViewChain(const Op& op, const std::vector<TensorType>& types);
  std::optional<Rewrite> rewriteAddOverConcat(const Op& op, const std::vector<TensorType>& types);
  // Whether piece + a weight is an op that folds away (absorbsAdd), and that op.
  bool absorbsAdd(ValueId piece) const;
  ValueId addAbsorbedBy(ValueId piece, ValueId part);
  std::optional<Rewrite> rewriteGatherOfOneRow(const Op& op, const std::vector<TensorType>& types);
  std::optional<int64_t> uniformIndex(ValueId id) const;
  std::optional<Rewrite> rewriteBroadcastOperands(const Op& op, const std::vector<TensorType>& types);
  std::optional<Rewrite> rewriteClip(const Op& op);
  std::optional<Rewrite> rewriteGatherElements(const Op& op);
  std::optional<Rewrite> rewriteRepeatInterleave(const Op& op, const std::vector<TensorType>& types);
  // The 1-D range r when every element of `id` is r[i_axis]: r seen through
  // expands and reshapes that only add or drop unit dims.
  ValueId rangeAlong(ValueId id, int64_t axis) const;
  // s when `id` is s (a [.., 1 at axis, ..] value) repeated `repeats` times
  // along axis: reshape(expand(reshape(s) to a unit dim after axis) to
  // `repeats` there) merged back; kNoValue otherwise.
  ValueId repeatedAlong(ValueId id, int64_t axis, int64_t& repeats) const;
  // The one value of a constant_of_shape, as a scalar weight (one per value and dtype).
  ValueId fillScalar(const Op& fill);
  // `form` producing `shape` from a value of `fromShape`, reshaped when they differ.
  Rewrite reshapedTo(OpForm form, const Shape& fromShape, const Shape& shape, int64_t* counter);
  std::optional<Sequence> rangeOf(ValueId id);
  std::optional<Sequence> slicedPositions(const Op& slice);

  Graph& graph_;
  Rewriter rewriter_;
  int32_t current_ = -1;  // the op being processed
  // Node-based, so pointers to values stay valid as it grows; nullopt =
  // looked at and not known.
  std::unordered_map<ValueId, std::optional<SymbolicTensor>> known_;
  std::unordered_map<ValueId, ValueId> weights_;  // value -> its materialised weight
  std::map<std::pair<int, double>, ValueId> fillScalars_;  // (dtype, value) -> scalar weight
  Counters counters_;
};

const SymbolicTensor* Canonicalizer::knownValue(ValueId id) {
  if (id == kNoValue) return nullptr;
  auto it = known_.find(id);
  if (it == known_.end()) {
    const Value& v = graph_.value(id);
    std::optional<SymbolicTensor> value;
    if (v.kind == ValueKind::Weight && v.data) value = symbolicFromTensor(*v.data);
    it = known_.emplace(id, std::move(value)).first;
  }
  return it->second ? &*it->second : nullptr;
}

const SymbolicTensor* Canonicalizer::completeValue(ValueId id) {
  const SymbolicTensor* value = knownValue(id);
  return value && value->complete() ? value : nullptr;
}

std::optional<Op> Canonicalizer::producerOf(ValueId id) const {
  const int32_t index = rewriter_.producerIndex(id);
  if (index < 0 || rewriter_.isMarked(index)) return std::nullopt;
  return rewriter_.op(index);
}

Status Canonicalizer::infer(const Op& op, std::vector<TensorType>& types) const {
  return rewriter_.inferTypes({op.kind(), op.operands, op.attrs}, static_cast<int>(op.results.size()), types);
}

ValueId Canonicalizer::createBeforeCurrent(OpForm form) {
  const std::string location = rewriter_.op(current_).location;
  Expected<ValueId> result =
      rewriter_.create1(current_, form.kind, std::move(form.operands), std::move(form.attrs), location);
  if (!result) return kNoValue;
  record(rewriter_.producerIndex(*result), {typeOf(*result)});
  return *result;
}

std::optional<SymbolicTensor> Canonicalizer::symbolicResult(const Op& op,
                                                           const std::vector<TensorType>& types) {
  if (op.results.size() != 1) return std::nullopt;
  std::vector<const TensorType*> operandTypes;
  std::vector<const SymbolicTensor*> operandValues;
  for (ValueId id : op.operands) {
    operandTypes.push_back(id == kNoValue ? nullptr : &typeOf(id));
    operandValues.push_back(knownValue(id));
  }
  return evaluateSymbolic(op, operandTypes, operandValues,
                          mergeTypes(types[0], graph_.value(op.results[0]).type));
}

void Canonicalizer::record(int32_t index, const std::vector<TensorType>& types) {
  const Op& op = rewriter_.op(index);
  if (op.results.size() == 1) known_[op.results[0]] = symbolicResult(op, types);
  for (size_t r = 0; r < op.results.size(); ++r) {
    Value& v = graph_.value(op.results[r]);
    const TensorType merged = mergeTypes(types[r], v.type);
    if (unknownDims(merged) < unknownDims(v.type)) ++counters_.typesRefined;
    v.type = merged;
  }
}

ValueId Canonicalizer::weightFor(ValueId id, const SymbolicTensor& value) {
  if (auto it = weights_.find(id); it != weights_.end()) return it->second;
  const ValueId weight = rewriter_.addWeight(graph_.value(id).name + ".value", value.toTensor());
  known_[weight] = value;
  weights_[id] = weight;
  ++counters_.constantsMaterialized;
  return weight;
}

bool Canonicalizer::materializeConstantOperands(int32_t index) {
  const Op& op = rewriter_.op(index);
  OpForm form{op.kind(), op.operands, op.attrs};
  bool any = false;
  for (ValueId& operand : form.operands) {
    if (operand == kNoValue || graph_.value(operand).kind == ValueKind::Weight) continue;
    const SymbolicTensor* value = knownValue(operand);
    if (!value || !value->isConstant()) continue;
    operand = weightFor(operand, *value);
    any = true;
  }
  if (any) rewriter_.reform(index, std::move(form));
  return any;
}

bool Canonicalizer::canForward(ValueId result, ValueId source) const {
  if (!rewriter_.isGraphOutput(result)) return true;
  // The source takes the output's name, so it must be free to: an op result
  // that is not itself an output.
  return graph_.value(source).kind == ValueKind::OpResult && !rewriter_.isGraphOutput(source);
}

void Canonicalizer::unifyConcatDims(int32_t index) {
  const Op op = rewriter_.op(index);
  if (!op.is(OpKind::Concat) || op.operands.size() < 2) return;
  const size_t rank = typeOf(op.operands[0]).rank();
  int64_t axis = op.attrs.getInt("axis");
  if (axis < 0) axis += static_cast<int64_t>(rank);
  for (size_t d = 0; d < rank; ++d) {
    if (static_cast<int64_t>(d) == axis) continue;
    for (size_t i = 1; i < op.operands.size(); ++i) {
      if (typeOf(op.operands[i]).rank() != rank) return;
      const Dim first = typeOf(op.operands[0]).shape[d], other = typeOf(op.operands[i]).shape[d];
      if (first == other || first.isUnknown() || other.isUnknown()) continue;
      auto absentFrom = [](const std::string& symbol, const Dim& dim) {
        const std::vector<std::string> symbols = dim.symbols();
        return std::find(symbols.begin(), symbols.end(), symbol) == symbols.end();
      };
      std::optional<std::string> symbol = first.plainSymbol();
      Dim with = other;
      if (!symbol || !absentFrom(*symbol, other)) {
        symbol = other.plainSymbol();
        with = first;
      }
      if (!symbol || !absentFrom(*symbol, with)) continue;
      graph_.replaceSymbol(*symbol, with);
      for (auto& [id, value] : known_)
        if (value)
          for (Dim& element : value->elements) element = element.replaced(*symbol, with);
      ++counters_.symbolsUnified;
    }
  }
}

Status Canonicalizer::process(int32_t index) {
  current_ = index;
  unifyConcatDims(index);
  std::vector<TensorType> types;
  if (Status inferred = infer(rewriter_.op(index), types); !inferred) return inferred;
  // Shape arithmetic whose value is known needs no rewriting: its users take
  // the value, and it dies.
  std::optional<SymbolicTensor> value = symbolicResult(rewriter_.op(index), types);
  if (value && value->complete()) {
    record(index, types);
    return Status::ok();
  }
  if (materializeConstantOperands(index))
    if (Status inferred = infer(rewriter_.op(index), types); !inferred) return inferred;
  for (int round = 0; round < kMaxRewritesPerOp; ++round) {
    // A copy: a rule may create ops, which moves the graph's op list.
    const Op op = rewriter_.op(index);
    std::optional<Rewrite> rewritten = rewrite(op, types);
    if (!rewritten) break;
    if (rewritten->forwardTo != kNoValue) {
      rewriter_.bypass(op.results[0], rewritten->forwardTo);
      rewriter_.mark(index);
      ++*rewritten->counter;
      return Status::ok();
    }
    std::vector<TensorType> newTypes;
    if (!rewriter_.inferTypes(*rewritten->replacement, static_cast<int>(op.results.size()), newTypes) ||
        !consistent(newTypes, types))
      break;
    ++*rewritten->counter;
    rewriter_.reform(index, std::move(*rewritten->replacement));
    types = std::move(newTypes);
  }
  record(index, types);
  return Status::ok();
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewrite(const Op& op,
                                                             const std::vector<TensorType>& types) {
  if (op.results.size() != 1) return std::nullopt;
  const OpKind kind = op.kind();
  std::optional<Rewrite> rewritten;
  if (kind == OpKind::Identity) rewritten = Rewrite{op.operands[0], std::nullopt, &counters_.opsRemoved};
  else if (kind == OpKind::Cast) rewritten = rewriteCast(op);
  else if (kind == OpKind::Reshape || kind == OpKind::Squeeze || kind == OpKind::Unsqueeze || kind == OpKind::Flatten)
    rewritten = rewriteReshape(op, types);
  else if (kind == OpKind::Expand) rewritten = rewriteExpand(op, types);
  else if (kind == OpKind::ConstantOfShape) rewritten = rewriteConstantOfShape(op);
  else if (kind == OpKind::Range) rewritten = rewriteRange(op);
  else if (kind == OpKind::Slice) rewritten = rewriteSlice(op);
  else if (kind == OpKind::Gather) rewritten = rewriteGather(op, types);
  else if (kind == OpKind::Add || kind == OpKind::Sub) rewritten = rewriteRangeShift(op, types);
  else if (kind == OpKind::Clip) rewritten = rewriteClip(op);
  else if (kind == OpKind::GatherElements) rewritten = rewriteGatherElements(op);
  else if (kind == OpKind::Concat) rewritten = rewriteRepeatInterleave(op, types);
  // Rules tried when the kind's own rule does not apply.
  if (!rewritten && (kind == OpKind::Transpose || kind == OpKind::Reshape)) rewritten = rewriteViewChain(op, types);
  if (!rewritten && kind == OpKind::Add) rewritten = rewriteAddOverConcat(op, types);
  if (!rewritten && (kind == OpKind::Mul || kind == OpKind::Div || kind == OpKind::Sub))
    rewritten = rewriteNeutralOperand(op, types);
  if (!rewritten && firstBroadcastOperand(op)) rewritten = rewriteBroadcastOperands(op, types);
  if (rewritten && rewritten->forwardTo != kNoValue && !canForward(op.results[0], rewritten->forwardTo))
    return std::nullopt;
  return rewritten;
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewriteCast(const Op& op) {
  const ValueId x = op.operands[0];
  std::optional<DType> to = parseDType(op.attrs.getString("to"));
  if (to == typeOf(x).dtype) return Rewrite{x, std::nullopt, &counters_.opsRemoved};
  std::optional<Op> inner = producerOf(x);
  if (!to || !inner || !inner->is(OpKind::Cast) ||
      !castsCompose(typeOf(inner->operands[0]).dtype, typeOf(x).dtype, *to))
    return std::nullopt;
  return Rewrite{kNoValue, OpForm{OpKind::Cast, {inner->operands[0]}, op.attrs}, &counters_.castsComposed};
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewriteReshape(const Op& op,
                                                                    const std::vector<TensorType>& types) {
  const ValueId x = op.operands[0];
  const TensorType& input = typeOf(x);
  auto toDims = [&](const Shape& shape, int64_t* counter) {
    Attributes attrs;
    attrs.set("shape", dimsAttr(shape));
    return Rewrite{kNoValue, OpForm{OpKind::Reshape, {x}, attrs}, counter};
  };
  if (!op.is(OpKind::Reshape)) {
    // squeeze / unsqueeze / flatten: one kind of view for layout and fusion.
    if (!isComplete(types[0].shape)) return std::nullopt;
    return toDims(types[0].shape, &counters_.viewsToReshape);
  }
  if (isDimsReshape(op)) {
    if (types[0] == input) return Rewrite{x, std::nullopt, &counters_.opsRemoved};
    std::optional<Op> inner = producerOf(x);
    // A fill reshaped is a fill of the new shape (T5's all-ones decoder mask).
    if (inner && inner->is(OpKind::ConstantOfShape) && inner->attrs.has("shape") && isComplete(types[0].shape)) {
      Attributes attrs = inner->attrs;
      attrs.set("shape", dimsAttr(types[0].shape));
      return Rewrite{kNoValue, OpForm{OpKind::ConstantOfShape, {}, attrs}, &counters_.reshapesComposed};
    }
    if (!inner || !isDimsReshape(*inner)) return std::nullopt;
    return Rewrite{kNoValue, OpForm{OpKind::Reshape, {inner->operands[0]}, op.attrs},
                   &counters_.reshapesComposed};
  }
  // The ONNX form: a known target shape, with 0 (copy the input dim) and -1
  // (whatever is left) resolved. Symbolic entries are taken as they are: one
  // that is 0 at run time would have copied the input dim instead, and the
  // element count check at run time reports that.
  const SymbolicTensor* target = op.operands.size() > 1 ? completeValue(op.operands[1]) : nullptr;
  if (!target) return std::nullopt;
  const bool allowZero = op.attrs.getBool("allowzero");
  Shape shape;
  std::optional<size_t> rest;
  for (size_t i = 0; i < target->elements.size(); ++i) {
    const Dim& element = target->elements[i];
    const std::optional<int64_t> c = element.constant();
    if (c == -1 && !rest) {
      rest = i;
      shape.push_back(1);
    } else if (c == 0 && !allowZero) {
      if (i >= input.rank() || input.shape[i].isUnknown()) return std::nullopt;
      shape.push_back(input.shape[i]);
    } else if (c ? *c >= 0 : knownNonNegative(element)) {
      shape.push_back(element);
    } else {
      return std::nullopt;
    }
  }
  if (rest) {
    Dim total = 1, others = 1;
    for (const Dim& d : input.shape) total = total * d;
    for (const Dim& d : shape) others = others * d;
    std::optional<Dim> quotient = ops::divideExactly(total, others);
    if (!quotient) return std::nullopt;
    shape[*rest] = *quotient;
  }
  return toDims(shape, &counters_.reshapesFolded);
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewriteViewChain(const Op& op,
                                                                      const std::vector<TensorType>& types) {
  // Transposes and reshapes that leave the elements in their order (ViT's
  // patch grid transposed to channels first, flattened and transposed back)
  // are one reshape of where the chain starts (view_order.h).
  constexpr size_t kMaxChain = 8;
  if (op.is(OpKind::Reshape) && !isDimsReshape(op)) return std::nullopt;
  std::vector<Op> chain = {op};
  for (std::optional<Op> p = producerOf(op.operands[0]);
       p && chain.size() < kMaxChain && (p->is(OpKind::Transpose) || isDimsReshape(*p)); p = producerOf(p->operands[0]))
    chain.insert(chain.begin(), *p);
  if (chain.size() < 2 || !isComplete(types[0].shape)) return std::nullopt;
  for (size_t start = 0; start + 1 < chain.size(); ++start) {
    // A transpose that only moves unit axes (MQA's one kv head to [B, 1, S, D])
    // is left as it is: layout reads it as a head split.
    std::vector<const Op*> steps;
    bool transposes = false;
    for (size_t k = start; k < chain.size(); ++k) {
      steps.push_back(&chain[k]);
      transposes = transposes || (chain[k].is(OpKind::Transpose) &&
                                  !keepsElementOrder(graph_, chain[k].operands[0], {&chain[k]}));
    }
    const ValueId source = chain[start].operands[0];
    if (!transposes || !keepsElementOrder(graph_, source, steps)) continue;
    if (typeOf(source) == types[0]) return Rewrite{source, std::nullopt, &counters_.viewChainsFolded};
    Attributes attrs;
    attrs.set("shape", dimsAttr(types[0].shape));
    return Rewrite{kNoValue, OpForm{OpKind::Reshape, {source}, attrs}, &counters_.viewChainsFolded};
  }
  return std::nullopt;
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewriteExpand(const Op& op,
                                                                   const std::vector<TensorType>& types) {
  const ValueId x = op.operands[0];
  if (op.attrs.has("shape")) {
    if (types[0] == typeOf(x)) return Rewrite{x, std::nullopt, &counters_.opsRemoved};
    return std::nullopt;
  }
  const SymbolicTensor* target = completeValue(op.operands[1]);
  if (!target) return std::nullopt;
  for (const Dim& d : target->elements)
    if (!knownNonNegative(d)) return std::nullopt;
  std::optional<Shape> shape = broadcastShapes(typeOf(x).shape, target->elements);
  if (!shape || !isComplete(*shape)) return std::nullopt;
  Attributes attrs;
  attrs.set("shape", dimsAttr(*shape));
  return Rewrite{kNoValue, OpForm{OpKind::Expand, {x}, attrs}, &counters_.expandsFolded};
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewriteConstantOfShape(const Op& op) {
  if (op.operands.empty()) return std::nullopt;
  const SymbolicTensor* target = completeValue(op.operands[0]);
  if (!target) return std::nullopt;
  for (const Dim& d : target->elements)
    if (!knownNonNegative(d)) return std::nullopt;
  Attributes attrs = op.attrs;
  attrs.set("shape", dimsAttr(target->elements));
  OpForm filled{OpKind::ConstantOfShape, {}, attrs};
  // A small static fill is a weight (unless it is a graph output, which a
  // weight cannot be).
  Dim count = 1;
  for (const Dim& d : target->elements) count = count * d;
  if (count.isConstant() && *count.constant() <= kMaxFilledWeightElements &&
      !rewriter_.isGraphOutput(op.results[0])) {
    Expected<std::vector<Tensor>> value = evaluateOp(opDef(filled.kind), filled.attrs, {}, 1);
    if (value) {
      const ValueId weight = rewriter_.addWeight(graph_.value(op.results[0]).name + ".value", (*value)[0]);
      return Rewrite{weight, std::nullopt, &counters_.fillsFolded};
    }
  }
  return Rewrite{kNoValue, std::move(filled), &counters_.fillsFolded};
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewriteRange(const Op& op) {
  if (op.operands.size() != 3) return std::nullopt;
  const DType dtype = typeOf(op.operands[0]).dtype;
  if (dtype != DType::I64 && dtype != DType::I32) return std::nullopt;
  const SymbolicTensor* start = completeValue(op.operands[0]);
  const SymbolicTensor* limit = completeValue(op.operands[1]);
  const SymbolicTensor* delta = completeValue(op.operands[2]);
  if (!start || !limit || !delta || start->elements.size() != 1 || limit->elements.size() != 1 ||
      delta->elements.size() != 1)
    return std::nullopt;
  const std::optional<int64_t> step = delta->elements[0].constant();
  // Numeric bounds are constant folding's business.
  if (!step || *step == 0 || (start->isConstant() && limit->isConstant())) return std::nullopt;
  Attributes attrs;
  attrs.set("start", start->elements);
  attrs.set("limit", limit->elements);
  attrs.set("delta", *step);
  attrs.set("dtype", std::string(dtypeName(dtype)));
  return Rewrite{kNoValue, OpForm{OpKind::Range, {}, attrs}, &counters_.rangesFolded};
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewriteSlice(const Op& op) {
  // A slice from 0, step 1, to its input's own type takes every element
  // (Phi slices its rotary tables to [0, seq) twice).
  if (op.operands.size() == 1 && typeOf(op.results[0]) == typeOf(op.operands[0]) && !op.attrs.has("steps")) {
    const std::optional<std::vector<Dim>> starts = op.attrs.getDims("starts");
    if (starts && std::all_of(starts->begin(), starts->end(), [](const Dim& d) { return d == Dim(0); }))
      return Rewrite{op.operands[0], std::nullopt, &counters_.opsRemoved};
  }
  if (op.operands.size() < 3) return std::nullopt;
  const SymbolicTensor* starts = completeValue(op.operands[1]);
  const SymbolicTensor* ends = completeValue(op.operands[2]);
  if (!starts || !ends || (starts->isConstant() && ends->isConstant())) return std::nullopt;
  auto constantList = [&](size_t i) -> std::optional<std::vector<int64_t>> {
    const SymbolicTensor* value = i < op.operands.size() ? knownValue(op.operands[i]) : nullptr;
    if (!value || !value->isConstant()) return std::nullopt;
    std::vector<int64_t> out;
    for (const Dim& d : value->elements) out.push_back(*d.constant());
    return out;
  };
  const bool hasAxes = op.operands.size() > 3 && op.operands[3] != kNoValue;
  const bool hasSteps = op.operands.size() > 4 && op.operands[4] != kNoValue;
  std::optional<std::vector<int64_t>> axes = constantList(3), steps = constantList(4);
  if ((hasAxes && !axes) || (hasSteps && !steps)) return std::nullopt;
  if (!axes) {
    axes.emplace();
    for (size_t i = 0; i < starts->elements.size(); ++i) axes->push_back(static_cast<int64_t>(i));
  }
  Attributes attrs;
  attrs.set("starts", starts->elements);
  attrs.set("ends", ends->elements);
  attrs.set("axes", *axes);
  if (steps && std::any_of(steps->begin(), steps->end(), [](int64_t s) { return s != 1; }))
    attrs.set("steps", *steps);
  return Rewrite{kNoValue, OpForm{OpKind::Slice, {op.operands[0]}, attrs}, &counters_.slicesFolded};
}

std::optional<Sequence> Canonicalizer::rangeOf(ValueId id) {
  if (const SymbolicTensor* value = completeValue(id); value && !value->elements.empty()) {
    const std::vector<Dim>& e = value->elements;
    const Dim delta = e.size() > 1 ? e[1] - e[0] : Dim(1);
    if (!delta.isConstant() || delta == Dim(0)) return std::nullopt;
    for (size_t i = 1; i < e.size(); ++i)
      if (e[i] - e[i - 1] != delta) return std::nullopt;
    return Sequence{e[0], e.back() + delta, *delta.constant()};
  }
  std::optional<Op> producer = producerOf(id);
  while (producer && isDimsReshape(*producer)) producer = producerOf(producer->operands[0]);
  if (producer && producer->is(OpKind::Slice)) return slicedPositions(*producer);
  if (!producer || !producer->is(OpKind::Range) || !producer->attrs.has("start")) return std::nullopt;
  return Sequence{(*producer->attrs.getDims("start"))[0], (*producer->attrs.getDims("limit"))[0],
                  producer->attrs.getInt("delta", 1)};
}

// slice(p, [s, e)) on the last axis of a weight p holding an arithmetic
// progression along it, its other dims 1 (BERT's position_ids buffer,
// arange(max_positions)[None]): the range of those elements.
std::optional<Sequence> Canonicalizer::slicedPositions(const Op& slice) {
  const Value& table = graph_.value(slice.operands[0]);
  if (table.kind != ValueKind::Weight || !table.data || !isInteger(table.data->dtype()) || slice.operands.size() != 1)
    return std::nullopt;
  const std::vector<int64_t>& dims = table.data->shape();
  const auto rank = static_cast<int64_t>(dims.size());
  if (rank == 0 || dims.back() < 2 || table.data->numElements() != dims.back()) return std::nullopt;
  const std::vector<int64_t> axes = slice.attrs.getInts("axes");
  const std::optional<std::vector<Dim>> starts = slice.attrs.getDims("starts"), ends = slice.attrs.getDims("ends");
  if (axes.size() != 1 || (axes[0] != -1 && axes[0] != rank - 1) || !starts || !ends || slice.attrs.has("steps"))
    return std::nullopt;
  const Tensor& values = *table.data;
  const int64_t first = values.elementAsInt(0), delta = values.elementAsInt(1) - first;
  for (int64_t i = 0; i < values.numElements(); ++i)
    if (values.elementAsInt(i) != first + i * delta) return std::nullopt;
  const std::optional<int64_t> start = (*starts)[0].constant();
  if (delta == 0 || !start || *start < 0) return std::nullopt;
  return Sequence{Dim(first) + Dim(delta) * (*starts)[0], Dim(first) + Dim(delta) * (*ends)[0], delta};
}

Canonicalizer::Rewrite Canonicalizer::reshapedTo(OpForm form, const Shape& fromShape, const Shape& shape,
                                                 int64_t* counter) {
  if (fromShape == shape) return Rewrite{kNoValue, std::move(form), counter};
  const ValueId value = createBeforeCurrent(std::move(form));
  if (value == kNoValue) return Rewrite{};
  Attributes attrs;
  attrs.set("shape", dimsAttr(shape));
  return Rewrite{kNoValue, OpForm{OpKind::Reshape, {value}, attrs}, counter};
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewriteGather(const Op& op,
                                                                   const std::vector<TensorType>& types) {
  if (std::optional<Rewrite> row = rewriteGatherOfOneRow(op, types)) return row;
  // One row of activations (a pooler's x[:, 0]) is one copy as a gather; as
  // a slice it would need a view to drop the axis.
  if (typeOf(op.operands[1]).rank() == 0 && isFloat(typeOf(op.operands[0]).dtype)) return std::nullopt;
  // gather(table, [a, a + d, ...]) takes rows a.. of the table: a slice, a
  // view the later passes understand, instead of an indexed copy.
  const ValueId data = op.operands[0];
  std::optional<Sequence> rows = rangeOf(op.operands[1]);
  const auto rank = static_cast<int64_t>(typeOf(data).rank());
  int64_t axis = op.attrs.getInt("axis");
  if (axis < 0) axis += rank;
  if (!rows || rows->delta <= 0 || !knownNonNegative(rows->start) || axis < 0 || axis >= rank ||
      !isComplete(types[0].shape))
    return std::nullopt;
  Attributes attrs;
  attrs.set("starts", dimsAttr({rows->start}));
  attrs.set("ends", dimsAttr({rows->limit}));
  attrs.set("axes", std::vector<int64_t>{axis});
  if (rows->delta != 1) attrs.set("steps", std::vector<int64_t>{rows->delta});
  OpForm slice{OpKind::Slice, {data}, attrs};
  std::vector<TensorType> sliceTypes;
  // The slice must be as exact as the gather (a constant row of a symbolic
  // dim, x[:, 0], cannot be proven in range, so it stays a gather).
  if (!rewriter_.inferTypes(slice, 1, sliceTypes) || !isComplete(sliceTypes[0].shape)) return std::nullopt;
  Rewrite rewritten =
      reshapedTo(std::move(slice), sliceTypes[0].shape, types[0].shape, &counters_.gathersToSlices);
  if (!rewritten.replacement) return std::nullopt;
  return rewritten;
}

std::optional<int64_t> Canonicalizer::uniformIndex(ValueId id) const {
  // Slices, expands and views select or repeat elements: a weight of one
  // value stays that value through them.
  std::optional<Op> producer = producerOf(id);
  while (producer && producer->isOneOf({OpKind::Slice, OpKind::Expand, OpKind::Reshape})) {
    id = producer->operands[0];
    producer = producerOf(id);
  }
  std::optional<double> value = splatValue(graph_, id);
  if (!value || !isInteger(typeOf(id).dtype)) return std::nullopt;
  return static_cast<int64_t>(*value);
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewriteGatherOfOneRow(const Op& op,
                                                                          const std::vector<TensorType>& types) {
  // gather(table, indices all k) is the table's row k broadcast: RoBERTa's
  // token types, an all-zero buffer sliced and expanded, look up one row.
  // As a slice, expanded, its consumers read it as a broadcast operand and
  // constant_fold makes it a weight.
  std::optional<int64_t> index = uniformIndex(op.operands[1]);
  const TensorType& table = typeOf(op.operands[0]);
  const auto rank = static_cast<int64_t>(table.rank());
  int64_t axis = op.attrs.getInt("axis");
  if (axis < 0) axis += rank;
  if (!index || !isWeight(graph_, op.operands[0]) || axis < 0 || axis >= rank || !isComplete(types[0].shape))
    return std::nullopt;
  const std::optional<int64_t> rows = table.shape[static_cast<size_t>(axis)].constant();
  const int64_t row = *index < 0 && rows ? *index + *rows : *index;
  if (!rows || row < 0 || row >= *rows) return std::nullopt;
  Attributes sliceAttrs;
  sliceAttrs.set("starts", std::vector<int64_t>{row});
  sliceAttrs.set("ends", std::vector<int64_t>{row + 1});
  sliceAttrs.set("axes", std::vector<int64_t>{axis});
  Shape rowShape(table.shape.begin(), table.shape.begin() + axis);
  rowShape.insert(rowShape.end(), typeOf(op.operands[1]).rank(), Dim(1));
  rowShape.insert(rowShape.end(), table.shape.begin() + axis + 1, table.shape.end());
  Attributes viewAttrs, expandAttrs;
  viewAttrs.set("shape", dimsAttr(rowShape));
  expandAttrs.set("shape", dimsAttr(types[0].shape));
  const ValueId slab = createBeforeCurrent(OpForm{OpKind::Slice, {op.operands[0]}, sliceAttrs});
  const ValueId view = slab == kNoValue ? kNoValue : createBeforeCurrent(OpForm{OpKind::Reshape, {slab}, viewAttrs});
  if (view == kNoValue) return std::nullopt;
  return Rewrite{kNoValue, OpForm{OpKind::Expand, {view}, expandAttrs}, &counters_.gathersOfOneRow};
}

namespace {

// The axes of `shape` whose dim is not the number 1.
std::vector<size_t> nonUnitAxes(const Shape& shape) {
  std::vector<size_t> axes;
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] != Dim(1)) axes.push_back(d);
  return axes;
}

// `shape` with `dim` inserted before index `at`.
Shape withDimAt(Shape shape, size_t at, const Dim& dim) {
  shape.insert(shape.begin() + static_cast<std::ptrdiff_t>(at), dim);
  return shape;
}

}  // namespace

ValueId Canonicalizer::rangeAlong(ValueId id, int64_t axis) const {
  const Shape& shape = typeOf(id).shape;
  std::optional<Op> producer = producerOf(id);
  if (!producer || axis < 0 || axis >= static_cast<int64_t>(shape.size())) return kNoValue;
  if (producer->is(OpKind::Range)) return shape.size() == 1 ? id : kNoValue;
  const ValueId source = producer->operands.empty() ? kNoValue : producer->operands[0];
  if (source == kNoValue) return kNoValue;
  const Shape& in = typeOf(source).shape;
  if (producer->is(OpKind::Expand)) {
    // numpy broadcast: the source's axes align with the last ones of the result.
    const int64_t inner = axis - static_cast<int64_t>(shape.size() - in.size());
    if (inner < 0 || in[static_cast<size_t>(inner)] != shape[static_cast<size_t>(axis)]) return kNoValue;
    return rangeAlong(source, inner);
  }
  if (!isDimsReshape(*producer)) return kNoValue;
  const std::vector<size_t> outer = nonUnitAxes(shape), inner = nonUnitAxes(in);
  if (outer.size() != inner.size()) return kNoValue;
  for (size_t i = 0; i < outer.size(); ++i) {
    if (shape[outer[i]] != in[inner[i]]) return kNoValue;
    if (outer[i] == static_cast<size_t>(axis)) return rangeAlong(source, static_cast<int64_t>(inner[i]));
  }
  return kNoValue;
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewriteGatherElements(const Op& op) {
  // gather_elements(table, idx) along an axis, idx[i] = r[i_axis] for a range
  // r and idx the table's shape on the other axes: gather(table, r), which the
  // positions rule takes as a slice (GPT-J's sincos rows by position).
  const ValueId table = op.operands[0], indices = op.operands[1];
  const Shape& tableShape = typeOf(table).shape;
  const Shape& indexShape = typeOf(indices).shape;
  const auto rank = static_cast<int64_t>(tableShape.size());
  int64_t axis = op.attrs.getInt("axis");
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank || indexShape.size() != tableShape.size()) return std::nullopt;
  for (int64_t d = 0; d < rank; ++d)
    if (d != axis && tableShape[static_cast<size_t>(d)] != indexShape[static_cast<size_t>(d)]) return std::nullopt;
  const ValueId positions = rangeAlong(indices, axis);
  if (positions == kNoValue) return std::nullopt;
  Attributes attrs;
  attrs.set("axis", axis);
  return Rewrite{kNoValue, OpForm{OpKind::Gather, {table, positions}, attrs}, &counters_.gatherElementsToGathers};
}

ValueId Canonicalizer::repeatedAlong(ValueId id, int64_t axis, int64_t& repeats) const {
  std::optional<Op> merge = producerOf(id);
  if (!merge || !isDimsReshape(*merge)) return kNoValue;
  std::optional<Op> expand = producerOf(merge->operands[0]);
  if (!expand || !expand->is(OpKind::Expand)) return kNoValue;
  std::optional<Op> insert = producerOf(expand->operands[0]);
  if (!insert || !isDimsReshape(*insert)) return kNoValue;
  const ValueId piece = insert->operands[0];
  const Shape& pieceShape = typeOf(piece).shape;
  const auto at = static_cast<size_t>(axis);
  if (at >= pieceShape.size() || pieceShape[at] != Dim(1)) return kNoValue;
  const Shape& spread = typeOf(merge->operands[0]).shape;
  std::optional<int64_t> count = spread.size() == pieceShape.size() + 1 ? spread[at + 1].constant() : std::nullopt;
  if (!count || *count < 1 || (repeats != 0 && *count != repeats)) return kNoValue;
  Shape merged = pieceShape;
  merged[at] = Dim(*count);
  if (typeOf(expand->operands[0]).shape != withDimAt(pieceShape, at + 1, Dim(1)) ||
      spread != withDimAt(pieceShape, at + 1, Dim(*count)) || typeOf(id).shape != merged)
    return kNoValue;
  repeats = *count;
  return piece;
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewriteRepeatInterleave(const Op& op,
                                                                           const std::vector<TensorType>& types) {
  const auto rank = static_cast<int64_t>(types[0].rank());
  int64_t axis = op.attrs.getInt("axis");
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank || op.operands.size() < 2) return std::nullopt;
  int64_t repeats = 0;
  std::optional<Op> split;
  for (size_t i = 0; i < op.operands.size(); ++i) {
    const ValueId piece = repeatedAlong(op.operands[i], axis, repeats);
    std::optional<Op> producer = piece == kNoValue ? std::nullopt : producerOf(piece);
    if (!producer || !producer->is(OpKind::Split) || producer->results.size() != op.operands.size() ||
        producer->results[i] != piece || (split && split->results != producer->results))
      return std::nullopt;
    split = producer;
  }
  const ValueId x = split->operands[0];
  const Shape& xShape = typeOf(x).shape;
  int64_t splitAxis = split->attrs.getInt("axis");
  if (splitAxis < 0) splitAxis += rank;
  if (splitAxis != axis || static_cast<int64_t>(xShape.size()) != rank) return std::nullopt;
  const auto at = static_cast<size_t>(axis) + 1;
  Attributes insertAttrs, spreadAttrs, mergeAttrs;
  insertAttrs.set("shape", dimsAttr(withDimAt(xShape, at, Dim(1))));
  spreadAttrs.set("shape", dimsAttr(withDimAt(xShape, at, Dim(repeats))));
  mergeAttrs.set("shape", dimsAttr(types[0].shape));
  const ValueId inserted = createBeforeCurrent(OpForm{OpKind::Reshape, {x}, insertAttrs});
  const ValueId spread =
      inserted == kNoValue ? kNoValue : createBeforeCurrent(OpForm{OpKind::Expand, {inserted}, spreadAttrs});
  if (spread == kNoValue) return std::nullopt;
  return Rewrite{kNoValue, OpForm{OpKind::Reshape, {spread}, mergeAttrs}, &counters_.repeatInterleavesFolded};
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewriteRangeShift(const Op& op,
                                                                       const std::vector<TensorType>& types) {
  // range(a, b) + k == range(a + k, b + k): the positions of a decoder step
  // (arange(seq) + past) stay one op the attention matcher can read.
  const bool isSub = op.is(OpKind::Sub);
  for (size_t side = 0; side < (isSub ? 1u : 2u); ++side) {
    const ValueId positions = op.operands[side];
    const SymbolicTensor* offset = completeValue(op.operands[1 - side]);
    if (!offset || offset->elements.size() != 1 || types[0] != typeOf(positions)) continue;
    std::optional<Op> producer = producerOf(positions);
    while (producer && isDimsReshape(*producer)) producer = producerOf(producer->operands[0]);
    if (!producer || !producer->is(OpKind::Range) || !producer->attrs.has("start")) continue;
    const Dim k = offset->elements[0];
    const Dim start = (*producer->attrs.getDims("start"))[0], limit = (*producer->attrs.getDims("limit"))[0];
    Attributes attrs = producer->attrs;
    attrs.set("start", std::vector<Dim>{isSub ? start - k : start + k});
    attrs.set("limit", std::vector<Dim>{isSub ? limit - k : limit + k});
    OpForm shifted{OpKind::Range, {}, attrs};
    std::vector<TensorType> shiftedTypes;
    if (!rewriter_.inferTypes(shifted, 1, shiftedTypes)) continue;
    Rewrite rewritten =
        reshapedTo(std::move(shifted), shiftedTypes[0].shape, types[0].shape, &counters_.rangesShifted);
    if (rewritten.replacement) return rewritten;
  }
  return std::nullopt;
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewriteNeutralOperand(const Op& op,
                                                                          const std::vector<TensorType>& types) {
  // x * 1, 1 * x, x / 1 and x - 0 are x, bit for bit (x + 0 is not: -0 + 0
  // is +0). BLOOM scales its ALiBi bias by baddbmm's beta, 1.
  const bool commutes = op.is(OpKind::Mul);
  const double neutral = op.is(OpKind::Sub) ? 0.0 : 1.0;
  for (size_t side = 0; side < (commutes ? 2u : 1u); ++side) {
    const ValueId x = op.operands[side];
    std::optional<double> other = splatValue(graph_, op.operands[1 - side]);
    if (other && *other == neutral && typeOf(x) == types[0]) return Rewrite{x, std::nullopt, &counters_.opsRemoved};
  }
  return std::nullopt;
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewriteAddOverConcat(const Op& op,
                                                                          const std::vector<TensorType>& types) {
  // concat(p0, p1, ..) + w, w a weight, is concat(p0 + w0, p1 + w1, ..) with
  // wi w's part over pi: ViT's position rows added to its class token and
  // patches. Taken only when every part absorbs its add: a weight expanded
  // (the sum is a new weight, expanded) or a product, or a product plus a
  // bias, read only by the concat (the add becomes its residual in
  // matmul_epilogue_fusion). Each element is the same sum either way.
  for (size_t side : {size_t{0}, size_t{1}}) {
    std::optional<Op> concat = producerOf(op.operands[side]);
    const ValueId w = op.operands[1 - side];
    if (!concat || !concat->is(OpKind::Concat) || !isWeight(graph_, w) || typeOf(op.operands[side]) != types[0])
      continue;
    const auto rank = static_cast<int64_t>(types[0].rank());
    int64_t axis = concat->attrs.getInt("axis");
    if (axis < 0) axis += rank;
    const int64_t wAxis = axis - (rank - static_cast<int64_t>(typeOf(w).rank()));
    const bool whole = wAxis < 0 || typeOf(w).shape[static_cast<size_t>(wAxis)].constant() == 1;
    // Checked for every part before any is made.
    auto fits = [&](ValueId piece) {
      return absorbsAdd(piece) && typeOf(piece).shape[static_cast<size_t>(axis)].isConstant();
    };
    if (!std::all_of(concat->operands.begin(), concat->operands.end(), fits)) return std::nullopt;
    std::vector<ValueId> parts;
    int64_t offset = 0;
    for (ValueId piece : concat->operands) {
      const std::optional<int64_t> extent = typeOf(piece).shape[static_cast<size_t>(axis)].constant();
      ValueId part = w;
      if (!whole) {
        Attributes range;
        range.set("starts", std::vector<int64_t>{offset});
        range.set("ends", std::vector<int64_t>{offset + *extent});
        range.set("axes", std::vector<int64_t>{wAxis});
        Expected<Tensor> sliced = evaluateConstant(OpKind::Slice, {&*graph_.value(w).data}, range);
        if (!sliced) return std::nullopt;
        part = rewriter_.addWeight(graph_.value(w).name, std::move(*sliced));
      }
      offset += *extent;
      const ValueId absorbed = addAbsorbedBy(piece, part);
      if (absorbed == kNoValue) return std::nullopt;
      parts.push_back(absorbed);
    }
    return Rewrite{kNoValue, OpForm{OpKind::Concat, parts, concat->attrs}, &counters_.addsOverConcats};
  }
  return std::nullopt;
}

bool Canonicalizer::absorbsAdd(ValueId piece) const {
  std::optional<Op> producer = producerOf(piece);
  if (!producer) return false;
  if (producer->is(OpKind::Expand)) return isWeight(graph_, producer->operands[0]);
  // A product, or a product plus a bias weight (the epilogue takes the bias
  // first, then this add as the residual).
  auto isProduct = [&](const Op& p) { return p.isOneOf({OpKind::Matmul, OpKind::Gemm}) && p.operands.size() <= 3; };
  bool product = isProduct(*producer);
  if (producer->is(OpKind::Add) && producer->operands.size() == 2)
    for (size_t k : {size_t{0}, size_t{1}}) {
      std::optional<Op> inner = producerOf(producer->operands[k]);
      product = product || (inner && isProduct(*inner) && isWeight(graph_, producer->operands[1 - k]) &&
                            rewriter_.useCount(producer->operands[k]) == 1);
    }
  return product && rewriter_.useCount(piece) == 1;
}

ValueId Canonicalizer::addAbsorbedBy(ValueId piece, ValueId part) {
  const Op producer = *producerOf(piece);
  if (!producer.is(OpKind::Expand)) return createBeforeCurrent(OpForm{OpKind::Add, {piece, part}, {}});
  Expected<Tensor> sum =
      evaluateConstant(OpKind::Add, {&*graph_.value(producer.operands[0]).data, &*graph_.value(part).data});
  if (!sum) return kNoValue;
  const ValueId folded = rewriter_.addWeight(graph_.value(producer.operands[0]).name, std::move(*sum));
  return createBeforeCurrent(OpForm{OpKind::Expand, {folded}, producer.attrs});
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewriteBroadcastOperands(
    const Op& op, const std::vector<TensorType>& types) {
  // A [S, D] table reshaped to [1, S, D] and added to [B, S, D] broadcasts
  // the same without the reshape; so does a [B, 1] norm expanded to
  // [B, D] that divides a [B, D] value (F.normalize), and a fill of one
  // value (T5's min with constant_of_shape) as that value alone. Each
  // operand is checked on its own: the result must keep its type (dropping
  // the 1-dims must not lower its rank).
  OpForm rewritten{op.kind(), op.operands, op.attrs};
  int64_t* counter = nullptr;
  for (size_t i = *firstBroadcastOperand(op); i < op.operands.size(); ++i) {
    const ValueId operand = op.operands[i];
    if (operand == kNoValue) continue;
    std::optional<Op> view = producerOf(operand);
    if (!view || !view->isOneOf({OpKind::Reshape, OpKind::Expand, OpKind::ConstantOfShape})) continue;
    if (view->is(OpKind::ConstantOfShape) && !view->operands.empty()) continue;
    const ValueId source = view->is(OpKind::ConstantOfShape) ? fillScalar(*view) : view->operands[0];
    if (view->is(OpKind::Reshape) && !insertsLeadingOnes(typeOf(source).shape, typeOf(operand).shape)) continue;
    OpForm candidate = rewritten;
    std::replace(candidate.operands.begin(), candidate.operands.end(), operand, source);
    std::vector<TensorType> candidateTypes;
    if (!rewriter_.inferTypes(candidate, static_cast<int>(op.results.size()), candidateTypes) ||
        candidateTypes != types)
      continue;
    rewritten = std::move(candidate);
    counter = view->is(OpKind::Reshape) ? &counters_.broadcastReshapesBypassed : &counters_.broadcastExpandsBypassed;
    if (view->is(OpKind::ConstantOfShape)) counter = &counters_.broadcastFillsBypassed;
  }
  if (!counter) return std::nullopt;
  return Rewrite{kNoValue, std::move(rewritten), counter};
}

ValueId Canonicalizer::fillScalar(const Op& fill) {
  const DType dtype = typeOf(fill.results[0]).dtype;
  const double value = fill.attrs.getFloat("value", 0.0);
  const auto key = std::make_pair(static_cast<int>(dtype), value);
  if (auto found = fillScalars_.find(key); found != fillScalars_.end()) return found->second;
  Tensor scalar = Tensor::allocate(dtype, {});
  visitDType(dtype, [&](auto tag) {
    using T = decltype(tag);
    *scalar.data<T>() = storeFromDouble<T>(value);
  });
  const ValueId weight = rewriter_.addWeight("fill", std::move(scalar));
  fillScalars_.emplace(key, weight);
  return weight;
}

std::optional<Canonicalizer::Rewrite> Canonicalizer::rewriteClip(const Op& op) {
  // clip(x, lo) is max(x, lo), clip(x, _, hi) min(x, hi), for a number lo or
  // hi (NaN keeps the clip: it would make max NaN everywhere): ops
  // elementwise fusion can join into a program.
  const bool low = op.operands.size() > 1 && op.operands[1] != kNoValue;
  const bool high = op.operands.size() > 2 && op.operands[2] != kNoValue;
  if (low == high) return std::nullopt;
  const ValueId bound = op.operands[low ? 1 : 2];
  const Value& value = graph_.value(bound);
  if (value.kind != ValueKind::Weight || !value.data || value.data->numElements() != 1 ||
      std::isnan(value.data->elementAsDouble(0)))
    return std::nullopt;
  return Rewrite{kNoValue, OpForm{low ? OpKind::Max : OpKind::Min, {op.operands[0], bound}, {}},
                 &counters_.clipsToMaxMin};
}

Expected<bool> Canonicalizer::run(PassStatistics& statistics) {
  const auto originalOpCount = static_cast<int32_t>(rewriter_.originalOpCount());
  for (int32_t index = 0; index < originalOpCount; ++index) {
    const Op& op = rewriter_.op(index);
    const std::string context =
        cat("op '", op.def->name, "'", op.results.empty() ? "" : cat(" defining %", graph_.value(op.results[0]).name),
            op.location.empty() ? "" : cat(" (loc \"", op.location, "\")"), ": ");
    if (Status processed = process(index); !processed) return processed.withContext(context);
  }
  KILN_RETURN_IF_ERROR(rewriter_.commit());

  // The folded arithmetic is dead now.
  std::unique_ptr<Pass> dce = createDeadCodeElimination();
  Expected<bool> cleaned = dce->run(graph_);
  if (!cleaned) return cleaned.status();
  int64_t deadOps = 0;
  for (const auto& [counter, value] : dce->statistics().all())
    if (counter == "ops-removed") deadOps = value;
  graph_.compact();

  const Counters& c = counters_;
  const std::pair<const char*, int64_t> reported[] = {
      {"constants-materialized", c.constantsMaterialized},
      {"reshapes-folded", c.reshapesFolded},
      {"expands-folded", c.expandsFolded},
      {"fills-folded", c.fillsFolded},
      {"slices-folded", c.slicesFolded},
      {"ranges-folded", c.rangesFolded},
      {"gathers-to-slices", c.gathersToSlices},
      {"ranges-shifted", c.rangesShifted},
      {"views-to-reshape", c.viewsToReshape},
      {"reshapes-composed", c.reshapesComposed},
      {"casts-composed", c.castsComposed},
      {"no-ops-removed", c.opsRemoved},
      {"broadcast-reshapes-bypassed", c.broadcastReshapesBypassed},
      {"broadcast-expands-bypassed", c.broadcastExpandsBypassed},
      {"broadcast-fills-bypassed", c.broadcastFillsBypassed},
      {"clips-to-max-min", c.clipsToMaxMin},
      {"gather-elements-to-gathers", c.gatherElementsToGathers},
      {"gathers-of-one-row", c.gathersOfOneRow},
      {"view-chains-folded", c.viewChainsFolded},
      {"adds-over-concats", c.addsOverConcats},
      {"repeat-interleaves-folded", c.repeatInterleavesFolded},
      {"symbols-unified", c.symbolsUnified},
      {"types-refined", c.typesRefined},
      {"dead-ops-removed", deadOps},
  };
  bool changed = *cleaned;
  for (const auto& [counter, value] : reported) {
    statistics.add(counter, value);
    changed = changed || value != 0;
  }
  return changed;
}

class Canonicalize final : public Pass {
 public:
  std::string_view name() const override { return "canonicalize"; }
  std::string_view summary() const override {
    return "folds shape arithmetic into symbolic dims and removes no-op ops; re-infers types";
  }
  Expected<bool> run(Graph& graph) override { return Canonicalizer(graph).run(statistics_); }
};

}  // namespace

std::unique_ptr<Pass> createCanonicalize() { return std::make_unique<Canonicalize>(); }

}  // namespace kiln
