// Confinement: nothing outside an exported root can be resolved, however the
// path is spelled.
#include "server/export_roots.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace rnotify {
namespace {

namespace fs = std::filesystem;

class ExportRootsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/rnotify-export-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    base_ = pattern;
    fs::create_directories(base_ + "/export/sub");
    fs::create_directories(base_ + "/secret");
    fs::create_symlink(base_ + "/secret", base_ + "/export/escape");
    fs::create_symlink("sub", base_ + "/export/inside");
    auto roots = ExportRoots::create({base_ + "/export"});
    ASSERT_TRUE(roots.ok()) << roots.error().message;
    roots_ = std::move(*roots);
  }
  void TearDown() override { fs::remove_all(base_); }

  std::string base_;
  ExportRoots roots_;
};

TEST_F(ExportRootsTest, ResolvesPathsInsideTheExport) {
  auto r = roots_.resolve(base_ + "/export/sub", "/");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, base_ + "/export/sub");
  auto relative = roots_.resolve("sub", base_ + "/export");
  ASSERT_TRUE(relative.ok());
  EXPECT_EQ(*relative, base_ + "/export/sub");
  auto viaLink = roots_.resolve(base_ + "/export/inside", "/");
  ASSERT_TRUE(viaLink.ok());
  EXPECT_EQ(*viaLink, base_ + "/export/sub");
}

TEST_F(ExportRootsTest, RefusesEverythingOutside) {
  for (const std::string& path : {base_ + "/secret", base_ + "/export/../secret", base_ + "/export/escape",
                                  base_ + "/export/sub/../../secret", std::string("/etc"), base_ + "/exportx"}) {
    auto r = roots_.resolve(path, "/");
    ASSERT_FALSE(r.ok()) << path << " resolved to " << *r;
    EXPECT_TRUE(r.error().code == EACCES || r.error().code == ENOENT) << path << ": " << r.error().message;
  }
  auto relative = roots_.resolve("../secret", base_ + "/export");
  ASSERT_FALSE(relative.ok());
  EXPECT_EQ(relative.error().code, EACCES);
  EXPECT_NE(relative.error().message.find("outside the exported"), std::string::npos);
}

TEST_F(ExportRootsTest, RefusesMalformedPaths) {
  EXPECT_EQ(roots_.resolve("", "/").error().code, EINVAL);
  EXPECT_EQ(roots_.resolve(std::string("a\0b", 3), "/").error().code, EINVAL);
  auto missing = roots_.resolve(base_ + "/export/nope", "/");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_NE(missing.error().message.find("/export/nope"), std::string::npos);
}

}  // namespace
}  // namespace rnotify
