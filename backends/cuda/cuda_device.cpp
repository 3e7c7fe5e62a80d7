#include "backends/cuda/cuda_device.h"

namespace kiln::cuda {
namespace {
// Links into every runtime whole (backends/CMakeLists.txt), so it runs as the runtime loads.
const rt::DeviceRegistration<CudaDevice> kRegistration;
}  // namespace

Expected<CudaContext*> CudaDevice::context() {
  std::call_once(opened_, [this] {
    Expected<std::shared_ptr<CudaContext>> opened = CudaContext::open();
    if (opened) context_ = *opened;
    else openError_ = opened.status();
  });
  if (!context_) return openError_;
  return context_.get();
}

bool CudaDevice::supports(const OpDef& def) const { return def.kind == OpKind::Transfer; }

Expected<std::vector<std::pair<std::string, std::string>>> CudaDevice::properties() {
  Expected<CudaContext*> cuda = context();
  if (!cuda) return cuda.status();
  return (*cuda)->properties();
}

Expected<std::shared_ptr<void>> CudaDevice::reserveArena(std::string_view memory, size_t bytes) {
  if (!hasMemory(memory)) return Status::error("device 'cuda' has no memory space '", memory, "' (it has 'cuda')");
  Expected<CudaContext*> cuda = context();
  if (!cuda) return cuda.status();
  if (bytes == 0) return std::shared_ptr<void>();
  return (*cuda)->reserve(bytes);
}

Expected<Tensor> CudaDevice::allocate(DType dtype, const std::vector<int64_t>& shape) {
  Expected<CudaContext*> cuda = context();
  if (!cuda) return cuda.status();
  Expected<uint64_t> bytes = rt::tensorBytes(dtype, shape);
  if (!bytes) return bytes.status();
  Expected<std::shared_ptr<void>> block = (*cuda)->reserve(*bytes);
  if (!block) return block.status();
  return Tensor::view(dtype, shape, block->get(), *block);
}

Status CudaDevice::run(const OpDef& def, const Attributes&, std::span<const Tensor* const> inputs,
                       std::span<Tensor* const> outputs, const KvCacheBinding*) {
  Expected<CudaContext*> cuda = context();
  if (!cuda) return cuda.status();
  if (def.kind != OpKind::Transfer) return Status::error("op '", def.name, "' has no CUDA kernel");
  const Tensor& from = *inputs[0];
  const Tensor& to = *outputs[0];
  if (to.byteSize() != from.byteSize())
    return Status::error("transfer: ", shapeStr(from.shape()), " into ", shapeStr(to.shape()));
  if (from.byteSize() == 0) return Status::ok();
  return (*cuda)->copy(to.data(), from.data(), from.byteSize());
}

Status CudaDevice::synchronize() {
  Expected<CudaContext*> cuda = context();
  if (!cuda) return cuda.status();
  return (*cuda)->synchronize();
}

}  // namespace kiln::cuda
