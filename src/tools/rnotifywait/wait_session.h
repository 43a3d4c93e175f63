// WaitSession: one run of rnotifywait after its options are parsed. It follows
// inotifywait's main() step by step (check the filters and the format, read
// the path list, daemonize or redirect output, establish the watches, then
// wait and print) on top of the rnotify C API instead of raw inotify.
#pragma once

#include <map>
#include <string>

#include "rnotify/rnotify.h"
#include "tools/rnotifywait/diagnostics.h"
#include "tools/rnotifywait/event_filter.h"
#include "tools/rnotifywait/options.h"
#include "tools/rnotifywait/output_line.h"
#include "tools/rnotifywait/path_list.h"

namespace rnotify::wait {

inline constexpr int kExitEvent = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitTimeout = 2;

class WaitSession {
 public:
  explicit WaitSession(Options options);
  ~WaitSession();
  WaitSession(const WaitSession&) = delete;
  WaitSession& operator=(const WaitSession&) = delete;

  // The process exit code. A SIGINT/SIGTERM ends the wait; the caller then
  // re-raises it so that rnotifywait dies by the signal like inotifywait.
  int run();

 private:
  bool prepareFilters();
  bool readPathList();
  bool redirectOutput();
  bool addWatches();
  int waitForEvents();
  bool addWatch(const std::string& path);
  void handleEvent(const rnotify_event& ev);

  Options options_;
  Diagnostics diag_;
  EventFilter filter_;
  OutputLine output_;
  PathList paths_;
  rnotify_t* rn_ = nullptr;
  uint32_t events_ = 0;               // what the user asked for (-e, or all)
  uint32_t watchMask_ = 0;            // what the watches are asked for
  std::map<int, std::string> roots_;  // wd -> path as given
};

// Set by the SIGINT/SIGTERM handler that main() installs; 0 otherwise.
int pendingSignal();
void installSignalHandlers();

}  // namespace rnotify::wait
