// Chooses the output style from the options (--json, --csv, --format or
// inotifywait's default) and renders one event as the bytes to write.
#pragma once

#include <ctime>
#include <optional>
#include <string>

#include "tools/rnotifywait/event_view.h"
#include "tools/rnotifywait/options.h"

namespace rnotify::wait {

class OutputLine {
 public:
  explicit OutputLine(const Options& options);
  // nullopt: print nothing for this event (an inotifywait quirk of --format).
  std::optional<std::string> render(const EventView& ev, const timespec& now) const;

 private:
  enum class Style { kDefault, kFormat, kCsv, kJson };
  Style style_ = Style::kDefault;
  std::string format_;
  std::optional<std::string> timefmt_;
};

}  // namespace rnotify::wait
