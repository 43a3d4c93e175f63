// FlatIndex against std::map under random inserts and erasures: every entry
// stays findable by its key, erased ones are gone, and runs of colliding keys
// survive deletion by backward shift.
#include "watch/flat_index.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <vector>

namespace rnotify {
namespace {

struct Item {
  int key;
};

struct ByKey {
  static size_t hash(const Item* item) { return hashKey(item->key); }
  static size_t hashKey(int key) { return mixHash(static_cast<uint32_t>(key)); }
  static bool matches(const Item* item, int key) { return item->key == key; }
};

// Every key hashes alike: one long run, the worst case for deletion.
struct Colliding {
  static size_t hash(const Item*) { return 7; }
  static size_t hashKey(int) { return 7; }
  static bool matches(const Item* item, int key) { return item->key == key; }
};

template <class Traits>
void randomOperations(int keys, int operations) {
  FlatIndex<Item, Traits> index;
  std::map<int, std::unique_ptr<Item>> reference;
  std::mt19937 random(42);
  for (int i = 0; i < operations; ++i) {
    int key = static_cast<int>(random() % keys);
    if (auto it = reference.find(key); it != reference.end()) {
      ASSERT_TRUE(index.erase(it->second.get()));
      EXPECT_FALSE(index.erase(it->second.get()));
      reference.erase(it);
    } else {
      auto item = std::make_unique<Item>(Item{key});
      index.insert(item.get());
      reference.emplace(key, std::move(item));
    }
    ASSERT_EQ(index.size(), reference.size());
  }
  for (int key = 0; key < keys; ++key) {
    auto it = reference.find(key);
    EXPECT_EQ(index.find(key), it == reference.end() ? nullptr : it->second.get()) << key;
  }
  size_t visited = 0;
  index.forEach([&](Item* item) {
    ++visited;
    EXPECT_EQ(reference.at(item->key).get(), item);
  });
  EXPECT_EQ(visited, reference.size());
}

TEST(FlatIndexTest, MatchesAMapUnderRandomInsertsAndErasures) { randomOperations<ByKey>(5000, 100000); }

TEST(FlatIndexTest, CollidingKeysSurviveErasures) { randomOperations<Colliding>(300, 5000); }

TEST(FlatIndexTest, EmptyIndexFindsNothing) {
  FlatIndex<Item, ByKey> index;
  Item item{1};
  EXPECT_EQ(index.find(1), nullptr);
  EXPECT_FALSE(index.erase(&item));
  index.insert(&item);
  EXPECT_EQ(index.find(1), &item);
  index.clear();
  EXPECT_TRUE(index.empty());
  EXPECT_EQ(index.find(1), nullptr);
}

}  // namespace
}  // namespace rnotify
