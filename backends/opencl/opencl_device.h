// The OpenCL device: memory space "opencl" (one cl_mem per arena or lone
// tensor, named by a host address range that faults if the host touches it:
// device_memory.h), and the kernels of op_kernels.h run on one in-order
// queue. OpenCL is loaded at first use (cl_api.h); without it every call
// that needs the device says "no OpenCL platform: ..." and why. Registers
// itself as device "opencl" (opencl_device.cpp).
#pragma once

#include <memory>
#include <mutex>

#include "backends/opencl/cl_context.h"
#include "runtime/device.h"

namespace kiln::opencl {

class OpenClDevice final : public rt::Device {
 public:
  static constexpr std::string_view kName = "opencl";
  std::string_view name() const override { return kName; }
  bool hasMemory(std::string_view memory) const override { return memory == "opencl"; }
  bool supports(const OpDef& def) const override;
  // The OpenCL platform and device (ClContext::properties); the error says
  // why there is none.
  Expected<std::vector<std::pair<std::string, std::string>>> properties() override;
  Expected<std::shared_ptr<void>> reserveArena(std::string_view memory, size_t bytes) override;
  Expected<Tensor> allocate(DType dtype, const std::vector<int64_t>& shape) override;
  // A transfer copies between host and device memory (or within the
  // device), whichever side each tensor's address lies in.
  Status run(const OpDef& def, const Attributes& attrs, std::span<const Tensor* const> inputs,
             std::span<Tensor* const> outputs, const KvCacheBinding* kvCache) override;

  // The programs the ops placed here will build (ahead_code.h), with this
  // machine's binaries when it has an OpenCL device.
  // (`architectures` does not apply: binaries are for this machine's driver.)
  Expected<std::vector<uint8_t>> compileAhead(const Graph& graph, const SymbolBindings& bounds,
                                              const std::vector<std::string>& architectures) override;
  // Each program from its binary when the blob's key is this device's (and
  // KILN_OPENCL_IGNORE_BINARIES is unset), else from its source, saying so
  // once per process on stderr.
  Status loadAhead(std::span<const uint8_t> code) override;
  Status synchronize() override;

  // The device's context, opened on first use; the error says why there is none.
  Expected<ClContext*> context();

 private:
  Status transfer(ClContext& cl, const Tensor& from, const Tensor& to);

  std::once_flag opened_;
  std::shared_ptr<ClContext> context_;
  Status openError_;
};

}  // namespace kiln::opencl
