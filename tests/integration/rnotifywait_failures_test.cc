// Issue 3: what rnotifywait does when it cannot watch (exit status 1 and a
// message that names the path or says what to install, as inotifywait does
// for its own failures), and that a local watch is plain inotify (no REMOTE).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "product.h"
#include "sshfs_bed.h"
#include "watcher.h"

namespace rnotify::testbed {
namespace {

using std::chrono::seconds;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// Errors as the user sees them: without the debug log.
WatcherOptions quiet(WatcherOptions o) {
  o.env["RNOTIFY_LOG_LEVEL"] = std::nullopt;
  return o;
}

TEST(RnotifywaitFailures, MissingLocalPathExitsOneNamingThePath) {
  if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  WatcherOptions o;
  o.path = dir / "does-not-exist";
  Watcher w(quiet(o));
  ASSERT_TRUE(w.expectExit(1));
  EXPECT_NE(joined(w.stderrLines()).find(o.path), std::string::npos) << w.transcript();
}

TEST(RnotifywaitFailures, MissingPathOnAnSshfsMountExitsOneNamingThePath) {
  if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
  if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
  SshfsBedOptions options;
  options.withMountB = false;
  SshfsBed bed(options);
  Watcher w(quiet(bed.watchA({"-r"}, "does-not-exist")));
  ASSERT_TRUE(w.expectExit(1)) << bed.transcript();
  EXPECT_NE(joined(w.stderrLines()).find(bed.a("does-not-exist")), std::string::npos) << w.transcript();
}

// Without rnotifyd on the server the watch still works: it falls back to
// polling (issue 8), says so once, naming what to install.
TEST(RnotifywaitFailures, ServerWithoutRnotifydFallsBackToPollingSayingWhatToInstall) {
  if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
  if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
  SshfsBedOptions options;
  options.withMountB = false;
  SshfsBed bed(options);
  WatcherOptions o = quiet(bed.watchA({"-r"}));
  o.agent = "/nonexistent/rnotifyd --stdio";
  Watcher w(o);
  ASSERT_TRUE(w.established()) << bed.transcript();
  writeFile(bed.server("made-on-server"), "x\n");
  EXPECT_TRUE(w.expectSequence({{"CREATE,REMOTE,POLLED", "made-on-server"}})) << bed.transcript();
  std::string err = lower(joined(w.stderrLines()));
  EXPECT_NE(err.find("rnotifyd"), std::string::npos) << w.transcript();
  EXPECT_NE(err.find("install"), std::string::npos) << w.transcript();
  EXPECT_NE(err.find("polling"), std::string::npos) << w.transcript();
}

TEST(RnotifywaitFailures, LocalWatchIsPlainInotifyWithoutRemote) {
  if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  WatcherOptions o;
  o.args = {"-r"};
  o.path = dir.path();
  Watcher w(o);
  ASSERT_TRUE(w.established());
  writeFile(dir / "f", "x\n");
  EXPECT_TRUE(w.expectNoneBefore({"REMOTE", "*"}, {"CLOSE_WRITE,!REMOTE", "f"}));
  std::filesystem::create_directory(dir / "d");
  writeFile(dir / "d/g", "y\n");
  EXPECT_TRUE(w.expectSequence({{"CREATE,ISDIR,!REMOTE", "d"}, {"CREATE,!REMOTE", "d/g"}}));
}

}  // namespace
}  // namespace rnotify::testbed
