// Latency distributions and throughput figures of the benchmark, and their
// two outputs: a table for people (stdout) and a CSV for machines. Percentiles
// are nearest-rank over all samples: with >= 10,000 samples p99 is the 100th
// worst, which is why the benchmark insists on that many.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace rnotify::bench {

struct LatencySummary {
  std::string transport;
  size_t events = 0;  // samples taken (lost ones excluded)
  size_t lost = 0;    // no event before the timeout
  double minUs = 0, p50Us = 0, p90Us = 0, p99Us = 0, p999Us = 0, maxUs = 0, meanUs = 0;
};

// Sorts a copy of the samples (nanoseconds) and summarizes them.
LatencySummary summarize(const std::string& transport, std::vector<int64_t> samplesNs, size_t lost);

struct BurstResult {
  std::string transport;
  size_t created = 0;   // files created by the producer
  size_t received = 0;  // matching create events that arrived
  size_t overflows = 0;
  double createSeconds = 0;   // first create to last create
  double deliverSeconds = 0;  // first create to last event received
  double eventsPerSecond() const { return deliverSeconds > 0 ? received / deliverSeconds : 0; }
};

// The floor is the summary named "inotify"; ratios are against it.
// withRatios=false for rows that have no floor (the byte-stream probes).
void printLatencyTable(std::FILE* out, const std::vector<LatencySummary>& rows, bool withRatios = true);
void printBurstTable(std::FILE* out, const std::vector<BurstResult>& rows);
// One row per latency summary (kind=latency), byte-stream probe (kind=stream)
// and burst (kind=burst); throws std::runtime_error naming the path if it
// cannot be written.
void writeCsv(const std::string& path, const std::vector<LatencySummary>& latency,
              const std::vector<LatencySummary>& streams, const std::vector<BurstResult>& bursts);

}  // namespace rnotify::bench
