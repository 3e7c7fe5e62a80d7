// A whole file mapped read-only (PROT_READ, MAP_PRIVATE): an ONNX model or
// an external-data file whose bytes imported weights view in place instead
// of copying them. Copies share the mapping; it goes when the last copy and
// the last tensor holding keepAlive() go.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ir/status.h"

namespace kiln {

class MappedFile {
 public:
  // Maps `path` (a regular file); the error names the path, what it was to
  // be (`what`: "external data file"; may be empty) and the reason.
  static Expected<MappedFile> open(const std::string& path, std::string_view what = "");

  const std::string& path() const { return path_; }  // absolute
  uint64_t size() const { return size_; }
  int64_t mtimeNs() const { return mtimeNs_; }  // modification time, ns since the epoch
  std::string_view bytes() const { return {static_cast<const char*>(mapping_.get()), size_}; }
  // Holds the mapping: the keepAlive of the tensors that view it.
  const std::shared_ptr<const void>& keepAlive() const { return mapping_; }

 private:
  std::string path_;
  uint64_t size_ = 0;
  int64_t mtimeNs_ = 0;
  std::shared_ptr<const void> mapping_;  // null for an empty file
};

}  // namespace kiln
