#include "server/journal.h"

#include <cstdint>

namespace rnotify {

Journal::~Journal() {
  if (budget_) budget_->used -= bytes();
}

void Journal::lose(uint32_t watch, uint64_t seq) {
  WatchLog& log = watches_[watch];
  if (seq > log.lostUpTo) log.lostUpTo = seq;
  ++evicted_;
}

void Journal::append(uint32_t watch, uint64_t seq, std::string_view record) {
  if (maxRecords_ == 0 || record.size() > maxBytes_) {
    lose(watch, seq);
    return;
  }
  while (!index_.empty() &&
         (index_.size() >= maxRecords_ || bytes() + record.size() > maxBytes_ || !fitsBudget(record.size()))) {
    dropFront(true);
  }
  // Every journal together is full and this one is empty: not kept (a gap
  // for this watch) rather than taken from another session.
  if (!fitsBudget(record.size())) {
    lose(watch, seq);
    return;
  }
  index_.push_back(Index{seq, base_ + bytes_.size(), watch, static_cast<uint32_t>(record.size())});
  bytes_.append(record);
  ++watches_[watch].records;
  if (budget_) budget_->used += record.size();
}

bool Journal::acknowledge(uint32_t watch, uint64_t seq) {
  auto it = watches_.find(watch);
  if (it == watches_.end()) return false;
  if (seq > it->second.acked) it->second.acked = seq;
  trimAcknowledged();
  return true;
}

void Journal::trimAcknowledged() {
  while (!index_.empty()) {
    auto it = watches_.find(index_.front().watch);
    if (it == watches_.end() || it->second.acked < index_.front().seq) return;
    dropFront(false);
  }
}

void Journal::dropFront(bool evicting) {
  const Index front = index_.front();
  auto it = watches_.find(front.watch);
  if (evicting) {
    if (front.seq > it->second.lostUpTo) it->second.lostUpTo = front.seq;
    ++evicted_;
  }
  if (--it->second.records == 0 && it->second.ended && it->second.lostUpTo == 0) watches_.erase(it);
  head_ = front.offset + front.length;
  index_.pop_front();
  if (budget_) budget_->used -= front.length;
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
  auto it = watches_.find(watch);
  return it == watches_.end() || seq >= it->second.lostUpTo;
}

void Journal::forget(uint32_t watch) {
  auto it = watches_.find(watch);
  if (it == watches_.end()) return;
  if (it->second.records == 0) {
    watches_.erase(it);
    return;
  }
  it->second = WatchLog{UINT64_MAX, 0, it->second.records, true};  // its records are nobody's any more
  trimAcknowledged();
}

void Journal::ended(uint32_t watch) {
  auto it = watches_.find(watch);
  if (it == watches_.end()) return;
  // One that lost records keeps saying so: a resume from before them is a gap.
  if (it->second.records == 0 && it->second.lostUpTo == 0) {
    watches_.erase(it);
  } else {
    it->second.ended = true;
  }
}

size_t Journal::memory() const {
  // std::deque allocates blocks of 512 bytes (libstdc++); count what is used.
  return bytes_.capacity() + index_.size() * sizeof(Index) +
         watches_.size() * (sizeof(uint32_t) + sizeof(WatchLog) + sizeof(void*) * 2);
}

}  // namespace rnotify
