// Journal: the events a session has sent, kept (as encoded event records,
// docs/PROTOCOL.md 4.6) until the client acknowledges them, so that after a
// lost connection the client can resume where it stopped: the server replays
// what the client had not received instead of making it re-read its trees.
//
// Bounded in records and bytes: past either bound the oldest records go,
// and each watch remembers up to which sequence number it lost records; a
// resume from before that number is a gap (the client re-reads that watch).
// All journals of a server also share one byte budget (JournalBudget): a
// journal that would exceed it drops its own oldest records, or keeps the new
// one no longer (a gap, as above), so no session can grow into another's share
// and no session loses records because of another.
// Per-watch state exists only for watches that have records here or that the
// session still holds (open() .. forget()/ended()): an acknowledgement of any
// other watch id is refused, so the client cannot make the journal grow.
// Memory: the record's bytes plus 24 bytes of index (docs/BENCHMARKS.md).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

namespace rnotify {

// The bytes all journals of a server may hold together.
struct JournalBudget {
  size_t max = SIZE_MAX;
  size_t used = 0;
};

class Journal {
 public:
  Journal(size_t maxRecords, size_t maxBytes, JournalBudget* budget = nullptr)
      : maxRecords_(maxRecords), maxBytes_(maxBytes), budget_(budget) {}
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // One encoded record (u16 length included) of watch `watch` with sequence `seq`.
  void append(uint32_t watch, uint64_t seq, std::string_view record);
  // The client has every event of `watch` up to `seq`. False (and nothing
  // kept) when the journal knows no such watch.
  bool acknowledge(uint32_t watch, uint64_t seq);
  // Whether the events of `watch` after `seq` are all still here.
  bool canReplay(uint32_t watch, uint64_t seq) const;
  // Calls visit(watch, seq, record) for every record kept, oldest first.
  template <typename F>
  void forEach(F&& visit) const {
    for (const Index& i : index_) visit(i.watch, i.seq, std::string_view(bytes_).substr(i.offset - base_, i.length));
  }
  // The session unwatched `watch`: its records are nobody's any more.
  void forget(uint32_t watch);
  // The watch ended (IN_IGNORED): its records stay for a replay, and its
  // state goes with its last record.
  void ended(uint32_t watch);

  size_t records() const { return index_.size(); }
  size_t bytes() const { return bytes_.size() - (head_ - base_); }
  uint64_t evicted() const { return evicted_; }
  size_t watchesKnown() const { return watches_.size(); }
  // Bytes of memory in use (capacity of the buffers and index).
  size_t memory() const;

 private:
  struct Index {
    uint64_t seq;
    uint64_t offset;  // into the stream of all bytes ever appended
    uint32_t watch;
    uint32_t length;
  };
  struct WatchLog {
    uint64_t acked = 0;
    uint64_t lostUpTo = 0;  // records up to this seq were evicted before the client acknowledged them
    uint32_t records = 0;
    bool ended = false;  // no more records will come: the state goes with the last one
  };
  void dropFront(bool evicting);
  void trimAcknowledged();
  void lose(uint32_t watch, uint64_t seq);
  bool fitsBudget(size_t more) const { return budget_ == nullptr || budget_->used + more <= budget_->max; }

  size_t maxRecords_;
  size_t maxBytes_;
  JournalBudget* budget_;
  std::deque<Index> index_;
  std::string bytes_;  // bytes_[0] is stream offset base_; records before head_ are gone
  uint64_t base_ = 0;
  uint64_t head_ = 0;
  uint64_t evicted_ = 0;
  std::unordered_map<uint32_t, WatchLog> watches_;
};

}  // namespace rnotify
