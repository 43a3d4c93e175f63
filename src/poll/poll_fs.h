// The system calls a polling scan is made of, and nothing else: list a
// directory's names with getdents64 into one buffer, statx one entry by name
// relative to its directory, open a directory. Each asks the kernel only for
// what the comparison needs, and counts its calls so that a benchmark can
// report syscalls per scan without strace.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace rnotify {

// What the scanner keeps of an entry (statx, reduced).
struct PollStat {
  uint64_t ino = 0;
  uint64_t size = 0;
  int64_t mtimeNs = 0;
  int64_t ctimeNs = 0;
  uint32_t mode = 0;  // type and permission bits, as st_mode
  uint32_t uid = 0;
  uint32_t gid = 0;
  // The birth time folded to 32 bits, 0 where the filesystem has none: an
  // inode number freed and reused at once (ext4 does) gets another one.
  uint32_t btime = 0;
};

struct PollFsCounters {
  uint64_t statx = 0;
  uint64_t getdents = 0;
  uint64_t open = 0;  // each open is followed by one close
};

class PollFs {
 public:
  // forceSync: statx with AT_STATX_FORCE_SYNC, which makes NFS and FUSE ask
  // the server instead of answering from their attribute caches (local
  // filesystems ignore it). For directories, files, or neither.
  enum class Sync { kNone, kDirectories, kAll };
  explicit PollFs(Sync sync = Sync::kDirectories) : sync_(sync) {}

  // statx(dirfd, name, AT_SYMLINK_NOFOLLOW). 0 or an errno. `knownDir` says
  // whether the caller expects a directory (for the sync choice).
  int stat(int dirfd, const char* name, bool knownDir, PollStat* out);
  // Opens a directory below dirfd, not following a symlink. For listing
  // (O_RDONLY) or only as the base of further lookups (O_PATH: on FUSE and
  // NFS no request goes to the server). Invalid fd and errno on failure.
  UniqueFd openDir(int dirfd, const char* name, bool forListing, int* error);
  // Appends every name in the directory but "." and "..", each followed by a
  // NUL, to *names, and its inode number (d_ino) to *inos. 0 or an errno.
  int list(int fd, std::string* names, std::vector<uint64_t>* inos);
  // An O_PATH descriptor of the directory that fd (opened for listing) is
  // open on, to hold between a scan's slices instead: on cifs an open
  // directory holds a search handle on the server. fd itself if it fails.
  UniqueFd pathOnly(UniqueFd fd);

  const PollFsCounters& counters() const { return counters_; }

 private:
  Sync sync_;
  PollFsCounters counters_;
  std::vector<char> buffer_;
};

}  // namespace rnotify
