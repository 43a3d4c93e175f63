// Error and Result<T>: errors carried as values across module boundaries.
// A system call's failure is wrapped once, where it happens, with the call and
// the path it concerned; callers decide (watch refused, path missing) by code.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace rnotify {

struct Error {
  int code = 0;         // an errno value (Linux numbering, also on the wire)
  std::string message;  // for humans: names the path and what to do

  static Error fromErrno(int code, const std::string& what);
};

// "open '/x': No such file or directory" from the current errno.
Error lastError(const std::string& what);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace rnotify
