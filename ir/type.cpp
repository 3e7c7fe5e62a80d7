#include "ir/type.h"

namespace kiln {

bool isShapeValue(const TensorType& type) {
  return type.rank() <= 1 && (type.dtype == DType::I64 || type.dtype == DType::I32);
}

bool TensorType::isStatic() const {
  for (const Dim& d : shape)
    if (!d.isConstant()) return false;
  return true;
}

std::optional<std::vector<int64_t>> TensorType::staticDims() const {
  std::vector<int64_t> dims;
  for (const Dim& d : shape) {
    auto value = d.constant();
    if (!value) return std::nullopt;
    dims.push_back(*value);
  }
  return dims;
}

std::optional<int64_t> TensorType::numElements() const {
  auto dims = staticDims();
  if (!dims) return std::nullopt;
  int64_t n = 1;
  for (int64_t d : *dims) n *= d;
  return n;
}

TensorType TensorType::substitute(const SymbolBindings& bindings) const {
  TensorType out{dtype, {}};
  for (const Dim& d : shape) out.shape.push_back(d.substitute(bindings));
  return out;
}

std::string TensorType::str() const { return std::string(dtypeName(dtype)) + shapeStr(shape); }

std::string shapeStr(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += shape[i].str();
  }
  return out + "]";
}

std::string shapeStr(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

bool refines(const TensorType& declared, const TensorType& inferred) {
  if (declared.dtype != inferred.dtype || declared.rank() != inferred.rank()) return false;
  for (size_t i = 0; i < declared.rank(); ++i) {
    if (inferred.shape[i].isUnknown()) continue;
    if (declared.shape[i] != inferred.shape[i]) return false;
  }
  return true;
}

std::optional<Shape> broadcastShapes(const Shape& a, const Shape& b) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    // Align from the right; missing leading dims act as 1.
    const Dim* da = i + a.size() >= rank ? &a[i + a.size() - rank] : nullptr;
    const Dim* db = i + b.size() >= rank ? &b[i + b.size() - rank] : nullptr;
    if (!da) { out[i] = *db; continue; }
    if (!db) { out[i] = *da; continue; }
    auto ca = da->constant(), cb = db->constant();
    if (ca == 1) out[i] = *db;
    else if (cb == 1) out[i] = *da;
    else if (*da == *db) out[i] = *da;
    else if (ca && cb) return std::nullopt;  // two different constants
    else if (da->isUnknown() && cb) out[i] = *db;  // ? vs n: n, or 1 broadcasting to n
    else if (db->isUnknown() && ca) out[i] = *da;
    else if (ca) out[i] = *da;  // symbol vs constant n: the symbol must be n or 1 at run time
    else if (cb) out[i] = *db;
    else out[i] = Dim::unknown();  // two different symbols: one is 1 or they are equal
  }
  return out;
}

}  // namespace kiln
