#include "backends/opencl/cl_api.h"

#include <dlfcn.h>

#include <mutex>

namespace kiln::opencl {
namespace {

Expected<ClApi> openLoader() {
  // RTLD_LOCAL: the loader's symbols stay out of the app's namespace.
  void* library = ::dlopen("libOpenCL.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!library) return Status::error("cannot load the OpenCL loader libOpenCL.so.1 (", ::dlerror(), ")");
  ClApi api;
#define KILN_CL_LOAD(name)                                                                      \
  api.name = reinterpret_cast<decltype(&::name)>(::dlsym(library, #name));                      \
  if (!api.name) return Status::error("libOpenCL.so.1 has no entry point " #name);
  KILN_CL_FUNCTIONS(KILN_CL_LOAD)
#undef KILN_CL_LOAD
  return api;
}

}  // namespace

Expected<const ClApi*> loadClApi() {
  static const Expected<ClApi> api = openLoader();
  if (!api) return api.status();
  return &api.value();
}

std::string clErrorName(cl_int code) {
  const char* name = "an OpenCL error";
  switch (code) {
    case CL_DEVICE_NOT_FOUND: name = "CL_DEVICE_NOT_FOUND"; break;
    case CL_DEVICE_NOT_AVAILABLE: name = "CL_DEVICE_NOT_AVAILABLE"; break;
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: name = "CL_MEM_OBJECT_ALLOCATION_FAILURE"; break;
    case CL_OUT_OF_RESOURCES: name = "CL_OUT_OF_RESOURCES"; break;
    case CL_OUT_OF_HOST_MEMORY: name = "CL_OUT_OF_HOST_MEMORY"; break;
    case CL_BUILD_PROGRAM_FAILURE: name = "CL_BUILD_PROGRAM_FAILURE"; break;
    case CL_INVALID_VALUE: name = "CL_INVALID_VALUE"; break;
    case CL_INVALID_BUFFER_SIZE: name = "CL_INVALID_BUFFER_SIZE"; break;
    case CL_INVALID_KERNEL_ARGS: name = "CL_INVALID_KERNEL_ARGS"; break;
    case CL_INVALID_ARG_SIZE: name = "CL_INVALID_ARG_SIZE"; break;
    case CL_INVALID_WORK_GROUP_SIZE: name = "CL_INVALID_WORK_GROUP_SIZE"; break;
    case CL_INVALID_WORK_ITEM_SIZE: name = "CL_INVALID_WORK_ITEM_SIZE"; break;
    case CL_INVALID_GLOBAL_WORK_SIZE: name = "CL_INVALID_GLOBAL_WORK_SIZE"; break;
    case CL_INVALID_MEM_OBJECT: name = "CL_INVALID_MEM_OBJECT"; break;
    case CL_INVALID_KERNEL_NAME: name = "CL_INVALID_KERNEL_NAME"; break;
    case -1001: name = "CL_PLATFORM_NOT_FOUND_KHR"; break;  // the ICD loader found no platform
    default: break;
  }
  return std::string(name) + " (" + std::to_string(code) + ")";
}

}  // namespace kiln::opencl
