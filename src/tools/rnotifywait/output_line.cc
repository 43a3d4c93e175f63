// Implements OutputLine; see output_line.h.
#include "tools/rnotifywait/output_line.h"

#include "tools/rnotifywait/event_format.h"
#include "tools/rnotifywait/json_line.h"

namespace rnotify::wait {

OutputLine::OutputLine(const Options& options) : timefmt_(options.timefmt) {
  if (options.json) {
    style_ = Style::kJson;
  } else if (options.csv) {
    style_ = Style::kCsv;
  } else if (options.format) {
    style_ = Style::kFormat;
    format_ = *options.format;
  } else {
    format_ = kDefaultFormat;
  }
}

std::optional<std::string> OutputLine::render(const EventView& ev, const timespec& now) const {
  switch (style_) {
    case Style::kJson: {
      // Milliseconds are plenty and keep the number short.
      const long milliseconds = now.tv_nsec / 1000000;
      double seconds = static_cast<double>(now.tv_sec) + static_cast<double>(milliseconds) / 1000.0;
      return jsonLine(ev, seconds);
    }
    case Style::kCsv:
      return csvLine(ev);
    case Style::kDefault:
    case Style::kFormat: {
      std::tm local{};
      localtime_r(&now.tv_sec, &local);
      return formatEvent(format_, ev, timefmt_, local);
    }
  }
  return std::nullopt;
}

}  // namespace rnotify::wait
