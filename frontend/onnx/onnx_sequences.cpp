#include "frontend/onnx/onnx_sequences.h"

#include <optional>
#include <set>
#include <variant>

#include "passes/symbolic_values.h"

namespace kiln {

namespace {

using onnx::AttributeProto;

Expected<const OnnxSequence*> sequenceInput(const OnnxNodeContext& ctx, OnnxScopes& scopes, size_t i) {
  const std::string& name = i < static_cast<size_t>(ctx.node().input_size()) ? ctx.node().input(static_cast<int>(i))
                                                                              : std::string();
  auto found = scopes.sequences.find(name);
  if (found == scopes.sequences.end()) return Status::error("input ", i, " ('", name, "') is not a sequence");
  return &found->second;
}

// The value of input i when it is known at import time: one integer.
std::optional<int64_t> knownInt(const OnnxNodeContext& ctx, size_t i) {
  const Tensor* t = ctx.inputValue(i);
  if (!t || t->numElements() != 1) return std::nullopt;
  return static_cast<int64_t>(t->elementAsDouble(0));
}

// A Loop's trip count: a weight, or shape arithmetic that evaluates to a
// number on the dims already known (repeat_interleave loops over a static dim
// of a tensor whose other dims are symbolic).
std::optional<int64_t> knownTripCount(const OnnxNodeContext& ctx) {
  if (std::optional<int64_t> weight = knownInt(ctx, 0)) return weight;
  std::optional<SymbolicTensor> value = symbolicValueOf(ctx.graph(), ctx.input(0));
  if (!value || value->elements.size() != 1) return std::nullopt;
  return value->elements.front().constant();
}

Expected<int64_t> axisOf(const OnnxNodeContext& ctx, int64_t rank) {
  const int64_t axis = ctx.intAttr("axis", 0);
  if (axis < -rank || axis >= rank) return Status::error("axis ", axis, " is out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

// The sizes SplitToSequence cuts `dim` elements into: ones without a split
// input, chunks of a scalar split, or a 1-D split's sizes.
Expected<std::vector<int64_t>> splitSizes(const OnnxNodeContext& ctx, int64_t dim) {
  if (!ctx.hasInput(1)) return std::vector<int64_t>(static_cast<size_t>(dim), 1);
  const Tensor* split = ctx.inputValue(1);
  if (!split) return Status::error("unsupported: the split sizes are computed at run time");
  std::vector<int64_t> sizes;
  if (split->rank() == 0) {
    const auto chunk = static_cast<int64_t>(split->elementAsDouble(0));
    if (chunk <= 0) return Status::error("split ", chunk, " is not positive");
    for (int64_t at = 0; at < dim; at += chunk) sizes.push_back(std::min(chunk, dim - at));
  } else {
    for (int64_t i = 0; i < split->numElements(); ++i) sizes.push_back(static_cast<int64_t>(split->elementAsDouble(i)));
  }
  return sizes;
}

Status splitToSequence(OnnxNodeContext& ctx, OnnxScopes& scopes) {
  const TensorType& x = ctx.inputType(0);
  Expected<int64_t> axis = axisOf(ctx, static_cast<int64_t>(x.rank()));
  if (!axis) return axis.status();
  const std::optional<int64_t> dim = x.shape[static_cast<size_t>(*axis)].constant();
  if (!dim) return Status::error("unsupported: axis ", *axis, " of ", x.str(), " is not static");
  Expected<std::vector<int64_t>> sizes = splitSizes(ctx, *dim);
  if (!sizes) return sizes.status();
  Attributes attrs;
  attrs.set("axis", *axis);
  Expected<std::vector<ValueId>> parts = ctx.emit("split", {ctx.input(0), ctx.addWeight("split", int64Vector(*sizes))},
                                                  attrs, static_cast<int>(sizes->size()));
  if (!parts) return parts.status();
  if (!ctx.hasInput(1) && ctx.intAttr("keepdims", 1) == 0) {
    for (ValueId& part : *parts) {
      Expected<ValueId> squeezed = ctx.emit1("squeeze", {part, ctx.addWeight("axes", int64Vector({*axis}))});
      if (!squeezed) return squeezed.status();
      part = *squeezed;
    }
  }
  scopes.sequences[ctx.node().output(0)] = *parts;
  return Status::ok();
}

Status sequenceAt(OnnxNodeContext& ctx, OnnxScopes& scopes) {
  Expected<const OnnxSequence*> sequence = sequenceInput(ctx, scopes, 0);
  if (!sequence) return sequence.status();
  std::optional<int64_t> position = knownInt(ctx, 1);
  if (!position) return Status::error("unsupported: the position is computed at run time");
  const auto size = static_cast<int64_t>((*sequence)->size());
  const int64_t at = *position < 0 ? *position + size : *position;
  if (at < 0 || at >= size) return Status::error("position ", *position, " is outside a sequence of ", size);
  ctx.setOutput(0, (**sequence)[static_cast<size_t>(at)]);
  return Status::ok();
}

Status sequenceInsert(OnnxNodeContext& ctx, OnnxScopes& scopes) {
  Expected<const OnnxSequence*> sequence = sequenceInput(ctx, scopes, 0);
  if (!sequence) return sequence.status();
  OnnxSequence grown = **sequence;
  const auto size = static_cast<int64_t>(grown.size());
  std::optional<int64_t> position = ctx.hasInput(2) ? knownInt(ctx, 2) : std::optional<int64_t>(size);
  if (!position) return Status::error("unsupported: the position is computed at run time");
  const int64_t at = *position < 0 ? *position + size : *position;
  if (at < 0 || at > size) return Status::error("position ", *position, " is outside a sequence of ", size);
  grown.insert(grown.begin() + at, ctx.input(1));
  scopes.sequences[ctx.node().output(0)] = std::move(grown);
  return Status::ok();
}

Status concatFromSequence(OnnxNodeContext& ctx, OnnxScopes& scopes) {
  Expected<const OnnxSequence*> sequence = sequenceInput(ctx, scopes, 0);
  if (!sequence) return sequence.status();
  if ((*sequence)->empty()) return Status::error("the sequence is empty");
  const bool newAxis = ctx.intAttr("new_axis", 0) != 0;
  const auto rank = static_cast<int64_t>(ctx.graph().value((*sequence)->front()).type.rank()) + (newAxis ? 1 : 0);
  Expected<int64_t> axis = axisOf(ctx, rank);
  if (!axis) return axis.status();
  std::vector<ValueId> parts = **sequence;
  for (ValueId& part : parts) {
    if (!newAxis) break;
    Expected<ValueId> widened = ctx.emit1("unsqueeze", {part, ctx.addWeight("axes", int64Vector({*axis}))});
    if (!widened) return widened.status();
    part = *widened;
  }
  Attributes attrs;
  attrs.set("axis", *axis);
  Expected<ValueId> joined = ctx.emit1("concat", parts, attrs);
  if (!joined) return joined.status();
  ctx.setOutput(0, *joined);
  return Status::ok();
}

// One value of a Loop's carried state: a tensor or a sequence.
using LoopValue = std::variant<ValueId, OnnxSequence>;

// The names a body defines in one iteration, removed (the outer ones they
// shadowed put back) when it ends.
class IterationScope {
 public:
  explicit IterationScope(OnnxScopes& scopes) : scopes_(scopes) {}
  ~IterationScope() {
    for (const auto& [name, saved] : saved_) {
      scopes_.tensors.erase(name);
      scopes_.sequences.erase(name);
      if (const auto* tensor = std::get_if<ValueId>(&saved.value); saved.present && tensor)
        scopes_.tensors[name] = *tensor;
      if (const auto* sequence = std::get_if<OnnxSequence>(&saved.value); saved.present && sequence)
        scopes_.sequences[name] = *sequence;
    }
  }
  // Saves what `name` means outside, then frees it for the body.
  void claim(const std::string& name) {
    if (name.empty() || saved_.count(name)) return;
    Saved saved;
    if (auto t = scopes_.tensors.find(name); t != scopes_.tensors.end()) saved = {true, t->second};
    if (auto s = scopes_.sequences.find(name); s != scopes_.sequences.end()) saved = {true, s->second};
    saved_[name] = saved;
    scopes_.tensors.erase(name);
    scopes_.sequences.erase(name);
  }
  void bind(const std::string& name, const LoopValue& value) {
    claim(name);
    if (const auto* tensor = std::get_if<ValueId>(&value)) scopes_.tensors[name] = *tensor;
    else scopes_.sequences[name] = std::get<OnnxSequence>(value);
  }

 private:
  struct Saved {
    bool present = false;
    LoopValue value;
  };
  OnnxScopes& scopes_;
  std::map<std::string, Saved> saved_;
};

// Appends what `name` means to `values`. (Not an Expected<LoopValue>:
// GCC's -Wmaybe-uninitialized misreads that variant's move at -O2.)
Status lookup(const OnnxScopes& scopes, const std::string& name, std::vector<LoopValue>& values) {
  if (auto t = scopes.tensors.find(name); t != scopes.tensors.end()) values.emplace_back(t->second);
  else if (auto s = scopes.sequences.find(name); s != scopes.sequences.end()) values.emplace_back(s->second);
  else return Status::error("the body's output '", name, "' is not defined");
  return Status::ok();
}

// One iteration of a Loop body: binds its inputs, converts its nodes, and
// returns its outputs (condition, carried values, scan outputs).
Expected<std::vector<LoopValue>> runIteration(OnnxNodeContext& ctx, OnnxScopes& scopes, const onnx::GraphProto& body,
                                              int64_t iteration, const std::vector<LoopValue>& carried) {
  IterationScope scope(scopes);
  Tensor counter = Tensor::allocate(DType::I64, {});
  *counter.data<int64_t>() = iteration;
  Tensor keepGoing = Tensor::allocate(DType::Bool, {});
  *keepGoing.data<bool>() = true;
  scope.bind(body.input(0).name(), ctx.addWeight(cat("iteration_", iteration), counter));
  scope.bind(body.input(1).name(), ctx.addWeight("cond", keepGoing));
  for (size_t j = 0; j < carried.size(); ++j) scope.bind(body.input(static_cast<int>(j) + 2).name(), carried[j]);
  std::unordered_set<std::string> consumed;
  for (const onnx::NodeProto& node : body.node()) consumed.insert(node.input().begin(), node.input().end());
  for (const onnx::ValueInfoProto& output : body.output()) consumed.insert(output.name());
  for (int n = 0; n < body.node_size(); ++n) {
    const onnx::NodeProto& node = body.node(n);
    for (const std::string& name : node.output()) scope.claim(name);
    const std::string where = cat(ctx.location(), "/iteration ", iteration, "/",
                                  node.name().empty() ? cat(node.op_type(), "_", n) : node.name());
    KILN_RETURN_IF_ERROR(scopes.convertNode(node, where, consumed));
  }
  std::vector<LoopValue> outputs;
  for (const onnx::ValueInfoProto& output : body.output()) KILN_RETURN_IF_ERROR(lookup(scopes, output.name(), outputs));
  return outputs;
}

// Whether a body's condition output is a constant true.
bool staysTrue(const Graph& graph, const LoopValue& condition) {
  const ValueId* id = std::get_if<ValueId>(&condition);
  if (!id) return false;
  const Value& value = graph.value(*id);
  return value.kind == ValueKind::Weight && value.data && value.data->numElements() == 1 &&
         value.data->elementAsDouble(0) != 0.0;
}

// Scan outputs: each iteration's tensor, stacked on a new first axis.
Expected<ValueId> stacked(OnnxNodeContext& ctx, const std::vector<ValueId>& parts) {
  std::vector<ValueId> rows;
  for (ValueId part : parts) {
    Expected<ValueId> row = ctx.emit1("unsqueeze", {part, ctx.addWeight("axes", int64Vector({0}))});
    if (!row) return row.status();
    rows.push_back(*row);
  }
  Attributes attrs;
  attrs.set("axis", int64_t{0});
  return ctx.emit1("concat", rows, attrs);
}

Status loop(OnnxNodeContext& ctx, OnnxScopes& scopes) {
  const AttributeProto* bodyAttr = ctx.attribute("body");
  if (!bodyAttr || !bodyAttr->has_g()) return Status::error("a Loop needs a body graph");
  const onnx::GraphProto& body = bodyAttr->g();
  std::optional<int64_t> trips = ctx.hasInput(0) ? knownTripCount(ctx) : std::nullopt;
  if (!trips) return Status::error("unsupported Loop: its trip count is not known at import time, so kiln cannot unroll it");
  if (ctx.hasInput(1) && !staysTrue(ctx.graph(), LoopValue(ctx.input(1))))
    return Status::error("unsupported Loop: its initial condition is not a constant true");
  const int carriedCount = ctx.node().input_size() - 2;
  if (carriedCount < 0 || body.input_size() != carriedCount + 2 || body.output_size() < carriedCount + 1)
    return Status::error("the Loop's body takes ", body.input_size(), " inputs and gives ", body.output_size(),
                         " outputs for ", carriedCount, " carried values");
  std::vector<LoopValue> carried;
  for (int j = 0; j < carriedCount; ++j) KILN_RETURN_IF_ERROR(lookup(scopes, ctx.node().input(j + 2), carried));
  std::vector<std::vector<ValueId>> scans(static_cast<size_t>(body.output_size() - 1 - carriedCount));
  for (int64_t i = 0; i < *trips; ++i) {
    Expected<std::vector<LoopValue>> outputs = runIteration(ctx, scopes, body, i, carried);
    if (!outputs) return outputs.status().withContext(cat("iteration ", i, ": "));
    if (!staysTrue(ctx.graph(), outputs->front()))
      return Status::error("unsupported Loop: its condition is computed at run time, so kiln cannot unroll it");
    carried.assign(outputs->begin() + 1, outputs->begin() + 1 + carriedCount);
    for (size_t k = 0; k < scans.size(); ++k) {
      const ValueId* part = std::get_if<ValueId>(&(*outputs)[1 + static_cast<size_t>(carriedCount) + k]);
      if (!part) return Status::error("unsupported Loop: scan output ", k, " is a sequence");
      scans[k].push_back(*part);
    }
  }
  for (int j = 0; j < carriedCount; ++j) {
    const std::string& name = ctx.node().output(j);
    if (const auto* tensor = std::get_if<ValueId>(&carried[static_cast<size_t>(j)])) ctx.setOutput(static_cast<size_t>(j), *tensor);
    else scopes.sequences[name] = std::get<OnnxSequence>(carried[static_cast<size_t>(j)]);
  }
  for (size_t k = 0; k < scans.size(); ++k) {
    if (scans[k].empty()) return Status::error("unsupported Loop: no iteration, so scan output ", k, " is empty");
    Expected<ValueId> joined = stacked(ctx, scans[k]);
    if (!joined) return joined.status();
    ctx.setOutput(static_cast<size_t>(carriedCount) + k, *joined);
  }
  return Status::ok();
}

}  // namespace

bool isSequenceOrLoopOp(const std::string& opType) {
  static const std::set<std::string, std::less<>> kOps = {"ConcatFromSequence", "Loop",          "SequenceAt",
                                                          "SequenceEmpty",      "SequenceInsert", "SplitToSequence"};
  return kOps.count(opType) != 0;
}

Status convertSequenceOrLoop(OnnxNodeContext& ctx, OnnxScopes& scopes) {
  const std::string& op = ctx.node().op_type();
  if (op == "SequenceEmpty") {
    scopes.sequences[ctx.node().output(0)] = {};
    return Status::ok();
  }
  if (op == "SplitToSequence") return splitToSequence(ctx, scopes);
  if (op == "SequenceAt") return sequenceAt(ctx, scopes);
  if (op == "SequenceInsert") return sequenceInsert(ctx, scopes);
  if (op == "ConcatFromSequence") return concatFromSequence(ctx, scopes);
  return loop(ctx, scopes);
}

}  // namespace kiln
