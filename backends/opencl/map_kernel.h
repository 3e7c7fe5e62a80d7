// The one generated kernel behind every element-wise op, cast, where,
// fused_elementwise and strided copy (transpose, expand, slice, concat,
// split) on the OpenCL device: kernelgen's map kernel in OpenCL C
// (backends/kernel_gen/map_source.h), built once per distinct text.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backends/kernel_gen/elementwise_bodies.h"
#include "backends/kernel_gen/map_source.h"
#include "backends/opencl/cl_context.h"
#include "ir/status.h"
#include "ir/tensor.h"

namespace kiln::opencl {

using kernelgen::StridedTensor;

// The tensor itself, walked in row-major order over its own shape.
StridedTensor wholeTensor(const Tensor& tensor);
// An operand broadcast (numpy rules) to `shape`.
StridedTensor broadcastTo(const Tensor& operand, const std::vector<int64_t>& shape);

using kernelgen::MapFunction;
using kernelgen::scalarType;
using kernelgen::wordType;

// The OpenCL C that runMap builds for `fn` over `dims` with these walks (the
// prelude, then kernelgen's kernel): it depends on which of them visit their
// elements in order.
std::string mapKernelSource(const MapFunction& fn, const std::vector<int64_t>& dims,
                            const std::vector<int64_t>& resultStrides,
                            std::span<const std::vector<int64_t>> operandStrides);

// Runs `fn` over `dims`. `opName` names the op in errors.
Status runMap(ClContext& cl, std::string_view opName, const MapFunction& fn, const std::vector<int64_t>& dims,
              const StridedTensor& result, std::span<const StridedTensor> operands);

// The address of a tensor in device memory, or an error naming the op.
Expected<DeviceAddress> deviceAddress(const ClContext& cl, std::string_view opName, const Tensor& tensor);

// A small operand (slice bounds, RoPE frequencies) on the host: read back
// when it lives on the device, else the tensor itself.
Expected<Tensor> onHost(ClContext& cl, const Tensor& tensor);

}  // namespace kiln::opencl
