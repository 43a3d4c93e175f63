#include "server/auth_throttle.h"

#include <algorithm>

namespace rnotify {

std::chrono::seconds AuthThrottle::blockedFor(const std::string& peer, Clock::time_point now) const {
  auto it = peers_.find(peer);
  if (it == peers_.end() || it->second.blockedUntil <= now) return std::chrono::seconds(0);
  return std::chrono::ceil<std::chrono::seconds>(it->second.blockedUntil - now);
}

void AuthThrottle::failed(const std::string& peer, Clock::time_point now) {
  if (maxFailures_ == 0) return;  // throttling off
  auto it = peers_.find(peer);
  if (it == peers_.end()) {
    makeRoom(now);
    it = peers_.emplace(peer, Record{}).first;
  }
  Record& r = it->second;
  // A quiet window after the last failure and the end of the last block
  // forgives: the count, and the block's growth, start again.
  if (quiet(r, now)) r = Record{};
  if (r.failures == 0) r.windowStart = now;
  ++r.failures;
  r.lastFailure = now;
  if (r.failures >= maxFailures_) {
    r.block = r.block.count() == 0 ? std::chrono::seconds(1) : std::min(r.block * 2, kMaxBlock);
    r.blockedUntil = now + r.block;
  }
}

bool AuthThrottle::quiet(const Record& r, Clock::time_point now) const {
  return now - std::max(r.lastFailure, r.blockedUntil) > window_;
}

void AuthThrottle::makeRoom(Clock::time_point now) {
  if (peers_.size() < maxPeers_) return;
  std::erase_if(peers_, [&](const auto& p) { return quiet(p.second, now); });
  if (peers_.size() < maxPeers_) return;
  auto oldest = std::min_element(peers_.begin(), peers_.end(), [](const auto& a, const auto& b) {
    return a.second.lastFailure < b.second.lastFailure;
  });
  peers_.erase(oldest);
}

}  // namespace rnotify
