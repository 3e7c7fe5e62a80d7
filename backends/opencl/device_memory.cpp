#include "backends/opencl/device_memory.h"

#include <sys/mman.h>

#include <algorithm>

namespace kiln::opencl {

void* DeviceMemory::reserveAddresses(size_t bytes) {
  // PROT_NONE and MAP_NORESERVE: address space only, no memory behind it.
  void* base = ::mmap(nullptr, std::max<size_t>(bytes, 1), PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return base == MAP_FAILED ? nullptr : base;
}

void DeviceMemory::releaseAddresses(void* base, size_t bytes) { ::munmap(base, std::max<size_t>(bytes, 1)); }

void DeviceMemory::add(const void* base, size_t bytes, cl_mem buffer) {
  std::lock_guard lock(mutex_);
  blocks_[reinterpret_cast<uintptr_t>(base)] = Block{bytes, buffer};
}

void DeviceMemory::remove(const void* base) {
  std::lock_guard lock(mutex_);
  blocks_.erase(reinterpret_cast<uintptr_t>(base));
}

std::optional<DeviceAddress> DeviceMemory::find(const void* address) const {
  const auto at = reinterpret_cast<uintptr_t>(address);
  std::lock_guard lock(mutex_);
  auto next = blocks_.upper_bound(at);
  if (next == blocks_.begin()) return std::nullopt;
  const auto& [base, block] = *std::prev(next);
  // The end is not the block's: another mapping (a host arena) may start
  // right there. A block of no bytes still owns its base.
  if (at - base >= std::max<size_t>(block.bytes, 1)) return std::nullopt;
  return DeviceAddress{block.buffer, at - base};
}

}  // namespace kiln::opencl
