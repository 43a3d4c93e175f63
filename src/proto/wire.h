// Little-endian primitives of the protocol (docs/PROTOCOL.md section 3), shared
// by the encoder and the decoder. WireReader never reads past its view: the
// first short read or bad string is remembered as the error, later reads
// return zeros, and the caller checks ok() once per message, which keeps the
// per-message decoders as flat as the field lists in the specification.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace rnotify::proto::wire {

inline constexpr size_t kMaxString = 0xffff;  // a string's u16 length

template <typename T>
void storeLe(char* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff);
}

template <typename T>
T loadLe(const char* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return static_cast<T>(v);
}

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  storeLe(b, v);
  out.append(b, sizeof(T));
}

// A string is written with at most `limit` bytes so that the frame stays well
// formed whatever the caller passes; callers check limits first (validate()).
inline void putString(std::string& out, std::string_view s, size_t limit = kMaxString) {
  if (s.size() > limit) s = s.substr(0, limit);
  put<uint16_t>(out, static_cast<uint16_t>(s.size()));
  out.append(s);
}

class WireReader {
 public:
  // what: the message being read, for error texts ("Watch").
  WireReader(std::string_view data, const char* what) : data_(data), what_(what) {}

  bool ok() const { return error_.empty(); }
  // "malformed Watch frame: truncated at path (...)"
  std::string error() const { return std::string("malformed ") + what_ + " frame: " + error_; }
  // The same without the prefix, to nest a record's error in its frame's.
  const std::string& detail() const { return error_; }
  size_t remaining() const { return data_.size() - pos_; }
  // Keeps the first failure: later ones are consequences of it.
  void fail(std::string message) {
    if (ok()) error_ = std::move(message);
  }

  template <typename T>
  T get(const char* field) {
    if (!ok()) return T{};
    if (remaining() < sizeof(T)) {
      fail(truncated(field, sizeof(T)));
      return T{};
    }
    T v = loadLe<T>(data_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }

  // A string of at most `limit` bytes without NUL.
  std::string_view getString(const char* field, size_t limit = kMaxString) {
    uint16_t n = get<uint16_t>(field);
    if (!ok()) return {};
    if (remaining() < n) {
      fail(truncated(field, n));
      return {};
    }
    std::string_view s = data_.substr(pos_, n);
    pos_ += n;
    if (n > limit) {
      fail(std::string(field) + " is " + std::to_string(n) + " bytes, the limit is " + std::to_string(limit));
    } else if (s.find('\0') != std::string_view::npos) {
      fail(std::string(field) + " contains a NUL byte at offset " + std::to_string(s.find('\0')));
    }
    return s;
  }

  // Takes the next n bytes as a sub-reader (an event record).
  WireReader take(size_t n, const char* what) {
    if (ok() && remaining() < n) fail(truncated(what, n));
    if (!ok()) return WireReader({}, what_);
    WireReader sub(data_.substr(pos_, n), what_);
    pos_ += n;
    return sub;
  }

  // A fixed-layout message must use every byte of its payload.
  void expectEnd() {
    if (ok() && remaining() != 0) fail(std::to_string(remaining()) + " trailing bytes after the last field");
  }

 private:
  std::string truncated(const char* field, size_t need) const {
    return std::string("truncated at ") + field + " (needs " + std::to_string(need) + " bytes, " +
           std::to_string(remaining()) + " left)";
  }

  std::string_view data_;
  size_t pos_ = 0;
  const char* what_;
  std::string error_;
};

}  // namespace rnotify::proto::wire
