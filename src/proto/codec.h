// Encoding and decoding of protocol v1 frames. The decoder never trusts its
// input: every length is checked against the bytes present and the limits,
// and a malformed frame is an Error (EPROTO, or EMSGSIZE for an oversized
// frame), never a crash or an unbounded allocation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "proto/messages.h"

namespace rnotify::proto {

// Appends one whole frame (length prefix, type, payload) for msg to out.
void encode(const Message& msg, std::string& out);

// Appends one event to an Events frame that is being built incrementally, so
// that the server can batch without building a vector. Use:
//   size_t start = beginEvents(out); appendEvent(out, ev)...; finishEvents(out, start, n);
size_t beginEvents(std::string& out);
void appendEvent(std::string& out, const Event& ev);
void finishEvents(std::string& out, size_t start, uint32_t count);

// Entries frames are built like Events: the server appends records while it
// walks a tree. entryRecordSize() is the bytes appendEntry() adds.
size_t entryRecordSize(const TreeEntry& entry);
void appendEntry(std::string& out, const TreeEntry& entry);

// Decodes one frame's payload (without length prefix and type byte).
Result<Message> decode(Type type, std::string_view payload);

// What follows was added after the first version of this header.

// Bytes of an Events frame before its first record: length, type, count.
inline constexpr size_t kEventsHeaderSize = 9;

// Bytes appendEvent adds for ev, so that a sender can keep each Events frame
// within the peer's maxFrame (start a new frame when the next record would not fit).
size_t eventRecordSize(const Event& ev);

// The checks decode applies beyond the layout (string limits, NUL bytes, dir
// and name shape, version range, ...), for a sender to run on what it did not
// produce itself. encode assumes they hold: it never fails, and only cuts
// over-long strings so that the frame stays well formed.
Status validate(const Message& msg);
Status validate(const Event& ev);

// The frame type that carries msg.
Type typeOf(const Message& msg);

// "Hello", "Events", ...; "unknown" for anything else. For log lines.
const char* typeName(Type type);

// Splits a byte stream into frames. Feed what arrived; call next() until it
// returns nullopt (needs more bytes) or an error (the connection must close).
class FrameReader {
 public:
  explicit FrameReader(uint32_t maxFrame = kDefaultMaxFrame) : maxFrame_(maxFrame) {}
  void setMaxFrame(uint32_t maxFrame) { maxFrame_ = maxFrame; }
  void feed(std::string_view bytes);
  // A decoded message, nullopt when a whole frame is not there yet, or an error.
  Result<std::optional<Message>> next();
  // Bytes received but not yet consumed (a peer that vanished mid-frame
  // leaves this non-zero).
  size_t pending() const { return buffer_.size() - offset_; }

 private:
  std::string buffer_;
  size_t offset_ = 0;
  uint32_t maxFrame_;
};

}  // namespace rnotify::proto
