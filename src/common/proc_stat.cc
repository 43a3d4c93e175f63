#include "common/proc_stat.h"

#include <unistd.h>

#include <charconv>

#include "common/read_file.h"

namespace rnotify {

int64_t ProcStat::cpuMs() const {
  static const long ticks = ::sysconf(_SC_CLK_TCK);
  return static_cast<int64_t>((utime + stime) * 1000 / static_cast<uint64_t>(ticks > 0 ? ticks : 100));
}

std::optional<ProcStat> parseProcStat(std::string_view text) {
  const size_t close = text.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  ProcStat out;
  int index = 3;  // the field after ')' is the third
  size_t i = close + 1;
  while (index <= 22) {
    while (i < text.size() && text[i] == ' ') ++i;
    const size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\n') ++i;
    if (i == start) return std::nullopt;  // the line ended early
    const std::string_view field = text.substr(start, i - start);
    auto number = [&](auto& value) {
      auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
      return ec == std::errc() && end == field.data() + field.size();
    };
    bool ok = true;
    switch (index) {
      case 3:
        out.state = field.size() == 1 ? field[0] : '?';
        ok = field.size() == 1;
        break;
      case 4:
        ok = number(out.ppid);
        break;
      case 14:
        ok = number(out.utime);
        break;
      case 15:
        ok = number(out.stime);
        break;
      case 22:
        ok = number(out.startTime);
        break;
      default:
        break;
    }
    if (!ok) return std::nullopt;
    ++index;
  }
  return out;
}

std::optional<ProcStat> readProcStat(pid_t pid, const std::string& procRoot) {
  auto text = readFile(procRoot + "/" + std::to_string(pid) + "/stat", 4096);
  if (!text) return std::nullopt;
  return parseProcStat(*text);
}

}  // namespace rnotify
