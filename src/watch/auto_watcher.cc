#include "watch/auto_watcher.h"

#include <sys/epoll.h>
#include <sys/inotify.h>

#include <cerrno>

#include "common/log.h"
#include "watch/fanotify_watcher.h"
#include "watch/inotify_watcher.h"

namespace rnotify {
namespace {

// Errors about the path itself: inotify would refuse it the same way.
bool isPathError(int code) {
  return code == ENOENT || code == ENOTDIR || code == EACCES || code == ELOOP || code == ENAMETOOLONG;
}

}  // namespace

Result<std::unique_ptr<Watcher>> AutoWatcher::create(EventSink& sink) {
  std::unique_ptr<AutoWatcher> watcher(new AutoWatcher(sink));
  auto fanotify = FanotifyWatcher::create(watcher->fanotifyRelay_);
  if (fanotify) {
    watcher->fanotify_ = std::move(*fanotify);
  } else {
    log::debug("fanotify is not available, watching with inotify only: {}", fanotify.error().message);
  }
  auto inotify = InotifyWatcher::create(watcher->inotifyRelay_);
  if (!inotify) return inotify.error();
  watcher->inotify_ = std::move(*inotify);
  watcher->name_ = watcher->fanotify_ ? "fanotify+inotify" : "inotify";

  watcher->epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!watcher->epoll_) return lastError("epoll_create1");
  for (Watcher* backend : {watcher->fanotify_.get(), watcher->inotify_.get()}) {
    if (backend == nullptr) continue;
    struct epoll_event event = {};
    event.events = EPOLLIN;
    event.data.ptr = backend;
    if (::epoll_ctl(watcher->epoll_.get(), EPOLL_CTL_ADD, backend->fd(), &event) != 0) {
      return lastError("epoll_ctl");
    }
  }
  return std::unique_ptr<Watcher>(std::move(watcher));
}

Result<SubscriptionId> AutoWatcher::subscribe(const std::string& path, const SubscribeOptions& options) {
  Watcher* backend = nullptr;
  Relay* relay = nullptr;
  Result<SubscriptionId> inner = Error{ENOSYS, "no backend"};
  if (fanotify_) {
    inner = fanotify_->subscribe(path, options);
    if (inner) {
      backend = fanotify_.get();
      relay = &fanotifyRelay_;
    } else if (isPathError(inner.error().code)) {
      return inner.error();
    } else {
      log::info("'{}' is watched with inotify: {}", path, inner.error().message);
    }
  }
  if (backend == nullptr) {
    inner = inotify_->subscribe(path, options);
    if (!inner) return inner.error();
    backend = inotify_.get();
    relay = &inotifyRelay_;
  }
  SubscriptionId id = nextId_++;
  routes_[id] = Route{backend, relay, *inner};
  relay->outer[*inner] = id;
  log::debug("auto: '{}' is watched with {}", path, backend->name());
  return id;
}

void AutoWatcher::unsubscribe(SubscriptionId id) {
  auto it = routes_.find(id);
  if (it == routes_.end()) return;
  Route route = it->second;
  routes_.erase(it);
  route.relay->outer.erase(route.inner);
  route.backend->unsubscribe(route.inner);
}

void AutoWatcher::drain() {
  struct epoll_event ready[2];
  int n = ::epoll_wait(epoll_.get(), ready, 2, 0);
  for (int i = 0; i < n; ++i) static_cast<Watcher*>(ready[i].data.ptr)->drain();
}

size_t AutoWatcher::kernelWatchCount() const {
  return inotify_->kernelWatchCount() + (fanotify_ ? fanotify_->kernelWatchCount() : 0);
}

const AutoWatcher::Route* AutoWatcher::route(SubscriptionId id) const {
  auto it = routes_.find(id);
  return it == routes_.end() ? nullptr : &it->second;
}

std::string_view AutoWatcher::backendFor(SubscriptionId id) const {
  const Route* r = route(id);
  return r == nullptr ? std::string_view() : r->backend->name();
}

bool AutoWatcher::reportsPids(SubscriptionId id) const {
  const Route* r = route(id);
  return r != nullptr && r->backend->reportsPids(r->inner);
}

void AutoWatcher::Relay::onEvent(SubscriptionId inner, uint32_t mask, uint32_t cookie, std::string_view dir,
                                 std::string_view name, int pid) {
  auto it = outer.find(inner);
  if (it == outer.end()) return;  // unsubscribed, or still being set up
  SubscriptionId id = it->second;
  // The backend forgets a subscription after IN_IGNORED; so do we.
  if ((mask & IN_IGNORED) && dir.empty()) {
    outer.erase(it);
    owner_.routes_.erase(id);
  }
  owner_.sink_.onEvent(id, mask, cookie, dir, name, pid);
}

}  // namespace rnotify
