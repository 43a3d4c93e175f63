// Tests of the test bed itself (tests/testbed): if these fail, every other
// integration test's verdict is meaningless. They need no product binary.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "mount_table.h"
#include "netns.h"
#include "process.h"
#include "sshd.h"
#include "sshfs_bed.h"
#include "temp_dir.h"

namespace rnotify::testbed {
namespace {

using std::chrono::seconds;

bool alive(pid_t pid) { return ::kill(pid, 0) == 0; }

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
  auto line = p.waitForLine(Stream::kStdout, [](auto& l) { return l == "no newline"; }, Deadline::in(seconds(5)));
  EXPECT_EQ(line, 1u) << p.transcript();
  EXPECT_EQ(p.lines(Stream::kStderr), std::vector<std::string>{"two"});
}

TEST(Process, AppliesEnvironmentOverrides) {
  ::setenv("RNOTIFY_TESTBED_UNSET_ME", "x", 1);
  ProcessOptions o;
  o.argv = {"sh", "-c", "echo \"$RNOTIFY_TESTBED_VAR|${RNOTIFY_TESTBED_UNSET_ME-unset}\""};
  o.env = {{"RNOTIFY_TESTBED_VAR", "set"}, {"RNOTIFY_TESTBED_UNSET_ME", std::nullopt}};
  Process p(o);
  EXPECT_TRUE(p.waitForLine(Stream::kStdout, [](auto& l) { return l == "set|unset"; }, Deadline::in(seconds(5))))
      << p.transcript();
}

TEST(Process, WaitForLineGivesUpAtTheDeadlineOrWhenTheStreamEnds) {
  ProcessOptions o;
  o.argv = {"sh", "-c", "echo ready; exec sleep 30"};
  Process p(o);
  auto start = Clock::now();
  EXPECT_FALSE(p.waitForLine(Stream::kStdout, [](auto& l) { return l == "never"; }, Deadline::in(milliseconds(300))));
  EXPECT_GE(Clock::now() - start, milliseconds(250));

  ProcessOptions quick;
  quick.argv = {"true"};
  Process q(quick);
  start = Clock::now();
  EXPECT_FALSE(q.waitForLine(Stream::kStdout, [](auto&) { return true; }, Deadline::in(seconds(10))));
  EXPECT_LT(Clock::now() - start, seconds(5));
}

TEST(Process, StdinPipe) {
  ProcessOptions o;
  o.argv = {"cat"};
  o.pipeStdin = true;
  Process p(o);
  p.writeStdin("hello\n");
  p.closeStdin();
  EXPECT_TRUE(p.waitForLine(Stream::kStdout, [](auto& l) { return l == "hello"; }, Deadline::in(seconds(5))));
  EXPECT_EQ(p.waitExit(Deadline::in(seconds(5))), 0);
}

TEST(Process, DestructorKillsTheWholeFamily) {
  pid_t grandchild = -1;
  {
    ProcessOptions o;
    // setsid: a grandchild that left the process group, like sshd's sessions.
    o.argv = {"sh", "-c", "setsid sleep 300 & echo $!; wait"};
    Process p(o);
    auto line = p.waitForLine(Stream::kStdout, [](auto&) { return true; }, Deadline::in(seconds(5)));
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
  auto r = runCommand({"ssh", "-F", sshd.clientConfig(), "root@127.0.0.1", "echo", "logged-in"},
                      Deadline::in(seconds(20)));
  EXPECT_EQ(r.stdoutText, "logged-in\n") << r.describe({"ssh"}) << sshd.transcript();
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
