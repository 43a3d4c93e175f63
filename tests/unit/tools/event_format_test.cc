// --format, the default line and --csv, byte for byte as inotifywait 3.22
// prints them (expected strings were taken from the real inotifywait).
#include "tools/rnotifywait/event_format.h"

#include <gtest/gtest.h>
#include <sys/inotify.h>

#include "rnotify/rnotify.h"

namespace rnotify::wait {
namespace {

std::tm someTime() {
  std::tm t{};
  t.tm_year = 124;
  t.tm_mon = 2;
  t.tm_mday = 5;
  t.tm_hour = 21;
  t.tm_min = 7;
  t.tm_sec = 9;
  return t;
}

std::optional<std::string> fmt(std::string_view format, const EventView& ev,
                               std::optional<std::string> timefmt = std::nullopt) {
  return formatEvent(format, ev, timefmt, someTime());
}

const EventView kCreate{"d/", "a b", IN_CREATE, 0, 0};
const EventView kMkdirRemote{"d/sub/", "x", IN_CREATE | IN_ISDIR | IN_REMOTE, 0, 7};
const EventView kSelf{"d/", "", IN_DELETE_SELF, 0, 0};

TEST(EventFormat, DefaultLine) {
  EXPECT_EQ(fmt(kDefaultFormat, kCreate), "d/ CREATE a b\n");
  EXPECT_EQ(fmt(kDefaultFormat, kSelf), "d/ DELETE_SELF \n");
  EXPECT_EQ(fmt(kDefaultFormat, kMkdirRemote), "d/sub/ CREATE,ISDIR,REMOTE x\n");
}

TEST(EventFormat, Directives) {
  EventView moved{"d/", "f", IN_MOVED_FROM, 0x1f, 0};
  EXPECT_EQ(fmt("%w|%f|%e\n", kMkdirRemote), "d/sub/|x|CREATE,ISDIR,REMOTE\n");
  EXPECT_EQ(fmt("%.e %:e", kMkdirRemote), "CREATE.ISDIR.REMOTE CREATE:ISDIR:REMOTE");
  EXPECT_EQ(fmt("%c", moved), "1f");
  EXPECT_EQ(fmt("%%|%n|%q|%ww", kCreate), "%|\n|%q|d/w");
  EXPECT_EQ(fmt("a%0b", kCreate), std::string("a\0b", 3));
  EXPECT_EQ(fmt("%e%", kCreate), std::nullopt);  // lone trailing '%': inotifywait prints nothing
  EXPECT_EQ(fmt("%ne", kCreate), "\ne");         // %n wins over %Xe
}

TEST(EventFormat, Time) {
  EXPECT_EQ(fmt("%T %f", kCreate, "%H:%M:%S"), "21:07:09 a b");
  EXPECT_EQ(fmt("%Te", kCreate, "%H"), "21e");
  EXPECT_EQ(fmt("x%Ty", kCreate), "xy");
  EXPECT_EQ(fmt("x%Ty", kCreate, ""), std::nullopt);  // empty strftime result: nothing printed
}

TEST(EventFormat, Validity) {
  EXPECT_FALSE(formatIsValid(""));
  EXPECT_TRUE(formatIsValid("\n"));
  EXPECT_TRUE(formatIsValid(std::string(kMaxFormatLength, 'x')));
  EXPECT_FALSE(formatIsValid(std::string(kMaxFormatLength + 1, 'x')));
}

TEST(Csv, Escape) {
  EXPECT_EQ(csvEscape(""), "");
  EXPECT_EQ(csvEscape("plain"), "plain");
  EXPECT_EQ(csvEscape("a,b"), "\"a,b\"");
  EXPECT_EQ(csvEscape("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csvEscape("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(csvEscape(" lead"), "\" lead\"");
  EXPECT_EQ(csvEscape("trail "), "\"trail \"");
  EXPECT_EQ(csvEscape("in side"), "in side");
}

TEST(Csv, Lines) {
  // As printed by inotifywait -c for `touch 'd/a b,"c '`.
  EXPECT_EQ(csvLine({"d/", "a b,\"c ", IN_CREATE, 0, 0}), "d/,CREATE,\"a b,\"\"c \"\n");
  EXPECT_EQ(csvLine({"d/", "x", IN_CLOSE_WRITE, 0, 0}), "d/,\"CLOSE_WRITE,CLOSE\",x\n");
  EXPECT_EQ(csvLine({"d/", "y", IN_CREATE | IN_ISDIR, 0, 0}), "d/,\"CREATE,ISDIR\",y\n");
  EXPECT_EQ(csvLine({"f", "", IN_MODIFY, 0, 0}), "f,MODIFY,\n");
  EXPECT_EQ(csvLine({"", "", IN_Q_OVERFLOW, 0, 0}), "Q_OVERFLOW,\n");
}

}  // namespace
}  // namespace rnotify::wait
