// Persistent-mode behaviour: compaction-filter TTL, column families and their
// bound, statistics across reopen, disk budget, inspection, error paths.

#include "rocks_cache.h"

#include <gtest/gtest.h>
#include <rocksdb/file_system.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "format.h"
#include "llmcache/cache.h"
#include "llmcache/clock.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/test_keys.h"

namespace llmcache {
namespace {

namespace fs = std::filesystem;
using ::llmcache::testing::StatusIs;
using ::llmcache::testing::TestKey;

class RocksCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  CacheOptions Options() {
    CacheOptions o;
    o.path = path_;
    o.clock = &clock_;
    o.default_ttl_ms = 60'000;
    o.maintenance_interval_ms = 0;
    return o;
  }
  void Reopen() { Reopen(Options()); }
  void Reopen(const CacheOptions& o) {
    cache_.reset();
    auto r = Cache::Open(o);
    ASSERT_OK(r);
    cache_ = std::move(r).value();
  }
  RocksCache& rocks() { return static_cast<RocksCache&>(*cache_); }

  uint64_t RawCount(std::string_view model) {
    auto r = rocks().RawKeyCountForTest(model);
    EXPECT_OK(r);
    return r.ok() ? *r : 0;
  }
  LookupOutcome Outcome(const RequestKey& key) {
    auto r = cache_->Lookup(key);
    EXPECT_OK(r);
    return r.ok() ? r->outcome : LookupOutcome::kMiss;
  }

  llmcache::testing::TempDir dir_;
  std::string path_ = dir_.path() + "/db";
  FakeClock clock_;
  std::unique_ptr<Cache> cache_;
};

TEST_F(RocksCacheTest, ExpiredEntriesStayUntilCompactionThenVanish) {
  InsertOptions io;
  io.ttl_ms = 1000;
  for (int i = 0; i < 100; ++i) {
    ASSERT_OK(cache_->Insert(TestKey("m/a", i), "body", io));
  }
  ASSERT_OK(cache_->Insert(TestKey("m/a", 1000), "keeper", {}));
  ASSERT_OK(rocks().FlushMemtablesForTest());
  clock_.Advance(1001);
  EXPECT_EQ(Outcome(TestKey("m/a", 5)), LookupOutcome::kExpired);
  EXPECT_EQ(RawCount("m/a"), 101u);  // still on disk before compaction
  ASSERT_OK(cache_->Compact());
  EXPECT_EQ(RawCount("m/a"), 1u);
  EXPECT_EQ(Outcome(TestKey("m/a", 1000)), LookupOutcome::kHit);
  auto s = cache_->GetStats();
  ASSERT_OK(s);
  EXPECT_EQ(s->entries, 1u);  // the filter's removals were counted
}

// An expired entry purged, or replaced, after its file reached the bottom
// level is counted out once: when that file is compacted alone, the filter
// drops the old version (the newest within that compaction) without
// counting it again, since a read sees the deletion or the new version.
TEST_F(RocksCacheTest, AnExpiredVersionCompactedAloneIsNotCountedTwice) {
  InsertOptions short_lived;
  short_lived.ttl_ms = 1000;
  const RequestKey purged = TestKey("m/a", 1);
  const RequestKey replaced = TestKey("m/a", 2);
  ASSERT_OK(cache_->Insert(purged, "old", short_lived));
  ASSERT_OK(cache_->Insert(replaced, "old", short_lived));
  for (int i = 10; i < 13; ++i) {
    ASSERT_OK(cache_->Insert(TestKey("m/a", i), "kept", {}));
  }
  ASSERT_OK(cache_->Compact());  // every version in the bottom level
  clock_.Advance(5'000);
  auto gone = cache_->PurgeKey(purged.digest);
  ASSERT_OK(gone);
  EXPECT_TRUE(*gone);
  ASSERT_OK(cache_->Insert(replaced, "new", {}));
  auto entries = [&]() -> uint64_t {
    auto s = cache_->GetStats();
    EXPECT_OK(s);
    return s.ok() ? s->entries : 0;
  };
  EXPECT_EQ(entries(), 4u);  // three kept, and the replaced one
  // The deletion and the new version are in the memtable: the bottom
  // level's file is compacted without them.
  ASSERT_OK(rocks().CompactBottomFilesForTest("m/a"));
  EXPECT_EQ(entries(), 4u);
  EXPECT_EQ(Outcome(replaced), LookupOutcome::kHit);
  EXPECT_EQ(Outcome(purged), LookupOutcome::kMiss);
  // And once everything is compacted together.
  ASSERT_OK(cache_->Compact());
  EXPECT_EQ(entries(), 4u);
  EXPECT_EQ(RawCount("m/a"), 4u);
  Reopen();
  EXPECT_EQ(entries(), 4u);
}

TEST_F(RocksCacheTest, PurgeKeyCountsEveryModelThatStoresTheKey) {
  // Only an edited import pairs one digest with two models; both go, and
  // the count says so.
  const RequestKey one = TestKey("p/one", 7);
  RequestKey two = one;
  two.model = two.base_model = "p/two";
  ASSERT_OK(cache_->Insert(one, "first", {}));
  ASSERT_OK(cache_->Insert(two, "second", {}));
  auto purged = cache_->PurgeKey(one.digest);
  ASSERT_OK(purged);
  EXPECT_EQ(*purged, 2u);
  auto st = cache_->GetStats();
  ASSERT_OK(st);
  EXPECT_EQ(st->entries, 0u);
  EXPECT_EQ(st->purged, 2u);
}

TEST_F(RocksCacheTest, AnIdenticalVersionIsNotWrittenAgain) {
  // The same entry twice in one millisecond: byte for byte the same value.
  // Written twice, its two versions would each be counted out when they
  // expire (the filter cannot tell them apart).
  InsertOptions short_lived;
  short_lived.ttl_ms = 1000;
  const RequestKey twice = TestKey("m/a", 1);
  ASSERT_OK(cache_->Insert(twice, "same", short_lived));
  for (int i = 10; i < 13; ++i) {
    ASSERT_OK(cache_->Insert(TestKey("m/a", i), "kept", {}));
  }
  ASSERT_OK(cache_->Compact());  // the first version in the bottom level
  ASSERT_OK(cache_->Insert(twice, "same", short_lived));
  auto entries = [&]() -> uint64_t {
    auto s = cache_->GetStats();
    EXPECT_OK(s);
    return s.ok() ? s->entries : 0;
  };
  EXPECT_EQ(entries(), 4u);
  clock_.Advance(5'000);
  ASSERT_OK(rocks().CompactBottomFilesForTest("m/a"));
  ASSERT_OK(cache_->Compact());
  EXPECT_NE(Outcome(twice), LookupOutcome::kHit);
  EXPECT_EQ(entries(), 3u);
  EXPECT_EQ(RawCount("m/a"), 3u);
  Reopen();
  EXPECT_EQ(entries(), 3u);
}

TEST_F(RocksCacheTest, ClosingLeavesNoWriteAheadLogToReplay) {
  // Inspection views replay the write-ahead log at every opening: a closed
  // store leaves everything in table files instead.
  for (int i = 0; i < 2000; ++i) {
    ASSERT_OK(cache_->Insert(TestKey(i % 2 ? "m/a" : "m/b", i), "body", {}));
  }
  clock_.Advance(60'000);
  auto purged = cache_->PurgeOlderThan(1'000);
  ASSERT_OK(purged);
  EXPECT_EQ(*purged, 2000u);
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK(cache_->Insert(TestKey("m/a", 10'000 + i), "kept", {}));
  }
  // Expired in the memtable at close: the closing flush keeps it (its
  // statistics are written before), so the counters stay exact.
  InsertOptions short_lived;
  short_lived.ttl_ms = 1'000;
  ASSERT_OK(cache_->Insert(TestKey("m/a", 20'000), "expired", short_lived));
  clock_.Advance(5'000);
  cache_.reset();
  uintmax_t log_bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(path_)) {
    if (e.path().extension() == ".log") log_bytes += e.file_size();
  }
  EXPECT_EQ(log_bytes, 0u);
  // Plain RocksDB (default options, every family) opens it as it is.
  rocksdb::DBOptions dbo;
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(dbo, path_, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const std::string& n : names) {
    descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(dbo, path_, descs, &handles, &raw);
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (rocksdb::ColumnFamilyHandle* h : handles)
    raw->DestroyColumnFamilyHandle(h);
  delete raw;
  Reopen();
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->entries, 11u);
  EXPECT_EQ(RawCount("m/a"), 11u);
  EXPECT_EQ(Outcome(TestKey("m/a", 10'000)), LookupOutcome::kHit);
  // A compaction drops the expired one and counts it out.
  ASSERT_OK(cache_->Compact());
  stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->entries, 10u);
  EXPECT_EQ(RawCount("m/a"), 10u);
}

// An inspection (`llmcache stats` while a service runs) reports the disk
// the owner's write-ahead logs take too: it left them out, ~30x too little
// after an import that was still in the owner's memtables.
TEST_F(RocksCacheTest, AnInspectionCountsTheOwnersLogsOnDisk) {
  const std::string body(4096, 'x');
  for (int i = 0; i < 200; ++i) {
    ASSERT_OK(cache_->Insert(TestKey("m/a", i), body, {}));
  }
  uintmax_t log_bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(path_)) {
    if (e.path().extension() == ".log") log_bytes += e.file_size();
  }
  ASSERT_GT(log_bytes, 200u * 4096);
  InspectOptions io;
  io.path = path_;
  io.clock = &clock_;
  auto view = Cache::Inspect(io);
  ASSERT_OK(view);
  auto seen = (*view)->GetStats();
  ASSERT_OK(seen);
  auto own = cache_->GetStats();
  ASSERT_OK(own);
  EXPECT_GE(seen->disk_bytes, log_bytes);
  EXPECT_EQ(seen->disk_bytes, own->disk_bytes);
}

TEST_F(RocksCacheTest, CompactionFilterAlsoRunsAtMemtableFlush) {
  InsertOptions io;
  io.ttl_ms = 10;
  for (int i = 0; i < 50; ++i) {
    ASSERT_OK(cache_->Insert(TestKey("m/a", i), "body", io));
  }
  clock_.Advance(11);
  ASSERT_OK(rocks().FlushMemtablesForTest());
  EXPECT_EQ(RawCount("m/a"), 0u);
}

TEST_F(RocksCacheTest, PeriodicCompactionReclaimsIdleColumnFamily) {
  CacheOptions o = Options();
  o.periodic_compaction_seconds = 1;
  Reopen(o);
  InsertOptions io;
  io.ttl_ms = 1000;
  for (int i = 0; i < 100; ++i) {
    ASSERT_OK(cache_->Insert(TestKey("cold/model", i), "body", io));
  }
  clock_.Advance(-100000);  // written "in the past" relative to flush time
  ASSERT_OK(rocks().FlushMemtablesForTest());
  clock_.Advance(200000);
  EXPECT_EQ(RawCount("cold/model"), 100u);
  // No writes and no manual compaction: only the maintenance round. RocksDB
  // judges file age by its own (real) clock, so this waits in real time.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (RawCount("cold/model") != 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_OK(cache_->RunMaintenance());
  }
  EXPECT_EQ(RawCount("cold/model"), 0u);
}

TEST_F(RocksCacheTest, ColumnFamilyCreatedOnFirstInsertNeverOnLookup) {
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(Outcome(TestKey("never/stored-" + std::to_string(i), 1)),
              LookupOutcome::kMiss);
  }
  EXPECT_EQ(rocks().ModelFamilyCountForTest(), 0u);
  ASSERT_OK(cache_->Insert(TestKey("a/b:free", 1), "x", {}));
  ASSERT_OK(cache_->Insert(TestKey("a/b", 2), "y", {}));
  EXPECT_EQ(rocks().ModelFamilyCountForTest(), 1u);  // one per base model
}

TEST_F(RocksCacheTest, ModelsBeyondBoundShareOverflowFamily) {
  CacheOptions o = Options();
  o.max_model_column_families = 2;
  Reopen(o);
  const std::vector<std::string> models = {"p/one", "p/two", "p/three",
                                           "p/four:floor", "p/five"};
  for (size_t m = 0; m < models.size(); ++m) {
    for (int i = 0; i < 20; ++i) {
      ASSERT_OK(cache_->Insert(TestKey(models[m], i), models[m], {}));
    }
  }
  EXPECT_EQ(rocks().ModelFamilyCountForTest(), 2u);
  for (const auto& m : models) {
    for (int i = 0; i < 20; ++i) {
      ASSERT_EQ(Outcome(TestKey(m, i)), LookupOutcome::kHit) << m;
    }
  }
  // Flushing an overflow model removes its range only.
  auto n = cache_->FlushModel("p/four");
  ASSERT_OK(n);
  EXPECT_EQ(*n, 20u);
  EXPECT_EQ(RawCount("p/four"), 0u);
  EXPECT_EQ(RawCount("p/three"), 20u);
  EXPECT_EQ(Outcome(TestKey("p/four:floor", 3)), LookupOutcome::kMiss);
  EXPECT_EQ(Outcome(TestKey("p/three", 3)), LookupOutcome::kHit);
  EXPECT_EQ(Outcome(TestKey("p/five", 3)), LookupOutcome::kHit);
  // Find and purge work in the overflow family too.
  auto found = cache_->Find(TestKey("p/five", 4).digest);
  ASSERT_OK(found);
  ASSERT_NE(*found, nullptr);
  EXPECT_EQ((*found)->body, "p/five");
  auto purged = cache_->PurgeKey(TestKey("p/five", 4).digest);
  ASSERT_OK(purged);
  EXPECT_TRUE(*purged);
  EXPECT_EQ(Outcome(TestKey("p/five", 4)), LookupOutcome::kMiss);
}

// A model whose entries are in the overflow family stays there when a flush
// frees a column-family slot, so that lookups, iteration, statistics, purges
// and flushes keep finding them; it gets a family of its own once it has no
// entries there any more.
TEST_F(RocksCacheTest, OverflowModelStaysReachableWhenSlotFrees) {
  CacheOptions o = Options();
  o.max_model_column_families = 1;
  Reopen(o);
  ASSERT_OK(cache_->Insert(TestKey("p/a", 0), "a", {}));
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(cache_->Insert(TestKey("p/b", i), "b", {}));  // overflow
  }
  ASSERT_OK(cache_->FlushModel("p/a"));
  EXPECT_EQ(rocks().ModelFamilyCountForTest(), 0u);  // a slot is free
  clock_.Advance(10);
  ASSERT_OK(cache_->Insert(TestKey("p/b", 3), "b", {}));
  EXPECT_EQ(rocks().ModelFamilyCountForTest(), 0u);

  auto check = [&](int from, int to) {
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(Outcome(TestKey("p/b", i)), i >= from && i < to
                                                ? LookupOutcome::kHit
                                                : LookupOutcome::kMiss)
          << i;
    }
    uint64_t iterated = 0;
    ASSERT_OK(cache_->ForEachEntry(
        std::string("p/b"),
        [&](const EntryView&) {
          ++iterated;
          return true;
        },
        nullptr));
    EXPECT_EQ(iterated, static_cast<uint64_t>(to - from));
    auto stats = cache_->GetStats();
    ASSERT_OK(stats);
    uint64_t counted = 0;
    for (const ModelStats& m : stats->models) {
      if (m.model == "p/b") counted = m.entries;
    }
    EXPECT_EQ(counted, static_cast<uint64_t>(to - from));
    EXPECT_EQ(stats->entries, static_cast<uint64_t>(to - from));
  };
  check(0, 4);
  // After a reopen the slot is free again and the model still has entries
  // in the overflow family.
  Reopen(o);
  clock_.Advance(10);
  ASSERT_OK(cache_->Insert(TestKey("p/b", 4), "b", {}));
  EXPECT_EQ(rocks().ModelFamilyCountForTest(), 0u);
  check(0, 5);
  // Purges by age (as the disk budget evicts) and by key find them.
  auto aged = cache_->PurgeOlderThan(15);
  ASSERT_OK(aged);
  EXPECT_EQ(*aged, 3u);
  check(3, 5);
  auto purged = cache_->PurgeKey(TestKey("p/b", 3).digest);
  ASSERT_OK(purged);
  EXPECT_TRUE(*purged);
  check(4, 5);
  auto flushed = cache_->FlushModel("p/b");
  ASSERT_OK(flushed);
  EXPECT_EQ(*flushed, 1u);
  EXPECT_EQ(RawCount("p/b"), 0u);
  check(0, 0);
  // Nothing of it left in the overflow family: now it gets its own.
  ASSERT_OK(cache_->Insert(TestKey("p/b", 9), "b", {}));
  EXPECT_EQ(rocks().ModelFamilyCountForTest(), 1u);
  EXPECT_EQ(Outcome(TestKey("p/b", 9)), LookupOutcome::kHit);
}

TEST_F(RocksCacheTest, OddModelIdsMapReversiblyAndSurviveReopen) {
  const std::vector<std::string> models = {
      "weird/模型 with spaces", "a/b%2Fc", "x/../../etc",
      std::string("z/\0nul", 6), "m.already-escaped_ok"};
  for (size_t i = 0; i < models.size(); ++i) {
    ASSERT_OK(cache_->Insert(TestKey(models[i], i), models[i], {}));
  }
  Reopen();
  EXPECT_EQ(rocks().ModelFamilyCountForTest(), models.size());
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  for (size_t i = 0; i < models.size(); ++i) {
    auto r = cache_->Lookup(TestKey(models[i], i));
    ASSERT_OK(r);
    ASSERT_TRUE(r->hit()) << i;
    EXPECT_EQ(r->entry->body, models[i]);
    bool listed = false;
    for (const auto& m : stats->models) listed |= m.model == models[i];
    EXPECT_TRUE(listed) << i;
  }
}

TEST_F(RocksCacheTest, StatisticsSurviveReopen) {
  InsertOptions io;
  io.usage = Usage{10, 5, 0, 0, 1000};
  io.resolved_model = "m/a-2025";
  ASSERT_OK(cache_->Insert(TestKey("m/a", 1), "x", io));
  ASSERT_OK(cache_->Insert(TestKey("m/b", 1), "y", {}));
  for (int i = 0; i < 3; ++i) Outcome(TestKey("m/a", 1));
  Outcome(TestKey("m/a", 2));
  cache_->RecordBypass(BypassReason::kDebug);
  ASSERT_OK(cache_->FlushModel("m/b"));
  auto before = cache_->GetStats();
  ASSERT_OK(before);
  Reopen();  // the destructor writes the last deltas
  auto after = cache_->GetStats();
  ASSERT_OK(after);
  EXPECT_EQ(after->hits, 3u);
  EXPECT_EQ(after->misses, 1u);
  EXPECT_EQ(after->inserts, 2u);
  EXPECT_EQ(after->flushes, 1u);
  EXPECT_EQ(after->tokens_saved, 45u);
  EXPECT_EQ(after->cost_saved_nanousd, 3000);
  EXPECT_EQ(after->bypasses[static_cast<size_t>(BypassReason::kDebug)], 1u);
  EXPECT_EQ(after->entries, 1u);
  EXPECT_EQ(after->bytes, before->bytes);
  ASSERT_FALSE(after->models.empty());
  EXPECT_EQ(after->models[0].model, "m/a");
  EXPECT_EQ(after->models[0].hits, 3u);
  EXPECT_EQ(after->models[0].last_resolved_model, "m/a-2025");
  EXPECT_TRUE(after->models[0].own_column_family);
  // Maintenance writes deltas too, without double counting.
  ASSERT_OK(cache_->RunMaintenance());
  ASSERT_OK(cache_->RunMaintenance());
  auto again = cache_->GetStats();
  ASSERT_OK(again);
  EXPECT_EQ(again->hits, 3u);
}

// A damaged table file: the entry's block fails its checksum. The key reads
// as a store error, and storing it again heals it (it failed for good
// before: the insert read the damaged version first); the entry count stays.
TEST_F(RocksCacheTest, AnEntryInADamagedTableFileIsHealedByStoringItAgain) {
  CacheOptions o = Options();
  o.compression = StoreCompression::kNone;  // the body is found in the file
  o.memory_tier_bytes = 0;
  Reopen(o);
  const RequestKey key = TestKey("m/damaged", 1);
  const std::string marker = "DAMAGE-ME-" + std::string(3000, 'q');
  ASSERT_OK(cache_->Insert(key, marker, {}));
  ASSERT_OK(cache_->Insert(TestKey("m/damaged", 2), "{\"fine\":1}", {}));
  ASSERT_OK(cache_->Compact());
  cache_.reset();
  bool damaged = false;
  for (const auto& e : fs::directory_iterator(path_)) {
    if (e.path().extension() != ".sst") continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)),
                      std::istreambuf_iterator<char>());
    const size_t at = bytes.find(marker);
    if (at == std::string::npos) continue;
    f.seekp(static_cast<std::streamoff>(at + 100));
    f.put('X');
    damaged = true;
  }
  ASSERT_TRUE(damaged);
  Reopen(o);
  EXPECT_FALSE(cache_->Lookup(key).ok());
  ASSERT_OK(cache_->Insert(key, "{\"healed\":1}", {}));
  auto r = cache_->Lookup(key);
  ASSERT_OK(r);
  ASSERT_TRUE(r->hit());
  EXPECT_EQ(r->entry->body, "{\"healed\":1}");
  auto s = cache_->GetStats();
  ASSERT_OK(s);
  EXPECT_EQ(s->entries, 2u);
  EXPECT_GE(s->store_errors, 1u);
}

// Oldest first across models: three of them, one in the overflow family,
// their entries interleaved in time.
TEST_F(RocksCacheTest, DiskBudgetEvictsOldestFirst) {
  CacheOptions o = Options();
  o.max_disk_bytes = 3u << 20;
  o.memory_tier_bytes = 0;
  o.max_model_column_families = 2;
  Reopen(o);
  auto key = [](int i) {
    return TestKey(i % 3 == 0 ? "m/a" : i % 3 == 1 ? "m/b" : "m/c", i);
  };
  std::mt19937_64 rng(42);
  std::string body(2048, ' ');
  const int n = 4000;  // ~8 MiB of incompressible bodies
  for (int i = 0; i < n; ++i) {
    for (char& c : body) c = static_cast<char>('a' + rng() % 26);
    ASSERT_OK(cache_->Insert(key(i), body, {}));
    clock_.Advance(1);
  }
  ASSERT_OK(cache_->RunMaintenance());
  auto s = cache_->GetStats();
  ASSERT_OK(s);
  EXPECT_LE(s->disk_bytes, o.max_disk_bytes);
  // Evicted down to about 90% of the budget, not further: the log's
  // uncompressed copy of the memtables is not counted as entries (it was,
  // and left 1.6 of 3 MiB).
  EXPECT_GE(s->disk_bytes, o.max_disk_bytes * 7 / 10);
  EXPECT_GT(s->evictions, 1000u);
  EXPECT_EQ(s->entries + s->evictions, static_cast<uint64_t>(n));
  EXPECT_EQ(Outcome(key(0)), LookupOutcome::kMiss);
  EXPECT_EQ(Outcome(key(n - 1)), LookupOutcome::kHit);
  // Eviction is oldest-first: whatever survived is a suffix.
  bool seen_hit = false;
  for (int i = 0; i < n; i += 7) {
    const bool hit = Outcome(key(i)) == LookupOutcome::kHit;
    if (seen_hit) {
      ASSERT_TRUE(hit) << i;
    }
    seen_hit |= hit;
  }
}

TEST_F(RocksCacheTest, InspectionReadsWhatLivePrimaryWrites) {
  ASSERT_OK(cache_->Insert(TestKey("m/a", 1), "one", {}));
  ASSERT_OK(cache_->RunMaintenance());
  InspectOptions io;
  io.path = path_;
  io.clock = &clock_;
  auto inspector = Cache::Inspect(io);
  ASSERT_OK(inspector);
  Cache& view = **inspector;
  auto r = view.Lookup(TestKey("m/a", 1));
  ASSERT_OK(r);
  EXPECT_TRUE(r->hit());

  // New writes (and a new model's column family) appear after CatchUp.
  ASSERT_OK(cache_->Insert(TestKey("m/a", 2), "two", {}));
  ASSERT_OK(cache_->Insert(TestKey("m/new", 3), "three", {}));
  r = view.Lookup(TestKey("m/a", 2));
  ASSERT_OK(r);
  EXPECT_FALSE(r->hit());
  ASSERT_OK(view.CatchUp());
  r = view.Lookup(TestKey("m/a", 2));
  ASSERT_OK(r);
  EXPECT_TRUE(r->hit());
  r = view.Lookup(TestKey("m/new", 3));
  ASSERT_OK(r);
  ASSERT_TRUE(r->hit());
  EXPECT_EQ(r->entry->body, "three");
  int count = 0;
  ASSERT_OK(view.ForEachEntry(std::nullopt, [&](const EntryView&) {
    ++count;
    return true;
  }));
  EXPECT_EQ(count, 3);
  auto stats = view.GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->inserts, 1u);  // as of the primary's last stats write

  // Inspection never mutates.
  EXPECT_THAT(view.Insert(TestKey("m/a", 9), "x", {}),
              StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(view.FlushModel("m/a"),
              StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(view.PurgeExpired(), StatusIs(StatusCode::kFailedPrecondition));
}

// A database whose creating process was killed before it wrote the format
// marker (the last step of creating it, before anything can be stored):
// RocksDB's column families exist, some or all of them.
void MakeInterruptedCreation(const std::string& path,
                             const std::vector<std::string_view>& families) {
  rocksdb::DBOptions dbo;
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  descs.emplace_back(rocksdb::kDefaultColumnFamilyName,
                     rocksdb::ColumnFamilyOptions());
  for (std::string_view f : families) {
    descs.emplace_back(std::string(f), rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(dbo, path, descs, &handles, &db);
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  delete db;
}

TEST_F(RocksCacheTest, AnInterruptedCreationIsEmptyOrUnfinishedNotDataLoss) {
  InspectOptions io;
  io.clock = &clock_;
  auto count = [](Cache& view) {
    int n = 0;
    EXPECT_OK(view.ForEachEntryByAge(std::nullopt, true, [&](const EntryView&) {
      ++n;
      return true;
    }));
    return n;
  };
  // Every column family made: an empty database to look at.
  const std::string whole = dir_.path() + "/whole";
  ASSERT_NO_FATAL_FAILURE(MakeInterruptedCreation(
      whole,
      {kMetaColumnFamily, kModelTimeColumnFamily, kOverflowColumnFamily}));
  io.path = whole;
  {
    auto view = Cache::Inspect(io);
    ASSERT_OK(view);
    EXPECT_EQ(count(**view), 0);
    auto ranges = (*view)->AgeRanges({"m/a"});
    ASSERT_OK(ranges);
    EXPECT_TRUE(ranges->empty());
    auto stats = (*view)->GetStats();
    ASSERT_OK(stats);
    EXPECT_EQ(stats->entries, 0u);
  }
  // Killed among the column families: unfinished, and the message says
  // what finishes it.
  const std::string part = dir_.path() + "/part";
  ASSERT_NO_FATAL_FAILURE(MakeInterruptedCreation(part, {kMetaColumnFamily}));
  io.path = part;
  EXPECT_THAT(Cache::Inspect(io),
              StatusIs(StatusCode::kUnavailable, "not completely created"));
  // A writer finishes either; then an inspection sees what it stores.
  for (const std::string& path : {whole, part}) {
    SCOPED_TRACE(path);
    CacheOptions o = Options();
    o.path = path;
    {
      auto cache = Cache::Open(o);
      ASSERT_OK(cache);
      ASSERT_OK((*cache)->Insert(TestKey("m/a", 1), "one", {}));
    }
    io.path = path;
    auto view = Cache::Inspect(io);
    ASSERT_OK(view);
    EXPECT_EQ(count(**view), 1);
  }
}

// A new database is made whole in a staging directory and moved into place
// with CURRENT last. What a creation killed before that left (its staging
// directory, files moved up without CURRENT) is no database to an inspection
// and is replaced by the next writer; two processes creating it at once
// find it locked, as they would an open one.
TEST_F(RocksCacheTest, ACreationIsWholeOrAbsent) {
  const std::string fresh = dir_.path() + "/fresh";
  fs::create_directories(fresh);
  ASSERT_NO_FATAL_FAILURE(MakeInterruptedCreation(
      fresh + "/" + std::string(kCreatingDirectory),
      {kMetaColumnFamily, kModelTimeColumnFamily, kOverflowColumnFamily}));
  // Files moved up before the kill, CURRENT not among them.
  for (const auto& e :
       fs::directory_iterator(fresh + "/" + std::string(kCreatingDirectory))) {
    const std::string name = e.path().filename().string();
    if (name != "CURRENT" && name != "LOCK") {
      fs::copy_file(e.path(), fresh + "/" + name);
    }
  }
  InspectOptions io;
  io.clock = &clock_;
  io.path = fresh;
  EXPECT_THAT(Cache::Inspect(io),
              StatusIs(StatusCode::kNotFound, "no llmcache database"));
  CacheOptions o = Options();
  o.path = fresh;
  {
    auto cache = Cache::Open(o);
    ASSERT_OK(cache);
    ASSERT_OK((*cache)->Insert(TestKey("m/a", 1), "one", {}));
  }
  EXPECT_FALSE(fs::exists(fresh + "/" + std::string(kCreatingDirectory)));
  {
    auto view = Cache::Inspect(io);
    ASSERT_OK(view);
    auto r = (*view)->Lookup(TestKey("m/a", 1));
    ASSERT_OK(r);
    EXPECT_TRUE(r->hit());
  }

  // Two creations at once: one database, and the other open is refused as
  // locked (or, had it come second, opens the finished database: not here,
  // since the first holds it open).
  const std::string racy = dir_.path() + "/racy";
  o.path = racy;
  std::vector<Result<std::unique_ptr<Cache>>> opened;
  opened.reserve(2);
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&] {
      auto r = Cache::Open(o);
      std::lock_guard<std::mutex> lock(mu);
      opened.push_back(std::move(r));
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(opened.size(), 2u);
  const int ok = static_cast<int>(opened[0].ok()) + opened[1].ok();
  EXPECT_EQ(ok, 1);
  for (const auto& r : opened) {
    if (!r.ok()) {
      EXPECT_THAT(r, StatusIs(StatusCode::kFailedPrecondition, "locked"));
    }
  }
}

// Fails its k-th RenameFile (from 1) with an I/O error; 0: never. Counts
// them.
class FailingRename : public rocksdb::FileSystemWrapper {
 public:
  explicit FailingRename(int fail_at)
      : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()),
        fail_at_(fail_at) {}
  static const char* kClassName() { return "FailingRename"; }
  const char* Name() const override { return kClassName(); }
  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to,
                               const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* d) override {
    if (++renames_ == fail_at_) {
      return rocksdb::IOStatus::IOError("injected rename failure");
    }
    return target()->RenameFile(from, to, o, d);
  }
  int renames() const { return renames_; }

 private:
  const int fail_at_;
  std::atomic<int> renames_{0};
};

// Every rename of a creation (RocksDB's own, in the staging directory and
// at the open that follows, and the moves into place) failing in turn: the
// database is absent or complete, never half made, and opens afterwards.
TEST_F(RocksCacheTest, ACreationFailingAtAnyRenameLeavesNoHalfDatabase) {
  CacheOptions o = Options();
  o.path = dir_.path() + "/count";
  auto counter = std::make_shared<FailingRename>(0);
  o.file_system = counter;
  ASSERT_OK(Cache::Open(o));
  const int renames = counter->renames();
  ASSERT_GE(renames, 4) << "RocksDB's renames and the moves into place";
  for (int k = 1; k <= renames; ++k) {
    SCOPED_TRACE("rename " + std::to_string(k) + " of " +
                 std::to_string(renames));
    o.path = dir_.path() + "/db" + std::to_string(k);
    o.file_system = std::make_shared<FailingRename>(k);
    (void)Cache::Open(o);  // fails, or shrugs off an options file
    {
      InspectOptions io;
      io.clock = &clock_;
      io.path = o.path;
      auto view = Cache::Inspect(io);
      if (!view.ok()) {
        EXPECT_THAT(view, StatusIs(StatusCode::kNotFound, "no llmcache"));
      } else {
        auto stats = (*view)->GetStats();
        ASSERT_OK(stats);
        EXPECT_EQ(stats->entries, 0u);
      }
    }
    o.file_system = nullptr;
    auto cache = Cache::Open(o);
    ASSERT_OK(cache);
    ASSERT_OK((*cache)->Insert(TestKey("m/a", 1), "one", {}));
    auto r = (*cache)->Lookup(TestKey("m/a", 1));
    ASSERT_OK(r);
    EXPECT_TRUE(r->hit());
    EXPECT_FALSE(fs::exists(o.path + "/" + std::string(kCreatingDirectory)));
  }
}

TEST_F(RocksCacheTest, SecondOpenReportsLockedDatabase) {
  CacheOptions o = Options();
  auto second = Cache::Open(o);
  EXPECT_THAT(second, StatusIs(StatusCode::kFailedPrecondition, "locked"));
  EXPECT_THAT(second, StatusIs(StatusCode::kFailedPrecondition, path_));
  // Not "another process": this one (it once sent the user looking for one).
  EXPECT_THAT(second,
              StatusIs(StatusCode::kFailedPrecondition, "already open here"));
}

TEST_F(RocksCacheTest, NewerFormatVersionIsRefused) {
  ASSERT_OK(cache_->Insert(TestKey("m/a", 1), "x", {}));
  cache_.reset();
  {
    // Rewrite the marker as a future version would.
    rocksdb::DBOptions dbo;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(dbo, path_, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const auto& n : names)
      descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(dbo, path_, descs, &handles, &db).ok());
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == kMetaColumnFamily) {
        ASSERT_TRUE(
            db->Put(rocksdb::WriteOptions(), handles[i], "format", "99").ok());
      }
    }
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  auto r = Cache::Open(Options());
  EXPECT_THAT(r, StatusIs(StatusCode::kFailedPrecondition, "newer llmcache"));
}

TEST_F(RocksCacheTest, CorruptManifestIsDataLoss) {
  ASSERT_OK(cache_->Insert(TestKey("m/a", 1), "x", {}));
  cache_.reset();
  std::string current;
  std::ifstream(path_ + "/CURRENT") >> current;
  ASSERT_FALSE(current.empty());
  {
    std::fstream f(path_ + "/" + current,
                   std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.good());
    f.seekp(0);
    const std::string junk(64, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto r = Cache::Open(Options());
  EXPECT_THAT(r, StatusIs(StatusCode::kDataLoss, path_));
}

TEST_F(RocksCacheTest, UnusableDirectoryNamesPathAndCause) {
  cache_.reset();
  const std::string file = dir_.path() + "/plain-file";
  std::ofstream(file) << "not a directory";
  CacheOptions o = Options();
  o.path = file + "/db";
  auto r = Cache::Open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(o.path), std::string_view::npos)
      << r.status();
  EXPECT_NE(r.status().message().find("ot a directory"), std::string_view::npos)
      << r.status();

  o.path = dir_.path() + "/absent";
  o.create_if_missing = false;
  EXPECT_THAT(Cache::Open(o), StatusIs(StatusCode::kNotFound, o.path));
}

TEST_F(RocksCacheTest, ForeignRocksDbIsRefused) {
  cache_.reset();
  const std::string other = dir_.path() + "/other";
  {
    rocksdb::Options ro;
    ro.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(ro, other, &db).ok());
    rocksdb::ColumnFamilyHandle* h = nullptr;
    ASSERT_TRUE(
        db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "theirs", &h)
            .ok());
    db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  CacheOptions o = Options();
  o.path = other;
  EXPECT_THAT(Cache::Open(o),
              StatusIs(StatusCode::kFailedPrecondition, "not an llmcache"));
}

// A directory of other files is not filled with a database's; the root of a
// file system (lost+found) is fine.
TEST_F(RocksCacheTest, ANewDatabaseIsNotMadeAmongOtherFiles) {
  cache_.reset();
  const std::string docs = dir_.path() + "/docs";
  fs::create_directories(docs);
  std::ofstream(docs + "/report.txt") << "mine";
  CacheOptions o = Options();
  o.path = docs;
  EXPECT_THAT(Cache::Open(o), StatusIs(StatusCode::kFailedPrecondition,
                                       "is not empty (report.txt)"));
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(docs)) {
    left.push_back(e.path().filename().string());
  }
  EXPECT_THAT(left, ::testing::ElementsAre("report.txt"));
  InspectOptions io;
  io.clock = &clock_;
  io.path = docs;
  EXPECT_THAT(Cache::Inspect(io),
              StatusIs(StatusCode::kNotFound, "no llmcache database"));

  const std::string mount = dir_.path() + "/mount";
  fs::create_directories(mount + "/lost+found");
  o.path = mount;
  auto cache = Cache::Open(o);
  ASSERT_OK(cache);
  ASSERT_OK((*cache)->Insert(TestKey("m/a", 1), "one", {}));
}

// A database whose CURRENT file is gone (RocksDB would make a new database
// and delete the old files as obsolete) is refused, by writers and
// inspections alike, and the message says how to restore it.
TEST_F(RocksCacheTest, ADatabaseThatLostItsCurrentFileIsNotReplaced) {
  for (int i = 0; i < 50; ++i) {
    ASSERT_OK(cache_->Insert(TestKey("m/a", i), "answer", {}));
  }
  ASSERT_OK(cache_->Compact());
  cache_.reset();
  std::string manifest;
  std::ifstream(path_ + "/CURRENT") >> manifest;
  ASSERT_TRUE(manifest.starts_with("MANIFEST-")) << manifest;
  auto tables = [&] {
    int n = 0;
    for (const auto& e : fs::directory_iterator(path_)) {
      n += e.path().extension() == ".sst";
    }
    return n;
  };
  const int before = tables();
  ASSERT_GT(before, 0);
  fs::remove(path_ + "/CURRENT");

  auto opened = Cache::Open(Options());
  EXPECT_THAT(opened, StatusIs(StatusCode::kDataLoss, "no CURRENT file"));
  EXPECT_THAT(opened, StatusIs(StatusCode::kDataLoss, "printf '" + manifest +
                                                          "\\n' > '" + path_ +
                                                          "/CURRENT'"));
  CacheOptions existing = Options();
  existing.create_if_missing = false;
  EXPECT_THAT(Cache::Open(existing),
              StatusIs(StatusCode::kDataLoss, "damaged database"));
  InspectOptions io;
  io.clock = &clock_;
  io.path = path_;
  EXPECT_THAT(Cache::Inspect(io),
              StatusIs(StatusCode::kDataLoss, "damaged database"));
  EXPECT_EQ(tables(), before);

  // What the message says restores it.
  std::ofstream(path_ + "/CURRENT") << manifest << "\n";
  Reopen();
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(Outcome(TestKey("m/a", i)), LookupOutcome::kHit) << i;
  }
}

TEST_F(RocksCacheTest, CorruptEntryIsReportedNotCrashed) {
  ASSERT_OK(cache_->Insert(TestKey("m/a", 1), "good", {}));
  ASSERT_OK(cache_->Insert(TestKey("m/a", 2), "to be damaged", {}));
  // Damage one value behind the cache's back.
  const RequestKey bad = TestKey("m/a", 2);
  auto s = rocks().PutRawForTest(
      "m/a", std::string(reinterpret_cast<const char*>(bad.digest.data()), 32),
      "\x01garbage");
  ASSERT_OK(s);
  CacheOptions o = Options();
  o.memory_tier_bytes = 0;
  Reopen(o);
  EXPECT_THAT(cache_->Lookup(bad), StatusIs(StatusCode::kDataLoss));
  EXPECT_EQ(Outcome(TestKey("m/a", 1)), LookupOutcome::kHit);
  EXPECT_THAT(
      cache_->ForEachEntry(std::nullopt, [](const EntryView&) { return true; }),
      StatusIs(StatusCode::kDataLoss, bad.Hex()));
  std::vector<std::string> corrupt;
  int good = 0;
  ASSERT_OK(cache_->ForEachEntry(
      std::nullopt,
      [&](const EntryView&) {
        ++good;
        return true;
      },
      [&](std::string_view key, const Status&) { corrupt.emplace_back(key); }));
  EXPECT_EQ(good, 1);
  EXPECT_EQ(corrupt, std::vector<std::string>{bad.Hex()});
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->store_errors, 1u);
}

}  // namespace
}  // namespace llmcache
