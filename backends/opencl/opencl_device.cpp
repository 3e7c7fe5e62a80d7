#include "backends/opencl/opencl_device.h"

#include <cstdlib>
#include <cstring>
#include <iostream>

#include "backends/opencl/ahead_code.h"
#include "backends/opencl/op_kernels.h"

namespace kiln::opencl {
namespace {
// Links into every runtime whole (backends/CMakeLists.txt), so it runs as the runtime loads.
const rt::DeviceRegistration<OpenClDevice> kRegistration;

// Set (to anything but "" or "0"): artifacts' program binaries are not used,
// every program is built from its source (to measure what the binaries save).
bool binariesIgnored() {
  const char* value = std::getenv("KILN_OPENCL_IGNORE_BINARIES");
  return value && *value && std::string_view(value) != "0";
}

// Once per process: a load builds from source what it was meant to read.
void sayOnce(std::once_flag& said, const std::string& message) {
  std::call_once(said, [&] { std::cerr << "kiln: opencl: " << message << "\n"; });
}

std::once_flag mismatchSaid, refusedSaid;

std::string whyFromSource(const std::string& key, const std::string& ours) {
  if (key.empty()) return cat("the artifact has no program binaries; building its programs from source for ", ours);
  if (key == ours) return "KILN_OPENCL_IGNORE_BINARIES is set; building the artifact's programs from source";
  return cat("the artifact's programs were built for ", key, "; building them from source for ", ours);
}
}  // namespace

Expected<std::vector<uint8_t>> OpenClDevice::compileAhead(const Graph& graph, const SymbolBindings& bounds,
                                                          const std::vector<std::string>&) {
  std::vector<std::string> sources = predictedPrograms(graph, bounds);
  if (sources.empty()) return std::vector<uint8_t>{};
  AheadCode code;
  Expected<ClContext*> cl = context();  // none: the sources alone
  if (cl) code.key = (*cl)->deviceKey();
  for (std::string& source : sources) {
    AheadProgram& program = code.programs.emplace_back();
    if (cl) {
      Expected<std::vector<uint8_t>> binary = (*cl)->programBinary(source);
      if (!binary) return binary.status();
      program.binary = std::move(*binary);
    }
    program.source = std::move(source);
  }
  return encodeAheadCode(code);
}

Status OpenClDevice::synchronize() {
  Expected<ClContext*> cl = context();
  if (!cl) return cl.status();
  return (*cl)->finish();
}

Status OpenClDevice::loadAhead(std::span<const uint8_t> blob) {
  if (blob.empty()) return Status::ok();
  Expected<AheadCode> code = decodeAheadCode(blob);
  if (!code) return code.status();
  Expected<ClContext*> cl = context();
  if (!cl) return cl.status();
  const std::string& ours = (*cl)->deviceKey();
  const bool useBinaries = code->key == ours && !binariesIgnored();
  if (!useBinaries) sayOnce(mismatchSaid, whyFromSource(code->key, ours));
  for (const AheadProgram& program : code->programs) {
    // A binary built with other options than ours is not the program run() wants.
    const bool fromBinary = useBinaries && program.options == ClContext::kBuildOptions;
    Expected<bool> added =
        (*cl)->addProgram(program.source, fromBinary ? std::span<const uint8_t>(program.binary) : std::span<const uint8_t>());
    if (!added) return added.status();
    if (!*added) sayOnce(refusedSaid, cat("the driver refused a program binary of the artifact (", ours,
                                          "); building it from source"));
  }
  return Status::ok();
}

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
  Expected<uint64_t> bytes = rt::tensorBytes(dtype, shape);
  if (!bytes) return bytes.status();
  Expected<std::shared_ptr<void>> block = (*cl)->reserve(*bytes);
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
