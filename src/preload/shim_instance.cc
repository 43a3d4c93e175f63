#include "preload/shim_instance.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "client/connect_timeout.h"
#include "common/log.h"
#include "preload/notice.h"
#include "preload/real_calls.h"
#include "preload/watch_route.h"

namespace rnotify::preload {
namespace {

// A status of the client core with no inotify meaning ("connected again").
constexpr uint32_t kStatusOnly = IN_RESTORED;
// What a kernel inotify record can carry, and rnotify's flags on top.
constexpr uint32_t kInotifyBits = IN_ALL_EVENTS | IN_UNMOUNT | IN_Q_OVERFLOW | IN_IGNORED | IN_ISDIR;
constexpr uint32_t kRnotifyFlags = IN_REMOTE | IN_SYNTHESIZED | IN_POLLED;

WatchRoute& route() {
  static WatchRoute* r = new WatchRoute();  // never destroyed, like the registry
  return *r;
}

size_t maxQueuedEvents() {
  size_t value = 16384;
  if (std::FILE* f = std::fopen("/proc/sys/fs/inotify/max_queued_events", "re")) {
    unsigned long v = 0;
    if (std::fscanf(f, "%lu", &v) == 1 && v > 0) value = v;
    std::fclose(f);
  }
  return value;
}

// RNOTIFY_PRELOAD_WAIT_MS, or long enough for any connection attempt of the
// client core (it gives up after connectTimeoutMs()).
std::chrono::milliseconds attachWait() {
  if (const char* env = std::getenv("RNOTIFY_PRELOAD_WAIT_MS"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    const long ms = std::strtol(env, &end, 10);
    if (*end == '\0' && ms >= 0) return std::chrono::milliseconds(ms);
  }
  return std::chrono::milliseconds(connectTimeoutMs() + 1000);
}

// Errors after which asking that server again would only cost the program
// another wait: remember the mount as unreachable.
bool serverUnreachable(int code) { return code != ENOENT && code != EACCES && code != ENOTDIR && code != EINVAL; }

}  // namespace

std::shared_ptr<ShimInstance> ShimInstance::create(int flags, bool plainMasks, int* programFd) {
  const RealCalls& real = preload::real();
  UniqueFd kernel(real.inotifyInit1(IN_NONBLOCK | IN_CLOEXEC));
  if (!kernel) return nullptr;
  UniqueFd ready(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!ready) return nullptr;
  UniqueFd poll(::epoll_create1((flags & IN_CLOEXEC) ? EPOLL_CLOEXEC : 0));
  if (!poll) return nullptr;
  if ((flags & IN_NONBLOCK) && real.fcntl(poll.get(), F_SETFL, O_NONBLOCK) != 0) return nullptr;
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (::epoll_ctl(poll.get(), EPOLL_CTL_ADD, kernel.get(), &ev) != 0) return nullptr;
  if (::epoll_ctl(poll.get(), EPOLL_CTL_ADD, ready.get(), &ev) != 0) return nullptr;
  std::shared_ptr<ShimInstance> instance(new ShimInstance(std::move(kernel), std::move(ready), plainMasks));
  *programFd = poll.release();  // the program's from now on; it closes it
  return instance;
}

ShimInstance::ShimInstance(UniqueFd kernel, UniqueFd ready, bool plainMasks)
    : kernel_(std::move(kernel)),
      ready_(std::move(ready)),
      deliveredBits_(plainMasks ? kInotifyBits : kInotifyBits | kRnotifyFlags),
      queue_(maxQueuedEvents()),
      attachWait_(attachWait()) {}

ShimInstance::~ShimInstance() {
  // The feed's thread may be waiting for mutex_: stop it without holding it.
  std::unique_ptr<ClientFeed> feed;
  if (!forked_) {
    std::lock_guard lock(mutex_);
    feed = std::move(feed_);
  }
  feed.reset();
}

void ShimInstance::becomeForkedCopy(int programFd) {
  forked_ = true;
  if (feed_) feed_.release()->abandon();  // the parent's; its memory is left alone
  // Only system calls here, and the C library's own: the registry is locked.
  const RealCalls& real = preload::real();
  if (!childPoll_) {
    int status = real.fcntl(programFd, F_GETFL);
    childPoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!childPoll_) return;  // the inherited set stays: it still reads K
    epoll_event ev{};
    ev.events = EPOLLIN;
    ::epoll_ctl(childPoll_.get(), EPOLL_CTL_ADD, kernel_.get(), &ev);
    if (status >= 0 && (status & O_NONBLOCK)) real.fcntl(childPoll_.get(), F_SETFL, O_NONBLOCK);
  }
  int fdFlags = real.fcntl(programFd, F_GETFD);
  real.dup3(childPoll_.get(), programFd, (fdFlags >= 0 && (fdFlags & FD_CLOEXEC)) ? O_CLOEXEC : 0);
}

// --- reading -------------------------------------------------------------

ssize_t ShimInstance::read(int fd, char* buf, size_t size) {
  const bool nonblocking = (real().fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
  for (;;) {
    ssize_t got = readReady(buf, size);
    if (got != 0) return got;
    if (nonblocking) {
      errno = EAGAIN;
      return -1;
    }
    pollfd fds[2] = {{kernel_.get(), POLLIN, 0}, {ready_.get(), POLLIN, 0}};
    // A forked copy shares E with the parent, whose queue it cannot read.
    if (::poll(fds, forked_ ? 1 : 2, -1) < 0 && errno == EINTR) return -1;
  }
}

ssize_t ShimInstance::readReady(char* buf, size_t size) {
  size_t used = 0;
  bool tooSmall = false;
  if (!forked_) {
    std::lock_guard lock(queueMutex_);
    used = queue_.take(buf, size, &tooSmall);
    settleReadiness();
  }
  if (tooSmall) {
    if (used > 0) return static_cast<ssize_t>(used);
    errno = EINVAL;  // as inotify: the buffer cannot hold the next event
    return -1;
  }
  if (used > 0 && size - used < sizeof(struct inotify_event)) return static_cast<ssize_t>(used);
  ssize_t n = real().read(kernel_.get(), buf + used, size - used);
  if (n < 0) {
    if (used > 0) return static_cast<ssize_t>(used);  // the kernel's next event did not fit after ours
    return errno == EAGAIN ? 0 : -1;
  }
  if (!forked_ && anyServed_.load(std::memory_order_acquire)) {
    n = static_cast<ssize_t>(dropServedRecords(buf + used, static_cast<size_t>(n)));
  }
  return static_cast<ssize_t>(used) + n;
}

size_t ShimInstance::dropServedRecords(char* records, size_t size) {
  std::lock_guard lock(queueMutex_);
  size_t kept = 0;
  for (size_t at = 0; at + sizeof(struct inotify_event) <= size;) {
    struct inotify_event header;
    std::memcpy(&header, records + at, sizeof header);
    size_t length = sizeof header + header.len;
    if (dropKernel_.count(header.wd)) {
      if (header.mask & IN_IGNORED) dropKernel_.erase(header.wd);
    } else {
      if (kept != at) std::memmove(records + kept, records + at, length);
      kept += length;
    }
    at += length;
  }
  return kept;
}

int ShimInstance::bytesReady(int* out) {
  int kernelBytes = 0;
  if (real().ioctl(kernel_.get(), FIONREAD, &kernelBytes) != 0) return -1;
  size_t queued = 0;
  if (!forked_) {
    std::lock_guard lock(queueMutex_);
    queued = queue_.bytes();
  }
  *out = kernelBytes + static_cast<int>(queued);
  return 0;
}

void ShimInstance::settleReadiness() {
  if (!queue_.empty() && !readySignalled_) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(ready_.get(), &one, sizeof one);
    readySignalled_ = true;
  } else if (queue_.empty() && readySignalled_) {
    uint64_t value;
    [[maybe_unused]] ssize_t n = real().read(ready_.get(), &value, sizeof value);
    readySignalled_ = false;
  }
}

// --- watches -------------------------------------------------------------

int ShimInstance::addWatch(const char* path, uint32_t mask) {
  if (forked_) return real().inotifyAddWatch(kernel_.get(), path, mask);
  std::unique_lock lock(mutex_);
  WatchRoute::Choice choice = route().choose(path, mask);
  if (choice.via == WatchRoute::Via::kKernel || feedFailed_ || (mask & IN_ALL_EVENTS) == 0) {
    return addKernelWatch(path, mask);
  }
  // K numbers the watch without events. IN_MASK_ADD (or IN_MASK_CREATE,
  // which excludes it) keeps an existing watch's mask as it is.
  uint32_t numbering = (mask & (IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)) | IN_EXCL_UNLINK |
                       ((mask & IN_MASK_CREATE) ? IN_MASK_CREATE : IN_MASK_ADD);
  if ((mask & IN_MASK_CREATE) && (mask & IN_MASK_ADD)) numbering = mask;  // the kernel says EINVAL
  int wd = real().inotifyAddWatch(kernel_.get(), path, numbering);
  if (wd < 0) return -1;
  if (auto it = served_.find(wd); it != served_.end()) return updateServedWatch(it->second, wd, path, mask);
  if (kernelServed_.count(wd)) return addKernelWatch(path, mask);
  return addServedWatch(lock, path, mask, wd, choice.via == WatchRoute::Via::kClientLocalOnly, choice.mountPoint,
                        choice.device);
}

int ShimInstance::addKernelWatch(const char* path, uint32_t mask) {
  int wd = real().inotifyAddWatch(kernel_.get(), path, mask);
  if (wd < 0) return -1;
  if (auto it = served_.find(wd); it != served_.end()) {
    // The same inode reached by a path that routes to the kernel (the
    // server became unreachable meanwhile): the client core keeps serving it.
    real().inotifyAddWatch(kernel_.get(), path, IN_EXCL_UNLINK);
    return updateServedWatch(it->second, wd, path, mask);
  }
  kernelServed_.insert(wd);
  return wd;
}

int ShimInstance::addServedWatch(std::unique_lock<std::mutex>& lock, const char* path, uint32_t mask, int wd,
                                 bool localOnly, const std::string& mountPoint, dev_t device) {
  std::string why;
  int clientWd = -1;
  // The server's first connection is made by the feed's thread, not here
  // with the lock held (waitForServer below).
  const unsigned flags = localOnly ? RNOTIFY_LOCAL_ONLY : RNOTIFY_NONBLOCK;
  if (ensureFeed()) {
    uint32_t clientMask = mask & (IN_ALL_EVENTS | IN_ONLYDIR | IN_DONT_FOLLOW);
    clientWd = feed_->addWatch(path, clientMask, flags, &why);
  }
  if (clientWd < 0) {
    int code = errno;
    if (!feedFailed_) {
      std::string where = mountPoint.empty() ? std::string(path) : mountPoint;
      noticeOnce("unreachable " + where, "cannot watch '" + std::string(path) + "' on its server (" + why +
                                             "); only changes made by this host will be reported under " + where);
      if (serverUnreachable(code)) route().markUnreachable(device);
    }
    // The kernel serves it after all: replace the numbering mask by the program's.
    int again = real().inotifyAddWatch(kernel_.get(), path, mask & ~(IN_MASK_CREATE | IN_MASK_ADD));
    if (again >= 0) kernelServed_.insert(again);
    return again;
  }
  ServedWatch watch;
  watch.clientWd = clientWd;
  watch.programMask = mask & ~(IN_MASK_ADD | IN_MASK_CREATE);
  watch.clientMask = mask & IN_ALL_EVENTS;
  watch.path = path;
  watch.clientFlags = flags;
  served_[wd] = watch;
  byClient_[clientWd] = wd;
  {
    std::lock_guard queueLock(queueMutex_);
    dropKernel_.insert(wd);
  }
  anyServed_.store(true, std::memory_order_release);
  // inotify's promise: what happens after inotify_add_watch returns is
  // reported. The server's changes are, once it has taken the watch; wait
  // for that (the lock released, the feed's thread connecting), up to the
  // bound. Its events meanwhile go to the program's queue as usual.
  const std::string where = mountPoint.empty() ? std::string(path) : mountPoint;
  if (!feed_->waitForServer(lock, clientWd, attachWait_)) {
    noticeOnce("slow " + where, "the server of '" + std::string(path) + "' has not answered within " +
                                    std::to_string(attachWait_.count()) +
                                    " ms; its changes are reported once it does, this host's from now on");
  } else if (const char* source = feed_->watchSource(clientWd);
             source != nullptr && std::string_view(source).rfind("polling", 0) == 0) {
    // No server can help there: remote changes come from scans, later.
    noticeOnce("polling " + where, "no server can watch '" + std::string(path) + "': " + source);
  }
  return wd;
}

int ShimInstance::updateServedWatch(ServedWatch& watch, int wd, const char* path, uint32_t mask) {
  uint32_t wanted = mask & ~(IN_MASK_ADD | IN_MASK_CREATE);
  watch.programMask = (mask & IN_MASK_ADD) ? watch.programMask | wanted : wanted;
  watch.removing = false;
  uint32_t missing = watch.programMask & IN_ALL_EVENTS & ~watch.clientMask;
  if (missing == 0) return wd;
  // The client core cannot widen a watch: subscribe anew with the union,
  // then drop the old one (its remaining events are no longer mapped). With
  // the first add's flags: never a connection made here, with the lock held
  // (the first add waited for it as RNOTIFY_PRELOAD_WAIT_MS says).
  std::string why;
  uint32_t union_ = watch.clientMask | missing;
  int clientWd = feed_->addWatch(path, union_ | (mask & (IN_ONLYDIR | IN_DONT_FOLLOW)), watch.clientFlags, &why);
  if (clientWd < 0) {
    noticeOnce("widen " + watch.path, "cannot add events to the watch on '" + watch.path + "': " + why);
    return wd;
  }
  byClient_.erase(watch.clientWd);
  feed_->removeWatch(watch.clientWd);
  watch.clientWd = clientWd;
  watch.clientMask = union_;
  watch.path = path;
  byClient_[clientWd] = wd;
  return wd;
}

int ShimInstance::rmWatch(int wd) {
  if (forked_) return real().inotifyRmWatch(kernel_.get(), wd);
  std::lock_guard lock(mutex_);
  int result = real().inotifyRmWatch(kernel_.get(), wd);
  int code = errno;
  auto it = served_.find(wd);
  if (it != served_.end() && !it->second.removing) {
    // The end is reported by the client core, after the watch's last event.
    it->second.removing = true;
    feed_->removeWatch(it->second.clientWd);
    result = 0;
  } else {
    kernelServed_.erase(wd);
  }
  errno = code;
  return result;
}

bool ShimInstance::ensureFeed() {
  if (feed_) return true;
  if (feedFailed_) return false;
  std::string why;
  feed_ = ClientFeed::start(
      mutex_, [this](const rnotify_event& event) { deliver(event); }, &why);
  if (!feed_) {
    feedFailed_ = true;
    noticeOnce("feed", why + "; only changes made by this host will be reported");
  }
  return feed_ != nullptr;
}

// --- events from the client core (feed thread, mutex_ held) --------------

void ShimInstance::deliver(const rnotify_event& event) {
  auto mapped = byClient_.find(event.wd);
  log::debug("event of client watch {} (program's wd {}): mask {:#x} name '{}'", event.wd,
             mapped == byClient_.end() ? -1 : mapped->second, event.mask, event.name);
  if (mapped == byClient_.end()) return;  // a watch the program no longer has
  const int wd = mapped->second;
  ServedWatch& watch = served_.at(wd);
  const uint32_t mask = event.mask;
  if (mask & IN_IGNORED) {
    byClient_.erase(mapped);
    served_.erase(wd);
    enqueue(wd, IN_IGNORED, 0, "");
    // End K's watch too; its own IGNORED is dropped (dropKernel_).
    real().inotifyRmWatch(kernel_.get(), wd);
    return;
  }
  if (mask & IN_Q_OVERFLOW) {
    if (mask & IN_REMOTE) {
      noticeOnce("lost " + watch.path,
                 "lost the server connection for '" + watch.path +
                     "' (reported as IN_Q_OVERFLOW); local changes are still reported, and the server's are "
                     "re-read when it is back");
    }
    enqueueOverflow(mask & IN_REMOTE & deliveredBits_);
    return;
  }
  if ((mask & kStatusOnly) && !(mask & IN_ALL_EVENTS)) return;
  if (watch.removing) return;
  if (!(mask & IN_UNMOUNT) && !(mask & watch.programMask & IN_ALL_EVENTS)) return;
  enqueue(wd, mask & deliveredBits_, event.cookie, event.name);
  if (watch.programMask & IN_ONESHOT) {
    watch.removing = true;
    feed_->removeWatch(watch.clientWd);
  }
}

void ShimInstance::enqueue(int wd, uint32_t mask, uint32_t cookie, const char* name) {
  std::lock_guard lock(queueMutex_);
  queue_.push(wd, mask, cookie, name == nullptr ? "" : name);
  settleReadiness();
}

void ShimInstance::enqueueOverflow(uint32_t flags) {
  std::lock_guard lock(queueMutex_);
  queue_.pushOverflow(flags);
  settleReadiness();
}

}  // namespace rnotify::preload
