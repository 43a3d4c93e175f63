// Deadline: every wait in the test bed has one. A test states "at most 5 s" and
// the bed reports what it expected and what it saw when the time runs out,
// instead of sleeping and hoping. RNOTIFY_TEST_TIMEOUT_SCALE (e.g. "3") stretches
// every deadline on slow machines (sanitizer builds, TCG guests).
#pragma once

#include <chrono>
#include <functional>

namespace rnotify::testbed {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

class Deadline {
 public:
  // A deadline `d` from now, multiplied by RNOTIFY_TEST_TIMEOUT_SCALE.
  static Deadline in(Clock::duration d);
  bool expired() const { return Clock::now() >= at_; }
  Clock::duration remaining() const;
  // Milliseconds left, for poll(2); never negative.
  int remainingMs() const;
  Clock::time_point at() const { return at_; }

 private:
  explicit Deadline(Clock::time_point at) : at_(at) {}
  Clock::time_point at_;
};

// Polls `condition` every `interval` until it holds (true) or the deadline
// passes (false). For conditions with no event to block on, such as "the mount
// is listed in mountinfo" or "the port accepts connections".
bool waitUntil(const Deadline& deadline, const std::function<bool()>& condition,
               milliseconds interval = milliseconds(20));

}  // namespace rnotify::testbed
