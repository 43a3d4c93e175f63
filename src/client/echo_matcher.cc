#include "client/echo_matcher.h"

#include <sys/inotify.h>

namespace rnotify {
namespace {

// Bits that make two reports "the same event". The cookie is left out: the
// local kernel and the server's kernel number renames independently.
constexpr uint32_t kKindBits = IN_ALL_EVENTS | IN_ISDIR;
// Never paired: they describe a watch or a queue, not a change.
constexpr uint32_t kUnpaired = IN_IGNORED | IN_Q_OVERFLOW | IN_UNMOUNT;

}  // namespace

std::string EchoMatcher::keyOf(int wd, uint32_t mask, std::string_view dir, std::string_view name) {
  std::string key;
  key.reserve(16 + dir.size() + name.size());
  key.append(std::to_string(wd)).push_back(':');
  key.append(std::to_string(mask & kKindBits)).push_back(':');
  key.append(dir).push_back('/');
  key.append(name);
  return key;
}

void EchoMatcher::expire(Clock::time_point now) {
  while (!order_.empty() && (now - order_.front().at > options_.window || order_.size() > options_.maxPending)) {
    const Entry& old = order_.front();
    auto [lo, hi] = byKey_.equal_range(old.key);
    for (auto it = lo; it != hi; ++it) {
      if (it->second == old.serial) {
        byKey_.erase(it);
        break;
      }
    }
    order_.pop_front();
    ++firstSerial_;
  }
}

bool EchoMatcher::admit(Side side, int wd, uint32_t mask, std::string_view dir, std::string_view name,
                        Clock::time_point now) {
  if (mask & kUnpaired) return true;
  expire(now);
  std::string key = keyOf(wd, mask, dir, name);
  auto [lo, hi] = byKey_.equal_range(key);
  // The oldest unmatched report of the other side absorbs this one.
  auto best = byKey_.end();
  for (auto it = lo; it != hi; ++it) {
    const Entry& e = order_[it->second - firstSerial_];
    if (e.side != side && (best == byKey_.end() || it->second < best->second)) best = it;
  }
  if (best != byKey_.end()) {
    byKey_.erase(best);  // matched: it cannot absorb another
    ++absorbed_;
    return false;
  }
  uint64_t serial = nextSerial_++;
  order_.push_back(Entry{side, now, key, serial});
  byKey_.emplace(std::move(key), serial);
  expire(now);  // keeps the bound
  return true;
}

void EchoMatcher::forget(int wd) {
  std::string prefix = std::to_string(wd) + ":";
  for (auto it = byKey_.begin(); it != byKey_.end();) {
    it = it->first.compare(0, prefix.size(), prefix) == 0 ? byKey_.erase(it) : std::next(it);
  }
}

}  // namespace rnotify
