// The reference backend: one plain, portable kernel per op kind, the
// yardstick every device's kernels are tested against (and what the CPU
// device runs where it has no faster kernel), and evaluateOp, which runs an
// op on concrete tensors with them. The compiler's constant evaluation (the
// passes and the ONNX importer) uses evaluateOp too. Not a device: it
// registers none; the kernels are functions of a KernelContext
// (runtime/kernel.h).
#pragma once

#include <span>
#include <vector>

#include "ir/attributes.h"
#include "ir/dim.h"
#include "ir/op_kind.h"
#include "ir/op_registry.h"
#include "ir/status.h"
#include "ir/tensor.h"
#include "runtime/kernel.h"

namespace kiln {

// The reference kernel of `kind`; every kind of the op table has one
// (tests/unit/reference_kernels_test.cpp).
KernelFn referenceKernel(OpKind kind);

// Runs one op on concrete tensors: inference on their shapes, allocation of
// the outputs, then the reference kernel. `bindings` (the run's symbol
// values) resolve symbolic dims for inference and, through
// resolveDimAttributes, the dim-list attributes the kernel reads. Used by
// constant folding, the importer and the tests.
Expected<std::vector<Tensor>> evaluateOp(const OpDef& def, const Attributes& attrs,
                                         std::span<const Tensor* const> inputs,
                                         int numResults,
                                         const SymbolBindings* bindings = nullptr);

}  // namespace kiln
