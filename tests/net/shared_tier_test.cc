// RedisTier (the shared tier) against real redis-server processes: entries
// and their TTL, generations (a flush hides old entries on every instance, by
// pub/sub at once and by the periodic check when the message was missed),
// the cross-instance single flight (leader, waiters, a leader that gives up
// or dies), fail open (no server, a slow server, a wrong password), fleet
// statistics, Redis Cluster (entries on every master; a slot migrated while
// entries are read), and the cached client over two tiers sharing one Redis.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fake_openrouter.h"
#include "llmcache/cache.h"
#include "llmcache/net/cached_client.h"
#include "llmcache/net/client.h"
#include "llmcache/net/redis.h"
#include "llmcache/net/redis_tier.h"
#include "testing/io_loop.h"
#include "testing/redis_server.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/test_keys.h"
#include "testing/wait.h"

namespace llmcache::net {
namespace {

using ::llmcache::testing::RedisCluster;
using ::llmcache::testing::RedisServer;
using ::llmcache::testing::TestKey;
using ::llmcache::testing::WaitFor;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

int64_t NowMs() { return Clock::System()->NowMillis(); }

std::shared_ptr<const Entry> MakeEntry(const RequestKey& key, std::string body,
                                       int64_t ttl_ms = 60'000) {
  auto e = std::make_shared<Entry>();
  e->meta.created_ms = NowMs();
  e->meta.expires_ms = ttl_ms > 0 ? e->meta.created_ms + ttl_ms : 0;
  e->meta.model = key.model;
  e->meta.resolved_model = key.model + "-2026";
  e->meta.usage.prompt_tokens = 10;
  e->meta.usage.completion_tokens = 5;
  e->meta.usage.cost_nanousd = 1234;
  e->body = std::move(body);
  return e;
}

// Blocking wrappers over the asynchronous calls.
Result<std::shared_ptr<const Entry>> GetSync(SharedTier& tier,
                                             const RequestKey& key) {
  auto p =
      std::make_shared<std::promise<Result<std::shared_ptr<const Entry>>>>();
  auto f = p->get_future();
  tier.Get(key, [p](Result<std::shared_ptr<const Entry>> r) {
    p->set_value(std::move(r));
  });
  if (f.wait_for(20s) != std::future_status::ready) {
    return DeadlineExceededError("Get never called back");
  }
  return f.get();
}

SharedTier::Lead LeadSync(SharedTier& tier, const RequestKey& key) {
  auto p = std::make_shared<std::promise<SharedTier::Lead>>();
  auto f = p->get_future();
  tier.AcquireLead(key,
                   [p](SharedTier::Lead l) { p->set_value(std::move(l)); });
  EXPECT_EQ(f.wait_for(30s), std::future_status::ready);
  return f.get();
}

// Waits until the tier holds `key` (Put is fire and forget).
bool WaitStored(SharedTier& tier, const RequestKey& key) {
  return WaitFor([&] {
    auto r = GetSync(tier, key);
    return r.ok() && *r != nullptr;
  });
}

RedisTierOptions TierOptions(const std::string& url) {
  RedisTierOptions o;
  Result<RedisUrl> u = RedisUrl::Parse(url);
  EXPECT_TRUE(u.ok()) << u.status();
  if (u.ok()) o.redis.url = *u;
  // Generous: a sanitizer build on a loaded 2-core machine.
  o.redis.command_timeout_ms = 1000;
  o.generation_check_ms = 200;
  o.stats_flush_ms = 100;
  o.lease_ms = 1000;
  o.lease_wait_ms = 10'000;
  o.log = [](std::string_view) {};
  o.redis.log = o.log;
  return o;
}

std::shared_ptr<RedisTier> MakeTier(RedisTierOptions o) {
  auto t = RedisTier::Create(std::move(o));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *t : nullptr;
}

class SharedTierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = RedisServer::Start({});
    ASSERT_TRUE(r.ok()) << r.status();
    redis_ = std::move(*r);
    a_ = MakeTier(TierOptions(redis_->url()));
    b_ = MakeTier(TierOptions(redis_->url()));
    ASSERT_TRUE(a_ && b_);
    ASSERT_TRUE(WaitFor([&] {
      return a_->Health().generations_loaded && b_->Health().generations_loaded;
    }));
  }

  std::unique_ptr<RedisServer> redis_;
  std::shared_ptr<RedisTier> a_, b_;
};

TEST_F(SharedTierTest, AnEntryPutByOneInstanceIsAHitOnAnother) {
  const RequestKey key = TestKey("m/share", 1);
  auto miss = GetSync(*b_, key);
  ASSERT_OK(miss);
  EXPECT_EQ(*miss, nullptr);
  a_->Put(key, MakeEntry(key, R"({"answer":"\u0000 binary \r\n ok"})"));
  ASSERT_TRUE(WaitStored(*b_, key));
  auto hit = GetSync(*b_, key);
  ASSERT_OK(hit);
  ASSERT_NE(*hit, nullptr);
  EXPECT_EQ((*hit)->body, R"({"answer":"\u0000 binary \r\n ok"})");
  EXPECT_EQ((*hit)->meta.model, "m/share");
  EXPECT_EQ((*hit)->meta.resolved_model, "m/share-2026");
  EXPECT_EQ((*hit)->meta.usage.cost_nanousd, 1234);
  EXPECT_GE(b_->Health().hits, 1u);
}

TEST_F(SharedTierTest, TheRedisTtlIsTheEntrysRemainingTtl) {
  const RequestKey key = TestKey("m/ttl", 2);
  a_->Put(key, MakeEntry(key, "{}", 1500));
  ASSERT_TRUE(WaitStored(*a_, key));
  Result<std::string> pttl = redis_->Cli({"PTTL", a_->EntryKey(key.digest)});
  ASSERT_OK(pttl);
  const int64_t ms = std::stoll(*pttl);
  EXPECT_GT(ms, 0);
  EXPECT_LE(ms, 1500);
  // Expired: gone from Redis and a miss.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = GetSync(*b_, key);
        return r.ok() && *r == nullptr;
      },
      5s));
  EXPECT_EQ(*redis_->Cli({"EXISTS", a_->EntryKey(key.digest)}), "0");
}

TEST_F(SharedTierTest, AFlushHidesOldEntriesOnEveryInstanceAndTellsThem) {
  std::atomic<int> told{0};
  std::string told_model;
  std::mutex mu;
  b_->SetFlushListener([&](std::string_view model) {
    std::lock_guard<std::mutex> lock(mu);
    told_model = std::string(model);
    ++told;
  });
  const RequestKey key = TestKey("m/flush", 3);
  const RequestKey other = TestKey("m/other", 4);
  a_->Put(key, MakeEntry(key, "{\"v\":1}"));
  a_->Put(other, MakeEntry(other, "{\"v\":2}"));
  ASSERT_TRUE(WaitStored(*b_, key));
  ASSERT_TRUE(WaitStored(*b_, other));

  Result<uint64_t> gen = a_->FlushModel("m/flush");
  ASSERT_OK(gen);
  EXPECT_EQ(*gen, 1u);
  // A sees it at once (its own flush); B learns it by pub/sub.
  auto on_a = GetSync(*a_, key);
  ASSERT_OK(on_a);
  EXPECT_EQ(*on_a, nullptr);
  ASSERT_TRUE(WaitFor([&] { return told.load() == 1; }, 5s));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(told_model, "m/flush");
  }
  auto on_b = GetSync(*b_, key);
  ASSERT_OK(on_b);
  EXPECT_EQ(*on_b, nullptr);
  EXPECT_GE(b_->Health().stale, 1u);
  // The other model is untouched; the flush walked no keys.
  auto kept = GetSync(*b_, other);
  ASSERT_OK(kept);
  EXPECT_NE(*kept, nullptr);
  // New entries of the flushed model are visible again.
  a_->Put(key, MakeEntry(key, "{\"v\":3}"));
  ASSERT_TRUE(WaitStored(*b_, key));
  EXPECT_EQ((*GetSync(*b_, key))->body, "{\"v\":3}");

  // Everything.
  ASSERT_OK(a_->FlushAll());
  ASSERT_TRUE(WaitFor([&] { return told.load() == 2; }, 5s));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(told_model, "");  // the whole cache
  }
  EXPECT_EQ(*GetSync(*b_, other), nullptr);
  EXPECT_EQ(*GetSync(*b_, key), nullptr);
}

TEST_F(SharedTierTest, AMissedFlushMessageIsLearnedByThePeriodicCheck) {
  std::atomic<int> told{0};
  b_->SetFlushListener([&](std::string_view) { ++told; });
  const RequestKey key = TestKey("m/missed", 5);
  a_->Put(key, MakeEntry(key, "{}"));
  ASSERT_TRUE(WaitStored(*b_, key));
  // A flush by someone who never publishes (as if the message was lost).
  ASSERT_OK(redis_->Cli({"HINCRBY", "llmcache:gen", "m/missed", "1"}));
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitFor([&] { return told.load() == 1; }, 5s));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 3s);  // generation_check_ms is 200 ms here
  EXPECT_EQ(*GetSync(*b_, key), nullptr);
}

TEST_F(SharedTierTest, AFlushMissedWhileDownIsLearnedAtStartFromTheFile) {
  llmcache::testing::TempDir dir;
  RedisTierOptions o = TierOptions(redis_->url());
  o.generations_file = dir.Sub("generations");
  {
    auto before = MakeTier(o);
    before->SetFlushListener([](std::string_view) {});
    ASSERT_TRUE(WaitFor([&] { return before->Health().generations_loaded; }));
    ASSERT_OK(a_->FlushModel("m/seen"));  // seen (and flushed) while running
    ASSERT_TRUE(WaitFor([&] { return before->Health().remote_flushes == 1; }));
    before->Shutdown();
  }
  {
    std::ifstream file(o.generations_file);
    const std::string text((std::istreambuf_iterator<char>(file)),
                           std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("m/seen\t1\n"), std::string::npos) << text;
  }
  // Flushed while it was down (generation 1 -> 2), and another model once.
  ASSERT_OK(a_->FlushModel("m/seen"));
  ASSERT_OK(a_->FlushModel("m/new"));
  auto after = MakeTier(o);
  ASSERT_NE(after, nullptr);
  std::mutex mu;
  std::vector<std::string> told;
  after->SetFlushListener([&](std::string_view model) {
    std::lock_guard<std::mutex> lock(mu);
    told.emplace_back(model);
  });
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(mu);
    return told.size() == 2;
  }));
  {
    std::lock_guard<std::mutex> lock(mu);
    std::sort(told.begin(), told.end());
    EXPECT_EQ(told, (std::vector<std::string>{"m/new", "m/seen"}));
  }
  // Without the file, a fresh start cannot tell: nothing is flushed.
  auto fresh = MakeTier(TierOptions(redis_->url()));
  int fresh_told = 0;
  fresh->SetFlushListener([&](std::string_view) { ++fresh_told; });
  EXPECT_EQ(fresh_told, 0);
}

TEST_F(SharedTierTest, ARedisThatRestartsEmptyStartsTheGenerationsAgain) {
  const RequestKey key = TestKey("m/reset", 13);
  ASSERT_OK(a_->FlushModel("m/reset"));
  ASSERT_OK(a_->FlushModel("m/reset"));
  redis_->Kill();
  ASSERT_OK(redis_->Restart());  // no persistence: empty
  // B, which knew generation 2, writes; A reads: both start again from 0,
  // so neither sees the other's new entries as stale.
  ASSERT_TRUE(WaitFor(
      [&] {
        b_->Put(key, MakeEntry(key, "{\"after\":1}"));
        auto g = GetSync(*a_, key);
        return g.ok() && *g != nullptr;
      },
      15s));
  EXPECT_EQ((*GetSync(*a_, key))->body, "{\"after\":1}");
}

// Redis restarts empty while an instance is down, and a model is flushed
// again: its generation is 1 again, as the instance last knew it. The
// epoch tells the two apart: the flush is learned at start, and only that
// model's (the other one was not flushed since the restart).
TEST_F(SharedTierTest, AFlushAfterRedisRestartedEmptyIsLearnedAtStart) {
  llmcache::testing::TempDir dir;
  RedisTierOptions o = TierOptions(redis_->url());
  o.generations_file = dir.Sub("generations");
  {
    auto before = MakeTier(o);
    before->SetFlushListener([](std::string_view) {});
    ASSERT_TRUE(WaitFor([&] { return before->Health().generations_loaded; }));
    ASSERT_OK(a_->FlushModel("m/epoch"));
    ASSERT_OK(a_->FlushModel("m/other"));
    ASSERT_TRUE(WaitFor([&] { return before->Health().remote_flushes == 2; }));
    before->Shutdown();
  }
  redis_->Kill();
  ASSERT_OK(redis_->Restart());  // no persistence: empty
  ASSERT_TRUE(WaitFor([&] { return a_->FlushModel("m/epoch").ok(); }, 15s));
  auto gen = redis_->Cli({"HGET", "llmcache:gen", "m/epoch"});
  ASSERT_OK(gen);
  EXPECT_EQ(*gen, "1");

  auto after = MakeTier(o);
  ASSERT_NE(after, nullptr);
  std::mutex mu;
  std::vector<std::string> told;
  after->SetFlushListener([&](std::string_view model) {
    std::lock_guard<std::mutex> lock(mu);
    told.emplace_back(model);
  });
  ASSERT_TRUE(WaitFor([&] { return after->Health().generations_loaded; }));
  // A second check reads the same epoch: nothing more.
  const uint64_t checks = after->Health().remote_flushes;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(told, std::vector<std::string>{"m/epoch"});
  EXPECT_EQ(after->Health().remote_flushes, checks);
}

TEST_F(SharedTierTest, OneLeaderTheOthersWaitForItsValue) {
  const RequestKey key = TestKey("m/lead", 6);
  SharedTier::Lead leader = LeadSync(*a_, key);
  ASSERT_EQ(leader.outcome, SharedTier::LeadOutcome::kLeader);
  ASSERT_FALSE(leader.token.empty());
  // Two waiters on B, answered when A puts the value.
  auto w1 = std::async(std::launch::async, [&] { return LeadSync(*b_, key); });
  auto w2 = std::async(std::launch::async, [&] { return LeadSync(*b_, key); });
  ASSERT_TRUE(WaitFor([&] { return b_->Health().lease_waits == 2; }));
  a_->Put(key, MakeEntry(key, "{\"led\":true}"));
  a_->Release(key, leader.token);
  for (auto* w : {&w1, &w2}) {
    SharedTier::Lead l = w->get();
    ASSERT_EQ(l.outcome, SharedTier::LeadOutcome::kHit);
    ASSERT_NE(l.entry, nullptr);
    EXPECT_EQ(l.entry->body, "{\"led\":true}");
  }
  EXPECT_EQ(b_->Health().lease_hits, 2u);
}

// A poll that times out (a busy host: Redis itself answers, late) is no dead
// leader: the waiter polls again and gets the leader's value, instead of
// paying for the same answer upstream.
TEST_F(SharedTierTest, ASlowPollKeepsWaitingForTheLeader) {
  RedisTierOptions o = TierOptions(redis_->url());
  o.redis.command_timeout_ms = 100;
  // No background commands: only the polls time out (the breaker would
  // open on five failures in a row).
  o.stats_flush_ms = 60'000;
  o.generation_check_ms = 60'000;
  std::shared_ptr<RedisTier> c = MakeTier(o);
  ASSERT_TRUE(c);
  ASSERT_TRUE(WaitFor([&] { return c->Health().generations_loaded; }));
  const RequestKey key = TestKey("m/slow-poll", 7);
  SharedTier::Lead leader = LeadSync(*a_, key);
  ASSERT_EQ(leader.outcome, SharedTier::LeadOutcome::kLeader);
  auto w = std::async(std::launch::async, [&] { return LeadSync(*c, key); });
  ASSERT_TRUE(WaitFor([&] { return c->Health().lease_waits == 1; }));
  const uint64_t timeouts = c->Health().timeouts;
  (void)redis_->Cli({"DEBUG", "SLEEP", "0.3"});  // a poll or two time out
  EXPECT_GT(c->Health().timeouts, timeouts);
  a_->Put(key, MakeEntry(key, "{\"led\":true}"));
  a_->Release(key, leader.token);
  SharedTier::Lead l = w.get();
  ASSERT_EQ(l.outcome, SharedTier::LeadOutcome::kHit);
  ASSERT_NE(l.entry, nullptr);
  EXPECT_EQ(l.entry->body, "{\"led\":true}");
  EXPECT_EQ(c->Health().lease_hits, 1u);
}

TEST_F(SharedTierTest, ALeaderThatGivesUpSendsTheWaitersUpstreamAtOnce) {
  const RequestKey key = TestKey("m/giveup", 7);
  SharedTier::Lead leader = LeadSync(*a_, key);
  ASSERT_EQ(leader.outcome, SharedTier::LeadOutcome::kLeader);
  auto w = std::async(std::launch::async, [&] { return LeadSync(*b_, key); });
  ASSERT_TRUE(WaitFor([&] { return b_->Health().lease_waits == 1; }));
  // Only the holder's token releases the lease.
  b_->Release(key, "not-the-token");
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(w.wait_for(0s), std::future_status::timeout);
  const auto start = std::chrono::steady_clock::now();
  a_->Release(key, leader.token);  // failed upstream: no value
  SharedTier::Lead l = w.get();
  EXPECT_EQ(l.outcome, SharedTier::LeadOutcome::kGoAlone);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(b_->Health().lease_released_empty, 1u);
}

TEST_F(SharedTierTest, ADeadLeadersLeaseExpiresAndItsWaitersGoUpstream) {
  const RequestKey key = TestKey("m/dead", 8);
  // The lease of a leader whose process died (killed: nothing released, no
  // more renewals); it expires after 1 s. (A tier that stops releases its
  // leases: AStoppingLeaderReleasesItsLeases.)
  ASSERT_TRUE(redis_
                  ->Cli({"SET", "llmcache:l:{" + key.Hex() + "}", "dead-token",
                         "PX", "1000"})
                  .ok());
  const auto start = std::chrono::steady_clock::now();
  SharedTier::Lead l = LeadSync(*b_, key);
  EXPECT_EQ(l.outcome, SharedTier::LeadOutcome::kGoAlone);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_LT(waited, 5s);  // lease 1 s, far below the 10 s wait bound
}

TEST_F(SharedTierTest, ALiveLeadersLeaseIsRenewedBeyondItsTtl) {
  RedisTierOptions o = TierOptions(redis_->url());
  o.lease_ms = 1500;  // renewed every 500 ms: room for a stalled thread
  auto holder = MakeTier(o);
  ASSERT_TRUE(WaitFor([&] { return holder->Health().generations_loaded; }));
  const RequestKey key = TestKey("m/renew", 9);
  SharedTier::Lead leader = LeadSync(*holder, key);
  ASSERT_EQ(leader.outcome, SharedTier::LeadOutcome::kLeader);
  auto w = std::async(std::launch::async, [&] { return LeadSync(*b_, key); });
  // Past two lease times: still waiting, since the holder renews its lease.
  EXPECT_EQ(w.wait_for(3500ms), std::future_status::timeout);
  holder->Put(key, MakeEntry(key, "{\"late\":1}"));
  holder->Release(key, leader.token);
  EXPECT_EQ(w.get().outcome, SharedTier::LeadOutcome::kHit);
}

// A tier that stops while it leads (its call dropped at shutdown) releases
// its leases: the waiters elsewhere go upstream at once, not once the lease
// expires.
TEST_F(SharedTierTest, AStoppingLeaderReleasesItsLeases) {
  RedisTierOptions o = TierOptions(redis_->url());
  o.lease_ms = 20'000;
  auto holder = MakeTier(o);
  ASSERT_TRUE(WaitFor([&] { return holder->Health().generations_loaded; }));
  const RequestKey key = TestKey("m/stopping", 12);
  ASSERT_EQ(LeadSync(*holder, key).outcome, SharedTier::LeadOutcome::kLeader);
  auto w = std::async(std::launch::async, [&] { return LeadSync(*b_, key); });
  ASSERT_TRUE(WaitFor([&] { return b_->Health().lease_waits == 1; }));
  const auto start = std::chrono::steady_clock::now();
  holder->Shutdown();
  EXPECT_EQ(w.get().outcome, SharedTier::LeadOutcome::kGoAlone);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(b_->Health().lease_released_empty, 1u);
}

TEST_F(SharedTierTest, AWaitEndsAtItsDeadline) {
  RedisTierOptions o = TierOptions(redis_->url());
  o.lease_wait_ms = 400;
  auto impatient = MakeTier(o);
  ASSERT_TRUE(WaitFor([&] { return impatient->Health().generations_loaded; }));
  const RequestKey key = TestKey("m/deadline", 10);
  ASSERT_EQ(LeadSync(*a_, key).outcome, SharedTier::LeadOutcome::kLeader);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(LeadSync(*impatient, key).outcome,
            SharedTier::LeadOutcome::kGoAlone);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_EQ(impatient->Health().lease_timeouts, 1u);
}

TEST_F(SharedTierTest, FleetStatisticsAreSummedOverInstances) {
  Usage u;
  u.prompt_tokens = 100;
  u.completion_tokens = 20;
  u.cost_nanousd = 5000;
  a_->Record("m/stats", SharedOutcome::kHit, u);
  a_->Record("m/stats", SharedOutcome::kMiss, {});
  b_->Record("m/stats", SharedOutcome::kHit, u);
  b_->Record("m/stats", SharedOutcome::kBypass, {});
  b_->Record("m/other", SharedOutcome::kMiss, {});
  ASSERT_OK(a_->FlushStats());
  ASSERT_OK(b_->FlushStats());
  ASSERT_OK(a_->FlushModel("m/stats"));
  Result<FleetStats> fleet = a_->ReadFleetStats();
  ASSERT_OK(fleet);
  ASSERT_EQ(fleet->models.size(), 2u);
  const FleetModelStats& m = fleet->models[1];
  EXPECT_EQ(m.model, "m/stats");
  EXPECT_EQ(m.hits, 2u);
  EXPECT_EQ(m.misses, 1u);
  EXPECT_EQ(m.bypasses, 1u);
  EXPECT_EQ(m.tokens_saved, 240u);
  EXPECT_EQ(m.cost_saved_nanousd, 10000);
  EXPECT_EQ(m.generation, 1u);
  EXPECT_EQ(fleet->models[0].model, "m/other");
  EXPECT_EQ(fleet->models[0].misses, 1u);
}

// Fleet counters live in Redis hashes that never expire, one per model id,
// and a client may send any id: an instance keeps at most 256 ids of at
// most 256 bytes apart, and counts the rest as "(other models)".
TEST_F(SharedTierTest, FleetStatisticsKeepABoundedNumberOfModels) {
  for (int i = 0; i < 300; ++i) {
    a_->Record("junk/" + std::to_string(i), SharedOutcome::kMiss, {});
  }
  a_->Record(std::string(60'000, 'x'), SharedOutcome::kBypass, {});
  a_->Record("junk/0", SharedOutcome::kMiss, {});  // one of the first
  ASSERT_OK(a_->FlushStats());
  Result<FleetStats> fleet = a_->ReadFleetStats();
  ASSERT_OK(fleet);
  ASSERT_EQ(fleet->models.size(), 257u);
  uint64_t misses = 0, bypasses = 0;
  for (const FleetModelStats& m : fleet->models) {
    EXPECT_LE(m.model.size(), 256u);
    misses += m.misses;
    bypasses += m.bypasses;
    if (m.model == "(other models)") {
      EXPECT_EQ(m.misses, 44u);
      EXPECT_EQ(m.bypasses, 1u);
    } else if (m.model == "junk/0") {
      EXPECT_EQ(m.misses, 2u);
    }
  }
  EXPECT_EQ(misses, 301u);  // nothing lost
  EXPECT_EQ(bypasses, 1u);
  EXPECT_EQ(*redis_->Cli({"SCARD", "llmcache:models"}), "257");
}

TEST_F(SharedTierTest, PurgeByKeyDeletesTheSharedEntry) {
  const RequestKey key = TestKey("m/purge", 11);
  a_->Put(key, MakeEntry(key, "{}"));
  ASSERT_TRUE(WaitStored(*b_, key));
  Result<bool> gone = b_->PurgeKey(key.digest);
  ASSERT_OK(gone);
  EXPECT_TRUE(*gone);
  EXPECT_EQ(*GetSync(*a_, key), nullptr);
  EXPECT_FALSE(*b_->PurgeKey(key.digest));
}

TEST_F(SharedTierTest, ForeignOrCorruptValuesAreMissesNotErrors) {
  const RequestKey key = TestKey("m/corrupt", 12);
  ASSERT_OK(redis_->Cli({"SET", a_->EntryKey(key.digest), "not an entry"}));
  auto r = GetSync(*a_, key);
  ASSERT_OK(r);
  EXPECT_EQ(*r, nullptr);
  ASSERT_OK(redis_->Cli(
      {"SET", a_->EntryKey(key.digest),
       std::string("LCR1") + std::string(16, '\x7f') + "truncated"}));
  r = GetSync(*a_, key);
  ASSERT_OK(r);
  EXPECT_EQ(*r, nullptr);
}

// ---- failing open ----

TEST(SharedTierFailOpenTest, NoServerFailsFastAndReconnectsWhenItComes) {
  auto r = RedisServer::Start({});
  ASSERT_TRUE(r.ok()) << r.status();
  std::unique_ptr<RedisServer> redis = std::move(*r);
  RedisTierOptions o = TierOptions(redis->url());
  o.redis.command_timeout_ms = 200;
  redis->Kill();
  auto tier = MakeTier(o);
  ASSERT_NE(tier, nullptr);
  const RequestKey key = TestKey("m/down", 1);
  for (int i = 0; i < 20; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto g = GetSync(*tier, key);
    EXPECT_FALSE(g.ok());
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
    // Without a shared tier a miss goes upstream alone.
    EXPECT_EQ(LeadSync(*tier, key).outcome, SharedTier::LeadOutcome::kGoAlone);
  }
  EXPECT_FALSE(tier->Health().available);
  ASSERT_OK(redis->Restart());
  ASSERT_TRUE(WaitFor(
      [&] {
        tier->Put(key, MakeEntry(key, "{\"back\":1}"));
        auto g = GetSync(*tier, key);
        return g.ok() && *g != nullptr;
      },
      15s));
  EXPECT_TRUE(tier->Health().available);
}

TEST(SharedTierFailOpenTest, ASlowServerIsAMissWithinTheDeadline) {
  auto r = RedisServer::Start({});
  ASSERT_TRUE(r.ok()) << r.status();
  std::unique_ptr<RedisServer> redis = std::move(*r);
  RedisTierOptions o = TierOptions(redis->url());
  o.redis.command_timeout_ms = 100;
  auto tier = MakeTier(o);
  ASSERT_TRUE(WaitFor([&] { return tier->Health().generations_loaded; }));
  const RequestKey key = TestKey("m/slow", 1);
  std::thread sleeper([&] { (void)redis->Cli({"DEBUG", "SLEEP", "1"}); });
  std::this_thread::sleep_for(100ms);
  const auto start = std::chrono::steady_clock::now();
  auto g = GetSync(*tier, key);
  const auto took = std::chrono::steady_clock::now() - start;
  // One timeout does not open the breaker, but the tier is not answering:
  // /healthz says degraded until a command succeeds again. (Asked while
  // Redis still sleeps: once it wakes, a background check may succeed.)
  const bool available_while_asleep = tier->Health().available;
  sleeper.join();
  EXPECT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kDeadlineExceeded) << g.status();
  EXPECT_LT(took, 800ms);
  EXPECT_GE(tier->Health().timeouts, 1u);
  EXPECT_FALSE(available_while_asleep);
  // And it answers again afterwards.
  ASSERT_TRUE(WaitFor([&] { return GetSync(*tier, key).ok(); }, 10s));
  EXPECT_TRUE(tier->Health().available);
}

TEST(SharedTierFailOpenTest, AWrongPasswordIsRefusedAndNeverShown) {
  llmcache::testing::RedisServerOptions so;
  so.password = "right-horse-battery";
  auto r = RedisServer::Start(so);
  ASSERT_TRUE(r.ok()) << r.status();
  std::unique_ptr<RedisServer> redis = std::move(*r);
  RedisTierOptions o = TierOptions("redis://:WRONG-SECRET-PASSWORD@127.0.0.1:" +
                                   std::to_string(redis->port()));
  std::mutex mu;
  std::string logged;
  o.redis.log = [&](std::string_view line) {
    std::lock_guard<std::mutex> lock(mu);
    logged += std::string(line) + "\n";
  };
  auto tier = MakeTier(o);
  ASSERT_NE(tier, nullptr);
  const RequestKey key = TestKey("m/auth", 1);
  auto g = GetSync(*tier, key);
  EXPECT_FALSE(g.ok());
  const SharedTierHealth h = tier->Health();
  EXPECT_FALSE(h.available);
  EXPECT_EQ(h.url.find("WRONG-SECRET"), std::string::npos) << h.url;
  EXPECT_EQ(h.last_error.find("WRONG-SECRET"), std::string::npos)
      << h.last_error;
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(logged.find("WRONG-SECRET"), std::string::npos) << logged;

  // The right password works.
  auto good = MakeTier(TierOptions(redis->url()));
  ASSERT_TRUE(WaitFor([&] { return good->Health().generations_loaded; }));
  good->Put(key, MakeEntry(key, "{}"));
  EXPECT_TRUE(WaitStored(*good, key));
}

TEST(SharedTierFailOpenTest, AnAclUserAndPasswordAreAccepted) {
  auto r = RedisServer::Start({});
  ASSERT_TRUE(r.ok()) << r.status();
  std::unique_ptr<RedisServer> redis = std::move(*r);
  ASSERT_OK(redis->Cli({"ACL", "SETUSER", "llmcache", "on", ">p%40ss w0rd",
                        "~llmcache:*", "&llmcache:*", "+@all"}));
  auto tier =
      MakeTier(TierOptions("redis://llmcache:p%2540ss%20w0rd@127.0.0.1:" +
                           std::to_string(redis->port())));
  ASSERT_TRUE(WaitFor([&] { return tier->Health().generations_loaded; }));
  const RequestKey key = TestKey("m/acl", 1);
  tier->Put(key, MakeEntry(key, "{}"));
  EXPECT_TRUE(WaitStored(*tier, key));
  // The same user with another password is refused.
  auto wrong = MakeTier(TierOptions("redis://llmcache:nope@127.0.0.1:" +
                                    std::to_string(redis->port())));
  EXPECT_FALSE(GetSync(*wrong, key).ok());
}

TEST(SharedTierFailOpenTest, AFullRedisRefusesWritesAndReadsGoOn) {
  llmcache::testing::RedisServerOptions so;
  so.maxmemory = "2mb";
  so.maxmemory_policy = "noeviction";
  auto r = RedisServer::Start(so);
  ASSERT_TRUE(r.ok()) << r.status();
  std::unique_ptr<RedisServer> redis = std::move(*r);
  RedisTierOptions options = TierOptions(redis->url());
  std::mutex mu;
  std::vector<std::string> lines;
  options.log = [&](std::string_view line) {
    std::lock_guard<std::mutex> lock(mu);
    lines.emplace_back(line);
  };
  auto tier = MakeTier(options);
  ASSERT_TRUE(WaitFor([&] { return tier->Health().generations_loaded; }));
  const RequestKey first = TestKey("m/full", 0);
  tier->Put(first, MakeEntry(first, "{\"first\":1}"));
  ASSERT_TRUE(WaitStored(*tier, first));
  const std::string big(64 << 10, 'x');
  for (int i = 1; i <= 40; ++i) {
    const RequestKey k = TestKey("m/full", static_cast<uint64_t>(i));
    tier->Put(k, MakeEntry(k, "\"" + big + "\""));
  }
  ASSERT_TRUE(WaitFor([&] { return tier->Health().put_errors > 0; }, 10s));
  auto g = GetSync(*tier, first);
  ASSERT_OK(g);
  EXPECT_NE(*g, nullptr);
  // The refusals are errors, and said once (not once per entry).
  const SharedTierHealth h = tier->Health();
  EXPECT_GT(h.errors, 0u);
  // While writes are refused the tier is degraded, reads or not; the first
  // write taken again ends that.
  EXPECT_TRUE(WaitFor([&] { return !tier->Health().available; }, 5s));
  ASSERT_OK(redis->Cli({"CONFIG", "SET", "maxmemory", "0"}));
  EXPECT_TRUE(WaitFor(
      [&] {
        tier->Put(first, MakeEntry(first, "{\"again\":1}"));
        return tier->Health().available;
      },
      5s));
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr("the server refused a write: OOM"));
}

// ---- Redis Cluster ----

// A digest whose entry key hashes to `slot`.
RequestKey KeyInSlot(RedisTier& tier, const std::string& model, int slot,
                     uint64_t* seed) {
  for (;;) {
    RequestKey k = TestKey(model, (*seed)++);
    if (RedisKeySlot(tier.EntryKey(k.digest)) == slot) return k;
  }
}

TEST(SharedTierClusterTest, EntriesSpreadOverEveryMasterAndSurviveAMove) {
  auto c = RedisCluster::Start(3);
  ASSERT_TRUE(c.ok()) << c.status();
  std::unique_ptr<RedisCluster> cluster = std::move(*c);
  auto a = MakeTier(TierOptions(cluster->url()));
  // The other instance finds the cluster from one seed.
  auto b = MakeTier(TierOptions("redis://127.0.0.1:" +
                                std::to_string(cluster->node(1).port())));
  ASSERT_TRUE(WaitFor([&] {
    return a->Health().generations_loaded && b->Health().generations_loaded;
  }));
  std::vector<RequestKey> keys;
  for (uint64_t i = 0; i < 60; ++i) {
    keys.push_back(TestKey("m/one-model", i));
    a->Put(keys.back(),
           MakeEntry(keys.back(), "{\"i\":" + std::to_string(i) + "}"));
  }
  for (const RequestKey& k : keys) ASSERT_TRUE(WaitStored(*b, k));
  EXPECT_TRUE(b->Health().cluster);
  EXPECT_EQ(b->Health().nodes, 3u);
  // One model's entries are spread over every master.
  for (size_t n = 0; n < cluster->size(); ++n) {
    Result<uint64_t> size = cluster->DbSize(n);
    ASSERT_OK(size);
    EXPECT_GT(*size, 5u) << "master " << n;
  }

  // Move a slot holding 20 entries while B reads them: no miss, no error.
  uint64_t seed = 1000;
  const int slot = RedisKeySlot(a->EntryKey(keys[0].digest));
  std::vector<RequestKey> moving;
  for (int i = 0; i < 20; ++i) {
    moving.push_back(KeyInSlot(*a, "m/one-model", slot, &seed));
    a->Put(moving.back(), MakeEntry(moving.back(), "{\"moving\":1}"));
  }
  for (const RequestKey& k : moving) ASSERT_TRUE(WaitStored(*b, k));
  Result<size_t> owner = cluster->NodeOfSlot(slot);
  ASSERT_OK(owner);
  const size_t to = (*owner + 1) % cluster->size();
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, misses{0}, errors{0};
  std::thread reader([&] {
    while (!done.load()) {
      for (const RequestKey& k : moving) {
        auto g = GetSync(*b, k);
        ++reads;
        if (!g.ok()) {
          ++errors;
        } else if (*g == nullptr) {
          ++misses;
        }
      }
    }
  });
  Status moved = cluster->MigrateSlot(slot, to, /*pause_ms=*/500);
  std::this_thread::sleep_for(300ms);
  done = true;
  reader.join();
  ASSERT_OK(moved);
  EXPECT_GT(reads.load(), 40);
  EXPECT_EQ(misses.load(), 0);
  EXPECT_EQ(errors.load(), 0);
  const SharedTierHealth h = b->Health();
  EXPECT_GT(h.moved + h.ask, 0u);
  EXPECT_EQ(*cluster->NodeOfSlot(slot), to);
  // A flush reaches the whole cluster: one HINCRBY, one PUBLISH.
  ASSERT_OK(a->FlushModel("m/one-model"));
  ASSERT_TRUE(WaitFor([&] {
    auto g = GetSync(*b, keys[5]);
    return g.ok() && *g == nullptr;
  }));
}

// ---- the cached client over two tiers sharing one Redis ----

class SharedPipelineTest : public SharedTierTest {
 protected:
  void SetUp() override {
    SharedTierTest::SetUp();
    auto f = fake::FakeOpenRouter::Start(fake::FakeOptions{});
    ASSERT_OK(f);
    fake_ = std::move(*f);
    a_client_ = MakeClient(a_);
    b_client_ = MakeClient(b_);
  }

  // The tiers' threads post the pipeline's continuations to loop_: they
  // must have ended before loop_'s io_context goes (CachedClient's lifetime
  // rule).
  void TearDown() override {
    a_client_.reset();
    b_client_.reset();
    if (a_) a_->Shutdown();
    if (b_) b_->Shutdown();
  }

  std::shared_ptr<CachedClient> MakeClient(std::shared_ptr<RedisTier> tier,
                                           bool flush_on_drift = false) {
    CacheOptions co;  // memory only
    auto cache = Cache::Open(co);
    EXPECT_TRUE(cache.ok());
    ClientOptions o;
    o.base_url = fake_->base_url();
    o.api_key = "k";
    auto client = Client::Create(loop_.ioc().get_executor(), o);
    EXPECT_TRUE(client.ok()) << client.status();
    CachedClientOptions cco;
    cco.shared = std::move(tier);
    cco.flush_on_model_drift = flush_on_drift;
    cco.log = [](std::string_view) {};
    return CachedClient::Create(std::shared_ptr<Cache>(std::move(*cache)),
                                *client, cco);
  }

  static Result<CachedResponse> Run(
      CachedClient& c, const std::string& body,
      Endpoint endpoint = Endpoint::kChatCompletions) {
    auto p = std::make_shared<std::promise<Result<CachedResponse>>>();
    auto f = p->get_future();
    CachedRequest req;
    req.endpoint = endpoint;
    req.body = body;
    c.Complete(std::move(req), nullptr,
               [p](Result<CachedResponse> r) { p->set_value(std::move(r)); });
    if (f.wait_for(30s) != std::future_status::ready) {
      return DeadlineExceededError("no answer");
    }
    return f.get();
  }

  static std::string Body(const std::string& model, const std::string& text) {
    return R"({"model":")" + model +
           R"(","temperature":0,"messages":[{"role":"user","content":")" +
           text + R"("}]})";
  }

  ::llmcache::testing::IoLoop loop_;
  std::unique_ptr<fake::FakeOpenRouter> fake_;
  std::shared_ptr<CachedClient> a_client_, b_client_;
};

// A model drift seen on one instance that flushes on drift flushes the model
// in the shared tier too: neither instance answers with the old model's
// entries any more, from its own tiers or from Redis.
TEST_F(SharedPipelineTest, AFlushOnDriftReachesTheSharedTier) {
  a_client_ = MakeClient(a_, /*flush_on_drift=*/true);
  const std::string old1 = Body("m/drift", "one");
  const std::string old2 = Body("m/drift", "two");
  for (const std::string* body : {&old1, &old2}) {
    auto r = Run(*a_client_, *body);
    ASSERT_OK(r);
    EXPECT_TRUE(r->stored);
  }
  ASSERT_TRUE(WaitFor([&] { return a_->Health().puts == 2; }));
  auto hit = Run(*b_client_, old1);
  ASSERT_OK(hit);
  EXPECT_EQ(hit->result, CacheResult::kHit);
  // The same model answered by a newer one: a drift, and its flush.
  auto drifted =
      Run(*a_client_,
          R"({"model":"m/drift","temperature":0,"x_fake_resolved_model":)"
          R"("m/drift-2099","messages":[{"role":"user","content":"three"}]})");
  ASSERT_OK(drifted);
  EXPECT_EQ(a_client_->stats().model_drifts, 1u);
  ASSERT_TRUE(WaitFor([&] { return b_->Health().remote_flushes >= 1; }))
      << "the other instance never heard of the flush";
  auto b_old = Run(*b_client_, old2);
  ASSERT_OK(b_old);
  EXPECT_EQ(b_old->result, CacheResult::kMiss);
  auto a_old = Run(*a_client_, old1);
  ASSERT_OK(a_old);
  EXPECT_EQ(a_old->result, CacheResult::kMiss);
}

TEST_F(SharedPipelineTest, AMissOnOneInstanceIsAHitOnTheOtherAndFillsIt) {
  auto miss = Run(*a_client_, Body("m/pipe", "hello"));
  ASSERT_OK(miss);
  EXPECT_EQ(miss->result, CacheResult::kMiss);
  EXPECT_TRUE(miss->stored);
  ASSERT_TRUE(WaitFor([&] { return a_->Health().puts == 1; }));
  // Put is asynchronous: wait until it landed.
  ASSERT_TRUE(WaitFor([&] { return *redis_->Cli({"DBSIZE"}) != "0"; }));
  auto hit = Run(*b_client_, Body("m/pipe", "hello"));
  ASSERT_OK(hit);
  EXPECT_EQ(hit->result, CacheResult::kHit);
  EXPECT_EQ(hit->body, miss->body);
  EXPECT_EQ(fake_->completions(), 1u);
  const CachedClientStats bs = b_client_->stats();
  EXPECT_EQ(bs.shared_hits, 1u);
  // The fill runs after the answer, on the client's executor.
  ASSERT_TRUE(WaitFor([&] { return b_client_->stats().shared_fills == 1; }));
  // B's local tier now holds it: a hit without Redis.
  const uint64_t gets = b_->Health().gets;
  auto again = Run(*b_client_, Body("m/pipe", "hello"));
  ASSERT_OK(again);
  EXPECT_EQ(again->result, CacheResult::kHit);
  EXPECT_EQ(b_->Health().gets, gets);
}

TEST_F(SharedPipelineTest, EmbeddingInputsAreSharedAcrossInstances) {
  auto a = Run(*a_client_, R"({"model":"m/emb","input":["one","two"]})",
               Endpoint::kEmbeddings);
  ASSERT_OK(a);
  EXPECT_TRUE(a->stored);
  // One shared entry per input. `puts` counts SETs sent; wait for Redis to
  // hold both entries too (the replies come later).
  ASSERT_TRUE(WaitFor([&] { return a_->Health().puts == 2; }));
  ASSERT_TRUE(WaitFor([&] {
    Result<std::string> keys = redis_->Cli({"EVAL",
                                            "return #redis.call('KEYS', "
                                            "ARGV[1])",
                                            "0", "*e:{*"});
    return keys.ok() && *keys == "2";
  }));
  auto b = Run(*b_client_, R"({"model":"m/emb","input":["two","three","one"]})",
               Endpoint::kEmbeddings);
  ASSERT_OK(b);
  EXPECT_EQ(b->result, CacheResult::kMiss);  // "three" was new
  EXPECT_EQ(fake_->embedded_items(), 3u);
  EXPECT_EQ(b_client_->stats().shared_hits, 2u);
  const std::string ab = a->body, bb = b->body;
  boost::system::error_code ec;
  const boost::json::value ja = boost::json::parse(ab, ec);
  const boost::json::value jb = boost::json::parse(bb, ec);
  EXPECT_EQ(jb.at("data").at(0).at("embedding"),
            ja.at("data").at(1).at("embedding"));
  EXPECT_EQ(jb.at("data").at(2).at("embedding"),
            ja.at("data").at(0).at("embedding"));
  EXPECT_EQ(jb.at("data").at(2).at("index").to_number<int>(), 2);

  // A single input found in the shared tier answers usage 0, as a batch's
  // hit does (the spend was the instance's that stored it).
  auto four = Run(*a_client_, R"({"model":"m/emb","input":"four"})",
                  Endpoint::kEmbeddings);
  ASSERT_OK(four);
  ASSERT_TRUE(WaitFor([&] {  // one, two, three (from B) and four
    Result<std::string> keys = redis_->Cli(
        {"EVAL", "return #redis.call('KEYS', ARGV[1])", "0", "*e:{*"});
    return keys.ok() && *keys == "4";
  }));
  const uint64_t shared_before = b_client_->stats().shared_hits;
  auto single = Run(*b_client_, R"({"model":"m/emb","input":"four"})",
                    Endpoint::kEmbeddings);
  ASSERT_OK(single);
  EXPECT_EQ(single->result, CacheResult::kHit);
  EXPECT_EQ(b_client_->stats().shared_hits, shared_before + 1);
  const boost::json::value js = boost::json::parse(single->body, ec);
  ASSERT_FALSE(ec) << single->body;
  EXPECT_EQ(js.at("usage").at("prompt_tokens").to_number<int>(), 0);
  const boost::json::value j4 = boost::json::parse(four->body, ec);
  EXPECT_GT(j4.at("usage").at("prompt_tokens").to_number<int>(), 0);
  EXPECT_EQ(js.at("data").at(0).at("embedding"),
            j4.at("data").at(0).at("embedding"));
}

TEST_F(SharedPipelineTest, AMessagesAnswerOnOneInstanceIsAHitOnTheOther) {
  const std::string body =
      R"({"model":"m/msg","max_tokens":16,"temperature":0,)"
      R"("messages":[{"role":"user","content":"hi"}]})";
  auto miss = Run(*a_client_, body, Endpoint::kMessages);
  ASSERT_OK(miss);
  ASSERT_TRUE(miss->stored) << miss->not_stored_reason;
  ASSERT_TRUE(WaitFor([&] { return a_->Health().puts == 1; }));
  // `puts` counts SETs sent: wait until Redis holds the entry too.
  ASSERT_TRUE(WaitFor([&] {
    Result<std::string> n =
        redis_->Cli({"EXISTS", "llmcache:e:{" + miss->key_hex + "}"});
    return n.ok() && *n == "1";
  }));
  auto hit = Run(*b_client_, body, Endpoint::kMessages);
  ASSERT_OK(hit);
  EXPECT_EQ(hit->result, CacheResult::kHit);
  EXPECT_EQ(hit->body, miss->body);
  EXPECT_EQ(fake_->messages(), 1u);
}

TEST_F(SharedPipelineTest, AFlushElsewhereDropsTheModelFromTheLocalTiers) {
  ASSERT_OK(Run(*a_client_, Body("m/drop", "x")));
  ASSERT_TRUE(WaitFor([&] { return *redis_->Cli({"DBSIZE"}) != "0"; }));
  auto hit = Run(*b_client_, Body("m/drop", "x"));
  ASSERT_OK(hit);
  ASSERT_EQ(hit->result, CacheResult::kHit);  // now in B's memory too
  ASSERT_OK(a_->FlushModel("m/drop"));
  ASSERT_TRUE(WaitFor([&] { return b_->Health().remote_flushes == 1; }));
  auto after = Run(*b_client_, Body("m/drop", "x"));
  ASSERT_OK(after);
  EXPECT_EQ(after->result, CacheResult::kMiss);
  EXPECT_EQ(fake_->completions(), 2u);
}

TEST_F(SharedPipelineTest, AWaitForAnotherLeadGoesAloneWhenTheTierShutsDown) {
  // Another instance holds the lease and will not answer (lease_wait_ms is
  // 10 s here): A's request waits, polling.
  const std::string body = Body("m/wait", "x");
  CachedRequest req;
  req.body = body;
  Result<PreparedRequest> prepared = a_client_->Prepare(std::move(req));
  ASSERT_OK(prepared);
  ASSERT_OK(redis_->Cli({"SET", "llmcache:l:{" + prepared->key().Hex() + "}",
                         "elsewhere", "PX", "60000"}));
  auto answer =
      std::async(std::launch::async, [&] { return Run(*a_client_, body); });
  ASSERT_TRUE(WaitFor([&] { return a_->Health().lease_waits == 1; }));
  // Shutting the tier down ends the wait: the request goes upstream alone
  // (a stopped tier never runs its poll timers again).
  a_->Shutdown();
  Result<CachedResponse> r = answer.get();
  ASSERT_OK(r);
  EXPECT_EQ(r->result, CacheResult::kMiss);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(fake_->completions(), 1u);
  EXPECT_EQ(a_client_->stats().shared_go_alone, 1u);
}

TEST_F(SharedPipelineTest, ConcurrentMissesOnTwoInstancesMakeOneUpstreamCall) {
  // A's misses take the shared lead; B's start once A holds it. Either way
  // one upstream call answers all eight.
  const std::string body = Body("fake/delay-1500", "same");
  std::vector<std::future<Result<CachedResponse>>> answers;
  auto start = [&](CachedClient& c) {
    answers.push_back(
        std::async(std::launch::async, [&c, body] { return Run(c, body); }));
  };
  for (int i = 0; i < 4; ++i) start(*a_client_);
  ASSERT_TRUE(WaitFor([&] { return a_client_->stats().shared_leads == 1; }));
  for (int i = 0; i < 4; ++i) start(*b_client_);
  std::string first;
  for (auto& f : answers) {
    Result<CachedResponse> r = f.get();
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 200);
    if (first.empty()) first = r->body;
    EXPECT_EQ(r->body, first);
  }
  EXPECT_EQ(fake_->completions(), 1u);
  const CachedClientStats as = a_client_->stats(), bs = b_client_->stats();
  EXPECT_EQ(as.shared_leads, 1u);
  EXPECT_EQ(bs.shared_leads, 0u);
  // B waited for A's answer, or (when A's lead is counted only once its
  // call is done, or a loaded machine let it finish first) found it stored.
  EXPECT_GE(bs.shared_lead_hits + bs.shared_hits, 1u);
}

TEST_F(SharedPipelineTest, ErrorsAreNeverShared) {
  auto r = Run(*a_client_, Body("fake/fault-500", "e"));
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 500);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(a_->Health().puts, 0u);
  EXPECT_EQ(*redis_->Cli({"EXISTS", "llmcache:e:{" + r->key_hex + "}"}), "0");
}

}  // namespace
}  // namespace llmcache::net
