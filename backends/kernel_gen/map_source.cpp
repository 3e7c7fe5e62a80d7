#include "backends/kernel_gen/map_source.h"

#include <algorithm>
#include <sstream>

#include "ir/status.h"

namespace kiln::kernelgen {
namespace {

// What differs between the dialects: the kernel's qualifiers, a global
// pointer's, and the element an item (thread) maps.
struct Spelling {
  const char* kernel;
  const char* global;
  const char* index;
};

Spelling spelling(Dialect dialect) {
  if (dialect == Dialect::CudaC)
    return {"extern \"C\" __global__ void", "", "(long)blockIdx.x * blockDim.x + threadIdx.x"};
  return {"__kernel void", "__global ", "get_global_id(0)"};
}

}  // namespace

std::string scalarType(DType dtype) {
  switch (dtype) {
    case DType::F32: return "float";
    case DType::I64: return "long";
    case DType::I32: return "int";
    case DType::Bool: return "uchar";
    default: return "";
  }
}

std::string wordType(size_t bytes) {
  switch (bytes) {
    case 1: return "uchar";
    case 2: return "ushort";
    case 4: return "uint";
    default: return "ulong";
  }
}

bool walksInOrder(const std::vector<int64_t>& strides, const std::vector<int64_t>& dims) {
  int64_t expected = 1;
  for (size_t d = dims.size(); d-- > 0;) {
    if (dims[d] != 1 && strides[d] != expected) return false;
    expected *= dims[d];
  }
  return true;
}

std::string mapKernelSource(Dialect dialect, const MapFunction& fn, const std::vector<int64_t>& dims,
                            const std::vector<int64_t>& resultStrides,
                            std::span<const std::vector<int64_t>> operandStrides, std::string_view name) {
  std::vector<bool> inOrder = {walksInOrder(resultStrides, dims)};
  for (const std::vector<int64_t>& strides : operandStrides) inOrder.push_back(walksInOrder(strides, dims));
  const Spelling s = spelling(dialect);
  const size_t count = fn.operandTypes.size();
  const std::string shape = cat(name, "_shape");
  std::ostringstream out;
  out << "\ntypedef struct { long dims[6]; long strides[" << 6 * (count + 1) << "]; } " << shape << ";\n";
  out << s.kernel << " " << name << "(" << s.global << fn.resultType << "* y, long yOffset";
  for (size_t k = 0; k < count; ++k)
    out << ", " << s.global << "const " << fn.operandTypes[k] << "* x" << k << ", long offset" << k;
  out << ", long n, " << shape << " shape) {\n  const long i = " << s.index << ";\n  if (i >= n) return;\n";
  out << "  long yAt = yOffset" << (inOrder[0] ? " + i" : "") << ";\n";
  for (size_t k = 0; k < count; ++k)
    out << "  long at" << k << " = offset" << k << (inOrder[k + 1] ? " + i" : "") << ";\n";
  if (std::count(inOrder.begin(), inOrder.end(), false) > 0) {
    out << "  long rest = i;\n  for (int d = KILN_MAX_RANK - 1; d >= 0; --d) {\n"
        << "    const long c = rest % shape.dims[d];\n    rest /= shape.dims[d];\n";
    if (!inOrder[0]) out << "    yAt += c * shape.strides[d];\n";
    for (size_t k = 0; k < count; ++k)
      if (!inOrder[k + 1]) out << "    at" << k << " += c * shape.strides[" << 6 * (k + 1) << " + d];\n";
    out << "  }\n";
  }
  for (size_t k = 0; k < count; ++k)
    out << "  const " << fn.operandTypes[k] << " a" << k << " = x" << k << "[at" << k << "];\n";
  out << "  " << fn.resultType << " r;\n  " << fn.body << "\n  y[yAt] = r;\n}\n";
  return out.str();
}

}  // namespace kiln::kernelgen
