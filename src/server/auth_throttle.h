// AuthThrottle: failed token authentications (proto::Auth) per peer address.
// A peer that failed maxFailures times within the window is refused at once,
// without its token being checked, for a time that doubles with each further
// failure (1 s, 2 s, 4 s, ... up to kMaxBlock): guessing a token then takes
// exponentially long, while other peers are not affected. The table is
// bounded (maxPeers): entries whose window has passed go first, then the
// one that failed longest ago.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace rnotify {

class AuthThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kMaxBlock{600};

  AuthThrottle(uint32_t maxFailures, std::chrono::seconds window, size_t maxPeers)
      : maxFailures_(maxFailures), window_(window), maxPeers_(maxPeers) {}

  // How long `peer` must still wait before its next Auth is checked (0: now).
  std::chrono::seconds blockedFor(const std::string& peer, Clock::time_point now) const;
  void failed(const std::string& peer, Clock::time_point now);
  size_t peers() const { return peers_.size(); }

 private:
  struct Record {
    uint32_t failures = 0;  // within the window
    Clock::time_point windowStart{};
    Clock::time_point lastFailure{};
    Clock::time_point blockedUntil{};
    std::chrono::seconds block{0};  // the next block's length
  };
  bool quiet(const Record& r, Clock::time_point now) const;
  void makeRoom(Clock::time_point now);

  uint32_t maxFailures_;
  std::chrono::seconds window_;
  size_t maxPeers_;
  std::unordered_map<std::string, Record> peers_;
};

}  // namespace rnotify
