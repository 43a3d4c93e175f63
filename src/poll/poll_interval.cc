#include "poll/poll_interval.h"

#include <algorithm>
#include <cmath>

namespace rnotify {
namespace {

using std::chrono::duration_cast;

PollInterval::Settings normalised(PollInterval::Settings s) {
  using D = PollInterval::Duration;
  s.min = std::max(s.min, D{1});
  s.max = std::max(s.max, s.min);
  s.initial = std::clamp(s.initial, s.min, s.max);
  if (!(s.maxDuty > 0.0) || s.maxDuty > 1.0) s.maxDuty = 1.0;
  return s;
}

}  // namespace

PollInterval::PollInterval(Settings settings) : settings_(normalised(settings)), current_(settings_.initial) {}

void PollInterval::onScan(Clock::time_point end, Clock::duration took, bool changed) {
  if (!scanned_ || changed) {
    // The first scan only takes the baseline; count it as the start of quiet.
    lastChange_ = end;
  }
  if (changed) {
    current_ = settings_.min;
  } else if (scanned_) {
    if (end - lastChange_ >= settings_.idleAfter) {
      current_ = std::min(settings_.max, std::max(current_ + current_ / 2, settings_.initial));
    } else if (current_ < settings_.initial) {
      current_ = std::min(settings_.initial, current_ * 2);
    }
  }
  scanned_ = true;
  // The duty limit: scanning `took` must be at most maxDuty of the period,
  // so the wait after it is at least took * (1 / maxDuty - 1).
  auto tookMs = duration_cast<std::chrono::duration<double, std::milli>>(took).count();
  auto waitForDuty = Duration{static_cast<int64_t>(std::ceil(tookMs * (1.0 / settings_.maxDuty - 1.0)))};
  deadline_ = end + std::max(current_, waitForDuty);
}

void PollInterval::hurry(Clock::time_point when) { deadline_ = std::min(deadline_, when); }

int PollInterval::timeoutMs(Clock::time_point now) const {
  if (deadline_ <= now) return 0;
  auto left = std::chrono::ceil<Duration>(deadline_ - now).count();
  return static_cast<int>(std::min<int64_t>(left, 0x7fffffff));
}

}  // namespace rnotify
