// The CUDA C sources of backends/cuda/kernels, embedded into the library at
// build time (cmake/embed_sources.cmake). common.cu is the prelude every
// program starts with: its helpers and block reductions.
#pragma once

#include <string_view>

namespace kiln::cuda {

extern const std::string_view kCommonSource;
extern const std::string_view kNormsSource;

}  // namespace kiln::cuda
