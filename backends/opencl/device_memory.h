// Which OpenCL buffer a device address stands for. Every block of device
// memory (an arena, a lone tensor) is one cl_mem plus a host address range
// of the same size reserved with no access rights: tensors get unique host
// addresses, as the executor and planner expect, and a host read of device
// memory faults instead of returning garbage. This table maps an address in
// such a range back to (buffer, byte offset).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

#include "backends/opencl/cl_api.h"

namespace kiln::opencl {

struct DeviceAddress {
  cl_mem buffer = nullptr;
  size_t offset = 0;  // bytes from the buffer's start
};

class DeviceMemory {
 public:
  // An address range of `bytes` (at least one page) that faults on access,
  // or null when the system refuses one.
  static void* reserveAddresses(size_t bytes);
  static void releaseAddresses(void* base, size_t bytes);

  void add(const void* base, size_t bytes, cl_mem buffer);
  void remove(const void* base);
  // The buffer holding `address`; nullopt when it lies in no device block.
  std::optional<DeviceAddress> find(const void* address) const;

 private:
  struct Block {
    size_t bytes = 0;
    cl_mem buffer = nullptr;
  };
  mutable std::mutex mutex_;
  std::map<uintptr_t, Block> blocks_;  // by base address
};

}  // namespace kiln::opencl
