// FrameReader on a real stream's shapes: frames split at every byte, many
// frames in one read, a peer that vanishes mid-frame, and long streams fed in
// odd-sized chunks (which exercise the buffer compaction).
#include <sys/inotify.h>

#include "proto/codec.h"
#include "proto_test_util.h"

namespace rnotify::proto {
namespace {

using test::frameOf;
using test::makeEvent;

std::vector<Message> drain(FrameReader& reader) {
  std::vector<Message> out;
  for (;;) {
    auto result = reader.next();
    EXPECT_TRUE(result.ok()) << result.error().message;
    if (!result.ok() || !result.value()) return out;
    out.push_back(std::move(*result.value()));
  }
}

std::string conversation(std::vector<Message>& messages) {
  messages = {Hello{1, 1, 0, "client"},
              Welcome{1, 0, 99, kDefaultMaxFrame, "server"},
              Watch{1, kWatchRecursive, IN_ALL_EVENTS, "/srv"},
              Reply{1, 0, 1, "/srv"},
              Events{{makeEvent(1, 1, IN_CREATE, "", "a"), makeEvent(1, 2, IN_MOVED_FROM, "x/y", "b", 5)}},
              Ping{7},
              Pong{7},
              Unwatch{2, 1},
              Fatal{0, "bye"}};
  std::string stream;
  for (const Message& msg : messages) encode(msg, stream);
  return stream;
}

TEST(FrameReader, FrameSplitByteByByte) {
  std::vector<Message> messages;
  std::string stream = conversation(messages);
  FrameReader reader;
  std::vector<Message> got;
  for (char c : stream) {
    reader.feed(std::string_view(&c, 1));
    for (Message& m : drain(reader)) got.push_back(std::move(m));
  }
  ASSERT_EQ(got.size(), messages.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(got[i] == messages[i]) << "message " << i;
  EXPECT_EQ(reader.pending(), 0u);
}

TEST(FrameReader, ManyFramesInOneFeed) {
  std::string stream;
  for (uint64_t i = 0; i < 10000; ++i) encode(Ping{i}, stream);
  FrameReader reader;
  reader.feed(stream);
  std::vector<Message> got = drain(reader);
  ASSERT_EQ(got.size(), 10000u);
  for (uint64_t i = 0; i < got.size(); ++i) ASSERT_EQ(std::get<Ping>(got[i]).token, i);
  EXPECT_EQ(reader.pending(), 0u);
}

TEST(FrameReader, PeerVanishingMidFrameLeavesBytesPending) {
  std::string frame = frameOf(Watch{1, 0, IN_CREATE, "/some/path"});
  for (size_t cut : {size_t{1}, size_t{4}, size_t{5}, frame.size() - 1}) {
    FrameReader reader;
    reader.feed(frameOf(Ping{1}));
    reader.feed(std::string_view(frame).substr(0, cut));
    ASSERT_EQ(drain(reader).size(), 1u);
    EXPECT_EQ(reader.pending(), cut) << "cut at " << cut;
  }
}

TEST(FrameReader, LongStreamInOddChunksDecodesEverything) {
  // Several MiB through one reader: compaction must keep frames intact.
  std::string stream;
  size_t count = 0;
  for (uint32_t batch = 0; batch < 300; ++batch) {
    Events events;
    for (uint32_t i = 0; i < 50; ++i) {
      events.events.push_back(
          makeEvent(batch + 1, i + 1, IN_MODIFY, "dir/" + std::to_string(batch), std::string(40, 'f')));
    }
    encode(events, stream);
    encode(Ping{batch}, stream);
    count += 2;
  }
  FrameReader reader;
  std::vector<Message> got;
  size_t chunk = 1;
  for (size_t pos = 0; pos < stream.size(); pos += chunk, chunk = chunk * 7 % 65521 + 1) {
    reader.feed(std::string_view(stream).substr(pos, chunk));
    for (Message& m : drain(reader)) got.push_back(std::move(m));
  }
  ASSERT_EQ(got.size(), count);
  EXPECT_EQ(reader.pending(), 0u);
  for (size_t i = 0; i < got.size(); i += 2) {
    const auto& events = std::get<Events>(got[i]).events;
    ASSERT_EQ(events.size(), 50u);
    EXPECT_EQ(events[49].dir, "dir/" + std::to_string(i / 2));
    EXPECT_EQ(std::get<Ping>(got[i + 1]).token, i / 2);
  }
}

TEST(FrameReader, WaitsForTheWholeFrame) {
  std::string frame = frameOf(Reply{3, ENOENT, 0, "no such file: /srv/x"});
  FrameReader reader;
  reader.feed(std::string_view(frame).substr(0, frame.size() - 1));
  auto partial = reader.next();
  ASSERT_TRUE(partial.ok());
  EXPECT_FALSE(partial.value().has_value());
  reader.feed(std::string_view(frame).substr(frame.size() - 1));
  auto whole = reader.next();
  ASSERT_TRUE(whole.ok());
  ASSERT_TRUE(whole.value().has_value());
  EXPECT_EQ(std::get<Reply>(*whole.value()).status, ENOENT);
}

}  // namespace
}  // namespace rnotify::proto
