// NfsActivity: whether this host is busy on an NFS mount, from the NFS
// client's counters, read from a mountstats text as the 6.1 guest kernel of
// tests/vm writes it (abridged: the lines the parser reads, and neighbours).
#include "client/nfs_activity.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

namespace rnotify {
namespace {

std::string stats(int sends, int recvs, int opens, int creates, const char* mountPoint = "/mnt/nfs") {
  return "device rootfs mounted on / with fstype rootfs\n"
         "device 10.0.2.100:/other mounted on /mnt/other with fstype nfs4 statvers=1.1\n"
         "\txprt:\ttcp 0 0 2 0 24 900 900 0 22 0 2 0 0\n"
         "\tper-op statistics\n"
         "\t        OPEN: 50 50 0 0 0 0 0 0 0\n"
         "device 10.0.2.100:/nfs mounted on " +
         std::string(mountPoint) +
         " with fstype nfs4 statvers=1.1\n"
         "\topts:\trw,vers=4.1,rsize=1048576\n"
         "\tRPC iostats version: 1.1  p/v: 100003/4 (nfs)\n"
         "\txprt:\ttcp 0 0 2 0 24 " +
         std::to_string(sends) + " " + std::to_string(recvs) +
         " 0 22 0 2 0 0\n"
         "\tper-op statistics\n"
         "\t        NULL: 1 1 0 44 24 92 25 121 0\n"
         "\t        READ: 7 7 0 0 0 0 0 0 0\n"
         "\t        OPEN: " +
         std::to_string(opens) +
         " 1 0 0 0 0 0 0 0\n"
         "\t     GETATTR: 40 40 0 168 264 0 2 3 0\n"
         "\t      CREATE: " +
         std::to_string(creates) +
         " 1 0 0 0 0 0 0 0\n"
         "\tOPEN_DOWNGRADE: 3 3 0 0 0 0 0 0 0\n"
         "device tmpfs mounted on /run with fstype tmpfs\n";
}

TEST(NfsActivity, ReadsTheCountersOfItsOwnMountOnly) {
  auto c = NfsActivity::parse(stats(30, 29, 4, 2), "/mnt/nfs");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->sends, 30u);
  EXPECT_EQ(c->recvs, 29u);
  EXPECT_EQ(c->changes, 6u) << "OPEN and CREATE change; READ, GETATTR, OPEN_DOWNGRADE do not";
  EXPECT_FALSE(NfsActivity::parse(stats(1, 1, 0, 0), "/mnt").has_value()) << "a prefix is another mount";
  EXPECT_FALSE(NfsActivity::parse("device x mounted on /mnt/nfs with fstype ext4\n", "/mnt/nfs").has_value());
}

TEST(NfsActivity, SeveralTransportsAddUpAndTheLastMountOnAPointCounts) {
  // nconnect=2 (two xprt lines), and a udp one (no connect fields); then the
  // same mount point again, mounted over the first: that one is seen there.
  const std::string text =
      "device s:/a mounted on /mnt/nfs with fstype nfs statvers=1.1\n"
      "\txprt:\ttcp 0 0 2 0 24 10 10 0 22 0 2 0 0\n"
      "\txprt:\ttcp 0 0 2 0 24 5 4 0 22 0 2 0 0\n"
      "\txprt:\tudp 0 0 7 7 0 0 0 0 0 0\n"
      "\t       WRITE: 3 3 0 0 0 0 0 0 0\n"
      "device s:/b mounted on /mnt/nfs with fstype nfs4 statvers=1.1\n"
      "\txprt:\ttcp 0 0 2 0 24 100 100 0 22 0 2 0 0\n"
      "\t      RENAME: 9 9 0 0 0 0 0 0 0\n";
  auto c = NfsActivity::parse(text, "/mnt/nfs");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->sends, 100u);
  EXPECT_EQ(c->changes, 9u);
  auto first = NfsActivity::parse(text.substr(0, text.find("device s:/b")), "/mnt/nfs");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->sends, 22u) << "10 + 5 (tcp) + 7 (udp)";
  EXPECT_EQ(first->recvs, 21u);
  EXPECT_EQ(first->changes, 3u);
}

TEST(NfsActivity, AMountPointWithASpaceIsFoundEscaped) {
  auto c = NfsActivity::parse(stats(5, 5, 1, 0, "/mnt/my\\040share"), "/mnt/my share");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->changes, 1u);
}

class NfsActivityLooks : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/rnotify-mountstats-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::remove(path().c_str());
    ::rmdir(dir_.c_str());
  }
  std::string path() const { return dir_ + "/mountstats"; }
  void write(const std::string& text) { std::ofstream(path()) << text; }
  bool busy(NfsActivity& activity, int atMs) {
    return activity.busy(1, "/mnt/nfs", t0_ + std::chrono::milliseconds(atMs), std::chrono::milliseconds(100));
  }
  std::string dir_;
  NfsActivity::Clock::time_point t0_ = NfsActivity::Clock::now();
};

TEST_F(NfsActivityLooks, BusyAfterAChangeOrWhileARequestIsUnanswered) {
  NfsActivity activity(path());
  write(stats(10, 10, 1, 0));
  activity.start(1, "/mnt/nfs");
  EXPECT_FALSE(busy(activity, 0)) << "nothing happened since the baseline";
  write(stats(12, 12, 1, 0));
  EXPECT_FALSE(busy(activity, 1000)) << "reads only (GETATTR, READ), all answered";
  write(stats(13, 12, 1, 0));
  EXPECT_TRUE(busy(activity, 2000)) << "a request sent and not answered yet";
  write(stats(13, 13, 1, 1));
  EXPECT_TRUE(busy(activity, 3000)) << "a CREATE completed since the last look";
  EXPECT_TRUE(busy(activity, 3050)) << "within the window after a busy look";
  EXPECT_FALSE(busy(activity, 3200)) << "the window has passed and nothing changed";
}

TEST_F(NfsActivityLooks, ARequestNeverAnsweredDoesNotKeepItBusy) {
  NfsActivity activity(path());
  write(stats(10, 9, 1, 0));  // one retransmitted long ago: counted unanswered for good
  activity.start(1, "/mnt/nfs");
  write(stats(14, 13, 1, 0));
  EXPECT_FALSE(busy(activity, 1000)) << "reads, all answered";
  write(stats(15, 13, 1, 0));
  EXPECT_TRUE(busy(activity, 2000)) << "one more unanswered than ever";
}

TEST_F(NfsActivityLooks, WithoutMountstatsNothingWaits) {
  NfsActivity activity(path());  // not written
  activity.start(1, "/mnt/nfs");
  EXPECT_FALSE(busy(activity, 0));
}

}  // namespace
}  // namespace rnotify
