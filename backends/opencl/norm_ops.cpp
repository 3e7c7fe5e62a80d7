// rms_norm, layer_norm, softmax and the reductions on the OpenCL device
// (kernels/norms.cl): one work-group per row (per output element for the
// reductions), matching backends/reference/fused.cpp and reduction.cpp. f32;
// reduce_max's max ignores NaN (fmax).
#include <algorithm>
#include <string>
#include <vector>

#include "backends/opencl/kernel_sources.h"
#include "backends/opencl/map_kernel.h"
#include "backends/opencl/op_kernels.h"
#include "backends/reference/kernel_helpers.h"

namespace kiln::opencl {
namespace {

constexpr size_t kMaxRank = 6;
constexpr size_t kMaxGroup = 256;  // KILN_GROUP in kernels/norms.cl

// The Walk struct of norms.cl: a scale or bias broadcast over the normalized dims.
struct Walk {
  cl_long dims[kMaxRank];
  cl_long strides[kMaxRank];
  cl_long contiguous;
};

Expected<Walk> walkOver(const std::vector<int64_t>& normalized, const Tensor* operand) {
  Walk walk{};
  if (!operand) return walk;
  if (normalized.size() > kMaxRank) return Status::error("rank ", normalized.size(), " is above ", kMaxRank);
  const std::vector<int64_t> strides = ops::broadcastStrides(operand->shape(), normalized);
  const size_t lead = kMaxRank - normalized.size();
  for (size_t d = 0; d < kMaxRank; ++d) {
    walk.dims[d] = d < lead ? 1 : normalized[d - lead];
    walk.strides[d] = d < lead ? 0 : strides[d - lead];
  }
  walk.contiguous = operand->numElements() == ops::product(normalized) ? 1 : 0;
  return walk;
}

// The largest power of two no larger than the device allows or the row needs.
size_t groupSize(const ClContext& cl, int64_t cols) {
  size_t size = 1;
  while (size * 2 <= std::min(kMaxGroup, cl.maxWorkGroupSize()) && static_cast<int64_t>(size) < cols) size *= 2;
  return size;
}

struct Rows {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> normalized;
};

Rows rowsFrom(const Tensor& x, int64_t axis) {
  Rows r;
  r.normalized.assign(x.shape().begin() + axis, x.shape().end());
  r.cols = ops::product(r.normalized);
  r.rows = r.cols == 0 ? 0 : x.numElements() / r.cols;
  return r;
}

Status launchRows(ClContext& cl, const KernelContext& ctx, const char* name, const KernelArgs& args,
                  const Rows& rows) {
  if (rows.rows == 0) return Status::ok();
  Expected<cl_kernel> kernel = cl.kernel(librarySource(kNormsSource), name);
  if (!kernel) return kernel.status();
  const size_t local = groupSize(cl, rows.cols);
  const size_t global[] = {static_cast<size_t>(rows.rows) * local};
  return cl.launch(*kernel, args, global, &local);
}

// Adds a tensor's (buffer, offset) to args, or a null buffer for an absent one.
Status addTensor(const ClContext& cl, const KernelContext& ctx, KernelArgs& args, const Tensor* tensor) {
  if (!tensor) {
    args.add(cl_mem{nullptr});
    args.add(cl_long{0});
    return Status::ok();
  }
  if (tensor->dtype() != DType::F32) return unsupportedDType(ctx, tensor->dtype());
  Expected<DeviceAddress> at = deviceAddress(cl, ctx.def.name, *tensor);
  if (!at) return at.status();
  args.add(*at, sizeof(float));
  return Status::ok();
}

Status rmsNormKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  const Rows rows = rowsFrom(x, ops::wrapAxis(ctx.attrs.getInt("axis", -1), x.rank()));
  Expected<Walk> scaleWalk = walkOver(rows.normalized, ctx.input(1));
  if (!scaleWalk) return scaleWalk.status().withContext(cat(ctx.def.name, ": "));
  KernelArgs args;
  for (const Tensor* t : {&x, ctx.input(1), static_cast<const Tensor*>(ctx.outputs[0])})
    KILN_RETURN_IF_ERROR(addTensor(cl, ctx, args, t));
  args.add(static_cast<cl_long>(rows.cols));
  args.add(static_cast<cl_float>(ctx.attrs.getFloat("epsilon", 1e-5)));
  args.add(static_cast<cl_int>(ctx.input(1) != nullptr));
  args.add(*scaleWalk);
  return launchRows(cl, ctx, "rms_norm", args, rows);
}

Status layerNormKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  const Rows rows = rowsFrom(x, ops::wrapAxis(ctx.attrs.getInt("axis", -1), x.rank()));
  Expected<Walk> scaleWalk = walkOver(rows.normalized, ctx.input(1));
  Expected<Walk> biasWalk = walkOver(rows.normalized, ctx.input(2));
  if (!scaleWalk) return scaleWalk.status().withContext(cat(ctx.def.name, ": "));
  if (!biasWalk) return biasWalk.status().withContext(cat(ctx.def.name, ": "));
  const Tensor* mean = ctx.outputs.size() > 1 ? ctx.outputs[1] : nullptr;
  const Tensor* invStd = ctx.outputs.size() > 2 ? ctx.outputs[2] : nullptr;
  const Tensor* residual = ctx.input(3);
  KernelArgs args;
  for (const Tensor* t :
       {&x, ctx.input(1), ctx.input(2), residual, static_cast<const Tensor*>(ctx.outputs[0]), mean, invStd})
    KILN_RETURN_IF_ERROR(addTensor(cl, ctx, args, t));
  args.add(static_cast<cl_long>(rows.cols));
  args.add(static_cast<cl_float>(ctx.attrs.getFloat("epsilon", 1e-5)));
  args.add(static_cast<cl_int>(ctx.input(2) != nullptr));
  args.add(static_cast<cl_long>(residual && rows.cols > 0 ? residual->numElements() / rows.cols : 1));
  args.add(*scaleWalk);
  args.add(*biasWalk);
  return launchRows(cl, ctx, "layer_norm", args, rows);
}

template <bool kLogarithm>
Status softmaxKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  const ops::AxisSplit split = ops::splitAtAxis(x.shape(), ops::wrapAxis(ctx.attrs.getInt("axis", -1), x.rank()));
  KernelArgs args;
  for (const Tensor* t : {&x, static_cast<const Tensor*>(ctx.outputs[0])})
    KILN_RETURN_IF_ERROR(addTensor(cl, ctx, args, t));
  args.add(static_cast<cl_long>(split.extent));
  args.add(static_cast<cl_long>(split.inner));
  args.add(static_cast<cl_int>(kLogarithm));
  return launchRows(cl, ctx, "softmax", args, Rows{split.outer * split.inner, split.extent, {}});
}

// A walk over x's elements along the dims `take` selects (the others 1),
// with x's strides: the kept dims from an output index, or the reduced ones
// from a count.
Walk walkAlong(const Tensor& x, const std::vector<bool>& take) {
  Walk walk{};
  const std::vector<int64_t> strides = rowMajorStrides(x.shape());
  const size_t lead = kMaxRank - x.rank();
  for (size_t d = 0; d < kMaxRank; ++d) {
    const bool inside = d >= lead && take[d - lead];
    walk.dims[d] = inside ? x.shape()[d - lead] : 1;
    walk.strides[d] = inside ? strides[d - lead] : 0;
  }
  return walk;
}

// `to` gets `from`'s bytes (a reduction over no axes).
Status copyBytes(ClContext& cl, const KernelContext& ctx, const Tensor& from, const Tensor& to) {
  if (from.byteSize() == 0) return Status::ok();
  Expected<DeviceAddress> source = deviceAddress(cl, ctx.def.name, from);
  if (!source) return source.status();
  Expected<DeviceAddress> destination = deviceAddress(cl, ctx.def.name, to);
  if (!destination) return destination.status();
  return cl.copy(*destination, *source, from.byteSize());
}

template <int kMode>  // 0 sum, 1 mean, 2 max: the kernel's `mode`
Status reduceKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  if (x.rank() > kMaxRank) return Status::error(ctx.def.name, ": rank ", x.rank(), " is above ", kMaxRank);
  std::vector<int64_t> axes;
  if (ctx.input(1)) {
    Expected<Tensor> onHostAxes = onHost(cl, *ctx.input(1));
    if (!onHostAxes) return onHostAxes.status();
    axes = onHostAxes->toInts();
  }
  if (axes.empty() && ctx.attrs.getBool("noop_with_empty_axes", false)) return copyBytes(cl, ctx, x, *ctx.outputs[0]);
  std::vector<bool> reduced(x.rank(), axes.empty());
  for (int64_t axis : axes) reduced[static_cast<size_t>(ops::wrapAxis(axis, x.rank()))] = true;
  std::vector<bool> kept(x.rank());
  int64_t count = 1;
  for (size_t d = 0; d < x.rank(); ++d) {
    kept[d] = !reduced[d];
    if (reduced[d]) count *= x.shape()[d];
  }
  KernelArgs args;
  for (const Tensor* t : {&x, static_cast<const Tensor*>(ctx.outputs[0])}) KILN_RETURN_IF_ERROR(addTensor(cl, ctx, args, t));
  args.add(static_cast<cl_long>(count));
  args.add(static_cast<cl_int>(kMode));
  args.add(walkAlong(x, kept));
  args.add(walkAlong(x, reduced));
  return launchRows(cl, ctx, "reduce", args, Rows{ctx.outputs[0]->numElements(), count, {}});
}

// Every norm runs one program of kernels/norms.cl.
void normSources(const OpTypes& op, std::vector<std::string>& sources) {
  for (const std::optional<ShapedType>& input : op.inputs)
    if (input && input->dtype != DType::F32) return;
  sources.push_back(librarySource(kNormsSource));
}

// A reduction of f32 runs the same program; its axes (i64) stay on the host side.
void reduceSources(const OpTypes& op, std::vector<std::string>& sources) {
  if (op.input(0) && op.input(0)->dtype == DType::F32) sources.push_back(librarySource(kNormsSource));
}

}  // namespace

void addNormKernels(OpenClKernelTable& table) {
  table.add(OpKind::RmsNorm, rmsNormKernel, normSources);
  table.add(OpKind::LayerNorm, layerNormKernel, normSources);
  table.add(OpKind::Softmax, softmaxKernel<false>, normSources);
  table.add(OpKind::LogSoftmax, softmaxKernel<true>, normSources);
  table.add(OpKind::ReduceSum, reduceKernel<0>, reduceSources);
  table.add(OpKind::ReduceMean, reduceKernel<1>, reduceSources);
  table.add(OpKind::ReduceMax, reduceKernel<2>, reduceSources);
}

}  // namespace kiln::opencl
