#include "backends/cpu/cpu_device.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include "backends/cpu/isa.h"
#include "backends/cpu/kernels.h"
#include "backends/reference/kernel_helpers.h"
#include "backends/reference/reference.h"
#include "ir/type.h"
#include "runtime/weight_copies.h"

namespace kiln::cpu {
namespace {
// Links into every runtime whole (backends/CMakeLists.txt), so it runs as the runtime loads.
const rt::DeviceRegistration<CpuDevice> kRegistration;

// The rows of a weight copy that a gather reads, pinned (runtime/weight_copies.h:
// read again where the CPU released them); the whole table when it gathers
// along another axis.
Expected<rt::WeightPin> pinGatheredRows(const KernelContext& ctx) {
  const Tensor& table = *ctx.input(0);
  const Tensor& indices = *ctx.input(1);
  const int64_t axis = ops::wrapAxis(ctx.attrs.getInt("axis"), table.rank());
  if (axis != 0 || !isInteger(indices.dtype()) || table.shape()[0] == 0)
    return rt::WeightPin::of(table.data(), table.byteSize());
  const int64_t count = table.shape()[0];
  std::vector<int64_t> rows;
  for (int64_t index : indices.toInts())
    if (index >= -count && index < count) rows.push_back(index < 0 ? index + count : index);  // else the kernel's error
  return rt::WeightPin::ofRows(table.data(), table.byteSize() / static_cast<uint64_t>(count), rows);
}

}  // namespace

Expected<std::shared_ptr<void>> CpuDevice::reserveArena(std::string_view memory, size_t bytes) {
  if (!hasMemory(memory))
    return Status::error("device 'cpu' has no memory space '", memory, "' (it has 'host')");
  if (bytes == 0) return std::shared_ptr<void>();
  // MAP_NORESERVE: an arena planned for the largest shapes costs only the
  // pages a run of smaller shapes writes.
  void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
  if (base == MAP_FAILED)
    return Status::error("cannot reserve a ", bytes, "-byte arena in host memory: ", std::strerror(errno));
  return std::shared_ptr<void>(base, [bytes](void* p) { ::munmap(p, bytes); });
}

Expected<Tensor> CpuDevice::allocate(DType dtype, const std::vector<int64_t>& shape) {
  Expected<uint64_t> bytes = rt::tensorBytes(dtype, shape);
  if (!bytes) return bytes.status();
  try {
    return Tensor::allocate(dtype, shape);
  } catch (const std::bad_alloc&) {
    return Status::error("out of memory allocating ", dtypeName(dtype), shapeStr(shape), " (", *bytes,
                         " bytes)");
  }
}

// Every op the reference backend has a kernel for: the fast kernels cover a subset.
bool CpuDevice::supports(const OpDef& def) const { return referenceKernel(def.kind) != nullptr; }

Expected<std::vector<std::pair<std::string, std::string>>> CpuDevice::properties() {
  std::string isa(isaName(activeIsa()));
  if (activeIsa() != detectedIsa()) isa += cat(" (capped by KILN_ISA; the CPU has ", isaName(detectedIsa()), ")");
  const long pages = ::sysconf(_SC_PHYS_PAGES), pageSize = ::sysconf(_SC_PAGESIZE);
  const int64_t memoryMb = pages > 0 && pageSize > 0 ? int64_t{pages} * pageSize / (1024 * 1024) : 0;
  return std::vector<std::pair<std::string, std::string>>{
      {"isa", isa},
      {"hardware_threads", std::to_string(std::thread::hardware_concurrency())},
      {"memory_mb", std::to_string(memoryMb)}};
}

Status CpuDevice::run(const OpDef& def, const Attributes& attrs, std::span<const Tensor* const> inputs,
                      std::span<Tensor* const> outputs, const KvCacheBinding* kvCache) {
  const KernelFn reference = referenceKernel(def.kind);
  if (!reference) return Status::error("op '", def.name, "' has no CPU kernel");
  KernelContext ctx{def, attrs, inputs, outputs, kvCache};
  Expected<rt::WeightPin> rows = def.kind == OpKind::Gather && rt::isWeightCopy(inputs[0]->data())
                                     ? pinGatheredRows(ctx)
                                     : rt::WeightPin::of(nullptr, 0);
  if (!rows) return rows.status().withContext(cat(def.name, ": "));
  if (FastKernel fast = fastKernelFor(def.kind)) {
    if (std::optional<Status> ran = fast(ctx)) return *ran;
  }
  if (def.kind != OpKind::Matmul) return reference(ctx);
  const bool bIsWeight = isConstant(inputs[1]->data());
  if (onednnMatmul_) {
    if (std::optional<Status> ran = gemm_.runMatmul(ctx, bIsWeight)) return *ran;
  }
  // The reference reads b in place: a weight copy the matmul released must be read again.
  Expected<rt::WeightPin> pin = rt::WeightPin::of(bIsWeight ? inputs[1]->data() : nullptr, inputs[1]->byteSize());
  if (!pin) return pin.status().withContext("matmul: ");
  return reference(ctx);
}

void CpuDevice::adoptConstants(std::span<const Tensor* const> weights) {
  std::lock_guard lock(constantsMutex_);
  for (const Tensor* w : weights) {
    if (!w->data() || ++constants_[w->data()] > 1) continue;
    // The loader read every page of the file (its checksum); a weight's pages
    // come back from the page cache as kernels touch them, and a matmul
    // weight's are released again once packed, so weights never sit in
    // memory twice and unused ones (most embedding rows) not at all.
    releaseCleanPages(w->data(), w->byteSize());
  }
}

void CpuDevice::forgetConstants(std::span<const Tensor* const> weights) {
  std::lock_guard lock(constantsMutex_);
  for (const Tensor* w : weights) {
    auto it = constants_.find(w->data());
    if (it == constants_.end() || --it->second > 0) continue;
    constants_.erase(it);
    gemm_.forgetWeight(w->data());
  }
}

bool CpuDevice::isConstant(const void* data) const {
  std::lock_guard lock(constantsMutex_);
  return constants_.count(data) != 0;
}

}  // namespace kiln::cpu
