// The problem rnotify solves, shown with the real inotifywait: on an sshfs
// mount, inotify reports what this host does through the mount, and nothing
// of what the server or another client does, although `ls` shows those files.
// This test passing means the problem exists here; rnotifywait's tests
// (sshfs_remote_events_test.cc) show the same scenes with the events present.
#include <gtest/gtest.h>
#include <unistd.h>

#include "sshfs_bed.h"
#include "watcher.h"

namespace rnotify::testbed {
namespace {

TEST(ProblemStatement, InotifyOnAnSshfsMountMissesChangesMadeElsewhere) {
  if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
  if (::access("/usr/bin/inotifywait", X_OK) != 0) GTEST_SKIP() << "inotifywait missing (install inotify-tools)";
  SshfsBed bed;

  WatcherOptions w = bed.watchA({});
  w.program = "inotifywait";
  w.cookie = false;  // inotifywait 3.22 has no %c
  Watcher inotifywait(w);
  ASSERT_TRUE(inotifywait.established());

  // The server and client B each create a file...
  writeFile(bed.server("made-on-server"), "s\n");
  writeFile(bed.b("made-on-b"), "b\n");

  // ...which client A can see (the directory was never listed on A, so no
  // sshfs cache hides them yet)...
  auto ls = runCommand({"ls", bed.mountA().path()}, Deadline::in(std::chrono::seconds(10)));
  EXPECT_NE(ls.stdoutText.find("made-on-server"), std::string::npos) << ls.describe({"ls"});
  EXPECT_NE(ls.stdoutText.find("made-on-b"), std::string::npos) << ls.describe({"ls"});

  // ...but inotify on A reports only what A itself does: the create through
  // A's mount comes, the two earlier ones never do.
  writeFile(bed.a("made-on-a"), "a\n");
  EXPECT_TRUE(inotifywait.expectNoneBefore({"CREATE", "made-on-server"}, {"CREATE", "made-on-a"}));
  inotifywait.process().terminate();
  for (const auto& e : inotifywait.events()) {
    EXPECT_NE(e.path, "made-on-server") << inotifywait.transcript();
    EXPECT_NE(e.path, "made-on-b") << inotifywait.transcript();
  }
}

}  // namespace
}  // namespace rnotify::testbed
