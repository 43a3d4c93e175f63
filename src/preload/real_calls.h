// RealCalls: the C library's own versions of every function the shim
// interposes, found once with dlsym(RTLD_NEXT). The shim's code calls these,
// never the interposed names, wherever it must reach the kernel directly
// (its own inotify descriptor, the descriptors it closes).
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>

namespace rnotify::preload {

struct RealCalls {
  int (*inotifyInit1)(int flags) = nullptr;
  int (*inotifyAddWatch)(int fd, const char* path, uint32_t mask) = nullptr;
  int (*inotifyRmWatch)(int fd, int wd) = nullptr;
  ssize_t (*read)(int fd, void* buf, size_t count) = nullptr;
  ssize_t (*readv)(int fd, const struct iovec* iov, int count) = nullptr;
  ssize_t (*readChk)(int fd, void* buf, size_t count, size_t buflen) = nullptr;
  int (*close)(int fd) = nullptr;
  int (*dup)(int fd) = nullptr;
  int (*dup2)(int from, int to) = nullptr;
  int (*dup3)(int from, int to, int flags) = nullptr;
  int (*fcntl)(int fd, int cmd, ...) = nullptr;
  int (*fcntl64)(int fd, int cmd, ...) = nullptr;
  int (*ioctl)(int fd, unsigned long request, ...) = nullptr;
  int (*closeRange)(unsigned first, unsigned last, int flags) = nullptr;  // nullptr before glibc 2.34
};

// Resolved on first use (thread-safe); the pointers never change afterwards.
const RealCalls& real();

}  // namespace rnotify::preload
