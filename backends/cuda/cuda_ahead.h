// The CUDA device's ahead-of-time code, the blob compileAhead writes into an
// artifact and loadAhead reads back (layout: docs/artifact.md, "Device
// code"): each kernel program the ops placed on the device use, compiled by
// NVRTC into a cubin for each architecture asked for and PTX for the newest,
// which a later GPU's driver compiles at load. The runtime needs no compiler:
// a device with neither its cubin nor a PTX it can take cannot run the
// artifact's CUDA ops, and says so.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backends/cuda/op_kernels.h"
#include "ir/graph.h"
#include "ir/status.h"

namespace kiln::cuda {

inline constexpr uint32_t kCudaCodeVersion = 1;

// The architectures `kiln compile` builds cubins for unless told otherwise;
// the newest also gets PTX.
inline const std::vector<std::string> kDefaultCudaArchitectures = {"sm_80", "sm_90"};

struct CudaImage {
  std::string architecture;   // "sm_90": a cubin; "compute_90": PTX
  std::vector<uint8_t> code;
};

struct CudaProgram {
  std::string name;  // the kernel family: "norms"
  std::vector<CudaImage> images;
};

struct CudaCode {
  std::string compiler;  // "NVRTC 13.0"
  std::vector<CudaProgram> programs;
};

std::vector<uint8_t> encodeCudaCode(const CudaCode& code);
// An error saying what is wrong with a blob that encodeCudaCode did not write.
Expected<CudaCode> decodeCudaCode(std::span<const uint8_t> blob);

// The kernel programs the ops `graph` places on the CUDA device run, each
// once (by name), in the order of their first op.
std::vector<ProgramText> usedPrograms(const Graph& graph);

// Each program compiled by NVRTC into a cubin per architecture ("sm_80")
// and PTX for the newest ("compute_90"); "no NVRTC: ..." without a toolkit.
Expected<CudaCode> compileCudaCode(const std::vector<ProgramText>& programs,
                                   const std::vector<std::string>& architectures);

// The image a device of `architecture` ("sm_90") loads: its own cubin, else
// the PTX of the newest compute capability at or below the device's (the
// driver compiles it at load); null when there is neither.
const CudaImage* pickImage(const CudaProgram& program, const std::string& architecture);

}  // namespace kiln::cuda
