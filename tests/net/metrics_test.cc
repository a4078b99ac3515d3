// Unit tests of the proxy's Prometheus rendering (net/proxy/src/metrics.h):
// known counts in the shards, the pipeline's stats and the store's health
// give exact lines; histograms are cumulative with +Inf, _sum and _count.

#include "metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace llmcache::net::metrics {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;
using ::testing::StartsWith;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The lines of metric `name` (samples and comments), in order.
std::vector<std::string> LinesOf(const std::string& text,
                                 std::string_view name) {
  std::vector<std::string> out;
  for (const std::string& l : Lines(text)) {
    const std::string_view v = l;
    if (v.starts_with(std::string(name) + " ") ||
        v.starts_with(std::string(name) + "{") ||
        v.starts_with(std::string(name) + "_") ||
        v.starts_with("# HELP " + std::string(name) + " ") ||
        v.starts_with("# TYPE " + std::string(name) + " ")) {
      out.push_back(l);
    }
  }
  return out;
}

TEST(MetricsRenderTest, EmptyRegistryRendersZeros) {
  Registry r(1);
  const std::string text = r.Render(CachedClientStats(), 0, 0, StoreHealth());
  EXPECT_THAT(text, StartsWith("# HELP llmcache_requests_total "));
  const std::vector<std::string> lines = Lines(text);
  // 2xx lines are always there, for every route; other classes only when
  // non-zero.
  for (std::string_view route : {"chat_completions", "models", "healthz",
                                 "metrics", "stats", "admin", "other"}) {
    EXPECT_THAT(lines, Contains("llmcache_requests_total{route=\"" +
                                std::string(route) + "\",code=\"2xx\"} 0"));
  }
  EXPECT_THAT(text, Not(HasSubstr("code=\"4xx\"")));
  EXPECT_THAT(lines, IsSupersetOf({
                         "llmcache_cache_hits_total 0",
                         "llmcache_cache_misses_total 0",
                         "llmcache_response_bytes_total 0",
                         "llmcache_tokens_saved_total 0",
                         "llmcache_cost_saved_usd_total 0.000000000",
                         "llmcache_store_errors_total 0",
                         "llmcache_upstream_errors_total 0",
                         "llmcache_models_fetches_total 0",
                         "llmcache_in_flight_requests 0",
                         "llmcache_open_connections 0",
                         "llmcache_rejected_connections_total 0",
                         "llmcache_max_connections 0",
                         "llmcache_accept_errors_total 0",
                         "llmcache_store_degraded 0",
                         "llmcache_store_degradations_total 0",
                         "llmcache_store_recoveries_total 0",
                         "llmcache_store_write_errors_total 0",
                         "llmcache_cache_entries 0",
                         "llmcache_cache_disk_bytes 0",
                     }));
  // Every sample has its HELP and TYPE.
  for (const char* name :
       {"llmcache_cache_hits_total", "llmcache_hit_latency_seconds",
        "llmcache_in_flight_requests"}) {
    EXPECT_THAT(text, HasSubstr(std::string("# TYPE ") + name + " "));
    EXPECT_THAT(text, HasSubstr(std::string("# HELP ") + name + " "));
  }
}

TEST(MetricsRenderTest, RequestsByRouteAndStatusClassSumOverShards) {
  Registry r(3);
  ASSERT_EQ(r.shards(), 3u);
  for (int i = 0; i < 3; ++i)
    r.shard(0).CountRequest(Route::kChatCompletions, 200);
  r.shard(1).CountRequest(Route::kChatCompletions, 201);
  r.shard(2).CountRequest(Route::kChatCompletions, 404);
  r.shard(1).CountRequest(Route::kModels, 502);
  r.shard(2).CountRequest(Route::kAdmin, 101);
  r.shard(0).CountRequest(Route::kOther, 999);  // out of range: 5xx
  const std::vector<std::string> lines =
      LinesOf(r.Render(CachedClientStats(), 0, 0, StoreHealth()),
              "llmcache_requests_total");
  EXPECT_EQ(
      lines,
      (std::vector<std::string>{
          "# HELP llmcache_requests_total HTTP requests "
          "answered, by route and status class.",
          "# TYPE llmcache_requests_total counter",
          R"(llmcache_requests_total{route="chat_completions",code="2xx"} 4)",
          R"(llmcache_requests_total{route="chat_completions",code="4xx"} 1)",
          R"(llmcache_requests_total{route="models",code="2xx"} 0)",
          R"(llmcache_requests_total{route="models",code="5xx"} 1)",
          R"(llmcache_requests_total{route="healthz",code="2xx"} 0)",
          R"(llmcache_requests_total{route="metrics",code="2xx"} 0)",
          R"(llmcache_requests_total{route="stats",code="2xx"} 0)",
          R"(llmcache_requests_total{route="admin",code="1xx"} 1)",
          R"(llmcache_requests_total{route="admin",code="2xx"} 0)",
          R"(llmcache_requests_total{route="embeddings",code="2xx"} 0)",
          R"(llmcache_requests_total{route="responses",code="2xx"} 0)",
          R"(llmcache_requests_total{route="messages",code="2xx"} 0)",
          R"(llmcache_requests_total{route="other",code="2xx"} 0)",
          R"(llmcache_requests_total{route="other",code="5xx"} 1)",
      }));
  EXPECT_EQ(r.Sum().requests, 8u);
}

TEST(MetricsRenderTest, PipelineCountsComeFromCachedClientStats) {
  Registry r(2);
  r.shard(1).Add(r.shard(1).models_errors, 2);
  r.shard(0).Add(r.shard(0).models_fetches, 5);
  r.shard(0).Add(r.shard(0).response_bytes, 1000);
  r.shard(1).Add(r.shard(1).response_bytes, 234);
  CachedClientStats p;
  p.hits = 11;
  p.misses = 7;
  p.bypasses = 4;
  p.bypass_reasons[static_cast<size_t>(BypassReason::kNonZeroTemperature)] = 3;
  p.bypass_reasons[static_cast<size_t>(BypassReason::kModeNever)] = 1;
  p.tokens_saved = 12345;
  p.cost_saved_nanousd = 1'500'000'001;
  p.store_errors = 2;
  p.upstream_errors = 3;
  const std::string text = r.Render(p, 42, 4096, StoreHealth());
  EXPECT_THAT(
      LinesOf(text, "llmcache_cache_bypasses_total"),
      (std::vector<std::string>{
          "# HELP llmcache_cache_bypasses_total Completions that bypassed "
          "the cache, by reason.",
          "# TYPE llmcache_cache_bypasses_total counter",
          R"(llmcache_cache_bypasses_total{reason="no_temperature"} 0)",
          R"(llmcache_cache_bypasses_total{reason="non_zero_temperature"} 3)",
          R"(llmcache_cache_bypasses_total{reason="web_search"} 0)",
          R"(llmcache_cache_bypasses_total{reason="drifting_model"} 0)",
          R"(llmcache_cache_bypasses_total{reason="debug"} 0)",
          R"(llmcache_cache_bypasses_total{reason="mode_never"} 1)",
          R"(llmcache_cache_bypasses_total{reason="previous_response"} 0)",
          R"(llmcache_cache_bypasses_total{reason="store_requested"} 0)",
          R"(llmcache_cache_bypasses_total{reason="background"} 0)",
          R"(llmcache_cache_bypasses_total{reason="stored_prompt"} 0)",
      }));
  EXPECT_THAT(Lines(text),
              IsSupersetOf({
                  "llmcache_cache_hits_total 11",
                  "llmcache_cache_misses_total 7",
                  "llmcache_tokens_saved_total 12345",
                  "llmcache_cost_saved_usd_total 1.500000001",
                  "llmcache_store_errors_total 2",
                  // The pipeline's and GET /models' upstream errors.
                  "llmcache_upstream_errors_total 5",
                  "llmcache_models_fetches_total 5",
                  "llmcache_response_bytes_total 1234",
                  "llmcache_cache_entries 42",
                  "llmcache_cache_disk_bytes 4096",
              }));
}

TEST(MetricsRenderTest, GaugesNeverGoNegative) {
  Registry r(1);
  r.in_flight.store(-2);
  r.open_connections.store(3);
  r.rejected_connections.store(9);
  const std::vector<std::string> lines =
      Lines(r.Render(CachedClientStats(), 0, 0, StoreHealth()));
  EXPECT_THAT(lines, IsSupersetOf({"llmcache_in_flight_requests 0",
                                   "llmcache_open_connections 3",
                                   "llmcache_rejected_connections_total 9"}));
}

TEST(MetricsRenderTest, HitLatencyHistogramIsCumulative) {
  Registry r(2);
  // 50 us is on the first bound (le is inclusive); 70 us in the second.
  r.shard(0).hit_latency.Observe(kHitBuckets, 50'000);
  r.shard(1).hit_latency.Observe(kHitBuckets, 70'000);
  r.shard(1).hit_latency.Observe(kHitBuckets, 70'000);
  r.shard(0).hit_latency.Observe(kHitBuckets, 3'000'000);      // 3 ms
  r.shard(0).hit_latency.Observe(kHitBuckets, 2'000'000'000);  // 2 s: +Inf
  EXPECT_EQ(
      LinesOf(r.Render(CachedClientStats(), 0, 0, StoreHealth()),
              "llmcache_hit_latency_seconds"),
      (std::vector<std::string>{
          "# HELP llmcache_hit_latency_seconds Time to answer a cache hit, "
          "from the request read to the response handed to the socket.",
          "# TYPE llmcache_hit_latency_seconds histogram",
          R"(llmcache_hit_latency_seconds_bucket{le="5e-05"} 1)",
          R"(llmcache_hit_latency_seconds_bucket{le="0.0001"} 3)",
          R"(llmcache_hit_latency_seconds_bucket{le="0.00025"} 3)",
          R"(llmcache_hit_latency_seconds_bucket{le="0.0005"} 3)",
          R"(llmcache_hit_latency_seconds_bucket{le="0.001"} 3)",
          R"(llmcache_hit_latency_seconds_bucket{le="0.0025"} 3)",
          R"(llmcache_hit_latency_seconds_bucket{le="0.005"} 4)",
          R"(llmcache_hit_latency_seconds_bucket{le="0.01"} 4)",
          R"(llmcache_hit_latency_seconds_bucket{le="0.025"} 4)",
          R"(llmcache_hit_latency_seconds_bucket{le="0.05"} 4)",
          R"(llmcache_hit_latency_seconds_bucket{le="0.1"} 4)",
          R"(llmcache_hit_latency_seconds_bucket{le="0.5"} 4)",
          R"(llmcache_hit_latency_seconds_bucket{le="+Inf"} 5)",
          "llmcache_hit_latency_seconds_sum 2.003190000",
          "llmcache_hit_latency_seconds_count 5",
      }));
}

TEST(MetricsRenderTest, UpstreamLatencyHistogram) {
  Registry r(1);
  r.shard(0).upstream_latency.Observe(kUpstreamBuckets, 200'000'000);  // .2s
  r.shard(0).upstream_latency.Observe(kUpstreamBuckets, 121'000'000'000);
  r.shard(0).upstream_latency.Observe(kUpstreamBuckets, -5);  // clock skew
  EXPECT_EQ(
      LinesOf(r.Render(CachedClientStats(), 0, 0, StoreHealth()),
              "llmcache_upstream_latency_seconds"),
      (std::vector<std::string>{
          "# HELP llmcache_upstream_latency_seconds Time of completions "
          "answered by the upstream, from the request read to the end of the "
          "upstream response.",
          "# TYPE llmcache_upstream_latency_seconds histogram",
          R"(llmcache_upstream_latency_seconds_bucket{le="0.01"} 1)",
          R"(llmcache_upstream_latency_seconds_bucket{le="0.025"} 1)",
          R"(llmcache_upstream_latency_seconds_bucket{le="0.05"} 1)",
          R"(llmcache_upstream_latency_seconds_bucket{le="0.1"} 1)",
          R"(llmcache_upstream_latency_seconds_bucket{le="0.25"} 2)",
          R"(llmcache_upstream_latency_seconds_bucket{le="0.5"} 2)",
          R"(llmcache_upstream_latency_seconds_bucket{le="1"} 2)",
          R"(llmcache_upstream_latency_seconds_bucket{le="2.5"} 2)",
          R"(llmcache_upstream_latency_seconds_bucket{le="5"} 2)",
          R"(llmcache_upstream_latency_seconds_bucket{le="10"} 2)",
          R"(llmcache_upstream_latency_seconds_bucket{le="30"} 2)",
          R"(llmcache_upstream_latency_seconds_bucket{le="120"} 2)",
          R"(llmcache_upstream_latency_seconds_bucket{le="+Inf"} 3)",
          "llmcache_upstream_latency_seconds_sum 121.200000000",
          "llmcache_upstream_latency_seconds_count 3",
      }));
}

TEST(MetricsRenderTest, StoreHealthIsShown) {
  Registry r(1);
  StoreHealth h;
  h.degraded = true;
  h.error = "IO error: No space left on device";
  h.degraded_since_ms = 1'700'000'000'000;
  h.degradations = 2;
  h.recoveries = 1;
  h.write_errors = 7;
  const std::vector<std::string> lines =
      Lines(r.Render(CachedClientStats(), 0, 0, h));
  EXPECT_THAT(lines, IsSupersetOf({
                         "# TYPE llmcache_store_degraded gauge",
                         "llmcache_store_degraded 1",
                         "# TYPE llmcache_store_degradations_total counter",
                         "llmcache_store_degradations_total 2",
                         "# TYPE llmcache_store_recoveries_total counter",
                         "llmcache_store_recoveries_total 1",
                         "# TYPE llmcache_store_write_errors_total counter",
                         "llmcache_store_write_errors_total 7",
                     }));
  h.degraded = false;
  EXPECT_THAT(Lines(r.Render(CachedClientStats(), 0, 0, h)),
              Contains("llmcache_store_degraded 0"));
}

TEST(MetricsRenderTest, ConnectionLimitAndAcceptErrors) {
  Registry r(1);
  r.max_connections.store(490);
  r.accept_errors.fetch_add(3);
  const std::vector<std::string> lines =
      Lines(r.Render(CachedClientStats(), 0, 0, StoreHealth()));
  EXPECT_THAT(lines, IsSupersetOf({
                         "# TYPE llmcache_max_connections gauge",
                         "llmcache_max_connections 490",
                         "# TYPE llmcache_accept_errors_total counter",
                         "llmcache_accept_errors_total 3",
                     }));
  EXPECT_EQ(r.Sum().accept_errors, 3u);
  EXPECT_EQ(r.Sum().max_connections, 490u);
}

TEST(MetricsRenderTest, RouteNames) {
  EXPECT_EQ(RouteName(Route::kChatCompletions), "chat_completions");
  EXPECT_EQ(RouteName(Route::kModels), "models");
  EXPECT_EQ(RouteName(Route::kOther), "other");
  EXPECT_EQ(RouteName(Route::kCount), "other");
}

TEST(RouteOfPathTest, OpenAiAndOpenRouterPathsOfEveryRoute) {
  using metrics::Route;
  using metrics::RouteOfPath;
  EXPECT_EQ(RouteOfPath("/v1/chat/completions", false),
            Route::kChatCompletions);
  EXPECT_EQ(RouteOfPath("/api/v1/chat/completions", false),
            Route::kChatCompletions);
  EXPECT_EQ(RouteOfPath("/v1/embeddings", false), Route::kEmbeddings);
  EXPECT_EQ(RouteOfPath("/api/v1/responses", false), Route::kResponses);
  EXPECT_EQ(RouteOfPath("/v1/messages", false), Route::kMessages);
  EXPECT_EQ(RouteOfPath("/api/v1/models", false), Route::kModels);
  EXPECT_EQ(RouteOfPath("/healthz", false), Route::kHealthz);
  EXPECT_EQ(RouteOfPath("/admin/flush", true), Route::kAdmin);
  EXPECT_EQ(RouteOfPath("/admin/flush", false), Route::kOther);
  for (const char* other :
       {"/v2/embeddings", "/x/v1/embeddings", "/embeddings", "/v1/messagesx",
        "/api/v1", "/v1/", "", "/apiXv1/messages"}) {
    EXPECT_EQ(RouteOfPath(other, true), Route::kOther) << other;
  }
}

}  // namespace
}  // namespace llmcache::net::metrics
