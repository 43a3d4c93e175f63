// ViewSource; see view_source.h.
#include "view_source.h"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace rnotify::bench {

ViewSource::ViewSource(std::string name, std::string watchDir, std::string changeDir)
    : name_(std::move(name)), watchDir_(std::move(watchDir)), changeDir_(std::move(changeDir)) {
  description_ = "inotify_init1 + inotify_add_watch on " + watchDir_ + " (the view), files created in " + changeDir_;
  fd_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!fd_) throw std::runtime_error(std::string("inotify_init1: ") + std::strerror(errno));
  if (::inotify_add_watch(fd_.get(), watchDir_.c_str(), IN_CREATE) < 0) {
    throw std::runtime_error("inotify_add_watch on " + watchDir_ + ": " + std::strerror(errno));
  }
}

std::optional<std::string> ViewSource::nextCreate(int timeoutMs) {
  while (queue_.empty()) {
    struct pollfd p = {fd_.get(), POLLIN, 0};
    int n = ::poll(&p, 1, timeoutMs);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    alignas(struct inotify_event) char buffer[64 * 1024];
    ssize_t len = ::read(fd_.get(), buffer, sizeof buffer);
    if (len < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (len < 0) throw std::runtime_error("read from inotify on " + watchDir_ + ": " + std::strerror(errno));
    for (char* at = buffer; at < buffer + len;) {
      auto* ev = reinterpret_cast<struct inotify_event*>(at);
      if (ev->mask & IN_Q_OVERFLOW) ++stats_.overflows;
      if ((ev->mask & IN_CREATE) && ev->len > 0) queue_.emplace_back(ev->name);
      at += sizeof(struct inotify_event) + ev->len;
    }
  }
  std::string name = std::move(queue_.front());
  queue_.pop_front();
  return name;
}

}  // namespace rnotify::bench
