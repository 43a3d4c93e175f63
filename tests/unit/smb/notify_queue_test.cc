// NotifyQueue: the hand-off from a notification thread to the caller's loop.
#include "smb/notify_queue.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <thread>

namespace rnotify {
namespace {

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

Event named(const std::string& name) {
  Event e;
  e.mask = IN_CREATE;
  e.name = name;
  return e;
}

TEST(NotifyQueue, ReadableWhileEventsWait) {
  NotifyQueue q;
  EXPECT_FALSE(readable(q.fd()));
  q.push({named("a")});
  q.push({named("b"), named("c")});
  EXPECT_TRUE(readable(q.fd()));
  auto events = q.take();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].name, "a");
  EXPECT_EQ(events[2].name, "c");
  EXPECT_FALSE(readable(q.fd()));
  q.push({});  // nothing to say: no wake-up
  EXPECT_FALSE(readable(q.fd()));
}

TEST(NotifyQueue, FailureStaysReadableAndKeepsTheFirstError) {
  NotifyQueue q;
  q.push({named("before")});
  q.fail(Error{ECONNRESET, "first"});
  q.fail(Error{EIO, "second"});
  EXPECT_TRUE(q.failed());
  EXPECT_EQ(q.take().size(), 1u);  // events before the failure are still delivered
  EXPECT_TRUE(readable(q.fd()));
  EXPECT_EQ(q.error().code, ECONNRESET);
  EXPECT_EQ(q.error().message, "first");
}

TEST(NotifyQueue, EventsFromAnotherThreadArriveInOrder) {
  NotifyQueue q;
  std::thread producer([&] {
    for (int i = 0; i < 1000; ++i) q.push({named(std::to_string(i))});
  });
  std::vector<Event> all;
  while (all.size() < 1000) {
    pollfd p{q.fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1) << "after " << all.size();
    for (auto& e : q.take()) all.push_back(std::move(e));
  }
  producer.join();
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(all[i].name, std::to_string(i));
}

}  // namespace
}  // namespace rnotify
