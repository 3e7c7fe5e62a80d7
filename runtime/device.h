// What a backend implements so the executor can run ops on it: allocate a
// tensor in the device's memory and run one op into preallocated outputs.
// The CPU backend (backends/cpu) is the first; later backends plug in here.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "ir/attributes.h"
#include "ir/dtype.h"
#include "ir/op_registry.h"
#include "ir/status.h"
#include "ir/tensor.h"

namespace kiln::rt {

class Device {
 public:
  virtual ~Device() = default;

  virtual std::string_view name() const = 0;  // "cpu"
  // Whether run() can execute ops of this kind.
  virtual bool supports(const OpDef& def) const = 0;
  // A tensor of the given concrete shape in this device's memory.
  virtual Expected<Tensor> allocate(DType dtype, const std::vector<int64_t>& shape) = 0;
  // Runs one op. Inputs are null for absent optional operands; outputs are
  // allocated by allocate() with the shapes inference gave. Must be safe to
  // call from several threads at once on distinct tensors.
  virtual Status run(const OpDef& def, const Attributes& attrs, std::span<const Tensor* const> inputs,
                     std::span<Tensor* const> outputs) = 0;
};

}  // namespace kiln::rt
