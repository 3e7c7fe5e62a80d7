// NVRTC, CUDA's runtime compiler, as the compiler uses it: `kiln compile
// --targets cuda` turns the device's CUDA C kernels into cubin for each
// architecture asked for and PTX for the newest, which the artifact carries
// (cuda_ahead.h). Loaded with dlopen on first use, like the driver, so
// nothing that does not compile for CUDA needs a toolkit; the declarations
// are kiln's own (tests/cuda/driver_abi_check.cpp checks them against
// nvrtc.h where a toolkit is installed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ir/status.h"

namespace kiln::cuda {

using nvrtcResult = int;
using nvrtcProgram = struct _nvrtcProgram*;
inline constexpr nvrtcResult NVRTC_SUCCESS = 0;

// X(name, return, parameters): every entry point, exported under its name.
#define KILN_NVRTC_FUNCTIONS(X)                                                                              \
  X(nvrtcGetErrorString, const char*, (nvrtcResult result))                                                 \
  X(nvrtcVersion, nvrtcResult, (int* major, int* minor))                                                    \
  X(nvrtcCreateProgram, nvrtcResult,                                                                        \
    (nvrtcProgram * program, const char* source, const char* name, int headers, const char* const* contents, \
     const char* const* includeNames))                                                                      \
  X(nvrtcDestroyProgram, nvrtcResult, (nvrtcProgram * program))                                             \
  X(nvrtcCompileProgram, nvrtcResult, (nvrtcProgram program, int options, const char* const* values))       \
  X(nvrtcGetPTXSize, nvrtcResult, (nvrtcProgram program, size_t * bytes))                                   \
  X(nvrtcGetPTX, nvrtcResult, (nvrtcProgram program, char* ptx))                                            \
  X(nvrtcGetCUBINSize, nvrtcResult, (nvrtcProgram program, size_t * bytes))                                 \
  X(nvrtcGetCUBIN, nvrtcResult, (nvrtcProgram program, char* cubin))                                        \
  X(nvrtcGetProgramLogSize, nvrtcResult, (nvrtcProgram program, size_t * bytes))                            \
  X(nvrtcGetProgramLog, nvrtcResult, (nvrtcProgram program, char* log))

struct NvrtcApi {
#define KILN_NVRTC_DECLARE(name, result, parameters) result(*name) parameters = nullptr;
  KILN_NVRTC_FUNCTIONS(KILN_NVRTC_DECLARE)
#undef KILN_NVRTC_DECLARE
  std::string version;  // "13.0"
};

// NVRTC, loaded once; or why it cannot be: "no NVRTC: cannot load
// libnvrtc.so (...)" where no CUDA toolkit is installed.
Expected<const NvrtcApi*> loadNvrtc();

// `source` (named `name` in messages) compiled for `architecture`: "sm_90"
// gives a cubin for that architecture, "compute_90" PTX any later one can
// JIT. An error carries NVRTC's log.
Expected<std::vector<uint8_t>> compileCuda(const NvrtcApi& nvrtc, const std::string& source, const std::string& name,
                                           const std::string& architecture);

}  // namespace kiln::cuda
