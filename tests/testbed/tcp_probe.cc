// freePort and tcpAccepts; see tcp_probe.h.
#include "tcp_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>

#include <cstring>
#include <stdexcept>
#include <thread>

#include "common/unique_fd.h"
#include "netns.h"

namespace rnotify::testbed {

int freePort() {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (!s || ::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error(std::string("freePort: ") + std::strerror(errno));
  }
  return ntohs(addr.sin_port);
}

bool tcpAccepts(const std::string& address, int port, const Netns* netns) {
  bool accepted = false;
  auto probe = [&] {
    if (netns != nullptr) {
      UniqueFd ns(::open(netns->path().c_str(), O_RDONLY | O_CLOEXEC));
      if (!ns || ::setns(ns.get(), CLONE_NEWNET) != 0) return;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) return;
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    accepted = s && ::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  };
  if (netns == nullptr) {
    probe();
  } else {
    std::thread(probe).join();
  }
  return accepted;
}

}  // namespace rnotify::testbed
