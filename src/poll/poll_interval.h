// PollInterval: when the polling backend scans next. A change is usually
// followed by more (an editor's save, a build, an unpacked archive), so right
// after one the interval drops to its minimum and then doubles back to the
// default over the quiet scans that follow; a tree that stays idle for long is
// scanned less often, up to the maximum. Whatever these say, a scan never takes
// more than a set share of the time (`maxDuty`): a tree that takes 1 s to scan
// is scanned at most every 1 s / maxDuty, so a large tree or a slow server is
// not kept busy by one client. Pure logic on times it is given; the caller reads
// the clock and sleeps (in its own event loop).
#pragma once

#include <chrono>

namespace rnotify {

struct PollIntervalSettings {
  std::chrono::milliseconds initial{2000};  // the interval between scans while changes are neither new nor long gone
  std::chrono::milliseconds min{250};       // right after a change
  std::chrono::milliseconds max{5000};      // after `idleAfter` without a change
  std::chrono::milliseconds idleAfter{60000};
  double maxDuty = 0.2;  // the share of time scanning may take (0 < maxDuty <= 1)
};

class PollInterval {
 public:
  using Clock = std::chrono::steady_clock;
  using Duration = std::chrono::milliseconds;

  using Settings = PollIntervalSettings;

  explicit PollInterval(Settings settings = {});

  // After a scan that ended at `end`, took `took` and found changes or not.
  void onScan(Clock::time_point end, Clock::duration took, bool changed);
  // Moves the next scan to `when` if that is sooner (a hint that something
  // changed, e.g. this host's own write to the tree).
  void hurry(Clock::time_point when);

  Duration current() const { return current_; }
  // When the next scan is due; the epoch (always due) before the first scan.
  Clock::time_point deadline() const { return deadline_; }
  // Milliseconds from `now` to the deadline, rounded up, 0 when due: an
  // epoll_wait timeout.
  int timeoutMs(Clock::time_point now) const;

  const Settings& settings() const { return settings_; }

 private:
  Settings settings_;
  Duration current_;
  Clock::time_point deadline_{};
  Clock::time_point lastChange_{};
  bool scanned_ = false;
};

}  // namespace rnotify
