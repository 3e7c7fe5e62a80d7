// The table of reference kernels by op kind, filled once by each family file
// of backends/reference (as ir/ops/<family>.cpp fills the op registry).
#pragma once

#include <array>

#include "ir/op_kind.h"
#include "runtime/kernel.h"

namespace kiln {

class ReferenceKernelTable {
 public:
  void add(OpKind kind, KernelFn kernel);  // aborts on a kind given twice (a kiln bug)
  KernelFn get(OpKind kind) const { return kernels_[static_cast<size_t>(kind)]; }

 private:
  std::array<KernelFn, kNumOpKinds> kernels_{};
};

// Family registration, one per file in backends/reference/.
void addElementwiseKernels(ReferenceKernelTable& table);
void addReductionKernels(ReferenceKernelTable& table);
void addLinalgKernels(ReferenceKernelTable& table);
void addShapeKernels(ReferenceKernelTable& table);
void addFusedKernels(ReferenceKernelTable& table);
void addLatentAttentionKernels(ReferenceKernelTable& table);

}  // namespace kiln
