#include "server/journal.h"

#include <cstdint>

namespace rnotify {

void Journal::append(uint32_t watch, uint64_t seq, std::string_view record) {
  if (maxRecords_ == 0 || record.size() > maxBytes_) {
    uint64_t& lost = lostUpTo_[watch];
    if (seq > lost) lost = seq;
    ++evicted_;
    return;
  }
  while (!index_.empty() && (index_.size() >= maxRecords_ || bytes() + record.size() > maxBytes_)) dropFront(true);
  index_.push_back(Index{seq, base_ + bytes_.size(), watch, static_cast<uint32_t>(record.size())});
  bytes_.append(record);
}

void Journal::acknowledge(uint32_t watch, uint64_t seq) {
  uint64_t& acked = acked_[watch];
  if (seq > acked) acked = seq;
  trimAcknowledged();
}

void Journal::trimAcknowledged() {
  while (!index_.empty()) {
    auto it = acked_.find(index_.front().watch);
    if (it == acked_.end() || it->second < index_.front().seq) return;
    dropFront(false);
  }
}

void Journal::dropFront(bool evicting) {
  const Index& front = index_.front();
  if (evicting) {
    uint64_t& lost = lostUpTo_[front.watch];
    if (front.seq > lost) lost = front.seq;
    ++evicted_;
  }
  head_ = front.offset + front.length;
  index_.pop_front();
  // Compact once the dead prefix is at least half of the buffer.
  size_t dead = head_ - base_;
  if (index_.empty()) {
    bytes_.clear();
    base_ = head_;
  } else if (dead >= 64 * 1024 && dead * 2 >= bytes_.size()) {
    bytes_.erase(0, dead);
    base_ = head_;
  }
}

bool Journal::canReplay(uint32_t watch, uint64_t seq) const {
  auto it = lostUpTo_.find(watch);
  return it == lostUpTo_.end() || seq >= it->second;
}

void Journal::forget(uint32_t watch) {
  lostUpTo_.erase(watch);
  acked_[watch] = UINT64_MAX;  // its records are nobody's any more
  trimAcknowledged();
}

size_t Journal::memory() const {
  // std::deque allocates blocks of 512 bytes (libstdc++); count what is used.
  return bytes_.capacity() + index_.size() * sizeof(Index) +
         (lostUpTo_.size() + acked_.size()) * (sizeof(uint64_t) * 2 + sizeof(void*) * 2);
}

}  // namespace rnotify
