// CApiSource; see c_api_source.h.
#include "c_api_source.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace rnotify::bench {

CApiSource::CApiSource(std::string name, const std::string& watchPath, std::string changeDir)
    : name_(std::move(name)), changeDir_(std::move(changeDir)) {
  handle_ = rnotify_init(RNOTIFY_CLOEXEC);
  if (handle_ == nullptr) throw std::runtime_error(name_ + ": rnotify_init: " + std::strerror(errno));
  int wd = rnotify_add_watch(handle_, watchPath.c_str(), IN_CREATE, 0);
  if (wd < 0) {
    std::string why = rnotify_last_error(handle_);
    rnotify_close(handle_);
    handle_ = nullptr;
    throw std::runtime_error(name_ + ": rnotify_add_watch: " + why);
  }
  const char* source = rnotify_watch_source(handle_, wd);
  description_ = "C API rnotify_add_watch(" + watchPath + ") via " + (source ? source : "?");
}

CApiSource::~CApiSource() {
  if (handle_ != nullptr) rnotify_close(handle_);
}

std::optional<std::string> CApiSource::nextCreate(int timeoutMs) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  for (;;) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    struct rnotify_event ev;
    int rc = rnotify_next(handle_, &ev, left < 0 ? 0 : left);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) throw std::runtime_error(name_ + ": rnotify_next: " + rnotify_last_error(handle_));
    if (rc == 0) return std::nullopt;
    // Also what the library reports when it loses the agent; the runner
    // then sees only timeouts, counted as lost events.
    if (ev.mask & IN_Q_OVERFLOW) ++stats_.overflows;
    if (!(ev.mask & IN_REMOTE)) {
      ++stats_.localEvents;
      continue;
    }
    if (ev.mask & IN_CREATE) return std::string(ev.name);
  }
}

}  // namespace rnotify::bench
