// libFuzzer target for the protocol v1 codec (docs/PROTOCOL.md).
//
// Input: byte 0 picks the receiver's frame limit (1 .. ~1 MiB), byte 1 the
// size of the chunks the stream is fed in (0: all at once), the rest is the
// byte stream a peer sent. Everything FrameReader accepts must
//   - pass validate() (sender and receiver agree on what is well formed),
//   - re-encode to a frame that decodes to a message re-encoding identically,
//   - re-encode to exactly the original bytes, except for Events, whose
//     records may carry extension bytes (skipped) or the IN_REMOTE bit
//     (ignored), so that the re-encoding is never longer,
//   - encode the same through beginEvents/appendEvent/finishEvents.
// Any violation aborts, which libFuzzer reports as a crash.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/codec.h"

namespace {

using namespace rnotify::proto;

[[noreturn]] void fail(const char* what, const std::string& detail = {}) {
  fprintf(stderr, "proto_fuzz: %s %s\n", what, detail.c_str());
  abort();
}

Message decodeWhole(const std::string& frame) {
  FrameReader reader(UINT32_MAX);
  reader.feed(frame);
  auto result = reader.next();
  if (!result.ok()) fail("re-encoded frame does not decode:", result.error().message);
  if (!result.value()) fail("re-encoded frame is incomplete");
  if (reader.pending() != 0) fail("re-encoded frame has extra bytes");
  return std::move(*result.value());
}

void checkIncrementalEvents(const Events& events, const std::string& whole) {
  std::string out;
  size_t start = beginEvents(out);
  size_t expected = kEventsHeaderSize;
  for (const rnotify::Event& ev : events.events) {
    appendEvent(out, ev);
    expected += eventRecordSize(ev);
  }
  finishEvents(out, start, static_cast<uint32_t>(events.events.size()));
  if (out != whole) fail("incremental Events encoding differs from encode()");
  if (out.size() != expected) fail("eventRecordSize does not match appendEvent");
}

void checkRoundTrip(const Message& msg, std::string_view original) {
  if (auto status = validate(msg); !status.ok()) fail("decoded message fails validate():", status.error().message);
  std::string first;
  encode(msg, first);
  std::string second;
  encode(decodeWhole(first), second);
  if (first != second) fail("decode(encode(m)) re-encodes differently");
  if (const auto* events = std::get_if<Events>(&msg)) {
    if (first.size() > original.size()) fail("re-encoded Events frame grew");
    checkIncrementalEvents(*events, first);
  } else if (std::holds_alternative<Entries>(msg)) {
    // Entry records, like event records, may carry bytes of later versions
    // that a reader skips: the re-encoding may be shorter, never longer.
    if (first.size() > original.size()) fail("re-encoded Entries frame grew");
  } else if (first != original) {
    fail("re-encoding differs from the original frame of type", typeName(typeOf(msg)));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  uint32_t limit = 1 + data[0] * 4111u;
  size_t chunk = data[1];
  std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);

  FrameReader reader(limit);
  size_t fed = 0;
  size_t consumed = 0;  // bytes of stream turned into messages
  for (;;) {
    auto result = reader.next();
    if (!result.ok()) {
      if (result.error().message.empty()) fail("error without a message");
      return 0;  // the connection would close here
    }
    if (result.value()) {
      size_t frameSize = fed - reader.pending() - consumed;  // what left the reader's buffer
      checkRoundTrip(*result.value(), stream.substr(consumed, frameSize));
      consumed += frameSize;
      continue;
    }
    if (fed == stream.size()) break;
    size_t n = chunk == 0 ? stream.size() - fed : std::min(chunk, stream.size() - fed);
    reader.feed(stream.substr(fed, n));
    fed += n;
  }
  if (reader.pending() != stream.size() - consumed) fail("pending() does not match unconsumed bytes");
  return 0;
}
