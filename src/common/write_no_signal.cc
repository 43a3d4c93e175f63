#include "common/write_no_signal.h"

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

namespace rnotify {

// send(MSG_NOSIGNAL) on sockets; on a pipe, SIGPIPE is blocked for this thread around the write and a
// signal it raised is consumed.
ssize_t writeNoSignal(int fd, const void* data, size_t size) {
  ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
  if (n >= 0 || errno != ENOTSOCK) return n;
  sigset_t pipeOnly, old;
  sigemptyset(&pipeOnly);
  sigaddset(&pipeOnly, SIGPIPE);
  sigset_t pending;
  sigpending(&pending);
  const bool alreadyPending = sigismember(&pending, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipeOnly, &old);
  n = ::write(fd, data, size);
  const int saved = errno;
  if (n < 0 && saved == EPIPE && !alreadyPending) {
    const struct timespec zero = {0, 0};
    while (sigtimedwait(&pipeOnly, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = saved;
  return n;
}

}  // namespace rnotify
