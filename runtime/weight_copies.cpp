#include "runtime/weight_copies.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

namespace kiln::rt {
namespace {

size_t pageSize() {
  static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

struct Copy {
  WeightCopySource source;
  uint8_t* base = nullptr;
  size_t mapped = 0;
  std::vector<bool> in;             // per page: read and not let go
  std::vector<bool> releaseWanted;  // per page: to go when its pins end
  std::vector<uint32_t> pins;       // per page

  size_t pages() const { return mapped / pageSize(); }
  uint64_t pageBytes(size_t page) const { return std::min<uint64_t>(pageSize(), source.bytes - page * pageSize()); }
};

// Every live copy by address; one lock for all (pins are rare: packing a
// weight, a gather's rows, a matmul that reads its b in place).
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

// The pages [first, last) of `copy` that [data, data + bytes) touches
// (`whole`: only those it covers entirely), clipped to the copy.
std::pair<size_t, size_t> pagesOf(const Copy& copy, const void* data, uint64_t bytes, bool whole) {
  const size_t begin = static_cast<size_t>(static_cast<const uint8_t*>(data) - copy.base);
  const size_t end = std::min<size_t>(begin + bytes, copy.source.bytes);
  if (end <= begin) return {0, 0};
  const size_t page = pageSize();
  const size_t first = whole ? (begin + page - 1) / page : begin / page;
  const size_t last = whole && end < copy.source.bytes ? end / page : (end + page - 1) / page;
  return {first, std::max(first, last)};
}

Status checkFileUnchanged(const Copy& copy) {
  struct stat now;
  const WeightCopySource& s = copy.source;
  if (::fstat(s.fd, &now) != 0) return Status::error("cannot read ", s.what, ": ", std::strerror(errno));
  const int64_t mtimeNs = static_cast<int64_t>(now.st_mtim.tv_sec) * 1'000'000'000 + now.st_mtim.tv_nsec;
  if (static_cast<uint64_t>(now.st_size) != s.fileSize || mtimeNs != s.mtimeNs)
    return Status::error(s.what, " has changed since the artifact was loaded; recompile");
  return Status::ok();
}

// Reads the pages [first, last) that are out. Caller holds the lock.
Status readIn(Copy& copy, size_t first, size_t last) {
  const WeightCopySource& s = copy.source;
  for (size_t page = first; page < last; ++page) {
    if (copy.in[page]) continue;
    if (page == first || !copy.in[page - 1]) KILN_RETURN_IF_ERROR(checkFileUnchanged(copy));
    const uint64_t at = page * pageSize(), bytes = copy.pageBytes(page);
    for (uint64_t done = 0; done < bytes;) {
      const ssize_t n = ::pread(s.fd, copy.base + at + done, bytes - done, static_cast<off_t>(s.offset + at + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        return Status::error("cannot read ", s.what, ": ", n < 0 ? std::strerror(errno) : "unexpected end of file");
      done += static_cast<uint64_t>(n);
    }
    copy.in[page] = true;
    residentBytes += bytes;
  }
  return Status::ok();
}

void letGo(Copy& copy, size_t page) {
  ::madvise(copy.base + page * pageSize(), pageSize(), MADV_DONTNEED);  // private anonymous: freed, reads zeros
  copy.in[page] = false;
  copy.releaseWanted[page] = false;
  residentBytes -= copy.pageBytes(page);
}

// Ends the pins of `pages`, letting go the pages that wait for it. Caller
// holds the lock.
void unpin(Copy& copy, const std::vector<std::pair<size_t, size_t>>& pages) {
  for (const auto& [first, last] : pages)
    for (size_t page = first; page < last; ++page)
      if (--copy.pins[page] == 0 && copy.releaseWanted[page]) letGo(copy, page);
}

}  // namespace

Expected<std::shared_ptr<void>> readWeightCopy(const WeightCopySource& source, void** data) {
  const size_t mapped = (std::max<uint64_t>(source.bytes, 1) + pageSize() - 1) / pageSize() * pageSize();
  void* base = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED)
    return Status::error("cannot reserve ", source.bytes, " bytes for ", source.what, ": ", std::strerror(errno));
  auto* copy = new Copy{source, static_cast<uint8_t*>(base), mapped};
  copy->in.assign(copy->pages(), false);
  copy->releaseWanted.assign(copy->pages(), false);
  copy->pins.assign(copy->pages(), 0);
  copy->source.fd = ::fcntl(source.fd, F_DUPFD_CLOEXEC, 0);
  std::shared_ptr<void> owner(base, [copy](void*) {
    {
      std::lock_guard lock(registryMutex());
      registry().erase(reinterpret_cast<uintptr_t>(copy->base));
      for (size_t page = 0; page < copy->pages(); ++page)
        if (copy->in[page]) residentBytes -= copy->pageBytes(page);
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
    KILN_RETURN_IF_ERROR(readIn(*copy, 0, copy->pages()));
  }
  *data = base;
  return owner;
}

Expected<WeightPin> WeightPin::of(const void* data, uint64_t bytes) {
  const int64_t onlyRow[] = {0};
  return ofRows(data, bytes, onlyRow);
}

Expected<WeightPin> WeightPin::ofRows(const void* table, uint64_t rowBytes, std::span<const int64_t> rows) {
  if (liveCopies == 0 || !table) return WeightPin(nullptr, {});
  std::lock_guard lock(registryMutex());
  Copy* copy = find(table);
  if (!copy) return WeightPin(nullptr, {});
  std::vector<std::pair<size_t, size_t>> pinned;
  for (int64_t row : rows) {
    const auto [first, last] = pagesOf(*copy, static_cast<const uint8_t*>(table) + row * rowBytes, rowBytes, false);
    if (Status read = readIn(*copy, first, last); !read) {
      unpin(*copy, pinned);
      return read;
    }
    for (size_t page = first; page < last; ++page) ++copy->pins[page];
    pinned.emplace_back(first, last);
  }
  return WeightPin(copy, std::move(pinned));
}

WeightPin::~WeightPin() {
  if (!copy_) return;
  std::lock_guard lock(registryMutex());
  unpin(*static_cast<Copy*>(copy_), pages_);
}

bool releaseWeightCopy(const void* data, uint64_t bytes) {
  if (liveCopies == 0 || !data) return false;
  std::lock_guard lock(registryMutex());
  Copy* copy = find(data);
  if (!copy || !copy->source.releasable) return false;
  const auto [first, last] = pagesOf(*copy, data, bytes, true);
  for (size_t page = first; page < last; ++page) {
    if (!copy->in[page]) continue;
    if (copy->pins[page] > 0) copy->releaseWanted[page] = true;
    else letGo(*copy, page);
  }
  return true;
}

bool isWeightCopy(const void* data) {
  if (liveCopies == 0 || !data) return false;
  std::lock_guard lock(registryMutex());
  return find(data) != nullptr;
}

uint64_t residentWeightCopyBytes() { return residentBytes; }

}  // namespace kiln::rt
