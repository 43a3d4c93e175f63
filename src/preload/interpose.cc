// The C boundary of the shim: the libc functions it interposes when loaded
// with LD_PRELOAD. Each one first asks whether the descriptor is one of the
// shim's (a bitmap load, no lock); if not, it calls the C library's own
// function at once. Nothing here throws: every C++ failure becomes an errno,
// and when the shim cannot help it steps aside and lets the kernel serve.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "preload/client_feed.h"
#include "preload/fd_registry.h"
#include "preload/notice.h"
#include "preload/real_calls.h"
#include "preload/shim_instance.h"

#define RNOTIFY_SHIM_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using rnotify::preload::real;
using rnotify::preload::ShimInstance;
namespace registry = rnotify::preload::registry;

std::shared_ptr<ShimInstance> shimFor(int fd) {
  if (!registry::maybe(fd)) return nullptr;
  return registry::find(fd);
}

template <typename F>
auto guarded(F&& body, decltype(body()) failure) -> decltype(body()) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    errno = ENOMEM;
  } catch (...) {
    errno = EIO;
  }
  return failure;
}

// A new number for an existing shim descriptor (dup and friends).
int alias(int from, int to) {
  if (to < 0) return to;
  int code = errno;
  if (auto shim = shimFor(from)) {
    try {
      registry::add(to, std::move(shim));
    } catch (...) {
    }
  }
  errno = code;
  return to;
}

// `fd` is about to be replaced by dup2/dup3: it stops being the shim's.
void forget(int fd) {
  if (registry::maybe(fd)) registry::remove(fd);
}

}  // namespace

namespace {

// Whether a descriptor gets plain inotify masks, without IN_REMOTE. Plain by
// default: real consumers treat unknown bits as meaningful. GLib (libgio)
// maps a record with `switch (mask & ~IN_ISDIR)` and drops what matches no
// case; libuv (Node) reports every record with a bit other than MODIFY or
// ATTRIB as a rename; inotify-rs panics on unknown bits. With
// RNOTIFY_PRELOAD_MASKS=flagged, remote events carry IN_REMOTE (and
// IN_SYNTHESIZED, IN_POLLED), except on descriptors that GLib or libuv
// create, which would misread them.
bool comparesWholeMasks(void* caller) {
  Dl_info info;
  if (caller == nullptr || ::dladdr(caller, &info) == 0) return false;
  if (info.dli_fname != nullptr && std::strstr(info.dli_fname, "libgio-2.0") != nullptr) return true;
  // libuv, shared or linked into the program (node exports it for addons).
  void* uv = ::dlsym(RTLD_DEFAULT, "uv_fs_event_start");
  Dl_info uvInfo;
  return uv != nullptr && ::dladdr(uv, &uvInfo) != 0 && uvInfo.dli_fbase == info.dli_fbase;
}

bool wantsPlainMasks(void* caller) {
  const char* env = std::getenv("RNOTIFY_PRELOAD_MASKS");
  if (env == nullptr || std::strcmp(env, "flagged") != 0) return true;
  return comparesWholeMasks(caller);
}

int initShim(int flags, void* caller) {
  if (rnotify::preload::insideClientCore()) return real().inotifyInit1(flags);
  if (flags & ~(IN_NONBLOCK | IN_CLOEXEC)) {
    errno = EINVAL;
    return -1;
  }
  return guarded(
      [&] {
        rnotify::preload::setUpLogging();
        registry::installForkHandlers();
        int fd = -1;
        std::shared_ptr<ShimInstance> shim = ShimInstance::create(flags, wantsPlainMasks(caller), &fd);
        if (!shim) return real().inotifyInit1(flags);  // the plain kernel descriptor, or its error
        registry::add(fd, std::move(shim));
        return fd;
      },
      -1);
}

}  // namespace

// The libc functions the shim stands in for; their parameters keep this
// file's names, not glibc's reserved ones.
// NOLINTBEGIN(readability-inconsistent-declaration-parameter-name)
RNOTIFY_SHIM_EXPORT int inotify_init1(int flags) { return initShim(flags, __builtin_return_address(0)); }

RNOTIFY_SHIM_EXPORT int inotify_init(void) { return initShim(0, __builtin_return_address(0)); }

RNOTIFY_SHIM_EXPORT int inotify_add_watch(int fd, const char* path, uint32_t mask) {
  auto shim = shimFor(fd);
  if (!shim) return real().inotifyAddWatch(fd, path, mask);
  return guarded([&] { return shim->addWatch(path, mask); }, -1);
}

RNOTIFY_SHIM_EXPORT int inotify_rm_watch(int fd, int wd) {
  auto shim = shimFor(fd);
  if (!shim) return real().inotifyRmWatch(fd, wd);
  return guarded([&] { return shim->rmWatch(wd); }, -1);
}

RNOTIFY_SHIM_EXPORT ssize_t read(int fd, void* buf, size_t count) {
  auto shim = shimFor(fd);
  if (!shim) return real().read(fd, buf, count);
  return guarded([&] { return shim->read(fd, static_cast<char*>(buf), count); }, ssize_t{-1});
}

// _FORTIFY_SOURCE turns read() into this when the buffer's size is known.
// NOLINTNEXTLINE(bugprone-reserved-identifier): glibc's name, interposed
RNOTIFY_SHIM_EXPORT ssize_t __read_chk(int fd, void* buf, size_t count, size_t buflen) {
  auto shim = shimFor(fd);
  if (!shim || count > buflen) return real().readChk(fd, buf, count, buflen);  // the latter aborts there
  return guarded([&] { return shim->read(fd, static_cast<char*>(buf), count); }, ssize_t{-1});
}

// inotify has no read_iter: the kernel reads each iovec as a read of its
// own and stops at the first that is not filled. The same here.
RNOTIFY_SHIM_EXPORT ssize_t readv(int fd, const struct iovec* iov, int iovcnt) {
  auto shim = shimFor(fd);
  if (!shim) return real().readv(fd, iov, iovcnt);
  return guarded(
      [&] {
        ssize_t total = 0;
        for (int i = 0; i < iovcnt; ++i) {
          ssize_t n = shim->read(fd, static_cast<char*>(iov[i].iov_base), iov[i].iov_len);
          if (n < 0) return total > 0 ? total : n;
          total += n;
          if (static_cast<size_t>(n) != iov[i].iov_len) break;
        }
        return total;
      },
      ssize_t{-1});
}

RNOTIFY_SHIM_EXPORT int close(int fd) {
  if (!registry::maybe(fd)) return real().close(fd);
  // Forget the number before the kernel can hand it out again.
  std::shared_ptr<ShimInstance> shim = registry::remove(fd);
  int result = real().close(fd);
  int code = errno;
  shim.reset();  // the last number of it: its watches, thread and connections end here
  errno = code;
  return result;
}

RNOTIFY_SHIM_EXPORT int dup(int fd) { return alias(fd, real().dup(fd)); }

RNOTIFY_SHIM_EXPORT int dup2(int from, int to) {
  if (from != to && registry::maybe(to) && ::fcntl(from, F_GETFD) >= 0) forget(to);
  return alias(from, real().dup2(from, to));
}

RNOTIFY_SHIM_EXPORT int dup3(int from, int to, int flags) {
  if (from != to && registry::maybe(to) && ::fcntl(from, F_GETFD) >= 0) forget(to);
  return alias(from, real().dup3(from, to, flags));
}

namespace {

int fcntlWith(int (*realFcntl)(int, int, ...), int fd, int cmd, void* arg) {
  int result = realFcntl(fd, cmd, arg);
  if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && result >= 0) return alias(fd, result);
  return result;
}

}  // namespace

// The argument is passed on as a pointer-sized value: every fcntl command
// takes an int, a pointer or nothing, and all travel in one register.
RNOTIFY_SHIM_EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return fcntlWith(real().fcntl, fd, cmd, arg);
}

RNOTIFY_SHIM_EXPORT int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return fcntlWith(real().fcntl64, fd, cmd, arg);
}

RNOTIFY_SHIM_EXPORT int ioctl(int fd, unsigned long request, ...) {
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (request == FIONREAD) {
    if (auto shim = shimFor(fd)) return guarded([&] { return shim->bytesReady(static_cast<int*>(arg)); }, -1);
  }
  return real().ioctl(fd, request, arg);
}

RNOTIFY_SHIM_EXPORT int close_range(unsigned first, unsigned last, int flags) {
  if (real().closeRange == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  int result = real().closeRange(first, last, flags);
  if (result == 0 && !(flags & CLOSE_RANGE_CLOEXEC)) {
    int code = errno;
    try {
      registry::removeRange(first, last);  // the instances end as the vector goes
    } catch (...) {
    }
    errno = code;
  }
  return result;
}
// NOLINTEND(readability-inconsistent-declaration-parameter-name)
