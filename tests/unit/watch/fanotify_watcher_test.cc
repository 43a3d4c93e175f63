// The fanotify backend on real filesystem marks (needs root; skipped
// otherwise): the same paths, masks and end of watch as the inotify backend,
// a tree created at once without a race, renames with one cookie, directory
// handles resolved across renames and removals, the acting pid, and the
// automatic choice, which watches with inotify and pids first (FUSE too).
//
// A filesystem mark sees the whole filesystem, including whatever else this
// machine does meanwhile, so "nothing else came" is checked with a barrier: a
// file created after the operations under test, whose event comes after
// theirs in the one fanotify queue.
#include "watch/fanotify_watcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "watch/auto_watcher.h"

namespace rnotify {
namespace {

namespace fs = std::filesystem;

struct Seen {
  SubscriptionId sub;
  uint32_t mask;
  uint32_t cookie;
  std::string dir;
  std::string name;
  int pid;
};

class Collector : public EventSink {
 public:
  void onEvent(SubscriptionId sub, uint32_t mask, uint32_t cookie, std::string_view dir, std::string_view name,
               int pid) override {
    events.push_back({sub, mask, cookie, std::string(dir), std::string(name), pid});
  }
  std::vector<Seen> events;
};

class FanotifyWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "fanotify filesystem marks need root";
    char pattern[] = "/tmp/rnotify-fanotify-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    ASSERT_TRUE(use(makeFanotify()));
  }
  void TearDown() override {
    watcher_.reset();
    for (const std::string& mount : mounts_) ::umount2(mount.c_str(), MNT_DETACH);
    if (!root_.empty()) fs::remove_all(root_);
  }

  std::unique_ptr<Watcher> makeFanotify() {
    auto w = FanotifyWatcher::create(sink_);
    EXPECT_TRUE(w.ok()) << w.error().message;
    return w.ok() ? std::unique_ptr<Watcher>(std::move(*w)) : nullptr;
  }
  bool use(std::unique_ptr<Watcher> watcher) {
    watcher_ = std::move(watcher);
    barrierSub_ = 0;
    return watcher_ != nullptr;
  }

  SubscriptionId subscribe(const std::string& path, bool recursive, uint32_t mask = IN_ALL_EVENTS) {
    SubscribeOptions options;
    options.mask = mask & ~(IN_OPEN | IN_ACCESS | IN_CLOSE_NOWRITE);
    options.recursive = recursive;
    auto id = watcher_->subscribe(path, options);
    EXPECT_TRUE(id.ok()) << id.error().message;
    return id.ok() ? *id : 0;
  }

  // Drains until pred holds, at most 5 s; on failure prints what came.
  void drainUntil(const std::function<bool()>& pred, const std::string& what) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) {
        FAIL() << "timed out waiting for " << what << "; events seen:\n" << seen();
      }
      struct pollfd p = {watcher_->fd(), POLLIN, 0};
      ::poll(&p, 1, 100);
      watcher_->drain();
    }
  }
  // Every event of what happened before this call has been handed to the sink.
  void barrier() {
    if (barrierSub_ == 0) {
      fs::create_directory(root_ + "/.barrier");
      barrierSub_ = subscribe(root_ + "/.barrier", false, IN_CREATE);
    }
    std::string name = "b" + std::to_string(++barriers_);
    touch(root_ + "/.barrier/" + name);
    drainUntil([&] { return count(barrierSub_, IN_CREATE, "", name) == 1; }, "the barrier");
  }
  std::string seen() const {
    std::string text;
    for (auto& e : sink_.events) text += describe(e) + "\n";
    return text;
  }
  static std::string describe(const Seen& e) {
    char mask[16];
    std::snprintf(mask, sizeof mask, "%08x", e.mask);
    return std::to_string(e.sub) + " " + e.dir + "|" + e.name + " " + mask + " cookie " + std::to_string(e.cookie) +
           " pid " + std::to_string(e.pid);
  }
  size_t count(SubscriptionId sub, uint32_t mask, const std::string& dir, const std::string& name) const {
    size_t n = 0;
    for (auto& e : sink_.events) {
      if (e.sub == sub && (e.mask & mask) == mask && e.dir == dir && e.name == name) ++n;
    }
    return n;
  }
  const Seen* find(SubscriptionId sub, uint32_t mask, const std::string& dir, const std::string& name) const {
    for (auto& e : sink_.events) {
      if (e.sub == sub && (e.mask & mask) == mask && e.dir == dir && e.name == name) return &e;
    }
    return nullptr;
  }
  size_t indexOf(SubscriptionId sub, uint32_t mask, const std::string& dir, const std::string& name) const {
    for (size_t i = 0; i < sink_.events.size(); ++i) {
      const Seen& e = sink_.events[i];
      if (e.sub == sub && (e.mask & mask) == mask && e.dir == dir && e.name == name) return i;
    }
    return SIZE_MAX;
  }
  static void touch(const std::string& path) { std::ofstream(path).put('x'); }
  bool mountTmpfs(const std::string& path) {
    fs::create_directories(path);
    if (::mount("tmpfs", path.c_str(), "tmpfs", 0, "size=16m") != 0) return false;
    mounts_.push_back(path);
    return true;
  }

  std::string root_;
  Collector sink_;
  std::unique_ptr<Watcher> watcher_;
  std::vector<std::string> mounts_;
  SubscriptionId barrierSub_ = 0;
  int barriers_ = 0;
};

TEST_F(FanotifyWatcherTest, ReportsCreateModifyAttribCloseWriteAndDelete) {
  auto sub = subscribe(root_, false);
  touch(root_ + "/f");
  ::chmod((root_ + "/f").c_str(), 0600);
  { std::ofstream(root_ + "/f", std::ios::app).put('y'); }
  fs::remove(root_ + "/f");
  drainUntil([&] { return count(sub, IN_DELETE, "", "f") == 1; }, "DELETE f");
  EXPECT_EQ(count(sub, IN_CREATE, "", "f"), 1u) << seen();
  EXPECT_GE(count(sub, IN_MODIFY, "", "f"), 1u) << seen();
  EXPECT_GE(count(sub, IN_ATTRIB, "", "f"), 1u) << seen();
  // fanotify merges repeated events of one object while they wait in the queue.
  EXPECT_GE(count(sub, IN_CLOSE_WRITE, "", "f"), 1u) << seen();
  // Merged records are handed out in the order a program makes them.
  EXPECT_LT(indexOf(sub, IN_CREATE, "", "f"), indexOf(sub, IN_CLOSE_WRITE, "", "f")) << seen();
  for (auto& e : sink_.events) {
    if (e.sub != sub) continue;
    EXPECT_EQ(e.pid, ::getpid()) << "our own events are delivered, with our pid: " << describe(e);
    EXPECT_EQ(__builtin_popcount(e.mask & ~IN_ISDIR), 1) << "one event per call: " << describe(e);
  }
}

TEST_F(FanotifyWatcherTest, RecursiveWatchSeesATreeCreatedAtOnce) {
  auto sub = subscribe(root_, true);
  fs::create_directories(root_ + "/a/b/c");
  touch(root_ + "/a/b/c/f");
  drainUntil([&] { return count(sub, IN_CLOSE_WRITE, "a/b/c", "f") == 1; }, "CLOSE_WRITE a/b/c/f");
  barrier();
  EXPECT_EQ(count(sub, IN_CREATE | IN_ISDIR, "", "a"), 1u);
  EXPECT_EQ(count(sub, IN_CREATE | IN_ISDIR, "a", "b"), 1u);
  EXPECT_EQ(count(sub, IN_CREATE | IN_ISDIR, "a/b", "c"), 1u);
  EXPECT_EQ(count(sub, IN_CREATE, "a/b/c", "f"), 1u);
  EXPECT_EQ(watcher_->kernelWatchCount(), 1u) << "one mark for the filesystem, none per directory";
}

TEST_F(FanotifyWatcherTest, ManyFilesInANewDirectoryAreEachReportedOnce) {
  auto sub = subscribe(root_, true);
  constexpr int kFiles = 3000;
  fs::create_directory(root_ + "/d");
  for (int i = 0; i < kFiles; ++i) touch(root_ + "/d/f" + std::to_string(i));
  drainUntil([&] { return count(sub, IN_CREATE, "d", "f" + std::to_string(kFiles - 1)) == 1; }, "the last file");
  for (int i = 0; i < kFiles; ++i) ASSERT_EQ(count(sub, IN_CREATE, "d", "f" + std::to_string(i)), 1u) << i;
}

TEST_F(FanotifyWatcherTest, RenameInOneDirectoryIsOnePairWithOneCookie) {
  touch(root_ + "/f");
  auto sub = subscribe(root_, false);
  fs::rename(root_ + "/f", root_ + "/g");
  drainUntil([&] { return count(sub, IN_MOVED_TO, "", "g") == 1; }, "MOVED_TO g");
  const Seen* from = find(sub, IN_MOVED_FROM, "", "f");
  const Seen* to = find(sub, IN_MOVED_TO, "", "g");
  ASSERT_NE(from, nullptr) << seen();
  EXPECT_NE(from->cookie, 0u);
  EXPECT_EQ(from->cookie, to->cookie);
  EXPECT_LT(indexOf(sub, IN_MOVED_FROM, "", "f"), indexOf(sub, IN_MOVED_TO, "", "g"));
}

TEST_F(FanotifyWatcherTest, RenameAcrossDirectoriesIsOnePairWithOneCookie) {
  fs::create_directories(root_ + "/d1");
  fs::create_directories(root_ + "/d2");
  touch(root_ + "/d1/f");
  auto sub = subscribe(root_, true);
  fs::rename(root_ + "/d1/f", root_ + "/d2/g");
  fs::rename(root_ + "/d2/g", root_ + "/d1/h");
  drainUntil([&] { return count(sub, IN_MOVED_TO, "d1", "h") == 1; }, "MOVED_TO d1/h");
  const Seen* from = find(sub, IN_MOVED_FROM, "d1", "f");
  const Seen* to = find(sub, IN_MOVED_TO, "d2", "g");
  ASSERT_TRUE(from != nullptr && to != nullptr) << seen();
  EXPECT_NE(from->cookie, 0u);
  EXPECT_EQ(from->cookie, to->cookie);
  EXPECT_NE(find(sub, IN_MOVED_TO, "d1", "h")->cookie, from->cookie) << "each rename has its own cookie";
}

TEST_F(FanotifyWatcherTest, EventsInARenamedDirectoryHaveItsNewPath) {
  fs::create_directories(root_ + "/a/sub/deep");
  auto sub = subscribe(root_, true);
  touch(root_ + "/a/sub/deep/f1");  // the cache now knows a/sub/deep
  drainUntil([&] { return count(sub, IN_CREATE, "a/sub/deep", "f1") == 1; }, "CREATE a/sub/deep/f1");
  fs::rename(root_ + "/a", root_ + "/b");
  touch(root_ + "/b/sub/deep/f2");
  touch(root_ + "/b/sub/f3");
  drainUntil([&] { return count(sub, IN_CREATE, "b/sub", "f3") == 1; }, "CREATE under the new name");
  EXPECT_EQ(count(sub, IN_CREATE, "b/sub/deep", "f2"), 1u) << seen();
  EXPECT_EQ(count(sub, IN_MOVED_FROM | IN_ISDIR, "", "a"), 1u);
  EXPECT_EQ(count(sub, IN_MOVED_TO | IN_ISDIR, "", "b"), 1u);
  EXPECT_EQ(count(sub, IN_CREATE, "a/sub/deep", "f2"), 0u) << seen();
}

TEST_F(FanotifyWatcherTest, DirectoryMovedOutOfTheTreeIsOnlyAMovedFrom) {
  fs::create_directories(root_ + "/in/x");
  fs::create_directories(root_ + "/out");
  auto sub = subscribe(root_ + "/in", true);
  touch(root_ + "/in/x/f");
  drainUntil([&] { return count(sub, IN_CREATE, "x", "f") == 1; }, "CREATE x/f");
  fs::rename(root_ + "/in/x", root_ + "/out/x");
  touch(root_ + "/out/x/g");
  barrier();
  const Seen* from = find(sub, IN_MOVED_FROM | IN_ISDIR, "", "x");
  ASSERT_NE(from, nullptr) << seen();
  EXPECT_NE(from->cookie, 0u);
  EXPECT_EQ(count(sub, IN_MOVED_TO, "", "x"), 0u);
  EXPECT_EQ(count(sub, IN_CREATE, "x", "g"), 0u) << "x has left the tree: " << seen();
}

TEST_F(FanotifyWatcherTest, DirectoryMovedIntoTheTreeIsOnlyAMovedToAndThenWatched) {
  fs::create_directories(root_ + "/in");
  fs::create_directories(root_ + "/out/y");
  auto sub = subscribe(root_ + "/in", true);
  touch(root_ + "/out/y/outside");  // the cache now knows out/y, outside the tree
  barrier();
  fs::rename(root_ + "/out/y", root_ + "/in/y");
  touch(root_ + "/in/y/inside");
  drainUntil([&] { return count(sub, IN_CREATE, "y", "inside") == 1; }, "CREATE y/inside");
  EXPECT_EQ(count(sub, IN_MOVED_TO | IN_ISDIR, "", "y"), 1u);
  EXPECT_EQ(count(sub, IN_MOVED_FROM, "", "y"), 0u);
  EXPECT_EQ(count(sub, IN_CREATE, "y", "outside"), 0u);
}

TEST_F(FanotifyWatcherTest, NonRecursiveWatchSeesOnlyItsDirectory) {
  fs::create_directories(root_ + "/d");
  auto sub = subscribe(root_, false);
  touch(root_ + "/d/inner");
  fs::create_directory(root_ + "/e");
  touch(root_ + "/g");
  ::chmod((root_ + "/d").c_str(), 0700);
  barrier();
  EXPECT_EQ(count(sub, IN_CREATE, "", "g"), 1u) << seen();
  EXPECT_EQ(count(sub, IN_CREATE | IN_ISDIR, "", "e"), 1u) << seen();
  EXPECT_EQ(count(sub, IN_ATTRIB | IN_ISDIR, "", "d"), 1u) << "a change of a child directory itself: " << seen();
  EXPECT_EQ(count(sub, IN_CREATE, "d", "inner"), 0u) << seen();
}

TEST_F(FanotifyWatcherTest, EventsOutsideTheTreeAreNotDelivered) {
  fs::create_directories(root_ + "/in");
  fs::create_directories(root_ + "/inx");  // shares a prefix, is not below
  auto sub = subscribe(root_ + "/in", true);
  touch(root_ + "/inx/f");
  touch(root_ + "/g");
  touch(root_ + "/in/h");
  barrier();
  EXPECT_EQ(count(sub, IN_CREATE, "", "h"), 1u) << seen();
  for (auto& e : sink_.events) {
    if (e.sub == sub) {
      EXPECT_TRUE(e.dir.empty() && e.name == "h") << describe(e);
    }
  }
}

TEST_F(FanotifyWatcherTest, DeletingTheWatchedDirectoryEndsTheSubscription) {
  fs::create_directories(root_ + "/w");
  auto sub = subscribe(root_ + "/w", false);
  fs::remove(root_ + "/w");
  drainUntil([&] { return count(sub, IN_IGNORED, "", "") == 1; }, "IGNORED");
  EXPECT_EQ(count(sub, IN_DELETE_SELF, "", ""), 1u);
  EXPECT_LT(indexOf(sub, IN_DELETE_SELF, "", ""), indexOf(sub, IN_IGNORED, "", ""));
  EXPECT_EQ(find(sub, IN_DELETE_SELF, "", "")->mask, static_cast<uint32_t>(IN_DELETE_SELF)) << "as inotify: no ISDIR";
  EXPECT_EQ(watcher_->kernelWatchCount(), 0u) << "the last subscription on the filesystem released its mark";
}

// The group's marks as the kernel lists them (/proc/self/fdinfo): masks of
// filesystem marks and of inode marks.
struct Marks {
  std::vector<uint64_t> filesystem, inode;
};
Marks marksOf(int fd) {
  Marks marks;
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  for (std::string line; std::getline(in, line);) {
    size_t at = line.find(" mask:");
    if (line.rfind("fanotify ", 0) != 0 || at == std::string::npos) continue;
    uint64_t mask = std::strtoull(line.c_str() + at + 6, nullptr, 16);
    if (line.find(" ino:") != std::string::npos) {
      marks.inode.push_back(mask);
    } else if (line.find("sdev:") != std::string::npos && line.find("mnt_id:") == std::string::npos) {
      marks.filesystem.push_back(mask);
    }
  }
  return marks;
}

TEST_F(FanotifyWatcherTest, OnlyRootsAndWatchedFilesAskForTheirOwnDeleteAndMove) {
  // On the filesystem mark, DELETE_SELF and MOVE_SELF would queue a second
  // event for every file deleted or moved anywhere on the filesystem.
  constexpr uint64_t kSelf = FAN_DELETE_SELF | FAN_MOVE_SELF;
  fs::create_directories(root_ + "/w/sub");
  touch(root_ + "/file");
  auto tree = subscribe(root_ + "/w", true);
  auto again = subscribe(root_ + "/w", false);
  auto file = subscribe(root_ + "/file", false);
  Marks marks = marksOf(watcher_->fd());
  ASSERT_EQ(marks.filesystem.size(), 1u);
  EXPECT_EQ(marks.filesystem[0] & kSelf, 0u) << std::hex << marks.filesystem[0];
  ASSERT_EQ(marks.inode.size(), 2u) << "one for the root (shared by two subscriptions), one for the file";
  for (uint64_t mask : marks.inode) EXPECT_EQ(mask & kSelf, kSelf) << std::hex << mask;
  watcher_->unsubscribe(tree);
  EXPECT_EQ(marksOf(watcher_->fd()).inode.size(), 2u);
  watcher_->unsubscribe(again);
  watcher_->unsubscribe(file);
  marks = marksOf(watcher_->fd());
  EXPECT_TRUE(marks.inode.empty());
  EXPECT_TRUE(marks.filesystem.empty());
}

// As InotifyWatcherTest.SubdirectoriesReportTheirOwnDeleteAndMove: derived
// from the parent's DELETE and RENAME of a directory.
TEST_F(FanotifyWatcherTest, SubdirectoriesReportTheirOwnDeleteAndMove) {
  fs::create_directories(root_ + "/a/b");
  fs::create_directories(root_ + "/a/c");
  auto sub = subscribe(root_, true);
  auto flat = subscribe(root_ + "/a", false);
  fs::rename(root_ + "/a/c", root_ + "/a/d");
  touch(root_ + "/a/f");
  fs::remove(root_ + "/a/f");
  fs::remove(root_ + "/a/b");
  drainUntil([&] { return count(sub, IN_DELETE | IN_ISDIR, "a", "b") == 1; }, "DELETE a/b");
  barrier();
  EXPECT_EQ(count(sub, IN_DELETE_SELF, "a/b", ""), 1u) << seen();
  EXPECT_EQ(count(sub, IN_MOVE_SELF, "a/d", ""), 1u) << seen();
  EXPECT_EQ(find(sub, IN_DELETE_SELF, "a/b", "")->mask, static_cast<uint32_t>(IN_DELETE_SELF)) << "no ISDIR";
  EXPECT_LT(indexOf(sub, IN_DELETE_SELF, "a/b", ""), indexOf(sub, IN_DELETE | IN_ISDIR, "a", "b"));
  EXPECT_LT(indexOf(sub, IN_MOVED_TO | IN_ISDIR, "a", "d"), indexOf(sub, IN_MOVE_SELF, "a/d", ""));
  size_t selfEvents = 0;
  for (auto& e : sink_.events) selfEvents += (e.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0;
  EXPECT_EQ(selfEvents, 2u) << "none for the file, none for the non-recursive subscription:\n" << seen();
  EXPECT_EQ(count(flat, IN_DELETE | IN_ISDIR, "", "b"), 1u);
}

TEST_F(FanotifyWatcherTest, ASubscriptionRootInsideATreeReportsItsOwnDeleteOnce) {
  fs::create_directories(root_ + "/a/r");
  auto outer = subscribe(root_, true);
  auto inner = subscribe(root_ + "/a/r", false);
  fs::remove(root_ + "/a/r");
  drainUntil([&] { return count(inner, IN_IGNORED, "", "") == 1; }, "IGNORED for inner");
  barrier();
  EXPECT_EQ(count(inner, IN_DELETE_SELF, "", ""), 1u) << seen();
  EXPECT_EQ(count(outer, IN_DELETE_SELF, "a/r", ""), 1u) << seen();
  EXPECT_EQ(count(outer, IN_DELETE | IN_ISDIR, "a", "r"), 1u) << seen();
}

TEST_F(FanotifyWatcherTest, AMovedRootIsFollowed) {
  fs::create_directories(root_ + "/w");
  auto sub = subscribe(root_ + "/w", true);
  fs::rename(root_ + "/w", root_ + "/v");
  touch(root_ + "/v/f");
  drainUntil([&] { return count(sub, IN_CREATE, "", "f") == 1; }, "CREATE f in the moved root");
  EXPECT_EQ(count(sub, IN_MOVE_SELF, "", ""), 1u) << seen();
}

TEST_F(FanotifyWatcherTest, ARootFollowsARenameOfItsParent) {
  fs::create_directories(root_ + "/p/w/x");
  auto sub = subscribe(root_ + "/p/w", true);
  touch(root_ + "/p/w/x/f1");
  drainUntil([&] { return count(sub, IN_CREATE, "x", "f1") == 1; }, "CREATE x/f1");
  fs::rename(root_ + "/p", root_ + "/q");
  touch(root_ + "/q/w/x/f2");
  touch(root_ + "/q/w/f3");
  drainUntil([&] { return count(sub, IN_CREATE, "", "f3") == 1; }, "CREATE f3 under the moved root");
  EXPECT_EQ(count(sub, IN_CREATE, "x", "f2"), 1u) << seen();
}

TEST_F(FanotifyWatcherTest, ARemovedTreeIsReportedWithItsPaths) {
  // The directories are gone before their events are read, and were never
  // seen before: their paths come from the removals later in the same read.
  fs::create_directories(root_ + "/a/b/c");
  touch(root_ + "/a/b/c/f");
  auto sub = subscribe(root_, true);
  fs::remove_all(root_ + "/a");
  drainUntil([&] { return count(sub, IN_DELETE | IN_ISDIR, "", "a") == 1; }, "DELETE a");
  EXPECT_EQ(count(sub, IN_DELETE, "a/b/c", "f"), 1u) << seen();
  EXPECT_EQ(count(sub, IN_DELETE | IN_ISDIR, "a/b", "c"), 1u) << seen();
  EXPECT_EQ(count(sub, IN_DELETE | IN_ISDIR, "a", "b"), 1u) << seen();
}

TEST_F(FanotifyWatcherTest, OverlappingSubscriptionsShareTheMarkAndSeeRelativePaths) {
  fs::create_directories(root_ + "/a/b");
  auto outer = subscribe(root_, true);
  auto inner = subscribe(root_ + "/a", true);
  auto flat = subscribe(root_ + "/a/b", false, IN_CREATE);
  EXPECT_EQ(watcher_->kernelWatchCount(), 1u);
  touch(root_ + "/a/b/f");
  drainUntil(
      [&] { return count(outer, IN_CLOSE_WRITE, "a/b", "f") == 1 && count(inner, IN_CLOSE_WRITE, "b", "f") == 1; },
      "both views of a/b/f");
  EXPECT_EQ(count(flat, IN_CREATE, "", "f"), 1u);
  EXPECT_EQ(count(flat, IN_CLOSE_WRITE, "", "f"), 0u) << "flat asked only for IN_CREATE";
  watcher_->unsubscribe(outer);
  touch(root_ + "/a/g");
  drainUntil([&] { return count(inner, IN_CREATE, "", "g") == 1; }, "inner still served");
  EXPECT_EQ(count(outer, IN_CREATE, "a", "g"), 0u);
  watcher_->unsubscribe(inner);
  watcher_->unsubscribe(flat);
  EXPECT_EQ(watcher_->kernelWatchCount(), 0u);
}

TEST_F(FanotifyWatcherTest, PidIsTheActingProcess) {
  auto sub = subscribe(root_, false);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int fd = ::open((root_ + "/by-child").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ::_exit(fd >= 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_EQ(status, 0);
  touch(root_ + "/by-us");
  drainUntil([&] { return count(sub, IN_CREATE, "", "by-us") == 1; }, "CREATE by-us");
  const Seen* theirs = find(sub, IN_CREATE, "", "by-child");
  ASSERT_NE(theirs, nullptr) << seen();
  EXPECT_EQ(theirs->pid, child);
  EXPECT_EQ(find(sub, IN_CREATE, "", "by-us")->pid, ::getpid());
}

TEST_F(FanotifyWatcherTest, ReadingADirectoryIsReportedOnItAndOnItsParent) {
  fs::create_directories(root_ + "/n");
  SubscribeOptions options;
  options.mask = IN_ALL_EVENTS;
  options.recursive = true;
  auto sub = watcher_->subscribe(root_, options);
  ASSERT_TRUE(sub.ok());
  DIR* d = ::opendir((root_ + "/n").c_str());
  ASSERT_NE(d, nullptr);
  ::closedir(d);
  drainUntil(
      [&] { return count(*sub, IN_OPEN | IN_ISDIR, "", "n") == 1 && count(*sub, IN_OPEN | IN_ISDIR, "n", "") == 1; },
      "OPEN of n as inotify reports it");
}

TEST_F(FanotifyWatcherTest, WatchesAFileByItsIdentity) {
  touch(root_ + "/f");
  auto sub = subscribe(root_ + "/f", false);
  { std::ofstream(root_ + "/f", std::ios::app).put('y'); }
  drainUntil([&] { return count(sub, IN_CLOSE_WRITE, "", "") == 1; }, "CLOSE_WRITE of the file");
  EXPECT_EQ(count(sub, IN_MODIFY, "", ""), 1u);
  fs::rename(root_ + "/f", root_ + "/g");
  fs::remove(root_ + "/g");
  drainUntil([&] { return count(sub, IN_IGNORED, "", "") == 1; }, "IGNORED");
  EXPECT_EQ(count(sub, IN_MOVE_SELF, "", ""), 1u) << seen();
  EXPECT_EQ(count(sub, IN_DELETE_SELF, "", ""), 1u) << seen();
  EXPECT_LT(indexOf(sub, IN_DELETE_SELF, "", ""), indexOf(sub, IN_IGNORED, "", ""));
}

TEST_F(FanotifyWatcherTest, QueueOverflowIsReportedToEverySubscription) {
  // The queue limit is read when a group is created: lower it for ours only.
  const char* limit = "/proc/sys/fs/fanotify/max_queued_events";
  std::string saved;
  if (!std::getline(std::ifstream(limit), saved)) GTEST_SKIP() << "no " << limit;
  std::ofstream(limit) << "16";
  auto small = makeFanotify();
  std::ofstream(limit) << saved;
  ASSERT_TRUE(use(std::move(small)));
  fs::create_directories(root_ + "/a");
  auto a = subscribe(root_ + "/a", true);
  auto b = subscribe(root_, false);
  for (int i = 0; i < 100; ++i) touch(root_ + "/a/f" + std::to_string(i));
  drainUntil([&] { return count(a, IN_Q_OVERFLOW, "", "") == 1 && count(b, IN_Q_OVERFLOW, "", "") == 1; },
             "IN_Q_OVERFLOW on both subscriptions");
  touch(root_ + "/a/after");
  drainUntil([&] { return count(a, IN_CREATE, "", "after") == 1; }, "events after the overflow");
}

TEST_F(FanotifyWatcherTest, RefusesMissingPathsAndRecursiveWatchesOnFiles) {
  SubscribeOptions options;
  options.mask = IN_CREATE;
  auto missing = watcher_->subscribe(root_ + "/nope", options);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_NE(missing.error().message.find(root_ + "/nope"), std::string::npos) << missing.error().message;

  touch(root_ + "/file");
  options.recursive = true;
  auto file = watcher_->subscribe(root_ + "/file", options);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.error().code, ENOTDIR);
  EXPECT_EQ(watcher_->kernelWatchCount(), 0u);
}

TEST_F(FanotifyWatcherTest, MarksEachFilesystemOnce) {
  if (!mountTmpfs(root_ + "/tmpfs")) GTEST_SKIP() << "cannot mount a tmpfs";
  fs::create_directories(root_ + "/disk");
  auto onTmpfs = subscribe(root_ + "/tmpfs", true);
  auto onDisk = subscribe(root_ + "/disk", true);
  EXPECT_EQ(watcher_->kernelWatchCount(), 2u);
  fs::create_directories(root_ + "/tmpfs/x");
  touch(root_ + "/tmpfs/x/f");
  touch(root_ + "/disk/f");
  drainUntil([&] { return count(onTmpfs, IN_CREATE, "x", "f") == 1 && count(onDisk, IN_CREATE, "", "f") == 1; },
             "events on both filesystems");
  EXPECT_EQ(count(onDisk, IN_CREATE, "x", "f"), 0u);
}

// A FUSE filesystem, cheaply: sshfs talking straight to a local sftp-server.
class FuseMount {
 public:
  explicit FuseMount(const std::string& base) : dir_(base + "/fuse"), source_(base + "/fuse-source") {
    const char* server = "/usr/lib/openssh/sftp-server";
    if (::access("/usr/bin/sshfs", X_OK) != 0 || ::access(server, X_OK) != 0) return;
    fs::create_directories(dir_);
    fs::create_directories(source_);
    std::string script = base + "/sftp.sh";
    std::ofstream(script) << "#!/bin/sh\nexec " << server << "\n";
    fs::permissions(script, fs::perms::owner_all);
    std::string command = "sshfs -o ssh_command='" + script + "' x:'" + source_ + "' '" + dir_ + "'";
    mounted_ = std::system(command.c_str()) == 0;
  }
  ~FuseMount() {
    if (mounted_) std::system(("fusermount3 -u -z '" + dir_ + "'").c_str());
  }
  bool mounted() const { return mounted_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_, source_;
  bool mounted_ = false;
};

TEST_F(FanotifyWatcherTest, FuseRefusesAFilesystemMark) {
  FuseMount fuse(root_);
  if (!fuse.mounted()) GTEST_SKIP() << "sshfs or sftp-server missing";
  SubscribeOptions options;
  options.mask = IN_CREATE;
  auto refused = watcher_->subscribe(fuse.dir(), options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ENODEV) << refused.error().message;
}

TEST_F(FanotifyWatcherTest, AutoWatchesFuseAndDiskWithInotifyAndPids) {
  FuseMount fuse(root_);
  if (!fuse.mounted()) GTEST_SKIP() << "sshfs or sftp-server missing";
  auto automatic = AutoWatcher::create(sink_);
  ASSERT_TRUE(automatic.ok()) << automatic.error().message;
  ASSERT_TRUE(use(std::move(*automatic)));
  EXPECT_EQ(watcher_->name(), "inotify+pids");
  fs::create_directories(root_ + "/disk");
  auto onFuse = subscribe(fuse.dir(), true);
  auto onDisk = subscribe(root_ + "/disk", true);
  EXPECT_NE(onFuse, onDisk);
  EXPECT_EQ(watcher_->backendFor(onFuse), "inotify+pids");
  EXPECT_EQ(watcher_->backendFor(onDisk), "inotify+pids");
  EXPECT_TRUE(watcher_->reportsPids(onFuse));
  EXPECT_TRUE(watcher_->reportsPids(onDisk));
  touch(fuse.dir() + "/f");
  touch(root_ + "/disk/g");
  drainUntil([&] { return count(onFuse, IN_CREATE, "", "f") == 1 && count(onDisk, IN_CREATE, "", "g") == 1; },
             "events from both filesystems through one descriptor");
  EXPECT_EQ(find(onFuse, IN_CREATE, "", "f")->pid, ::getpid());
  EXPECT_EQ(find(onDisk, IN_CREATE, "", "g")->pid, ::getpid());
  watcher_->unsubscribe(onFuse);
  watcher_->unsubscribe(onDisk);
  EXPECT_EQ(watcher_->kernelWatchCount(), 0u);
}

TEST_F(FanotifyWatcherTest, AutoEndsASubscriptionOnceAndForgetsIt) {
  auto automatic = makeWatcher(WatcherKind::kAuto, sink_);
  ASSERT_TRUE(automatic.ok()) << automatic.error().message;
  ASSERT_TRUE(use(std::move(*automatic)));
  fs::create_directories(root_ + "/w");
  auto sub = subscribe(root_ + "/w", false);
  EXPECT_EQ(watcher_->backendFor(sub), "inotify+pids");
  fs::remove(root_ + "/w");
  drainUntil([&] { return count(sub, IN_IGNORED, "", "") == 1; }, "IGNORED");
  EXPECT_EQ(watcher_->backendFor(sub), "");
  EXPECT_EQ(watcher_->kernelWatchCount(), 0u);
}

}  // namespace
}  // namespace rnotify
