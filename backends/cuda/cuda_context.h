// One CUDA device as kiln uses it: the first device the driver lists, its
// primary context (shared with cuBLAS and any runtime-API code in the app),
// and its memory blocks. A block's device pointer is the address its tensors
// hold: with unified addressing (every 64-bit CUDA device) device and host
// addresses never overlap, and the host faults if it touches one, so a
// tensor in device memory needs no other handle. Shared by the device object
// and every block, whose release needs it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backends/cuda/cuda_api.h"
#include "ir/status.h"

namespace kiln::cuda {

class CudaContext : public std::enable_shared_from_this<CudaContext> {
 public:
  // The first CUDA device; an error saying why there is none ("no CUDA
  // driver: ...", "no CUDA device: ...").
  static Expected<std::shared_ptr<CudaContext>> open();
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  // The device's name, compute capability ("sm_90"), multiprocessors,
  // memory ("memory_mb") and the driver's version, as CudaDevice::properties
  // gives them.
  std::vector<std::pair<std::string, std::string>> properties() const;
  // "sm_90": the architecture a cubin must be built for to run here.
  const std::string& architecture() const { return architecture_; }

  // A block of `bytes` of device memory at its device pointer, freed with
  // the last copy of the pointer.
  Expected<std::shared_ptr<void>> reserve(size_t bytes);
  // Whether `address` lies in a block of this device's memory.
  bool owns(const void* address) const;

  // Copies `bytes` between any two of host and device memory (as owns()
  // tells them apart; host to host is a memcpy); returns when it is done.
  Status copy(void* to, const void* from, size_t bytes);
  Status synchronize();

  // Loads a program's cubin or PTX (the driver compiles PTX now) under its
  // name, replacing one loaded before; the modules go with the context.
  Status loadModule(const std::string& name, const std::vector<uint8_t>& image);

  // Runs kernel `kernel` of the loaded program `program` on `grid` blocks of
  // `block` threads, on the default stream (after every copy and kernel
  // before it); `arguments` point at the kernel's parameters in order.
  Status launch(const std::string& program, const char* kernel, unsigned grid, unsigned block,
                std::span<void* const> arguments);

 private:
  CudaContext(const CudaApi& api, CUdevice device, CUcontext context);
  Status check(CUresult result, const char* what) const;
  void release(CUdeviceptr pointer);
  Expected<CUfunction> function(const std::string& program, const char* kernel);

  const CudaApi& api_;
  CUdevice device_ = 0;
  CUcontext context_ = nullptr;
  std::string name_, architecture_;
  int multiprocessors_ = 0, driverVersion_ = 0;
  size_t memoryBytes_ = 0;

  mutable std::mutex mutex_;
  std::map<uintptr_t, size_t> blocks_;  // start -> bytes, of every live block
  std::map<std::string, CUmodule> modules_;  // by program name
  std::map<std::pair<std::string, std::string>, CUfunction> functions_;  // by (program, kernel), found once
};

}  // namespace kiln::cuda
