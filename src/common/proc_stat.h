// ProcStat: the fields of a /proc/PID/stat line (proc(5)) that rnotify and
// its tests read. The comm field, in parentheses, may hold spaces and ')'
// itself: the numbered fields are those after the last ')'. One parser for
// the daemon (origin attribution), the client (which ssh serves a mount),
// the test bed and the benchmarks.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rnotify {

struct ProcStat {
  char state = '?';        // field 3
  pid_t ppid = -1;         // field 4
  uint64_t utime = 0;      // field 14, clock ticks
  uint64_t stime = 0;      // field 15, clock ticks
  uint64_t startTime = 0;  // field 22, clock ticks after boot

  // utime + stime, in milliseconds.
  int64_t cpuMs() const;
};

// Nothing if the text is not a whole stat line (up to field 22).
std::optional<ProcStat> parseProcStat(std::string_view text);
// procRoot/PID/stat; nothing if the process is gone (or not a whole line).
std::optional<ProcStat> readProcStat(pid_t pid, const std::string& procRoot = "/proc");

}  // namespace rnotify
