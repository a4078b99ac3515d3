// RocksCache's flushes next to the database's background work: a flush
// removes what it covers at once and returns without waiting for a
// compaction that is running (rocks_purge.cc).

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <system_error>
#include <thread>

#include "llmcache/cache.h"
#include "llmcache/clock.h"
#include "rocks_cache.h"
#include "testing/compaction_gate.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/test_keys.h"

namespace llmcache {
namespace {

using ::llmcache::testing::CompactionGate;
using ::llmcache::testing::OpenOnExit;
using ::llmcache::testing::TestKey;

class RocksPurgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CacheOptions o;
    o.path = dir_.path() + "/db";
    o.clock = &clock_;
    o.maintenance_interval_ms = 0;
    o.file_system = gate_;
    // m/a and m/b have families of their own, m/c's entries are in the
    // overflow family: a flush of m/b must not compact (and wait for) a
    // range of that family it has nothing in.
    o.max_model_column_families = 2;
    auto r = Cache::Open(o);
    ASSERT_OK(r);
    cache_ = std::move(r).value();
    // Two table files per index and model family, so that compacting them
    // writes a new file.
    for (int round = 0; round < 2; ++round) {
      for (int i = 0; i < 200; ++i) {
        for (const char* model : {"m/a", "m/b", "m/c"}) {
          ASSERT_OK(cache_->Insert(TestKey(model, round * 1000 + i), "body",
                                   InsertOptions{}));
        }
      }
      ASSERT_OK(static_cast<RocksCache&>(*cache_).FlushMemtablesForTest());
    }
  }

  // Starts a full compaction (`llmcache compact`) and waits until its first
  // output file is held at the gate.
  std::future<Status> StartHeldCompaction() {
    gate_->Close();
    auto compaction =
        std::async(std::launch::async, [this] { return cache_->Compact(); });
    EXPECT_TRUE(gate_->WaitForHeld(std::chrono::seconds(60)))
        << "no compaction reached the gate";
    return compaction;
  }

  LookupOutcome Outcome(const RequestKey& key) {
    auto r = cache_->Lookup(key);
    EXPECT_OK(r);
    return r.ok() ? r->outcome : LookupOutcome::kMiss;
  }

  llmcache::testing::TempDir dir_;
  FakeClock clock_;
  std::shared_ptr<CompactionGate> gate_ = std::make_shared<CompactionGate>();
  std::unique_ptr<Cache> cache_;
};

// A flush right after a bulk import waited for the import's files to be
// compressed (1.3-5.7 s at 1M entries): its space-reclaiming compaction was
// a manual one, queued behind the running compaction.
TEST_F(RocksPurgeTest, AFlushDoesNotWaitForARunningCompaction) {
  std::future<Status> compaction = StartHeldCompaction();
  auto flush = std::async(std::launch::async,
                          [this] { return cache_->FlushModel("m/b"); });
  OpenOnExit open_on_exit{gate_.get()};  // before the futures wait
  ASSERT_EQ(flush.wait_for(std::chrono::seconds(60)), std::future_status::ready)
      << "the flush waited for the compaction held at the gate";
  ASSERT_OK(flush.get());
  EXPECT_EQ(compaction.wait_for(std::chrono::seconds(0)),
            std::future_status::timeout)
      << "the compaction was not held";
  EXPECT_EQ(Outcome(TestKey("m/b", 7)), LookupOutcome::kMiss);
  EXPECT_EQ(Outcome(TestKey("m/a", 7)), LookupOutcome::kHit);
  EXPECT_EQ(Outcome(TestKey("m/c", 7)), LookupOutcome::kHit);

  gate_->Open();
  EXPECT_OK(compaction.get());
  EXPECT_EQ(Outcome(TestKey("m/b", 1007)), LookupOutcome::kMiss);
  EXPECT_EQ(Outcome(TestKey("m/a", 1007)), LookupOutcome::kHit);
}

TEST_F(RocksPurgeTest, AFlushOfEverythingDoesNotWaitForARunningCompaction) {
  std::future<Status> compaction = StartHeldCompaction();
  auto flush =
      std::async(std::launch::async, [this] { return cache_->FlushAll(); });
  OpenOnExit open_on_exit{gate_.get()};  // before the futures wait
  ASSERT_EQ(flush.wait_for(std::chrono::seconds(60)), std::future_status::ready)
      << "the flush waited for the compaction held at the gate";
  ASSERT_OK(flush.get());
  EXPECT_EQ(Outcome(TestKey("m/a", 7)), LookupOutcome::kMiss);

  gate_->Open();
  EXPECT_OK(compaction.get());
  EXPECT_EQ(Outcome(TestKey("m/a", 1007)), LookupOutcome::kMiss);
  EXPECT_EQ(Outcome(TestKey("m/b", 1007)), LookupOutcome::kMiss);
  // The cache goes on storing after both.
  ASSERT_OK(cache_->Insert(TestKey("m/a", 7), "again", InsertOptions{}));
  EXPECT_EQ(Outcome(TestKey("m/a", 7)), LookupOutcome::kHit);
}

// `llmcache compact` or `import --compact` stopped by Ctrl-C: the compaction
// stops where RocksDB next reads the flag, the families after it are not
// compacted, Compact says so (kCancelled), and nothing is lost. Before, the
// first signal waited for the whole compaction (~10 s after 1M imported).
TEST_F(RocksPurgeTest, ACompactionStopsWhenCancelled) {
  std::atomic<bool> cancel{true};
  CompactOptions co;
  co.cancel = &cancel;
  EXPECT_EQ(cache_->Compact(co).code(), StatusCode::kCancelled);

  cancel = false;
  gate_->Close();
  auto compaction =
      std::async(std::launch::async, [&] { return cache_->Compact(co); });
  OpenOnExit open_on_exit{gate_.get()};
  ASSERT_TRUE(gate_->WaitForHeld(std::chrono::seconds(60)));
  const int deleted = gate_->deleted_tables();
  cancel = true;
  gate_->Open();
  ASSERT_EQ(compaction.wait_for(std::chrono::seconds(60)),
            std::future_status::ready);
  const Status s = compaction.get();
  EXPECT_EQ(s.code(), StatusCode::kCancelled) << s;
  // The held job installed nothing: its two input files are still there (a
  // stopped job deletes its own output file, if it made one).
  EXPECT_LE(gate_->deleted_tables(), deleted + 1);
  for (const char* model : {"m/a", "m/b", "m/c"}) {
    EXPECT_EQ(Outcome(TestKey(model, 7)), LookupOutcome::kHit) << model;
    EXPECT_EQ(Outcome(TestKey(model, 1007)), LookupOutcome::kHit) << model;
  }
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->entries, 1200u);
  // Run again, it finishes.
  ASSERT_OK(cache_->Compact());
  EXPECT_EQ(Outcome(TestKey("m/c", 199)), LookupOutcome::kHit);
}

// Bytes of the database's table files (a file deleted meanwhile counts 0).
uint64_t TableBytes(const std::string& path) {
  uint64_t bytes = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(path, ec)) {
    if (e.path().extension() != ".sst") continue;
    std::error_code size_ec;
    const uintmax_t size = e.file_size(size_ec);
    if (!size_ec) bytes += size;
  }
  return bytes;
}

// A model beyond the column-family bound has its entries in the shared
// overflow family: its flush compacts their range before it returns, so
// their space is back at once (only then does a flush wait for the
// compaction thread).
TEST(RocksPurgeOverflowTest, AFlushOfAnOverflowModelGivesItsSpaceBack) {
  llmcache::testing::TempDir dir;
  FakeClock clock;
  CacheOptions o;
  o.path = dir.path() + "/db";
  o.clock = &clock;
  o.maintenance_interval_ms = 0;
  o.max_model_column_families = 1;
  auto opened = Cache::Open(o);
  ASSERT_OK(opened);
  std::unique_ptr<Cache> cache = std::move(opened).value();
  std::mt19937_64 rng(7);
  auto random_body = [&](size_t n) {
    std::string body(n, '\0');
    for (char& c : body) c = static_cast<char>(rng());
    return body;
  };
  ASSERT_OK(cache->Insert(TestKey("o/own", 1), "x", InsertOptions{}));
  for (int i = 0; i < 300; ++i) {  // ~2.4 MB that does not compress
    ASSERT_OK(
        cache->Insert(TestKey("o/big", i), random_body(8192), InsertOptions{}));
    ASSERT_OK(
        cache->Insert(TestKey("o/small", i), random_body(64), InsertOptions{}));
  }
  ASSERT_OK(static_cast<RocksCache&>(*cache).FlushMemtablesForTest());
  const uint64_t before = TableBytes(o.path);
  ASSERT_GT(before, 2'400'000u);

  auto n = cache->FlushModel("o/big");
  ASSERT_OK(n);
  EXPECT_EQ(*n, 300u);
  // The compaction's input files are deleted on its thread, right after it
  // reported the manual compaction done.
  uint64_t after = TableBytes(o.path);
  for (int i = 0; i < 100 && after >= before - 2'300'000; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    after = TableBytes(o.path);
  }
  EXPECT_LT(after, before - 2'300'000) << before << " -> " << after;
  auto r = cache->Lookup(TestKey("o/small", 5));
  ASSERT_OK(r);
  EXPECT_EQ(r->outcome, LookupOutcome::kHit);
  r = cache->Lookup(TestKey("o/big", 5));
  ASSERT_OK(r);
  EXPECT_EQ(r->outcome, LookupOutcome::kMiss);
}

}  // namespace
}  // namespace llmcache
