// How a device runs one op: the kernel's view of the op (its definition,
// attributes, inputs and preallocated outputs, and for attention in a
// stateful session the session's KV cache). Run-time state, so it lives here
// in kiln_device and not in the IR: the reference kernels
// (backends/reference) and every device's kernels are functions of it.
#pragma once

#include <cstdint>
#include <span>

#include "ir/attributes.h"
#include "ir/op_registry.h"
#include "ir/status.h"
#include "ir/tensor.h"

namespace kiln {

// A decoder's KV cache that a stateful session keeps between runs
// (docs/kv-cache.md): per (batch, kv head), `capacity` rows of the head dim
// in the attention's dtype, of which rows [0, past) hold the past keys and
// values. An attention kernel given one reads the past from it (not from
// its past_k/past_v operands), writes the new (roped) rows in place at
// [past, past + new) and attends over [0, past + new); it has no
// present_k/present_v results to write.
struct KvCacheBinding {
  void* keys = nullptr;    // [batch, kv_heads, capacity, head_dim]
  void* values = nullptr;  // [batch, kv_heads, capacity, value_dim]
  int64_t capacity = 0;
  int64_t past = 0;
};

// Inputs are null for absent optional operands; outputs are allocated with
// the shapes that inference gave on the concrete input shapes.
struct KernelContext {
  const OpDef& def;
  const Attributes& attrs;
  std::span<const Tensor* const> inputs;
  std::span<Tensor* const> outputs;
  const KvCacheBinding* kvCache = nullptr;  // only for attention, in a stateful session
  const Tensor* input(size_t i) const { return i < inputs.size() ? inputs[i] : nullptr; }
};
using KernelFn = Status (*)(const KernelContext& ctx);

}  // namespace kiln
