#include "server/accept_backoff.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "proto/codec.h"

namespace rnotify {
namespace {

UniqueFd openSpare() { return UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }

bool outOfDescriptors(const std::error_code& ec) { return ec.value() == EMFILE || ec.value() == ENFILE; }

// Errors of one pending connection, not of the listener: Linux reports a
// network error already pending on the new connection from accept() itself.
bool perConnection(const std::error_code& ec) {
  switch (ec.value()) {
    case ECONNABORTED:
    case EPROTO:
    case EPERM:  // a firewall rule
    case EINTR:
    case EAGAIN:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
      return true;
    default:
      return false;
  }
}

// Descriptors open in this process, counted while one is free (the spare's).
long openDescriptors() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  long n = -1;  // the directory's own descriptor
  while (::readdir(dir) != nullptr) ++n;
  ::closedir(dir);
  return n - 2;  // "." and ".."
}

std::string descriptorLimit() {
  struct rlimit limit;
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return "unlimited";
  return std::to_string(limit.rlim_cur);
}

// A connection accepted only to be refused: it learns why (a Fatal, as the
// server's own client limit sends), and whatever it sent is read first so
// that closing does not reset a TCP connection before the Fatal arrives.
void refuse(int fd) {
  static const std::string fatal = [] {
    std::string out;
    proto::encode(proto::Fatal{EUSERS,
                               "too many clients: the server has no descriptor left for another "
                               "connection; try again later"},
                  out);
    return out;
  }();
  char sink[4096];
  while (::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
  }
  [[maybe_unused]] ssize_t n = ::send(fd, fatal.data(), fatal.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
}

}  // namespace

AcceptBackoff::AcceptBackoff(asio::io_context& io, std::string what)
    : timer_(io), what_(std::move(what)), spare_(openSpare()) {}

void AcceptBackoff::failed(std::error_code ec, int listenFd, std::function<void()> acceptAgain) {
  if (perConnection(ec)) {
    log::debug("{}: accept failed for one connection: {}", what_, ec.message());
    acceptAgain();
    return;
  }
  if (!inEpisode_) startEpisode(ec);
  if (outOfDescriptors(ec)) refused_ += refusePending(listenFd);
  ++deferred_;
  timer_.expires_after(delay_);
  delay_ = std::min(delay_ * 2, kMaxDelay);
  timer_.async_wait([acceptAgain = std::move(acceptAgain)](std::error_code timerError) {
    if (!timerError) acceptAgain();
  });
}

void AcceptBackoff::startEpisode(std::error_code ec) {
  inEpisode_ = true;
  episodeStart_ = std::chrono::steady_clock::now();
  refused_ = deferred_ = 0;
  spare_.reset();  // so that counting has a descriptor to work with
  const long open = openDescriptors();
  log::warn("{}: cannot accept connections: {} ({} descriptors open, the limit is {}); {} until it can again", what_,
            ec.message(), open < 0 ? std::string("?") : std::to_string(open), descriptorLimit(),
            outOfDescriptors(ec) ? "new clients are refused" : "accepting is retried with a growing delay");
  spare_ = openSpare();
}

size_t AcceptBackoff::refusePending(int listenFd) {
  // Bounded, so that a flood of connections cannot hold the loop here.
  constexpr size_t kMaxPerRound = 64;
  size_t refused = 0;
  while (refused < kMaxPerRound) {
    // The listening socket is non-blocking under Asio; poll first all the same:
    // a blocking accept here would stop the whole daemon.
    struct pollfd pending = {listenFd, POLLIN, 0};
    if (::poll(&pending, 1, 0) != 1) break;
    spare_.reset();
    UniqueFd connection(::accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!connection) break;  // nothing pending (EAGAIN), or still no descriptor: the delay applies
    refuse(connection.get());
    ++refused;
    connection.reset();
    spare_ = openSpare();
  }
  if (!spare_) spare_ = openSpare();  // may fail while out of descriptors: tried again next round
  return refused;
}

void AcceptBackoff::succeeded() {
  delay_ = kFirstDelay;
  if (!inEpisode_) return;
  inEpisode_ = false;
  if (!spare_) spare_ = openSpare();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - episodeStart_).count();
  log::warn(
      "{}: accepting connections again after {} ms; meanwhile {} were refused and accepting was put off {} "
      "times",
      what_, ms, refused_, deferred_);
}

void AcceptBackoff::cancel() { timer_.cancel(); }

}  // namespace rnotify
