// Which events rnotifywait drops before printing: --exclude/--include regexes
// (POSIX extended, matched against "%w%f" like inotifywait) and, with -r, the
// subtrees named by "@dir" operands. inotifywait never watches an excluded
// subtree; the rnotify API cannot skip subdirectories of a recursive watch
// yet, so they are watched and their events dropped here instead.
#pragma once

#include <regex.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tools/rnotifywait/event_view.h"
#include "tools/rnotifywait/options.h"

namespace rnotify::wait {

class EventFilter {
 public:
  EventFilter() = default;
  // false when the pattern does not compile (inotifywait: "Error in `exclude'
  // regular expression.").
  bool setRegex(const RegexFilter& filter);
  // dir as written after '@'; a trailing '/' is optional, like in inotifywait.
  void excludeSubtree(std::string_view dir);

  // root: the path the event's watch was added with.
  bool drops(const EventView& ev, std::string_view root) const;

 private:
  struct RegexDeleter {
    void operator()(regex_t* re) const;
  };
  std::unique_ptr<regex_t, RegexDeleter> regex_;
  bool invert_ = false;
  std::vector<std::string> subtreePrefixes_;  // "dir/sub/"
};

}  // namespace rnotify::wait
