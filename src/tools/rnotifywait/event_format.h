// The three inotifywait output styles: the default line "%w %,e %f", a
// --format string, and --csv. They reproduce inotify-tools 3.22 byte for byte,
// including its quirks (a format ending in a lone '%' or a --timefmt that
// expands to nothing prints nothing at all), because scripts parse this output.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include "tools/rnotifywait/event_view.h"

namespace rnotify::wait {

// inotifywait's limit on --format strings (MAX_STRLEN).
inline constexpr size_t kMaxFormatLength = 4096;

// The format used when neither --format nor --csv is given.
inline constexpr std::string_view kDefaultFormat = "%w %,e %f\n";

// What inotifywait rejects with "Something is wrong with your format string."
bool formatIsValid(std::string_view format);

// Expands format for one event: %w %f %e %Xe (X: any separator) %c (cookie,
// hex) %T (now, through timefmt; "" without timefmt) %0 (NUL) %n (newline) %%.
// Unknown directives are copied. nullopt means "print nothing" (see above).
std::optional<std::string> formatEvent(std::string_view format, const EventView& ev,
                                       const std::optional<std::string>& timefmt, const std::tm& now);

// One CSV field quoted the way inotifywait does: only when it contains '"',
// ',' or a newline, or starts or ends with a space; '"' is doubled.
std::string csvEscape(std::string_view field);

// "path,EVENTS,name\n"; the path column is left out when the path is empty.
std::string csvLine(const EventView& ev);

}  // namespace rnotify::wait
