// Milliseconds left until a deadline, for poll(2) timeouts: 0 once it has
// passed (never negative, which poll would take as "forever").
#pragma once

#include <chrono>

namespace rnotify {

inline int remainingMs(std::chrono::steady_clock::time_point deadline) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

}  // namespace rnotify
