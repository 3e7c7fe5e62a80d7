// The vector instruction set CPU kernels use, chosen once at run time from
// CPUID: AVX-512 (F, BW, VL, DQ), else AVX2 with FMA, else scalar code.
// KILN_ISA=scalar|avx2|avx512 caps the choice (tests run every path this
// CPU has; asking for more than the CPU has gives what it has).
#pragma once

#include <string_view>
#include <vector>

namespace kiln::cpu {

enum class Isa { Scalar, Avx2, Avx512 };

Isa detectedIsa();           // what this CPU supports
Isa activeIsa();             // detectedIsa() capped by KILN_ISA, read once
std::string_view isaName(Isa isa);
// Every instruction set up to detectedIsa(): the paths tests run.
std::vector<Isa> isasOfThisCpu();
// AVX512-BF16 (vcvtneps2bf16), which only the bf16 rounding uses.
bool cpuHasAvx512Bf16();

}  // namespace kiln::cpu
