// The CIFS_IOC_NOTIFY_INFO decoder on records built per MS-FSCC 2.4.42
// (FILE_NOTIFY_INFORMATION): NextEntryOffset, Action, FileNameLength (bytes),
// FileName (UTF-16LE), each record 4-byte aligned. A cifs mount cannot be made
// on the test machines, so these byte records stand in for the kernel's answer.
#include "smb/cifs_notify.h"

#include <gtest/gtest.h>

#include <cstring>

namespace rnotify {
namespace {

using Bytes = std::vector<uint8_t>;

void put32(Bytes* b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*b)[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

Bytes utf16(const std::u16string& s) {
  Bytes out;
  for (char16_t c : s) {
    out.push_back(static_cast<uint8_t>(c & 0xff));
    out.push_back(static_cast<uint8_t>(c >> 8));
  }
  return out;
}

struct RawRecord {
  uint32_t action;
  Bytes name;
};

// A well-formed chain: each record padded to 4 bytes, the last one's
// NextEntryOffset 0.
Bytes chain(const std::vector<RawRecord>& records) {
  Bytes out;
  for (size_t i = 0; i < records.size(); ++i) {
    size_t at = out.size();
    size_t len = 12 + records[i].name.size();
    size_t padded = (len + 3) & ~size_t{3};
    out.resize(at + (i + 1 < records.size() ? padded : len));
    put32(&out, at, i + 1 < records.size() ? static_cast<uint32_t>(padded) : 0);
    put32(&out, at + 4, records[i].action);
    put32(&out, at + 8, static_cast<uint32_t>(records[i].name.size()));
    std::memcpy(out.data() + at + 12, records[i].name.data(), records[i].name.size());
  }
  return out;
}

// struct smb3_notify_info around `data`, in a buffer with `spare` more bytes.
Bytes info(const Bytes& data, uint32_t filter = 0x13, bool tree = true, size_t spare = 0) {
  Bytes out(kCifsNotifyInfoHeader);
  put32(&out, 0, filter);
  out[4] = tree ? 1 : 0;
  out.resize(kCifsNotifyInfoHeader + data.size() + spare);
  out[5] = static_cast<uint8_t>(data.size());
  out[6] = static_cast<uint8_t>(data.size() >> 8);
  out[7] = static_cast<uint8_t>(data.size() >> 16);
  out[8] = static_cast<uint8_t>(data.size() >> 24);
  std::memcpy(out.data() + kCifsNotifyInfoHeader, data.data(), data.size());
  return out;
}

std::string errorOf(const Bytes& data) {
  auto r = decodeNotifyRecords(data);
  return r.ok() ? "" : r.error().message;
}

TEST(CifsNotifyDecoder, DecodesAChainOfRecords) {
  Bytes data = chain({{kFileActionRenamedOldName, utf16(u"old name.txt")},
                      {kFileActionRenamedNewName, utf16(u"sub\\new.txt")},
                      {kFileActionAdded, utf16(u"x")}});
  auto r = decodeNotifyRecords(data);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0], (NotifyRecord{kFileActionRenamedOldName, "old name.txt"}));
  EXPECT_EQ((*r)[1], (NotifyRecord{kFileActionRenamedNewName, "sub\\new.txt"}));
  EXPECT_EQ((*r)[2], (NotifyRecord{kFileActionAdded, "x"}));

  // And through the one table: a move with one cookie, a file in a subdirectory.
  NotifyTranslator t(0x13);
  std::vector<Event> events;
  t.translate(*r, &events);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].dir, "sub");
  EXPECT_EQ(events[0].cookie, events[1].cookie);
}

TEST(CifsNotifyDecoder, ConvertsUtf16ToUtf8) {
  // é (2 bytes in UTF-8), € (3), 😀 (a surrogate pair, 4).
  auto r = decodeNotifyRecords(chain({{kFileActionAdded, utf16(u"caf\u00e9 \u20ac \U0001F600")}}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ((*r)[0].name, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
}

TEST(CifsNotifyDecoder, EmptyBufferIsNoRecords) {
  auto r = decodeNotifyRecords({});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
}

TEST(CifsNotifyDecoder, RejectsTruncatedAndOversizedFields) {
  Bytes good = chain({{kFileActionAdded, utf16(u"abc")}});
  EXPECT_NE(errorOf(Bytes(good.begin(), good.begin() + 11)).find("a record needs 12"), std::string::npos);

  Bytes longName = good;
  put32(&longName, 8, 100);  // FileNameLength past the end
  EXPECT_NE(errorOf(longName).find("FileNameLength 100 exceeds"), std::string::npos) << errorOf(longName);

  Bytes huge = good;
  put32(&huge, 8, 0xfffffff0);  // would wrap a careless 32-bit sum
  EXPECT_NE(errorOf(huge).find("exceeds"), std::string::npos) << errorOf(huge);

  EXPECT_NE(errorOf(Bytes(kMaxNotifyData + 4)).find("more than any response"), std::string::npos);
}

TEST(CifsNotifyDecoder, RejectsChainsThatLoopOverlapOrLeave) {
  Bytes two = chain({{kFileActionAdded, utf16(u"abcd")}, {kFileActionRemoved, utf16(u"e")}});
  // The first record is 12 + 8 = 20 bytes, so NextEntryOffset is 20.
  Bytes overlap = two;
  put32(&overlap, 0, 12);  // points into its own name
  EXPECT_NE(errorOf(overlap).find("overlaps"), std::string::npos) << errorOf(overlap);

  Bytes unaligned = two;
  put32(&unaligned, 0, 22);
  EXPECT_NE(errorOf(unaligned).find("not 4-byte aligned"), std::string::npos) << errorOf(unaligned);

  Bytes outside = two;
  put32(&outside, 0, 4096);
  EXPECT_NE(errorOf(outside).find("leaves the buffer"), std::string::npos) << errorOf(outside);

  // A record whose offset points at itself again would loop forever; an
  // offset of 0 ends the chain instead, and anything smaller than the record
  // is refused above, so no chain can revisit a byte.
  Bytes selfLoop = two;
  put32(&selfLoop, 20, 0xfffffffc);  // the second record "points back" (wraps)
  EXPECT_NE(errorOf(selfLoop), "");
}

TEST(CifsNotifyDecoder, RejectsInvalidUtf16) {
  EXPECT_NE(errorOf(chain({{kFileActionAdded, Bytes{'a', 0, 'b'}}})).find("odd length"), std::string::npos);
  EXPECT_NE(errorOf(chain({{kFileActionAdded, Bytes{0x00, 0xD8, 'a', 0}}})).find("lone high surrogate"),
            std::string::npos);
  EXPECT_NE(errorOf(chain({{kFileActionAdded, Bytes{0x00, 0xDC}}})).find("lone low surrogate"), std::string::npos);
  EXPECT_NE(errorOf(chain({{kFileActionAdded, Bytes{0x3D, 0xD8}}})).find("inside a surrogate pair"), std::string::npos);
  EXPECT_NE(errorOf(chain({{kFileActionAdded, Bytes{'a', 0, 0, 0}}})).find("U+0000"), std::string::npos);
  auto r = decodeNotifyRecords(chain({{kFileActionAdded, Bytes{0x00, 0xD8, 'a', 0}}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EPROTO);
}

TEST(CifsNotifyInfo, DecodesTheIoctlStruct) {
  Bytes data = chain({{kFileActionModified, utf16(u"f")}});
  auto r = decodeCifsNotifyInfo(info(data, 0x17, true, 64));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->completionFilter, 0x17u);
  EXPECT_TRUE(r->watchTree);
  ASSERT_EQ(r->records.size(), 1u);
  EXPECT_EQ(r->records[0].action, kFileActionModified);
}

TEST(CifsNotifyInfo, RejectsABadHeader) {
  EXPECT_FALSE(decodeCifsNotifyInfo(Bytes(8)).ok());
  Bytes lying = info(chain({{kFileActionAdded, utf16(u"f")}}));
  put32(&lying, 5, 1000);  // data_len beyond the buffer
  auto r = decodeCifsNotifyInfo(lying);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("data_len 1000 exceeds"), std::string::npos) << r.error().message;
}

TEST(CifsNotifyInfo, UntouchedBufferMeansNothingReturned) {
  // The kernel leaves data_len and the data alone when the server returned no
  // bytes; the caller zeroed the first record header.
  Bytes untouched = info(Bytes(64, 0));
  auto r = decodeCifsNotifyInfo(untouched);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->records.empty());
}

TEST(CifsNotify, RefusesADirectoryNotOnCifs) {
  auto n = CifsNotify::start("/tmp", IN_CREATE, false);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().code, EOPNOTSUPP);
  EXPECT_NE(n.error().message.find("not on a cifs mount"), std::string::npos);
}

}  // namespace
}  // namespace rnotify
