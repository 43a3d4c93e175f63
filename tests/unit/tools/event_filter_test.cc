// --exclude/--include matching on "%w%f", and "@dir" subtree exclusion.
#include "tools/rnotifywait/event_filter.h"

#include <gtest/gtest.h>
#include <sys/inotify.h>

namespace rnotify::wait {
namespace {

EventView ev(std::string_view path, std::string_view name) { return {path, name, IN_CREATE, 0, 0}; }

TEST(EventFilter, NothingDroppedByDefault) {
  EventFilter f;
  EXPECT_FALSE(f.drops(ev("d/", "x"), "d"));
}

TEST(EventFilter, ExcludeMatchesPathAndName) {
  EventFilter f;
  ASSERT_TRUE(f.setRegex({"d/.*\\.swp$", false, false}));
  EXPECT_TRUE(f.drops(ev("d/", "a.swp"), "d"));
  EXPECT_FALSE(f.drops(ev("d/", "a.SWP"), "d"));
  EXPECT_FALSE(f.drops(ev("d/", "a.txt"), "d"));
}

TEST(EventFilter, ExcludeIgnoringCase) {
  EventFilter f;
  ASSERT_TRUE(f.setRegex({"\\.swp$", true, false}));
  EXPECT_TRUE(f.drops(ev("d/", "a.SWP"), "d"));
}

TEST(EventFilter, IncludeDropsTheRest) {
  EventFilter f;
  ASSERT_TRUE(f.setRegex({"\\.c$", false, true}));
  EXPECT_FALSE(f.drops(ev("d/", "main.c"), "d"));
  EXPECT_TRUE(f.drops(ev("d/", "main.h"), "d"));
}

TEST(EventFilter, BadRegex) {
  EventFilter f;
  EXPECT_FALSE(f.setRegex({"(", false, false}));
}

TEST(EventFilter, ExcludedSubtree) {
  EventFilter f;
  f.excludeSubtree("d/skip/");
  EXPECT_TRUE(f.drops(ev("d/skip/", "x"), "d"));
  EXPECT_TRUE(f.drops(ev("d/skip/deeper/", "x"), "d"));
  EXPECT_FALSE(f.drops(ev("d/", "skip"), "d"));  // the entry in its parent is still reported
  EXPECT_FALSE(f.drops(ev("d/skipped/", "x"), "d"));
}

TEST(EventFilter, ExcludedRootIsStillWatched) {
  EventFilter f;
  f.excludeSubtree("d");
  EXPECT_FALSE(f.drops(ev("d/", "x"), "d"));
}

}  // namespace
}  // namespace rnotify::wait
