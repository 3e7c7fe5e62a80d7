// Reductions and normalisations (ONNX semantics): reduce_sum / reduce_mean /
// reduce_max over an optional axes operand, softmax, log_softmax, layer_norm
// and cumsum. Their reference kernels: backends/reference/reduction.cpp.
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "ir/op_registry.h"
#include "ir/ops/op_helpers.h"

namespace kiln {
namespace {

using namespace ops;

// ---- reduce_sum / reduce_mean / reduce_max (x, axes?) {keepdims, noop_with_empty_axes}

Status inferReduce(const InferContext& ctx, std::vector<TensorType>& results) {
  const TensorType& x = ctx.type(0);
  KILN_RETURN_IF_ERROR(requireNumeric(ctx, 0, "x"));
  const bool keepdims = ctx.attrs().getBool("keepdims", true);
  const bool noopWithEmptyAxes = ctx.attrs().getBool("noop_with_empty_axes", false);

  // The axes: empty when absent; nullopt when present but not known yet.
  std::optional<std::vector<int64_t>> axes = std::vector<int64_t>{};
  std::optional<int64_t> axesCount = 0;
  if (ctx.has(1)) {
    KILN_RETURN_IF_ERROR(requireDType(ctx, 1, DType::I64, "axes"));
    KILN_RETURN_IF_ERROR(requireRank(ctx, 1, 1, "axes"));
    axes = knownInts(ctx, 1);
    axesCount = ctx.type(1).shape[0].constant();
    if (!axes && axesCount == 0) axes = std::vector<int64_t>{};
  }

  if (axes && axes->empty() && noopWithEmptyAxes) {
    results.push_back(x);
    return Status::ok();
  }
  if (!axes) {
    // Which dims are reduced is known only at run time.
    if (keepdims) {
      results.push_back({x.dtype, unknownShape(x.rank())});
      return Status::ok();
    }
    if (!axesCount)
      return ctx.error("keepdims = false needs the number of axes to be static, got axes ",
                       ctx.type(1).str());
    if (*axesCount > static_cast<int64_t>(x.rank()))
      return ctx.error(*axesCount, " axes is more than the rank of x");
    results.push_back({x.dtype, unknownShape(x.rank() - static_cast<size_t>(*axesCount))});
    return Status::ok();
  }

  std::vector<bool> reduced(x.rank(), axes->empty());
  Expected<std::vector<int64_t>> normalized = normalizeAxes(ctx, *axes, x.rank());
  if (!normalized) return normalized.status();
  for (int64_t axis : *normalized) reduced[static_cast<size_t>(axis)] = true;
  Shape shape;
  for (size_t d = 0; d < x.rank(); ++d) {
    if (!reduced[d]) shape.push_back(x.shape[d]);
    else if (keepdims) shape.push_back(Dim(1));
  }
  results.push_back({x.dtype, std::move(shape)});
  return Status::ok();
}

// ---- softmax / log_softmax (x) {axis = -1}

Status inferSoftmax(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireFloat(ctx, 0, "x"));
  Expected<int64_t> axis = normalizeAxis(ctx, ctx.attrs().getInt("axis", -1), ctx.type(0).rank());
  if (!axis) return axis.status();
  results.push_back(ctx.type(0));
  return Status::ok();
}

// ---- layer_norm (x, scale, bias?, residual?) {axis = -1, epsilon = 1e-5} -> (y, mean?, inv_std_dev?)

// The dtype of the optional mean / inv_std_dev results: f32 (ONNX's default
// stash_type), or f64 for an f64 input.
DType statsDType(DType x) { return x == DType::F64 ? DType::F64 : DType::F32; }

// scale and bias broadcast to the normalised dims x.shape[axis:] without growing them.
Status checkNormalizedOperand(const InferContext& ctx, size_t i, const Shape& normalized,
                              std::string_view what) {
  const Shape& shape = ctx.type(i).shape;
  bool ok = shape.size() <= normalized.size();
  for (size_t d = 0; ok && d < shape.size(); ++d) {
    const Dim& s = shape[d];
    const Dim& n = normalized[normalized.size() - shape.size() + d];
    // Undecidable pairs (a symbol against another dim) are checked at run time.
    ok = s == Dim(1) || s == n || !s.isConstant() || !n.isConstant();
  }
  if (!ok)
    return ctx.error(what, " ", shapeStr(shape), " does not broadcast to the normalized dims ",
                     shapeStr(normalized));
  return Status::ok();
}

// The residual added to x before normalising: x's dtype, and x's trailing
// dims (at least the normalised ones), repeated over x's leading dims (an
// embedding's [seq, D] position rows under [batch, seq, D] tokens).
Status checkResidual(const InferContext& ctx, const TensorType& x, size_t normalizedRank) {
  KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, 3));
  const Shape& residual = ctx.type(3).shape;
  bool ok = residual.size() >= normalizedRank && residual.size() <= x.rank();
  for (size_t d = 0; ok && d < residual.size(); ++d)
    ok = mayBeEqual(residual[d], x.shape[x.rank() - residual.size() + d]);
  if (!ok)
    return ctx.error("residual ", shapeStr(residual), " must be the trailing dims of x ", shapeStr(x.shape),
                     ", at least the normalized ones");
  return Status::ok();
}

Status inferLayerNorm(const InferContext& ctx, std::vector<TensorType>& results) {
  const TensorType& x = ctx.type(0);
  KILN_RETURN_IF_ERROR(requireFloat(ctx, 0, "x"));
  Expected<int64_t> axis = normalizeAxis(ctx, ctx.attrs().getInt("axis", -1), x.rank());
  if (!axis) return axis.status();
  const Shape normalized(x.shape.begin() + *axis, x.shape.end());
  KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, 1));
  KILN_RETURN_IF_ERROR(checkNormalizedOperand(ctx, 1, normalized, "scale"));
  if (ctx.has(2)) {
    KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, 2));
    KILN_RETURN_IF_ERROR(checkNormalizedOperand(ctx, 2, normalized, "bias"));
  }
  if (ctx.has(3)) KILN_RETURN_IF_ERROR(checkResidual(ctx, x, normalized.size()));
  results.push_back(x);
  Shape statsShape(x.shape.begin(), x.shape.begin() + *axis);
  statsShape.resize(x.rank(), Dim(1));
  for (int r = 1; r < ctx.numResults(); ++r) results.push_back({statsDType(x.dtype), statsShape});
  return Status::ok();
}

// ---- cumsum (x, axis) {exclusive, reverse}

Status inferCumsum(const InferContext& ctx, std::vector<TensorType>& results) {
  const TensorType& x = ctx.type(0);
  KILN_RETURN_IF_ERROR(requireNumeric(ctx, 0, "x"));
  if (!isInteger(ctx.type(1).dtype))
    return ctx.error("axis must be an integer tensor, got ", ctx.type(1).str());
  KILN_RETURN_IF_ERROR(requireScalarLike(ctx, 1, "axis"));
  if (std::optional<std::vector<int64_t>> axis = knownInts(ctx, 1)) {
    Expected<int64_t> normalized = normalizeAxis(ctx, axis->at(0), x.rank());
    if (!normalized) return normalized.status();
  }
  results.push_back(x);
  return Status::ok();
}

// One FLOP per element of x.
double perInputElement(const CostContext& ctx) { return ctx.elements(0); }

void addReduce(OpRegistry& registry, OpKind kind, std::string_view summary) {
  registry.add(OpDef{.kind = kind, .summary = summary, .operands = {"x", "axes"},
                     .minOperands = 1, .maxOperands = 2,
                     .attrs = {{"keepdims", AttrKind::Bool}, {"noop_with_empty_axes", AttrKind::Bool}},
                     .infer = inferReduce, .flops = perInputElement});
}

}  // namespace

// In place (operand x): softmax, layer_norm and cumsum finish reading a row's
// element before they write the same element of the result, so the result may
// take over x's slot.
void registerReductionOps(OpRegistry& registry) {
  addReduce(registry, OpKind::ReduceSum, "sum over axes (all when absent or empty)");
  addReduce(registry, OpKind::ReduceMean, "mean over axes (all when absent or empty)");
  addReduce(registry, OpKind::ReduceMax, "maximum over axes (all when absent or empty)");
  registry.add(OpDef{.kind = OpKind::Softmax, .summary = "exp(x) / sum(exp(x)) along axis",
                     .operands = {"x"}, .minOperands = 1, .maxOperands = 1,
                     .attrs = {{"axis", AttrKind::Int}},
                     .infer = inferSoftmax, .inplaceOperands = {0},
                     .flops = perResultElement<5>});
  registry.add(OpDef{.kind = OpKind::LogSoftmax, .summary = "log(softmax(x)) along axis",
                     .operands = {"x"}, .minOperands = 1, .maxOperands = 1,
                     .attrs = {{"axis", AttrKind::Int}},
                     .infer = inferSoftmax, .inplaceOperands = {0},
                     .flops = perResultElement<5>});
  registry.add(OpDef{.kind = OpKind::LayerNorm,
                     .summary = "normalises x (plus residual, repeated over x's leading dims) over dims "
                                "[axis, rank) then scales and shifts; optional results mean and inv_std_dev",
                     .operands = {"x", "scale", "bias", "residual"}, .minOperands = 2, .maxOperands = 4,
                     .minResults = 1, .maxResults = 3,
                     .attrs = {{"axis", AttrKind::Int}, {"epsilon", AttrKind::Float}},
                     .infer = inferLayerNorm, .inplaceOperands = {0},
                     .flops = perResultElement<8>});
  registry.add(OpDef{.kind = OpKind::Cumsum, .summary = "running sum along the axis operand",
                     .operands = {"x", "axis"}, .minOperands = 2, .maxOperands = 2,
                     .attrs = {{"exclusive", AttrKind::Bool}, {"reverse", AttrKind::Bool}},
                     .infer = inferCumsum, .inplaceOperands = {0},
                     .flops = perInputElement});
}

}  // namespace kiln
