// Where rnotifywait's messages go: stderr, or syslog with -s/-d (as
// inotifywait does, with LOG_INFO in the daemon facility).
#pragma once

#include <string>

namespace rnotify::wait {

class Diagnostics {
 public:
  void useSyslog();
  // message includes its trailing newline, like inotifywait's format strings.
  void say(const std::string& message) const;

 private:
  bool syslog_ = false;
};

}  // namespace rnotify::wait
