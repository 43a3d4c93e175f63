// Confinement: nothing outside an exported root can be resolved, however the
// path is spelled.
#include "server/export_roots.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <iostream>
#include <thread>
#include <vector>

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

TEST_F(ExportRootsTest, LoopsAndAbsoluteLinksAreRefusedByTheKernelWalk) {
  fs::create_symlink("loop2", base_ + "/export/loop1");
  fs::create_symlink("loop1", base_ + "/export/loop2");
  auto loop = roots_.resolve(base_ + "/export/loop1", "/");
  ASSERT_FALSE(loop.ok());
  EXPECT_EQ(loop.error().code, ELOOP) << loop.error().message;
  // An absolute link that points back inside is refused too: RESOLVE_BENEATH
  // never lets a walk restart from "/".
  fs::create_symlink(base_ + "/export/sub", base_ + "/export/absolute");
  auto absolute = roots_.resolve(base_ + "/export/absolute", "/");
  ASSERT_FALSE(absolute.ok());
  EXPECT_EQ(absolute.error().code, EACCES) << absolute.error().message;
}

TEST_F(ExportRootsTest, ADirectorySwappedForALinkNeverLeadsOut) {
  // A client keeps asking for export/swap/x while another process swaps
  // export/swap between a real directory and a link to the secret one: no
  // answer may ever be a path outside the export.
  fs::create_directories(base_ + "/export/real/x");
  fs::create_directories(base_ + "/secret/x");
  std::atomic<bool> stop{false};
  std::thread swapper([&] {
    const std::string swap = base_ + "/export/swap", link = base_ + "/export/swap.link",
                      dir = base_ + "/export/swap.dir";
    fs::create_symlink(base_ + "/secret", link);
    fs::create_directory(dir);
    fs::create_directory(dir + "/x");
    while (!stop) {
      ::renameat2(AT_FDCWD, link.c_str(), AT_FDCWD, swap.c_str(), 0);
      ::renameat2(AT_FDCWD, swap.c_str(), AT_FDCWD, link.c_str(), 0);
      ::renameat2(AT_FDCWD, dir.c_str(), AT_FDCWD, swap.c_str(), 0);
      ::renameat2(AT_FDCWD, swap.c_str(), AT_FDCWD, dir.c_str(), 0);
    }
  });
  int inside = 0;
  for (int i = 0; i < 20000; ++i) {
    auto r = roots_.resolve(base_ + "/export/swap/x", "/");
    if (r.ok()) {
      ++inside;
      EXPECT_EQ(r->rfind(base_ + "/export/", 0), 0u) << "resolved outside: " << *r;
    }
  }
  stop = true;
  swapper.join();
  std::cerr << inside << " of 20000 resolutions landed inside the export; none outside\n";
}

TEST_F(ExportRootsTest, APathIsJudgedByItsSpellingBeforeAnyLookup) {
  // ".." is applied to the spelling: export/sub/../sub is inside, whatever
  // sub is; a link outside the export that leads into it is not followed
  // (it would be a lookup outside every export).
  auto dotted = roots_.resolveEntry(base_ + "/export/./sub/../sub", "/");
  ASSERT_TRUE(dotted.ok()) << dotted.error().message;
  EXPECT_EQ(dotted->path, base_ + "/export/sub");
  fs::create_symlink(base_ + "/export", base_ + "/into");
  auto viaOutsideLink = roots_.resolveEntry(base_ + "/into/sub", "/");
  ASSERT_FALSE(viaOutsideLink.ok());
  EXPECT_EQ(viaOutsideLink.error().code, EACCES) << viaOutsideLink.error().message;
  // Outside: the same answer whether it exists or not.
  auto existing = roots_.resolveEntry(base_ + "/secret", "/");
  auto missing = roots_.resolveEntry(base_ + "/nothing", "/");
  ASSERT_FALSE(existing.ok());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(existing.error().code, missing.error().code);
}

TEST_F(ExportRootsTest, TheResolvedDescriptorIsTheEntry) {
  auto r = roots_.resolveEntry(base_ + "/export/inside", "/");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE(r->fd.valid());
  struct stat byFd, byPath;
  ASSERT_EQ(::fstat(r->fd.get(), &byFd), 0);
  ASSERT_EQ(::stat((base_ + "/export/sub").c_str(), &byPath), 0);
  EXPECT_EQ(byFd.st_ino, byPath.st_ino);
  EXPECT_EQ(roots_.roots()[r->exportIndex], base_ + "/export");
}

TEST_F(ExportRootsTest, AnotherUserGetsOneAnswerForEveryPathItMayNotWatch) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (checks as nobody)";
  ::chmod(base_.c_str(), 0755);
  ::chmod((base_ + "/export").c_str(), 0755);
  fs::create_directories(base_ + "/export/private/inner");
  ::chmod((base_ + "/export/private").c_str(), 0700);
  Credentials nobody{65534, 65534, {65534}, "nobody", "test"};
  const std::vector<std::string> paths = {base_ + "/secret",
                                          base_ + "/nothing",
                                          base_ + "/export/escape",
                                          base_ + "/export/../secret",
                                          base_ + "/export/nope",
                                          base_ + "/export/private",
                                          base_ + "/export/private/inner",
                                          base_ + "/export/private/none"};
  for (const std::string& path : paths) {
    auto r = roots_.resolveEntry(path, "/", &nobody);
    ASSERT_FALSE(r.ok()) << path << " resolved for nobody";
    EXPECT_EQ(r.error().code, EACCES) << path;
    EXPECT_EQ(r.error().message, ExportRoots::forbidden(path).message) << path;
  }
  auto allowed = roots_.resolveEntry(base_ + "/export/sub", "/", &nobody);
  EXPECT_TRUE(allowed.ok()) << allowed.error().message;
}

TEST_F(ExportRootsTest, RefusesMalformedPaths) {
  EXPECT_EQ(roots_.resolve("", "/").error().code, EINVAL);
  EXPECT_EQ(roots_.resolve(std::string("a\0b", 3), "/").error().code, EINVAL);
  auto missing = roots_.resolve(base_ + "/export/nope", "/");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_NE(missing.error().message.find("/export/nope"), std::string::npos);
}

// What NFS and SMB clients call an export (kWatchExportPath): its path as the
// server spells it (knfsd), or a name for its first component (ganesha's
// pseudo path, an SMB share, case ignored as SMB does); the mapped path is
// then confined like any other.
TEST_F(ExportRootsTest, AnExportPathIsMappedByTheExportsName) {
  fs::create_directories(base_ + "/samba/docs");
  fs::create_symlink(base_ + "/secret", base_ + "/samba/escape");
  auto named = ExportRoots::create({base_ + "/export", "share=" + base_ + "/samba"});
  ASSERT_TRUE(named.ok()) << named.error().message;
  EXPECT_EQ(named->names(), (std::vector<std::string>{"export", "share"}));
  EXPECT_EQ(named->mapExportPath(base_ + "/export/sub"), base_ + "/export/sub");  // knfsd: the server's own path
  EXPECT_EQ(named->mapExportPath(base_ + "/export/./sub/"), base_ + "/export/./sub/") << "as it came";
  EXPECT_EQ(named->mapExportPath("/export/sub"), base_ + "/export/sub");  // ganesha: Pseudo = /export
  EXPECT_EQ(named->mapExportPath("/export"), base_ + "/export");
  EXPECT_EQ(named->mapExportPath("/share/docs"), base_ + "/samba/docs");
  EXPECT_EQ(named->mapExportPath("/SHARE/docs"), base_ + "/samba/docs");
  EXPECT_EQ(named->mapExportPath("/samba/docs"), "/samba/docs") << "named 'share', not by its directory";
  EXPECT_EQ(named->mapExportPath("/other/x"), "/other/x");
  // Spelled out of the export: mapped by the name the spelling reaches, and
  // confined after all the same.
  EXPECT_EQ(named->mapExportPath("/share/../export/sub"), base_ + "/export/sub");
  for (const char* path : {"/export/escape", "/share/escape", "/share/escape/x", "/SHARE/escape"}) {
    auto escape = named->resolve(named->mapExportPath(path), "/");
    EXPECT_FALSE(escape.ok()) << path << " resolved to " << *escape;
  }
  EXPECT_EQ(named->mapExportPath("/share/../../secret"), "/share/../../secret") << "no export is named secret";
}

TEST_F(ExportRootsTest, ExportNamesAreUniqueOrUnused) {
  fs::create_directories(base_ + "/a/data");
  fs::create_directories(base_ + "/b/data");
  fs::create_directories(base_ + "/c/data");
  // Two directories called data: neither answers to it, unless named.
  auto three = ExportRoots::create({base_ + "/a/data", base_ + "/b/data", base_ + "/c/data"});
  ASSERT_TRUE(three.ok()) << three.error().message;
  EXPECT_EQ(three->names(), (std::vector<std::string>{"", "", ""}));
  auto one = ExportRoots::create({base_ + "/a/data", "data=" + base_ + "/b/data"});
  ASSERT_TRUE(one.ok()) << one.error().message;
  EXPECT_EQ(one->names(), (std::vector<std::string>{"", "data"}));
  EXPECT_EQ(one->mapExportPath("/data/x"), base_ + "/b/data/x");
  auto clash = ExportRoots::create({"data=" + base_ + "/a/data", "data=" + base_ + "/b/data"});
  ASSERT_FALSE(clash.ok());
  EXPECT_NE(clash.error().message.find("has that name already"), std::string::npos) << clash.error().message;
  auto empty = ExportRoots::create({"=" + base_ + "/a/data"});
  EXPECT_FALSE(empty.ok());
}

}  // namespace
}  // namespace rnotify
