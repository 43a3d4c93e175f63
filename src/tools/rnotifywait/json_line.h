// --json output: one JSON object per event and line, for programs that would
// otherwise parse inotifywait's text. Paths on Linux are bytes, JSON strings
// are Unicode: a path or name that is valid UTF-8 is written as is; one that is
// not is written with U+FFFD in place of each invalid byte (readable, lossy)
// and additionally as "path_b64" / "name_b64" (standard base64 of the exact
// bytes), so that a consumer can always recover the real file name.
#pragma once

#include <string>
#include <string_view>

#include "tools/rnotifywait/event_view.h"

namespace rnotify::wait {

// {"path":"d/","name":"x","events":["CREATE","ISDIR"],"cookie":0,"seq":0,"time":1712345678.123}
// plus a trailing newline. time: seconds since the epoch when rnotifywait
// received the event.
std::string jsonLine(const EventView& ev, double time);

bool isValidUtf8(std::string_view bytes);
std::string base64(std::string_view bytes);

}  // namespace rnotify::wait
