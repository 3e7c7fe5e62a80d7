#include "backends/reference/kernel_helpers.h"

namespace kiln::ops {

Status unsupportedDType(const KernelContext& ctx, DType dtype) {
  return Status::error(ctx.def.name, ": no reference kernel for dtype ", dtypeName(dtype));
}

int64_t product(std::span<const int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

AxisSplit splitAtAxis(const std::vector<int64_t>& shape, int64_t axis) {
  AxisSplit split;
  for (size_t d = 0; d < shape.size(); ++d) {
    const auto di = static_cast<int64_t>(d);
    if (di < axis) split.outer *= shape[d];
    else if (di == axis) split.extent = shape[d];
    else split.inner *= shape[d];
  }
  return split;
}

std::vector<int64_t> broadcastStrides(const std::vector<int64_t>& operand,
                                      const std::vector<int64_t>& target) {
  std::vector<int64_t> strides(target.size(), 0);
  const size_t lead = target.size() - operand.size();
  int64_t stride = 1;
  for (size_t d = operand.size(); d-- > 0;) {
    strides[lead + d] = operand[d] == 1 ? 0 : stride;
    stride *= operand[d];
  }
  return strides;
}

BroadcastWalker::BroadcastWalker(const std::vector<int64_t>& outShape,
                                 std::vector<const std::vector<int64_t>*> inputShapes)
    : outShape_(outShape),
      counters_(outShape.size(), 0),
      strides_(inputShapes.size() * outShape.size(), 0),
      offsets_(inputShapes.size(), 0) {
  const size_t rank = outShape.size();
  for (size_t k = 0; k < inputShapes.size(); ++k) {
    const std::vector<int64_t>& in = *inputShapes[k];
    const size_t lead = rank - in.size();  // inputs align to the trailing dims
    int64_t stride = 1;
    for (size_t d = in.size(); d-- > 0;) {
      strides_[k * rank + lead + d] = in[d] == 1 ? 0 : stride;
      stride *= in[d];
    }
  }
}

void BroadcastWalker::next() {
  const size_t rank = outShape_.size();
  for (size_t d = rank; d-- > 0;) {
    ++counters_[d];
    for (size_t k = 0; k < offsets_.size(); ++k) offsets_[k] += strides_[k * rank + d];
    if (counters_[d] < outShape_[d]) return;
    // Carry: rewind this dim and step the next outer one.
    for (size_t k = 0; k < offsets_.size(); ++k)
      offsets_[k] -= strides_[k * rank + d] * outShape_[d];
    counters_[d] = 0;
  }
}

AdditiveMask additiveMask(const Tensor* mask, bool keyPadding, const std::vector<int64_t>& scores) {
  AdditiveMask made;
  if (!mask) return made;
  made.values.resize(static_cast<size_t>(mask->numElements()));
  const double blocked = -std::numeric_limits<double>::infinity();
  if (keyPadding) {
    for (size_t i = 0; i < made.values.size(); ++i)
      made.values[i] = mask->elementAsDouble(static_cast<int64_t>(i)) != 0.0 ? 0.0 : blocked;
    const std::vector<int64_t> padding = broadcastStrides(mask->shape(), {scores[0], scores[3]});
    made.strides = {padding[0], 0, 0, padding[1]};
    return made;
  }
  for (size_t i = 0; i < made.values.size(); ++i)
    made.values[i] = mask->dtype() == DType::Bool ? (mask->data<bool>()[i] ? 0.0 : blocked)
                                                  : mask->elementAsDouble(static_cast<int64_t>(i));
  made.strides = broadcastStrides(mask->shape(), scores);
  return made;
}

LatentRope::LatentRope(const KernelContext& ctx, const latent::Attrs& a, int64_t batch, int64_t seq, int64_t past)
    : ctx_(ctx), a_(a), past_(past) {
  const Tensor* cos = ctx.input(latent::kCos);
  const Tensor* sin = ctx.input(latent::kSin);
  if (!cos || !sin) return;
  const int64_t width = cos->shape().back();
  cosAt_ = broadcastStrides(cos->shape(), {batch, 1, seq, width});
  sinAt_ = broadcastStrides(sin->shape(), {batch, 1, seq, width});
}

LatentRope::Angles LatentRope::angles(int64_t b, int64_t s, size_t pair) const {
  if (const Tensor* invFreq = ctx_.input(latent::kInvFreq)) {
    const double angle = static_cast<double>(past_ + s) * invFreq->elementAsDouble(a_.ropeFrequencies[pair]);
    const double c = std::cos(angle), n = std::sin(angle);
    return {c, n, c, n};
  }
  const Tensor& cos = *ctx_.input(latent::kCos);
  const Tensor& sin = *ctx_.input(latent::kSin);
  const latent::TableColumns col = latent::tableColumns(a_, pair, cos.shape().back());
  auto at = [&](const Tensor& table, const std::vector<int64_t>& strides, int64_t column) {
    return table.elementAsDouble(b * strides[0] + s * strides[2] + column * strides[3]);
  };
  return {at(cos, cosAt_, col.re), at(sin, sinAt_, col.re), at(cos, cosAt_, col.im), at(sin, sinAt_, col.im)};
}

}  // namespace kiln::ops
