// One change, one event: what client A does through its own sshfs mount is
// reported by A's kernel and again by the server. A must see each change
// once. The oracle is the real inotifywait watching the server's directory:
// A's events, with REMOTE ignored, must be exactly the server's events.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>

#include "process.h"
#include "product.h"
#include "sshfs_bed.h"
#include "temp_dir.h"
#include "watcher.h"

namespace rnotify::testbed {
namespace {

// Events whose number does not depend on how two kernels coalesce writes.
const std::vector<std::string> kEvents = {"-e", "create,delete,attrib,close_write,moved_from,moved_to"};

// "path|FLAG,FLAG" with REMOTE dropped, counted.
std::map<std::string, int> tally(const std::vector<WatchedEvent>& events) {
  std::map<std::string, int> counts;
  for (const WatchedEvent& e : events) {
    if (e.path == "end") continue;  // the barrier
    std::string key = e.path + "|";
    for (const std::string& flag : e.flags) {
      if (flag != "REMOTE") key += flag + ",";
    }
    ++counts[key];
  }
  return counts;
}

std::string describe(const std::map<std::string, int>& counts) {
  std::string out;
  for (auto& [key, n] : counts) out += "  " + std::to_string(n) + " x " + key + "\n";
  return out;
}

class EchoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
    if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
    bed_ = std::make_unique<SshfsBed>();
  }
  void TearDown() override {
    if (HasFailure() && bed_) std::cerr << "--- the bed:\n" << bed_->transcript();
  }

  // Runs the same changes through A's mount with A and the oracle watching,
  // and returns both tallies once the barrier reached both.
  std::pair<std::map<std::string, int>, std::map<std::string, int>> run(const std::string& echoWindowMs) {
    std::vector<std::string> args = {"-r"};
    args.insert(args.end(), kEvents.begin(), kEvents.end());
    WatcherOptions a = bed_->watchA(args);
    a.env["RNOTIFY_ECHO_WINDOW_MS"] = echoWindowMs;
    Watcher watcherA(a);
    WatcherOptions o;
    o.program = "inotifywait";
    o.args = args;
    o.path = bed_->exportDir();
    o.cookie = false;
    Watcher oracle(o);
    EXPECT_TRUE(watcherA.established());
    EXPECT_TRUE(oracle.established());

    std::vector<std::string> argv{"sh", "-c",
                                  "cd '" + bed_->mountA().path() +
                                      "' && echo one > f && chmod 600 f && mv f g && mkdir d && mv g d/g && "
                                      "touch -d 2001-01-01 d/g && echo two > d/h && rm d/g d/h && rmdir d"};
    CommandResult r = runCommand(argv, Deadline::in(std::chrono::seconds(30)));
    EXPECT_EQ(r.exitCode, 0) << r.describe(argv);
    // The barrier: made on the server, so it reaches both, after everything above.
    writeFile(bed_->server("end"), "x\n");
    EXPECT_TRUE(watcherA.expectSequence({{"CLOSE_WRITE", "end"}}, std::chrono::seconds(20))) << watcherA.transcript();
    EXPECT_TRUE(oracle.expectSequence({{"CLOSE_WRITE", "end"}}, std::chrono::seconds(20))) << oracle.transcript();
    return {tally(watcherA.events()), tally(oracle.events())};
  }

  std::unique_ptr<SshfsBed> bed_;
};

TEST_F(EchoTest, ChangesThroughTheOwnMountAreReportedOnce) {
  auto [seenByA, seenByServer] = run("2000");
  ASSERT_FALSE(seenByServer.empty());
  if (std::getenv("RNOTIFY_TEST_VERBOSE")) std::cerr << "server saw:\n" << describe(seenByServer);
  EXPECT_EQ(seenByA, seenByServer) << "A saw:\n"
                                   << describe(seenByA) << "the server's inotifywait saw:\n"
                                   << describe(seenByServer);
  EXPECT_EQ(seenByA["f|CREATE,"], 1);
  EXPECT_EQ(seenByA["d|CREATE,ISDIR,"], 1);
}

// Without matching, the same run shows the echo: this is what the test above
// guards against.
TEST_F(EchoTest, WithoutMatchingEveryLocalChangeComesTwice) {
  auto [seenByA, seenByServer] = run("0");
  EXPECT_EQ(seenByServer["f|CREATE,"], 1);
  EXPECT_EQ(seenByA["f|CREATE,"], 2) << "A saw:\n" << describe(seenByA);
}

}  // namespace
}  // namespace rnotify::testbed
