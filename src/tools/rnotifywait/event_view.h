// EventView: the fields of one event that rnotifywait prints, independent of
// the C API struct so that formatting can be tested without a client library.
#pragma once

#include <cstdint>
#include <string_view>

namespace rnotify::wait {

struct EventView {
  std::string_view path;  // inotifywait's %w: watched path (+ subdirectory), '/' after directories
  std::string_view name;  // %f: entry name inside path, "" for the path itself
  uint32_t mask = 0;      // IN_* | IN_ISDIR | IN_REMOTE
  uint32_t cookie = 0;
  uint64_t seq = 0;
};

}  // namespace rnotify::wait
