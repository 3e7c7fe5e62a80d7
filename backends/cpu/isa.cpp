#include "backends/cpu/isa.h"

#include <algorithm>
#include <cstdlib>

namespace kiln::cpu {

Isa detectedIsa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
  return Isa::Scalar;
}

Isa activeIsa() {
  static const Isa active = [] {
    Isa cap = Isa::Avx512;
    if (const char* env = std::getenv("KILN_ISA")) {
      const std::string_view want(env);
      if (want == "scalar") cap = Isa::Scalar;
      else if (want == "avx2") cap = Isa::Avx2;
    }
    return std::min(detectedIsa(), cap);
  }();
  return active;
}

bool cpuHasAvx512Bf16() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
  }();
  return has;
}

std::string_view isaName(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    case Isa::Scalar: break;
  }
  return "scalar";
}

std::vector<Isa> isasOfThisCpu() {
  std::vector<Isa> isas{Isa::Scalar};
  if (detectedIsa() >= Isa::Avx2) isas.push_back(Isa::Avx2);
  if (detectedIsa() >= Isa::Avx512) isas.push_back(Isa::Avx512);
  return isas;
}

}  // namespace kiln::cpu
