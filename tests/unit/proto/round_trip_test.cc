// Every message type survives encode -> FrameReader unchanged, and the worked
// examples of docs/PROTOCOL.md section 8 are produced byte for byte.
#include <sys/inotify.h>

#include "proto/codec.h"
#include "proto_test_util.h"

namespace rnotify::proto {
namespace {

using test::frameOf;
using test::hex;
using test::makeEvent;
using test::unhex;

// From docs/PROTOCOL.md 8.1 and 8.2; keep in sync.
constexpr const char* kHelloExample =
    "1e 00 00 00 01 52 4e 46 59 01 00 01 00 00 00 00 00 00 00 00 00 0b 00 72 6e 6f 74 69 66 79 2f 30 2e 31";
constexpr const char* kEventsExample =
    "25 00 00 00 20 01 00 00 00 1e 00 03 00 00 00 07 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 03 00 73 72 63 03 "
    "00 61 2e 63";

Message roundTrip(const Message& msg) {
  FrameReader reader;
  reader.feed(frameOf(msg));
  auto result = reader.next();
  EXPECT_TRUE(result.ok()) << result.error().message;
  EXPECT_TRUE(result.value().has_value());
  EXPECT_EQ(reader.pending(), 0u);
  return std::move(*result.value());
}

std::vector<Message> sampleMessages() {
  std::string rawName = "\xff\xfe caf\xc3\xa9 \x01\n";  // not UTF-8, control bytes: names are raw bytes
  Events events;
  events.events.push_back(makeEvent(1, 1, IN_CREATE, "", "a.txt"));
  events.events.push_back(makeEvent(1, 2, IN_MOVED_FROM | IN_ISDIR, "a/b", rawName, 77));
  events.events.push_back(makeEvent(1, 3, IN_MOVED_TO | IN_ISDIR, "c", std::string(kMaxName, 'n'), 77));
  events.events.push_back(makeEvent(9, UINT64_MAX, IN_DELETE_SELF, std::string(kMaxPath, 'd'), ""));
  events.events.push_back(makeEvent(0, 0, IN_Q_OVERFLOW, "", ""));
  Event attributed = makeEvent(2, 5, IN_MODIFY, "x", "y");
  attributed.origin = Origin::kSelf;
  events.events.push_back(attributed);
  Event withStat = makeEvent(2, 6, IN_ATTRIB, "", "y");
  withStat.hasStat = true;
  withStat.stat = EventStat{UINT64_MAX, -1, 999999999, 0100644, 1000, 100, 42};
  events.events.push_back(withStat);
  withStat.origin = Origin::kOther;
  events.events.push_back(withStat);
  return {
      Hello{1, 7, kCapResume | kCapStat | (1ull << 63), "rnotify/0.1 host=laptop"},
      Hello{},
      Welcome{1, kCapOrigin, 0x0123456789abcdefull, kDefaultMaxFrame, "rnotifyd/0.1"},
      Welcome{3, 0, 0, kMinMaxFrame, ""},
      Watch{42, kWatchRecursive | 0x80, IN_ALL_EVENTS | IN_ONLYDIR, "/srv/data/" + rawName},
      Watch{0, 0, 0, std::string(kMaxPath, 'p')},
      Unwatch{43, 7},
      Reply{42, 0, 7, "/srv/data"},
      Reply{44, ENOSYS, 0, "cannot watch '/mnt/x': no backend for this filesystem"},
      Declare{45, {"ssh 192.0.2.7 50412", "ssh ::1 22"}},
      Declare{46, {}},
      Snapshot{47, 3},
      Entries{47,
              {TreeEntry{"", "a", EventStat{1, 2, 3, 040755, 0, 0, 9}},
               TreeEntry{"a/b", rawName, EventStat{UINT64_MAX, -5, 0, 0100600, 1, 2, 3}}}},
      Entries{48, {}},
      events,
      Events{},
      Attach{49, {0x1122334455667788ull, 1}, 0, {}},
      Attach{50, {7, 0}, 0x0123456789abcdefull, {{1, 0}, {3, UINT64_MAX}}},
      Ack{{{1, 99}}},
      Ack{},
      Auth{51, "alice", "6f1c2e9a-token"},
      Auth{52, std::string(kMaxUserName, 'u'), std::string(kMaxToken, 't')},
      Ping{0xfeedfacecafebeefull},
      Pong{1},
      Fatal{EMSGSIZE, "frame of 4294967295 bytes exceeds the limit of 1048576"},
  };
}

TEST(ProtoRoundTrip, EveryMessageTypeDecodesToWhatWasEncoded) {
  for (const Message& msg : sampleMessages()) {
    SCOPED_TRACE(typeName(typeOf(msg)));
    ASSERT_TRUE(validate(msg).ok()) << validate(msg).error().message;
    EXPECT_TRUE(roundTrip(msg) == msg);
  }
}

TEST(ProtoRoundTrip, DecodeOfPayloadMatchesFrameReader) {
  for (const Message& msg : sampleMessages()) {
    std::string frame = frameOf(msg);
    auto decoded = decode(typeOf(msg), std::string_view(frame).substr(5));
    ASSERT_TRUE(decoded.ok()) << decoded.error().message;
    EXPECT_TRUE(decoded.value() == msg) << typeName(typeOf(msg));
  }
}

TEST(ProtoRoundTrip, HelloWorkedExampleIsByteExact) {
  Hello hello;
  hello.clientName = "rnotify/0.1";
  EXPECT_EQ(hex(frameOf(hello)), kHelloExample);
  auto decoded = test::readOne(unhex(kHelloExample));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_TRUE(*decoded.value() == Message(hello));
}

TEST(ProtoRoundTrip, EventsWorkedExampleIsByteExact) {
  Event ev = makeEvent(3, 7, IN_CREATE, "src", "a.c");
  EXPECT_EQ(hex(frameOf(Events{{ev}})), kEventsExample);

  std::string incremental;
  size_t start = beginEvents(incremental);
  appendEvent(incremental, ev);
  finishEvents(incremental, start, 1);
  EXPECT_EQ(hex(incremental), kEventsExample);

  auto decoded = test::readOne(unhex(kEventsExample));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  const auto& events = std::get<Events>(*decoded.value()).events;
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0] == ev);
}

TEST(ProtoRoundTrip, IncrementalEventsEqualWholeEncodingAndAppendToExistingBytes) {
  Events events;
  for (uint32_t i = 1; i <= 100; ++i)
    events.events.push_back(makeEvent(i % 3 + 1, i, IN_MODIFY, "d", "f" + std::to_string(i)));
  std::string out = "prefix";
  size_t start = beginEvents(out);
  EXPECT_EQ(start, 6u);
  size_t expectedSize = out.size();
  for (const Event& ev : events.events) {
    appendEvent(out, ev);
    expectedSize += eventRecordSize(ev);
    EXPECT_EQ(out.size(), expectedSize);
  }
  finishEvents(out, start, 100);
  EXPECT_EQ(out.substr(0, 6), "prefix");
  EXPECT_EQ(hex(out.substr(6)), hex(frameOf(events)));
  EXPECT_EQ(kEventsHeaderSize, frameOf(Events{}).size());
}

TEST(ProtoRoundTrip, RemoteBitIsNeverOnTheWire) {
  Event ev = makeEvent(1, 1, IN_CREATE | kInRemote, "", "x");
  auto decoded = roundTrip(Events{{ev}});
  EXPECT_EQ(std::get<Events>(decoded).events[0].mask, uint32_t{IN_CREATE});

  // A peer that sets it anyway: the bit is ignored, as PROTOCOL.md 5.2 says.
  std::string frame = frameOf(Events{{makeEvent(1, 1, IN_CREATE, "", "x")}});
  frame[5 + 4 + 2 + 4 + 8 + 2] |= 0x80;  // bit 23 of the mask
  auto result = test::readOne(frame);
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(std::get<Events>(*result.value()).events[0].mask, uint32_t{IN_CREATE});
}

TEST(ProtoRoundTrip, RecordExtensionIsOnlyWrittenWhenItCarriesSomething) {
  Event plain = makeEvent(1, 1, IN_CREATE, "", "x");
  Event tagged = plain;
  tagged.origin = Origin::kOther;
  EXPECT_EQ(eventRecordSize(tagged), eventRecordSize(plain) + 2);
  EXPECT_EQ(frameOf(Events{{tagged}}).size(), frameOf(Events{{plain}}).size() + 2);
  tagged.hasStat = true;
  EXPECT_EQ(eventRecordSize(tagged), eventRecordSize(plain) + 2 + 40);
  EXPECT_EQ(frameOf(Events{{tagged}}).size(), frameOf(Events{{plain}}).size() + 2 + 40);
}

TEST(ProtoRoundTrip, BadExtensionsAreMalformed) {
  Event tagged = makeEvent(1, 1, IN_CREATE, "", "x");
  tagged.origin = Origin::kSelf;
  std::string frame = frameOf(Events{{tagged}});
  size_t originAt = frame.size() - 2;
  std::string bad = frame;
  bad[originAt] = 3;
  EXPECT_EQ(test::readOne(bad).error().code, EPROTO);
  bad = frame;
  bad[originAt + 1] = 1;  // claims a stat block that is not there
  EXPECT_EQ(test::readOne(bad).error().code, EPROTO);
  Declare tooMany{1, std::vector<std::string>(kMaxDeclared + 1, "ssh 10.0.0.1 1")};
  EXPECT_FALSE(validate(Message(tooMany)).ok());
  EXPECT_EQ(test::readOne(frameOf(tooMany)).error().code, EPROTO);
  EXPECT_EQ(test::readOne(frameOf(Declare{1, {""}})).error().code, EPROTO);
}

TEST(ProtoRoundTrip, BadEntriesAreMalformed) {
  std::string frame = frameOf(Entries{1, {TreeEntry{"", "x", EventStat{}}}});
  EXPECT_TRUE(test::readOne(frame).ok());
  EXPECT_EQ(test::readOne(frameOf(Entries{1, {TreeEntry{"", "", EventStat{}}}})).error().code, EPROTO);
  EXPECT_EQ(test::readOne(frameOf(Entries{1, {TreeEntry{"../up", "x", EventStat{}}}})).error().code, EPROTO);
  EXPECT_FALSE(validate(Message(Entries{1, {TreeEntry{"", "a/b", EventStat{}}}})).ok());
  std::string lying = frame;
  lying[5 + 4] = 9;  // count 9 in a frame with room for one
  EXPECT_EQ(test::readOne(lying).error().code, EPROTO);
}

TEST(ProtoRoundTrip, TypeOfAndTypeName) {
  EXPECT_EQ(typeOf(Message(Fatal{})), Type::kFatal);
  EXPECT_STREQ(typeName(Type::kEvents), "Events");
  EXPECT_STREQ(typeName(static_cast<Type>(0x77)), "unknown");
}

TEST(ProtoValidate, RejectsWhatTheDecoderWouldReject) {
  EXPECT_EQ(validate(Watch{1, 0, IN_CREATE, std::string(kMaxPath + 1, 'p')}).error().code, ENAMETOOLONG);
  EXPECT_EQ(validate(Watch{1, 0, IN_CREATE, std::string("a\0b", 3)}).error().code, EINVAL);
  EXPECT_EQ(validate(makeEvent(1, 1, IN_CREATE, "", std::string(kMaxName + 1, 'n'))).error().code, ENAMETOOLONG);
  EXPECT_EQ(validate(makeEvent(1, 1, IN_CREATE, "", "a/b")).error().code, EINVAL);
  EXPECT_EQ(validate(makeEvent(1, 1, IN_CREATE, "../x", "a")).error().code, EINVAL);
  EXPECT_EQ(validate(Hello{2, 1, 0, ""}).error().code, EINVAL);
  EXPECT_EQ(validate(Welcome{1, 0, 0, 100, ""}).error().code, EINVAL);
  EXPECT_EQ(validate(Reply{1, -1, 0, ""}).error().code, EINVAL);
  EXPECT_FALSE(validate(Fatal{-5, ""}).ok());
  EXPECT_TRUE(validate(Unwatch{}).ok());
}

TEST(ProtoEncode, OverlongStringsStillMakeWellFormedFramesThatThePeerRejects) {
  // encode never fails; a path over the limit must not arrive silently shortened.
  auto result = test::readOne(frameOf(Watch{1, 0, IN_CREATE, std::string(70000, 'p')}));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, EPROTO);
  EXPECT_NE(result.error().message.find("path is 4097 bytes"), std::string::npos) << result.error().message;

  // Texts are merely cut at the u16 limit.
  auto text = test::readOne(frameOf(Fatal{EPROTO, std::string(70000, 'm')}));
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_EQ(std::get<Fatal>(*text.value()).message.size(), 0xffffu);
}

}  // namespace
}  // namespace rnotify::proto
