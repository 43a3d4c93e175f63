// Tests of the test bed itself (tests/testbed): if these fail, every other
// integration test's verdict is meaningless. They need no product binary.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/proc_stat.h"
#include "common/read_file.h"
#include "mount_table.h"
#include "netns.h"
#include "process.h"
#include "sshd.h"
#include "sshfs_bed.h"
#include "temp_dir.h"
#include "watcher.h"

namespace rnotify::testbed {
namespace {

using std::chrono::seconds;

// Running or sleeping; a zombie waiting for init to reap it counts as dead.
bool alive(pid_t pid) {
  auto stat = readProcStat(pid);
  return stat && stat->state != 'Z' && stat->state != 'X';
}

TEST(TempDir, CreatesAndRemovesItsTree) {
  std::string path;
  {
    TempDir dir;
    path = dir.path();
    writeFile(dir.mkdir("a/b") + "/f", "x");
    EXPECT_EQ(readFile(dir / "a/b/f"), "x");
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Process, CapturesLinesOfBothStreamsAndTheExitStatus) {
  ProcessOptions o;
  o.argv = {"sh", "-c", "echo one; echo two >&2; printf 'no newline'; exit 3"};
  Process p(o);
  EXPECT_EQ(p.waitExit(Deadline::in(seconds(5))), 3);
  auto line = p.waitForLine(
      Stream::kStdout, [](auto& l) { return l == "no newline"; }, Deadline::in(seconds(5)));
  EXPECT_EQ(line, 1u) << p.transcript();
  EXPECT_EQ(p.lines(Stream::kStderr), std::vector<std::string>{"two"});
}

TEST(Process, AppliesEnvironmentOverrides) {
  ::setenv("RNOTIFY_TESTBED_UNSET_ME", "x", 1);
  ProcessOptions o;
  o.argv = {"sh", "-c", "echo \"$RNOTIFY_TESTBED_VAR|${RNOTIFY_TESTBED_UNSET_ME-unset}\""};
  o.env = {{"RNOTIFY_TESTBED_VAR", "set"}, {"RNOTIFY_TESTBED_UNSET_ME", std::nullopt}};
  Process p(o);
  EXPECT_TRUE(p.waitForLine(
      Stream::kStdout, [](auto& l) { return l == "set|unset"; }, Deadline::in(seconds(5))))
      << p.transcript();
}

TEST(Process, WaitForLineGivesUpAtTheDeadlineOrWhenTheStreamEnds) {
  ProcessOptions o;
  o.argv = {"sh", "-c", "echo ready; exec sleep 30"};
  Process p(o);
  auto start = Clock::now();
  EXPECT_FALSE(p.waitForLine(
      Stream::kStdout, [](auto& l) { return l == "never"; }, Deadline::in(milliseconds(300))));
  EXPECT_GE(Clock::now() - start, milliseconds(250));

  ProcessOptions quick;
  quick.argv = {"true"};
  Process q(quick);
  start = Clock::now();
  EXPECT_FALSE(q.waitForLine(
      Stream::kStdout, [](auto&) { return true; }, Deadline::in(seconds(10))));
  EXPECT_LT(Clock::now() - start, seconds(5));
}

TEST(Process, StdinPipe) {
  ProcessOptions o;
  o.argv = {"cat"};
  o.pipeStdin = true;
  Process p(o);
  p.writeStdin("hello\n");
  p.closeStdin();
  EXPECT_TRUE(p.waitForLine(
      Stream::kStdout, [](auto& l) { return l == "hello"; }, Deadline::in(seconds(5))));
  EXPECT_EQ(p.waitExit(Deadline::in(seconds(5))), 0);
}

TEST(Process, DestructorKillsTheWholeFamily) {
  pid_t grandchild = -1;
  {
    ProcessOptions o;
    // setsid: a grandchild that left the process group, like sshd's sessions.
    o.argv = {"sh", "-c", "setsid sleep 300 & echo $!; wait"};
    Process p(o);
    auto line = p.waitForLine(
        Stream::kStdout, [](auto&) { return true; }, Deadline::in(seconds(5)));
    ASSERT_TRUE(line) << p.transcript();
    grandchild = std::stoi(p.lines(Stream::kStdout)[*line]);
    ASSERT_TRUE(alive(grandchild));
  }
  EXPECT_TRUE(waitUntil(Deadline::in(seconds(5)), [&] { return !alive(grandchild); }));
}

TEST(Process, ReportsAProgramThatCannotBeRun) {
  ProcessOptions o;
  o.argv = {"/nonexistent/program"};
  try {
    Process p(o);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/program"), std::string::npos) << e.what();
  }
}

TEST(Netns, NamespacesAreLinkedAndDeleted) {
  if (!Netns::available()) GTEST_SKIP() << "network namespaces unavailable (needs root and iproute2)";
  std::string path;
  {
    Netns a, b;
    path = a.path();
    VethLink link(a, &b, 7);
    std::string addrs = runChecked({"ip", "-o", "addr", "show"}, Deadline::in(seconds(5)), &b);
    EXPECT_NE(addrs.find(link.addressB() + "/30"), std::string::npos) << addrs;
    std::string host = runChecked({"ip", "-o", "addr", "show"}, Deadline::in(seconds(5)));
    EXPECT_EQ(host.find(link.addressB()), std::string::npos) << "namespace addresses leaked to the host";
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Sshd, AcceptsTheClientKeyOnLoopback) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run sshd as a throw-away server";
  if (auto why = Sshd::missing(); !why.empty()) GTEST_SKIP() << why;
  Sshd sshd;
  auto r =
      runCommand({"ssh", "-F", sshd.clientConfig(), "root@127.0.0.1", "echo", "logged-in"}, Deadline::in(seconds(20)));
  EXPECT_EQ(r.stdoutText, "logged-in\n") << r.describe({"ssh"}) << sshd.transcript();
}

// The Watcher's matching, checked against the real inotifywait on a local
// directory (its output format is the one rnotifywait copies).
class WatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/usr/bin/inotifywait", X_OK) != 0) GTEST_SKIP() << "inotifywait missing (install inotify-tools)";
    WatcherOptions o;
    o.program = "inotifywait";
    o.cookie = false;  // inotifywait 3.22 has no %c
    o.args = {"-r"};
    o.path = dir_.path();
    watcher_ = std::make_unique<Watcher>(o);
    ASSERT_TRUE(watcher_->established());
  }
  TempDir dir_;
  std::unique_ptr<Watcher> watcher_;
};

TEST_F(WatcherTest, MatchesEventsInOrderWithRelativePaths) {
  dir_.mkdir("d");
  // inotifywait races with new directories; wait until it has seen d.
  ASSERT_TRUE(watcher_->expectSequence({{"CREATE,ISDIR", "d"}}));
  writeFile(dir_ / "d/f", "x");
  EXPECT_TRUE(watcher_->expectSequence({{"CREATE,!ISDIR", "d/f"}, {"CLOSE_WRITE", "d/f"}}));
  std::filesystem::rename(dir_ / "d/f", dir_ / "g");
  EXPECT_TRUE(watcher_->expectAdjacent({{"MOVED_FROM", "d/f"}, {"MOVED_TO", "g"}}));
  std::filesystem::remove(dir_ / "g");
  EXPECT_TRUE(watcher_->expectNoneBefore({"CREATE", "*"}, {"DELETE", "g"}));
}

TEST_F(WatcherTest, AFailedExpectationSaysWhatItExpectedAndWhatCame) {
  writeFile(dir_ / "f", "x");
  auto r = watcher_->expectSequence({{"CREATE", "f"}, {"DELETE", "f"}}, milliseconds(500));
  ASSERT_FALSE(r);
  std::string msg = r.message();
  EXPECT_NE(msg.find("[seen]    CREATE on 'f'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[MISSING] DELETE on 'f'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("|f|CLOSE_WRITE,CLOSE"), std::string::npos) << msg;
  EXPECT_NE(msg.find("err| Watches established."), std::string::npos) << msg;
}

TEST_F(WatcherTest, AdjacencyIsChecked) {
  writeFile(dir_ / "f", "x");
  writeFile(dir_ / "g", "y");
  EXPECT_FALSE(watcher_->expectAdjacent({{"CREATE", "f"}, {"CREATE", "g"}}, milliseconds(2000)));
  // A failed check consumes nothing.
  EXPECT_TRUE(watcher_->expectSequence({{"CREATE", "f"}, {"CREATE", "g"}}));
}

class SshfsBedTest : public ::testing::TestWithParam<bool> {};

TEST_P(SshfsBedTest, ServerAndBothClientsShareTheExport) {
  if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
  bool netns = GetParam();
  if (netns && !Netns::available()) GTEST_SKIP() << "network namespaces unavailable (needs root and iproute2)";
  std::string mountA;
  {
    SshfsBedOptions o;
    o.useNetns = netns;
    SshfsBed bed(o);
    mountA = bed.mountA().path();
    EXPECT_EQ(bed.usesNetns(), netns);
    auto m = findMount(mountA);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->fstype, "fuse.sshfs");

    writeFile(bed.server("from-server"), "s");
    EXPECT_EQ(readFile(bed.b("from-server")), "s") << bed.transcript();
    writeFile(bed.b("from-b"), "b");
    EXPECT_EQ(readFile(bed.server("from-b")), "b");
    EXPECT_EQ(readFile(bed.a("from-b")), "b") << bed.transcript();
    if (netns) {
      // B acts from its own namespace, where it has its own address.
      auto r = bed.runAsB({"ip", "-o", "addr", "show"});
      EXPECT_NE(r.stdoutText.find("10.213.2.2"), std::string::npos) << r.stdoutText;
    }
  }
  EXPECT_FALSE(findMount(mountA)) << "the mount outlived the bed";
}

INSTANTIATE_TEST_SUITE_P(Topologies, SshfsBedTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Netns" : "Loopback"; });

}  // namespace
}  // namespace rnotify::testbed
