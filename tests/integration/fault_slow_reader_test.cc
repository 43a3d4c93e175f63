// A client that stops reading: rnotifywait is stopped (SIGSTOP, as a paused
// pipeline or a debugger would) for 10 s while 200,000 events happen on the
// server. Behind it the pipe, ssh's channel window, sshd and the agent's
// queue fill up. Two outcomes are right, and the test says which it saw:
// every event arrives after SIGCONT, or a loss notice (the agent shed events,
// or the kernel queue overflowed, or the connection was dropped) followed by
// SYNTHESIZED differences. Either way the client's view (the first listing
// replayed with every event) must end equal to the server's tree.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <ostream>
#include <thread>

#include "fault_tools.h"
#include "process.h"
#include "product.h"
#include "sshfs_bed.h"
#include "temp_dir.h"
#include "watcher.h"

namespace rnotify::testbed {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

constexpr int kCycles = 100000;   // symlink + unlink: CREATE + DELETE, 200,000 events
constexpr int kKeepEvery = 1000;  // these stay, so that the end state is not the start state

double secondsSince(SteadyClock::time_point t) { return std::chrono::duration<double>(SteadyClock::now() - t).count(); }

struct Limit {
  const char* name;
  const char* agentArgs;  // added to the agent's command line
  bool lossCertain;       // whether the burst surely exceeds what the agent may queue
};

void PrintTo(const Limit& limit, std::ostream* os) { *os << limit.name; }

class SlowReader : public ::testing::TestWithParam<Limit> {};

TEST_P(SlowReader, StoppedForTenSecondsDuring200kEvents) {
  if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
  if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
  const Limit& limit = GetParam();
  SshfsBed bed;
  // Before anything watches it: the whole export on tmpfs, where a cycle
  // takes microseconds (on this machine's /tmp, 170).
  TmpfsMount fast(bed.exportDir());
  const std::string burst = bed.server("burst");
  ::mkdir(burst.c_str(), 0755);
  for (const char* f : {"keep", "gone"}) writeFile(bed.server(f), "initial\n");

  WatcherOptions o = bed.watchA({"-r"});
  o.env["RNOTIFY_LOG_LEVEL"] = "info";  // not a debug line per frame
  o.env["RNOTIFY_RECONNECT_MAX_MS"] = "1000";
  o.agent = agentCommand() + limit.agentArgs;
  Watcher a(mergingOutput(o, bed.scratch()));
  ASSERT_TRUE(outputSays(a, "Watches established.", 20s)) << bed.transcript();
  const std::set<std::string> initial = listTree(bed.exportDir());
  writeFile(bed.server("before"), "x\n");
  ASSERT_TRUE(a.expectSequence({{"CLOSE_WRITE,REMOTE", "before"}}));
  ASSERT_EQ(commOf(a.process().pid()), "rnotifywait") << "the pid to stop must be rnotifywait itself";

  const auto stoppedAt = SteadyClock::now();
  double burstSeconds = 0;
  {
    ScopedStop stopped(a.process().pid());
    const auto burstStart = SteadyClock::now();
    for (int i = 0; i < kCycles; ++i) {
      std::string path = burst + "/l" + std::to_string(i);
      ASSERT_EQ(::symlink("target", path.c_str()), 0) << path;
      if (i % kKeepEvery != 0) {
        ASSERT_EQ(::unlink(path.c_str()), 0) << path;
      }
    }
    ASSERT_EQ(::unlink(bed.server("gone").c_str()), 0);
    burstSeconds = secondsSince(burstStart);
    // Not reading for 10 s is the scenario, not a synchronisation.
    std::this_thread::sleep_until(stoppedAt + 10s);
  }
  const auto resumedAt = SteadyClock::now();
  ASSERT_TRUE(settle(a, bed.exportDir(), 90s)) << "not through after SIGCONT";
  const double drainSeconds = secondsSince(resumedAt);

  const std::vector<WatchedEvent> events = a.events();
  const size_t lost = countOutput(a, "events were lost");
  const size_t creates = countEvents(events, "CREATE,REMOTE,!SYNTHESIZED", "*");
  const size_t deletes = countEvents(events, "DELETE,REMOTE,!SYNTHESIZED", "*");
  const size_t synthesized = countEvents(events, "SYNTHESIZED");
  std::cerr << limit.name << ": " << kCycles * 2 << " events made in " << burstSeconds
            << " s; after SIGCONT everything was through in " << drainSeconds << " s: " << events.size()
            << " events printed (" << creates << " CREATE, " << deletes << " DELETE live; " << synthesized
            << " synthesized), " << lost << " loss notices\n";
  RecordProperty("outcome", lost ? "loss+resync" : "all-delivered");

  if (limit.lossCertain) {
    EXPECT_GT(lost, 0u) << "the agent cannot have queued all this, yet no loss was reported\n" << tailTranscript(a);
  }
  if (lost == 0) {
    // Every event delivered, once: the burst's CREATEs and DELETEs (but for
    // the files kept) and "gone"'s DELETE.
    EXPECT_EQ(synthesized, 0u) << tailTranscript(a);
    size_t burstCreates = 0, burstDeletes = 0;
    for (const WatchedEvent& e : events) {
      if (e.path.rfind("burst/", 0) != 0) continue;
      burstCreates += e.flags.count("CREATE");
      burstDeletes += e.flags.count("DELETE");
    }
    EXPECT_EQ(burstCreates, size_t{kCycles}) << tailTranscript(a);
    EXPECT_EQ(burstDeletes, size_t{kCycles} - size_t{kCycles / kKeepEvery}) << tailTranscript(a);
    EXPECT_EQ(countEvents(events, "DELETE,REMOTE", "gone"), 1u) << tailTranscript(a);
  } else {
    EXPECT_GT(synthesized, 0u) << "a loss, but nothing re-read\n" << tailTranscript(a);
  }
  EXPECT_TRUE(clientViewIsServerTree(initial, events, bed.exportDir())) << tailTranscript(a);
}

INSTANTIATE_TEST_SUITE_P(Limits, SlowReader,
                         ::testing::Values(Limit{"DefaultQueue", "", false},
                                           // The smallest queue the agent accepts: it must drop, and say so.
                                           Limit{"SmallQueue", " --max-queued-bytes 65536", true}),
                         [](const ::testing::TestParamInfo<Limit>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace rnotify::testbed
