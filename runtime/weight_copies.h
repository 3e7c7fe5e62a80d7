// Weights that sit unaligned in a referenced weight file (`kiln compile
// --weights reference` of a single-file ONNX model keeps tensors wherever
// protobuf put them): kernels take typed pointers, so the loader reads them
// into page-aligned memory. For a weight that only the CPU's matmuls (as b)
// and gathers (as the table) read, that copy can go again, page by page:
// the CPU's matmul releases each chunk of it as it packs the chunk, and a
// kernel that reads the bytes later pins the part it reads, which brings
// the pages that went back from the file. So the packed form replaces the
// copy, as it replaces the mapped pages of an embedded weight, and a gather
// holds only the rows it reads: a weight is held once in either mode. A
// released page reads as zeros until pinned; for any other memory these
// calls do nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "ir/status.h"

namespace kiln::rt {

struct WeightCopySource {
  int fd = -1;  // duplicated: the copy keeps its own
  uint64_t offset = 0, bytes = 0;
  // The file as the artifact recorded it, checked before reading it again.
  uint64_t fileSize = 0;
  int64_t mtimeNs = 0;
  std::string what;  // names the weight and its file in errors
  bool releasable = false;  // else releaseWeightCopy keeps it
};

// Reads the weight at `source` into page-aligned memory of its own (at
// *data), which stays reserved while the returned owner lives.
Expected<std::shared_ptr<void>> readWeightCopy(const WeightCopySource& source, void** data);

// Keeps the pages of a weight copy under some byte ranges in memory while it
// lives, reading first those that went; for any other memory (null too) it
// is empty.
class WeightPin {
 public:
  // [data, data + bytes).
  static Expected<WeightPin> of(const void* data, uint64_t bytes);
  // Rows `rows` of `rowBytes` bytes each from `table`.
  static Expected<WeightPin> ofRows(const void* table, uint64_t rowBytes, std::span<const int64_t> rows);
  WeightPin(WeightPin&& other) noexcept : copy_(other.copy_), pages_(std::move(other.pages_)) { other.copy_ = nullptr; }
  WeightPin& operator=(WeightPin&&) = delete;
  ~WeightPin();

 private:
  WeightPin(void* copy, std::vector<std::pair<size_t, size_t>> pages) : copy_(copy), pages_(std::move(pages)) {}
  void* copy_ = nullptr;
  std::vector<std::pair<size_t, size_t>> pages_;  // [first, last) page ranges pinned
};

// Lets the whole pages of a releasable weight copy inside [data, data +
// bytes) go, each now or when its last pin ends; false (and nothing done)
// for any other memory.
bool releaseWeightCopy(const void* data, uint64_t bytes);

// Whether `data` lies in a weight copy (false at once while there is none).
bool isWeightCopy(const void* data);

// Bytes of weight copies in memory now (pages read in and not let go).
uint64_t residentWeightCopyBytes();

}  // namespace kiln::rt
