#include "backends/cpu/cpu_device.h"

#include <limits>
#include <new>

#include "ir/type.h"

namespace kiln::cpu {

Expected<Tensor> CpuDevice::allocate(DType dtype, const std::vector<int64_t>& shape) {
  // Guard the byte count against overflow before asking for memory.
  uint64_t bytes = dtypeSize(dtype);
  for (int64_t d : shape) {
    if (d < 0) return Status::error("cannot allocate a tensor of shape ", shapeStr(shape));
    if (d != 0 && bytes > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
      return Status::error("tensor of shape ", shapeStr(shape), " is too large to allocate");
    bytes *= static_cast<uint64_t>(d);
  }
  try {
    return Tensor::allocate(dtype, shape);
  } catch (const std::bad_alloc&) {
    return Status::error("out of memory allocating ", dtypeName(dtype), shapeStr(shape), " (", bytes,
                         " bytes)");
  }
}

Status CpuDevice::run(const OpDef& def, const Attributes& attrs, std::span<const Tensor* const> inputs,
                      std::span<Tensor* const> outputs) {
  if (!def.reference) return Status::error("op '", def.name, "' has no CPU kernel");
  KernelContext ctx{def, attrs, inputs, outputs};
  return def.reference(ctx);
}

}  // namespace kiln::cpu
