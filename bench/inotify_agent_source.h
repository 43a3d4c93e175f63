// InotifyAgentSource: the same job as rnotify with the least code, as a lane
// of its own: an agent (this benchmark's binary, --inotify-agent DIR) watches
// the lane's directory with inotify (IN_CREATE) and writes each created name
// and '\n' to its standard output ("!" when the kernel's queue overflowed). Started directly it is one pipe hop
// ("inotify-pipe"); started over ssh with the options the client library
// uses it is the product's path with rnotifyd and the client replaced by
// about thirty lines ("ssh-inotify"). Unlike the byte probes (pipe_probe.h),
// whose clock starts after their agent has woken, its clock starts at the
// create, as every lane's does: the agent's wake-up on the kernel's event
// is in it.
#pragma once

#include <string>
#include <vector>

#include "event_source.h"
#include "transport/agent_process.h"

namespace rnotify::bench {

// The agent side; returns when its output is closed. Exit code for main().
int runInotifyAgent(const std::string& dir);

class InotifyAgentSource final : public EventSource {
 public:
  // Starts argv (which must run the agent on dir) and waits for its watch.
  // Throws std::runtime_error on failure.
  InotifyAgentSource(std::string name, const std::vector<std::string>& argv, std::string dir);
  const std::string& name() const override { return name_; }
  const std::string& description() const override { return description_; }
  const std::string& changeDir() const override { return dir_; }
  std::optional<std::string> nextCreate(int timeoutMs) override;

 private:
  std::string name_;
  std::string description_;
  std::string dir_;
  AgentProcess agent_;
  std::string buffer_;
};

}  // namespace rnotify::bench
