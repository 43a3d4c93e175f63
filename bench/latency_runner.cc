// LatencyRunner; see latency_runner.h.
#include "latency_runner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace rnotify::bench {
namespace {

int64_t nowNs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// mknodat creates a regular file in one syscall and leaves no descriptor to
// close: the timed region holds exactly one filesystem operation.
void createFile(int dirFd, const std::string& name, const std::string& dirPath) {
  if (::mknodat(dirFd, name.c_str(), S_IFREG | 0644, 0) != 0) {
    throw std::runtime_error("cannot create " + dirPath + "/" + name + ": " + std::strerror(errno));
  }
}

}  // namespace

void LatencyRunner::add(std::unique_ptr<EventSource> source, LaneOptions laneOptions) {
  Lane lane;
  lane.options = laneOptions;
  lane.dir.reset(::open(source->changeDir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!lane.dir) throw std::runtime_error("cannot open " + source->changeDir() + ": " + std::strerror(errno));
  lane.source = std::move(source);
  lane.samples.reserve(options_.events);
  lanes_.push_back(std::move(lane));
}

void LatencyRunner::noteCopy(Lane& lane, const std::string& name) {
  if (!lane.options.countCopies) return;
  auto it = lane.copies.find(name);
  if (it != lane.copies.end()) ++it->second.count;  // other names are not this lane's changes
}

void LatencyRunner::runBlock(Lane& lane, size_t count, bool timed) {
  EventSource& source = *lane.source;
  const bool counting = lane.options.countCopies;
  for (size_t i = 0; i < count; ++i) {
    std::string name = "e" + std::to_string(lane.nextId++);
    if (counting) lane.copies[name].timed = timed;
    const int64_t start = nowNs();
    createFile(lane.dir.get(), name, source.changeDir());
    const int64_t created = counting ? nowNs() : 0;
    if (counting && timed) lane.createNs.push_back(created - start);
    const int64_t deadline = start + int64_t{options_.timeoutMs} * 1000000;
    bool seen = false;
    int64_t firstAt = 0;
    for (;;) {
      int64_t left = deadline - nowNs();
      if (left <= 0) break;
      auto got = source.nextCreate(static_cast<int>((left + 999999) / 1000000));
      if (!got) break;
      if (*got == name) {  // anything else is a late event of an earlier, lost one (or a copy)
        const int64_t end = nowNs();
        if (timed) lane.samples.push_back(end - start);
        if (timed && counting) lane.waitNs.push_back(end - created);
        firstAt = end;
        noteCopy(lane, *got);
        seen = true;
        break;
      }
      noteCopy(lane, *got);
    }
    if (!seen && timed) ++lane.lost;
    if (seen && counting) {
      // Untimed: let the expected further copies through before the next change.
      const int64_t settleBy = nowNs() + int64_t{lane.options.settleMs} * 1000000;
      while (lane.copies[name].count < lane.options.settleCopies) {
        int64_t left = settleBy - nowNs();
        if (left <= 0) break;
        auto got = source.nextCreate(static_cast<int>((left + 999999) / 1000000));
        if (!got) break;
        noteCopy(lane, *got);
        if (timed && *got == name && lane.copies[name].count == 2) lane.copyGaps.push_back(nowNs() - firstAt);
      }
    }
    lane.created.push_back(std::move(name));
    if (options_.gapUs > 0) std::this_thread::sleep_for(std::chrono::microseconds(options_.gapUs));
  }
}

void LatencyRunner::endBlock(Lane& lane) {
  if (lane.options.countCopies) {
    while (auto got = lane.source->nextCreate(lane.options.drainMs)) noteCopy(lane, *got);
  }
  removeCreated(lane);
}

void LatencyRunner::removeCreated(Lane& lane) {
  for (const std::string& name : lane.created) ::unlinkat(lane.dir.get(), name.c_str(), 0);
  lane.created.clear();
}

void LatencyRunner::run(std::FILE* progress) {
  // Warm-up: connections, page cache, dentries, branch predictors; discarded.
  for (Lane& lane : lanes_) {
    runBlock(lane, options_.warmup, false);
    endBlock(lane);
  }
  const size_t block = std::max<size_t>(1, options_.block);
  const size_t rounds = (options_.events + block - 1) / block;
  for (size_t round = 0; round < rounds; ++round) {
    const size_t count = std::min(block, options_.events - round * block);
    for (size_t k = 0; k < lanes_.size(); ++k) {
      Lane& lane = lanes_[(round + k) % lanes_.size()];
      runBlock(lane, count, true);
      endBlock(lane);
    }
    if (progress) {
      std::fputc('.', progress);
      std::fflush(progress);
    }
  }
  if (progress) std::fputc('\n', progress);
}

std::vector<LatencySummary> LatencyRunner::summaries() const {
  std::vector<LatencySummary> rows;
  for (const Lane& lane : lanes_) rows.push_back(summarize(lane.source->name(), lane.samples, lane.lost));
  return rows;
}

std::vector<CopyCount> LatencyRunner::copyCounts() const {
  std::vector<CopyCount> rows;
  for (const Lane& lane : lanes_) {
    if (!lane.options.countCopies) continue;
    CopyCount row;
    row.transport = lane.source->name();
    for (const auto& [name, copies] : lane.copies) {
      if (!copies.timed) continue;
      ++row.changes;
      row.copies += copies.count;
      ++row.withCopies[std::min<unsigned>(copies.count, 3)];
    }
    row.gap = summarize(row.transport, lane.copyGaps, 0);
    row.create = summarize(row.transport, lane.createNs, 0);
    row.wait = summarize(row.transport, lane.waitNs, 0);
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<std::string> LatencyRunner::descriptions() const {
  std::vector<std::string> lines;
  for (const Lane& lane : lanes_) lines.push_back(lane.source->name() + ": " + lane.source->description());
  return lines;
}

void LatencyRunner::writeSamples(const std::string& path) const {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  std::fprintf(f, "transport,index,latency_ns\n");
  for (const Lane& lane : lanes_) {
    for (size_t i = 0; i < lane.samples.size(); ++i) {
      std::fprintf(f, "%s,%zu,%lld\n", lane.source->name().c_str(), i, static_cast<long long>(lane.samples[i]));
    }
  }
  if (std::fclose(f) != 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
}

BurstResult LatencyRunner::burst(Lane& lane, size_t count, int idleTimeoutMs) {
  BurstResult result;
  result.transport = lane.source->name();
  const size_t overflowsBefore = lane.source->stats().overflows;
  const int dirFd = lane.dir.get();
  const std::string dirPath = lane.source->changeDir();
  int64_t createdAt = 0;
  std::string producerError;
  const int64_t start = nowNs();
  std::thread producer([&] {
    try {
      for (size_t i = 0; i < count; ++i) createFile(dirFd, "b" + std::to_string(i), dirPath);
    } catch (const std::exception& e) {
      producerError = e.what();
    }
    createdAt = nowNs();
  });
  int64_t lastAt = start;
  while (result.received < count) {
    auto got = lane.source->nextCreate(idleTimeoutMs);
    if (!got) break;
    if (!got->empty() && (*got)[0] == 'b') {
      ++result.received;
      lastAt = nowNs();
    }
  }
  producer.join();
  if (!producerError.empty()) throw std::runtime_error(producerError);
  result.created = count;
  result.overflows = lane.source->stats().overflows - overflowsBefore;
  result.createSeconds = (createdAt - start) / 1e9;
  result.deliverSeconds = (lastAt - start) / 1e9;
  for (size_t i = 0; i < count; ++i) ::unlinkat(dirFd, ("b" + std::to_string(i)).c_str(), 0);
  return result;
}

std::vector<BurstResult> LatencyRunner::bursts(size_t count, int idleTimeoutMs) {
  std::vector<BurstResult> results;
  for (Lane& lane : lanes_) {
    if (!lane.options.countCopies) results.push_back(burst(lane, count, idleTimeoutMs));
  }
  return results;
}

}  // namespace rnotify::bench
