// The persistent store under a failing disk (testing/fault_fs.h): a full disk
// or EIO on the write-ahead log, on syncs, on memtable flushes, during
// flushes, purges and compactions, and on reads. The process never aborts,
// writes are refused while the store is degraded, lookups go on, the store
// recovers by itself once the fault is gone, and nothing acknowledged is
// lost or corrupted. Also: database files are private to their owner.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "llmcache/cache.h"
#include "rocks_cache.h"
#include "testing/fault_fs.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/test_keys.h"
#include "testing/wait.h"

namespace llmcache {
namespace {

namespace fs = std::filesystem;
using ::llmcache::testing::FaultFileSystem;
using ::llmcache::testing::StatusIs;
using ::llmcache::testing::TestKey;
using ::llmcache::testing::WaitFor;

std::string Body(const std::string& model, uint64_t i) {
  return "{\"id\":\"" + model + "-" + std::to_string(i) +
         "\",\"choices\":[{\"message\":{\"content\":\"" +
         std::string(200 + i % 50, 'x') + "\"}}]}";
}

class StoreFaultTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  CacheOptions Options() {
    CacheOptions o;
    o.path = path_;
    o.maintenance_interval_ms = 0;
    o.memory_tier_bytes = 0;  // lookups read RocksDB
    o.recovery_initial_backoff_ms = 5;
    o.recovery_max_backoff_ms = 50;
    o.file_system = fs_;
    return o;
  }
  void Open() { Open(Options()); }
  void Open(const CacheOptions& o) {
    cache_.reset();
    auto r = Cache::Open(o);
    ASSERT_OK(r);
    cache_ = std::move(r).value();
  }
  RocksCache& rocks() { return static_cast<RocksCache&>(*cache_); }

  Status Insert(const std::string& model, uint64_t i) {
    Status s = cache_->Insert(TestKey(model, i), Body(model, i), {});
    if (s.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      acked_.emplace(model, i);
      acked_count_.fetch_add(1);
    } else {
      std::lock_guard<std::mutex> lock(mu_);
      failed_.emplace(model, i);
    }
    return s;
  }
  void InsertAcked(const std::string& model, uint64_t from, uint64_t to) {
    for (uint64_t i = from; i < to; ++i) ASSERT_OK(Insert(model, i));
  }
  bool Hit(const std::string& model, uint64_t i) {
    auto r = cache_->Lookup(TestKey(model, i));
    return r.ok() && r->hit() && r->entry->body == Body(model, i);
  }

  // The entries GetStats() counts for `model`.
  uint64_t ModelEntries(const std::string& model) {
    Result<CacheStats> stats = cache_->GetStats();
    EXPECT_OK(stats);
    if (!stats.ok()) return 0;
    for (const ModelStats& m : stats->models) {
      if (m.model == model) return m.entries;
    }
    return 0;
  }

  bool WaitDegraded() {
    return WaitFor([&] { return cache_->Health().degraded; });
  }
  // Waits for the store to recover by itself (the recovery thread).
  bool WaitRecovered(uint64_t recoveries = 1) {
    return WaitFor([&] {
      StoreHealth h = cache_->Health();
      return !h.degraded && h.recoveries >= recoveries;
    });
  }

  // Reopens on the plain disk and checks: every acknowledged entry is there
  // and decodes to its body; an entry whose insert failed is absent or whole;
  // nothing is corrupt.
  void VerifyAfterReopen() {
    cache_.reset();
    CacheOptions o = Options();
    o.file_system = nullptr;
    Open(o);
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [model, i] : acked_) {
      ASSERT_TRUE(Hit(model, i)) << model << " " << i << " was acknowledged";
    }
    for (const auto& [model, i] : failed_) {
      if (acked_.count({model, i}) != 0) continue;
      auto r = cache_->Lookup(TestKey(model, i));
      ASSERT_OK(r);
      if (r->hit()) {
        EXPECT_EQ(r->entry->body, Body(model, i));
      }
    }
    size_t corrupt = 0, entries = 0;
    ASSERT_OK(cache_->ForEachEntry(
        std::nullopt,
        [&](const EntryView&) {
          ++entries;
          return true;
        },
        [&](std::string_view, const Status&) { ++corrupt; }));
    EXPECT_EQ(corrupt, 0u);
    EXPECT_GE(entries, acked_.size());
  }

  llmcache::testing::TempDir dir_;
  std::string path_ = dir_.path() + "/db";
  std::shared_ptr<FaultFileSystem> fs_ = std::make_shared<FaultFileSystem>();
  std::unique_ptr<Cache> cache_;
  std::mutex mu_;
  std::set<std::pair<std::string, uint64_t>> acked_, failed_;  // mu_
  std::atomic<uint64_t> acked_count_{0};
};

TEST_F(StoreFaultTest, HealthyStoreReportsHealthy) {
  InsertAcked("m/a", 0, 10);
  StoreHealth h = cache_->Health();
  EXPECT_FALSE(h.degraded);
  EXPECT_EQ(h.degradations, 0u);
  EXPECT_EQ(h.write_errors, 0u);
}

TEST_F(StoreFaultTest, WalNoSpaceDuringConcurrentInsertsRecovers) {
  InsertAcked("m/a", 0, 200);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bad_lookups{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::string model = t % 2 == 0 ? "m/a" : "m/b";
      for (uint64_t i = 1000 + 100000 * t; !stop.load(); ++i) {
        Status s = Insert(model, i);
        if (s.code() == StatusCode::kUnavailable) refused.fetch_add(1);
        if (!Hit("m/a", i % 200)) bad_lookups.fetch_add(1);
      }
    });
  }
  ASSERT_TRUE(WaitFor([&] { return acked_count_.load() > 400; }));
  fs_->FailWrites(FaultFileSystem::NoSpace(), llmcache::testing::kWalFiles);
  ASSERT_TRUE(WaitDegraded());
  // Degraded: writes refused quickly, lookups of stored entries still hit.
  ASSERT_TRUE(WaitFor([&] { return refused.load() > 50; }));
  StoreHealth h = cache_->Health();
  EXPECT_TRUE(h.degraded);
  EXPECT_NE(h.error.find("No space"), std::string::npos) << h.error;
  EXPECT_GT(h.degraded_since_ms, 0);
  EXPECT_GE(h.write_errors, 50u);
  EXPECT_THAT(cache_->Insert(TestKey("m/c", 1), "x", {}),
              StatusIs(StatusCode::kUnavailable, "degraded"));
  EXPECT_GT(fs_->injected(), 0u);

  fs_->Clear();
  ASSERT_TRUE(WaitRecovered()) << cache_->Health().recovery_error;
  const uint64_t acked_before = acked_count_.load();
  ASSERT_TRUE(
      WaitFor([&] { return acked_count_.load() > acked_before + 100; }));
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad_lookups.load(), 0u);
  h = cache_->Health();
  EXPECT_FALSE(h.degraded);
  EXPECT_EQ(h.error, "");
  EXPECT_NE(h.last_error.find("No space"), std::string::npos);
  EXPECT_GT(h.recovered_ms, 0);
  EXPECT_GE(h.degradations, 1u);
  EXPECT_GE(h.recoveries, 1u);
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_GT(stats->store_errors, 0u);
  InsertAcked("m/d", 0, 20);
  for (uint64_t i = 0; i < 20; ++i) EXPECT_TRUE(Hit("m/d", i));
  VerifyAfterReopen();
}

// Every memtable empty when the log fails: Resume() has nothing to flush and
// keeps the failed log, which RocksDB must never write again (it asserts);
// recovery reopens the database instead.
TEST_F(StoreFaultTest, WalNoSpaceWithEmptyMemtablesRecoversByReopening) {
  InsertAcked("m/a", 0, 50);
  ASSERT_OK(rocks().FlushMemtablesForTest());
  fs_->FailWrites(FaultFileSystem::NoSpace(), llmcache::testing::kWalFiles);
  EXPECT_THAT(Insert("m/a", 50), StatusIs(StatusCode::kResourceExhausted));
  EXPECT_TRUE(cache_->Health().degraded);
  fs_->Clear();
  ASSERT_TRUE(WaitRecovered()) << cache_->Health().recovery_error;
  EXPECT_EQ(cache_->Health().reopens, 1u);
  InsertAcked("m/a", 51, 100);
  for (uint64_t i = 0; i < 100; ++i) {
    if (i != 50) {
      EXPECT_TRUE(Hit("m/a", i)) << i;
    }
  }
  VerifyAfterReopen();
}

// A full disk that fills up as it goes: every file kind, short writes.
TEST_F(StoreFaultTest, DiskFillingUpRecoversWhenSpaceIsFreed) {
  InsertAcked("m/a", 0, 100);
  fs_->SetSpaceLimit(256 << 10);
  uint64_t i = 100;
  for (; i < 100000 && !cache_->Health().degraded; ++i) (void)Insert("m/a", i);
  ASSERT_TRUE(cache_->Health().degraded);
  EXPECT_THAT(Insert("m/a", i), StatusIs(StatusCode::kUnavailable));
  EXPECT_TRUE(Hit("m/a", 7));
  fs_->Clear();
  ASSERT_TRUE(WaitRecovered()) << cache_->Health().recovery_error;
  InsertAcked("m/a", i + 1, i + 50);
  VerifyAfterReopen();
}

// A database opened on a full disk (a service restarted after the disk
// filled: the open's new MANIFEST cannot be written) opens degraded: lookups
// go on from a read-only instance, writes are refused, and it becomes
// writable by itself once there is room, as one running when the disk
// filled. A new database on a full disk is still an error.
TEST_F(StoreFaultTest, OpeningOnAFullDiskServesLookupsAndRecovers) {
  InsertAcked("m/a", 0, 100);
  cache_.reset();
  fs_->FailWrites(FaultFileSystem::NoSpace());
  // Recovery attempts only when the test makes them (and watches them).
  CacheOptions o = Options();
  o.recovery_initial_backoff_ms = o.recovery_max_backoff_ms = 600'000;
  Open(o);
  StoreHealth h = cache_->Health();
  ASSERT_TRUE(h.degraded);
  EXPECT_NE(h.error.find("opening the database for writing"), std::string::npos)
      << h.error;
  EXPECT_NE(h.error.find("No space left"), std::string::npos) << h.error;
  EXPECT_TRUE(Hit("m/a", 7));
  EXPECT_TRUE(Hit("m/a", 99));
  EXPECT_EQ(ModelEntries("m/a"), 100u);
  EXPECT_THAT(Insert("m/a", 100), StatusIs(StatusCode::kUnavailable));
  // The database stays this process's: RocksDB's read-only instance takes
  // no lock, the store holds it (a second owner would open it).
  CacheOptions second = Options();
  second.file_system = nullptr;
  EXPECT_THAT(Cache::Open(second),
              StatusIs(StatusCode::kFailedPrecondition, "locked"));
  // Still full: recovery attempts fail and say why, lookups go on, and the
  // lock stays held throughout each: a second open tried whenever the
  // attempt reads CURRENT or a MANIFEST (in its read-write open, and in the
  // read-only one after that failed) finds it locked. It once found the
  // lock free while the read-only instance opened, and owned the database.
  std::vector<std::string> let_in;
  int tries = 0;
  fs_->OnSequentialOpen([&](const std::string& file) {
    ++tries;
    Result<std::unique_ptr<Cache>> other = Cache::Open(second);
    if (other.ok() ||
        other.status().message().find("locked") == std::string_view::npos) {
      let_in.push_back(
          file + ": " +
          (other.ok() ? std::string("opened") : other.status().ToString()));
    }
  });
  EXPECT_FALSE(rocks().RecoverNowForTest());
  EXPECT_FALSE(rocks().RecoverNowForTest());
  fs_->OnSequentialOpen(nullptr);
  EXPECT_GE(tries, 4);  // CURRENT and a MANIFEST, twice an attempt
  EXPECT_THAT(let_in, ::testing::IsEmpty());
  h = cache_->Health();
  EXPECT_TRUE(h.degraded);
  EXPECT_EQ(h.recovery_attempts, 2u);
  EXPECT_NE(h.recovery_error.find("No space left"), std::string::npos)
      << h.recovery_error;
  EXPECT_TRUE(Hit("m/a", 42));
  EXPECT_THAT(Cache::Open(second),
              StatusIs(StatusCode::kFailedPrecondition, "locked"));
  fs_->Clear();
  ASSERT_TRUE(rocks().RecoverNowForTest()) << cache_->Health().recovery_error;
  EXPECT_FALSE(cache_->Health().degraded);
  EXPECT_GE(cache_->Health().reopens, 1u);
  InsertAcked("m/a", 101, 150);
  EXPECT_TRUE(Hit("m/a", 120));
  VerifyAfterReopen();

  // No database yet: nothing to serve, the error as before.
  cache_.reset();
  fs_->FailWrites(FaultFileSystem::NoSpace());
  CacheOptions fresh = Options();
  fresh.path = dir_.path() + "/new";
  EXPECT_THAT(Cache::Open(fresh), StatusIs(StatusCode::kResourceExhausted));
  fs_->Clear();
}

// A bulk load writes the table files of a batch's families side by side; a
// disk that fills up under them fails the load with an error (no crash),
// stores none of that batch, leaves no load files behind, and a load after
// the space is freed stores everything.
TEST_F(StoreFaultTest, BulkLoadIntoAFullDiskFailsWholeAndLoadsAfterwards) {
  const std::vector<std::string> models = {"m/a", "m/b", "m/c", "m/d"};
  auto load = [&](uint64_t from, uint64_t to) -> Status {
    auto loader = cache_->NewBulkLoader(BulkLoadOptions{});
    if (!loader.ok()) return loader.status();
    for (uint64_t i = from; i < to; ++i) {
      const std::string& m = models[i % models.size()];
      LLMCACHE_RETURN_IF_ERROR((*loader)->Add(TestKey(m, i), Body(m, i), {}));
    }
    return (*loader)->Finish().status();
  };
  ASSERT_OK(load(0, 400));
  fs_->SetSpaceLimit(64 << 10, llmcache::testing::kTableFiles);
  EXPECT_FALSE(load(400, 2400).ok());
  EXPECT_GT(fs_->injected_writes(), 0u);
  for (const auto& e : std::filesystem::directory_iterator(path_)) {
    EXPECT_FALSE(e.path().filename().string().starts_with("bulk-load."))
        << e.path();
  }
  fs_->Clear();
  if (cache_->Health().degraded) {
    ASSERT_TRUE(WaitRecovered()) << cache_->Health().recovery_error;
  }
  for (uint64_t i = 0; i < 400; ++i) {
    ASSERT_TRUE(Hit(models[i % models.size()], i)) << i;
  }
  for (uint64_t i = 400; i < 2400; i += 97) {
    auto r = cache_->Lookup(TestKey(models[i % models.size()], i));
    ASSERT_OK(r);
    EXPECT_FALSE(r->hit()) << i << " was in the failed batch";
  }
  auto st = cache_->GetStats();
  ASSERT_OK(st);
  EXPECT_EQ(st->entries, 400u);
  ASSERT_OK(load(400, 2400));
  for (uint64_t i = 0; i < 2400; i += 7) {
    ASSERT_TRUE(Hit(models[i % models.size()], i)) << i;
  }
  st = cache_->GetStats();
  ASSERT_OK(st);
  EXPECT_EQ(st->entries, 2400u);
}

// EIO on the log's fsync is a fatal error for RocksDB (Resume() refuses it):
// recovery reopens the database. While the MANIFEST cannot be written
// either, reopening fails and a read-only instance serves lookups.
TEST_F(StoreFaultTest, WalSyncEioRecoversByReopening) {
  CacheOptions o = Options();
  o.sync_writes = true;
  Open(o);
  InsertAcked("m/a", 0, 30);
  fs_->FailWrites(FaultFileSystem::IoError(),
                  llmcache::testing::kManifestFiles);
  fs_->FailSyncs(FaultFileSystem::IoError(), llmcache::testing::kWalFiles);
  EXPECT_FALSE(Insert("m/a", 30).ok());
  ASSERT_TRUE(WaitDegraded());
  EXPECT_THAT(Insert("m/a", 31), StatusIs(StatusCode::kUnavailable));
  EXPECT_TRUE(Hit("m/a", 3));
  // Still failing: recovery keeps trying and reports why.
  ASSERT_TRUE(WaitFor([&] { return cache_->Health().recovery_attempts >= 3; }));
  StoreHealth h = cache_->Health();
  EXPECT_TRUE(h.degraded);
  EXPECT_NE(h.recovery_error.find("reopening"), std::string::npos)
      << h.recovery_error;
  EXPECT_TRUE(Hit("m/a", 4));  // the read-only fallback serves lookups
  EXPECT_THAT(Insert("m/a", 32), StatusIs(StatusCode::kUnavailable));
  fs_->Clear();
  ASSERT_TRUE(WaitRecovered()) << cache_->Health().recovery_error;
  EXPECT_GE(cache_->Health().reopens, 1u);
  InsertAcked("m/a", 33, 60);
  for (uint64_t i = 0; i < 60; i += 5) EXPECT_TRUE(Hit("m/a", i)) << i;
  VerifyAfterReopen();
}

// EIO on the log's fsync alone: reopening works at once, the next synced
// write fails again, and so on; every acknowledged entry survives.
TEST_F(StoreFaultTest, RepeatedWalSyncEioNeverLosesAcknowledgedEntries) {
  CacheOptions o = Options();
  o.sync_writes = true;
  Open(o);
  InsertAcked("m/a", 0, 30);
  fs_->FailSyncs(FaultFileSystem::IoError(), llmcache::testing::kWalFiles);
  for (uint64_t i = 30; i < 40; ++i) {
    EXPECT_FALSE(Insert("m/a", i).ok());
    ASSERT_TRUE(WaitRecovered(i - 29)) << cache_->Health().recovery_error;
  }
  fs_->Clear();
  InsertAcked("m/a", 40, 60);
  VerifyAfterReopen();
}

// EIO writing SST files: the memtable flush fails (a background error).
TEST_F(StoreFaultTest, FlushEioDegradesAndRecovers) {
  InsertAcked("m/a", 0, 100);
  fs_->FailWrites(FaultFileSystem::IoError(), llmcache::testing::kTableFiles);
  EXPECT_FALSE(cache_->Compact().ok());
  ASSERT_TRUE(WaitDegraded());
  EXPECT_THAT(Insert("m/a", 100), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(cache_->Compact(), StatusIs(StatusCode::kUnavailable));
  for (uint64_t i = 0; i < 100; i += 7) EXPECT_TRUE(Hit("m/a", i));
  fs_->Clear();
  ASSERT_TRUE(WaitRecovered()) << cache_->Health().recovery_error;
  ASSERT_OK(cache_->Compact());
  InsertAcked("m/a", 101, 150);
  VerifyAfterReopen();
}

// A flush whose output fails to be written drops nothing: the expired
// entries its filter passed over are still stored, and are counted out once,
// by the compaction that does drop them (not once per attempt).
TEST_F(StoreFaultTest, FailedFlushCountsNothingOut) {
  FakeClock clock;
  CacheOptions o = Options();
  o.clock = &clock;
  // Memtables of 1 MiB: the model's fills first (an entry adds ~3x what its
  // counters add to the metadata family's): the flush below is the model's.
  o.write_buffer_bytes = 4 << 20;
  Open(o);
  auto entries = [&] { return ModelEntries("m/a"); };
  InsertOptions expiring;
  expiring.ttl_ms = 1000;
  for (uint64_t i = 1'000'000; i < 1'000'020; ++i) {
    ASSERT_OK(cache_->Insert(TestKey("m/a", i), Body("m/a", i), expiring));
  }
  clock.Advance(2000);  // the 20 have expired; the memtable still holds them
  // Inserts fill the memtable until its flush, which filters out the 20 and
  // then fails to sync its output.
  fs_->FailSyncs(FaultFileSystem::IoError(), llmcache::testing::kTableFiles);
  for (uint64_t i = 0; i < 100000 && !cache_->Health().degraded; ++i) {
    (void)Insert("m/a", i);
  }
  ASSERT_TRUE(WaitDegraded());
  EXPECT_GT(fs_->injected_syncs(), 0u);
  const uint64_t live = acked_count_.load();
  ASSERT_GT(live, 1000u);
  EXPECT_EQ(entries(), live + 20) << "the failed flush dropped nothing";
  fs_->Clear();
  ASSERT_TRUE(WaitRecovered()) << cache_->Health().recovery_error;
  EXPECT_EQ(entries(), live + 20);
  ASSERT_OK(cache_->Compact());  // drops the 20, counted out once
  EXPECT_EQ(entries(), live);
  for (uint64_t i = 0; i < live; i += 97) EXPECT_TRUE(Hit("m/a", i));
  Open(o);  // what was counted is what was persisted
  EXPECT_EQ(entries(), live);
}

// The same for a compaction whose output fails to be written.
TEST_F(StoreFaultTest, FailedCompactionCountsNothingOut) {
  FakeClock clock;
  CacheOptions o = Options();
  o.clock = &clock;
  Open(o);
  auto entries = [&] { return ModelEntries("m/a"); };
  InsertAcked("m/a", 0, 30);
  InsertOptions expiring;
  expiring.ttl_ms = 1000;
  for (uint64_t i = 1'000'000; i < 1'000'020; ++i) {
    ASSERT_OK(cache_->Insert(TestKey("m/a", i), Body("m/a", i), expiring));
  }
  ASSERT_OK(cache_->Compact());  // all 50 in table files, none expired yet
  ASSERT_EQ(entries(), 50u);

  clock.Advance(2000);
  // Compact() compacts the per-model time index and the metadata family,
  // then the model's: the first two outputs sync, the model's fails to (its
  // filter has seen every entry by then).
  fs_->FailSyncs(FaultFileSystem::IoError(), llmcache::testing::kTableFiles,
                 /*after=*/2);
  EXPECT_FALSE(cache_->Compact().ok());
  ASSERT_TRUE(WaitDegraded());
  EXPECT_EQ(fs_->injected_syncs(), 1u);
  EXPECT_EQ(entries(), 50u) << "the failed compaction dropped nothing";
  fs_->Clear();
  ASSERT_TRUE(WaitRecovered()) << cache_->Health().recovery_error;
  EXPECT_EQ(entries(), 50u);
  ASSERT_OK(cache_->Compact());  // drops the 20, counted out once
  EXPECT_EQ(entries(), 30u);
  for (uint64_t i = 0; i < 30; i += 7) EXPECT_TRUE(Hit("m/a", i));
  Open(o);  // what was counted is what was persisted
  EXPECT_EQ(entries(), 30u);
}

// ENOSPC in a background flush: RocksDB would start its own recovery (its
// SstFileManager polling for space); it is vetoed, ours recovers once.
TEST_F(StoreFaultTest, BackgroundFlushNoSpaceRecoversOnce) {
  CacheOptions o = Options();
  o.write_buffer_bytes = 1 << 20;  // background flushes every ~1 MiB
  Open(o);
  fs_->FailWrites(FaultFileSystem::NoSpace(), llmcache::testing::kTableFiles);
  uint64_t i = 0;
  for (; i < 100000 && !cache_->Health().degraded; ++i) (void)Insert("m/a", i);
  ASSERT_TRUE(cache_->Health().degraded);
  EXPECT_NE(cache_->Health().error.find("flushing a memtable"),
            std::string::npos)
      << cache_->Health().error;
  // Still full: attempts fail, nothing recovers behind our back.
  ASSERT_TRUE(WaitFor([&] { return cache_->Health().recovery_attempts >= 3; }));
  StoreHealth h = cache_->Health();
  EXPECT_TRUE(h.degraded);
  EXPECT_EQ(h.recoveries, 0u);
  EXPECT_EQ(h.recovery_error.find("Busy"), std::string::npos)
      << h.recovery_error;
  fs_->Clear();
  ASSERT_TRUE(WaitRecovered()) << cache_->Health().recovery_error;
  h = cache_->Health();
  EXPECT_EQ(h.degradations, 1u);
  EXPECT_EQ(h.recoveries, 1u);
  InsertAcked("m/a", i + 1, i + 100);
  VerifyAfterReopen();
}

TEST_F(StoreFaultTest, FaultDuringFlushPurgeAndCompactionRecovers) {
  InsertAcked("m/a", 0, 50);
  InsertAcked("m/b", 0, 50);
  InsertAcked("m/c", 0, 50);

  // FlushModel: dropping the column family writes the MANIFEST.
  fs_->FailWrites(FaultFileSystem::NoSpace(),
                  llmcache::testing::kManifestFiles);
  EXPECT_FALSE(cache_->FlushModel("m/a").ok());
  ASSERT_TRUE(WaitDegraded());
  EXPECT_THAT(cache_->FlushModel("m/a"), StatusIs(StatusCode::kUnavailable));
  fs_->Clear();
  ASSERT_TRUE(WaitRecovered(1)) << cache_->Health().recovery_error;
  auto flushed = cache_->FlushModel("m/a");
  ASSERT_OK(flushed);
  EXPECT_EQ(*flushed, 50u);
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::erase_if(acked_, [](const auto& e) { return e.first == "m/a"; });
  }
  EXPECT_FALSE(Hit("m/a", 1));

  // PurgeKey: the deletion batch goes through the log.
  fs_->FailWrites(FaultFileSystem::NoSpace(), llmcache::testing::kWalFiles);
  EXPECT_FALSE(cache_->PurgeKey(TestKey("m/b", 1).digest).ok());
  ASSERT_TRUE(WaitDegraded());
  EXPECT_THAT(cache_->PurgeOlderThan(0), StatusIs(StatusCode::kUnavailable));
  fs_->Clear();
  ASSERT_TRUE(WaitRecovered(2)) << cache_->Health().recovery_error;
  auto purged = cache_->PurgeKey(TestKey("m/b", 1).digest);
  ASSERT_OK(purged);
  EXPECT_TRUE(*purged);
  {
    std::lock_guard<std::mutex> lock(mu_);
    acked_.erase({"m/b", 1});
  }

  // Compaction writing SST files.
  fs_->FailWrites(FaultFileSystem::IoError(), llmcache::testing::kTableFiles);
  EXPECT_FALSE(cache_->Compact().ok());
  ASSERT_TRUE(WaitDegraded());
  fs_->Clear();
  ASSERT_TRUE(WaitRecovered(3)) << cache_->Health().recovery_error;
  ASSERT_OK(cache_->Compact());

  // FlushAll failing half way: families dropped and not recreated until
  // the reopen that recovery does.
  InsertAcked("m/d", 0, 20);
  fs_->FailWrites(FaultFileSystem::NoSpace(),
                  llmcache::testing::kManifestFiles);
  EXPECT_FALSE(cache_->FlushAll().ok());
  fs_->Clear();
  ASSERT_TRUE(WaitRecovered(4)) << cache_->Health().recovery_error;
  ASSERT_OK(cache_->FlushAll());
  {
    std::lock_guard<std::mutex> lock(mu_);
    acked_.clear();
  }
  InsertAcked("m/e", 0, 20);
  InsertAcked("m/b", 100, 120);
  VerifyAfterReopen();
}

// FlushModel drops the model's column family (a MANIFEST write), then deletes
// its mapping and entry counters in one batch (a write-ahead-log write). Here
// the batch fails after the drop, and the process dies before any recovery:
// what a kill between the two leaves. The next open finishes the flush.
TEST_F(StoreFaultTest, FlushInterruptedAfterDropIsFinishedAtOpen) {
  InsertAcked("m/a", 0, 30);
  InsertAcked("m/b", 0, 10);
  fs_->FailWrites(FaultFileSystem::IoError(), llmcache::testing::kWalFiles);
  EXPECT_FALSE(cache_->FlushModel("m/a").ok());
  ASSERT_TRUE(WaitDegraded());
  // m/a's family was dropped. (0 when the background recovery, which keeps
  // failing on the faulty log, is between closing and reopening the
  // database: seen under ThreadSanitizer on a loaded machine.)
  EXPECT_LE(rocks().ModelFamilyCountForTest(), 1u);
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::erase_if(acked_, [](const auto& e) { return e.first == "m/a"; });
  }
  EXPECT_FALSE(Hit("m/a", 1));
  VerifyAfterReopen();  // on the plain disk, without writing before
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->entries, 10u);
  for (const ModelStats& m : stats->models) {
    EXPECT_EQ(m.entries, m.model == "m/b" ? 10u : 0u) << m.model;
  }
  EXPECT_FALSE(Hit("m/a", 1));
  // The model starts afresh, in a family of its own again.
  InsertAcked("m/a", 100, 105);
  EXPECT_EQ(rocks().ModelFamilyCountForTest(), 2u);
  stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->entries, 15u);
  // And stays right across another reopen.
  VerifyAfterReopen();
  stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->entries, 15u);
}

// The same failure, then the disk heals: the recovery (here DB::Resume(),
// not a reopen) finishes the flush before the store takes writes again.
TEST_F(StoreFaultTest, FlushInterruptedAfterDropIsFinishedByRecovery) {
  InsertAcked("m/a", 0, 30);
  InsertAcked("m/b", 0, 10);
  fs_->FailWrites(FaultFileSystem::NoSpace(), llmcache::testing::kWalFiles);
  EXPECT_FALSE(cache_->FlushModel("m/a").ok());
  ASSERT_TRUE(WaitDegraded());
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::erase_if(acked_, [](const auto& e) { return e.first == "m/a"; });
  }
  fs_->Clear();
  ASSERT_TRUE(WaitRecovered()) << cache_->Health().recovery_error;
  EXPECT_EQ(cache_->Health().reopens, 0u);
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->entries, 10u);
  for (const ModelStats& m : stats->models) {
    EXPECT_EQ(m.entries, m.model == "m/b" ? 10u : 0u) << m.model;
  }
  EXPECT_FALSE(Hit("m/a", 1));
  InsertAcked("m/a", 100, 105);
  VerifyAfterReopen();
  stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->entries, 15u);
}

// Reads failing with EIO: the lookup reports the error (the caller fails
// open to the upstream); reads are not writes, so the store is not degraded.
TEST_F(StoreFaultTest, ReadEioFailsLookupsWithoutDegrading) {
  InsertAcked("m/a", 0, 50);
  ASSERT_OK(rocks().FlushMemtablesForTest());
  Open();  // a cold block cache: lookups read the SST files
  fs_->FailReads(FaultFileSystem::IoError(), llmcache::testing::kTableFiles);
  auto r = cache_->Lookup(TestKey("m/a", 3));
  EXPECT_FALSE(r.ok());
  EXPECT_GT(fs_->injected_reads(), 0u);
  EXPECT_FALSE(cache_->Health().degraded);
  fs_->Clear();
  EXPECT_TRUE(Hit("m/a", 3));
  InsertAcked("m/a", 50, 60);
  VerifyAfterReopen();
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 07777;
  return st.st_mode & 07777;
}

void ExpectPrivate(const std::string& dir) {
  EXPECT_EQ(ModeOf(dir), 0700u) << dir;
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    ++files;
    EXPECT_EQ(ModeOf(e.path().string()), 0600u) << e.path();
  }
  EXPECT_GT(files, 3u);
}

TEST(StorePermissionsTest, DatabaseDirectoryAndFilesArePrivate) {
  const mode_t old = ::umask(022);
  llmcache::testing::TempDir dir;
  const std::string path = dir.Sub("parent/db");
  {
    CacheOptions o;
    o.path = path;
    o.maintenance_interval_ms = 0;
    auto cache = Cache::Open(o);
    ASSERT_OK(cache);
    ASSERT_OK((*cache)->Insert(TestKey("m/a", 1), "body", {}));
    ASSERT_OK((*cache)->Compact());  // SST files, a new MANIFEST
    ExpectPrivate(path);
    // The parent is not the database's: default mode.
    EXPECT_EQ(ModeOf(dir.Sub("parent")), 0755u);

    // An inspection view's own directory and files.
    InspectOptions io;
    io.path = path;
    io.secondary_path = dir.Sub("inspect");
    auto view = Cache::Inspect(io);
    ASSERT_OK(view);
    EXPECT_EQ(ModeOf(dir.Sub("inspect")), 0700u);
    for (const auto& e : fs::directory_iterator(dir.Sub("inspect"))) {
      if (e.is_regular_file()) {
        EXPECT_EQ(ModeOf(e.path().string()), 0600u) << e.path();
      }
    }
  }
  ::umask(old);
}

TEST(StorePermissionsTest, ExistingDatabaseIsTightenedOnOpen) {
  const mode_t old = ::umask(022);
  llmcache::testing::TempDir dir;
  const std::string path = dir.Sub("db");
  {
    CacheOptions o;
    o.path = path;
    o.maintenance_interval_ms = 0;
    auto cache = Cache::Open(o);
    ASSERT_OK(cache);
    ASSERT_OK((*cache)->Insert(TestKey("m/a", 1), "body", {}));
  }
  // As an older version left it: 755 and 644.
  ASSERT_EQ(::chmod(path.c_str(), 0755), 0);
  for (const auto& e : fs::directory_iterator(path)) {
    if (e.is_regular_file()) {
      ASSERT_EQ(::chmod(e.path().c_str(), 0644), 0);
    }
  }
  CacheOptions o;
  o.path = path;
  o.maintenance_interval_ms = 0;
  auto cache = Cache::Open(o);
  ASSERT_OK(cache);
  ExpectPrivate(path);
  auto r = (*cache)->Lookup(TestKey("m/a", 1));
  ASSERT_OK(r);
  EXPECT_TRUE(r->hit());
  ::umask(old);
}

}  // namespace
}  // namespace llmcache
