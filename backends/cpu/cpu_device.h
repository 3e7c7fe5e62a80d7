// The CPU device: host memory; an op runs by its fast kernel (kernels.h)
// where one accepts it, a matmul by oneDNN (backends/cpu/gemm.h; KILN_GEMM=
// reference turns that off), anything else by its reference kernel
// (backends/reference). The matmul weights of adopted constants are packed
// on first use: see docs/performance.md. It registers itself as device "cpu"
// (cpu_device.cpp); the runtime finds it by that name.
#pragma once

#include <mutex>
#include <unordered_map>

#include "backends/cpu/gemm.h"
#include "runtime/device.h"

namespace kiln::cpu {

class CpuDevice final : public rt::Device {
 public:
  static constexpr std::string_view kName = "cpu";
  std::string_view name() const override { return kName; }
  bool hasMemory(std::string_view memory) const override { return memory == "host"; }
  bool supports(const OpDef& def) const override;
  // The vector ISA its kernels use, hardware threads, physical memory.
  Expected<std::vector<std::pair<std::string, std::string>>> properties() override;
  // An anonymous private mapping: page-aligned, and the kernel gives it
  // pages only as they are first written.
  Expected<std::shared_ptr<void>> reserveArena(std::string_view memory, size_t bytes) override;
  Expected<Tensor> allocate(DType dtype, const std::vector<int64_t>& shape) override;
  Status run(const OpDef& def, const Attributes& attrs, std::span<const Tensor* const> inputs,
             std::span<Tensor* const> outputs, const KvCacheBinding* kvCache) override;
  void adoptConstants(std::span<const Tensor* const> weights) override;
  void forgetConstants(std::span<const Tensor* const> weights) override;

 private:
  bool isConstant(const void* data) const;

  const bool onednnMatmul_ = onednnMatmulFromEnv();
  Gemm gemm_;  // thread-safe: one serves every session
  mutable std::mutex constantsMutex_;
  std::unordered_map<const void*, int> constants_;  // adopted weight data -> adoptions
};

}  // namespace kiln::cpu
