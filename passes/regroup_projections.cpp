#include "passes/regroup_projections.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <optional>
#include <set>
#include <vector>

#include "passes/pattern_utils.h"

namespace kiln {

namespace {

// x W (+ b): W [K, N] and b [N] weights, the product's only use the bias add
// when there is one.
struct Projection {
  int32_t matmul = -1, biasAdd = -1;
  ValueId weight = kNoValue, bias = kNoValue;
};

std::optional<Projection> projectionOf(const Rewriter& rewriter, ValueId value) {
  const Graph& graph = rewriter.graph();
  Projection p;
  int32_t index = rewriter.producerIndex(value);
  if (index >= 0 && rewriter.op(index).is(OpKind::Add)) {
    const Op& add = rewriter.op(index);
    for (size_t side : {size_t{0}, size_t{1}}) {
      const int32_t product = rewriter.producerIndex(add.operands[side]);
      if (product < 0 || !rewriter.op(product).is(OpKind::Matmul) || rewriter.soleUser(add.operands[side]) != index)
        continue;
      p.biasAdd = index;
      p.bias = add.operands[1 - side];
      index = product;
      break;
    }
    if (p.biasAdd < 0) return std::nullopt;
  }
  if (index < 0 || rewriter.isMarked(index)) return std::nullopt;
  const Op& matmul = rewriter.op(index);
  if (!matmul.is(OpKind::Matmul) || matmul.attrs.getBool("transpose_a") || matmul.attrs.getBool("transpose_b") ||
      matmul.attrs.getString("activation", "none") != "none" || matmul.operands.size() > 3)
    return std::nullopt;
  if (matmul.operands.size() == 3 && matmul.operands[2] != kNoValue) {
    if (p.bias != kNoValue) return std::nullopt;
    p.bias = matmul.operands[2];
  }
  p.matmul = index;
  p.weight = matmul.operands[1];
  const TensorType& weight = graph.value(p.weight).type;
  if (!isWeight(graph, p.weight) || weight.rank() != 2) return std::nullopt;
  if (p.bias != kNoValue) {
    const TensorType& bias = graph.value(p.bias).type;
    if (!isWeight(graph, p.bias) || bias.rank() != 1 || bias.shape[0] != weight.shape[1] || bias.dtype != weight.dtype)
      return std::nullopt;
  }
  return p;
}

// The head view [lead.., H, c0, c1..] of a projection's [lead.., N] output.
struct HeadView {
  size_t headAxis = 0;
  int64_t heads = 0, chunk = 0, inner = 0;  // chunk = c0 * c1 * ..., inner = c1 * ...
};

std::optional<HeadView> headViewOf(const Shape& projected, const Shape& viewed) {
  if (projected.empty() || viewed.size() < projected.size() + 1) return std::nullopt;
  HeadView v;
  v.headAxis = projected.size() - 1;
  for (size_t d = 0; d < v.headAxis; ++d)
    if (viewed[d] != projected[d]) return std::nullopt;
  std::optional<int64_t> width = projected.back().constant(), heads = viewed[v.headAxis].constant();
  if (!width || !heads) return std::nullopt;
  v.heads = *heads;
  v.chunk = v.inner = 1;
  for (size_t d = v.headAxis + 1; d < viewed.size(); ++d) {
    std::optional<int64_t> dim = viewed[d].constant();
    if (!dim) return std::nullopt;
    v.chunk *= *dim;
    if (d > v.headAxis + 1) v.inner *= *dim;
  }
  if (v.heads * v.chunk != *width) return std::nullopt;
  return v;
}

// One index of one axis taken by a constant gather, as the slice it is.
std::optional<AxisSlice> gatherOfOneIndex(const Graph& graph, const Op& gather, int64_t axisSize) {
  if (gather.operands.size() != 2 || !isWeight(graph, gather.operands[1])) return std::nullopt;
  const auto rank = static_cast<int64_t>(graph.value(gather.operands[0]).type.rank());
  int64_t axis = gather.attrs.getInt("axis");
  if (axis < 0) axis += rank;
  const Tensor& index = *graph.value(gather.operands[1]).data;
  if (index.numElements() != 1 || index.rank() > 1) return std::nullopt;
  int64_t at = index.elementAsInt(0);
  if (at < 0) at += axisSize;
  if (at < 0 || at >= axisSize) return std::nullopt;
  return AxisSlice{axis, at, at + 1, 1};
}

// The projection's columns a reader of the head view takes, in the order of
// its result's elements: a slice of heads or of the first chunk axis in
// every head, or one head or one chunk by a constant gather (BLOOM's
// [.., heads, 3, D] read as q, k and v).
std::optional<std::vector<int64_t>> readerColumns(const Graph& graph, const Op& reader, const HeadView& v) {
  const auto headAxis = static_cast<int64_t>(v.headAxis);
  std::optional<AxisSlice> cut;
  if (reader.is(OpKind::Slice)) {
    cut = sliceOfOneAxis(graph, reader);
  } else if (reader.is(OpKind::Gather)) {
    const int64_t axis = reader.attrs.getInt("axis");
    const auto rank = static_cast<int64_t>(graph.value(reader.operands[0]).type.rank());
    const bool chunkAxis = (axis < 0 ? axis + rank : axis) == headAxis + 1;
    cut = gatherOfOneIndex(graph, reader, chunkAxis ? v.chunk / v.inner : v.heads);
  }
  if (!cut) return std::nullopt;
  std::vector<int64_t> columns;
  if (cut->axis == headAxis) {
    for (int64_t h = cut->start; h < cut->end; h += cut->step)
      for (int64_t c = 0; c < v.chunk; ++c) columns.push_back(h * v.chunk + c);
  } else if (cut->axis == headAxis + 1) {
    for (int64_t h = 0; h < v.heads; ++h)
      for (int64_t j = cut->start; j < cut->end; j += cut->step)
        for (int64_t e = 0; e < v.inner; ++e) columns.push_back(h * v.chunk + j * v.inner + e);
  } else {
    return std::nullopt;
  }
  return columns;
}

// `data` [.., N] with its last axis reordered: column n of the result is
// column order[n] of `data`.
Tensor permutedColumns(const Tensor& data, const std::vector<int64_t>& order) {
  Tensor out = Tensor::allocateUninitialized(data.dtype(), data.shape());
  const size_t unit = dtypeSize(data.dtype());
  const auto width = static_cast<int64_t>(order.size());
  const int64_t rows = data.numElements() / width;
  const char* from = static_cast<const char*>(data.data());
  char* to = static_cast<char*>(out.data());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t n = 0; n < width; ++n)
      std::memcpy(to + static_cast<size_t>(r * width + n) * unit,
                  from + static_cast<size_t>(r * width + order[static_cast<size_t>(n)]) * unit, unit);
  return out;
}

class RegroupProjections final : public Pass {
 public:
  std::string_view name() const override { return "regroup_projections"; }
  std::string_view summary() const override {
    return "per-head packed q|k|v projections get their weight columns grouped by reader, then one split";
  }

  Expected<bool> run(Graph& graph) override {
    Rewriter rewriter(graph);
    int64_t regrouped = 0, readers = 0;
    for (size_t i = 0; i < rewriter.originalOpCount(); ++i) {
      Expected<int64_t> count = regroup(rewriter, static_cast<int32_t>(i));
      if (!count) return count.status();
      regrouped += *count > 0 ? 1 : 0;
      readers += *count;
    }
    statistics_.add("projections-regrouped", regrouped);
    statistics_.add("readers-split", readers);
    KILN_RETURN_IF_ERROR(rewriter.commit());
    return rewriter.changed();
  }

 private:
  // The readers of the head view made at `viewIndex`, with their columns,
  // ordered by their first column; nothing unless together they take every
  // column exactly once.
  struct Reader {
    int32_t index = -1;
    std::vector<int64_t> columns;
  };
  static std::optional<std::vector<Reader>> readersOf(const Rewriter& rewriter, ValueId viewed, const HeadView& v) {
    if (rewriter.isGraphOutput(viewed)) return std::nullopt;
    std::vector<Reader> readers;
    std::set<int32_t> seen;
    std::vector<bool> taken(static_cast<size_t>(v.heads * v.chunk), false);
    for (int32_t user : rewriter.users(viewed)) {
      const Op& reader = rewriter.op(user);
      if (!seen.insert(user).second || rewriter.isMarked(user) || reader.operands[0] != viewed) return std::nullopt;
      for (size_t slot = 1; slot < reader.operands.size(); ++slot)
        if (reader.operands[slot] == viewed) return std::nullopt;
      std::optional<std::vector<int64_t>> columns = readerColumns(rewriter.graph(), reader, v);
      if (!columns || columns->empty()) return std::nullopt;
      for (int64_t c : *columns) {
        if (taken[static_cast<size_t>(c)]) return std::nullopt;
        taken[static_cast<size_t>(c)] = true;
      }
      readers.push_back({user, std::move(*columns)});
    }
    if (readers.size() < 2 || std::find(taken.begin(), taken.end(), false) != taken.end()) return std::nullopt;
    std::sort(readers.begin(), readers.end(),
              [](const Reader& a, const Reader& b) { return a.columns.front() < b.columns.front(); });
    return readers;
  }

  // Regroups the projection the head view at `index` reads; the readers split, or 0.
  // The op at `index`: a head view (a reshape) of a projection, or a
  // projection read directly by slices of its last axis (torch.nn's q, k, v
  // of its packed in-projection), a view of one column per "head".
  static Expected<int64_t> regroup(Rewriter& rewriter, int32_t index) {
    const Op op = rewriter.op(index);
    if (rewriter.isMarked(index) || op.results.size() != 1) return 0;
    const Graph& graph = rewriter.graph();
    if (op.is(OpKind::Reshape)) {
      if (rewriter.soleUser(op.operands[0]) != index) return 0;
      std::optional<Projection> projection = projectionOf(rewriter, op.operands[0]);
      std::optional<HeadView> v =
          headViewOf(graph.value(op.operands[0]).type.shape, graph.value(op.results[0]).type.shape);
      if (!projection || !v) return 0;
      return regroupReaders(rewriter, index, op.results[0], *v, *projection);
    }
    std::optional<Projection> projection = projectionOf(rewriter, op.results[0]);
    const Shape& rows = graph.value(op.results[0]).type.shape;
    std::optional<int64_t> width = rows.empty() ? std::nullopt : rows.back().constant();
    if (!projection || !width) return 0;
    const HeadView columns{rows.size() - 1, *width, 1, 1};
    return regroupReaders(rewriter, index, op.results[0], columns, *projection);
  }

  // The readers of `viewed` (the projection's rows seen as `v`), if they take
  // every column once, made parts of one split of the regrouped projection;
  // the readers split, or 0.
  static Expected<int64_t> regroupReaders(Rewriter& rewriter, int32_t index, ValueId viewed, const HeadView& v,
                                          const Projection& projection) {
    Graph& graph = rewriter.graph();
    const std::string location = rewriter.op(index).location;
    std::optional<std::vector<Reader>> readers = readersOf(rewriter, viewed, v);
    if (!readers) return 0;

    std::vector<int64_t> order;
    for (const Reader& reader : *readers) order.insert(order.end(), reader.columns.begin(), reader.columns.end());
    const Op matmul = rewriter.op(projection.matmul);
    // Weights already grouped (Falcon's) stay as they are.
    std::vector<int64_t> identity(order.size());
    std::iota(identity.begin(), identity.end(), int64_t{0});
    auto regrouped = [&](ValueId weight) {
      if (weight == kNoValue || order == identity) return weight;
      return rewriter.addWeight(graph.value(weight).name + ".regrouped", permutedColumns(*graph.value(weight).data, order));
    };
    std::vector<ValueId> operands = {matmul.operands[0], regrouped(projection.weight)};
    const ValueId bias = regrouped(projection.bias);
    if (projection.biasAdd < 0 && bias != kNoValue) operands.push_back(bias);
    Expected<ValueId> rows = rewriter.create1(index, OpKind::Matmul, operands, matmul.attrs, matmul.location);
    if (rows && projection.biasAdd >= 0)
      rows = rewriter.create1(index, OpKind::Add, {*rows, bias}, {}, rewriter.op(projection.biasAdd).location);
    if (!rows) return rows.status();

    Tensor sizes = Tensor::allocate(DType::I64, {static_cast<int64_t>(readers->size())});
    for (size_t r = 0; r < readers->size(); ++r)
      sizes.data<int64_t>()[r] = static_cast<int64_t>((*readers)[r].columns.size());
    Attributes splitAttrs;
    splitAttrs.set("axis", int64_t{-1});
    Expected<std::vector<ValueId>> parts =
        rewriter.create(index, OpKind::Split, {*rows, rewriter.addWeight("split_sizes", std::move(sizes))}, splitAttrs,
                        static_cast<int>(readers->size()), location);
    if (!parts) return parts.status();
    for (size_t r = 0; r < readers->size(); ++r) {
      // A copy: creating ops moves the graph's op list.
      const Op reader = rewriter.op((*readers)[r].index);
      Attributes shape;
      shape.set("shape", graph.value(reader.results[0]).type.shape);
      Expected<ValueId> part = rewriter.create1(index, OpKind::Reshape, {(*parts)[r]}, shape, reader.location);
      if (!part) return part.status();
      KILN_RETURN_IF_ERROR(rewriter.replace(reader.results[0], *part));
      rewriter.mark((*readers)[r].index);
    }
    rewriter.mark(std::vector<int32_t>{index, projection.matmul});  // index: the view, or the projection's op
    if (projection.biasAdd >= 0) rewriter.mark(projection.biasAdd);
    return static_cast<int64_t>(readers->size());
  }
};

}  // namespace

std::unique_ptr<Pass> createRegroupProjections() { return std::make_unique<RegroupProjections>(); }

}  // namespace kiln
