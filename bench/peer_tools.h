// The tools people would use instead of rnotify, run on the same workload:
// inotifywait (inotify-tools), fswatch (its inotify and poll monitors) and
// watchman. Each runs as a child process; what it reports is read from its
// standard output (one line per event) or, for watchman, from its socket
// (one JSON object per line after a subscribe). PeerTool is one such tool
// watching one directory, usable as the latency benchmark's EventSource (the
// name of each created file) and as a burst EventCounter (creates, deletes).
//
// Settings, chosen to give each tool its best showing (docs/BENCHMARKS.md):
// fswatch's inotify monitor with `-l 0.1` (its default of 1 s sleeps between
// reads), the poll monitor with `-r -l 1` (it cannot poll faster than once a
// second), watchman with `settle: 1` ms in the root's .watchmanconfig (its
// default of 20 ms delays every report).
#pragma once

#include <sys/types.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "burst.h"
#include "common/unique_fd.h"
#include "event_source.h"

namespace rnotify::bench {

enum class PeerKind { kInotifywait, kFswatchInotify, kFswatchPoll, kWatchman };

// "inotifywait", "fswatch-inotify", "fswatch-poll", "watchman".
const char* peerName(PeerKind kind);
// "" if the tool is installed, else what to install.
std::string peerMissing(PeerKind kind);

// A child process in its own process group, killed with it on destruction.
class ChildProcess {
 public:
  // stdout is a pipe (readFd()); stderr goes to `stderrPath` ("" = /dev/null).
  ChildProcess(const std::vector<std::string>& argv, const std::string& stderrPath);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  pid_t pid() const { return pid_; }
  int readFd() const { return stdout_.get(); }
  bool running();

 private:
  pid_t pid_ = -1;
  UniqueFd stdout_;
};

class PeerTool final : public EventSource, public EventCounter {
 public:
  // Starts the tool on `dir` (which must exist; `work` holds its scratch
  // files: logs, watchman's socket) and waits until it reports a probe file,
  // so that nothing of the measurement is lost to its start-up. countDeletes:
  // also ask for delete events (the burst); the latency lanes ask for creates
  // only. Throws naming the tool if it does not start.
  PeerTool(PeerKind kind, const std::string& dir, const std::string& work, bool countDeletes);
  ~PeerTool() override;

  // EventSource
  const std::string& name() const override { return name_; }
  const std::string& description() const override { return description_; }
  const std::string& changeDir() const override { return dir_; }
  std::optional<std::string> nextCreate(int timeoutMs) override;

  // EventCounter
  int fd() const override { return ended_.empty() ? readFd_ : -1; }
  void pump() override;
  bool complete(uint64_t files) const override;

  pid_t pid() const { return tool_->pid(); }
  // Why the tool stopped reporting ("" while it runs): it exited, with the
  // last line it wrote to stderr.
  const std::string& ended() const { return ended_; }

 private:
  // One report: a name and whether it exists now (created) or not (deleted).
  void note(std::string_view name, bool created, bool deleted);
  void parseLine(std::string_view line);
  // Reads what is there; false if nothing was (EAGAIN).
  bool readSome();
  void startWatchman(const std::string& work);
  void waitReady();

  PeerKind kind_;
  std::string name_;
  std::string description_;
  std::string dir_;
  bool countDeletes_;
  std::unique_ptr<ChildProcess> tool_;  // the tool; for watchman its daemon (--foreground)
  UniqueFd socket_;                     // watchman: the client socket
  int readFd_ = -1;
  std::string buffer_;
  std::deque<std::string> creates_;  // for nextCreate
  bool keepNames_ = true;            // nextCreate needs the names; the burst only counts
  std::string probe_;                // waitReady's file
  std::string stderrPath_;
  std::string ended_;
  bool probeSeen_ = false;
};

}  // namespace rnotify::bench
