// Issue 3, end to end: client A watches its sshfs mount with `rnotifywait -m -r`
// and sees, marked REMOTE and in order, every change made on the server
// itself and through another client's mount (B). The scenes are the ones
// problem_statement_test.cc shows inotify missing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <iostream>

#include "product.h"
#include "sshfs_bed.h"
#include "watcher.h"

namespace rnotify::testbed {
namespace {

enum class Writer { kServer, kClientB };

class SshfsRemoteEvents : public ::testing::TestWithParam<Writer> {
 protected:
  void SetUp() override {
    if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
    if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
    bed_ = std::make_unique<SshfsBed>();
  }

  void TearDown() override {
    if (HasFailure() && bed_) std::cerr << "--- the bed:\n" << bed_->transcript();
  }

  // Starts `rnotifywait -m -r` on A's mount (or, non-recursive, below it).
  Watcher& watch(std::vector<std::string> args = {"-r"}, const std::string& rel = "") {
    watcher_ = std::make_unique<Watcher>(bed_->watchA(std::move(args), rel));
    return *watcher_;
  }

  // Runs a shell command in the writer's view of the export (the export
  // directory itself, or B's mount, from B's namespace).
  void act(const std::string& command) {
    bool server = GetParam() == Writer::kServer;
    std::string root = server ? bed_->exportDir() : bed_->mountB().path();
    std::vector<std::string> argv{"sh", "-c", "cd '" + root + "' && " + command};
    CommandResult r = server ? runCommand(argv, Deadline::in(std::chrono::seconds(20))) : bed_->runAsB(argv);
    ASSERT_EQ(r.exitCode, 0) << r.describe(argv) << bed_->transcript();
  }

  // Creates a file as the writer and waits until A has seen it completed, so
  // that the step under test starts from a quiet watch.
  void givenFile(const std::string& rel) {
    ASSERT_NO_FATAL_FAILURE(act("echo given > " + rel));
    ASSERT_TRUE(watcher_->expectSequence({{"CLOSE_WRITE,REMOTE", rel}}));
  }

  void givenDir(const std::string& rel) {
    ASSERT_NO_FATAL_FAILURE(act("mkdir " + rel));
    ASSERT_TRUE(watcher_->expectSequence({{"CREATE,ISDIR,REMOTE", rel}}));
  }

  std::unique_ptr<SshfsBed> bed_;
  std::unique_ptr<Watcher> watcher_;  // destroyed before the bed
};

TEST_P(SshfsRemoteEvents, CreateModifyCloseWrite) {
  auto& a = watch();
  ASSERT_TRUE(a.established());
  act("echo hello > f");
  EXPECT_TRUE(a.expectSequence({{"CREATE,REMOTE,!ISDIR", "f"}, {"MODIFY,REMOTE", "f"}, {"CLOSE_WRITE,REMOTE", "f"}}));
  act("echo more >> f");
  EXPECT_TRUE(a.expectSequence({{"MODIFY,REMOTE", "f"}, {"CLOSE_WRITE,REMOTE", "f"}}));
}

TEST_P(SshfsRemoteEvents, ChmodIsAttrib) {
  auto& a = watch();
  ASSERT_TRUE(a.established());
  givenFile("f");
  act("chmod 600 f");
  EXPECT_TRUE(a.expectSequence({{"ATTRIB,REMOTE", "f"}}));
}

TEST_P(SshfsRemoteEvents, ChownIsAttrib) {
  auto& a = watch();
  ASSERT_TRUE(a.established());
  givenFile("f");
  act("chown 1:1 f");
  EXPECT_TRUE(a.expectSequence({{"ATTRIB,REMOTE", "f"}}));
}

TEST_P(SshfsRemoteEvents, UtimesIsAttrib) {
  auto& a = watch();
  ASSERT_TRUE(a.established());
  givenFile("f");
  act("touch -d '2001-02-03 04:05:06' f");
  EXPECT_TRUE(a.expectSequence({{"ATTRIB,REMOTE", "f"}}));
}

TEST_P(SshfsRemoteEvents, XattrIsAttrib) {
  // SFTP has no extended attributes: sshfs cannot set them, only the server can.
  if (GetParam() == Writer::kClientB) GTEST_SKIP() << "sshfs (SFTP) does not support extended attributes";
  auto& a = watch();
  ASSERT_TRUE(a.established());
  givenFile("f");
  act("setfattr -n user.rnotify -v 1 f");
  EXPECT_TRUE(a.expectSequence({{"ATTRIB,REMOTE", "f"}}));
}

TEST_P(SshfsRemoteEvents, Delete) {
  auto& a = watch();
  ASSERT_TRUE(a.established());
  givenFile("f");
  act("rm f");
  EXPECT_TRUE(a.expectSequence({{"DELETE,REMOTE,!ISDIR", "f"}}));
}

TEST_P(SshfsRemoteEvents, RenameWithinADirectoryIsOnePair) {
  auto& a = watch();
  ASSERT_TRUE(a.established());
  givenFile("f");
  act("mv f g");
  EXPECT_TRUE(a.expectMove({"MOVED_FROM,REMOTE", "f"}, {"MOVED_TO,REMOTE", "g"}));
}

TEST_P(SshfsRemoteEvents, RenameAcrossDirectoriesIsOnePair) {
  auto& a = watch();
  ASSERT_TRUE(a.established());
  givenDir("d1");
  givenDir("d2");
  givenFile("d1/f");
  act("mv d1/f d2/g");
  EXPECT_TRUE(a.expectMove({"MOVED_FROM,REMOTE", "d1/f"}, {"MOVED_TO,REMOTE", "d2/g"}));
}

TEST_P(SshfsRemoteEvents, NestedDirectoriesMadeAtOnceAreAllReported) {
  auto& a = watch();
  ASSERT_TRUE(a.established());
  // Faster than any watcher can add watches to the new directories: those
  // below "a" exist before a watch on "a" does.
  act("mkdir -p a/b/c && touch a/b/c/f");
  EXPECT_TRUE(a.expectSequence({{"CREATE,ISDIR,REMOTE", "a"},
                                {"CREATE,ISDIR,REMOTE", "a/b"},
                                {"CREATE,ISDIR,REMOTE", "a/b/c"},
                                {"CREATE,REMOTE,!ISDIR", "a/b/c/f"}}));
  // And the new directories are watched from then on.
  act("echo x > a/b/c/g");
  EXPECT_TRUE(a.expectSequence({{"CREATE,REMOTE", "a/b/c/g"}, {"CLOSE_WRITE,REMOTE", "a/b/c/g"}}));
}

TEST_P(SshfsRemoteEvents, RmdirIsDeleteIsdir) {
  auto& a = watch();
  ASSERT_TRUE(a.established());
  givenDir("d");
  act("rmdir d");
  EXPECT_TRUE(a.expectSequence({{"DELETE,ISDIR,REMOTE", "d"}}));
}

TEST_P(SshfsRemoteEvents, RemovingTheWatchedDirectoryIsDeleteSelf) {
  // Created on the server before the watch, so A's mount has it.
  ASSERT_NO_FATAL_FAILURE(act("mkdir sub"));
  auto& a = watch({}, "sub");
  ASSERT_TRUE(a.established());
  act("rmdir sub");
  EXPECT_TRUE(a.expectSequence({{"DELETE_SELF,REMOTE", ""}}));
}

// Without network namespaces the bed runs on loopback (B connects from
// 127.0.0.2); the product must work there too.
TEST(SshfsRemoteEventsOnLoopback, ServerAndClientBWritesAreRemote) {
  if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
  if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
  SshfsBedOptions o;
  o.useNetns = false;
  SshfsBed bed(o);
  Watcher a(bed.watchA({"-r"}));
  ASSERT_TRUE(a.established()) << bed.transcript();
  writeFile(bed.server("from-server"), "s\n");
  EXPECT_TRUE(a.expectSequence({{"CREATE,REMOTE", "from-server"}, {"CLOSE_WRITE,REMOTE", "from-server"}}));
  writeFile(bed.b("from-b"), "b\n");
  EXPECT_TRUE(a.expectSequence({{"CREATE,REMOTE", "from-b"}, {"CLOSE_WRITE,REMOTE", "from-b"}}));
}

INSTANTIATE_TEST_SUITE_P(Writers, SshfsRemoteEvents, ::testing::Values(Writer::kServer, Writer::kClientB),
                         [](const auto& info) {
                           return info.param == Writer::kServer ? "OnServer" : "ThroughClientB";
                         });

}  // namespace
}  // namespace rnotify::testbed
