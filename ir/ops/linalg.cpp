// Linear algebra (ONNX semantics): matmul with numpy rules (1-D operands,
// broadcast batch dims), extended with the epilogue the fusion passes fold in
// (transposed operands, bias, activation, residual), and gemm (optional
// transposes, alpha, beta, a bias broadcast to the result). Both also take
// the mixed form that `precision_bf16` produces: an f32 a times a bf16 b
// (the weight), a rounded to bf16 first, an f32 result. matmul_int8 is the
// form `precision_int8_weights` produces: an int8 weight with f32 scales.
// Their reference kernels: backends/reference/linalg.cpp.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "ir/activation.h"
#include "ir/op_registry.h"
#include "ir/ops/op_helpers.h"

namespace kiln {
namespace {

using namespace ops;

// ---- matmul (a, b, bias?, residual?) {transpose_a, transpose_b, activation}
// y = act(op(a) @ op(b) + bias) + residual: the product with its fused epilogue.

// a and b of one dtype, or the mixed form: an f32 a with a bf16 b (a weight
// that precision_bf16 converted). The result, bias and residual (c for gemm)
// have a's dtype.
Status requireProductDTypes(const InferContext& ctx) {
  const DType a = ctx.type(0).dtype, b = ctx.type(1).dtype;
  if (a == b || (a == DType::F32 && b == DType::BF16)) return Status::ok();
  return ctx.error("a (", dtypeName(a), ") and b (", dtypeName(b),
                   ") must have the same dtype, or be f32 and bf16 (a bf16 weight)");
}

Status inferMatmul(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireNumeric(ctx, 0, "a"));
  KILN_RETURN_IF_ERROR(requireProductDTypes(ctx));
  const bool transA = ctx.attrs().getBool("transpose_a");
  const bool transB = ctx.attrs().getBool("transpose_b");
  const std::string activationName = ctx.attrs().getString("activation", "none");
  const std::optional<Activation> activation = parseActivation(activationName);
  if (!activation)
    return ctx.error("unknown activation \"", activationName,
                     "\" (expected none, relu, gelu, gelu_tanh, silu or tanh)");
  if (*activation != Activation::None && *activation != Activation::Relu &&
      !isFloat(ctx.type(0).dtype))
    return ctx.error("activation \"", activationName, "\" needs float operands");
  const Shape& a = ctx.type(0).shape;
  const Shape& b = ctx.type(1).shape;
  if (a.empty() || b.empty()) return ctx.error("operands must have rank >= 1");
  if (transA && a.size() < 2) return ctx.error("transpose_a needs a of rank >= 2");
  if (transB && b.size() < 2) return ctx.error("transpose_b needs b of rank >= 2");
  // A 1-D a is a row [1, K] and a 1-D b a column [K, 1]; the added dim is
  // dropped from the result.
  const size_t ra = a.size(), rb = b.size();
  const Dim& kA = transA ? a[ra - 2] : a.back();
  const Dim& kB = rb == 1 ? b[0] : transB ? b.back() : b[rb - 2];
  if (!mayBeEqual(kA, kB))
    return ctx.error("contraction dims differ: ", kA.str(),
                     transA ? " (second-to-last dim of a, transposed)" : " (last dim of a)", " vs ",
                     kB.str(),
                     rb == 1   ? " (b)"
                     : transB  ? " (last dim of b, transposed)"
                               : " (second-to-last dim of b)");
  const Shape batchA(a.begin(), a.end() - std::min<ptrdiff_t>(2, static_cast<ptrdiff_t>(ra)));
  const Shape batchB(b.begin(), b.end() - std::min<ptrdiff_t>(2, static_cast<ptrdiff_t>(rb)));
  std::optional<Shape> batch = broadcastShapes(batchA, batchB);
  if (!batch)
    return ctx.error("batch dims ", shapeStr(batchA), " and ", shapeStr(batchB), " do not broadcast");
  Shape out = *batch;
  if (ra >= 2) out.push_back(transA ? a.back() : a[ra - 2]);
  if (rb >= 2) out.push_back(transB ? b[rb - 2] : b.back());
  if (ctx.has(2)) {
    KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, 2));
    KILN_RETURN_IF_ERROR(requireBroadcastsTo(ctx, 2, out, "bias", "the result"));
  }
  if (ctx.has(3)) {
    KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, 3));
    KILN_RETURN_IF_ERROR(requireBroadcastsTo(ctx, 3, out, "residual", "the result"));
  }
  results.push_back({ctx.type(0).dtype, out});
  return Status::ok();
}

// ---- matmul_int8 (a, b, scale, bias?, residual?) {group, activation}
// y = act(a @ (b * scale) + bias) + residual: an f32 a times an int8 weight b
// [K, N] whose rows k share scale[k / group] per column (precision_int8_weights).

Status inferMatmulInt8(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireDType(ctx, 0, DType::F32, "a"));
  KILN_RETURN_IF_ERROR(requireDType(ctx, 1, DType::I8, "b"));
  KILN_RETURN_IF_ERROR(requireDType(ctx, 2, DType::F32, "scale"));
  KILN_RETURN_IF_ERROR(requireRank(ctx, 1, 2, "b"));
  KILN_RETURN_IF_ERROR(requireRank(ctx, 2, 2, "scale"));
  const int64_t group = ctx.attrs().getInt("group", 0);
  if (group < 1) return ctx.error("group must be at least 1 (rows of b per scale), got ", group);
  const std::string activationName = ctx.attrs().getString("activation", "none");
  if (!parseActivation(activationName))
    return ctx.error("unknown activation \"", activationName,
                     "\" (expected none, relu, gelu, gelu_tanh, silu or tanh)");
  const Shape& a = ctx.type(0).shape;
  const Shape& b = ctx.type(1).shape;
  const Shape& scale = ctx.type(2).shape;
  if (a.empty()) return ctx.error("a must have rank >= 1");
  if (!mayBeEqual(a.back(), b[0]))
    return ctx.error("contraction dims differ: ", a.back().str(), " (last dim of a) vs ", b[0].str(), " (rows of b)");
  if (!mayBeEqual(scale[1], b[1]))
    return ctx.error("scale has ", scale[1].str(), " columns but b has ", b[1].str());
  const std::optional<int64_t> k = b[0].constant(), groups = scale[0].constant();
  if (k && groups && *groups != (*k + group - 1) / group)
    return ctx.error("scale has ", *groups, " rows but b's ", *k, " rows in groups of ", group, " need ",
                     (*k + group - 1) / group);
  Shape out = a;
  out.back() = b[1];
  if (ctx.has(3)) {
    KILN_RETURN_IF_ERROR(requireDType(ctx, 3, DType::F32, "bias"));
    KILN_RETURN_IF_ERROR(requireBroadcastsTo(ctx, 3, out, "bias", "the result"));
  }
  if (ctx.has(4)) {
    KILN_RETURN_IF_ERROR(requireDType(ctx, 4, DType::F32, "residual"));
    KILN_RETURN_IF_ERROR(requireBroadcastsTo(ctx, 4, out, "residual", "the result"));
  }
  results.push_back({DType::F32, out});
  return Status::ok();
}

// ---- gemm

Status inferGemm(const InferContext& ctx, std::vector<TensorType>& results) {
  KILN_RETURN_IF_ERROR(requireNumeric(ctx, 0, "a"));
  KILN_RETURN_IF_ERROR(requireProductDTypes(ctx));
  KILN_RETURN_IF_ERROR(requireRank(ctx, 0, 2, "a"));
  KILN_RETURN_IF_ERROR(requireRank(ctx, 1, 2, "b"));
  const bool transA = ctx.attrs().getBool("trans_a");
  const bool transB = ctx.attrs().getBool("trans_b");
  const Shape& a = ctx.type(0).shape;
  const Shape& b = ctx.type(1).shape;
  const Dim& m = transA ? a[1] : a[0];
  const Dim& kA = transA ? a[0] : a[1];
  const Dim& kB = transB ? b[1] : b[0];
  const Dim& n = transB ? b[0] : b[1];
  if (!mayBeEqual(kA, kB))
    return ctx.error("contraction dims differ: ", kA.str(), " (a", transA ? "^T" : "", ") vs ",
                     kB.str(), " (b", transB ? "^T" : "", ")");
  const Shape out = {m, n};
  if (ctx.has(2)) {
    KILN_RETURN_IF_ERROR(requireSameDType(ctx, 0, 2));
    // c broadcasts one way, to [M, N]: each of its dims is 1 or the result's.
    const Shape& c = ctx.type(2).shape;
    bool fits = c.size() <= 2;
    for (size_t i = 0; fits && i < c.size(); ++i) {
      const Dim& target = out[out.size() - c.size() + i];
      fits = c[i] == Dim(1) || mayBeEqual(c[i], target);
    }
    if (!fits) return ctx.error("c ", shapeStr(c), " does not broadcast to the result ", shapeStr(out));
  }
  results.push_back({ctx.type(0).dtype, out});
  return Status::ok();
}

// 2*M*N*K per matrix product, plus the epilogue on each result element.
double matmulFlops(const CostContext& ctx) {
  const double n = ctx.resultElements();
  double total = 2 * n * ctx.dim(0, ctx.attrs().getBool("transpose_a") ? -2 : -1);
  if (ctx.present(2)) total += n;  // bias
  if (ctx.present(3)) total += n;  // residual
  const Activation activation = parseActivation(ctx.attrs().getString("activation", "none")).value_or(Activation::None);
  if (activation == Activation::Relu) total += n;
  else if (activation != Activation::None) total += kTranscendental(ctx);
  return total;
}

// As matmul's, plus the scaling of each weight element.
double matmulInt8Flops(const CostContext& ctx) {
  const double n = ctx.resultElements();
  const double k = ctx.dim(0, -1);
  double total = 2 * n * k + k * ctx.dim(1, -1);
  if (ctx.present(3)) total += n;
  if (ctx.present(4)) total += n;
  const Activation activation = parseActivation(ctx.attrs().getString("activation", "none")).value_or(Activation::None);
  if (activation == Activation::Relu) total += n;
  else if (activation != Activation::None) total += kTranscendental(ctx);
  return total;
}

double gemmFlops(const CostContext& ctx) {
  const double n = ctx.resultElements();
  return 2 * n * ctx.dim(0, ctx.attrs().getInt("trans_a") ? -2 : -1) + 2 * n;
}

}  // namespace

void registerLinalgOps(OpRegistry& registry) {
  registry.add(OpDef{.kind = OpKind::Matmul,
                     .summary = "act(op(a) @ op(b) + bias) + residual with numpy rules (1-D operands, "
                                "broadcast batch dims); op transposes the last two dims when flagged; "
                                "b may be bf16 with an f32 a (a rounded to bf16, f32 result)",
                     .operands = {"a", "b", "bias", "residual"}, .minOperands = 2, .maxOperands = 4,
                     .attrs = {{"activation", AttrKind::String},
                               {"transpose_a", AttrKind::Bool},
                               {"transpose_b", AttrKind::Bool}},
                     .infer = inferMatmul, .inplaceOperands = {3},
                     .flops = matmulFlops});
  registry.add(OpDef{.kind = OpKind::MatmulInt8,
                     .summary = "act(a @ (b * scale) + bias) + residual: f32 a [..., K], int8 weight b [K, N], "
                                "f32 scale [ceil(K / group), N] shared by each group of rows of b",
                     .operands = {"a", "b", "scale", "bias", "residual"}, .minOperands = 3, .maxOperands = 5,
                     .attrs = {{"activation", AttrKind::String}, {"group", AttrKind::Int}},
                     .infer = inferMatmulInt8, .inplaceOperands = {4},
                     .flops = matmulInt8Flops});
  registry.add(OpDef{.kind = OpKind::Gemm,
                     .summary = "alpha * a' * b' + beta * c for 2-D a, b (optionally transposed); c broadcasts; "
                                "b may be bf16 with an f32 a, as for matmul",
                     .operands = {"a", "b", "c"}, .minOperands = 2, .maxOperands = 3,
                     .attrs = {{"alpha", AttrKind::Float},
                               {"beta", AttrKind::Float},
                               {"trans_a", AttrKind::Bool},
                               {"trans_b", AttrKind::Bool}},
                     .infer = inferGemm, .flops = gemmFlops});
}

}  // namespace kiln
