// Dedup: one change, one event, for watches that have both a local source
// (this host's kernel, on the mount) and a remote one (the server). A change
// this host makes through the mount is reported by both; the user must see
// it once, and a change by anyone else must never be hidden. Per watch, one
// of three strategies (docs/ARCHITECTURE.md, "One change, one event"):
//
// - kOrigin: the server tags each event with who caused it (Declare, and an
//   attributed watch). The server's stream is the whole truth, in the
//   server's order: the local kernel's copies of changes are dropped, the
//   server's own-origin events are delivered without IN_REMOTE. Read-side
//   events (OPEN, ACCESS, CLOSE_NOWRITE) come from the local kernel, since
//   reads served from this host's cache never reach the server.
// - kEcho: no attribution. A local report is held (at most `hold`) until its
//   echo from the server arrives (same watch, kind, directory and name); it is
//   then delivered once, at the echo's place in the server's order. A local
//   report whose echo does not come in time is delivered when the hold ends,
//   and still absorbs its echo if that arrives within `window`. A server
//   report that comes before the local one is delivered at once and absorbs
//   the local one. Each report absorbs at most one other, so the number of
//   events delivered equals the number the server saw: another host's change
//   is only ever paired with an equal local one, never hidden.
// - kState: kEcho, plus the entry's state (size, mtime, mode, owner) that the
//   server attaches to MODIFY/ATTRIB/CLOSE_WRITE: when it differs from the
//   state this host saw after its own change, someone else changed the entry
//   too, and the event is delivered as IN_REMOTE instead of as this host's.
//   On NFS the server's copy of this host's own change often arrives first
//   (the change is made while the RPC is on the wire, and the local kernel
//   reports it only when the reply is back). remote() is then told whether
//   this host has an operation on the mount that may still report
//   (`mayBeOwn`, from the NFS client's counters): if so, the server's report
//   is held (at most `hold`) for a local twin, and every later server report
//   of the watch queues behind it, so that the server's order is kept.
//   Paired, it is delivered as this host's; not, as IN_REMOTE when the hold
//   ends.
// A held local report follows the server's renames of its entry: the server
// may apply this host's operation after someone else renamed the entry (sshfs
// sends a close after the application's close() returned), and then reports
// it under the new name.
// - kPolled: the remote source is a polling scan (IN_POLLED) or SMB2 change
//   notify (which tells neither cookies nor directories), which sees
//   this host's changes too, later and less precisely (a rename may be a
//   DELETE + CREATE, a write and a chmod the same MODIFY). Local reports are
//   delivered at once (they are the precise ones) and each absorbs one scan
//   report of the same entry and broad kind (removed, added, changed) within
//   `polledWindow`.
// - kNone: both streams pass through (no remote source, or dedup = off).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "event/event.h"

namespace rnotify {

class Dedup {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Strategy { kNone, kOrigin, kState, kEcho, kPolled };

  struct Options {
    std::chrono::milliseconds hold{250};            // how long a local report waits for the server's copy
    std::chrono::milliseconds window{2000};         // how long a delivered report can still absorb its copy
    std::chrono::milliseconds polledWindow{10000};  // kPolled: a scan may come a few seconds after the change
    size_t maxPending = 65536;                      // bound on remembered reports; the oldest go first
  };

  // Receives every event to deliver, in order. mask includes IN_REMOTE for
  // events the user is to see as made elsewhere.
  using Emit = std::function<void(int wd, uint32_t mask, uint32_t cookie, uint64_t seq, std::string_view dir,
                                  std::string_view name)>;

  Dedup(Options options, Emit emit) : options_(options), emit_(std::move(emit)) {}

  // "origin attribution", "state comparison", "echo matching", "no de-duplication".
  static const char* name(Strategy strategy);

  void setStrategy(int wd, Strategy strategy);
  Strategy strategy(int wd) const;

  // A report of this host's kernel. stat: the entry's state just after the
  // change, for kState (nullptr when unknown).
  void local(int wd, uint32_t mask, uint32_t cookie, std::string_view dir, std::string_view name, const EventStat* stat,
             Clock::time_point now);
  // A report of the server (mask without IN_REMOTE). mayBeOwn: this host
  // has an operation under way on the mount whose local report may come
  // after this one (kEcho and kState only).
  void remote(int wd, const Event& event, Clock::time_point now, bool mayBeOwn = false);
  // Delivers the held local reports whose hold has ended.
  void release(Clock::time_point now);
  // When the next held report is due, or Clock::time_point::max().
  Clock::time_point nextRelease() const;
  // Delivers everything held for a watch and forgets it (the watch ended or
  // lost its remote source).
  void forget(int wd);

  size_t held() const { return heldCount_ + heldRemoteCount_; }
  std::chrono::milliseconds hold() const { return options_.hold; }
  size_t remembered() const { return rememberedCount_; }
  uint64_t absorbed() const { return absorbed_; }
  uint64_t paired() const { return paired_; }

  // Whether reports of this kind are paired at all (not IGNORED, Q_OVERFLOW, UNMOUNT).
  static bool pairable(uint32_t mask);
  // Read-side kinds, which a local cache can serve without the server seeing them.
  static bool readSide(uint32_t mask);
  // The broad kind a scan can tell (kPolled): MOVED_FROM as DELETE, MOVED_TO
  // as CREATE, ATTRIB and CLOSE_WRITE as MODIFY; IN_ISDIR left out.
  static uint32_t polledKind(uint32_t mask);

 private:
  // A report waiting for its counterpart, in one of three roles.
  enum class Role : uint8_t { kHeldLocal, kDeliveredLocal, kDeliveredRemote, kHeldRemote };
  struct Entry {
    Role role = Role::kHeldLocal;
    bool live = true;
    Clock::time_point due;  // end of the hold (kHeldLocal) or of the window
    std::string key;
    int wd = 0;
    uint32_t mask = 0;
    uint32_t cookie = 0;
    std::string dir;
    std::string name;
    bool hasStat = false;
    EventStat stat;
    // kHeldRemote: the server's sequence number, and how it is to be
    // delivered once it is at the head of its watch's queue (ready).
    uint64_t seq = 0;
    uint64_t order = 0;  // arrival: of two entries with one key, the older pairs first
    bool ready = false;
    bool asRemote = true;  // delivered with IN_REMOTE
  };
  using Queue = std::deque<Entry>;

  static Entry makeEntry(Role role, Clock::time_point due, std::string key, int wd);
  static std::string keyOf(int wd, uint32_t mask, std::string_view dir, std::string_view name);
  // The oldest live entry of `role` with this key, or nullptr.
  Entry* find(const std::string& key, Role role);
  void remember(Queue& queue, Entry entry);
  void retire(Entry& entry);
  void trim(Queue& queue, Clock::time_point now, bool isHeld);
  void deliverHeld(Entry& entry, Clock::time_point now);
  // Moves held local reports along when the server renames their entry.
  void followRename(int wd, const Event& event);
  void localPolled(int wd, uint32_t mask, uint32_t cookie, std::string_view dir, std::string_view name,
                   Clock::time_point now);
  void remotePolled(int wd, const Event& event, Clock::time_point now);
  // Queues a server report behind the ones held for the watch.
  void queueRemote(int wd, const Event& event, uint32_t mask, Clock::time_point due, bool ready, bool asRemote,
                   std::string key, Clock::time_point now);
  // Delivers a watch's queued server reports from the head while they are
  // ready or their hold has ended.
  // (Those due by `until`; `now` for the window of what is delivered.)
  void releaseRemote(int wd, Clock::time_point until, Clock::time_point now, bool all = false);
  void deliverRemote(Entry& entry, Clock::time_point now);

  Options options_;
  Emit emit_;
  std::unordered_map<int, Strategy> strategies_;
  Queue held_;       // kHeldLocal, oldest first (one hold for all: due order is arrival order)
  Queue delivered_;  // kDeliveredLocal and kDeliveredRemote, oldest first
  Queue polled_;     // the same for kPolled watches (a longer window: due order stays arrival order)
  std::unordered_map<int, Queue> heldRemote_;  // per watch, kHeldRemote in the server's order
  std::unordered_multimap<std::string, Entry*> byKey_;
  size_t heldCount_ = 0;        // kHeldLocal
  size_t heldRemoteCount_ = 0;  // kHeldRemote still to pair
  uint64_t nextOrder_ = 0;
  size_t rememberedCount_ = 0;
  uint64_t absorbed_ = 0;
  uint64_t paired_ = 0;
  std::unordered_map<uint32_t, std::pair<std::string, std::string>> renames_;  // server MOVED_FROM by cookie
  Entry* lastHeld_ = nullptr;  // the latest local report, while held: an identical one right after it coalesces
};

}  // namespace rnotify
