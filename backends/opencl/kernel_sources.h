// The OpenCL C sources of backends/opencl/kernels, embedded into the library
// at build time (cmake/embed_sources.cmake). common.cl is the prelude every
// program starts with: its types and scalar functions.
#pragma once

#include <string_view>

namespace kiln::opencl {

extern const std::string_view kCommonSource;
extern const std::string_view kMatmulSource;
extern const std::string_view kNormsSource;
extern const std::string_view kGatherSource;
extern const std::string_view kAttentionSource;

}  // namespace kiln::opencl
