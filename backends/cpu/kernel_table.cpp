#include <cstdlib>

#include "backends/cpu/kernels.h"

namespace kiln::cpu {

FastKernel fastKernelFor(std::string_view opName) {
  static const KernelTable table = [] {
    KernelTable made;
    addAttentionKernels(made);
    addVectorKernels(made);
    return made;
  }();
  auto it = table.find(opName);
  return it == table.end() ? nullptr : it->second;
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
