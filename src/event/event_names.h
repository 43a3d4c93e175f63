// Names of event bits as inotifywait prints and parses them ("CREATE",
// "CLOSE_WRITE", "ISDIR", ...), plus "REMOTE" for IN_REMOTE. Scripts written
// for inotify-tools compare these strings, so the names, their order and the
// parsing quirks follow inotify-tools 3.22 exactly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rnotify {

// "CREATE,ISDIR" for sep ','; the order and names match inotify-tools, with
// "REMOTE" last. A mask with no known bit prints as "0x%08x" like inotifywait.
std::string eventNames(uint32_t mask, char sep = ',');

// Parses one event name as accepted by inotifywait -e, case-insensitively
// ("close" = both closes, "move" = both moves, "all_events"); 0 when unknown.
// "REMOTE" is not accepted: it describes where an event came from and cannot
// be asked for.
uint32_t eventFromName(std::string_view name);

// Parses the argument of one inotifywait -e option: names separated by sep.
// nullopt when a name is unknown (or sep is a letter or '_'). Like inotifywait,
// an empty list, an empty item ("create,,delete") or a trailing separator
// ("create,") yields 0, which adds nothing to the mask.
std::optional<uint32_t> eventsFromList(std::string_view list, char sep = ',');

}  // namespace rnotify
