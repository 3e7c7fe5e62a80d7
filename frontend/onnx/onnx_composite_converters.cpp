// ONNX ops kiln has no op of its own for, each composed of kiln ops that
// already have kernels on every device and that the passes already see
// through: ReduceL2, LessOrEqual, GreaterOrEqual, Tile, and Conv in the one
// form transformers use it, a patch embedding.
#include <algorithm>
#include <numeric>

#include "frontend/onnx/onnx_op_converters.h"

namespace kiln {

namespace {

using onnx::AttributeProto;

// ReduceL2 = sqrt(reduce_sum(x * x)), with the node's axes (an attribute
// before opset 18, an operand after) and keepdims.
Status convertReduceL2(OnnxNodeContext& ctx, const OnnxOpConverter&) {
  KILN_RETURN_IF_ERROR(requireInputs(ctx, 1));
  const ValueId x = ctx.input(0);
  std::vector<ValueId> operands;
  if (ctx.hasAttribute("axes")) {
    operands.push_back(ctx.addWeight("axes", int64Vector(ctx.intsAttr("axes"))));
  } else if (ctx.hasInput(1)) {
    operands.push_back(ctx.input(1));
  }
  Expected<ValueId> square = ctx.emit1("mul", {x, x});
  if (!square) return square.status();
  operands.insert(operands.begin(), *square);
  Attributes attrs;
  attrs.set("keepdims", ctx.intAttr("keepdims", 1));
  attrs.set("noop_with_empty_axes", ctx.intAttr("noop_with_empty_axes", 0));
  Expected<ValueId> sum = ctx.emit1("reduce_sum", operands, attrs);
  if (!sum) return sum.status();
  Expected<ValueId> norm = ctx.emit1("sqrt", {*sum});
  if (!norm) return norm.status();
  ctx.setOutput(0, *norm);
  return Status::ok();
}

// LessOrEqual = less or equal (and GreaterOrEqual with greater): false on
// NaN, as the ONNX op is, which not(greater) would not be.
Status convertOrEqual(OnnxNodeContext& ctx, const OnnxOpConverter& self) {
  KILN_RETURN_IF_ERROR(requireInputs(ctx, 2));
  Expected<ValueId> strict = ctx.emit1(self.kilnOps[0], {ctx.input(0), ctx.input(1)});
  if (!strict) return strict.status();
  Expected<ValueId> equal = ctx.emit1("equal", {ctx.input(0), ctx.input(1)});
  if (!equal) return equal.status();
  Expected<ValueId> either = ctx.emit1("or", {*strict, *equal});
  if (!either) return either.status();
  ctx.setOutput(0, *either);
  return Status::ok();
}

Expected<ValueId> unsqueezed(OnnxNodeContext& ctx, ValueId x, const std::vector<int64_t>& axes) {
  return ctx.emit1("unsqueeze", {x, ctx.addWeight("axes", int64Vector(axes))});
}

// Tile by repeats known at import time: the expand and reshape take their
// shapes as dims, so the result's dims are known (symbolic where x's are).
Status tileByKnownRepeats(OnnxNodeContext& ctx, ValueId spread, const Tensor& repeats) {
  const Shape& x = ctx.inputType(0).shape;
  std::vector<Dim> spreadDims, tiledDims;
  for (size_t d = 0; d < x.size(); ++d) {
    const Dim r(static_cast<int64_t>(repeats.elementAsDouble(static_cast<int64_t>(d))));
    spreadDims.insert(spreadDims.end(), {r, x[d]});
    tiledDims.push_back(r * x[d]);
  }
  Attributes expand, reshape;
  expand.set("shape", spreadDims);
  reshape.set("shape", tiledDims);
  Expected<ValueId> expanded = ctx.emit1("expand", {spread}, expand);
  if (!expanded) return expanded.status();
  Expected<ValueId> tiled = ctx.emit1("reshape", {*expanded}, reshape);
  if (!tiled) return tiled.status();
  ctx.setOutput(0, *tiled);
  return Status::ok();
}

// Tile of x [d0..dn-1] by repeats [r0..rn-1]: x unsqueezed to
// [1, d0, 1, d1, ...], expanded to [r0, d0, r1, d1, ...], reshaped to
// [r0*d0, r1*d1, ...]. Repeats known only at run time work too: the shapes
// are then computed in the graph, and canonicalisation folds what it can.
Status convertTile(OnnxNodeContext& ctx, const OnnxOpConverter&) {
  KILN_RETURN_IF_ERROR(requireInputs(ctx, 2));
  const ValueId x = ctx.input(0), repeats = ctx.input(1);
  const int64_t rank = static_cast<int64_t>(ctx.inputType(0).rank());
  std::vector<int64_t> everyOther;
  for (int64_t d = 0; d < rank; ++d) everyOther.push_back(2 * d);
  Expected<ValueId> spread = unsqueezed(ctx, x, everyOther);
  if (!spread) return spread.status();
  const Shape& xDims = ctx.inputType(0).shape;
  const bool dimsKnown = std::none_of(xDims.begin(), xDims.end(), [](const Dim& d) { return d.isUnknown(); });
  if (const Tensor* known = ctx.inputValue(1); known && known->numElements() == rank && dimsKnown)
    return tileByKnownRepeats(ctx, *spread, *known);
  Expected<ValueId> dims = ctx.emit1("shape", {x});
  if (!dims) return dims.status();
  Expected<ValueId> repeatColumn = unsqueezed(ctx, repeats, {1});
  if (!repeatColumn) return repeatColumn.status();
  Expected<ValueId> dimColumn = unsqueezed(ctx, *dims, {1});
  if (!dimColumn) return dimColumn.status();
  Attributes byColumn;
  byColumn.set("axis", int64_t{1});
  Expected<ValueId> pairs = ctx.emit1("concat", {*repeatColumn, *dimColumn}, byColumn);
  if (!pairs) return pairs.status();
  Expected<ValueId> spreadDims =
      ctx.emit1("reshape", {*pairs, ctx.addWeight("flat", int64Vector({2 * rank}))});
  if (!spreadDims) return spreadDims.status();
  Expected<ValueId> expanded = ctx.emit1("expand", {*spread, *spreadDims});
  if (!expanded) return expanded.status();
  Expected<ValueId> tiledDims = ctx.emit1("mul", {repeats, *dims});
  if (!tiledDims) return tiledDims.status();
  Expected<ValueId> tiled = ctx.emit1("reshape", {*expanded, *tiledDims});
  if (!tiled) return tiled.status();
  ctx.setOutput(0, *tiled);
  return Status::ok();
}

// The attribute `name` of a Conv, defaulting each of `rank` values.
std::vector<int64_t> convInts(const OnnxNodeContext& ctx, std::string_view name, size_t rank,
                              int64_t fallback) {
  std::vector<int64_t> values = ctx.intsAttr(name);
  if (values.empty()) values.assign(rank, fallback);
  return values;
}

struct PatchConv {
  int64_t channels, height, width, outChannels, kh, kw;
};

// Checks that the Conv is a patch embedding: 2-D, one group, stride equal
// to the kernel, no padding or dilation, static C, H, W dividing evenly,
// and constant weights.
Expected<PatchConv> patchConv(const OnnxNodeContext& ctx) {
  const TensorType& x = ctx.inputType(0);
  const Tensor* w = ctx.inputValue(1);
  if (x.rank() != 4) return Status::error("unsupported Conv: kiln takes 2-D ones only, the input is rank ", x.rank());
  if (!w) return Status::error("unsupported Conv: kiln takes constant weights only");
  const std::vector<int64_t>& wd = w->shape();
  const std::vector<int64_t> kernel = {wd[2], wd[3]};
  const std::vector<int64_t> strides = convInts(ctx, "strides", 2, 1);
  const std::vector<int64_t> pads = convInts(ctx, "pads", 4, 0);
  const std::vector<int64_t> dilations = convInts(ctx, "dilations", 2, 1);
  const std::string autoPad = ctx.hasAttribute("auto_pad") ? ctx.attribute("auto_pad")->s() : "NOTSET";
  const bool patch = ctx.intAttr("group", 1) == 1 && strides == kernel &&
                     std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; }) &&
                     dilations == std::vector<int64_t>{1, 1} && (autoPad == "NOTSET" || autoPad == "VALID");
  if (!patch) {
    return Status::error("unsupported Conv: kiln takes a patch embedding only (one group, strides equal to "
                         "the kernel ", kernel[0], "x", kernel[1], ", no padding, no dilation)");
  }
  std::vector<int64_t> chw;
  for (size_t d = 1; d < 4; ++d) {
    std::optional<int64_t> n = x.shape[d].constant();
    if (!n) return Status::error("unsupported Conv: a patch embedding needs static channels, height and width");
    chw.push_back(*n);
  }
  const PatchConv conv{chw[0], chw[1], chw[2], wd[0], kernel[0], kernel[1]};
  if (conv.height % conv.kh != 0 || conv.width % conv.kw != 0 || wd[1] != conv.channels) {
    return Status::error("the patch-embedding Conv's image ", conv.height, "x", conv.width,
                         " does not split into ", conv.kh, "x", conv.kw, " patches of ", wd[1], " channels");
  }
  return conv;
}

// The Conv weights [O, C, kh, kw] as the matmul's [C*kh*kw, O].
Tensor patchWeights(const Tensor& w, const PatchConv& conv) {
  const int64_t patch = conv.channels * conv.kh * conv.kw;
  Tensor t = Tensor::allocate(DType::F32, {patch, conv.outChannels});
  const float* src = w.data<float>();
  float* dst = t.data<float>();
  for (int64_t o = 0; o < conv.outChannels; ++o) {
    for (int64_t k = 0; k < patch; ++k) dst[k * conv.outChannels + o] = src[o * patch + k];
  }
  return t;
}

// A patch-embedding Conv is a matmul over the image cut into patches
// ([N, H/kh * W/kw, C*kh*kw], the `patches` op), times the weights, plus the
// bias, then put back to NCHW [N, O, H/kh, W/kw].
Status convertConv(OnnxNodeContext& ctx, const OnnxOpConverter&) {
  KILN_RETURN_IF_ERROR(requireInputs(ctx, 2));
  Expected<PatchConv> conv = patchConv(ctx);
  if (!conv) return conv.status();
  if (ctx.inputType(0).dtype != DType::F32 || ctx.inputValue(1)->dtype() != DType::F32) {
    return Status::error("unsupported Conv: kiln takes f32 only");
  }
  const int64_t rows = conv->height / conv->kh, cols = conv->width / conv->kw;
  Attributes size;
  size.set("size", std::vector<int64_t>{conv->kh, conv->kw});
  Expected<ValueId> flat = ctx.emit1("patches", {ctx.input(0)}, size);
  if (!flat) return flat.status();
  Expected<ValueId> y = ctx.emit1("matmul", {*flat, ctx.addWeight("weight", patchWeights(*ctx.inputValue(1), *conv))});
  if (!y) return y.status();
  if (ctx.hasInput(2)) {
    y = ctx.emit1("add", {*y, ctx.input(2)});
    if (!y) return y.status();
  }
  Expected<ValueId> grid =
      ctx.emit1("reshape", {*y, ctx.addWeight("grid", int64Vector({-1, rows, cols, conv->outChannels}))});
  if (!grid) return grid.status();
  Attributes nchw;
  nchw.set("perm", std::vector<int64_t>{0, 3, 1, 2});
  Expected<ValueId> out = ctx.emit1("transpose", {*grid}, nchw);
  if (!out) return out.status();
  ctx.setOutput(0, *out);
  return Status::ok();
}

constexpr auto kInt = AttributeProto::INT;
constexpr auto kInts = AttributeProto::INTS;

}  // namespace

std::vector<OnnxOpConverter> compositeOnnxConverters() {
  const std::vector<OnnxAttrDecl> reduce = {{"axes", kInts}, {"keepdims", kInt},
                                            {"noop_with_empty_axes", kInt}};
  return {
      {"ReduceL2", {"mul", "reduce_sum", "sqrt"}, reduce, convertReduceL2},
      {"LessOrEqual", {"less", "equal", "or"}, {}, convertOrEqual},
      {"GreaterOrEqual", {"greater", "equal", "or"}, {}, convertOrEqual},
      {"Tile", {"unsqueeze", "shape", "concat", "reshape", "expand", "mul"}, {}, convertTile},
      {"Conv", {"reshape", "transpose", "matmul", "add"},
       {{"auto_pad", AttributeProto::STRING}, {"dilations", kInts}, {"group", kInt},
        {"kernel_shape", kInts}, {"pads", kInts}, {"strides", kInts}},
       convertConv},
  };
}

}  // namespace kiln
