// The element-wise ops on the OpenCL device: each runs its body
// (backends/kernel_gen/elementwise_bodies.h) in the generated map kernel
// (map_kernel.h). f32 throughout; the integer and bool forms where the
// reference models use them.
#include <algorithm>
#include <string>
#include <vector>

#include "backends/kernel_gen/elementwise_bodies.h"
#include "backends/opencl/map_kernel.h"
#include "backends/opencl/op_kernels.h"
#include "backends/reference/kernel_helpers.h"
#include "ir/elementwise_program.h"

namespace kiln::opencl {
namespace {

using kernelgen::binaryBody, kernelgen::castBody, kernelgen::clipBody, kernelgen::geluBody, kernelgen::kSiluBody,
    kernelgen::kSwigluBody, kernelgen::programBody, kernelgen::unaryBody, kernelgen::variadicBody,
    kernelgen::whereFunction;

// Runs `body` over the output's shape with every operand broadcast to it.
Status mapBroadcast(ClContext& cl, const KernelContext& ctx, const std::string& body,
                    const std::vector<const Tensor*>& operands) {
  const Tensor& out = *ctx.outputs[0];
  MapFunction fn{scalarType(out.dtype()), {}, body};
  std::vector<StridedTensor> walked;
  if (fn.resultType.empty()) return unsupportedDType(ctx, out.dtype());
  for (const Tensor* operand : operands) {
    if (scalarType(operand->dtype()).empty()) return unsupportedDType(ctx, operand->dtype());
    fn.operandTypes.push_back(scalarType(operand->dtype()));
    walked.push_back(broadcastTo(*operand, out.shape()));
  }
  return runMap(cl, ctx.def.name, fn, out.shape(), wholeTensor(out), walked);
}

Status unaryKernel(ClContext& cl, const KernelContext& ctx) {
  const std::string body = unaryBody(ctx.def.kind, ctx.input(0)->dtype());
  if (body.empty()) return unsupportedDType(ctx, ctx.input(0)->dtype());
  return mapBroadcast(cl, ctx, body, {ctx.input(0)});
}

Status binaryKernel(ClContext& cl, const KernelContext& ctx) {
  const std::string body = binaryBody(ctx.def.kind, ctx.input(0)->dtype());
  if (body.empty()) return unsupportedDType(ctx, ctx.input(0)->dtype());
  return mapBroadcast(cl, ctx, body, {ctx.input(0), ctx.input(1)});
}

Status powKernel(ClContext& cl, const KernelContext& ctx) {
  for (size_t i = 0; i < 2; ++i)
    if (ctx.input(i)->dtype() != DType::F32) return unsupportedDType(ctx, ctx.input(i)->dtype());
  return mapBroadcast(cl, ctx, "r = pow(a0, a1);", {ctx.input(0), ctx.input(1)});
}

// min / max over any number of operands: the first pair into the result,
// then the result with each further operand, in place.
Status variadicKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& out = *ctx.outputs[0];
  const std::string body = variadicBody(ctx.def.kind, out.dtype());
  if (body.empty()) return unsupportedDType(ctx, out.dtype());
  if (ctx.inputs.size() == 1) return mapBroadcast(cl, ctx, "r = a0;", {ctx.input(0)});
  KILN_RETURN_IF_ERROR(mapBroadcast(cl, ctx, body, {ctx.input(0), ctx.input(1)}));
  for (size_t k = 2; k < ctx.inputs.size(); ++k)
    KILN_RETURN_IF_ERROR(mapBroadcast(cl, ctx, body, {&out, ctx.input(k)}));
  return Status::ok();
}

Status whereKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& out = *ctx.outputs[0];
  const MapFunction fn = whereFunction(out.dtype());
  const std::vector<StridedTensor> walked = {broadcastTo(*ctx.input(0), out.shape()),
                                             broadcastTo(*ctx.input(1), out.shape()),
                                             broadcastTo(*ctx.input(2), out.shape())};
  return runMap(cl, ctx.def.name, fn, out.shape(), wholeTensor(out), walked);
}

Status castKernel(ClContext& cl, const KernelContext& ctx) {
  const DType from = ctx.input(0)->dtype(), to = ctx.outputs[0]->dtype();
  if (scalarType(from).empty()) return unsupportedDType(ctx, from);
  if (scalarType(to).empty()) return unsupportedDType(ctx, to);
  return mapBroadcast(cl, ctx, castBody(from, to), {ctx.input(0)});
}

// clip(x, min?, max?): the bounds are scalars, broadcast.
Status clipKernel(ClContext& cl, const KernelContext& ctx) {
  if (ctx.input(0)->dtype() != DType::F32) return unsupportedDType(ctx, ctx.input(0)->dtype());
  std::vector<const Tensor*> operands = {ctx.input(0)};
  for (size_t bound : {1, 2})
    if (ctx.input(bound)) operands.push_back(ctx.input(bound));
  return mapBroadcast(cl, ctx, clipBody(ctx.input(1) != nullptr, ctx.input(2) != nullptr), operands);
}

Status geluKernel(ClContext& cl, const KernelContext& ctx) {
  if (ctx.input(0)->dtype() != DType::F32) return unsupportedDType(ctx, ctx.input(0)->dtype());
  return mapBroadcast(cl, ctx, geluBody(ctx.attrs), {ctx.input(0)});
}

Status siluKernel(ClContext& cl, const KernelContext& ctx) {
  if (ctx.input(0)->dtype() != DType::F32) return unsupportedDType(ctx, ctx.input(0)->dtype());
  return mapBroadcast(cl, ctx, kSiluBody, {ctx.input(0)});
}

// swiglu(gate, up) broadcasting, or swiglu(x) on rows packed as gate | up:
// then gate and up are two strided walks of x, the second half a row on.
Status swigluKernel(ClContext& cl, const KernelContext& ctx) {
  const Tensor& gate = *ctx.input(0);
  if (gate.dtype() != DType::F32) return unsupportedDType(ctx, gate.dtype());
  const char* body = kSwigluBody;
  if (ctx.input(1)) return mapBroadcast(cl, ctx, body, {&gate, ctx.input(1)});
  const Tensor& out = *ctx.outputs[0];
  const std::vector<int64_t> strides = rowMajorStrides(gate.shape());
  const std::vector<StridedTensor> halves = {{&gate, strides, 0}, {&gate, strides, out.shape().back()}};
  return runMap(cl, ctx.def.name, MapFunction{"float", {"float", "float"}, body}, out.shape(), wholeTensor(out),
                halves);
}

// ---- fused_elementwise: the program as one statement per instruction (kernelgen).

Status fusedElementwiseKernel(ClContext& cl, const KernelContext& ctx) {
  const ElementwiseProgram* program = ctx.attrs.getProgram("program");
  if (!program || program->instructions.empty())
    return Status::error(ctx.def.name, ": program \"", ctx.attrs.getString("program"), "\" is not parsed");
  for (const Tensor* input : ctx.inputs)
    if (input->dtype() != DType::F32) return unsupportedDType(ctx, input->dtype());
  return mapBroadcast(cl, ctx, programBody(*program), {ctx.inputs.begin(), ctx.inputs.end()});
}

// ---- The programs each kernel above builds, predicted from the op's types.

// The map of `body` over the result's shape, every operand broadcast to it:
// what mapBroadcast builds.
void broadcastSource(const OpTypes& op, const std::string& body, const std::vector<const ShapedType*>& operands,
                     std::vector<std::string>& sources) {
  const ShapedType& out = op.output(0);
  MapFunction fn{scalarType(out.dtype), {}, body};
  std::vector<std::vector<int64_t>> strides;
  for (const ShapedType* operand : operands) {
    fn.operandTypes.push_back(scalarType(operand->dtype));
    strides.push_back(ops::broadcastStrides(operand->shape, out.shape));
    if (fn.operandTypes.back().empty()) return;
  }
  if (body.empty() || fn.resultType.empty() || ops::product(out.shape) == 0) return;
  sources.push_back(mapKernelSource(fn, out.shape, rowMajorStrides(out.shape), strides));
}

// Every operand present, in order.
std::vector<const ShapedType*> presentInputs(const OpTypes& op) {
  std::vector<const ShapedType*> present;
  for (const std::optional<ShapedType>& input : op.inputs)
    if (input) present.push_back(&*input);
  return present;
}

bool allF32(const std::vector<const ShapedType*>& types) {
  return std::all_of(types.begin(), types.end(), [](const ShapedType* t) { return t->dtype == DType::F32; });
}

void variadicSources(const OpTypes& op, std::vector<std::string>& sources) {
  const std::vector<const ShapedType*> in = presentInputs(op);
  if (in.size() == 1) return broadcastSource(op, "r = a0;", in, sources);
  const std::string body = variadicBody(op.def.kind, op.output(0).dtype);
  broadcastSource(op, body, {in[0], in[1]}, sources);
  for (size_t k = 2; k < in.size(); ++k) broadcastSource(op, body, {&op.output(0), in[k]}, sources);
}

void whereSources(const OpTypes& op, std::vector<std::string>& sources) {
  const std::vector<int64_t>& out = op.output(0).shape;
  std::vector<std::vector<int64_t>> strides;
  for (const ShapedType* operand : presentInputs(op)) strides.push_back(ops::broadcastStrides(operand->shape, out));
  if (ops::product(out) > 0)
    sources.push_back(mapKernelSource(whereFunction(op.output(0).dtype), out, rowMajorStrides(out), strides));
}

void swigluSources(const OpTypes& op, std::vector<std::string>& sources) {
  const ShapedType& gate = *op.input(0);
  if (gate.dtype != DType::F32) return;
  if (op.input(1)) return broadcastSource(op, kSwigluBody, {&gate, op.input(1)}, sources);
  const std::vector<int64_t>& out = op.output(0).shape;
  const std::vector<int64_t> strides = rowMajorStrides(gate.shape);
  const std::vector<std::vector<int64_t>> halves = {strides, strides};
  if (ops::product(out) > 0)
    sources.push_back(mapKernelSource(MapFunction{"float", {"float", "float"}, kSwigluBody}, out,
                                      rowMajorStrides(out), halves));
}

// The body of a one-map op of its kind: "" where it has no kernel.
std::string mapBody(const OpTypes& op, const std::vector<const ShapedType*>& in) {
  const DType first = in[0]->dtype;
  switch (op.def.kind) {
    case OpKind::Pow: return allF32(in) ? "r = pow(a0, a1);" : "";
    case OpKind::Cast: return scalarType(first).empty() ? "" : castBody(first, op.output(0).dtype);
    case OpKind::Clip: return first == DType::F32 ? clipBody(op.input(1), op.input(2)) : "";
    case OpKind::Gelu: return first == DType::F32 ? geluBody(op.attrs) : "";
    case OpKind::Silu: return first == DType::F32 ? kSiluBody : "";
    case OpKind::FusedElementwise: {
      const ElementwiseProgram* program = op.attrs.getProgram("program");
      return program && !program->instructions.empty() && allF32(in) ? programBody(*program) : "";
    }
    default: break;
  }
  return in.size() == 1 ? unaryBody(op.def.kind, first) : binaryBody(op.def.kind, first);
}

void elementwiseSources(const OpTypes& op, std::vector<std::string>& sources) {
  const std::vector<const ShapedType*> in = presentInputs(op);
  if (in.empty()) return;
  switch (op.def.kind) {
    case OpKind::Min:
    case OpKind::Max: return variadicSources(op, sources);
    case OpKind::Where: return whereSources(op, sources);
    case OpKind::Swiglu: return swigluSources(op, sources);
    default: return broadcastSource(op, mapBody(op, in), in, sources);
  }
}

}  // namespace

void addElementwiseKernels(OpenClKernelTable& table) {
  for (OpKind kind : {OpKind::Abs, OpKind::Cos, OpKind::Erf, OpKind::Exp, OpKind::Log, OpKind::Neg, OpKind::Not,
                      OpKind::Reciprocal, OpKind::Relu, OpKind::Sigmoid, OpKind::Sin, OpKind::Sqrt, OpKind::Tanh})
    table.add(kind, unaryKernel, elementwiseSources);
  for (OpKind kind : {OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div, OpKind::Equal, OpKind::Less,
                      OpKind::Greater, OpKind::And, OpKind::Or})
    table.add(kind, binaryKernel, elementwiseSources);
  table.add(OpKind::Pow, powKernel, elementwiseSources);
  table.add(OpKind::Min, variadicKernel, elementwiseSources);
  table.add(OpKind::Max, variadicKernel, elementwiseSources);
  table.add(OpKind::Where, whereKernel, elementwiseSources);
  table.add(OpKind::Cast, castKernel, elementwiseSources);
  table.add(OpKind::Clip, clipKernel, elementwiseSources);
  table.add(OpKind::Gelu, geluKernel, elementwiseSources);
  table.add(OpKind::Silu, siluKernel, elementwiseSources);
  table.add(OpKind::Swiglu, swigluKernel, elementwiseSources);
  table.add(OpKind::FusedElementwise, fusedElementwiseKernel, elementwiseSources);
}

}  // namespace kiln::opencl
