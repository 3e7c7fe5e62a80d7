#include "backends/cpu/kernels.h"

namespace kiln::cpu {

void addVectorKernels(KernelTable&) {}

}  // namespace kiln::cpu
