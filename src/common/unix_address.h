// The address of a unix socket path, checked once: 1 to 107 bytes (the
// kernel's sun_path holds 108 with the terminating NUL). For the client's
// unix: endpoints, rnotifyd's unix: listeners and the agent's hand-off
// socket.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string>

#include "common/result.h"

namespace rnotify {

inline Result<sockaddr_un> unixAddress(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return Error{ENAMETOOLONG,
                 "unix socket path '" + path + "' must be 1.." + std::to_string(sizeof addr.sun_path - 1) + " bytes"};
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

}  // namespace rnotify
