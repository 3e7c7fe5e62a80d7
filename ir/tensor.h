// A concrete tensor: dtype, static shape and a pointer into shared storage
// (an owned allocation, or a view into an mmapped artifact or a caller's
// buffer). Copies share the storage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "ir/dtype.h"
#include "ir/type.h"

namespace kiln {

class Tensor {
 public:
  Tensor() = default;
  // Allocates zeroed storage, 64-byte aligned.
  static Tensor allocate(DType dtype, std::vector<int64_t> shape);
  // The same without the zeroing, for storage the caller overwrites entirely
  // (a copy, a concatenation of weights): each byte is touched once.
  static Tensor allocateUninitialized(DType dtype, std::vector<int64_t> shape);
  // Views memory owned elsewhere; `keepAlive` holds it (may be null when the
  // caller guarantees the lifetime).
  static Tensor view(DType dtype, std::vector<int64_t> shape, void* data,
                     std::shared_ptr<const void> keepAlive = nullptr);

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  size_t rank() const { return shape_.size(); }
  int64_t numElements() const;
  size_t byteSize() const { return static_cast<size_t>(numElements()) * dtypeSize(dtype_); }
  TensorType type() const;
  bool isNull() const { return data_ == nullptr && numElements() != 0; }

  void* data() const { return data_; }
  template <class T> T* data() const { return static_cast<T*>(data_); }

  // Element i (row-major) as double / int64; for shape values, axes, etc.
  double elementAsDouble(int64_t i) const;
  int64_t elementAsInt(int64_t i) const;
  std::vector<int64_t> toInts() const;  // every element as int64

  // Same storage, new shape of equal element count.
  Tensor reshaped(std::vector<int64_t> shape) const;
  // Deep copy into fresh owned storage.
  Tensor clone() const;

 private:
  DType dtype_ = DType::F32;
  std::vector<int64_t> shape_;
  void* data_ = nullptr;
  std::shared_ptr<const void> storage_;
};

std::vector<int64_t> rowMajorStrides(const std::vector<int64_t>& shape);

}  // namespace kiln
