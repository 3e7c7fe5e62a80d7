#include "backends/opencl/map_kernel.h"

#include <algorithm>
#include <sstream>

#include "backends/opencl/kernel_sources.h"
#include "backends/reference/kernel_helpers.h"

namespace kiln::opencl {
namespace {

constexpr size_t kMaxRank = 6;  // KILN_MAX_RANK in kernels/common.cl

// Strides padded on the left to kMaxRank (a padded dim has extent 1).
std::vector<int64_t> padded(const std::vector<int64_t>& values, int64_t fill) {
  std::vector<int64_t> out(kMaxRank - values.size(), fill);
  out.insert(out.end(), values.begin(), values.end());
  return out;
}

// Whether walking `strides` over `dims` visits elements 0, 1, 2, ... in order.
bool isContiguous(const std::vector<int64_t>& strides, const std::vector<int64_t>& dims) {
  int64_t expected = 1;
  for (size_t d = dims.size(); d-- > 0;) {
    if (dims[d] != 1 && strides[d] != expected) return false;
    expected *= dims[d];
  }
  return true;
}

// The kernel's source: `contiguous` has one flag for the result, then one per operand.
std::string mapSource(const MapFunction& fn, const std::vector<bool>& contiguous) {
  const size_t count = fn.operandTypes.size();
  std::ostringstream s;
  s << kCommonSource << "\ntypedef struct { long dims[6]; long strides[" << 6 * (count + 1) << "]; } MapShape;\n";
  s << "__kernel void map(__global " << fn.resultType << "* y, long yOffset";
  for (size_t k = 0; k < count; ++k) s << ", __global const " << fn.operandTypes[k] << "* x" << k << ", long offset" << k;
  s << ", long n, MapShape shape) {\n  const long i = get_global_id(0);\n  if (i >= n) return;\n";
  s << "  long yAt = yOffset" << (contiguous[0] ? " + i" : "") << ";\n";
  for (size_t k = 0; k < count; ++k) s << "  long at" << k << " = offset" << k << (contiguous[k + 1] ? " + i" : "") << ";\n";
  if (std::count(contiguous.begin(), contiguous.end(), false) > 0) {
    s << "  long rest = i;\n  for (int d = KILN_MAX_RANK - 1; d >= 0; --d) {\n"
      << "    const long c = rest % shape.dims[d];\n    rest /= shape.dims[d];\n";
    if (!contiguous[0]) s << "    yAt += c * shape.strides[d];\n";
    for (size_t k = 0; k < count; ++k)
      if (!contiguous[k + 1]) s << "    at" << k << " += c * shape.strides[" << 6 * (k + 1) << " + d];\n";
    s << "  }\n";
  }
  for (size_t k = 0; k < count; ++k) s << "  const " << fn.operandTypes[k] << " a" << k << " = x" << k << "[at" << k << "];\n";
  s << "  " << fn.resultType << " r;\n  " << fn.body << "\n  y[yAt] = r;\n}\n";
  return s.str();
}

}  // namespace

std::string mapKernelSource(const MapFunction& fn, const std::vector<int64_t>& dims,
                            const std::vector<int64_t>& resultStrides,
                            std::span<const std::vector<int64_t>> operandStrides) {
  std::vector<bool> contiguous = {isContiguous(resultStrides, dims)};
  for (const std::vector<int64_t>& strides : operandStrides) contiguous.push_back(isContiguous(strides, dims));
  return mapSource(fn, contiguous);
}

StridedTensor wholeTensor(const Tensor& tensor) { return {&tensor, rowMajorStrides(tensor.shape()), 0}; }

StridedTensor broadcastTo(const Tensor& operand, const std::vector<int64_t>& shape) {
  return {&operand, ops::broadcastStrides(operand.shape(), shape), 0};
}

std::string clTypeName(DType dtype) {
  switch (dtype) {
    case DType::F32: return "float";
    case DType::I64: return "long";
    case DType::I32: return "int";
    case DType::Bool: return "uchar";
    default: return "";
  }
}

std::string clWordType(size_t bytes) {
  switch (bytes) {
    case 1: return "uchar";
    case 2: return "ushort";
    case 4: return "uint";
    default: return "ulong";
  }
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
