// Latency summaries and their table/CSV output; see latency_stats.h.
#include "latency_stats.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <numeric>
#include <stdexcept>

namespace rnotify::bench {
namespace {

double percentileUs(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return static_cast<double>(sorted[rank - 1]) / 1000.0;
}

const LatencySummary* floorOf(const std::vector<LatencySummary>& rows) {
  for (const auto& r : rows) {
    if (r.transport == "inotify" && r.events > 0) return &r;
  }
  return nullptr;
}

double ratio(double value, double floor) { return floor > 0 ? value / floor : 0; }

}  // namespace

LatencySummary summarize(const std::string& transport, std::vector<int64_t> samplesNs, size_t lost) {
  LatencySummary s;
  s.transport = transport;
  s.events = samplesNs.size();
  s.lost = lost;
  if (samplesNs.empty()) return s;
  std::sort(samplesNs.begin(), samplesNs.end());
  s.minUs = samplesNs.front() / 1000.0;
  s.p50Us = percentileUs(samplesNs, 50);
  s.p90Us = percentileUs(samplesNs, 90);
  s.p99Us = percentileUs(samplesNs, 99);
  s.p999Us = percentileUs(samplesNs, 99.9);
  s.maxUs = samplesNs.back() / 1000.0;
  s.meanUs = std::accumulate(samplesNs.begin(), samplesNs.end(), 0.0) / 1000.0 / samplesNs.size();
  return s;
}

void printLatencyTable(std::FILE* out, const std::vector<LatencySummary>& rows, bool withRatios) {
  const LatencySummary* floor = withRatios ? floorOf(rows) : nullptr;
  std::fprintf(out, "%-10s %7s %5s %9s %9s %9s %9s %9s %9s", "transport", "events", "lost", "min_us", "p50_us",
               "p90_us", "p99_us", "p99.9_us", "max_us");
  std::fprintf(out, floor ? " %9s %9s\n" : "\n", "p50/floor", "p99/floor");
  for (const auto& r : rows) {
    std::fprintf(out, "%-10s %7zu %5zu %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f", r.transport.c_str(), r.events, r.lost,
                 r.minUs, r.p50Us, r.p90Us, r.p99Us, r.p999Us, r.maxUs);
    if (floor) {
      std::fprintf(out, " %9.2f %9.2f\n", ratio(r.p50Us, floor->p50Us), ratio(r.p99Us, floor->p99Us));
    } else {
      std::fprintf(out, "\n");
    }
  }
}

void printBurstTable(std::FILE* out, const std::vector<BurstResult>& rows) {
  std::fprintf(out, "%-10s %8s %8s %9s %10s %11s %12s\n", "transport", "created", "received", "overflows", "create_s",
               "deliver_s", "events_per_s");
  for (const auto& r : rows) {
    std::fprintf(out, "%-10s %8zu %8zu %9zu %10.3f %11.3f %12.0f\n", r.transport.c_str(), r.created, r.received,
                 r.overflows, r.createSeconds, r.deliverSeconds, r.eventsPerSecond());
  }
}

void writeCsv(const std::string& path, const std::vector<LatencySummary>& latency,
              const std::vector<LatencySummary>& streams, const std::vector<BurstResult>& bursts) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  std::fprintf(f,
               "kind,transport,events,lost,min_us,p50_us,p90_us,p99_us,p999_us,max_us,mean_us,p50_ratio,p99_ratio,"
               "burst_created,burst_received,burst_overflows,burst_create_s,burst_deliver_s,events_per_s\n");
  const LatencySummary* floor = floorOf(latency);
  for (const auto& r : latency) {
    std::fprintf(f, "latency,%s,%zu,%zu,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.2f,%.2f,,,,,,\n", r.transport.c_str(),
                 r.events, r.lost, r.minUs, r.p50Us, r.p90Us, r.p99Us, r.p999Us, r.maxUs, r.meanUs,
                 floor ? ratio(r.p50Us, floor->p50Us) : 0.0, floor ? ratio(r.p99Us, floor->p99Us) : 0.0);
  }
  for (const auto& r : streams) {
    std::fprintf(f, "stream,%s,%zu,%zu,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,,,,,,,,\n", r.transport.c_str(), r.events,
                 r.lost, r.minUs, r.p50Us, r.p90Us, r.p99Us, r.p999Us, r.maxUs, r.meanUs);
  }
  for (const auto& b : bursts) {
    std::fprintf(f, "burst,%s,,,,,,,,,,,,%zu,%zu,%zu,%.3f,%.3f,%.0f\n", b.transport.c_str(), b.created, b.received,
                 b.overflows, b.createSeconds, b.deliverSeconds, b.eventsPerSecond());
  }
  if (std::fclose(f) != 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
}

}  // namespace rnotify::bench
