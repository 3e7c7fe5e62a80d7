// The reference kernels of the shape and data-movement ops
// (ir/ops/shape_ops.cpp). Kernels read dim-list attributes that the executor
// (or evaluateOp) has already resolved to numbers.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "backends/reference/kernel_helpers.h"
#include "backends/reference/kernel_table.h"
#include "ir/shape_ops.h"

namespace kiln {
namespace {

using namespace ops;

// ---- Copies shared by the kernels.

// Copies a strided view of `src` into `dst`, row-major over `shape`: element
// (i0, ..., in) comes from src[offset + sum(i_d * strides[d])]. Strides may be
// 0 (broadcast) or negative (reversed slices).
template <class Word>
void copyStridedWords(const Word* src, int64_t offset, std::span<const int64_t> strides,
                      std::span<const int64_t> shape, Word* dst) {
  if (product(shape) == 0) return;
  const size_t rank = shape.size();
  if (rank == 0) {
    dst[0] = src[offset];
    return;
  }
  const int64_t inner = shape[rank - 1];
  const int64_t innerStride = strides[rank - 1];
  const int64_t rows = product(shape.first(rank - 1));
  std::vector<int64_t> counter(rank - 1, 0);
  int64_t base = offset;
  for (int64_t r = 0; r < rows; ++r, dst += inner) {
    const Word* row = src + base;
    if (innerStride == 1) std::copy(row, row + inner, dst);
    else
      for (int64_t j = 0; j < inner; ++j) dst[j] = row[j * innerStride];
    for (size_t d = rank - 1; d-- > 0;) {
      base += strides[d];
      if (++counter[d] < shape[d]) break;
      base -= strides[d] * shape[d];
      counter[d] = 0;
    }
  }
}

// Element moves depend only on the element size, not on the dtype.
void copyStrided(const Tensor& src, int64_t offset, std::span<const int64_t> strides, Tensor& dst) {
  const std::vector<int64_t>& shape = dst.shape();
  switch (dtypeSize(src.dtype())) {
    case 1: return copyStridedWords(src.data<uint8_t>(), offset, strides, shape, dst.data<uint8_t>());
    case 2: return copyStridedWords(src.data<uint16_t>(), offset, strides, shape, dst.data<uint16_t>());
    case 4: return copyStridedWords(src.data<uint32_t>(), offset, strides, shape, dst.data<uint32_t>());
    default: return copyStridedWords(src.data<uint64_t>(), offset, strides, shape, dst.data<uint64_t>());
  }
}

// Reshape, flatten, squeeze and unsqueeze keep the row-major element order:
// they are views, and copy nothing when the planner gave the result x's bytes.
Status copyAllKernel(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  void* out = ctx.outputs[0]->data();
  if (x.byteSize() && out != x.data()) std::memcpy(out, x.data(), x.byteSize());
  return Status::ok();
}

// ---- transpose

Status transposeKernel(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  const size_t rank = x.rank();
  std::vector<int64_t> perm(rank);
  for (size_t i = 0; i < rank; ++i) perm[i] = static_cast<int64_t>(rank - 1 - i);
  perm = ctx.attrs.getInts("perm", perm);
  const std::vector<int64_t> inStrides = rowMajorStrides(x.shape());
  std::vector<int64_t> strides(rank);
  for (size_t i = 0; i < rank; ++i)
    strides[i] = inStrides[static_cast<size_t>(wrapAxis(perm[i], rank))];
  copyStrided(x, 0, strides, *ctx.outputs[0]);
  return Status::ok();
}

// ---- concat

Status concatKernel(const KernelContext& ctx) {
  Tensor& out = *ctx.outputs[0];
  const int64_t axis = wrapAxis(ctx.attrs.getInt("axis"), out.rank());
  const AxisSplit outSplit = splitAtAxis(out.shape(), axis);
  const size_t elementSize = dtypeSize(out.dtype());
  auto* dst = static_cast<uint8_t*>(out.data());
  int64_t position = 0;  // along the axis
  for (const Tensor* in : ctx.inputs) {
    const AxisSplit split = splitAtAxis(in->shape(), axis);
    const size_t block = static_cast<size_t>(split.extent * split.inner) * elementSize;
    const auto* src = static_cast<const uint8_t*>(in->data());
    for (int64_t o = 0; o < split.outer; ++o)
      if (block)
        std::memcpy(dst + static_cast<size_t>((o * outSplit.extent + position) * outSplit.inner) * elementSize,
                    src + static_cast<size_t>(o) * block, block);
    position += split.extent;
  }
  return Status::ok();
}

// ---- split

Status splitKernel(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  const int64_t axis = wrapAxis(ctx.attrs.getInt("axis"), x.rank());
  const AxisSplit in = splitAtAxis(x.shape(), axis);
  const size_t elementSize = dtypeSize(x.dtype());
  const auto* src = static_cast<const uint8_t*>(x.data());
  int64_t position = 0;
  for (Tensor* out : ctx.outputs) {
    const int64_t extent = out->shape()[static_cast<size_t>(axis)];
    const size_t block = static_cast<size_t>(extent * in.inner) * elementSize;
    auto* dst = static_cast<uint8_t*>(out->data());
    for (int64_t o = 0; o < in.outer; ++o)
      if (block)
        std::memcpy(dst + static_cast<size_t>(o) * block,
                    src + static_cast<size_t>((o * in.extent + position) * in.inner) * elementSize, block);
    position += extent;
  }
  return Status::ok();
}

// ---- slice

Status sliceKernel(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  std::vector<TensorType> types(ctx.inputs.size());
  std::vector<OperandInfo> operands(ctx.inputs.size());
  for (size_t i = 0; i < ctx.inputs.size(); ++i)
    if (ctx.inputs[i]) {
      types[i] = ctx.inputs[i]->type();
      operands[i] = {&types[i], ctx.inputs[i]};
    }
  const InferContext infer(ctx.def, ctx.attrs, operands, 1);
  Expected<std::optional<SliceParams>> params = sliceParams(infer);
  if (!params) return params.status();
  const SliceParams& p = **params;  // every value is known in a kernel
  const std::vector<int64_t> inStrides = rowMajorStrides(x.shape());
  std::vector<int64_t> strides = inStrides;
  int64_t offset = 0;
  for (size_t i = 0; i < p.axes.size(); ++i) {
    if (!p.starts[i].isConstant() || !p.ends[i].isConstant())
      return Status::error(ctx.def.name, ": bounds ", p.starts[i].str(), " to ", p.ends[i].str(),
                           " are not numbers (the run's symbol values were not substituted)");
    const auto axis = static_cast<size_t>(p.axes[i]);
    const SliceRange range = sliceAxis(x.shape()[axis], *p.starts[i].constant(), *p.ends[i].constant(),
                                       p.steps[i]);
    offset += *range.start.constant() * inStrides[axis];
    strides[axis] = inStrides[axis] * p.steps[i];
  }
  copyStrided(x, offset, strides, *ctx.outputs[0]);
  return Status::ok();
}

// ---- gather

Status gatherKernel(const KernelContext& ctx) {
  const Tensor& data = *ctx.input(0);
  const Tensor& indices = *ctx.input(1);
  const int64_t axis = wrapAxis(ctx.attrs.getInt("axis"), data.rank());
  const AxisSplit split = splitAtAxis(data.shape(), axis);
  const size_t elementSize = dtypeSize(data.dtype());
  const size_t block = static_cast<size_t>(split.inner) * elementSize;
  const int64_t count = indices.numElements();
  const auto* src = static_cast<const uint8_t*>(data.data());
  auto* dst = static_cast<uint8_t*>(ctx.outputs[0]->data());
  for (int64_t n = 0; n < count; ++n) {
    const int64_t index = indices.elementAsInt(n);
    if (index < -split.extent || index >= split.extent)
      return Status::error(ctx.def.name, ": index ", index, " is out of range for axis ", axis,
                           " of size ", split.extent, " (data ", shapeStr(data.shape()), ")");
  }
  for (int64_t o = 0; o < split.outer; ++o)
    for (int64_t n = 0; n < count; ++n) {
      int64_t index = indices.elementAsInt(n);
      if (index < 0) index += split.extent;
      if (block)
        std::memcpy(dst + static_cast<size_t>(o * count + n) * block,
                    src + static_cast<size_t>(o * split.extent + index) * block, block);
    }
  return Status::ok();
}

// ---- gather_elements

Status gatherElementsKernel(const KernelContext& ctx) {
  const Tensor& data = *ctx.input(0);
  const Tensor& indices = *ctx.input(1);
  Tensor& out = *ctx.outputs[0];
  const auto axis = static_cast<size_t>(wrapAxis(ctx.attrs.getInt("axis"), data.rank()));
  const std::vector<int64_t> dataStrides = rowMajorStrides(data.shape()), at = rowMajorStrides(indices.shape());
  const int64_t extent = data.shape()[axis];
  const size_t elementSize = dtypeSize(data.dtype());
  for (int64_t n = 0; n < indices.numElements(); ++n) {
    int64_t index = indices.elementAsInt(n);
    if (index < -extent || index >= extent)
      return Status::error(ctx.def.name, ": index ", index, " is out of range for axis ", axis, " of size ",
                           extent, " (data ", shapeStr(data.shape()), ")");
    if (index < 0) index += extent;
    int64_t source = 0;
    for (size_t d = 0; d < indices.rank(); ++d) {
      const int64_t coordinate = n / at[d] % indices.shape()[d];
      if (d != axis && coordinate >= data.shape()[d])
        return Status::error(ctx.def.name, ": indices ", shapeStr(indices.shape()), " reach past data ",
                             shapeStr(data.shape()), " on axis ", d);
      source += (d == axis ? index : coordinate) * dataStrides[d];
    }
    std::memcpy(static_cast<uint8_t*>(out.data()) + static_cast<size_t>(n) * elementSize,
                static_cast<const uint8_t*>(data.data()) + static_cast<size_t>(source) * elementSize, elementSize);
  }
  return Status::ok();
}

// ---- expand

Status expandKernel(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  Tensor& out = *ctx.outputs[0];
  // Input dims align to the right; a dim of 1 (or a missing one) repeats.
  const std::vector<int64_t> inStrides = rowMajorStrides(x.shape());
  const size_t lead = out.rank() - x.rank();
  std::vector<int64_t> strides(out.rank(), 0);
  for (size_t d = 0; d < x.rank(); ++d)
    if (x.shape()[d] != 1) strides[lead + d] = inStrides[d];
  copyStrided(x, 0, strides, out);
  return Status::ok();
}

// ---- shape / size

Status shapeKernel(const KernelContext& ctx) {
  const std::vector<int64_t>& dims = ctx.input(0)->shape();
  const auto [start, end] = shapeWindow(ctx.attrs, dims.size());
  std::copy(dims.begin() + static_cast<ptrdiff_t>(start), dims.begin() + static_cast<ptrdiff_t>(end),
            ctx.outputs[0]->data<int64_t>());
  return Status::ok();
}

Status sizeKernel(const KernelContext& ctx) {
  ctx.outputs[0]->data<int64_t>()[0] = ctx.input(0)->numElements();
  return Status::ok();
}

// ---- constant_of_shape

Status constantOfShapeKernel(const KernelContext& ctx) {
  Tensor& out = *ctx.outputs[0];
  const double value = ctx.attrs.getFloat("value", 0.0);
  visitDType(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    std::fill_n(out.data<T>(), out.numElements(), convertValue<T>(value));
  });
  return Status::ok();
}

// ---- range

// The start of the dim form, which the executor has resolved to a number.
Expected<int64_t> resolvedRangeStart(const KernelContext& ctx) {
  std::optional<std::vector<Dim>> start = ctx.attrs.getDims("start");
  if (!start || start->size() != 1 || !(*start)[0].isConstant())
    return Status::error(ctx.def.name, ": start ", start && start->size() == 1 ? (*start)[0].str() : "",
                         " is not a number (the run's symbol values were not substituted)");
  return *(*start)[0].constant();
}

Status rangeKernel(const KernelContext& ctx) {
  Tensor& out = *ctx.outputs[0];
  const bool dimForm = ctx.attrs.has("start");
  int64_t dimStart = 0;
  if (dimForm) {
    Expected<int64_t> start = resolvedRangeStart(ctx);
    if (!start) return start.status();
    dimStart = *start;
  }
  return visitDType(out.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, bool>) {
      return unsupportedDType(ctx, out.dtype());
    } else {
      const T start = dimForm ? static_cast<T>(dimStart) : ctx.input(0)->data<T>()[0];
      const T delta = dimForm ? static_cast<T>(ctx.attrs.getInt("delta", 1)) : ctx.input(2)->data<T>()[0];
      T* dst = out.data<T>();
      for (int64_t i = 0; i < out.numElements(); ++i) {
        if constexpr (std::is_integral_v<T>) {
          // start + i * delta wraps like numpy instead of overflowing.
          const uint64_t value = static_cast<uint64_t>(static_cast<int64_t>(start)) +
                                 static_cast<uint64_t>(i) * static_cast<uint64_t>(static_cast<int64_t>(delta));
          dst[i] = static_cast<T>(static_cast<int64_t>(value));
        } else {
          dst[i] = convertValue<T>(static_cast<double>(toCompute(start)) +
                                   static_cast<double>(i) * static_cast<double>(toCompute(delta)));
        }
      }
      return Status::ok();
    }
  });
}

// ---- patches

Status patchesKernel(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  Tensor& out = *ctx.outputs[0];
  const std::vector<int64_t> size = ctx.attrs.getInts("size");
  const int64_t n = x.shape()[0], channels = x.shape()[1], height = x.shape()[2], width = x.shape()[3];
  const int64_t kh = size[0], kw = size[1], rows = height / kh, cols = width / kw;
  const size_t element = dtypeSize(x.dtype());
  const auto* src = static_cast<const uint8_t*>(x.data());
  auto* dst = static_cast<uint8_t*>(out.data());
  // One run of kw elements at a time: a patch row of one channel.
  for (int64_t b = 0; b < n; ++b)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        for (int64_t ch = 0; ch < channels; ++ch)
          for (int64_t i = 0; i < kh; ++i) {
            const int64_t from = ((b * channels + ch) * height + r * kh + i) * width + c * kw;
            std::memcpy(dst, src + static_cast<size_t>(from) * element, static_cast<size_t>(kw) * element);
            dst += static_cast<size_t>(kw) * element;
          }
  return Status::ok();
}

// ---- trilu

Status triluKernel(const KernelContext& ctx) {
  const Tensor& x = *ctx.input(0);
  Tensor& out = *ctx.outputs[0];
  const bool upper = ctx.attrs.getBool("upper", true);
  const int64_t k = ctx.input(1) ? ctx.input(1)->elementAsInt(0) : 0;
  const int64_t rows = x.shape()[x.rank() - 2], cols = x.shape()[x.rank() - 1];
  const size_t elementSize = dtypeSize(x.dtype());
  const auto* src = static_cast<const uint8_t*>(x.data());
  auto* dst = static_cast<uint8_t*>(out.data());
  // Keeps the elements with j - i >= k (upper) or <= k (lower) and zeroes the
  // rest: the output may be a reused arena slot, not fresh zeroed memory.
  const int64_t matrices = rows * cols == 0 ? 0 : x.numElements() / (rows * cols);
  for (int64_t m = 0; m < matrices; ++m)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        const bool kept = upper ? j - i >= k : j - i <= k;
        const size_t at = static_cast<size_t>((m * rows + i) * cols + j) * elementSize;
        if (kept) std::memcpy(dst + at, src + at, elementSize);
        else std::memset(dst + at, 0, elementSize);
      }
  return Status::ok();
}

}  // namespace

void addShapeKernels(ReferenceKernelTable& table) {
  table.add(OpKind::Reshape, copyAllKernel);
  table.add(OpKind::Transpose, transposeKernel);
  table.add(OpKind::Flatten, copyAllKernel);
  table.add(OpKind::Squeeze, copyAllKernel);
  table.add(OpKind::Unsqueeze, copyAllKernel);
  table.add(OpKind::Concat, concatKernel);
  table.add(OpKind::Split, splitKernel);
  table.add(OpKind::Slice, sliceKernel);
  table.add(OpKind::Gather, gatherKernel);
  table.add(OpKind::GatherElements, gatherElementsKernel);
  table.add(OpKind::Expand, expandKernel);
  table.add(OpKind::Shape, shapeKernel);
  table.add(OpKind::Size, sizeKernel);
  table.add(OpKind::ConstantOfShape, constantOfShapeKernel);
  table.add(OpKind::Range, rangeKernel);
  table.add(OpKind::Trilu, triluKernel);
  table.add(OpKind::Patches, patchesKernel);
  // Both sides in host memory (a device sharing the host's): a copy. A device
  // with memory of its own runs its transfers itself.
  table.add(OpKind::Transfer, copyAllKernel);
}

}  // namespace kiln
