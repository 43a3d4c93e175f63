// Deadline and waitUntil; see deadline.h.
#include "deadline.h"

#include <cstdlib>
#include <string>
#include <thread>

namespace rnotify::testbed {
namespace {

double timeoutScale() {
  static const double scale = [] {
    const char* s = std::getenv("RNOTIFY_TEST_TIMEOUT_SCALE");
    if (s == nullptr) return 1.0;
    try {
      double v = std::stod(s);
      return v > 0 ? v : 1.0;
    } catch (...) {
      return 1.0;
    }
  }();
  return scale;
}

}  // namespace

Deadline Deadline::in(Clock::duration d) {
  auto scaled = std::chrono::duration_cast<Clock::duration>(d * timeoutScale());
  return Deadline(Clock::now() + scaled);
}

Clock::duration Deadline::remaining() const {
  auto left = at_ - Clock::now();
  return left > Clock::duration::zero() ? left : Clock::duration::zero();
}

int Deadline::remainingMs() const {
  auto ms = std::chrono::ceil<milliseconds>(remaining()).count();
  return ms > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(ms);
}

bool waitUntil(const Deadline& deadline, const std::function<bool()>& condition, milliseconds interval) {
  for (;;) {
    if (condition()) return true;
    if (deadline.expired()) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(interval, deadline.remaining()));
  }
}

}  // namespace rnotify::testbed
