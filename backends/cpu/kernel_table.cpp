#include <cstdlib>

#include "backends/cpu/kernels.h"

namespace kiln::cpu {

FastKernel fastKernelFor(OpKind kind) {
  static const KernelTable table = [] {
    KernelTable made{};
    addAttentionKernels(made);
    addLatentAttentionKernels(made);
    addVectorKernels(made);
    addInt8MatmulKernels(made);
    return made;
  }();
  return table[static_cast<size_t>(kind)];
}

// Read on every call (a getenv per op is noise next to a kernel) so a test
// or an embedding app may change it between runs.
int numThreads() {
  if (const char* env = std::getenv("KILN_NUM_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n > 0 && n <= 1024) return static_cast<int>(n);
  }
  return 2;
}

}  // namespace kiln::cpu
