// DirectoryCache follows renames: every entry at and below a renamed
// directory gets the new path.
#include "watch/directory_cache.h"

#include <gtest/gtest.h>

namespace rnotify {
namespace {

TEST(DirectoryCacheTest, ARenameMovesTheDirectoryAndEverythingBelowIt) {
  DirectoryCache cache(100);
  cache.insert("k1", "/w/n0");
  cache.insert("k2", "/w/n0/a");
  cache.insert("k3", "/w/n0/a/b");
  cache.insert("k4", "/w/n0x");  // a sibling whose name starts the same
  cache.repath("/w/n0", "/w/n0.m1");
  EXPECT_EQ(cache.find("k1")->path, "/w/n0.m1");
  EXPECT_EQ(cache.find("k2")->path, "/w/n0.m1/a");
  EXPECT_EQ(cache.find("k3")->path, "/w/n0.m1/a/b");
  EXPECT_EQ(cache.find("k4")->path, "/w/n0x");
}

// The fanotify watcher passes the path of the moved entry itself as `from`.
// Renaming that entry must not change what `from` means for the entries
// after it (it did: substr past the end threw, and rnotifyd died; seen with
// two fanotify watchers lagging behind renames on one filesystem).
TEST(DirectoryCacheTest, FromMayBeThePathOfAnEntryItRenames) {
  DirectoryCache cache(100);
  DirectoryCache::Directory* moved = cache.insert("k1", "/w/n0");
  cache.insert("k2", "/w/n0/a");
  cache.insert("k3", "/w/n0/a/b");
  EXPECT_NO_THROW(cache.repath(moved->path, "/w/n0.m1416"));
  EXPECT_EQ(cache.find("k1")->path, "/w/n0.m1416");
  EXPECT_EQ(cache.find("k2")->path, "/w/n0.m1416/a");
  EXPECT_EQ(cache.find("k3")->path, "/w/n0.m1416/a/b");
}

}  // namespace
}  // namespace rnotify
