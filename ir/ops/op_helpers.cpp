#include "ir/ops/op_helpers.h"

#include <algorithm>

namespace kiln::ops {

Status requireDType(const InferContext& ctx, size_t i, DType dtype, std::string_view what) {
  if (ctx.type(i).dtype != dtype)
    return ctx.error(what, " must be ", dtypeName(dtype), ", got ", ctx.type(i).str());
  return Status::ok();
}

Status requireFloat(const InferContext& ctx, size_t i, std::string_view what) {
  if (!isFloat(ctx.type(i).dtype))
    return ctx.error(what, " must be a float tensor (f32, f16, bf16, f64), got ", ctx.type(i).str());
  return Status::ok();
}

Status requireNumeric(const InferContext& ctx, size_t i, std::string_view what) {
  if (ctx.type(i).dtype == DType::Bool)
    return ctx.error(what, " must be a numeric tensor, got ", ctx.type(i).str());
  return Status::ok();
}

Status requireSameDType(const InferContext& ctx, size_t a, size_t b) {
  if (ctx.type(a).dtype != ctx.type(b).dtype)
    return ctx.error("operands ", a, " and ", b, " must have the same dtype, got ",
                     dtypeName(ctx.type(a).dtype), " and ", dtypeName(ctx.type(b).dtype));
  return Status::ok();
}

Status requireRank(const InferContext& ctx, size_t i, size_t rank, std::string_view what) {
  if (ctx.type(i).rank() != rank)
    return ctx.error(what, " must have rank ", rank, ", got ", ctx.type(i).str());
  return Status::ok();
}

Status requireScalarLike(const InferContext& ctx, size_t i, std::string_view what) {
  const Shape& shape = ctx.type(i).shape;
  if (shape.empty() || (shape.size() == 1 && shape[0] == Dim(1))) return Status::ok();
  return ctx.error(what, " must be a scalar or a 1-element 1-D tensor, got ", ctx.type(i).str());
}

bool mayBeEqual(const Dim& a, const Dim& b) {
  return !(a.isConstant() && b.isConstant() && a != b);
}

Status requireBroadcastsTo(const InferContext& ctx, size_t i, const Shape& target,
                           std::string_view what, std::string_view targetName) {
  const Shape& shape = ctx.type(i).shape;
  bool fits = shape.size() <= target.size();
  for (size_t d = 0; fits && d < shape.size(); ++d)
    fits = shape[d] == Dim(1) || mayBeEqual(shape[d], target[target.size() - shape.size() + d]);
  if (!fits)
    return ctx.error(what, " ", shapeStr(shape), " does not broadcast to ", targetName, " ",
                     shapeStr(target));
  return Status::ok();
}

Status requireAttentionMask(const InferContext& ctx, size_t i, bool keyPaddingMask, int64_t heads,
                            const Dim& batch, const Dim& seq, const Dim& keys) {
  if (keyPaddingMask) {
    if (!ctx.has(i)) return ctx.error("mask_layout = \"key_padding\" needs a mask");
    const DType maskType = ctx.type(i).dtype;
    if (maskType != DType::Bool && !isInteger(maskType))
      return ctx.error("a key_padding mask must be bool or integer (nonzero = attend), got ", ctx.type(i).str());
    return requireBroadcastsTo(ctx, i, {batch, keys}, "key_padding mask", "[batch, past + kv_seq] =");
  }
  if (!ctx.has(i)) return Status::ok();
  const DType maskType = ctx.type(i).dtype;
  if (maskType != DType::Bool && !isFloat(maskType))
    return ctx.error("mask must be bool (true = attend) or float (added to the scores), got ", ctx.type(i).str());
  return requireBroadcastsTo(ctx, i, {batch, Dim(heads), seq, keys}, "mask",
                             "the scores [batch, heads, seq, past + kv_seq] =");
}

Expected<Shape> broadcastAllOperands(const InferContext& ctx) {
  Shape result;
  for (size_t i = 0; i < ctx.numOperands(); ++i) {
    if (!ctx.has(i)) continue;
    std::optional<Shape> next = broadcastShapes(result, ctx.type(i).shape);
    if (!next) {
      std::string shapes;
      for (size_t j = 0; j < ctx.numOperands(); ++j)
        if (ctx.has(j)) shapes += (shapes.empty() ? "" : ", ") + shapeStr(ctx.type(j).shape);
      return ctx.error("shapes ", shapes, " do not broadcast");
    }
    result = std::move(*next);
  }
  return result;
}

Expected<int64_t> normalizeAxis(const InferContext& ctx, int64_t axis, size_t rank,
                                std::string_view what) {
  const auto r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= r)
    return ctx.error(what, " = ", axis, " is out of range for rank ", rank, " (valid: [", -r,
                     ", ", r - 1, "])");
  return axis < 0 ? axis + r : axis;
}

Expected<std::vector<int64_t>> normalizeAxes(const InferContext& ctx,
                                             const std::vector<int64_t>& axes, size_t rank,
                                             std::string_view what) {
  std::vector<int64_t> result;
  result.reserve(axes.size());
  for (size_t i = 0; i < axes.size(); ++i) {
    Expected<int64_t> axis = normalizeAxis(ctx, axes[i], rank, cat(what, "[", i, "]"));
    if (!axis) return axis.status();
    if (std::find(result.begin(), result.end(), *axis) != result.end())
      return ctx.error(what, " names axis ", *axis, " more than once");
    result.push_back(*axis);
  }
  return result;
}

std::optional<std::vector<int64_t>> knownInts(const InferContext& ctx, size_t i) {
  const Tensor* value = ctx.value(i);
  if (!value) return std::nullopt;
  return value->toInts();
}

std::optional<int64_t> staticLength(const InferContext& ctx, size_t i) {
  const Shape& shape = ctx.type(i).shape;
  if (shape.empty()) return 1;
  if (shape.size() != 1) return std::nullopt;
  return shape[0].constant();
}

Shape unknownShape(size_t rank) { return Shape(rank, Dim::unknown()); }

Shape toShape(const std::vector<int64_t>& dims) { return Shape(dims.begin(), dims.end()); }

}  // namespace kiln::ops
