#include "watch/file_handle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>

#include "common/unique_fd.h"

namespace rnotify {

Result<std::string> handleKeyOf(int fd, const std::array<char, kFsidSize>& fsid, int* mountId) {
  alignas(struct file_handle) unsigned char storage[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  auto* handle = reinterpret_cast<struct file_handle*>(storage);
  handle->handle_bytes = MAX_HANDLE_SZ;
  if (::name_to_handle_at(fd, "", handle, mountId, AT_EMPTY_PATH) != 0) return lastError("name_to_handle_at");
  std::string key(fsid.data(), fsid.size());
  key.append(reinterpret_cast<const char*>(storage), kFileHandleHeaderSize + handle->handle_bytes);
  return key;
}

int mountIdOf(int fd) {
  alignas(struct file_handle) unsigned char storage[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  auto* handle = reinterpret_cast<struct file_handle*>(storage);
  handle->handle_bytes = MAX_HANDLE_SZ;
  int mountId = -1;
  if (::name_to_handle_at(fd, "", handle, &mountId, AT_EMPTY_PATH) != 0) return -1;
  return mountId;
}

UniqueFd openHandle(int mountFd, std::string_view key) {
  if (key.size() < kFsidSize + kFileHandleHeaderSize ||
      key.size() - kFsidSize - kFileHandleHeaderSize > MAX_HANDLE_SZ) {
    errno = EINVAL;
    return UniqueFd();
  }
  alignas(struct file_handle) unsigned char storage[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  std::memcpy(storage, key.data() + kFsidSize, key.size() - kFsidSize);
  return UniqueFd(::open_by_handle_at(mountFd, reinterpret_cast<struct file_handle*>(storage), O_PATH | O_CLOEXEC));
}

UniqueFd openMountRootPath(int dirFd, int mountId) {
  UniqueFd current(::openat(dirFd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  while (current) {
    UniqueFd up(::openat(current.get(), "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
    struct stat here, there;
    if (!up || ::fstat(current.get(), &here) != 0 || ::fstat(up.get(), &there) != 0) break;
    if (here.st_dev == there.st_dev && here.st_ino == there.st_ino) break;  // "/" (or a chroot's root)
    if (here.st_dev != there.st_dev || mountIdOf(up.get()) != mountId) break;
    current = std::move(up);
  }
  return current;
}

std::string mountRootOf(int dirFd) {
  UniqueFd root = openMountRootPath(dirFd, mountIdOf(dirFd));
  return root ? pathOfFd(root.get()) : std::string();
}

int pathOfHandle(int mountFd, std::string_view key, std::string* path) {
  UniqueFd fd = openHandle(mountFd, key);
  if (!fd) return errno;
  struct stat st;
  if (::fstat(fd.get(), &st) == 0 && st.st_nlink == 0) return ESTALE;
  *path = pathOfFd(fd.get());
  return path->empty() ? ESTALE : 0;
}

std::string pathOfFd(int fd) {
  char link[40];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  char buffer[PATH_MAX];
  ssize_t n = ::readlink(link, buffer, sizeof buffer);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof buffer || buffer[0] != '/') return {};
  return std::string(buffer, static_cast<size_t>(n));
}

}  // namespace rnotify
