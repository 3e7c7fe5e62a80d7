#include "passes/view_order.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <optional>

#include "ir/ops/symbolic_dims.h"
#include "passes/pattern_utils.h"

namespace kiln {

namespace {

// A run of the source's elements: its place in the source's order (a path:
// the source axis, then which part of each split) and its extent.
struct Atom {
  std::vector<int64_t> path;
  Dim size;
};
using Axis = std::vector<Atom>;

// The first `count` elements of `atom` as one atom and the rest as another.
std::optional<std::pair<Atom, Atom>> splitAtom(const Atom& atom, int64_t count) {
  const std::optional<int64_t> size = atom.size.constant();
  if (!size || count <= 0 || *size % count != 0) return std::nullopt;
  Atom outer{atom.path, Dim(count)}, inner{atom.path, Dim(*size / count)};
  outer.path.push_back(0);
  inner.path.push_back(1);
  return std::make_pair(outer, inner);
}

// The atoms of `axes`, in row-major order, regrouped into `shape`.
std::optional<std::vector<Axis>> reshaped(const std::vector<Axis>& axes, const Shape& shape) {
  std::deque<Atom> atoms;
  for (const Axis& axis : axes)
    for (const Atom& atom : axis)
      if (atom.size.constant() != 1) atoms.push_back(atom);
  std::vector<Axis> result;
  for (const Dim& dim : shape) {
    Axis axis;
    Dim taken(1);
    while (!(taken == dim)) {
      if (atoms.empty()) return std::nullopt;
      const Atom next = atoms.front();
      atoms.pop_front();
      if (ops::divideExactly(dim, taken * next.size)) {
        axis.push_back(next);
        taken = taken * next.size;
        continue;
      }
      // Only the part of a number atom that completes the dim fits.
      std::optional<Dim> wanted = ops::divideExactly(dim, taken);
      std::optional<std::pair<Atom, Atom>> parts =
          wanted && wanted->constant() ? splitAtom(next, *wanted->constant()) : std::nullopt;
      if (!parts) return std::nullopt;
      axis.push_back(parts->first);
      atoms.push_front(parts->second);
      taken = dim;
    }
    result.push_back(std::move(axis));
  }
  if (!atoms.empty()) return std::nullopt;
  return result;
}

}  // namespace

bool keepsElementOrder(const Graph& graph, ValueId source, const std::vector<const Op*>& steps) {
  const Shape& shape = graph.value(source).type.shape;
  std::vector<Axis> axes;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d].isUnknown()) return false;
    axes.push_back({Atom{{static_cast<int64_t>(d)}, shape[d]}});
  }
  for (const Op* step : steps) {
    if (step->is(OpKind::Transpose)) {
      const std::vector<int64_t> perm = transposePermutation(graph, *step);
      if (perm.size() != axes.size()) return false;
      std::vector<Axis> permuted;
      for (int64_t p : perm) permuted.push_back(axes[static_cast<size_t>(p)]);
      axes = std::move(permuted);
      continue;
    }
    const Shape& target = graph.value(step->results[0]).type.shape;
    std::optional<std::vector<Axis>> regrouped = step->is(OpKind::Reshape) ? reshaped(axes, target) : std::nullopt;
    if (!regrouped) return false;
    axes = std::move(*regrouped);
  }
  std::vector<std::vector<int64_t>> order;
  for (const Axis& axis : axes)
    for (const Atom& atom : axis)
      if (atom.size.constant() != 1) order.push_back(atom.path);
  return std::is_sorted(order.begin(), order.end()) &&
         std::adjacent_find(order.begin(), order.end()) == order.end();
}

}  // namespace kiln
