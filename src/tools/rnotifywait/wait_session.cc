// Implements WaitSession; see wait_session.h. The order of the steps and the
// messages are inotifywait's, so that a script sees the same stderr and exit
// codes; what differs is only where the events come from.
#include "tools/rnotifywait/wait_session.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>

#include "common/log.h"
#include "common/unique_fd.h"
#include "event/event_names.h"
#include "tools/rnotifywait/event_format.h"

namespace rnotify::wait {
namespace {

volatile std::sig_atomic_t gSignal = 0;

void onSignal(int sig) { gSignal = sig; }

// rnotify_next() is called in slices this long so that a signal arriving just
// before the call (and so not interrupting it) is noticed soon anyway.
constexpr int kSliceMs = 250;

// Errors where inotifywait's own line ("Couldn't watch x: No such file or
// directory") already says everything rnotify_last_error() would.
bool plainPathError(int code) {
  return code == ENOENT || code == EACCES || code == ENOTDIR || code == ELOOP || code == ENAMETOOLONG;
}

bool redirectTo(int targetFd, const char* path, int flags, mode_t mode = 0) {
  UniqueFd fd(::open(path, flags | O_CLOEXEC, mode));
  if (!fd) return false;
  return ::dup2(fd.get(), targetFd) >= 0;
}

}  // namespace

int pendingSignal() { return gSignal; }

void installSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: the wait inside rnotify_next() must return EINTR
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

WaitSession::WaitSession(Options options) : options_(std::move(options)), output_(options_) {}

WaitSession::~WaitSession() {
  if (rn_ != nullptr) rnotify_close(rn_);
}

int WaitSession::run() {
  if (options_.logLevel) {
    log::Level level;
    if (log::parseLevel(*options_.logLevel, &level)) log::setLevel(level);
  }
  if (!prepareFilters()) return kExitFailure;

  events_ = options_.events != 0 ? options_.events : IN_ALL_EVENTS;
  watchMask_ = events_;
  if (options_.noDereference) watchMask_ |= IN_DONT_FOLLOW;

  if (!readPathList()) return kExitFailure;
  if (!redirectOutput()) return kExitFailure;
  if (options_.syslog) diag_.useSyslog();

  rn_ = rnotify_init(RNOTIFY_CLOEXEC);
  if (rn_ == nullptr) {
    diag_.say(fmt::format("Couldn't initialize rnotify: {}\n", std::strerror(errno)));
    return kExitFailure;
  }
  if (!addWatches()) return kExitFailure;
  return waitForEvents();
}

bool WaitSession::prepareFilters() {
  if (options_.regex && !filter_.setRegex(*options_.regex)) {
    std::fputs(options_.regex->invert ? "Error in `include' regular expression.\n"
                                      : "Error in `exclude' regular expression.\n",
               stderr);
    return false;
  }
  if (options_.format && !formatIsValid(*options_.format)) {
    std::fputs("Something is wrong with your format string.\n", stderr);
    return false;
  }
  return true;
}

bool WaitSession::readPathList() {
  if (options_.fromfile) {
    if (*options_.fromfile == "-") {
      paths_.addLines(std::cin);
    } else {
      std::ifstream in(*options_.fromfile);
      if (!in) {
        // inotifywait goes on with the operands.
        std::fputs(fmt::format("Couldn't open {}: {}\n", *options_.fromfile, std::strerror(errno)).c_str(), stderr);
      } else {
        paths_.addLines(in);
      }
    }
  }
  for (const auto& operand : options_.paths) paths_.add(operand);
  if (options_.recursive) {
    for (const auto& dir : paths_.exclude) filter_.excludeSubtree(dir);
  }
  if (paths_.watch.empty()) {
    std::fputs("No files specified to watch!\n", stderr);
    return false;
  }
  return true;
}

bool WaitSession::redirectOutput() {
  if (options_.daemon) {
    // Resolved before daemon() changes to '/'; like inotifywait, the log file
    // must already exist.
    char logfile[PATH_MAX];
    if (::realpath(options_.outfile->c_str(), logfile) == nullptr) {
      std::fputs(fmt::format("{}: {}\n", std::strerror(errno), *options_.outfile).c_str(), stderr);
      return false;
    }
    if (::daemon(0, 0) != 0) {
      std::fputs("Failed to daemonize!\n", stderr);
      return false;
    }
    redirectTo(STDIN_FILENO, "/dev/null", O_RDONLY);
    if (!redirectTo(STDOUT_FILENO, logfile, O_WRONLY | O_CREAT | O_APPEND, 0600)) {
      std::fputs(fmt::format("Failed to open output file {}\n", logfile).c_str(), stderr);
      return false;
    }
    redirectTo(STDERR_FILENO, "/dev/null", O_WRONLY);
  } else if (options_.outfile) {
    if (!redirectTo(STDOUT_FILENO, options_.outfile->c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600)) {
      std::fputs(fmt::format("Failed to open output file {}\n", *options_.outfile).c_str(), stderr);
      return false;
    }
  }
  return true;
}

bool WaitSession::addWatches() {
  if (!options_.quiet) {
    diag_.say(options_.recursive ? "Setting up watches.  Beware: since -r was given, this may take a while!\n"
                                 : "Setting up watches.\n");
  }
  for (const auto& path : paths_.watch) {
    if (!addWatch(path)) return false;
  }
  if (!options_.quiet) diag_.say("Watches established.\n");
  return true;
}

namespace {

// An smb:// URL as it may be shown: without a password written in it.
std::string shown(const std::string& path) {
  if (path.rfind("smb://", 0) != 0) return path;
  size_t at = path.find('@');
  size_t colon = path.find(':', 6);
  if (at == std::string::npos || colon == std::string::npos || colon > at) return path;
  return path.substr(0, colon) + ":***" + path.substr(at);
}

}  // namespace

bool WaitSession::addWatch(const std::string& rawPath) {
  const std::string path = shown(rawPath);
  unsigned flags = (options_.localOnly ? RNOTIFY_LOCAL_ONLY : 0) | (options_.poll ? RNOTIFY_POLL : 0);
  // inotifywait -r on a file simply watches the file.
  struct stat st {};
  if (options_.recursive &&
      ((::stat(rawPath.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) || rawPath.rfind("smb://", 0) == 0)) {
    flags |= RNOTIFY_RECURSIVE;
  }
  int wd = rnotify_add_watch(rn_, rawPath.c_str(), watchMask_, flags);
  if (wd < 0) {
    int code = errno;
    if (code == ENOSPC) {
      diag_.say(fmt::format("Failed to watch {}; upper limit on inotify watches reached!\n", path));
      diag_.say(
          "Please increase the amount of inotify watches allowed per user via "
          "`/proc/sys/fs/inotify/max_user_watches'.\n");
    } else {
      diag_.say(fmt::format("Couldn't watch {}: {}\n", path, std::strerror(code)));
    }
    std::string detail = rnotify_last_error(rn_);
    if (!detail.empty() && (options_.verbose || !plainPathError(code))) diag_.say(detail + "\n");
    return false;
  }
  roots_[wd] = path;
  if (options_.verbose) {
    const char* source = rnotify_watch_source(rn_, wd);
    diag_.say(fmt::format("rnotifywait: watching {} through {}\n", path, source ? source : "an unknown source"));
  }
  return true;
}

int WaitSession::waitForEvents() {
  using Clock = std::chrono::steady_clock;
  const bool forever = options_.timeoutSeconds == 0;
  rnotify_event ev{};
  uint32_t lastMask = 0;
  for (;;) {
    // Like inotifywait, the timeout starts again for every event, including
    // events that the filters then drop.
    auto deadline = Clock::now() + std::chrono::seconds(options_.timeoutSeconds);
    int got = 0;
    for (;;) {
      if (pendingSignal() != 0) return kExitFailure;
      int slice = kSliceMs;
      if (!forever) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return kExitTimeout;
        slice = static_cast<int>(std::min<long long>(left, kSliceMs));
      }
      got = rnotify_next(rn_, &ev, slice);
      if (got > 0) break;
      if (got < 0 && errno != EINTR) {
        diag_.say(fmt::format("{}\n", std::strerror(errno)));
        std::string detail = rnotify_last_error(rn_);
        if (!detail.empty()) diag_.say(detail + "\n");
        return kExitFailure;
      }
    }
    EventView view{ev.path ? ev.path : "", ev.name ? ev.name : "", ev.mask, ev.cookie, ev.seq};
    auto root = roots_.find(ev.wd);
    if (filter_.drops(view, root == roots_.end() ? std::string_view() : std::string_view(root->second))) {
      continue;
    }
    handleEvent(ev);
    lastMask = ev.mask;
    if (!options_.monitor) break;
  }
  // Without -m: 0 if the event was one asked for, else 1 (e.g. IGNORED).
  return (watchMask_ & lastMask) != 0 ? kExitEvent : kExitFailure;
}

void WaitSession::handleEvent(const rnotify_event& ev) {
  EventView view{ev.path ? ev.path : "", ev.name ? ev.name : "", ev.mask, ev.cookie, ev.seq};
  // inotifywait drops overflow silently; a lost event must never go unsaid,
  // and stderr is not part of the output scripts parse. -qq silences it.
  if ((ev.mask & IN_Q_OVERFLOW) && (options_.verbose || options_.quiet < 2)) {
    diag_.say(fmt::format("rnotifywait: events were lost ({}) on {}\n", eventNames(ev.mask), view.path));
  }
  if (ev.mask & IN_RESTORED) {
    if (options_.verbose || options_.quiet < 2) {
      diag_.say(
          fmt::format("rnotifywait: the server is reachable again for {}; any changes missed meanwhile "
                      "follow (replayed by the server, or marked SYNTHESIZED when it had to re-read)\n",
                      view.path));
    }
    return;  // a status, not a change: never on stdout
  }
  if (options_.quiet < 2 && (ev.mask & events_) != 0) {
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    if (auto line = output_.render(view, now)) std::fwrite(line->data(), 1, line->size(), stdout);
  }
  std::fflush(stdout);
}

}  // namespace rnotify::wait
