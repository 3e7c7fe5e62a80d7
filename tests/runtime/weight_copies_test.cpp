// The copies of unaligned referenced weights (runtime/weight_copies.h): read
// at once, released to the system (now, or when the last pin ends), read
// again by the next pin, refused when the file changed meanwhile; a copy that
// is not releasable stays, and other memory passes through untouched.
#include "runtime/weight_copies.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace kiln::rt {
namespace {

uint64_t sumOfBytes(const void* data, uint64_t bytes) {
  uint64_t sum = 0;
  for (uint64_t i = 0; i < bytes; ++i) sum = sum * 31 + static_cast<const uint8_t*>(data)[i];
  return sum;
}

// A temporary file of 3 bytes and then `values` (so at an unaligned offset).
class WeightFile {
 public:
  explicit WeightFile(std::vector<float> values) : values_(std::move(values)) {
    fd_ = ::mkstemp(path_);
    write(values_);
  }
  ~WeightFile() {
    ::close(fd_);
    ::unlink(path_);
  }
  void write(const std::vector<float>& values) {
    const char prefix[3] = {1, 2, 3};
    EXPECT_EQ(::pwrite(fd_, prefix, 3, 0), 3);
    const ssize_t bytes = static_cast<ssize_t>(values.size() * sizeof(float));
    EXPECT_EQ(::pwrite(fd_, values.data(), static_cast<size_t>(bytes), 3), bytes);
  }
  WeightCopySource source(bool releasable) const {
    const uint64_t bytes = values_.size() * sizeof(float);
    return {fd_, 3, bytes, sumOfBytes(values_.data(), bytes), sumOfBytes, "weight @w", releasable};
  }
  bool matches(const void* data) const {
    return std::memcmp(data, values_.data(), values_.size() * sizeof(float)) == 0;
  }

 private:
  char path_[32] = "/tmp/kiln_weight_copy_XXXXXX";
  int fd_ = -1;
  std::vector<float> values_;
};

TEST(WeightCopies, AReleasedCopyIsReadAgainByTheNextPin) {
  WeightFile file(std::vector<float>(3000, 1.5f));
  void* data = nullptr;
  Expected<std::shared_ptr<void>> owner = readWeightCopy(file.source(true), &data);
  ASSERT_TRUE(owner.isOk()) << owner.status().message();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(data) % 64, 0u);
  EXPECT_TRUE(file.matches(data));
  EXPECT_EQ(residentWeightCopyBytes(), 12000u);

  EXPECT_TRUE(releaseWeightCopy(data));
  EXPECT_EQ(residentWeightCopyBytes(), 0u);
  {
    Expected<WeightPin> pin = WeightPin::of(static_cast<const char*>(data) + 100);  // any address inside
    ASSERT_TRUE(pin.isOk()) << pin.status().message();
    EXPECT_TRUE(file.matches(data));
    EXPECT_TRUE(releaseWeightCopy(data));  // deferred: pinned
    EXPECT_EQ(residentWeightCopyBytes(), 12000u);
    EXPECT_TRUE(file.matches(data));
  }
  EXPECT_EQ(residentWeightCopyBytes(), 0u);  // the pin's end let it go
  owner->reset();
  EXPECT_EQ(residentWeightCopyBytes(), 0u);
}

TEST(WeightCopies, AChangedFileIsAnErrorWhenReadAgain) {
  WeightFile file(std::vector<float>(100, 2.0f));
  void* data = nullptr;
  Expected<std::shared_ptr<void>> owner = readWeightCopy(file.source(true), &data);
  ASSERT_TRUE(owner.isOk());
  ASSERT_TRUE(releaseWeightCopy(data));
  file.write(std::vector<float>(100, -2.0f));
  Expected<WeightPin> pin = WeightPin::of(data);
  ASSERT_FALSE(pin.isOk());
  EXPECT_EQ(pin.status().message(), "weight @w has changed since the artifact was loaded; recompile");
}

TEST(WeightCopies, KeptCopiesAndOtherMemoryStay) {
  WeightFile file(std::vector<float>(100, 3.0f));
  void* data = nullptr;
  Expected<std::shared_ptr<void>> kept = readWeightCopy(file.source(false), &data);
  ASSERT_TRUE(kept.isOk());
  EXPECT_FALSE(releaseWeightCopy(data));
  EXPECT_EQ(residentWeightCopyBytes(), 400u);
  EXPECT_TRUE(file.matches(data));

  std::vector<float> heap(100, 4.0f);
  EXPECT_FALSE(releaseWeightCopy(heap.data()));
  EXPECT_TRUE(WeightPin::of(heap.data()).isOk());
  EXPECT_TRUE(WeightPin::of(nullptr).isOk());
  EXPECT_EQ(heap[99], 4.0f);
}

TEST(WeightCopies, AnUnreadableFileIsAnError) {
  WeightFile file(std::vector<float>(10, 1.0f));
  WeightCopySource source = file.source(true);
  source.offset = 1 << 20;  // past the end
  void* data = nullptr;
  Expected<std::shared_ptr<void>> owner = readWeightCopy(source, &data);
  ASSERT_FALSE(owner.isOk());
  EXPECT_EQ(owner.status().message(), "cannot read weight @w: unexpected end of file");
  EXPECT_EQ(residentWeightCopyBytes(), 0u);
}

}  // namespace
}  // namespace kiln::rt
