#include "backends/opencl/map_kernel.h"


#include "backends/opencl/kernel_sources.h"
#include "backends/reference/kernel_helpers.h"

namespace kiln::opencl {
namespace {

using kernelgen::kMaxRank;

// Strides padded on the left to kMaxRank (a padded dim has extent 1).
std::vector<int64_t> padded(const std::vector<int64_t>& values, int64_t fill) {
  std::vector<int64_t> out(kMaxRank - values.size(), fill);
  out.insert(out.end(), values.begin(), values.end());
  return out;
}

}  // namespace

std::string mapKernelSource(const MapFunction& fn, const std::vector<int64_t>& dims,
                            const std::vector<int64_t>& resultStrides,
                            std::span<const std::vector<int64_t>> operandStrides) {
  return cat(kCommonSource,
             kernelgen::mapKernelSource(kernelgen::Dialect::OpenClC, fn, dims, resultStrides, operandStrides));
}

StridedTensor wholeTensor(const Tensor& tensor) { return {&tensor, rowMajorStrides(tensor.shape()), 0}; }

StridedTensor broadcastTo(const Tensor& operand, const std::vector<int64_t>& shape) {
  return {&operand, ops::broadcastStrides(operand.shape(), shape), 0};
}

Expected<DeviceAddress> deviceAddress(const ClContext& cl, std::string_view opName, const Tensor& tensor) {
  std::optional<DeviceAddress> at = cl.find(tensor.data());
  if (!at) return Status::error(opName, ": a ", dtypeName(tensor.dtype()), shapeStr(tensor.shape()),
                                " tensor is not in OpenCL device memory");
  return *at;
}

Expected<Tensor> onHost(ClContext& cl, const Tensor& tensor) {
  std::optional<DeviceAddress> at = cl.find(tensor.data());
  if (!at || tensor.byteSize() == 0) return tensor;
  Tensor copy = Tensor::allocate(tensor.dtype(), tensor.shape());
  KILN_RETURN_IF_ERROR(cl.read(copy.data(), *at, tensor.byteSize()));
  return copy;
}

Status runMap(ClContext& cl, std::string_view opName, const MapFunction& fn, const std::vector<int64_t>& dims,
              const StridedTensor& result, std::span<const StridedTensor> operands) {
  const int64_t n = ops::product(dims);
  if (n == 0) return Status::ok();
  if (dims.size() > kMaxRank)
    return Status::error(opName, ": rank ", dims.size(), " is above the OpenCL kernels' ", kMaxRank);
  std::vector<std::vector<int64_t>> operandStrides;
  std::vector<cl_long> shape = padded(dims, 1);
  std::vector<int64_t> resultStrides = padded(result.strides, 0);
  shape.insert(shape.end(), resultStrides.begin(), resultStrides.end());
  KernelArgs args;
  Expected<DeviceAddress> out = deviceAddress(cl, opName, *result.tensor);
  if (!out) return out.status();
  out->offset += static_cast<size_t>(result.offset) * dtypeSize(result.tensor->dtype());
  args.add(*out, dtypeSize(result.tensor->dtype()));
  for (const StridedTensor& operand : operands) {
    Expected<DeviceAddress> in = deviceAddress(cl, opName, *operand.tensor);
    if (!in) return in.status();
    const size_t elementSize = dtypeSize(operand.tensor->dtype());
    in->offset += static_cast<size_t>(operand.offset) * elementSize;  // the first element walked
    args.add(*in, elementSize);
    operandStrides.push_back(operand.strides);
    std::vector<int64_t> strides = padded(operand.strides, 0);
    shape.insert(shape.end(), strides.begin(), strides.end());
  }
  Expected<cl_kernel> kernel = cl.kernel(mapKernelSource(fn, dims, result.strides, operandStrides), "map");
  if (!kernel) return kernel.status().withContext(std::string(opName) + ": ");
  args.add(static_cast<cl_long>(n));
  args.addBytes(shape.data(), shape.size() * sizeof(cl_long));
  const size_t global[] = {static_cast<size_t>((n + 63) / 64 * 64)};
  return cl.launch(*kernel, args, global);
}

}  // namespace kiln::opencl
