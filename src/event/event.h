// The canonical event model. Every backend (inotify, later fanotify, SMB2,
// polling) translates into this through one table; everything downstream knows
// where an event came from only by its flags. Mask bits are inotify's IN_*
// values, plus IN_REMOTE (include/rnotify/rnotify.h) for events from a server.
#pragma once

#include <sys/inotify.h>
#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "rnotify/rnotify.h"

namespace rnotify {

inline constexpr uint32_t kInRemote = IN_REMOTE;
inline constexpr uint32_t kInSynthesized = IN_SYNTHESIZED;
inline constexpr uint32_t kInRestored = IN_RESTORED;

// The events a kernel watch is always asked for when it serves a recursive
// subscription, so that the tree can follow new, moved and deleted directories.
inline constexpr uint32_t kTreeMask =
    IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF;

// Everything but the noisy read-side events, which are forwarded only on request.
inline constexpr uint32_t kDefaultMask = IN_ALL_EVENTS & ~(IN_ACCESS | IN_OPEN | IN_CLOSE_NOWRITE);

// Who caused an event, as far as the server can tell (docs/PROTOCOL.md 4.6).
enum class Origin : uint8_t {
  kUnknown = 0,  // no attribution (inotify backend, unprivileged agent, knfsd)
  kOther = 1,    // another client, or a process on the server
  kSelf = 2,     // the client that receives the event, through its own mount
};

// The state of the entry right after the event, attached on request so that a
// client can tell its own change from a later one by someone else.
struct EventStat {
  uint64_t size = 0;
  int64_t mtimeSec = 0;
  uint32_t mtimeNsec = 0;
  uint32_t mode = 0;  // st_mode: type and permission bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t ino = 0;
  bool operator==(const EventStat&) const = default;
};

inline EventStat eventStatOf(const struct stat& st) {
  EventStat out;
  out.size = static_cast<uint64_t>(st.st_size);
  out.mtimeSec = st.st_mtim.tv_sec;
  out.mtimeNsec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  out.mode = st.st_mode;
  out.uid = st.st_uid;
  out.gid = st.st_gid;
  out.ino = st.st_ino;
  return out;
}

struct Event {
  uint32_t watch = 0;   // subscription / watch id
  uint64_t seq = 0;     // per-watch sequence number, from 1
  uint32_t mask = 0;    // IN_* | IN_ISDIR | IN_REMOTE
  uint32_t cookie = 0;  // pairs MOVED_FROM / MOVED_TO
  std::string dir;      // directory relative to the watch root: "" or "a/b"
  std::string name;     // entry name in dir; "" for events on dir itself
  Origin origin = Origin::kUnknown;
  bool hasStat = false;
  EventStat stat;
};

}  // namespace rnotify
