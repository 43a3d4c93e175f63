// Encoding of protocol v1 frames (docs/PROTOCOL.md sections 3 and 4). The
// encoder appends to the caller's buffer and never fails: senders check what
// they did not produce themselves with validate(). A string over its limit is
// cut to one byte past the limit, so that the frame stays well formed and the
// peer rejects it, rather than acting on a silently shortened path.
#include <algorithm>
#include <type_traits>

#include "proto/codec.h"
#include "proto/wire.h"

namespace rnotify::proto {
namespace {

using wire::put;
using wire::putString;

constexpr size_t kRecordHeader = 2 + 4 + 8 + 4 + 4;      // recordLength .. cookie
constexpr size_t kStatSize = 8 + 8 + 4 + 4 + 4 + 4 + 8;  // size .. ino

bool hasExtension(const Event& ev) { return ev.origin != Origin::kUnknown || ev.hasStat; }

void putStat(std::string& out, const EventStat& st) {
  put<uint64_t>(out, st.size);
  put<int64_t>(out, st.mtimeSec);
  put<uint32_t>(out, st.mtimeNsec);
  put<uint32_t>(out, st.mode);
  put<uint32_t>(out, st.uid);
  put<uint32_t>(out, st.gid);
  put<uint64_t>(out, st.ino);
}

size_t clampedDir(const Event& ev) { return std::min(ev.dir.size(), kMaxPath + 1); }
size_t clampedName(const Event& ev) { return std::min(ev.name.size(), kMaxName + 1); }

struct PayloadWriter {
  std::string& out;

  void operator()(const Hello& m) {
    put<uint32_t>(out, kMagic);
    put<uint16_t>(out, m.minVersion);
    put<uint16_t>(out, m.maxVersion);
    put<uint64_t>(out, m.capabilities);
    putString(out, m.clientName);
  }
  void operator()(const Welcome& m) {
    put<uint16_t>(out, m.version);
    put<uint64_t>(out, m.capabilities);
    put<uint64_t>(out, m.instanceId);
    put<uint32_t>(out, m.maxFrame);
    putString(out, m.serverName);
  }
  void operator()(const Watch& m) {
    put<uint32_t>(out, m.requestId);
    put<uint32_t>(out, m.flags);
    put<uint32_t>(out, m.mask);
    putString(out, m.path, kMaxPath + 1);
  }
  void operator()(const Unwatch& m) {
    put<uint32_t>(out, m.requestId);
    put<uint32_t>(out, m.watchId);
  }
  void operator()(const Reply& m) {
    put<uint32_t>(out, m.requestId);
    put<int32_t>(out, m.status);
    put<uint32_t>(out, m.watchId);
    putString(out, m.message);
  }
  void operator()(const Declare& m) {
    put<uint32_t>(out, m.requestId);
    put<uint16_t>(out, static_cast<uint16_t>(std::min(m.origins.size(), size_t{0xffff})));
    for (size_t i = 0; i < m.origins.size() && i < 0xffff; ++i) putString(out, m.origins[i], kMaxOriginText + 1);
  }
  void operator()(const Snapshot& m) {
    put<uint32_t>(out, m.requestId);
    put<uint32_t>(out, m.watchId);
  }
  void operator()(const Entries& m) {
    put<uint32_t>(out, m.requestId);
    put<uint32_t>(out, static_cast<uint32_t>(m.entries.size()));
    for (const TreeEntry& e : m.entries) appendEntry(out, e);
  }
  void operator()(const Events& m) {
    put<uint32_t>(out, static_cast<uint32_t>(m.events.size()));
    for (const Event& ev : m.events) appendEvent(out, ev);
  }
  void putPositions(const std::vector<WatchPosition>& positions) {
    size_t n = std::min(positions.size(), kMaxPositions + 1);
    put<uint32_t>(out, static_cast<uint32_t>(n));
    for (size_t i = 0; i < n; ++i) {
      put<uint32_t>(out, positions[i].watchId);
      put<uint64_t>(out, positions[i].seq);
    }
  }
  void operator()(const Attach& m) {
    put<uint32_t>(out, m.requestId);
    put<uint64_t>(out, m.token[0]);
    put<uint64_t>(out, m.token[1]);
    put<uint64_t>(out, m.instanceId);
    putPositions(m.positions);
  }
  void operator()(const Ack& m) { putPositions(m.positions); }
  void operator()(const Auth& m) {
    put<uint32_t>(out, m.requestId);
    putString(out, m.user, kMaxUserName + 1);
    putString(out, m.token, kMaxToken + 1);
  }
  void operator()(const Ping& m) { put<uint64_t>(out, m.token); }
  void operator()(const Pong& m) { put<uint64_t>(out, m.token); }
  void operator()(const Fatal& m) {
    put<int32_t>(out, m.code);
    putString(out, m.message);
  }
};

}  // namespace

Type typeOf(const Message& msg) {
  return std::visit(
      [](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, Hello>) return Type::kHello;
        if constexpr (std::is_same_v<T, Welcome>) return Type::kWelcome;
        if constexpr (std::is_same_v<T, Watch>) return Type::kWatch;
        if constexpr (std::is_same_v<T, Unwatch>) return Type::kUnwatch;
        if constexpr (std::is_same_v<T, Reply>) return Type::kReply;
        if constexpr (std::is_same_v<T, Declare>) return Type::kDeclare;
        if constexpr (std::is_same_v<T, Snapshot>) return Type::kSnapshot;
        if constexpr (std::is_same_v<T, Entries>) return Type::kEntries;
        if constexpr (std::is_same_v<T, Events>) return Type::kEvents;
        if constexpr (std::is_same_v<T, Ping>) return Type::kPing;
        if constexpr (std::is_same_v<T, Pong>) return Type::kPong;
        if constexpr (std::is_same_v<T, Fatal>) return Type::kFatal;
        if constexpr (std::is_same_v<T, Attach>) return Type::kAttach;
        if constexpr (std::is_same_v<T, Ack>) return Type::kAck;
        if constexpr (std::is_same_v<T, Auth>) return Type::kAuth;
      },
      msg);
}

const char* typeName(Type type) {
  switch (type) {
    case Type::kHello:
      return "Hello";
    case Type::kWelcome:
      return "Welcome";
    case Type::kWatch:
      return "Watch";
    case Type::kUnwatch:
      return "Unwatch";
    case Type::kReply:
      return "Reply";
    case Type::kDeclare:
      return "Declare";
    case Type::kSnapshot:
      return "Snapshot";
    case Type::kAttach:
      return "Attach";
    case Type::kAck:
      return "Ack";
    case Type::kAuth:
      return "Auth";
    case Type::kEntries:
      return "Entries";
    case Type::kEvents:
      return "Events";
    case Type::kPing:
      return "Ping";
    case Type::kPong:
      return "Pong";
    case Type::kFatal:
      return "Fatal";
  }
  return "unknown";
}

void encode(const Message& msg, std::string& out) {
  size_t start = out.size();
  out.append(4, '\0');  // length, patched below
  out.push_back(static_cast<char>(typeOf(msg)));
  std::visit(PayloadWriter{out}, msg);
  wire::storeLe<uint32_t>(out.data() + start, static_cast<uint32_t>(out.size() - start - 4));
}

size_t eventRecordSize(const Event& ev) {
  size_t size = kRecordHeader + 2 + clampedDir(ev) + 2 + clampedName(ev);
  if (hasExtension(ev)) size += 2 + (ev.hasStat ? kStatSize : 0);
  return size;
}

size_t beginEvents(std::string& out) {
  size_t start = out.size();
  char header[kEventsHeaderSize] = {};  // length and count are patched by finishEvents
  header[4] = static_cast<char>(Type::kEvents);
  out.append(header, sizeof header);
  return start;
}

void appendEvent(std::string& out, const Event& ev) {
  size_t dirSize = clampedDir(ev);
  size_t nameSize = clampedName(ev);
  // One append for the fixed fields: the server calls this per kernel event.
  char fixed[kRecordHeader + 2];
  wire::storeLe<uint16_t>(fixed, static_cast<uint16_t>(eventRecordSize(ev) - 2));
  wire::storeLe<uint32_t>(fixed + 2, ev.watch);
  wire::storeLe<uint64_t>(fixed + 6, ev.seq);
  wire::storeLe<uint32_t>(fixed + 14, ev.mask & ~kInRemote);
  wire::storeLe<uint32_t>(fixed + 18, ev.cookie);
  wire::storeLe<uint16_t>(fixed + 22, static_cast<uint16_t>(dirSize));
  out.append(fixed, sizeof fixed);
  out.append(ev.dir, 0, dirSize);
  put<uint16_t>(out, static_cast<uint16_t>(nameSize));
  out.append(ev.name, 0, nameSize);
  if (!hasExtension(ev)) return;
  put<uint8_t>(out, static_cast<uint8_t>(ev.origin));
  put<uint8_t>(out, ev.hasStat ? 1 : 0);
  if (!ev.hasStat) return;
  putStat(out, ev.stat);
}

size_t entryRecordSize(const TreeEntry& e) {
  return 2 + 2 + std::min(e.dir.size(), kMaxPath + 1) + 2 + std::min(e.name.size(), kMaxName + 1) + kStatSize;
}

void appendEntry(std::string& out, const TreeEntry& e) {
  put<uint16_t>(out, static_cast<uint16_t>(entryRecordSize(e) - 2));
  putString(out, e.dir, kMaxPath + 1);
  putString(out, e.name, kMaxName + 1);
  putStat(out, e.stat);
}

void finishEvents(std::string& out, size_t start, uint32_t count) {
  wire::storeLe<uint32_t>(out.data() + start, static_cast<uint32_t>(out.size() - start - 4));
  wire::storeLe<uint32_t>(out.data() + start + 5, count);
}

}  // namespace rnotify::proto
