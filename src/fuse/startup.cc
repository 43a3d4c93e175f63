#include "fuse/startup.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "fuse/exit_codes.h"

namespace rnotify::fuse {

void Startup::detach() {
  if (foreground_) return;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    std::perror("rnotify-fuse: pipe");
    std::exit(kExitMountFailed);
  }
  pid_t child = ::fork();
  if (child < 0) {
    std::perror("rnotify-fuse: fork");
    std::exit(kExitMountFailed);
  }
  if (child == 0) {
    ::close(fds[0]);
    toParent_ = UniqueFd(fds[1]);
    ::setsid();
    return;
  }
  ::close(fds[1]);
  unsigned char code = 0;
  ssize_t n;
  do {
    n = ::read(fds[0], &code, 1);
  } while (n < 0 && errno == EINTR);
  // No byte: the child died before it could say (its message is on stderr).
  ::_exit(n == 1 ? code : kExitMountFailed);
}

void Startup::done(int code) {
  if (!toParent_) return;
  unsigned char byte = static_cast<unsigned char>(code);
  if (::write(toParent_.get(), &byte, 1) != 1) {
    // The parent is gone (killed); nothing to tell.
  }
  toParent_.reset();
  if (code != 0) return;
  if (::chdir("/") != 0) {
    // Staying in the old directory only keeps it busy.
  }
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, STDIN_FILENO);
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO) ::close(null);
  }
}

}  // namespace rnotify::fuse
