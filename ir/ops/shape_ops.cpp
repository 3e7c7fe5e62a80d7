// Shape and data-movement ops (ONNX semantics, opsets 13 to 21): reshape,
// transpose, flatten, squeeze, unsqueeze, concat, split, slice, gather,
// expand, shape, size, constant_of_shape, range, trilu. Their reference
// kernels: backends/reference/shape_ops.cpp.
//
// Inference works on symbolic dims and uses operand values when they are
// known (weights at compile time; every operand at run time, which is how the
// runtime gets exact shapes from the same functions). A dim is symbolic only
// where the result is exact for every binding of the symbols (each symbol is
// a dim, so >= 0); anything else is `?`.
//
// Once canonicalisation has folded the shape arithmetic, reshape, expand and
// constant_of_shape take their target shape as a `shape` dim-list attribute,
// slice its bounds as `starts`/`ends` dim lists and range its bounds as
// `start`/`limit` dim lists, instead of operands. Inference substitutes the
// run's symbol values (InferContext::resolve), so the same op is symbolic at
// compile time and concrete at run time; kernels read attributes that the
// executor has already resolved.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "ir/op_registry.h"
#include "ir/ops/op_helpers.h"
#include "ir/ops/symbolic_dims.h"
#include "ir/shape_ops.h"

namespace kiln {
namespace ops {

// ---- Facts about symbolic dims (ir/ops/symbolic_dims.h).

bool knownNonNegative(const Dim& d) {
  if (d.isUnknown()) return false;
  for (const auto& [monomial, coefficient] : d.terms())
    if (coefficient < 0) return false;
  return true;
}

namespace {

Dim monomialDim(const Dim::Monomial& monomial, int64_t coefficient) {
  Dim out = coefficient;
  for (const std::string& symbol : monomial) out = out * Dim::symbol(symbol);
  return out;
}

// The leading term in graded lexicographic order: highest degree, then the
// most of the alphabetically first symbol (a monomial order, so long division
// below terminates and is exact whenever a divisor exists).
std::pair<Dim::Monomial, int64_t> leadingTerm(const Dim& d) {
  auto leading = d.terms().begin();
  for (auto it = d.terms().begin(); it != d.terms().end(); ++it) {
    const Dim::Monomial& m = it->first;
    const Dim::Monomial& best = leading->first;
    if (m.size() > best.size() || (m.size() == best.size() && m < best)) leading = it;
  }
  return *leading;
}

}  // namespace

std::optional<Dim> divideExactly(const Dim& a, const Dim& b) {
  if (a.isUnknown() || b.isUnknown() || b.terms().empty()) return std::nullopt;
  const auto [divisorMonomial, divisorCoefficient] = leadingTerm(b);
  Dim quotient = 0;
  Dim rest = a;
  while (!rest.terms().empty()) {
    const auto [monomial, coefficient] = leadingTerm(rest);
    if (coefficient % divisorCoefficient != 0 ||
        !std::includes(monomial.begin(), monomial.end(), divisorMonomial.begin(),
                       divisorMonomial.end()))
      return std::nullopt;
    Dim::Monomial factor;
    std::set_difference(monomial.begin(), monomial.end(), divisorMonomial.begin(),
                        divisorMonomial.end(), std::back_inserter(factor));
    const Dim term = monomialDim(factor, coefficient / divisorCoefficient);
    quotient = quotient + term;
    rest = rest - term * b;
  }
  return quotient;
}

}  // namespace ops

namespace {

using namespace ops;

// ---- Symbolic arithmetic.

Dim productOf(std::span<const Dim> dims) {
  Dim out = 1;
  for (const Dim& d : dims) out = out * d;
  return out;
}

// The more precise of two dims that must be equal at run time.
Dim morePrecise(const Dim& a, const Dim& b) {
  if (a.isUnknown()) return b;
  if (b.isUnknown()) return a;
  return b.isConstant() && !a.isConstant() ? b : a;
}

// ---- Operand checks.

// Shape-like operands (shapes, axes, starts, indices) are i64 or i32 tensors.
Status requireIndexTensor(const InferContext& ctx, size_t i, std::string_view what) {
  const DType t = ctx.type(i).dtype;
  if (t != DType::I64 && t != DType::I32)
    return ctx.error(what, " must be an i64 or i32 tensor, got ", ctx.type(i).str());
  return Status::ok();
}

Status requireIndexVector(const InferContext& ctx, size_t i, std::string_view what) {
  KILN_RETURN_IF_ERROR(requireIndexTensor(ctx, i, what));
  return requireRank(ctx, i, 1, what);
}

// The length of 1-D operand `i`, which fixes a result's rank and so must be static.
Expected<int64_t> requireStaticLength(const InferContext& ctx, size_t i, std::string_view what) {
  std::optional<int64_t> length = staticLength(ctx, i);
  if (!length)
    return ctx.error("the length of ", what, " ", shapeStr(ctx.type(i).shape),
                     " sets the result's rank and must be static");
  return *length;
}

// ---- Dim-list attributes.

// Attribute `name` as dims with the run's symbol values substituted (still
// symbolic at compile time); nullopt when absent.
std::optional<Shape> resolvedDims(const InferContext& ctx, const std::string& name) {
  std::optional<std::vector<Dim>> dims = ctx.attrs().getDims(name);
  if (!dims) return std::nullopt;
  for (Dim& d : *dims) d = ctx.resolve(d);
  return dims;
}

// The target shape from the `shape` attribute, when operand `operand` (the
// ONNX shape operand) is absent; exactly one of the two must be given.
Expected<std::optional<Shape>> shapeAttribute(const InferContext& ctx, size_t operand) {
  std::optional<Shape> dims = resolvedDims(ctx, "shape");
  if (dims && ctx.has(operand))
    return ctx.error("give the shape as an operand or as the shape attribute, not both");
  if (!dims && !ctx.has(operand)) return ctx.error("needs a shape operand or a shape attribute");
  if (dims)
    for (const Dim& d : *dims)
      if (d.isUnknown() || (d.isConstant() && *d.constant() < 0))
        return ctx.error("shape attribute ", shapeStr(*dims), " has a negative or unknown dim");
  return dims;
}

// ---- reshape

// reshape {shape = [...]}: the dims are literal (no 0 or -1 rules).
Status inferReshapeToDims(const InferContext& ctx, const Shape& target,
                          std::vector<TensorType>& results) {
  const TensorType& x = ctx.type(0);
  const Dim total = productOf(x.shape), count = productOf(target);
  if (total.isConstant() && count.isConstant() && total != count)
    return ctx.error("cannot reshape ", shapeStr(x.shape), " (", total.str(), " elements) to ",
                     shapeStr(target), " (", count.str(), " elements)");
  results.push_back({x.dtype, target});
  return Status::ok();
}

Status inferReshape(const InferContext& ctx, std::vector<TensorType>& results) {
  Expected<std::optional<Shape>> attribute = shapeAttribute(ctx, 1);
  if (!attribute) return attribute.status();
  if (*attribute) return inferReshapeToDims(ctx, **attribute, results);
  KILN_RETURN_IF_ERROR(requireIndexVector(ctx, 1, "shape"));
  const TensorType& x = ctx.type(0);
  std::optional<std::vector<int64_t>> values = knownInts(ctx, 1);
  if (!values) {
    Expected<int64_t> rank = requireStaticLength(ctx, 1, "shape");
    if (!rank) return rank.status();
    results.push_back({x.dtype, unknownShape(static_cast<size_t>(*rank))});
    return Status::ok();
  }
  const bool allowZero = ctx.attrs().getBool("allowzero");
  Shape out;
  std::optional<size_t> inferred;  // the position of -1
  for (size_t i = 0; i < values->size(); ++i) {
    const int64_t v = (*values)[i];
    if (v == -1) {
      if (inferred) return ctx.error("shape ", shapeStr(*values), " has more than one -1");
      inferred = i;
      out.push_back(Dim::unknown());
    } else if (v < -1) {
      return ctx.error("shape ", shapeStr(*values), " has a negative dim ", v);
    } else if (v == 0 && !allowZero) {
      if (i >= x.rank())
        return ctx.error("shape ", shapeStr(*values), " copies dim ", i, " (a 0) but the input ",
                         shapeStr(x.shape), " has rank ", x.rank());
      out.push_back(x.shape[i]);
    } else {
      out.push_back(v);
    }
  }
  if (allowZero && inferred && std::count(values->begin(), values->end(), 0) > 0)
    return ctx.error("shape ", shapeStr(*values), " has both 0 and -1 while allowzero is set");

  const Dim total = productOf(x.shape);
  if (inferred) {
    std::vector<Dim> others = out;
    others.erase(others.begin() + static_cast<ptrdiff_t>(*inferred));
    const Dim known = productOf(others);
    if (known == Dim(0))
      return ctx.error("cannot infer the -1 in shape ", shapeStr(*values),
                       ": the other dims have 0 elements");
    std::optional<Dim> quotient = divideExactly(total, known);
    if (!quotient && total.isConstant() && known.isConstant())
      return ctx.error("cannot reshape ", shapeStr(x.shape), " (", total.str(), " elements) to ",
                       shapeStr(*values), ": ", total.str(), " is not a multiple of ", known.str());
    out[*inferred] = quotient ? *quotient : Dim::unknown();
  } else {
    const Dim count = productOf(out);
    if (total.isConstant() && count.isConstant() && total != count)
      return ctx.error("cannot reshape ", shapeStr(x.shape), " (", total.str(), " elements) to ",
                       shapeStr(out), " (", count.str(), " elements)");
  }
  results.push_back({x.dtype, out});
  return Status::ok();
}

// ---- transpose

Expected<std::vector<int64_t>> permutation(const InferContext& ctx, size_t rank) {
  if (!ctx.attrs().has("perm")) {
    std::vector<int64_t> reversed(rank);
    for (size_t i = 0; i < rank; ++i) reversed[i] = static_cast<int64_t>(rank - 1 - i);
    return reversed;
  }
  const std::vector<int64_t> perm = ctx.attrs().getInts("perm");
  if (perm.size() != rank)
    return ctx.error("perm ", shapeStr(perm), " has ", perm.size(), " entries for rank ", rank);
  return normalizeAxes(ctx, perm, rank, "perm");
}

Status inferTranspose(const InferContext& ctx, std::vector<TensorType>& results) {
  const TensorType& x = ctx.type(0);
  Expected<std::vector<int64_t>> perm = permutation(ctx, x.rank());
  if (!perm) return perm.status();
  Shape out;
  for (int64_t axis : *perm) out.push_back(x.shape[static_cast<size_t>(axis)]);
  results.push_back({x.dtype, out});
  return Status::ok();
}

// ---- flatten

Status inferFlatten(const InferContext& ctx, std::vector<TensorType>& results) {
  const TensorType& x = ctx.type(0);
  const auto rank = static_cast<int64_t>(x.rank());
  int64_t axis = ctx.attrs().getInt("axis", 1);
  if (axis < -rank || axis > rank)
    return ctx.error("axis = ", axis, " is out of range for rank ", rank, " (valid: [", -rank, ", ",
                     rank, "])");
  if (axis < 0) axis += rank;
  const std::span<const Dim> dims(x.shape);
  const auto split = static_cast<size_t>(axis);
  results.push_back({x.dtype, {productOf(dims.first(split)), productOf(dims.subspan(split))}});
  return Status::ok();
}

// ---- squeeze / unsqueeze

Status inferSqueeze(const InferContext& ctx, std::vector<TensorType>& results) {
  const TensorType& x = ctx.type(0);
  Shape out;
  if (!ctx.has(1)) {
    // Every dim of 1 goes; a symbolic dim might be 1 at run time, which would
    // change the rank, so such inputs need explicit axes.
    for (size_t d = 0; d < x.rank(); ++d) {
      if (!x.shape[d].isConstant())
        return ctx.error("without axes, dim ", d, " (", x.shape[d].str(),
                         ") might or might not be squeezed; give axes or static input dims");
      if (x.shape[d] != Dim(1)) out.push_back(x.shape[d]);
    }
    results.push_back({x.dtype, out});
    return Status::ok();
  }
  KILN_RETURN_IF_ERROR(requireIndexVector(ctx, 1, "axes"));
  std::optional<std::vector<int64_t>> values = knownInts(ctx, 1);
  if (!values) {
    Expected<int64_t> count = requireStaticLength(ctx, 1, "axes");
    if (!count) return count.status();
    if (*count > static_cast<int64_t>(x.rank()))
      return ctx.error("cannot squeeze ", *count, " axes of a rank-", x.rank(), " tensor");
    results.push_back({x.dtype, unknownShape(x.rank() - static_cast<size_t>(*count))});
    return Status::ok();
  }
  Expected<std::vector<int64_t>> axes = normalizeAxes(ctx, *values, x.rank());
  if (!axes) return axes.status();
  for (size_t d = 0; d < x.rank(); ++d) {
    const bool squeezed = std::count(axes->begin(), axes->end(), static_cast<int64_t>(d)) > 0;
    if (!squeezed) {
      out.push_back(x.shape[d]);
    } else if (x.shape[d].isConstant() && x.shape[d] != Dim(1)) {
      return ctx.error("cannot squeeze axis ", d, " of ", shapeStr(x.shape), ": its size is ",
                       x.shape[d].str(), ", not 1");
    }
  }
  results.push_back({x.dtype, out});
  return Status::ok();
}

Status inferUnsqueeze(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireIndexVector(ctx, 1, "axes"));
  const TensorType& x = ctx.type(0);
  std::optional<std::vector<int64_t>> values = knownInts(ctx, 1);
  if (!values) {
    Expected<int64_t> count = requireStaticLength(ctx, 1, "axes");
    if (!count) return count.status();
    results.push_back({x.dtype, unknownShape(x.rank() + static_cast<size_t>(*count))});
    return Status::ok();
  }
  const size_t rank = x.rank() + values->size();
  Expected<std::vector<int64_t>> axes = normalizeAxes(ctx, *values, rank);
  if (!axes) return axes.status();
  Shape out;
  size_t next = 0;  // the next input dim to place
  for (size_t d = 0; d < rank; ++d) {
    const bool inserted = std::count(axes->begin(), axes->end(), static_cast<int64_t>(d)) > 0;
    out.push_back(inserted ? Dim(1) : x.shape[next++]);
  }
  results.push_back({x.dtype, out});
  return Status::ok();
}

// ---- concat

Status inferConcat(const InferContext& ctx, std::vector<TensorType>& results) {
  const TensorType& first = ctx.type(0);
  if (first.rank() == 0) return ctx.error("cannot concatenate scalars");
  Expected<int64_t> axis = normalizeAxis(ctx, ctx.attrs().getInt("axis"), first.rank());
  if (!axis) return axis.status();
  Shape out = first.shape;
  const auto a = static_cast<size_t>(*axis);
  for (size_t i = 1; i < ctx.numOperands(); ++i) {
    if (!ctx.has(i)) return ctx.error("operand ", i, " is absent");
    KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, i));
    const Shape& shape = ctx.type(i).shape;
    if (shape.size() != first.rank())
      return ctx.error("operand ", i, " has rank ", shape.size(), ", operand 0 has rank ", first.rank());
    for (size_t d = 0; d < shape.size(); ++d) {
      if (d == a) {
        out[d] = out[d] + shape[d];
      } else if (out[d].isConstant() && shape[d].isConstant() && out[d] != shape[d]) {
        return ctx.error("operand ", i, " has ", shapeStr(shape), " which differs in dim ", d,
                         " from ", shapeStr(out), " (only the axis ", a, " may differ)");
      } else {
        out[d] = morePrecise(out[d], shape[d]);
      }
    }
  }
  results.push_back({first.dtype, out});
  return Status::ok();
}

// ---- split

Status inferSplit(const InferContext& ctx, std::vector<TensorType>& results) {
  const TensorType& x = ctx.type(0);
  const int parts = ctx.numResults();
  if (ctx.attrs().has("num_outputs") && ctx.attrs().getInt("num_outputs") != parts)
    return ctx.error("num_outputs = ", ctx.attrs().getInt("num_outputs"), " but the op has ", parts,
                     " results");
  if (x.rank() == 0) return ctx.error("cannot split a scalar");
  Expected<int64_t> axis = normalizeAxis(ctx, ctx.attrs().getInt("axis"), x.rank());
  if (!axis) return axis.status();
  const Dim& dim = x.shape[static_cast<size_t>(*axis)];
  std::vector<Dim> sizes;
  if (ctx.has(1)) {
    KILN_RETURN_IF_ERROR(requireIndexVector(ctx, 1, "split"));
    if (ctx.attrs().has("num_outputs")) return ctx.error("give either split or num_outputs, not both");
    if (std::optional<int64_t> length = staticLength(ctx, 1); length && *length != parts)
      return ctx.error("split has ", *length, " sizes for ", parts, " results");
    std::optional<std::vector<int64_t>> values = knownInts(ctx, 1);
    if (!values) {
      sizes.assign(static_cast<size_t>(parts), Dim::unknown());
    } else {
      int64_t sum = 0;
      for (int64_t v : *values) {
        if (v < 0) return ctx.error("split ", shapeStr(*values), " has a negative size");
        sum += v;
      }
      if (dim.isConstant() && Dim(sum) != dim)
        return ctx.error("split ", shapeStr(*values), " sums to ", sum, ", but dim ", *axis, " of ",
                         shapeStr(x.shape), " is ", dim.str());
      sizes.assign(values->begin(), values->end());
    }
  } else if (std::optional<int64_t> extent = dim.constant()) {
    // Equal parts; when uneven, the last is smaller (opset 18).
    const int64_t chunk = (*extent + parts - 1) / parts;
    const int64_t last = *extent - chunk * (parts - 1);
    if (last < 0)
      return ctx.error("cannot split dim ", *axis, " of ", shapeStr(x.shape), " (", *extent,
                       ") into ", parts, " parts");
    sizes.assign(static_cast<size_t>(parts), Dim(chunk));
    sizes.back() = last;
  } else {
    // A symbolic dim splits exactly only when every coefficient divides.
    sizes.assign(static_cast<size_t>(parts), dim / Dim(parts));
  }
  for (const Dim& size : sizes) {
    Shape shape = x.shape;
    shape[static_cast<size_t>(*axis)] = size;
    results.push_back({x.dtype, shape});
  }
  return Status::ok();
}

// ---- slice

// Bounds at or beyond this magnitude mean "past the end" (INT64_MAX, INT64_MIN
// and friends); no dim is this large.
constexpr int64_t kEndless = int64_t{1} << 62;

// x clamped to [lo, hi] when the outcome is the same for every binding of
// the symbols; unknown otherwise.
Dim clampDim(const Dim& x, const Dim& lo, const Dim& hi) {
  if (knownNonNegative(lo - x)) return lo;
  if (knownNonNegative(x - hi)) return hi;
  if (knownNonNegative(x - lo) && knownNonNegative(hi - x)) return x;
  return Dim::unknown();
}

// ceil(n / k) for k > 0 and n >= 0; symbolic only when k divides exactly.
Dim ceilDiv(const Dim& n, int64_t k) {
  if (std::optional<int64_t> c = n.constant()) return (*c + k - 1) / k;
  return n / Dim(k);
}

// One axis of a slice whose bounds may be symbolic (the dim-list form):
// forward steps only. A symbolic bound counts from the front and is assumed
// to lie within the dim where that cannot be proven (`ends = [seq]` on a
// 64-row table): the bound came from a dim of another tensor that the model
// pairs with this one, and at run time the executor checks every result
// against its declared shape, so a violated assumption is an error, never a
// wrong result.
SliceRange sliceAxisOfDims(const Dim& dim, const Dim& start, const Dim& end, int64_t step) {
  if (start.isConstant() && end.isConstant()) return sliceAxis(dim, *start.constant(), *end.constant(), step);
  if (step < 0 || start.isUnknown() || end.isUnknown()) return {Dim::unknown(), Dim::unknown()};
  auto bound = [&](const Dim& v) {
    if (std::optional<int64_t> c = v.constant()) {
      if (*c >= kEndless) return dim;
      if (*c <= -kEndless) return Dim(0);
      return clampDim(*c < 0 ? dim + *c : Dim(*c), 0, dim);
    }
    if (!knownNonNegative(v)) return Dim::unknown();
    return knownNonNegative(v - dim) ? dim : v;
  };
  const Dim first = bound(start), last = bound(end);
  const Dim span = last - first;
  if (knownNonNegative(span)) return {first, ceilDiv(span, step)};
  if (knownNonNegative(Dim(0) - span)) return {first, 0};
  return {first, Dim::unknown()};
}

// The dim-list form: slice x {starts = [...], ends = [...], axes, steps}.
bool isSliceOfDims(const Attributes& attrs) {
  return attrs.has("starts") || attrs.has("ends") || attrs.has("axes") || attrs.has("steps");
}

Status inferSlice(const InferContext& ctx, std::vector<TensorType>& results) {
  const char* names[] = {"x", "starts", "ends", "axes", "steps"};
  for (size_t i = 1; i < 5; ++i)
    if (ctx.has(i)) KILN_RETURN_IF_ERROR(requireIndexVector(ctx, i, names[i]));
  const TensorType& x = ctx.type(0);
  Expected<std::optional<SliceParams>> params = sliceParams(ctx);
  if (!params) return params.status();
  Shape out = x.shape;
  if (*params) {
    const SliceParams& p = **params;
    for (size_t i = 0; i < p.axes.size(); ++i) {
      const auto axis = static_cast<size_t>(p.axes[i]);
      out[axis] = sliceAxisOfDims(x.shape[axis], p.starts[i], p.ends[i], p.steps[i]).count;
    }
  } else if (ctx.has(3) && !knownInts(ctx, 3)) {
    out = unknownShape(x.rank());  // which axes are sliced is not known
  } else if (ctx.has(3)) {
    Expected<std::vector<int64_t>> axes = normalizeAxes(ctx, *knownInts(ctx, 3), x.rank());
    if (!axes) return axes.status();
    for (int64_t axis : *axes) out[static_cast<size_t>(axis)] = Dim::unknown();
  } else {
    // Without axes, starts covers the leading dims; its length says how many.
    std::optional<int64_t> length = staticLength(ctx, 1);
    if (!length) length = static_cast<int64_t>(x.rank());
    if (*length > static_cast<int64_t>(x.rank()))
      return ctx.error("starts has ", *length, " entries for rank ", x.rank());
    for (int64_t d = 0; d < *length; ++d) out[static_cast<size_t>(d)] = Dim::unknown();
  }
  results.push_back({x.dtype, out});
  return Status::ok();
}

// ---- gather

Status inferGather(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireIndexTensor(ctx, 1, "indices"));
  const TensorType& data = ctx.type(0);
  if (data.rank() == 0) return ctx.error("data must have rank >= 1");
  Expected<int64_t> axis = normalizeAxis(ctx, ctx.attrs().getInt("axis"), data.rank());
  if (!axis) return axis.status();
  const auto a = static_cast<size_t>(*axis);
  Shape out(data.shape.begin(), data.shape.begin() + static_cast<ptrdiff_t>(a));
  const Shape& indices = ctx.type(1).shape;
  out.insert(out.end(), indices.begin(), indices.end());
  out.insert(out.end(), data.shape.begin() + static_cast<ptrdiff_t>(a) + 1, data.shape.end());
  results.push_back({data.dtype, out});
  return Status::ok();
}

// ---- gather_elements

Status inferGatherElements(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireIndexTensor(ctx, 1, "indices"));
  const TensorType& data = ctx.type(0);
  const TensorType& indices = ctx.type(1);
  if (data.rank() == 0 || indices.rank() != data.rank())
    return ctx.error("data and indices must have the same rank >= 1");
  Expected<int64_t> axis = normalizeAxis(ctx, ctx.attrs().getInt("axis"), data.rank());
  if (!axis) return axis.status();
  results.push_back({data.dtype, indices.shape});
  return Status::ok();
}

// ---- expand

Status inferExpand(const InferContext& ctx, std::vector<TensorType>& results) {
  Expected<std::optional<Shape>> attribute = shapeAttribute(ctx, 1);
  if (!attribute) return attribute.status();
  const TensorType& x = ctx.type(0);
  Shape target;
  if (*attribute) {
    target = **attribute;
  } else if (Status valid = requireIndexVector(ctx, 1, "shape"); !valid) {
    return valid;
  } else if (std::optional<std::vector<int64_t>> values = knownInts(ctx, 1)) {
    for (int64_t v : *values)
      if (v < 0) return ctx.error("shape ", shapeStr(*values), " has a negative dim");
    target = toShape(*values);
  } else {
    Expected<int64_t> rank = requireStaticLength(ctx, 1, "shape");
    if (!rank) return rank.status();
    target = unknownShape(static_cast<size_t>(*rank));
  }
  std::optional<Shape> out = broadcastShapes(x.shape, target);
  if (!out)
    return ctx.error("cannot expand ", shapeStr(x.shape), " to ", shapeStr(target),
                     ": the shapes do not broadcast");
  results.push_back({x.dtype, *out});
  return Status::ok();
}

// ---- shape / size

Status inferShapeOp(const InferContext& ctx, std::vector<TensorType>& results) {
  const auto [start, end] = shapeWindow(ctx.attrs(), ctx.type(0).rank());
  results.push_back({DType::I64, {static_cast<int64_t>(end - start)}});
  return Status::ok();
}

Status inferSize(const InferContext&, std::vector<TensorType>& results) {
  results.push_back({DType::I64, {}});
  return Status::ok();
}

// ---- constant_of_shape

Status inferConstantOfShape(const InferContext& ctx, std::vector<TensorType>& results) {
  const std::string name = ctx.attrs().getString("dtype", "f32");
  std::optional<DType> dtype = parseDType(name);
  if (!dtype) return ctx.error("unknown dtype \"", name, "\"");
  Expected<std::optional<Shape>> attribute = shapeAttribute(ctx, 0);
  if (!attribute) return attribute.status();
  if (*attribute) {
    results.push_back({*dtype, **attribute});
    return Status::ok();
  }
  KILN_RETURN_IF_ERROR(requireIndexVector(ctx, 0, "shape"));
  if (std::optional<std::vector<int64_t>> values = knownInts(ctx, 0)) {
    for (int64_t v : *values)
      if (v < 0) return ctx.error("shape ", shapeStr(*values), " has a negative dim");
    results.push_back({*dtype, toShape(*values)});
    return Status::ok();
  }
  Expected<int64_t> rank = requireStaticLength(ctx, 0, "shape");
  if (!rank) return rank.status();
  results.push_back({*dtype, unknownShape(static_cast<size_t>(*rank))});
  return Status::ok();
}

// ---- range

// No range is allowed to allocate more than this many elements.
constexpr int64_t kMaxRangeLength = int64_t{1} << 40;

// max(ceil((limit - start) / delta), 0), exact for integers.
template <class T>
Expected<int64_t> rangeLength(const InferContext& ctx, T start, T limit, T delta) {
  if constexpr (std::is_integral_v<T>) {
    if (delta == 0) return ctx.error("delta must not be 0");
    const auto s = static_cast<int64_t>(start), l = static_cast<int64_t>(limit),
               d = static_cast<int64_t>(delta);
    if (d > 0 ? l <= s : l >= s) return int64_t{0};
    // |limit - start| and |delta| as unsigned, so no int64 overflow.
    const uint64_t span = d > 0 ? static_cast<uint64_t>(l) - static_cast<uint64_t>(s)
                                : static_cast<uint64_t>(s) - static_cast<uint64_t>(l);
    const uint64_t stride = d > 0 ? static_cast<uint64_t>(d) : uint64_t{0} - static_cast<uint64_t>(d);
    const uint64_t length = (span - 1) / stride + 1;
    if (length > static_cast<uint64_t>(kMaxRangeLength))
      return ctx.error("range of ", length, " elements is too large");
    return static_cast<int64_t>(length);
  } else {
    const double s = loadAsDouble(start), l = loadAsDouble(limit), d = loadAsDouble(delta);
    if (d == 0) return ctx.error("delta must not be 0");
    const double length = std::ceil((l - s) / d);
    if (!std::isfinite(length) || length > static_cast<double>(kMaxRangeLength))
      return ctx.error("range from ", s, " to ", l, " by ", d, " has no finite length");
    return std::max<int64_t>(0, static_cast<int64_t>(length));
  }
}

// range {start = [s], limit = [l], delta = d, dtype = "i64"}: integer
// bounds that may be symbolic (`start = [past_sequence]`).
Status inferRangeOfDims(const InferContext& ctx, std::vector<TensorType>& results) {
  if (ctx.numOperands() != 0)
    return ctx.error("give start, limit and delta as operands or as attributes, not both");
  std::optional<Shape> start = resolvedDims(ctx, "start"), limit = resolvedDims(ctx, "limit");
  if (!start || !limit || start->size() != 1 || limit->size() != 1)
    return ctx.error("needs the attributes start = [dim] and limit = [dim], one dim each");
  const int64_t delta = ctx.attrs().getInt("delta", 1);
  if (delta == 0) return ctx.error("delta must not be 0");
  const std::string name = ctx.attrs().getString("dtype", "i64");
  std::optional<DType> dtype = parseDType(name);
  if (dtype != DType::I64 && dtype != DType::I32)
    return ctx.error("a range of dims is i64 or i32, not \"", name, "\"");
  const Dim& first = (*start)[0];
  const Dim& end = (*limit)[0];
  Dim length = Dim::unknown();
  if (first.isConstant() && end.isConstant()) {
    Expected<int64_t> known = rangeLength<int64_t>(ctx, *first.constant(), *end.constant(), delta);
    if (!known) return known.status();
    length = *known;
  } else {
    const Dim span = delta > 0 ? end - first : first - end;
    if (knownNonNegative(span)) length = ceilDiv(span, delta > 0 ? delta : -delta);
    else if (knownNonNegative(Dim(0) - span)) length = 0;
  }
  results.push_back({*dtype, {length}});
  return Status::ok();
}

Status inferRange(const InferContext& ctx, std::vector<TensorType>& results) {
  for (const char* attr : {"start", "limit", "delta", "dtype"})
    if (ctx.attrs().has(attr)) return inferRangeOfDims(ctx, results);
  const char* names[] = {"start", "limit", "delta"};
  for (size_t i = 0; i < 3; ++i) {
    if (!ctx.has(i))
      return ctx.error("needs start, limit and delta operands, or start and limit attributes");
    KILN_RETURN_IF_ERROR(requireNumeric(ctx, i, names[i]));
    KILN_RETURN_IF_ERROR(requireScalarLike(ctx, i, names[i]));
    KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, i));
  }
  const DType dtype = ctx.type(0).dtype;
  Dim length = Dim::unknown();
  if (ctx.value(0) && ctx.value(1) && ctx.value(2)) {
    Expected<int64_t> known = visitDType(dtype, [&](auto tag) -> Expected<int64_t> {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, bool>) {
        return ctx.error("bool ranges are not supported");
      } else {
        return rangeLength<T>(ctx, ctx.value(0)->data<T>()[0], ctx.value(1)->data<T>()[0],
                              ctx.value(2)->data<T>()[0]);
      }
    });
    if (!known) return known.status();
    length = *known;
  }
  results.push_back({dtype, {length}});
  return Status::ok();
}

// ---- trilu

// ---- patches (x) {size = [kh, kw]}: [N, C, H, W] -> [N, (H/kh)*(W/kw), C*kh*kw],
// the non-overlapping patches in raster order, each one row (channel, row, column)

Status inferPatches(const InferContext& ctx, std::vector<TensorType>& results) {
  const TensorType& x = ctx.type(0);
  if (x.rank() != 4) return ctx.error("x must be an image batch [N, C, H, W]");
  const std::vector<int64_t> size = ctx.attrs().getInts("size");
  if (size.size() != 2 || size[0] <= 0 || size[1] <= 0) return ctx.error("needs size = [kh, kw], both positive");
  Dim cells(1);
  for (size_t d = 0; d < 2; ++d) {
    const std::optional<int64_t> extent = x.shape[2 + d].constant();
    if (!extent || *extent % size[d] != 0)
      return ctx.error("the image's ", d == 0 ? "height " : "width ", x.shape[2 + d].str(),
                       " does not split into patches of ", size[d]);
    cells = cells * Dim(*extent / size[d]);
  }
  results.push_back({x.dtype, {x.shape[0], cells, x.shape[1] * Dim(size[0] * size[1])}});
  return Status::ok();
}

Status inferTrilu(const InferContext& ctx, std::vector<TensorType>& results) {
  const TensorType& x = ctx.type(0);
  if (x.rank() < 2) return ctx.error("x must have rank >= 2");
  if (ctx.has(1)) {
    KILN_RETURN_IF_ERROR(requireDType(ctx, 1, DType::I64, "k"));
    KILN_RETURN_IF_ERROR(requireScalarLike(ctx, 1, "k"));
  }
  results.push_back(x);
  return Status::ok();
}

}  // namespace

// ---- Shared with the kernels (ir/shape_ops.h).

SliceRange sliceAxis(const Dim& dim, int64_t start, int64_t end, int64_t step) {
  if (dim == Dim(0)) return {0, 0};
  const bool forward = step > 0;
  const int64_t stride = forward ? step : -step;
  if (!forward && !knownNonNegative(dim - 1)) {
    // Stepping backwards over a dim that may be 0: only the whole-dim case
    // (from the last element to the front) is exact.
    const bool fromLast = start == -1 || start >= kEndless;
    if (fromLast && end <= -kEndless) return {dim - 1, ceilDiv(dim, stride)};
    return {Dim::unknown(), Dim::unknown()};
  }
  const Dim lo = forward ? Dim(0) : Dim(-1);
  const Dim hi = forward ? dim : dim - 1;
  auto bound = [&](int64_t v, const Dim& low) {
    if (v >= kEndless) return hi;
    if (v <= -kEndless) return low;
    return clampDim(v < 0 ? dim + v : Dim(v), low, hi);
  };
  const Dim first = bound(start, forward ? lo : Dim(0));
  const Dim last = bound(end, lo);
  const Dim span = forward ? last - first : first - last;
  if (knownNonNegative(span)) return {first, ceilDiv(span, stride)};
  if (knownNonNegative(Dim(0) - span)) return {first, 0};
  return {first, Dim::unknown()};
}

Expected<std::optional<SliceParams>> sliceParams(const InferContext& ctx) {
  const size_t rank = ctx.type(0).rank();
  SliceParams p;
  std::optional<std::vector<int64_t>> axes, steps;
  if (isSliceOfDims(ctx.attrs())) {
    if (ctx.numOperands() > 1)
      return ctx.error("give starts, ends, axes and steps as operands or as attributes, not both");
    std::optional<Shape> starts = resolvedDims(ctx, "starts"), ends = resolvedDims(ctx, "ends");
    if (!starts || !ends) return ctx.error("needs both the starts and the ends attribute");
    p.starts = *starts;
    p.ends = *ends;
    if (ctx.attrs().has("axes")) axes = ctx.attrs().getInts("axes");
    if (ctx.attrs().has("steps")) steps = ctx.attrs().getInts("steps");
  } else {
    if (!ctx.has(1) || !ctx.has(2)) return ctx.error("needs starts and ends operands or attributes");
    std::optional<std::vector<int64_t>> starts = knownInts(ctx, 1);
    std::optional<std::vector<int64_t>> ends = knownInts(ctx, 2);
    axes = ctx.has(3) ? knownInts(ctx, 3) : std::nullopt;
    steps = ctx.has(4) ? knownInts(ctx, 4) : std::nullopt;
    if (!starts || !ends || (ctx.has(3) && !axes) || (ctx.has(4) && !steps))
      return std::optional<SliceParams>();
    p.starts = toShape(*starts);
    p.ends = toShape(*ends);
  }
  if (p.ends.size() != p.starts.size())
    return ctx.error("starts ", shapeStr(p.starts), " and ends ", shapeStr(p.ends),
                     " differ in length");
  std::vector<int64_t> rawAxes(p.starts.size());
  for (size_t i = 0; i < rawAxes.size(); ++i) rawAxes[i] = static_cast<int64_t>(i);
  if (axes) rawAxes = *axes;
  if (rawAxes.size() != p.starts.size())
    return ctx.error("axes ", shapeStr(rawAxes), " and starts ", shapeStr(p.starts), " differ in length");
  Expected<std::vector<int64_t>> normalized = normalizeAxes(ctx, rawAxes, rank);
  if (!normalized) return normalized.status();
  p.axes = *normalized;
  p.steps = steps ? *steps : std::vector<int64_t>(p.starts.size(), 1);
  if (p.steps.size() != p.starts.size())
    return ctx.error("steps ", shapeStr(p.steps), " and starts ", shapeStr(p.starts), " differ in length");
  if (std::count(p.steps.begin(), p.steps.end(), 0) > 0)
    return ctx.error("steps ", shapeStr(p.steps), " has a 0 step");
  return std::optional<SliceParams>(std::move(p));
}

std::pair<size_t, size_t> shapeWindow(const Attributes& attrs, size_t rank) {
  const auto r = static_cast<int64_t>(rank);
  auto clampIndex = [&](int64_t v) {
    if (v < 0) v += r;
    return static_cast<size_t>(std::clamp<int64_t>(v, 0, r));
  };
  const size_t start = clampIndex(attrs.getInt("start", 0));
  const size_t end = attrs.has("end") ? clampIndex(attrs.getInt("end")) : rank;
  return {start, std::max(start, end)};
}

void registerShapeOps(OpRegistry& registry) {
  registry.add(OpDef{.kind = OpKind::Reshape,
                     .summary = "same elements, new shape (operand: 0 copies the input dim unless allowzero, "
                                "-1 is inferred; or the literal dims of the shape attribute)",
                     .operands = {"x", "shape"}, .minOperands = 1, .maxOperands = 2,
                     .attrs = {{"allowzero", AttrKind::Bool}, {"shape", AttrKind::Dims}},
                     .infer = inferReshape, .resultIsView = true});
  registry.add(OpDef{.kind = OpKind::Transpose,
                     .summary = "permutes dims by perm (default: reversed)",
                     .operands = {"x"}, .minOperands = 1, .maxOperands = 1,
                     .attrs = {{"perm", AttrKind::Ints}},
                     .infer = inferTranspose});
  registry.add(OpDef{.kind = OpKind::Flatten,
                     .summary = "2-D view: dims before axis times dims from axis on",
                     .operands = {"x"}, .minOperands = 1, .maxOperands = 1,
                     .attrs = {{"axis", AttrKind::Int}},
                     .infer = inferFlatten, .resultIsView = true});
  registry.add(OpDef{.kind = OpKind::Squeeze,
                     .summary = "removes the dims of size 1 named by axes (all of them without axes)",
                     .operands = {"x", "axes"}, .minOperands = 1, .maxOperands = 2,
                     .attrs = {}, .infer = inferSqueeze, .resultIsView = true});
  registry.add(OpDef{.kind = OpKind::Unsqueeze,
                     .summary = "inserts dims of size 1 at axes (of the result)",
                     .operands = {"x", "axes"}, .minOperands = 2, .maxOperands = 2,
                     .attrs = {}, .infer = inferUnsqueeze, .resultIsView = true});
  registry.add(OpDef{.kind = OpKind::Concat,
                     .summary = "joins tensors along axis",
                     .operands = {"inputs..."}, .minOperands = 1, .maxOperands = -1,
                     .attrs = {{"axis", AttrKind::Int, true}},
                     .infer = inferConcat});
  registry.add(OpDef{.kind = OpKind::Split,
                     .summary = "splits along axis into the result count: by sizes, or equal parts (last smaller)",
                     .operands = {"x", "split"}, .minOperands = 1, .maxOperands = 2,
                     .minResults = 1, .maxResults = -1,
                     .attrs = {{"axis", AttrKind::Int}, {"num_outputs", AttrKind::Int}},
                     .infer = inferSplit});
  registry.add(OpDef{.kind = OpKind::Slice,
                     .summary = "x[starts:ends:steps] along axes (operands, or attributes whose bounds may be "
                                "symbolic dims); negative bounds count from the end",
                     .operands = {"x", "starts", "ends", "axes", "steps"}, .minOperands = 1, .maxOperands = 5,
                     .attrs = {{"axes", AttrKind::Ints}, {"ends", AttrKind::Dims},
                               {"starts", AttrKind::Dims}, {"steps", AttrKind::Ints}},
                     .infer = inferSlice, .traffic = Traffic::SelectedElements});
  registry.add(OpDef{.kind = OpKind::Gather,
                     .summary = "takes the entries of data at indices along axis; negative indices count from the end",
                     .operands = {"data", "indices"}, .minOperands = 2, .maxOperands = 2,
                     .attrs = {{"axis", AttrKind::Int}},
                     .infer = inferGather, .traffic = Traffic::SelectedElements});
  registry.add(OpDef{.kind = OpKind::GatherElements,
                     .summary = "out[i] = data[i with its axis coordinate replaced by indices[i]] (ONNX "
                                "GatherElements); negative indices count from the end",
                     .operands = {"data", "indices"}, .minOperands = 2, .maxOperands = 2,
                     .attrs = {{"axis", AttrKind::Int}},
                     .infer = inferGatherElements, .traffic = Traffic::SelectedElements});
  registry.add(OpDef{.kind = OpKind::Expand,
                     .summary = "broadcasts x against shape (operand or attribute; numpy rules, both ways)",
                     .operands = {"x", "shape"}, .minOperands = 1, .maxOperands = 2,
                     .attrs = {{"shape", AttrKind::Dims}}, .infer = inferExpand});
  registry.add(OpDef{.kind = OpKind::Shape,
                     .summary = "the dims [start, end) of x as an i64 vector",
                     .operands = {"x"}, .minOperands = 1, .maxOperands = 1,
                     .attrs = {{"end", AttrKind::Int}, {"start", AttrKind::Int}},
                     .infer = inferShapeOp, .traffic = Traffic::ResultsOnly});
  registry.add(OpDef{.kind = OpKind::Size,
                     .summary = "the element count of x as an i64 scalar",
                     .operands = {"x"}, .minOperands = 1, .maxOperands = 1,
                     .attrs = {}, .infer = inferSize, .traffic = Traffic::ResultsOnly});
  registry.add(OpDef{.kind = OpKind::ConstantOfShape,
                     .summary = "a tensor of the given shape (operand or attribute) filled with value, of dtype",
                     .operands = {"shape"}, .minOperands = 0, .maxOperands = 1,
                     .attrs = {{"dtype", AttrKind::String}, {"shape", AttrKind::Dims}, {"value", AttrKind::Float}},
                     .infer = inferConstantOfShape});
  registry.add(OpDef{.kind = OpKind::Range,
                     .summary = "start, start + delta, ... up to (not including) limit; as operands, or "
                                "as dims (start = [d], limit = [d], delta, dtype)",
                     .operands = {"start", "limit", "delta"}, .minOperands = 0, .maxOperands = 3,
                     .attrs = {{"delta", AttrKind::Int}, {"dtype", AttrKind::String},
                               {"limit", AttrKind::Dims}, {"start", AttrKind::Dims}},
                     .infer = inferRange});
  registry.add(OpDef{.kind = OpKind::Patches,
                     .summary = "an image batch [N, C, H, W] cut into non-overlapping kh x kw patches, in raster "
                                "order, each one row (channel, row, column): [N, (H/kh)*(W/kw), C*kh*kw]",
                     .operands = {"x"}, .minOperands = 1, .maxOperands = 1,
                     .attrs = {{"size", AttrKind::Ints, true}},
                     .infer = inferPatches});
  registry.add(OpDef{.kind = OpKind::Trilu,
                     .summary = "keeps the upper (j - i >= k) or lower (j - i <= k) triangle of the last two dims",
                     .operands = {"x", "k"}, .minOperands = 1, .maxOperands = 2,
                     .attrs = {{"upper", AttrKind::Bool}},
                     .infer = inferTrilu});
}

}  // namespace kiln
