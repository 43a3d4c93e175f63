// The C API on local paths: events shaped like inotifywait's output, a
// descriptor that is readable exactly while events wait, and errors that name
// the path. (Remote paths are covered by the integration tests.)
#include <errno.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "rnotify/rnotify.h"

namespace {

namespace fs = std::filesystem;

class CApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/rnotify-capi-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    rn_ = rnotify_init(RNOTIFY_CLOEXEC);
    ASSERT_NE(rn_, nullptr);
  }
  void TearDown() override {
    rnotify_close(rn_);
    fs::remove_all(dir_);
  }
  // The next event whose name is name (5 s at most).
  bool nextNamed(const std::string& name, rnotify_event* ev) {
    for (int i = 0; i < 100; ++i) {
      int got = rnotify_next(rn_, ev, 5000);
      if (got != 1) return false;
      if (name == ev->name) return true;
    }
    return false;
  }

  std::string dir_;
  rnotify_t* rn_ = nullptr;
};

TEST_F(CApiTest, LocalEventsLookLikeInotifywaitOutput) {
  int wd = rnotify_add_watch(rn_, dir_.c_str(), IN_CREATE | IN_CLOSE_WRITE, 0);
  ASSERT_GT(wd, 0) << rnotify_last_error(rn_);
  EXPECT_STREQ(rnotify_watch_source(rn_, wd), "local inotify");
  std::ofstream(dir_ + "/f") << "x";
  rnotify_event ev;
  ASSERT_TRUE(nextNamed("f", &ev));
  EXPECT_EQ(ev.wd, wd);
  EXPECT_EQ(ev.mask, IN_CREATE);
  EXPECT_EQ(ev.mask & IN_REMOTE, 0u);
  EXPECT_EQ(ev.seq, 0u);
  EXPECT_EQ(std::string(ev.path), dir_ + "/");
}

TEST_F(CApiTest, RecursiveWatchNamesTheSubdirectory) {
  fs::create_directories(dir_ + "/a/b");
  std::string given = dir_ + "//";  // printed back as given, with one '/'
  int wd = rnotify_add_watch(rn_, given.c_str(), IN_CREATE, RNOTIFY_RECURSIVE);
  ASSERT_GT(wd, 0) << rnotify_last_error(rn_);
  std::ofstream(dir_ + "/a/b/g") << "x";
  rnotify_event ev;
  ASSERT_TRUE(nextNamed("g", &ev));
  EXPECT_EQ(std::string(ev.path), dir_ + "/a/b/");
}

TEST_F(CApiTest, DescriptorIsReadableExactlyWhileEventsWait) {
  ASSERT_GT(rnotify_add_watch(rn_, dir_.c_str(), IN_CREATE, 0), 0);
  struct pollfd p = {rnotify_fd(rn_), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "readable with nothing to read";
  std::ofstream(dir_ + "/one") << "x";
  std::ofstream(dir_ + "/two") << "x";
  ASSERT_EQ(::poll(&p, 1, 5000), 1) << "not readable after a change";
  rnotify_event ev;
  ASSERT_EQ(rnotify_next(rn_, &ev, 0), 1);
  EXPECT_STREQ(ev.name, "one");
  ASSERT_EQ(::poll(&p, 1, 5000), 1) << "a second event waits, so the fd must stay readable";
  ASSERT_EQ(rnotify_next(rn_, &ev, 0), 1);
  EXPECT_STREQ(ev.name, "two");
  EXPECT_EQ(rnotify_next(rn_, &ev, 0), 0);
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "still readable after everything was read";
}

TEST_F(CApiTest, RecursiveWatchOnAFileWatchesTheFile) {
  std::string file = dir_ + "/file";
  std::ofstream(file) << "x";
  int wd = rnotify_add_watch(rn_, file.c_str(), IN_MODIFY, RNOTIFY_RECURSIVE);
  ASSERT_GT(wd, 0) << rnotify_last_error(rn_);
  std::ofstream(file, std::ios::app) << "y";
  rnotify_event ev;
  ASSERT_EQ(rnotify_next(rn_, &ev, 5000), 1);
  EXPECT_EQ(ev.mask, IN_MODIFY);
  EXPECT_EQ(std::string(ev.path), file);
  EXPECT_STREQ(ev.name, "");
}

TEST_F(CApiTest, RecursiveWatchDoesNotReportItsOwnDirectoryListing) {
  fs::create_directories(dir_ + "/a/b");
  ASSERT_GT(rnotify_add_watch(rn_, dir_.c_str(), IN_ALL_EVENTS, RNOTIFY_RECURSIVE), 0) << rnotify_last_error(rn_);
  rnotify_event ev;
  EXPECT_EQ(rnotify_next(rn_, &ev, 300), 0) << "unexpected event " << ev.path << " " << ev.name << " " << ev.mask;
}

TEST_F(CApiTest, TimesOutWithZeroWhenNothingHappens) {
  ASSERT_GT(rnotify_add_watch(rn_, dir_.c_str(), IN_CREATE, 0), 0);
  rnotify_event ev;
  EXPECT_EQ(rnotify_next(rn_, &ev, 50), 0);
}

TEST_F(CApiTest, ErrorsNameThePathAndSetErrno) {
  std::string missing = dir_ + "/missing";
  EXPECT_EQ(rnotify_add_watch(rn_, missing.c_str(), IN_CREATE, 0), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_NE(std::string(rnotify_last_error(rn_)).find(missing), std::string::npos) << rnotify_last_error(rn_);

  std::string file = dir_ + "/file";
  std::ofstream(file) << "x";
  EXPECT_EQ(rnotify_add_watch(rn_, file.c_str(), IN_CREATE | IN_ONLYDIR, 0), -1);
  EXPECT_EQ(errno, ENOTDIR);
  EXPECT_EQ(rnotify_add_watch(rn_, dir_.c_str(), 0, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(rnotify_rm_watch(rn_, 12345), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(rnotify_add_watch(nullptr, dir_.c_str(), IN_CREATE, 0), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST_F(CApiTest, RemovingAWatchReportsIgnoredOnceAndStopsEvents) {
  int wd = rnotify_add_watch(rn_, dir_.c_str(), IN_CREATE, 0);
  ASSERT_GT(wd, 0);
  ASSERT_EQ(rnotify_rm_watch(rn_, wd), 0);
  rnotify_event ev;
  ASSERT_EQ(rnotify_next(rn_, &ev, 1000), 1);
  EXPECT_EQ(ev.wd, wd);
  EXPECT_EQ(ev.mask, IN_IGNORED);
  std::ofstream(dir_ + "/late") << "x";
  EXPECT_EQ(rnotify_next(rn_, &ev, 200), 0) << "event after rm_watch: " << ev.name;
  EXPECT_EQ(rnotify_watch_source(rn_, wd), nullptr);
}

TEST_F(CApiTest, DeletingTheWatchedDirectoryEndsTheWatch) {
  std::string sub = dir_ + "/sub";
  fs::create_directories(sub);
  int wd = rnotify_add_watch(rn_, sub.c_str(), IN_DELETE_SELF, 0);
  ASSERT_GT(wd, 0);
  fs::remove(sub);
  rnotify_event ev;
  ASSERT_EQ(rnotify_next(rn_, &ev, 5000), 1);
  EXPECT_EQ(ev.mask, IN_DELETE_SELF);
  ASSERT_EQ(rnotify_next(rn_, &ev, 5000), 1);
  EXPECT_EQ(ev.mask, IN_IGNORED);
  EXPECT_EQ(rnotify_next(rn_, &ev, 100), 0);
}

// A scan of a large tree is made in slices: an application that polls
// rnotify_fd() and calls rnotify_next(rn, &ev, 0) gets control back between
// them (the call returns 0, the descriptor stays readable), and the change
// still arrives. A call that may wait takes the whole scan.
TEST_F(CApiTest, AScanOfALargeTreeGivesControlBackBetweenSlices) {
  for (int d = 0; d < 3000; ++d)
    fs::create_directories(dir_ + "/d" + std::to_string(d / 100) + "/" + std::to_string(d));
  const int wd = rnotify_add_watch(rn_, dir_.c_str(), IN_CREATE, RNOTIFY_POLL | RNOTIFY_RECURSIVE);
  ASSERT_GT(wd, 0) << rnotify_last_error(rn_);
  std::ofstream(dir_ + "/d29/2999/late") << "x";
  int returnedNothing = 0;
  bool seen = false;
  for (int i = 0; i < 100000 && !seen; ++i) {
    pollfd p{rnotify_fd(rn_), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1) << "the descriptor did not become readable";
    rnotify_event ev;
    const int got = rnotify_next(rn_, &ev, 0);
    ASSERT_GE(got, 0);
    if (got == 0) ++returnedNothing;
    seen = got == 1 && std::string(ev.name) == "late";
  }
  ASSERT_TRUE(seen);
  EXPECT_GE(returnedNothing, 3) << "the scan was made in one call";

  std::ofstream(dir_ + "/d0/0/later") << "x";
  rnotify_event ev;
  ASSERT_EQ(rnotify_next(rn_, &ev, 10000), 1);
  EXPECT_STREQ(ev.name, "later");
  EXPECT_EQ(ev.mask, IN_CREATE | IN_POLLED);
}

// Added without waiting, a polled watch's first scan is made by
// rnotify_next(): until it is complete the watch says "connecting" (a change
// then is part of the baseline), and a change after that is reported.
TEST_F(CApiTest, APolledWatchAddedWithoutWaitingSaysConnectingUntilItsFirstScanIsComplete) {
  for (int d = 0; d < 3000; ++d)
    fs::create_directories(dir_ + "/d" + std::to_string(d / 100) + "/" + std::to_string(d));
  const int wd = rnotify_add_watch(rn_, dir_.c_str(), IN_CREATE, RNOTIFY_POLL | RNOTIFY_RECURSIVE | RNOTIFY_NONBLOCK);
  ASSERT_GT(wd, 0) << rnotify_last_error(rn_);
  auto source = [&] { return std::string(rnotify_watch_source(rn_, wd)); };
  EXPECT_EQ(source().rfind(RNOTIFY_SOURCE_CONNECTING, 0), 0u) << source();
  for (int i = 0; i < 100000 && source().rfind(RNOTIFY_SOURCE_CONNECTING, 0) == 0; ++i) {
    pollfd p{rnotify_fd(rn_), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1) << "the descriptor did not become readable";
    rnotify_event ev;
    ASSERT_EQ(rnotify_next(rn_, &ev, 0), 0);
  }
  EXPECT_NE(source().find("scans of the mount (asked for)"), std::string::npos) << source();
  std::ofstream(dir_ + "/d29/2999/late") << "x";
  rnotify_event ev;
  ASSERT_EQ(rnotify_next(rn_, &ev, 10000), 1);
  EXPECT_STREQ(ev.name, "late");
}

}  // namespace
