// AutoWatcher: inotify first, fanotify where inotify cannot. Every path is
// watched by InotifyWatcher, whose events come one by one in the order the
// kernel made them; fanotify merges a process's unread events on one name
// into one record, and that order is lost. When rnotifyd may use fanotify
// (CAP_SYS_ADMIN), a PidProbe gives the inotify events their acting pid
// ("inotify+pids"), for origin attribution, on any filesystem (FUSE too).
// FanotifyWatcher, with a filesystem mark and no per-directory cost, takes a
// path only when inotify refuses it for its watch limit (ENOSPC: a huge tree);
// rnotifyd --watcher fanotify uses it for everything. One descriptor (an epoll
// set over both backends) and one id space across both, so that the owner
// cannot tell them apart except by asking backendFor().
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "common/unique_fd.h"
#include "watch/watcher.h"

namespace rnotify {

class AutoWatcher final : public Watcher {
 public:
  static Result<std::unique_ptr<Watcher>> create(EventSink& sink);

  int fd() const override { return epoll_.get(); }
  Result<SubscriptionId> subscribe(const std::string& path, const SubscribeOptions& options) override;
  void unsubscribe(SubscriptionId id) override;
  void drain() override;
  size_t kernelWatchCount() const override;
  // "inotify+pids", or "inotify" when the process may not use fanotify.
  std::string_view name() const override { return name_; }
  std::string_view backendFor(SubscriptionId id) const override;
  bool reportsPids(SubscriptionId id) const override;

 private:
  // Receives one backend's events and hands them on under our ids.
  class Relay final : public EventSink {
   public:
    explicit Relay(AutoWatcher& owner) : owner_(owner) {}
    void onEvent(SubscriptionId inner, uint32_t mask, uint32_t cookie, std::string_view dir, std::string_view name,
                 int pid) override;
    void onKernelRead() override;
    void onEventDirectory(uint64_t ino) override;
    std::unordered_map<SubscriptionId, SubscriptionId> outer;  // backend's id -> ours

   private:
    AutoWatcher& owner_;
  };
  struct Route {
    Watcher* backend = nullptr;
    Relay* relay = nullptr;
    SubscriptionId inner = 0;
  };

  explicit AutoWatcher(EventSink& sink) : sink_(sink), fanotifyRelay_(*this), inotifyRelay_(*this) {}
  const Route* route(SubscriptionId id) const;
  // Made on first need; null when the process may not use fanotify.
  Watcher* fanotify();

  EventSink& sink_;
  Relay fanotifyRelay_;
  Relay inotifyRelay_;
  std::unique_ptr<Watcher> inotify_;
  std::unique_ptr<Watcher> fanotify_;
  bool fanotifyTried_ = false;
  UniqueFd epoll_;
  std::unordered_map<SubscriptionId, Route> routes_;
  SubscriptionId nextId_ = 1;
  std::string name_;
};

}  // namespace rnotify
