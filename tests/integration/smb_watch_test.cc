// Issue 8: a share whose server runs no rnotifyd (here a real smbd on
// loopback) watched through SMB2 CHANGE_NOTIFY, end to end through the
// client core and rnotifywait: `rnotifywait -m smb://user@host:port/share`.
// Changes made on the server and by another SMB client arrive with the
// masks inotify would give, flagged REMOTE; -v says the source.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "deadline.h"
#include "process.h"
#include "product.h"
#include "samba.h"
#include "temp_dir.h"
#include "watcher.h"

namespace rnotify::testbed {
namespace {

using std::chrono::seconds;

TEST(SmbWatch, ServerAndSecondClientChangesReachRnotifywait) {
  if (auto why = Samba::missing(); !why.empty()) GTEST_SKIP() << why;
  if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
  Samba samba;
  TempDir scratch;
  const std::string credentials = scratch / "credentials";
  writeFile(credentials, std::string("username=") + Samba::kUser + "\npassword=" + samba.password() + "\n");
  ASSERT_EQ(::chmod(credentials.c_str(), 0600), 0);

  WatcherOptions o;
  o.args = {"-v"};
  o.path = "smb://" + std::string(Samba::kUser) + "@127.0.0.1:" + std::to_string(samba.port()) + "/" + Samba::kShare;
  o.env["RNOTIFY_SMB_CREDENTIALS"] = credentials;
  Watcher w(o);
  ASSERT_TRUE(w.established()) << samba.transcript();
  bool told = false;
  for (const std::string& line : w.stderrLines()) told |= line.find("SMB2 change notify") != std::string::npos;
  EXPECT_TRUE(told) << w.transcript();

  // On the server's own filesystem.
  writeFile(samba.serverPath("made-on-server"), "x\n");
  EXPECT_TRUE(w.expectSequence({{"CREATE,REMOTE", "made-on-server"}})) << samba.transcript();
  std::filesystem::rename(samba.serverPath("made-on-server"), samba.serverPath("renamed-on-server"));
  EXPECT_TRUE(w.expectMove({"MOVED_FROM,REMOTE", "made-on-server"}, {"MOVED_TO,REMOTE", "renamed-on-server"}));
  std::filesystem::remove(samba.serverPath("renamed-on-server"));
  EXPECT_TRUE(w.expectSequence({{"DELETE,REMOTE", "renamed-on-server"}}));

  // Through a second SMB client.
  writeFile(scratch / "payload", "hello\n");
  samba.smbclient("lcd " + scratch.path() + "; put payload from-client; rename from-client moved; rm moved");
  EXPECT_TRUE(w.expectSequence({{"CREATE,REMOTE", "from-client"}}));
  EXPECT_TRUE(w.expectMove({"MOVED_FROM,REMOTE", "from-client"}, {"MOVED_TO,REMOTE", "moved"}));
  EXPECT_TRUE(w.expectSequence({{"DELETE,REMOTE", "moved"}}));
}

TEST(SmbWatch, WrongPasswordIsAClearError) {
  if (auto why = Samba::missing(); !why.empty()) GTEST_SKIP() << why;
  if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
  Samba samba;
  WatcherOptions o;
  o.path = "smb://" + std::string(Samba::kUser) + ":wrong-password@127.0.0.1:" + std::to_string(samba.port()) + "/" +
           Samba::kShare;
  o.env["RNOTIFY_LOG_LEVEL"] = std::nullopt;
  Watcher w(o);
  ASSERT_TRUE(w.expectExit(1));
  std::string err;
  for (const std::string& line : w.stderrLines()) err += line + "\n";
  EXPECT_NE(err.find("smb://"), std::string::npos) << w.transcript();
  EXPECT_EQ(err.find("wrong-password"), std::string::npos) << "a password must never be printed:\n" << err;
}

}  // namespace
}  // namespace rnotify::testbed
