// PollInterval: the polling backend's schedule, on given times (no sleeping).
#include "poll/poll_interval.h"

#include <gtest/gtest.h>

#include "poll/polled_tree.h"

namespace rnotify {
namespace {

using std::chrono::milliseconds;
using Clock = PollInterval::Clock;

PollInterval::Settings settings() {
  PollInterval::Settings s;
  s.initial = milliseconds(2000);
  s.min = milliseconds(250);
  s.max = milliseconds(5000);
  s.idleAfter = milliseconds(60000);
  s.maxDuty = 0.2;
  return s;
}

TEST(PollInterval, DueAtOnceThenAtTheDefaultInterval) {
  PollInterval p(settings());
  Clock::time_point t0{std::chrono::seconds(100)};
  EXPECT_EQ(p.timeoutMs(t0), 0);
  p.onScan(t0, milliseconds(1), false);
  EXPECT_EQ(p.current(), milliseconds(2000));
  EXPECT_EQ(p.deadline(), t0 + milliseconds(2000));
  EXPECT_EQ(p.timeoutMs(t0 + milliseconds(500)), 1500);
  EXPECT_EQ(p.timeoutMs(t0 + milliseconds(2500)), 0);
}

TEST(PollInterval, FasterAfterAChangeThenBackToTheDefault) {
  PollInterval p(settings());
  Clock::time_point t{std::chrono::seconds(100)};
  p.onScan(t, milliseconds(1), false);
  t += milliseconds(2000);
  p.onScan(t, milliseconds(1), true);
  EXPECT_EQ(p.current(), milliseconds(250));
  EXPECT_EQ(p.deadline(), t + milliseconds(250));
  std::vector<int64_t> seen;
  for (int i = 0; i < 5; ++i) {
    t = p.deadline();
    p.onScan(t, milliseconds(1), false);
    seen.push_back(p.current().count());
  }
  EXPECT_EQ(seen, (std::vector<int64_t>{500, 1000, 2000, 2000, 2000}));
  t = p.deadline();
  p.onScan(t, milliseconds(1), true);  // another change: fast again at once
  EXPECT_EQ(p.current(), milliseconds(250));
}

TEST(PollInterval, SlowerWhenIdleUpToTheMaximum) {
  PollInterval p(settings());
  Clock::time_point t{std::chrono::seconds(100)};
  p.onScan(t, milliseconds(1), true);
  while (t < Clock::time_point{std::chrono::seconds(159)}) {
    t = p.deadline();
    p.onScan(t, milliseconds(1), false);
    ASSERT_LE(p.current(), milliseconds(2000));
  }
  for (int i = 0; i < 20; ++i) {
    t = p.deadline();
    p.onScan(t, milliseconds(1), false);
  }
  EXPECT_EQ(p.current(), milliseconds(5000));
  t = p.deadline();
  p.onScan(t, milliseconds(1), true);
  EXPECT_EQ(p.current(), milliseconds(250));
}

TEST(PollInterval, AScanTakesAtMostItsShareOfTime) {
  PollInterval p(settings());
  Clock::time_point t{std::chrono::seconds(100)};
  p.onScan(t, milliseconds(1000), true);  // at 20 %: 4 s of rest after 1 s of scanning
  EXPECT_EQ(p.deadline(), t + milliseconds(4000));
  p.onScan(t, milliseconds(10), true);
  EXPECT_EQ(p.deadline(), t + milliseconds(250));
}

TEST(PollInterval, BoundsAreMadeConsistent) {
  PollInterval::Settings s = settings();
  s.min = milliseconds(3000);
  s.initial = milliseconds(1000);
  s.max = milliseconds(2000);
  s.maxDuty = 0;
  PollInterval p(s);
  EXPECT_EQ(p.settings().max, milliseconds(3000));
  EXPECT_EQ(p.settings().initial, milliseconds(3000));
  EXPECT_EQ(p.settings().maxDuty, 1.0);
}

TEST(PollInterval, HurryOnlyBringsTheDeadlineForward) {
  PollInterval p(settings());
  Clock::time_point t{std::chrono::seconds(100)};
  p.onScan(t, milliseconds(1), false);
  p.hurry(t + milliseconds(5000));
  EXPECT_EQ(p.deadline(), t + milliseconds(2000));
  p.hurry(t + milliseconds(10));
  EXPECT_EQ(p.deadline(), t + milliseconds(10));
}

}  // namespace
}  // namespace rnotify

namespace rnotify {
namespace {

MountInfo mountOf(const std::string& fsType, const std::string& options) {
  MountInfo m;
  m.fsType = fsType;
  m.superOptions = options;
  return m;
}

TEST(PollMountAdvice, WarnsOnlyAboutWhatTheScansCannotGetPast) {
  // Attribute caches are asked past (AT_STATX_FORCE_SYNC on NFS and cifs):
  // NFS's defaults, which a default mount does not list (/proc/mounts of a
  // default NFSv4.1 mount in the qemu guest of tests/vm), and long ones.
  EXPECT_EQ(
      pollMountAdvice(mountOf(
          "nfs4",
          "rw,relatime,vers=4.1,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys")),
      "");
  EXPECT_EQ(pollMountAdvice(mountOf("nfs4", "rw,vers=4.2,acregmin=3,acregmax=600,acdirmin=30,acdirmax=600")), "");
  EXPECT_EQ(pollMountAdvice(mountOf("cifs", "rw,vers=3.1.1,actimeo=30")), "");
  // A cached negative lookup is not: a new file can stay hidden.
  std::string lookup = pollMountAdvice(mountOf("nfs", "rw,actimeo=1,lookupcache=all"));
  EXPECT_NE(lookup.find("lookupcache=positive"), std::string::npos) << lookup;
  EXPECT_EQ(pollMountAdvice(mountOf("nfs", "rw,lookupcache=positive")), "");
  EXPECT_EQ(pollMountAdvice(mountOf("fuse.rclone", "rw,user_id=0")), "");
}

}  // namespace
}  // namespace rnotify
