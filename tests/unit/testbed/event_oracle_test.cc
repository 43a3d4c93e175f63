// The comparison that decides whether a watcher reported each change once
// and in order (tests/testbed/event_oracle.h).
#include "event_oracle.h"

#include <gtest/gtest.h>

namespace rnotify::testbed {
namespace {

WatchedEvent event(const std::string& path, std::set<std::string> flags) {
  WatchedEvent e;
  e.path = path;
  e.flags = std::move(flags);
  return e;
}

TEST(EventOracleTest, KindIgnoresRemoteAndSortsFlags) {
  EXPECT_EQ(eventKind(event("f", {"REMOTE", "ISDIR", "CREATE"})), "CREATE,ISDIR");
  EXPECT_EQ(eventKind(event("f", {"MOVED_TO"})), "MOVED_TO");
}

TEST(EventOracleTest, CollapsesRepeatsOfContentAndAttributeEventsOnly) {
  std::vector<std::string> kinds = {
      "CREATE",       "MODIFY",       "MODIFY", "CLOSE,CLOSE_WRITE", "CLOSE,CLOSE_WRITE", "ATTRIB", "ATTRIB",
      "ATTRIB,ISDIR", "ATTRIB,ISDIR", "MODIFY", "CREATE,ISDIR",      "CREATE,ISDIR",      "DELETE", "DELETE",
      "CREATE"};
  collapseRepeats(kinds);
  EXPECT_EQ(kinds, (std::vector<std::string>{"CREATE", "ATTRIB", "ATTRIB,ISDIR", "CLOSE,CLOSE_WRITE", "MODIFY",
                                             "CREATE,ISDIR", "CREATE,ISDIR", "DELETE", "DELETE", "CREATE"}));
}

TEST(EventOracleTest, HistoryIsPerPathAndSkipsIgnoredPaths) {
  EventHistory h = historyOf({event("a", {"CREATE"}), event("b", {"CREATE", "REMOTE"}), event("a", {"MODIFY"}),
                              event("a", {"MODIFY", "REMOTE"}), event("end", {"CLOSE_WRITE"})},
                             {"end"});
  EXPECT_EQ(h, (EventHistory{{"a", {"CREATE", "MODIFY"}}, {"b", {"CREATE"}}}));
}

TEST(EventOracleTest, AnnotationsFollowTheCollapsedHistory) {
  std::vector<WatchedEvent> events = {event("a", {"CREATE"}), event("a", {"MODIFY", "REMOTE"}), event("a", {"MODIFY"}),
                                      event("a", {"DELETE", "REMOTE"})};
  auto annotated = annotatedHistoryOf(events);
  EXPECT_EQ(annotated["a"], (std::vector<std::string>{"CREATE  local", "MODIFY  remote+local", "DELETE  remote"}));
  EXPECT_EQ(annotated["a"].size(), historyOf(events)["a"].size());
  EXPECT_EQ(structuralCounts(events), (std::map<std::string, size_t>{{"CREATE", 1}, {"DELETE", 1}}));
}

TEST(EventOracleTest, EqualHistoriesAreClean) {
  EventHistory h = {{"a", {"CREATE", "DELETE"}}};
  HistoryComparison c = compareHistories(h, h);
  EXPECT_TRUE(c.clean());
  EXPECT_TRUE(c.differences.empty());
  EXPECT_EQ(c.expectedEvents, 2u);
}

TEST(EventOracleTest, CountsDuplicatesMissingAndMisorderedSeparately) {
  EventHistory oracle = {{"a", {"CREATE", "DELETE", "CREATE"}}, {"b", {"MOVED_TO", "DELETE"}}, {"c", {"DELETE"}}};
  EventHistory underTest = {
      {"a", {"CREATE", "CREATE", "DELETE", "CREATE"}},  // one duplicate CREATE
      {"b", {"DELETE", "MOVED_TO"}},                    // same events, other order
      {"d", {"CREATE"}},                                // a path the oracle never saw
  };
  HistoryComparison c = compareHistories(oracle, underTest);
  EXPECT_FALSE(c.clean());
  EXPECT_EQ(c.duplicates, 2u);  // a: CREATE, d: CREATE
  EXPECT_EQ(c.missing, 1u);     // c: DELETE
  EXPECT_EQ(c.misordered, 1u);  // b
  EXPECT_EQ(c.duplicatesByKind.at("CREATE"), 2u);
  EXPECT_EQ(c.missingByKind.at("DELETE"), 1u);
  ASSERT_EQ(c.differences.size(), 4u);
  EXPECT_EQ(c.differences[0].path, "a");
  EXPECT_EQ(c.differences[0].firstDivergence, 1u);
  EXPECT_NE(c.differences[0].context().find("+ CREATE"), std::string::npos) << c.differences[0].context();
  EXPECT_NE(c.describe().find("1 misordered"), std::string::npos) << c.describe();
}

}  // namespace
}  // namespace rnotify::testbed
