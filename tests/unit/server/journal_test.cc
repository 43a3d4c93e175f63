// Journal: what a session keeps for a replay, its bounds, and what a resume
// from a given sequence number may rely on.
#include "server/journal.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace rnotify {
namespace {

std::string record(uint64_t seq) { return "record-" + std::to_string(seq); }

std::vector<uint64_t> kept(const Journal& journal, uint32_t watch) {
  std::vector<uint64_t> seqs;
  journal.forEach([&](uint32_t w, uint64_t seq, std::string_view bytes) {
    EXPECT_EQ(bytes, record(seq));
    if (w == watch) seqs.push_back(seq);
  });
  return seqs;
}

TEST(Journal, KeepsRecordsInOrderUntilAcknowledged) {
  Journal journal(100, 1 << 20);
  for (uint64_t seq = 1; seq <= 5; ++seq) journal.append(1, seq, record(seq));
  for (uint64_t seq = 1; seq <= 3; ++seq) journal.append(2, seq, record(seq));
  EXPECT_EQ(journal.records(), 8u);
  EXPECT_EQ(kept(journal, 1), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  journal.acknowledge(1, 5);  // watch 1's records go; watch 2's stay
  EXPECT_EQ(journal.records(), 3u);
  EXPECT_EQ(kept(journal, 2), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_TRUE(journal.canReplay(1, 5));
  EXPECT_TRUE(journal.canReplay(2, 0));
  journal.acknowledge(2, 3);
  EXPECT_EQ(journal.records(), 0u);
  EXPECT_EQ(journal.bytes(), 0u);
}

TEST(Journal, EvictionBeyondTheBoundsIsAGapOnlyForWhatTheClientLacks) {
  Journal journal(10, 1 << 20);
  for (uint64_t seq = 1; seq <= 25; ++seq) journal.append(7, seq, record(seq));
  EXPECT_EQ(journal.records(), 10u);
  EXPECT_EQ(journal.evicted(), 15u);
  EXPECT_EQ(kept(journal, 7).front(), 16u);
  EXPECT_FALSE(journal.canReplay(7, 0));   // 1..15 are gone
  EXPECT_FALSE(journal.canReplay(7, 14));  // 15 is gone
  EXPECT_TRUE(journal.canReplay(7, 15));   // 16.. are all here
  EXPECT_TRUE(journal.canReplay(8, 0));    // another watch lost nothing
}

TEST(Journal, TheByteBoundHoldsAndCompactionKeepsRecordsIntact) {
  const std::string big(1000, 'b');
  Journal journal(1000000, 200 * 1000);
  for (uint64_t seq = 1; seq <= 5000; ++seq) journal.append(1, seq, big);
  EXPECT_LE(journal.bytes(), 200u * 1000);
  EXPECT_EQ(journal.records(), 200u);
  EXPECT_LE(journal.memory(), 3u * 200 * 1000);
  journal.forEach([&](uint32_t, uint64_t, std::string_view bytes) { EXPECT_EQ(bytes, big); });
  EXPECT_TRUE(journal.canReplay(1, 4800));
  EXPECT_FALSE(journal.canReplay(1, 4799));
}

TEST(Journal, AForgottenWatchNoLongerHoldsRecords) {
  Journal journal(100, 1 << 20);
  journal.append(1, 1, record(1));
  journal.append(2, 1, record(1));
  journal.forget(1);
  EXPECT_EQ(journal.records(), 1u);
  EXPECT_TRUE(kept(journal, 1).empty());
}

TEST(Journal, ZeroRecordsMeansEveryResumeIsAGap) {
  Journal journal(0, 1 << 20);
  journal.append(1, 1, record(1));
  EXPECT_EQ(journal.records(), 0u);
  EXPECT_FALSE(journal.canReplay(1, 0));
  EXPECT_TRUE(journal.canReplay(1, 1));
}

// Issue 15, class 5: an acknowledgement naming a watch the journal has no
// records of keeps nothing (it used to make per-watch state for any id).
TEST(Journal, AcknowledgementsOfUnknownWatchesKeepNothing) {
  Journal journal(100, 1 << 20);
  journal.append(1, 1, record(1));
  const size_t before = journal.memory();
  for (uint32_t watch = 2; watch < 100000; ++watch) EXPECT_FALSE(journal.acknowledge(watch, 5));
  EXPECT_EQ(journal.watchesKnown(), 1u);
  EXPECT_EQ(journal.memory(), before);
  EXPECT_TRUE(journal.acknowledge(1, 1));
  EXPECT_EQ(journal.records(), 0u);
}

// The state of a watch goes with its last record once it has ended or was
// forgotten, so watching and unwatching for ever does not grow the journal.
TEST(Journal, AnEndedOrForgottenWatchLeavesNoStateBehind) {
  Journal journal(100, 1 << 20);
  for (uint32_t watch = 1; watch <= 1000; ++watch) {
    journal.append(watch, 1, record(1));
    if (watch % 2 == 0) {
      journal.forget(watch);
    } else {
      journal.ended(watch);
      EXPECT_TRUE(journal.acknowledge(watch, 1));  // still known: its record is here
    }
  }
  EXPECT_EQ(journal.records(), 0u);
  EXPECT_EQ(journal.watchesKnown(), 0u);
}

// All journals share one byte budget: a journal past it drops its own
// oldest records (a gap for that watch), never another journal's.
TEST(Journal, JournalsShareOneByteBudget) {
  JournalBudget budget{10 * 8, 0};  // ten records of 8 bytes ("record-N")
  Journal a(1000, 1 << 20, &budget);
  Journal b(1000, 1 << 20, &budget);
  for (uint64_t seq = 1; seq <= 6; ++seq) a.append(1, seq, record(seq));
  for (uint64_t seq = 1; seq <= 9; ++seq) b.append(1, seq, record(seq));
  EXPECT_LE(budget.used, budget.max);
  EXPECT_EQ(a.records(), 6u) << "b's records must not push a's out";
  EXPECT_EQ(b.records(), 4u);
  EXPECT_TRUE(a.canReplay(1, 0));
  EXPECT_FALSE(b.canReplay(1, 0));
  EXPECT_TRUE(b.canReplay(1, 5));
  {
    Journal c(1000, 1 << 20, &budget);
    c.append(1, 1, record(1));  // nothing left, and c has nothing of its own to drop: not kept
    EXPECT_EQ(c.records(), 0u);
    EXPECT_FALSE(c.canReplay(1, 0));
  }
  a.acknowledge(1, 6);
  EXPECT_EQ(budget.used, b.bytes());
}

}  // namespace
}  // namespace rnotify
