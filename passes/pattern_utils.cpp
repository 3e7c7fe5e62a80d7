#include "passes/pattern_utils.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "backends/reference/reference.h"
#include "ir/builder.h"
#include "ir/op_registry.h"

namespace kiln {

// ---- Rewriter

Rewriter::Rewriter(Graph& graph)
    : graph_(graph),
      originalOpCount_(graph.ops().size()),
      originalValueCount_(static_cast<ValueId>(graph.values().size())),
      users_(graph.values().size()),
      outputUses_(graph.values().size(), 0),
      marked_(graph.ops().size(), false) {
  for (size_t i = 0; i < graph.ops().size(); ++i) addUses(static_cast<int32_t>(i));
  for (ValueId id : graph.outputs()) ++outputUses_[static_cast<size_t>(id)];
}

void Rewriter::addUses(int32_t opIndex) {
  users_.resize(graph_.values().size());
  outputUses_.resize(graph_.values().size(), 0);
  for (ValueId id : op(opIndex).operands)
    if (id != kNoValue) users_[static_cast<size_t>(id)].push_back(opIndex);
}

const std::vector<int32_t>& Rewriter::users(ValueId value) const {
  static const std::vector<int32_t> kNone;
  const size_t i = static_cast<size_t>(value);
  return value >= 0 && i < users_.size() ? users_[i] : kNone;
}

bool Rewriter::isGraphOutput(ValueId value) const {
  const size_t i = static_cast<size_t>(value);
  return value >= 0 && i < outputUses_.size() && outputUses_[i] > 0;
}

size_t Rewriter::useCount(ValueId value) const {
  const size_t i = static_cast<size_t>(value);
  const size_t outputs = value >= 0 && i < outputUses_.size() ? static_cast<size_t>(outputUses_[i]) : 0;
  return users(value).size() + outputs;
}

int32_t Rewriter::soleUser(ValueId value) const {
  return useCount(value) == 1 && users(value).size() == 1 ? users(value).front() : -1;
}

bool Rewriter::isConfined(const std::vector<int32_t>& ops, int32_t root) const {
  for (int32_t index : ops) {
    if (index == root) continue;
    for (ValueId result : op(index).results) {
      if (isGraphOutput(result)) return false;
      for (int32_t user : users(result))
        if (std::find(ops.begin(), ops.end(), user) == ops.end()) return false;
    }
  }
  return true;
}

int32_t Rewriter::producerIndex(ValueId value) const {
  if (value == kNoValue) return -1;
  const Value& v = graph_.value(value);
  return v.kind == ValueKind::OpResult ? v.producer : -1;
}

const Op* Rewriter::producer(ValueId value, OpKind kind) const {
  const int32_t index = producerIndex(value);
  if (index < 0 || isMarked(index)) return nullptr;
  const Op& producerOp = op(index);
  return producerOp.is(kind) ? &producerOp : nullptr;
}

Expected<std::vector<ValueId>> Rewriter::create(int32_t anchor, OpKind kind,
                                                std::vector<ValueId> operands, Attributes attrs,
                                                int numResults, std::string location) {
  Builder builder(graph_);
  Expected<std::vector<ValueId>> results =
      builder.create(kind, std::move(operands), std::move(attrs), numResults, std::move(location));
  if (!results) return results.status();
  anchors_.push_back(anchor);
  addUses(static_cast<int32_t>(graph_.ops().size() - 1));
  changed_ = true;
  return results;
}

Expected<ValueId> Rewriter::create1(int32_t anchor, OpKind kind,
                                    std::vector<ValueId> operands, Attributes attrs,
                                    std::string location) {
  Expected<std::vector<ValueId>> results =
      create(anchor, kind, std::move(operands), std::move(attrs), 1, std::move(location));
  if (!results) return results.status();
  return results->front();
}

Status Rewriter::inferTypes(const OpForm& form, int numResults, std::vector<TensorType>& types) const {
  return inferResultTypes(opDef(form.kind), form.attrs, operandInfos(graph_, form.operands), numResults, types);
}

void Rewriter::reform(int32_t index, OpForm form) {
  Op& target = graph_.ops()[static_cast<size_t>(index)];
  for (ValueId id : target.operands)
    if (id != kNoValue) std::erase(users_[static_cast<size_t>(id)], index);
  target.def = &opDef(form.kind);
  target.operands = std::move(form.operands);
  target.attrs = std::move(form.attrs);
  addUses(index);
  changed_ = true;
}

ValueId Rewriter::addWeight(const std::string& base, Tensor data) {
  ValueId id = graph_.addWeight(graph_.uniqueName(base), std::move(data));
  users_.resize(graph_.values().size());
  outputUses_.resize(graph_.values().size(), 0);
  changed_ = true;
  return id;
}

bool Rewriter::placedAfter(int32_t a, int32_t b) const {
  // Created ops go before their anchor, in creation order; an original op
  // after every op anchored to it.
  auto position = [&](int32_t index) {
    const size_t i = static_cast<size_t>(index);
    constexpr int32_t kLast = std::numeric_limits<int32_t>::max();
    return i < originalOpCount_ ? std::pair<int32_t, int32_t>(index, kLast)
                                : std::pair<int32_t, int32_t>(anchors_[i - originalOpCount_], index);
  };
  return position(a) > position(b);
}

bool Rewriter::moveUses(ValueId from, ValueId to, int32_t after) {
  std::vector<int32_t> fromUsers = std::move(users_[static_cast<size_t>(from)]);
  users_[static_cast<size_t>(from)].clear();
  for (int32_t user : fromUsers) {
    if (after >= 0 && !placedAfter(user, after)) {
      users_[static_cast<size_t>(from)].push_back(user);
      continue;
    }
    // A slot is listed once per occurrence: an op reading `from` twice has
    // both slots rewritten here and is listed twice for `to`.
    for (ValueId& operand : graph_.ops()[static_cast<size_t>(user)].operands)
      if (operand == from) operand = to;
    users_[static_cast<size_t>(to)].push_back(user);
  }
  if (outputUses_[static_cast<size_t>(from)] == 0) return false;
  std::vector<ValueId> outputs = graph_.outputs();
  std::replace(outputs.begin(), outputs.end(), from, to);
  graph_.setOutputs(std::move(outputs));
  outputUses_[static_cast<size_t>(to)] += outputUses_[static_cast<size_t>(from)];
  outputUses_[static_cast<size_t>(from)] = 0;
  return true;
}

Status Rewriter::replace(ValueId from, ValueId to) {
  if (from == to) return Status::ok();
  moveUses(from, to, -1);
  Value& target = graph_.value(to);
  const TensorType& fromType = graph_.value(from).type;
  if (target.type != fromType) {
    // The old type may be the more precise one (the fused op's inference
    // knows less); otherwise the users' types must be inferred again.
    if (refines(fromType, target.type)) target.type = fromType;
    else typesNeedRefresh_ = true;
  }
  if (to >= originalValueCount_ && graph_.value(from).kind == ValueKind::OpResult) {
    const std::string name = graph_.value(from).name;
    KILN_RETURN_IF_ERROR(graph_.rename(from, graph_.uniqueName(name + ".replaced")));
    KILN_RETURN_IF_ERROR(graph_.rename(to, name));
  }
  changed_ = true;
  return Status::ok();
}

void Rewriter::bypass(ValueId from, ValueId to) {
  if (moveUses(from, to, producerIndex(to))) outputRenames_.emplace_back(from, to);
  if (graph_.value(from).type != graph_.value(to).type) typesNeedRefresh_ = true;
  changed_ = true;
}

void Rewriter::discardCreated(size_t count) {
  for (size_t index = graph_.ops().size(); index-- > originalOpCount_ + count;)
    for (ValueId id : graph_.ops()[index].operands)
      if (id != kNoValue) std::erase(users_[static_cast<size_t>(id)], static_cast<int32_t>(index));
  graph_.ops().resize(originalOpCount_ + count);
  anchors_.resize(count);
}

void Rewriter::mark(int32_t index) {
  if (index >= 0 && static_cast<size_t>(index) < marked_.size()) marked_[static_cast<size_t>(index)] = true;
}

void Rewriter::mark(const std::vector<int32_t>& indices) {
  for (int32_t index : indices) mark(index);
}

bool Rewriter::isMarked(int32_t index) const {
  return index >= 0 && static_cast<size_t>(index) < marked_.size() && marked_[static_cast<size_t>(index)];
}

Status Rewriter::commit() {
  if (!changed_) return Status::ok();
  for (const auto& [from, to] : outputRenames_) {
    const std::string name = graph_.value(from).name;
    KILN_RETURN_IF_ERROR(graph_.rename(from, graph_.uniqueName(name + "_unfused")));
    KILN_RETURN_IF_ERROR(graph_.rename(to, name));
  }
  const std::vector<Op>& ops = graph_.ops();
  std::vector<int64_t> uses(graph_.values().size(), 0);
  for (const Op& o : ops)
    for (ValueId id : o.operands)
      if (id != kNoValue) ++uses[static_cast<size_t>(id)];
  for (ValueId id : graph_.outputs()) ++uses[static_cast<size_t>(id)];

  // Backwards, so a marked op used only by later marked ops goes too.
  std::vector<bool> removed(originalOpCount_, false);
  for (size_t i = originalOpCount_; i-- > 0;) {
    if (!marked_[i]) continue;
    bool dead = true;
    for (ValueId result : ops[i].results) dead = dead && uses[static_cast<size_t>(result)] == 0;
    if (!dead) continue;
    removed[i] = true;
    for (ValueId id : ops[i].operands)
      if (id != kNoValue) --uses[static_cast<size_t>(id)];
  }

  std::vector<std::vector<size_t>> createdBefore(originalOpCount_ + 1);
  for (size_t k = 0; k < anchors_.size(); ++k) {
    const size_t anchor = std::min(static_cast<size_t>(std::max(anchors_[k], 0)), originalOpCount_);
    createdBefore[anchor].push_back(originalOpCount_ + k);
  }
  std::vector<Op> ordered;
  ordered.reserve(ops.size());
  for (size_t i = 0; i <= originalOpCount_; ++i) {
    for (size_t created : createdBefore[i]) ordered.push_back(ops[created]);
    if (i < originalOpCount_ && !removed[i]) ordered.push_back(ops[i]);
  }
  graph_.setOps(std::move(ordered));
  if (typesNeedRefresh_) KILN_RETURN_IF_ERROR(refreshTypes());
  graph_.compact();
  return Status::ok();
}

Status Rewriter::refreshTypes() {
  for (const Op& o : graph_.ops()) {
    std::vector<TensorType> inferred;
    Status status = inferResultTypes(*o.def, o.attrs, operandInfos(graph_, o.operands),
                                     static_cast<int>(o.results.size()), inferred);
    if (!status) return status.withContext(cat("op '", o.def->name, "' (loc \"", o.location, "\"): "));
    for (size_t i = 0; i < o.results.size(); ++i) {
      TensorType& declared = graph_.value(o.results[i]).type;
      declared = mergeTypes(inferred[i], declared);
    }
  }
  return Status::ok();
}

// ---- Types

bool compatibleDims(const Dim& a, const Dim& b) {
  return a.isUnknown() || b.isUnknown() || a == b;
}

bool compatibleTypes(const TensorType& a, const TensorType& b) {
  if (a.dtype != b.dtype || a.rank() != b.rank()) return false;
  for (size_t i = 0; i < a.rank(); ++i)
    if (!compatibleDims(a.shape[i], b.shape[i])) return false;
  return true;
}

TensorType mergeTypes(const TensorType& inferred, const TensorType& declared) {
  if (inferred.dtype != declared.dtype || inferred.rank() != declared.rank()) return inferred;
  TensorType merged = inferred;
  for (size_t d = 0; d < merged.rank(); ++d)
    if (merged.shape[d].isUnknown()) merged.shape[d] = declared.shape[d];
  return merged;
}

// ---- Constants

std::optional<double> splatValue(const Graph& graph, ValueId value) {
  if (value == kNoValue) return std::nullopt;
  const Value& v = graph.value(value);
  if (v.kind != ValueKind::Weight || !v.data || v.data->numElements() == 0) return std::nullopt;
  if (!isFloat(v.data->dtype()) && !isInteger(v.data->dtype())) return std::nullopt;
  const double first = v.data->elementAsDouble(0);
  if (std::isnan(first)) return std::nullopt;
  for (int64_t i = 1; i < v.data->numElements(); ++i)
    if (v.data->elementAsDouble(i) != first) return std::nullopt;
  return first;
}

bool nearlyEqual(double a, double b, double tolerance) {
  return std::fabs(a - b) <= tolerance * std::max(std::fabs(a), std::fabs(b));
}

bool isSplat(const Graph& graph, ValueId value, double expected, double tolerance) {
  std::optional<double> splat = splatValue(graph, value);
  return splat && nearlyEqual(*splat, expected, tolerance);
}

ValueId otherOperand(const Op& op, ValueId known) {
  if (op.operands.size() != 2) return kNoValue;
  if (op.operands[0] == known) return op.operands[1];
  if (op.operands[1] == known) return op.operands[0];
  return kNoValue;
}

// ---- Products

namespace {

bool isExpandable(const Rewriter& rewriter, ValueId value, int32_t parent) {
  const int32_t index = rewriter.producerIndex(value);
  if (index < 0 || rewriter.isMarked(index)) return false;
  if (parent >= 0 && rewriter.soleUser(value) != parent) return false;
  const Op& op = rewriter.op(index);
  const Graph& graph = rewriter.graph();
  const OpKind kind = op.kind();
  if (kind == OpKind::Mul || kind == OpKind::Neg) return true;
  if (kind == OpKind::Div) {
    std::optional<double> divisor = splatValue(graph, op.operands[1]);
    return divisor && *divisor != 0.0;
  }
  if (kind == OpKind::Pow) {
    std::optional<double> exponent = splatValue(graph, op.operands[1]);
    return exponent && *exponent >= 1.0 && *exponent <= 4.0 && *exponent == std::floor(*exponent);
  }
  return false;
}

Product flattenFrom(const Rewriter& rewriter, ValueId value, int32_t parent) {
  const Graph& graph = rewriter.graph();
  Product product;
  if (std::optional<double> constant = splatValue(graph, value)) {
    product.coefficient = *constant;
    return product;
  }
  if (!isExpandable(rewriter, value, parent)) {
    product.factors.push_back(value);
    return product;
  }
  const int32_t index = rewriter.producerIndex(value);
  const Op& op = rewriter.op(index);
  const OpKind kind = op.kind();
  product.ops.push_back(index);
  auto absorb = [&](const Product& part, int times) {
    for (int t = 0; t < times; ++t) {
      product.coefficient *= part.coefficient;
      product.factors.insert(product.factors.end(), part.factors.begin(), part.factors.end());
    }
    product.ops.insert(product.ops.end(), part.ops.begin(), part.ops.end());
  };
  if (kind == OpKind::Mul) {
    absorb(flattenFrom(rewriter, op.operands[0], index), 1);
    absorb(flattenFrom(rewriter, op.operands[1], index), 1);
  } else if (kind == OpKind::Neg) {
    product.coefficient = -1.0;
    absorb(flattenFrom(rewriter, op.operands[0], index), 1);
  } else if (kind == OpKind::Div) {
    product.coefficient = 1.0 / *splatValue(graph, op.operands[1]);
    absorb(flattenFrom(rewriter, op.operands[0], index), 1);
  } else {  // pow by a small integer
    const int exponent = static_cast<int>(*splatValue(graph, op.operands[1]));
    absorb(flattenFrom(rewriter, op.operands[0], index), exponent);
  }
  return product;
}

}  // namespace

Product flattenProduct(const Rewriter& rewriter, ValueId root) {
  return flattenFrom(rewriter, root, -1);
}

bool sameFactors(std::vector<ValueId> factors, std::vector<ValueId> expected) {
  std::sort(factors.begin(), factors.end());
  std::sort(expected.begin(), expected.end());
  return factors == expected;
}

// ---- Activations

namespace {

void append(std::vector<int32_t>& ops, const std::vector<int32_t>& more) {
  ops.insert(ops.end(), more.begin(), more.end());
}

// `sum` = add(1, term) in either order: returns term's producer when it is
// of `kind`, and records the add.
const Op* onePlus(const Rewriter& rewriter, ValueId sum, OpKind kind,
                  std::vector<int32_t>& ops) {
  const Op* add = rewriter.producer(sum, OpKind::Add);
  if (!add) return nullptr;
  for (int k = 0; k < 2; ++k) {
    if (!isSplat(rewriter.graph(), add->operands[static_cast<size_t>(1 - k)], 1.0)) continue;
    const ValueId term = add->operands[static_cast<size_t>(k)];
    if (const Op* inner = rewriter.producer(term, kind)) {
      ops.push_back(rewriter.producerIndex(sum));
      ops.push_back(rewriter.producerIndex(term));
      return inner;
    }
  }
  return nullptr;
}

// x * (1 + erf(x / sqrt(2))) with the 0.5 already taken out: `factor` is the
// (1 + erf) term.
bool isGeluErfFactor(const Rewriter& rewriter, ValueId x, ValueId factor, std::vector<int32_t>& ops) {
  std::vector<int32_t> found;
  const Op* erf = onePlus(rewriter, factor, OpKind::Erf, found);
  if (!erf) return false;
  const Product scaled = flattenProduct(rewriter, erf->operands[0]);
  if (!sameFactors(scaled.factors, {x}) || !nearlyEqual(scaled.coefficient, 1.0 / std::numbers::sqrt2))
    return false;
  append(ops, found);
  append(ops, scaled.ops);
  return true;
}

// x + 0.044715 * x^3, the product's one factor, its sum's ops added to `ops`.
bool isGeluCubicSum(const Rewriter& rewriter, ValueId x, ValueId inner, std::vector<int32_t>& ops) {
  const Op* sum = rewriter.producer(inner, OpKind::Add);
  if (!sum || rewriter.soleUser(inner) < 0) return false;
  const ValueId cubic = otherOperand(*sum, x);
  if (cubic == kNoValue || cubic == x) return false;
  const Product cube = flattenProduct(rewriter, cubic);
  if (!sameFactors(cube.factors, {x, x, x}) || !nearlyEqual(cube.coefficient, 0.044715)) return false;
  ops.push_back(rewriter.producerIndex(inner));
  append(ops, cube.ops);
  return true;
}

// x * (1 + 0.044715 * x^2), factored (BLOOM): the product's factors.
bool isGeluFactoredCubic(const Rewriter& rewriter, ValueId x, const std::vector<ValueId>& factors,
                         std::vector<int32_t>& ops) {
  if (factors.size() != 2) return false;
  const ValueId onePlusSquare = factors[0] == x ? factors[1] : factors[0];
  if (onePlusSquare == x || (factors[0] != x && factors[1] != x)) return false;
  std::vector<int32_t> found;
  const Op* square = onePlus(rewriter, onePlusSquare, OpKind::Mul, found);
  if (!square) return false;
  const Product squared = flattenProduct(rewriter, square->results[0]);
  if (!sameFactors(squared.factors, {x, x}) || !nearlyEqual(squared.coefficient, 0.044715)) return false;
  ops.push_back(found.front());  // the add; the product lists its own ops
  append(ops, squared.ops);
  return true;
}

// (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))), the cubic summed or factored.
bool isGeluTanhFactor(const Rewriter& rewriter, ValueId x, ValueId factor, std::vector<int32_t>& ops) {
  std::vector<int32_t> found;
  const Op* tanh = onePlus(rewriter, factor, OpKind::Tanh, found);
  if (!tanh) return false;
  const Product scaled = flattenProduct(rewriter, tanh->operands[0]);
  const double kSqrt2OverPi = std::sqrt(2.0 / std::numbers::pi);
  if (!nearlyEqual(scaled.coefficient, kSqrt2OverPi)) return false;
  const bool summed = scaled.factors.size() == 1 && isGeluCubicSum(rewriter, x, scaled.factors.front(), found);
  if (!summed && !isGeluFactoredCubic(rewriter, x, scaled.factors, found)) return false;
  append(ops, found);
  append(ops, scaled.ops);
  return true;
}

}  // namespace

std::optional<ActivationMatch> matchActivation(const Rewriter& rewriter, int32_t root) {
  if (rewriter.isMarked(root)) return std::nullopt;
  const Op& op = rewriter.op(root);
  const OpKind kind = op.kind();
  if (op.results.size() != 1) return std::nullopt;
  ActivationMatch match;
  match.ops = {root};
  if (kind == OpKind::Relu || kind == OpKind::Silu || kind == OpKind::Tanh || kind == OpKind::Gelu) {
    const bool tanhGelu = kind == OpKind::Gelu && op.attrs.getString("approximate", "none") == "tanh";
    match.activation = kind == OpKind::Relu   ? Activation::Relu
                       : kind == OpKind::Silu ? Activation::Silu
                       : kind == OpKind::Tanh ? Activation::Tanh
                       : tanhGelu             ? Activation::GeluTanh
                                              : Activation::Gelu;
    match.input = op.operands[0];
    return match;
  }
  if (kind != OpKind::Mul && kind != OpKind::Div) return std::nullopt;

  const Product product = flattenProduct(rewriter, op.results[0]);
  if (product.factors.size() != 2) return std::nullopt;
  match.ops = product.ops;
  for (int k = 0; k < 2; ++k) {
    const ValueId x = product.factors[static_cast<size_t>(k)];
    const ValueId other = product.factors[static_cast<size_t>(1 - k)];
    if (nearlyEqual(product.coefficient, 1.0)) {
      const Op* sigmoid = rewriter.producer(other, OpKind::Sigmoid);
      if (sigmoid && sigmoid->operands[0] == x) {
        match.activation = Activation::Silu;
        match.ops.push_back(rewriter.producerIndex(other));
      }
    } else if (nearlyEqual(product.coefficient, 0.5)) {
      if (isGeluErfFactor(rewriter, x, other, match.ops)) match.activation = Activation::Gelu;
      else if (isGeluTanhFactor(rewriter, x, other, match.ops)) match.activation = Activation::GeluTanh;
    }
    if (match.activation == Activation::None) continue;
    match.input = x;
    // Constants of a higher rank would broadcast the result beyond x.
    if (!compatibleTypes(rewriter.graph().value(x).type, rewriter.graph().value(op.results[0]).type))
      return std::nullopt;
    return match;
  }
  return std::nullopt;
}

std::optional<ActivationMatch> findActivationOf(const Rewriter& rewriter, ValueId input) {
  if (rewriter.isGraphOutput(input)) return std::nullopt;
  // Bounds the walk; the longest spelled-out activation (tanh GELU) has 9 ops.
  constexpr int kMaxDepth = 10;
  for (int32_t start : rewriter.users(input)) {
    int32_t current = start;
    for (int depth = 0; depth < kMaxDepth && current >= 0; ++depth) {
      std::optional<ActivationMatch> match = matchActivation(rewriter, current);
      if (match && match->input == input && rewriter.isConfined(match->ops, current)) {
        bool inside = true;
        for (int32_t user : rewriter.users(input))
          inside = inside && std::find(match->ops.begin(), match->ops.end(), user) != match->ops.end();
        if (inside) return match;
      }
      const Op& op = rewriter.op(current);
      if (op.results.size() != 1) break;
      current = rewriter.soleUser(op.results[0]);
    }
  }
  return std::nullopt;
}

// ---- Weight data

Tensor filledTensor(DType dtype, const std::vector<int64_t>& shape, double value) {
  Tensor tensor = Tensor::allocate(dtype, shape);
  visitDType(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* data = tensor.data<T>();
    for (int64_t i = 0; i < tensor.numElements(); ++i) data[i] = storeFromDouble<T>(value);
  });
  return tensor;
}

Expected<Tensor> evaluateConstant(OpKind kind, const std::vector<const Tensor*>& inputs, Attributes attrs) {
  Expected<std::vector<Tensor>> results = evaluateOp(opDef(kind), attrs, inputs, 1);
  if (!results) return results.status();
  return results->front();
}

// ---- Reductions

std::optional<std::vector<int64_t>> keptReductionAxes(const Graph& graph, const Op& op) {
  if (!op.attrs.getBool("keepdims", true) || op.operands.empty()) return std::nullopt;
  const int64_t rank = static_cast<int64_t>(graph.value(op.operands[0]).type.rank());
  std::vector<int64_t> axes;
  if (op.operands.size() < 2 || op.operands[1] == kNoValue) {
    if (op.attrs.getBool("noop_with_empty_axes", false)) return std::nullopt;
    for (int64_t axis = 0; axis < rank; ++axis) axes.push_back(axis);
    return axes;
  }
  const Value& axesValue = graph.value(op.operands[1]);
  if (!axesValue.data) return std::nullopt;
  for (int64_t axis : axesValue.data->toInts()) {
    if (axis < -rank || axis >= rank) return std::nullopt;
    axes.push_back(axis < 0 ? axis + rank : axis);
  }
  std::sort(axes.begin(), axes.end());
  if (axes.empty() || std::adjacent_find(axes.begin(), axes.end()) != axes.end()) return std::nullopt;
  return axes;
}

namespace {

// One slice bound, axis or step: from the dim-list / int-list attribute or
// from a one-element integer weight at operand `operand`; `fallback` when
// neither is given.
std::optional<int64_t> sliceParameter(const Graph& graph, const Op& slice, const std::string& attr, size_t operand,
                                      std::optional<int64_t> fallback) {
  if (slice.attrs.has(attr)) {
    std::optional<std::vector<Dim>> dims = slice.attrs.getDims(attr);
    if (!dims || dims->size() != 1) return std::nullopt;
    return dims->front().constant();
  }
  const ValueId id = operand < slice.operands.size() ? slice.operands[operand] : kNoValue;
  if (id == kNoValue) return fallback;
  const Value& value = graph.value(id);
  if (value.kind != ValueKind::Weight || !value.data || value.data->numElements() != 1 ||
      !isInteger(value.data->dtype()))
    return std::nullopt;
  return value.data->elementAsInt(0);
}

}  // namespace

std::vector<int64_t> transposePermutation(const Graph& graph, const Op& op) {
  const size_t rank = graph.value(op.operands[0]).type.rank();
  std::vector<int64_t> reversed(rank);
  for (size_t i = 0; i < rank; ++i) reversed[i] = static_cast<int64_t>(rank - 1 - i);
  std::vector<int64_t> perm = op.attrs.getInts("perm", reversed);
  for (int64_t& axis : perm)
    if (axis < 0) axis += static_cast<int64_t>(rank);
  return perm;
}

bool isIdentityPermutation(const std::vector<int64_t>& perm) {
  for (size_t i = 0; i < perm.size(); ++i)
    if (perm[i] != static_cast<int64_t>(i)) return false;
  return true;
}

bool isWeight(const Graph& graph, ValueId id) {
  return id != kNoValue && graph.value(id).kind == ValueKind::Weight && graph.value(id).data;
}

std::optional<AxisSlice> sliceOfOneAxis(const Graph& graph, const Op& slice) {
  if (!slice.is(OpKind::Slice) || slice.operands.empty()) return std::nullopt;
  const Shape& shape = graph.value(slice.operands[0]).type.shape;
  const auto rank = static_cast<int64_t>(shape.size());
  std::optional<int64_t> start = sliceParameter(graph, slice, "starts", 1, std::nullopt);
  std::optional<int64_t> end = sliceParameter(graph, slice, "ends", 2, std::nullopt);
  // Without axes the slice is on axis 0.
  std::optional<int64_t> axis = sliceParameter(graph, slice, "axes", 3, 0);
  std::optional<int64_t> step = sliceParameter(graph, slice, "steps", 4, 1);
  if (!start || !end || !axis || !step || *step < 1 || *axis < -rank || *axis >= rank) return std::nullopt;
  const int64_t at = *axis < 0 ? *axis + rank : *axis;
  std::optional<int64_t> dim = shape[static_cast<size_t>(at)].constant();
  if (!dim) return std::nullopt;
  auto resolve = [&](int64_t bound) { return std::clamp<int64_t>(bound < 0 ? bound + *dim : bound, 0, *dim); };
  return AxisSlice{at, resolve(*start), resolve(*end), *step};
}

}  // namespace kiln
