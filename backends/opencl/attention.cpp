// Fused attention on the OpenCL device (kernels/attention.cl), matching
// backends/reference/fused.cpp: layouts bhsd, bsd and bsd_packed, GQA/MQA
// (a query head reads kv head h / (Hq / Hkv), nothing replicated), causal,
// additive, bool or key-padding masks, rotate-half RoPE from inv_freq or
// cos/sin operands, past_k/past_v with present_k/present_v, and a session's
// KV cache appended in place. f32.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backends/opencl/kernel_sources.h"
#include "backends/opencl/map_kernel.h"
#include "backends/opencl/op_kernels.h"
#include "backends/reference/kernel_helpers.h"
#include "ir/attention.h"

namespace kiln::opencl {
namespace {

using namespace attention;

constexpr int64_t kMaxHeadDim = 256;  // MAX_HEAD_DIM in kernels/attention.cl

// AttentionShape of kernels/attention.cl.
struct AttentionShape {
  cl_long batch, heads, kvHeads, seq, newKeys, past, keys, headDim, valueDim, rowsPerHead;
  cl_long causal, window, hasMask, rope, ropeWidth, copyPast, ropeInterleaved;
  cl_long qStrides[3], kStrides[3], vStrides[3], outStrides[3];
  cl_long maskStrides[4];
  cl_long ropeStrides[2];
};

// Per batch, head and position; `width` is a bsd row: H*D, or (Hq + 2*Hkv)*D packed.
void setHeadStrides(cl_long* strides, Layout layout, int64_t heads, int64_t seq, int64_t headDim, int64_t width) {
  const bool bhsd = layout == Layout::BHSD;
  strides[0] = bhsd ? heads * seq * headDim : seq * width;
  strides[1] = bhsd ? seq * headDim : headDim;
  strides[2] = bhsd ? headDim : width;
}

AttentionShape attentionShape(const KernelContext& ctx, const Attrs& a) {
  const std::vector<int64_t>& q = ctx.input(kQ)->shape();
  AttentionShape s{};
  s.batch = q[0], s.heads = a.heads, s.kvHeads = a.kvHeads;
  if (a.qkvLayout == Layout::BSDPacked) {
    s.seq = q[1], s.headDim = q[2] / (a.heads + 2 * a.kvHeads), s.newKeys = q[1], s.valueDim = s.headDim;
    const int64_t width = (a.heads + 2 * a.kvHeads) * s.headDim;
    for (cl_long* strides : {s.qStrides, s.kStrides, s.vStrides})
      setHeadStrides(strides, a.qkvLayout, 0, s.seq, s.headDim, width);
  } else {
    const std::vector<int64_t>& k = ctx.input(kK)->shape();
    const bool bhsd = a.qkvLayout == Layout::BHSD;
    s.seq = q[bhsd ? 2 : 1], s.headDim = bhsd ? q[3] : q[2] / a.heads, s.newKeys = k[bhsd ? 2 : 1];
    s.valueDim = bhsd ? ctx.input(kV)->shape()[3] : ctx.input(kV)->shape()[2] / a.kvHeads;
    setHeadStrides(s.qStrides, a.qkvLayout, a.heads, s.seq, s.headDim, a.heads * s.headDim);
    setHeadStrides(s.kStrides, a.qkvLayout, a.kvHeads, s.newKeys, s.headDim, a.kvHeads * s.headDim);
    setHeadStrides(s.vStrides, a.qkvLayout, a.kvHeads, s.newKeys, s.valueDim, a.kvHeads * s.valueDim);
  }
  s.past = ctx.kvCache ? ctx.kvCache->past : ctx.input(kPastK) ? ctx.input(kPastK)->shape()[2] : 0;
  s.keys = s.past + s.newKeys;
  s.rowsPerHead = ctx.kvCache ? ctx.kvCache->capacity : s.keys;
  s.causal = a.causal, s.window = a.window, s.rope = a.rope, s.ropeWidth = ropeWidth(a, s.headDim);
  s.ropeInterleaved = a.ropeInterleaved;
  s.copyPast = !ctx.kvCache && s.past > 0;
  setHeadStrides(s.outStrides, a.outLayout, a.heads, s.seq, s.valueDim, a.heads * s.valueDim);
  return s;
}

// A buffer the kernels read or write: its (cl_mem, offset in elements).
struct Buffer {
  DeviceAddress at;
  std::shared_ptr<void> scratch;  // keeps a scratch block alive until enqueued
};

Expected<Buffer> bufferOf(const ClContext& cl, const KernelContext& ctx, const Tensor* tensor, int64_t skip = 0) {
  if (!tensor) return Buffer{};
  Expected<DeviceAddress> at = deviceAddress(cl, ctx.def.name, *tensor);
  if (!at) return at.status();
  at->offset += static_cast<size_t>(skip) * sizeof(float);
  return Buffer{*at, nullptr};
}

Expected<Buffer> scratch(ClContext& cl, size_t bytes) {
  Expected<std::shared_ptr<void>> block = cl.reserve(bytes);
  if (!block) return block.status();
  return Buffer{*cl.find(block->get()), *block};
}

// cos and sin from inv_freq, as the reference makes them: positions P..P+S-1,
// the angle and its cos and sin in double, rounded to float; one [S, W]
// table (W: the turned dims) shared by every batch.
Status ropeFromFrequencies(ClContext& cl, const Tensor& invFreq, AttentionShape& s, Buffer& cos, Buffer& sin) {
  Expected<Tensor> frequencies = onHost(cl, invFreq);
  if (!frequencies) return frequencies.status();
  const int64_t S = s.seq, D = s.ropeWidth, first = s.keys - S;
  const bool interleaved = s.ropeInterleaved != 0;
  std::vector<float> cosines(static_cast<size_t>(S * D)), sines(cosines.size());
  for (int64_t t = 0; t < S; ++t)
    for (int64_t d = 0; d < D; ++d) {
      const double angle =
          static_cast<double>(first + t) * frequencies->elementAsDouble(ropeFrequency(interleaved, d, D));
      cosines[static_cast<size_t>(t * D + d)] = static_cast<float>(std::cos(angle));
      sines[static_cast<size_t>(t * D + d)] = static_cast<float>(std::sin(angle));
    }
  const size_t bytes = cosines.size() * sizeof(float);
  Expected<Buffer> cosBuffer = scratch(cl, bytes), sinBuffer = scratch(cl, bytes);
  if (!cosBuffer) return cosBuffer.status();
  if (!sinBuffer) return sinBuffer.status();
  KILN_RETURN_IF_ERROR(cl.write(cosBuffer->at, cosines.data(), bytes));
  KILN_RETURN_IF_ERROR(cl.write(sinBuffer->at, sines.data(), bytes));
  cos = *cosBuffer, sin = *sinBuffer;
  s.ropeStrides[0] = 0, s.ropeStrides[1] = D;
  return Status::ok();
}

// The cos/sin operands, broadcast over [B, 1, S, W]: both must walk alike,
// the turned dims contiguous.
Status ropeFromTables(const ClContext& cl, const KernelContext& ctx, AttentionShape& s, Buffer& cos, Buffer& sin) {
  const std::vector<int64_t> table = {s.batch, 1, s.seq, s.ropeWidth};
  const std::vector<int64_t> cosAt = ops::broadcastStrides(ctx.input(kCos)->shape(), table);
  if (cosAt != ops::broadcastStrides(ctx.input(kSin)->shape(), table) || (s.ropeWidth > 1 && cosAt[3] != 1))
    return Status::error(ctx.def.name, ": the OpenCL kernel needs cos and sin of one layout, [.., D] rows");
  Expected<Buffer> cosBuffer = bufferOf(cl, ctx, ctx.input(kCos)), sinBuffer = bufferOf(cl, ctx, ctx.input(kSin));
  if (!cosBuffer) return cosBuffer.status();
  if (!sinBuffer) return sinBuffer.status();
  cos = *cosBuffer, sin = *sinBuffer;
  s.ropeStrides[0] = cosAt[0], s.ropeStrides[1] = cosAt[2];
  return Status::ok();
}

// A bool, integer or key-padding mask to additive f32 values.
MapFunction maskConversion(DType dtype) { return {"float", {scalarType(dtype)}, "r = a0 != 0 ? 0.0f : -INFINITY;"}; }

// The mask as f32 additive values (a false bool or a zero key-padding entry
// is -inf) and its strides over [B, Hq, S, L].
Expected<Buffer> additiveMask(ClContext& cl, const KernelContext& ctx, const Attrs& a, AttentionShape& s) {
  const Tensor* mask = ctx.input(kMask);
  if (!mask) return Buffer{};
  s.hasMask = 1;
  if (a.keyPaddingMask) {
    const std::vector<int64_t> padding = ops::broadcastStrides(mask->shape(), {s.batch, s.keys});
    s.maskStrides[0] = padding[0], s.maskStrides[3] = padding[1];
  } else {
    const std::vector<int64_t> strides = ops::broadcastStrides(mask->shape(), {s.batch, s.heads, s.seq, s.keys});
    std::copy(strides.begin(), strides.end(), s.maskStrides);
  }
  if (mask->dtype() == DType::F32 && !a.keyPaddingMask) return bufferOf(cl, ctx, mask);
  if (scalarType(mask->dtype()).empty()) return unsupportedDType(ctx, mask->dtype());
  Expected<Buffer> converted = scratch(cl, static_cast<size_t>(mask->numElements()) * sizeof(float));
  if (!converted) return converted.status();
  const Tensor additive = Tensor::view(DType::F32, mask->shape(), converted->scratch.get(), converted->scratch);
  const MapFunction fn = maskConversion(mask->dtype());
  const StridedTensor source = wholeTensor(*mask);
  KILN_RETURN_IF_ERROR(runMap(cl, ctx.def.name, fn, mask->shape(), wholeTensor(additive), {&source, 1}));
  return converted;
}

// Where the key and value rows go: the session's KV cache, the present
// results, or scratch.
Status keyValueRows(ClContext& cl, const KernelContext& ctx, const AttentionShape& s, Buffer& keys, Buffer& values) {
  if (const KvCacheBinding* cache = ctx.kvCache) {
    if (s.keys > cache->capacity)
      return Status::error("attention: ", s.past, " cached + ", s.newKeys, " new tokens exceed the KV cache capacity ",
                           cache->capacity);
    std::optional<DeviceAddress> k = cl.find(cache->keys), v = cl.find(cache->values);
    if (!k || !v) return Status::error(ctx.def.name, ": the KV cache is not in OpenCL device memory");
    keys = {*k, nullptr}, values = {*v, nullptr};
    return Status::ok();
  }
  const auto rows = static_cast<size_t>(s.batch * s.kvHeads * s.keys);
  Expected<Buffer> k = ctx.outputs.size() == 3 ? bufferOf(cl, ctx, ctx.outputs[1])
                                               : scratch(cl, rows * static_cast<size_t>(s.headDim) * sizeof(float));
  Expected<Buffer> v = ctx.outputs.size() == 3 ? bufferOf(cl, ctx, ctx.outputs[2])
                                               : scratch(cl, rows * static_cast<size_t>(s.valueDim) * sizeof(float));
  if (!k) return k.status();
  if (!v) return v.status();
  keys = *k, values = *v;
  return Status::ok();
}

void addBuffer(KernelArgs& args, const Buffer& buffer) { args.add(buffer.at, sizeof(float)); }

Status launch(ClContext& cl, const char* name, const KernelArgs& args, std::span<const size_t> global) {
  Expected<cl_kernel> kernel = cl.kernel(librarySource(kAttentionSource), name);
  if (!kernel) return kernel.status();
  return cl.launch(*kernel, args, global);
}

size_t roundUp(int64_t n, size_t to) { return (static_cast<size_t>(n) + to - 1) / to * to; }

Status attentionKernel(ClContext& cl, const KernelContext& ctx) {
  Expected<Attrs> attrs = readAttrs(ctx.attrs);
  if (!attrs) return Status::error(ctx.def.name, ": ", attrs.status().message());
  for (size_t slot : {kQ, kK, kV, kCos, kSin, kPastK, kPastV})
    if (ctx.input(slot) && ctx.input(slot)->dtype() != DType::F32) return unsupportedDType(ctx, ctx.input(slot)->dtype());
  AttentionShape s = attentionShape(ctx, *attrs);
  if (s.headDim > kMaxHeadDim || s.valueDim > kMaxHeadDim)
    return Status::error(ctx.def.name, ": head dims ", s.headDim, " and ", s.valueDim, " exceed the OpenCL kernel's ",
                         kMaxHeadDim);
  const bool packed = attrs->qkvLayout == Layout::BSDPacked;
  Buffer q, k, v, pastK, pastV, cos, sin, keys, values, out;
  for (auto [buffer, tensor, skip] : {std::tuple{&q, ctx.input(kQ), int64_t{0}},
                                      std::tuple{&k, packed ? ctx.input(kQ) : ctx.input(kK), packed ? s.heads * s.headDim : 0},
                                      std::tuple{&v, packed ? ctx.input(kQ) : ctx.input(kV),
                                                 packed ? (s.heads + s.kvHeads) * s.headDim : 0},
                                      std::tuple{&pastK, s.copyPast ? ctx.input(kPastK) : nullptr, int64_t{0}},
                                      std::tuple{&pastV, s.copyPast ? ctx.input(kPastV) : nullptr, int64_t{0}},
                                      std::tuple{&out, static_cast<const Tensor*>(ctx.outputs[0]), int64_t{0}}}) {
    Expected<Buffer> at = bufferOf(cl, ctx, tensor, skip);
    if (!at) return at.status();
    *buffer = *at;
  }
  if (s.rope && ctx.input(kInvFreq)) KILN_RETURN_IF_ERROR(ropeFromFrequencies(cl, *ctx.input(kInvFreq), s, cos, sin));
  else if (s.rope) KILN_RETURN_IF_ERROR(ropeFromTables(cl, ctx, s, cos, sin));
  Expected<Buffer> mask = additiveMask(cl, ctx, *attrs, s);
  if (!mask) return mask.status();
  KILN_RETURN_IF_ERROR(keyValueRows(cl, ctx, s, keys, values));
  if (s.batch == 0) return Status::ok();

  KernelArgs append;
  for (const Buffer* buffer : {&k, &v, &pastK, &pastV, &cos, &sin, &keys, &values}) addBuffer(append, *buffer);
  append.add(s);
  if (s.keys > 0) {
    const size_t global[] = {roundUp(std::max(s.headDim, s.valueDim), 16), static_cast<size_t>(s.keys),
                             static_cast<size_t>(s.batch * s.kvHeads)};
    KILN_RETURN_IF_ERROR(launch(cl, "attention_append", append, global));
  }
  KernelArgs rows;
  for (const Buffer* buffer : {&q, &*mask, &cos, &sin, &keys, &values, &out}) addBuffer(rows, *buffer);
  rows.add(static_cast<cl_float>(attrs->scale));
  rows.add(s);
  if (s.seq == 0) return Status::ok();
  const size_t global[] = {roundUp(s.seq, 16), static_cast<size_t>(s.heads), static_cast<size_t>(s.batch)};
  return launch(cl, "attention_rows", rows, global);
}

// The attention program, and the mask's conversion when it needs one.
void attentionSources(const OpTypes& op, std::vector<std::string>& sources) {
  Expected<Attrs> attrs = readAttrs(op.attrs);
  if (!attrs) return;
  sources.push_back(librarySource(kAttentionSource));
  const ShapedType* mask = op.input(kMask);
  if (!mask || (mask->dtype == DType::F32 && !attrs->keyPaddingMask) || scalarType(mask->dtype).empty()) return;
  const std::vector<int64_t> strides = rowMajorStrides(mask->shape);
  sources.push_back(mapKernelSource(maskConversion(mask->dtype), mask->shape, strides, {&strides, 1}));
}

}  // namespace

void addAttentionKernels(OpenClKernelTable& table) {
  table.add(OpKind::Attention, attentionKernel, attentionSources);
}

}  // namespace kiln::opencl
