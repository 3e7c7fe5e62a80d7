// rms_norm, layer_norm, softmax and log_softmax on the CUDA device
// (kernels/norms.cu): one block per row, matching backends/reference/fused.cpp
// as the OpenCL kernels do. f32; a scale or bias must be one row of the
// normalized dims (the kernels read it contiguously), other broadcasts are
// refused with an error naming the op.
#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "backends/cuda/kernel_sources.h"
#include "backends/cuda/op_kernels.h"
#include "backends/reference/kernel_helpers.h"

namespace kiln::cuda {
namespace {

constexpr unsigned kMaxBlock = 256;  // KILN_BLOCK in kernels/common.cu

std::vector<ProgramText> normsProgram(const Graph&, const Op&) {
  return {libraryProgram("norms", kNormsSource)};
}

// Whole warps, as few as the row needs, at most kMaxBlock threads.
unsigned blockFor(int64_t cols) {
  const int64_t warps = std::clamp<int64_t>((cols + 31) / 32, 1, kMaxBlock / 32);
  return static_cast<unsigned>(warps * 32);
}

struct Rows {
  int64_t rows = 0, cols = 0;
};

Rows rowsFrom(const Tensor& x, int64_t axis) {
  Rows r;
  r.cols = ops::product(std::span<const int64_t>(x.shape()).subspan(static_cast<size_t>(axis)));
  r.rows = r.cols == 0 ? 0 : x.numElements() / r.cols;
  return r;
}

// Every tensor f32 and on the device; a scale or bias one row of `cols`.
Status checkOperands(const CudaContext& cuda, const KernelContext& ctx, int64_t cols,
                     std::initializer_list<size_t> rowOperands) {
  for (size_t i = 0; i < ctx.inputs.size(); ++i)
    if (ctx.input(i) && ctx.input(i)->dtype() != DType::F32) return unsupportedDType(ctx, ctx.input(i)->dtype());
  for (size_t i : rowOperands)
    if (const Tensor* row = ctx.input(i); row && row->numElements() != cols)
      return Status::error(ctx.def.name, ": operand ", i, " (", shapeStr(row->shape()), ") is not one row of ", cols,
                           " elements, which the CUDA kernel reads");
  return checkOnDevice(cuda, ctx);
}

Status launchRows(CudaContext& cuda, const char* kernel, const Rows& rows, CudaArgs& args) {
  if (rows.rows == 0) return Status::ok();
  if (rows.rows > int64_t{0x7fffffff}) return Status::error(kernel, ": ", rows.rows, " rows are more than a grid has");
  const std::vector<void*> pointers = args.pointers();
  return cuda.launch("norms", kernel, static_cast<unsigned>(rows.rows), blockFor(rows.cols), pointers);
}

Status rmsNormKernel(CudaContext& cuda, const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  const Rows rows = rowsFrom(x, ops::wrapAxis(ctx.attrs.getInt("axis", -1), x.rank()));
  KILN_RETURN_IF_ERROR(checkOperands(cuda, ctx, rows.cols, {1}));
  CudaArgs args;
  args.add(&x);
  args.add(ctx.input(1));
  args.add(static_cast<const Tensor*>(ctx.outputs[0]));
  args.add<long long>(rows.cols);
  args.add<float>(static_cast<float>(ctx.attrs.getFloat("epsilon", 1e-5)));
  return launchRows(cuda, "rms_norm", rows, args);
}

Status layerNormKernel(CudaContext& cuda, const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  const Rows rows = rowsFrom(x, ops::wrapAxis(ctx.attrs.getInt("axis", -1), x.rank()));
  KILN_RETURN_IF_ERROR(checkOperands(cuda, ctx, rows.cols, {1, 2}));
  const Tensor* residual = ctx.input(3);
  if (residual && (rows.cols == 0 || residual->numElements() % rows.cols != 0 || residual->numElements() == 0))
    return Status::error(ctx.def.name, ": the residual ", shapeStr(residual->shape()), " is not rows of ", rows.cols);
  CudaArgs args;
  for (size_t i = 0; i < 4; ++i) args.add(ctx.input(i));
  args.add<long long>(residual ? residual->numElements() / rows.cols : 1);
  for (size_t i = 0; i < 3; ++i)
    args.add(static_cast<const Tensor*>(i < ctx.outputs.size() ? ctx.outputs[i] : nullptr));
  args.add<long long>(rows.cols);
  args.add<float>(static_cast<float>(ctx.attrs.getFloat("epsilon", 1e-5)));
  return launchRows(cuda, "layer_norm", rows, args);
}

// softmax and log_softmax over `axis`: a row per element of the other dims.
Status softmaxKernel(CudaContext& cuda, const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  const std::span<const int64_t> shape = x.shape();
  const size_t axis = shape.empty() ? 0 : static_cast<size_t>(ops::wrapAxis(ctx.attrs.getInt("axis", -1), x.rank()));
  const int64_t extent = shape.empty() ? 1 : shape[axis];
  const int64_t inner = shape.empty() ? 1 : ops::product(shape.subspan(axis + 1));
  KILN_RETURN_IF_ERROR(checkOperands(cuda, ctx, 0, {}));
  Rows rows{extent == 0 ? 0 : x.numElements() / extent, extent};
  CudaArgs args;
  args.add(&x);
  args.add(static_cast<const Tensor*>(ctx.outputs[0]));
  args.add<long long>(extent);
  args.add<long long>(inner);
  args.add<int>(ctx.def.kind == OpKind::LogSoftmax ? 1 : 0);
  return launchRows(cuda, "softmax", rows, args);
}

}  // namespace

void addNormKernels(CudaKernelTable& table) {
  table.add(OpKind::RmsNorm, rmsNormKernel, normsProgram);
  table.add(OpKind::LayerNorm, layerNormKernel, normsProgram);
  table.add(OpKind::Softmax, softmaxKernel, normsProgram);
  table.add(OpKind::LogSoftmax, softmaxKernel, normsProgram);
}

}  // namespace kiln::cuda
