// Unit tests of GET /stats and GET /healthz rendering
// (net/proxy/src/stats_json.h): the "cache" (or "cache_error"), "proxy",
// "store" and "client" sections and their fields, and the health answer of a
// healthy, degraded and recovered store.

#include "stats_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "llmcache/stats_json.h"

namespace llmcache::net {
namespace {

namespace json = boost::json;

json::object Render(const Result<CacheStats>& cache,
                    const metrics::Totals& proxy,
                    const CachedClientStats& client,
                    const StoreHealth& store = {}) {
  return json::parse(StatsJson(cache, proxy, client, store)).as_object();
}

TEST(StatsJsonTest, HasTheFourSections) {
  const json::object o =
      Render(CacheStats(), metrics::Totals(), CachedClientStats());
  EXPECT_EQ(o.size(), 4u);
  EXPECT_TRUE(o.at("cache").is_object());
  EXPECT_TRUE(o.at("proxy").is_object());
  EXPECT_TRUE(o.at("store").is_object());
  EXPECT_TRUE(o.at("client").is_object());
  EXPECT_FALSE(o.contains("cache_error"));
}

TEST(StatsJsonTest, CacheIsTheEnginesStatsJson) {
  CacheStats s;
  s.hits = 3;
  s.misses = 1;
  s.entries = 9;
  s.persistent = true;
  const json::object o = Render(s, metrics::Totals(), CachedClientStats());
  EXPECT_EQ(o.at("cache"), json::parse(CacheStatsJson(s)));
  EXPECT_EQ(o.at("cache").at("hits"), 3);
  EXPECT_EQ(o.at("cache").at("entries"), 9);
  EXPECT_EQ(o.at("cache").at("persistent"), true);
  // The text writes hit_rate 0.75 and a zero cost as decimals, not as
  // Boost.JSON 1.81's "7.5E-1" and "0E0".
  const std::string text =
      StatsJson(s, metrics::Totals(), CachedClientStats(), StoreHealth());
  EXPECT_THAT(text, ::testing::HasSubstr("\"hit_rate\":0.75"));
  EXPECT_THAT(text, ::testing::HasSubstr("\"cost_saved_usd\":0.0"));
  EXPECT_THAT(text, ::testing::Not(::testing::ContainsRegex("[0-9]E[-+0-9]")));
}

TEST(StatsJsonTest, UnreadableCacheGivesCacheError) {
  const Result<CacheStats> error = DataLossError("corrupt block");
  const json::object o = Render(error, metrics::Totals(), CachedClientStats());
  EXPECT_FALSE(o.contains("cache"));
  EXPECT_EQ(o.at("cache_error"), json::value(error.status().ToString()));
  EXPECT_TRUE(o.contains("proxy"));
  EXPECT_TRUE(o.contains("client"));
}

TEST(StatsJsonTest, ProxySectionHoldsTheHttpCountersAndThePipelineOutcomes) {
  metrics::Totals t;
  t.requests = 10;
  t.response_bytes = 2048;
  t.models_fetches = 2;
  t.models_errors = 1;
  t.in_flight = 3;
  t.open_connections = 4;
  t.rejected_connections = 5;
  t.accept_errors = 6;
  t.max_connections = 490;
  t.hit_sum_ns = 77;  // histograms are not in /stats
  CachedClientStats c;
  c.hits = 6;
  c.misses = 2;
  c.bypasses = 1;
  c.bypass_reasons[static_cast<size_t>(BypassReason::kDebug)] = 1;
  c.tokens_saved = 300;
  c.cost_saved_nanousd = 1'500'000'000;
  c.upstream_errors = 2;
  c.store_errors = 3;
  const json::object o = Render(CacheStats(), t, c);
  EXPECT_EQ(o.at("proxy"), json::parse(R"({
    "requests": 10, "hits": 6, "misses": 2, "bypasses": 1,
    "bypass_reasons": {"no_temperature": 0, "non_zero_temperature": 0,
                       "web_search": 0, "drifting_model": 0, "debug": 1,
                       "mode_never": 0, "previous_response": 0,
                       "store_requested": 0, "background": 0,
                       "stored_prompt": 0},
    "tokens_saved": 300, "cost_saved_usd": 1.5, "response_bytes": 2048,
    "upstream_errors": 3, "store_errors": 3, "models_fetches": 2,
    "models_errors": 1, "in_flight": 3, "open_connections": 4,
    "rejected_connections": 5, "accept_errors": 6,
    "max_connections": 490})"));
}

TEST(StatsJsonTest, ClientSectionHoldsThePipelineCounts) {
  CachedClientStats c;
  c.keys_computed = 20;
  c.hits = 11;
  c.misses = 5;
  c.bypasses = 4;
  c.bypass_reasons[static_cast<size_t>(BypassReason::kNoTemperature)] = 1;
  c.bypass_reasons[static_cast<size_t>(BypassReason::kDebug)] = 3;
  c.tokens_saved = 999;
  c.cost_saved_nanousd = 2'500'000'000;
  c.upstream_calls = 9;
  c.upstream_errors = 2;
  c.flight_joins = 1;
  c.store_errors = 6;
  c.stored = 4;
  c.not_stored = 1;
  c.model_drifts = 7;
  c.prompt_cache_read_tokens = 100;
  c.prompt_cache_write_tokens = 50;
  c.prompt_cache_savings_nanousd = -250'000'000;
  c.priced_responses = 8;
  c.prompt_cache_marked = 3;
  c.prompt_cache_mode = PromptCacheMode::kAuto;
  c.prompt_cache_models = {
      {"anthropic/claude-sonnet-4.5", 100, 50, 270'000'000, 37'500'000}};
  c.prompt_cache_saved_nanousd = 270'000'000;
  c.prompt_cache_write_premium_nanousd = 37'500'000;
  c.flush_on_drift = true;
  c.drift_models = {{"a/b", "a/b-2025", 2, 1'700'000'000'000}};
  const json::object o = Render(CacheStats(), metrics::Totals(), c);
  EXPECT_EQ(o.at("client"), json::parse(R"({
    "keys_computed": 20, "hits": 11, "misses": 5, "bypasses": 4,
    "bypasses_by_reason": {"no_temperature": 1, "non_zero_temperature": 0,
                       "web_search": 0, "drifting_model": 0, "debug": 3,
                       "mode_never": 0, "previous_response": 0,
                       "store_requested": 0, "background": 0,
                       "stored_prompt": 0},
    "tokens_saved": 999, "cost_saved_usd": 2.5, "upstream_calls": 9,
    "upstream_errors": 2, "flight_joins": 1, "store_errors": 6, "stored": 4,
    "not_stored": 1, "model_drifts": 7, "prompt_cache_read_tokens": 100,
    "prompt_cache_write_tokens": 50, "prompt_cache_savings_usd": -0.25,
    "priced_responses": 8, "prompt_cache_marked": 3,
    "endpoints": {
      "chat_completions": {"hits": 0, "misses": 0, "bypasses": 0},
      "embeddings": {"hits": 0, "misses": 0, "bypasses": 0},
      "responses": {"hits": 0, "misses": 0, "bypasses": 0},
      "messages": {"hits": 0, "misses": 0, "bypasses": 0}},
    "embedding_inputs_hit": 0, "embedding_inputs_missed": 0,
    "prompt_cache": {"mode": "auto", "read_tokens": 100, "write_tokens": 50,
      "saved_usd": 0.27, "write_premium_usd": 0.0375,
      "models": [{"model": "anthropic/claude-sonnet-4.5", "read_tokens": 100,
                  "write_tokens": 50, "saved_usd": 0.27,
                  "write_premium_usd": 0.0375}]},
    "drift": {"flush_on_drift": true,
      "models": [{"model": "a/b", "resolved_model": "a/b-2025",
                  "drift_events": 2, "last_drift_ms": 1700000000000}]}})"));
}

TEST(StatsJsonTest, SectionsComeInOrder) {
  const std::string text = StatsJson(CacheStats(), metrics::Totals(),
                                     CachedClientStats(), StoreHealth());
  const size_t cache = text.find("\"cache\":");
  const size_t proxy = text.find("\"proxy\":");
  const size_t store = text.find("\"store\":");
  const size_t client = text.find("\"client\":");
  ASSERT_NE(cache, std::string::npos);
  EXPECT_LT(cache, proxy);
  EXPECT_LT(proxy, store);
  EXPECT_LT(store, client);
}

StoreHealth Degraded() {
  StoreHealth h;
  h.degraded = true;
  h.error = "IO error: No space left on device";
  h.degraded_since_ms = 1'700'000'000'000;
  h.degradations = 1;
  h.recovery_attempts = 3;
  h.write_errors = 4;
  return h;
}

TEST(StatsJsonTest, StoreSectionIsTheStoresHealth) {
  EXPECT_EQ(
      Render(CacheStats(), metrics::Totals(), CachedClientStats()).at("store"),
      json::parse(R"({"degraded": false, "degradations": 0,
                "recoveries": 0, "recovery_attempts": 0, "write_errors": 0})"));
  EXPECT_EQ(
      Render(CacheStats(), metrics::Totals(), CachedClientStats(), Degraded())
          .at("store"),
      json::parse(R"({"degraded": true,
          "error": "IO error: No space left on device",
          "degraded_since_ms": 1700000000000, "degradations": 1,
          "recoveries": 0, "recovery_attempts": 3, "write_errors": 4})"));
}

TEST(HealthzJsonTest, HealthyStoreIsJustOk) {
  EXPECT_EQ(HealthzJson(StoreHealth()), R"({"status":"ok"})");
}

TEST(HealthzJsonTest, DegradedStoreIsReportedWithItsError) {
  EXPECT_EQ(json::parse(HealthzJson(Degraded())), json::parse(R"({
      "status": "degraded",
      "store": {"degraded": true,
                "error": "IO error: No space left on device",
                "degraded_since_ms": 1700000000000, "degradations": 1,
                "recoveries": 0, "recovery_attempts": 3,
                "write_errors": 4}})"));
}

TEST(HealthzJsonTest, RecoveredStoreIsOkWithTheTimeOfTheRecovery) {
  StoreHealth h = Degraded();
  h.degraded = false;
  h.recoveries = 1;
  h.recovered_ms = 1'700'000'060'000;
  EXPECT_EQ(json::parse(HealthzJson(h)), json::parse(R"({
      "status": "ok",
      "store": {"degraded": false, "recovered_ms": 1700000060000,
                "degradations": 1, "recoveries": 1, "recovery_attempts": 3,
                "write_errors": 4}})"));
}

TEST(HealthzJsonTest, WriteErrorsAloneShowTheStore) {
  StoreHealth h;
  h.write_errors = 2;
  const json::value v = json::parse(HealthzJson(h));
  EXPECT_EQ(v.at("status"), "ok");
  EXPECT_EQ(v.at("store").at("write_errors"), 2);
}

}  // namespace
}  // namespace llmcache::net
