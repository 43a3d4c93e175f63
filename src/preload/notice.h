// Messages of the shim to the user: on the program's stderr, or appended to
// the file named by RNOTIFY_LOG. Each kind of trouble is told once per
// process (per mount), never per event: the program's own output must stay
// readable. The client core's own log is silent unless RNOTIFY_LOG_LEVEL
// asks for it.
#pragma once

#include <string>

namespace rnotify::preload {

// Sets up logging once, at the first inotify descriptor: nothing is opened
// in programs that never use inotify.
void setUpLogging();
// Writes "rnotify-preload[pid] warning: <message>" unless `key` was told before.
void noticeOnce(const std::string& key, const std::string& message);

}  // namespace rnotify::preload
