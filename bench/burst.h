// A burst of changes and the consumers that count what they were told about
// it. The producer creates `files` empty files in one directory as fast as one
// thread can (mknodat, one syscall each), then deletes them all (unlinkat):
// 2 x files events. Every consumer (an EventCounter: raw inotify or fanotify,
// an rnotify client, a peer tool's output) counts the creates, deletes and
// overflows it received; runBurst polls all of them from the calling thread
// while the producer runs in its own, and notes when each one had everything.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rnotify::bench {

using BenchClock = std::chrono::steady_clock;

struct EventCounts {
  uint64_t creates = 0;
  uint64_t deletes = 0;
  uint64_t overflows = 0;  // IN_Q_OVERFLOW (or the tool's equivalent) seen
  uint64_t events() const { return creates + deletes; }
};

class EventCounter {
 public:
  virtual ~EventCounter() = default;
  // Readable when there is something to count.
  virtual int fd() const = 0;
  // Reads and counts what is available without blocking. Throws
  // std::runtime_error when the source failed (connection lost, tool exited).
  virtual void pump() = 0;
  // Everything of a burst of `files` creates and deletes arrived.
  virtual bool complete(uint64_t files) const { return counts_.creates >= files && counts_.deletes >= files; }
  const EventCounts& counts() const { return counts_; }

 protected:
  EventCounts counts_;
};

struct BurstOptions {
  std::string dir;          // where the files are made
  uint64_t files = 500000;  // 2 x files events
  int idleMs = 5000;        // after the producer finished, give up when nothing came for this long
  double maxSeconds = 300;  // and give up after this long in any case
  // Queued mode: nothing is read until the producer is done, so the whole
  // burst waits in the kernel's queue (raise max_queued_events first); then
  // onProduced runs (e.g. SIGCONT to a stopped daemon) and reading starts.
  // The consumer's rate is then its own, not the producer's.
  bool queueFirst = false;
  std::function<void()> onProduced;
};

struct CounterOutcome {
  EventCounts counts;
  bool complete = false;
  double lastEventSeconds = 0;  // from the first create to the last event counted
};

struct BurstOutcome {
  double createSeconds = 0;              // first create to last create
  double totalSeconds = 0;               // first create to last delete
  double readStartSeconds = 0;           // when reading started (queued mode: after the producer; else 0)
  std::vector<CounterOutcome> counters;  // in the order given
  uint64_t files = 0;
  double producerRate() const { return totalSeconds > 0 ? 2.0 * files / totalSeconds : 0; }
};

// A counter counts one burst: complete() looks at its totals.
// Runs the burst in a producer thread and counts with `counters` meanwhile.
// A counter stops being polled once complete. Throws if the producer fails
// (the directory is not writable) or a counter does.
BurstOutcome runBurst(const BurstOptions& options, const std::vector<EventCounter*>& counters);

// Events per second a counter saw: events / (start of reading -> its last
// event); reading starts with the first create unless the burst was queued.
inline double eventsPerSecond(const BurstOutcome& b, const CounterOutcome& c) {
  double span = c.lastEventSeconds - b.readStartSeconds;
  return span > 0 ? static_cast<double>(c.counts.events()) / span : 0;
}

}  // namespace rnotify::bench
