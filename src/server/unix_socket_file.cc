#include "server/unix_socket_file.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "common/unix_address.h"

namespace rnotify {
namespace {

Result<sockaddr_un> addressOf(const std::string& path) {
  auto addr = unixAddress(path);
  if (!addr) return Error{addr.error().code, "cannot listen on unix:" + path + ": " + addr.error().message};
  return addr;
}

// Whether a process accepts connections on the socket file at addr: a
// connection (or a full backlog, EAGAIN) says yes; ECONNREFUSED says the
// file is stale. Non-blocking, so that a busy listener cannot stall us.
Result<bool> answers(const sockaddr_un& addr) {
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe) return lastError("socket");
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return true;
  if (errno == EAGAIN || errno == EINPROGRESS) return true;
  if (errno == ECONNREFUSED || errno == ENOENT) return false;
  return Error::fromErrno(errno, std::string("cannot tell whether a process listens on unix:") + addr.sun_path);
}

// Serialises rnotifyd processes claiming a path in the same directory, so
// that one cannot see the other's socket between bind() and listen() (it
// would refuse connections there and look stale). Only rnotifyd takes this
// lock; if the directory cannot be locked within a second the claim goes on
// without it.
void lockDirectory(int dirFd) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (::flock(dirFd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK &&
         std::chrono::steady_clock::now() < deadline) {
    ::poll(nullptr, 0, 10);
  }
}

}  // namespace

Result<UnixSocketFile> UnixSocketFile::bindAndListen(int socketFd, const std::string& path, int backlog) {
  auto addr = addressOf(path);
  if (!addr) return addr.error();
  UnixSocketFile file;
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  file.name_ = slash == std::string::npos ? path : path.substr(slash + 1);
  // Read access is needed for the lock only: without it the claim goes on unlocked.
  file.dir_.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!file.dir_) file.dir_.reset(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!file.dir_) return Error::fromErrno(errno, "cannot listen on unix:" + path + ": cannot open " + dir);
  lockDirectory(file.dir_.get());  // released when dir_ closes, or below
  const auto* sa = reinterpret_cast<const sockaddr*>(&*addr);
  if (::bind(socketFd, sa, sizeof *addr) != 0) {
    if (errno != EADDRINUSE) return Error::fromErrno(errno, "cannot listen on unix:" + path);
    struct stat st;
    if (::fstatat(file.dir_.get(), file.name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISSOCK(st.st_mode)) {
      return Error{EEXIST, "cannot listen on '" + path + "': it exists and is not a socket"};
    }
    auto busy = answers(*addr);
    if (!busy) return busy.error();
    if (*busy) {
      return Error{EADDRINUSE, "another rnotifyd (or another program) is listening on " + path +
                                   "; stop it or choose another --listen path"};
    }
    // Stale: nobody answers. Remove it and bind again, once.
    if (::unlinkat(file.dir_.get(), file.name_.c_str(), 0) != 0 && errno != ENOENT) {
      return Error::fromErrno(errno, "cannot remove the stale socket file " + path);
    }
    if (::bind(socketFd, sa, sizeof *addr) != 0) return Error::fromErrno(errno, "cannot listen on unix:" + path);
  }
  struct stat st;
  if (::fstatat(file.dir_.get(), file.name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return Error::fromErrno(errno, "cannot listen on unix:" + path + ": the socket file vanished");
  }
  file.dev_ = st.st_dev;
  file.ino_ = st.st_ino;
  if (::listen(socketFd, backlog) != 0) {
    Error e = Error::fromErrno(errno, "cannot listen on unix:" + path);
    file.remove();
    return e;
  }
  ::flock(file.dir_.get(), LOCK_UN);
  return file;
}

void UnixSocketFile::remove() {
  if (!dir_) return;
  // Between this check and the unlink another process could put its own
  // socket in place of ours (it would have to remove ours first, which only
  // the directory's owners can do); that window is a few system calls long
  // and accepted: there is no unlink-if-inode call.
  struct stat st;
  if (::fstatat(dir_.get(), name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode) &&
      st.st_dev == dev_ && st.st_ino == ino_) {
    ::unlinkat(dir_.get(), name_.c_str(), 0);
  }
  dir_.reset();
}

}  // namespace rnotify
