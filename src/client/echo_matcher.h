// EchoMatcher: one change, one event, for watches that have both a local
// source (this host's kernel, on the mount) and a remote one (the server).
// A change this host makes through the mount is reported by both. Whichever
// report arrives first is delivered; an identical report from the other side
// (same watch, same kind of event, same directory and name) within the window
// is its echo and is absorbed. Each event absorbs at most one, so the number
// of events delivered equals the number the server saw: a change by another
// host is never hidden, only paired with an equal local one. Nothing is ever
// held back. (Origin attribution on the server, issue 4, is more precise;
// this is the strategy that needs no help from the server.)
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

namespace rnotify {

class EchoMatcher {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Side { kLocal, kRemote };

  struct Options {
    std::chrono::milliseconds window{2000};  // how long an event waits for its echo
    size_t maxPending = 65536;               // bound on remembered events; the oldest go first
  };

  EchoMatcher() : EchoMatcher(Options{}) {}
  explicit EchoMatcher(Options options) : options_(options) {}

  // True if the event is to be delivered; false if it is the echo of one
  // already delivered from the other side. mask must not include IN_REMOTE.
  bool admit(Side side, int wd, uint32_t mask, std::string_view dir, std::string_view name, Clock::time_point now);
  // Forgets everything remembered for a watch (it ended).
  void forget(int wd);

  size_t pending() const { return byKey_.size(); }
  uint64_t absorbed() const { return absorbed_; }

 private:
  struct Entry {
    Side side;
    Clock::time_point at;
    std::string key;
    uint64_t serial;
  };

  void expire(Clock::time_point now);
  static std::string keyOf(int wd, uint32_t mask, std::string_view dir, std::string_view name);

  Options options_;
  std::deque<Entry> order_;                               // oldest first
  std::unordered_multimap<std::string, uint64_t> byKey_;  // key -> serial of an unmatched entry
  uint64_t nextSerial_ = 0;
  uint64_t firstSerial_ = 0;  // serial of order_.front()
  uint64_t absorbed_ = 0;
};

}  // namespace rnotify
