// Leveled logging to stderr (or a file), shared by every program. Each line:
// "rnotifyd[pid] LEVEL message". Programs set the level from --log-level or
// RNOTIFY_LOG_LEVEL; libraries log through the same sink so that a host
// application can redirect it.
#pragma once

#include <fmt/core.h>

#include <string_view>

namespace rnotify::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void setLevel(Level level);
Level level();
void setProgram(std::string_view name);
// Parses "debug|info|warn|error|off"; false if unknown.
bool parseLevel(std::string_view text, Level* out);
// Redirects output to a file (appending); empty path means stderr.
bool setFile(const std::string& path);
void write(Level level, std::string_view message);

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::kDebug) write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::kInfo) write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::kWarn) write(Level::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::kError) write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace rnotify::log
