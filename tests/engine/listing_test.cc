// Cache::ForEachEntryByAge and Cache::AgeRanges: entries in creation order
// and each model's oldest and newest entry, from the time index in
// persistent mode and by sorting in memory mode. Every listing is checked
// against what a full walk (ForEachEntry) sorted by hand gives.

#include <rocksdb/db.h>
#include <rocksdb/perf_context.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/write_batch.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmcache/cache.h"
#include "llmcache/clock.h"
#include "rocks_cache.h"
#include "rocks_schema.h"
#include "testing/status_matchers.h"
#include "testing/subprocess.h"
#include "testing/temp_dir.h"
#include "testing/test_cache.h"
#include "testing/test_keys.h"

namespace llmcache {
namespace {

using ::llmcache::testing::BackgroundProcess;
using ::llmcache::testing::TempDir;
using ::llmcache::testing::TestKey;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;

// One listed entry: creation time, base model, digest.
struct Listed {
  int64_t created_ms;
  std::string model;
  Digest digest;
  friend bool operator==(const Listed&, const Listed&) = default;
};

void PrintTo(const Listed& l, std::ostream* os) {
  *os << "{" << l.created_ms << ", " << l.model << ", "
      << DigestToHex(l.digest).substr(0, 8) << "}";
}

// ForEachEntryByAge's answer, stopping after `limit` entries (0: all).
std::vector<Listed> ByAge(Cache& cache, const std::optional<std::string>& model,
                          bool newest_first, size_t limit = 0) {
  std::vector<Listed> out;
  Status s =
      cache.ForEachEntryByAge(model, newest_first, [&](const EntryView& v) {
        EXPECT_EQ(std::string(BaseModel(v.entry.meta.model)), v.base_model);
        EXPECT_EQ(v.stored_bytes, StoredSize(v.entry));
        out.push_back(Listed{v.entry.meta.created_ms, std::string(v.base_model),
                             v.digest});
        return limit == 0 || out.size() < limit;
      });
  EXPECT_OK(s);
  return out;
}

// What ForEachEntryByAge must give: a full walk, sorted (ties by digest).
std::vector<Listed> Expected(Cache& cache,
                             const std::optional<std::string>& model,
                             bool newest_first) {
  std::vector<Listed> out;
  EXPECT_OK(cache.ForEachEntry(model, [&](const EntryView& v) {
    out.push_back(
        Listed{v.entry.meta.created_ms, std::string(v.base_model), v.digest});
    return true;
  }));
  std::sort(out.begin(), out.end(), [&](const Listed& a, const Listed& b) {
    if (a.created_ms != b.created_ms) {
      return newest_first ? a.created_ms > b.created_ms
                          : a.created_ms < b.created_ms;
    }
    return a.digest < b.digest;
  });
  return out;
}

// Oldest and newest per model from a full walk.
std::map<std::string, AgeRange, std::less<>> FullWalkRanges(Cache& cache) {
  std::map<std::string, AgeRange, std::less<>> ranges;
  EXPECT_OK(cache.ForEachEntry(std::nullopt, [&](const EntryView& v) {
    const int64_t c = v.entry.meta.created_ms;
    auto [it, added] =
        ranges.try_emplace(std::string(v.base_model), AgeRange{c, c});
    if (!added) {
      it->second.oldest_ms = std::min(it->second.oldest_ms, c);
      it->second.newest_ms = std::max(it->second.newest_ms, c);
    }
    return true;
  }));
  return ranges;
}

std::vector<std::string> Keys(
    const std::map<std::string, AgeRange, std::less<>>& m) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : m) keys.push_back(k);
  return keys;
}

// Runs every test on a persistent cache (two model families, so a third
// model lands in the overflow family) and on a memory one.
class ListingTest : public ::testing::TestWithParam<bool> {
 protected:
  static constexpr int64_t kStart = 1'700'000'000'000;

  void SetUp() override {
    clock_.Set(kStart);
    cache_ = Open(GetParam());
  }

  bool persistent() const { return GetParam(); }

  std::unique_ptr<Cache> Open(bool persistent_mode) {
    CacheOptions o;
    if (persistent_mode) {
      o = testing::TestCacheOptions(
          dir_.path() + "/db" + std::to_string(opened_++), &clock_);
      o.max_model_column_families = 2;
    }
    o.clock = &clock_;
    auto c = Cache::Open(o);
    EXPECT_OK(c.status());
    return c.ok() ? std::move(*c) : nullptr;
  }

  // Three models ("m/c" in the overflow family when persistent), entries at
  // distinct times and several in the same millisecond.
  static void Fill(Cache& c, FakeClock& clock) {
    for (int i = 0; i < 30; ++i) {
      const std::string model = i % 3 == 0   ? "m/a"
                                : i % 3 == 1 ? "m/b:variant"
                                             : "m/c";
      ASSERT_OK(c.Insert(TestKey(model, static_cast<uint64_t>(i)), "{}", {}));
      if (i % 4 != 0) clock.Advance(7);  // groups of equal creation times
    }
  }

  FakeClock clock_;
  TempDir dir_;
  int opened_ = 0;
  std::unique_ptr<Cache> cache_;
};

TEST_P(ListingTest, NewestAndOldestFirstAcrossModelsAndPerModel) {
  ASSERT_NO_FATAL_FAILURE(Fill(*cache_, clock_));
  const std::vector<Listed> newest = ByAge(*cache_, std::nullopt, true);
  ASSERT_EQ(newest.size(), 30u);
  EXPECT_EQ(newest, Expected(*cache_, std::nullopt, true));
  EXPECT_EQ(ByAge(*cache_, std::nullopt, false),
            Expected(*cache_, std::nullopt, false));
  // The same millisecond holds entries of several models: their digests
  // decide, not the index's model order.
  EXPECT_EQ(newest.back().created_ms, newest[newest.size() - 2].created_ms);

  for (const char* name : {"m/a", "m/b", "m/b:variant", "m/c"}) {
    const std::string model = name;
    const std::vector<Listed> one = ByAge(*cache_, model, true);
    EXPECT_EQ(one.size(), 10u) << model;
    EXPECT_EQ(one, Expected(*cache_, model, true)) << model;
    EXPECT_EQ(ByAge(*cache_, model, false), Expected(*cache_, model, false))
        << model;
  }
  EXPECT_THAT(ByAge(*cache_, std::string("m/none"), true), IsEmpty());
}

TEST_P(ListingTest, StopsWhereTheCallbackSays) {
  ASSERT_NO_FATAL_FAILURE(Fill(*cache_, clock_));
  const std::vector<Listed> all = Expected(*cache_, std::nullopt, true);
  for (size_t limit : {1u, 2u, 5u, 29u}) {
    const std::vector<Listed> some = ByAge(*cache_, std::nullopt, true, limit);
    ASSERT_EQ(some.size(), limit);
    EXPECT_TRUE(std::equal(some.begin(), some.end(), all.begin())) << limit;
  }
  const std::vector<Listed> c = ByAge(*cache_, std::string("m/c"), false, 3);
  const std::vector<Listed> c_all =
      Expected(*cache_, std::string("m/c"), false);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_TRUE(std::equal(c.begin(), c.end(), c_all.begin()));
}

TEST_P(ListingTest, ExpiredEntriesAreListedUntilCompactionRemovesThem) {
  InsertOptions short_lived;
  short_lived.ttl_ms = 1'000;
  ASSERT_OK(cache_->Insert(TestKey("m/a", 1), "{}", {}));
  clock_.Advance(10);
  ASSERT_OK(cache_->Insert(TestKey("m/a", 2), "{}", short_lived));
  clock_.Advance(5'000);
  // Expired, not yet compacted: listed as ForEachEntry (and so `ls`) sees
  // it.
  const std::vector<Listed> listed = ByAge(*cache_, std::nullopt, true);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].digest, TestKey("m/a", 2).digest);
  EXPECT_EQ(listed, Expected(*cache_, std::nullopt, true));
  ASSERT_OK(cache_->Compact());
  EXPECT_EQ(ByAge(*cache_, std::nullopt, true),
            Expected(*cache_, std::nullopt, true));
  if (persistent()) {
    ASSERT_EQ(ByAge(*cache_, std::nullopt, true).size(), 1u);
  }
}

TEST_P(ListingTest, ReplacedEntryAppearsOnceAtItsNewTime) {
  const RequestKey k = TestKey("m/a", 1);
  ASSERT_OK(cache_->Insert(k, "{\"v\":1}", {}));
  clock_.Advance(10);
  ASSERT_OK(cache_->Insert(TestKey("m/a", 2), "{}", {}));
  clock_.Advance(10);
  ASSERT_OK(cache_->Insert(k, "{\"v\":2}", {}));
  std::vector<Listed> listed = ByAge(*cache_, std::nullopt, true);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0], (Listed{kStart + 20, "m/a", k.digest}));
  EXPECT_EQ(listed[1].digest, TestKey("m/a", 2).digest);

  // Written again with an older creation time (as an import does): once, at
  // that time.
  InsertOptions imported;
  imported.created_ms = kStart - 1'000;
  ASSERT_OK(cache_->Insert(k, "{\"v\":3}", imported));
  listed = ByAge(*cache_, std::nullopt, false);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0], (Listed{kStart - 1'000, "m/a", k.digest}));
  EXPECT_EQ(listed, Expected(*cache_, std::nullopt, false));
  auto ranges = cache_->AgeRanges({"m/a"});
  ASSERT_OK(ranges);
  EXPECT_THAT(*ranges,
              ElementsAre(Pair("m/a", AgeRange{kStart - 1'000, kStart + 10})));
}

TEST_P(ListingTest, PurgedAndFlushedEntriesAreNotListed) {
  ASSERT_NO_FATAL_FAILURE(Fill(*cache_, clock_));
  auto gone = cache_->PurgeKey(TestKey("m/a", 0).digest);
  ASSERT_OK(gone);
  EXPECT_TRUE(*gone);
  // m/b has its own family (dropped) and m/c is in the overflow family (a
  // deleted range): both leave their index records behind.
  ASSERT_OK(cache_->FlushModel("m/b"));
  ASSERT_OK(cache_->FlushModel("m/c"));
  const std::vector<Listed> listed = ByAge(*cache_, std::nullopt, true);
  EXPECT_EQ(listed.size(), 9u);
  EXPECT_EQ(listed, Expected(*cache_, std::nullopt, true));
  for (const Listed& l : listed) EXPECT_EQ(l.model, "m/a");
  EXPECT_THAT(ByAge(*cache_, std::string("m/b"), true), IsEmpty());
  EXPECT_THAT(ByAge(*cache_, std::string("m/c"), false), IsEmpty());
  auto ranges = cache_->AgeRanges({"m/a", "m/b", "m/c"});
  ASSERT_OK(ranges);
  EXPECT_EQ(*ranges, FullWalkRanges(*cache_));
  EXPECT_THAT(Keys(*ranges), ElementsAre("m/a"));

  // A flushed model written again: only its new entries.
  clock_.Advance(100);
  ASSERT_OK(cache_->Insert(TestKey("m/c", 100), "{}", {}));
  EXPECT_THAT(ByAge(*cache_, std::string("m/c"), true),
              ElementsAre(Listed{clock_.NowMillis(), "m/c",
                                 TestKey("m/c", 100).digest}));

  ASSERT_OK(cache_->FlushAll());
  EXPECT_THAT(ByAge(*cache_, std::nullopt, true), IsEmpty());
  ranges = cache_->AgeRanges({"m/a", "m/c"});
  ASSERT_OK(ranges);
  EXPECT_THAT(*ranges, IsEmpty());
}

TEST_P(ListingTest, AgeRangesMatchAFullWalk) {
  ASSERT_NO_FATAL_FAILURE(Fill(*cache_, clock_));
  InsertOptions old;
  old.created_ms = kStart - 86'400'000;
  ASSERT_OK(cache_->Insert(TestKey("m/c", 99), "{}", old));
  auto ranges = cache_->AgeRanges({"m/a", "m/b:variant", "m/c", "m/none"});
  ASSERT_OK(ranges);
  EXPECT_EQ(*ranges, FullWalkRanges(*cache_));
  EXPECT_EQ(ranges->at("m/c").oldest_ms, kStart - 86'400'000);
  // Only the models asked for.
  ranges = cache_->AgeRanges({"m/b"});
  ASSERT_OK(ranges);
  EXPECT_THAT(Keys(*ranges), ElementsAre("m/b"));
  EXPECT_EQ(ranges->at("m/b"), FullWalkRanges(*cache_).at("m/b"));
  ranges = cache_->AgeRanges({});
  ASSERT_OK(ranges);
  EXPECT_THAT(*ranges, IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(Modes, ListingTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "Persistent" : "Memory";
                         });

// The same writes give the same listings in both modes.
TEST(ListingModesTest, MemoryModeListsAsPersistentModeDoes) {
  FakeClock clock(1'700'000'000'000);
  TempDir dir;
  CacheOptions po = testing::TestCacheOptions(dir.path() + "/db", &clock);
  po.max_model_column_families = 1;
  CacheOptions mo;
  mo.clock = &clock;
  auto persistent = Cache::Open(po);
  auto memory = Cache::Open(mo);
  ASSERT_OK(persistent);
  ASSERT_OK(memory);
  for (Cache* c : {persistent->get(), memory->get()}) {
    clock.Set(1'700'000'000'000);
    for (int i = 0; i < 40; ++i) {
      const std::string model = i % 2 == 0 ? "m/x" : "m/y:v";
      InsertOptions io;
      if (i % 5 == 0) io.ttl_ms = 50;
      ASSERT_OK(
          c->Insert(TestKey(model, static_cast<uint64_t>(i % 30)), "{}", io));
      if (i % 3 != 0) clock.Advance(11);
    }
    ASSERT_OK(c->PurgeKey(TestKey("m/x", 4).digest).status());
  }
  for (const std::optional<std::string>& model :
       {std::optional<std::string>(), std::optional<std::string>("m/x"),
        std::optional<std::string>("m/y")}) {
    for (bool newest_first : {true, false}) {
      const std::vector<Listed> p = ByAge(**persistent, model, newest_first);
      EXPECT_EQ(p, ByAge(**memory, model, newest_first));
      EXPECT_FALSE(p.empty());
    }
  }
  auto pr = (*persistent)->AgeRanges({"m/x", "m/y"});
  auto mr = (*memory)->AgeRanges({"m/x", "m/y"});
  ASSERT_OK(pr);
  ASSERT_OK(mr);
  EXPECT_EQ(*pr, *mr);
  EXPECT_EQ(pr->size(), 2u);
}

// An inspection view (how the CLI reads beside a live owner) lists what the
// owner wrote, as of its last CatchUp.
TEST(ListingInspectionTest, InspectionViewListsTheOwnersEntries) {
  FakeClock clock(1'700'000'000'000);
  TempDir dir;
  const std::string path = dir.path() + "/db";
  auto owner = testing::OpenTestCache(path, &clock);
  ASSERT_OK(owner);
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK((*owner)->Insert(TestKey(i % 2 ? "m/a" : "m/b", i), "{}", {}));
    clock.Advance(3);
  }
  InspectOptions io;
  io.path = path;
  io.clock = &clock;
  auto view = Cache::Inspect(io);
  ASSERT_OK(view);
  EXPECT_EQ(ByAge(**view, std::nullopt, true),
            ByAge(**owner, std::nullopt, true));
  EXPECT_EQ(ByAge(**view, std::nullopt, true).size(), 10u);

  ASSERT_OK((*owner)->Insert(TestKey("m/new", 1), "{}", {}));
  ASSERT_OK((*owner)->PurgeKey(TestKey("m/a", 1).digest).status());
  ASSERT_OK((**view).CatchUp());
  const std::vector<Listed> listed = ByAge(**view, std::nullopt, true, 1);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].model, "m/new");
  EXPECT_EQ(ByAge(**view, std::nullopt, false),
            ByAge(**owner, std::nullopt, false));
  auto ranges = (*view)->AgeRanges({"m/a", "m/b", "m/new"});
  ASSERT_OK(ranges);
  EXPECT_EQ(*ranges, FullWalkRanges(**owner));
}

// An entry that does not decode is reported (or fails the walk), as
// ForEachEntry reports it; the walk goes on past it.
TEST(ListingCorruptionTest, CorruptEntryIsReported) {
  FakeClock clock(1'700'000'000'000);
  TempDir dir;
  auto opened = testing::OpenTestCache(dir.path() + "/db", &clock);
  ASSERT_OK(opened);
  auto& rocks = dynamic_cast<RocksCache&>(**opened);
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(rocks.Insert(TestKey("m/a", i), "{}", {}));
    clock.Advance(5);
  }
  const RequestKey bad = TestKey("m/a", 1);
  ASSERT_OK(rocks.PutRawForTest(
      "m/a", std::string(reinterpret_cast<const char*>(bad.digest.data()), 32),
      "\x01garbage"));
  std::vector<std::string> corrupt;
  int listed = 0;
  ASSERT_OK(rocks.ForEachEntryByAge(
      std::nullopt, true,
      [&](const EntryView&) {
        ++listed;
        return true;
      },
      [&](std::string_view key, const Status& s) {
        corrupt.emplace_back(key);
        EXPECT_EQ(s.code(), StatusCode::kDataLoss);
      }));
  EXPECT_EQ(listed, 2);
  EXPECT_THAT(corrupt, ElementsAre(bad.Hex()));
  Cache& cache = rocks;  // the default on_corrupt: none
  EXPECT_THAT(cache.ForEachEntryByAge(std::nullopt, true,
                                      [](const EntryView&) { return true; }),
              testing::StatusIs(StatusCode::kDataLoss));
}

// RocksDB's count of memtable iterator steps on this thread: the records a
// walk read, while every record is still in a memtable.
class MemtableSteps {
 public:
  MemtableSteps() {
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
    rocksdb::get_perf_context()->Reset();
  }
  ~MemtableSteps() { rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable); }
  uint64_t Take() {
    rocksdb::PerfContext* p = rocksdb::get_perf_context();
    const uint64_t n = p->next_on_memtable_count + p->prev_on_memtable_count;
    p->Reset();
    return n;
  }
};

// Inserts `n` entries of `model`, one per millisecond.
void InsertOneAMillisecond(Cache& cache, FakeClock& clock,
                           const std::string& model, int n) {
  for (int i = 0; i < n; ++i) {
    ASSERT_OK(cache.Insert(TestKey(model, i), "{}", {}));
    clock.Advance(1);
  }
}

// One model's newest entries and age range cost its own records, not the
// records of other models created in between (the per-model index).
TEST(ListingCostTest, OneModelsWalkReadsOnlyItsOwnRecords) {
  FakeClock clock(1'700'000'000'000);
  TempDir dir;
  auto cache = testing::OpenTestCache(dir.path() + "/db", &clock);
  ASSERT_OK(cache);
  ASSERT_NO_FATAL_FAILURE(InsertOneAMillisecond(**cache, clock, "m/small", 5));
  constexpr int kBig = 2000;
  ASSERT_NO_FATAL_FAILURE(InsertOneAMillisecond(**cache, clock, "m/big", kBig));
  MemtableSteps steps;
  // The counter counts: walking all of m/big steps over its records.
  EXPECT_EQ(ByAge(**cache, std::string("m/big"), false).size(),
            static_cast<size_t>(kBig));
  EXPECT_GE(steps.Take(), static_cast<uint64_t>(kBig));

  // The newest of m/small lie behind all of m/big in creation order.
  const std::vector<Listed> newest =
      ByAge(**cache, std::string("m/small"), true, 3);
  EXPECT_LT(steps.Take(), 20u);
  const std::vector<Listed> want =
      Expected(**cache, std::string("m/small"), true);
  ASSERT_EQ(newest.size(), 3u);
  EXPECT_TRUE(std::equal(newest.begin(), newest.end(), want.begin()));

  (void)steps.Take();
  auto ranges = (*cache)->AgeRanges({"m/small"});
  EXPECT_LT(steps.Take(), 20u);
  ASSERT_OK(ranges);
  EXPECT_THAT(*ranges,
              ElementsAre(Pair(
                  "m/small", AgeRange{1'700'000'000'000, 1'700'000'000'004})));
}

// A listing of every model merges the models' per-model ranges: the
// records a flushed model left in the time index are not read.
TEST(ListingCostTest, AFlushedModelsRecordsAreNotReadByAListingOfAll) {
  FakeClock clock(1'700'000'000'000);
  TempDir dir;
  auto cache = testing::OpenTestCache(dir.path() + "/db", &clock);
  ASSERT_OK(cache);
  ASSERT_NO_FATAL_FAILURE(InsertOneAMillisecond(**cache, clock, "m/kept", 5));
  constexpr int kBig = 2000;
  ASSERT_NO_FATAL_FAILURE(
      InsertOneAMillisecond(**cache, clock, "z/flushed", kBig));
  ASSERT_OK((*cache)->FlushModel("z/flushed"));
  MemtableSteps steps;
  const std::vector<Listed> newest = ByAge(**cache, std::nullopt, true, 3);
  // A few steps over the metadata's model counters and m/kept's records;
  // the time index walk took over 2000.
  EXPECT_LT(steps.Take(), 50u);
  const std::vector<Listed> want = Expected(**cache, std::nullopt, true);
  ASSERT_EQ(want.size(), 5u);
  ASSERT_EQ(newest.size(), 3u);
  EXPECT_TRUE(std::equal(newest.begin(), newest.end(), want.begin()));
  EXPECT_EQ(ByAge(**cache, std::nullopt, false),
            Expected(**cache, std::nullopt, false));
}

// Entries created in one millisecond (an import of an export whose entries
// share a creation time) are listed without reading them all: a listing's
// first entries cost a few records, newest or oldest first, of one model
// or of all.
TEST(ListingCostTest, ManyEntriesOfOneMillisecondAreNotAllRead) {
  FakeClock clock(1'700'000'000'000);
  TempDir dir;
  auto cache = testing::OpenTestCache(dir.path() + "/db", &clock);
  ASSERT_OK(cache);
  constexpr int kSame = 2000;
  ASSERT_NO_FATAL_FAILURE(InsertOneAMillisecond(**cache, clock, "m/a", 3));
  for (int i = 0; i < kSame; ++i) {
    ASSERT_OK((*cache)->Insert(TestKey(i % 2 == 0 ? "m/a" : "m/b", 100 + i),
                               "{}", {}));
  }
  clock.Advance(1);
  ASSERT_NO_FATAL_FAILURE(InsertOneAMillisecond(**cache, clock, "m/b", 2));
  // The models' entry counters are merge operands, one per insert, until a
  // flush of the metadata's memtable merges them; a listing of all models
  // reads the counters (at most one memtable of operands). Flushed, that is
  // a few keys; the index records stay in the memtable, where steps count.
  ASSERT_OK(static_cast<RocksCache&>(**cache).FlushMemtablesForTest(
      /*metadata_only=*/true));
  MemtableSteps steps;
  for (bool newest : {true, false}) {
    for (const std::optional<std::string>& model :
         {std::optional<std::string>(), std::optional<std::string>("m/a")}) {
      (void)steps.Take();
      const std::vector<Listed> first = ByAge(**cache, model, newest, 5);
      EXPECT_LT(steps.Take(), 60u) << newest << " " << model.value_or("*");
      const std::vector<Listed> want = Expected(**cache, model, newest);
      ASSERT_EQ(first.size(), 5u);
      EXPECT_TRUE(std::equal(first.begin(), first.end(), want.begin()))
          << newest << " " << model.value_or("*");
      // And the whole listing, in the same order as the reference.
      EXPECT_EQ(ByAge(**cache, model, newest), want)
          << newest << " " << model.value_or("*");
    }
  }
}

// Newest first reads a millisecond's records backwards and hands them out
// in ascending digest order, up to 16 (a larger millisecond is streamed):
// milliseconds of every size around that bound, in the memtable and in
// table files, list as the reference orders them, whole or stopped early.
TEST(ListingCostTest, MillisecondsOfEverySizeAreListedInOrder) {
  FakeClock clock(1'700'000'000'000);
  TempDir dir;
  auto cache = testing::OpenTestCache(dir.path() + "/db", &clock);
  ASSERT_OK(cache);
  // Each millisecond is one model's (each model's range is walked by an
  // iterator of its own): m/a's oldest and newest are large, m/b has a
  // millisecond of exactly 16 and its newest is large.
  int n = 0;
  for (const auto& [size, model] :
       std::vector<std::pair<int, std::string>>{{17, "m/a"},
                                                {1, "m/b"},
                                                {15, "m/a"},
                                                {16, "m/b"},
                                                {16, "m/a"},
                                                {2, "m/b"},
                                                {1, "m/a"},
                                                {33, "m/b"},
                                                {17, "m/a"}}) {
    for (int i = 0; i < size; ++i, ++n) {
      InsertOptions options;
      options.ttl_ms = n % 2 == 0 ? 3'600'000 : 0;
      ASSERT_OK((*cache)->Insert(TestKey(model, n), "{}", options));
    }
    clock.Advance(1);
  }
  for (bool flushed : {false, true}) {
    if (flushed) {
      ASSERT_OK(static_cast<RocksCache&>(**cache).FlushMemtablesForTest(
          /*metadata_only=*/false));
    }
    for (bool newest : {true, false}) {
      for (const std::optional<std::string>& model :
           {std::optional<std::string>(), std::optional<std::string>("m/a"),
            std::optional<std::string>("m/b")}) {
        const std::vector<Listed> want = Expected(**cache, model, newest);
        EXPECT_EQ(ByAge(**cache, model, newest), want)
            << flushed << newest << model.value_or("*");
        for (size_t limit : {1u, 15u, 16u, 17u, 18u, 34u, 50u}) {
          const std::vector<Listed> first =
              ByAge(**cache, model, newest, limit);
          ASSERT_EQ(first.size(), std::min(limit, want.size()));
          EXPECT_TRUE(std::equal(first.begin(), first.end(), want.begin()))
              << flushed << newest << model.value_or("*") << limit;
        }
      }
    }
  }
}

// A listing of every model merges as many ranges as there are models, each
// with an iterator of its own up to 64 models (60 here), beyond with one
// shared iterator (70; most of them in the overflow family): the same
// answer.
TEST(ListingCostTest, ManyModelsAreListedInTheSameOrder) {
  FakeClock clock(1'700'000'000'000);
  TempDir dir;
  CacheOptions o = testing::TestCacheOptions(dir.path() + "/db", &clock);
  o.max_model_column_families = 8;
  auto cache = Cache::Open(o);
  ASSERT_OK(cache);
  for (int models : {60, 70}) {
    for (int i = 0; i < 2 * models; ++i) {
      ASSERT_OK((*cache)->Insert(TestKey("m/" + std::to_string(i % models), i),
                                 "{}", {}));
      if (i % 3 == 0) clock.Advance(1);  // some in the same millisecond
    }
    for (bool newest : {true, false}) {
      const std::vector<Listed> listed = ByAge(**cache, std::nullopt, newest);
      EXPECT_EQ(listed.size(), models == 60 ? 120u : 200u) << models;
      EXPECT_EQ(listed, Expected(**cache, std::nullopt, newest)) << models;
    }
  }
}

// Purges by age walk every model's range oldest first, in chunks of
// deletions, with a shared iterator beyond 64 models: exactly the entries
// older than the cutoff go, whatever their model.
TEST(ListingCostTest, AnAgePurgeOfManyModelsRemovesExactlyTheOlderEntries) {
  FakeClock clock(1'700'000'000'000);
  TempDir dir;
  CacheOptions o = testing::TestCacheOptions(dir.path() + "/db", &clock);
  o.max_model_column_families = 8;
  o.memory_tier_bytes = 0;
  auto cache = Cache::Open(o);
  ASSERT_OK(cache);
  constexpr int kModels = 100;
  constexpr int kEntries = 6000;
  for (int i = 0; i < kEntries; ++i) {
    ASSERT_OK((*cache)->Insert(
        TestKey("m/" + std::to_string(i * 7 % kModels), i), "{}", {}));
    if (i % 2 == 1) clock.Advance(1);  // two entries per millisecond
  }
  const std::vector<Listed> before = ByAge(**cache, std::nullopt, false);
  ASSERT_EQ(before.size(), static_cast<size_t>(kEntries));
  ASSERT_EQ(before, Expected(**cache, std::nullopt, false));
  // Entries 0..4499 are older than the cutoff: more than one chunk (4096).
  const int64_t cutoff = 1'700'000'000'000 + 4500 / 2;
  auto purged = (*cache)->PurgeOlderThan(clock.NowMillis() - cutoff);
  ASSERT_OK(purged);
  EXPECT_EQ(*purged, 4500u);
  EXPECT_EQ(ByAge(**cache, std::nullopt, false),
            std::vector<Listed>(before.begin() + 4500, before.end()));
  for (int i : {0, 4499, 4500, kEntries - 1}) {
    auto r =
        (*cache)->Lookup(TestKey("m/" + std::to_string(i * 7 % kModels), i));
    ASSERT_OK(r);
    EXPECT_EQ(r->hit(), i >= 4500) << i;
  }
}

// Opens the closed database at `path` with plain RocksDB (every column
// family, default options but the metadata's merge operator) and runs fn
// with the handles by name.
void WithRawDb(
    const std::string& path,
    const std::function<
        void(rocksdb::DB*,
             const std::map<std::string, rocksdb::ColumnFamilyHandle*>&)>& fn) {
  rocksdb::DBOptions dbo;
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(dbo, path, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const std::string& n : names) {
    rocksdb::ColumnFamilyOptions cf;
    // Without it, recovery stops at the first merge in the log (the entry
    // counters) and drops what follows.
    if (n == "llmcache.meta") cf.merge_operator = NewAddOperator();
    descs.emplace_back(n, cf);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(dbo, path, descs, &handles, &db);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::map<std::string, rocksdb::ColumnFamilyHandle*> by_name;
  for (size_t i = 0; i < names.size(); ++i) by_name[names[i]] = handles[i];
  fn(db, by_name);
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    db->DestroyColumnFamilyHandle(h);
  }
  delete db;
}

// Rewrites the closed database at `path` as an older llmcache left it:
// format `version`, with the time index of formats 1 and 2 ("llmcache.time")
// holding a record for each per-model record, and `extra` time-index keys
// besides; version 1 without the per-model index.
void MakeOlderVersion(const std::string& path, int version,
                      const std::vector<std::string>& extra = {}) {
  WithRawDb(path, [&](rocksdb::DB* db, const auto& cf) {
    ASSERT_TRUE(cf.contains("llmcache.bymodel"));
    ASSERT_FALSE(cf.contains("llmcache.time"));
    rocksdb::ColumnFamilyHandle* time = nullptr;
    ASSERT_TRUE(db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(),
                                       "llmcache.time", &time)
                    .ok());
    std::unique_ptr<rocksdb::Iterator> it(
        db->NewIterator(rocksdb::ReadOptions(), cf.at("llmcache.bymodel")));
    rocksdb::WriteBatch batch;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      // model prefix | created_ms (8, big endian) | digest (32)
      std::string_view rest(it->key().data(), it->key().size());
      std::string_view model;
      ASSERT_TRUE(ConsumeModelPrefix(&rest, &model));
      ASSERT_EQ(rest.size(), 8 + kDigestSize);
      Digest d;
      std::memcpy(d.data(), rest.data() + 8, kDigestSize);
      const auto created = static_cast<int64_t>(ReadBigEndian64(rest.data()));
      batch.Put(time, TimeIndexKey(created, model, d), it->value());
    }
    ASSERT_TRUE(it->status().ok());
    it.reset();
    for (const std::string& k : extra) {
      batch.Put(time, k, std::string(8, '\0'));
    }
    batch.Put(cf.at("llmcache.meta"), "format", std::to_string(version));
    ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());
    if (version == 1) {
      ASSERT_TRUE(db->DropColumnFamily(cf.at("llmcache.bymodel")).ok());
    }
    db->DestroyColumnFamilyHandle(time);
  });
}

std::vector<std::string> FamilyNames(const std::string& path) {
  std::vector<std::string> names;
  EXPECT_TRUE(
      rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
  return names;
}

std::string FormatMarker(const std::string& path) {
  std::string format;
  WithRawDb(path, [&](rocksdb::DB* db, const auto& cf) {
    EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), cf.at("llmcache.meta"),
                        "format", &format)
                    .ok());
  });
  return format;
}

int CountKeys(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf) {
  std::unique_ptr<rocksdb::Iterator> it(
      db->NewIterator(rocksdb::ReadOptions(), cf));
  int n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
  EXPECT_TRUE(it->status().ok()) << it->status().ToString();
  return n;
}

// A database written before the per-model index (format version 1) is
// listed from the time index by an inspection view, and converted by the
// first writer that opens it; a flushed model's leftover time-index records
// are not carried over.
TEST(ListingFormatTest, AVersionOneDatabaseIsConvertedByItsFirstWriter) {
  FakeClock clock(1'700'000'000'000);
  TempDir dir;
  const std::string path = dir.path() + "/db";
  CacheOptions o = testing::TestCacheOptions(path, &clock);
  o.max_model_column_families = 2;  // m/c in the overflow family
  {
    auto cache = Cache::Open(o);
    ASSERT_OK(cache);
    for (int i = 0; i < 30; ++i) {
      const char* model = i % 3 == 0 ? "m/a" : i % 3 == 1 ? "m/b" : "m/c";
      ASSERT_OK((*cache)->Insert(TestKey(model, i), "{}", {}));
      if (i % 2 == 0) clock.Advance(3);
    }
    ASSERT_OK((*cache)->FlushModel("m/b"));
  }
  {
    // Reopened and closed by llmcache once: a plain RocksDB open straight
    // after the flush above fails with "SST file is ahead of WALs in CF
    // llmcache.overflow", a check llmcache's own open passes.
    auto again = Cache::Open(o);
    ASSERT_OK(again);
  }
  // A flush by a version-1 llmcache left its model's time-index records.
  ASSERT_NO_FATAL_FAILURE(MakeOlderVersion(
      path, 1,
      {TimeIndexKey(1'700'000'000'001, "m/b", TestKey("m/b", 1).digest),
       TimeIndexKey(1'700'000'000'004, "m/b", TestKey("m/b", 4).digest)}));

  {
    InspectOptions io;
    io.path = path;
    io.clock = &clock;
    auto view = Cache::Inspect(io);
    ASSERT_OK(view);
    for (const char* model : {"m/a", "m/c"}) {
      const std::vector<Listed> listed =
          ByAge(**view, std::string(model), true);
      EXPECT_EQ(listed.size(), 10u) << model;
      EXPECT_EQ(listed, Expected(**view, std::string(model), true)) << model;
    }
    EXPECT_THAT(ByAge(**view, std::string("m/b"), true), IsEmpty());
    auto ranges = (*view)->AgeRanges({"m/a", "m/b", "m/c"});
    ASSERT_OK(ranges);
    EXPECT_EQ(*ranges, FullWalkRanges(**view));
  }

  {
    auto cache = Cache::Open(o);
    ASSERT_OK(cache);
    for (const char* model : {"m/a", "m/c"}) {
      for (bool newest : {true, false}) {
        const std::vector<Listed> listed =
            ByAge(**cache, std::string(model), newest);
        EXPECT_EQ(listed.size(), 10u) << model;
        EXPECT_EQ(listed, Expected(**cache, std::string(model), newest))
            << model;
      }
    }
    auto ranges = (*cache)->AgeRanges({"m/a", "m/b", "m/c"});
    ASSERT_OK(ranges);
    EXPECT_EQ(*ranges, FullWalkRanges(**cache));
    EXPECT_THAT(Keys(*ranges), ElementsAre("m/a", "m/c"));
    // The converted index is kept up to date.
    clock.Advance(10);
    ASSERT_OK((*cache)->Insert(TestKey("m/b", 100), "{}", {}));
    EXPECT_THAT(ByAge(**cache, std::string("m/b"), true),
                ElementsAre(Listed{clock.NowMillis(), "m/b",
                                   TestKey("m/b", 100).digest}));
  }
  // Converted to version 2, then to version 3: no time index.
  EXPECT_EQ(FormatMarker(path), "3");
  EXPECT_THAT(FamilyNames(path), Not(Contains("llmcache.time")));
  WithRawDb(path, [](rocksdb::DB* db, const auto& cf) {
    // m/a's and m/c's 20 records and the new m/b entry's; none of the
    // flushed m/b entries'.
    const int records = CountKeys(db, cf.at("llmcache.bymodel"));
    EXPECT_EQ(records, 21);
  });
}

// A conversion with more models than it writes table files for at once
// (256): the rest go through write batches.
TEST(ListingFormatTest, AConversionWithManyModelsKeepsEveryModelsRecords) {
  FakeClock clock(1'700'000'000'000);
  TempDir dir;
  const std::string path = dir.path() + "/db";
  CacheOptions o = testing::TestCacheOptions(path, &clock);
  o.max_model_column_families = 4;
  constexpr int kModels = 300;
  auto model = [](int i) { return "m/" + std::to_string(i); };
  {
    auto cache = Cache::Open(o);
    ASSERT_OK(cache);
    for (int i = 0; i < 2 * kModels; ++i) {
      ASSERT_OK((*cache)->Insert(TestKey(model(i % kModels), i), "{}", {}));
      clock.Advance(1);
    }
  }
  {
    auto again = Cache::Open(o);  // see the test above
    ASSERT_OK(again);
  }
  ASSERT_NO_FATAL_FAILURE(MakeOlderVersion(path, 1));
  {
    auto cache = Cache::Open(o);
    ASSERT_OK(cache);
    for (int i : {0, 3, 4, 255, 256, 299}) {
      const std::vector<Listed> listed = ByAge(**cache, model(i), true);
      EXPECT_EQ(listed.size(), 2u) << i;
      EXPECT_EQ(listed, Expected(**cache, model(i), true)) << i;
    }
    std::vector<std::string> all;
    for (int i = 0; i < kModels; ++i) all.push_back(model(i));
    auto ranges = (*cache)->AgeRanges(all);
    ASSERT_OK(ranges);
    EXPECT_EQ(ranges->size(), static_cast<size_t>(kModels));
    EXPECT_EQ(*ranges, FullWalkRanges(**cache));
  }
  WithRawDb(path, [](rocksdb::DB* db, const auto& cf) {
    const int records = CountKeys(db, cf.at("llmcache.bymodel"));
    EXPECT_EQ(records, 2 * kModels);
  });
  // The conversion's scratch directory is gone.
  EXPECT_FALSE(std::filesystem::exists(path + "/convert.bymodel"));
}

// A conversion interrupted after its ingestion (format still 1) may leave
// records that later writes by an older llmcache made stale: the next
// conversion starts from an empty per-model index.
TEST(ListingFormatTest, AConversionStartsFromAnEmptyPerModelIndex) {
  FakeClock clock(1'700'000'000'000);
  TempDir dir;
  const std::string path = dir.path() + "/db";
  {
    auto cache = testing::OpenTestCache(path, &clock);
    ASSERT_OK(cache);
    for (int i = 0; i < 3; ++i) {
      ASSERT_OK((*cache)->Insert(TestKey("m/a", i), "{}", {}));
    }
  }
  {
    auto again = testing::OpenTestCache(path, &clock);  // see above
    ASSERT_OK(again);
  }
  ASSERT_NO_FATAL_FAILURE(MakeOlderVersion(path, 1));
  WithRawDb(path, [](rocksdb::DB* db, const auto&) {
    // The per-model index a previous conversion left, with a record of an
    // entry that is gone.
    rocksdb::ColumnFamilyHandle* by_model = nullptr;
    ASSERT_TRUE(db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(),
                                       "llmcache.bymodel", &by_model)
                    .ok());
    EXPECT_TRUE(db->Put(rocksdb::WriteOptions(), by_model,
                        ModelTimeIndexKey("m/a", 5, TestKey("m/a", 99).digest),
                        std::string(8, '\0'))
                    .ok());
    db->DestroyColumnFamilyHandle(by_model);
  });
  {
    auto cache = testing::OpenTestCache(path, &clock);
    ASSERT_OK(cache);
    EXPECT_EQ(ByAge(**cache, std::string("m/a"), true).size(), 3u);
  }
  WithRawDb(path, [](rocksdb::DB* db, const auto& cf) {
    EXPECT_FALSE(cf.contains("llmcache.time"));
    EXPECT_EQ(CountKeys(db, cf.at("llmcache.bymodel")), 3);
  });
}

// A version-2 database whose per-model index was lost gets it back from
// its time index (not an empty one) before the time index goes.
TEST(ListingFormatTest, AVersionTwoDatabaseWithoutItsPerModelIndexIsRebuilt) {
  FakeClock clock(1'700'000'000'000);
  TempDir dir;
  const std::string path = dir.path() + "/db";
  CacheOptions o = testing::TestCacheOptions(path, &clock);
  o.max_model_column_families = 1;  // m/a (the second) in the overflow family
  {
    auto cache = Cache::Open(o);
    ASSERT_OK(cache);
    for (int i = 0; i < 12; ++i) {
      ASSERT_OK((*cache)->Insert(TestKey(i % 2 ? "m/a" : "m/b", i), "{}", {}));
      clock.Advance(1);
    }
  }
  {
    auto again = Cache::Open(o);  // see AVersionOneDatabase... above
    ASSERT_OK(again);
  }
  ASSERT_NO_FATAL_FAILURE(MakeOlderVersion(path, 2));
  WithRawDb(path, [](rocksdb::DB* db, const auto& cf) {
    ASSERT_TRUE(db->DropColumnFamily(cf.at("llmcache.bymodel")).ok());
    // And m/a's entry counter, as an older llmcache could lose an overflow
    // model's counter: the rebuild writes one.
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), cf.at("llmcache.meta"),
                           ModelStatKey("entries", "m/a"))
                    .ok());
  });
  {
    auto cache = Cache::Open(o);
    ASSERT_OK(cache);
    EXPECT_EQ(ByAge(**cache, std::string("m/a"), true).size(), 6u);
    EXPECT_EQ(ByAge(**cache, std::string("m/b"), true).size(), 6u);
    const std::vector<Listed> all = ByAge(**cache, std::nullopt, false);
    EXPECT_EQ(all.size(), 12u);
    EXPECT_EQ(all, Expected(**cache, std::nullopt, false));
    // The purge walk reaches m/a's records too.
    auto purged = (*cache)->PurgeOlderThan(0);
    ASSERT_OK(purged);
    EXPECT_EQ(*purged, 12u);
  }
  EXPECT_EQ(FormatMarker(path), "3");
  EXPECT_THAT(FamilyNames(path), Not(Contains("llmcache.time")));
}

// kill -9 of a writer converting a version-1 database, at points spread
// over the conversion: the next writer finishes it, and every entry is
// listed once, from the per-model index alone.
TEST(ListingFormatTest, AConversionKilledAnywhereIsFinishedByTheNextWriter) {
  TempDir dir;
  const std::string original = dir.path() + "/v1";
  const std::string path = dir.path() + "/db";
  CacheOptions o = testing::TestCacheOptions(original);  // the real clock
  o.default_ttl_ms = 0;                                  // nothing expires
  o.max_model_column_families = 2;                       // m/c: overflow
  constexpr int kEntries = 30000;
  {
    auto cache = Cache::Open(o);
    ASSERT_OK(cache);
    auto loader = (*cache)->NewBulkLoader({});
    ASSERT_OK(loader);
    for (int i = 0; i < kEntries; ++i) {
      const char* model = i % 3 == 0 ? "m/a" : i % 3 == 1 ? "m/b" : "m/c";
      ASSERT_OK((*loader)->Add(TestKey(model, i), "{}", {}));
    }
    ASSERT_OK((*loader)->Finish());
  }
  {
    auto again = Cache::Open(o);  // see AVersionOneDatabase... above
    ASSERT_OK(again);
  }
  ASSERT_NO_FATAL_FAILURE(MakeOlderVersion(original, 1));

  // The writer opens the database, inserts nothing and exits.
  const std::vector<std::string> writer = {CRASH_WRITER_PATH, path,
                                           dir.path() + "/acks", "0", "0"};
  auto restore = [&] {
    std::filesystem::remove_all(path);
    std::filesystem::copy(original, path,
                          std::filesystem::copy_options::recursive);
  };
  // How long an uninterrupted run takes.
  restore();
  const auto start = std::chrono::steady_clock::now();
  {
    BackgroundProcess run(writer);
    ASSERT_EQ(run.Wait(), 0);
  }
  const auto full = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(FormatMarker(path), "3");

  constexpr int kRounds = 12;
  int finished = 0;   // the writer exited before the kill
  int converted = 0;  // the kill left version 3
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(round);
    restore();
    {
      BackgroundProcess run(writer);
      // Up to 1.3 times that run: the last kills find it exited.
      std::this_thread::sleep_for(full * round * 13 / (10 * (kRounds - 1)));
      run.Signal(SIGKILL);
      const int code = run.Wait();
      if (code != 128 + SIGKILL) {
        ASSERT_EQ(code, 0);
        ++finished;
      }
    }
    const std::string marker = FormatMarker(path);
    EXPECT_TRUE(marker == "1" || marker == "3") << marker;
    converted += marker == "3" ? 1 : 0;
    CacheOptions next = o;
    next.path = path;
    auto cache = Cache::Open(next);
    ASSERT_OK(cache);
    const std::vector<Listed> all = ByAge(**cache, std::nullopt, true);
    ASSERT_EQ(all.size(), static_cast<size_t>(kEntries));
    EXPECT_TRUE(std::is_sorted(all.begin(), all.end(),
                               [](const Listed& a, const Listed& b) {
                                 return a.created_ms > b.created_ms;
                               }));
    EXPECT_EQ(ByAge(**cache, std::string("m/c"), false).size(),
              static_cast<size_t>(kEntries / 3));
    cache->reset();
    EXPECT_EQ(FormatMarker(path), "3");
    EXPECT_THAT(FamilyNames(path), Not(Contains("llmcache.time")));
  }
  std::printf(
      "conversion kill test: a whole run of the writer took %.0f ms; of %d "
      "kills, %d left version 1, %d version 3 (%d after the writer's exit)\n",
      std::chrono::duration<double, std::milli>(full).count(), kRounds,
      kRounds - converted, converted, finished);
}

// The entries of the time-index tests: 3 models (one in the overflow
// family), 40 entries over 20 ms; returns the options.
CacheOptions FillForConversion(const std::string& path, FakeClock* clock) {
  CacheOptions o = testing::TestCacheOptions(path, clock);
  o.max_model_column_families = 2;
  {
    auto cache = Cache::Open(o);
    EXPECT_OK(cache);
    for (int i = 0; cache.ok() && i < 40; ++i) {
      const char* model = i % 3 == 0 ? "m/a" : i % 3 == 1 ? "m/b" : "m/c";
      EXPECT_OK((*cache)->Insert(TestKey(model, i), "{}", {}));
      if (i % 2 == 0) clock->Advance(1);
    }
  }
  {
    auto again = Cache::Open(o);  // see AVersionOneDatabase... above
    EXPECT_OK(again);
  }
  return o;
}

// Format 3 has no time index: a new database never creates one.
TEST(ListingFormatTest, ANewDatabaseHasNoTimeIndex) {
  FakeClock clock(1'700'000'000'000);
  TempDir dir;
  const std::string path = dir.path() + "/db";
  FillForConversion(path, &clock);
  EXPECT_THAT(FamilyNames(path), Contains("llmcache.bymodel"));
  EXPECT_THAT(FamilyNames(path), Not(Contains("llmcache.time")));
  EXPECT_EQ(FormatMarker(path), "3");
}

// A version-2 database is listed by an inspection view as it is, and its
// first writer drops the time index and writes version 3: the same
// listings, and purges and the disk budget still go oldest first.
TEST(ListingFormatTest, AVersionTwoDatabaseLosesItsTimeIndex) {
  FakeClock clock(1'700'000'000'000);
  TempDir dir;
  const std::string path = dir.path() + "/db";
  const CacheOptions o = FillForConversion(path, &clock);
  std::map<bool, std::vector<Listed>> before;
  {
    auto cache = Cache::Open(o);
    ASSERT_OK(cache);
    for (bool newest : {true, false}) {
      before[newest] = ByAge(**cache, std::nullopt, newest);
    }
  }
  ASSERT_EQ(before[true].size(), 40u);
  ASSERT_NO_FATAL_FAILURE(MakeOlderVersion(path, 2));
  EXPECT_THAT(FamilyNames(path), Contains("llmcache.time"));
  {
    InspectOptions io;
    io.path = path;
    io.clock = &clock;
    auto view = Cache::Inspect(io);
    ASSERT_OK(view);
    for (bool newest : {true, false}) {
      EXPECT_EQ(ByAge(**view, std::nullopt, newest), before[newest]);
    }
  }
  EXPECT_EQ(FormatMarker(path), "2");  // an inspection view writes nothing
  {
    auto cache = Cache::Open(o);
    ASSERT_OK(cache);
    for (bool newest : {true, false}) {
      EXPECT_EQ(ByAge(**cache, std::nullopt, newest), before[newest]);
    }
    // The 9 oldest entries (the first 5 ms) go, and nothing else.
    auto purged =
        (*cache)->PurgeOlderThan(clock.NowMillis() - (1'700'000'000'000 + 5));
    ASSERT_OK(purged);
    EXPECT_EQ(*purged, 9u);
    const std::vector<Listed> oldest_first =
        ByAge(**cache, std::nullopt, false);
    EXPECT_EQ(oldest_first, std::vector<Listed>(before[false].begin() + 9,
                                                before[false].end()));
  }
  EXPECT_EQ(FormatMarker(path), "3");
  EXPECT_THAT(FamilyNames(path), Not(Contains("llmcache.time")));
}

// A kill between the drop of the time index and the marker leaves version
// 2 without a time index; an llmcache of format 2 that opens a version-3
// database creates an empty time index before it refuses. The next writer
// ends both at version 3 without a time index.
TEST(ListingFormatTest, AnInterruptedConversionToVersionThreeIsFinished) {
  for (const char* marker : {"2", "3"}) {
    SCOPED_TRACE(marker);
    FakeClock clock(1'700'000'000'000);
    TempDir dir;
    const std::string path = dir.path() + "/db";
    const CacheOptions o = FillForConversion(path, &clock);
    WithRawDb(path, [&](rocksdb::DB* db, const auto& cf) {
      EXPECT_TRUE(db->Put(rocksdb::WriteOptions(), cf.at("llmcache.meta"),
                          "format", marker)
                      .ok());
      if (std::string_view(marker) == "3") {
        rocksdb::ColumnFamilyHandle* time = nullptr;
        EXPECT_TRUE(db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(),
                                           "llmcache.time", &time)
                        .ok());
        db->DestroyColumnFamilyHandle(time);
      }
    });
    {
      auto cache = Cache::Open(o);
      ASSERT_OK(cache);
      EXPECT_EQ(ByAge(**cache, std::nullopt, true).size(), 40u);
      EXPECT_EQ(ByAge(**cache, std::string("m/c"), false).size(), 13u);
    }
    EXPECT_EQ(FormatMarker(path), "3");
    EXPECT_THAT(FamilyNames(path), Not(Contains("llmcache.time")));
  }
}

// A model's flush deletes its per-model records with one range deletion:
// its listing is empty at once, the other models' are untouched.
TEST(ListingFlushTest, FlushDeletesTheModelsPerModelRecords) {
  FakeClock clock(1'700'000'000'000);
  TempDir dir;
  const std::string path = dir.path() + "/db";
  CacheOptions o = testing::TestCacheOptions(path, &clock);
  o.max_model_column_families = 1;  // m/y in the overflow family
  {
    auto cache = Cache::Open(o);
    ASSERT_OK(cache);
    for (int i = 0; i < 20; ++i) {
      ASSERT_OK((*cache)->Insert(TestKey(i % 2 ? "m/x" : "m/y", i), "{}", {}));
      clock.Advance(1);
    }
    ASSERT_OK((*cache)->FlushModel("m/x"));
    ASSERT_OK((*cache)->FlushModel("m/y"));
    ASSERT_OK((*cache)->Insert(TestKey("m/z", 1), "{}", {}));
    EXPECT_THAT(ByAge(**cache, std::string("m/x"), true), IsEmpty());
    EXPECT_THAT(ByAge(**cache, std::string("m/y"), false), IsEmpty());
    EXPECT_EQ(ByAge(**cache, std::string("m/z"), true).size(), 1u);
    ASSERT_OK((*cache)->Compact());
  }
  WithRawDb(path, [](rocksdb::DB* db, const auto& cf) {
    const int records = CountKeys(db, cf.at("llmcache.bymodel"));
    EXPECT_EQ(records, 1);  // m/z's
  });
}

}  // namespace
}  // namespace llmcache
