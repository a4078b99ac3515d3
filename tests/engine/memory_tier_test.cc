// MemoryTier: CLOCK eviction, byte budget, epoch-guarded fills, predicates.

#include "memory_tier.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "testing/test_keys.h"

namespace llmcache {
namespace {

using ::llmcache::testing::TestKey;

std::shared_ptr<const Entry> MakeEntry(const std::string& model,
                                       size_t body_bytes) {
  auto e = std::make_shared<Entry>();
  e->meta.model = model;
  e->body.assign(body_bytes, 'x');
  return e;
}

TEST(MemoryTierTest, GetReturnsWhatPutStored) {
  MemoryTier tier(1 << 20);
  const Digest d = TestKey("m", 1).digest;
  EXPECT_EQ(tier.Get(d), nullptr);
  auto e = MakeEntry("m", 10);
  EXPECT_TRUE(tier.Put(d, e));
  EXPECT_EQ(tier.Get(d), e);  // the same shared object: no copy
  EXPECT_EQ(tier.size(), 1u);
  EXPECT_EQ(tier.bytes(), MemoryTier::Charge(*e));
}

TEST(MemoryTierTest, EvictsUnreferencedEntriesBeforeHitOnes) {
  // One shard so that the order is observable.
  const size_t charge = MemoryTier::Charge(*MakeEntry("m", 100));
  MemoryTier tier(charge * 3, /*shard_count=*/1);
  Digest d[4];
  for (int i = 0; i < 4; ++i) d[i] = TestKey("m", i).digest;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(tier.Put(d[i], MakeEntry("m", 100)));
  ASSERT_NE(tier.Get(d[0]), nullptr);  // 0 is referenced; 1 and 2 are not
  int evicted = -1;
  int evictions = 0;
  tier.set_eviction_listener([&](const Digest& victim, const Entry&, size_t) {
    ++evictions;
    for (int i = 0; i < 4; ++i) {
      if (victim == d[i]) evicted = i;
    }
  });
  ASSERT_TRUE(tier.Put(d[3], MakeEntry("m", 100)));
  EXPECT_EQ(evictions, 1);
  EXPECT_TRUE(evicted == 1 || evicted == 2) << evicted;
  EXPECT_EQ(tier.Get(d[evicted]), nullptr);
  EXPECT_NE(tier.Get(d[0]), nullptr);
  EXPECT_NE(tier.Get(d[3]), nullptr);  // never its own victim
  EXPECT_EQ(tier.size(), 3u);
  EXPECT_LE(tier.bytes(), charge * 3);
}

// A scan of one-off inserts evicts the entries nobody hit; an entry that was
// hit survives while the hand has not come round to it twice.
TEST(MemoryTierTest, HitEntrySurvivesAScanOfNewInserts) {
  constexpr int kResident = 64;
  const size_t charge = MemoryTier::Charge(*MakeEntry("m", 100));
  MemoryTier tier(charge * kResident, /*shard_count=*/1);
  std::vector<Digest> old;
  for (int i = 0; i < kResident; ++i) {
    old.push_back(TestKey("old", i).digest);
    ASSERT_TRUE(tier.Put(old.back(), MakeEntry("m", 100)));
  }
  ASSERT_EQ(tier.size(), static_cast<size_t>(kResident));
  const Digest& hot = old[kResident / 2];
  ASSERT_NE(tier.Get(hot), nullptr);
  size_t evictions = 0;
  tier.set_eviction_listener([&](const Digest& victim, const Entry&, size_t) {
    EXPECT_NE(victim, hot);
    ++evictions;
  });
  // Fewer new entries than there are old unreferenced ones: the hand has to
  // pass every old entry before it can come back to `hot`.
  constexpr int kScan = kResident - 8;
  for (int i = 0; i < kScan; ++i) {
    ASSERT_TRUE(tier.Put(TestKey("scan", i).digest, MakeEntry("m", 100)));
    ASSERT_LE(tier.bytes(), charge * kResident);
  }
  EXPECT_EQ(evictions, static_cast<size_t>(kScan));
  EXPECT_NE(tier.Get(hot), nullptr);
  size_t old_left = 0;
  for (const Digest& d : old) old_left += tier.Get(d) != nullptr;
  EXPECT_LE(old_left, static_cast<size_t>(kResident - 8));
  EXPECT_EQ(tier.size(), static_cast<size_t>(kResident));
}

// Many inserts of mixed sizes (with replacements and erasures) through a
// small budget: the budget always holds and the accounting matches what
// ForEach sees.
TEST(MemoryTierTest, BudgetHoldsUnderManyMixedInserts) {
  constexpr size_t kBudget = 256 << 10;
  MemoryTier tier(kBudget, /*shard_count=*/4);
  size_t evictions = 0;
  tier.set_eviction_listener(
      [&](const Digest&, const Entry&, size_t) { ++evictions; });
  uint64_t rng = 88172645463325252ull;
  auto next = [&] {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  };
  for (int n = 0; n < 20000; ++n) {
    const uint64_t r = next();
    const Digest d = TestKey("m", r % 3000).digest;
    if (r % 11 == 0) {
      tier.Erase(d);
    } else if (r % 7 == 0) {
      tier.Get(d);
    } else {
      const size_t body =
          (r >> 20) % 8 == 0 ? 8000 + (r >> 30) % 8000 : (r >> 30) % 1500;
      ASSERT_TRUE(tier.Put(d, MakeEntry("m", body)));
    }
    ASSERT_LE(tier.bytes(), kBudget);
  }
  EXPECT_GT(evictions, 0u);
  size_t bytes = 0, count = 0;
  tier.ForEach([&](const Digest& d, const std::shared_ptr<const Entry>& e) {
    EXPECT_EQ(tier.Get(d), e);
    bytes += MemoryTier::Charge(*e);
    ++count;
  });
  EXPECT_EQ(tier.size(), count);
  EXPECT_EQ(tier.bytes(), bytes);
  // Half the entries go in one sweep, each tested once.
  size_t tested = 0;
  const size_t removed = tier.EraseIf(
      [&](const Digest&, const Entry&) { return ++tested % 2 == 0; });
  EXPECT_EQ(tested, count);
  EXPECT_EQ(removed, count / 2);
  EXPECT_EQ(tier.size(), count - removed);
  size_t left = 0;
  tier.ForEach([&](const Digest& d, const std::shared_ptr<const Entry>& e) {
    EXPECT_EQ(tier.Get(d), e);  // still reachable after the shifts
    ++left;
  });
  EXPECT_EQ(left, count - removed);
}

TEST(MemoryTierTest, ReplacingAnEntryKeepsAccountingExact) {
  MemoryTier tier(1 << 20);
  const Digest d = TestKey("m", 1).digest;
  tier.Put(d, MakeEntry("m", 10));
  tier.Put(d, MakeEntry("m", 500));
  EXPECT_EQ(tier.size(), 1u);
  EXPECT_EQ(tier.bytes(), MemoryTier::Charge(*MakeEntry("m", 500)));
  EXPECT_NE(tier.Erase(d), nullptr);
  EXPECT_EQ(tier.size(), 0u);
  EXPECT_EQ(tier.bytes(), 0u);
}

TEST(MemoryTierTest, StaleEpochFillIsRefused) {
  MemoryTier tier(1 << 20);
  std::atomic<uint64_t> epoch{5};
  const Digest d = TestKey("m", 1).digest;
  EXPECT_FALSE(tier.Put(d, MakeEntry("m", 1), &epoch, 4));
  EXPECT_EQ(tier.Get(d), nullptr);
  EXPECT_TRUE(tier.Put(d, MakeEntry("m", 1), &epoch, 5));
}

TEST(MemoryTierTest, OversizedEntryAndZeroBudgetStoreNothing) {
  MemoryTier tier(16 * 1024);  // 1 KiB per shard
  EXPECT_FALSE(tier.Put(TestKey("m", 1).digest, MakeEntry("m", 4096)));
  MemoryTier none(0);
  EXPECT_FALSE(none.Put(TestKey("m", 1).digest, MakeEntry("m", 1)));
  EXPECT_EQ(none.Get(TestKey("m", 1).digest), nullptr);
}

TEST(MemoryTierTest, EraseIfRemovesMatchingEntriesOnly) {
  MemoryTier tier(1 << 20);
  for (int i = 0; i < 100; ++i) {
    tier.Put(TestKey("m", i).digest, MakeEntry(i % 2 ? "odd" : "even", 1));
  }
  EXPECT_EQ(tier.EraseIf([](const Digest&, const Entry& e) {
    return e.meta.model == "odd";
  }),
            50u);
  EXPECT_EQ(tier.size(), 50u);
  size_t seen = 0;
  tier.ForEach([&](const Digest&, const std::shared_ptr<const Entry>& e) {
    EXPECT_EQ(e->meta.model, "even");
    ++seen;
  });
  EXPECT_EQ(seen, 50u);
  tier.Clear();
  EXPECT_EQ(tier.size(), 0u);
  EXPECT_EQ(tier.bytes(), 0u);
}

// Four threads get, put, erase and sweep over a small budget at once (run
// under ThreadSanitizer in CI): accounting stays exact and within budget,
// and every entry a Get returns is one that was put under that digest.
void RunConcurrentGetPutErase(size_t budget, size_t shards, int keys,
                              int ops_per_thread) {
  MemoryTier tier(budget, shards);
  std::atomic<uint64_t> evicted{0};
  tier.set_eviction_listener(
      [&](const Digest&, const Entry&, size_t) { evicted.fetch_add(1); });
  const int kKeys = keys;
  std::vector<Digest> digests;
  for (int i = 0; i < kKeys; ++i) digests.push_back(TestKey("m", i).digest);
  std::atomic<bool> wrong{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0; n < ops_per_thread; ++n) {
        const int i = (n * 7 + t * 13) % kKeys;
        switch ((n + t) % 5) {
          case 0:
          case 1: {
            auto e = std::make_shared<Entry>();
            e->meta.model = "m" + std::to_string(i);
            // Large enough that the keys' entries overflow the budget
            // whatever the threads' interleaving (at 100 + i bytes, a
            // schedule with the erases in the right places needed none).
            e->body.assign(400 + i, 'x');
            tier.Put(digests[i], std::move(e));
            break;
          }
          case 2:
            tier.Erase(digests[i]);
            break;
          case 4:
            if (n % (ops_per_thread / 10) == 4) {
              tier.EraseIf([](const Digest&, const Entry& e) {
                return e.body.size() % 17 == 0;
              });
              break;
            }
            [[fallthrough]];
          default:
            if (auto got = tier.Get(digests[i])) {
              if (got->meta.model != "m" + std::to_string(i)) wrong = true;
            }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_FALSE(wrong.load());
  size_t bytes = 0, count = 0;
  tier.ForEach([&](const Digest&, const std::shared_ptr<const Entry>& e) {
    bytes += MemoryTier::Charge(*e);
    ++count;
  });
  EXPECT_EQ(tier.size(), count);
  EXPECT_EQ(tier.bytes(), bytes);
  EXPECT_LE(tier.bytes(), tier.byte_budget());
  EXPECT_GT(evicted.load(), 0u);
}

TEST(MemoryTierTest, ConcurrentGetPutEraseStayConsistent) {
  RunConcurrentGetPutErase(64 << 10, 4, 200, 4000);
}

// More keys than fit: the tables grow, shift and sweep while four threads
// work on them.
TEST(MemoryTierTest, ConcurrentGetPutEraseWithGrowingTables) {
  RunConcurrentGetPutErase(1 << 20, 2, 5000, 30000);
}

}  // namespace
}  // namespace llmcache
