#include "backends/opencl/opencl_device.h"

#include <cstring>
#include <limits>

#include "backends/opencl/op_kernels.h"

namespace kiln::opencl {
namespace {
// Links into every runtime whole (backends/CMakeLists.txt), so it runs as the runtime loads.
const rt::DeviceRegistration<OpenClDevice> kRegistration;
}  // namespace

Expected<ClContext*> OpenClDevice::context() {
  std::call_once(opened_, [this] {
    Expected<std::shared_ptr<ClContext>> opened = ClContext::open();
    if (opened) context_ = *opened;
    else openError_ = opened.status();
  });
  if (!context_) return openError_;
  return context_.get();
}

bool OpenClDevice::supports(const OpDef& def) const {
  return def.kind == OpKind::Transfer || openclKernels().get(def.kind) != nullptr;
}

Expected<std::vector<std::pair<std::string, std::string>>> OpenClDevice::properties() {
  Expected<ClContext*> cl = context();
  if (!cl) return cl.status();
  return (*cl)->properties();
}

Expected<std::shared_ptr<void>> OpenClDevice::reserveArena(std::string_view memory, size_t bytes) {
  if (!hasMemory(memory))
    return Status::error("device 'opencl' has no memory space '", memory, "' (it has 'opencl')");
  Expected<ClContext*> cl = context();
  if (!cl) return cl.status();
  if (bytes == 0) return std::shared_ptr<void>();
  return (*cl)->reserve(bytes);
}

Expected<Tensor> OpenClDevice::allocate(DType dtype, const std::vector<int64_t>& shape) {
  Expected<ClContext*> cl = context();
  if (!cl) return cl.status();
  uint64_t bytes = dtypeSize(dtype);
  for (int64_t d : shape) {
    if (d < 0) return Status::error("cannot allocate a tensor of shape ", shapeStr(shape));
    if (d != 0 && bytes > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
      return Status::error("tensor of shape ", shapeStr(shape), " is too large to allocate");
    bytes *= static_cast<uint64_t>(d);
  }
  Expected<std::shared_ptr<void>> block = (*cl)->reserve(bytes);
  if (!block) return block.status();
  return Tensor::view(dtype, shape, block->get(), *block);
}

Status OpenClDevice::run(const OpDef& def, const Attributes& attrs, std::span<const Tensor* const> inputs,
                         std::span<Tensor* const> outputs, const KvCacheBinding* kvCache) {
  Expected<ClContext*> cl = context();
  if (!cl) return cl.status();
  if (def.kind == OpKind::Transfer) return transfer(**cl, *inputs[0], *outputs[0]);
  const OpenClKernel kernel = openclKernels().get(def.kind);
  if (!kernel) return Status::error("op '", def.name, "' has no OpenCL kernel");
  return kernel(**cl, KernelContext{def, attrs, inputs, outputs, kvCache});
}

Status OpenClDevice::transfer(ClContext& cl, const Tensor& from, const Tensor& to) {
  const size_t bytes = from.byteSize();
  if (to.byteSize() != bytes)
    return Status::error("transfer: ", shapeStr(from.shape()), " into ", shapeStr(to.shape()));
  if (bytes == 0) return Status::ok();
  const std::optional<DeviceAddress> source = cl.find(from.data());
  const std::optional<DeviceAddress> destination = cl.find(to.data());
  if (source && destination) return cl.copy(*destination, *source, bytes);
  if (destination) return cl.write(*destination, from.data(), bytes);
  if (source) return cl.read(to.data(), *source, bytes);
  std::memcpy(to.data(), from.data(), bytes);  // host to host: nothing of the device's
  return Status::ok();
}

}  // namespace kiln::opencl
