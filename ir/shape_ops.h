// What the shape ops' kernels share with their type inference
// (ir/ops/shape_ops.cpp): slice's parameters and the bounds of one sliced
// axis, and the window of dims that shape returns. The kernels call these on
// concrete shapes, so every device slices exactly as inference does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "ir/attributes.h"
#include "ir/dim.h"
#include "ir/op_registry.h"
#include "ir/status.h"

namespace kiln {

struct SliceRange {
  Dim start;  // the first element taken, after clamping
  Dim count;  // how many elements are taken
};

// One axis of ONNX Slice: negative bounds count from the end; starts clamp to
// [0, dim] ([0, dim - 1] when stepping backwards), ends to [0, dim]
// ([-1, dim - 1]).
SliceRange sliceAxis(const Dim& dim, int64_t start, int64_t end, int64_t step);

// The per-axis slice parameters after defaults: axes normalised, steps 1.
// Bounds are dims: numbers from operands, maybe symbols from attributes.
struct SliceParams {
  std::vector<Dim> starts, ends;
  std::vector<int64_t> axes, steps;
};

// The parameters when all are known; nullopt when some value is not known
// yet (only at compile time: a kernel knows them all); an error when they
// are inconsistent.
Expected<std::optional<SliceParams>> sliceParams(const InferContext& ctx);

// ONNX Shape's [start, end) over the dims, clamped to [0, rank].
std::pair<size_t, size_t> shapeWindow(const Attributes& attrs, size_t rank);

}  // namespace kiln
