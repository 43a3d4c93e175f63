// Process: one child process owned by a test. It runs in its own process group
// and dies with the test: the destructor kills the group and every descendant
// (sshd's per-connection children, the ssh that rnotifywait starts), then
// reaps. PR_SET_PDEATHSIG covers the case where the test binary itself crashes.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/proc_stat.h"  // readProcStat: state, parent, times of a process
#include "common/unique_fd.h"
#include "deadline.h"
#include "output_capture.h"

namespace rnotify::testbed {

class Netns;

struct ProcessOptions {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH
  // Changes to the inherited environment; nullopt removes the variable.
  std::map<std::string, std::optional<std::string>> env;
  bool captureStdout = true;
  bool captureStderr = true;
  bool pipeStdin = false;  // otherwise stdin is /dev/null
  std::string cwd;
  // Run inside this network namespace (nsenter --net, which keeps the mount
  // namespace: a FUSE mount made inside stays visible to the test).
  const Netns* netns = nullptr;
};

class Process {
 public:
  // Starts the child; throws std::runtime_error naming argv[0] if it cannot be
  // executed.
  explicit Process(ProcessOptions options);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // "sshd" etc., for messages.
  std::string commandLine() const;
  bool running();
  // Exit code, or 128 + signal number if it was killed; nullopt if it is still
  // running at the deadline.
  std::optional<int> waitExit(const Deadline& deadline);
  std::optional<int> exitStatus() const { return status_; }
  // Sends `sig` to the process group (and descendants that left it).
  void signal(int sig);
  // SIGTERM, then SIGKILL after `grace`; reaps. Idempotent.
  void terminate(Clock::duration grace = std::chrono::seconds(2));

  void writeStdin(const std::string& data);
  void closeStdin() { stdin_.reset(); }

  // See OutputCapture::waitForLine. Returns the index of the matching line.
  std::optional<size_t> waitForLine(Stream stream, const std::function<bool(const std::string&)>& match,
                                    const Deadline& deadline, size_t from = 0);
  std::vector<std::string> lines(Stream stream) const { return output_->lines(stream); }
  // All stdout and stderr lines so far, plus the exit status if known.
  std::string transcript() const;

 private:
  ProcessOptions options_;
  pid_t pid_ = -1;
  std::optional<int> status_;
  UniqueFd stdin_;
  std::unique_ptr<OutputCapture> output_;
};

struct CommandResult {
  int exitCode = -1;  // -1: did not finish before the deadline (it was killed)
  std::string stdoutText;
  std::string stderrText;
  std::string describe(const std::vector<std::string>& argv) const;
};

// Runs a command to completion (killing it at the deadline).
CommandResult runCommand(const std::vector<std::string>& argv, const Deadline& deadline, const Netns* netns = nullptr);
// Same, but throws std::runtime_error with the command's output unless it
// exits 0. For setup steps (ssh-keygen, ip netns add) that must work.
std::string runChecked(const std::vector<std::string>& argv, const Deadline& deadline, const Netns* netns = nullptr);

// Pids of all descendants of `root` (children first), found through
// /proc/*/stat. Processes that were reparented away are not found.
std::vector<pid_t> descendantsOf(pid_t root);

}  // namespace rnotify::testbed
