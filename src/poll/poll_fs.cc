#include "poll/poll_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace rnotify {
namespace {

// Enough for a few hundred names per call; a directory of ~100 entries is
// read in one getdents64 plus the one that returns 0.
constexpr size_t kBufferSize = 32 * 1024;

// Only what the comparison uses; the kernel may fill more, never less on
// filesystems that support them (all that Linux mounts, for these fields).
constexpr unsigned kStatxMask =
    STATX_TYPE | STATX_MODE | STATX_INO | STATX_SIZE | STATX_MTIME | STATX_CTIME | STATX_UID | STATX_GID | STATX_BTIME;

struct LinuxDirent64 {  // the kernel's record; glibc does not declare it
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

int64_t nanoseconds(const struct statx_timestamp& t) { return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; }

}  // namespace

int PollFs::stat(int dirfd, const char* name, bool knownDir, PollStat* out) {
  int flags = AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT;
  if (sync_ == Sync::kAll || (sync_ == Sync::kDirectories && knownDir)) flags |= AT_STATX_FORCE_SYNC;
  struct statx stx;
  ++counters_.statx;
  if (::statx(dirfd, name, flags, kStatxMask, &stx) != 0) return errno;
  out->ino = stx.stx_ino;
  out->size = stx.stx_size;
  out->mtimeNs = nanoseconds(stx.stx_mtime);
  out->ctimeNs = nanoseconds(stx.stx_ctime);
  out->mode = stx.stx_mode;
  out->uid = stx.stx_uid;
  out->gid = stx.stx_gid;
  out->btime = 0;
  if (stx.stx_mask & STATX_BTIME) {
    uint64_t b = static_cast<uint64_t>(nanoseconds(stx.stx_btime));
    out->btime = static_cast<uint32_t>(b ^ (b >> 32)) | 1;
  }
  return 0;
}

UniqueFd PollFs::openDir(int dirfd, const char* name, bool forListing, int* error) {
  int flags = O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | (forListing ? O_RDONLY : O_PATH);
  ++counters_.open;
  UniqueFd fd(::openat(dirfd, name, flags));
  if (!fd.valid()) *error = errno;
  return fd;
}

UniqueFd PollFs::pathOnly(UniqueFd fd) {
  ++counters_.open;
  UniqueFd path(::openat(fd.get(), ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  return path.valid() ? std::move(path) : std::move(fd);
}

int PollFs::list(int fd, std::string* names, std::vector<uint64_t>* inos) {
  if (buffer_.empty()) buffer_.resize(kBufferSize);
  for (;;) {
    ++counters_.getdents;
    long n = ::syscall(SYS_getdents64, fd, buffer_.data(), buffer_.size());
    if (n < 0) return errno;
    if (n == 0) return 0;
    for (long at = 0; at < n;) {
      const auto* d = reinterpret_cast<const LinuxDirent64*>(buffer_.data() + at);
      at += d->d_reclen;
      const char* name = d->d_name;
      if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
      names->append(name, std::strlen(name) + 1);
      inos->push_back(d->d_ino);
    }
  }
}

}  // namespace rnotify
