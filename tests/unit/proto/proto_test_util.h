// Helpers shared by the protocol tests: structural equality for messages
// (the structs have none), hex conversion for byte-exact expectations, and
// one-call encode/decode through the real FrameReader.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "proto/codec.h"

namespace rnotify {
inline bool operator==(const Event& a, const Event& b) {
  return a.watch == b.watch && a.seq == b.seq && a.mask == b.mask && a.cookie == b.cookie && a.dir == b.dir &&
         a.name == b.name && a.origin == b.origin && a.hasStat == b.hasStat && (!a.hasStat || a.stat == b.stat);
}
}  // namespace rnotify

namespace rnotify::proto {

inline bool operator==(const Hello& a, const Hello& b) {
  return a.minVersion == b.minVersion && a.maxVersion == b.maxVersion && a.capabilities == b.capabilities &&
         a.clientName == b.clientName;
}
inline bool operator==(const Welcome& a, const Welcome& b) {
  return a.version == b.version && a.capabilities == b.capabilities && a.instanceId == b.instanceId &&
         a.maxFrame == b.maxFrame && a.serverName == b.serverName;
}
inline bool operator==(const Watch& a, const Watch& b) {
  return a.requestId == b.requestId && a.flags == b.flags && a.mask == b.mask && a.path == b.path;
}
inline bool operator==(const Unwatch& a, const Unwatch& b) {
  return a.requestId == b.requestId && a.watchId == b.watchId;
}
inline bool operator==(const Reply& a, const Reply& b) {
  return a.requestId == b.requestId && a.status == b.status && a.watchId == b.watchId && a.message == b.message;
}
inline bool operator==(const Declare& a, const Declare& b) {
  return a.requestId == b.requestId && a.origins == b.origins;
}
inline bool operator==(const Events& a, const Events& b) { return a.events == b.events; }
inline bool operator==(const Snapshot& a, const Snapshot& b) {
  return a.requestId == b.requestId && a.watchId == b.watchId;
}
inline bool operator==(const TreeEntry& a, const TreeEntry& b) {
  return a.dir == b.dir && a.name == b.name && a.stat == b.stat;
}
inline bool operator==(const Entries& a, const Entries& b) {
  return a.requestId == b.requestId && a.entries == b.entries;
}
inline bool operator==(const WatchPosition& a, const WatchPosition& b) {
  return a.watchId == b.watchId && a.seq == b.seq;
}
inline bool operator==(const Attach& a, const Attach& b) {
  return a.requestId == b.requestId && a.token[0] == b.token[0] && a.token[1] == b.token[1] &&
         a.instanceId == b.instanceId && a.positions == b.positions;
}
inline bool operator==(const Ack& a, const Ack& b) { return a.positions == b.positions; }
inline bool operator==(const Auth& a, const Auth& b) {
  return a.requestId == b.requestId && a.user == b.user && a.token == b.token;
}
inline bool operator==(const Ping& a, const Ping& b) { return a.token == b.token; }
inline bool operator==(const Pong& a, const Pong& b) { return a.token == b.token; }
inline bool operator==(const Fatal& a, const Fatal& b) { return a.code == b.code && a.message == b.message; }

namespace test {

// "1e 00 ff" <-> bytes; spaces are ignored when parsing.
inline std::string hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    if (!out.empty()) out += ' ';
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

inline std::string unhex(std::string_view text) {
  std::string out;
  int high = -1;
  for (char c : text) {
    if (c == ' ' || c == '\n') continue;
    int v = c <= '9' ? c - '0' : c - 'a' + 10;
    if (high < 0) {
      high = v;
    } else {
      out += static_cast<char>(high * 16 + v);
      high = -1;
    }
  }
  return out;
}

inline std::string frameOf(const Message& msg) {
  std::string out;
  encode(msg, out);
  return out;
}

// A frame built by hand: length prefix, type, payload.
inline std::string rawFrame(Type type, std::string_view payload) {
  std::string out;
  uint32_t length = static_cast<uint32_t>(payload.size() + 1);
  for (int i = 0; i < 4; ++i) out += static_cast<char>((length >> (8 * i)) & 0xff);
  out += static_cast<char>(type);
  out.append(payload);
  return out;
}

// The payload of an encoded frame (strips length and type).
inline std::string payloadOf(const Message& msg) { return frameOf(msg).substr(5); }

// Feeds bytes to a fresh reader and returns its first result.
inline Result<std::optional<Message>> readOne(std::string_view bytes, uint32_t maxFrame = kDefaultMaxFrame) {
  FrameReader reader(maxFrame);
  reader.feed(bytes);
  return reader.next();
}

inline Event makeEvent(uint32_t watch, uint64_t seq, uint32_t mask, std::string dir, std::string name,
                       uint32_t cookie = 0) {
  Event ev;
  ev.watch = watch;
  ev.seq = seq;
  ev.mask = mask;
  ev.cookie = cookie;
  ev.dir = std::move(dir);
  ev.name = std::move(name);
  return ev;
}

}  // namespace test
}  // namespace rnotify::proto
