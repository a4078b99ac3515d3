// The proxy's own HTTP counters and histograms (requests by route and status,
// latencies, bytes, connections), rendered in the Prometheus text format
// (version 0.0.4) together with the cache pipeline's counts (hits, misses,
// bypasses, savings, errors), which the cached client keeps: the proxy does
// not count cache outcomes itself. No Beast.
//
// Hot-path counters live in one shard per worker thread (each on its own
// cache lines), written only by that thread with relaxed atomics and summed
// when rendered, so counting a request costs no contended atomic operation.
//
// Thread safety: a Shard is written by one thread at a time and read by any;
// Render and the gauges may be used from any thread.

#ifndef LLMCACHE_NET_PROXY_SRC_METRICS_H_
#define LLMCACHE_NET_PROXY_SRC_METRICS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/cache.h"
#include "llmcache/net/cached_client.h"
#include "llmcache/net/shared_tier.h"
#include "llmcache/policy.h"

namespace llmcache::net::metrics {

enum class Route : uint8_t {
  kChatCompletions = 0,
  kModels,
  kHealthz,
  kMetrics,
  kStats,
  kAdmin,
  kEmbeddings,
  kResponses,
  kMessages,
  kOther,
  kCount,
};
// The shared tier's gauges and counters (llmcache_shared_*), appended to
// Render's text when a shared tier is configured.
std::string RenderShared(const CachedClientStats& pipeline,
                         const SharedTierHealth& shared);

std::string_view RouteName(Route route);

// The route of a request path (the query string removed): the OpenAI paths
// and OpenRouter's /api/v1 ones; /admin/... only when `admin_enabled`.
Route RouteOfPath(std::string_view path, bool admin_enabled);

// The cached endpoint of a completion route (kChatCompletions, kEmbeddings,
// kResponses, kMessages); kChatCompletions for any other.
inline Endpoint EndpointOfRoute(Route r) {
  return r == Route::kEmbeddings  ? Endpoint::kEmbeddings
         : r == Route::kResponses ? Endpoint::kResponses
         : r == Route::kMessages  ? Endpoint::kMessages
                                  : Endpoint::kChatCompletions;
}

// Upper bounds in seconds.
inline constexpr std::array<double, 12> kHitBuckets = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
    0.005,   0.01,   0.025,   0.05,   0.1,   0.5};
inline constexpr std::array<double, 12> kUpstreamBuckets = {
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120};

template <size_t N>
struct Histogram {
  std::array<std::atomic<uint64_t>, N + 1> buckets{};  // last: +Inf
  std::atomic<uint64_t> sum_ns{0};

  void Observe(const std::array<double, N>& bounds, int64_t ns) {
    const double s = static_cast<double>(ns) / 1e9;
    size_t i = 0;
    while (i < N && s > bounds[i]) ++i;
    buckets[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns.fetch_add(static_cast<uint64_t>(ns < 0 ? 0 : ns),
                     std::memory_order_relaxed);
  }
};

// Status classes counted: 1xx..5xx -> 0..4.
inline constexpr size_t kStatusClasses = 5;

struct alignas(64) Shard {
  std::array<std::array<std::atomic<uint64_t>, kStatusClasses>,
             static_cast<size_t>(Route::kCount)>
      requests{};
  std::atomic<uint64_t> response_bytes{0};
  std::atomic<uint64_t> models_fetches{0};
  // GET /models upstream failures (completions' are the pipeline's).
  std::atomic<uint64_t> models_errors{0};
  Histogram<kHitBuckets.size()> hit_latency;
  Histogram<kUpstreamBuckets.size()> upstream_latency;

  void Add(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.fetch_add(n, std::memory_order_relaxed);
  }
  void CountRequest(Route route, int status) {
    size_t cls = status >= 100 && status < 600
                     ? static_cast<size_t>(status / 100 - 1)
                     : kStatusClasses - 1;
    requests[static_cast<size_t>(route)][cls].fetch_add(
        1, std::memory_order_relaxed);
  }
};

// Totals of the shards (and the gauges), for rendering.
struct Totals {
  uint64_t requests = 0;
  std::array<std::array<uint64_t, kStatusClasses>,
             static_cast<size_t>(Route::kCount)>
      by_route{};
  uint64_t response_bytes = 0, models_fetches = 0, models_errors = 0;
  std::array<uint64_t, kHitBuckets.size() + 1> hit_buckets{};
  uint64_t hit_sum_ns = 0;
  std::array<uint64_t, kUpstreamBuckets.size() + 1> upstream_buckets{};
  uint64_t upstream_sum_ns = 0;
  uint64_t in_flight = 0, open_connections = 0, rejected_connections = 0;
  uint64_t accept_errors = 0, max_connections = 0;
};

class Registry {
 public:
  explicit Registry(size_t shards);

  Shard& shard(size_t i) { return *shards_[i]; }
  size_t shards() const { return shards_.size(); }

  std::atomic<int64_t> in_flight{0};
  std::atomic<int64_t> open_connections{0};
  std::atomic<uint64_t> rejected_connections{0};
  std::atomic<uint64_t> accept_errors{0};
  // The connection limit in effect (set once at start).
  std::atomic<uint64_t> max_connections{0};

  Totals Sum() const;

  // The Prometheus exposition of Sum(), the cache pipeline's counts, the
  // given engine gauges and the store's write health (Cache::Health()):
  // llmcache_store_degraded (0/1), llmcache_store_degradations_total,
  // llmcache_store_recoveries_total, llmcache_store_write_errors_total.
  std::string Render(const CachedClientStats& pipeline, uint64_t entries,
                     uint64_t disk_bytes, const StoreHealth& store) const;

 private:
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace llmcache::net::metrics

#endif  // LLMCACHE_NET_PROXY_SRC_METRICS_H_
