// Decoding of frame payloads (docs/PROTOCOL.md section 4). Nothing here trusts
// the input: every read is bounds-checked by WireReader, strings are checked
// for NUL and their limits, and the Events decoder only reserves room for as
// many records as the payload could possibly hold.
#include <cerrno>
#include <cstdio>

#include "proto/codec.h"
#include "proto/field_checks.h"
#include "proto/wire.h"

namespace rnotify::proto {
namespace {

using wire::WireReader;

// Smallest event record including its u16 length: the fixed fields and two
// empty strings. A count above payload / kMinRecord cannot be honest.
constexpr size_t kRecordFixed = 4 + 8 + 4 + 4;  // watchId, seq, mask, cookie
constexpr size_t kMinRecordBody = kRecordFixed + 2 + 2;
constexpr size_t kMinRecord = 2 + kMinRecordBody;

Result<Message> finish(WireReader& r, Message msg) {
  r.expectEnd();
  if (!r.ok()) return Error{EPROTO, r.error()};
  return msg;
}

Result<Message> decodeHello(std::string_view payload) {
  WireReader r(payload, "Hello");
  Hello m;
  uint32_t magic = r.get<uint32_t>("magic");
  m.minVersion = r.get<uint16_t>("minVersion");
  m.maxVersion = r.get<uint16_t>("maxVersion");
  m.capabilities = r.get<uint64_t>("capabilities");
  m.clientName = r.getString("clientName");
  if (r.ok() && magic != kMagic) {
    char hex[16];
    snprintf(hex, sizeof hex, "0x%08x", magic);
    r.fail(std::string("magic is ") + hex + ", expected 0x59464e52 (\"RNFY\"); the peer does not speak rnotify");
  }
  if (r.ok() && (m.minVersion == 0 || m.minVersion > m.maxVersion)) {
    r.fail("version range " + std::to_string(m.minVersion) + ".." + std::to_string(m.maxVersion) +
           " is empty or starts at 0");
  }
  return finish(r, std::move(m));
}

Result<Message> decodeWelcome(std::string_view payload) {
  WireReader r(payload, "Welcome");
  Welcome m;
  m.version = r.get<uint16_t>("version");
  m.capabilities = r.get<uint64_t>("capabilities");
  m.instanceId = r.get<uint64_t>("instanceId");
  m.maxFrame = r.get<uint32_t>("maxFrame");
  m.serverName = r.getString("serverName");
  if (r.ok() && m.version == 0) r.fail("version 0");
  if (r.ok() && m.maxFrame < kMinMaxFrame) {
    r.fail("maxFrame " + std::to_string(m.maxFrame) + " is below the minimum of " + std::to_string(kMinMaxFrame));
  }
  return finish(r, std::move(m));
}

Result<Message> decodeWatch(std::string_view payload) {
  WireReader r(payload, "Watch");
  Watch m;
  m.requestId = r.get<uint32_t>("requestId");
  m.flags = r.get<uint32_t>("flags");  // unknown bits are the server's EINVAL reply, not a framing error
  m.mask = r.get<uint32_t>("mask");
  m.path = r.getString("path", kMaxPath);
  return finish(r, std::move(m));
}

Result<Message> decodeUnwatch(std::string_view payload) {
  WireReader r(payload, "Unwatch");
  Unwatch m;
  m.requestId = r.get<uint32_t>("requestId");
  m.watchId = r.get<uint32_t>("watchId");
  return finish(r, m);
}

Result<Message> decodeReply(std::string_view payload) {
  WireReader r(payload, "Reply");
  Reply m;
  m.requestId = r.get<uint32_t>("requestId");
  m.status = r.get<int32_t>("status");
  m.watchId = r.get<uint32_t>("watchId");
  m.message = r.getString("message");
  if (r.ok() && m.status < 0) r.fail("negative status " + std::to_string(m.status));
  return finish(r, std::move(m));
}

Result<Message> decodeDeclare(std::string_view payload) {
  WireReader r(payload, "Declare");
  Declare m;
  m.requestId = r.get<uint32_t>("requestId");
  uint16_t count = r.get<uint16_t>("count");
  if (r.ok() && count > kMaxDeclared) {
    r.fail("count " + std::to_string(count) + " is above the limit of " + std::to_string(kMaxDeclared));
  }
  for (uint16_t i = 0; i < count && r.ok(); ++i) {
    std::string_view origin = r.getString("origin", kMaxOriginText);
    if (r.ok() && origin.empty()) r.fail("origin " + std::to_string(i) + " is empty");
    m.origins.emplace_back(origin);
  }
  return finish(r, std::move(m));
}

Result<Message> decodeSnapshot(std::string_view payload) {
  WireReader r(payload, "Snapshot");
  Snapshot m;
  m.requestId = r.get<uint32_t>("requestId");
  m.watchId = r.get<uint32_t>("watchId");
  return finish(r, m);
}

// (u32 watchId, u64 seq) x count, count a u32 that must fit the payload.
void decodePositions(WireReader& r, std::vector<WatchPosition>& out) {
  uint32_t count = r.get<uint32_t>("count");
  if (r.ok() && count > kMaxPositions) {
    r.fail("count " + std::to_string(count) + " is above the limit of " + std::to_string(kMaxPositions));
  }
  if (r.ok() && count > r.remaining() / 12) {
    r.fail("count " + std::to_string(count) + " cannot fit in " + std::to_string(r.remaining()) + " bytes");
  }
  if (!r.ok()) return;
  out.reserve(count);
  for (uint32_t i = 0; i < count && r.ok(); ++i) {
    WatchPosition& p = out.emplace_back();
    p.watchId = r.get<uint32_t>("watchId");
    p.seq = r.get<uint64_t>("seq");
  }
}

Result<Message> decodeAttach(std::string_view payload) {
  WireReader r(payload, "Attach");
  Attach m;
  m.requestId = r.get<uint32_t>("requestId");
  m.token[0] = r.get<uint64_t>("token");
  m.token[1] = r.get<uint64_t>("token");
  m.instanceId = r.get<uint64_t>("instanceId");
  if (r.ok() && m.token[0] == 0 && m.token[1] == 0) r.fail("the token is zero");
  decodePositions(r, m.positions);
  if (r.ok() && m.instanceId == 0 && !m.positions.empty()) r.fail("positions without an instanceId");
  return finish(r, std::move(m));
}

Result<Message> decodeAck(std::string_view payload) {
  WireReader r(payload, "Ack");
  Ack m;
  decodePositions(r, m.positions);
  return finish(r, std::move(m));
}

Result<Message> decodeAuth(std::string_view payload) {
  WireReader r(payload, "Auth");
  Auth m;
  m.requestId = r.get<uint32_t>("requestId");
  m.user = r.getString("user", kMaxUserName);
  m.token = r.getString("token", kMaxToken);
  if (r.ok()) {
    if (std::string p = userProblem(m.user); !p.empty()) r.fail(p);
  }
  if (r.ok() && m.token.empty()) r.fail("token is empty");
  return finish(r, std::move(m));
}

void decodeStat(WireReader& r, EventStat& st) {
  st.size = r.get<uint64_t>("size");
  st.mtimeSec = r.get<int64_t>("mtimeSec");
  st.mtimeNsec = r.get<uint32_t>("mtimeNsec");
  st.mode = r.get<uint32_t>("mode");
  st.uid = r.get<uint32_t>("uid");
  st.gid = r.get<uint32_t>("gid");
  st.ino = r.get<uint64_t>("ino");
  if (r.ok() && st.mtimeNsec >= 1000000000u) r.fail("mtimeNsec " + std::to_string(st.mtimeNsec) + " is not below 1e9");
}

// Smallest entry record including its u16 length: two strings (the name
// never empty) and the stat block.
constexpr size_t kMinEntryBody = 2 + 2 + 1 + 40;
constexpr size_t kMinEntry = 2 + kMinEntryBody;

Result<Message> decodeEntries(std::string_view payload) {
  WireReader r(payload, "Entries");
  Entries m;
  m.requestId = r.get<uint32_t>("requestId");
  uint32_t count = r.get<uint32_t>("count");
  if (r.ok() && count > r.remaining() / kMinEntry) {
    r.fail("count " + std::to_string(count) + " cannot fit in " + std::to_string(r.remaining()) + " bytes");
  }
  if (!r.ok()) return Error{EPROTO, r.error()};
  m.entries.reserve(count);
  for (uint32_t i = 0; i < count && r.ok(); ++i) {
    uint16_t length = r.get<uint16_t>("recordLength");
    WireReader record = r.take(length, "entry");
    if (!r.ok()) break;
    TreeEntry& e = m.entries.emplace_back();
    e.dir = record.getString("dir", kMaxPath);
    e.name = record.getString("name", kMaxName);
    if (record.ok()) {
      if (std::string p = dirProblem(e.dir); !p.empty()) record.fail(p);
      if (std::string p = nameProblem(e.name); record.ok() && !p.empty()) record.fail(p);
      if (record.ok() && e.name.empty()) record.fail("empty name");
    }
    if (record.ok()) decodeStat(record, e.stat);
    // Bytes after the known fields belong to later versions and are skipped.
    if (!record.ok()) r.fail("entry " + std::to_string(i) + ": " + record.detail());
  }
  return finish(r, std::move(m));
}

// One record; `r` holds exactly the recordLength bytes. Bytes after the known
// fields belong to later versions and are skipped.
void decodeRecord(WireReader& r, Event& ev) {
  ev.watch = r.get<uint32_t>("watchId");
  ev.seq = r.get<uint64_t>("seq");
  ev.mask = r.get<uint32_t>("mask") & ~kInRemote;  // never on the wire; the client adds it
  ev.cookie = r.get<uint32_t>("cookie");
  ev.dir = r.getString("dir", kMaxPath);
  ev.name = r.getString("name", kMaxName);
  if (!r.ok()) return;
  if (std::string p = dirProblem(ev.dir); !p.empty()) return r.fail(p);
  if (std::string p = nameProblem(ev.name); !p.empty()) return r.fail(p);
  if (r.remaining() == 0) return;
  // The extension of section 4.6: origin, then the stat block.
  uint8_t origin = r.get<uint8_t>("origin");
  uint8_t hasStat = r.get<uint8_t>("hasStat");
  if (!r.ok()) return;
  if (origin > static_cast<uint8_t>(Origin::kSelf))
    return r.fail("origin " + std::to_string(origin) + " is not 0, 1 or 2");
  if (hasStat > 1) return r.fail("hasStat " + std::to_string(hasStat) + " is not 0 or 1");
  ev.origin = static_cast<Origin>(origin);
  ev.hasStat = hasStat == 1;
  if (!ev.hasStat) return;
  decodeStat(r, ev.stat);
}

Result<Message> decodeEvents(std::string_view payload) {
  WireReader r(payload, "Events");
  Events m;
  uint32_t count = r.get<uint32_t>("count");
  if (r.ok() && count > r.remaining() / kMinRecord) {
    r.fail("count " + std::to_string(count) + " cannot fit in " + std::to_string(r.remaining()) + " bytes");
  }
  if (!r.ok()) return Error{EPROTO, r.error()};
  m.events.reserve(count);
  for (uint32_t i = 0; i < count && r.ok(); ++i) {
    uint16_t length = r.get<uint16_t>("recordLength");
    if (r.ok() && length < kMinRecordBody) {
      r.fail("record " + std::to_string(i) + " has recordLength " + std::to_string(length) + ", below the minimum of " +
             std::to_string(kMinRecordBody));
    }
    WireReader record = r.take(length, "record");
    if (!r.ok()) break;
    decodeRecord(record, m.events.emplace_back());
    if (!record.ok()) r.fail("record " + std::to_string(i) + ": " + record.detail());
  }
  return finish(r, std::move(m));
}

template <typename T>
Result<Message> decodeToken(std::string_view payload, const char* what) {
  WireReader r(payload, what);
  T m;
  m.token = r.get<uint64_t>("token");
  return finish(r, m);
}

Result<Message> decodeFatal(std::string_view payload) {
  WireReader r(payload, "Fatal");
  Fatal m;
  m.code = r.get<int32_t>("code");
  m.message = r.getString("message");
  if (r.ok() && m.code < 0) r.fail("negative code " + std::to_string(m.code));
  return finish(r, std::move(m));
}

}  // namespace

Result<Message> decode(Type type, std::string_view payload) {
  switch (type) {
    case Type::kHello:
      return decodeHello(payload);
    case Type::kWelcome:
      return decodeWelcome(payload);
    case Type::kWatch:
      return decodeWatch(payload);
    case Type::kUnwatch:
      return decodeUnwatch(payload);
    case Type::kReply:
      return decodeReply(payload);
    case Type::kDeclare:
      return decodeDeclare(payload);
    case Type::kSnapshot:
      return decodeSnapshot(payload);
    case Type::kEntries:
      return decodeEntries(payload);
    case Type::kAttach:
      return decodeAttach(payload);
    case Type::kAck:
      return decodeAck(payload);
    case Type::kAuth:
      return decodeAuth(payload);
    case Type::kEvents:
      return decodeEvents(payload);
    case Type::kPing:
      return decodeToken<Ping>(payload, "Ping");
    case Type::kPong:
      return decodeToken<Pong>(payload, "Pong");
    case Type::kFatal:
      return decodeFatal(payload);
  }
  char hex[8];
  snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned>(type));
  return Error{EPROTO, std::string("unknown frame type ") + hex};
}

}  // namespace rnotify::proto
