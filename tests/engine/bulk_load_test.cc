// Cache::NewBulkLoader: a bulk load leaves the state that inserting the same
// entries one by one leaves (values, statistics, column families, the time
// index, expiry), across batches, reloads, replacements and reopening.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/sst_file_reader.h>
#include <rocksdb/sst_file_writer.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "format.h"
#include "llmcache/cache.h"
#include "llmcache/clock.h"
#include "rocks_cache.h"
#include "rocks_ingest_time.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/test_keys.h"

namespace llmcache {
namespace {

namespace fs = std::filesystem;
using ::llmcache::testing::StatusIs;
using ::llmcache::testing::TestKey;
using ::testing::Contains;
using ::testing::Not;

constexpr int kEntries = 3000;  // many batches of the 64 KiB buffer below
constexpr int64_t kHour = 3'600'000;

// Three models get a family of their own (the bound), two more share the
// overflow family; one is used with a variant.
const std::vector<std::string> kModels = {"m/a", "m/b", "m/c", "o/d",
                                          "o/e:beta"};

// One entry to store, with the strings its InsertOptions points at.
struct Spec {
  RequestKey key;
  std::string body;
  std::string ns;
  std::string resolved;
  InsertOptions options;
};

// Entry `i` of a load; `version` changes the body and creation time (a
// newer export of the same key).
Spec MakeSpec(int i, int64_t now_ms, int version = 0) {
  Spec s;
  s.key = TestKey(kModels[static_cast<size_t>(i) % kModels.size()],
                  static_cast<uint64_t>(i));
  s.body = "{\"n\":" + std::to_string(i) + ",\"v\":" + std::to_string(version) +
           ",\"pad\":\"" + std::string(static_cast<size_t>(i % 300), 'x') +
           "\"}";
  s.ns = i % 4 == 0 ? "team-a" : "";
  s.resolved = s.key.base_model + "-2025-" + std::to_string(i % 3);
  s.options.usage.prompt_tokens = static_cast<uint64_t>(i);
  s.options.usage.completion_tokens = 7;
  s.options.usage.cost_nanousd = i * 1000;
  s.options.flags = kEntryFlagImported;
  switch (i % 3) {
    case 0:  // explicit times, as an import gives them
      s.options.created_ms = now_ms - (i % 48) * kHour - version;
      s.options.expires_ms = s.options.created_ms + 100 * kHour;
      break;
    case 1:  // never expires
      s.options.created_ms = now_ms - (i % 24) * kHour - version;
      s.options.ttl_ms = 0;
      break;
    default:  // created now, default TTL
      break;
  }
  return s;
}

InsertOptions InsertOptionsOf(const Spec& s) {
  InsertOptions o = s.options;
  o.ns = s.ns;
  o.resolved_model = s.resolved;
  return o;
}

class BulkLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bulk_ = Open(dir_.path() + "/bulk");
    ref_ = Open(dir_.path() + "/ref");
  }

  CacheOptions Options(const std::string& path) {
    CacheOptions o;
    o.path = path;
    o.clock = &clock_;
    o.default_ttl_ms = 10 * kHour;
    o.maintenance_interval_ms = 0;
    o.max_model_column_families = 3;
    return o;
  }
  std::unique_ptr<Cache> Open(const std::string& path) {
    auto r = Cache::Open(Options(path));
    EXPECT_OK(r);
    return r.ok() ? std::move(r).value() : nullptr;
  }
  void ReopenBoth() {
    bulk_.reset();
    ref_.reset();
    bulk_ = Open(dir_.path() + "/bulk");
    ref_ = Open(dir_.path() + "/ref");
  }

  // Loads `specs` into bulk_ (small batches: many of them) and inserts them
  // one by one into ref_.
  BulkLoadStats LoadBoth(const std::vector<Spec>& specs) {
    BulkLoadOptions lo;
    lo.max_buffer_bytes = 64 << 10;
    auto loader = bulk_->NewBulkLoader(lo);
    EXPECT_OK(loader);
    if (!loader.ok()) return {};
    for (const Spec& s : specs) {
      EXPECT_OK((*loader)->Add(s.key, s.body, InsertOptionsOf(s)));
      EXPECT_OK(ref_->Insert(s.key, s.body, InsertOptionsOf(s)));
    }
    auto st = (*loader)->Finish();
    EXPECT_OK(st);
    EXPECT_EQ((*loader)->stored(), specs.size());
    return st.ok() ? *st : BulkLoadStats{};
  }

  std::vector<Spec> All(int version = 0) {
    std::vector<Spec> specs;
    for (int i = 0; i < kEntries; ++i) {
      specs.push_back(MakeSpec(i, clock_.NowMillis(), version));
    }
    return specs;
  }

  // Every stored entry: digest -> (stored bytes, entry).
  static std::map<Digest, std::pair<size_t, Entry>> Dump(Cache& cache) {
    std::map<Digest, std::pair<size_t, Entry>> out;
    EXPECT_OK(cache.ForEachEntry(std::nullopt, [&](const EntryView& v) {
      out[v.digest] = {v.stored_bytes, v.entry};
      return true;
    }));
    return out;
  }

  // The statistics a load must reproduce.
  void ExpectSameStats() {
    auto a = bulk_->GetStats();
    auto b = ref_->GetStats();
    ASSERT_OK(a);
    ASSERT_OK(b);
    EXPECT_EQ(a->entries, b->entries);
    EXPECT_EQ(a->bytes, b->bytes);
    EXPECT_EQ(a->inserts, b->inserts);
    ASSERT_EQ(a->models.size(), b->models.size());
    for (size_t i = 0; i < a->models.size(); ++i) {
      const ModelStats& x = a->models[i];
      const ModelStats& y = b->models[i];
      EXPECT_EQ(x.model, y.model);
      EXPECT_EQ(x.entries, y.entries) << x.model;
      EXPECT_EQ(x.bytes, y.bytes) << x.model;
      EXPECT_EQ(x.last_resolved_model, y.last_resolved_model) << x.model;
      EXPECT_EQ(x.own_column_family, y.own_column_family) << x.model;
    }
  }

  // A column family of the database at `path` (closed): (key, value); by
  // default the time index.
  static std::vector<std::pair<std::string, std::string>> TimeIndex(
      const std::string& path, std::string_view family) {
    std::vector<std::pair<std::string, std::string>> out;
    rocksdb::DBOptions dbo;
    std::vector<std::string> names;
    EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(dbo, path, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const std::string& n : names)
      descs.emplace_back(n, rocksdb::Options());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    rocksdb::Status s =
        rocksdb::DB::OpenForReadOnly(dbo, path, descs, &handles, &db);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return out;
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] != family) continue;
      std::unique_ptr<rocksdb::Iterator> it(
          db->NewIterator(rocksdb::ReadOptions(), handles[i]));
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        out.emplace_back(it->key().ToString(), it->value().ToString());
      }
    }
    for (rocksdb::ColumnFamilyHandle* h : handles)
      db->DestroyColumnFamilyHandle(h);
    delete db;
    return out;
  }

  // Closes both caches, their memtables flushed first (the records are
  // read from table files), and expects the same per-model time index: one
  // record per entry, the replaced versions' records retired.
  void CloseAndExpectSameTimeIndex() {
    ASSERT_OK(static_cast<RocksCache&>(*bulk_).FlushMemtablesForTest());
    ASSERT_OK(static_cast<RocksCache&>(*ref_).FlushMemtablesForTest());
    bulk_.reset();
    ref_.reset();
    const auto by_model = TimeIndex(dir_.path() + "/bulk", "llmcache.bymodel");
    EXPECT_EQ(by_model.size(), static_cast<size_t>(kEntries));
    EXPECT_TRUE(by_model ==
                TimeIndex(dir_.path() + "/ref", "llmcache.bymodel"));
  }

  uint64_t Entries(Cache& cache) {
    auto st = cache.GetStats();
    EXPECT_OK(st);
    return st.ok() ? st->entries : 0;
  }

  llmcache::testing::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<Cache> bulk_;
  std::unique_ptr<Cache> ref_;
};

TEST_F(BulkLoadTest, SameStateAsInsertingOneByOne) {
  const std::vector<Spec> specs = All();
  const BulkLoadStats st = LoadBoth(specs);
  EXPECT_EQ(st.added, static_cast<uint64_t>(kEntries));
  EXPECT_EQ(st.replaced, 0u);
  EXPECT_GT(st.batches, 10u);  // 64 KiB batches
  EXPECT_GT(st.files, st.batches);
  EXPECT_GT(st.bytes, 0u);
  // New families, distinct keys: only the filter's false positives (~1%)
  // are read.
  EXPECT_LT(st.reads, static_cast<uint64_t>(kEntries / 20));
  ExpectSameStats();
  EXPECT_EQ(Entries(*bulk_), static_cast<uint64_t>(kEntries));
  EXPECT_EQ(static_cast<RocksCache&>(*bulk_).ModelFamilyCountForTest(), 3u);

  // Every entry byte-exact, found by a lookup.
  for (const Spec& s : specs) {
    auto r = bulk_->Lookup(s.key, {.record_stats = false});
    ASSERT_OK(r);
    ASSERT_TRUE(r->hit()) << s.key.Hex();
    EXPECT_EQ(r->entry->body, s.body);
    EXPECT_EQ(r->entry->meta.model, s.key.model);
    EXPECT_EQ(r->entry->meta.ns, s.ns);
    EXPECT_EQ(r->entry->meta.resolved_model, s.resolved);
    EXPECT_EQ(r->entry->meta.usage, s.options.usage);
  }
  // The same stored values and metadata as the one-by-one inserts.
  const auto a = Dump(*bulk_);
  EXPECT_EQ(a.size(), static_cast<size_t>(kEntries));
  EXPECT_TRUE(a == Dump(*ref_));

  // A reopen sees all of it.
  ReopenBoth();
  ExpectSameStats();
  EXPECT_TRUE(Dump(*bulk_) == a);
  EXPECT_EQ(static_cast<RocksCache&>(*bulk_).ModelFamilyCountForTest(), 3u);
}

TEST_F(BulkLoadTest, ReloadingDoesNotDoubleCountAndReplaces) {
  LoadBoth(All());
  // The same entries again: nothing new.
  const BulkLoadStats again = LoadBoth(All());
  EXPECT_EQ(again.replaced, static_cast<uint64_t>(kEntries));
  EXPECT_EQ(again.reads, static_cast<uint64_t>(kEntries));  // families held
  EXPECT_EQ(again.bytes, 0u);  // byte for byte what is stored: not written
  EXPECT_EQ(Entries(*bulk_), static_cast<uint64_t>(kEntries));
  ExpectSameStats();

  // Newer versions of some (other bodies, other creation times), one key
  // twice in the same load: the last one wins.
  std::vector<Spec> newer;
  for (int i = 0; i < kEntries; i += 7) {
    newer.push_back(MakeSpec(i, clock_.NowMillis(), 1));
  }
  newer.push_back(MakeSpec(14, clock_.NowMillis(), 2));
  LoadBoth(newer);
  EXPECT_EQ(Entries(*bulk_), static_cast<uint64_t>(kEntries));
  ExpectSameStats();
  for (int i : {0, 7, 700, 14}) {
    const Spec want = MakeSpec(i, clock_.NowMillis(), i == 14 ? 2 : 1);
    auto r = bulk_->Lookup(want.key, {.record_stats = false});
    ASSERT_OK(r);
    ASSERT_TRUE(r->hit());
    EXPECT_EQ(r->entry->body, want.body);
    auto in_ref = ref_->Lookup(want.key, {.record_stats = false});
    ASSERT_OK(in_ref);
    ASSERT_TRUE(in_ref->hit());
    EXPECT_EQ(*r->entry, *in_ref->entry);
  }
  EXPECT_TRUE(Dump(*bulk_) == Dump(*ref_));
  CloseAndExpectSameTimeIndex();
  // Neither has the time index of formats 1 and 2.
  for (const char* db : {"/bulk", "/ref"}) {
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(),
                                                dir_.path() + db, &names)
                    .ok());
    EXPECT_THAT(names, Contains("llmcache.bymodel")) << db;
    EXPECT_THAT(names, Not(Contains("llmcache.time"))) << db;
  }
  ReopenBoth();

  // An age purge counts each entry once.
  auto a = bulk_->PurgeOlderThan(12 * kHour);
  auto b = ref_->PurgeOlderThan(12 * kHour);
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_GT(*a, 0u);
  EXPECT_EQ(*a, *b);
  ExpectSameStats();
  EXPECT_TRUE(Dump(*bulk_) == Dump(*ref_));
}

// Families that held nothing when the load began: the load reads only keys
// it may have written in an earlier batch, and still replaces, skips and
// retires exactly as inserts do.
TEST_F(BulkLoadTest, NewFamiliesReadOnlyKeysTheLoadMayHaveWritten) {
  std::vector<Spec> specs = All();
  uint64_t repeats = 0;
  for (int i = 0; i < kEntries; i += 5) {  // newer versions, later batches
    specs.push_back(MakeSpec(i, clock_.NowMillis(), 1));
    ++repeats;
  }
  for (int i = 1; i < kEntries; i += 11) {  // the same bytes again
    specs.push_back(MakeSpec(i, clock_.NowMillis()));
    ++repeats;
  }
  const BulkLoadStats st = LoadBoth(specs);
  EXPECT_EQ(st.replaced, repeats);
  // Every repeat read (no false negatives), few other keys.
  EXPECT_GE(st.reads, repeats);
  EXPECT_LT(st.reads, repeats + kEntries / 20);
  ExpectSameStats();
  EXPECT_EQ(Entries(*bulk_), static_cast<uint64_t>(kEntries));
  EXPECT_TRUE(Dump(*bulk_) == Dump(*ref_));
  CloseAndExpectSameTimeIndex();
}

// An insert into a family the load writes to, between two of its batches:
// from then on the load reads every key of that family, and the inserted
// entry is replaced and counted as the inserts count it.
TEST_F(BulkLoadTest, AnInsertDuringALoadIsReadBeforeItIsReplaced) {
  BulkLoadOptions lo;
  lo.max_buffer_bytes = 64 << 10;
  auto loader = bulk_->NewBulkLoader(lo);
  ASSERT_OK(loader);
  const int first = kEntries / 2;
  for (int i = 0; i < first; ++i) {
    const Spec s = MakeSpec(i, clock_.NowMillis());
    ASSERT_OK((*loader)->Add(s.key, s.body, InsertOptionsOf(s)));
    ASSERT_OK(ref_->Insert(s.key, s.body, InsertOptionsOf(s)));
  }
  // Keys the load adds later, in every family, inserted directly first (an
  // older version: another creation time).
  std::vector<int> inserted;
  for (int i = first; i < first + 2 * static_cast<int>(kModels.size()); ++i) {
    inserted.push_back(i);
    const Spec s = MakeSpec(i, clock_.NowMillis(), 7);
    ASSERT_OK(bulk_->Insert(s.key, s.body, InsertOptionsOf(s)));
    ASSERT_OK(ref_->Insert(s.key, s.body, InsertOptionsOf(s)));
  }
  for (int i = first; i < kEntries; ++i) {
    const Spec s = MakeSpec(i, clock_.NowMillis());
    ASSERT_OK((*loader)->Add(s.key, s.body, InsertOptionsOf(s)));
    ASSERT_OK(ref_->Insert(s.key, s.body, InsertOptionsOf(s)));
  }
  auto st = (*loader)->Finish();
  ASSERT_OK(st);
  loader->reset();  // a loader must not outlive its cache
  EXPECT_EQ(st->replaced, inserted.size());
  EXPECT_GE(st->reads, static_cast<uint64_t>(kEntries - first));
  ExpectSameStats();
  EXPECT_EQ(Entries(*bulk_), static_cast<uint64_t>(kEntries));
  for (int i : inserted) {
    const Spec want = MakeSpec(i, clock_.NowMillis());
    auto r = bulk_->Lookup(want.key, {.record_stats = false});
    ASSERT_OK(r);
    ASSERT_TRUE(r->hit());
    EXPECT_EQ(r->entry->body, want.body);
  }
  EXPECT_TRUE(Dump(*bulk_) == Dump(*ref_));
  CloseAndExpectSameTimeIndex();  // the inserted versions' records retired
}

// An Insert counted (Family::writes) but not yet made when the load first
// writes to its family: the family looks empty then, and the entry lands
// after the load looked. The load must still read it before replacing it.
TEST_F(BulkLoadTest, AnInsertUnderwayWhenTheLoadLooksIsReadBeforeItIsReplaced) {
  std::mutex mu;
  std::condition_variable cv;
  bool counted = false, go = false;
  static_cast<RocksCache&>(*bulk_).SetBeforeWriteHookForTest([&] {
    std::unique_lock<std::mutex> lock(mu);
    counted = true;
    cv.notify_all();
    cv.wait(lock, [&] { return go; });
  });
  const Spec early = MakeSpec(0, clock_.NowMillis(), 7);  // an older version
  std::thread inserter([&] {
    EXPECT_OK(bulk_->Insert(early.key, early.body, InsertOptionsOf(early)));
  });
  auto release = [&] {
    {
      std::lock_guard<std::mutex> lock(mu);
      go = true;
    }
    cv.notify_all();
    if (inserter.joinable()) inserter.join();
    // The hook refers to this test's locals: gone with them.
    if (bulk_) static_cast<RocksCache&>(*bulk_).SetBeforeWriteHookForTest({});
  };
  struct Finally {
    std::function<void()> fn;
    ~Finally() { fn(); }
  } finally{release};  // also when an assertion returns early
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return counted; });
  }
  ASSERT_OK(ref_->Insert(early.key, early.body, InsertOptionsOf(early)));

  BulkLoadOptions lo;
  lo.max_buffer_bytes = 64 << 10;
  auto loader = bulk_->NewBulkLoader(lo);
  ASSERT_OK(loader);
  int i = 1;
  // Batches of every family, ingested while the Insert waits.
  for (; i < kEntries / 2; ++i) {
    const Spec s = MakeSpec(i, clock_.NowMillis());
    ASSERT_OK((*loader)->Add(s.key, s.body, InsertOptionsOf(s)));
    ASSERT_OK(ref_->Insert(s.key, s.body, InsertOptionsOf(s)));
  }
  for (int waited = 0; (*loader)->stored() == 0 && waited < 1000; ++waited) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GT((*loader)->stored(), 0u);
  release();
  // Then the rest, with a newer version of the inserted key.
  for (; i < kEntries; ++i) {
    const Spec s = MakeSpec(i, clock_.NowMillis());
    ASSERT_OK((*loader)->Add(s.key, s.body, InsertOptionsOf(s)));
    ASSERT_OK(ref_->Insert(s.key, s.body, InsertOptionsOf(s)));
  }
  const Spec late = MakeSpec(0, clock_.NowMillis());
  ASSERT_OK((*loader)->Add(late.key, late.body, InsertOptionsOf(late)));
  ASSERT_OK(ref_->Insert(late.key, late.body, InsertOptionsOf(late)));
  auto st = (*loader)->Finish();
  ASSERT_OK(st);
  loader->reset();
  EXPECT_EQ(st->replaced, 1u);
  ExpectSameStats();
  EXPECT_EQ(Entries(*bulk_), static_cast<uint64_t>(kEntries));
  auto r = bulk_->Lookup(late.key, {.record_stats = false});
  ASSERT_OK(r);
  ASSERT_TRUE(r->hit());
  EXPECT_EQ(r->entry->body, late.body);
  EXPECT_TRUE(Dump(*bulk_) == Dump(*ref_));
  CloseAndExpectSameTimeIndex();  // the early version's record retired
}

TEST_F(BulkLoadTest, TimeIndexServesPurgesOfLoadedEntries) {
  const std::vector<Spec> specs = All();
  LoadBoth(specs);
  // Oldest first: two steps, as eviction walks.
  for (int64_t age : {40 * kHour, 5 * kHour, int64_t{0}}) {
    auto a = bulk_->PurgeOlderThan(age);
    auto b = ref_->PurgeOlderThan(age);
    ASSERT_OK(a);
    ASSERT_OK(b);
    EXPECT_EQ(*a, *b) << age;
    ExpectSameStats();
  }
  // Entries created "now" are not older than 0 ms.
  EXPECT_GT(Entries(*bulk_), static_cast<uint64_t>(kEntries / 3));
  EXPECT_LT(Entries(*bulk_), static_cast<uint64_t>(kEntries / 2));
  // Purging a namespace finds loaded entries too.
  auto a = bulk_->PurgeNamespace("team-a");
  auto b = ref_->PurgeNamespace("team-a");
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_GT(*a, 0u);
  EXPECT_EQ(*a, *b);
  ExpectSameStats();
}

TEST_F(BulkLoadTest, ExpiryIsKept) {
  std::vector<Spec> specs = All();
  LoadBoth(specs);
  // Past the default TTL (10 h) of the entries created now; the explicit
  // ones expire after 100 h, the others never.
  clock_.Advance(11 * kHour);
  const Spec& now_created = specs[2];
  const Spec& explicit_times = specs[3];
  const Spec& never = specs[4];
  auto r = bulk_->Lookup(now_created.key);
  ASSERT_OK(r);
  EXPECT_FALSE(r->hit());  // expired (or already compacted away)
  r = bulk_->Lookup(explicit_times.key);
  ASSERT_OK(r);
  EXPECT_TRUE(r->hit());
  EXPECT_EQ(r->entry->meta.expires_ms, explicit_times.options.expires_ms);
  r = bulk_->Lookup(never.key);
  ASSERT_OK(r);
  EXPECT_TRUE(r->hit());
  EXPECT_EQ(r->entry->meta.expires_ms, 0);
  // Expired entries go and are counted out the same way. Compaction first:
  // the ingested files give the background compactions work, and one that
  // ran over entries a purge had just deleted would count them out again
  // (the TTL filter does not see deletions newer than its input).
  ASSERT_OK(bulk_->Compact());
  ASSERT_OK(ref_->Compact());
  ExpectSameStats();
  EXPECT_EQ(Entries(*bulk_), static_cast<uint64_t>(kEntries - kEntries / 3));
  auto a = bulk_->PurgeExpired();
  auto b = ref_->PurgeExpired();
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_EQ(*a, *b);
  ExpectSameStats();
  clock_.Advance(200 * kHour);
  ASSERT_OK(bulk_->Compact());
  ASSERT_OK(ref_->Compact());
  ExpectSameStats();
  EXPECT_EQ(Entries(*bulk_), static_cast<uint64_t>(kEntries / 3));
}

TEST_F(BulkLoadTest, MemoryTierDoesNotServeReplacedEntries) {
  const Spec old = MakeSpec(5, clock_.NowMillis());
  ASSERT_OK(bulk_->Insert(old.key, old.body, InsertOptionsOf(old)));
  auto r = bulk_->Lookup(old.key);
  ASSERT_OK(r);
  ASSERT_TRUE(r->hit());
  EXPECT_TRUE(r->from_memory);
  const Spec newer = MakeSpec(5, clock_.NowMillis(), 1);
  auto loader = bulk_->NewBulkLoader({});
  ASSERT_OK(loader);
  ASSERT_OK((*loader)->Add(newer.key, newer.body, InsertOptionsOf(newer)));
  auto st = (*loader)->Finish();
  ASSERT_OK(st);
  EXPECT_EQ(st->replaced, 1u);
  r = bulk_->Lookup(old.key);
  ASSERT_OK(r);
  ASSERT_TRUE(r->hit());
  EXPECT_EQ(r->entry->body, newer.body);
  EXPECT_EQ(Entries(*bulk_), 1u);
}

TEST_F(BulkLoadTest, ErrorsAndLeftovers) {
  auto loader = bulk_->NewBulkLoader({});
  ASSERT_OK(loader);
  Spec s = MakeSpec(1, clock_.NowMillis());
  InsertOptions bad = InsertOptionsOf(s);
  bad.ttl_ms = -1;
  EXPECT_THAT((*loader)->Add(s.key, s.body, bad),
              StatusIs(StatusCode::kInvalidArgument));
  bad = InsertOptionsOf(s);
  bad.expires_ms = -1;  // stored, it would read as damage
  EXPECT_THAT((*loader)->Add(s.key, s.body, bad),
              StatusIs(StatusCode::kInvalidArgument));
  ASSERT_OK((*loader)->Add(s.key, s.body, InsertOptionsOf(s)));  // goes on
  ASSERT_OK((*loader)->Finish());
  EXPECT_THAT((*loader)->Finish(), StatusIs(StatusCode::kFailedPrecondition));
  loader->reset();

  // A loader's files of a process that died are removed by the next one,
  // also those of one that had this process's id (in containers, processes
  // often all run as pid 1). A live loader's stay.
  const fs::path db = fs::path(dir_.path()) / "bulk";
  const fs::path stale = db / "bulk-load.1.0";
  const fs::path stale_same_pid =
      db / ("bulk-load." + std::to_string(getpid()) + ".999999");
  for (const fs::path& d : {stale, stale_same_pid}) {
    fs::create_directories(d);
    std::ofstream(d / "0-0.sst") << "partial";
  }
  auto next = bulk_->NewBulkLoader({});
  ASSERT_OK(next);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_FALSE(fs::exists(stale_same_pid));
  ASSERT_OK((*next)->Add(s.key, s.body, InsertOptionsOf(s)));
  auto another = bulk_->NewBulkLoader({});
  ASSERT_OK(another);
  auto load_dirs = [&] {
    int n = 0;
    for (const auto& e : fs::directory_iterator(db)) {
      n += e.path().filename().string().starts_with("bulk-load.") ? 1 : 0;
    }
    return n;
  };
  EXPECT_EQ(load_dirs(), 2);
  // A directory in another database that bears a live loader's name is a
  // leftover there all the same.
  std::vector<fs::path> live;
  for (const auto& e : fs::directory_iterator(db)) {
    if (e.path().filename().string().starts_with("bulk-load.")) {
      live.push_back(e.path());
    }
  }
  ASSERT_EQ(live.size(), 2u);
  const fs::path other_db = fs::path(dir_.path()) / "ref";
  const fs::path namesake = other_db / live[0].filename();
  fs::create_directories(namesake);
  std::ofstream(namesake / "0-0.sst") << "partial";
  auto elsewhere = ref_->NewBulkLoader({});
  ASSERT_OK(elsewhere);
  EXPECT_FALSE(fs::exists(namesake));
  EXPECT_TRUE(fs::exists(live[0]));
  elsewhere->reset();
  ASSERT_OK((*next)->Finish());  // its directory is still there
  another->reset();
  next->reset();
  EXPECT_EQ(load_dirs(), 0);

  // An inspection view cannot load.
  InspectOptions io;
  io.path = dir_.path() + "/bulk";
  auto view = Cache::Inspect(io);
  ASSERT_OK(view);
  EXPECT_THAT((*view)->NewBulkLoader({}).status(),
              StatusIs(StatusCode::kFailedPrecondition));
}

// A batch's time records are sorted by (model, time, digest) instead of by
// their keys: the order must be the keys' order, whatever the order the
// models came in, the lengths of their names and the times (one before
// 1970 orders after every later one, as its key's unsigned bytes do).
TEST(BulkLoadTimeRecordsTest, WrittenInKeyOrder) {
  const std::vector<std::string> names = {"zz/a-much-longer-model-name", "b",
                                          std::string(200, 'x'), "m/a", "a"};
  const std::vector<std::string_view> models(names.begin(), names.end());
  const std::vector<int64_t> times = {5, -3, 1'700'000'000'000, 0, 5, 42};
  std::vector<Digest> digests;
  for (uint64_t i = 0; i < 40; ++i) digests.push_back(TestKey("d", i).digest);
  std::vector<TimeRecord> records;
  // Expected: key -> (erased, expiry).
  std::map<std::string, std::pair<bool, int64_t>> expected;
  for (size_t i = 0; i < digests.size(); ++i) {
    const auto m = static_cast<uint32_t>((i * 7) % models.size());
    const int64_t created = times[(i * 5) % times.size()];
    const bool erase = i % 9 == 4;
    const int64_t expires = erase ? 0 : created + static_cast<int64_t>(i);
    records.push_back(TimeRecord{m, static_cast<uint64_t>(created), &digests[i],
                                 expires, erase});
    expected[ModelTimeIndexKey(names[m], created, digests[i])] = {erase,
                                                                  expires};
  }
  // In reverse order of their keys. (That retired records delete the right
  // keys through a whole load is checked by the replacing loads above,
  // against the time index that inserts leave.)
  std::sort(
      records.begin(), records.end(),
      [&](const TimeRecord& a, const TimeRecord& b) {
        return ModelTimeIndexKey(names[a.model],
                                 static_cast<int64_t>(a.created), *a.digest) >
               ModelTimeIndexKey(names[b.model],
                                 static_cast<int64_t>(b.created), *b.digest);
      });

  llmcache::testing::TempDir dir;
  const std::string file = dir.path() + "/time.sst";
  rocksdb::Options options;
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), options);
  ASSERT_TRUE(writer.Open(file).ok());
  const rocksdb::Status written = WriteTimeRecords(models, &records, &writer);
  ASSERT_TRUE(written.ok()) << written.ToString();  // out of order: refused
  ASSERT_TRUE(writer.Finish().ok());

  rocksdb::SstFileReader reader(options);
  ASSERT_TRUE(reader.Open(file).ok());
  std::map<std::string, std::pair<bool, int64_t>> read;
  std::unique_ptr<rocksdb::Iterator> it(
      reader.NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    ASSERT_EQ(it->value().size(), 8u);
    read[it->key().ToString()] = {
        false, static_cast<int64_t>(ReadLittleEndian64(it->value().data()))};
  }
  size_t erased = 0;
  for (auto e = expected.begin(); e != expected.end();) {
    if (e->second.first) {
      ++erased;
      e = expected.erase(e);
    } else {
      ++e;
    }
  }
  EXPECT_EQ(read, expected);
  EXPECT_EQ(reader.GetTableProperties()->num_deletions, erased);
  EXPECT_GT(erased, 0u);
}

TEST(BulkLoadMemoryTest, MemoryModeInserts) {
  FakeClock clock;
  CacheOptions o;
  o.clock = &clock;
  auto cache = Cache::Open(o);
  ASSERT_OK(cache);
  auto loader = (*cache)->NewBulkLoader({});
  ASSERT_OK(loader);
  for (int i = 0; i < 100; ++i) {
    const Spec s = MakeSpec(i, clock.NowMillis());
    ASSERT_OK((*loader)->Add(s.key, s.body, InsertOptionsOf(s)));
  }
  auto st = (*loader)->Finish();
  ASSERT_OK(st);
  EXPECT_EQ(st->added, 100u);
  auto stats = (*cache)->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->entries, 100u);
  const Spec s = MakeSpec(42, clock.NowMillis());
  auto r = (*cache)->Lookup(s.key);
  ASSERT_OK(r);
  ASSERT_TRUE(r->hit());
  EXPECT_EQ(r->entry->body, s.body);
}

}  // namespace
}  // namespace llmcache
