// ViewSource; see view_source.h.
#include "view_source.h"

namespace rnotify::bench {

ViewSource::ViewSource(std::string name, std::string watchDir, std::string changeDir)
    : name_(std::move(name)), changeDir_(std::move(changeDir)), inotify_(watchDir) {
  description_ = "inotify_init1 + inotify_add_watch on " + watchDir + " (the view), files created in " + changeDir_;
}

std::optional<std::string> ViewSource::nextCreate(int timeoutMs) {
  auto name = inotify_.nextCreate(timeoutMs);
  stats_ = inotify_.stats();  // its overflows are the view's
  return name;
}

}  // namespace rnotify::bench
