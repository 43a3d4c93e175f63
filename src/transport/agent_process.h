// AgentProcess: a child process the client talks the protocol with over pipes
// (normally `ssh <the mount's options> host -- rnotifyd --stdio`). It runs in
// its own process group so that a terminal's Ctrl-C aimed at the application
// does not silently cut the application's remote events; it is killed and
// reaped when the object goes away.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace rnotify {

class AgentProcess {
 public:
  static Result<AgentProcess> spawn(const std::vector<std::string>& argv);
  AgentProcess() = default;
  AgentProcess(AgentProcess&& other) noexcept;
  AgentProcess& operator=(AgentProcess&& other) noexcept;
  ~AgentProcess();

  int input() const { return stdin_.get(); }    // we write requests here
  int output() const { return stdout_.get(); }  // frames arrive here (non-blocking)
  int errors() const { return stderr_.get(); }  // ssh's and the agent's messages (non-blocking)
  // Ends the agent's input: the way to say "the client is gone".
  void closeInput() { stdin_.reset(); }
  pid_t pid() const { return pid_; }
  // Reaps the process if it has exited, waiting at most timeoutMs; returns
  // its exit code (128+signal for a signal), or -1 while it still runs.
  int reap(int timeoutMs);
  // Ends the process at once (SIGKILL) and reaps it.
  void kill();
  // Everything read from stderr so far (bounded).
  const std::string& stderrText();

 private:
  void terminate();

  pid_t pid_ = -1;
  int status_ = -1;
  UniqueFd stdin_, stdout_, stderr_;
  std::string stderrText_;
};

}  // namespace rnotify
