// The CPU device: host memory, and each op run by its registry reference
// kernel (OpDef::reference). Plain loops; speed comes later.
#pragma once

#include "runtime/device.h"

namespace kiln::cpu {

class CpuDevice final : public rt::Device {
 public:
  std::string_view name() const override { return "cpu"; }
  bool supports(const OpDef& def) const override { return def.reference != nullptr; }
  Expected<Tensor> allocate(DType dtype, const std::vector<int64_t>& shape) override;
  Status run(const OpDef& def, const Attributes& attrs, std::span<const Tensor* const> inputs,
             std::span<Tensor* const> outputs) override;
};

}  // namespace kiln::cpu
