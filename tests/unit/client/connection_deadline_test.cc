// Every network operation of the client has a deadline: a server that never
// answers a SYN (here: a loopback listener whose accept queue is full, so the
// kernel drops further SYNs, as a black-holed address would) is given up at
// the deadline asked for, not after the kernel's SYN retries (~2 minutes).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "transport/connection.h"

namespace rnotify {
namespace {

using Clock = std::chrono::steady_clock;

// A listener on 127.0.0.1 that accepts nothing, its queue filled: its port.
class BlackHole {
 public:
  BlackHole() {
    listener_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listener_.get(), 0), 0);
    socklen_t size = sizeof addr;
    ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &size);
    port_ = ntohs(addr.sin_port);
    // Fill the accept queue (backlog 0 admits one; a few more to be sure),
    // each with its own deadline so that filling never hangs.
    for (int i = 0; i < 4; ++i) {
      UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      fillers_.push_back(std::move(fd));
    }
    ::poll(nullptr, 0, 50);  // let the handshakes that can complete complete
  }
  int port() const { return port_; }

 private:
  UniqueFd listener_;
  std::vector<UniqueFd> fillers_;
  int port_ = 0;
};

// Runs fn in a child process; its exit code, or -1 if it did not end
// within limitMs (then it is killed).
int runBounded(int limitMs, const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(fn());
  const auto deadline = Clock::now() + std::chrono::milliseconds(limitMs);
  int status = 0;
  while (Clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
    ::poll(nullptr, 0, 20);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

TEST(ConnectionDeadline, ATcpServerThatNeverAnswersIsGivenUpAtTheDeadline) {
  BlackHole hole;
  const std::string endpoint = "tcp:127.0.0.1:" + std::to_string(hole.port());
  // 1 s asked; the child is given 15 s (the kernel alone would wait ~127 s).
  const int code = runBounded(15000, [&] {
    auto c = Connection::overSocket(endpoint, 1000);
    if (c) return 1;  // connected to a listener that accepts nothing?
    return c.error().code == ETIMEDOUT ? 0 : 2;
  });
  EXPECT_EQ(code, 0) << (code == -1 ? "overSocket was still blocked after 15 s with a 1 s deadline"
                                    : "overSocket did not fail with ETIMEDOUT");
}

TEST(ConnectionDeadline, TlsToAServerThatNeverAnswersIsGivenUpAtTheDeadline) {
  BlackHole hole;
  const std::string endpoint = "tls:127.0.0.1:" + std::to_string(hole.port());
  TlsSettings tls;
  tls.fingerprint = std::string(64, 'a');  // never reached
  const int code = runBounded(15000, [&] {
    auto c = Connection::overSocket(endpoint, tls, 1000);
    if (c) return 1;
    return c.error().code == ETIMEDOUT ? 0 : 2;
  });
  EXPECT_EQ(code, 0) << (code == -1 ? "overSocket was still blocked after 15 s with a 1 s deadline"
                                    : "overSocket did not fail with ETIMEDOUT");
}

}  // namespace
}  // namespace rnotify
