#include "runtime/weight_copies.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

namespace kiln::rt {
namespace {

struct Copy {
  WeightCopySource source;
  uint8_t* base = nullptr;
  size_t mapped = 0;
  bool resident = false;
  int pins = 0;
  bool releaseWanted = false;
};

// Every live copy by address; one lock for all (reads and pins are rare:
// building a packed weight, or a matmul that reads its b in place).
std::mutex& registryMutex() {
  static std::mutex mutex;
  return mutex;
}
std::map<uintptr_t, Copy*>& registry() {
  static std::map<uintptr_t, Copy*> copies;
  return copies;
}
std::atomic<int> liveCopies{0};
std::atomic<uint64_t> residentBytes{0};

// The copy holding `data`, or null. Caller holds the lock.
Copy* find(const void* data) {
  auto& copies = registry();
  auto it = copies.upper_bound(reinterpret_cast<uintptr_t>(data));
  if (it == copies.begin()) return nullptr;
  --it;
  Copy* copy = it->second;
  return static_cast<const uint8_t*>(data) < copy->base + copy->mapped ? copy : nullptr;
}

Status readIn(Copy& copy) {
  const WeightCopySource& s = copy.source;
  for (uint64_t done = 0; done < s.bytes;) {
    const ssize_t n = ::pread(s.fd, copy.base + done, s.bytes - done, static_cast<off_t>(s.offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return Status::error("cannot read ", s.what, ": ", n < 0 ? std::strerror(errno) : "unexpected end of file");
    done += static_cast<uint64_t>(n);
  }
  if (s.fingerprintOf(copy.base, s.bytes) != s.fingerprint)
    return Status::error(s.what, " has changed since the artifact was loaded; recompile");
  copy.resident = true;
  residentBytes += s.bytes;
  return Status::ok();
}

void letGo(Copy& copy) {
  ::madvise(copy.base, copy.mapped, MADV_DONTNEED);  // private anonymous pages: freed, read back as zeros
  copy.resident = false;
  copy.releaseWanted = false;
  residentBytes -= copy.source.bytes;
}

}  // namespace

Expected<std::shared_ptr<void>> readWeightCopy(const WeightCopySource& source, void** data) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t mapped = (std::max<uint64_t>(source.bytes, 1) + page - 1) / page * page;
  void* base = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED)
    return Status::error("cannot reserve ", source.bytes, " bytes for ", source.what, ": ", std::strerror(errno));
  auto* copy = new Copy{source, static_cast<uint8_t*>(base), mapped};
  copy->source.fd = ::fcntl(source.fd, F_DUPFD_CLOEXEC, 0);
  std::shared_ptr<void> owner(base, [copy](void*) {
    {
      std::lock_guard lock(registryMutex());
      registry().erase(reinterpret_cast<uintptr_t>(copy->base));
      if (copy->resident) residentBytes -= copy->source.bytes;
    }
    --liveCopies;
    ::munmap(copy->base, copy->mapped);
    if (copy->source.fd >= 0) ::close(copy->source.fd);
    delete copy;
  });
  ++liveCopies;
  if (copy->source.fd < 0) return Status::error("cannot keep the file of ", source.what, " open: ", std::strerror(errno));
  {
    std::lock_guard lock(registryMutex());
    registry()[reinterpret_cast<uintptr_t>(base)] = copy;
    KILN_RETURN_IF_ERROR(readIn(*copy));
  }
  *data = base;
  return owner;
}

Expected<WeightPin> WeightPin::of(const void* data) {
  if (liveCopies == 0) return WeightPin(nullptr);
  std::lock_guard lock(registryMutex());
  Copy* copy = find(data);
  if (!copy) return WeightPin(nullptr);
  if (!copy->resident) KILN_RETURN_IF_ERROR(readIn(*copy));
  ++copy->pins;
  return WeightPin(copy);
}

WeightPin::~WeightPin() {
  if (!copy_) return;
  std::lock_guard lock(registryMutex());
  Copy& copy = *static_cast<Copy*>(copy_);
  if (--copy.pins == 0 && copy.releaseWanted) letGo(copy);
}

bool releaseWeightCopy(const void* data) {
  if (liveCopies == 0) return false;
  std::lock_guard lock(registryMutex());
  Copy* copy = find(data);
  if (!copy || !copy->source.releasable) return false;
  if (copy->pins > 0) copy->releaseWanted = true;
  else if (copy->resident) letGo(*copy);
  return true;
}

uint64_t residentWeightCopyBytes() { return residentBytes; }

}  // namespace kiln::rt
