// Journal: the events a session has sent, kept (as encoded event records,
// docs/PROTOCOL.md 4.6) until the client acknowledges them, so that after a
// lost connection the client can resume where it stopped: the server replays
// what the client had not received instead of making it re-read its trees.
//
// Bounded in records and bytes: past either bound the oldest records go,
// and each watch remembers up to which sequence number it lost records; a
// resume from before that number is a gap (the client re-reads that watch).
// Memory: the record's bytes plus 24 bytes of index (docs/BENCHMARKS.md).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

namespace rnotify {

class Journal {
 public:
  Journal(size_t maxRecords, size_t maxBytes) : maxRecords_(maxRecords), maxBytes_(maxBytes) {}

  // One encoded record (u16 length included) of watch `watch` with sequence `seq`.
  void append(uint32_t watch, uint64_t seq, std::string_view record);
  // The client has every event of `watch` up to `seq`.
  void acknowledge(uint32_t watch, uint64_t seq);
  // Whether the events of `watch` after `seq` are all still here.
  bool canReplay(uint32_t watch, uint64_t seq) const;
  // Calls visit(watch, seq, record) for every record kept, oldest first.
  template <typename F>
  void forEach(F&& visit) const {
    for (const Index& i : index_) visit(i.watch, i.seq, std::string_view(bytes_).substr(i.offset - base_, i.length));
  }
  void forget(uint32_t watch);

  size_t records() const { return index_.size(); }
  size_t bytes() const { return bytes_.size() - (head_ - base_); }
  uint64_t evicted() const { return evicted_; }
  // Bytes of memory in use (capacity of the buffers and index).
  size_t memory() const;

 private:
  struct Index {
    uint64_t seq;
    uint64_t offset;  // into the stream of all bytes ever appended
    uint32_t watch;
    uint32_t length;
  };
  void dropFront(bool evicting);
  void trimAcknowledged();

  size_t maxRecords_;
  size_t maxBytes_;
  std::deque<Index> index_;
  std::string bytes_;  // bytes_[0] is stream offset base_; records before head_ are gone
  uint64_t base_ = 0;
  uint64_t head_ = 0;
  uint64_t evicted_ = 0;
  // Per watch: records up to this seq were evicted before the client acknowledged them.
  std::unordered_map<uint32_t, uint64_t> lostUpTo_;
  std::unordered_map<uint32_t, uint64_t> acked_;
};

}  // namespace rnotify
