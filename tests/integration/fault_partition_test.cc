// A 10 s network partition between client A and the server while the server
// changes files. Two outcomes are right, and the test says which one it saw:
//
// - nobody noticed: the TCP connection survives and the server's events were
//   only delayed; they must all arrive, live, once the link is back (TCP
//   retransmits them). Only when the cut is shorter than the client's
//   keepalive (3 x keepalive_ms);
// - the connection was declared lost (the client's keepalive: 3 pings of 2 s
//   unanswered): then a loss notice, a RESTORED notice and SYNTHESIZED
//   events for what was missed.
//
// Either way the client's view (the first listing replayed with every event)
// must end equal to the server's tree.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
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

TEST(Partition, TenSecondsCutOffThenEverythingIsAccountedFor) {
  if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
  if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
  SshfsBed bed;
  if (!bed.usesNetns()) GTEST_SKIP() << "needs network namespaces (a partition of loopback would cut everything)";
  ::mkdir(bed.server("d").c_str(), 0755);
  for (const char* f : {"mod", "perm", "gone", "old", "d/x"}) writeFile(bed.server(f), "initial\n");

  WatcherOptions o = bed.watchA({"-r"});
  o.env["RNOTIFY_RECONNECT_MAX_MS"] = "1000";
  Watcher a(mergingOutput(o, bed.scratch()));
  ASSERT_TRUE(outputSays(a, "Watches established.", 20s)) << bed.transcript();
  const std::set<std::string> initial = listTree(bed.exportDir());
  writeFile(bed.server("before"), "x\n");
  ASSERT_TRUE(a.expectSequence({{"CLOSE_WRITE,REMOTE", "before"}}));

  const auto cutAt = std::chrono::steady_clock::now();
  const std::vector<std::string> created = {"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"};
  {
    LinkCut cut(*bed.netnsA());
    for (const auto& f : created) writeFile(bed.server(f), "made during the partition\n");
    writeFile(bed.server("mod"), "modified during the partition\n");
    ASSERT_EQ(::chmod(bed.server("perm").c_str(), 0600), 0);
    ASSERT_EQ(::unlink(bed.server("gone").c_str()), 0);
    ASSERT_EQ(std::rename(bed.server("old").c_str(), bed.server("new").c_str()), 0);
    ASSERT_EQ(::mkdir(bed.server("pd").c_str(), 0755), 0);
    writeFile(bed.server("pd/f"), "x\n");
    ASSERT_EQ(::unlink(bed.server("d/x").c_str()), 0);
    // The partition's length is the scenario, not a synchronisation.
    std::this_thread::sleep_until(cutAt + 10s);
    // Proof that the cut is one: nothing made since crossed it.
    EXPECT_EQ(countEvents(a.events(), "", "p0"), 0u) << "events crossed the partition\n" << a.transcript();
    cut.restore();
  }
  const auto restoredAt = std::chrono::steady_clock::now();
  ASSERT_TRUE(settle(a, bed.exportDir(), 90s)) << "nothing came after the partition";
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - restoredAt).count();
  const std::vector<WatchedEvent> events = a.events();
  const size_t lost = countOutput(a, "events were lost");
  const size_t restored = countOutput(a, "the server is reachable again");
  const size_t synthesized = countEvents(events, "SYNTHESIZED");
  std::cerr << "partition of 10 s: " << (lost ? "the connection was declared lost" : "no loss was reported")
            << "; all through " << seconds << " s after the link came back; " << synthesized << " synthesized events\n";
  RecordProperty("outcome", lost ? "loss+resync" : "no-loss");

  if (lost == 0) {
    // Nothing lost, nothing to synthesize: every change arrives live, once.
    EXPECT_EQ(restored, 0u) << a.transcript();
    EXPECT_EQ(synthesized, 0u) << a.transcript();
    for (const auto& f : created) EXPECT_EQ(countEvents(events, "CREATE,REMOTE", f), 1u) << f;
    EXPECT_GE(countEvents(events, "MODIFY,REMOTE", "mod"), 1u);
    EXPECT_EQ(countEvents(events, "ATTRIB,REMOTE", "perm"), 1u);
    EXPECT_EQ(countEvents(events, "DELETE,REMOTE", "gone"), 1u);
    EXPECT_TRUE(a.expectMove({"MOVED_FROM,REMOTE", "old"}, {"MOVED_TO,REMOTE", "new"}, 1s));
    EXPECT_EQ(countEvents(events, "CREATE,ISDIR,REMOTE", "pd"), 1u);
    EXPECT_EQ(countEvents(events, "CREATE,REMOTE", "pd/f"), 1u);
    EXPECT_EQ(countEvents(events, "DELETE,REMOTE", "d/x"), 1u);
  } else {
    // Declared lost: said once, restored once, and what was missed is told.
    EXPECT_EQ(lost, 1u) << a.transcript();
    EXPECT_EQ(restored, 1u) << a.transcript();
    for (const auto& f : created) EXPECT_EQ(countEvents(events, "CREATE,REMOTE", f), 1u) << f;
    EXPECT_EQ(countEvents(events, "ATTRIB,REMOTE", "perm"), 1u);
    EXPECT_EQ(countEvents(events, "DELETE,REMOTE", "gone"), 1u);
    EXPECT_EQ(countEvents(events, "DELETE,REMOTE", "d/x"), 1u);
  }
  EXPECT_TRUE(clientViewIsServerTree(initial, events, bed.exportDir())) << a.transcript();
}

}  // namespace
}  // namespace rnotify::testbed
