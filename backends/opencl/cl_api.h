// The OpenCL entry points kiln calls, loaded from the ICD loader
// (libOpenCL.so.1) with dlopen on first use: the runtime links no OpenCL,
// so an app on a machine without it still starts.
#pragma once

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include <string>

#include "ir/status.h"

namespace kiln::opencl {

// Every entry point, once: X(name) for each.
#define KILN_CL_FUNCTIONS(X)                                                                                 \
  X(clGetPlatformIDs) X(clGetPlatformInfo) X(clGetDeviceIDs) X(clGetDeviceInfo) X(clCreateContext)           \
  X(clReleaseContext) X(clCreateCommandQueue) X(clReleaseCommandQueue) X(clCreateBuffer) X(clReleaseMemObject) \
  X(clCreateProgramWithSource) X(clCreateProgramWithBinary) X(clBuildProgram) X(clGetProgramBuildInfo)         \
  X(clGetProgramInfo) X(clReleaseProgram)                                                                     \
  X(clCreateKernel) X(clReleaseKernel) X(clSetKernelArg) X(clEnqueueNDRangeKernel) X(clEnqueueReadBuffer)    \
  X(clEnqueueWriteBuffer) X(clEnqueueCopyBuffer) X(clEnqueueFillBuffer) X(clFinish)                        \
  X(clSetEventCallback) X(clWaitForEvents) X(clReleaseEvent)

struct ClApi {
#define KILN_CL_DECLARE(name) decltype(&::name) name = nullptr;
  KILN_CL_FUNCTIONS(KILN_CL_DECLARE)
#undef KILN_CL_DECLARE
};

// The loaded entry points (the library stays loaded for the program's life),
// or why they cannot be had.
Expected<const ClApi*> loadClApi();

// "CL_OUT_OF_RESOURCES (-5)": an error code as the headers name it.
std::string clErrorName(cl_int code);

}  // namespace kiln::opencl
