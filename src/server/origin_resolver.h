// OriginResolver: which client connection caused a change, from the pid that
// the fanotify backend reports. A file server serves each client through a
// process of its own: sshfs through an sftp-server whose environment holds
// SSH_CONNECTION="<client ip> <client port> <server ip> <server port>", Samba
// through one smbd per client. The client declares how the server sees it
// (proto::Declare, e.g. "ssh 192.0.2.7 50412"); an event whose pid resolves
// to a declared key is that client's own.
//
// Resolving a pid reads /proc (its environment, its ancestors'), so results
// are cached per pid and revalidated by the process start time at most once a
// second: the cost is paid once per serving process, not per event.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace rnotify {

class OriginResolver {
 public:
  using Clock = std::chrono::steady_clock;

  explicit OriginResolver(std::string procRoot = "/proc") : proc_(std::move(procRoot)) {}

  // "ssh <ip> <port>" (the client end of an ssh connection), "smb <ip> <port>"
  // (the client end of an smbd's TCP connection), or "" when the pid serves
  // no known connection or has already exited.
  const std::string& keyOf(int pid, Clock::time_point now = Clock::now());

  // Whether this process may read the environment of other users' processes
  // (attribution is only offered when it can).
  static bool privileged();

  // "ssh 10.0.0.2 41234" from an SSH_CONNECTION value; "" if malformed.
  static std::string sshKey(std::string_view sshConnection);

  size_t cached() const { return cache_.size(); }
  uint64_t lookups() const { return lookups_; }  // /proc resolutions done (cache misses)

 private:
  struct Entry {
    std::string key;
    uint64_t startTime = 0;
    Clock::time_point checked;
  };

  uint64_t startTimeOf(int pid) const;
  std::string resolve(int pid) const;
  std::string tcpPeerKey(int pid) const;

  std::string proc_;
  std::unordered_map<int, Entry> cache_;
  uint64_t lookups_ = 0;
};

}  // namespace rnotify
