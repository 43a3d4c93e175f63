// Startup: going to the background the way sshfs does, but only once the view
// is ready. The process forks before it starts any thread or child; the
// parent waits until the child says "ready" (the view is mounted and the
// subscription made) or fails, and exits with the child's code. A script can
// therefore use the view as soon as `rnotify-fuse SOURCE VIEW` returns, and it
// sees the real exit code of a failed start. Until "ready" the child's
// messages still reach the terminal.
#pragma once

#include "common/unique_fd.h"

namespace rnotify::fuse {

class Startup {
 public:
  // foreground: no fork; done() does nothing.
  explicit Startup(bool foreground) : foreground_(foreground) {}
  // Forks. Returns in the child; the parent never returns.
  void detach();
  // In the child: report the outcome to the waiting parent (0: ready). After
  // a 0, stdin/stdout/stderr are /dev/null and the child has left the session.
  void done(int code);

 private:
  bool foreground_;
  UniqueFd toParent_;
};

}  // namespace rnotify::fuse
