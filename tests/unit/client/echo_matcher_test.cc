// EchoMatcher: the rules that keep "one change, one event" without ever
// hiding a change: pairs across sides only, one to one, within the window.
#include "client/echo_matcher.h"

#include <gtest/gtest.h>
#include <sys/inotify.h>

namespace rnotify {
namespace {

using Side = EchoMatcher::Side;
using std::chrono::milliseconds;

class EchoMatcherTest : public ::testing::Test {
 protected:
  bool local(uint32_t mask, const char* name, milliseconds at = milliseconds(0), int wd = 1) {
    return matcher_.admit(Side::kLocal, wd, mask, "", name, t0_ + at);
  }
  bool remote(uint32_t mask, const char* name, milliseconds at = milliseconds(0), int wd = 1) {
    return matcher_.admit(Side::kRemote, wd, mask, "", name, t0_ + at);
  }

  EchoMatcher matcher_;
  EchoMatcher::Clock::time_point t0_ = EchoMatcher::Clock::now();
};

TEST_F(EchoMatcherTest, TheServersEchoOfALocalChangeIsAbsorbed) {
  EXPECT_TRUE(local(IN_CREATE, "f"));
  EXPECT_FALSE(remote(IN_CREATE, "f", milliseconds(5)));
  EXPECT_EQ(matcher_.absorbed(), 1u);
}

TEST_F(EchoMatcherTest, AnEchoArrivingBeforeTheLocalEventIsAlsoOneEvent) {
  EXPECT_TRUE(remote(IN_CREATE, "f"));
  EXPECT_FALSE(local(IN_CREATE, "f", milliseconds(3)));
}

TEST_F(EchoMatcherTest, EachEventAbsorbsAtMostOne) {
  EXPECT_TRUE(local(IN_MODIFY, "f"));
  EXPECT_FALSE(remote(IN_MODIFY, "f", milliseconds(1)));
  EXPECT_TRUE(remote(IN_MODIFY, "f", milliseconds(2))) << "a second remote MODIFY is another change";
  EXPECT_FALSE(local(IN_MODIFY, "f", milliseconds(3))) << "...which a later local one pairs with";
}

TEST_F(EchoMatcherTest, OnlyTheSameEventOnTheSameEntryOfTheSameWatchPairs) {
  EXPECT_TRUE(local(IN_CREATE, "f"));
  EXPECT_TRUE(remote(IN_CREATE, "g"));
  EXPECT_TRUE(remote(IN_DELETE, "f"));
  EXPECT_TRUE(remote(IN_CREATE | IN_ISDIR, "f"));
  EXPECT_TRUE(remote(IN_CREATE, "f", milliseconds(0), 2));
  EXPECT_TRUE(matcher_.admit(Side::kRemote, 1, IN_CREATE, "sub", "f", t0_));
  EXPECT_FALSE(remote(IN_CREATE, "f"));
}

TEST_F(EchoMatcherTest, EventsOfOneSideNeverAbsorbEachOther) {
  EXPECT_TRUE(local(IN_ATTRIB, "f"));
  EXPECT_TRUE(local(IN_ATTRIB, "f"));
  EXPECT_TRUE(remote(IN_ATTRIB, "x"));
  EXPECT_TRUE(remote(IN_ATTRIB, "x"));
}

TEST_F(EchoMatcherTest, RenameHalvesPairWhateverTheirCookies) {
  EXPECT_TRUE(local(IN_MOVED_FROM, "a"));
  EXPECT_TRUE(local(IN_MOVED_TO, "b"));
  EXPECT_FALSE(remote(IN_MOVED_FROM, "a", milliseconds(4)));
  EXPECT_FALSE(remote(IN_MOVED_TO, "b", milliseconds(4)));
}

TEST_F(EchoMatcherTest, NothingPairsOutsideTheWindow) {
  EXPECT_TRUE(local(IN_CREATE, "f"));
  EXPECT_TRUE(remote(IN_CREATE, "f", milliseconds(2001)));
}

TEST_F(EchoMatcherTest, WatchLevelEventsAreNeverPaired) {
  EXPECT_TRUE(local(IN_IGNORED, ""));
  EXPECT_TRUE(remote(IN_IGNORED, ""));
  EXPECT_TRUE(remote(IN_Q_OVERFLOW, ""));
  EXPECT_TRUE(local(IN_Q_OVERFLOW, ""));
}

TEST_F(EchoMatcherTest, MemoryIsBoundedOldestForgottenFirst) {
  EchoMatcher::Options options;
  options.maxPending = 2;
  EchoMatcher small(options);
  EXPECT_TRUE(small.admit(Side::kLocal, 1, IN_CREATE, "", "a", t0_));
  EXPECT_TRUE(small.admit(Side::kLocal, 1, IN_CREATE, "", "b", t0_));
  EXPECT_TRUE(small.admit(Side::kLocal, 1, IN_CREATE, "", "c", t0_));
  EXPECT_LE(small.pending(), 2u);
  EXPECT_TRUE(small.admit(Side::kRemote, 1, IN_CREATE, "", "a", t0_)) << "a was forgotten: delivered, not hidden";
  EXPECT_FALSE(small.admit(Side::kRemote, 1, IN_CREATE, "", "c", t0_));
}

TEST_F(EchoMatcherTest, ForgettingAWatchDropsItsEvents) {
  EXPECT_TRUE(local(IN_CREATE, "f", milliseconds(0), 7));
  matcher_.forget(7);
  EXPECT_TRUE(remote(IN_CREATE, "f", milliseconds(1), 7));
}

}  // namespace
}  // namespace rnotify
