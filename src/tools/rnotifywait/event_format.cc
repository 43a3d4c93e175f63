// Implements the inotify-tools output formats; see event_format.h.
#include "tools/rnotifywait/event_format.h"

#include <array>
#include <cstdio>

#include "event/event_names.h"

namespace rnotify::wait {

bool formatIsValid(std::string_view format) { return !format.empty() && format.size() <= kMaxFormatLength; }

namespace {

// strftime() returns 0 both for errors and for an empty result; inotifywait
// treats both as failure and prints nothing for the event.
std::optional<std::string> formatTime(const std::optional<std::string>& timefmt, const std::tm& now) {
  if (!timefmt) return std::string();
  std::array<char, kMaxFormatLength> buf{};
  size_t n = std::strftime(buf.data(), buf.size() - 1, timefmt->c_str(), &now);
  if (n == 0) return std::nullopt;
  return std::string(buf.data(), n);
}

}  // namespace

std::optional<std::string> formatEvent(std::string_view format, const EventView& ev,
                                       const std::optional<std::string>& timefmt, const std::tm& now) {
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    char c = format[i];
    if (c != '%') {
      out += c;
      continue;
    }
    if (i + 1 == format.size()) return std::nullopt;  // lone trailing '%'
    char d = format[i + 1];
    ++i;
    switch (d) {
      case '%':
        out += '%';
        continue;
      case '0':
        out += '\0';
        continue;
      case 'n':
        out += '\n';
        continue;
      case 'w':
        out += ev.path;
        continue;
      case 'f':
        out += ev.name;
        continue;
      case 'e':
        out += eventNames(ev.mask, ',');
        continue;
      case 'c': {
        char hex[16];
        std::snprintf(hex, sizeof hex, "%x", ev.cookie);
        out += hex;
        continue;
      }
      case 'T': {
        auto time = formatTime(timefmt, now);
        if (!time) return std::nullopt;
        out += *time;
        continue;
      }
      default:
        break;
    }
    // "%Xe": any other character followed by 'e' is a separator.
    if (i + 1 < format.size() && format[i + 1] == 'e') {
      out += eventNames(ev.mask, d);
      ++i;
      continue;
    }
    out += '%';
    out += d;
  }
  return out;
}

std::string csvEscape(std::string_view field) {
  if (field.empty()) return {};
  bool quote = field.find_first_of("\",\n") != std::string_view::npos || field.front() == ' ' || field.back() == ' ';
  if (!quote) return std::string(field);
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string csvLine(const EventView& ev) {
  std::string out;
  if (!ev.path.empty()) {
    out += csvEscape(ev.path);
    out += ',';
  }
  out += csvEscape(eventNames(ev.mask));
  out += ',';
  out += csvEscape(ev.name);
  out += '\n';
  return out;
}

}  // namespace rnotify::wait
