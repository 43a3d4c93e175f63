// Placeholder; the rnotifywait work owns the real table.
#include "event/event_names.h"

namespace rnotify {
std::string eventNames(uint32_t, char) { return {}; }
uint32_t eventFromName(std::string_view) { return 0; }
}  // namespace rnotify
