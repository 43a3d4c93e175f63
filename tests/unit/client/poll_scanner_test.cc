// PollScanner on real directories: what a scan reports after each kind of
// change, that an unchanged directory is not re-listed while in-place changes
// in it are still seen, rename pairing, the end of a watch, and a randomized
// check that the events replay: applied to the previous listing (read here
// independently, with readdir + lstat) they give the new one.
#include "poll/poll_scanner.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace rnotify {
namespace {

using testbed::TempDir;
using testbed::writeFile;

std::string describe(const Event& e) {
  std::string kind = (e.mask & IN_CREATE)        ? "CREATE"
                     : (e.mask & IN_DELETE)      ? "DELETE"
                     : (e.mask & IN_MODIFY)      ? "MODIFY"
                     : (e.mask & IN_ATTRIB)      ? "ATTRIB"
                     : (e.mask & IN_MOVED_FROM)  ? "MOVED_FROM"
                     : (e.mask & IN_MOVED_TO)    ? "MOVED_TO"
                     : (e.mask & IN_DELETE_SELF) ? "DELETE_SELF"
                     : (e.mask & IN_IGNORED)     ? "IGNORED"
                                                 : "?";
  if (e.mask & IN_ISDIR) kind += ",ISDIR";
  return kind + " " + (e.dir.empty() ? "" : e.dir + "/") + e.name;
}

std::vector<std::string> describe(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const Event& e : events) out.push_back(describe(e));
  return out;
}

std::vector<Event> scan(PollScanner& scanner) {
  auto result = scanner.scan();
  EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message);
  if (!result.ok()) return {};
  for (const Event& e : *result) EXPECT_TRUE(e.mask & IN_POLLED) << describe(e);
  return std::move(*result);
}

// Unchanged directories trusted at once, every file checked at every scan.
PollScanner::Options fastOptions() {
  PollScanner::Options o;
  o.mtimeGranularity = std::chrono::milliseconds(0);
  o.sweepScans = 1;
  return o;
}

TEST(PollScanner, BaselineThenCreationsWithState) {
  TempDir tmp;
  writeFile(tmp / "old", "x");
  PollScanner scanner(tmp.path(), PollScanner::Options{});
  EXPECT_TRUE(scan(scanner).empty());
  EXPECT_EQ(scanner.entries(), 1u);

  writeFile(tmp / "new", "hello");
  tmp.mkdir("d/e");
  writeFile(tmp / "d/e/f", "");
  auto events = scan(scanner);
  EXPECT_EQ(describe(events),
            (std::vector<std::string>{"CREATE,ISDIR d", "CREATE new", "CREATE,ISDIR d/e", "CREATE d/e/f"}));
  ASSERT_TRUE(events[1].hasStat);
  struct stat st;
  ASSERT_EQ(::lstat((tmp / "new").c_str(), &st), 0);
  EXPECT_EQ(events[1].stat, eventStatOf(st));
  EXPECT_EQ(scanner.entries(), 5u);
  EXPECT_TRUE(scan(scanner).empty());
}

// A scan in slices (one statx or directory per call here) takes many calls,
// is due meanwhile, and reports what one whole scan reports. A change this
// host makes meanwhile (hurry) in a directory the scan has passed is not in
// it: the next scan, due by then, has it.
TEST(PollScanner, AScanInSlicesReportsWhatAWholeScanDoes) {
  TempDir tmp;
  for (int d = 10; d < 40; ++d) {
    tmp.mkdir("d" + std::to_string(d));
    writeFile(tmp / ("d" + std::to_string(d) + "/f"), "x");
  }
  PollScanner::Options o;
  o.interval.initial = o.interval.min = o.interval.max = std::chrono::seconds(30);
  o.sweepScans = 1;  // every scan the same work
  PollScanner whole(tmp.path(), o);
  o.slice = PollScanner::Clock::duration::zero();
  PollScanner sliced(tmp.path(), o);
  auto inSlices = [&](int* calls) {
    std::vector<Event> out;
    *calls = 0;
    do {
      out = scan(sliced);
      ++*calls;
      if (sliced.scanning()) {
        EXPECT_TRUE(out.empty());
        EXPECT_EQ(sliced.timeoutMs(PollScanner::Clock::now()), 0);
      }
    } while (sliced.scanning() && *calls < 1000);
    return out;
  };
  int calls = 0;
  EXPECT_TRUE(scan(whole).empty());
  EXPECT_TRUE(inSlices(&calls).empty());
  EXPECT_GT(calls, 60);  // 30 directories and their files
  EXPECT_TRUE(sliced.scanned());

  writeFile(tmp / "d15/new", "y");
  ASSERT_EQ(::unlink((tmp / "d20/f").c_str()), 0);
  ASSERT_EQ(::rename((tmp / "d30").c_str(), (tmp / "d31/moved").c_str()), 0);
  ASSERT_EQ(::chmod((tmp / "d39/f").c_str(), 0600), 0);
  const auto expected = describe(scan(whole));
  ASSERT_EQ(expected.size(), 5u) << ::testing::PrintToString(expected);
  EXPECT_EQ(describe(inSlices(&calls)), expected);

  // A quiet scan's calls; halfway through the next, d10 (the first
  // directory, gone down into right after the root's entries) is passed.
  EXPECT_TRUE(inSlices(&calls).empty());
  for (int i = 0; i < calls / 2; ++i) ASSERT_TRUE(scan(sliced).empty());
  ASSERT_TRUE(sliced.scanning());
  writeFile(tmp / "d10/late", "z");
  const auto soon = PollScanner::Clock::now() + std::chrono::milliseconds(100);
  sliced.hurry(soon);
  EXPECT_TRUE(inSlices(&calls).empty()) << "d10 was read before the change";
  EXPECT_LE(sliced.deadline(), soon) << "the hurry was dropped with the scan";
  EXPECT_EQ(describe(inSlices(&calls)), std::vector<std::string>{"CREATE d10/late"});
}

TEST(PollScanner, UnchangedDirectoriesAreNotListedButInPlaceChangesAreSeen) {
  TempDir tmp;
  tmp.mkdir("a/b");
  writeFile(tmp / "a/b/f", "1");
  writeFile(tmp / "a/g", "1");
  PollScanner scanner(tmp.path(), fastOptions());
  scan(scanner);
  EXPECT_EQ(scanner.counters().dirsListed, 3u);
  EXPECT_TRUE(scan(scanner).empty());
  EXPECT_EQ(scanner.counters().dirsListed, 3u) << "an unchanged directory was listed again";
  EXPECT_EQ(scanner.counters().dirsSkipped, 3u);
  uint64_t getdents = scanner.counters().fs.getdents;

  writeFile(tmp / "a/b/f", "22");  // same directory entries: only the file's statx shows it
  ASSERT_EQ(::chmod((tmp / "a/g").c_str(), 0600), 0);
  EXPECT_EQ(describe(scan(scanner)), (std::vector<std::string>{"ATTRIB a/g", "MODIFY a/b/f"}));
  EXPECT_EQ(scanner.counters().fs.getdents, getdents);

  // Only the inode's ctime moves: a new extended attribute.
  ASSERT_EQ(::setxattr((tmp / "a/g").c_str(), "user.k", "v", 1, 0), 0) << std::strerror(errno);
  EXPECT_EQ(describe(scan(scanner)), (std::vector<std::string>{"ATTRIB a/g"}));
  ASSERT_EQ(::chmod((tmp / "a").c_str(), 0700), 0);
  EXPECT_EQ(describe(scan(scanner)), (std::vector<std::string>{"ATTRIB,ISDIR a"}));

  // A new name changes the directory's mtime: that one directory is listed.
  uint64_t listed = scanner.counters().dirsListed;
  writeFile(tmp / "a/b/h", "");
  EXPECT_EQ(describe(scan(scanner)), (std::vector<std::string>{"CREATE a/b/h"}));
  EXPECT_EQ(scanner.counters().dirsListed, listed + 1);
}

TEST(PollScanner, QuietDirectoriesFilesAreCheckedInTurnsHotOnesAtEveryScan) {
  TempDir tmp;
  for (const char* d : {"a", "b", "c"}) {
    tmp.mkdir(d);
    writeFile(tmp / (std::string(d) + "/f"), "1");
  }
  PollScanner::Options o = fastOptions();
  o.sweepScans = 3;
  PollScanner scanner(tmp.path(), o);
  scan(scanner);
  uint64_t statx = scanner.counters().fs.statx;
  EXPECT_TRUE(scan(scanner).empty());
  // The root (its own statx, and its three directories) and one directory's file.
  EXPECT_EQ(scanner.counters().fs.statx - statx, 1u + 3u + 1u);

  // An in-place change in a quiet directory: seen within sweepScans scans.
  writeFile(tmp / "b/f", "22");
  std::vector<std::string> seen;
  int scans = 0;
  while (seen.empty() && scans < 3) {
    seen = describe(scan(scanner));
    ++scans;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"MODIFY b/f"}));
  // b is hot now: its next change shows at the next scan.
  writeFile(tmp / "b/f", "333");
  EXPECT_EQ(describe(scan(scanner)), (std::vector<std::string>{"MODIFY b/f"}));
}

TEST(PollScanner, ADirectoryIsListedUntilItsMtimeIsOlderThanTheGranularity) {
  TempDir tmp;
  tmp.mkdir("a");
  PollScanner::Options o;
  o.mtimeGranularity = std::chrono::hours(1);
  PollScanner scanner(tmp.path(), o);
  scan(scanner);
  scan(scanner);
  scan(scanner);
  EXPECT_EQ(scanner.counters().dirsListed, 6u);
  EXPECT_EQ(scanner.counters().dirsSkipped, 0u);
}

TEST(PollScanner, RenamesAreOneMovePairWithOneCookie) {
  TempDir tmp;
  tmp.mkdir("a");
  tmp.mkdir("b");
  writeFile(tmp / "a/f", "content");
  tmp.mkdir("a/d/sub");
  writeFile(tmp / "a/d/sub/x", "x");
  PollScanner scanner(tmp.path(), PollScanner::Options{});
  scan(scanner);

  std::filesystem::rename(tmp / "a/f", tmp / "b/g");
  auto events = scan(scanner);
  ASSERT_EQ(describe(events), (std::vector<std::string>{"MOVED_FROM a/f", "MOVED_TO b/g"}));
  EXPECT_NE(events[0].cookie, 0u);
  EXPECT_EQ(events[0].cookie, events[1].cookie);

  std::filesystem::rename(tmp / "a/d", tmp / "b/d2");  // carries its contents: no events for them
  events = scan(scanner);
  ASSERT_EQ(describe(events), (std::vector<std::string>{"MOVED_FROM,ISDIR a/d", "MOVED_TO,ISDIR b/d2"}));
  EXPECT_NE(events[0].cookie, 0u);
  EXPECT_EQ(events[0].cookie, events[1].cookie);
  struct stat st;
  ASSERT_EQ(::lstat((tmp / "b/d2").c_str(), &st), 0);
  EXPECT_EQ(events[1].stat.ino, st.st_ino);

  // Swapped names: the step through a third name was not seen, and two
  // moves cannot replay without it; one of them is DELETE + CREATE.
  writeFile(tmp / "b/h", "other content");
  scan(scanner);
  std::filesystem::rename(tmp / "b/g", tmp / "b/tmp");
  std::filesystem::rename(tmp / "b/h", tmp / "b/g");
  std::filesystem::rename(tmp / "b/tmp", tmp / "b/h");
  events = scan(scanner);
  EXPECT_EQ(describe(events), (std::vector<std::string>{"DELETE b/g", "MOVED_FROM b/h", "MOVED_TO b/g", "CREATE b/h"}));
}

TEST(PollScanner, DeletionsDeepestFirst) {
  TempDir tmp;
  tmp.mkdir("d/e");
  writeFile(tmp / "d/e/f", "");
  PollScanner scanner(tmp.path(), PollScanner::Options{});
  scan(scanner);
  std::filesystem::remove_all(tmp / "d");
  EXPECT_EQ(describe(scan(scanner)), (std::vector<std::string>{"DELETE d/e/f", "DELETE,ISDIR d/e", "DELETE,ISDIR d"}));
  EXPECT_EQ(scanner.entries(), 0u);
}

TEST(PollScanner, ANameTakenByAnotherInodeIsDeleteAndCreate) {
  TempDir tmp;
  writeFile(tmp / "f", "old");
  PollScanner scanner(tmp.path(), PollScanner::Options{});
  scan(scanner);
  writeFile(tmp / "f.tmp", "new!");  // an editor's save
  std::filesystem::rename(tmp / "f.tmp", tmp / "f");
  EXPECT_EQ(describe(scan(scanner)), (std::vector<std::string>{"DELETE f", "CREATE f"}));
  std::filesystem::remove(tmp / "f");
  std::filesystem::create_directory(tmp / "f");
  EXPECT_EQ(describe(scan(scanner)), (std::vector<std::string>{"DELETE f", "CREATE,ISDIR f"}));
}

TEST(PollScanner, NonRecursiveSeesOnlyTheDirectory) {
  TempDir tmp;
  tmp.mkdir("sub");
  PollScanner::Options o;
  o.recursive = false;
  PollScanner scanner(tmp.path(), o);
  scan(scanner);
  writeFile(tmp / "sub/inner", "");
  writeFile(tmp / "top", "");
  ASSERT_EQ(::chmod((tmp / "sub").c_str(), 0700), 0);
  EXPECT_EQ(describe(scan(scanner)), (std::vector<std::string>{"CREATE top", "ATTRIB,ISDIR sub"}));
}

TEST(PollScanner, TheRootGoingAwayEndsTheWatch) {
  TempDir tmp;
  std::string root = tmp.mkdir("root");
  writeFile(root + "/f", "");
  PollScanner scanner(root, PollScanner::Options{});
  scan(scanner);
  std::filesystem::remove_all(root);
  EXPECT_EQ(describe(scan(scanner)), (std::vector<std::string>{"DELETE f", "DELETE_SELF ", "IGNORED "}));
  EXPECT_TRUE(scanner.ended());
  EXPECT_TRUE(scan(scanner).empty());
}

TEST(PollScanner, AMissingRootIsAnErrorNamingIt) {
  TempDir tmp;
  PollScanner scanner(tmp / "absent", PollScanner::Options{});
  auto result = scanner.scan();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ENOENT);
  EXPECT_NE(result.error().message.find(tmp / "absent"), std::string::npos) << result.error().message;
  EXPECT_GT(scanner.deadline(), PollScanner::Clock::time_point{});
}

}  // namespace
}  // namespace rnotify
