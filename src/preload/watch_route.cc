#include "preload/watch_route.h"

#include <linux/magic.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <climits>
#include <cstdlib>
#include <cstring>

#include "mounts/mount_resolver.h"

namespace rnotify::preload {
namespace {

// statfs() f_type values of filesystems that may be network mounts. Only for
// these is the mount table read; the client core's MountResolver decides.
constexpr long kFuseMagic = 0x65735546;
constexpr long kCifsMagic = static_cast<long>(0xFF534D42);
constexpr long kSmb2Magic = static_cast<long>(0xFE534D42);

bool mayBeNetwork(long type) {
  return type == kFuseMagic || type == NFS_SUPER_MAGIC || type == SMB_SUPER_MAGIC || type == kCifsMagic ||
         type == kSmb2Magic;
}

}  // namespace

WatchRoute::WatchRoute() {
  if (const char* env = std::getenv("RNOTIFY_PRELOAD_ROUTE")) {
    if (std::strcmp(env, "kernel") == 0) mode_ = Mode::kKernel;
    if (std::strcmp(env, "client") == 0) mode_ = Mode::kClient;
  }
}

WatchRoute::Choice WatchRoute::choose(const char* path, uint32_t mask) const {
  Choice choice;
  if (mode_ == Mode::kKernel || path == nullptr) return choice;
  struct stat st;
  int statResult = (mask & IN_DONT_FOLLOW) ? ::lstat(path, &st) : ::stat(path, &st);
  if (statResult != 0) return choice;  // the kernel reports the error
  choice.device = st.st_dev;
  {
    std::lock_guard lock(mutex_);
    if (unreachable_.count(st.st_dev)) return choice;
  }
  struct statfs fs;
  bool candidate = ::statfs(path, &fs) == 0 && mayBeNetwork(static_cast<long>(fs.f_type));
  if (!candidate) {
    if (mode_ == Mode::kClient) choice.via = Via::kClientLocalOnly;
    return choice;
  }
  char real[PATH_MAX];
  if (::realpath(path, real) == nullptr) return choice;
  ResolvedPath resolved = MountResolver::fromProc().resolve(real);
  choice.mountPoint = resolved.mount.mountPoint;
  switch (resolved.kind) {
    case MountKind::kSshfs:
    case MountKind::kNfs:
    case MountKind::kSmb:
      choice.via = Via::kClient;
      break;
    case MountKind::kLocal:
    case MountKind::kOtherNetwork:
      // Nothing the client core could add: it has no server to ask there.
      if (mode_ == Mode::kClient) choice.via = Via::kClientLocalOnly;
      break;
  }
  return choice;
}

void WatchRoute::markUnreachable(dev_t device) {
  std::lock_guard lock(mutex_);
  unreachable_.insert(device);
}

}  // namespace rnotify::preload
