// The table behind eventNames()/eventFromName(): one row per bit, in the order
// inotify-tools prints them. IN_CLOSE and IN_MOVE are unions of two bits and
// only appear in the parse table.
#include "event/event_names.h"

#include <array>
#include <cctype>
#include <cstdio>

#include "event/event.h"

namespace rnotify {
namespace {

struct NamedBit {
  uint32_t bit;
  std::string_view name;
};

// Print order of inotifytools_event_to_str_sep(). "CLOSE" is printed for
// either close bit, after IGNORED, which is why a write-close reads
// "CLOSE_WRITE,CLOSE".
constexpr std::array<NamedBit, 22> kPrintOrder{{
    {IN_ACCESS, "ACCESS"},
    {IN_MODIFY, "MODIFY"},
    {IN_ATTRIB, "ATTRIB"},
    {IN_CLOSE_WRITE, "CLOSE_WRITE"},
    {IN_CLOSE_NOWRITE, "CLOSE_NOWRITE"},
    {IN_OPEN, "OPEN"},
    {IN_MOVED_FROM, "MOVED_FROM"},
    {IN_MOVED_TO, "MOVED_TO"},
    {IN_CREATE, "CREATE"},
    {IN_DELETE, "DELETE"},
    {IN_DELETE_SELF, "DELETE_SELF"},
    {IN_UNMOUNT, "UNMOUNT"},
    {IN_Q_OVERFLOW, "Q_OVERFLOW"},
    {IN_IGNORED, "IGNORED"},
    {IN_CLOSE, "CLOSE"},
    {IN_MOVE_SELF, "MOVE_SELF"},
    {IN_ISDIR, "ISDIR"},
    {IN_ONESHOT, "ONESHOT"},
    {kInRemote, "REMOTE"},
    {kInSynthesized, "SYNTHESIZED"},
    {kInRestored, "RESTORED"},
    {IN_POLLED, "POLLED"},
}};

// inotifywait -e accepts every printed name but REMOTE (where an event came
// from is not something to ask for), plus these two (onestr_to_event()).
constexpr std::array<NamedBit, 2> kParseOnlyNames{{
    {IN_MOVE, "MOVE"},
    {IN_ALL_EVENTS, "ALL_EVENTS"},
}};

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string eventNames(uint32_t mask, char sep) {
  std::string out;
  for (const auto& [bit, name] : kPrintOrder) {
    if ((mask & bit) == 0) continue;
    if (!out.empty()) out += sep;
    out += name;
  }
  if (out.empty()) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08x", mask);
    out = hex;
  }
  return out;
}

uint32_t eventFromName(std::string_view name) {
  if (name.empty()) return 0;
  for (const auto& [bits, known] : kPrintOrder) {
    if ((bits & (kInRemote | kInSynthesized | kInRestored | IN_POLLED)) == 0 && equalsIgnoreCase(name, known))
      return bits;
  }
  for (const auto& [bits, known] : kParseOnlyNames) {
    if (equalsIgnoreCase(name, known)) return bits;
  }
  return 0;
}

std::optional<uint32_t> eventsFromList(std::string_view list, char sep) {
  if (std::isalpha(static_cast<unsigned char>(sep)) || sep == '_') return std::nullopt;
  uint32_t mask = 0;
  while (!list.empty()) {
    size_t end = list.find(sep);
    std::string_view item = list.substr(0, end);
    // inotifywait stops at the first empty item and discards what it had.
    if (item.empty()) return 0;
    uint32_t bits = eventFromName(item);
    if (bits == 0) return std::nullopt;
    mask |= bits;
    if (end == std::string_view::npos) break;
    list.remove_prefix(end + 1);
    if (list.empty()) return 0;  // trailing separator
  }
  return mask;
}

}  // namespace rnotify
