#include "common/host_port.h"

#include <charconv>

namespace rnotify {
namespace {

bool parsePort(std::string_view text, int* port, bool allowZero) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < (allowZero ? 0 : 1) ||
      value > 65535) {
    return false;
  }
  *port = value;
  return true;
}

}  // namespace

bool splitHostPort(std::string_view text, std::string* host, int* port, bool allowZero) {
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    *host = std::string(text.substr(1, close - 1));
    std::string_view rest = text.substr(close + 1);
    if (rest.empty()) return true;
    return rest.front() == ':' && parsePort(rest.substr(1), port, allowZero);
  }
  size_t colon = text.find(':');
  if (colon != text.rfind(':')) {  // a bare IPv6 address
    *host = std::string(text);
    return true;
  }
  *host = std::string(text.substr(0, colon));
  if (host->empty()) return false;
  return colon == std::string_view::npos || parsePort(text.substr(colon + 1), port, allowZero);
}

}  // namespace rnotify
