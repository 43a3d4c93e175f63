// The burst producer and its polling loop; see burst.h.
#include "burst.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "common/unique_fd.h"

namespace rnotify::bench {
namespace {

double secondsBetween(BenchClock::time_point a, BenchClock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct ProducerResult {
  BenchClock::time_point start, createsDone, end;
  std::string error;
};

void produce(int dirFd, uint64_t files, ProducerResult* out, std::atomic<bool>* done) {
  char name[32];
  out->start = BenchClock::now();
  for (uint64_t i = 0; i < files && out->error.empty(); ++i) {
    std::snprintf(name, sizeof name, "b%llu", static_cast<unsigned long long>(i));
    if (::mknodat(dirFd, name, S_IFREG | 0644, 0) != 0) out->error = std::string("mknodat: ") + std::strerror(errno);
  }
  out->createsDone = BenchClock::now();
  for (uint64_t i = 0; i < files && out->error.empty(); ++i) {
    std::snprintf(name, sizeof name, "b%llu", static_cast<unsigned long long>(i));
    if (::unlinkat(dirFd, name, 0) != 0) out->error = std::string("unlinkat: ") + std::strerror(errno);
  }
  out->end = BenchClock::now();
  done->store(true, std::memory_order_release);
}

}  // namespace

BurstOutcome runBurst(const BurstOptions& options, const std::vector<EventCounter*>& counters) {
  UniqueFd dir(::open(options.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) throw std::runtime_error("cannot open " + options.dir + ": " + std::strerror(errno));
  BurstOutcome outcome;
  outcome.files = options.files;
  outcome.counters.resize(counters.size());
  std::vector<EventCounts> before(counters.size());
  for (size_t i = 0; i < counters.size(); ++i) before[i] = counters[i]->counts();

  ProducerResult produced;
  std::atomic<bool> producerDone{false};
  auto start = BenchClock::now();
  std::thread producer(produce, dir.get(), options.files, &produced, &producerDone);

  std::vector<pollfd> fds;
  std::vector<size_t> index;
  auto lastProgress = BenchClock::now();
  size_t remaining = counters.size();
  std::string failure;
  if (options.queueFirst) {
    while (!producerDone.load(std::memory_order_acquire)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (options.onProduced) options.onProduced();
    outcome.readStartSeconds = secondsBetween(start, BenchClock::now());
    lastProgress = BenchClock::now();
  }
  while (remaining > 0 && failure.empty()) {
    fds.clear();
    index.clear();
    for (size_t i = 0; i < counters.size(); ++i) {
      if (outcome.counters[i].complete) continue;
      fds.push_back({counters[i]->fd(), POLLIN, 0});
      index.push_back(i);
    }
    int n = ::poll(fds.data(), fds.size(), 100);
    auto now = BenchClock::now();
    if (n < 0 && errno != EINTR) {
      failure = std::string("poll: ") + std::strerror(errno);
      break;
    }
    for (size_t k = 0; n > 0 && k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      size_t i = index[k];
      uint64_t had = counters[i]->counts().events() + counters[i]->counts().overflows;
      try {
        counters[i]->pump();
      } catch (const std::exception& e) {
        failure = e.what();
        break;
      }
      if (counters[i]->counts().events() + counters[i]->counts().overflows != had) {
        // After the read: a queued burst can be taken in by one pump.
        auto counted = BenchClock::now();
        outcome.counters[i].lastEventSeconds = secondsBetween(start, counted);
        lastProgress = counted;
      }
    }
    for (size_t i = 0; i < counters.size(); ++i) {
      if (!outcome.counters[i].complete && counters[i]->complete(options.files)) {
        outcome.counters[i].complete = true;
        --remaining;
      }
    }
    bool producing = !producerDone.load(std::memory_order_acquire);
    if (producing) {
      lastProgress = std::max(lastProgress, now);
    } else if (secondsBetween(lastProgress, now) * 1000 > options.idleMs) {
      break;
    }
    if (secondsBetween(start, now) > options.maxSeconds) break;
  }
  producer.join();
  if (!produced.error.empty()) throw std::runtime_error("burst producer in " + options.dir + ": " + produced.error);
  if (!failure.empty()) throw std::runtime_error(failure);
  outcome.createSeconds = secondsBetween(produced.start, produced.createsDone);
  outcome.totalSeconds = secondsBetween(produced.start, produced.end);
  for (size_t i = 0; i < counters.size(); ++i) {
    const EventCounts& now = counters[i]->counts();
    outcome.counters[i].counts = {now.creates - before[i].creates, now.deletes - before[i].deletes,
                                  now.overflows - before[i].overflows};
  }
  return outcome;
}

}  // namespace rnotify::bench
