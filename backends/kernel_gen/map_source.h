// The one generator of the GPU backends' element-wise kernels, in OpenCL C
// for the OpenCL device and CUDA C for the CUDA device: a kernel `map` over
// an iteration shape of rank <= 6, result element
// y[yOffset + sum(i_d * yStrides[d])] = f(a0, a1, ...), each a_k read from
// operand k at its own offset and strides (0 along a broadcast dim, negative
// for a reversed slice). The text depends on the types, the body of f and
// which tensors are walked in order; the device's prelude (its
// kernels/common file) goes before it and gives the scalar functions the
// bodies call (elementwise_bodies.h) under the same names in both dialects.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/dtype.h"

namespace kiln::kernelgen {

enum class Dialect { OpenClC, CudaC };

// Rank of the strided iteration the kernels walk (KILN_MAX_RANK).
inline constexpr size_t kMaxRank = 6;

struct MapFunction {
  std::string resultType;                 // "float", "long", "uchar", ...
  std::vector<std::string> operandTypes;  // one per operand
  std::string body;                       // statements setting `r` from a0, a1, ...
};

// The scalar type that stores `dtype` in both dialects ("float", "long",
// "int", "uchar": each prelude defines the names OpenCL C has), or "" for a
// dtype the kernels lack.
std::string scalarType(DType dtype);
// The unsigned integer type of `bytes` bytes: moves elements bit for bit.
std::string wordType(size_t bytes);
// Whether walking `strides` over `dims` visits elements 0, 1, 2, ... in order.
bool walksInOrder(const std::vector<int64_t>& strides, const std::vector<int64_t>& dims);

// The kernel `name` for `fn` over `dims` with these walks, without the
// prelude. Its parameters: the result (a pointer, then its offset in
// elements), each operand likewise, the element count `n` and the MapShape
// (dims, then the strides of the result and each operand, all padded on the
// left to kMaxRank).
std::string mapKernelSource(Dialect dialect, const MapFunction& fn, const std::vector<int64_t>& dims,
                            const std::vector<int64_t>& resultStrides,
                            std::span<const std::vector<int64_t>> operandStrides, std::string_view name = "map");

// The same kernel with the walk order left to run time, for a device that
// cannot build at run time (CUDA: its kernels are compiled ahead): its text
// depends only on `fn`, and it takes `int inOrder` after `n`, nonzero when
// every tensor is walked in order (else all are walked by their strides).
std::string mapKernelSourceAnyWalk(Dialect dialect, const MapFunction& fn, std::string_view name = "map");

}  // namespace kiln::kernelgen
