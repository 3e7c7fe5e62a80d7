#include "ir/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace kiln {

namespace {
struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
}  // namespace

Tensor Tensor::allocateUninitialized(DType dtype, std::vector<int64_t> shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  size_t bytes = t.byteSize();
  // Round up to the alignment so aligned_alloc's size rule holds; never 0.
  size_t padded = (bytes + 63) / 64 * 64 + 64;
  void* p = std::aligned_alloc(64, padded);
  if (!p) throw std::bad_alloc();
  // The padding past the data is zeroed, so no byte of the storage is ever
  // indeterminate once the caller has written the data.
  std::memset(static_cast<char*>(p) + bytes, 0, padded - bytes);
  t.storage_ = std::shared_ptr<void>(p, AlignedFree{});
  t.data_ = p;
  return t;
}

Tensor Tensor::allocate(DType dtype, std::vector<int64_t> shape) {
  Tensor t = allocateUninitialized(dtype, std::move(shape));
  std::memset(t.data_, 0, t.byteSize());
  return t;
}

Tensor Tensor::view(DType dtype, std::vector<int64_t> shape, void* data,
                    std::shared_ptr<const void> keepAlive) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  t.storage_ = std::move(keepAlive);
  return t;
}

int64_t Tensor::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

TensorType Tensor::type() const {
  TensorType t{dtype_, {}};
  for (int64_t d : shape_) t.shape.push_back(Dim(d));
  return t;
}

double Tensor::elementAsDouble(int64_t i) const {
  return visitDType(dtype_, [&](auto tag) {
    using T = decltype(tag);
    return loadAsDouble(static_cast<const T*>(data_)[i]);
  });
}

int64_t Tensor::elementAsInt(int64_t i) const {
  return visitDType(dtype_, [&](auto tag) -> int64_t {
    using T = decltype(tag);
    if constexpr (std::is_integral_v<T>) return static_cast<int64_t>(static_cast<const T*>(data_)[i]);
    else return static_cast<int64_t>(loadAsDouble(static_cast<const T*>(data_)[i]));
  });
}

std::vector<int64_t> Tensor::toInts() const {
  std::vector<int64_t> out(static_cast<size_t>(numElements()));
  for (int64_t i = 0; i < numElements(); ++i) out[static_cast<size_t>(i)] = elementAsInt(i);
  return out;
}

Tensor Tensor::reshaped(std::vector<int64_t> shape) const {
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = allocateUninitialized(dtype_, shape_);
  if (byteSize()) std::memcpy(t.data_, data_, byteSize());
  return t;
}

std::vector<int64_t> rowMajorStrides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * shape[i];
  return strides;
}

}  // namespace kiln
