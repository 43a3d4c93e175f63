// The cost of "one change, one event" in the client (src/client/dedup.h):
// CPU per report for each strategy, and the memory Dedup holds at a sustained
// 100,000 events/s. Google Benchmark fits here: these are per-call costs of
// an in-process function. The latency de-duplication adds end to end (a local
// change waits for the server's copy) is measured by bench_latency
// (--dedup); see docs/BENCHMARKS.md.
// Run: build/bench/bench_dedup
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <sys/inotify.h>

#include <string>

#include "client/dedup.h"
#include "poll/tree_view.h"

namespace {

using rnotify::Dedup;
using rnotify::Event;
using rnotify::Origin;

void sink(int, uint32_t, uint32_t, uint64_t, std::string_view, std::string_view) {}

Dedup make(Dedup::Strategy strategy) {
  Dedup dedup(Dedup::Options{}, sink);
  dedup.setStrategy(1, strategy);
  return dedup;
}

Event remoteEvent(uint32_t mask, std::string name, Origin origin = Origin::kUnknown) {
  Event e;
  e.watch = 1;
  e.mask = mask;
  e.dir = "src/lib";
  e.name = std::move(name);
  e.origin = origin;
  return e;
}

// A change made through the mount: the local report, then the server's copy
// that releases it (echo matching; state comparison costs the same plus a compare).
void BM_EchoLocalChangeAndItsCopy(benchmark::State& state) {
  Dedup dedup = make(Dedup::Strategy::kEcho);
  auto now = Dedup::Clock::now();
  uint64_t i = 0;
  for (auto _ : state) {
    Event e = remoteEvent(IN_CLOSE_WRITE, "file" + std::to_string(i++ % 4096));
    dedup.local(1, IN_CLOSE_WRITE, 0, e.dir, e.name, nullptr, now);
    dedup.remote(1, e, now);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 2);
}
BENCHMARK(BM_EchoLocalChangeAndItsCopy);

// Another host's change: a remote report with no local partner, remembered
// until the window ends (the common case on a busy shared directory), at
// 100k events/s of simulated time so that the window keeps expiring.
void BM_EchoRemoteChangeUnpaired(benchmark::State& state) {
  Dedup dedup = make(Dedup::Strategy::kEcho);
  auto start = Dedup::Clock::now();
  uint64_t i = 0;
  for (auto _ : state) {
    auto now = start + std::chrono::microseconds(10 * i);
    dedup.remote(1, remoteEvent(IN_CREATE, "file" + std::to_string(i++)), now);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_EchoRemoteChangeUnpaired);

// With attribution nothing is remembered: a local report is dropped, the
// server's tagged copy passes.
void BM_OriginLocalChangeAndItsCopy(benchmark::State& state) {
  Dedup dedup = make(Dedup::Strategy::kOrigin);
  auto now = Dedup::Clock::now();
  uint64_t i = 0;
  for (auto _ : state) {
    Event e = remoteEvent(IN_CLOSE_WRITE, "file" + std::to_string(i++ % 4096), Origin::kSelf);
    dedup.local(1, IN_CLOSE_WRITE, 0, e.dir, e.name, nullptr, now);
    dedup.remote(1, e, now);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 2);
}
BENCHMARK(BM_OriginLocalChangeAndItsCopy);

// Memory held at 100k unpaired remote events/s with the default 2 s window:
// Dedup reaches its bound (65,536 remembered reports).
void BM_MemoryAt100kEventsPerSecond(benchmark::State& state) {
  for (auto _ : state) {
    size_t before = mallinfo2().uordblks;
    Dedup dedup = make(Dedup::Strategy::kEcho);
    auto start = Dedup::Clock::now();
    for (uint64_t i = 0; i < 200000; ++i) {
      auto now = start + std::chrono::microseconds(10 * i);
      dedup.remote(1, remoteEvent(IN_CREATE, "file" + std::to_string(i)), now);
    }
    size_t after = mallinfo2().uordblks;
    state.counters["events_held"] = static_cast<double>(dedup.remembered());
    state.counters["bytes_held"] = static_cast<double>(after - before);
    state.counters["bytes_per_event"] = static_cast<double>(after - before) / static_cast<double>(dedup.remembered());
  }
}
BENCHMARK(BM_MemoryAt100kEventsPerSecond)->Iterations(1)->Unit(benchmark::kMillisecond);

// The same for this host's own changes whose copies never come (held, then
// remembered): the worst case for memory.
void BM_MemoryOwnChangesWithoutCopies(benchmark::State& state) {
  for (auto _ : state) {
    size_t before = mallinfo2().uordblks;
    Dedup dedup = make(Dedup::Strategy::kEcho);
    auto start = Dedup::Clock::now();
    for (uint64_t i = 0; i < 200000; ++i) {
      auto now = start + std::chrono::microseconds(10 * i);
      dedup.local(1, IN_CREATE, 0, "src/lib", "file" + std::to_string(i), nullptr, now);
    }
    size_t after = mallinfo2().uordblks;
    size_t held = dedup.held() + dedup.remembered();
    state.counters["events_held"] = static_cast<double>(held);
    state.counters["bytes_held"] = static_cast<double>(after - before);
    state.counters["bytes_per_event"] = static_cast<double>(after - before) / static_cast<double>(held);
  }
}
BENCHMARK(BM_MemoryOwnChangesWithoutCopies)->Iterations(1)->Unit(benchmark::kMillisecond);

// What the client keeps per entry of a watched tree for resynchronisation
// (TreeView): 100,000 entries in 1,000 directories, typical name lengths.
void BM_TreeViewMemoryPerEntry(benchmark::State& state) {
  for (auto _ : state) {
    std::vector<rnotify::proto::TreeEntry> listing;
    listing.reserve(100000);
    for (uint64_t i = 0; i < 100000; ++i) {
      rnotify::proto::TreeEntry e;
      e.dir = "src/module" + std::to_string(i / 100);
      e.name = "source_file_" + std::to_string(i) + ".cc";
      e.stat.ino = i + 1;
      listing.push_back(std::move(e));
    }
    size_t before = mallinfo2().uordblks;
    rnotify::TreeView view;
    view.reset(listing);
    size_t after = mallinfo2().uordblks;
    state.counters["entries"] = static_cast<double>(view.size());
    state.counters["bytes_per_entry"] = static_cast<double>(after - before) / static_cast<double>(view.size());
    uint32_t cookie = 1;
    auto started = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(view.diff(listing, &cookie));
    state.counters["diff_ms_100k"] =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  }
}
BENCHMARK(BM_TreeViewMemoryPerEntry)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
