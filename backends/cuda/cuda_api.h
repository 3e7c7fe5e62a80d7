// The CUDA driver entry points kiln calls, loaded from libcuda.so.1 with
// dlopen on first use. The runtime links no CUDA library: linking the
// toolkit's stub libcuda.so makes a program die at load on a machine with no
// driver, and an app embedding kiln must start there and say "no CUDA
// driver". The declarations are kiln's own (the driver's C ABI, stable since
// CUDA 4), so building needs no toolkit; tests/cuda/driver_abi_test.cpp
// checks them against the toolkit's cuda.h where one is installed.
#pragma once

#include <cstddef>
#include <string>

#include "ir/status.h"

namespace kiln::cuda {

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = struct CUctx_st*;
using CUmodule = struct CUmod_st*;
using CUfunction = struct CUfunc_st*;
using CUstream = struct CUstream_st*;

inline constexpr CUresult CUDA_SUCCESS = 0;
// The cuDeviceGetAttribute values kiln reads (cuda.h's CUdevice_attribute).
inline constexpr int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
inline constexpr int CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING = 41;
inline constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
inline constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;

// Every entry point, once: X(member, exported symbol, return, parameters).
// The exported names carry the driver's version suffix where cuda.h maps the
// plain name to one (cuMemAlloc is cuMemAlloc_v2).
#define KILN_CUDA_FUNCTIONS(X)                                                                                   \
  X(cuInit, "cuInit", CUresult, (unsigned int flags))                                                           \
  X(cuDriverGetVersion, "cuDriverGetVersion", CUresult, (int* version))                                         \
  X(cuDeviceGetCount, "cuDeviceGetCount", CUresult, (int* count))                                               \
  X(cuDeviceGet, "cuDeviceGet", CUresult, (CUdevice * device, int ordinal))                                     \
  X(cuDeviceGetName, "cuDeviceGetName", CUresult, (char* name, int length, CUdevice device))                    \
  X(cuDeviceGetAttribute, "cuDeviceGetAttribute", CUresult, (int* value, int attribute, CUdevice device))       \
  X(cuDeviceTotalMem, "cuDeviceTotalMem_v2", CUresult, (size_t * bytes, CUdevice device))                       \
  X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", CUresult, (CUcontext * context, CUdevice device))     \
  X(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", CUresult, (CUdevice device))                     \
  X(cuCtxSetCurrent, "cuCtxSetCurrent", CUresult, (CUcontext context))                                          \
  X(cuCtxSynchronize, "cuCtxSynchronize", CUresult, ())                                                         \
  X(cuMemAlloc, "cuMemAlloc_v2", CUresult, (CUdeviceptr * pointer, size_t bytes))                               \
  X(cuMemFree, "cuMemFree_v2", CUresult, (CUdeviceptr pointer))                                                 \
  X(cuMemcpyHtoD, "cuMemcpyHtoD_v2", CUresult, (CUdeviceptr to, const void* from, size_t bytes))                \
  X(cuMemcpyDtoH, "cuMemcpyDtoH_v2", CUresult, (void* to, CUdeviceptr from, size_t bytes))                      \
  X(cuMemcpyDtoD, "cuMemcpyDtoD_v2", CUresult, (CUdeviceptr to, CUdeviceptr from, size_t bytes))                \
  X(cuModuleLoadData, "cuModuleLoadData", CUresult, (CUmodule * module, const void* image))                   \
  X(cuModuleUnload, "cuModuleUnload", CUresult, (CUmodule module))                                              \
  X(cuModuleGetFunction, "cuModuleGetFunction", CUresult, (CUfunction * function, CUmodule module, const char* name)) \
  X(cuLaunchKernel, "cuLaunchKernel", CUresult,                                                                 \
    (CUfunction function, unsigned int gridX, unsigned int gridY, unsigned int gridZ, unsigned int blockX,        \
     unsigned int blockY, unsigned int blockZ, unsigned int sharedBytes, CUstream stream, void** parameters,     \
     void** extra))                                                                                              \
  X(cuGetErrorName, "cuGetErrorName", CUresult, (CUresult error, const char** name))

struct CudaApi {
#define KILN_CUDA_DECLARE(member, symbol, result, parameters) result(*member) parameters = nullptr;
  KILN_CUDA_FUNCTIONS(KILN_CUDA_DECLARE)
#undef KILN_CUDA_DECLARE
};

// The driver's entry points, loaded once (the library stays loaded for the
// program's life) with cuInit done; or why there are none: "no CUDA driver:
// cannot load libcuda.so.1 (...)" on a machine without one.
Expected<const CudaApi*> loadCudaApi();

// "CUDA_ERROR_OUT_OF_MEMORY (2)": a result as the driver names it.
std::string cudaErrorName(const CudaApi& api, CUresult result);

}  // namespace kiln::cuda
