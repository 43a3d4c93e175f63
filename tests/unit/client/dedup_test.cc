// Dedup: one change, one event, without ever hiding another host's change.
// Each test feeds the local and the server's reports in an order that
// happens on a real mount and checks what the user is given.
#include "client/dedup.h"

#include <gtest/gtest.h>
#include <sys/inotify.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace rnotify {
namespace {

using std::chrono::milliseconds;
using Strategy = Dedup::Strategy;

struct Out {
  uint32_t mask;
  uint32_t cookie;
  std::string name;
  bool operator==(const Out&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Out& o) {
  return os << "{mask 0x" << std::hex << o.mask << std::dec << " cookie " << o.cookie << " '" << o.name << "'}";
}

class DedupTest : public ::testing::Test {
 protected:
  explicit DedupTest(Strategy strategy = Strategy::kEcho)
      : dedup_(options(),
               [this](int, uint32_t mask, uint32_t cookie, uint64_t, std::string_view, std::string_view name) {
                 out_.push_back(Out{mask, cookie, std::string(name)});
               }) {
    dedup_.setStrategy(1, strategy);
  }
  static Dedup::Options options() {
    Dedup::Options o;
    o.hold = milliseconds(100);
    o.window = milliseconds(1000);
    return o;
  }
  void local(uint32_t mask, const char* name, int at, uint32_t cookie = 0, const EventStat* stat = nullptr) {
    dedup_.local(1, mask, cookie, "", name, stat, t0_ + milliseconds(at));
  }
  void remote(uint32_t mask, const char* name, int at, uint32_t cookie = 0, Origin origin = Origin::kUnknown,
              const EventStat* stat = nullptr, bool mayBeOwn = false) {
    Event e;
    e.watch = 7;
    e.mask = mask;
    e.cookie = cookie;
    e.name = name;
    e.origin = origin;
    if (stat != nullptr) {
      e.hasStat = true;
      e.stat = *stat;
    }
    dedup_.remote(1, e, t0_ + milliseconds(at), mayBeOwn);
  }
  // A server report while this host has an operation under way (NFS).
  void remoteWhileBusy(uint32_t mask, const char* name, int at, uint32_t cookie = 0) {
    remote(mask, name, at, cookie, Origin::kUnknown, nullptr, true);
  }
  void release(int at) { dedup_.release(t0_ + milliseconds(at)); }

  Dedup dedup_;
  std::vector<Out> out_;
  Dedup::Clock::time_point t0_ = Dedup::Clock::now();
};

TEST_F(DedupTest, ALocalChangeIsDeliveredOnceAtItsEchosPlace) {
  local(IN_CREATE, "f", 0, 0);
  EXPECT_TRUE(out_.empty()) << "held until the server's copy arrives";
  remote(IN_CREATE, "f", 2);
  ASSERT_EQ(out_, (std::vector<Out>{{IN_CREATE, 0, "f"}}));  // this host's: no IN_REMOTE
  release(5000);
  EXPECT_EQ(out_.size(), 1u);
  EXPECT_EQ(dedup_.held(), 0u);
}

TEST_F(DedupTest, RenamesTakeTheServersCookieOnBothHalves) {
  local(IN_MOVED_FROM, "a", 0, 11);
  local(IN_MOVED_TO, "b", 0, 11);
  remote(IN_MOVED_FROM, "a", 1, 900);
  remote(IN_MOVED_TO, "b", 1, 900);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_MOVED_FROM, 900, "a"}, {IN_MOVED_TO, 900, "b"}}));
}

TEST_F(DedupTest, AnEchoArrivingFirstIsDeliveredAndAbsorbsTheLocalReport) {
  remote(IN_CREATE, "f", 0);
  local(IN_CREATE, "f", 1);
  release(5000);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_CREATE | IN_REMOTE, 0, "f"}}));
}

TEST_F(DedupTest, AnotherHostsChangeIsNeverHidden) {
  // This host and another both chmod f: the server reports two ATTRIBs.
  local(IN_ATTRIB, "f", 0);
  remote(IN_ATTRIB, "f", 1);
  remote(IN_ATTRIB, "f", 2);
  release(5000);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_ATTRIB, 0, "f"}, {IN_ATTRIB | IN_REMOTE, 0, "f"}}));
}

TEST_F(DedupTest, UnrelatedServerEventsAreNotDelayedAndOrderFollowsTheServer) {
  local(IN_CREATE, "mine", 0);
  remote(IN_DELETE, "theirs", 1);
  remote(IN_CREATE, "mine", 2);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_DELETE | IN_REMOTE, 0, "theirs"}, {IN_CREATE, 0, "mine"}}));
}

TEST_F(DedupTest, ALocalReportWithoutEchoIsDeliveredWhenTheHoldEnds) {
  local(IN_MODIFY, "f", 0);
  release(99);
  EXPECT_TRUE(out_.empty());
  EXPECT_EQ(dedup_.nextRelease(), t0_ + milliseconds(100));
  release(100);
  ASSERT_EQ(out_, (std::vector<Out>{{IN_MODIFY, 0, "f"}}));
  // A late echo within the window is still absorbed ...
  remote(IN_MODIFY, "f", 500);
  EXPECT_EQ(out_.size(), 1u);
  // ... one after the window is a new change.
  local(IN_MODIFY, "g", 600);
  release(700);
  remote(IN_MODIFY, "g", 1701);
  EXPECT_EQ(out_.back(), (Out{IN_MODIFY | IN_REMOTE, 0, "g"}));
}

TEST_F(DedupTest, RepeatedIdenticalLocalReportsCoalesceAsTheKernelWould) {
  local(IN_MODIFY, "f", 0);
  local(IN_MODIFY, "f", 0);
  remote(IN_MODIFY, "f", 1);
  release(5000);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_MODIFY, 0, "f"}}));
  // Not when something else came between them.
  local(IN_MODIFY, "g", 6000);
  local(IN_CLOSE_WRITE, "g", 6000);
  local(IN_MODIFY, "g", 6000);
  EXPECT_EQ(dedup_.held(), 3u);
}

TEST_F(DedupTest, AHeldReportFollowsTheServersRenameOfItsEntry) {
  // This host closes f; before sshfs's close reaches the server, another host
  // renames f to g; the server reports the close under g.
  local(IN_CLOSE_WRITE, "f", 0);
  remote(IN_MOVED_FROM, "f", 1, 5);
  remote(IN_MOVED_TO, "g", 1, 5);
  remote(IN_CLOSE_WRITE, "g", 2);
  release(5000);
  EXPECT_EQ(out_,
            (std::vector<Out>{
                {IN_MOVED_FROM | IN_REMOTE, 5, "f"}, {IN_MOVED_TO | IN_REMOTE, 5, "g"}, {IN_CLOSE_WRITE, 0, "g"}}));
}

TEST_F(DedupTest, ReadSideReportsAreNotHeld) {
  local(IN_OPEN, "f", 0);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_OPEN, 0, "f"}}));
  remote(IN_OPEN, "f", 1);  // the server saw the same open
  EXPECT_EQ(out_.size(), 1u);
}

TEST_F(DedupTest, QueueAndWatchReportsAreNeverPaired) {
  local(IN_Q_OVERFLOW, "", 0);
  remote(IN_Q_OVERFLOW, "", 0);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_Q_OVERFLOW, 0, ""}, {IN_Q_OVERFLOW | IN_REMOTE, 0, ""}}));
}

TEST_F(DedupTest, ForgettingAWatchDeliversWhatWasHeld) {
  local(IN_CREATE, "f", 0);
  dedup_.forget(1);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_CREATE, 0, "f"}}));
  EXPECT_EQ(dedup_.strategy(1), Strategy::kNone);
}

TEST_F(DedupTest, TheBoundDeliversTheOldestHeldFirst) {
  Dedup::Options o = options();
  o.maxPending = 2;
  std::vector<std::string> names;
  Dedup small(o,
              [&](int, uint32_t, uint32_t, uint64_t, std::string_view, std::string_view n) { names.emplace_back(n); });
  small.setStrategy(1, Strategy::kEcho);
  for (const char* n : {"a", "b", "c", "d"}) small.local(1, IN_CREATE, 0, "", n, nullptr, t0_);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(small.held(), 2u);
}

class DedupOriginTest : public DedupTest {
 protected:
  DedupOriginTest() : DedupTest(Strategy::kOrigin) {}
};

TEST_F(DedupOriginTest, TheServersAttributedStreamIsTheTruth) {
  local(IN_CREATE, "mine", 0);
  local(IN_OPEN, "mine", 0);
  remote(IN_CREATE, "mine", 1, 0, Origin::kSelf);
  remote(IN_OPEN, "mine", 1, 0, Origin::kSelf);
  remote(IN_CREATE, "theirs", 2, 0, Origin::kOther);
  remote(IN_Q_OVERFLOW, "", 3, 0, Origin::kUnknown);
  release(5000);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_OPEN, 0, "mine"},
                                    {IN_CREATE, 0, "mine"},
                                    {IN_CREATE | IN_REMOTE, 0, "theirs"},
                                    {IN_Q_OVERFLOW | IN_REMOTE, 0, ""}}));
}

class DedupStateTest : public DedupTest {
 protected:
  DedupStateTest() : DedupTest(Strategy::kState) {}
};

TEST_F(DedupStateTest, AServerStateThatIsNotMineMeansSomeoneElseChangedItToo) {
  EventStat mine{6, 1000, 0, 0100644, 0, 0, 5};
  EventStat theirs = mine;
  theirs.size = 12;
  local(IN_CLOSE_WRITE, "f", 0, 0, &mine);
  remote(IN_CLOSE_WRITE, "f", 1, 0, Origin::kUnknown, &mine);
  local(IN_CLOSE_WRITE, "f", 10, 0, &mine);
  remote(IN_CLOSE_WRITE, "f", 11, 0, Origin::kUnknown, &theirs);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_CLOSE_WRITE, 0, "f"}, {IN_CLOSE_WRITE | IN_REMOTE, 0, "f"}}));
}

// NFS: the server's copy of this host's own change comes before the local
// kernel's report (the change is made while the RPC is on the wire). While
// this host is busy on the mount, the copy waits for its twin.
TEST_F(DedupTest, ACopyThatComesFirstWhileThisHostIsBusyIsThisHostsChange) {
  remoteWhileBusy(IN_CREATE | IN_ISDIR, "d", 0);
  EXPECT_TRUE(out_.empty()) << "held for a local twin";
  EXPECT_EQ(dedup_.nextRelease(), t0_ + milliseconds(100));
  local(IN_CREATE | IN_ISDIR, "d", 30);
  ASSERT_EQ(out_, (std::vector<Out>{{IN_CREATE | IN_ISDIR, 0, "d"}})) << "once, without IN_REMOTE";
  release(5000);
  EXPECT_EQ(out_.size(), 1u);
  EXPECT_EQ(dedup_.held(), 0u);
}

TEST_F(DedupTest, ACopyWithoutATwinIsAnotherHostsChangeWhenItsHoldEnds) {
  remoteWhileBusy(IN_CREATE, "f", 0);
  release(99);
  EXPECT_TRUE(out_.empty());
  release(100);
  ASSERT_EQ(out_, (std::vector<Out>{{IN_CREATE | kInRemote, 0, "f"}}));
  local(IN_CREATE, "f", 300);  // this host's after all, later still: absorbed, not doubled
  release(5000);
  EXPECT_EQ(out_.size(), 1u);
}

TEST_F(DedupTest, ReportsBehindAHeldCopyKeepTheServersOrder) {
  remoteWhileBusy(IN_MOVED_FROM, "a", 0, 5);
  remote(IN_MOVED_TO, "b", 1, 5);  // not busy any more: still behind the held one
  remote(IN_UNMOUNT, "", 2);       // not pairable: behind it too
  remote(IN_CREATE, "other", 3);
  EXPECT_TRUE(out_.empty());
  local(IN_MOVED_FROM, "a", 10, 77);
  local(IN_MOVED_TO, "b", 10, 77);
  ASSERT_EQ(out_.size(), 3u) << "the pair is delivered, in order, as this host's; the unmount after it";
  EXPECT_EQ(out_[0], (Out{IN_MOVED_FROM, 5, "a"}));
  EXPECT_EQ(out_[1], (Out{IN_MOVED_TO, 5, "b"}));
  EXPECT_EQ(out_[2], (Out{IN_UNMOUNT | kInRemote, 0, ""}));
  release(5000);  // "other" had no twin: delivered when its turn came, as another host's
  ASSERT_EQ(out_.size(), 4u);
  EXPECT_EQ(out_[3], (Out{IN_CREATE | kInRemote, 0, "other"}));
}

// A caller that comes late (rnotify_next long after): what was held is
// delivered in the order the holds ended, the server's copy first here.
TEST_F(DedupTest, HeldReportsOfBothSidesComeOutInTheOrderTheirHoldsEnd) {
  remoteWhileBusy(IN_CREATE, "theirs", 1000);
  local(IN_CREATE, "mine", 1010);
  release(2000);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_CREATE | kInRemote, 0, "theirs"}, {IN_CREATE, 0, "mine"}}));
}

// An overflow: the client re-reads the watch next and delivers what the
// listing finds as it comes, so what waits goes first, as it is.
TEST_F(DedupTest, AnOverflowDeliversWhatWaitsBeforeIt) {
  remoteWhileBusy(IN_CREATE, "a", 0);
  remote(IN_CREATE, "b", 1);
  remote(IN_Q_OVERFLOW, "", 2);
  EXPECT_EQ(out_,
            (std::vector<Out>{
                {IN_CREATE | kInRemote, 0, "a"}, {IN_CREATE | kInRemote, 0, "b"}, {IN_Q_OVERFLOW | kInRemote, 0, ""}}));
  EXPECT_EQ(dedup_.held(), 0u);
  local(IN_CREATE, "a", 20);  // this host's after all: absorbed, not doubled
  release(5000);
  EXPECT_EQ(out_.size(), 3u);
}

TEST_F(DedupTest, AHeldCopyIsPairedOnlyWithAnEqualLocalReport) {
  remoteWhileBusy(IN_DELETE, "f", 0);
  local(IN_DELETE, "g", 5);  // another name: held for its own echo
  local(IN_CREATE, "f", 6);  // another kind
  release(100);
  ASSERT_FALSE(out_.empty());
  EXPECT_EQ(out_[0], (Out{IN_DELETE | kInRemote, 0, "f"})) << "never hidden: delivered as another host's";
  release(5000);
  EXPECT_EQ(out_.size(), 3u);
}

TEST_F(DedupTest, AWatchThatEndsDeliversWhatItsServerCopiesWaitedFor) {
  remoteWhileBusy(IN_CREATE, "f", 0);
  remote(IN_MODIFY, "f", 1);
  dedup_.forget(1);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_CREATE | kInRemote, 0, "f"}, {IN_MODIFY | kInRemote, 0, "f"}}));
  EXPECT_EQ(dedup_.held(), 0u);
}

// Randomized: this host's changes, whose server copy comes before or after
// the local report (within the hold), mixed with other hosts' changes, on a
// few names, the server's copies held while this host is busy (as NFS's
// counters tell it). Whatever the interleaving, what is delivered is the
// server's stream, in its order, each once; and when only this host
// changes anything, nothing is REMOTE.
TEST_F(DedupTest, RandomInterleavingsDeliverTheServersStreamInOrder) {
  const uint32_t kinds[] = {IN_CREATE, IN_DELETE, IN_MODIFY, IN_ATTRIB};
  const char* names[] = {"a", "b", "c"};
  for (int round = 0; round < 400; ++round) {
    std::mt19937 random(round);
    const bool othersToo = round % 2 == 1;
    // Every fourth round the busy signal misses at random (a look that
    // came between two of this host's operations): order and counts hold.
    const bool missing = round % 4 == 3;
    size_t others = 0;
    struct Report {
      int at;
      bool local;
      uint32_t mask;
      const char* name;
    };
    std::vector<Report> reports;
    std::vector<Out> server;  // the server's stream, in its order
    int at = 0;
    int lastLocal = -1000;
    uint32_t lastMask = 0;
    const char* lastName = "";
    for (int op = 0; op < 30; ++op) {
      at += static_cast<int>(random() % 20);
      uint32_t mask = kinds[random() % 4];
      const char* name = names[random() % 3];
      // Not the same as the one before: the kernel would merge two identical
      // unread reports, on one side and not the other.
      if (!server.empty() && server.back().mask == mask && server.back().name == name)
        mask = mask == IN_CREATE ? IN_DELETE : IN_CREATE;
      reports.push_back({at, false, mask, name});
      server.push_back({mask, 0, name});
      // Another host's: no local report. (Also one that this host's kernel
      // would merge into its previous identical report, unread.)
      const bool mergedLocally = lastMask == mask && lastName == name;
      if (othersToo && (random() % 3 == 0 || mergedLocally)) {
        ++others;
        continue;
      }
      if (mergedLocally) mask = mask == IN_MODIFY ? IN_ATTRIB : IN_MODIFY;  // (not in the server's stream yet)
      server.back().mask = mask;
      reports.back().mask = mask;
      lastMask = mask;
      lastName = name;
      // This host's: the local report up to 50 ms before or 80 ms after the
      // copy (hold: 100), its reports in the order it made the changes.
      lastLocal = std::max(lastLocal, at + static_cast<int>(random() % 131) - 50);
      reports.push_back({lastLocal, true, mask, name});
    }
    // Local reports in their own order, the server's in theirs: a stable
    // sort by time keeps each stream's order.
    std::stable_sort(reports.begin(), reports.end(), [](const Report& x, const Report& y) { return x.at < y.at; });
    Dedup dedup(options(), [&](int, uint32_t mask, uint32_t, uint64_t, std::string_view, std::string_view name) {
      out_.push_back(Out{mask, 0, std::string(name)});
    });
    dedup.setStrategy(1, Strategy::kEcho);
    out_.clear();
    for (size_t i = 0; i < reports.size(); ++i) {
      const Report& r = reports[i];
      const auto when = t0_ + milliseconds(r.at);
      dedup.release(when);
      if (r.local) {
        dedup.local(1, r.mask, 0, "", r.name, nullptr, when);
        continue;
      }
      // Busy: a local report of this host is still to come.
      bool busy = false;
      for (size_t j = i + 1; j < reports.size(); ++j) busy = busy || reports[j].local;
      if (missing && random() % 2 == 0) busy = false;
      Event e;
      e.mask = r.mask;
      e.name = r.name;
      dedup.remote(1, e, when, busy);
    }
    dedup.release(t0_ + milliseconds(at + 10000));
    std::vector<Out> delivered;
    size_t remote = 0;
    for (const Out& o : out_) {
      remote += (o.mask & kInRemote) != 0;
      delivered.push_back({o.mask & ~kInRemote, 0, o.name});
    }
    ASSERT_EQ(delivered, server) << "round " << round;
    if (!missing) {
      // Another host's change is REMOTE unless an identical change of this
      // host's took its place (pairing is by kind and name, one to one).
      EXPECT_GE(remote, others) << "round " << round;
      if (!othersToo) {
        EXPECT_EQ(remote, 0u) << "round " << round << ": this host's own changes came as REMOTE";
      }
    }
    EXPECT_EQ(dedup.held(), 0u);
  }
}

class DedupNoneTest : public DedupTest {
 protected:
  DedupNoneTest() : DedupTest(Strategy::kNone) {}
};

TEST_F(DedupNoneTest, BothStreamsPassThrough) {
  local(IN_CREATE, "f", 0);
  remote(IN_CREATE, "f", 1);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_CREATE, 0, "f"}, {IN_CREATE | IN_REMOTE, 0, "f"}}));
}

}  // namespace
}  // namespace rnotify

namespace rnotify {
namespace {

// kPolled: the remote source is a scan, which sees this host's changes again,
// later and in broad kinds only.
class DedupPolledTest : public DedupTest {
 protected:
  DedupPolledTest() : DedupTest(Strategy::kPolled) {}
};

TEST_F(DedupPolledTest, LocalReportsAreDeliveredAtOnceAndAbsorbTheirScan) {
  local(IN_CREATE, "f", 0);
  local(IN_MODIFY, "f", 0);
  local(IN_CLOSE_WRITE, "f", 0);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_CREATE, 0, "f"}, {IN_MODIFY, 0, "f"}, {IN_CLOSE_WRITE, 0, "f"}}))
      << "nothing is held";
  remote(IN_CREATE | IN_POLLED, "f", 1500);  // the next scan, well after a hold would have ended
  EXPECT_EQ(out_.size(), 3u);
}

TEST_F(DedupPolledTest, ALocalRenameAbsorbsTheScansDeleteAndCreate) {
  local(IN_MOVED_FROM, "a", 0, 5);
  local(IN_MOVED_TO, "b", 0, 5);
  remote(IN_DELETE | IN_POLLED, "a", 900);
  remote(IN_CREATE | IN_POLLED, "b", 900);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_MOVED_FROM, 5, "a"}, {IN_MOVED_TO, 5, "b"}}));
}

TEST_F(DedupPolledTest, ATouchSeenAsModifyIsStillThisHostsChange) {
  local(IN_ATTRIB, "f", 0);
  remote(IN_MODIFY | IN_POLLED, "f", 700);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_ATTRIB, 0, "f"}}));
}

TEST_F(DedupPolledTest, ChangesByOthersAreDeliveredFlaggedRemoteAndPolled) {
  local(IN_CREATE, "mine", 0);
  remote(IN_CREATE | IN_POLLED, "theirs", 600);
  remote(IN_CREATE | IN_POLLED, "mine", 600);
  remote(IN_MODIFY | IN_POLLED, "mine", 600);  // a second change to it, not an echo of anything local
  EXPECT_EQ(out_, (std::vector<Out>{{IN_CREATE, 0, "mine"},
                                    {IN_CREATE | IN_POLLED | IN_REMOTE, 0, "theirs"},
                                    {IN_MODIFY | IN_POLLED | IN_REMOTE, 0, "mine"}}));
}

TEST_F(DedupPolledTest, AnEchoOutsideTheWindowIsAnotherChange) {
  local(IN_DELETE, "f", 0);
  remote(IN_DELETE | IN_POLLED, "f", 60000);
  EXPECT_EQ(out_, (std::vector<Out>{{IN_DELETE, 0, "f"}, {IN_DELETE | IN_POLLED | IN_REMOTE, 0, "f"}}));
}

}  // namespace
}  // namespace rnotify
