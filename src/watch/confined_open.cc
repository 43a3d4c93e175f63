#include "watch/confined_open.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "watch/file_handle.h"

namespace rnotify {
namespace {

// openat2 fails with EAGAIN when a rename anywhere on the system raced the
// walk; a few retries, then the directory counts as not there.
constexpr int kResolveAttempts = 4;

bool isDirectoryEntry(int dirFd, const dirent* entry) {
  if (entry->d_type == DT_DIR) return true;
  if (entry->d_type != DT_UNKNOWN) return false;
  struct stat st;
  return ::fstatat(dirFd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

// The handle's type and bytes ("" where the filesystem has none).
std::string handleOf(int fd) {
  alignas(struct file_handle) unsigned char storage[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  auto* handle = reinterpret_cast<struct file_handle*>(storage);
  handle->handle_bytes = MAX_HANDLE_SZ;
  int mountId = -1;
  if (::name_to_handle_at(fd, "", handle, &mountId, AT_EMPTY_PATH) != 0) return {};
  std::string key(reinterpret_cast<const char*>(&handle->handle_type), sizeof handle->handle_type);
  key.append(reinterpret_cast<const char*>(handle->f_handle), handle->handle_bytes);
  return key;
}

}  // namespace

Result<Anchor> Anchor::of(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return lastError("fstat");
  Anchor anchor;
  anchor.path = pathOfFd(fd);
  if (anchor.path.empty() || st.st_nlink == 0) return Error{ENOENT, "it has no path any more"};
  anchor.handle = handleOf(fd);
  anchor.device = st.st_dev;
  anchor.inode = st.st_ino;
  return anchor;
}

UniqueFd Anchor::open() const {
  open_how how{};
  how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd = -1;
  for (int attempt = 0; attempt < kResolveAttempts; ++attempt) {
    fd = ::syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof how);
    if (fd >= 0 || errno != EAGAIN) break;
  }
  UniqueFd object(static_cast<int>(fd));
  // The inode number alone could be a new object's, once this one is gone;
  // the handle carries the generation too.
  if (object && (!isObject(object.get(), device, inode) || handleOf(object.get()) != handle)) {
    errno = ESTALE;
    return UniqueFd();
  }
  return object;
}

UniqueFd openBeneath(int anchorFd, const std::string& relative, bool crossMounts) {
  if (relative.empty()) return duplicate(anchorFd);
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | (crossMounts ? 0 : RESOLVE_NO_XDEV);
  long fd = -1;
  for (int attempt = 0; attempt < kResolveAttempts; ++attempt) {
    fd = ::syscall(SYS_openat2, anchorFd, relative.c_str(), &how, sizeof how);
    if (fd >= 0 || errno != EAGAIN) break;
  }
  return UniqueFd(static_cast<int>(fd));
}

UniqueFd openSubdirectory(int dirFd, std::string_view name, bool crossMounts) {
  // Names come from the kernel (events, readdir); one component, never "..".
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos) {
    errno = EINVAL;
    return UniqueFd();
  }
  return openBeneath(dirFd, std::string(name), crossMounts);
}

UniqueFd duplicate(int fd) { return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

Result<std::vector<std::pair<std::string, bool>>> listDirectory(int dirFd, const std::string& path) {
  // "." of the descriptor itself: no lookup by name, no link to follow.
  int fd = ::openat(dirFd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return lastError("open '" + path + "'");
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    Error e = lastError("fdopendir '" + path + "'");
    ::close(fd);
    return e;
  }
  std::vector<std::pair<std::string, bool>> entries;
  while (const dirent* entry = ::readdir(dir)) {
    if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0) continue;
    entries.emplace_back(entry->d_name, isDirectoryEntry(::dirfd(dir), entry));
  }
  ::closedir(dir);
  return entries;
}

std::string magicLinkOf(int fd) {
  char link[32];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  return link;
}

bool isObject(int fd, dev_t device, ino_t inode) {
  struct stat st;
  return fd >= 0 && ::fstat(fd, &st) == 0 && st.st_dev == device && st.st_ino == inode;
}

}  // namespace rnotify
