#include "common/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

namespace rnotify::log {
namespace {

Level levelFromEnvironment() {
  Level l = Level::kWarn;
  if (const char* env = std::getenv("RNOTIFY_LOG_LEVEL")) parseLevel(env, &l);
  return l;
}

std::atomic<Level> gLevel{levelFromEnvironment()};
std::string gProgram = "rnotify";
std::atomic<int> gFd{STDERR_FILENO};

const char* levelName(Level l) {
  switch (l) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warning";
    case Level::kError:
      return "error";
    case Level::kOff:
      break;
  }
  return "";
}

}  // namespace

void setLevel(Level l) { gLevel = l; }
Level level() { return gLevel; }
void setProgram(std::string_view name) { gProgram = name; }

bool parseLevel(std::string_view text, Level* out) {
  static constexpr std::pair<std::string_view, Level> kNames[] = {{"debug", Level::kDebug}, {"info", Level::kInfo},
                                                                  {"warn", Level::kWarn},   {"warning", Level::kWarn},
                                                                  {"error", Level::kError}, {"off", Level::kOff}};
  for (auto& [name, l] : kNames) {
    if (text == name) {
      *out = l;
      return true;
    }
  }
  return false;
}

bool setFile(const std::string& path) {
  if (path.empty()) {
    gFd = STDERR_FILENO;
    return true;
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  gFd = fd;  // kept open for the life of the process
  return true;
}

void write(Level l, std::string_view message) {
  // One write(2) per line so that lines of concurrent processes do not interleave.
  std::string line = fmt::format("{}[{}] {}: {}\n", gProgram, ::getpid(), levelName(l), message);
  [[maybe_unused]] ssize_t n = ::write(gFd, line.data(), line.size());
}

}  // namespace rnotify::log
