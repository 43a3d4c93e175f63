// Credentials files as mount.cifs reads them, and SMB locations from cifs
// mount sources and smb:// URLs.
#include "smb/smb_credentials.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

namespace rnotify {
namespace {

TEST(SmbCredentials, ReadsTheMountCifsFormat) {
  auto c = parseCredentials("username=alice\npassword=s3cret = with spaces \ndomain=CORP\n");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->user, "alice");
  EXPECT_EQ(c->password, "s3cret = with spaces ");  // everything after the first '=', kept as written
  EXPECT_EQ(c->domain, "CORP");
}

TEST(SmbCredentials, AcceptsAliasesCommentsBlankLinesAndCrlf) {
  auto c = parseCredentials("# written on Windows\r\n\r\n; another comment\r\n  user=bob\r\npass=pw\r\ndom=HOME\r\n");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->user, "bob");
  EXPECT_EQ(c->password, "pw");
  EXPECT_EQ(c->domain, "HOME");
}

TEST(SmbCredentials, DomainInTheUserName) {
  auto c = parseCredentials("username=CORP\\carol\npassword=x\n");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->user, "carol");
  EXPECT_EQ(c->domain, "CORP");
}

TEST(SmbCredentials, RejectsUnknownKeysAndMissingUser) {
  auto typo = parseCredentials("username=a\npasword=x\n", "/etc/creds");
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.error().code, EINVAL);
  EXPECT_NE(typo.error().message.find("/etc/creds:2"), std::string::npos) << typo.error().message;
  EXPECT_NE(typo.error().message.find("pasword"), std::string::npos) << typo.error().message;
  EXPECT_FALSE(parseCredentials("password=x\n").ok());
  EXPECT_FALSE(parseCredentials("username\n").ok());
}

class CredentialsFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/rnotify-creds-XXXXXX";
    int fd = ::mkstemp(templ);
    ASSERT_GE(fd, 0);
    ::close(fd);
    path_ = templ;
    std::ofstream(path_) << "username=alice\npassword=pw\n";
  }
  void TearDown() override { ::unlink(path_.c_str()); }
  std::string path_;
};

TEST_F(CredentialsFile, ReadsAPrivateFile) {
  ASSERT_EQ(::chmod(path_.c_str(), 0600), 0);
  auto c = readCredentialsFile(path_);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->user, "alice");
}

TEST_F(CredentialsFile, RefusesAFileOthersMayRead) {
  for (mode_t mode : {0640, 0604, 0660}) {
    ASSERT_EQ(::chmod(path_.c_str(), mode), 0);
    auto c = readCredentialsFile(path_);
    ASSERT_FALSE(c.ok()) << std::oct << mode;
    EXPECT_EQ(c.error().code, EACCES);
    EXPECT_NE(c.error().message.find("chmod 600"), std::string::npos) << c.error().message;
    EXPECT_NE(c.error().message.find(path_), std::string::npos) << c.error().message;
  }
}

TEST_F(CredentialsFile, MissingFileNamesThePath) {
  auto c = readCredentialsFile(path_ + ".absent");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ENOENT);
  EXPECT_NE(c.error().message.find(path_ + ".absent"), std::string::npos);
}

TEST(SmbLocation, FromACifsMountSource) {
  auto l = parseMountSource("//files.example.org/projects/2026/q4/", 0);
  ASSERT_TRUE(l.ok()) << l.error().message;
  EXPECT_EQ(l->server, "files.example.org");
  EXPECT_EQ(l->port, 0);
  EXPECT_EQ(l->share, "projects");
  EXPECT_EQ(l->path, "2026/q4");

  auto backslashes = parseMountSource("\\\\srv\\share", 4455);
  ASSERT_TRUE(backslashes.ok()) << backslashes.error().message;
  EXPECT_EQ(backslashes->server, "srv");
  EXPECT_EQ(backslashes->port, 4455);
  EXPECT_EQ(backslashes->share, "share");
  EXPECT_EQ(backslashes->path, "");

  auto v6 = parseMountSource("//[fd00::1]:1445/s/a//b", 0);
  ASSERT_TRUE(v6.ok()) << v6.error().message;
  EXPECT_EQ(v6->server, "fd00::1");
  EXPECT_EQ(v6->port, 1445);
  EXPECT_EQ(v6->path, "a/b");
}

TEST(SmbLocation, RejectsMalformedSources) {
  for (const char* bad : {"srv/share", "//", "//srv", "//srv/", "///share", "//srv:0/s", "//srv:99999/s",
                          "//srv/s/../etc", "//srv/s/./a"}) {
    auto l = parseMountSource(bad, 0);
    EXPECT_FALSE(l.ok()) << bad;
    if (!l.ok()) {
      EXPECT_EQ(l.error().code, EINVAL) << bad;
    }
  }
}

TEST(SmbLocation, FromAnSmbUrl) {
  SmbCredentials creds;
  auto l = parseSmbUrl("smb://CORP;dave:p%40ss@nas.local:4450/Media/Photos%202026/raw", &creds);
  ASSERT_TRUE(l.ok()) << l.error().message;
  EXPECT_EQ(l->server, "nas.local");
  EXPECT_EQ(l->port, 4450);
  EXPECT_EQ(l->share, "Media");
  EXPECT_EQ(l->path, "Photos 2026/raw");
  EXPECT_EQ(creds.user, "dave");
  EXPECT_EQ(creds.password, "p@ss");
  EXPECT_EQ(creds.domain, "CORP");

  auto plain = parseSmbUrl("smb://127.0.0.1/share");
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  EXPECT_EQ(plain->server, "127.0.0.1");
  EXPECT_EQ(plain->share, "share");
  EXPECT_EQ(plain->path, "");

  EXPECT_FALSE(parseSmbUrl("cifs://srv/share").ok());
  EXPECT_FALSE(parseSmbUrl("smb://srv/share/%zz").ok());
  EXPECT_FALSE(parseSmbUrl("smb://srv/share/%2").ok());
}

TEST(SmbLocation, UrlForLibsmbclientRoundTrips) {
  SmbLocation l{"127.0.0.1", 4455, "share", "dir with space/é"};
  std::string url = smbUrl(l);
  EXPECT_EQ(url, "smb://127.0.0.1:4455/share/dir%20with%20space/%C3%A9");
  auto back = parseSmbUrl(url);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->path, l.path);
  EXPECT_EQ(smbUrl(SmbLocation{"fd00::1", 0, "s", ""}), "smb://[fd00::1]/s");
}

}  // namespace
}  // namespace rnotify
