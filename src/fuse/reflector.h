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
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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
  using Clock = std::chrono::steady_clock;
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
  // not a network mount any more, or its root deleted), with the reason.
  void start(std::function<void(const std::string&)> lost);
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
  // Closes the view's descriptor of a file held for its writer (its
  // CLOSE_WRITE on the view), recording it in closedEarly_.
  void closeWriter(const std::string& key);
  // Closes every held file (a directory moved or deleted: their keys are
  // paths), or those idle since `idleSince` (all when it is max()).
  void closeWriters(Clock::time_point idleSince);
  // When the next held file is due to be closed, or max().
  Clock::time_point writersDue() const;
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
  ReflectorStats stats_;
  // A MOVED_FROM waiting for its MOVED_TO (same cookie).
  struct PendingMove {
    ClientEvent event;
    std::string rel;
    std::chrono::steady_clock::time_point due;
  };
  std::optional<PendingMove> pendingMove_;
  // Files being written on the server, keyed "rel/name": the first remote
  // MODIFY opens the file on the view for writing, each MODIFY truncates it
  // to its size (IN_MODIFY on the view), and the server's CLOSE_WRITE closes
  // it: one CLOSE_WRITE on the view for the server's one, however many
  // writes came before. A file is closed earlier when its writer has been
  // quiet for kWriterHold (so that `fusermount3 -u` is refused with EBUSY
  // for at most that long while a server-side writer keeps its file open),
  // when it is deleted or renamed, or when kMaxWriters are held.
  struct HeldWriter {
    UniqueFd fd;
    Clock::time_point lastUse;
  };
  std::map<std::string, HeldWriter> writers_;
  // Files closed before the server's CLOSE_WRITE came (so the view saw a
  // CLOSE_WRITE already): that CLOSE_WRITE is not replayed again. Entries
  // are dropped after kClosedEarlyTtl (a writer that never closes, or whose
  // CLOSE_WRITE was lost) and at most kMaxClosedEarly are kept.
  std::map<std::string, Clock::time_point> closedEarly_;
  std::chrono::steady_clock::time_point nextSourceCheck_;
};

}  // namespace rnotify::fuse
