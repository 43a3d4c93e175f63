// ReflectionGate: how a handler tells the daemon's own requests from everyone
// else's, and what an own request may see.
//
// The reflector thread replays a remote change on the view with an ordinary
// system call (mknod, unlink, rename, ...) so that the kernel emits the
// genuine inotify/fanotify events. The request then comes back to one of our
// handlers with fuse_req_ctx(req)->pid equal to the reflector's thread id;
// that handler must not touch SOURCE, only report what is already there.
//
// Two kernel walks need help, and the reflector announces them here for the
// length of one system call:
//  - a reflected create: the name already exists on SOURCE, but the kernel's
//    lookup must find it absent, or mknod fails with EEXIST (kAbsent);
//  - a reflected delete or rename: the name is already gone on SOURCE, but the
//    kernel must find something to unlink or move (kGhost: a ghost inode).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

namespace rnotify::fuse {

class ReflectionGate {
 public:
  enum class Expect { kNone, kAbsent, kGhost, kUncached };

  void setReflector(pid_t tid) { reflector_ = tid; }
  bool isOwn(pid_t pid) const { return pid != 0 && pid == reflector_.load(); }

  // Announces how own lookups of `name` in directory `dir` (relative to
  // SOURCE) are to be answered, until clear().
  void expect(const std::string& dir, const std::string& name, Expect what, mode_t type = 0);
  void clear();
  // Whether anything is announced (cheap: lookups skip the rest when not).
  bool active() const { return active_.load(std::memory_order_acquire); }
  // kNone when nothing was announced for this entry; *type receives the
  // ghost's S_IFMT bits. The directories on the way to an announced entry
  // are kGhost directories.
  Expect expected(const std::string& dir, const std::string& name, mode_t* type) const;

 private:
  struct Entry {
    std::string dir, name;
    Expect what;
    mode_t type;
  };
  std::atomic<pid_t> reflector_{0};
  std::atomic<bool> active_{false};
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;
};

}  // namespace rnotify::fuse
