// The cost of "one change, one event" in the client: EchoMatcher::admit per
// event, and the memory the matcher holds at a sustained event rate.
// Google Benchmark fits here: it is the per-call cost of an in-process
// function. Run: build-bench/bench/bench_echo_matcher
#include <malloc.h>
#include <sys/inotify.h>

#include <benchmark/benchmark.h>
#include <string>

#include "client/echo_matcher.h"

namespace {

using rnotify::EchoMatcher;
using Side = EchoMatcher::Side;

// A change made through the mount: the local event, then the server's echo.
void BM_LocalChangeAndItsEcho(benchmark::State& state) {
  EchoMatcher matcher;
  auto now = EchoMatcher::Clock::now();
  uint64_t i = 0;
  for (auto _ : state) {
    std::string name = "file" + std::to_string(i++ % 4096);
    benchmark::DoNotOptimize(matcher.admit(Side::kLocal, 1, IN_CLOSE_WRITE, "src/lib", name, now));
    benchmark::DoNotOptimize(matcher.admit(Side::kRemote, 1, IN_CLOSE_WRITE, "src/lib", name, now));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 2);
}
BENCHMARK(BM_LocalChangeAndItsEcho);

// Another host's change: a remote event with no local partner, remembered
// until the window ends (the common case on a busy shared directory).
void BM_RemoteChangeUnpaired(benchmark::State& state) {
  EchoMatcher matcher;
  auto start = EchoMatcher::Clock::now();
  uint64_t i = 0;
  for (auto _ : state) {
    // 100k events/s of simulated time, so that the window keeps expiring.
    auto now = start + std::chrono::microseconds(10 * i);
    std::string name = "file" + std::to_string(i++);
    benchmark::DoNotOptimize(matcher.admit(Side::kRemote, 1, IN_CREATE, "src/lib", name, now));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_RemoteChangeUnpaired);

// Memory held with the matcher full: at 100k unpaired events/s and the
// default 2 s window it holds its bound (65,536 events).
void BM_MemoryWhenFull(benchmark::State& state) {
  for (auto _ : state) {
    size_t before = mallinfo2().uordblks;
    EchoMatcher matcher;
    auto start = EchoMatcher::Clock::now();
    for (uint64_t i = 0; i < 200000; ++i) {
      auto now = start + std::chrono::microseconds(10 * i);
      matcher.admit(Side::kRemote, 1, IN_CREATE, "src/lib", "file" + std::to_string(i), now);
    }
    size_t after = mallinfo2().uordblks;
    state.counters["events_held"] = static_cast<double>(matcher.pending());
    state.counters["bytes_held"] = static_cast<double>(after - before);
    state.counters["bytes_per_event"] = static_cast<double>(after - before) / static_cast<double>(matcher.pending());
  }
}
BENCHMARK(BM_MemoryWhenFull)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
