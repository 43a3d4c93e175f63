// Watcher: the one small interface every watching backend implements (inotify,
// fanotify, and the automatic choice between them; SMB2 and polling later).
// The rest of rnotify never knows which backend runs. A backend is drained by
// one loop: when fd() is readable the owner calls drain(), which reads
// everything the kernel has queued and hands each event, once per interested
// subscription, to the EventSink.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace rnotify {

using SubscriptionId = uint32_t;

class EventSink {
 public:
  virtual ~EventSink() = default;
  // dir is relative to the subscription's root ("" or "a/b"); name is the entry
  // ("" for the directory itself). Views are valid only during the call.
  // IN_IGNORED with dir "" ends the subscription; the backend forgets it after
  // this call. IN_Q_OVERFLOW (dir and name "") means events may have been lost.
  // pid is the process that caused the event when the backend knows it
  // (fanotify; inotify with a PidProbe), 0 otherwise.
  virtual void onEvent(SubscriptionId subscription, uint32_t mask, uint32_t cookie, std::string_view dir,
                       std::string_view name, int pid) = 0;
  // Called after each read from the kernel, before its events are handed
  // on: whatever the owner must learn of changes that happened before these
  // events (rnotifyd's revocation guard) it reads now, so that it is never
  // behind the events it is about to judge.
  virtual void onKernelRead() {}
  // The events handed on from now until the next call happened in the
  // directory with this inode number (0: not known). A backend that knows
  // calls it before each event's onEvent calls; rnotifyd checks with it that
  // the path it judges an event by still names the directory of the event.
  virtual void onEventDirectory(uint64_t /*ino*/) {}
};

struct SubscribeOptions {
  uint32_t mask = 0;       // IN_* events wanted; IN_DONT_FOLLOW/IN_ONLYDIR/IN_EXCL_UNLINK honoured
  bool recursive = false;  // every directory below, including ones created later
  // The caller needs each event's acting pid (origin attribution); false
  // spares a backend that has to work for it (inotify's PidProbe) the cost.
  bool pids = true;
  // A descriptor of the entry to watch (O_PATH is enough), opened by the
  // caller where the path came from someone it must not trust (rnotifyd opens
  // it beneath an export, as the client). The backend uses it during
  // subscribe() only (the caller may close it then) and from then on reaches
  // the tree only through descriptors, never by a path lookup that could
  // follow a symbolic link out of it (confined_open.h). -1: the backend opens
  // `path` itself, once (the path is then the caller's own). Either way the
  // path names the subscription in messages only.
  int rootFd = -1;
};

class Watcher {
 public:
  virtual ~Watcher() = default;
  virtual int fd() const = 0;
  // path must be absolute. Errors carry errno (ENOENT, EACCES, ENOTDIR, ENOSPC;
  // ENODEV, EXDEV, EOPNOTSUPP from fanotify where a filesystem cannot be marked).
  virtual Result<SubscriptionId> subscribe(const std::string& path, const SubscribeOptions& options) = 0;
  virtual void unsubscribe(SubscriptionId id) = 0;
  virtual void drain() = 0;
  virtual size_t kernelWatchCount() const = 0;
  virtual std::string_view name() const = 0;
  // The backend that serves a subscription (a composite watcher routes each
  // subscription to one of several).
  virtual std::string_view backendFor(SubscriptionId) const { return name(); }
  // Whether events of this subscription carry the acting pid.
  virtual bool reportsPids(SubscriptionId) const { return false; }
};

// kInotify: plain inotify, no pids. kFanotify: filesystem marks only.
// kAuto: inotify with pids where the process may use fanotify, and a
// filesystem mark where inotify's watch limit is reached (AutoWatcher).
enum class WatcherKind { kInotify, kFanotify, kAuto };

// The one place a backend is chosen.
Result<std::unique_ptr<Watcher>> makeWatcher(WatcherKind kind, EventSink& sink);

}  // namespace rnotify
