// Protocol v1 messages (docs/PROTOCOL.md is the specification; this is its
// C++ shape). One struct per message type; Message is their sum.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "event/event.h"

namespace rnotify::proto {

inline constexpr uint32_t kMagic = 0x59464e52;  // "RNFY" little-endian
inline constexpr uint16_t kVersion = 1;         // the highest version this build speaks
inline constexpr uint16_t kMinVersion = 1;
inline constexpr uint32_t kDefaultMaxFrame = 1u << 20;  // bytes, type byte included
inline constexpr uint32_t kMinMaxFrame = 4096;
inline constexpr size_t kMaxName = 255;   // NAME_MAX
inline constexpr size_t kMaxPath = 4096;  // PATH_MAX

// Capability bits, negotiated in the handshake (both sides must set a bit for
// it to be in force). A server sets kCapOrigin only when it can attribute
// events (a backend that reports pids, and the privilege to read /proc of
// other users' processes).
enum Capability : uint64_t {
  kCapResume = 1u << 0,  // Attach/Ack: after a reconnection the server replays what the client missed
  kCapOrigin = 1u << 1,  // Declare; events tagged with who caused them
  kCapStat = 1u << 2,    // events carry size, mtime, mode, owner on request
  kCapResync = 1u << 3,  // Snapshot/Entries: the client can re-read a watched tree after a gap
  kCapAuth = 1u << 4,    // Auth: a bearer token, on a TLS listener that asks for one
  // Liveness: the client sends a frame (Ping if nothing else) at least every
  // kKeepaliveMaxIntervalSeconds; the server answers Ping with Pong at once
  // and treats a client silent for its keepalive timeout (30 s) as gone.
  kCapKeepalive = 1u << 5,
  // Watch paths as the file server's clients name them (kWatchExportPath):
  // the server maps an NFS export path or SMB share name onto its exports.
  kCapExports = 1u << 6,
  // Declare takes kSmbPeerOrigin (an older server would store it as an
  // ordinary origin that matches nothing).
  kCapSmbPeer = 1u << 7,
};
inline constexpr int kKeepaliveMaxIntervalSeconds = 10;

inline constexpr size_t kMaxDeclared = 64;     // origins in one Declare
inline constexpr size_t kMaxOriginText = 255;  // bytes of one origin
// A declared origin meaning "whatever smbd serves the host this connection
// comes from" (the address as the server sees it, whatever NAT did to it).
inline constexpr char kSmbPeerOrigin[] = "smb peer";

enum class Type : uint8_t {
  kHello = 0x01,
  kWelcome = 0x02,
  kWatch = 0x10,
  kUnwatch = 0x11,
  kReply = 0x12,
  kDeclare = 0x13,
  kSnapshot = 0x14,
  kAttach = 0x15,
  kAck = 0x16,
  kAuth = 0x17,
  kEvents = 0x20,
  kEntries = 0x21,
  kPing = 0x30,
  kPong = 0x31,
  kFatal = 0x3f,
};

enum WatchFlag : uint32_t {
  kWatchRecursive = 1u << 0,
  // kCapOrigin: every event carries its origin (self or other). A server that
  // cannot attribute the events of this path refuses the watch (EOPNOTSUPP)
  // rather than tagging some of them unknown; the client then asks again without.
  kWatchOrigin = 1u << 1,
  kWatchOthersOnly = 1u << 2,  // kCapOrigin: as kWatchOrigin, and events of this client are dropped
  kWatchStat = 1u << 3,        // kCapStat: attach the entry's state to events
  // kCapExports: the path is the one an NFS or SMB client mounted ("/nfs/w"
  // of nas:/nfs, "/share/w" of //nas/share) plus the path below; the server
  // takes it as its own path if an export holds it by that spelling, else
  // maps its first component onto the export of that name.
  kWatchExportPath = 1u << 4,
};
inline constexpr uint32_t kKnownWatchFlags =
    kWatchRecursive | kWatchOrigin | kWatchOthersOnly | kWatchStat | kWatchExportPath;

struct Hello {  // client -> server, first frame
  uint16_t minVersion = kMinVersion;
  uint16_t maxVersion = kVersion;
  uint64_t capabilities = 0;
  std::string clientName;  // "rnotify/0.1 host=..." for logs
};

struct Welcome {  // server -> client, answer to Hello
  uint16_t version = kVersion;
  uint64_t capabilities = 0;
  uint64_t instanceId = 0;  // random per server start
  uint32_t maxFrame = kDefaultMaxFrame;
  std::string serverName;
};

struct Watch {  // client -> server
  uint32_t requestId = 0;
  uint32_t flags = 0;  // WatchFlag
  uint32_t mask = 0;   // IN_* events wanted
  std::string path;    // server path: absolute, or relative to the server's working directory
};

struct Unwatch {  // client -> server
  uint32_t requestId = 0;
  uint32_t watchId = 0;
};

struct Reply {  // server -> client, one per Watch / Unwatch
  uint32_t requestId = 0;
  int32_t status = 0;    // 0 or an errno value (Linux numbering)
  uint32_t watchId = 0;  // for a successful Watch
  std::string message;   // error text naming the path; on success the resolved server path
};

// client -> server, with kCapOrigin: how the server sees this client's other
// connections, e.g. "ssh 192.0.2.7 50412" for the ssh connection of an sshfs
// mount (its client address and port, as in the server's SSH_CONNECTION).
// Events caused through those connections are this client's own. Answered by
// Reply; a later Declare replaces the earlier list.
struct Declare {
  uint32_t requestId = 0;
  std::vector<std::string> origins;
};

struct Events {  // server -> client
  std::vector<Event> events;
};

// client -> server, with kCapResync: list what a watch covers now (its root's
// entries, and for a recursive watch everything below). Answered by Entries
// frames carrying the same requestId, then a Reply.
struct Snapshot {
  uint32_t requestId = 0;
  uint32_t watchId = 0;
};

struct TreeEntry {
  std::string dir;   // relative to the watch root: "" or "a/b"
  std::string name;  // one entry name, never ""
  EventStat stat;    // lstat of the entry
};

struct Entries {  // server -> client, part of the answer to a Snapshot
  uint32_t requestId = 0;
  std::vector<TreeEntry> entries;
};

// Where a client stands in one watch's sequence of events.
struct WatchPosition {
  uint32_t watchId = 0;
  uint64_t seq = 0;  // the last event of that watch the client received
};
inline constexpr size_t kMaxPositions = 65536;  // in one Attach or Ack

// client -> server, with kCapResume, before any Watch: names the client's
// session so that it can be resumed. A new session: instanceId 0 and no
// positions. After a reconnection: the token of the session, the server
// instance it was made with, and the last sequence number of each watch; the
// server takes the session's watches over (same ids) and replays each watch's
// events after that number, or sends IN_Q_OVERFLOW on the watches whose
// events it no longer has. Answered by Reply (status 0; ESTALE: the server
// restarted; ENOENT: no such session any more, e.g. it expired).
struct Attach {
  uint32_t requestId = 0;
  uint64_t token[2] = {0, 0};  // 128 random bits chosen by the client, not all zero
  uint64_t instanceId = 0;     // 0 for a new session
  std::vector<WatchPosition> positions;
};

// client -> server, with kCapResume: the client has received these events,
// so the server need not keep them for a replay.
struct Ack {
  std::vector<WatchPosition> positions;
};

// client -> server, with kCapAuth, right after Welcome: the user's bearer
// token, on a TLS listener that authenticates clients by token (rnotifyd
// --token-dir). Until a Reply with status 0 answers it, the server accepts
// nothing else; a wrong token gets Reply EACCES and the connection closes.
struct Auth {
  uint32_t requestId = 0;
  std::string user;   // the local user name on the server, 1..255 bytes, no '/'
  std::string token;  // the secret, 1..1024 bytes; never logged
};
inline constexpr size_t kMaxUserName = 255;
inline constexpr size_t kMaxToken = 1024;

struct Ping {
  uint64_t token = 0;
};
struct Pong {
  uint64_t token = 0;
};

struct Fatal {  // either direction, then the sender closes
  int32_t code = 0;
  std::string message;
};

using Message = std::variant<Hello, Welcome, Watch, Unwatch, Reply, Declare, Snapshot, Events, Entries, Ping, Pong,
                             Fatal, Attach, Ack, Auth>;

}  // namespace rnotify::proto
