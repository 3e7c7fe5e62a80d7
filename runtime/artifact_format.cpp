#include "runtime/artifact_format.h"

#include <algorithm>

namespace kiln::rt {
namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kP3 = 0x165667B19E3779F9ull;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ull;
constexpr uint64_t kFingerprintSample = 64;

uint64_t mixWord(uint64_t acc, uint64_t word) { return std::rotl(acc + word * kP2, 31) * kP1; }

}  // namespace

ChecksumStream::ChecksumStream() : lanes_{kP1 + kP2, kP2, 0, 0 - kP1} {}

void ChecksumStream::update(const void* data, size_t size) {
  if (size == 0) return;
  const auto* p = static_cast<const uint8_t*>(data);
  total_ += size;
  if (pendingSize_ > 0) {
    const size_t take = std::min(size, kBlock - pendingSize_);
    std::memcpy(pending_ + pendingSize_, p, take);
    pendingSize_ += take;
    p += take;
    size -= take;
    if (pendingSize_ < kBlock) return;
    mixBlocks(pending_, 1);
    pendingSize_ = 0;
  }
  mixBlocks(p, size / kBlock);
  p += size / kBlock * kBlock;
  size %= kBlock;
  std::memcpy(pending_, p, size);
  pendingSize_ = size;
}

uint64_t ChecksumStream::finish() const {
  uint64_t h = std::rotl(lanes_[0], 1) + std::rotl(lanes_[1], 7) + std::rotl(lanes_[2], 12) +
               std::rotl(lanes_[3], 18);
  for (uint64_t lane : lanes_) h = (h ^ mixWord(0, lane)) * kP1 + kP4;
  h += total_;
  const uint8_t* p = pending_;
  const uint8_t* end = pending_ + pendingSize_;
  for (; end - p >= 8; p += 8) h = std::rotl(h ^ mixWord(0, readAt<uint64_t>(p, 0)), 27) * kP1 + kP4;
  if (p < end) {
    uint64_t tail = 0;
    std::memcpy(&tail, p, static_cast<size_t>(end - p));
    h = std::rotl(h ^ (tail * kP1), 23) * kP2 + kP3;
  }
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

// The lanes stay in registers over the blocks (this loop reads every byte of
// an artifact at load).
void ChecksumStream::mixBlocks(const uint8_t* p, size_t count) {
  uint64_t a = lanes_[0], b = lanes_[1], c = lanes_[2], d = lanes_[3];
  for (size_t n = 0; n < count; ++n, p += kBlock) {
    a = mixWord(a, readAt<uint64_t>(p, 0));
    b = mixWord(b, readAt<uint64_t>(p, 8));
    c = mixWord(c, readAt<uint64_t>(p, 16));
    d = mixWord(d, readAt<uint64_t>(p, 24));
  }
  lanes_[0] = a, lanes_[1] = b, lanes_[2] = c, lanes_[3] = d;
}

uint64_t artifactChecksum(const void* data, size_t size) {
  ChecksumStream checksum;
  checksum.update(data, size);
  return checksum.finish();
}

uint64_t referencedWeightFingerprint(const void* data, uint64_t size) {
  if (size <= 3 * kFingerprintSample) return artifactChecksum(data, size);
  const auto* bytes = static_cast<const uint8_t*>(data);
  ChecksumStream checksum;
  for (uint64_t at : {uint64_t{0}, (size - kFingerprintSample) / 2, size - kFingerprintSample})
    checksum.update(bytes + at, kFingerprintSample);
  return checksum.finish();
}

}  // namespace kiln::rt
