// eventNames()/eventsFromList() against inotifywait 3.22's exact output and
// parsing, including its quirks (trailing separators, empty items).
#include "event/event_names.h"

#include <gtest/gtest.h>

#include "event/event.h"

namespace rnotify {
namespace {

TEST(EventNames, EverySingleBit) {
  EXPECT_EQ(eventNames(IN_ACCESS), "ACCESS");
  EXPECT_EQ(eventNames(IN_MODIFY), "MODIFY");
  EXPECT_EQ(eventNames(IN_ATTRIB), "ATTRIB");
  EXPECT_EQ(eventNames(IN_CLOSE_WRITE), "CLOSE_WRITE,CLOSE");
  EXPECT_EQ(eventNames(IN_CLOSE_NOWRITE), "CLOSE_NOWRITE,CLOSE");
  EXPECT_EQ(eventNames(IN_OPEN), "OPEN");
  EXPECT_EQ(eventNames(IN_MOVED_FROM), "MOVED_FROM");
  EXPECT_EQ(eventNames(IN_MOVED_TO), "MOVED_TO");
  EXPECT_EQ(eventNames(IN_CREATE), "CREATE");
  EXPECT_EQ(eventNames(IN_DELETE), "DELETE");
  EXPECT_EQ(eventNames(IN_DELETE_SELF), "DELETE_SELF");
  EXPECT_EQ(eventNames(IN_MOVE_SELF), "MOVE_SELF");
  EXPECT_EQ(eventNames(IN_UNMOUNT), "UNMOUNT");
  EXPECT_EQ(eventNames(IN_Q_OVERFLOW), "Q_OVERFLOW");
  EXPECT_EQ(eventNames(IN_IGNORED), "IGNORED");
  EXPECT_EQ(eventNames(IN_ISDIR), "ISDIR");
  EXPECT_EQ(eventNames(IN_ONESHOT), "ONESHOT");
  EXPECT_EQ(eventNames(IN_REMOTE), "REMOTE");
}

TEST(EventNames, CombinedInInotifywaitOrderWithRemoteLast) {
  EXPECT_EQ(eventNames(IN_CREATE | IN_ISDIR), "CREATE,ISDIR");
  EXPECT_EQ(eventNames(IN_CREATE | IN_ISDIR | IN_REMOTE), "CREATE,ISDIR,REMOTE");
  EXPECT_EQ(eventNames(IN_CLOSE_NOWRITE | IN_ISDIR), "CLOSE_NOWRITE,CLOSE,ISDIR");
  EXPECT_EQ(eventNames(IN_ISDIR | IN_MOVE_SELF), "MOVE_SELF,ISDIR");
  EXPECT_EQ(eventNames(IN_IGNORED | IN_CLOSE_WRITE), "CLOSE_WRITE,IGNORED,CLOSE");
  EXPECT_EQ(eventNames(IN_DELETE_SELF | IN_REMOTE), "DELETE_SELF,REMOTE");
}

TEST(EventNames, OtherSeparator) {
  EXPECT_EQ(eventNames(IN_CLOSE_WRITE | IN_ISDIR, '.'), "CLOSE_WRITE.CLOSE.ISDIR");
  EXPECT_EQ(eventNames(IN_CREATE, ' '), "CREATE");
}

TEST(EventNames, UnknownBitsAsHex) {
  EXPECT_EQ(eventNames(0), "0x00000000");
  EXPECT_EQ(eventNames(IN_EXCL_UNLINK), "0x04000000");
  EXPECT_EQ(eventNames(IN_EXCL_UNLINK | IN_CREATE), "CREATE");
}

TEST(EventFromName, EveryNameInotifywaitAccepts) {
  EXPECT_EQ(eventFromName("access"), IN_ACCESS);
  EXPECT_EQ(eventFromName("modify"), IN_MODIFY);
  EXPECT_EQ(eventFromName("attrib"), IN_ATTRIB);
  EXPECT_EQ(eventFromName("close_write"), IN_CLOSE_WRITE);
  EXPECT_EQ(eventFromName("close_nowrite"), IN_CLOSE_NOWRITE);
  EXPECT_EQ(eventFromName("close"), IN_CLOSE);
  EXPECT_EQ(eventFromName("open"), IN_OPEN);
  EXPECT_EQ(eventFromName("moved_to"), IN_MOVED_TO);
  EXPECT_EQ(eventFromName("moved_from"), IN_MOVED_FROM);
  EXPECT_EQ(eventFromName("move"), IN_MOVE);
  EXPECT_EQ(eventFromName("move_self"), IN_MOVE_SELF);
  EXPECT_EQ(eventFromName("create"), IN_CREATE);
  EXPECT_EQ(eventFromName("delete"), IN_DELETE);
  EXPECT_EQ(eventFromName("delete_self"), IN_DELETE_SELF);
  EXPECT_EQ(eventFromName("unmount"), IN_UNMOUNT);
  EXPECT_EQ(eventFromName("q_overflow"), IN_Q_OVERFLOW);
  EXPECT_EQ(eventFromName("ignored"), IN_IGNORED);
  EXPECT_EQ(eventFromName("isdir"), IN_ISDIR);
  EXPECT_EQ(eventFromName("oneshot"), IN_ONESHOT);
  EXPECT_EQ(eventFromName("all_events"), IN_ALL_EVENTS);
}

TEST(EventFromName, CaseInsensitive) {
  EXPECT_EQ(eventFromName("CrEaTe"), IN_CREATE);
  EXPECT_EQ(eventFromName("CLOSE_WRITE"), IN_CLOSE_WRITE);
}

TEST(EventFromName, UnknownIsZero) {
  EXPECT_EQ(eventFromName(""), 0u);
  EXPECT_EQ(eventFromName("foo"), 0u);
  EXPECT_EQ(eventFromName("creat"), 0u);
  EXPECT_EQ(eventFromName("create "), 0u);
  EXPECT_EQ(eventFromName("remote"), 0u);  // a flag on events, not something to ask for
}

TEST(EventsFromList, Lists) {
  EXPECT_EQ(eventsFromList("create,delete"), IN_CREATE | IN_DELETE);
  EXPECT_EQ(eventsFromList("close,move"), IN_CLOSE | IN_MOVE);
  EXPECT_EQ(eventsFromList("modify"), IN_MODIFY);
  EXPECT_EQ(eventsFromList("create:delete", ':'), IN_CREATE | IN_DELETE);
}

TEST(EventsFromList, InotifywaitQuirksGiveZero) {
  EXPECT_EQ(eventsFromList(""), 0u);
  EXPECT_EQ(eventsFromList(","), 0u);
  EXPECT_EQ(eventsFromList("create,"), 0u);
  EXPECT_EQ(eventsFromList("create,,delete"), 0u);
  EXPECT_EQ(eventsFromList(",create"), 0u);
}

TEST(EventsFromList, Invalid) {
  EXPECT_FALSE(eventsFromList("foo"));
  EXPECT_FALSE(eventsFromList("create,foo"));
  EXPECT_FALSE(eventsFromList("=delete"));
  EXPECT_FALSE(eventsFromList("create", 'x'));
  EXPECT_FALSE(eventsFromList("create", '_'));
}

}  // namespace
}  // namespace rnotify
