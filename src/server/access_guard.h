// AccessGuard: revocation. A watch made for another user stays allowed only
// while that user may still reach its root from the export. What can change
// that happens to a directory on the way: its permissions (chmod, chown, an
// ACL or other xattr: IN_ATTRIB), a move (IN_MOVE_SELF) or its removal. The
// watch itself sees none of these for the directories above its root, so
// the guard watches them, with its own inotify instance on the server's
// loop: one kernel watch per directory from the export root down to the
// watch root (inclusive), shared by every watch below it and counted. The
// watches are placed through descriptors (each directory opened from the one
// above with O_NOFOLLOW, the watch added on /proc/self/fd/N), never by a
// path a client could have swapped. On any of these events it hands the
// watches below that directory to its handler, which re-checks them.
#pragma once

#include <asio.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "server/confined_tree.h"
#include "watch/watcher.h"

namespace rnotify {

class AccessGuard {
 public:
  // mask: the guard event (IN_ATTRIB, IN_MOVE_SELF, IN_DELETE_SELF,
  // IN_IGNORED; IN_Q_OVERFLOW for every watch).
  using Handler = std::function<void(SubscriptionId, uint32_t mask)>;
  static Result<std::unique_ptr<AccessGuard>> create(asio::io_context& io, Handler handler);
  ~AccessGuard();
  AccessGuard(const AccessGuard&) = delete;
  AccessGuard& operator=(const AccessGuard&) = delete;

  // Guards every directory from tree's export down to its root, in place of
  // what `id` had before (after a move, the directories above have changed).
  // Fails if the root is no longer where its descriptor says (it moved
  // meanwhile, or a directory on the way was swapped): the caller re-checks.
  Status guard(SubscriptionId id, const ConfinedTree& tree);
  void release(SubscriptionId id);
  // Reads what the kernel has queued for the guard now (the server calls it
  // after each read of the watchers' queue, before judging those events).
  void poll() {
    if (!users_.empty()) drain();
  }
  // Stops waiting for the kernel (the server's loop then runs out of work).
  void stop() { stream_.cancel(); }
  size_t kernelWatchCount() const { return users_.size(); }

 private:
  AccessGuard(asio::io_context& io, UniqueFd fd, Handler handler);
  // The kernel watches of the directories above tree's root, and its own.
  Status place(const ConfinedTree& tree, std::vector<int>* chain);
  void drop(int wd, SubscriptionId id);
  void wait();
  void drain();

  UniqueFd fd_;
  asio::posix::stream_descriptor stream_;
  Handler handler_;
  std::unordered_map<int, std::vector<SubscriptionId>> users_;   // kernel watch -> watches below it
  std::unordered_map<SubscriptionId, std::vector<int>> chains_;  // watch -> its kernel watches
};

}  // namespace rnotify
