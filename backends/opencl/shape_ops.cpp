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
  const std::string word = clWordType(dtypeSize(dtype));
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

Status transposeKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  const size_t rank = x.rank();
  std::vector<int64_t> perm(rank);
  for (size_t i = 0; i < rank; ++i) perm[i] = static_cast<int64_t>(rank - 1 - i);
  perm = ctx.attrs.getInts("perm", perm);
  const std::vector<int64_t> inStrides = rowMajorStrides(x.shape());
  std::vector<int64_t> strides(rank);
  for (size_t i = 0; i < rank; ++i) strides[i] = inStrides[static_cast<size_t>(wrapAxis(perm[i], rank))];
  const Tensor& out = *ctx.outputs[0];
  return stridedCopy(cl, ctx, out.shape(), wholeTensor(out), {&x, strides, 0});
}

Status expandKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& out = *ctx.outputs[0];
  return stridedCopy(cl, ctx, out.shape(), wholeTensor(out), broadcastTo(*ctx.input(0), out.shape()));
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
  Expected<std::optional<SliceParams>> params = sliceParams(infer);
  if (!params) return params.status();
  const SliceParams& p = **params;
  const std::vector<int64_t> inStrides = rowMajorStrides(x.shape());
  StridedTensor from{&x, inStrides, 0};
  for (size_t i = 0; i < p.axes.size(); ++i) {
    if (!p.starts[i].isConstant() || !p.ends[i].isConstant())
      return Status::error(ctx.def.name, ": bounds ", p.starts[i].str(), " to ", p.ends[i].str(),
                           " are not numbers (the run's symbol values were not substituted)");
    const auto axis = static_cast<size_t>(p.axes[i]);
    const SliceRange range = sliceAxis(x.shape()[axis], *p.starts[i].constant(), *p.ends[i].constant(), p.steps[i]);
    from.offset += *range.start.constant() * inStrides[axis];
    from.strides[axis] = inStrides[axis] * p.steps[i];
  }
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
  const std::string word = clWordType(dtypeSize(data.dtype()));
  const std::string source =
      cat(kCommonSource, "#define T ", word, "\n#define INDEX ", clTypeName(indices.dtype()), "\n", kGatherSource);
  Expected<cl_kernel> kernel = cl.kernel(source, "gather");
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

}  // namespace

void addShapeKernels(OpenClKernelTable& table) {
  for (OpKind kind : {OpKind::Identity, OpKind::Reshape, OpKind::Flatten, OpKind::Squeeze, OpKind::Unsqueeze})
    table.add(kind, viewKernel);
  table.add(OpKind::Transpose, transposeKernel);
  table.add(OpKind::Expand, expandKernel);
  table.add(OpKind::Slice, sliceKernel);
  table.add(OpKind::Concat, concatKernel);
  table.add(OpKind::Split, splitKernel);
  table.add(OpKind::Gather, gatherKernel);
}

}  // namespace kiln::opencl
