#include "watch/auto_watcher.h"

#include <sys/epoll.h>
#include <sys/inotify.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "watch/fanotify_watcher.h"
#include "watch/inotify_watcher.h"
#include "watch/pid_probe.h"

namespace rnotify {

Result<std::unique_ptr<Watcher>> AutoWatcher::create(EventSink& sink) {
  std::unique_ptr<AutoWatcher> watcher(new AutoWatcher(sink));
  std::unique_ptr<PidProbe> probe;
  if (auto created = PidProbe::create(); created) {
    probe = std::move(*created);
  } else {
    log::debug("inotify events carry no pid: {}", created.error().message);
  }
  auto inotify = InotifyWatcher::create(watcher->inotifyRelay_, std::move(probe));
  if (!inotify) return inotify.error();
  watcher->inotify_ = std::move(*inotify);
  watcher->name_ = watcher->inotify_->name();

  watcher->epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!watcher->epoll_) return lastError("epoll_create1");
  struct epoll_event event = {};
  event.events = EPOLLIN;
  event.data.ptr = watcher->inotify_.get();
  if (::epoll_ctl(watcher->epoll_.get(), EPOLL_CTL_ADD, watcher->inotify_->fd(), &event) != 0) {
    return lastError("epoll_ctl");
  }
  return std::unique_ptr<Watcher>(std::move(watcher));
}

Watcher* AutoWatcher::fanotify() {
  if (fanotifyTried_) return fanotify_.get();
  fanotifyTried_ = true;
  auto created = FanotifyWatcher::create(fanotifyRelay_);
  if (!created) {
    log::debug("fanotify is not available: {}", created.error().message);
    return nullptr;
  }
  struct epoll_event event = {};
  event.events = EPOLLIN;
  event.data.ptr = created->get();
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, (*created)->fd(), &event) != 0) {
    log::error("epoll_ctl: {}", std::strerror(errno));
    return nullptr;
  }
  fanotify_ = std::move(*created);
  return fanotify_.get();
}

Result<SubscriptionId> AutoWatcher::subscribe(const std::string& path, const SubscribeOptions& options) {
  Watcher* backend = inotify_.get();
  Relay* relay = &inotifyRelay_;
  Result<SubscriptionId> inner = inotify_->subscribe(path, options);
  if (!inner && inner.error().code == ENOSPC) {
    // The inotify watch limit: a filesystem mark costs nothing per directory.
    if (Watcher* fallback = fanotify(); fallback != nullptr) {
      auto marked = fallback->subscribe(path, options);
      if (marked) {
        log::info("'{}' is watched with fanotify: {}", path, inner.error().message);
        inner = std::move(marked);
        backend = fallback;
        relay = &fanotifyRelay_;
      } else {
        log::info("'{}' cannot be watched with fanotify either: {}", path, marked.error().message);
      }
    }
  }
  if (!inner) return inner.error();
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

void AutoWatcher::Relay::onKernelRead() { owner_.sink_.onKernelRead(); }
void AutoWatcher::Relay::onEventDirectory(uint64_t ino) { owner_.sink_.onEventDirectory(ino); }

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
