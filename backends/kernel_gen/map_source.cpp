#include "backends/kernel_gen/map_source.h"

#include <algorithm>
#include <optional>
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

namespace {

// The kernel's text. `inOrder` (the result's flag, then each operand's) says
// which tensors are walked in order, fixed in the text; without it the
// kernel takes `int inOrder`, nonzero when every tensor is, and otherwise
// walks them all by their strides (in-order strides give the same address).
std::string emitMap(Dialect dialect, const MapFunction& fn, const std::optional<std::vector<bool>>& inOrder,
                    std::string_view name) {
  const Spelling s = spelling(dialect);
  const size_t count = fn.operandTypes.size();
  const std::string shape = cat(name, "_shape");
  std::vector<bool> fixed = inOrder.value_or(std::vector<bool>(count + 1, false));
  std::ostringstream out;
  out << "\ntypedef struct { long dims[6]; long strides[" << 6 * (count + 1) << "]; } " << shape << ";\n";
  out << s.kernel << " " << name << "(" << s.global << fn.resultType << "* y, long yOffset";
  for (size_t k = 0; k < count; ++k)
    out << ", " << s.global << "const " << fn.operandTypes[k] << "* x" << k << ", long offset" << k;
  out << ", long n, " << (inOrder ? "" : "int inOrder, ") << shape << " shape) {\n  const long i = " << s.index
      << ";\n  if (i >= n) return;\n";
  out << "  long yAt = yOffset" << (fixed[0] ? " + i" : "") << ";\n";
  for (size_t k = 0; k < count; ++k)
    out << "  long at" << k << " = offset" << k << (fixed[k + 1] ? " + i" : "") << ";\n";
  if (!inOrder) {
    out << "  if (inOrder) {\n    yAt += i;\n";
    for (size_t k = 0; k < count; ++k) out << "    at" << k << " += i;\n";
    out << "  } else {\n";
  }
  if (std::count(fixed.begin(), fixed.end(), false) > 0) {
    out << "  long rest = i;\n  for (int d = KILN_MAX_RANK - 1; d >= 0; --d) {\n"
        << "    const long c = rest % shape.dims[d];\n    rest /= shape.dims[d];\n";
    if (!fixed[0]) out << "    yAt += c * shape.strides[d];\n";
    for (size_t k = 0; k < count; ++k)
      if (!fixed[k + 1]) out << "    at" << k << " += c * shape.strides[" << 6 * (k + 1) << " + d];\n";
    out << "  }\n";
  }
  if (!inOrder) out << "  }\n";
  for (size_t k = 0; k < count; ++k)
    out << "  const " << fn.operandTypes[k] << " a" << k << " = x" << k << "[at" << k << "];\n";
  out << "  " << fn.resultType << " r;\n  " << fn.body << "\n  y[yAt] = r;\n}\n";
  return out.str();
}

}  // namespace

std::string mapKernelSource(Dialect dialect, const MapFunction& fn, const std::vector<int64_t>& dims,
                            const std::vector<int64_t>& resultStrides,
                            std::span<const std::vector<int64_t>> operandStrides, std::string_view name) {
  std::vector<bool> inOrder = {walksInOrder(resultStrides, dims)};
  for (const std::vector<int64_t>& strides : operandStrides) inOrder.push_back(walksInOrder(strides, dims));
  return emitMap(dialect, fn, inOrder, name);
}

std::string mapKernelSourceAnyWalk(Dialect dialect, const MapFunction& fn, std::string_view name) {
  return emitMap(dialect, fn, std::nullopt, name);
}

}  // namespace kiln::kernelgen
