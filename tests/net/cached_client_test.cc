// CachedClient: hit / miss / bypass, single flight, fail open, nothing bad
// cached, streams and their replay, model drift.

#include "llmcache/net/cached_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cmath>
#include <future>
#include <mutex>
#include <thread>

#include "fake_openrouter.h"
#include "llmcache/net/shared_tier.h"
#include "llmcache/net/sse.h"
#include "testing/fault_fs.h"
#include "testing/io_loop.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

namespace llmcache::net {
namespace {

namespace asio = boost::asio;
using ::llmcache::fake::FakeOpenRouter;
using ::llmcache::fake::FakeOptions;
using ::llmcache::testing::StatusIs;
using namespace std::chrono_literals;

std::string Body(const std::string& model, bool stream = false,
                 const std::string& extra = R"("temperature":0)",
                 const std::string& text = "What is 2+2?") {
  return R"({"model":")" + model + R"(",)" + extra + "," +
         (stream ? R"("stream":true,)" : "") +
         R"("messages":[{"role":"user","content":")" + text + R"("}]})";
}

using Loop = ::llmcache::testing::IoLoop;

struct Collected {
  std::vector<std::string> events;
  StreamHandler Handler() {
    return [this](std::string_view d) {
      std::lock_guard<std::mutex> lock(mu);
      events.emplace_back(d);
      return true;
    };
  }
  std::string Content() {
    StreamAccumulator acc;
    for (const auto& e : events) EXPECT_OK(acc.Add(e));
    EXPECT_TRUE(acc.done());
    return acc.Result().content;
  }
  std::mutex mu;
};

class CachedClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto f = FakeOpenRouter::Start(FakeOptions{});
    ASSERT_OK(f);
    fake_ = std::move(f).value();
    CacheOptions co;
    co.path = dir_.path() + "/db";
    co.maintenance_interval_ms = 0;
    auto c = Cache::Open(co);
    ASSERT_OK(c);
    cache_ = std::shared_ptr<Cache>(std::move(c).value());
    cached_ = Make(cache_, CachedClientOptions{});
  }

  std::shared_ptr<CachedClient> Make(std::shared_ptr<Cache> cache,
                                     CachedClientOptions o,
                                     int max_attempts = 1) {
    ClientOptions co;
    co.base_url = fake_->base_url();
    co.api_key = "k";
    co.max_attempts = max_attempts;
    co.initial_backoff = 10ms;
    auto client = Client::Create(loop_.ioc().get_executor(), co);
    EXPECT_OK(client);
    if (!o.log)
      o.log = [this](std::string_view l) {
        std::lock_guard<std::mutex> lock(log_mu_);
        log_.emplace_back(l);
      };
    return CachedClient::Create(std::move(cache), *client, std::move(o));
  }

  // The fake's model list as prices, fetched as serve fetches them.
  Result<PricingTable> FetchFakePricing() {
    ClientOptions co;
    co.base_url = fake_->base_url();
    co.api_key = "k";
    auto client = Client::Create(loop_.ioc().get_executor(), co);
    if (!client.ok()) return client.status();
    std::promise<Result<PricingTable>> p;
    FetchPricing(**client,
                 [&](Result<PricingTable> t) { p.set_value(std::move(t)); });
    return p.get_future().get();
  }

  Result<CachedResponse> Call(CachedClient& c, const std::string& body,
                              StreamHandler chunks = nullptr,
                              CachedRequest req = {}) {
    req.body = body;
    return c.AsyncComplete(std::move(req), std::move(chunks), asio::use_future)
        .get();
  }

  llmcache::testing::TempDir dir_;
  Loop loop_;
  std::unique_ptr<FakeOpenRouter> fake_;
  std::shared_ptr<Cache> cache_;
  std::shared_ptr<CachedClient> cached_;
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

TEST_F(CachedClientTest, MissThenHitWithStoredUsage) {
  auto first = Call(*cached_, Body("openai/gpt-4o-mini"));
  ASSERT_OK(first);
  EXPECT_EQ(first->result, CacheResult::kMiss);
  EXPECT_TRUE(first->stored) << first->not_stored_reason;
  auto second = Call(*cached_, Body("openai/gpt-4o-mini"));
  ASSERT_OK(second);
  EXPECT_EQ(second->result, CacheResult::kHit);
  EXPECT_EQ(second->body, first->body);
  EXPECT_EQ(second->key_hex, first->key_hex);
  EXPECT_EQ(second->usage, first->usage);
  EXPECT_GT(second->usage.prompt_tokens, 0u);
  EXPECT_EQ(fake_->completions(), 1u);
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->hits, 1u);
  EXPECT_EQ(stats->tokens_saved,
            first->usage.prompt_tokens + first->usage.completion_tokens);
}

TEST_F(CachedClientTest, NonDeterministicRequestBypasses) {
  for (int i = 0; i < 2; ++i) {
    auto r = Call(*cached_,
                  Body("openai/gpt-4o-mini", false, R"("temperature":0.7)"));
    ASSERT_OK(r);
    EXPECT_EQ(r->result, CacheResult::kBypass);
    EXPECT_EQ(r->bypass_reason, BypassReason::kNonZeroTemperature);
    EXPECT_FALSE(r->stored);
  }
  EXPECT_EQ(fake_->completions(), 2u);
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(
      stats->bypasses[static_cast<size_t>(BypassReason::kNonZeroTemperature)],
      2u);
}

TEST_F(CachedClientTest, FiftyConcurrentIdenticalMissesMakeOneUpstreamCall) {
  const std::string body = Body("fake/delay-300");
  std::vector<std::future<Result<CachedResponse>>> futures;
  for (int i = 0; i < 50; ++i) {
    CachedRequest req;
    req.body = body;
    futures.push_back(
        cached_->AsyncComplete(std::move(req), nullptr, asio::use_future));
  }
  std::string content;
  int joined = 0;
  for (auto& f : futures) {
    auto r = f.get();
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 200);
    if (content.empty()) content = r->parsed.content;
    EXPECT_EQ(r->parsed.content, content);
    joined += r->joined_flight ? 1 : 0;
  }
  EXPECT_EQ(fake_->completions(), 1u);
  EXPECT_EQ(joined, 49);
  EXPECT_EQ(cached_->stats().upstream_calls, 1u);
}

TEST_F(CachedClientTest, LeaderWhoLeavesDoesNotFailTheWaiters) {
  // The leader streams and hangs up at its second event (150 ms after the
  // first); a second caller joins the flight once the first event arrived.
  // The stream goes on for the waiter, which gets the whole answer, and it
  // is stored: one upstream call.
  const std::string body = Body("fake/slow-150", /*stream=*/true);
  CachedRequest lead;
  lead.body = body;
  std::atomic<int> leader_events{0};
  auto leader = cached_->AsyncComplete(
      std::move(lead), [&](std::string_view) { return ++leader_events < 2; },
      asio::use_future);
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return leader_events >= 1; }))
      << "the leader's stream never started";
  CachedRequest wait;
  wait.body = body;
  auto waiter =
      cached_->AsyncComplete(std::move(wait), nullptr, asio::use_future);
  auto w = waiter.get();
  ASSERT_OK(w);
  EXPECT_EQ(w->status, 200);
  EXPECT_TRUE(w->joined_flight);
  EXPECT_FALSE(w->parsed.content.empty());
  auto l = leader.get();  // it must not hang
  EXPECT_OK(l);
  EXPECT_EQ(leader_events, 2);
  EXPECT_EQ(fake_->completions(), 1u);
  auto again = Call(*cached_, body);
  ASSERT_OK(again);
  EXPECT_EQ(again->result, CacheResult::kHit);
  EXPECT_EQ(again->parsed.content, w->parsed.content);
}

TEST_F(CachedClientTest, LeaderWhoLeavesAloneCancelsTheUpstreamCall) {
  const std::string body = Body("fake/slow-150", /*stream=*/true);
  int events = 0;
  auto r = Call(*cached_, body, [&](std::string_view) { return ++events < 2; });
  EXPECT_EQ(r.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(events, 2);
  auto again = Call(*cached_, body);
  ASSERT_OK(again);
  EXPECT_EQ(again->result, CacheResult::kMiss);  // nothing was stored
}

TEST_F(CachedClientTest, ConcurrentMissesShareAnUpstreamError) {
  std::vector<std::future<Result<CachedResponse>>> futures;
  for (int i = 0; i < 10; ++i) {
    CachedRequest req;
    req.body = Body("fake/fault-502", false, R"("temperature":0)", "slow?");
    futures.push_back(
        cached_->AsyncComplete(std::move(req), nullptr, asio::use_future));
  }
  for (auto& f : futures) {
    auto r = f.get();
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 502);
    EXPECT_FALSE(r->stored);
  }
  EXPECT_LE(fake_->completions(), 10u);
  auto again = Call(
      *cached_, Body("fake/fault-502", false, R"("temperature":0)", "slow?"));
  ASSERT_OK(again);
  EXPECT_EQ(again->result, CacheResult::kMiss);  // the error was not cached
}

// A cache whose every operation fails, as a full or corrupt disk would.
class BrokenCache final : public Cache {
 public:
  Result<LookupResult> Lookup(const RequestKey&,
                              const LookupOptions&) override {
    return Status(StatusCode::kDataLoss, "disk on fire");
  }
  Status Insert(const RequestKey&, std::string_view,
                const InsertOptions&) override {
    return ResourceExhaustedError("no space left on device");
  }
  void RecordBypass(BypassReason) override {}
  Result<uint64_t> FlushModel(std::string_view) override { return Fail(); }
  Status FlushAll() override { return Fail(); }
  Result<uint64_t> PurgeKey(const Digest&) override { return Fail(); }
  Result<uint64_t> PurgeNamespace(std::string_view) override { return Fail(); }
  Result<uint64_t> PurgeExpired() override { return Fail(); }
  Result<uint64_t> PurgeOlderThan(int64_t) override { return Fail(); }
  Result<uint64_t> PurgeCreatedBefore(int64_t) override { return Fail(); }
  Result<std::shared_ptr<const Entry>> Find(const Digest&) override {
    return Fail();
  }
  Status ForEachEntry(
      const std::optional<std::string>&,
      const std::function<bool(const EntryView&)>&,
      const std::function<void(std::string_view, const Status&)>&) override {
    return Fail();
  }
  Result<CacheStats> GetStats() override { return Fail(); }
  Status CatchUp() override { return Status(); }
  using Cache::Compact;
  Status Compact(const CompactOptions&) override { return Fail(); }
  Status RunMaintenance() override { return Fail(); }
  bool persistent() const override { return true; }
  int64_t default_ttl_ms() const override { return 3'600'000; }

 private:
  static Status Fail() { return UnavailableError("broken"); }
};

TEST_F(CachedClientTest, StoreFailureStillServesTheRequest) {
  auto broken = Make(std::make_shared<BrokenCache>(), CachedClientOptions{});
  for (int i = 0; i < 3; ++i) {
    auto r = Call(*broken, Body("openai/gpt-4o-mini"));
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_FALSE(r->parsed.content.empty());
    EXPECT_FALSE(r->stored);
  }
  EXPECT_EQ(broken->stats().store_errors, 6u);  // 3 lookups + 3 inserts
  std::lock_guard<std::mutex> lock(log_mu_);
  int store_lines = 0;
  for (const auto& l : log_)
    store_lines += l.find("store") != std::string::npos;
  EXPECT_EQ(store_lines, 1);  // logged once per interval, not per request
}

TEST_F(CachedClientTest, NoFaultResponseIsEverCached) {
  struct Case {
    std::string model;
    bool stream;
  };
  const std::vector<Case> cases = {
      {"fake/fault-502", false}, {"fake/fault-429", false},
      {"fake/error-200", false}, {"fake/choice-error", false},
      {"fake/empty", false},     {"fake/midstream-error", true},
      {"fake/cut", true},        {"fake/fault-503", true},
  };
  for (const Case& c : cases) {
    fake_->ResetCounters();
    for (int i = 0; i < 2; ++i) {
      Collected col;
      auto r = Call(*cached_, Body(c.model, c.stream),
                    c.stream ? col.Handler() : nullptr);
      if (r.ok()) {
        EXPECT_EQ(r->result, CacheResult::kMiss) << c.model;
        EXPECT_FALSE(r->stored) << c.model;
        EXPECT_FALSE(r->not_stored_reason.empty()) << c.model;
      }
    }
    EXPECT_EQ(fake_->completions(), 2u) << c.model;
  }
  auto stats = cache_->GetStats();
  ASSERT_OK(stats);
  EXPECT_EQ(stats->entries, 0u);
}

TEST_F(CachedClientTest, StreamedMissThenReplayedHitGiveSameContent) {
  Collected live, replay;
  auto miss = Call(*cached_, Body("openai/gpt-4o-mini", true), live.Handler());
  ASSERT_OK(miss);
  EXPECT_EQ(miss->result, CacheResult::kMiss);
  EXPECT_TRUE(miss->stored) << miss->not_stored_reason;
  auto hit = Call(*cached_, Body("openai/gpt-4o-mini", true), replay.Handler());
  ASSERT_OK(hit);
  EXPECT_EQ(hit->result, CacheResult::kHit);
  EXPECT_EQ(live.Content(), replay.Content());
  EXPECT_FALSE(live.Content().empty());
  EXPECT_EQ(replay.events.back(), "[DONE]");
  EXPECT_EQ(fake_->completions(), 1u);
}

// A stream past max_stored_stream_bytes reaches its caller whole (events and
// [DONE]) and is said to be whole, but is not stored and has no body; under
// the limit the same stream is stored.
TEST_F(CachedClientTest, AStreamOverTheStoreLimitIsWholeButNotStored) {
  CachedClientOptions o;
  o.max_stored_stream_bytes = 1 << 20;
  auto small = Make(cache_, o);
  Collected live;
  auto over = Call(*small, Body("fake/flood-2", true), live.Handler());
  ASSERT_OK(over);
  EXPECT_EQ(over->result, CacheResult::kMiss);
  EXPECT_TRUE(over->streamed);
  EXPECT_TRUE(over->complete);
  EXPECT_FALSE(over->stored);
  EXPECT_THAT(
      over->not_stored_reason,
      ::testing::HasSubstr("stream larger than the 1048576-byte limit"));
  EXPECT_EQ(over->body, "");
  EXPECT_GT(live.Content().size(), size_t{2} << 20);
  EXPECT_EQ(live.events.back(), "[DONE]");

  o.max_stored_stream_bytes = 4 << 20;
  auto large = Make(cache_, o);
  Collected stored;
  auto under = Call(*large, Body("fake/flood-2", true), stored.Handler());
  ASSERT_OK(under);
  EXPECT_TRUE(under->stored) << under->not_stored_reason;
  EXPECT_EQ(fake_->completions(), 2u);
}

TEST_F(CachedClientTest, StreamAndNonStreamShareEntries) {
  Collected live;
  auto miss = Call(*cached_, Body("openai/gpt-4o-mini", true), live.Handler());
  ASSERT_OK(miss);
  auto hit = Call(*cached_, Body("openai/gpt-4o-mini", false));
  ASSERT_OK(hit);
  EXPECT_EQ(hit->result, CacheResult::kHit);
  EXPECT_EQ(hit->parsed.content, live.Content());
  // And the other way round, with another question.
  auto plain = Call(*cached_, Body("openai/gpt-4o-mini", false,
                                   R"("temperature":0)", "Other?"));
  ASSERT_OK(plain);
  Collected replay;
  auto streamed =
      Call(*cached_,
           Body("openai/gpt-4o-mini", true, R"("temperature":0)", "Other?"),
           replay.Handler());
  ASSERT_OK(streamed);
  EXPECT_EQ(streamed->result, CacheResult::kHit);
  EXPECT_EQ(replay.Content(), plain->parsed.content);
  EXPECT_EQ(fake_->completions(), 2u);
}

TEST_F(CachedClientTest, BadPerRequestSettingsAreInvalid) {
  CachedRequest negative;
  negative.body = Body("openai/gpt-4o-mini");
  negative.ttl_ms = -1;
  EXPECT_THAT(cached_->Prepare(negative),
              StatusIs(StatusCode::kInvalidArgument));
  // AsyncChat's own errors are its answer (it once sent an empty body).
  auto r =
      cached_
          ->AsyncChat("openai/gpt-4o-mini", "not json", "{}", asio::use_future)
          .get();
  EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(r.status().message(),
              ::testing::HasSubstr("messages must be a JSON array"));
  EXPECT_EQ(fake_->completions(), 0u);
}

TEST_F(CachedClientTest, PerRequestControls) {
  const std::string body = Body("openai/gpt-4o-mini");
  CachedRequest no_store;
  no_store.no_store = true;
  auto r = Call(*cached_, body, nullptr, no_store);
  ASSERT_OK(r);
  EXPECT_FALSE(r->stored);
  ASSERT_OK(Call(*cached_, body));  // stores
  CachedRequest no_cache;
  no_cache.skip_lookup = true;
  r = Call(*cached_, body, nullptr, no_cache);
  ASSERT_OK(r);
  EXPECT_EQ(r->result, CacheResult::kMiss);
  EXPECT_EQ(fake_->completions(), 3u);
  CachedRequest other_scope;
  other_scope.scope = "tenant-b";
  r = Call(*cached_, body, nullptr, other_scope);
  ASSERT_OK(r);
  EXPECT_EQ(r->result, CacheResult::kMiss);  // tenants do not share
  r = Call(*cached_, body);
  ASSERT_OK(r);
  EXPECT_EQ(r->result, CacheResult::kHit);
}

TEST_F(CachedClientTest, InvalidRequestIsRejectedBeforeAnyCall) {
  EXPECT_THAT(Call(*cached_, "{not json"),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(Call(*cached_, R"({"model":"a/b"})"),
              StatusIs(StatusCode::kInvalidArgument, "messages"));
  // A model id import would refuse (it could not be restored from an
  // export).
  EXPECT_THAT(
      Call(
          *cached_,
          R"({"model":"a\nb","temperature":0,"messages":[{"role":"user","content":"x"}]})"),
      StatusIs(StatusCode::kInvalidArgument, "control characters"));
  EXPECT_EQ(fake_->completions(), 0u);
}

TEST_F(CachedClientTest, SeedStyleCallDefaultsTemperatureAndMaxTokens) {
  auto body = CachedClient::BuildChatBody(
      "openai/gpt-4o-mini", R"([{"role":"user","content":"hi"}])", "{}");
  ASSERT_OK(body);
  EXPECT_NE(body->find(R"("temperature":0)"), std::string::npos);
  EXPECT_NE(body->find(R"("max_tokens":1024)"), std::string::npos);
  auto explicit_params = CachedClient::BuildChatBody(
      "m/x", "[]", R"({"temperature":0.5,"max_tokens":10})");
  ASSERT_OK(explicit_params);
  KeyBuilder kb;
  RequestInfo info;
  ASSERT_OK(kb.Compute(*explicit_params, {}, &info));
  EXPECT_TRUE(info.has_temperature);
  EXPECT_EQ(info.temperature, 0.5);
  EXPECT_NE(explicit_params->find(R"("max_tokens":10)"), std::string::npos);
  EXPECT_EQ(explicit_params->find("1024"), std::string::npos);
  EXPECT_THAT(CachedClient::BuildChatBody("m", "{}", "{}"),
              StatusIs(StatusCode::kInvalidArgument));
  // Messages nested deeper than Boost.JSON's default 32 levels, as a tool
  // result may be, are a body like any other.
  std::string deep = R"([{"role":"user","content":"x","extra":)";
  for (int i = 0; i < 40; ++i) deep += "[";
  for (int i = 0; i < 40; ++i) deep += "]";
  deep += "}]";
  ASSERT_OK(CachedClient::BuildChatBody("m/x", deep, "{}"));

  auto first = cached_
                   ->AsyncChat("openai/gpt-4o-mini",
                               R"([{"role":"user","content":"hi"}])", "{}",
                               asio::use_future)
                   .get();
  ASSERT_OK(first);
  EXPECT_EQ(first->result, CacheResult::kMiss);
  auto second = cached_
                    ->AsyncChat("openai/gpt-4o-mini",
                                R"([{"role":"user","content":"hi"}])", "{}",
                                asio::use_future)
                    .get();
  ASSERT_OK(second);
  EXPECT_EQ(second->result, CacheResult::kHit);
}

TEST_F(CachedClientTest, ModelDriftIsRecordedAndCanFlush) {
  CachedClientOptions o;
  o.flush_on_model_drift = true;
  auto c = Make(cache_, o);
  // The fake reports the base model; a `:variant` request of a model whose
  // last resolved name differs triggers drift.
  InsertOptions io;
  io.resolved_model = "openai/gpt-4o-mini-2024-01-01";
  KeyBuilder kb;
  auto key = kb.Compute(
      Body("openai/gpt-4o-mini", false, R"("temperature":0)", "old"), {});
  ASSERT_OK(key);
  ASSERT_OK(cache_->Insert(*key, R"({"choices":[]})", io));
  auto c2 = Make(cache_, o);  // learns the stored resolved model
  auto r = Call(*c2, Body("openai/gpt-4o-mini"));
  ASSERT_OK(r);
  EXPECT_EQ(c2->stats().model_drifts, 1u);
  auto old = cache_->Lookup(*key);
  ASSERT_OK(old);
  EXPECT_FALSE(old->hit());  // flushed on drift
  // The answer that showed the drift is the new model's: stored after the
  // flush it caused.
  EXPECT_TRUE(r->stored) << r->not_stored_reason;
  auto again = Call(*c2, Body("openai/gpt-4o-mini"));
  ASSERT_OK(again);
  EXPECT_EQ(again->result, CacheResult::kHit);
}

TEST_F(CachedClientTest, PromptCachingIsPricedSeparatelyFromResponseCache) {
  Result<PricingTable> table = FetchFakePricing();
  ASSERT_OK(table);
  ASSERT_NE(table->Find("anthropic/claude-sonnet-4.5"), nullptr);

  CachedClientOptions o;
  o.pricing = std::make_shared<PricingTable>(*table);
  auto c = Make(cache_, o);
  const std::string big(6000, 'x');
  const std::string body =
      R"({"model":"anthropic/claude-sonnet-4.5","temperature":0,"messages":[)"
      R"({"role":"system","content":[{"type":"text","text":")" +
      big +
      R"(","cache_control":{"type":"ephemeral"}}]},)"
      R"({"role":"user","content":"Summarise."}]})";
  auto first = Call(*c, body);  // provider cache write
  ASSERT_OK(first);
  CachedRequest fresh;
  fresh.skip_lookup = true;
  auto second = Call(*c, body, nullptr, fresh);  // provider cache read
  ASSERT_OK(second);
  const CachedClientStats s = c->stats();
  EXPECT_EQ(s.priced_responses, 2u);
  ASSERT_TRUE(first->parsed.usage && second->parsed.usage);
  EXPECT_GT(first->parsed.usage->cache_write_tokens, 0u);
  EXPECT_GT(second->parsed.usage->cached_tokens, 0u);
  EXPECT_EQ(s.prompt_cache_write_tokens,
            first->parsed.usage->cache_write_tokens);
  EXPECT_EQ(s.prompt_cache_read_tokens, second->parsed.usage->cached_tokens);
  auto c1 =
      ComputeCost(*table, "anthropic/claude-sonnet-4.5", *first->parsed.usage);
  auto c2 =
      ComputeCost(*table, "anthropic/claude-sonnet-4.5", *second->parsed.usage);
  ASSERT_OK(c1);
  ASSERT_OK(c2);
  EXPECT_LT(c1->prompt_cache_savings, 0);  // writes cost 1.25x
  EXPECT_GT(c2->prompt_cache_savings, 0);  // reads cost 0.1x
  EXPECT_EQ(s.prompt_cache_savings_nanousd,
            std::llround(c1->prompt_cache_savings * 1e9) +
                std::llround(c2->prompt_cache_savings * 1e9));
  // The response cache's own savings are counted apart, by the engine.
  auto hit = Call(*c, body);
  ASSERT_OK(hit);
  EXPECT_EQ(hit->result, CacheResult::kHit);
  EXPECT_EQ(c->stats().priced_responses, 2u);
}

// An upstream whose usage has no "cost" (OpenAI-compatible, not OpenRouter):
// the answer is priced by the upstream's model list, so what its hits save
// is counted in dollars too (it was $0).
TEST_F(CachedClientTest, AUsageWithoutCostIsPricedFromTheModelList) {
  fake::FakeOptions fo;
  fo.usage_cost = false;
  auto f = fake::FakeOpenRouter::Start(fo);
  ASSERT_OK(f);
  fake_ = std::move(*f);
  Result<PricingTable> table = FetchFakePricing();
  ASSERT_OK(table);
  CachedClientOptions o;
  o.pricing = std::make_shared<PricingTable>(*table);
  auto c = Make(cache_, o);
  const std::string body = Body("openai/gpt-4o-mini");
  auto miss = Call(*c, body);
  ASSERT_OK(miss);
  ASSERT_TRUE(miss->parsed.usage);
  EXPECT_FALSE(miss->parsed.usage->cost.has_value());
  auto want = ComputeCost(*table, "openai/gpt-4o-mini", *miss->parsed.usage);
  ASSERT_OK(want);
  EXPECT_GT(want->total, 0);
  EXPECT_EQ(miss->usage.cost_nanousd, std::llround(want->total * 1e9));
  auto hit = Call(*c, body);
  ASSERT_OK(hit);
  EXPECT_EQ(hit->result, CacheResult::kHit);
  EXPECT_EQ(hit->usage.cost_nanousd, miss->usage.cost_nanousd);
}

// ---------------------------------------------------------------------------
// The pipeline's stages: each request is keyed once and counted once.

// The counters that say "one request": keys computed and outcomes.
struct Once {
  uint64_t keys = 0, outcomes = 0, engine_lookups = 0;
  static Once Of(CachedClient& c, Cache& cache) {
    const CachedClientStats s = c.stats();
    Once o;
    o.keys = s.keys_computed;
    o.outcomes = s.hits + s.misses + s.bypasses;
    auto e = cache.GetStats();
    EXPECT_OK(e);
    if (e.ok()) o.engine_lookups = e->hits + e->misses;
    return o;
  }
};

TEST_F(CachedClientTest, EachRequestIsKeyedOnceAndCountedOnce) {
  Collected events;
  const std::vector<std::pair<std::string, bool>> requests = {
      {Body("openai/gpt-4o-mini"), false},       // miss
      {Body("openai/gpt-4o-mini"), false},       // hit
      {Body("openai/gpt-4o-mini", true), true},  // hit
      {Body("openai/gpt-4o", true), true},       // miss
      {Body("openai/gpt-4o", true), true},       // hit
      {Body("openai/gpt-4o-mini", false, R"("temperature":1)"),
       false}  // bypass
  };
  Once before = Once::Of(*cached_, *cache_);
  for (const auto& [body, stream] : requests) {
    ASSERT_OK(Call(*cached_, body, stream ? events.Handler() : nullptr));
    const Once after = Once::Of(*cached_, *cache_);
    EXPECT_EQ(after.keys, before.keys + 1) << body;
    EXPECT_EQ(after.outcomes, before.outcomes + 1) << body;
    before = after;
  }
  const CachedClientStats s = cached_->stats();
  EXPECT_EQ(s.hits, 3u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.bypasses, 1u);
  EXPECT_EQ(
      s.bypass_reasons[static_cast<size_t>(BypassReason::kNonZeroTemperature)],
      1u);
  // The engine counted one lookup per cacheable request, not two.
  EXPECT_EQ(before.engine_lookups, 5u);
  EXPECT_EQ(fake_->completions(), 3u);
}

TEST_F(CachedClientTest, PrepareProbeCompleteRunTheStagesOnce) {
  CachedRequest req;
  req.body = Body("openai/gpt-4o-mini");
  req.ns = "ns1";
  req.scope = "tenant";
  auto p = cached_->Prepare(req);
  ASSERT_OK(p);
  KeyBuilder keys;
  auto expect = keys.Compute(req.body, KeyScope{"ns1", "tenant"});
  ASSERT_OK(expect);
  EXPECT_EQ(p->key_hex(), expect->Hex());
  EXPECT_EQ(p->request().ns, "ns1");
  EXPECT_EQ(p->request().scope, "tenant");
  EXPECT_TRUE(p->decision().cache);
  EXPECT_FALSE(p->streaming());
  EXPECT_FALSE(p->probed());

  EXPECT_FALSE(cached_->Probe(*p).has_value());  // empty cache: a miss
  EXPECT_TRUE(p->probed());
  auto miss =
      cached_->AsyncComplete(std::move(*p), nullptr, asio::use_future).get();
  ASSERT_OK(miss);
  EXPECT_EQ(miss->result, CacheResult::kMiss);
  EXPECT_TRUE(miss->stored);
  auto e = cache_->GetStats();
  ASSERT_OK(e);
  EXPECT_EQ(e->misses, 1u) << "Complete looked the probed request up again";

  auto again = cached_->Prepare(req);
  ASSERT_OK(again);
  std::optional<CacheHit> hit = cached_->Probe(*again);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->entry->body, miss->body);
  EXPECT_TRUE(hit->events.empty());
  const CachedClientStats s = cached_->stats();
  EXPECT_EQ(s.keys_computed, 2u);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.tokens_saved,
            miss->usage.prompt_tokens + miss->usage.completion_tokens);
  EXPECT_EQ(fake_->completions(), 1u);
}

TEST_F(CachedClientTest, ProbeOfAStreamRequestCarriesItsEvents) {
  ASSERT_OK(Call(*cached_, Body("openai/gpt-4o-mini")));
  CachedRequest req;
  req.body = Body("openai/gpt-4o-mini", /*stream=*/true);
  auto p = cached_->Prepare(req);
  ASSERT_OK(p);
  EXPECT_TRUE(p->streaming());
  std::optional<CacheHit> hit = cached_->Probe(*p);
  ASSERT_TRUE(hit.has_value());
  ASSERT_GE(hit->events.size(), 2u);
  EXPECT_EQ(hit->events.back(), "data: [DONE]\n\n");
}

TEST_F(CachedClientTest, UncountedProbeCountsNothing) {
  ASSERT_OK(Call(*cached_, Body("openai/gpt-4o-mini")));
  const CachedClientStats before = cached_->stats();
  auto e0 = cache_->GetStats();
  ASSERT_OK(e0);
  CachedRequest req;
  req.body = Body("openai/gpt-4o-mini");
  auto p = cached_->Prepare(req);
  ASSERT_OK(p);
  EXPECT_TRUE(cached_->Probe(*p, /*count=*/false).has_value());
  EXPECT_FALSE(p->probed());
  const CachedClientStats after = cached_->stats();
  EXPECT_EQ(after.hits, before.hits);
  EXPECT_EQ(after.misses, before.misses);
  auto e1 = cache_->GetStats();
  ASSERT_OK(e1);
  EXPECT_EQ(e1->hits, e0->hits);
  EXPECT_EQ(e1->misses, e0->misses);
}

TEST_F(CachedClientTest, PrepareRejectsRequestsThatCannotBeAnswered) {
  for (const std::string& body :
       {std::string(
            R"({"model":"","messages":[{"role":"user","content":"x"}]})"),
        std::string(R"({"model":"m/a","messages":[]})"),
        std::string(R"({"model":"m/a"})"), std::string("{not json")}) {
    CachedRequest req;
    req.body = body;
    EXPECT_THAT(cached_->Prepare(req), StatusIs(StatusCode::kInvalidArgument))
        << body;
  }
  EXPECT_EQ(fake_->completions(), 0u);
}

TEST_F(CachedClientTest, JoinedFlightsAreEachCountedOnce) {
  const std::string body = Body("fake/delay-300");
  std::vector<std::future<Result<CachedResponse>>> futures;
  for (int i = 0; i < 20; ++i) {
    CachedRequest req;
    req.body = body;
    futures.push_back(
        cached_->AsyncComplete(std::move(req), nullptr, asio::use_future));
  }
  for (auto& f : futures) ASSERT_OK(f.get());
  const CachedClientStats s = cached_->stats();
  EXPECT_EQ(s.keys_computed, 20u);
  EXPECT_EQ(s.hits + s.misses + s.bypasses, 20u);
  EXPECT_EQ(s.upstream_calls, 1u);
  EXPECT_EQ(fake_->completions(), 1u);
}

TEST_F(CachedClientTest, CompleteAfterAProbedHitDoesNotCountItTwice) {
  ASSERT_OK(Call(*cached_, Body("openai/gpt-4o-mini")));
  CachedRequest req;
  req.body = Body("openai/gpt-4o-mini");
  auto p = cached_->Prepare(req);
  ASSERT_OK(p);
  ASSERT_TRUE(cached_->Probe(*p).has_value());
  auto r =
      cached_->AsyncComplete(std::move(*p), nullptr, asio::use_future).get();
  ASSERT_OK(r);
  EXPECT_EQ(r->result, CacheResult::kHit);
  const CachedClientStats s = cached_->stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(fake_->completions(), 1u);
}

TEST_F(CachedClientTest, EveryWaiterOfAFailedFlightIsAMissAndAnUpstreamError) {
  std::vector<std::future<Result<CachedResponse>>> futures;
  for (int i = 0; i < 5; ++i) {
    CachedRequest req;
    req.body = Body("fake/fault-500");
    futures.push_back(
        cached_->AsyncComplete(std::move(req), nullptr, asio::use_future));
  }
  for (auto& f : futures) {
    auto r = f.get();
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 500);
  }
  const CachedClientStats s = cached_->stats();
  EXPECT_EQ(s.misses, 5u);
  EXPECT_EQ(s.hits, 0u);
  EXPECT_EQ(s.upstream_errors, 5u);
  EXPECT_EQ(s.upstream_calls + s.flight_joins, 5u);
}

TEST_F(CachedClientTest, DiskFaultIsServedThroughCountedAndHeals) {
  using llmcache::testing::FaultFileSystem;
  auto fs = std::make_shared<FaultFileSystem>();
  CacheOptions co;
  co.path = dir_.path() + "/faulty";
  co.maintenance_interval_ms = 0;
  co.memory_tier_bytes = 0;
  co.file_system = fs;
  co.recovery_initial_backoff_ms = 500;  // stays degraded while checked
  co.recovery_max_backoff_ms = 500;
  auto opened = Cache::Open(co);
  ASSERT_OK(opened);
  std::shared_ptr<Cache> cache(std::move(opened).value());
  auto cached = Make(cache, CachedClientOptions{});
  const std::string before =
      Body("openai/gpt-4o-mini", false, R"("temperature":0)", "before");
  ASSERT_OK(Call(*cached, before));

  for (const auto& fault :
       {FaultFileSystem::NoSpace(), FaultFileSystem::IoError()}) {
    fs->FailWrites(fault);
    const uint64_t errors = cached->stats().store_errors;
    for (int i = 0; i < 5; ++i) {
      Collected events;
      auto r = Call(*cached,
                    Body("openai/gpt-4o-mini", i % 2 == 1, R"("temperature":0)",
                         fault.ToString() + std::to_string(i)),
                    i % 2 == 1 ? events.Handler() : nullptr);
      ASSERT_OK(r);
      EXPECT_EQ(r->status, 200);
      EXPECT_EQ(r->result, CacheResult::kMiss);
      EXPECT_FALSE(r->stored);
    }
    EXPECT_GT(cached->stats().store_errors, errors);
    // Right after a refused write (recovery is tried 500 ms later at the
    // earliest).
    auto last =
        Call(*cached, Body("openai/gpt-4o-mini", false, R"("temperature":0)",
                           "last " + fault.ToString()));
    ASSERT_OK(last);
    EXPECT_FALSE(last->stored);
    EXPECT_TRUE(cache->Health().degraded);
    auto hit = Call(*cached, before);  // lookups go on
    ASSERT_OK(hit);
    EXPECT_EQ(hit->result, CacheResult::kHit);

    fs->Clear();
    ASSERT_TRUE(llmcache::testing::WaitFor([&] {
      return !cache->Health().degraded;
    })) << cache->Health().recovery_error;
    const std::string after =
        Body("openai/gpt-4o-mini", false, R"("temperature":0)",
             "after " + fault.ToString());
    auto miss = Call(*cached, after);
    ASSERT_OK(miss);
    EXPECT_TRUE(miss->stored);
    auto again = Call(*cached, after);
    ASSERT_OK(again);
    EXPECT_EQ(again->result, CacheResult::kHit);
  }
  EXPECT_GE(cache->Health().recoveries, 2u);
}

// Holds an io_context's thread in a handler from construction until
// Release() (or destruction, however the test ends), so that what is
// posted meanwhile waits.
class HoldTheExecutor {
 public:
  explicit HoldTheExecutor(asio::io_context& ioc) {
    asio::post(ioc, [held = promise_.get_future().share(), holding = holding_] {
      *holding = true;
      held.wait();
    });
    EXPECT_TRUE(llmcache::testing::WaitFor([&] { return holding_->load(); }));
  }
  ~HoldTheExecutor() { Release(); }
  void Release() {
    if (!released_) promise_.set_value();
    released_ = true;
  }

 private:
  std::promise<void> promise_;
  std::shared_ptr<std::atomic<bool>> holding_ =
      std::make_shared<std::atomic<bool>>(false);
  bool released_ = false;
};

// A Client whose calls the test answers by hand (Release), so that a flight
// can be held open while others join it. Send throws while `throw_next`.
class ScriptedClient final : public Client {
 public:
  explicit ScriptedClient(asio::any_io_executor ex) : ex_(std::move(ex)) {}

  void Send(Request request, ChunkHandler on_chunk, Callback done) override {
    if (throw_next.exchange(false)) throw std::runtime_error("scripted throw");
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back(
        Call{std::move(request), std::move(on_chunk), std::move(done)});
  }
  asio::any_io_executor executor() const override { return ex_; }
  const ClientOptions& options() const override { return options_; }
  uint64_t connections_opened() const override { return 0; }

  size_t sends() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_.size();
  }
  Request request(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_.at(i).request;
  }
  // Answers call `i` with `content`: as events (ending with [DONE] only if
  // `complete`) when it asked for a stream, else as JSON.
  void Release(size_t i, const std::string& content, bool complete = true) {
    Call c = Take(i);
    Response r;
    r.status = 200;
    const std::string head =
        R"({"id":"gen-1","object":"chat.completion.chunk","created":1,)"
        R"("model":"openai/gpt-4o-mini","choices":[{"index":0,"delta":)";
    if (c.request.stream) {
      r.streamed = true;
      r.headers.push_back({"Content-Type", "text/event-stream"});
      std::vector<std::string> events = {
          head + R"({"role":"assistant","content":")" + content.substr(0, 3) +
              R"("},"finish_reason":null}]})",
          head + R"({"content":")" + content.substr(3) +
              R"("},"finish_reason":null}]})"};
      if (complete) {
        events.push_back(
            head + R"({},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,)"
                   R"("completion_tokens":3,"total_tokens":8}})");
        events.push_back("[DONE]");
      }
      for (const std::string& e : events) c.on_chunk(e);
      r.stream_complete = complete;
    } else {
      r.headers.push_back({"Content-Type", "application/json"});
      r.body = R"({"id":"gen-1","object":"chat.completion","created":1,)"
               R"("model":"openai/gpt-4o-mini","choices":[{"index":0,)"
               R"("message":{"role":"assistant","content":")" +
               content +
               R"("},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,)"
               R"("completion_tokens":3,"total_tokens":8}})";
    }
    c.done(std::move(r));
  }
  // One event `data` of call `i`'s stream; the call goes on.
  bool Chunk(size_t i, const std::string& data) {
    ChunkHandler on_chunk;
    {
      std::lock_guard<std::mutex> lock(mu_);
      on_chunk = calls_.at(i).on_chunk;
    }
    return on_chunk(data);
  }
  // Ends call `i` with `error`, after one event if it asked for a stream and
  // `after_an_event` (a connection lost mid-stream).
  void Fail(size_t i, Status error, bool after_an_event) {
    Call c = Take(i);
    if (c.request.stream && after_an_event) {
      c.on_chunk(
          R"({"id":"gen-1","object":"chat.completion.chunk","created":1,)"
          R"("model":"openai/gpt-4o-mini","choices":[{"index":0,"delta":)"
          R"({"role":"assistant","content":"Fou"},"finish_reason":null}]})");
    }
    c.done(std::move(error));
  }
  // Answers call `i` with upstream status `status` and an error envelope.
  void AnswerError(size_t i, int status, const std::string& message) {
    Call c = Take(i);
    Response r;
    r.status = status;
    r.headers.push_back({"Content-Type", "application/json"});
    r.body = R"({"error":{"code":)" + std::to_string(status) +
             R"(,"message":")" + message + R"("}})";
    c.done(std::move(r));
  }

  // Drops the calls never answered (their callbacks hold the cached
  // client).
  void Forget() {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.clear();
  }

  std::atomic<bool> throw_next{false};

 private:
  struct Call {
    Request request;
    ChunkHandler on_chunk;
    Callback done;
  };
  // Call `i`'s callbacks, moved out: they hold the cached client, which
  // holds this client (kept, they would leak as a cycle).
  Call Take(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    Call c;
    c.request = calls_.at(i).request;
    c.on_chunk = std::move(calls_.at(i).on_chunk);
    c.done = std::move(calls_.at(i).done);
    return c;
  }
  asio::any_io_executor ex_;
  ClientOptions options_;
  std::mutex mu_;
  std::vector<Call> calls_;
};

class CachedClientFlightTest : public CachedClientTest {
 protected:
  void SetUp() override {
    CachedClientTest::SetUp();
    scripted_ = std::make_shared<ScriptedClient>(loop_.ioc().get_executor());
    flights_ = CachedClient::Create(cache_, scripted_, CachedClientOptions{});
  }
  void TearDown() override { scripted_->Forget(); }

  std::future<Result<CachedResponse>> Start(
      bool stream, StreamHandler chunks = nullptr, bool no_store = false,
      std::string api_key = "", const std::string& text = "What is 2+2?") {
    CachedRequest req;
    req.body = Body("openai/gpt-4o-mini", stream, R"("temperature":0)", text);
    req.no_store = no_store;
    req.api_key = std::move(api_key);
    return flights_->AsyncComplete(std::move(req), std::move(chunks),
                                   asio::use_future);
  }

  using Pending = std::future<Result<CachedResponse>>;
  // A streaming leader whose upstream call has sent one event ("Fou").
  Pending LeadAStreamWithOneEvent(Collected& lead_events) {
    Pending leader = Start(/*stream=*/true, lead_events.Handler());
    EXPECT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
    EXPECT_TRUE(scripted_->Chunk(
        0, R"({"id":"gen-1","object":"chat.completion.chunk","created":1,)"
           R"("model":"openai/gpt-4o-mini","choices":[{"index":0,"delta":)"
           R"({"role":"assistant","content":"Fou"},"finish_reason":null}]})"));
    return leader;
  }
  // A stream leader, a plain and a stream waiter; `end` ends the leader's
  // call without a whole answer (and checks what the leader got). Then the
  // plain waiter asks upstream on its own and gets a whole answer, while
  // the stream waiter, handed the leader's events as they came, ends as the
  // leader's stream did: the same events, then the same outcome.
  void ExpectWaitersOfAFailedStream(
      const std::function<void(Pending&, Collected&)>& end) {
    Collected lead_events;
    auto leader = Start(/*stream=*/true, lead_events.Handler());
    ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
    auto plain = Start(/*stream=*/false);
    Collected events;
    auto stream = Start(/*stream=*/true, events.Handler());
    ASSERT_TRUE(llmcache::testing::WaitFor(
        [&] { return flights_->stats().flight_joins == 2; }));
    end(leader, lead_events);
    ASSERT_TRUE(llmcache::testing::WaitFor([&] {
      return scripted_->sends() == 2;
    })) << "the plain waiter did not ask upstream itself";
    scripted_->Release(1, "Four, of course.");
    auto p = plain.get();
    ASSERT_OK(p);
    EXPECT_FALSE(p->streamed);
    auto parsed = ParseCompletion(p->body);
    ASSERT_OK(parsed);
    EXPECT_EQ(parsed->content, "Four, of course.");
    EXPECT_EQ(parsed->finish_reason, "stop");
    auto s = stream.get();
    EXPECT_EQ(s.ok(), lead_ok_);
    if (s.ok()) {
      EXPECT_TRUE(s->streamed);
      EXPECT_FALSE(s->complete);
      EXPECT_FALSE(s->stored);
    }
    EXPECT_FALSE(events.events.empty());
    EXPECT_EQ(events.events, lead_events.events);
    EXPECT_EQ(scripted_->sends(), 2u);  // three misses, two calls
    EXPECT_EQ(flights_->stats().misses, 3u);
  }

  bool lead_ok_ = true;  // what the leader's call ended with
  std::shared_ptr<ScriptedClient> scripted_;
  std::shared_ptr<CachedClient> flights_;
};

// Past max_stored_stream_bytes a stream leader has no whole answer for the
// waiters it did not hand its events as they came: the plain one starts
// over in a flight of its own, and a stream that joined after the first
// 8 MiB (kMaxKeptEventBytes) asks on its own, so that no plain request
// waits for a second such stream.
TEST_F(CachedClientFlightTest,
       AfterAStreamOverTheStoreLimitLateStreamsAskAlone) {
  CachedClientOptions o;
  o.max_stored_stream_bytes = 1000;
  flights_ = CachedClient::Create(cache_, scripted_, o);
  Collected lead_events;
  auto leader = Start(/*stream=*/true, lead_events.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
  auto plain = Start(/*stream=*/false);
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return flights_->stats().flight_joins == 1; }));
  // 9 MiB of content in one event: past the limit, and no longer kept.
  EXPECT_TRUE(scripted_->Chunk(
      0, R"({"id":"gen-1","object":"chat.completion.chunk","created":1,)"
         R"("model":"openai/gpt-4o-mini","choices":[{"index":0,"delta":)"
         R"({"role":"assistant","content":")" +
             std::string(size_t{9} << 20, 'x') +
             R"("},"finish_reason":null}]})"));
  Collected late_events;
  auto late = Start(/*stream=*/true, late_events.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return flights_->stats().flight_joins == 2; }));
  scripted_->Release(0, "Four.");
  auto l = leader.get();
  ASSERT_OK(l);
  EXPECT_TRUE(l->complete);
  EXPECT_FALSE(l->stored);
  EXPECT_EQ(l->body, "");
  ASSERT_TRUE(l->parsed.usage.has_value());  // from its last event
  EXPECT_EQ(l->parsed.usage->completion_tokens, 3u);
  ASSERT_TRUE(llmcache::testing::WaitFor([&] {
    return scripted_->sends() == 3;
  })) << "the plain and the late stream did not each ask upstream";
  scripted_->Release(1, "Four, of course.");
  scripted_->Release(2, "Four, of course.");
  auto p = plain.get();
  ASSERT_OK(p);
  EXPECT_FALSE(p->streamed);
  EXPECT_TRUE(p->stored);
  auto s = late.get();
  ASSERT_OK(s);
  EXPECT_TRUE(s->streamed);
  EXPECT_EQ(late_events.Content(), "Four, of course.");
}

std::string_view HeaderValue(const CachedResponse& r, std::string_view name) {
  for (const Header& h : r.headers) {
    if (h.name == name) return h.value;
  }
  return {};
}

TEST_F(CachedClientFlightTest, PlainWaiterOfAStreamLeaderGetsJson) {
  Collected lead_events;
  auto leader = Start(/*stream=*/true, lead_events.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
  auto waiter = Start(/*stream=*/false);
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return flights_->stats().flight_joins == 1; }));
  scripted_->Release(0, "Four, of course.");

  auto w = waiter.get();
  ASSERT_OK(w);
  EXPECT_TRUE(w->joined_flight);
  EXPECT_FALSE(w->streamed);  // the proxy answers JSON, not events
  EXPECT_EQ(HeaderValue(*w, "Content-Type"), "application/json");
  EXPECT_EQ(w->body.find("data:"), std::string::npos);
  auto parsed = ParseCompletion(w->body);
  ASSERT_OK(parsed);
  EXPECT_EQ(parsed->content, "Four, of course.");
  auto l = leader.get();
  ASSERT_OK(l);
  EXPECT_TRUE(l->streamed);
  EXPECT_EQ(lead_events.Content(), "Four, of course.");
  EXPECT_EQ(scripted_->sends(), 1u);
}

TEST_F(CachedClientFlightTest, StreamWaiterOfAPlainLeaderGetsEvents) {
  auto leader = Start(/*stream=*/false);
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
  Collected events;
  auto waiter = Start(/*stream=*/true, events.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return flights_->stats().flight_joins == 1; }));
  scripted_->Release(0, "Four, of course.");

  auto w = waiter.get();
  ASSERT_OK(w);
  EXPECT_TRUE(w->joined_flight);
  EXPECT_TRUE(w->streamed);
  ASSERT_FALSE(events.events.empty());
  EXPECT_EQ(events.events.back(), "[DONE]");
  EXPECT_EQ(events.Content(), "Four, of course.");
  auto l = leader.get();
  ASSERT_OK(l);
  EXPECT_FALSE(l->streamed);
  EXPECT_EQ(scripted_->sends(), 1u);
}

// A no-store request once led the flight that identical requests joined:
// none of them was stored, and the next one paid upstream again.
TEST_F(CachedClientFlightTest, ANoStoreRequestLeadsNoFlight) {
  auto first = Start(/*stream=*/false, nullptr, /*no_store=*/true);
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
  auto storing = Start(/*stream=*/false);  // its own call, and stored
  ASSERT_TRUE(
      llmcache::testing::WaitFor([&] { return scripted_->sends() == 2; }));
  EXPECT_EQ(flights_->stats().flight_joins, 0u);
  scripted_->Release(0, "Four, of course.");
  scripted_->Release(1, "Four, of course.");
  auto f = first.get();
  ASSERT_OK(f);
  EXPECT_FALSE(f->stored);
  auto s = storing.get();
  ASSERT_OK(s);
  EXPECT_FALSE(s->joined_flight);
  EXPECT_TRUE(s->stored);
  auto again = Start(/*stream=*/false).get();
  ASSERT_OK(again);
  EXPECT_EQ(again->result, CacheResult::kHit);
  EXPECT_EQ(scripted_->sends(), 2u);
}

// An only-if-cached request never joins a flight (it would wait for an
// upstream answer) nor leads one: it is answered "not cached" at once while
// an identical request is in flight, and from the store after it.
TEST_F(CachedClientFlightTest, AnOnlyIfCachedRequestJoinsNoFlight) {
  auto leader = Start(/*stream=*/false);
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
  auto only = [this] {
    CachedRequest req;
    req.body =
        Body("openai/gpt-4o-mini", false, R"("temperature":0)", "What is 2+2?");
    req.only_if_cached = true;
    return flights_->AsyncComplete(std::move(req), nullptr, asio::use_future);
  };
  auto during = only();
  ASSERT_EQ(during.wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  auto d = during.get();
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(IsNotCached(d.status())) << d.status();
  EXPECT_EQ(flights_->stats().flight_joins, 0u);
  scripted_->Release(0, "Four, of course.");
  ASSERT_OK(leader.get());
  auto after = only().get();
  ASSERT_OK(after);
  EXPECT_EQ(after->result, CacheResult::kHit);
  EXPECT_EQ(scripted_->sends(), 1u);
  EXPECT_EQ(flights_->stats().upstream_errors, 0u);
}

// A no-store request may join a flight that stores: the entry is the
// leader's, which would be stored anyway.
TEST_F(CachedClientFlightTest, ANoStoreRequestJoinsAFlightThatStores) {
  auto leader = Start(/*stream=*/false);
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
  auto waiter = Start(/*stream=*/false, nullptr, /*no_store=*/true);
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return flights_->stats().flight_joins == 1; }));
  scripted_->Release(0, "Four, of course.");
  auto w = waiter.get();
  ASSERT_OK(w);
  EXPECT_TRUE(w->joined_flight);
  auto l = leader.get();
  ASSERT_OK(l);
  EXPECT_TRUE(l->stored);
  EXPECT_EQ(scripted_->sends(), 1u);
}

TEST_F(CachedClientFlightTest, WaitersOfACutStreamEndAsItDidOrAskOnTheirOwn) {
  ExpectWaitersOfAFailedStream([this](Pending& leader, Collected&) {
    // The leader's stream ends without [DONE]: half an answer.
    scripted_->Release(0, "Four, of course.", /*complete=*/false);
    auto l = leader.get();
    ASSERT_OK(l);
    EXPECT_FALSE(l->stored);
  });
}

// A stream that joins a streaming leader is handed the leader's events as
// they come: those before it joined at once, then each with the leader's,
// before the leader's call ends; it ends with the leader's answer, from one
// call, stored once.
TEST_F(CachedClientFlightTest,
       AStreamWaiterIsHandedTheLeadersEventsAsTheyCome) {
  Collected lead_events;
  auto leader = Start(/*stream=*/true, lead_events.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
  const std::string head =
      R"({"id":"gen-1","object":"chat.completion.chunk","created":1,)"
      R"("model":"openai/gpt-4o-mini","choices":[{"index":0,"delta":)";
  ASSERT_TRUE(scripted_->Chunk(
      0,
      head + R"({"role":"assistant","content":"Th"},"finish_reason":null}]})"));
  Collected events;
  auto waiter = Start(/*stream=*/true, events.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return flights_->stats().flight_joins == 1; }));
  auto handed = [&] {
    std::lock_guard<std::mutex> lock(events.mu);
    return events.events.size();
  };
  // The event before it joined, without waiting for the leader's next.
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return handed() == 1; }));
  ASSERT_TRUE(scripted_->Chunk(
      0, head + R"({"content":"ree"},"finish_reason":null}]})"));
  // Before the call ends (by the loop's thread, if it was still handing
  // the first).
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return handed() == 2; }));
  EXPECT_EQ(waiter.wait_for(std::chrono::milliseconds(0)),
            std::future_status::timeout);
  scripted_->Release(0, "Four, of course.");
  auto l = leader.get();
  ASSERT_OK(l);
  EXPECT_TRUE(l->stored);
  auto w = waiter.get();
  ASSERT_OK(w);
  EXPECT_TRUE(w->joined_flight);
  EXPECT_TRUE(w->streamed);
  EXPECT_EQ(events.events, lead_events.events);
  EXPECT_EQ(events.Content(), "ThreeFour, of course.");
  EXPECT_EQ(scripted_->sends(), 1u);
}

// A stream that joins after the leader's last event is handed that event
// at once, not when the leader's next one comes (a reasoning model may
// pause for long); when the leader's stream then breaks, it ends as the
// leader's did, with the same events, from the one call.
TEST_F(CachedClientFlightTest,
       AStreamJoiningAfterTheLastEventIsHandedItAtOnceAndEndsAsTheLeader) {
  Collected lead_events;
  auto leader = LeadAStreamWithOneEvent(lead_events);
  ASSERT_FALSE(HasFailure());
  Collected events;
  auto waiter = Start(/*stream=*/true, events.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor([&] {
    std::lock_guard<std::mutex> lock(events.mu);
    return events.events.size() == 1;
  })) << "the event before it joined was not handed at once";
  EXPECT_EQ(flights_->stats().flight_joins, 1u);
  scripted_->Fail(0, UnavailableError("connection lost mid-body"),
                  /*after_an_event=*/false);
  EXPECT_EQ(leader.get().status().code(), StatusCode::kUnavailable);
  auto w = waiter.get();
  EXPECT_EQ(w.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(events.events, lead_events.events);
  EXPECT_EQ(scripted_->sends(), 1u);
}

// A stream that joins while the client's executor is busy has its catch-up
// queued there, and the leader's stream breaks meanwhile. Whichever comes
// first on the executor, the waiter gets one story, never a mix: handed the
// catch-up, it ends as the leader did (the same events, the same error);
// not handed it, it asks upstream on its own and gets only that whole
// answer's events.
TEST_F(CachedClientFlightTest,
       AStreamJoiningAsTheLeaderBreaksEndsAsItOrAsksOnItsOwnNeverBoth) {
  Collected lead_events;
  auto leader = LeadAStreamWithOneEvent(lead_events);
  ASSERT_FALSE(HasFailure());
  HoldTheExecutor hold(loop_.ioc());
  ASSERT_FALSE(HasFailure());
  Collected events;
  auto waiter = Start(/*stream=*/true, events.Handler());
  EXPECT_EQ(flights_->stats().flight_joins, 1u);
  scripted_->Fail(0, UnavailableError("connection lost mid-body"),
                  /*after_an_event=*/false);
  hold.Release();
  EXPECT_EQ(leader.get().status().code(), StatusCode::kUnavailable);
  ASSERT_TRUE(llmcache::testing::WaitFor([&] {
    return scripted_->sends() == 2 ||
           waiter.wait_for(std::chrono::milliseconds(0)) ==
               std::future_status::ready;
  }));
  if (scripted_->sends() == 2) {  // not handed the catch-up
    scripted_->Release(1, "Four, of course.");
    auto w = waiter.get();
    ASSERT_OK(w);
    EXPECT_TRUE(w->complete);
    EXPECT_EQ(events.Content(), "Four, of course.");
  } else {  // handed it: ends as the leader did
    EXPECT_EQ(waiter.get().status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(events.events, lead_events.events);
  }
}

// The leader's events are kept for later joiners up to kMaxKeptEventBytes:
// a stream that joins after more came gets the answer when the leader's
// stream ends, replayed as events, as before; one that had joined earlier
// is still handed each event as it comes.
TEST_F(CachedClientFlightTest,
       AStreamJoiningPastTheKeptEventsGetsTheAnswerAtTheEnd) {
  Collected lead_events;
  auto leader = Start(/*stream=*/true, lead_events.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
  Collected early;
  auto first = Start(/*stream=*/true, early.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return flights_->stats().flight_joins == 1; }));
  const std::string big(9u << 20, 'x');  // over the 8 MiB kept
  ASSERT_TRUE(scripted_->Chunk(
      0, R"({"id":"gen-1","object":"chat.completion.chunk","created":1,)"
         R"("model":"openai/gpt-4o-mini","choices":[{"index":0,"delta":)"
         R"({"role":"assistant","content":")" +
             big + R"("},"finish_reason":null}]})"));
  Collected late;
  auto second = Start(/*stream=*/true, late.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return flights_->stats().flight_joins == 2; }));
  scripted_->Release(0, "Four, of course.");
  ASSERT_OK(leader.get());
  auto f = first.get();
  ASSERT_OK(f);
  EXPECT_EQ(early.events, lead_events.events);  // handed as they came
  auto s = second.get();
  ASSERT_OK(s);
  EXPECT_TRUE(s->streamed);
  EXPECT_NE(late.events, lead_events.events);  // a replay of the answer
  EXPECT_EQ(late.Content(), big + "Four, of course.");
  EXPECT_EQ(scripted_->sends(), 1u);
}

// A CachedClient over a ScriptedClient on one thread: what is posted runs
// in order, and Drain() waits for everything posted before it, and for
// what that posted in turn (three rounds: a flight's end, a waiter's
// restart, its call).
struct OneThreadFlights {
  explicit OneThreadFlights(std::shared_ptr<Cache> cache)
      : scripted(std::make_shared<ScriptedClient>(loop.ioc().get_executor())),
        flights(CachedClient::Create(std::move(cache), scripted,
                                     CachedClientOptions{})) {}
  ~OneThreadFlights() { scripted->Forget(); }
  std::future<Result<CachedResponse>> Start(bool stream,
                                            StreamHandler chunks = nullptr) {
    CachedRequest req;
    req.body = Body("openai/gpt-4o-mini", stream, R"("temperature":0)",
                    "What is 2+2?");
    return flights->AsyncComplete(std::move(req), std::move(chunks),
                                  asio::use_future);
  }
  void Drain() {
    for (int round = 0; round < 3; ++round) {
      std::promise<void> ran;
      asio::post(loop.ioc(), [&ran] { ran.set_value(); });
      ran.get_future().wait();
    }
  }

  Loop loop{1};
  std::shared_ptr<ScriptedClient> scripted;
  std::shared_ptr<CachedClient> flights;
};

// Waiters that a leader's cut stream leaves without an answer start over
// together: the first leads one new call and the others wait for it, so
// three waiters cost one more call, not three, and get its whole answer,
// not the cut one.
TEST_F(CachedClientFlightTest, WaitersOfACutLeaderShareOneNewCall) {
  OneThreadFlights t(cache_);
  Collected lead_events;
  auto leader = t.Start(/*stream=*/true, lead_events.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return t.scripted->sends(); }));
  std::vector<Pending> waiters;
  for (int i = 0; i < 3; ++i) waiters.push_back(t.Start(/*stream=*/false));
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return t.flights->stats().flight_joins == 3; }));
  t.scripted->Release(0, "Cut short", /*complete=*/false);
  ASSERT_OK(leader.get());
  t.Drain();  // the three have started over
  ASSERT_EQ(t.scripted->sends(), 2u);
  t.scripted->Release(1, "Four, of course.");
  for (Pending& w : waiters) {
    auto r = w.get();
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 200);
    auto parsed = ParseCompletion(r->body);
    ASSERT_OK(parsed);
    EXPECT_EQ(parsed->content, "Four, of course.");
  }
  EXPECT_EQ(t.scripted->sends(), 2u);
  EXPECT_EQ(t.flights->stats().misses, 4u);
}

// A waiter that started over after a cut and whose new flight is cut as
// well asks upstream on its own: it is not sent round again. The stream
// that leads the new flight ends as its own call did (cut), as any leader.
TEST_F(CachedClientFlightTest, WaitersOfTwoCutFlightsInARowAskOnTheirOwn) {
  OneThreadFlights t(cache_);
  Collected lead_events;
  auto leader = t.Start(/*stream=*/true, lead_events.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return t.scripted->sends(); }));
  ASSERT_TRUE(t.scripted->Chunk(
      0, R"({"id":"gen-1","object":"chat.completion.chunk","created":1,)"
         R"("model":"openai/gpt-4o-mini","choices":[{"index":0,"delta":)"
         R"({"role":"assistant","content":"Fou"},"finish_reason":null}]})"));
  // The stream joins with its catch-up queued on the held thread, so it is
  // not handed any of the leader's events before the leader's stream
  // breaks, and starts over first: it leads the second flight.
  HoldTheExecutor hold(t.loop.ioc());
  ASSERT_FALSE(HasFailure());
  Collected events;
  auto stream = t.Start(/*stream=*/true, events.Handler());
  auto plain1 = t.Start(/*stream=*/false);
  auto plain2 = t.Start(/*stream=*/false);
  EXPECT_EQ(t.flights->stats().flight_joins, 3u);
  t.scripted->Fail(0, UnavailableError("connection lost mid-body"),
                   /*after_an_event=*/false);
  EXPECT_EQ(leader.get().status().code(), StatusCode::kUnavailable);
  hold.Release();
  t.Drain();                           // the three have started over
  ASSERT_EQ(t.scripted->sends(), 2u);  // the plain ones joined the stream
  ASSERT_TRUE(t.scripted->request(1).stream);
  // The second flight breaks after its first event too.
  t.scripted->Fail(1, UnavailableError("connection lost mid-body"),
                   /*after_an_event=*/true);
  EXPECT_EQ(stream.get().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(events.events.size(), 1u);
  t.Drain();
  ASSERT_EQ(t.scripted->sends(), 4u);
  EXPECT_FALSE(t.scripted->request(2).stream);
  EXPECT_FALSE(t.scripted->request(3).stream);
  t.scripted->Release(2, "Four, of course.");
  t.scripted->Release(3, "Four, of course.");
  for (Pending* w : {&plain1, &plain2}) {
    auto r = w->get();
    ASSERT_OK(r);
    EXPECT_FALSE(r->joined_flight);
    auto parsed = ParseCompletion(r->body);
    ASSERT_OK(parsed);
    EXPECT_EQ(parsed->content, "Four, of course.");
  }
  EXPECT_EQ(t.scripted->sends(), 4u);
}

// on_wait tells a request that waits for an identical one's answer (true)
// and one that asks upstream itself after such a wait (false); the first
// request, which leads, is told nothing.
TEST_F(CachedClientFlightTest,
       OnWaitTellsWhoWaitsAndWhoAsksUpstreamAfterAWait) {
  std::mutex mu;
  std::array<std::vector<bool>, 3> told;
  auto start = [&](int i, bool stream, StreamHandler chunks) {
    CachedRequest req;
    req.body = Body("openai/gpt-4o-mini", stream, R"("temperature":0)",
                    "What is 2+2?");
    req.on_wait = [&mu, &told, i](bool waits) {
      std::lock_guard<std::mutex> lock(mu);
      told[i].push_back(waits);
    };
    return flights_->AsyncComplete(std::move(req), std::move(chunks),
                                   asio::use_future);
  };
  Collected lead_events;
  auto leader = start(0, /*stream=*/true, lead_events.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
  auto first = start(1, /*stream=*/false, nullptr);
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return flights_->stats().flight_joins == 1; }));
  auto second = start(2, /*stream=*/false, nullptr);
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return flights_->stats().flight_joins == 2; }));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(told[1], std::vector<bool>{true});
    EXPECT_EQ(told[2], std::vector<bool>{true});
  }
  // The leader's answer is cut: the two start over, one leads a new call
  // (false) and the other waits for it (true).
  scripted_->Release(0, "Cut short", /*complete=*/false);
  ASSERT_TRUE(
      llmcache::testing::WaitFor([&] { return scripted_->sends() == 2; }));
  scripted_->Release(1, "Four, of course.");
  ASSERT_OK(first.get());
  ASSERT_OK(second.get());
  ASSERT_OK(leader.get());
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_TRUE(told[0].empty());
  std::array<std::vector<bool>, 2> waiters = {told[1], told[2]};
  std::sort(waiters.begin(), waiters.end());
  EXPECT_EQ(waiters[0], (std::vector<bool>{true, false}));
  EXPECT_EQ(waiters[1], (std::vector<bool>{true, true}));
  EXPECT_EQ(scripted_->sends(), 2u);
}

// A waiter whose caller has gone away (CachedRequest::caller_gone) is not
// sent upstream when the flight ends without an answer for it: nobody would
// read what it pays for. It ends kCancelled, which is not an upstream error.
TEST_F(CachedClientFlightTest, AWaiterWhoseCallerWentAwayIsNotSentUpstream) {
  Collected lead_events;
  auto leader = Start(/*stream=*/true, lead_events.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
  std::atomic<int> asked{0};
  auto waiter = [&](bool gone) {
    CachedRequest req;
    req.body =
        Body("openai/gpt-4o-mini", false, R"("temperature":0)", "What is 2+2?");
    req.caller_gone = [&asked, gone] {
      ++asked;
      return gone;
    };
    return flights_->AsyncComplete(std::move(req), nullptr, asio::use_future);
  };
  auto gone = waiter(true);
  auto here = waiter(false);
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return flights_->stats().flight_joins == 2; }));
  scripted_->Release(0, "Four, of course.", /*complete=*/false);
  EXPECT_THAT(gone.get(), StatusIs(StatusCode::kCancelled, "went away"));
  ASSERT_TRUE(
      llmcache::testing::WaitFor([&] { return scripted_->sends() == 2; }));
  scripted_->Release(1, "Four, of course.");
  auto h = here.get();
  ASSERT_OK(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(asked.load(), 2);
  EXPECT_EQ(scripted_->sends(), 2u);
  EXPECT_EQ(flights_->stats().upstream_errors, 0u);
  ASSERT_OK(leader.get());
}

// A streaming leader whose caller left with nobody waiting has its call
// cancelled (its chunk handler says stop). A stream asked for before that
// call has ended does not join it, which would hand it the first events and
// then the cut: it asks upstream on its own and gets a whole answer.
TEST_F(CachedClientFlightTest, AStreamDoesNotJoinAFlightBeingCancelled) {
  std::atomic<int> lead_events{0};
  auto leader = Start(/*stream=*/true, [&lead_events](std::string_view) {
    ++lead_events;
    return false;  // the caller left at the first event
  });
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
  EXPECT_FALSE(scripted_->Chunk(
      0, R"({"id":"gen-1","object":"chat.completion.chunk","created":1,)"
         R"("model":"openai/gpt-4o-mini","choices":[{"index":0,"delta":)"
         R"({"role":"assistant","content":"Fou"},"finish_reason":null}]})"))
      << "nobody waits for the stream: the call should stop";
  Collected events;
  auto late = Start(/*stream=*/true, events.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor([&] {
    return scripted_->sends() == 2;
  })) << "the late stream joined the flight being cancelled";
  scripted_->Fail(0, CancelledError("stream cancelled by the caller"),
                  /*after_an_event=*/false);
  EXPECT_THAT(leader.get(), StatusIs(StatusCode::kCancelled));
  scripted_->Release(1, "Four, of course.");
  auto r = late.get();
  ASSERT_OK(r);
  EXPECT_TRUE(r->complete);
  EXPECT_EQ(events.Content(), "Four, of course.");
  EXPECT_EQ(lead_events.load(), 1);
  EXPECT_EQ(flights_->stats().flight_joins, 0u);
}

// A shared tier that holds nothing and grants every lead at once.
class EmptyTier final : public SharedTier {
 public:
  void Get(const RequestKey&, GetCallback done) override {
    done(std::shared_ptr<const Entry>());
  }
  void Put(const RequestKey&, std::shared_ptr<const Entry>) override {}
  void AcquireLead(const RequestKey&, std::function<void(Lead)> done) override {
    done(Lead{LeadOutcome::kLeader, "token", nullptr});
  }
  void Release(const RequestKey&, const std::string&) override {}
  void Record(std::string_view, SharedOutcome, const Usage&) override {}
  Result<uint64_t> FlushModel(std::string_view) override { return 0; }
  Result<uint64_t> FlushAll() override { return 0; }
  Result<bool> PurgeKey(const Digest&) override { return false; }
  void SetFlushListener(std::function<void(std::string_view)>) override {}
  SharedTierHealth Health() const override { return {}; }
  uint64_t flush_count() const override { return 0; }
};

// The same through a shared tier, which the call of its own goes through
// too: that call leads no flight. It hands its events to no flight and does
// not end one: a new flight started after the cancelled one ended gets its
// own leader's answer, not that call's.
TEST_F(CachedClientFlightTest,
       ACallBesideAFlightBeingCancelledLeadsNoneThroughASharedTier) {
  CachedClientOptions o;
  o.shared = std::make_shared<EmptyTier>();
  auto tiered = CachedClient::Create(cache_, scripted_, o);
  auto start = [&](StreamHandler chunks) {
    CachedRequest req;
    req.body =
        Body("openai/gpt-4o-mini", true, R"("temperature":0)", "What is 2+2?");
    return tiered->AsyncComplete(std::move(req), std::move(chunks),
                                 asio::use_future);
  };
  auto leader = start([](std::string_view) { return false; });
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
  EXPECT_FALSE(scripted_->Chunk(
      0, R"({"id":"gen-1","object":"chat.completion.chunk","created":1,)"
         R"("model":"openai/gpt-4o-mini","choices":[{"index":0,"delta":)"
         R"({"role":"assistant","content":"Fou"},"finish_reason":null}]})"));
  Collected beside_events;
  auto beside = start(beside_events.Handler());  // a call of its own
  ASSERT_TRUE(
      llmcache::testing::WaitFor([&] { return scripted_->sends() == 2; }));
  scripted_->Fail(0, CancelledError("stream cancelled by the caller"),
                  /*after_an_event=*/false);
  EXPECT_THAT(leader.get(), StatusIs(StatusCode::kCancelled));
  // A new flight: its leader and a stream that joins it.
  Collected lead_events;
  auto lead = start(lead_events.Handler());
  ASSERT_TRUE(
      llmcache::testing::WaitFor([&] { return scripted_->sends() == 3; }));
  Collected joined_events;
  auto joined = start(joined_events.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return tiered->stats().flight_joins == 1; }));
  scripted_->Release(1, "From the call beside.");
  ASSERT_OK(beside.get());
  EXPECT_EQ(beside_events.Content(), "From the call beside.");
  scripted_->Release(2, "From the new flight.");
  ASSERT_OK(lead.get());
  auto j = joined.get();
  ASSERT_OK(j);
  EXPECT_EQ(lead_events.Content(), "From the new flight.");
  EXPECT_EQ(joined_events.Content(), "From the new flight.")
      << "the call beside handed its events to the new flight";
  EXPECT_EQ(scripted_->sends(), 3u);
}

// A leader's stream that fails after its first event (the connection lost,
// or an idle timeout) has no answer for the waiters: each asks upstream on
// its own instead of being handed the leader's failure half way.
TEST_F(CachedClientFlightTest,
       WaitersOfAStreamLostMidwayEndAsItDidOrAskOnTheirOwn) {
  lead_ok_ = false;
  ExpectWaitersOfAFailedStream([this](Pending& leader, Collected& lead_events) {
    scripted_->Fail(0, UnavailableError("connection lost mid-body"),
                    /*after_an_event=*/true);
    EXPECT_EQ(leader.get().status().code(), StatusCode::kUnavailable);
    EXPECT_EQ(lead_events.events.size(), 1u);
  });

  // A call that fails before any event (upstream unreachable) is the same
  // failure for everyone: handed on, no call each.
  Collected none;
  auto again = Start(/*stream=*/true, none.Handler(), false, "k", "2+3?");
  ASSERT_TRUE(
      llmcache::testing::WaitFor([&] { return scripted_->sends() == 3; }));
  auto other = Start(/*stream=*/false, nullptr, false, "", "2+3?");
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return flights_->stats().flight_joins == 3; }));
  // (Its key differs, but the call never reached an upstream status.)
  scripted_->Fail(2, UnavailableError("connection refused"), false);
  EXPECT_EQ(other.get().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(again.get().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(scripted_->sends(), 3u);
}

// With a scope shared by tenants, identical requests of different API keys
// share a flight; a 401, 402, 403 or 429 answers the leader's key (a
// revoked key, no credits, a rate limit), so only waiters with that key get
// it: the others start a flight of their own (one call for both).
TEST_F(CachedClientFlightTest, AnUpstreamErrorGoesOnlyToTheLeadersKey) {
  auto leader = Start(/*stream=*/false, nullptr, false, "sk-broke");
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
  auto same = Start(/*stream=*/false, nullptr, false, "sk-broke");
  auto good1 = Start(/*stream=*/false, nullptr, false, "sk-good");
  Collected events;
  auto good2 = Start(/*stream=*/true, events.Handler(), false, "sk-good");
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return flights_->stats().flight_joins == 3; }));
  scripted_->AnswerError(0, 402, "Insufficient credits for this key");
  auto l = leader.get();
  ASSERT_OK(l);
  EXPECT_EQ(l->status, 402);
  auto s = same.get();
  ASSERT_OK(s);
  EXPECT_EQ(s->status, 402);
  EXPECT_TRUE(s->joined_flight);

  ASSERT_TRUE(llmcache::testing::WaitFor([&] {
    return scripted_->sends() == 2;
  })) << "the other key's requests did not ask upstream";
  EXPECT_EQ(scripted_->request(1).api_key, "sk-good");
  scripted_->Release(1, "Four, of course.");
  for (auto* f : {&good1, &good2}) {
    auto g = f->get();
    ASSERT_OK(g);
    EXPECT_EQ(g->status, 200);
    EXPECT_EQ(g->body.find("credits"), std::string::npos);
  }
  EXPECT_EQ(events.Content(), "Four, of course.");
  EXPECT_EQ(scripted_->sends(), 2u);
}

// A 5xx is the upstream's trouble, not a key's: every waiter gets it,
// whatever its key, and the upstream is asked once.
TEST_F(CachedClientFlightTest, AServerErrorGoesToEveryWaiter) {
  auto leader = Start(/*stream=*/false, nullptr, false, "sk-a");
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
  auto other = Start(/*stream=*/false, nullptr, false, "sk-b");
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return flights_->stats().flight_joins == 1; }));
  scripted_->AnswerError(0, 503, "overloaded");
  for (auto* f : {&leader, &other}) {
    auto r = f->get();
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 503);
  }
  EXPECT_EQ(scripted_->sends(), 1u);
}

TEST_F(CachedClientFlightTest, AnAnswerAFlushOvertookIsNotStored) {
  // An operator flushes the model while its answer is on the way: the
  // answer still goes to the caller (and its waiter), and is not stored
  // after the flush.
  Collected events;
  auto leader = Start(/*stream=*/true, events.Handler());
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }));
  auto waiter = Start(/*stream=*/false);
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return flights_->stats().flight_joins == 1; }));
  ASSERT_OK(cache_->FlushModel("openai/gpt-4o-mini"));
  scripted_->Release(0, "Four, of course.");
  auto l = leader.get();
  ASSERT_OK(l);
  EXPECT_EQ(events.Content(), "Four, of course.");
  EXPECT_FALSE(l->stored);
  EXPECT_EQ(l->not_stored_reason, "a flush began while it was asked for");
  auto w = waiter.get();
  ASSERT_OK(w);
  EXPECT_EQ(ParseCompletion(w->body)->content, "Four, of course.");
  EXPECT_FALSE(w->stored);

  // The next one asks again, and its answer (asked after the flush) stays.
  auto next = Start(/*stream=*/false);
  ASSERT_TRUE(
      llmcache::testing::WaitFor([&] { return scripted_->sends() == 2; }));
  scripted_->Release(1, "Four.");
  auto n = next.get();
  ASSERT_OK(n);
  EXPECT_TRUE(n->stored) << n->not_stored_reason;
  auto hit = Start(/*stream=*/false).get();
  ASSERT_OK(hit);
  EXPECT_EQ(hit->result, CacheResult::kHit);
  EXPECT_EQ(scripted_->sends(), 2u);
}

TEST_F(CachedClientFlightTest, AFlightWhoseCallThrowsEnds) {
  scripted_->throw_next = true;
  auto first = Start(/*stream=*/false);
  auto f = first.get();
  EXPECT_THAT(f, StatusIs(StatusCode::kInternal, "scripted throw"));
  // The flight is over: an identical request goes upstream, not waits.
  auto second = Start(/*stream=*/false);
  ASSERT_TRUE(llmcache::testing::WaitFor([&] { return scripted_->sends(); }))
      << "the second request is waiting for a flight that never ends";
  scripted_->Release(0, "Four, of course.");
  auto s = second.get();
  ASSERT_OK(s);
  EXPECT_EQ(s->status, 200);
  EXPECT_FALSE(s->joined_flight);
}

}  // namespace
}  // namespace llmcache::net
