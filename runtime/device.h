// What a backend implements so the executor can run a planned program on it:
// reserve an arena in the device's memory, allocate a lone tensor there, and
// run one op into preallocated outputs. The memory plan names each register's
// device and memory space; the executor finds the device by that name in the
// device registry (findDevice). This header and the registry are the library
// kiln_device, below both the runtime and the backends: a backend includes
// this header and registers its device from its own library (DeviceRegistration
// below), and the runtime includes no backend. docs/architecture.md, "Adding a
// device", names the files a new backend touches. The CPU backend
// (backends/cpu) is the first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ir/attributes.h"
#include "ir/dtype.h"
#include "ir/graph.h"
#include "ir/op_registry.h"
#include "ir/status.h"
#include "ir/tensor.h"
#include "runtime/kernel.h"

namespace kiln::rt {

// Every register's slot in an arena starts on this boundary (the planner
// aligns offsets to it), so an arena base must be at least as aligned.
inline constexpr size_t kArenaAlignment = 64;

class Device {
 public:
  virtual ~Device() = default;

  virtual std::string_view name() const = 0;  // "cpu", as the plan names it
  // Whether the device can address registers in this memory space ("host").
  virtual bool hasMemory(std::string_view memory) const = 0;
  // Whether run() can execute ops of this kind.
  virtual bool supports(const OpDef& def) const = 0;
  // What `kiln devices` prints of the device, as (name, value) pairs in the
  // order to print them ("isa", "avx512"); `kiln calibrate` reads
  // "memory_mb" from them. An error when the device cannot be used on this
  // machine, its message saying why ("no OpenCL platform: ..."). Default:
  // nothing to say.
  virtual Expected<std::vector<std::pair<std::string, std::string>>> properties() {
    return std::vector<std::pair<std::string, std::string>>{};
  }
  // One block of `bytes` in `memory`, kArenaAlignment-aligned, reserved but
  // not touched: pages cost nothing until a kernel writes them. The block
  // lives as long as the returned pointer (or a copy) does.
  virtual Expected<std::shared_ptr<void>> reserveArena(std::string_view memory, size_t bytes) = 0;
  // A lone tensor of the given concrete shape in the device's default
  // memory, for a register the plan could not size (a dim known only at run
  // time) or whose value outgrew its slot.
  virtual Expected<Tensor> allocate(DType dtype, const std::vector<int64_t>& shape) = 0;
  // Runs one op. Inputs are null for absent optional operands; outputs have
  // the shapes inference gave and may alias an input where the op's
  // definition allows it (OpDef::inplaceOperands, resultIsView). `kvCache`
  // is set for an attention op of a stateful session's step (the session's
  // KV cache, see KvCacheBinding; outputs then hold only `out`), null
  // otherwise. Must be safe to call from several threads at once on
  // distinct tensors.
  virtual Status run(const OpDef& def, const Attributes& attrs, std::span<const Tensor* const> inputs,
                     std::span<Tensor* const> outputs, const KvCacheBinding* kvCache) = 0;
  // Waits until every op run() has queued is done: run() may return before
  // an asynchronous device finishes, and a profiler timing each op needs
  // the device's time in that op's. Default: run() is synchronous.
  virtual Status synchronize() { return Status::ok(); }
  // An executor's weights: their bytes stay unchanged until the matching
  // forgetConstants(), so the device may keep derived forms of them (the
  // CPU device packs matmul weights) keyed by address. Calls nest: a weight
  // adopted twice is forgotten after the second forget. Default: nothing.
  virtual void adoptConstants(std::span<const Tensor* const> weights) {}
  virtual void forgetConstants(std::span<const Tensor* const> weights) {}

  // Ahead-of-time code (docs/artifact.md, "Device code"). At compile time:
  // the device's code for the ops the placed `graph` puts on it
  // (op.placement() == name()), its dims at `bounds` (the memory plan's; a
  // dim with no value there is predicted for nothing), for `architectures`
  // (`kiln compile --cuda-arch`: what a device that compiles for several
  // generations builds for; empty: its default; a device that builds for
  // its own driver ignores it), as one blob the artifact carries; empty
  // when the device has none. Works without the device's driver (then the
  // blob holds what can be had without it). A nonempty blob starts with a
  // u32 program count and a u64 count of binary bytes, which `kiln inspect`
  // shows; the rest is the device's own. Default: none.
  virtual Expected<std::vector<uint8_t>> compileAhead(const Graph& graph, const SymbolBindings& bounds,
                                                      const std::vector<std::string>& architectures) {
    return std::vector<uint8_t>{};
  }
  // At load, before the executor is made: the blob compileAhead made, so
  // the device readies its code now and the first run builds nothing. A blob
  // the device cannot read is an error saying why. Default: ignores it.
  virtual Status loadAhead(std::span<const uint8_t> code) { return Status::ok(); }
  // What `kiln inspect` says of a blob compileAhead made, one line per
  // program or so, without loading it (the CUDA device: each program's
  // architectures); a blob it cannot read says why. Default: nothing.
  virtual std::vector<std::string> describeAhead(std::span<const uint8_t> code) const { return {}; }
};

// The bytes of a tensor of this dtype and shape, for allocate(): an error
// for a negative dim or a size past 64 bits, before any memory is asked for.
Expected<uint64_t> tensorBytes(DType dtype, const std::vector<int64_t>& shape);

// The device the plan calls `name`, or null when this runtime has none such.
// Devices are stateless and shared by every session: each is made on its
// first lookup and lives until the program exits.
Device* findDevice(std::string_view name);
// Every registered device, ordered by name (each made if not yet).
std::vector<Device*> registeredDevices();

// Registration. A backend's library holds one DeviceRegistration object,
//   const rt::DeviceRegistration<CpuDevice> kRegistration;
// whose constructor, run as the library loads, adds the device under
// D::kName. Nothing refers to that object, so the build links every device
// library whole (kiln_add_device in backends/CMakeLists.txt), or the linker
// would drop it from a static library.
using DeviceFactory = std::unique_ptr<Device> (*)();

// Adds a device under `name`, made by `make` on first lookup; make's device
// answers name() with `name`. An error for an empty name or one taken.
Status registerDevice(std::string_view name, DeviceFactory make);

namespace detail {
// registerDevice at load time, where no caller could take an error: prints it
// and aborts (two devices of one name are a build bug, as a twice-declared op).
void registerDeviceAtLoad(std::string_view name, DeviceFactory make);
}  // namespace detail

// D: a Device with a default constructor and `static constexpr
// std::string_view kName`, the name its name() returns.
template <class D>
struct DeviceRegistration {
  DeviceRegistration() {
    detail::registerDeviceAtLoad(D::kName, []() -> std::unique_ptr<Device> { return std::make_unique<D>(); });
  }
};

}  // namespace kiln::rt
