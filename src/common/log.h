// Leveled logging to stderr (or a file), shared by every program. Each line:
// "rnotifyd[pid] LEVEL message". A message is one line whatever it contains:
// control characters are escaped (see escapeControls), so that text a client
// chose (a path, a client name) cannot forge log lines. Programs set the level from --log-level or
// RNOTIFY_LOG_LEVEL; libraries log through the same sink so that a host
// application can redirect it.
#pragma once

#include <fmt/core.h>

#include <string>
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
// text with every byte below 0x20, 0x7f, each byte of invalid UTF-8, and the
// C1 controls and U+2028/U+2029 written as \n, \r, \t or \xNN (bytes);
// valid UTF-8 otherwise stays as it is. write() applies it to each message.
std::string escapeControls(std::string_view text);

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
