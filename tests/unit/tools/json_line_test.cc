// --json lines: fields, and how non-UTF-8 names are carried.
#include "tools/rnotifywait/json_line.h"

#include <gtest/gtest.h>
#include <sys/inotify.h>

#include <nlohmann/json.hpp>

#include "rnotify/rnotify.h"

namespace rnotify::wait {
namespace {

TEST(JsonLine, Fields) {
  std::string line = jsonLine({"d/sub/", "x", IN_CREATE | IN_ISDIR | IN_REMOTE, 5, 42}, 1712345678.5);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line,
            "{\"path\":\"d/sub/\",\"name\":\"x\",\"events\":[\"CREATE\",\"ISDIR\",\"REMOTE\"],"
            "\"cookie\":5,\"seq\":42,\"time\":1712345678.5}\n");
}

TEST(JsonLine, NonUtf8GetsReplacementAndExactBase64) {
  std::string name = "caf\xe9";  // Latin-1 e-acute
  auto j = nlohmann::json::parse(jsonLine({"d/", name, IN_CREATE, 0, 0}, 0));
  EXPECT_EQ(j["name"], "caf\xef\xbf\xbd");
  EXPECT_EQ(j["name_b64"], base64(name));
  EXPECT_EQ(j["name_b64"], "Y2Fm6Q==");
  EXPECT_FALSE(j.contains("path_b64"));
}

TEST(JsonLine, Utf8NamesStayAsTheyAre) {
  auto j = nlohmann::json::parse(jsonLine({"d/", "caf\xc3\xa9", IN_CREATE, 0, 0}, 0));
  EXPECT_EQ(j["name"], "caf\xc3\xa9");
  EXPECT_FALSE(j.contains("name_b64"));
}

TEST(JsonLine, Utf8Validation) {
  EXPECT_TRUE(isValidUtf8(""));
  EXPECT_TRUE(isValidUtf8("plain"));
  EXPECT_TRUE(isValidUtf8("\xf0\x9f\x98\x80"));
  EXPECT_FALSE(isValidUtf8("\xc0\xaf"));      // overlong
  EXPECT_FALSE(isValidUtf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(isValidUtf8("\xe2\x82"));      // truncated
  EXPECT_FALSE(isValidUtf8("\xff"));
}

TEST(JsonLine, Base64) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
}

}  // namespace
}  // namespace rnotify::wait
