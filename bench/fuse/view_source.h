// ViewSource: a program on the rnotify-fuse view, as the latency benchmark
// sees it: plain inotify_init1 + inotify_add_watch on a directory of the
// view, read(2) directly — no rnotify code in this process. The runner
// creates the files on the server (changeDir), so every event read here was
// reflected by rnotify-fuse. The same code as InotifySource (the floor),
// but the watched directory differs from the changed one.
#pragma once

#include <string>

#include "event_source.h"
#include "inotify_source.h"

namespace rnotify::bench {

class ViewSource final : public EventSource {
 public:
  // Watches watchDir for IN_CREATE; throws std::runtime_error on failure.
  ViewSource(std::string name, std::string watchDir, std::string changeDir);
  const std::string& name() const override { return name_; }
  const std::string& description() const override { return description_; }
  const std::string& changeDir() const override { return changeDir_; }
  std::optional<std::string> nextCreate(int timeoutMs) override;

 private:
  std::string name_, description_, changeDir_;
  InotifySource inotify_;  // on the view's copy of changeDir
};

}  // namespace rnotify::bench
