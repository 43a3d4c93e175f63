// How long the client core gives a server: connecting, and each request.
// The preload shim waits for a first connection by the same rule.
#pragma once

#include <cstdlib>

namespace rnotify {

// RNOTIFY_CONNECT_TIMEOUT_MS, else 20 s.
inline int connectTimeoutMs() {
  if (const char* env = std::getenv("RNOTIFY_CONNECT_TIMEOUT_MS")) {
    int value = std::atoi(env);
    if (value > 0) return value;
  }
  return 20000;
}

}  // namespace rnotify
