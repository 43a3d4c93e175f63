// The TCP connections a process holds, from /proc: its descriptors that are
// sockets, looked up by inode in /proc/PID/net/tcp and tcp6 (that process's
// network namespace, not the reader's). Both ends of rnotify's attribution use
// it: the client to tell the server which connection is its sshfs mount, the
// server to see which client an smbd serves.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace rnotify {

struct TcpConnection {
  std::string localAddress;  // canonical text: "10.0.0.2", "::1"
  uint16_t localPort = 0;
  std::string remoteAddress;
  uint16_t remotePort = 0;
};

// Established TCP connections of the sockets open in pid.
Result<std::vector<TcpConnection>> tcpConnectionsOf(int pid, const std::string& procRoot = "/proc");

// Parses one table of /proc/PID/net/tcp or tcp6 and returns the established
// connections whose socket inode is in `inodes` (all when empty).
std::vector<std::pair<uint64_t, TcpConnection>> parseProcNetTcp(std::string_view table, bool ipv6);

// "10.0.0.2" for "::ffff:10.0.0.2", the canonical form of anything else; ""
// when the text is not an address.
std::string canonicalAddress(std::string_view address);

}  // namespace rnotify
