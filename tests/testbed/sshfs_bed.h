// SshfsBed: the standard scene of the sshfs tests, three hosts on one machine.
//
//   server  : an export directory (on this machine's disk) served by Sshd
//   client A: sshfs mount of the export with default options, where the test
//             watches (rnotifywait runs here)
//   client B: a second sshfs mount with a never-stale view, where the test
//             writes as "another host"; the test also writes in the export
//             directly, as "the server itself"
//
// With network namespaces (root + iproute2), server, A and B are three
// namespaces joined by veth pairs (A: 10.213.1.0/30, B: 10.213.2.0/30), so the
// server sees A and B as distinct hosts. Without them everything is on
// loopback; B then connects from 127.0.0.2. Teardown is in reverse order:
// mounts, sshd, links, namespaces, files.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "netns.h"
#include "sshd.h"
#include "sshfs_mount.h"
#include "temp_dir.h"
#include "watcher.h"

namespace rnotify::testbed {

struct SshfsBedOptions {
  bool useNetns = true;                    // false, or namespaces unavailable: loopback
  std::vector<std::string> mountAOptions;  // sshfs defaults
  std::vector<std::string> mountBOptions = kFreshViewOptions;
  bool withMountB = true;
};

class SshfsBed {
 public:
  explicit SshfsBed(SshfsBedOptions options = {});
  ~SshfsBed();
  SshfsBed(const SshfsBed&) = delete;
  SshfsBed& operator=(const SshfsBed&) = delete;

  // "" if this machine can run the bed (root, /dev/fuse, sshd, sshfs), else
  // the reason, for GTEST_SKIP.
  static std::string missing();

  // The export directory on the server, and paths below it.
  const std::string& exportDir() const { return exportDir_; }
  std::string server(const std::string& rel) const { return exportDir_ + "/" + rel; }
  SshfsMount& mountA() { return *mountA_; }
  SshfsMount& mountB() { return *mountB_; }
  std::string a(const std::string& rel) const { return *mountA_ / rel; }
  std::string b(const std::string& rel) const { return *mountB_ / rel; }
  // Namespaces of the clients, nullptr on loopback.
  const Netns* netnsA() const { return netnsA_.get(); }
  const Netns* netnsB() const { return netnsB_.get(); }
  bool usesNetns() const { return netnsServer_ != nullptr; }
  Sshd& sshd() { return *sshd_; }
  // A scratch directory outside the export (local, not shared).
  TempDir& scratch() { return dir_; }

  // Options for rnotifywait watching `rel` below A's mount, running in A.
  WatcherOptions watchA(std::vector<std::string> args, const std::string& rel = "") const;
  // Runs a command as client B (inside B's namespace), e.g. `mv` on B's mount.
  CommandResult runAsB(const std::vector<std::string>& argv) const;
  // sshd's and both sshfs's output, for failure messages.
  std::string transcript() const;

 private:
  SshfsBedOptions options_;
  TempDir dir_;
  std::string exportDir_;
  std::unique_ptr<Netns> netnsServer_, netnsA_, netnsB_;
  std::unique_ptr<VethLink> linkA_, linkB_;
  std::unique_ptr<Sshd> sshd_;
  std::unique_ptr<SshfsMount> mountA_, mountB_;
};

// The bed of the client benchmarks: loopback, mount A only (sshfs
// defaults), the server's directory "a" made, and this process's
// RNOTIFY_AGENT set to the build's agent (agentCommand()).
std::unique_ptr<SshfsBed> clientBenchBed();

}  // namespace rnotify::testbed
