// matmul on the OpenCL device (kernels/matmul.cl): f32, transposed operands,
// numpy-broadcast batch dims (b may be 2-D), and the fused epilogue (bias,
// activation, residual), matching backends/reference/linalg.cpp.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "backends/opencl/kernel_sources.h"
#include "backends/opencl/map_kernel.h"
#include "backends/opencl/op_kernels.h"
#include "backends/reference/kernel_helpers.h"
#include "ir/activation.h"

namespace kiln::opencl {
namespace {

constexpr size_t kMaxRank = 6;
constexpr size_t kMaxBatchRank = 4;
constexpr size_t kTile = 64, kGroup = 16;  // TILE and GROUP in kernels/matmul.cl

// MatmulShape of kernels/matmul.cl.
struct MatmulShape {
  cl_long M, N, K, transA, transB, activation, biasMode, residualMode;
  cl_long batchDims[kMaxBatchRank], aBatchStrides[kMaxBatchRank], bBatchStrides[kMaxBatchRank];
  cl_long outDims[kMaxRank], biasStrides[kMaxRank], residualStrides[kMaxRank];
};

// Copies `values` into the last entries of `to` (of `size`), the rest `fill`.
void padInto(cl_long* to, size_t size, const std::vector<int64_t>& values, int64_t fill) {
  const size_t lead = size - values.size();
  for (size_t d = 0; d < size; ++d) to[d] = d < lead ? fill : values[d - lead];
}

// How the kernel reads a bias or residual (MatmulShape's modes), and its strides.
cl_long epilogueMode(const Tensor* operand, const Tensor& out, int64_t N, cl_long* strides) {
  if (!operand) return 0;
  if (operand->numElements() == out.numElements()) return 2;
  if (operand->numElements() == N && operand->rank() > 0 && operand->shape().back() == N) return 1;
  padInto(strides, kMaxRank, ops::broadcastStrides(operand->shape(), out.shape()), 0);
  return 3;
}

std::vector<int64_t> batchDims(const std::vector<int64_t>& shape) {
  return {shape.begin(), shape.end() - std::min<ptrdiff_t>(2, static_cast<ptrdiff_t>(shape.size()))};
}

Expected<MatmulShape> matmulShape(const KernelContext& ctx, Activation activation) {
  const Tensor& a = *ctx.input(0);
  const Tensor& b = *ctx.input(1);
  const Tensor& out = *ctx.outputs[0];
  if (out.rank() > kMaxRank) return Status::error(ctx.def.name, ": rank ", out.rank(), " is above ", kMaxRank);
  MatmulShape s{};
  s.transA = ctx.attrs.getBool("transpose_a");
  s.transB = ctx.attrs.getBool("transpose_b");
  const std::vector<int64_t>& sa = a.shape();
  const std::vector<int64_t>& sb = b.shape();
  const size_t ra = sa.size(), rb = sb.size();
  s.M = ra >= 2 ? (s.transA ? sa.back() : sa[ra - 2]) : 1;
  s.K = s.transA ? sa[ra - 2] : sa.back();
  s.N = rb >= 2 ? (s.transB ? sb[rb - 2] : sb.back()) : 1;
  s.activation = static_cast<cl_long>(activation);
  const std::vector<int64_t> batchA = batchDims(sa), batchB = batchDims(sb);
  const size_t batchRank = std::max(batchA.size(), batchB.size());
  const std::vector<int64_t> batchOut(out.shape().begin(), out.shape().begin() + static_cast<ptrdiff_t>(batchRank));
  std::vector<int64_t> aStrides = ops::broadcastStrides(batchA, batchOut);
  std::vector<int64_t> bStrides = ops::broadcastStrides(batchB, batchOut);
  for (int64_t& stride : aStrides) stride *= s.M * s.K;
  for (int64_t& stride : bStrides) stride *= s.K * s.N;
  padInto(s.batchDims, kMaxBatchRank, batchOut, 1);
  padInto(s.aBatchStrides, kMaxBatchRank, aStrides, 0);
  padInto(s.bBatchStrides, kMaxBatchRank, bStrides, 0);
  padInto(s.outDims, kMaxRank, out.shape(), 1);
  s.biasMode = epilogueMode(ctx.input(2), out, s.N, s.biasStrides);
  s.residualMode = epilogueMode(ctx.input(3), out, s.N, s.residualStrides);
  return s;
}

Status matmulKernel(ClContext& cl, const KernelContext& ctx) {
  for (size_t i = 0; i < 4; ++i)
    if (ctx.input(i) && ctx.input(i)->dtype() != DType::F32) return unsupportedDType(ctx, ctx.input(i)->dtype());
  const std::optional<Activation> activation = parseActivation(ctx.attrs.getString("activation", "none"));
  if (!activation) return Status::error(ctx.def.name, ": unknown activation");
  const Tensor& out = *ctx.outputs[0];
  if (out.numElements() == 0) return Status::ok();
  if (cl.maxWorkGroupSize() < kGroup * kGroup)
    return Status::error(ctx.def.name, ": the OpenCL matmul needs work-groups of ", kGroup * kGroup, " items; ",
                         cl.deviceName(), " allows ", cl.maxWorkGroupSize());
  Expected<MatmulShape> shape = matmulShape(ctx, *activation);
  if (!shape) return shape.status();
  KernelArgs args;
  for (const Tensor* t : {ctx.input(0), ctx.input(1), ctx.input(2), ctx.input(3), static_cast<const Tensor*>(&out)}) {
    if (!t) {
      args.add(cl_mem{nullptr});
      args.add(cl_long{0});
      continue;
    }
    Expected<DeviceAddress> at = deviceAddress(cl, ctx.def.name, *t);
    if (!at) return at.status();
    args.add(*at, sizeof(float));
  }
  args.add(*shape);
  Expected<cl_kernel> kernel = cl.kernel(librarySource(kMatmulSource), "matmul");
  if (!kernel) return kernel.status();
  const int64_t batches = out.numElements() / (shape->M * shape->N);
  const size_t global[] = {(static_cast<size_t>(shape->N) + kTile - 1) / kTile * kGroup,
                           (static_cast<size_t>(shape->M) + kTile - 1) / kTile * kGroup, static_cast<size_t>(batches)};
  const size_t local[] = {kGroup, kGroup, 1};
  return cl.launch(*kernel, args, global, local);
}

void matmulSources(const OpTypes& op, std::vector<std::string>& sources) {
  for (const std::optional<ShapedType>& input : op.inputs)
    if (input && input->dtype != DType::F32) return;
  sources.push_back(librarySource(kMatmulSource));
}

}  // namespace

void addMatmulKernels(OpenClKernelTable& table) { table.add(OpKind::Matmul, matmulKernel, matmulSources); }

}  // namespace kiln::opencl
