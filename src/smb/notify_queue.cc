// NotifyQueue; see notify_queue.h.
#include "smb/notify_queue.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <system_error>

namespace rnotify {

NotifyQueue::NotifyQueue() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!fd_) throw std::system_error(errno, std::generic_category(), "eventfd");
}

void NotifyQueue::raise() {
  uint64_t one = 1;
  // EAGAIN only when the counter is near 2^64: it is readable then anyway.
  [[maybe_unused]] ssize_t n = ::write(fd_.get(), &one, sizeof one);
}

void NotifyQueue::push(std::vector<Event> events) {
  if (events.empty()) return;
  std::lock_guard lock(mu_);
  if (events_.empty()) {
    events_ = std::move(events);
  } else {
    events_.insert(events_.end(), std::make_move_iterator(events.begin()), std::make_move_iterator(events.end()));
  }
  raise();
}

void NotifyQueue::fail(Error error) {
  std::lock_guard lock(mu_);
  if (failed_) return;
  failed_ = true;
  error_ = std::move(error);
  raise();
}

std::vector<Event> NotifyQueue::take() {
  std::lock_guard lock(mu_);
  std::vector<Event> out;
  out.swap(events_);
  if (!failed_) {
    uint64_t count = 0;
    [[maybe_unused]] ssize_t n = ::read(fd_.get(), &count, sizeof count);
  }
  return out;
}

bool NotifyQueue::failed() const {
  std::lock_guard lock(mu_);
  return failed_;
}

Error NotifyQueue::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

}  // namespace rnotify
