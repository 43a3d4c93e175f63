// InotifySource: the floor. Plain inotify_init1 + inotify_add_watch on the
// directory, read directly; no rnotify code involved. Whatever rnotify adds
// on top of this is the cost of forwarding.
#pragma once

#include "common/unique_fd.h"
#include "event_source.h"

namespace rnotify::bench {

class InotifySource final : public EventSource {
 public:
  // Watches dir for IN_CREATE; throws std::runtime_error naming dir on failure.
  explicit InotifySource(std::string dir);
  const std::string& name() const override { return name_; }
  const std::string& description() const override { return description_; }
  const std::string& changeDir() const override { return dir_; }
  std::optional<std::string> nextCreate(int timeoutMs) override;

 private:
  std::string name_ = "inotify";
  std::string description_;
  std::string dir_;
  UniqueFd fd_;
  std::deque<std::string> queue_;
};

}  // namespace rnotify::bench
