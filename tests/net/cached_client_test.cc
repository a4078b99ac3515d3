// CachedClient: hit / miss / bypass, single flight, fail open, nothing bad
// cached, streams and their replay, model drift.

#include "llmcache/net/cached_client.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cmath>
#include <future>
#include <mutex>
#include <thread>

#include "fake_openrouter.h"
#include "llmcache/net/sse.h"
#include "testing/io_loop.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

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
  // The leader streams and hangs up at its second event (150 ms in); a
  // second caller joined the flight at 50 ms. The stream goes on for the
  // waiter, which gets the whole answer, and it is stored: one upstream call.
  const std::string body = Body("fake/slow-150", /*stream=*/true);
  CachedRequest lead;
  lead.body = body;
  int leader_events = 0;
  auto leader = cached_->AsyncComplete(
      std::move(lead), [&](std::string_view) { return ++leader_events < 2; },
      asio::use_future);
  std::this_thread::sleep_for(50ms);
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
  Result<bool> PurgeKey(const Digest&) override { return Fail(); }
  Result<uint64_t> PurgeNamespace(std::string_view) override { return Fail(); }
  Result<uint64_t> PurgeExpired() override { return Fail(); }
  Result<uint64_t> PurgeOlderThan(int64_t) override { return Fail(); }
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
  Status Compact() override { return Fail(); }
  Status RunMaintenance() override { return Fail(); }
  bool persistent() const override { return true; }

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
}

TEST_F(CachedClientTest, PromptCachingIsPricedSeparatelyFromResponseCache) {
  ClientOptions co;
  co.base_url = fake_->base_url();
  co.api_key = "k";
  auto client = Client::Create(loop_.ioc().get_executor(), co);
  ASSERT_OK(client);
  std::promise<Result<PricingTable>> p;
  FetchPricing(**client,
               [&](Result<PricingTable> t) { p.set_value(std::move(t)); });
  Result<PricingTable> table = p.get_future().get();
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

}  // namespace
}  // namespace llmcache::net
