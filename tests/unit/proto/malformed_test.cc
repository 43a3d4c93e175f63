// Every kind of malformed input listed in docs/PROTOCOL.md section 6 is an
// error with the right errno and a message that says what is wrong, never a
// crash or an allocation sized by an untrusted count.
#include <sys/inotify.h>

#include "proto/codec.h"
#include "proto_test_util.h"

namespace rnotify::proto {
namespace {

using test::frameOf;
using test::makeEvent;
using test::payloadOf;
using test::rawFrame;

std::vector<Message> fixedLayoutMessages() {
  return {Hello{1, 1, 0, "c"},
          Welcome{1, 0, 5, kDefaultMaxFrame, "s"},
          Watch{1, 1, IN_CREATE, "/p"},
          Unwatch{1, 2},
          Reply{1, 0, 2, "ok"},
          Attach{1, {2, 3}, 4, {{5, 6}}},
          Ack{{{1, 2}}},
          Auth{1, "alice", "secret"},
          Ping{5},
          Pong{6},
          Fatal{EPROTO, "bye"}};
}

// Expects decoding to fail with code and a message containing text.
void expectError(Type type, std::string_view payload, int code, std::string_view text) {
  auto result = decode(type, payload);
  ASSERT_FALSE(result.ok()) << typeName(type) << " decoded although it should fail with: " << text;
  EXPECT_EQ(result.error().code, code);
  EXPECT_NE(result.error().message.find(text), std::string::npos)
      << "message: " << result.error().message << "\nexpected to contain: " << text;
}

TEST(ProtoMalformed, EveryTruncationOfEveryMessageIsRejected) {
  std::vector<Message> messages = fixedLayoutMessages();
  messages.push_back(Events{{makeEvent(1, 1, IN_CREATE, "a", "b"), makeEvent(1, 2, IN_DELETE, "", "c")}});
  for (const Message& msg : messages) {
    std::string payload = payloadOf(msg);
    for (size_t n = 0; n < payload.size(); ++n) {
      SCOPED_TRACE(std::string(typeName(typeOf(msg))) + " cut to " + std::to_string(n));
      auto result = decode(typeOf(msg), std::string_view(payload).substr(0, n));
      ASSERT_FALSE(result.ok());
      EXPECT_EQ(result.error().code, EPROTO);
    }
  }
}

TEST(ProtoMalformed, TrailingBytesAfterAFixedMessageAreRejected) {
  for (const Message& msg : fixedLayoutMessages()) {
    expectError(typeOf(msg), payloadOf(msg) + "x", EPROTO, "1 trailing bytes");
  }
  expectError(Type::kEvents, payloadOf(Events{{makeEvent(1, 1, IN_CREATE, "", "f")}}) + "xy", EPROTO,
              "2 trailing bytes");
}

TEST(ProtoMalformed, ExtraBytesInsideARecordAreSkipped) {
  // A later version appends fields to a record, after the extension of
  // section 4.6 (origin 0, no stat); this reader skips them.
  Event first = makeEvent(1, 1, IN_CREATE, "d", "f");
  Event second = makeEvent(1, 2, IN_DELETE, "", "g");
  std::string payload = payloadOf(Events{{first, second}});
  size_t firstLength = eventRecordSize(first) - 2;
  payload[4] = static_cast<char>(firstLength + 5);
  payload.insert(4 + 2 + firstLength, std::string("\0\0EXT", 5));
  auto result = decode(Type::kEvents, payload);
  ASSERT_TRUE(result.ok()) << result.error().message;
  const auto& events = std::get<Events>(result.value()).events;
  ASSERT_EQ(events.size(), 2u);
  EXPECT_TRUE(events[0] == first);
  EXPECT_TRUE(events[1] == second);
}

TEST(ProtoMalformed, RecordLengthsThatDoNotMatchTheFieldsAreRejected) {
  std::string payload = payloadOf(Events{{makeEvent(1, 1, IN_CREATE, "dir", "name")}});
  std::string shorter = payload;
  shorter[4] = static_cast<char>(shorter[4] - 1);  // the name crosses the record's end
  expectError(Type::kEvents, shorter, EPROTO, "record 0: truncated at name");

  std::string tiny = payload;
  tiny[4] = 10;
  tiny[5] = 0;
  expectError(Type::kEvents, tiny, EPROTO, "recordLength 10, below the minimum of 24");

  std::string longer = payload;
  longer[4] = static_cast<char>(longer[4] + 1);  // past the end of the payload
  expectError(Type::kEvents, longer, EPROTO, "truncated at record");
}

TEST(ProtoMalformed, CountsThatCannotFitAreRejectedBeforeAllocating) {
  std::string payload = payloadOf(Events{{makeEvent(1, 1, IN_CREATE, "", "")}});
  payload[0] = payload[1] = payload[2] = payload[3] = '\xff';
  expectError(Type::kEvents, payload, EPROTO, "count 4294967295 cannot fit in 26 bytes");

  payload = payloadOf(Events{{makeEvent(1, 1, IN_CREATE, "", "a")}});
  payload[0] = 2;  // one more than present, and it could almost fit
  expectError(Type::kEvents, payload, EPROTO, "count 2 cannot fit");

  payload = payloadOf(Events{{makeEvent(1, 1, IN_CREATE, "", ""), makeEvent(1, 2, IN_CREATE, "", "")}});
  payload[0] = 1;  // fewer than present: the rest is trailing garbage
  expectError(Type::kEvents, payload, EPROTO, "trailing bytes");
}

TEST(ProtoMalformed, ResumeMessagesAreChecked) {
  std::string payload = payloadOf(Ack{{{1, 2}}});
  payload[0] = payload[1] = payload[2] = '\xff';
  payload[3] = 0;
  expectError(Type::kAck, payload, EPROTO, "is above the limit of 65536");
  payload = payloadOf(Ack{{{1, 2}}});
  payload[0] = 2;
  expectError(Type::kAck, payload, EPROTO, "count 2 cannot fit in 12 bytes");
  expectError(Type::kAttach, payloadOf(Attach{1, {0, 0}, 0, {}}), EPROTO, "the token is zero");
  expectError(Type::kAttach, payloadOf(Attach{1, {1, 0}, 0, {{1, 1}}}), EPROTO, "positions without an instanceId");
  EXPECT_FALSE(validate(Attach{1, {0, 0}, 0, {}}).ok());
}

TEST(ProtoMalformed, AuthFieldsAreChecked) {
  expectError(Type::kAuth, payloadOf(Auth{1, "", "secret"}), EPROTO, "user is empty");
  expectError(Type::kAuth, payloadOf(Auth{1, "../etc", "secret"}), EPROTO, "user contains '/'");
  expectError(Type::kAuth, payloadOf(Auth{1, "..", "secret"}), EPROTO, "user is '..'");
  expectError(Type::kAuth, payloadOf(Auth{1, "alice", ""}), EPROTO, "token is empty");
  expectError(Type::kAuth, payloadOf(Auth{1, std::string(kMaxUserName + 1, 'u'), "t"}), EPROTO,
              "user is 256 bytes, the limit is 255");
  expectError(Type::kAuth, payloadOf(Auth{1, "alice", std::string(kMaxToken + 1, 't')}), EPROTO,
              "token is 1025 bytes, the limit is 1024");
  expectError(Type::kAuth, payloadOf(Auth{1, "alice", std::string("se\0cret", 7)}), EPROTO, "token contains a NUL");
  // A sender is told before it sends; the message never repeats the token.
  auto tooLong = validate(Auth{1, "alice", std::string(kMaxToken + 1, 't')});
  ASSERT_FALSE(tooLong.ok());
  EXPECT_EQ(tooLong.error().message.find("ttt"), std::string::npos) << tooLong.error().message;
  EXPECT_FALSE(validate(Auth{1, "a/b", "t"}).ok());
  EXPECT_FALSE(validate(Auth{1, "alice", ""}).ok());
}

TEST(ProtoMalformed, NulBytesInStringsAreRejected) {
  std::string nul("a\0b", 3);
  expectError(Type::kWatch, payloadOf(Watch{1, 0, IN_CREATE, nul}), EPROTO, "path contains a NUL byte at offset 1");
  expectError(Type::kHello, payloadOf(Hello{1, 1, 0, nul}), EPROTO, "clientName contains a NUL");
  expectError(Type::kReply, payloadOf(Reply{1, 0, 0, nul}), EPROTO, "message contains a NUL");
  expectError(Type::kEvents, payloadOf(Events{{makeEvent(1, 1, IN_CREATE, "", nul)}}), EPROTO,
              "record 0: name contains a NUL");
  expectError(Type::kEvents, payloadOf(Events{{makeEvent(1, 1, IN_CREATE, nul, "x")}}), EPROTO, "dir contains a NUL");
}

TEST(ProtoMalformed, NamesAndPathsOverTheirLimitsAreRejected) {
  expectError(Type::kWatch, payloadOf(Watch{1, 0, IN_CREATE, std::string(kMaxPath + 1, 'p')}), EPROTO,
              "path is 4097 bytes, the limit is 4096");
  expectError(Type::kEvents, payloadOf(Events{{makeEvent(1, 1, IN_CREATE, "", std::string(kMaxName + 1, 'n'))}}),
              EPROTO, "name is 256 bytes, the limit is 255");
  expectError(Type::kEvents, payloadOf(Events{{makeEvent(1, 1, IN_CREATE, std::string(kMaxPath + 1, 'd'), "")}}),
              EPROTO, "dir is 4097 bytes, the limit is 4096");
}

TEST(ProtoMalformed, EventPathsThatLeaveTheWatchedTreeAreRejected) {
  for (const char* dir : {"/abs", "a//b", "a/", "..", "a/../b", ".", "./a"}) {
    SCOPED_TRACE(dir);
    expectError(Type::kEvents, payloadOf(Events{{makeEvent(1, 1, IN_CREATE, dir, "x")}}), EPROTO, "event dir");
  }
  for (const char* name : {"a/b", "/", ".", ".."}) {
    SCOPED_TRACE(name);
    expectError(Type::kEvents, payloadOf(Events{{makeEvent(1, 1, IN_CREATE, "", name)}}), EPROTO, "event name");
  }
  EXPECT_TRUE(decode(Type::kEvents, payloadOf(Events{{makeEvent(1, 1, IN_CREATE, "a/.b/..c", "...")}})).ok());
}

TEST(ProtoMalformed, HandshakeFieldsAreChecked) {
  std::string badMagic = payloadOf(Hello{});
  badMagic[0] = 'X';
  expectError(Type::kHello, badMagic, EPROTO, "does not speak rnotify");
  expectError(Type::kHello, payloadOf(Hello{0, 1, 0, ""}), EPROTO, "version range 0..1");
  expectError(Type::kHello, payloadOf(Hello{3, 2, 0, ""}), EPROTO, "version range 3..2");
  expectError(Type::kWelcome, payloadOf(Welcome{0, 0, 0, kDefaultMaxFrame, ""}), EPROTO, "version 0");
  expectError(Type::kWelcome, payloadOf(Welcome{1, 0, 0, kMinMaxFrame - 1, ""}), EPROTO,
              "maxFrame 4095 is below the minimum of 4096");
  expectError(Type::kReply, payloadOf(Reply{1, -2, 0, ""}), EPROTO, "negative status -2");
  expectError(Type::kFatal, payloadOf(Fatal{-1, ""}), EPROTO, "negative code -1");
}

TEST(ProtoMalformed, UnknownTypesAreRejected) {
  expectError(static_cast<Type>(0x42), "", EPROTO, "unknown frame type 0x42");
  // The reader needs only the length and the type byte to know.
  auto result = test::readOne(std::string("\x10\x00\x00\x00\x42", 5));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, EPROTO);
  EXPECT_EQ(result.error().message, "unknown frame type 0x42");
}

TEST(ProtoMalformed, ZeroLengthFrameIsRejected) {
  auto result = test::readOne(std::string(4, '\0'));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, EPROTO);
  EXPECT_NE(result.error().message.find("length 0"), std::string::npos);
}

TEST(ProtoMalformed, OversizedFrameIsRejectedFromItsPrefixAlone) {
  auto result = test::readOne("\xff\xff\xff\xff");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, EMSGSIZE);
  EXPECT_EQ(result.error().message, "frame of 4294967295 bytes exceeds the limit of 1048576");
}

TEST(ProtoMalformed, LimitIsInclusiveAndCountsTheTypeByte) {
  std::string atLimit = rawFrame(Type::kFatal, payloadOf(Fatal{1, std::string(kMinMaxFrame - 7, 'm')}));
  ASSERT_EQ(atLimit.size(), 4 + kMinMaxFrame);
  EXPECT_TRUE(test::readOne(atLimit, kMinMaxFrame).ok());

  std::string over = rawFrame(Type::kFatal, payloadOf(Fatal{1, std::string(kMinMaxFrame - 6, 'm')}));
  auto result = test::readOne(over, kMinMaxFrame);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, EMSGSIZE);
  EXPECT_EQ(result.error().message, "frame of 4097 bytes exceeds the limit of 4096");

  FrameReader reader(kMinMaxFrame);
  reader.setMaxFrame(kMinMaxFrame + 1);
  reader.feed(over);
  EXPECT_TRUE(reader.next().ok());
}

TEST(ProtoMalformed, AnErrorIsStickyUntilTheConnectionCloses) {
  FrameReader reader;
  reader.feed(frameOf(Ping{1}));
  reader.feed(rawFrame(Type::kPing, "short"));
  reader.feed(frameOf(Ping{2}));
  auto first = reader.next();
  ASSERT_TRUE(first.ok());
  for (int i = 0; i < 3; ++i) {
    auto again = reader.next();
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().message, "malformed Ping frame: truncated at token (needs 8 bytes, 5 left)");
  }
}

}  // namespace
}  // namespace rnotify::proto
