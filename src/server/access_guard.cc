#include "server/access_guard.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "common/log.h"

namespace rnotify {
namespace {

constexpr uint32_t kGuardMask = IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF;

// A kernel watch on the object behind fd: the magic link names that very
// object, however its path has changed since it was opened.
int watchObject(int inotifyFd, int fd, uint32_t mask) {
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  return ::inotify_add_watch(inotifyFd, link, mask);
}

}  // namespace

Result<std::unique_ptr<AccessGuard>> AccessGuard::create(asio::io_context& io, Handler handler) {
  UniqueFd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!fd) return lastError("inotify_init1 (the revocation guard)");
  std::unique_ptr<AccessGuard> guard(new AccessGuard(io, std::move(fd), std::move(handler)));
  guard->wait();
  return guard;
}

AccessGuard::AccessGuard(asio::io_context& io, UniqueFd fd, Handler handler)
    : fd_(std::move(fd)), stream_(io, fd_.get()), handler_(std::move(handler)) {}

AccessGuard::~AccessGuard() {
  asio::error_code ignored;
  stream_.cancel(ignored);  // the overload without it throws
  stream_.release();        // fd_ closes it, once
}

Status AccessGuard::place(const ConfinedTree& tree, std::vector<int>* chain) {
  std::string relative;
  if (!tree.relativeNow(&relative)) return Error{EXDEV, "'" + tree.path() + "' is no longer in its export"};
  std::vector<std::string> parts;
  for (size_t at = 0; at < relative.size();) {
    size_t slash = relative.find('/', at);
    if (slash == std::string::npos) slash = relative.size();
    parts.push_back(relative.substr(at, slash - at));
    at = slash + 1;
  }
  UniqueFd current(::openat(tree.exportFd(), ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  for (size_t i = 0;; ++i) {
    if (!current) return lastError("open a directory above '" + tree.path() + "'");
    const bool last = i == parts.size();
    struct stat st;
    if (::fstat(current.get(), &st) != 0) return lastError("fstat above '" + tree.path() + "'");
    // The root may be a file: no IN_ONLYDIR for it.
    int wd = watchObject(fd_.get(), current.get(), kGuardMask | (S_ISDIR(st.st_mode) ? IN_ONLYDIR : 0u));
    if (wd < 0) return lastError("inotify_add_watch above '" + tree.path() + "'");
    chain->push_back(wd);
    if (last) {
      struct stat root;
      const UniqueFd rootFd = tree.openRoot();
      if (!rootFd || ::fstat(rootFd.get(), &root) != 0 || root.st_dev != st.st_dev || root.st_ino != st.st_ino) {
        return Error{EAGAIN, "'" + tree.path() + "' moved while its directories were being guarded"};
      }
      return {};
    }
    // O_NOFOLLOW: a component swapped for a symbolic link fails here.
    const int flags = O_PATH | O_NOFOLLOW | O_CLOEXEC | (i + 1 < parts.size() ? O_DIRECTORY : 0);
    current.reset(::openat(current.get(), parts[i].c_str(), flags));
  }
}

Status AccessGuard::guard(SubscriptionId id, const ConfinedTree& tree) {
  std::vector<int> chain;
  if (Status placed = place(tree, &chain); !placed) {
    // Kernel watches placed before the failure that nothing uses: remove.
    for (int wd : chain) {
      if (!users_.count(wd)) ::inotify_rm_watch(fd_.get(), wd);
    }
    return placed.error();
  }
  std::set<int> fresh(chain.begin(), chain.end());
  for (int wd : fresh) {
    auto& users = users_[wd];
    if (std::find(users.begin(), users.end(), id) == users.end()) users.push_back(id);
  }
  auto old = chains_.find(id);
  if (old != chains_.end()) {
    for (int wd : old->second) {
      if (!fresh.count(wd)) drop(wd, id);
    }
  }
  chains_[id].assign(fresh.begin(), fresh.end());
  return {};
}

void AccessGuard::release(SubscriptionId id) {
  auto it = chains_.find(id);
  if (it == chains_.end()) return;
  for (int wd : it->second) drop(wd, id);
  chains_.erase(it);
}

void AccessGuard::drop(int wd, SubscriptionId id) {
  auto it = users_.find(wd);
  if (it == users_.end()) return;
  std::erase(it->second, id);
  if (!it->second.empty()) return;
  users_.erase(it);
  ::inotify_rm_watch(fd_.get(), wd);
}

void AccessGuard::wait() {
  stream_.async_wait(asio::posix::stream_descriptor::wait_read, [this](std::error_code ec) {
    if (ec) return;
    drain();
    wait();
  });
}

void AccessGuard::drain() {
  // Collected first: the handler re-checks, which may release or re-place
  // guards and so change the maps.
  std::map<SubscriptionId, uint32_t> affected;
  alignas(inotify_event) char buffer[16 * 1024];
  for (;;) {
    ssize_t n = ::read(fd_.get(), buffer, sizeof buffer);
    if (n <= 0) break;
    for (ssize_t at = 0; at < n;) {
      const auto* e = reinterpret_cast<const inotify_event*>(buffer + at);
      at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
      if (e->mask & IN_Q_OVERFLOW) {
        log::warn("the revocation guard's queue overflowed; re-checking every watch made for another user");
        for (const auto& [id, chain] : chains_) affected[id] |= IN_Q_OVERFLOW;
        continue;
      }
      // A named event is about an entry of a guarded directory (the kernel
      // reports a child's IN_ATTRIB to its parent's watch too), not about the
      // directory itself: the next directory on a chain has its own watch.
      if (e->len > 0 && !(e->mask & IN_IGNORED)) continue;
      auto users = users_.find(e->wd);
      if (users == users_.end()) continue;
      for (SubscriptionId id : users->second) affected[id] |= e->mask;
      if (e->mask & IN_IGNORED) {
        // The kernel removed the watch (the directory is gone): forget it.
        for (SubscriptionId id : users->second) {
          if (auto chain = chains_.find(id); chain != chains_.end()) std::erase(chain->second, e->wd);
        }
        users_.erase(users);
      }
    }
  }
  for (const auto& [id, mask] : affected) handler_(id, mask);
}

}  // namespace rnotify
