// FrameReader: turns the bytes of a stream into messages. The buffer is
// consumed by advancing offset_, and compacted only when the consumed prefix
// is both large and at least half of the buffer, so each byte is moved at most
// a bounded number of times however the stream is chunked (no quadratic
// copying). An oversized or zero length is reported from the 4-byte prefix
// alone, and an unknown type from the fifth byte, before any body is awaited.
// A frame that fails is not consumed: next() keeps returning the same error,
// since the connection must close anyway.
#include <cerrno>
#include <cstdio>

#include "proto/codec.h"
#include "proto/wire.h"

namespace rnotify::proto {
namespace {

constexpr size_t kCompactAfter = 64 * 1024;

bool isKnownType(uint8_t type) {
  switch (static_cast<Type>(type)) {
    case Type::kHello:
    case Type::kWelcome:
    case Type::kWatch:
    case Type::kUnwatch:
    case Type::kReply:
    case Type::kDeclare:
    case Type::kSnapshot:
    case Type::kAttach:
    case Type::kAck:
    case Type::kAuth:
    case Type::kEntries:
    case Type::kEvents:
    case Type::kPing:
    case Type::kPong:
    case Type::kFatal:
      return true;
  }
  return false;
}

}  // namespace

void FrameReader::feed(std::string_view bytes) {
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  } else if (offset_ >= kCompactAfter && offset_ * 2 >= buffer_.size()) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  buffer_.append(bytes);
}

Result<std::optional<Message>> FrameReader::next() {
  if (pending() < 4) return std::optional<Message>();
  const char* frame = buffer_.data() + offset_;
  uint32_t length = wire::loadLe<uint32_t>(frame);
  if (length == 0) return Error{EPROTO, "frame of length 0 (a frame holds at least its type byte)"};
  if (length > maxFrame_) {
    return Error{EMSGSIZE,
                 "frame of " + std::to_string(length) + " bytes exceeds the limit of " + std::to_string(maxFrame_)};
  }
  if (pending() < 5) return std::optional<Message>();
  uint8_t type = static_cast<uint8_t>(frame[4]);
  if (!isKnownType(type)) {
    char hex[8];
    snprintf(hex, sizeof hex, "0x%02x", type);
    return Error{EPROTO, std::string("unknown frame type ") + hex};
  }
  if (pending() - 4 < length) return std::optional<Message>();
  Result<Message> msg = decode(static_cast<Type>(type), std::string_view(frame + 5, length - 1));
  if (!msg) return msg.error();
  offset_ += 4 + size_t{length};
  return std::optional<Message>(std::move(msg.value()));
}

}  // namespace rnotify::proto
