// Names of event bits as inotifywait prints and parses them ("CREATE",
// "CLOSE_WRITE", "ISDIR", ...), plus "REMOTE" for IN_REMOTE.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace rnotify {

// "CREATE,ISDIR" for sep ','; the order and names match inotify-tools.
std::string eventNames(uint32_t mask, char sep = ',');
// Parses one event name as accepted by inotifywait -e ("close" = both closes,
// "move" = both moves, "all_events"); 0 when unknown.
uint32_t eventFromName(std::string_view name);

}  // namespace rnotify
