// InodeTable on a real directory: lookup counts, names, resolution of event
// paths, renames, ghosts and inodes that SOURCE no longer has.
#include "fuse/inode_table.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

namespace rnotify::fuse {
namespace {

namespace fs = std::filesystem;

class InodeTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/rnotify-fuse-unit-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    struct stat st;
    UniqueFd fd(::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::fstat(fd.get(), &st), 0);
    table_ = std::make_unique<InodeTable>(std::move(fd), st);
  }
  void TearDown() override {
    table_.reset();
    fs::remove_all(root_);
  }

  // What lookup() does: open on SOURCE, stat, remember.
  fuse_ino_t lookup(fuse_ino_t parent, const std::string& name) {
    UniqueFd fd(::openat(table_->fdOf(parent), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    EXPECT_TRUE(fd.valid()) << name;
    struct stat st;
    EXPECT_EQ(::fstatat(fd.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW), 0);
    uint64_t generation = 0;
    return table_->remember(parent, name, std::move(fd), st, &generation);
  }

  std::string root_;
  std::unique_ptr<InodeTable> table_;
};

TEST_F(InodeTableTest, RepeatedLookupsShareOneInodeUntilForgotten) {
  fs::create_directories(root_ + "/a/b");
  fuse_ino_t a = lookup(FUSE_ROOT_ID, "a");
  fuse_ino_t b1 = lookup(a, "b");
  fuse_ino_t b2 = lookup(a, "b");
  EXPECT_EQ(b1, b2);
  EXPECT_EQ(table_->resolve("a/b"), b1);
  EXPECT_EQ(table_->resolve(""), FUSE_ROOT_ID);
  EXPECT_EQ(table_->pathOf(b1), "a/b");
  table_->forget(b1, 1);
  EXPECT_EQ(table_->resolve("a/b"), b1);  // one lookup left
  table_->forget(b1, 1);
  EXPECT_EQ(table_->resolve("a/b"), std::nullopt);
  EXPECT_EQ(table_->resolve("a"), a);
  EXPECT_EQ(table_->size(), 2u);  // root and a
}

TEST_F(InodeTableTest, RenameAndDropFollowTheKernel) {
  fs::create_directories(root_ + "/d");
  std::ofstream(root_ + "/d/f") << "x";
  fuse_ino_t d = lookup(FUSE_ROOT_ID, "d");
  fuse_ino_t f = lookup(d, "f");
  table_->rename(d, "f", FUSE_ROOT_ID, "g");
  EXPECT_EQ(table_->resolve("d/f"), std::nullopt);
  EXPECT_EQ(table_->resolve("g"), f);
  EXPECT_EQ(table_->child(FUSE_ROOT_ID, "g"), f);
  table_->dropName(FUSE_ROOT_ID, "g");
  EXPECT_EQ(table_->resolve("g"), std::nullopt);
  EXPECT_EQ(table_->pathOf(f), "\n");  // nameless: unreachable by path
}

// A directory moved on SOURCE: after the reflected rename its inode (and the
// cached inodes below it) are reopened at the new path.
TEST_F(InodeTableTest, ReopenAfterARenameOnSource) {
  fs::create_directories(root_ + "/d");
  std::ofstream(root_ + "/d/f") << "x";
  fuse_ino_t d = lookup(FUSE_ROOT_ID, "d");
  fuse_ino_t f = lookup(d, "f");
  fs::rename(root_ + "/d", root_ + "/e");
  table_->rename(FUSE_ROOT_ID, "d", FUSE_ROOT_ID, "e");
  table_->reopenAt(FUSE_ROOT_ID, "e");
  EXPECT_EQ(table_->resolve("e/f"), f);
  struct stat st;
  EXPECT_EQ(::fstatat(table_->fdOf(f), "", &st, AT_EMPTY_PATH), 0);
  EXPECT_EQ(::fstatat(table_->fdOf(d), "f", &st, 0), 0);
}

TEST_F(InodeTableTest, KnownInodeOutlivesItsFileOnSource) {
  std::ofstream(root_ + "/f") << "x";
  fuse_ino_t f = lookup(FUSE_ROOT_ID, "f");
  fs::remove(root_ + "/f");
  struct stat st;
  uint64_t generation = 0;
  auto known = table_->lookupKnown(FUSE_ROOT_ID, "f", &st, &generation);
  ASSERT_TRUE(known);
  EXPECT_EQ(*known, f);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(table_->lookupKnown(FUSE_ROOT_ID, "other", &st, &generation), std::nullopt);
  table_->forget(f, 2);  // the lookup and lookupKnown
  EXPECT_EQ(table_->resolve("f"), std::nullopt);
}

TEST_F(InodeTableTest, GhostsHaveAttributesButNoFile) {
  struct stat st;
  uint64_t generation = 0;
  fuse_ino_t ghost = table_->ghost(FUSE_ROOT_ID, "gone", S_IFDIR, &st, &generation);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(table_->fdOf(ghost), -1);
  EXPECT_EQ(table_->resolve("gone"), ghost);
  table_->forget(ghost, 1);
  EXPECT_EQ(table_->resolve("gone"), std::nullopt);
  EXPECT_EQ(table_->size(), 1u);
}

}  // namespace
}  // namespace rnotify::fuse
