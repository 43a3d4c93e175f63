// WatchRoute: who serves a watch the program asks for. Local filesystems,
// and network mounts whose server the shim could not reach, stay with the
// kernel alone; sshfs, NFS and SMB mounts are served by the client core
// (local events and the server's, de-duplicated). The decision costs one
// statfs() for local paths: only filesystem types that can be network mounts
// are looked up in /proc/self/mountinfo (MountResolver).
//
// RNOTIFY_PRELOAD_ROUTE=kernel turns the shim into a pass-through (every
// watch with the kernel); =client serves every watch through the client
// core, local directories included (as local-only watches) — for tests of
// the delivery path without a server.
#pragma once

#include <sys/types.h>

#include <mutex>
#include <set>
#include <string>

namespace rnotify::preload {

class WatchRoute {
 public:
  enum class Via { kKernel, kClient, kClientLocalOnly };
  struct Choice {
    Via via = Via::kKernel;
    dev_t device = 0;        // of the watched path, to remember an unreachable server
    std::string mountPoint;  // for messages
  };

  WatchRoute();
  Choice choose(const char* path, uint32_t mask) const;
  // From now on watches on this device stay with the kernel.
  void markUnreachable(dev_t device);

 private:
  enum class Mode { kAuto, kKernel, kClient };
  Mode mode_ = Mode::kAuto;
  mutable std::mutex mutex_;
  std::set<dev_t> unreachable_;
};

}  // namespace rnotify::preload
