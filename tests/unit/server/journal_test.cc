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

}  // namespace
}  // namespace rnotify
