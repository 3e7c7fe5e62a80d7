#include "passes/symbolic_values.h"

#include <algorithm>
#include <functional>
#include <string_view>
#include <unordered_map>

#include "backends/reference/kernel_helpers.h"
#include "ir/op_registry.h"
#include "ir/ops/symbolic_dims.h"

namespace kiln {

namespace {

using ops::knownNonNegative;

bool trackedDType(DType t) { return t == DType::I64 || t == DType::I32 || t == DType::Bool; }

Dim boolDim(bool b) { return Dim(b ? 1 : 0); }

// The truth of a bool element when it is a number.
std::optional<bool> truth(const Dim& d) {
  if (std::optional<int64_t> c = d.constant()) return *c != 0;
  return std::nullopt;
}

Dim unknownUnless(std::optional<bool> b) { return b ? boolDim(*b) : Dim::unknown(); }

// Integer division truncating toward zero (the div kernel's rule); symbolic
// only when the divisor divides the polynomial exactly.
Dim divideDims(const Dim& a, const Dim& b) {
  std::optional<int64_t> ca = a.constant(), cb = b.constant();
  if (ca && cb) {
    if (*cb == 0) return Dim::unknown();
    if (*cb == -1) return Dim(0) - a;  // min / -1 would overflow in C++
    return *ca / *cb;
  }
  if (std::optional<Dim> quotient = ops::divideExactly(a, b)) return *quotient;
  return Dim::unknown();
}

int64_t product(const std::vector<int64_t>& dims, size_t from, size_t to) {
  int64_t n = 1;
  for (size_t d = from; d < to; ++d) n *= dims[d];
  return n;
}

std::optional<int64_t> wrapAxis(int64_t axis, size_t rank) {
  const auto r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= r) return std::nullopt;
  return axis < 0 ? axis + r : axis;
}

SymbolicTensor emptyLike(DType dtype, const std::vector<int64_t>& shape) {
  SymbolicTensor out{dtype, shape, {}};
  out.elements.reserve(static_cast<size_t>(product(shape, 0, shape.size())));
  return out;
}

// out[i] = fn(inputs at i) over the numpy broadcast of the inputs to `shape`.
SymbolicTensor broadcastMap(std::span<const SymbolicTensor* const> inputs, DType dtype,
                            const std::vector<int64_t>& shape,
                            const std::function<Dim(const std::vector<Dim>&)>& fn) {
  std::vector<const std::vector<int64_t>*> shapes;
  for (const SymbolicTensor* in : inputs) shapes.push_back(&in->shape);
  ops::BroadcastWalker walk(shape, shapes);
  SymbolicTensor out = emptyLike(dtype, shape);
  std::vector<Dim> args(inputs.size());
  const int64_t n = product(shape, 0, shape.size());
  for (int64_t i = 0; i < n; ++i, walk.next()) {
    for (size_t k = 0; k < inputs.size(); ++k)
      args[k] = inputs[k]->elements[static_cast<size_t>(walk.offset(k))];
    out.elements.push_back(fn(args));
  }
  return out;
}

// A list of constants from a known value (indices, axes, slice bounds).
std::optional<std::vector<int64_t>> constantInts(const SymbolicTensor* value) {
  if (!value || !value->isConstant()) return std::nullopt;
  std::vector<int64_t> out;
  for (const Dim& d : value->elements) out.push_back(*d.constant());
  return out;
}

std::optional<std::vector<int64_t>> constantDims(const std::optional<std::vector<Dim>>& dims) {
  if (!dims) return std::nullopt;
  std::vector<int64_t> out;
  for (const Dim& d : *dims) {
    if (!d.isConstant()) return std::nullopt;
    out.push_back(*d.constant());
  }
  return out;
}

// Elements of `x` picked by a concrete ONNX slice.
std::optional<SymbolicTensor> sliceValue(const SymbolicTensor& x, std::vector<int64_t> starts,
                                         std::vector<int64_t> ends, std::optional<std::vector<int64_t>> axes,
                                         std::optional<std::vector<int64_t>> steps, DType dtype) {
  const size_t rank = x.shape.size();
  if (!axes) {
    axes.emplace();
    for (size_t i = 0; i < starts.size(); ++i) axes->push_back(static_cast<int64_t>(i));
  }
  if (!steps) steps = std::vector<int64_t>(starts.size(), 1);
  if (ends.size() != starts.size() || axes->size() != starts.size() || steps->size() != starts.size())
    return std::nullopt;
  std::vector<int64_t> first(rank, 0), step(rank, 1), count = x.shape;
  for (size_t i = 0; i < starts.size(); ++i) {
    std::optional<int64_t> axis = wrapAxis((*axes)[i], rank);
    if (!axis || (*steps)[i] == 0) return std::nullopt;
    const auto a = static_cast<size_t>(*axis);
    const int64_t dim = x.shape[a], s = (*steps)[i];
    // Negative bounds count from the end; then clamp as ONNX does.
    auto fromEnd = [&](int64_t v) { return v < 0 ? std::max(v, -dim - 1) + dim : v; };
    int64_t begin = fromEnd(starts[i]), end = fromEnd(ends[i]);
    if (s > 0) {
      begin = std::clamp<int64_t>(begin, 0, dim);
      end = std::clamp<int64_t>(end, 0, dim);
      count[a] = end > begin ? (end - begin + s - 1) / s : 0;
    } else {
      begin = std::clamp<int64_t>(begin, 0, dim - 1);
      end = std::clamp<int64_t>(end, -1, dim - 1);
      count[a] = begin > end ? (begin - end - s - 1) / -s : 0;
    }
    first[a] = begin;
    step[a] = s;
  }
  const std::vector<int64_t> strides = rowMajorStrides(x.shape);
  SymbolicTensor out = emptyLike(dtype, count);
  const int64_t n = product(count, 0, rank);
  std::vector<int64_t> index(rank, 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t offset = 0;
    for (size_t d = 0; d < rank; ++d) offset += (first[d] + index[d] * step[d]) * strides[d];
    out.elements.push_back(x.elements[static_cast<size_t>(offset)]);
    for (size_t d = rank; d-- > 0;) {
      if (++index[d] < count[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

}  // namespace

bool SymbolicTensor::complete() const {
  return std::none_of(elements.begin(), elements.end(), [](const Dim& d) { return d.isUnknown(); });
}

bool SymbolicTensor::isConstant() const {
  return std::all_of(elements.begin(), elements.end(), [](const Dim& d) { return d.isConstant(); });
}

Tensor SymbolicTensor::toTensor() const {
  Tensor t = Tensor::allocate(dtype, shape);
  for (size_t i = 0; i < elements.size(); ++i) {
    const int64_t v = *elements[i].constant();
    if (dtype == DType::I64) t.data<int64_t>()[i] = v;
    else if (dtype == DType::I32) t.data<int32_t>()[i] = static_cast<int32_t>(v);
    else t.data<bool>()[i] = v != 0;
  }
  return t;
}

bool isSymbolicCandidate(const TensorType& type) {
  if (!trackedDType(type.dtype)) return false;
  std::optional<int64_t> n = type.numElements();
  return n && *n <= kMaxSymbolicElements;
}

std::optional<SymbolicTensor> symbolicFromTensor(const Tensor& tensor) {
  if (!isSymbolicCandidate(tensor.type()) || tensor.isNull()) return std::nullopt;
  SymbolicTensor out = emptyLike(tensor.dtype(), tensor.shape());
  for (int64_t i = 0; i < tensor.numElements(); ++i) out.elements.push_back(tensor.elementAsInt(i));
  return out;
}

std::optional<int> compareDims(const Dim& a, const Dim& b) {
  if (a.isUnknown() || b.isUnknown()) return std::nullopt;
  const Dim difference = a - b;
  if (difference == Dim(0)) return 0;
  if (knownNonNegative(difference - 1)) return 1;
  if (knownNonNegative(Dim(0) - difference - 1)) return -1;
  return std::nullopt;
}

std::optional<SymbolicTensor> evaluateSymbolic(const Op& op,
                                               std::span<const TensorType* const> operandTypes,
                                               std::span<const SymbolicTensor* const> operandValues,
                                               const TensorType& result) {
  if (op.results.size() != 1 || !isSymbolicCandidate(result)) return std::nullopt;
  const OpKind kind = op.kind();
  const DType dtype = result.dtype;
  const std::vector<int64_t> shape = *result.staticDims();
  const Attributes& attrs = op.attrs;
  auto value = [&](size_t i) -> const SymbolicTensor* {
    return i < operandValues.size() ? operandValues[i] : nullptr;
  };
  const bool allKnown = !operandValues.empty() &&
                        std::all_of(operandValues.begin(), operandValues.end(),
                                    [](const SymbolicTensor* v) { return v != nullptr; });

  // Ops that need no operand value.
  if (kind == OpKind::Shape) {
    const Shape& dims = operandTypes[0]->shape;
    const auto rank = static_cast<int64_t>(dims.size());
    auto clampIndex = [&](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + rank : v, 0, rank); };
    const int64_t start = clampIndex(attrs.getInt("start", 0));
    const int64_t end = std::max(start, attrs.has("end") ? clampIndex(attrs.getInt("end")) : rank);
    SymbolicTensor out = emptyLike(dtype, shape);
    out.elements.assign(dims.begin() + start, dims.begin() + end);
    return out;
  }
  if (kind == OpKind::Size) {
    Dim count = 1;
    for (const Dim& d : operandTypes[0]->shape) count = count * d;
    return SymbolicTensor{dtype, shape, {count}};
  }
  if (kind == OpKind::ConstantOfShape) {
    const double fill = attrs.getFloat("value", 0.0);
    const Dim element = dtype == DType::Bool ? boolDim(fill != 0.0) : Dim(static_cast<int64_t>(fill));
    SymbolicTensor out = emptyLike(dtype, shape);
    out.elements.assign(static_cast<size_t>(product(shape, 0, shape.size())), element);
    return out;
  }
  if (kind == OpKind::Range) {
    std::optional<int64_t> start, delta;
    if (attrs.has("start")) {
      std::optional<std::vector<int64_t>> s = constantDims(attrs.getDims("start"));
      if (s && s->size() == 1) start = (*s)[0];
      delta = attrs.getInt("delta", 1);
    } else if (std::optional<std::vector<int64_t>> s = constantInts(value(0)),
               d = constantInts(value(2));
               s && d && s->size() == 1 && d->size() == 1) {
      start = (*s)[0];
      delta = (*d)[0];
    }
    if (!start) return std::nullopt;
    SymbolicTensor out = emptyLike(dtype, shape);
    for (int64_t i = 0; i < shape[0]; ++i) out.elements.push_back(*start + i * *delta);
    return out;
  }
  if (kind == OpKind::Slice && value(0)) {
    if (attrs.has("starts")) {
      std::optional<std::vector<int64_t>> starts = constantDims(attrs.getDims("starts"));
      std::optional<std::vector<int64_t>> ends = constantDims(attrs.getDims("ends"));
      if (!starts || !ends) return std::nullopt;
      std::optional<std::vector<int64_t>> axes, steps;
      if (attrs.has("axes")) axes = attrs.getInts("axes");
      if (attrs.has("steps")) steps = attrs.getInts("steps");
      return sliceValue(*value(0), *starts, *ends, axes, steps, dtype);
    }
    std::optional<std::vector<int64_t>> starts = constantInts(value(1)), ends = constantInts(value(2));
    std::optional<std::vector<int64_t>> axes, steps;
    if (operandTypes.size() > 3 && operandTypes[3] && !(axes = constantInts(value(3)))) return std::nullopt;
    if (operandTypes.size() > 4 && operandTypes[4] && !(steps = constantInts(value(4)))) return std::nullopt;
    if (!starts || !ends) return std::nullopt;
    return sliceValue(*value(0), *starts, *ends, axes, steps, dtype);
  }
  if (kind == OpKind::Gather && value(0)) {
    const SymbolicTensor& data = *value(0);
    std::optional<std::vector<int64_t>> indices = constantInts(value(1));
    std::optional<int64_t> axis = wrapAxis(attrs.getInt("axis", 0), data.shape.size());
    if (!indices || !axis) return std::nullopt;
    const auto a = static_cast<size_t>(*axis);
    const int64_t outer = product(data.shape, 0, a), extent = data.shape[a],
                  inner = product(data.shape, a + 1, data.shape.size());
    SymbolicTensor out = emptyLike(dtype, shape);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t index : *indices) {
        if (index < -extent || index >= extent) return std::nullopt;
        if (index < 0) index += extent;
        for (int64_t i = 0; i < inner; ++i)
          out.elements.push_back(data.elements[static_cast<size_t>((o * extent + index) * inner + i)]);
      }
    return out;
  }
  if (kind == OpKind::Concat && allKnown) {
    std::optional<int64_t> axis = wrapAxis(attrs.getInt("axis"), shape.size());
    if (!axis) return std::nullopt;
    const auto a = static_cast<size_t>(*axis);
    SymbolicTensor out = emptyLike(dtype, shape);
    const int64_t outer = product(shape, 0, a);
    for (int64_t o = 0; o < outer; ++o)
      for (const SymbolicTensor* in : operandValues) {
        const int64_t block = product(in->shape, a, in->shape.size());
        const auto begin = in->elements.begin() + o * block;
        out.elements.insert(out.elements.end(), begin, begin + block);
      }
    return out;
  }

  // Every other op reads all its operand values.
  if (!allKnown) return std::nullopt;
  const SymbolicTensor& x = *value(0);
  if (kind == OpKind::Identity || kind == OpKind::Reshape || kind == OpKind::Unsqueeze || kind == OpKind::Squeeze ||
      kind == OpKind::Flatten) {
    return SymbolicTensor{dtype, shape, x.elements};
  }
  if (kind == OpKind::Expand)
    return broadcastMap(operandValues.first(1), dtype, shape, [](const std::vector<Dim>& v) { return v[0]; });
  if (kind == OpKind::Cast) {
    if (dtype != DType::Bool) return SymbolicTensor{dtype, shape, x.elements};
    return broadcastMap(operandValues, dtype, shape, [](const std::vector<Dim>& v) {
      if (std::optional<bool> t = truth(v[0])) return boolDim(*t);
      return knownNonNegative(v[0] - 1) ? boolDim(true) : Dim::unknown();
    });
  }

  std::function<Dim(const std::vector<Dim>&)> fn;
  if (kind == OpKind::Add) fn = [](const std::vector<Dim>& v) { return v[0] + v[1]; };
  else if (kind == OpKind::Sub) fn = [](const std::vector<Dim>& v) { return v[0] - v[1]; };
  else if (kind == OpKind::Mul) fn = [](const std::vector<Dim>& v) { return v[0] * v[1]; };
  else if (kind == OpKind::Div) fn = [](const std::vector<Dim>& v) { return divideDims(v[0], v[1]); };
  else if (kind == OpKind::Neg) fn = [](const std::vector<Dim>& v) { return Dim(0) - v[0]; };
  else if (kind == OpKind::Abs)
    fn = [](const std::vector<Dim>& v) {
      if (knownNonNegative(v[0])) return v[0];
      if (knownNonNegative(Dim(0) - v[0])) return Dim(0) - v[0];
      return Dim::unknown();
    };
  else if (kind == OpKind::Equal || kind == OpKind::Less || kind == OpKind::Greater) {
    const int wanted = kind == OpKind::Equal ? 0 : kind == OpKind::Less ? -1 : 1;
    fn = [wanted](const std::vector<Dim>& v) {
      std::optional<int> order = compareDims(v[0], v[1]);
      return order ? boolDim(*order == wanted) : Dim::unknown();
    };
  } else if (kind == OpKind::Min || kind == OpKind::Max) {
    const int keep = kind == OpKind::Min ? -1 : 1;
    fn = [keep](const std::vector<Dim>& v) {
      Dim best = v[0];
      for (size_t k = 1; k < v.size(); ++k) {
        std::optional<int> order = compareDims(v[k], best);
        if (!order) return Dim::unknown();
        if (*order == keep) best = v[k];
      }
      return best;
    };
  } else if (kind == OpKind::Not) {
    fn = [](const std::vector<Dim>& v) {
      std::optional<bool> t = truth(v[0]);
      return unknownUnless(t ? std::optional<bool>(!*t) : std::nullopt);
    };
  } else if (kind == OpKind::And || kind == OpKind::Or) {
    const bool isAnd = kind == OpKind::And;
    fn = [isAnd](const std::vector<Dim>& v) {
      std::optional<bool> a = truth(v[0]), b = truth(v[1]);
      // false and _ = false; true or _ = true, even when _ is unknown.
      if ((a && *a != isAnd) || (b && *b != isAnd)) return boolDim(!isAnd);
      return a && b ? boolDim(isAnd) : Dim::unknown();
    };
  } else if (kind == OpKind::Where) {
    fn = [](const std::vector<Dim>& v) {
      std::optional<bool> t = truth(v[0]);
      return t ? (*t ? v[1] : v[2]) : Dim::unknown();
    };
  } else {
    return std::nullopt;
  }
  return broadcastMap(operandValues, dtype, shape, fn);
}

namespace {

// Evaluates producers depth first, each value once; `depth` bounds the walk
// (shape arithmetic is shallow; a deep cone is data).
class GraphSymbolicEvaluator {
 public:
  explicit GraphSymbolicEvaluator(const Graph& graph) : graph_(graph) {}

  const SymbolicTensor* valueOf(ValueId id, int depth) {
    if (id == kNoValue) return nullptr;
    if (auto found = known_.find(id); found != known_.end()) return found->second ? &*found->second : nullptr;
    std::optional<SymbolicTensor> value = evaluate(graph_.value(id), depth);
    const std::optional<SymbolicTensor>& slot = known_.emplace(id, std::move(value)).first->second;
    return slot ? &*slot : nullptr;
  }

 private:
  static constexpr int kMaxDepth = 64;

  std::optional<SymbolicTensor> evaluate(const Value& value, int depth) {
    if (value.kind == ValueKind::Weight) return value.data ? symbolicFromTensor(*value.data) : std::nullopt;
    if (value.kind != ValueKind::OpResult || depth > kMaxDepth || !isSymbolicCandidate(value.type))
      return std::nullopt;
    const Op& op = graph_.ops()[static_cast<size_t>(value.producer)];
    std::vector<const TensorType*> types;
    std::vector<const SymbolicTensor*> values;
    for (ValueId operand : op.operands) {
      types.push_back(operand == kNoValue ? nullptr : &graph_.value(operand).type);
      values.push_back(valueOf(operand, depth + 1));
    }
    return evaluateSymbolic(op, types, values, value.type);
  }

  const Graph& graph_;
  std::unordered_map<ValueId, std::optional<SymbolicTensor>> known_;
};

}  // namespace

std::optional<SymbolicTensor> symbolicValueOf(const Graph& graph, ValueId id) {
  GraphSymbolicEvaluator evaluator(graph);
  const SymbolicTensor* value = evaluator.valueOf(id, 0);
  return value ? std::optional<SymbolicTensor>(*value) : std::nullopt;
}

}  // namespace kiln
