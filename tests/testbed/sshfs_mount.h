// SshfsMount: an sshfs mount owned by a test. sshfs runs in the foreground
// (-f) as a Process and gets its ssh options from an ssh_config (-F) and -p,
// never from an ssh_command wrapper: the product finds the ssh options of a
// mount by reading the command line of the ssh process that sshfs started, so
// that command line must be the real thing. Teardown: lazy unmount, then kill.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "process.h"

namespace rnotify::testbed {

class Netns;

struct SshfsOptions {
  std::string remote;      // "root@10.213.1.1:/tmp/rnotify-test-x/export"
  std::string mountPoint;  // an existing empty directory
  std::string sshConfig;   // passed as -F
  int port = 22;           // passed as -p
  // Extra -o options. Empty = sshfs defaults, which is what client A uses:
  // the product must work with them. See kFreshViewOptions for B.
  std::vector<std::string> options;
  const Netns* netns = nullptr;  // run sshfs (and so its ssh) inside this namespace
};

// Options for a mount whose view of the server is never stale (no sshfs
// directory cache, no FUSE entry/attribute caching): for writers in tests,
// which must see what the server has right now.
extern const std::vector<std::string> kFreshViewOptions;

class SshfsMount {
 public:
  // Mounts and waits until /proc/self/mountinfo lists the mount point as
  // fuse.sshfs; throws with sshfs's output if that does not happen in time.
  explicit SshfsMount(SshfsOptions options);
  ~SshfsMount();
  SshfsMount(const SshfsMount&) = delete;
  SshfsMount& operator=(const SshfsMount&) = delete;

  // Whether sshfs, fusermount3 and /dev/fuse are here; "" if so, else why not.
  static std::string missing();

  const std::string& path() const { return options_.mountPoint; }
  std::string operator/(const std::string& rel) const { return options_.mountPoint + "/" + rel; }
  pid_t sshfsPid() const { return process_->pid(); }
  std::string transcript() const { return process_->transcript(); }
  // Unmounts now (idempotent); the destructor calls it.
  void unmount();

 private:
  SshfsOptions options_;
  std::unique_ptr<Process> process_;
  bool mounted_ = false;
};

}  // namespace rnotify::testbed
