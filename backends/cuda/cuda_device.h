// The CUDA device: memory space "cuda" (one cuMemAlloc block per arena or
// lone tensor, named by its device pointer: cuda_context.h). The driver is
// loaded at first use (cuda_api.h); without it every call that needs the
// device says "no CUDA driver: ..." and why, and `kiln devices` lists the
// device as unavailable with that reason. This first stage moves tensors
// (transfer), compiles the kernel programs of the ops placed on it ahead of
// time and loads them (cuda_ahead.h), and runs the ops of op_kernels.h with
// them (docs/architecture.md). Registers itself as device "cuda"
// (cuda_device.cpp).
#pragma once

#include <memory>
#include <mutex>

#include "backends/cuda/cuda_context.h"
#include "runtime/device.h"

namespace kiln::cuda {

class CudaDevice final : public rt::Device {
 public:
  static constexpr std::string_view kName = "cuda";
  std::string_view name() const override { return kName; }
  bool hasMemory(std::string_view memory) const override { return memory == "cuda"; }
  bool supports(const OpDef& def) const override;
  // The device and driver (CudaContext::properties); the error says why
  // there is none.
  Expected<std::vector<std::pair<std::string, std::string>>> properties() override;
  Expected<std::shared_ptr<void>> reserveArena(std::string_view memory, size_t bytes) override;
  Expected<Tensor> allocate(DType dtype, const std::vector<int64_t>& shape) override;
  // A transfer copies between host and device memory (or within the
  // device), whichever side each tensor's address lies in; any other op runs
  // its kernel from op_kernels.h.
  Status run(const OpDef& def, const Attributes& attrs, std::span<const Tensor* const> inputs,
             std::span<Tensor* const> outputs, const KvCacheBinding* kvCache) override;
  Status synchronize() override;

  // The kernel programs the ops placed here use, compiled by NVRTC into a
  // cubin for each of `architectures` ("sm_90"; empty:
  // kDefaultCudaArchitectures) and PTX for the newest (cuda_ahead.h); "no
  // NVRTC: ..." where no toolkit is installed.
  Expected<std::vector<uint8_t>> compileAhead(const Graph& graph, const SymbolBindings& bounds,
                                              const std::vector<std::string>& architectures) override;
  // Each program's image for this GPU (its cubin, else PTX the driver
  // compiles now, saying so once on stderr) loaded into the context; an
  // error naming the architectures the artifact has when none fits.
  Status loadAhead(std::span<const uint8_t> code) override;
  // "norms: sm_80, sm_90, compute_90 (NVRTC 13.0)" per program.
  std::vector<std::string> describeAhead(std::span<const uint8_t> code) const override;

  // The device's context, opened on first use; the error says why there is none.
  Expected<CudaContext*> context();

 private:
  Status transfer(CudaContext& cuda, const Tensor& from, const Tensor& to);

  std::once_flag opened_;
  std::shared_ptr<CudaContext> context_;
  Status openError_;
};

}  // namespace kiln::cuda
