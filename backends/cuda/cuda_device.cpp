#include "backends/cuda/cuda_device.h"

#include <iostream>

#include "backends/cuda/cuda_ahead.h"
#include "backends/cuda/op_kernels.h"

namespace kiln::cuda {
namespace {
// Links into every runtime whole (backends/CMakeLists.txt), so it runs as the runtime loads.
const rt::DeviceRegistration<CudaDevice> kRegistration;

std::once_flag ptxSaid;

// "sm_80, sm_90, compute_90": what a program was compiled for.
std::string architecturesOf(const CudaProgram& program) {
  std::string list;
  for (const CudaImage& image : program.images) list += cat(list.empty() ? "" : ", ", image.architecture);
  return list;
}
}  // namespace

Expected<std::vector<uint8_t>> CudaDevice::compileAhead(const Graph& graph, const SymbolBindings&,
                                                        const std::vector<std::string>& architectures) {
  const std::vector<ProgramText> programs = usedPrograms(graph);
  if (programs.empty()) return std::vector<uint8_t>{};
  Expected<CudaCode> code =
      compileCudaCode(programs, architectures.empty() ? kDefaultCudaArchitectures : architectures);
  if (!code) return code.status();
  return encodeCudaCode(*code);
}

Status CudaDevice::loadAhead(std::span<const uint8_t> blob) {
  if (blob.empty()) return Status::ok();
  Expected<CudaCode> code = decodeCudaCode(blob);
  if (!code) return code.status();
  Expected<CudaContext*> cuda = context();
  if (!cuda) return cuda.status();
  const std::string& architecture = (*cuda)->architecture();
  for (const CudaProgram& program : code->programs) {
    const CudaImage* image = pickImage(program, architecture);
    if (!image)
      return Status::error("cuda: program '", program.name, "' of the artifact has no code for this GPU (",
                           architecture, "): it was compiled for ", architecturesOf(program));
    if (image->architecture.rfind("compute_", 0) == 0)
      std::call_once(ptxSaid, [&] {
        std::cerr << "kiln: cuda: the artifact has no cubin for " << architecture << "; the driver compiles its "
                  << image->architecture << " PTX\n";
      });
    KILN_RETURN_IF_ERROR((*cuda)->loadModule(program.name, image->code));
  }
  return Status::ok();
}

std::vector<std::string> CudaDevice::describeAhead(std::span<const uint8_t> blob) const {
  Expected<CudaCode> code = decodeCudaCode(blob);
  if (!code) return {code.status().message()};
  std::vector<std::string> lines;
  for (const CudaProgram& program : code->programs)
    lines.push_back(cat(program.name, ": ", architecturesOf(program), " (", code->compiler, ")"));
  return lines;
}

Expected<CudaContext*> CudaDevice::context() {
  std::call_once(opened_, [this] {
    Expected<std::shared_ptr<CudaContext>> opened = CudaContext::open();
    if (opened) context_ = *opened;
    else openError_ = opened.status();
  });
  if (!context_) return openError_;
  return context_.get();
}

bool CudaDevice::supports(const OpDef& def) const {
  return def.kind == OpKind::Transfer || cudaKernels().get(def.kind).run != nullptr;
}

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

Status CudaDevice::run(const OpDef& def, const Attributes& attrs, std::span<const Tensor* const> inputs,
                       std::span<Tensor* const> outputs, const KvCacheBinding* kvCache) {
  Expected<CudaContext*> cuda = context();
  if (!cuda) return cuda.status();
  if (def.kind == OpKind::Transfer) return transfer(**cuda, *inputs[0], *outputs[0]);
  const CudaKernel kernel = cudaKernels().get(def.kind).run;
  if (!kernel) return Status::error("op '", def.name, "' has no CUDA kernel");
  return kernel(**cuda, KernelContext{def, attrs, inputs, outputs, kvCache});
}

Status CudaDevice::transfer(CudaContext& cuda, const Tensor& from, const Tensor& to) {
  if (to.byteSize() != from.byteSize())
    return Status::error("transfer: ", shapeStr(from.shape()), " into ", shapeStr(to.shape()));
  if (from.byteSize() == 0) return Status::ok();
  return cuda.copy(to.data(), from.data(), from.byteSize());
}

Status CudaDevice::synchronize() {
  Expected<CudaContext*> cuda = context();
  if (!cuda) return cuda.status();
  return (*cuda)->synchronize();
}

}  // namespace kiln::cuda
