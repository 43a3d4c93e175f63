// LatencyRunner: times "file created on the server -> create event delivered"
// for several EventSources in one run, fairly. One change at a time: take
// CLOCK_MONOTONIC, create the file with a single syscall (mknodat), wait for
// the event with that name, take the clock again. Transports take turns in
// blocks, in an order that rotates every round, so that drift in the machine's
// state (other load, page cache, CPU frequency) spreads evenly over all of
// them. Files are removed between blocks, outside the timed region.
#pragma once

#include <memory>
#include <string>
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

class LatencyRunner {
 public:
  explicit LatencyRunner(RunnerOptions options) : options_(options) {}
  // Adds a transport; throws if its changeDir cannot be opened.
  void add(std::unique_ptr<EventSource> source);
  // Warm-up, then the timed rounds. Prints a dot per block to progress.
  void run(std::FILE* progress);
  std::vector<LatencySummary> summaries() const;
  // Every sample, as transport,index,latency_ns.
  void writeSamples(const std::string& path) const;
  // A burst of `count` creates from a producer thread while this thread reads
  // events, per transport one after the other. Reading stops when all arrived
  // or when none came for idleTimeoutMs.
  std::vector<BurstResult> bursts(size_t count, int idleTimeoutMs);
  std::vector<std::string> descriptions() const;

 private:
  struct Lane {
    std::unique_ptr<EventSource> source;
    UniqueFd dir;
    std::vector<int64_t> samples;
    size_t lost = 0;
    uint64_t nextId = 0;
    std::vector<std::string> created;
  };
  void runBlock(Lane& lane, size_t count, bool timed);
  void removeCreated(Lane& lane);
  BurstResult burst(Lane& lane, size_t count, int idleTimeoutMs);

  RunnerOptions options_;
  std::vector<Lane> lanes_;
};

}  // namespace rnotify::bench
