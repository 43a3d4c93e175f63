// The server's kernel queue overflows: the agent is told only that events
// were dropped. The client must pass that on (a Q_OVERFLOW notice), re-read
// the tree and report what it missed as SYNTHESIZED events, so that its view
// (the first listing replayed with every event) ends equal to the server's.
//
// The queue is made small for the agent only: fs.inotify.max_queued_events
// (and fs.fanotify.max_queued_events) are read when a queue is created, so
// they are lowered just while the agent (and the daemon it starts, which holds
// the watches) starts and restored at once (also on failure, by
// SysctlOverride). The daemon is then stopped (SIGSTOP) while the burst
// happens, so the overflow does not depend on who is faster.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>

#include "fault_tools.h"
#include "process.h"
#include "product.h"
#include "sshfs_bed.h"
#include "temp_dir.h"
#include "watcher.h"

namespace rnotify::testbed {
namespace {

using namespace std::chrono_literals;

constexpr const char* kInotifyQueue = "/proc/sys/fs/inotify/max_queued_events";
constexpr const char* kFanotifyQueue = "/proc/sys/fs/fanotify/max_queued_events";
constexpr const char* kSmallQueue = "64";
constexpr int kBurst = 400;  // files; each is CREATE, OPEN, MODIFY, CLOSE_WRITE: 25 times the queue

bool contains(const std::string& line, const char* text) { return line.find(text) != std::string::npos; }

// Run once per backend of the agent: each has its own kernel queue.
class KernelQueueOverflow : public ::testing::TestWithParam<std::string> {};

TEST_P(KernelQueueOverflow, IsReportedAndRepairedByResync) {
  if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
  if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
  const char* chosen = std::getenv("RNOTIFY_TEST_AGENT_ARGS");
  if (chosen != nullptr && std::string(chosen).find("--watcher") != std::string::npos)
    GTEST_SKIP() << "RNOTIFY_TEST_AGENT_ARGS chooses the backend already";
  SshfsBed bed;
  ::mkdir(bed.server("burst").c_str(), 0755);
  for (const char* f : {"keep", "gone", "old"}) writeFile(bed.server(f), "initial\n");

  std::optional<Watcher> a;
  {
    SysctlOverride inotifyQueue(kInotifyQueue, kSmallQueue);
    std::optional<SysctlOverride> fanotifyQueue;
    if (::access(kFanotifyQueue, W_OK) == 0) fanotifyQueue.emplace(kFanotifyQueue, kSmallQueue);
    WatcherOptions o = bed.watchA({"-r"});
    o.agent = agentCommand() + " --watcher " + GetParam();
    a.emplace(mergingOutput(o, bed.scratch()));
    ASSERT_TRUE(outputSays(*a, "Watches established.", 20s)) << bed.transcript();
  }  // restored: only the agent (and this rnotifywait) have the small queue
  EXPECT_NE(readFile(kInotifyQueue), std::string(kSmallQueue) + "\n") << "the queue size was not restored";

  const std::set<std::string> initial = listTree(bed.exportDir());
  writeFile(bed.server("before"), "x\n");
  ASSERT_TRUE(a->expectSequence({{"CLOSE_WRITE,REMOTE", "before"}}));

  // The process that holds the watches: the daemon behind the ssh agent
  // (the agent itself only waits), or the agent when it serves alone.
  auto agents = bed.sshd().agentDaemons();
  if (agents.empty()) agents = agentsBelow(bed.sshd().pid());
  ASSERT_EQ(agents.size(), 1u);
  {
    ScopedStop stopped(agents[0]);
    for (int i = 0; i < kBurst; ++i) writeFile(bed.server("burst/f" + std::to_string(i)), "burst\n");
    // Last, so that they are surely beyond the queue.
    ASSERT_EQ(::unlink(bed.server("gone").c_str()), 0);
    ASSERT_EQ(std::rename(bed.server("old").c_str(), bed.server("new").c_str()), 0);
  }
  ASSERT_TRUE(outputSays(*a, "events were lost (Q_OVERFLOW", 15s));
  // The resync reports all its differences at once; after one, it is done.
  ASSERT_TRUE(a->process().waitForLine(
      Stream::kStdout, [](const std::string& l) { return contains(l, ",SYNTHESIZED|"); }, Deadline::in(20s)))
      << "no SYNTHESIZED event after the overflow\n"
      << a->transcript();
  writeFile(bed.server("after"), "x\n");  // the barrier
  ASSERT_TRUE(a->process().waitForLine(
      Stream::kStdout, [](const std::string& l) { return contains(l, "|after|CLOSE_WRITE"); }, Deadline::in(20s)))
      << a->transcript();

  const std::vector<WatchedEvent> events = a->events();
  const size_t live = countEvents(events, "CREATE,REMOTE,!SYNTHESIZED", "*");
  const size_t synthesized = countEvents(events, "SYNTHESIZED");
  std::cerr << GetParam() << ": burst of " << kBurst << " files into a queue of " << kSmallQueue << ": " << synthesized
            << " synthesized events, " << live << " live CREATEs, " << countOutput(*a, "events were lost")
            << " overflow notices\n";
  EXPECT_EQ(countEvents(events, "DELETE,REMOTE,SYNTHESIZED", "gone"), 1u) << a->transcript();
  EXPECT_EQ(countEvents(events, "MOVED_FROM,REMOTE,SYNTHESIZED", "old"), 1u) << a->transcript();
  EXPECT_EQ(countEvents(events, "MOVED_TO,REMOTE,SYNTHESIZED", "new"), 1u) << a->transcript();
  EXPECT_EQ(countEvents(events, "CREATE", "keep"), 0u);
  EXPECT_EQ(countEvents(events, "CREATE,REMOTE,!SYNTHESIZED", "after"), 1u) << a->transcript();
  // Each burst file: one CREATE, live or synthesized, never both.
  for (int i = 0; i < kBurst; ++i) {
    std::string f = "burst/f" + std::to_string(i);
    EXPECT_EQ(countEvents(events, "CREATE,REMOTE", f), 1u) << f;
  }
  EXPECT_TRUE(clientViewIsServerTree(initial, events, bed.exportDir())) << tailTranscript(*a, 60);
}

INSTANTIATE_TEST_SUITE_P(Backends, KernelQueueOverflow, ::testing::Values("inotify", "fanotify"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace rnotify::testbed
