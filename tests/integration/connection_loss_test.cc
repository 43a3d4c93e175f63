// Never silence: when the agent on the server goes away in the middle of a
// watch, rnotifywait says so on stderr (the connection loss, and that events
// were lost) and keeps reporting what this host does through the mount.
#include <gtest/gtest.h>
#include <signal.h>

#include "common/read_file.h"
#include "process.h"
#include "product.h"
#include "sshfs_bed.h"
#include "temp_dir.h"
#include "watcher.h"

namespace rnotify::testbed {
namespace {

bool contains(const std::string& line, const char* text) { return line.find(text) != std::string::npos; }

TEST(ConnectionLoss, LosingTheAgentIsReportedAndLocalEventsGoOn) {
  if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
  if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
  SshfsBed bed;
  Watcher a(bed.watchA({"-r"}));
  ASSERT_TRUE(a.established()) << bed.transcript();
  writeFile(bed.server("before"), "x\n");
  ASSERT_TRUE(a.expectSequence({{"CLOSE_WRITE,REMOTE", "before"}}));

  int killed = 0;
  for (pid_t pid : descendantsOf(bed.sshd().pid())) {
    auto comm = rnotify::readFile("/proc/" + std::to_string(pid) + "/comm");
    if (comm.ok() && comm->rfind("rnotifyd", 0) == 0 && ::kill(pid, SIGKILL) == 0) ++killed;
  }
  ASSERT_EQ(killed, 1) << "expected exactly one agent below sshd " << bed.sshd().pid();

  auto deadline = Deadline::in(std::chrono::seconds(15));
  EXPECT_TRUE(a.process().waitForLine(
      Stream::kStderr, [](const std::string& l) { return contains(l, "lost the connection"); }, deadline))
      << a.transcript();
  EXPECT_TRUE(a.process().waitForLine(
      Stream::kStderr, [](const std::string& l) { return contains(l, "Q_OVERFLOW,REMOTE"); }, deadline))
      << a.transcript();
  EXPECT_TRUE(a.process().running()) << "rnotifywait must go on with local events";

  writeFile(bed.a("after"), "y\n");
  EXPECT_TRUE(a.expectSequence({{"CLOSE_WRITE,!REMOTE", "after"}})) << a.transcript();
}

}  // namespace
}  // namespace rnotify::testbed
