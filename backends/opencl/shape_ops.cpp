// The shape and data-movement ops on the OpenCL device, matching
// backends/reference/shape_ops.cpp: views copy only when the result does
// not alias the input; transpose, expand, slice, concat and split are
// strided copies (map_kernel.h) of whole elements; gather has a kernel of
// its own (kernels/gather.cl).
#include <string>
#include <vector>

#include "backends/opencl/kernel_sources.h"
#include "backends/opencl/map_kernel.h"
#include "backends/opencl/op_kernels.h"
#include "backends/reference/kernel_helpers.h"
#include "ir/shape_ops.h"

namespace kiln::opencl {
namespace {

using ops::wrapAxis;

// Copies elements as words of their size: exact for every dtype.
MapFunction copyFunction(DType dtype) {
  const std::string word = wordType(dtypeSize(dtype));
  return {word, {word}, "r = a0;"};
}

Status stridedCopy(ClContext& cl, const KernelContext& ctx, const std::vector<int64_t>& dims,
                   const StridedTensor& to, const StridedTensor& from) {
  return runMap(cl, ctx.def.name, copyFunction(from.tensor->dtype()), dims, to, {&from, 1});
}

// reshape, flatten, squeeze, unsqueeze, identity: the same bytes.
Status viewKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  const Tensor& out = *ctx.outputs[0];
  if (x.byteSize() == 0 || out.data() == x.data()) return Status::ok();
  Expected<DeviceAddress> from = deviceAddress(cl, ctx.def.name, x);
  if (!from) return from.status();
  Expected<DeviceAddress> to = deviceAddress(cl, ctx.def.name, out);
  if (!to) return to.status();
  return cl.copy(*to, *from, x.byteSize());
}

// How transpose walks its operand of `shape`: along each result dim.
std::vector<int64_t> transposeStrides(const std::vector<int64_t>& shape, const Attributes& attrs) {
  const size_t rank = shape.size();
  std::vector<int64_t> perm(rank);
  for (size_t i = 0; i < rank; ++i) perm[i] = static_cast<int64_t>(rank - 1 - i);
  perm = attrs.getInts("perm", perm);
  const std::vector<int64_t> inStrides = rowMajorStrides(shape);
  std::vector<int64_t> strides(rank);
  for (size_t i = 0; i < rank; ++i) strides[i] = inStrides[static_cast<size_t>(wrapAxis(perm[i], rank))];
  return strides;
}

Status transposeKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  const Tensor& out = *ctx.outputs[0];
  return stridedCopy(cl, ctx, out.shape(), wholeTensor(out), {&x, transposeStrides(x.shape(), ctx.attrs), 0});
}

Status expandKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& out = *ctx.outputs[0];
  return stridedCopy(cl, ctx, out.shape(), wholeTensor(out), broadcastTo(*ctx.input(0), out.shape()));
}

// How slice walks its operand of `shape`: strides along each result dim
// and the first element taken.
Status sliceWalk(const InferContext& infer, const std::vector<int64_t>& shape, std::vector<int64_t>& strides,
                 int64_t& offset) {
  Expected<std::optional<SliceParams>> params = sliceParams(infer);
  if (!params) return params.status();
  if (!*params) return Status::error(infer.def().name, ": the slice bounds are not known");
  const SliceParams& p = **params;
  const std::vector<int64_t> inStrides = rowMajorStrides(shape);
  strides = inStrides;
  for (size_t i = 0; i < p.axes.size(); ++i) {
    if (!p.starts[i].isConstant() || !p.ends[i].isConstant())
      return Status::error(infer.def().name, ": bounds ", p.starts[i].str(), " to ", p.ends[i].str(),
                           " are not numbers (the run's symbol values were not substituted)");
    const auto axis = static_cast<size_t>(p.axes[i]);
    const SliceRange range = sliceAxis(shape[axis], *p.starts[i].constant(), *p.ends[i].constant(), p.steps[i]);
    offset += *range.start.constant() * inStrides[axis];
    strides[axis] = inStrides[axis] * p.steps[i];
  }
  return Status::ok();
}

Status sliceKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  std::vector<Tensor> hostInputs(ctx.inputs.size());
  std::vector<TensorType> types(ctx.inputs.size());
  std::vector<OperandInfo> operands(ctx.inputs.size());
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    if (!ctx.inputs[i]) continue;
    types[i] = ctx.inputs[i]->type();
    if (i > 0) {
      Expected<Tensor> host = onHost(cl, *ctx.inputs[i]);
      if (!host) return host.status();
      hostInputs[i] = *host;
    }
    operands[i] = {&types[i], i > 0 ? &hostInputs[i] : nullptr};
  }
  const InferContext infer(ctx.def, ctx.attrs, operands, 1);
  StridedTensor from{&x, {}, 0};
  KILN_RETURN_IF_ERROR(sliceWalk(infer, x.shape(), from.strides, from.offset));
  const Tensor& out = *ctx.outputs[0];
  return stridedCopy(cl, ctx, out.shape(), wholeTensor(out), from);
}

// Each input into its block of the result along the axis.
Status concatKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& out = *ctx.outputs[0];
  const auto axis = static_cast<size_t>(wrapAxis(ctx.attrs.getInt("axis"), out.rank()));
  const std::vector<int64_t> outStrides = rowMajorStrides(out.shape());
  int64_t position = 0;
  for (const Tensor* in : ctx.inputs) {
    const StridedTensor to{&out, outStrides, position * outStrides[axis]};
    KILN_RETURN_IF_ERROR(stridedCopy(cl, ctx, in->shape(), to, wholeTensor(*in)));
    position += in->shape()[axis];
  }
  return Status::ok();
}

Status splitKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  const auto axis = static_cast<size_t>(wrapAxis(ctx.attrs.getInt("axis"), x.rank()));
  const std::vector<int64_t> inStrides = rowMajorStrides(x.shape());
  int64_t position = 0;
  for (Tensor* out : ctx.outputs) {
    const StridedTensor from{&x, inStrides, position * inStrides[axis]};
    KILN_RETURN_IF_ERROR(stridedCopy(cl, ctx, out->shape(), wholeTensor(*out), from));
    position += out->shape()[axis];
  }
  return Status::ok();
}

// kernels/gather.cl for elements of `data` indexed by `indices`.
std::string gatherSource(DType data, DType indices) {
  return cat(kCommonSource, "#define T ", wordType(dtypeSize(data)), "\n#define INDEX ", scalarType(indices), "\n",
             kGatherSource);
}

// gather: out[o, n, i] = data[o, indices[n], i]; an index out of range sets a
// flag the host reads back, to fail as the reference does.
Status gatherKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& data = *ctx.input(0);
  const Tensor& indices = *ctx.input(1);
  const Tensor& out = *ctx.outputs[0];
  if (indices.dtype() != DType::I64 && indices.dtype() != DType::I32) return unsupportedDType(ctx, indices.dtype());
  const int64_t axis = wrapAxis(ctx.attrs.getInt("axis"), data.rank());
  const ops::AxisSplit split = ops::splitAtAxis(data.shape(), axis);
  const int64_t count = indices.numElements();
  if (out.numElements() == 0) return Status::ok();
  Expected<cl_kernel> kernel = cl.kernel(gatherSource(data.dtype(), indices.dtype()), "gather");
  if (!kernel) return kernel.status();
  Expected<std::shared_ptr<void>> flag = cl.reserve(sizeof(cl_int));
  if (!flag) return flag.status();
  const DeviceAddress flagAt = *cl.find(flag->get());
  KILN_RETURN_IF_ERROR(cl.fill(flagAt, 0, sizeof(cl_int)));
  KernelArgs args;
  for (const Tensor* t : {&data, &indices, &out}) {
    Expected<DeviceAddress> at = deviceAddress(cl, ctx.def.name, *t);
    if (!at) return at.status();
    args.add(*at, dtypeSize(t->dtype()));
  }
  args.add(flagAt.buffer);
  for (int64_t v : {split.extent, count, split.inner}) args.add(static_cast<cl_long>(v));
  const size_t global[] = {static_cast<size_t>((split.inner + 63) / 64 * 64), static_cast<size_t>(count),
                           static_cast<size_t>(split.outer)};
  KILN_RETURN_IF_ERROR(cl.launch(*kernel, args, global));
  cl_int outOfRange = 0;
  KILN_RETURN_IF_ERROR(cl.read(&outOfRange, flagAt, sizeof outOfRange));
  if (outOfRange)
    return Status::error(ctx.def.name, ": an index is out of range for axis ", axis, " of size ", split.extent,
                         " (data ", shapeStr(data.shape()), ")");
  return Status::ok();
}

// ---- The programs each kernel above builds, predicted from the op's types.

// A strided copy of `dims` elements of `dtype`; none when there are none.
void copySource(DType dtype, const std::vector<int64_t>& dims, const std::vector<int64_t>& to,
                const std::vector<int64_t>& from, std::vector<std::string>& sources) {
  if (ops::product(dims) > 0) sources.push_back(mapKernelSource(copyFunction(dtype), dims, to, {&from, 1}));
}

void transposeSources(const OpTypes& op, std::vector<std::string>& sources) {
  const ShapedType& x = *op.input(0);
  const std::vector<int64_t>& out = op.output(0).shape;
  copySource(x.dtype, out, rowMajorStrides(out), transposeStrides(x.shape, op.attrs), sources);
}

void expandSources(const OpTypes& op, std::vector<std::string>& sources) {
  const ShapedType& x = *op.input(0);
  const std::vector<int64_t>& out = op.output(0).shape;
  copySource(x.dtype, out, rowMajorStrides(out), ops::broadcastStrides(x.shape, out), sources);
}

// Predicted where the bounds are attributes or constant operands.
void sliceSources(const OpTypes& op, std::vector<std::string>& sources) {
  std::vector<TensorType> types(op.inputs.size());
  std::vector<OperandInfo> operands(op.inputs.size());
  for (size_t i = 0; i < op.inputs.size(); ++i) {
    if (!op.inputs[i]) continue;
    types[i] = {op.inputs[i]->dtype, Shape(op.inputs[i]->shape.begin(), op.inputs[i]->shape.end())};
    operands[i] = {&types[i], op.values[i]};
  }
  const InferContext infer(op.def, op.attrs, operands, 1);
  std::vector<int64_t> strides;
  int64_t offset = 0;
  if (!sliceWalk(infer, op.input(0)->shape, strides, offset)) return;
  const std::vector<int64_t>& out = op.output(0).shape;
  copySource(op.input(0)->dtype, out, rowMajorStrides(out), strides, sources);
}

void concatSources(const OpTypes& op, std::vector<std::string>& sources) {
  const std::vector<int64_t> to = rowMajorStrides(op.output(0).shape);
  for (const std::optional<ShapedType>& in : op.inputs)
    if (in) copySource(in->dtype, in->shape, to, rowMajorStrides(in->shape), sources);
}

void splitSources(const OpTypes& op, std::vector<std::string>& sources) {
  const ShapedType& x = *op.input(0);
  for (const std::optional<ShapedType>& out : op.outputs)
    copySource(x.dtype, out->shape, rowMajorStrides(out->shape), rowMajorStrides(x.shape), sources);
}

void gatherSources(const OpTypes& op, std::vector<std::string>& sources) {
  const DType indices = op.input(1)->dtype;
  if ((indices == DType::I64 || indices == DType::I32) && ops::product(op.output(0).shape) > 0)
    sources.push_back(gatherSource(op.input(0)->dtype, indices));
}

}  // namespace

void addShapeKernels(OpenClKernelTable& table) {
  for (OpKind kind : {OpKind::Identity, OpKind::Reshape, OpKind::Flatten, OpKind::Squeeze, OpKind::Unsqueeze})
    table.add(kind, viewKernel);
  table.add(OpKind::Transpose, transposeKernel, transposeSources);
  table.add(OpKind::Expand, expandKernel, expandSources);
  table.add(OpKind::Slice, sliceKernel, sliceSources);
  table.add(OpKind::Concat, concatKernel, concatSources);
  table.add(OpKind::Split, splitKernel, splitSources);
  table.add(OpKind::Gather, gatherKernel, gatherSources);
}

}  // namespace kiln::opencl
