// The SFTP packets the polling backend reads: what OpenSSH's sftp-server
// sends decodes to the names and attributes in it, and a packet that lies
// about its lengths is an error, never a read past its end.
#include "poll/sftp_codec.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

namespace rnotify::sftp {
namespace {

void put32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}
void putString(std::string& out, const std::string& s) {
  put32(out, static_cast<uint32_t>(s.size()));
  out += s;
}
std::string fileAttrs(uint64_t size, uint32_t mode, uint32_t mtime) {
  std::string a;
  put32(a, 0x1 | 0x2 | 0x4 | 0x8);
  put32(a, static_cast<uint32_t>(size >> 32));
  put32(a, static_cast<uint32_t>(size));
  put32(a, 1000);  // uid
  put32(a, 100);   // gid
  put32(a, mode);
  put32(a, 1);  // atime
  put32(a, mtime);
  return a;
}

TEST(SftpCodec, RequestsAreFramedWithLengthTypeIdAndString) {
  std::string p = encodeRequest(kOpendir, 7, "dir/a");
  ASSERT_EQ(p.size(), 4u + 1 + 4 + 4 + 5);
  auto length = packetLength(p);
  ASSERT_TRUE(length.ok());
  EXPECT_EQ(*length, p.size() - 4);
  EXPECT_EQ(p[4], char(kOpendir));
  EXPECT_EQ(p.substr(13), "dir/a");
  EXPECT_EQ(encodeInit().size(), 9u);
}

TEST(SftpCodec, ANameAnswerGivesEachEntrysAttributes) {
  std::string body(1, char(kName));
  put32(body, 42);
  put32(body, 2);
  putString(body, "file");
  putString(body, "-rw-r--r-- 1 u g 5 Nov 27 file");
  body += fileAttrs(5, S_IFREG | 0644, 1764201600);
  putString(body, "sub");
  putString(body, "drwxr-xr-x 2 u g 4096 Nov 27 sub");
  body += fileAttrs(4096, S_IFDIR | 0755, 1764201601);
  auto reply = decodeReply(body);
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply->type, kName);
  EXPECT_EQ(reply->id, 42u);
  ASSERT_EQ(reply->names.size(), 2u);
  EXPECT_EQ(reply->names[0].name, "file");
  EXPECT_EQ(reply->names[0].attrs.size, 5u);
  EXPECT_EQ(reply->names[0].attrs.uid, 1000u);
  EXPECT_TRUE(S_ISREG(reply->names[0].attrs.mode));
  EXPECT_EQ(reply->names[1].name, "sub");
  EXPECT_TRUE(S_ISDIR(reply->names[1].attrs.mode));
  EXPECT_EQ(reply->names[1].attrs.mtime, 1764201601u);
}

TEST(SftpCodec, StatusHandleAndVersionDecode) {
  std::string status(1, char(kStatus));
  put32(status, 3);
  put32(status, kNoSuchFile);
  putString(status, "No such file");
  putString(status, "");
  auto s = decodeReply(status);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->status, uint32_t{kNoSuchFile});
  EXPECT_EQ(s->message, "No such file");

  std::string shortStatus(1, char(kStatus));  // version 3 servers may stop after the code
  put32(shortStatus, 4);
  put32(shortStatus, kEof);
  ASSERT_TRUE(decodeReply(shortStatus).ok());

  std::string handle(1, char(kHandle));
  put32(handle, 5);
  putString(handle, std::string("\0\0\0\1", 4));
  auto h = decodeReply(handle);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->handle.size(), 4u);

  std::string version(1, char(kVersion));
  put32(version, 3);
  putString(version, "posix-rename@openssh.com");
  putString(version, "1");
  auto v = decodeReply(version);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->version, 3u);
}

TEST(SftpCodec, LyingLengthsAreErrors) {
  std::string body(1, char(kName));
  put32(body, 1);
  put32(body, 1000000);  // far more entries than bytes
  putString(body, "x");
  EXPECT_FALSE(decodeReply(body).ok());

  std::string cut(1, char(kName));
  put32(cut, 1);
  put32(cut, 1);
  put32(cut, 50);  // a name longer than what follows
  cut += "abc";
  EXPECT_FALSE(decodeReply(cut).ok());

  std::string slash(1, char(kName));
  put32(slash, 1);
  put32(slash, 1);
  putString(slash, "../etc");
  putString(slash, "");
  slash += fileAttrs(1, S_IFREG | 0644, 1);
  EXPECT_FALSE(decodeReply(slash).ok()) << "a name with '/' would escape the directory listed";

  std::string huge;
  put32(huge, kMaxPacket + 1);
  EXPECT_EQ(packetLength(huge).error().code, EMSGSIZE);
  std::string zero;
  put32(zero, 0);
  EXPECT_FALSE(packetLength(zero).ok());
  EXPECT_FALSE(decodeReply("").ok());
  EXPECT_FALSE(decodeReply(std::string(1, char(99))).ok());
}

TEST(SftpCodec, ExtendedAttributesAreSkippedWithinBounds) {
  std::string body(1, char(kAttrs));
  put32(body, 9);
  put32(body, 0x80000000u);
  put32(body, 1);
  putString(body, "name");
  putString(body, "data");
  ASSERT_TRUE(decodeReply(body).ok());
  std::string lie(1, char(kAttrs));
  put32(lie, 9);
  put32(lie, 0x80000000u);
  put32(lie, 0xffffffffu);
  EXPECT_FALSE(decodeReply(lie).ok());
}

}  // namespace
}  // namespace rnotify::sftp
