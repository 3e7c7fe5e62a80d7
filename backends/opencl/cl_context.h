// One OpenCL device as kiln uses it: its context and in-order command queue
// (which orders every transfer and kernel, so ops need no events), its
// memory blocks (DeviceMemory), and its programs, cached by source text:
// built from source on first use, or added ahead of it (from a program
// binary or the source, as an artifact's device code is loaded). Shared by
// the device object and every block of its memory, whose release needs it.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backends/opencl/cl_api.h"
#include "backends/opencl/device_memory.h"
#include "ir/status.h"
#include "ir/tensor.h"

namespace kiln::opencl {

// A kernel's arguments in order, as clSetKernelArg takes them.
class KernelArgs {
 public:
  // A tensor: its buffer, then its offset in elements (a long).
  void add(const DeviceAddress& tensor, size_t elementSize);
  template <class T>
  void add(const T& value) {
    const auto* bytes = reinterpret_cast<const std::byte*>(&value);
    values_.emplace_back(bytes, bytes + sizeof(T));
  }
  void addBytes(const void* data, size_t size);
  const std::vector<std::vector<std::byte>>& values() const { return values_; }

 private:
  std::vector<std::vector<std::byte>> values_;
};

class ClContext : public std::enable_shared_from_this<ClContext> {
 public:
  // The first GPU of any platform, else the first device of any type;
  // "no OpenCL platform: ..." saying why when there is none.
  static Expected<std::shared_ptr<ClContext>> open();
  // Every program is built with these (clBuildProgram's options).
  static constexpr const char* kBuildOptions = "";
  ~ClContext();
  ClContext(const ClContext&) = delete;
  ClContext& operator=(const ClContext&) = delete;

  const std::string& deviceName() const { return deviceName_; }
  // "platform / device / driver version": what a program binary is built
  // for; a binary is used only on a device of the same key.
  const std::string& deviceKey() const { return deviceKey_; }
  size_t maxWorkGroupSize() const { return maxWorkGroupSize_; }
  // Its platform's name, vendor and version, then the device's name, type,
  // driver version, compute units, global memory ("memory_mb") and largest
  // work group, as OpenClDevice::properties gives them.
  std::vector<std::pair<std::string, std::string>> properties() const;

  // A block of `bytes` of device memory, named by a host address range
  // (DeviceMemory); released with the last copy of the pointer.
  Expected<std::shared_ptr<void>> reserve(size_t bytes);
  std::optional<DeviceAddress> find(const void* address) const { return memory_.find(address); }

  // The kernel `name` of the program built from `source` (built once).
  Expected<cl_kernel> kernel(const std::string& source, const char* name);
  // The driver's binary of the program of `source`, built now if not yet.
  Expected<std::vector<uint8_t>> programBinary(const std::string& source);
  // Readies the program of `source` before its first use: from `binary`
  // (this device's, of this key) when given, else built from the source.
  // A binary the driver refuses is built from source instead: false then.
  Expected<bool> addProgram(const std::string& source, std::span<const uint8_t> binary);
  // How many programs were built from source (at first use or by
  // addProgram), how many were made from binaries, and how many were built
  // at first use (none ready: an artifact's code missed them). With
  // KILN_OPENCL_VERBOSE set, each build at first use says so on stderr.
  int64_t sourceBuilds() const { return sourceBuilds_; }
  int64_t binaryBuilds() const { return binaryBuilds_; }
  int64_t firstUseBuilds() const { return firstUseBuilds_; }
  // Sets the arguments and enqueues over `global` (local: null lets the
  // driver choose). Safe from several threads.
  Status launch(cl_kernel kernel, const KernelArgs& args, std::span<const size_t> global,
                const size_t* local = nullptr);

  // Host to device (asynchronous: the bytes are staged, so the source may
  // change at once), device to host (blocking, so it also waits for every
  // op before it), device to device, and a byte pattern.
  Status write(const DeviceAddress& to, const void* from, size_t bytes);
  Status read(void* to, const DeviceAddress& from, size_t bytes);
  // Until everything queued is done.
  Status finish();
  Status copy(const DeviceAddress& to, const DeviceAddress& from, size_t bytes);
  Status fill(const DeviceAddress& to, uint8_t byte, size_t bytes);

 private:
  ClContext(const ClApi& api, cl_device_id device, cl_context context, cl_command_queue queue);
  struct Program {
    cl_program program = nullptr;
    std::map<std::string, cl_kernel, std::less<>> kernels;
  };

  Expected<cl_program> build(const std::string& source);
  // The cached program of `source`, built now if not yet (`built` says so).
  // The caller holds programsMutex_.
  Expected<Program*> programOf(const std::string& source, bool& built);
  Expected<cl_program> buildFromBinary(std::span<const uint8_t> binary);
  Status buildLogError(cl_program program, cl_int error);


  const ClApi& api_;
  cl_device_id device_;
  cl_context context_;
  cl_command_queue queue_;
  std::string deviceName_, deviceKey_;
  size_t maxWorkGroupSize_ = 1;
  DeviceMemory memory_;
  std::mutex programsMutex_;
  std::map<std::string, Program, std::less<>> programs_;  // by source text
  std::atomic<int64_t> sourceBuilds_ = 0, binaryBuilds_ = 0, firstUseBuilds_ = 0;
  // clSetKernelArg changes a kernel object that every thread shares.
  std::mutex launchMutex_;
};

}  // namespace kiln::opencl
