// CApiSource; see c_api_source.h.
#include "c_api_source.h"

#include <stdlib.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace rnotify::bench {
namespace {

// Sets an environment variable for the lifetime of this object, then puts
// back what was there: the library reads RNOTIFY_DEDUP when a handle first
// loads its configuration, so each handle can get its own mode.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::optional<std::string>& value) : name_(name) {
    if (!value) return;
    active_ = true;
    if (const char* old = ::getenv(name)) old_ = old;
    ::setenv(name, value->c_str(), 1);
  }
  ~ScopedEnv() {
    if (!active_) return;
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  bool active_ = false;
  std::optional<std::string> old_;
};

}  // namespace

std::string CApiSource::expectedStrategy(const std::string& dedup) {
  if (dedup == "off") return "no de-duplication";
  if (dedup == "echo") return "echo matching";
  if (dedup == "state") return "state comparison";
  if (dedup == "origin" || dedup == "auto") return "origin attribution";
  return "";
}

CApiSource::CApiSource(std::string name, const std::string& watchPath, std::string changeDir, CApiSourceOptions options)
    : name_(std::move(name)), changeDir_(std::move(changeDir)), options_(std::move(options)) {
  {
    ScopedEnv dedup("RNOTIFY_DEDUP", options_.dedup);
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
    watchSource_ = source ? source : "?";
  }
  for (const char* known : {"origin attribution", "state comparison", "echo matching", "no de-duplication"}) {
    if (watchSource_.find(known) != std::string::npos) strategy_ = known;
  }
  description_ = "C API rnotify_add_watch(" + watchPath + ")";
  if (options_.localCreatesCount) description_ += ", files created through the mount";
  if (options_.dedup) description_ += ", RNOTIFY_DEDUP=" + *options_.dedup;
  description_ += " via " + watchSource_;
  if (options_.dedup) {
    std::string expected = expectedStrategy(*options_.dedup);
    if (strategy_ != expected) {
      description_ += "  ** FELL BACK: " + (strategy_.empty() ? std::string("no strategy named") : strategy_) +
                      " instead of " + expected + " **";
    }
  }
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
      if (!options_.localCreatesCount) continue;
    }
    if (!(ev.mask & IN_CREATE)) continue;
    std::string name(ev.name);
    if (options_.localCreatesCount && delivered_.insert(name).second)
      ++((ev.mask & IN_REMOTE) ? firstRemote_ : firstLocal_);
    return name;
  }
}

}  // namespace rnotify::bench
