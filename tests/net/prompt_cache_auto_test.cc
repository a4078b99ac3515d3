// Provider prompt caching end to end: the `auto` placement policy
// (ApplyAutoPromptCache: rolling breakpoint, the 4-marker limit, caller
// markers, unsupported models, the key), the accounting of reads and writes
// (ComputePromptCacheEffect against docs/openrouter.md#cost-formula), the
// price refresh of the cached client, and the proxy in front of the fake
// OpenRouter: `auto` and the X-LLMCache-Prompt-Cache header, /stats,
// /metrics, persistence across a restart, and model drift.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fake_openrouter.h"
#include "llmcache/key.h"
#include "llmcache/net/cached_client.h"
#include "llmcache/net/prompt_cache.h"
#include "llmcache/net/proxy.h"
#include "testing/http_client.h"
#include "testing/io_loop.h"
#include "testing/proxy_fixture.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

namespace llmcache::net {
namespace {

namespace json = boost::json;
using ::llmcache::fake::FakeOpenRouter;
using ::llmcache::fake::FakeOptions;
using ::llmcache::testing::HttpGet;
using ::llmcache::testing::HttpPost;
using ::llmcache::testing::WaitFor;
using Reply = ::llmcache::testing::HttpReply;
using Headers = ::llmcache::testing::HttpHeaders;
using namespace std::chrono_literals;

constexpr char kSonnet[] = "anthropic/claude-sonnet-4.5";

std::string LongText(char c, size_t n) { return std::string(n, c); }

// A chat body: a system prompt, then `turns` as alternating user/assistant
// string messages (the last one a user message).
std::string Chat(const std::string& model, const std::string& system,
                 const std::vector<std::string>& turns,
                 const std::string& extra = "") {
  json::array messages;
  if (!system.empty()) {
    messages.push_back(json::object{{"role", "system"}, {"content", system}});
  }
  for (size_t i = 0; i < turns.size(); ++i) {
    messages.push_back(json::object{{"role", i % 2 == 0 ? "user" : "assistant"},
                                    {"content", turns[i]}});
  }
  json::object body{{"model", model}, {"temperature", 0}};
  body["messages"] = std::move(messages);
  std::string out = json::serialize(body);
  if (!extra.empty()) out.insert(out.size() - 1, "," + extra);
  return out;
}

// Marker positions: "m<i>" (a message marker), "m<i>p<j>" (a part's), "t<i>".
std::vector<std::string> Markers(const std::string& body) {
  std::vector<std::string> out;
  const json::object root = json::parse(body).as_object();
  if (const json::value* tools = root.if_contains("tools")) {
    for (size_t i = 0; i < tools->as_array().size(); ++i) {
      if (tools->as_array()[i].as_object().contains("cache_control")) {
        out.push_back("t" + std::to_string(i));
      }
    }
  }
  const json::array& messages = root.at("messages").as_array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const json::object& m = messages[i].as_object();
    if (m.contains("cache_control")) {
      out.push_back(std::string("m").append(std::to_string(i)));
    }
    const json::value* content = m.if_contains("content");
    if (content == nullptr || !content->is_array()) continue;
    for (size_t j = 0; j < content->as_array().size(); ++j) {
      if (content->as_array()[j].as_object().contains("cache_control")) {
        out.push_back(std::string("m")
                          .append(std::to_string(i))
                          .append("p")
                          .append(std::to_string(j)));
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Placement

TEST(PromptCacheAutoTest, ExplicitBreakpointModelsFollowTheProviderTable) {
  for (const char* yes :
       {"anthropic/claude-sonnet-4.5", "anthropic/claude-3.5-haiku:beta",
        "Anthropic/Claude-Opus-4.5", "~anthropic/claude-sonnet-latest",
        "google/gemini-2.5-pro", "google/gemini-2.5-flash",
        "google/gemini-3-pro-preview", "claude-sonnet-4-5"}) {
    EXPECT_TRUE(SupportsExplicitPromptCache(yes)) << yes;
  }
  for (const char* no :
       {"openai/gpt-4o", "deepseek/deepseek-chat-v3.1", "x-ai/grok-4",
        "google/gemini-2.0-flash-001", "google/gemma-3-27b-it",
        "meta-llama/llama-3.3-70b-instruct", "fake/echo", ""}) {
    EXPECT_FALSE(SupportsExplicitPromptCache(no)) << no;
  }
}

TEST(PromptCacheAutoTest, RollingBreakpointMarksTheLastBlock) {
  const std::string body = Chat(kSonnet, LongText('s', 5000),
                                {"first question", "first answer", "next"});
  Result<std::string> out = ApplyAutoPromptCache(body, kSonnet);
  ASSERT_OK(out);
  // The system prompt, then the conversation so far: the last message.
  EXPECT_EQ(Markers(*out), (std::vector<std::string>{"m0p0", "m3p0"}));
  const json::object last =
      json::parse(*out).at("messages").as_array().back().as_object();
  EXPECT_EQ(last.at("content").as_array()[0].at("text").as_string(), "next");
}

TEST(PromptCacheAutoTest, RollingBreakpointSkipsMessagesWithoutText) {
  // An assistant tool call (content null) at the end: the rolling
  // breakpoint goes on the last block that has text.
  std::string body = R"({"model":"anthropic/claude-sonnet-4.5","messages":[)"
                     R"({"role":"system","content":")" +
                     LongText('s', 5000) +
                     R"("},{"role":"user","content":"go"},)"
                     R"({"role":"assistant","content":null,"tool_calls":[]}]})";
  Result<std::string> out = ApplyAutoPromptCache(body, kSonnet);
  ASSERT_OK(out);
  EXPECT_EQ(Markers(*out), (std::vector<std::string>{"m0p0", "m1p0"}));
}

TEST(PromptCacheAutoTest, SmallPromptsAreLeftAlone) {
  const std::string body = Chat(kSonnet, "short", {"hi"});
  Result<std::string> out = ApplyAutoPromptCache(body, kSonnet);
  ASSERT_OK(out);
  EXPECT_EQ(*out, body);
}

TEST(PromptCacheAutoTest, NeverMoreThanFourBreakpointsCountingTheCallers) {
  // Three large documents besides the system prompt: the limit cuts them.
  const std::string body = Chat(kSonnet, LongText('s', 5000),
                                {LongText('a', 6000), LongText('b', 7000),
                                 LongText('c', 8000), "ok", "and now?"});
  Result<std::string> out = ApplyAutoPromptCache(body, kSonnet);
  ASSERT_OK(out);
  // System, rolling, then the two largest documents.
  EXPECT_EQ(Markers(*out),
            (std::vector<std::string>{"m0p0", "m2p0", "m3p0", "m5p0"}));

  // With two markers of the caller's, AddCacheBreakpoints adds two more and
  // keeps the caller's as they are.
  std::string marked =
      R"({"model":"anthropic/claude-sonnet-4.5","tools":[)"
      R"({"type":"function","function":{"name":"f"},)"
      R"("cache_control":{"type":"ephemeral"}}],)"
      R"("messages":[{"role":"system","content":")" +
      LongText('s', 5000) +
      R"("},{"role":"user","content":[{"type":"text","text":")" +
      LongText('d', 9000) +
      R"(","cache_control":{"type":"ephemeral","ttl":"1h"}}]},)"
      R"({"role":"assistant","content":")" +
      LongText('e', 6000) + R"("},{"role":"user","content":"q"}]})";
  BreakpointOptions options;
  options.rolling = true;
  Result<std::string> added = AddCacheBreakpoints(marked, kSonnet, options);
  ASSERT_OK(added);
  EXPECT_EQ(Markers(*added),
            (std::vector<std::string>{"t0", "m0p0", "m1p0", "m3p0"}));
  EXPECT_NE(added->find(R"("ttl":"1h")"), std::string::npos);
}

TEST(PromptCacheAutoTest, CallerMarkedRequestsGoAsWrittenByteForByte) {
  const std::string body =
      "{ \"model\" : \"anthropic/claude-sonnet-4.5\",\n \"messages\": [ "
      "{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"" +
      LongText('s', 5000) +
      "\"}]}, {\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
      "\"\\u0041 1.0e0\",\"cache_control\":{\"type\":\"ephemeral\"}}]}  ] }";
  Result<std::string> out = ApplyAutoPromptCache(body, kSonnet);
  ASSERT_OK(out);
  EXPECT_EQ(*out, body);
  // Top-level automatic caching counts as the caller's marker too.
  const std::string automatic = Chat(kSonnet, LongText('s', 5000), {"q"},
                                     R"("cache_control":{"type":"ephemeral"})");
  Result<std::string> same = ApplyAutoPromptCache(automatic, kSonnet);
  ASSERT_OK(same);
  EXPECT_EQ(*same, automatic);
}

TEST(PromptCacheAutoTest, UnsupportedModelsAreUntouched) {
  for (const char* model :
       {"openai/gpt-4o", "deepseek/deepseek-chat-v3.1", "fake/echo"}) {
    const std::string body = Chat(model, LongText('s', 9000), {"q"});
    Result<std::string> out = ApplyAutoPromptCache(body, model);
    ASSERT_OK(out);
    EXPECT_EQ(*out, body) << model;
  }
}

TEST(PromptCacheAutoTest, TheKeyDoesNotChange) {
  const KeyBuilder keys;
  const std::string body =
      Chat(kSonnet, LongText('s', 5000), {"a", "b", LongText('d', 6000)});
  Result<std::string> out = ApplyAutoPromptCache(body, kSonnet);
  ASSERT_OK(out);
  ASSERT_NE(*out, body);
  Result<RequestKey> before = keys.Compute(body, KeyScope());
  Result<RequestKey> after = keys.Compute(*out, KeyScope());
  ASSERT_OK(before);
  ASSERT_OK(after);
  EXPECT_EQ(before->Hex(), after->Hex());
}

TEST(PromptCacheAutoTest, ModeNames) {
  EXPECT_EQ(PromptCacheModeFromName("off"), PromptCacheMode::kOff);
  EXPECT_EQ(PromptCacheModeFromName("auto"), PromptCacheMode::kAuto);
  EXPECT_EQ(PromptCacheModeFromName("on"), std::nullopt);
  EXPECT_EQ(PromptCacheModeFromName("AUTO"), std::nullopt);
  EXPECT_EQ(PromptCacheModeName(PromptCacheMode::kAuto), "auto");
}

// ---------------------------------------------------------------------------
// Pricing (docs/openrouter.md#cost-formula: the worked example)

PricingTable SonnetPrices() {
  PricingTable t;
  ModelPricing p;
  p.prompt = 3e-6;
  p.completion = 15e-6;
  p.input_cache_read = 0.3e-6;
  p.input_cache_write = 3.75e-6;
  t.Set(kSonnet, p);
  return t;
}

TEST(PromptCacheAutoTest, SavingsOfTheDocumentedExample) {
  // 10 000 prompt tokens of which 8 000 cached, 500 completion tokens:
  // $0.0216 saved.
  CompletionUsage u;
  u.prompt_tokens = 10'000;
  u.cached_tokens = 8'000;
  u.completion_tokens = 500;
  Result<PromptCacheEffect> e =
      ComputePromptCacheEffect(SonnetPrices(), kSonnet, u);
  ASSERT_OK(e);
  EXPECT_NEAR(e->saved, 0.0216, 1e-12);
  EXPECT_NEAR(e->write_premium, 0, 1e-12);
  EXPECT_FALSE(e->from_usage_cost);
  // usage.cost as the doc computes it ($0.0159): the same.
  u.cost = 0.0159;
  e = ComputePromptCacheEffect(SonnetPrices(), kSonnet, u);
  ASSERT_OK(e);
  EXPECT_TRUE(e->from_usage_cost);
  EXPECT_NEAR(e->saved, 0.0216, 1e-12);
}

TEST(PromptCacheAutoTest, WritesCostAPremiumAndUsageCostWins) {
  // A first turn: 10 000 tokens written at $3.75/M instead of $3/M.
  CompletionUsage u;
  u.prompt_tokens = 12'000;
  u.cache_write_tokens = 10'000;
  Result<PromptCacheEffect> e =
      ComputePromptCacheEffect(SonnetPrices(), kSonnet, u);
  ASSERT_OK(e);
  EXPECT_NEAR(e->write_premium, 0.0075, 1e-12);
  EXPECT_NEAR(e->saved, 0, 1e-12);
  // The upstream billed $0.001 less than the list prices say for the read:
  // its figure wins.
  CompletionUsage r;
  r.prompt_tokens = 10'000;
  r.cached_tokens = 8'000;
  r.completion_tokens = 500;
  r.cost = 0.0149;
  e = ComputePromptCacheEffect(SonnetPrices(), kSonnet, r);
  ASSERT_OK(e);
  EXPECT_NEAR(e->saved, 0.0226, 1e-12);
  EXPECT_FALSE(ComputePromptCacheEffect(SonnetPrices(), "a/b", r).ok());
}

// ---------------------------------------------------------------------------
// The cached client's price refresh

TEST(PromptCacheAutoTest, CachedClientFetchesPricesAndKeepsThemOnFailure) {
  auto fake = FakeOpenRouter::Start(FakeOptions{});
  ASSERT_OK(fake);
  llmcache::testing::IoLoop loop;
  ClientOptions co;
  co.base_url = (*fake)->base_url();
  co.api_key = "k";
  co.max_attempts = 1;
  auto client = Client::Create(loop.ioc().get_executor(), co);
  ASSERT_OK(client);
  auto cache = Cache::Open(CacheOptions());
  ASSERT_OK(cache);
  std::vector<std::string> logs;
  std::mutex mu;
  CachedClientOptions o;
  o.pricing_refresh_ms = 100;
  o.log = [&](std::string_view line) {
    std::lock_guard<std::mutex> lock(mu);
    logs.emplace_back(line);
  };
  auto cached = CachedClient::Create(std::shared_ptr<Cache>(std::move(*cache)),
                                     *client, o);
  ASSERT_TRUE(WaitFor([&] { return cached->pricing() != nullptr; }));
  const std::shared_ptr<const PricingTable> first = cached->pricing();
  ASSERT_NE(first->Find(kSonnet), nullptr);
  EXPECT_DOUBLE_EQ(first->Find(kSonnet)->prompt, 3e-6);
  // The upstream goes away: the table stays, one line is logged.
  (*fake)->Stop();
  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(cached->pricing()->size(), first->size());
  {
    std::lock_guard<std::mutex> lock(mu);
    size_t failures = 0;
    for (const std::string& l : logs) {
      if (l.find("cannot load model prices") != std::string::npos) ++failures;
    }
    EXPECT_EQ(failures, 1u);
  }
  cached.reset();
}

// ---------------------------------------------------------------------------
// Through the proxy

class ProxyPromptCacheTest : public ::llmcache::testing::ProxyFixture {
 protected:
  void SetUp() override {
    StartFake();
    if (HasFatalFailure()) return;
    // The fake's own /models prices (Sonnet 4.5: $3/M, write $3.75/M, read
    // $0.30/M).
    const Reply models = HttpGet(fake_->port(), "/api/v1/models",
                                 {{"Authorization", "Bearer k"}});
    ASSERT_EQ(models.status, 200) << models.body;
    auto table = PricingTable::FromModelsJson(models.body);
    ASSERT_OK(table);
    prices_ = std::make_shared<const PricingTable>(std::move(*table));
  }

  void Start(PromptCacheMode mode, bool flush_on_drift = false) {
    CacheOptions co;
    co.path = dir_.path() + "/db";
    ProxyOptions o = BaseProxyOptions(2, "server-key");
    o.cached.prompt_cache = mode;
    o.cached.pricing = prices_;
    o.cached.flush_on_model_drift = flush_on_drift;
    StartProxy(std::move(co), std::move(o));
  }

  Reply Post(const std::string& body, const Headers& headers = {}) {
    return HttpPost(proxy_->port(), "/v1/chat/completions", body, headers);
  }

  static json::object Usage(const Reply& r) {
    return json::parse(r.body).at("usage").as_object();
  }
  static int64_t CachedTokens(const Reply& r) {
    const json::object usage = Usage(r);
    const json::value* d = usage.if_contains("prompt_tokens_details");
    if (d == nullptr || !d->is_object()) return 0;
    const json::value* v = d->as_object().if_contains("cached_tokens");
    return v != nullptr ? v->to_number<int64_t>() : 0;
  }
  static int64_t WriteTokens(const Reply& r) {
    const json::object usage = Usage(r);
    const json::value* d = usage.if_contains("prompt_tokens_details");
    if (d == nullptr || !d->is_object()) return 0;
    const json::value* v = d->as_object().if_contains("cache_write_tokens");
    return v != nullptr ? v->to_number<int64_t>() : 0;
  }

  json::object Stats() {
    const Reply r = HttpGet(proxy_->port(), "/stats");
    EXPECT_EQ(r.status, 200);
    return json::parse(r.body).as_object();
  }

  // The engine's entry for `model` in /stats, or null.
  static const json::object* EngineModel(const json::object& stats,
                                         const std::string& model) {
    for (const json::value& m : stats.at("cache").at("models").as_array()) {
      if (m.at("model").as_string() == model) return &m.as_object();
    }
    return nullptr;
  }

  // Two turns of one conversation.
  std::string Turn1() { return Chat(kSonnet, system_, {"first question"}); }
  std::string Turn2() {
    return Chat(kSonnet, system_,
                {"first question", "first answer", "second question"});
  }

  const std::string system_ = LongText('s', 8000);
  llmcache::testing::TempDir dir_;
  std::shared_ptr<const PricingTable> prices_;
};

TEST_F(ProxyPromptCacheTest, AutoReadsTheCachedPrefixOnTheNextTurn) {
  Start(PromptCacheMode::kAuto);
  const Reply r1 = Post(Turn1());
  ASSERT_EQ(r1.status, 200) << r1.body;
  EXPECT_EQ(r1.header("X-Cache"), "MISS");
  EXPECT_EQ(CachedTokens(r1), 0);
  EXPECT_GT(WriteTokens(r1), 1500);
  const Reply r2 = Post(Turn2());
  ASSERT_EQ(r2.status, 200) << r2.body;
  EXPECT_EQ(r2.header("X-Cache"), "MISS");
  // The whole first turn (system prompt and question) is read back.
  const int64_t read = CachedTokens(r2);
  EXPECT_GE(read, 1500);
  EXPECT_EQ(read, WriteTokens(r1));

  const json::object s = Stats();
  const json::object& pc = s.at("client").at("prompt_cache").as_object();
  EXPECT_EQ(pc.at("mode").as_string(), "auto");
  EXPECT_EQ(pc.at("read_tokens").to_number<int64_t>(), read);
  ASSERT_EQ(pc.at("models").as_array().size(), 1u);
  const json::object& m = pc.at("models").as_array()[0].as_object();
  EXPECT_EQ(m.at("model").as_string(), kSonnet);
  EXPECT_EQ(m.at("read_tokens").to_number<int64_t>(), read);
  EXPECT_EQ(m.at("write_tokens").to_number<int64_t>(),
            WriteTokens(r1) + WriteTokens(r2));
  // Reads at $0.30/M instead of $3/M; writes at $3.75/M instead of $3/M.
  EXPECT_NEAR(m.at("saved_usd").to_number<double>(), read * 2.7e-6, 1e-6);
  EXPECT_NEAR(m.at("write_premium_usd").to_number<double>(),
              (WriteTokens(r1) + WriteTokens(r2)) * 0.75e-6, 1e-9);
  const json::object* e = EngineModel(s, kSonnet);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->at("provider_cache_read_tokens").to_number<int64_t>(), read);
  EXPECT_NEAR(e->at("provider_cache_saved_usd").to_number<double>(),
              read * 2.7e-6, 1e-6);

  const std::string metrics = proxy_->MetricsText();
  EXPECT_NE(metrics.find("llmcache_provider_cache_tokens_total{model=\"" +
                         std::string(kSonnet) + "\",kind=\"read\"} " +
                         std::to_string(read)),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("llmcache_provider_cache_saved_usd_total{model=\"" +
                         std::string(kSonnet) + "\"}"),
            std::string::npos);
  EXPECT_NE(
      metrics.find("llmcache_provider_cache_write_premium_usd_total{model=\""),
      std::string::npos);

  // The counters survive a restart (persisted with the engine's).
  Start(PromptCacheMode::kAuto);
  const json::object after = Stats();
  const json::object* again = EngineModel(after, kSonnet);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->at("provider_cache_read_tokens").to_number<int64_t>(), read);
  EXPECT_EQ(again->at("provider_cache_write_tokens").to_number<int64_t>(),
            WriteTokens(r1) + WriteTokens(r2));
}

TEST_F(ProxyPromptCacheTest, OffSendsBodiesAsTheyCame) {
  Start(PromptCacheMode::kOff);
  const Reply r1 = Post(Turn1());
  const Reply r2 = Post(Turn2());
  ASSERT_EQ(r2.status, 200);
  EXPECT_EQ(WriteTokens(r1), 0);
  EXPECT_EQ(CachedTokens(r2), 0);
  EXPECT_EQ(Stats().at("client").at("prompt_cache").at("mode").as_string(),
            "off");
}

TEST_F(ProxyPromptCacheTest, TheHeaderOverridesTheDefaultBothWays) {
  Start(PromptCacheMode::kOff);
  const Reply on = Post(Turn1(), {{"X-LLMCache-Prompt-Cache", "auto"}});
  ASSERT_EQ(on.status, 200) << on.body;
  EXPECT_GT(WriteTokens(on), 0);
  // Never forwarded upstream.
  EXPECT_EQ(fake_->last_header("X-LLMCache-Prompt-Cache"), "");

  Start(PromptCacheMode::kAuto);
  const Reply off = Post(Chat(kSonnet, system_, {"other question"}),
                         {{"X-LLMCache-Prompt-Cache", "off"}});
  ASSERT_EQ(off.status, 200) << off.body;
  EXPECT_EQ(WriteTokens(off), 0);
  EXPECT_EQ(CachedTokens(off), 0);

  const Reply bad = Post(Turn1(), {{"X-LLMCache-Prompt-Cache", "yes"}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("X-LLMCache-Prompt-Cache must be off or auto"),
            std::string::npos)
      << bad.body;
}

TEST_F(ProxyPromptCacheTest, TheKeyIsTheSameWithAndWithoutMarkers) {
  Start(PromptCacheMode::kAuto);
  const Reply marked = Post(Turn1());
  ASSERT_EQ(marked.header("X-Cache"), "MISS");
  const Reply plain = Post(Turn1(), {{"X-LLMCache-Prompt-Cache", "off"}});
  EXPECT_EQ(plain.header("X-Cache"), "HIT");
  EXPECT_EQ(plain.header("X-Cache-Key"), marked.header("X-Cache-Key"));
}

std::string Resolved(const std::string& resolved) {
  return R"("x_fake_resolved_model":")" + resolved + R"(")";
}

const json::object* DriftModel(const json::object& stats,
                               const std::string& model) {
  for (const json::value& m :
       stats.at("client").at("drift").at("models").as_array()) {
    if (m.at("model").as_string() == model) return &m.as_object();
  }
  return nullptr;
}

TEST_F(ProxyPromptCacheTest, DriftIsShownAndCounted) {
  Start(PromptCacheMode::kOff);
  const std::string a = Chat("x/m", "", {"one"}, Resolved("x/m-2025-01"));
  const std::string b = Chat("x/m", "", {"two"}, Resolved("x/m-2025-02"));
  ASSERT_EQ(Post(a).status, 200);
  json::object s = Stats();
  EXPECT_FALSE(s.at("client").at("drift").at("flush_on_drift").as_bool());
  const json::object* d = DriftModel(s, "x/m");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->at("resolved_model").as_string(), "x/m-2025-01");
  EXPECT_EQ(d->at("drift_events").to_number<int64_t>(), 0);
  ASSERT_EQ(Post(b).status, 200);
  ASSERT_EQ(Post(b, {{"Cache-Control", "no-cache"}}).status, 200);  // same
  s = Stats();
  d = DriftModel(s, "x/m");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->at("resolved_model").as_string(), "x/m-2025-02");
  EXPECT_EQ(d->at("drift_events").to_number<int64_t>(), 1);
  EXPECT_GT(d->at("last_drift_ms").to_number<int64_t>(), 0);
  // Without --flush-on-drift the old entry stays.
  EXPECT_EQ(Post(a).header("X-Cache"), "HIT");
  // Persisted: the engine's count, and after a restart.
  Start(PromptCacheMode::kOff);
  s = Stats();
  const json::object* e = EngineModel(s, "x/m");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->at("drift_events").to_number<int64_t>(), 1);
  d = DriftModel(s, "x/m");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->at("drift_events").to_number<int64_t>(), 1);
}

TEST_F(ProxyPromptCacheTest, FlushOnDriftDropsTheModelsEntries) {
  Start(PromptCacheMode::kOff, /*flush_on_drift=*/true);
  const std::string a = Chat("x/m", "", {"one"}, Resolved("x/m-2025-01"));
  const std::string b = Chat("x/m", "", {"two"}, Resolved("x/m-2025-02"));
  ASSERT_EQ(Post(a).header("X-Cache"), "MISS");
  ASSERT_EQ(Post(a).header("X-Cache"), "HIT");
  ASSERT_EQ(Post(b).header("X-Cache"), "MISS");  // drift: x/m flushed
  EXPECT_TRUE(Stats().at("client").at("drift").at("flush_on_drift").as_bool());
  EXPECT_EQ(Post(a).header("X-Cache"), "MISS");
  const json::object stats = Stats();
  const json::object* d = DriftModel(stats, "x/m");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->at("drift_events").to_number<int64_t>(), 2);  // 01->02->01
}

}  // namespace
}  // namespace llmcache::net
