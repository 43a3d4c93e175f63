// The --help text: inotifywait's layout, so users find what they know, with
// what rnotifywait adds (remote events, --json, -v, ...) marked as such.
#pragma once

#include <string>

namespace rnotify::wait {

std::string helpText();

}  // namespace rnotify::wait
