// What only the inotify backend does, on real kernel watches in a temporary
// directory: one kernel watch per directory however many subscriptions share
// it, kept across renames and dropped when a directory leaves the tree, and
// its own reads of a new directory not reported. What every backend promises
// is in watcher_contract_test.cc.
#include "watch/inotify_watcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "watcher_fixture.h"

namespace rnotify {
namespace {

namespace fs = std::filesystem;

class InotifyWatcherTest : public watchtest::WatcherFixture {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(makeRoot("rnotify-watch-"));
    auto w = InotifyWatcher::create(sink_);
    ASSERT_TRUE(w.ok()) << w.error().message;
    use(std::move(*w));
  }
};

TEST_F(InotifyWatcherTest, ReadingANewDirectoryIsNotReportedAsSomeonesRead) {
  SubscribeOptions options;
  options.mask = IN_ALL_EVENTS;
  options.recursive = true;
  auto sub = watcher_->subscribe(root_, options);
  ASSERT_TRUE(sub.ok());
  fs::create_directories(root_ + "/n/m");
  drainUntil([&] { return count(*sub, IN_CREATE | IN_ISDIR, "n", "m") == 1; }, "CREATE n/m");
  drainQuiet();
  for (auto& e : sink_.events) {
    EXPECT_EQ(e.mask & (IN_OPEN | IN_ACCESS | IN_CLOSE_NOWRITE), 0u) << "rnotify's own read reported: " << describe(e);
  }
  DIR* d = ::opendir((root_ + "/n").c_str());  // someone else's read is still reported
  ASSERT_NE(d, nullptr);
  ::closedir(d);
  drainUntil(
      [&] { return count(*sub, IN_OPEN | IN_ISDIR, "", "n") == 1 && count(*sub, IN_OPEN | IN_ISDIR, "n", "") == 1; },
      "OPEN of n on both watches");
}

TEST_F(InotifyWatcherTest, SubscriptionsOnOneDirectoryShareOneKernelWatch) {
  auto a = subscribe(root_, false);
  auto b = subscribe(root_, false, IN_CREATE);
  EXPECT_EQ(watcher_->kernelWatchCount(), 1u);
  touch(root_ + "/f");
  drainUntil([&] { return count(a, IN_CREATE, "", "f") == 1 && count(b, IN_CREATE, "", "f") == 1; }, "both");
  drainQuiet();
  EXPECT_EQ(count(b, IN_CLOSE_WRITE, "", "f"), 0u) << "b asked only for IN_CREATE";
  watcher_->unsubscribe(a);
  EXPECT_EQ(watcher_->kernelWatchCount(), 1u);
  touch(root_ + "/g");
  drainUntil([&] { return count(b, IN_CREATE, "", "g") == 1; }, "b still served");
  watcher_->unsubscribe(b);
  EXPECT_EQ(watcher_->kernelWatchCount(), 0u);
}

TEST_F(InotifyWatcherTest, DirectoryRenamedInsideTheTreeKeepsItsWatches) {
  fs::create_directories(root_ + "/a/sub");
  auto sub = subscribe(root_, true);
  fs::rename(root_ + "/a", root_ + "/b");
  touch(root_ + "/b/sub/f");
  drainUntil([&] { return count(sub, IN_CREATE, "b/sub", "f") == 1; }, "CREATE under the new name");
  uint32_t cookie = 0;
  for (auto& e : sink_.events) {
    if ((e.mask & IN_MOVED_FROM) && e.name == "a") cookie = e.cookie;
  }
  EXPECT_NE(cookie, 0u);
  EXPECT_EQ(count(sub, IN_MOVED_TO | IN_ISDIR, "", "b"), 1u);
  EXPECT_EQ(watcher_->kernelWatchCount(), 3u);
}

TEST_F(InotifyWatcherTest, DirectoryMovedOutOfTheTreeIsNoLongerWatched) {
  fs::create_directories(root_ + "/in/x");
  fs::create_directories(root_ + "/out");
  auto sub = subscribe(root_ + "/in", true);
  EXPECT_EQ(watcher_->kernelWatchCount(), 2u);
  fs::rename(root_ + "/in/x", root_ + "/out/x");
  drainUntil([&] { return count(sub, IN_MOVED_FROM | IN_ISDIR, "", "x") == 1; }, "MOVED_FROM x");
  drainQuiet();
  EXPECT_EQ(watcher_->kernelWatchCount(), 1u);
  touch(root_ + "/out/x/f");
  drainQuiet();
  EXPECT_EQ(count(sub, IN_CREATE, "x", "f"), 0u);
}

// Paths are built from names: deep below a root, after a rename of a
// directory between, and for two subscriptions rooted at different depths.
TEST_F(InotifyWatcherTest, PathsFollowRenamesAtEveryDepth) {
  fs::create_directories(root_ + "/a/b/c/d/e");
  auto outer = subscribe(root_, true);
  auto inner = subscribe(root_ + "/a/b", true);
  touch(root_ + "/a/b/c/d/e/f1");
  drainUntil([&] { return count(inner, IN_CREATE, "c/d/e", "f1") == 1; }, "CREATE f1 for inner");
  EXPECT_EQ(count(outer, IN_CREATE, "a/b/c/d/e", "f1"), 1u);
  fs::rename(root_ + "/a/b/c", root_ + "/a/b/x");
  fs::rename(root_ + "/a", root_ + "/y");
  touch(root_ + "/y/b/x/d/e/f2");
  drainUntil([&] { return count(inner, IN_CREATE, "x/d/e", "f2") == 1; }, "CREATE f2 under the new names");
  EXPECT_EQ(count(outer, IN_CREATE, "y/b/x/d/e", "f2"), 1u);
  // A new subscription finds the existing watch under its new path.
  const size_t watches = watcher_->kernelWatchCount();
  auto deep = subscribe(root_ + "/y/b/x/d", false, IN_CREATE);
  EXPECT_EQ(watcher_->kernelWatchCount(), watches);
  touch(root_ + "/y/b/x/d/f3");
  drainUntil([&] { return count(deep, IN_CREATE, "", "f3") == 1; }, "CREATE f3 for deep");
  EXPECT_EQ(count(inner, IN_CREATE, "x/d", "f3"), 1u);
  watcher_->unsubscribe(outer);
  watcher_->unsubscribe(inner);
  EXPECT_EQ(watcher_->kernelWatchCount(), 1u) << "only deep's directory stays watched";
  touch(root_ + "/y/b/x/d/f4");
  drainUntil([&] { return count(deep, IN_CREATE, "", "f4") == 1; }, "CREATE f4 for deep alone");
}

}  // namespace
}  // namespace rnotify
