// NotifyQueue: the hand-off from a backend's notification thread (SmbNotify,
// CifsNotify) to the caller's event loop. The thread pushes events or a
// failure under a mutex and raises an eventfd; the loop polls fd() and takes
// everything at once. The eventfd stays readable while events or a failure
// wait, so a level-triggered epoll never misses one.
#pragma once

#include <mutex>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "event/event.h"

namespace rnotify {

class NotifyQueue {
 public:
  // Throws std::system_error if no eventfd can be made.
  NotifyQueue();
  int fd() const { return fd_.get(); }
  void push(std::vector<Event> events);
  // The source broke; the first failure is kept.
  void fail(Error error);
  // Everything queued, oldest first; clears the eventfd unless a failure waits.
  std::vector<Event> take();
  bool failed() const;
  Error error() const;

 private:
  void raise();
  mutable std::mutex mu_;
  UniqueFd fd_;
  std::vector<Event> events_;
  bool failed_ = false;
  Error error_;
};

}  // namespace rnotify
