// Little-endian binary layouts as the artifact and the devices' code blobs
// use them: appending fixed-size values and length-prefixed byte strings,
// and reading them back with every read bounds-checked (a read past the end
// returns false and leaves the value alone), so a cut or corrupt file gives
// an error, never a read out of bounds. Header-only: the loader, the
// artifact writer and each device's code blob share it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace kiln::rt {

// Resized and copied into, rather than inserted: GCC 12 misreads a small
// insert as an overflow (-Wstringop-overflow).
inline void appendRaw(std::vector<uint8_t>& out, const void* data, size_t size) {
  const size_t at = out.size();
  out.resize(at + size);
  if (size > 0) std::memcpy(out.data() + at, data, size);
}

template <class T>
void append(std::vector<uint8_t>& out, T value) {
  appendRaw(out, &value, sizeof(T));
}

// `size` bytes after their length as a Length.
template <class Length>
void appendBytes(std::vector<uint8_t>& out, const void* data, size_t size) {
  append<Length>(out, static_cast<Length>(size));
  appendRaw(out, data, size);
}

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> bytes) : rest_(bytes) {}
  ByteReader(const uint8_t* begin, const uint8_t* end) : rest_(begin, end) {}

  template <class T>
  bool read(T& value) {
    if (rest_.size() < sizeof(T)) return false;
    std::memcpy(&value, rest_.data(), sizeof(T));
    rest_ = rest_.subspan(sizeof(T));
    return true;
  }
  // A Length, then that many bytes into `to` (a std::string or a byte vector).
  template <class Length, class Bytes>
  bool readBytes(Bytes& to) {
    Length length = 0;
    if (!read(length) || rest_.size() < uint64_t{length}) return false;
    to.assign(rest_.begin(), rest_.begin() + static_cast<ptrdiff_t>(length));
    rest_ = rest_.subspan(static_cast<size_t>(length));
    return true;
  }
  bool skip(size_t bytes) {
    if (rest_.size() < bytes) return false;
    rest_ = rest_.subspan(bytes);
    return true;
  }
  size_t left() const { return rest_.size(); }

 private:
  std::span<const uint8_t> rest_;
};

}  // namespace kiln::rt
