// Implements EventFilter; see event_filter.h.
#include "tools/rnotifywait/event_filter.h"

namespace rnotify::wait {

void EventFilter::RegexDeleter::operator()(regex_t* re) const {
  regfree(re);
  delete re;
}

bool EventFilter::setRegex(const RegexFilter& filter) {
  auto* re = new regex_t;
  int flags = REG_EXTENDED | REG_NOSUB | (filter.ignoreCase ? REG_ICASE : 0);
  if (regcomp(re, filter.pattern.c_str(), flags) != 0) {
    delete re;
    return false;
  }
  regex_.reset(re);
  invert_ = filter.invert;
  return true;
}

void EventFilter::excludeSubtree(std::string_view dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.remove_suffix(1);
  if (dir.empty()) return;
  subtreePrefixes_.push_back(std::string(dir) + "/");
}

bool EventFilter::drops(const EventView& ev, std::string_view root) const {
  size_t rootLength = root.size() + (root.ends_with('/') ? 0 : 1);  // as a directory path
  for (const auto& prefix : subtreePrefixes_) {
    // Only below the root: "rnotifywait -r d @d" still watches d itself, as
    // inotifywait only compares the exclusions with subdirectories.
    if (ev.path.starts_with(prefix) && rootLength < prefix.size()) return true;
  }
  if (!regex_) return false;
  std::string subject = std::string(ev.path) + std::string(ev.name);
  bool matches = regexec(regex_.get(), subject.c_str(), 0, nullptr, 0) == 0;
  return matches != invert_;
}

}  // namespace rnotify::wait
