// Tensor types: a dtype and a shape of Dims. Printed as `f32[batch, seq, 128]`
// (`f32[]` for a scalar).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ir/dim.h"
#include "ir/dtype.h"

namespace kiln {

using Shape = std::vector<Dim>;

struct TensorType {
  DType dtype = DType::F32;
  Shape shape;

  size_t rank() const { return shape.size(); }
  bool isStatic() const;                        // every dim constant
  std::optional<std::vector<int64_t>> staticDims() const;
  std::optional<int64_t> numElements() const;   // when static
  TensorType substitute(const SymbolBindings& bindings) const;
  std::string str() const;

  friend bool operator==(const TensorType& a, const TensorType& b) {
    return a.dtype == b.dtype && a.shape == b.shape;
  }
  friend bool operator!=(const TensorType& a, const TensorType& b) { return !(a == b); }
};

// An integer scalar or vector: what shape arithmetic computes, whose values
// run-time inference reads (in host memory) to size the ops after it.
bool isShapeValue(const TensorType& type);

std::string shapeStr(const Shape& shape);                 // "[batch, 128]"
std::string shapeStr(const std::vector<int64_t>& shape);  // "[1, 128]"

// True when `declared` is `inferred` with some unknown dims made more precise
// (or equal); used to check a printed type against what inference computes.
bool refines(const TensorType& declared, const TensorType& inferred);

// Numpy-style broadcast of two shapes; nullopt when they are incompatible.
// Symbolic dims broadcast when equal, or against a constant 1.
std::optional<Shape> broadcastShapes(const Shape& a, const Shape& b);

}  // namespace kiln
