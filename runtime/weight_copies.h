// Weights that sit unaligned in a referenced weight file (`kiln compile
// --weights reference` of a single-file ONNX model keeps tensors wherever
// protobuf put them): kernels take typed pointers, so the loader reads them
// into aligned memory. For a weight that only the CPU's matmuls read (as b),
// that copy can go again: once the CPU holds the weight packed it releases
// the copy, the pages return to the system, and a later pin reads them from
// the file again. So the packed form replaces the copy, as it replaces the
// mapped pages of an embedded weight: the weight is held once in either
// mode. Every kernel that reads such a copy pins it around the read (a
// released copy reads as zeros); for any other memory these calls do
// nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ir/status.h"

namespace kiln::rt {

// The fingerprint of a weight's bytes the artifact recorded
// (referencedWeightFingerprint), checked whenever the bytes are read.
using WeightFingerprintFn = uint64_t (*)(const void* data, uint64_t bytes);

struct WeightCopySource {
  int fd = -1;  // duplicated: the copy keeps its own
  uint64_t offset = 0, bytes = 0;
  uint64_t fingerprint = 0;
  WeightFingerprintFn fingerprintOf = nullptr;
  std::string what;  // names the weight and its file in errors
  bool releasable = false;  // else releaseWeightCopy keeps it
};

// Reads the weight at `source` into aligned memory of its own (at *data),
// which stays reserved while the returned owner lives.
Expected<std::shared_ptr<void>> readWeightCopy(const WeightCopySource& source, void** data);

// Keeps a weight copy's bytes in memory while it lives, reading them first
// when they are out; any other `data` (null too) gets an empty pin.
class WeightPin {
 public:
  static Expected<WeightPin> of(const void* data);
  WeightPin(WeightPin&& other) noexcept : copy_(other.copy_) { other.copy_ = nullptr; }
  WeightPin& operator=(WeightPin&&) = delete;
  ~WeightPin();

 private:
  explicit WeightPin(void* copy) : copy_(copy) {}
  void* copy_ = nullptr;
};

// Lets the pages of the releasable weight copy at `data` go, now or when
// its last pin ends; false (and nothing done) for any other memory.
bool releaseWeightCopy(const void* data);

// Bytes of weight copies in memory now (pages read in and not let go).
uint64_t residentWeightCopyBytes();

}  // namespace kiln::rt
