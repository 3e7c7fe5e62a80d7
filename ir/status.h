// Errors are values: every fallible call returns a Status (or an Expected<T>)
// whose message names the node, op and shapes involved.
#pragma once

#include <sstream>
#include <string>
#include <utility>
#include <variant>

namespace kiln {

// Concatenates anything streamable; g++ 12 has no <format>.
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }
  template <class... Parts>
  static Status error(const Parts&... parts) {
    Status s;
    s.failed_ = true;
    s.message_ = cat(parts...);
    return s;
  }

  bool isOk() const { return !failed_; }
  explicit operator bool() const { return !failed_; }
  const std::string& message() const { return message_; }

  // Prefixes context ("in node 'x': ") to an error; no-op on success.
  Status withContext(const std::string& context) const {
    if (!failed_) return *this;
    Status s = *this;
    s.message_ = context + s.message_;
    return s;
  }

 private:
  bool failed_ = false;
  std::string message_;
};

template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : state_(std::move(value)) {}
  Expected(Status error) : state_(std::move(error)) {}

  bool isOk() const { return state_.index() == 0; }
  explicit operator bool() const { return isOk(); }
  T& value() { return std::get<0>(state_); }
  const T& value() const { return std::get<0>(state_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const Status& status() const { return std::get<1>(state_); }

 private:
  std::variant<T, Status> state_;
};

#define KILN_RETURN_IF_ERROR(expr)        \
  do {                                    \
    ::kiln::Status kiln_status_ = (expr); \
    if (!kiln_status_) return kiln_status_; \
  } while (0)

}  // namespace kiln
