#include "backends/cuda/cuda_api.h"

#include <dlfcn.h>

namespace kiln::cuda {
namespace {

Expected<CudaApi> openDriver() {
  // RTLD_LOCAL: the driver's symbols stay out of the app's namespace.
  void* library = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!library) return Status::error("no CUDA driver: cannot load libcuda.so.1 (", ::dlerror(), ")");
  CudaApi api;
#define KILN_CUDA_LOAD(member, symbol, result, parameters)                  \
  api.member = reinterpret_cast<result(*) parameters>(::dlsym(library, symbol)); \
  if (!api.member) return Status::error("no CUDA driver: libcuda.so.1 has no entry point " symbol);
  KILN_CUDA_FUNCTIONS(KILN_CUDA_LOAD)
#undef KILN_CUDA_LOAD
  if (const CUresult result = api.cuInit(0); result != CUDA_SUCCESS)
    return Status::error("no CUDA device: cuInit failed with ", cudaErrorName(api, result));
  return api;
}

}  // namespace

Expected<const CudaApi*> loadCudaApi() {
  static const Expected<CudaApi> api = openDriver();
  if (!api) return api.status();
  return &api.value();
}

std::string cudaErrorName(const CudaApi& api, CUresult result) {
  const char* name = nullptr;
  if (api.cuGetErrorName(result, &name) != CUDA_SUCCESS || !name) name = "a CUDA error";
  return std::string(name) + " (" + std::to_string(result) + ")";
}

}  // namespace kiln::cuda
