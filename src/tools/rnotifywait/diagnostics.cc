// Implements Diagnostics; see diagnostics.h.
#include "tools/rnotifywait/diagnostics.h"

#include <syslog.h>

#include <cstdio>

namespace rnotify::wait {

void Diagnostics::useSyslog() {
  openlog("rnotifywait", LOG_CONS | LOG_PID | LOG_NDELAY, LOG_DAEMON);
  syslog_ = true;
}

void Diagnostics::say(const std::string& message) const {
  if (syslog_) {
    ::syslog(LOG_INFO, "%s", message.c_str());
  } else {
    std::fputs(message.c_str(), stderr);
  }
}

}  // namespace rnotify::wait
