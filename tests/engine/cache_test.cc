// Cache behaviour that both modes share, run on disk and in memory (TEST_P).

#include "llmcache/cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "llmcache/clock.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/test_keys.h"

namespace llmcache {
namespace {

using ::llmcache::testing::StatusIs;
using ::llmcache::testing::TestKey;

enum class Mode { kDisk, kMemory };

std::string ModeName(const ::testing::TestParamInfo<Mode>& info) {
  return info.param == Mode::kDisk ? "Disk" : "Memory";
}

class CacheTest : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override { Reopen(); }

  CacheOptions Options() {
    CacheOptions o;
    if (GetParam() == Mode::kDisk) o.path = dir_.path() + "/db";
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

  void Put(const RequestKey& key, const std::string& body,
           InsertOptions io = {}) {
    ASSERT_OK(cache_->Insert(key, body, io));
  }

  LookupOutcome Outcome(const RequestKey& key, LookupOptions lo = {}) {
    auto r = cache_->Lookup(key, lo);
    EXPECT_OK(r);
    return r.ok() ? r->outcome : LookupOutcome::kMiss;
  }

  llmcache::testing::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<Cache> cache_;
};

TEST_P(CacheTest, MissThenHitReturnsStoredResponseAndMetadata) {
  const RequestKey key = TestKey("openai/gpt-4o:floor", 1);
  EXPECT_EQ(Outcome(key), LookupOutcome::kMiss);
  InsertOptions io;
  io.ns = "v2";
  io.resolved_model = "openai/gpt-4o-2024-08-06";
  io.usage = Usage{100, 20, 5, 3, 1234};
  io.flags = kEntryFlagToolCalls;
  Put(key, R"({"choices":[]})", io);

  auto r = cache_->Lookup(key);
  ASSERT_OK(r);
  ASSERT_TRUE(r->hit());
  const Entry& e = *r->entry;
  EXPECT_EQ(e.body, R"({"choices":[]})");
  EXPECT_EQ(e.meta.model, "openai/gpt-4o:floor");
  EXPECT_EQ(e.meta.resolved_model, "openai/gpt-4o-2024-08-06");
  EXPECT_EQ(e.meta.ns, "v2");
  EXPECT_EQ(e.meta.usage, (Usage{100, 20, 5, 3, 1234}));
  EXPECT_EQ(e.meta.flags, kEntryFlagToolCalls);
  EXPECT_EQ(e.meta.created_ms, clock_.NowMillis());
  EXPECT_EQ(e.meta.expires_ms, clock_.NowMillis() + 60'000);
}

TEST_P(CacheTest, InsertReplacesExistingEntry) {
  const RequestKey key = TestKey("m/a", 1);
  Put(key, "first");
  clock_.Advance(10);
  Put(key, "second");
  auto r = cache_->Lookup(key);
  ASSERT_OK(r);
  ASSERT_TRUE(r->hit());
  EXPECT_EQ(r->entry->body, "second");
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->entries, 1u);
  EXPECT_EQ(stats->inserts, 2u);
}

TEST_P(CacheTest, ExpiredEntryIsMissBeforeCompaction) {
  const RequestKey key = TestKey("m/a", 1);
  InsertOptions io;
  io.ttl_ms = 1000;
  Put(key, "body", io);
  clock_.Advance(999);
  EXPECT_EQ(Outcome(key), LookupOutcome::kHit);
  clock_.Advance(1);
  EXPECT_EQ(Outcome(key), LookupOutcome::kExpired);
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->hits, 1u);
  EXPECT_EQ(stats->misses, 1u);
  EXPECT_EQ(stats->expired, 1u);
}

TEST_P(CacheTest, ZeroTtlNeverExpires) {
  const RequestKey key = TestKey("m/a", 1);
  InsertOptions io;
  io.ttl_ms = 0;
  Put(key, "body", io);
  clock_.Advance(10LL * 365 * 24 * 3600 * 1000);
  EXPECT_EQ(Outcome(key), LookupOutcome::kHit);
}

// `purge --older-than` purges in steps; with an age measured again at each
// step, its last step's cutoff had moved on by the purge's duration and took
// entries younger than asked. A cutoff does not move.
TEST_P(CacheTest, PurgeCreatedBeforeTakesExactlyWhatIsOlderThanTheCutoff) {
  const int64_t t0 = clock_.NowMillis();
  for (int i = 0; i < 6; ++i) {
    InsertOptions io;
    io.created_ms = t0 - 6000 + 1000 * i;  // t0-6000 .. t0-1000
    io.ttl_ms = 0;
    Put(TestKey("m/a", i), "b", io);
  }
  auto n = cache_->PurgeCreatedBefore(t0 - 4000);
  ASSERT_OK(n);
  EXPECT_EQ(*n, 2u);
  clock_.Advance(3000);  // a long purge: the cutoff stays where it was
  n = cache_->PurgeCreatedBefore(t0 - 4000);
  ASSERT_OK(n);
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(Outcome(TestKey("m/a", 2)), LookupOutcome::kHit);
  // An age is measured from the clock's now.
  n = cache_->PurgeOlderThan(2500);  // before t0 + 500
  ASSERT_OK(n);
  EXPECT_EQ(*n, 4u);
}

TEST_P(CacheTest, InconsistentOptionsAreInvalid) {
  cache_.reset();
  CacheOptions o = Options();
  o.maintenance_interval_ms = -1;
  EXPECT_THAT(Cache::Open(o), StatusIs(StatusCode::kInvalidArgument));
  o = Options();
  o.compression = static_cast<StoreCompression>(77);
  EXPECT_THAT(Cache::Open(o), StatusIs(StatusCode::kInvalidArgument));
  o = Options();
  o.memory_tier_bytes = 0;  // the memory mode's whole store; persistent: off
  if (GetParam() == Mode::kMemory) {
    EXPECT_THAT(Cache::Open(o), StatusIs(StatusCode::kInvalidArgument));
  } else {
    EXPECT_OK(Cache::Open(o));
  }
}

TEST_P(CacheTest, NegativeTtlIsInvalid) {
  InsertOptions io;
  io.ttl_ms = -1;
  EXPECT_THAT(cache_->Insert(TestKey("m/a", 1), "b", io),
              StatusIs(StatusCode::kInvalidArgument));
}

// A TTL past the year 9999 once overflowed into a negative expiry: the
// insert said OK and every later read of the entry (and every walk of its
// model) reported damage. It now expires at the end of the year 9999.
TEST_P(CacheTest, AHugeTtlExpiresAtTheEndOfTheYear9999) {
  const RequestKey key = TestKey("m/a", 1);
  const RequestKey other = TestKey("m/a", 2);
  InsertOptions io;
  io.ttl_ms = INT64_MAX;
  Put(key, "body", io);
  Put(other, "other");
  clock_.Advance(1000);
  auto r = cache_->Lookup(key);
  ASSERT_OK(r);
  ASSERT_TRUE(r->hit());
  EXPECT_EQ(r->entry->meta.expires_ms, kMaxEntryTimeMs);
  auto found = cache_->Find(key.digest);
  ASSERT_OK(found);
  ASSERT_NE(*found, nullptr);
  int walked = 0;
  ASSERT_OK(cache_->ForEachEntry(std::string("m/a"), [&](const EntryView&) {
    ++walked;
    return true;
  }));
  EXPECT_EQ(walked, 2);
}

TEST_P(CacheTest, TimesBefore1970OrAfterTheYear9999AreInvalid) {
  for (const int64_t t : {int64_t{-5}, kMaxEntryTimeMs + 1, INT64_MAX}) {
    InsertOptions created;
    created.created_ms = t;
    EXPECT_THAT(cache_->Insert(TestKey("m/a", 1), "b", created),
                StatusIs(StatusCode::kInvalidArgument));
  }
  InsertOptions before_1970;
  before_1970.expires_ms = -5;
  EXPECT_THAT(cache_->Insert(TestKey("m/a", 1), "b", before_1970),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(Outcome(TestKey("m/a", 1)), LookupOutcome::kMiss);
  // A later expiry (older versions wrote some) expires at the end of 9999.
  InsertOptions late;
  late.expires_ms = INT64_MAX;
  Put(TestKey("m/a", 1), "b", late);
  auto r = cache_->Lookup(TestKey("m/a", 1));
  ASSERT_OK(r);
  ASSERT_TRUE(r->hit());
  EXPECT_EQ(r->entry->meta.expires_ms, kMaxEntryTimeMs);
  EXPECT_THAT(cache_->PurgeOlderThan(-5),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST_P(CacheTest, MaxAgeRejectsOlderEntryButKeepsIt) {
  const RequestKey key = TestKey("m/a", 1);
  Put(key, "body");
  clock_.Advance(5000);
  LookupOptions lo;
  lo.max_age_ms = 4000;
  EXPECT_EQ(Outcome(key, lo), LookupOutcome::kMiss);
  lo.max_age_ms = 5000;
  EXPECT_EQ(Outcome(key, lo), LookupOutcome::kHit);
  EXPECT_EQ(Outcome(key), LookupOutcome::kHit);
}

TEST_P(CacheTest, FlushModelRemovesEveryVariantAndNothingElse) {
  Put(TestKey("openai/gpt-4o", 1), "a");
  Put(TestKey("openai/gpt-4o:floor", 2), "b");
  Put(TestKey("openai/gpt-4o-mini", 3), "c");
  auto flushed = cache_->FlushModel("openai/gpt-4o:nitro");
  ASSERT_OK(flushed);
  EXPECT_EQ(*flushed, 2u);
  EXPECT_EQ(Outcome(TestKey("openai/gpt-4o", 1)), LookupOutcome::kMiss);
  EXPECT_EQ(Outcome(TestKey("openai/gpt-4o:floor", 2)), LookupOutcome::kMiss);
  EXPECT_EQ(Outcome(TestKey("openai/gpt-4o-mini", 3)), LookupOutcome::kHit);
  // The model can be cached again afterwards.
  Put(TestKey("openai/gpt-4o", 4), "d");
  EXPECT_EQ(Outcome(TestKey("openai/gpt-4o", 4)), LookupOutcome::kHit);
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->flushes, 1u);
  EXPECT_EQ(stats->entries, 2u);
}

// A model id with two variants ("m/x:free:online") is a variant of m/x. A
// version before 2026-12-07 stored it under a model of its own, "m/x:free"
// (a family and counters of its own): flushing m/x, or any of its
// variants, removes that too, so no row is left that no --model names.
TEST_P(CacheTest, FlushModelAlsoRemovesWhatAVariantOfAVariantHadOfItsOwn) {
  if (GetParam() != Mode::kDisk) {
    GTEST_SKIP() << "a memory cache holds nothing an older version wrote";
  }
  Put(TestKey("m/x", 1), "a");
  RequestKey older = TestKey("m/x:free:online", 2);
  older.base_model = "m/x:free";  // as BaseModel() made it before
  Put(older, "b");
  Put(TestKey("m/x:free:online", 3), "c");  // under m/x now
  Put(TestKey("m/y", 4), "d");
  auto flushed = cache_->FlushModel("m/x:free");
  ASSERT_OK(flushed);
  EXPECT_EQ(*flushed, 3u);
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->entries, 1u);
  std::vector<std::string> with_entries;
  for (const ModelStats& m : stats->models) {
    if (m.entries != 0) with_entries.push_back(m.model);
  }
  EXPECT_EQ(with_entries, std::vector<std::string>{"m/y"});
  EXPECT_EQ(Outcome(TestKey("m/y", 4)), LookupOutcome::kHit);
}

TEST_P(CacheTest, FlushAllRemovesEverything) {
  for (int i = 0; i < 10; ++i)
    Put(TestKey("m/" + std::to_string(i % 3), i), "x");
  ASSERT_OK(cache_->FlushAll());
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(Outcome(TestKey("m/" + std::to_string(i % 3), i)),
              LookupOutcome::kMiss);
  }
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->entries, 0u);
  Put(TestKey("m/0", 100), "again");
  EXPECT_EQ(Outcome(TestKey("m/0", 100)), LookupOutcome::kHit);
}

TEST_P(CacheTest, AnAnswerAFlushOvertookIsNotStored) {
  // What a caller reads before asking upstream, and passes with the answer:
  // stored only if no flush of its entries began in between.
  int n = 0;
  auto ask = [&](const std::string& model, const std::string& ns) {
    InsertOptions io;
    io.ns = ns;  // a view of the caller's string
    io.flush_count = cache_->FlushCount(model, ns);
    return std::make_pair(TestKey(model, ++n), io);
  };
  auto answer = [&](const std::pair<RequestKey, InsertOptions>& asked) {
    Status s = cache_->Insert(asked.first, "answer", asked.second);
    const LookupOutcome o = Outcome(asked.first);
    if (s.ok()) {
      EXPECT_EQ(o, LookupOutcome::kHit);
      return true;
    }
    EXPECT_EQ(s.code(), StatusCode::kAborted) << s.ToString();
    EXPECT_EQ(o, LookupOutcome::kMiss);
    return false;
  };
  const std::string a = "tenant-a", b = "tenant-b";
  EXPECT_TRUE(answer(ask("m/x:floor", a)));  // nothing overtook it

  // A model's flush covers its answers (and its variants') only.
  auto x = ask("m/x:floor", a), y = ask("m/y", a);
  ASSERT_OK(cache_->FlushModel("m/x"));
  EXPECT_FALSE(answer(x));
  EXPECT_TRUE(answer(y));
  EXPECT_TRUE(answer(ask("m/x", a)));  // asked after it

  // A namespace's purge covers that tenant's answers only.
  auto in_a = ask("m/x", a), in_b = ask("m/x", b);
  ASSERT_OK(cache_->PurgeNamespace(a));
  EXPECT_FALSE(answer(in_a));
  EXPECT_TRUE(answer(in_b));

  // FlushAll covers every answer.
  x = ask("m/x", b);
  y = ask("m/y", a);
  ASSERT_OK(cache_->FlushAll());
  EXPECT_FALSE(answer(x));
  EXPECT_FALSE(answer(y));

  // Removing one key, expired or old entries is no flush: an answer asked
  // for meanwhile is the newest there is.
  x = ask("m/x", a);
  ASSERT_OK(cache_->PurgeKey(TestKey("m/x", 1).digest));
  ASSERT_OK(cache_->PurgeExpired());
  ASSERT_OK(cache_->PurgeOlderThan(0));
  EXPECT_TRUE(answer(x));
  // Without a count, an insert is not checked.
  Put(TestKey("m/x", 99), "unchecked");
  EXPECT_EQ(Outcome(TestKey("m/x", 99)), LookupOutcome::kHit);
}

TEST_P(CacheTest, FlushAllWhileListingsRun) {
  // Regression: FlushAll replaced the time indexes' column-family handles
  // while listings, which hold only the shared database lock, read them.
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::atomic<uint64_t> listed{0};
  std::vector<std::thread> listers;
  for (int t = 0; t < 2; ++t) {
    listers.emplace_back([&, t] {
      const std::optional<std::string> model =
          t == 0 ? std::nullopt : std::optional<std::string>("m/a");
      while (!stop.load()) {
        int seen = 0;
        Status s = cache_->ForEachEntryByAge(model, /*newest_first=*/t == 0,
                                             [&](const EntryView& e) {
                                               if (e.base_model.empty())
                                                 ++errors;
                                               return ++seen < 50;
                                             });
        if (!s.ok()) ++errors;
        listed += static_cast<uint64_t>(seen);
        if (!cache_->AgeRanges({"m/a", "m/b"}).ok()) ++errors;
      }
    });
  }
  for (int round = 0; round < 40; ++round) {
    for (int i = 0; i < 100; ++i) {
      Put(TestKey(i % 2 == 0 ? "m/a" : "m/b", static_cast<uint64_t>(i)), "x");
    }
    ASSERT_OK(cache_->FlushAll());
  }
  stop = true;
  for (auto& th : listers) th.join();
  EXPECT_EQ(errors.load(), 0);
  // Nothing listed survives the last flush; new entries list as usual.
  int after = 0;
  ASSERT_OK(
      cache_->ForEachEntryByAge(std::nullopt, true, [&](const EntryView&) {
        ++after;
        return true;
      }));
  EXPECT_EQ(after, 0);
  auto empty = cache_->AgeRanges({"m/a", "m/b"});
  ASSERT_OK(empty);
  EXPECT_TRUE(empty->empty());
  Put(TestKey("m/a", 1000), "one");
  clock_.Advance(1);
  Put(TestKey("m/b", 1001), "two");
  std::vector<std::string> bodies;
  ASSERT_OK(
      cache_->ForEachEntryByAge(std::nullopt, true, [&](const EntryView& e) {
        bodies.emplace_back(e.entry.body);
        return true;
      }));
  EXPECT_EQ(bodies, (std::vector<std::string>{"two", "one"}));
  auto ranges = cache_->AgeRanges({"m/a", "m/b"});
  ASSERT_OK(ranges);
  EXPECT_EQ(ranges->size(), 2u);
}

TEST_P(CacheTest, PurgeKeyRemovesOneEntry) {
  Put(TestKey("m/a", 1), "x");
  Put(TestKey("m/a", 2), "y");
  auto r = cache_->PurgeKey(TestKey("m/a", 1).digest);
  ASSERT_OK(r);
  EXPECT_EQ(*r, 1u);
  EXPECT_EQ(Outcome(TestKey("m/a", 1)), LookupOutcome::kMiss);
  EXPECT_EQ(Outcome(TestKey("m/a", 2)), LookupOutcome::kHit);
  r = cache_->PurgeKey(TestKey("m/a", 1).digest);
  ASSERT_OK(r);
  EXPECT_EQ(*r, 0u);
}

TEST_P(CacheTest, PurgeNamespaceRemovesOnlyThatNamespace) {
  InsertOptions v1, v2;
  v1.ns = "v1";
  v2.ns = "v2";
  for (int i = 0; i < 6; ++i) {
    Put(TestKey("m/" + std::to_string(i % 2), i), "x", i < 4 ? v1 : v2);
  }
  auto r = cache_->PurgeNamespace("v1");
  ASSERT_OK(r);
  EXPECT_EQ(*r, 4u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(Outcome(TestKey("m/" + std::to_string(i % 2), i)),
              i < 4 ? LookupOutcome::kMiss : LookupOutcome::kHit);
  }
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->purged, 4u);
  EXPECT_EQ(stats->entries, 2u);
}

// More entries than one deletion chunk (4096) of the persistent cache: every
// one is purged and counted.
TEST_P(CacheTest, PurgeNamespaceOfManyEntriesCountsEachOnce) {
  InsertOptions v1, v2;
  v1.ns = "v1";
  v2.ns = "v2";
  constexpr int kMany = 4100;
  for (int i = 0; i < kMany; ++i) Put(TestKey("m/a", i), "x", v1);
  Put(TestKey("m/a", kMany), "y", v2);
  auto r = cache_->PurgeNamespace("v1");
  ASSERT_OK(r);
  EXPECT_EQ(*r, static_cast<uint64_t>(kMany));
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->purged, static_cast<uint64_t>(kMany));
  EXPECT_EQ(stats->entries, 1u);
  EXPECT_EQ(Outcome(TestKey("m/a", 0)), LookupOutcome::kMiss);
  EXPECT_EQ(Outcome(TestKey("m/a", kMany - 1)), LookupOutcome::kMiss);
  EXPECT_EQ(Outcome(TestKey("m/a", kMany)), LookupOutcome::kHit);
}

TEST_P(CacheTest, PurgeExpiredAndOlderThan) {
  InsertOptions short_ttl;
  short_ttl.ttl_ms = 100;
  Put(TestKey("m/a", 1), "old-short", short_ttl);
  Put(TestKey("m/a", 2), "old-long");
  clock_.Advance(1000);
  Put(TestKey("m/a", 3), "new");

  auto expired = cache_->PurgeExpired();
  ASSERT_OK(expired);
  EXPECT_EQ(*expired, 1u);
  EXPECT_EQ(Outcome(TestKey("m/a", 2)), LookupOutcome::kHit);

  auto older = cache_->PurgeOlderThan(500);
  ASSERT_OK(older);
  EXPECT_EQ(*older, 1u);
  EXPECT_EQ(Outcome(TestKey("m/a", 2)), LookupOutcome::kMiss);
  EXPECT_EQ(Outcome(TestKey("m/a", 3)), LookupOutcome::kHit);
}

TEST_P(CacheTest, StatsCountHitsMissesBypassesAndSavings) {
  const RequestKey key = TestKey("m/a", 1);
  EXPECT_EQ(Outcome(key), LookupOutcome::kMiss);
  InsertOptions io;
  io.usage = Usage{100, 50, 0, 0, 2'000'000};  // $0.002
  Put(key, "body", io);
  EXPECT_EQ(Outcome(key), LookupOutcome::kHit);
  EXPECT_EQ(Outcome(key), LookupOutcome::kHit);
  cache_->RecordBypass(BypassReason::kNonZeroTemperature);
  cache_->RecordBypass(BypassReason::kNonZeroTemperature);
  cache_->RecordBypass(BypassReason::kWebSearch);
  LookupOptions quiet;
  quiet.record_stats = false;
  EXPECT_EQ(Outcome(key, quiet), LookupOutcome::kHit);

  auto s = cache_->GetStats();
  ASSERT_OK(s);
  EXPECT_EQ(s->hits, 2u);
  EXPECT_EQ(s->misses, 1u);
  EXPECT_EQ(s->inserts, 1u);
  EXPECT_DOUBLE_EQ(s->hit_rate(), 2.0 / 3.0);
  EXPECT_EQ(s->bypasses[static_cast<size_t>(BypassReason::kNonZeroTemperature)],
            2u);
  EXPECT_EQ(s->bypasses[static_cast<size_t>(BypassReason::kWebSearch)], 1u);
  EXPECT_EQ(s->tokens_saved, 300u);
  EXPECT_EQ(s->cost_saved_nanousd, 4'000'000);
  ASSERT_EQ(s->models.size(), 1u);
  EXPECT_EQ(s->models[0].model, "m/a");
  EXPECT_EQ(s->models[0].hits, 2u);
  EXPECT_EQ(s->models[0].entries, 1u);
  EXPECT_GT(s->models[0].bytes, 4u);
}

TEST_P(CacheTest, ForEachEntryVisitsEntriesOfOneOrAllModels) {
  for (int i = 0; i < 9; ++i) {
    Put(TestKey(i % 3 == 0 ? "x/y:free" : "m/" + std::to_string(i % 3), i),
        "body" + std::to_string(i));
  }
  std::set<std::string> all, one;
  ASSERT_OK(cache_->ForEachEntry(std::nullopt, [&](const EntryView& v) {
    all.insert(v.entry.body);
    return true;
  }));
  EXPECT_EQ(all.size(), 9u);
  ASSERT_OK(cache_->ForEachEntry(std::string("x/y"), [&](const EntryView& v) {
    EXPECT_EQ(v.base_model, "x/y");
    EXPECT_EQ(v.entry.meta.model, "x/y:free");
    one.insert(v.entry.body);
    return true;
  }));
  EXPECT_EQ(one, (std::set<std::string>{"body0", "body3", "body6"}));
  int seen = 0;
  ASSERT_OK(cache_->ForEachEntry(std::nullopt,
                                 [&](const EntryView&) { return ++seen < 2; }));
  EXPECT_EQ(seen, 2);
}

TEST_P(CacheTest, FindLocatesEntryByDigestAlone) {
  Put(TestKey("m/a", 7), "found");
  auto r = cache_->Find(TestKey("m/a", 7).digest);
  ASSERT_OK(r);
  ASSERT_NE(*r, nullptr);
  EXPECT_EQ((*r)->body, "found");
  r = cache_->Find(TestKey("m/a", 8).digest);
  ASSERT_OK(r);
  EXPECT_EQ(*r, nullptr);
}

// Inserts of one key from two threads at once, and purges of it from two
// more: each key counted once while it is stored (an Insert's read of the
// stored version and its write are one step per key; a purge reads what it
// deletes again under the fence). The clock moves meanwhile, so versions
// differ in creation time too.
TEST_P(CacheTest, ConcurrentWritesOfOneKeyKeepTheCountsExact) {
  constexpr int kKeys = 3000;
  std::atomic<int> ready{0};
  auto start_together = [&] {
    ready.fetch_add(1);
    while (ready.load() < 4) std::this_thread::yield();
  };
  auto insert_all = [&](char fill) {
    const std::string body(100 + (fill - 'a'), fill);
    start_together();
    for (int i = 0; i < kKeys; ++i) {
      EXPECT_OK(cache_->Insert(TestKey("m/a", i), body, {}));
      if (fill == 'b' && i % 64 == 0) clock_.Advance(1);
    }
  };
  std::thread a(insert_all, 'a');
  std::thread b(insert_all, 'b');
  auto purge = [&](bool older_too) {
    start_together();
    for (int i = 0; i < kKeys; i += 3) {
      EXPECT_OK(cache_->PurgeKey(TestKey("m/a", i).digest));
    }
    if (older_too) {
      EXPECT_OK(cache_->PurgeOlderThan(0));  // while inserts go on
    }
  };
  std::thread purger(purge, true);
  std::thread purger2(purge, false);  // the same keys: one of two deletes
  a.join();
  b.join();
  purger.join();
  purger2.join();
  uint64_t entries = 0, bytes = 0;
  ASSERT_OK(cache_->ForEachEntry(std::nullopt, [&](const EntryView& e) {
    ++entries;
    bytes += e.stored_bytes;
    return true;
  }));
  auto st = cache_->GetStats();
  ASSERT_OK(st);
  EXPECT_EQ(st->entries, entries);
  EXPECT_EQ(st->bytes, bytes);
}

TEST_P(CacheTest, FlushModelWhileFourThreadsReadAndWrite) {
  // Threads 0-1 write and read other models and check every write; threads
  // 2-3 hammer the model being flushed. Flushes must never poison writes.
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::vector<std::vector<uint64_t>> written(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::string model =
          t < 2 ? "stable/model-" + std::to_string(t) : "victim/model";
      for (uint64_t i = 0; !stop.load() && i < 200000; ++i) {
        const RequestKey key = TestKey(model, i);
        if (!cache_->Insert(key, "response " + std::to_string(i), {}).ok()) {
          ++errors;
        } else if (t < 2) {
          written[static_cast<size_t>(t)].push_back(i);
        }
        auto r = cache_->Lookup(key);
        if (!r.ok()) ++errors;
        if (t < 2 && r.ok() && !r->hit()) ++errors;
        if (r.ok() && r->hit() &&
            r->entry->body != "response " + std::to_string(i)) {
          ++errors;
        }
      }
    });
  }
  // Regression: a reader-preferring fence let the writers starve flushes
  // (tens of seconds per flush). Each flush must get through promptly.
  auto slowest = std::chrono::steady_clock::duration::zero();
  for (int round = 0; round < 20; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_OK(cache_->FlushModel("victim/model"));
    slowest = std::max(slowest, std::chrono::steady_clock::now() - t0);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_LT(slowest, std::chrono::seconds(5));
  stop = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  for (int t = 0; t < 2; ++t) {
    ASSERT_FALSE(written[static_cast<size_t>(t)].empty());
    for (uint64_t i : written[static_cast<size_t>(t)]) {
      ASSERT_EQ(Outcome(TestKey("stable/model-" + std::to_string(t), i)),
                LookupOutcome::kHit)
          << "thread " << t << " entry " << i;
    }
  }
  // Writes still work after all that.
  Put(TestKey("victim/model", 999999), "after");
  EXPECT_EQ(Outcome(TestKey("victim/model", 999999)), LookupOutcome::kHit);
}

INSTANTIATE_TEST_SUITE_P(Modes, CacheTest,
                         ::testing::Values(Mode::kDisk, Mode::kMemory),
                         ModeName);

TEST(MemoryCacheTest, EvictsLeastRecentlyUsedWithinByteBudget) {
  CacheOptions o;
  o.memory_tier_bytes = 64 * 1024;  // 16 shards of 4 KiB
  o.maintenance_interval_ms = 0;
  auto cache = Cache::Open(o);
  ASSERT_OK(cache);
  const std::string body(700, 'x');
  for (int i = 0; i < 1000; ++i) {
    ASSERT_OK(
        (*cache)->Insert(TestKey("m/a", static_cast<uint64_t>(i)), body, {}));
  }
  auto s = (*cache)->GetStats();
  ASSERT_OK(s);
  EXPECT_LE(s->memory_tier_bytes, o.memory_tier_bytes);
  EXPECT_GT(s->evictions, 800u);
  EXPECT_EQ(s->entries, s->memory_tier_entries);
  EXPECT_EQ(s->entries + s->evictions, 1000u);
  // The newest entry is there; the first one is long gone.
  auto last = (*cache)->Lookup(TestKey("m/a", 999));
  ASSERT_OK(last);
  EXPECT_TRUE(last->hit());
  auto first = (*cache)->Lookup(TestKey("m/a", 0));
  ASSERT_OK(first);
  EXPECT_FALSE(first->hit());
}

TEST(MemoryCacheTest, EntryLargerThanBudgetIsRefused) {
  CacheOptions o;
  o.memory_tier_bytes = 16 * 1024;
  auto cache = Cache::Open(o);
  ASSERT_OK(cache);
  EXPECT_THAT((*cache)->Insert(TestKey("m/a", 1), std::string(4096, 'x'), {}),
              StatusIs(StatusCode::kResourceExhausted));
}

}  // namespace
}  // namespace llmcache
