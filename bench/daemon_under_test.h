// DaemonUnderTest: one rnotifyd serving a unix socket, started the way an
// administrator would (`rnotifyd --listen unix:PATH --export DIR --watcher
// BACKEND`), for the benchmarks that need its pid (CPU time, RSS) or several
// clients on one daemon. Optionally it starts inside a memory cgroup, so that
// every kernel object it allocates (inotify watches, fanotify marks) is
// charged there from its first instruction. Killed on destruction.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "process.h"
#include "transport/connection.h"

namespace rnotify::bench {

struct DaemonOptions {
  std::string rnotifyd;    // the binary
  std::string socketPath;  // unix socket to listen on
  std::vector<std::string> exports;
  std::string watcher;  // --watcher; "" = rnotifyd's default
  std::vector<std::string> extraArgs;
  std::string cgroupProcs;  // a cgroup.procs file to enter before exec; "" = none
};

class DaemonUnderTest {
 public:
  // Starts the daemon and waits (at most 10 s) until it accepts a
  // connection; throws with its output otherwise.
  explicit DaemonUnderTest(DaemonOptions options);
  ~DaemonUnderTest();
  DaemonUnderTest(const DaemonUnderTest&) = delete;
  DaemonUnderTest& operator=(const DaemonUnderTest&) = delete;

  pid_t pid() const { return process_->pid(); }
  // A new client connection (rnotify::Connection::overSocket, handshake done).
  std::unique_ptr<Connection> connect();
  // What the daemon printed, for error messages.
  std::string transcript() const { return process_->transcript(); }

 private:
  DaemonOptions options_;
  std::unique_ptr<testbed::Process> process_;
};

// Sends Watch{mask, path, flags} on `connection` and waits for the Reply;
// returns the watch id. Throws naming `what` if it fails or is refused.
uint32_t watchOrThrow(Connection& connection, const std::string& path, uint32_t mask, uint32_t flags,
                      const std::string& what, int timeoutMs = 60000);

}  // namespace rnotify::bench
