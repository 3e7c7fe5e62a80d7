#include "frontend/onnx/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace kiln {

Expected<MappedFile> MappedFile::open(const std::string& path, std::string_view what) {
  const std::string named = cat(what, what.empty() ? "" : " ", "'", path, "'");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::error("cannot open ", named, ": ", std::strerror(errno));
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    return Status::error("cannot read ", named, ": ", std::strerror(error));
  }
  if (S_ISDIR(info.st_mode)) {
    ::close(fd);
    return Status::error("cannot read ", named, ": it is a directory");
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    return Status::error("cannot read ", named, ": not a regular file");
  }
  MappedFile file;
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  file.path_ = ec ? path : absolute.lexically_normal().string();
  file.size_ = static_cast<uint64_t>(info.st_size);
  file.mtimeNs_ = static_cast<int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
  if (file.size_ > 0) {
    // Read-only: a pass that wrote into a weight viewing the file would
    // fault here rather than make the artifact reference bytes the file
    // does not hold.
    void* base = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int error = errno;
    ::close(fd);
    if (base == MAP_FAILED) return Status::error("cannot map ", named, ": ", std::strerror(error));
    const size_t size = file.size_;
    file.mapping_ = std::shared_ptr<const void>(base, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
  } else {
    ::close(fd);
  }
  return file;
}

}  // namespace kiln
