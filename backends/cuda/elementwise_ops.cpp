// The element-wise ops on the CUDA device: each runs its steps
// (backends/kernel_gen/elementwise_bodies.h, what the OpenCL device runs
// too) in kernelgen's map kernel with the walk order left to run time
// (mapKernelSourceAnyWalk), one kernel per function named by a hash of its
// text, all of a model's in one program, "maps" (one NVRTC compile per
// architecture). The texts depend on the op's dtypes and attributes alone,
// so compileAhead predicts every one from the graph and no shape can miss.
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backends/cuda/op_kernels.h"
#include "backends/kernel_gen/elementwise_bodies.h"
#include "backends/kernel_gen/map_source.h"
#include "backends/reference/kernel_helpers.h"

namespace kiln::cuda {
namespace {

using kernelgen::MapFunction;
using kernelgen::MapOperand;
using kernelgen::MapStep;
using kernelgen::StridedTensor;

constexpr unsigned kMapBlock = 256;

// "map_" and the FNV-1a hash of the function's kernel text.
std::string kernelNameOf(const MapFunction& fn) {
  const std::string kernel = kernelgen::mapKernelSourceAnyWalk(kernelgen::Dialect::CudaC, fn);
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : kernel) hash = (hash ^ c) * 0x100000001b3ull;
  char name[32];
  std::snprintf(name, sizeof name, "map_%016llx", static_cast<unsigned long long>(hash));
  return name;
}

// The function's kernel, a piece of the "maps" program.
ProgramText mapKernel(const MapFunction& fn) {
  return {std::string(kMapsProgram),
          kernelgen::mapKernelSourceAnyWalk(kernelgen::Dialect::CudaC, fn, kernelNameOf(fn))};
}

// kernelNameOf, worked out once per function: a launch needs only the name.
std::string kernelName(const MapFunction& fn) {
  static std::mutex mutex;
  static std::map<std::string, std::string> names;
  std::string key = fn.resultType;
  for (const std::string& type : fn.operandTypes) key += "," + type;
  key += ";" + fn.body;
  std::lock_guard lock(mutex);
  auto found = names.find(key);
  if (found == names.end()) found = names.emplace(key, kernelNameOf(fn)).first;
  return found->second;
}

std::vector<ProgramText> elementwisePrograms(const Graph& graph, const Op& op) {
  std::vector<std::optional<DType>> inputs;
  for (ValueId id : op.operands)
    inputs.push_back(id == kNoValue ? std::nullopt : std::optional<DType>(graph.value(id).type.dtype));
  std::vector<ProgramText> programs;
  for (const MapStep& step :
       kernelgen::elementwiseSteps(op.kind(), op.attrs, inputs, graph.value(op.results[0]).type.dtype))
    programs.push_back(mapKernel(step.fn));
  return programs;
}

// `values` padded on the left to the kernel's rank with `fill`.
void appendPadded(std::vector<int64_t>& out, const std::vector<int64_t>& values, int64_t fill) {
  out.insert(out.end(), kernelgen::kMaxRank - values.size(), fill);
  out.insert(out.end(), values.begin(), values.end());
}

Status runMap(CudaContext& cuda, const KernelContext& ctx, const MapFunction& fn, const StridedTensor& result,
              const std::vector<StridedTensor>& operands) {
  const std::vector<int64_t>& dims = result.tensor->shape();
  const int64_t n = ops::product(dims);
  if (n == 0) return Status::ok();
  if (dims.size() > kernelgen::kMaxRank)
    return Status::error(ctx.def.name, ": rank ", dims.size(), " is above the CUDA kernels' ", kernelgen::kMaxRank);
  if ((n + kMapBlock - 1) / kMapBlock > int64_t{0x7fffffff})
    return Status::error(ctx.def.name, ": ", n, " elements are more than a grid has");
  std::vector<int64_t> shape;  // the kernel's <name>_shape: dims, then each tensor's strides
  appendPadded(shape, dims, 1);
  bool inOrder = true;
  CudaArgs args;
  std::vector<const StridedTensor*> walks = {&result};
  for (const StridedTensor& walk : operands) walks.push_back(&walk);
  for (const StridedTensor* walk : walks) {
    args.add(walk->tensor);
    args.add<long>(walk->offset);
    appendPadded(shape, walk->strides, 0);
    inOrder = inOrder && kernelgen::walksInOrder(walk->strides, dims);
  }
  args.add<long>(n);
  args.add<int>(inOrder ? 1 : 0);
  args.addBytes(shape.data(), shape.size() * sizeof(int64_t));
  const std::vector<void*> pointers = args.pointers();
  const std::string kernel = kernelName(fn);
  const auto blocks = static_cast<unsigned>((n + kMapBlock - 1) / kMapBlock);
  return cuda.launch(std::string(kMapsProgram), kernel.c_str(), blocks, kMapBlock, pointers);
}

Status elementwiseKernel(CudaContext& cuda, const KernelContext& ctx) {
  KILN_RETURN_IF_ERROR(checkOnDevice(cuda, ctx));
  const Tensor& out = *ctx.outputs[0];
  const std::vector<std::optional<DType>> dtypes = kernelgen::operandDtypes(ctx.inputs);
  const std::vector<MapStep> steps = kernelgen::elementwiseSteps(ctx.def.kind, ctx.attrs, dtypes, out.dtype());
  if (steps.empty()) return unsupportedDType(ctx, ctx.input(0) ? ctx.input(0)->dtype() : out.dtype());
  const StridedTensor whole{&out, rowMajorStrides(out.shape()), 0};
  for (const MapStep& step : steps) {
    std::vector<StridedTensor> walks;
    for (const MapOperand& operand : step.operands) walks.push_back(kernelgen::walkTensor(operand, ctx.inputs, out));
    KILN_RETURN_IF_ERROR(runMap(cuda, ctx, step.fn, whole, walks));
  }
  return Status::ok();
}

}  // namespace

void addElementwiseKernels(CudaKernelTable& table) {
  for (size_t k = 0; k < kNumOpKinds; ++k)
    if (kernelgen::isElementwise(static_cast<OpKind>(k)))
      table.add(static_cast<OpKind>(k), elementwiseKernel, elementwisePrograms);
}

}  // namespace kiln::cuda
