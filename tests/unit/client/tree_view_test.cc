// TreeView: after a gap the differences between what the client knew and a
// fresh listing are reported as the events a watcher would have seen.
#include "poll/tree_view.h"

#include <gtest/gtest.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <string>
#include <vector>

namespace rnotify {
namespace {

proto::TreeEntry file(std::string dir, std::string name, uint64_t ino, uint64_t size = 0, uint32_t mode = 0100644) {
  proto::TreeEntry e;
  e.dir = std::move(dir);
  e.name = std::move(name);
  e.stat.ino = ino;
  e.stat.size = size;
  e.stat.mode = mode;
  e.stat.mtimeSec = 1000;
  return e;
}
proto::TreeEntry dir(std::string parent, std::string name, uint64_t ino) {
  return file(std::move(parent), std::move(name), ino, 4096, 040755);
}

std::vector<std::string> describe(const std::vector<TreeView::Change>& changes) {
  std::vector<std::string> out;
  for (const auto& c : changes) {
    std::string kind = (c.mask & IN_CREATE)       ? "CREATE"
                       : (c.mask & IN_DELETE)     ? "DELETE"
                       : (c.mask & IN_MODIFY)     ? "MODIFY"
                       : (c.mask & IN_ATTRIB)     ? "ATTRIB"
                       : (c.mask & IN_MOVED_FROM) ? "MOVED_FROM"
                       : (c.mask & IN_MOVED_TO)   ? "MOVED_TO"
                                                  : "?";
    if (c.mask & IN_ISDIR) kind += ",ISDIR";
    out.push_back(kind + " " + (c.dir.empty() ? "" : c.dir + "/") + c.name);
  }
  return out;
}

TEST(TreeView, ReportsCreationsDeletionsModificationsAndAttributes) {
  TreeView view;
  view.reset({file("", "kept", 1, 10), file("", "gone", 2), file("", "grown", 3, 5), file("", "chmodded", 4)});
  auto chmodded = file("", "chmodded", 4);
  chmodded.stat.mode = 0100600;
  uint32_t cookie = 1;
  auto changes = view.diff({file("", "kept", 1, 10), file("", "grown", 3, 50), chmodded, file("", "new", 5)}, &cookie);
  EXPECT_EQ(describe(changes),
            (std::vector<std::string>{"DELETE gone", "CREATE new", "MODIFY grown", "ATTRIB chmodded"}));
}

// advance() (SFTP scans, the re-read after a gap) is diff() and reset() in
// one pass: the same report, and the view is then the listing.
TEST(TreeView, AdvancingReportsWhatDiffDoesAndThenIsTheListing) {
  const std::vector<proto::TreeEntry> before = {dir("", "a", 10), file("a", "f", 11), file("", "x", 12, 1)};
  const std::vector<proto::TreeEntry> after = {dir("", "b", 10), file("b", "f", 11), file("", "x", 12, 2),
                                               file("", "new", 13)};
  TreeView diffed, advanced;
  diffed.reset(before);
  advanced.replace(TreeView::Listing::of(before));
  uint32_t cookieA = 5, cookieB = 5;
  auto expected = describe(diffed.diff(after, &cookieA));
  EXPECT_EQ(describe(advanced.advance(TreeView::Listing::of(after), &cookieB)), expected);
  EXPECT_EQ(cookieA, cookieB);
  EXPECT_EQ(advanced.size(), after.size());
  EXPECT_TRUE(advanced.contains("b/f"));
  EXPECT_FALSE(advanced.contains("a"));
  EXPECT_TRUE(advanced.advance(TreeView::Listing::of(after), &cookieB).empty());  // nothing changed since
}

TEST(TreeView, ARenameIsOnePairAndADirectoryCarriesItsContents) {
  TreeView view;
  view.reset({dir("", "a", 10), file("a", "f", 11), file("", "x", 12)});
  uint32_t cookie = 7;
  auto changes = view.diff({dir("", "b", 10), file("b", "f", 11), file("", "y", 12)}, &cookie);
  ASSERT_EQ(describe(changes),
            (std::vector<std::string>{"MOVED_FROM,ISDIR a", "MOVED_TO,ISDIR b", "MOVED_FROM x", "MOVED_TO y"}));
  EXPECT_EQ(changes[0].cookie, changes[1].cookie);
  EXPECT_EQ(changes[2].cookie, changes[3].cookie);
  EXPECT_NE(changes[0].cookie, changes[2].cookie);
}

TEST(TreeView, DeletionsGoDeepestFirstAndCreationsShallowestFirst) {
  TreeView view;
  view.reset({dir("", "old", 1), dir("old", "sub", 2), file("old/sub", "f", 3)});
  uint32_t cookie = 1;
  auto changes = view.diff({dir("", "new", 4), dir("new", "sub", 5), file("new/sub", "f", 6)}, &cookie);
  EXPECT_EQ(describe(changes),
            (std::vector<std::string>{"DELETE old/sub/f", "DELETE,ISDIR old/sub", "DELETE,ISDIR old",
                                      "CREATE,ISDIR new", "CREATE,ISDIR new/sub", "CREATE new/sub/f"}));
}

TEST(TreeView, AReplacedEntryIsADeleteAndACreate) {
  TreeView view;
  view.reset({file("", "f", 1)});
  uint32_t cookie = 1;
  EXPECT_EQ(describe(view.diff({file("", "f", 2)}, &cookie)), (std::vector<std::string>{"DELETE f", "CREATE f"}));
}

TEST(TreeView, FollowsTheServersEventsSoThatNothingIsReportedTwice) {
  TreeView view;
  view.reset({dir("", "d", 1), file("d", "f", 2)});
  auto event = [](uint32_t mask, std::string dir, std::string name, const proto::TreeEntry* state,
                  uint32_t cookie = 0) {
    Event e;
    e.mask = mask;
    e.dir = std::move(dir);
    e.name = std::move(name);
    e.cookie = cookie;
    if (state != nullptr) {
      e.hasStat = true;
      e.stat = state->stat;
    }
    return e;
  };
  auto g = file("d", "g", 3, 4);
  view.apply(event(IN_CREATE, "d", "g", &g));
  auto e = dir("", "e", 1);
  view.apply(event(IN_MOVED_FROM | IN_ISDIR, "", "d", nullptr, 9));
  view.apply(event(IN_MOVED_TO | IN_ISDIR, "", "e", &e, 9));
  view.apply(event(IN_DELETE, "e", "f", nullptr));
  uint32_t cookie = 1;
  // The listing shows exactly what the events said: no differences.
  EXPECT_TRUE(view.diff({dir("", "e", 1), file("e", "g", 3, 4)}, &cookie).empty());
  EXPECT_EQ(view.size(), 2u);
}

// The order must replay: applying the changes to the old tree in order gives
// the new one, each step possible where it stands. A name a rename replaced
// is deleted first: no MOVED_TO or CREATE lands on a taken name.
TEST(TreeView, ARenameOntoAnExistingNameDeletesItFirst) {
  TreeView view;
  view.reset({file("", "a", 1, 5), file("", "b", 2, 7)});
  uint32_t cookie = 1;
  EXPECT_EQ(describe(view.diff({file("", "b", 1, 5)}, &cookie)),
            (std::vector<std::string>{"DELETE b", "MOVED_FROM a", "MOVED_TO b"}));
}

TEST(TreeView, ARotationReplaysOldestFirst) {
  TreeView view;
  view.reset({file("", "log", 1, 10), file("", "log.1", 2, 20), file("", "log.2", 3, 30)});
  uint32_t cookie = 1;
  EXPECT_EQ(describe(view.diff({file("", "log", 4, 0), file("", "log.1", 1, 10), file("", "log.2", 2, 20)}, &cookie)),
            (std::vector<std::string>{"DELETE log.2", "MOVED_FROM log.1", "MOVED_TO log.2", "MOVED_FROM log",
                                      "MOVED_TO log.1", "CREATE log"}));
}

TEST(TreeView, AReusedInodeNumberIsNotARename) {
  TreeView view;
  view.reset({dir("", "d", 1), file("d", "x", 5, 3)});
  auto reused = file("", "f", 5, 9);
  reused.stat.mtimeSec = 2000;
  uint32_t cookie = 1;
  EXPECT_EQ(describe(view.diff({dir("", "d", 1), reused}, &cookie)),
            (std::vector<std::string>{"DELETE d/x", "CREATE f"}));
}

TEST(TreeView, ADirectoryIsCreatedBeforeSomethingMovesIntoIt) {
  TreeView view;
  view.reset({file("", "a", 1)});
  uint32_t cookie = 1;
  EXPECT_EQ(describe(view.diff({dir("", "n", 9), file("n", "a", 1)}, &cookie)),
            (std::vector<std::string>{"CREATE,ISDIR n", "MOVED_FROM a", "MOVED_TO n/a"}));
}

TEST(TreeView, AnEntryWhoseStateWasNeverKnownIsStillReportedGone) {
  TreeView view;
  view.reset({});
  Event created;
  created.mask = IN_CREATE;
  created.name = "brief";  // no stat: it was gone before the server looked
  view.apply(created);
  uint32_t cookie = 1;
  EXPECT_EQ(describe(view.diff({}, &cookie)), (std::vector<std::string>{"DELETE brief"}));
  EXPECT_TRUE(view.diff({file("", "brief", 8)}, &cookie).empty()) << "present: nothing to compare it with";
}

// Directories that neither the view nor the listing shows (a view that
// missed them) are taken as they are: what is below them is compared.
TEST(TreeView, EntriesBelowDirectoriesNeitherListsAreCompared) {
  TreeView view;
  view.reset({file("src/m", "a", 1, 5), file("src/m", "b", 2, 7)});
  uint32_t cookie = 1;
  EXPECT_TRUE(view.diff({file("src/m", "a", 1, 5), file("src/m", "b", 2, 7)}, &cookie).empty());
  EXPECT_EQ(describe(view.diff({file("src/m", "a", 1, 6), file("src/m", "c", 2, 7)}, &cookie)),
            (std::vector<std::string>{"MOVED_FROM src/m/b", "MOVED_TO src/m/c", "MODIFY src/m/a"}));
}

TEST(TreeView, TheRootGoingAwayEmptiesTheView) {
  TreeView view;
  view.reset({file("", "f", 1)});
  Event self;
  self.mask = IN_DELETE_SELF;
  view.apply(self);
  EXPECT_EQ(view.size(), 0u);
}

}  // namespace
}  // namespace rnotify
