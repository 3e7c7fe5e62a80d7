#include "backends/cpu/kernels.h"

namespace kiln::cpu {

void addAttentionKernels(KernelTable&) {}

}  // namespace kiln::cpu
