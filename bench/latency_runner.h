// LatencyRunner: times "file created on the server -> create event delivered"
// for several EventSources in one run, fairly. One change at a time: take
// CLOCK_MONOTONIC, create the file with a single syscall (mknodat), wait for
// the event with that name, take the clock again. Transports take turns in
// blocks, in an order that rotates every round, so that drift in the machine's
// state (other load, page cache, CPU frequency) spreads evenly over all of
// them. Files are removed between blocks, outside the timed region.
//
// Lanes that count copies (the own-mount lanes: the change is made through
// the client's own sshfs mount, so both the local kernel and the server
// report it) also count how many create events each change produced in
// total, to show what de-duplication removes. The first copy ends the sample;
// the others are counted by name whenever they arrive, and each block ends by
// draining late ones (outside the timed region).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/unique_fd.h"
#include "event_source.h"
#include "latency_stats.h"

namespace rnotify::bench {

struct RunnerOptions {
  size_t events = 10000;  // timed events per transport
  size_t warmup = 500;    // untimed events per transport first
  size_t block = 500;     // events per turn
  int timeoutMs = 5000;   // an event not seen by then is lost
  int gapUs = 0;          // pause after each event, to let every process go idle
};

struct LaneOptions {
  // Count every create event per name (see above) and leave the lane out of
  // the burst, whose count of received events would include the copies.
  bool countCopies = false;
  // After the first copy, wait (untimed) until this many copies arrived or
  // settleMs passed, so that the next change starts with a quiet pipeline.
  // Only a hint for pacing: the counts come from every event, whenever it comes.
  unsigned settleCopies = 1;
  int settleMs = 50;
  // At the end of a block, read until no event came for this long: longer
  // than the client's hold of a local report (echo_hold_ms, 250 ms).
  int drainMs = 300;
};

// How many create events each timed change produced (lanes with countCopies).
struct CopyCount {
  std::string transport;
  size_t changes = 0;                   // timed creates
  size_t copies = 0;                    // create events for them, in total
  size_t withCopies[4] = {0, 0, 0, 0};  // changes with 0, 1, 2, 3 or more copies
  // First copy -> second copy, for timed changes whose second copy came while
  // settling (lanes with settleCopies >= 2): how long a report waits for its
  // echo. events == 0 when there were none.
  LatencySummary gap;
  // The create syscall alone (mknodat through the mount, timed changes): the
  // runner reads events only after it returned, so no lane can beat it.
  LatencySummary create;
  // Create returned -> first copy in hand (timed changes): the part of the
  // latency that the create's own duration does not explain; what a held
  // report adds shows here without the noise of the sshfs round trip.
  LatencySummary wait;
  double perChange() const { return changes > 0 ? static_cast<double>(copies) / changes : 0; }
};

class LatencyRunner {
 public:
  explicit LatencyRunner(RunnerOptions options) : options_(options) {}
  // Adds a transport; throws if its changeDir cannot be opened.
  void add(std::unique_ptr<EventSource> source, LaneOptions laneOptions = {});
  // Warm-up, then the timed rounds. Prints a dot per block to progress.
  void run(std::FILE* progress);
  std::vector<LatencySummary> summaries() const;
  // One row per lane that counts copies, in the order of add().
  std::vector<CopyCount> copyCounts() const;
  // Every sample, as transport,index,latency_ns.
  void writeSamples(const std::string& path) const;
  // A burst of `count` creates from a producer thread while this thread reads
  // events, per transport one after the other (lanes counting copies excepted). Reading stops when all arrived
  // or when none came for idleTimeoutMs.
  std::vector<BurstResult> bursts(size_t count, int idleTimeoutMs);
  std::vector<std::string> descriptions() const;

 private:
  struct Copies {
    unsigned count = 0;
    bool timed = false;
  };
  struct Lane {
    std::unique_ptr<EventSource> source;
    LaneOptions options;
    UniqueFd dir;
    std::vector<int64_t> samples;
    size_t lost = 0;
    uint64_t nextId = 0;
    std::vector<std::string> created;
    std::unordered_map<std::string, Copies> copies;  // countCopies: every name created, and its events
    std::vector<int64_t> copyGaps;                   // ns, see CopyCount::gap
    std::vector<int64_t> createNs;                   // ns, see CopyCount::create
    std::vector<int64_t> waitNs;                     // ns, see CopyCount::wait
  };
  void runBlock(Lane& lane, size_t count, bool timed);
  // Counts one create event of `name` if the lane counts copies.
  static void noteCopy(Lane& lane, const std::string& name);
  // Drains late copies (countCopies), then removes the block's files.
  void endBlock(Lane& lane);
  void removeCreated(Lane& lane);
  BurstResult burst(Lane& lane, size_t count, int idleTimeoutMs);

  RunnerOptions options_;
  std::vector<Lane> lanes_;
};

}  // namespace rnotify::bench
