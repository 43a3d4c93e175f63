// Reflector: the one thread that owns the client core (Client is not
// thread-safe) and turns each remote event on SOURCE into
//   (a) invalidations of the view's kernel caches (notify_inval_entry /
//       notify_inval_inode), so that stat, readdir and read show the new state
//       at once, and
//   (b) the matching system call on the view itself (mknod/mkdir/symlink,
//       unlink/rmdir, renameat, open for write + ftruncate + close, utimensat),
//       which our handlers recognise as our own (ReflectionGate) and answer
//       from SOURCE without changing it. The kernel then emits the genuine
//       events to every inotify and fanotify watcher on the view.
//
// Only events with IN_REMOTE are reflected (also those flagged IN_SYNTHESIZED
// or IN_POLLED): an event without it is this host's own change through the
// network mount, and if it was made through the view the kernel has already
// reported it there.
//
// It subscribes once, recursively, to the SOURCE root: simpler than following
// the kernel's lookup counts, at the price of watching directories nobody on
// the view looks at.
#pragma once

#include <fuse_lowlevel.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "client/client.h"
#include "common/unique_fd.h"
#include "fuse/inode_table.h"
#include "fuse/reflection_gate.h"

namespace rnotify::fuse {

struct ReflectorStats {
  std::atomic<uint64_t> reflected{0};  // system calls made on the view
  std::atomic<uint64_t> failed{0};     // of which failed (logged at debug)
  std::atomic<uint64_t> ignored{0};    // events without IN_REMOTE
};

class Reflector {
 public:
  struct Paths {
    std::string source;     // canonical SOURCE, no trailing slash
    std::string view;       // canonical mount point of the view
    std::string watchBase;  // the ClientEvent::path prefix of the SOURCE watch
    bool allowLocal = false;
  };
  Reflector(std::unique_ptr<Client> client, Paths paths, InodeTable& table, ReflectionGate& gate,
            fuse_session* session);
  ~Reflector();

  // `lost` runs on the reflector thread when SOURCE disappears (unmounted,
  // not a network mount any more, or its root deleted), with the reason;
  // `failed` when reflecting ends on an exception (out of memory), with its
  // message: either way the thread has stopped reflecting.
  void start(std::function<void(const std::string&)> lost, std::function<void(const std::string&)> failed);
  // Asks the thread to stop and waits up to `wait`; false if it is still
  // inside a system call on the view (unmount the view, then stop()).
  bool stopWithin(std::chrono::milliseconds wait);
  // Stops the thread. The view must be served or already unmounted: the
  // thread may be inside a system call on it.
  void stop();
  // From now on the thread sends no invalidations: called before the session
  // is unmounted (which closes /dev/fuse) while the thread may still run, so
  // that no notification is written to a closed (or reused) descriptor.
  void detachSession();
  const ReflectorStats& stats() const { return stats_; }

 private:
  void run();
  void handle(const ClientEvent& event);
  bool checkSourceAlive();
  // dir relative to SOURCE, "" for the root; false if the event is not below
  // SOURCE.
  bool relativeDir(const ClientEvent& event, std::string* rel) const;
  std::string viewPath(const std::string& rel, const std::string& name) const;
  std::string sourcePath(const std::string& rel, const std::string& name) const;

  // The invalidations, unless detachSession() was called.
  void notifyInode(fuse_ino_t ino, off_t offset, off_t length);
  void notifyEntry(fuse_ino_t parent, const std::string& name);
  void invalidateEntry(const std::string& rel, const std::string& name);
  void invalidateInode(const std::string& rel, const std::string& name);
  // Drops the kernel's entry for `name` (a negative one, typically, left by
  // a lookup after SOURCE had moved on), so that the next walk asks our
  // lookup again.
  void invalidateName(const std::string& rel, const std::string& name);
  // Runs a reflected call (-1 and errno on failure); on ENOENT drops the
  // name's entry and runs it again.
  int retryPastNegative(const std::string& rel, const std::string& name, const std::function<int()>& call);
  // For the length of one reflected call on `name`: if SOURCE no longer has
  // it, own lookups get the known inode or a ghost.
  class GhostScope {
   public:
    GhostScope(Reflector& reflector, const std::string& rel, const std::string& name);
    ~GhostScope();

   private:
    Reflector& reflector_;
  };
  void reflectCreate(const std::string& rel, const std::string& name, bool isDir);
  void reflectDelete(const std::string& rel, const std::string& name, bool isDir);
  void reflectRename(const std::string& fromRel, const std::string& fromName, const std::string& toRel,
                     const std::string& toName, bool isDir);
  void reflectModify(const std::string& rel, const std::string& name);
  void reflectCloseWrite(const std::string& rel, const std::string& name);
  void reflectAttrib(const std::string& rel, const std::string& name);
  void forgetClosedEarly(const std::string& rel, const std::string& name);
  void count(int result, const char* call, const std::string& path);

  std::unique_ptr<Client> client_;
  Paths paths_;
  InodeTable& table_;
  ReflectionGate& gate_;
  std::mutex sessionMutex_;
  fuse_session* session_;  // null once detached (sessionMutex_)
  UniqueFd wake_;          // eventfd: stop()
  std::atomic<bool> stopping_{false};
  std::atomic<bool> finished_{false};
  std::thread thread_;
  std::function<void(const std::string&)> lost_;
  std::function<void(const std::string&)> failed_;
  ReflectorStats stats_;
  // A MOVED_FROM waiting for its MOVED_TO (same cookie).
  struct PendingMove {
    ClientEvent event;
    std::string rel;
    std::chrono::steady_clock::time_point due;
  };
  std::optional<PendingMove> pendingMove_;
  // Files whose reflected MODIFY already closed them (so the view saw a
  // CLOSE_WRITE): the server's own CLOSE_WRITE that follows is not replayed
  // again. Keeping the file open instead would make `fusermount3 -u` fail
  // with EBUSY while a server-side writer keeps its file open.
  std::set<std::string> closedEarly_;
  std::chrono::steady_clock::time_point nextSourceCheck_;
};

}  // namespace rnotify::fuse
