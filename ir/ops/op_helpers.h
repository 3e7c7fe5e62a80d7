// Helpers shared by the op families' type inference in ir/ops/: operand
// checks, axis normalisation and reading shape-like operand values. The
// kernels' helpers are in backends/reference/kernel_helpers.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "ir/dtype.h"
#include "ir/op_registry.h"
#include "ir/status.h"
#include "ir/type.h"

namespace kiln::ops {

// ---- Operand checks for inference (errors go through ctx.error, so they
// ---- name the op and list the operand types).

// Operand `i` (named `what` in the message) must have dtype `dtype`.
Status requireDType(const InferContext& ctx, size_t i, DType dtype, std::string_view what);
// Operand `i` must be a float tensor (f32, f16, bf16, f64).
Status requireFloat(const InferContext& ctx, size_t i, std::string_view what);
// Operand `i` must be a number (float or integer, not bool).
Status requireNumeric(const InferContext& ctx, size_t i, std::string_view what);
// Operands `a` and `b` must share a dtype.
Status requireSameDType(const InferContext& ctx, size_t a, size_t b);
// Operand `i` must have rank `rank`.
Status requireRank(const InferContext& ctx, size_t i, size_t rank, std::string_view what);
// Operand `i` must be a scalar or a 1-element 1-D tensor (ONNX accepts both
// for scalar-like inputs such as cumsum's axis or range's start).
Status requireScalarLike(const InferContext& ctx, size_t i, std::string_view what);

// Two dims that must agree: only two different constants are certainly
// wrong; anything else is checked again on concrete shapes.
bool mayBeEqual(const Dim& a, const Dim& b);
// Operand `i` broadcasts one way to `target` (never growing it): rank at most
// the target's, each dim 1 or (possibly) equal to the target's. The error
// reads "<what> [3] does not broadcast to <targetName> [2, 4]".
Status requireBroadcastsTo(const InferContext& ctx, size_t i, const Shape& target,
                           std::string_view what, std::string_view targetName);

// The mask of attention and latent_attention, operand `i`: [B, P + S] bool or
// integer with mask_layout = "key_padding" (required then), else optional,
// bool or float, broadcasting to the scores [B, heads, S, P + S].
Status requireAttentionMask(const InferContext& ctx, size_t i, bool keyPaddingMask, int64_t heads,
                            const Dim& batch, const Dim& seq, const Dim& keys);

// Numpy broadcast of the shapes of every present operand; the error lists
// the shapes that do not broadcast.
Expected<Shape> broadcastAllOperands(const InferContext& ctx);

// ---- Axes.

// Maps `axis` in [-rank, rank) to [0, rank); `what` names it in the error
// ("axis", "perm[2]").
Expected<int64_t> normalizeAxis(const InferContext& ctx, int64_t axis, size_t rank,
                                std::string_view what = "axis");
// Normalises each axis and rejects repeats.
Expected<std::vector<int64_t>> normalizeAxes(const InferContext& ctx,
                                             const std::vector<int64_t>& axes, size_t rank,
                                             std::string_view what = "axes");

// ---- Values of shape-like operands.

// The elements of operand `i` as int64 when it is present and its value is
// known (a weight at compile time; always at run time); nullopt otherwise.
std::optional<std::vector<int64_t>> knownInts(const InferContext& ctx, size_t i);
// The element count of a 1-D (or scalar) operand when its shape is static.
std::optional<int64_t> staticLength(const InferContext& ctx, size_t i);
// A shape of `rank` unknown dims.
Shape unknownShape(size_t rank);
// Dims from concrete values.
Shape toShape(const std::vector<int64_t>& dims);

}  // namespace kiln::ops
