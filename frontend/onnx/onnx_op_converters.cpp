#include "frontend/onnx/onnx_op_converters.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "backends/reference/reference.h"
#include "frontend/onnx/tensor_proto.h"
#include "ir/op_registry.h"
#include "passes/symbolic_values.h"

namespace kiln {

Tensor int64Vector(const std::vector<int64_t>& values) {
  Tensor t = Tensor::allocate(DType::I64, {static_cast<int64_t>(values.size())});
  std::copy(values.begin(), values.end(), t.data<int64_t>());
  return t;
}

// Requires a present input; ONNX checkers allow models that omit required
// ones, and the message is clearer than the op's operand-count error.
Status requireInputs(const OnnxNodeContext& ctx, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (!ctx.hasInput(i)) return Status::error("required input ", i, " is missing");
  }
  return Status::ok();
}

namespace {

using onnx::AttributeProto;

// ONNX stores float attributes as float; the shortest decimal that reads
// back as the same float keeps the IR readable (1e-05, not 9.99999974e-06)
// and rounds to the identical float in f32 kernels.
double floatToShortestDouble(float value) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (ec != std::errc()) return static_cast<double>(value);
  *end = '\0';
  return std::strtod(buffer, nullptr);
}

// Converts `value` to the kind op `def` declares for attribute `name`
// (ONNX has no bool attributes, and writes some float ones as ints).
AttrValue coerceAttr(const OpDef& def, const std::string& name, AttrValue value) {
  auto spec = std::find_if(def.attrs.begin(), def.attrs.end(),
                           [&](const AttrSpec& s) { return s.name == name; });
  if (spec == def.attrs.end()) return value;
  if (const auto* i = std::get_if<int64_t>(&value)) {
    if (spec->kind == AttrKind::Bool) return *i != 0;
    if (spec->kind == AttrKind::Float) return static_cast<double>(*i);
  } else if (const auto* b = std::get_if<bool>(&value)) {
    if (spec->kind == AttrKind::Int) return static_cast<int64_t>(*b);
  } else if (const auto* ints = std::get_if<std::vector<int64_t>>(&value)) {
    if (spec->kind == AttrKind::Floats) return std::vector<double>(ints->begin(), ints->end());
  }
  return value;
}


// The node's inputs as operands, without trailing omitted optional ones.
std::vector<ValueId> allInputs(const OnnxNodeContext& ctx) {
  std::vector<ValueId> operands;
  for (size_t i = 0; i < ctx.numInputs(); ++i) operands.push_back(ctx.input(i));
  while (!operands.empty() && operands.back() == kNoValue) operands.pop_back();
  return operands;
}

Status emitToOutputs(OnnxNodeContext& ctx, std::string_view opName,
                     std::vector<ValueId> operands, Attributes attrs = {}) {
  const int numResults = static_cast<int>(ctx.numOutputs());
  Expected<std::vector<ValueId>> results =
      ctx.emit(opName, std::move(operands), std::move(attrs), numResults);
  if (!results) return results.status();
  for (size_t i = 0; i < results->size(); ++i) ctx.setOutput(i, (*results)[i]);
  return Status::ok();
}


// ---- Converters.

// Inputs map one to one onto the kiln op's operands, no attributes.
Status convertDirect(OnnxNodeContext& ctx, const OnnxOpConverter& self) {
  return emitToOutputs(ctx, self.kilnOps[0], allInputs(ctx));
}

// An op whose only attribute is an int `axis` with a default.
template <int64_t DefaultAxis>
Status convertWithAxis(OnnxNodeContext& ctx, const OnnxOpConverter& self) {
  Attributes attrs;
  attrs.set("axis", ctx.intAttr("axis", DefaultAxis));
  return emitToOutputs(ctx, self.kilnOps[0], allInputs(ctx), attrs);
}

Status convertConcat(OnnxNodeContext& ctx, const OnnxOpConverter& self) {
  if (!ctx.hasAttribute("axis")) return Status::error("required attribute 'axis' is missing");
  return convertWithAxis<0>(ctx, self);
}

Status convertReshape(OnnxNodeContext& ctx, const OnnxOpConverter& self) {
  KILN_RETURN_IF_ERROR(requireInputs(ctx, 2));
  Attributes attrs;
  attrs.set("allowzero", ctx.intAttr("allowzero", 0));
  return emitToOutputs(ctx, self.kilnOps[0], allInputs(ctx), attrs);
}

Status convertTranspose(OnnxNodeContext& ctx, const OnnxOpConverter& self) {
  KILN_RETURN_IF_ERROR(requireInputs(ctx, 1));
  std::vector<int64_t> perm = ctx.intsAttr("perm");
  if (!ctx.hasAttribute("perm")) {
    // ONNX's default reverses the dims.
    for (int64_t d = static_cast<int64_t>(ctx.inputType(0).rank()) - 1; d >= 0; --d) {
      perm.push_back(d);
    }
  }
  Attributes attrs;
  attrs.set("perm", perm);
  return emitToOutputs(ctx, self.kilnOps[0], allInputs(ctx), attrs);
}

Status convertCast(OnnxNodeContext& ctx, const OnnxOpConverter& self) {
  if (!ctx.hasAttribute("to")) return Status::error("required attribute 'to' is missing");
  const int64_t to = ctx.intAttr("to", 0);
  std::optional<DType> dtype = dtypeFromOnnx(static_cast<int32_t>(to));
  if (!dtype) {
    return Status::error("unsupported Cast target dtype ", onnxTypeName(static_cast<int32_t>(to)));
  }
  Attributes attrs;
  attrs.set("to", std::string(dtypeName(*dtype)));
  return emitToOutputs(ctx, self.kilnOps[0], allInputs(ctx), attrs);
}

Status convertGemm(OnnxNodeContext& ctx, const OnnxOpConverter& self) {
  KILN_RETURN_IF_ERROR(requireInputs(ctx, 2));
  Attributes attrs;
  attrs.set("alpha", ctx.floatAttr("alpha", 1.0));
  attrs.set("beta", ctx.floatAttr("beta", 1.0));
  attrs.set("trans_a", ctx.intAttr("transA", 0));
  attrs.set("trans_b", ctx.intAttr("transB", 0));
  return emitToOutputs(ctx, self.kilnOps[0], allInputs(ctx), attrs);
}

// A scalar weight of `dtype` holding `value`.
Tensor scalarOf(DType dtype, double value) {
  Tensor t = Tensor::allocate(dtype, {});
  visitDType(dtype, [&](auto tag) {
    using T = decltype(tag);
    *t.data<T>() = storeFromDouble<T>(value);
  });
  return t;
}

// LayerNormalization's optional training outputs, Mean and InvStdDev over
// the normalised axes (kept as 1s), computed in the stash type.
Status emitLayerNormStatistics(OnnxNodeContext& ctx, int64_t axis, double epsilon) {
  const TensorType& xType = ctx.inputType(0);
  const int64_t rank = static_cast<int64_t>(xType.rank());
  const int64_t first = axis < 0 ? axis + rank : axis;
  if (first < 0 || first >= rank) {
    return Status::error("axis ", axis, " is out of range for rank ", rank);
  }
  const int64_t stashType = ctx.intAttr("stash_type", onnx::TensorProto::FLOAT);
  std::optional<DType> stash = dtypeFromOnnx(static_cast<int32_t>(stashType));
  if (!stash || !isFloat(*stash)) {
    return Status::error("unsupported stash_type ", onnxTypeName(static_cast<int32_t>(stashType)));
  }
  ValueId x = ctx.input(0);
  if (xType.dtype != *stash) {
    Attributes to;
    to.set("to", std::string(dtypeName(*stash)));
    Expected<ValueId> cast = ctx.emit1("cast", {x}, to);
    if (!cast) return cast.status();
    x = *cast;
  }
  std::vector<int64_t> axes;
  for (int64_t d = first; d < rank; ++d) axes.push_back(d);
  const ValueId axesWeight = ctx.addWeight("axes", int64Vector(axes));
  Attributes reduce;
  reduce.set("keepdims", int64_t{1});
  reduce.set("noop_with_empty_axes", int64_t{0});

  Expected<ValueId> mean = ctx.emit1("reduce_mean", {x, axesWeight}, reduce);
  if (!mean) return mean.status();
  Expected<ValueId> deviation = ctx.emit1("sub", {x, *mean});
  if (!deviation) return deviation.status();
  Expected<ValueId> square = ctx.emit1("mul", {*deviation, *deviation});
  if (!square) return square.status();
  Expected<ValueId> variance = ctx.emit1("reduce_mean", {*square, axesWeight}, reduce);
  if (!variance) return variance.status();
  const ValueId eps = ctx.addWeight("epsilon", scalarOf(*stash, epsilon));
  Expected<ValueId> shifted = ctx.emit1("add", {*variance, eps});
  if (!shifted) return shifted.status();
  Expected<ValueId> stdDev = ctx.emit1("sqrt", {*shifted});
  if (!stdDev) return stdDev.status();
  Expected<ValueId> invStdDev = ctx.emit1("reciprocal", {*stdDev});
  if (!invStdDev) return invStdDev.status();
  ctx.setOutput(1, *mean);
  if (ctx.numOutputs() > 2) ctx.setOutput(2, *invStdDev);
  return Status::ok();
}

Status convertLayerNorm(OnnxNodeContext& ctx, const OnnxOpConverter& self) {
  KILN_RETURN_IF_ERROR(requireInputs(ctx, 2));
  const int64_t axis = ctx.intAttr("axis", -1);
  const double epsilon = ctx.floatAttr("epsilon", 1e-5);
  Attributes attrs;
  attrs.set("axis", axis);
  attrs.set("epsilon", epsilon);
  Expected<ValueId> y = ctx.emit1(self.kilnOps[0], allInputs(ctx), attrs);
  if (!y) return y.status();
  ctx.setOutput(0, *y);
  if (ctx.outputUsed(1) || ctx.outputUsed(2)) {
    KILN_RETURN_IF_ERROR(emitLayerNormStatistics(ctx, axis, epsilon));
  }
  return Status::ok();
}

Status convertCumSum(OnnxNodeContext& ctx, const OnnxOpConverter& self) {
  KILN_RETURN_IF_ERROR(requireInputs(ctx, 2));
  Attributes attrs;
  attrs.set("exclusive", ctx.intAttr("exclusive", 0));
  attrs.set("reverse", ctx.intAttr("reverse", 0));
  return emitToOutputs(ctx, self.kilnOps[0], allInputs(ctx), attrs);
}

Status convertTrilu(OnnxNodeContext& ctx, const OnnxOpConverter& self) {
  Attributes attrs;
  attrs.set("upper", ctx.intAttr("upper", 1));
  return emitToOutputs(ctx, self.kilnOps[0], allInputs(ctx), attrs);
}

Status convertShape(OnnxNodeContext& ctx, const OnnxOpConverter& self) {
  // Absent start / end mean the whole shape, as for the kiln op.
  Attributes attrs;
  if (ctx.hasAttribute("start")) attrs.set("start", ctx.intAttr("start", 0));
  if (ctx.hasAttribute("end")) attrs.set("end", ctx.intAttr("end", 0));
  return emitToOutputs(ctx, self.kilnOps[0], allInputs(ctx), attrs);
}

Status convertSplit(OnnxNodeContext& ctx, const OnnxOpConverter& self) {
  KILN_RETURN_IF_ERROR(requireInputs(ctx, 1));
  if (ctx.hasAttribute("num_outputs") &&
      ctx.intAttr("num_outputs", 0) != static_cast<int64_t>(ctx.numOutputs())) {
    return Status::error("num_outputs = ", ctx.intAttr("num_outputs", 0), " but the node has ",
                         ctx.numOutputs(), " outputs");
  }
  std::vector<ValueId> operands = allInputs(ctx);
  // Before opset 13 the sizes were the `split` attribute; kiln takes them as
  // an operand, as opset 13+ does.
  if (ctx.hasAttribute("split")) {
    operands.resize(1);
    operands.push_back(ctx.addWeight("split", int64Vector(ctx.intsAttr("split"))));
  }
  Attributes attrs;
  attrs.set("axis", ctx.intAttr("axis", 0));
  return emitToOutputs(ctx, self.kilnOps[0], operands, attrs);
}

// Squeeze / Unsqueeze: `axes` became an operand in opset 13; the older
// attribute form is turned into a weight operand.
Status convertAxesOperandOp(OnnxNodeContext& ctx, const OnnxOpConverter& self) {
  KILN_RETURN_IF_ERROR(requireInputs(ctx, 1));
  std::vector<ValueId> operands = allInputs(ctx);
  if (ctx.hasAttribute("axes")) {
    operands.resize(1);
    operands.push_back(ctx.addWeight("axes", int64Vector(ctx.intsAttr("axes"))));
  }
  return emitToOutputs(ctx, self.kilnOps[0], operands);
}

// ReduceMean / ReduceMax take `axes` as an attribute before opset 18 (and
// ReduceSum before 13), as an operand after.
Status convertReduce(OnnxNodeContext& ctx, const OnnxOpConverter& self) {
  KILN_RETURN_IF_ERROR(requireInputs(ctx, 1));
  std::vector<ValueId> operands = allInputs(ctx);
  if (ctx.hasAttribute("axes")) {
    operands.resize(1);
    std::vector<int64_t> axes = ctx.intsAttr("axes");
    if (!axes.empty()) operands.push_back(ctx.addWeight("axes", int64Vector(axes)));
  }
  Attributes attrs;
  attrs.set("keepdims", ctx.intAttr("keepdims", 1));
  attrs.set("noop_with_empty_axes", ctx.intAttr("noop_with_empty_axes", 0));
  return emitToOutputs(ctx, self.kilnOps[0], operands, attrs);
}

Status convertConstantOfShape(OnnxNodeContext& ctx, const OnnxOpConverter& self) {
  KILN_RETURN_IF_ERROR(requireInputs(ctx, 1));
  DType dtype = DType::F32;
  double value = 0.0;
  if (const AttributeProto* attr = ctx.attribute("value")) {
    Expected<Tensor> t = tensorFromProto(attr->t(), ctx.modelDir());
    if (!t) return t.status().withContext("attribute 'value': ");
    if (t->numElements() != 1) {
      return Status::error("attribute 'value' must hold one element, it has ",
                           t->numElements());
    }
    dtype = t->dtype();
    value = t->elementAsDouble(0);
  }
  Attributes attrs;
  attrs.set("dtype", std::string(dtypeName(dtype)));
  attrs.set("value", value);
  return emitToOutputs(ctx, self.kilnOps[0], allInputs(ctx), attrs);
}

Status convertConstant(OnnxNodeContext& ctx, const OnnxOpConverter&) {
  const auto& attrs = ctx.node().attribute();
  if (attrs.size() != 1) {
    return Status::error("a Constant needs exactly one value attribute, it has ", attrs.size());
  }
  const AttributeProto& attr = attrs.Get(0);
  Tensor value;
  if (attr.name() == "value") {
    Expected<Tensor> t = tensorFromProto(attr.t(), ctx.modelDir());
    if (!t) return t.status().withContext("attribute 'value': ");
    value = *t;
  } else if (attr.name() == "value_float") {
    value = Tensor::allocate(DType::F32, {});
    *value.data<float>() = attr.f();
  } else if (attr.name() == "value_floats") {
    value = Tensor::allocate(DType::F32, {attr.floats_size()});
    std::copy(attr.floats().begin(), attr.floats().end(), value.data<float>());
  } else if (attr.name() == "value_int") {
    value = Tensor::allocate(DType::I64, {});
    *value.data<int64_t>() = attr.i();
  } else if (attr.name() == "value_ints") {
    value = int64Vector(std::vector<int64_t>(attr.ints().begin(), attr.ints().end()));
  } else {
    return Status::error("unsupported Constant attribute '", attr.name(), "'");
  }
  ctx.setOutput(0, ctx.addOutputWeight(0, value));
  return Status::ok();
}

// Identity is an alias: its output names the same register. (The importer
// inserts a kiln `identity` only where a graph output needs its own.)
Status convertIdentity(OnnxNodeContext& ctx, const OnnxOpConverter&) {
  KILN_RETURN_IF_ERROR(requireInputs(ctx, 1));
  ctx.setOutput(0, ctx.input(0));
  return Status::ok();
}

// Inference-mode Dropout: the output is the input, the mask all true.
Status convertDropout(OnnxNodeContext& ctx, const OnnxOpConverter&) {
  KILN_RETURN_IF_ERROR(requireInputs(ctx, 1));
  if (ctx.hasInput(2)) {
    const Tensor* training = ctx.inputValue(2);
    if (!training || training->numElements() != 1) {
      return Status::error("unsupported Dropout: training_mode is not a constant scalar");
    }
    if (training->elementAsDouble(0) != 0.0) {
      return Status::error("unsupported Dropout in training mode (training_mode = true)");
    }
  }
  ctx.setOutput(0, ctx.input(0));
  if (ctx.numOutputs() > 1 && ctx.outputUsed(1)) {
    Expected<ValueId> shape = ctx.emit1("shape", {ctx.input(0)});
    if (!shape) return shape.status();
    Attributes attrs;
    attrs.set("dtype", std::string("bool"));
    attrs.set("value", 1.0);
    Expected<ValueId> mask = ctx.emit1("constant_of_shape", {*shape}, attrs);
    if (!mask) return mask.status();
    ctx.setOutput(1, *mask);
  }
  return Status::ok();
}

constexpr auto kInt = AttributeProto::INT;
constexpr auto kFloat = AttributeProto::FLOAT;
constexpr auto kInts = AttributeProto::INTS;
constexpr auto kTensor = AttributeProto::TENSOR;

OnnxOpConverter direct(std::string_view opType, std::string_view kilnOp) {
  return {opType, {kilnOp}, {}, convertDirect};
}

std::vector<OnnxOpConverter> buildConverters() {
  std::vector<OnnxOpConverter> table = {
      // Elementwise, one kiln op each; broadcasting is the op's.
      direct("Abs", "abs"),
      direct("Add", "add"),
      direct("And", "and"),
      direct("Cos", "cos"),
      direct("Div", "div"),
      direct("Equal", "equal"),
      direct("Erf", "erf"),
      direct("Exp", "exp"),
      direct("Greater", "greater"),
      direct("Less", "less"),
      direct("Log", "log"),
      direct("Max", "max"),
      direct("Min", "min"),
      direct("Mul", "mul"),
      direct("Neg", "neg"),
      direct("Not", "not"),
      direct("Or", "or"),
      direct("Pow", "pow"),
      direct("Reciprocal", "reciprocal"),
      direct("Relu", "relu"),
      direct("Sigmoid", "sigmoid"),
      direct("Sin", "sin"),
      direct("Sqrt", "sqrt"),
      direct("Sub", "sub"),
      direct("Tanh", "tanh"),
      direct("Where", "where"),
      direct("Clip", "clip"),
      // Linear algebra and normalisation.
      direct("MatMul", "matmul"),
      {"Gemm", {"gemm"}, {{"alpha", kFloat}, {"beta", kFloat}, {"transA", kInt}, {"transB", kInt}},
       convertGemm},
      {"Softmax", {"softmax"}, {{"axis", kInt}}, convertWithAxis<-1>},
      {"LogSoftmax", {"log_softmax"}, {{"axis", kInt}}, convertWithAxis<-1>},
      {"LayerNormalization", {"layer_norm"},
       {{"axis", kInt}, {"epsilon", kFloat}, {"stash_type", kInt}}, convertLayerNorm},
      {"CumSum", {"cumsum"}, {{"exclusive", kInt}, {"reverse", kInt}}, convertCumSum},
      {"ReduceMean", {"reduce_mean"},
       {{"axes", kInts}, {"keepdims", kInt}, {"noop_with_empty_axes", kInt}}, convertReduce},
      {"ReduceSum", {"reduce_sum"},
       {{"axes", kInts}, {"keepdims", kInt}, {"noop_with_empty_axes", kInt}}, convertReduce},
      {"ReduceMax", {"reduce_max"},
       {{"axes", kInts}, {"keepdims", kInt}, {"noop_with_empty_axes", kInt}}, convertReduce},
      // Shapes and data movement.
      {"Reshape", {"reshape"}, {{"allowzero", kInt}}, convertReshape},
      {"Transpose", {"transpose"}, {{"perm", kInts}}, convertTranspose},
      {"Flatten", {"flatten"}, {{"axis", kInt}}, convertWithAxis<1>},
      {"Squeeze", {"squeeze"}, {{"axes", kInts}}, convertAxesOperandOp},
      {"Unsqueeze", {"unsqueeze"}, {{"axes", kInts}}, convertAxesOperandOp},
      {"Concat", {"concat"}, {{"axis", kInt}}, convertConcat},
      {"Split", {"split"}, {{"axis", kInt}, {"num_outputs", kInt}, {"split", kInts}},
       convertSplit},
      direct("Slice", "slice"),
      {"Gather", {"gather"}, {{"axis", kInt}}, convertWithAxis<0>},
      {"GatherElements", {"gather_elements"}, {{"axis", kInt}}, convertWithAxis<0>},
      direct("Expand", "expand"),
      {"Shape", {"shape"}, {{"start", kInt}, {"end", kInt}}, convertShape},
      direct("Size", "size"),
      {"Cast", {"cast"}, {{"to", kInt}, {"saturate", kInt}}, convertCast},
      {"Trilu", {"trilu"}, {{"upper", kInt}}, convertTrilu},
      direct("Range", "range"),
      // Constants and aliases.
      {"ConstantOfShape", {"constant_of_shape"}, {{"value", kTensor}}, convertConstantOfShape},
      {"Constant", {},
       {{"value", kTensor}, {"value_float", kFloat}, {"value_floats", AttributeProto::FLOATS},
        {"value_int", kInt}, {"value_ints", kInts}, {"value_string", AttributeProto::STRING},
        {"value_strings", AttributeProto::STRINGS}, {"sparse_value", AttributeProto::SPARSE_TENSOR}},
       convertConstant},
      {"Identity", {}, {}, convertIdentity},
      {"Dropout", {}, {{"seed", kInt}}, convertDropout},
  };
  for (OnnxOpConverter& composite : compositeOnnxConverters()) table.push_back(std::move(composite));
  std::sort(table.begin(), table.end(),
            [](const OnnxOpConverter& a, const OnnxOpConverter& b) { return a.opType < b.opType; });
  return table;
}

}  // namespace

// ---- OnnxNodeContext.

OnnxNodeContext::OnnxNodeContext(Graph& graph, const onnx::NodeProto& node, std::string location,
                                 std::vector<ValueId> inputs, const std::string& modelDir,
                                 const std::unordered_set<std::string>& consumedNames)
    : graph_(graph),
      builder_(graph),
      node_(node),
      location_(std::move(location)),
      inputs_(std::move(inputs)),
      outputs_(static_cast<size_t>(node.output_size()), kNoValue),
      modelDir_(modelDir),
      consumedNames_(consumedNames) {}

const Tensor* OnnxNodeContext::inputValue(size_t i) const {
  if (!hasInput(i)) return nullptr;
  const Value& v = graph_.value(inputs_[i]);
  return v.kind == ValueKind::Weight && v.data ? &*v.data : nullptr;
}

bool OnnxNodeContext::outputUsed(size_t i) const {
  if (i >= numOutputs()) return false;
  const std::string& name = node_.output(static_cast<int>(i));
  return !name.empty() && consumedNames_.count(name) != 0;
}

const onnx::AttributeProto* OnnxNodeContext::attribute(std::string_view name) const {
  for (const auto& attr : node_.attribute()) {
    if (attr.name() == name) return &attr;
  }
  return nullptr;
}

int64_t OnnxNodeContext::intAttr(std::string_view name, int64_t fallback) const {
  const AttributeProto* attr = attribute(name);
  return attr ? attr->i() : fallback;
}

double OnnxNodeContext::floatAttr(std::string_view name, double fallback) const {
  const AttributeProto* attr = attribute(name);
  return attr ? floatToShortestDouble(attr->f()) : fallback;
}

std::vector<int64_t> OnnxNodeContext::intsAttr(std::string_view name) const {
  const AttributeProto* attr = attribute(name);
  if (!attr) return {};
  return std::vector<int64_t>(attr->ints().begin(), attr->ints().end());
}

Expected<std::vector<ValueId>> OnnxNodeContext::emit(std::string_view opName,
                                                     std::vector<ValueId> operands,
                                                     Attributes attrs, int numResults) {
  const OpDef* def = OpRegistry::global().find(opName);
  if (!def) return Status::error("unsupported: kiln has no op '", opName, "'");
  Attributes coerced;
  for (const auto& [name, value] : attrs.all()) coerced.set(name, coerceAttr(*def, name, value));
  // Inference first, so the error is the op's without the Builder's prefix
  // (the importer adds the node's context).
  std::vector<TensorType> resultTypes;
  KILN_RETURN_IF_ERROR(
      inferResultTypes(*def, coerced, operandInfos(graph_, operands), numResults, resultTypes));
  Expected<std::optional<std::vector<ValueId>>> folded = fold(*def, coerced, operands, resultTypes);
  if (!folded) return folded.status();
  if (*folded) return **folded;
  Expected<std::vector<ValueId>> results =
      builder_.create(opName, std::move(operands), std::move(coerced), numResults, location_);
  if (results) created_.insert(created_.end(), results->begin(), results->end());
  return results;
}

Expected<std::optional<std::vector<ValueId>>> OnnxNodeContext::fold(
    const OpDef& def, const Attributes& attrs, const std::vector<ValueId>& operands,
    const std::vector<TensorType>& resultTypes) {
  using Folded = std::optional<std::vector<ValueId>>;
  int64_t resultElements = 0;
  for (const TensorType& t : resultTypes) {
    std::optional<int64_t> n = t.numElements();
    if (!n) return Folded();
    resultElements += *n;
  }
  if (resultElements > kMaxFoldElements) return Folded();

  // shape and size read only their operand's type: a static one is enough.
  const bool typeOnly = def.name == "shape" || def.name == "size";
  std::vector<Tensor> typeOnlyViews;
  typeOnlyViews.reserve(operands.size());
  std::vector<const Tensor*> inputs;
  for (ValueId id : operands) {
    if (id == kNoValue) {
      inputs.push_back(nullptr);
      continue;
    }
    const Value& v = graph_.value(id);
    if (v.kind == ValueKind::Weight && v.data) {
      inputs.push_back(&*v.data);
    } else if (std::optional<std::vector<int64_t>> dims = v.type.staticDims(); typeOnly && dims) {
      typeOnlyViews.push_back(Tensor::view(v.type.dtype, *dims, nullptr));
      inputs.push_back(&typeOnlyViews.back());
    } else {
      return foldSymbolic(def, attrs, operands, resultTypes);
    }
  }
  Expected<std::vector<Tensor>> values =
      evaluateOp(def, attrs, inputs, static_cast<int>(resultTypes.size()));
  if (!values) return values.status();
  std::vector<ValueId> weights;
  for (size_t i = 0; i < values->size(); ++i) weights.push_back(resultWeight(i, std::move((*values)[i])));
  return Folded(weights);
}

std::optional<std::vector<ValueId>> OnnxNodeContext::foldSymbolic(const OpDef& def, const Attributes& attrs,
                                                                  const std::vector<ValueId>& operands,
                                                                  const std::vector<TensorType>& resultTypes) {
  if (resultTypes.size() != 1 || !isSymbolicCandidate(resultTypes[0])) return std::nullopt;
  Op op;
  op.def = &def;
  op.operands = operands;
  op.results = {kNoValue};
  op.attrs = attrs;
  std::vector<std::optional<SymbolicTensor>> known;
  std::vector<const TensorType*> types;
  for (ValueId id : operands) {
    types.push_back(id == kNoValue ? nullptr : &graph_.value(id).type);
    known.push_back(id == kNoValue ? std::nullopt : symbolicValueOf(graph_, id));
  }
  std::vector<const SymbolicTensor*> values;
  for (const std::optional<SymbolicTensor>& value : known) values.push_back(value ? &*value : nullptr);
  std::optional<SymbolicTensor> result = evaluateSymbolic(op, types, values, resultTypes[0]);
  if (!result || !result->isConstant()) return std::nullopt;
  return std::vector<ValueId>{resultWeight(0, result->toTensor())};
}

ValueId OnnxNodeContext::resultWeight(size_t i, Tensor data) {
  const std::string base =
      i < numOutputs() && !node_.output(static_cast<int>(i)).empty() ? node_.output(static_cast<int>(i)) : location_;
  return graph_.addWeight(graph_.uniqueName(base), std::move(data));
}

Expected<ValueId> OnnxNodeContext::emit1(std::string_view opName, std::vector<ValueId> operands,
                                         Attributes attrs) {
  Expected<std::vector<ValueId>> results = emit(opName, std::move(operands), std::move(attrs), 1);
  if (!results) return results.status();
  return results->at(0);
}

ValueId OnnxNodeContext::addWeight(const std::string& suffix, Tensor data) {
  return graph_.addWeight(graph_.uniqueName(cat(location_, ".", suffix)), std::move(data));
}

ValueId OnnxNodeContext::addOutputWeight(size_t i, Tensor data) {
  const std::string& name = node_.output(static_cast<int>(i));
  return graph_.addWeight(graph_.uniqueName(name.empty() ? location_ : name), std::move(data));
}

void OnnxNodeContext::setOutput(size_t i, ValueId value) {
  if (i < outputs_.size()) outputs_[i] = value;
}

bool OnnxNodeContext::created(ValueId value) const {
  return std::find(created_.begin(), created_.end(), value) != created_.end();
}

// ---- The table.

const std::vector<OnnxOpConverter>& onnxOpConverters() {
  static const std::vector<OnnxOpConverter> table = buildConverters();
  return table;
}

const OnnxOpConverter* findOnnxOpConverter(std::string_view opType) {
  const auto& table = onnxOpConverters();
  auto it = std::lower_bound(
      table.begin(), table.end(), opType,
      [](const OnnxOpConverter& c, std::string_view name) { return c.opType < name; });
  return it != table.end() && it->opType == opType ? &*it : nullptr;
}

std::string_view onnxAttrTypeName(AttributeProto::AttributeType type) {
  switch (type) {
    case AttributeProto::FLOAT: return "FLOAT";
    case AttributeProto::INT: return "INT";
    case AttributeProto::STRING: return "STRING";
    case AttributeProto::TENSOR: return "TENSOR";
    case AttributeProto::GRAPH: return "GRAPH";
    case AttributeProto::SPARSE_TENSOR: return "SPARSE_TENSOR";
    case AttributeProto::TYPE_PROTO: return "TYPE_PROTO";
    case AttributeProto::FLOATS: return "FLOATS";
    case AttributeProto::INTS: return "INTS";
    case AttributeProto::STRINGS: return "STRINGS";
    case AttributeProto::TENSORS: return "TENSORS";
    case AttributeProto::GRAPHS: return "GRAPHS";
    case AttributeProto::SPARSE_TENSORS: return "SPARSE_TENSORS";
    case AttributeProto::TYPE_PROTOS: return "TYPE_PROTOS";
    default: return "UNDEFINED";
  }
}

}  // namespace kiln
