// AutoWatcher: fanotify where it can, inotify elsewhere. When rnotifyd runs as
// root, a path whose filesystem takes a filesystem mark is watched by
// FanotifyWatcher (no per-directory cost, and the acting pid of every event);
// a path on a filesystem that refuses one (FUSE has no fsid; some overlayfs
// and btrfs subvolumes), or every path when the process may not use fanotify,
// goes to InotifyWatcher. One descriptor (an epoll set over both backends) and
// one id space across both, so that the owner cannot tell them apart except
// by asking backendFor().
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
  // "fanotify+inotify", or "inotify" when fanotify is not available.
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

  EventSink& sink_;
  Relay fanotifyRelay_;
  Relay inotifyRelay_;
  std::unique_ptr<Watcher> fanotify_;  // null when unprivileged
  std::unique_ptr<Watcher> inotify_;
  UniqueFd epoll_;
  std::unordered_map<SubscriptionId, Route> routes_;
  SubscriptionId nextId_ = 1;
  std::string name_;
};

}  // namespace rnotify
