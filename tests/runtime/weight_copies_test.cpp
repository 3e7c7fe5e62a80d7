// The copies of unaligned referenced weights (runtime/weight_copies.h): read
// whole at load, released page by page (now, or when a page's last pin
// ends), read again page by page by the pins that need them, refused when
// the file changed meanwhile; a copy that is not releasable stays, and other
// memory passes through untouched.
#include "runtime/weight_copies.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace kiln::rt {
namespace {

constexpr uint64_t kPage = 4096;

// A temporary file of 3 bytes and then `values` (so at an unaligned offset).
class WeightFile {
 public:
  explicit WeightFile(size_t floats) : values_(floats) {
    for (size_t i = 0; i < floats; ++i) values_[i] = static_cast<float>(i) + 0.5f;
    fd_ = ::mkstemp(path_);
    write(values_);
  }
  ~WeightFile() {
    ::close(fd_);
    ::unlink(path_);
  }
  void write(const std::vector<float>& values) {
    EXPECT_EQ(::pwrite(fd_, "abc", 3, 0), 3);
    const ssize_t bytes = static_cast<ssize_t>(values.size() * sizeof(float));
    EXPECT_EQ(::pwrite(fd_, values.data(), static_cast<size_t>(bytes), 3), bytes);
  }
  WeightCopySource source(bool releasable) const {
    struct stat info;
    EXPECT_EQ(::fstat(fd_, &info), 0);
    const int64_t mtimeNs = static_cast<int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
    return {fd_, 3, values_.size() * sizeof(float), static_cast<uint64_t>(info.st_size), mtimeNs, "weight @w",
            releasable};
  }
  // Whether bytes [begin, end) of the copy at `data` are the weight's.
  bool matches(const void* data, uint64_t begin, uint64_t end) const {
    return std::memcmp(static_cast<const char*>(data) + begin, reinterpret_cast<const char*>(values_.data()) + begin,
                       end - begin) == 0;
  }
  uint64_t bytes() const { return values_.size() * sizeof(float); }
  int fd() const { return fd_; }

 private:
  char path_[32] = "/tmp/kiln_weight_copy_XXXXXX";
  int fd_ = -1;
  std::vector<float> values_;
};

TEST(WeightCopies, ReleasedPagesAreReadAgainByThePinsThatNeedThem) {
  WeightFile file(3000);  // 12000 bytes: pages 0, 1 and most of 2
  void* data = nullptr;
  Expected<std::shared_ptr<void>> owner = readWeightCopy(file.source(true), &data);
  ASSERT_TRUE(owner.isOk()) << owner.status().message();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(data) % kPage, 0u);
  EXPECT_TRUE(file.matches(data, 0, file.bytes()));
  EXPECT_EQ(residentWeightCopyBytes(), 12000u);

  // Only whole pages inside the range go: [100, 9000) holds page 1 alone.
  EXPECT_TRUE(releaseWeightCopy(static_cast<char*>(data) + 100, 8900));
  EXPECT_EQ(residentWeightCopyBytes(), 12000u - kPage);
  EXPECT_TRUE(releaseWeightCopy(data, file.bytes()));  // the last, partial page too
  EXPECT_EQ(residentWeightCopyBytes(), 0u);
  {
    Expected<WeightPin> pin = WeightPin::of(static_cast<char*>(data) + 5000, 100);  // in page 1
    ASSERT_TRUE(pin.isOk()) << pin.status().message();
    EXPECT_EQ(residentWeightCopyBytes(), kPage);
    EXPECT_TRUE(file.matches(data, kPage, 2 * kPage));
    EXPECT_TRUE(releaseWeightCopy(data, file.bytes()));  // deferred for page 1: pinned
    EXPECT_EQ(residentWeightCopyBytes(), kPage);
    EXPECT_TRUE(file.matches(data, kPage, 2 * kPage));
  }
  EXPECT_EQ(residentWeightCopyBytes(), 0u);  // the pin's end let it go
  Expected<WeightPin> whole = WeightPin::of(data, file.bytes());
  ASSERT_TRUE(whole.isOk());
  EXPECT_TRUE(file.matches(data, 0, file.bytes()));
}

TEST(WeightCopies, RowsPinTheirPagesOnly) {
  WeightFile file(4 * kPage / sizeof(float));  // 4 pages, a row a page
  void* data = nullptr;
  Expected<std::shared_ptr<void>> owner = readWeightCopy(file.source(true), &data);
  ASSERT_TRUE(owner.isOk());
  ASSERT_TRUE(releaseWeightCopy(data, file.bytes()));
  const std::vector<int64_t> rows = {3, 1, 3};
  Expected<WeightPin> pin = WeightPin::ofRows(data, kPage, rows);
  ASSERT_TRUE(pin.isOk()) << pin.status().message();
  EXPECT_EQ(residentWeightCopyBytes(), 2 * kPage);
  EXPECT_TRUE(file.matches(data, kPage, 2 * kPage));
  EXPECT_TRUE(file.matches(data, 3 * kPage, 4 * kPage));
}

TEST(WeightCopies, AChangedFileIsAnErrorWhenReadAgain) {
  WeightFile file(100);
  void* data = nullptr;
  Expected<std::shared_ptr<void>> owner = readWeightCopy(file.source(true), &data);
  ASSERT_TRUE(owner.isOk());
  ASSERT_TRUE(releaseWeightCopy(data, file.bytes()));
  file.write(std::vector<float>(100, -2.0f));
  const timespec later[2] = {{0, UTIME_OMIT}, {2'000'000'000, 0}};
  ASSERT_EQ(::futimens(file.fd(), later), 0);  // a modification time of its own, however coarse the clock
  Expected<WeightPin> pin = WeightPin::of(data, 4);
  ASSERT_FALSE(pin.isOk());
  EXPECT_EQ(pin.status().message(), "weight @w has changed since the artifact was loaded; recompile");
}

TEST(WeightCopies, KeptCopiesAndOtherMemoryStay) {
  WeightFile file(100);
  void* data = nullptr;
  Expected<std::shared_ptr<void>> kept = readWeightCopy(file.source(false), &data);
  ASSERT_TRUE(kept.isOk());
  EXPECT_FALSE(releaseWeightCopy(data, file.bytes()));
  EXPECT_EQ(residentWeightCopyBytes(), 400u);
  EXPECT_TRUE(file.matches(data, 0, file.bytes()));

  std::vector<float> heap(100, 4.0f);
  EXPECT_FALSE(releaseWeightCopy(heap.data(), 400));
  EXPECT_TRUE(WeightPin::of(heap.data(), 400).isOk());
  EXPECT_TRUE(WeightPin::of(nullptr, 0).isOk());
  EXPECT_TRUE(isWeightCopy(static_cast<char*>(data) + 399));
  EXPECT_FALSE(isWeightCopy(heap.data()));
  EXPECT_EQ(heap[99], 4.0f);
  kept->reset();
  EXPECT_EQ(residentWeightCopyBytes(), 0u);
}

TEST(WeightCopies, AnUnreadableFileIsAnError) {
  WeightFile file(10);
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
