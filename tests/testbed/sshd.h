// Sshd: a throw-away OpenSSH server for one test. Fresh host and client keys,
// its own sshd_config in a temp dir, root login by key only, and a real
// sftp-server process per client (origin attribution on the server relies on
// that). It also writes the client side: an ssh_config that sshfs (-F) and,
// through sshfs's ssh command line, the product's own ssh both use.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "process.h"
#include "temp_dir.h"

namespace rnotify::testbed {

class Netns;

struct SshdOptions {
  // Addresses sshd listens on; all must exist where it runs.
  std::vector<std::string> listenAddresses{"127.0.0.1"};
  int port = 0;                  // 0: a free port on 127.0.0.1
  const Netns* netns = nullptr;  // run sshd inside this namespace
};

class Sshd {
 public:
  // Starts sshd and waits until it accepts TCP on every listen address;
  // throws with sshd's output if it does not.
  explicit Sshd(SshdOptions options = {});
  ~Sshd();
  Sshd(const Sshd&) = delete;
  Sshd& operator=(const Sshd&) = delete;

  // Whether the binaries the bed needs are installed; "" if so, else why not.
  static std::string missing();

  int port() const { return port_; }
  const std::string& address(size_t i = 0) const { return options_.listenAddresses.at(i); }
  // The default client config: Host *, Port, IdentityFile, no host key
  // checking, BatchMode, LogLevel ERROR.
  const std::string& clientConfig() const { return clientConfig_; }
  // Another client config with `extraLines` added to the Host * block (e.g.
  // "BindAddress 127.0.0.2" to come from a distinct address on loopback).
  std::string writeClientConfig(const std::string& name, const std::vector<std::string>& extraLines) const;
  const std::string& clientKey() const { return clientKey_; }
  // sshd's own output (with -e, its log goes to stderr).
  std::string transcript() const { return process_ ? process_->transcript() : ""; }
  // The listening sshd; every session it serves (and the agents they run) descends from it.
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  // Where the agents of this server keep their daemon's socket
  // (RNOTIFY_RUNTIME_DIR of its ssh sessions): one daemon per test bed.
  std::string runtimeDir() const { return dir_ / "run"; }
  // The rnotifyd daemons behind this server's agents (usually 0 or 1), as
  // found in /proc by its runtime dir; those that have exited are left out.
  std::vector<pid_t> agentDaemons() const;

 private:
  SshdOptions options_;
  TempDir dir_{"rnotify-sshd-"};
  int port_ = 0;
  std::string clientKey_, clientConfig_;
  std::unique_ptr<Process> process_;
};

}  // namespace rnotify::testbed
