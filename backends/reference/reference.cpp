#include "backends/reference/reference.h"

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "backends/reference/kernel_table.h"

namespace kiln {

void ReferenceKernelTable::add(OpKind kind, KernelFn kernel) {
  KernelFn& slot = kernels_[static_cast<size_t>(kind)];
  if (slot) {
    std::fprintf(stderr, "kiln: op '%s' has two reference kernels\n", std::string(opName(kind)).c_str());
    std::abort();
  }
  slot = kernel;
}

KernelFn referenceKernel(OpKind kind) {
  static const ReferenceKernelTable table = [] {
    ReferenceKernelTable t;
    addElementwiseKernels(t);
    addReductionKernels(t);
    addLinalgKernels(t);
    addShapeKernels(t);
    addFusedKernels(t);
    addLatentAttentionKernels(t);
    return t;
  }();
  return table.get(kind);
}

Expected<std::vector<Tensor>> evaluateOp(const OpDef& def, const Attributes& attrs,
                                         std::span<const Tensor* const> inputs, int numResults,
                                         const SymbolBindings* bindings) {
  std::vector<TensorType> inputTypes(inputs.size());
  std::vector<OperandInfo> operands(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i]) continue;
    inputTypes[i] = inputs[i]->type();
    operands[i] = {&inputTypes[i], inputs[i]};
  }
  std::vector<TensorType> resultTypes;
  KILN_RETURN_IF_ERROR(inferResultTypes(def, attrs, operands, numResults, resultTypes, bindings));
  std::vector<Tensor> outputs;
  std::vector<Tensor*> outputPtrs;
  outputs.reserve(resultTypes.size());
  for (const TensorType& t : resultTypes) {
    auto dims = t.staticDims();
    if (!dims)
      return Status::error("op '", def.name, "': result shape ", shapeStr(t.shape),
                           " is not concrete on concrete inputs");
    for (int64_t d : *dims)
      if (d < 0) return Status::error("op '", def.name, "': negative result dim in ", shapeStr(t.shape));
    outputs.push_back(Tensor::allocate(t.dtype, *dims));
  }
  for (Tensor& t : outputs) outputPtrs.push_back(&t);
  const KernelFn kernel = referenceKernel(def.kind);
  if (!kernel) return Status::error("op '", def.name, "' has no reference kernel");
  // The kernel reads dim-list attributes as numbers (the run's values go in)
  // and programs parsed.
  std::optional<Attributes> resolved = bindings ? resolveDimAttributes(attrs, *bindings) : std::nullopt;
  if (std::optional<Attributes> typed = typedAttributes(def, inputs.size(), resolved ? *resolved : attrs))
    resolved = std::move(typed);
  KernelContext context{def, resolved ? *resolved : attrs, inputs, outputPtrs};
  KILN_RETURN_IF_ERROR(kernel(context));
  return outputs;
}

}  // namespace kiln
