#include "common/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
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

// Bytes of the valid UTF-8 sequence at text[i] (2..4), or 0 if there is none
// (a stray continuation byte, a truncated or overlong sequence, a surrogate,
// beyond U+10FFFF). *cp receives the code point.
size_t utf8Sequence(std::string_view text, size_t i, uint32_t* cp) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  size_t n;
  uint32_t min;
  if (lead >= 0xc2 && lead <= 0xdf) {
    n = 2, min = 0x80, *cp = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    n = 3, min = 0x800, *cp = lead & 0x0f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    n = 4, min = 0x10000, *cp = lead & 0x07;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    *cp = (*cp << 6) | (byte(i + k) & 0x3f);
  }
  if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff)) return 0;
  return n;
}

// Code points that end or rewrite a line in some log viewer or terminal:
// C1 controls (U+0085 NEL is a newline to some, U+009B a CSI) and the
// Unicode line and paragraph separators.
bool breaksLines(uint32_t cp) { return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029; }

void appendEscaped(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  switch (c) {
    case '\n':
      out += "\\n";
      return;
    case '\r':
      out += "\\r";
      return;
    case '\t':
      out += "\\t";
      return;
    default:
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
  }
}

}  // namespace

std::string escapeControls(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    uint32_t cp = 0;
    size_t n = c >= 0x80 ? utf8Sequence(text, i, &cp) : 0;
    if (n == 0 || breaksLines(cp)) {
      // One byte at a time: an invalid sequence resynchronises at the next byte.
      appendEscaped(out, c);
      ++i;
      continue;
    }
    out.append(text.substr(i, n));
    i += n;
  }
  return out;
}

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
  // Messages carry text from clients (names, paths): escaped here, once for
  // every call site, so that none can end the line and forge the next one.
  // One write(2) per line so that lines of concurrent processes do not interleave.
  std::string line = fmt::format("{}[{}] {}: {}\n", gProgram, ::getpid(), levelName(l), escapeControls(message));
  [[maybe_unused]] ssize_t n = ::write(gFd, line.data(), line.size());
}

}  // namespace rnotify::log
