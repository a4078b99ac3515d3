// Prometheus rendering of the proxy's counters and the pipeline's. See
// metrics.h.

#include "metrics.h"

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>

namespace llmcache::net::metrics {
namespace {

uint64_t Load(const std::atomic<uint64_t>& a) {
  return a.load(std::memory_order_relaxed);
}

void Line(std::string* out, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));

void Line(std::string* out, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (n > 0)
    out->append(buf, static_cast<size_t>(std::min<int>(n, sizeof(buf) - 1)));
}

void Header(std::string* out, const char* name, const char* type,
            const char* help) {
  Line(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

template <size_t N, size_t M>
void RenderHistogram(std::string* out, const char* name, const char* help,
                     const std::array<double, N>& bounds,
                     const std::array<uint64_t, M>& buckets, uint64_t sum_ns) {
  static_assert(M == N + 1);
  Header(out, name, "histogram", help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < N; ++i) {
    cumulative += buckets[i];
    Line(out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, bounds[i],
         cumulative);
  }
  cumulative += buckets[N];
  Line(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
  Line(out, "%s_sum %.9f\n", name, static_cast<double>(sum_ns) / 1e9);
  Line(out, "%s_count %" PRIu64 "\n", name, cumulative);
}

// A Prometheus label value: backslash, double quote and newline escaped.
std::string LabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Provider prompt caching per base model (the cached client's counts).
void RenderPromptCache(std::string* out, const CachedClientStats& p) {
  Header(out, "llmcache_provider_cache_tokens_total", "counter",
         "Prompt tokens the upstream provider read from (kind=read) or wrote "
         "to (kind=write) its prompt cache, by model.");
  for (const CachedClientStats::PromptCacheModel& m : p.prompt_cache_models) {
    const std::string model = LabelValue(m.model);
    *out += "llmcache_provider_cache_tokens_total{model=\"" + model +
            "\",kind=\"read\"} " + std::to_string(m.read_tokens) + "\n";
    *out += "llmcache_provider_cache_tokens_total{model=\"" + model +
            "\",kind=\"write\"} " + std::to_string(m.write_tokens) + "\n";
  }
  char num[48];
  Header(out, "llmcache_provider_cache_saved_usd_total", "counter",
         "USD the provider prompt cache's reads saved against the prompt "
         "price, by model.");
  for (const CachedClientStats::PromptCacheModel& m : p.prompt_cache_models) {
    std::snprintf(num, sizeof(num), "%.9f",
                  static_cast<double>(m.saved_nanousd) / 1e9);
    *out += "llmcache_provider_cache_saved_usd_total{model=\"" +
            LabelValue(m.model) + "\"} " + num + "\n";
  }
  Header(out, "llmcache_provider_cache_write_premium_usd_total", "counter",
         "USD the provider prompt cache's writes cost above the prompt "
         "price, by model.");
  for (const CachedClientStats::PromptCacheModel& m : p.prompt_cache_models) {
    std::snprintf(num, sizeof(num), "%.9f",
                  static_cast<double>(m.write_premium_nanousd) / 1e9);
    *out += "llmcache_provider_cache_write_premium_usd_total{model=\"" +
            LabelValue(m.model) + "\"} " + num + "\n";
  }
}

}  // namespace

std::string_view RouteName(Route route) {
  switch (route) {
    case Route::kChatCompletions:
      return "chat_completions";
    case Route::kModels:
      return "models";
    case Route::kHealthz:
      return "healthz";
    case Route::kMetrics:
      return "metrics";
    case Route::kStats:
      return "stats";
    case Route::kAdmin:
      return "admin";
    case Route::kEmbeddings:
      return "embeddings";
    case Route::kResponses:
      return "responses";
    case Route::kMessages:
      return "messages";
    case Route::kOther:
    case Route::kCount:
      break;
  }
  return "other";
}

Route RouteOfPath(std::string_view path, bool admin_enabled) {
  // The OpenAI path, or OpenRouter's.
  auto api = [path](std::string_view tail) {
    return path.size() > tail.size() && path.ends_with(tail) &&
           (path.size() == tail.size() + 3 ? path.starts_with("/v1")
                                           : path.size() == tail.size() + 7 &&
                                                 path.starts_with("/api/v1"));
  };
  if (api("/chat/completions")) return Route::kChatCompletions;
  if (api("/embeddings")) return Route::kEmbeddings;
  if (api("/responses")) return Route::kResponses;
  if (api("/messages")) return Route::kMessages;
  if (api("/models") || path.starts_with("/v1/models/") ||
      path.starts_with("/api/v1/models/")) {
    return Route::kModels;  // the list, or one model (/models/{id})
  }
  if (path == "/healthz") return Route::kHealthz;
  if (path == "/metrics") return Route::kMetrics;
  if (path == "/stats") return Route::kStats;
  if (admin_enabled && path.starts_with("/admin/")) return Route::kAdmin;
  return Route::kOther;
}

Registry::Registry(size_t shards) {
  for (size_t i = 0; i < std::max<size_t>(1, shards); ++i) {
    shards_.push_back(std::make_unique<Shard>());
  }
}

Totals Registry::Sum() const {
  Totals t;
  for (const auto& sp : shards_) {
    const Shard& s = *sp;
    for (size_t r = 0; r < t.by_route.size(); ++r) {
      for (size_t c = 0; c < kStatusClasses; ++c) {
        const uint64_t n = Load(s.requests[r][c]);
        t.by_route[r][c] += n;
        t.requests += n;
      }
    }
    t.response_bytes += Load(s.response_bytes);
    t.models_fetches += Load(s.models_fetches);
    t.models_errors += Load(s.models_errors);
    for (size_t i = 0; i < t.hit_buckets.size(); ++i) {
      t.hit_buckets[i] += Load(s.hit_latency.buckets[i]);
    }
    t.hit_sum_ns += Load(s.hit_latency.sum_ns);
    for (size_t i = 0; i < t.upstream_buckets.size(); ++i) {
      t.upstream_buckets[i] += Load(s.upstream_latency.buckets[i]);
    }
    t.upstream_sum_ns += Load(s.upstream_latency.sum_ns);
  }
  t.in_flight = static_cast<uint64_t>(
      std::max<int64_t>(0, in_flight.load(std::memory_order_relaxed)));
  t.open_connections = static_cast<uint64_t>(
      std::max<int64_t>(0, open_connections.load(std::memory_order_relaxed)));
  t.rejected_connections = Load(rejected_connections);
  t.accept_errors = Load(accept_errors);
  t.max_connections = Load(max_connections);
  return t;
}

std::string Registry::Render(const CachedClientStats& p, uint64_t entries,
                             uint64_t disk_bytes,
                             const StoreHealth& store) const {
  const Totals t = Sum();
  std::string out;
  out.reserve(8192);
  static constexpr const char* kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  Header(&out, "llmcache_requests_total", "counter",
         "HTTP requests answered, by route and status class.");
  for (size_t r = 0; r < t.by_route.size(); ++r) {
    for (size_t c = 0; c < kStatusClasses; ++c) {
      if (t.by_route[r][c] == 0 && c != 1) continue;
      const std::string_view route = RouteName(static_cast<Route>(r));
      Line(&out,
           "llmcache_requests_total{route=\"%.*s\",code=\"%s\"} %" PRIu64 "\n",
           static_cast<int>(route.size()), route.data(), kClasses[c],
           t.by_route[r][c]);
    }
  }
  Header(&out, "llmcache_cache_hits_total", "counter",
         "Completions answered from the cache.");
  Line(&out, "llmcache_cache_hits_total %" PRIu64 "\n", p.hits);
  Header(&out, "llmcache_cache_misses_total", "counter",
         "Cacheable completions sent upstream.");
  Line(&out, "llmcache_cache_misses_total %" PRIu64 "\n", p.misses);
  Header(&out, "llmcache_cache_bypasses_total", "counter",
         "Completions that bypassed the cache, by reason.");
  for (size_t i = 1; i < p.bypass_reasons.size(); ++i) {
    const std::string_view reason =
        BypassReasonName(static_cast<BypassReason>(i));
    Line(&out, "llmcache_cache_bypasses_total{reason=\"%.*s\"} %" PRIu64 "\n",
         static_cast<int>(reason.size()), reason.data(), p.bypass_reasons[i]);
  }
  Header(&out, "llmcache_endpoint_requests_total", "counter",
         "Requests to the cached endpoints, by endpoint and by what answered "
         "them (hit, miss, bypass).");
  for (size_t e = 0; e < p.endpoints.size(); ++e) {
    const std::string_view name = EndpointName(static_cast<Endpoint>(e));
    const std::pair<const char*, uint64_t> results[] = {
        {"hit", p.endpoints[e].hits},
        {"miss", p.endpoints[e].misses},
        {"bypass", p.endpoints[e].bypasses}};
    for (const auto& [result, n] : results) {
      Line(&out,
           "llmcache_endpoint_requests_total{endpoint=\"%.*s\",result=\"%s\"} "
           "%" PRIu64 "\n",
           static_cast<int>(name.size()), name.data(), result, n);
    }
  }
  Header(&out, "llmcache_embedding_inputs_total", "counter",
         "Inputs of embeddings batches, by whether the cache answered them.");
  Line(&out, "llmcache_embedding_inputs_total{result=\"hit\"} %" PRIu64 "\n",
       p.embedding_inputs_hit);
  Line(&out, "llmcache_embedding_inputs_total{result=\"miss\"} %" PRIu64 "\n",
       p.embedding_inputs_missed);
  RenderHistogram(&out, "llmcache_hit_latency_seconds",
                  "Time to answer a cache hit, from the request read to the "
                  "response handed to the socket.",
                  kHitBuckets, t.hit_buckets, t.hit_sum_ns);
  RenderHistogram(&out, "llmcache_upstream_latency_seconds",
                  "Time of completions answered by the upstream, from the "
                  "request read to the end of the upstream response.",
                  kUpstreamBuckets, t.upstream_buckets, t.upstream_sum_ns);
  Header(&out, "llmcache_response_bytes_total", "counter",
         "Response body bytes sent.");
  Line(&out, "llmcache_response_bytes_total %" PRIu64 "\n", t.response_bytes);
  Header(&out, "llmcache_tokens_saved_total", "counter",
         "Prompt and completion tokens of the responses served from the "
         "cache.");
  Line(&out, "llmcache_tokens_saved_total %" PRIu64 "\n", p.tokens_saved);
  Header(&out, "llmcache_cost_saved_usd_total", "counter",
         "Upstream cost (USD) of the responses served from the cache.");
  Line(&out, "llmcache_cost_saved_usd_total %.9f\n",
       static_cast<double>(p.cost_saved_nanousd) / 1e9);
  RenderPromptCache(&out, p);
  Header(&out, "llmcache_store_errors_total", "counter",
         "Failed cache store reads and writes (requests still served).");
  Line(&out, "llmcache_store_errors_total %" PRIu64 "\n", p.store_errors);
  Header(&out, "llmcache_upstream_errors_total", "counter",
         "Upstream transport failures and non-200 answers.");
  Line(&out, "llmcache_upstream_errors_total %" PRIu64 "\n",
       p.upstream_errors + t.models_errors);
  Header(&out, "llmcache_models_fetches_total", "counter",
         "GET /models requests sent upstream.");
  Line(&out, "llmcache_models_fetches_total %" PRIu64 "\n", t.models_fetches);
  Header(&out, "llmcache_in_flight_requests", "gauge",
         "Requests being answered.");
  Line(&out, "llmcache_in_flight_requests %" PRIu64 "\n", t.in_flight);
  Header(&out, "llmcache_open_connections", "gauge",
         "Open client connections, and closed ones whose upstream call "
         "goes on.");
  Line(&out, "llmcache_open_connections %" PRIu64 "\n", t.open_connections);
  Header(&out, "llmcache_rejected_connections_total", "counter",
         "Connections refused over the connection limit.");
  Line(&out, "llmcache_rejected_connections_total %" PRIu64 "\n",
       t.rejected_connections);
  Header(&out, "llmcache_max_connections", "gauge",
         "Connection limit in effect (--max-connections, capped by the "
         "open-file limit).");
  Line(&out, "llmcache_max_connections %" PRIu64 "\n", t.max_connections);
  Header(&out, "llmcache_accept_errors_total", "counter",
         "Failed accepts (e.g. out of file descriptors).");
  Line(&out, "llmcache_accept_errors_total %" PRIu64 "\n", t.accept_errors);
  Header(&out, "llmcache_store_degraded", "gauge",
         "1 while the store refuses writes after a write or background "
         "error (requests are still served), else 0.");
  Line(&out, "llmcache_store_degraded %d\n", store.degraded ? 1 : 0);
  Header(&out, "llmcache_store_degradations_total", "counter",
         "Times the store became degraded.");
  Line(&out, "llmcache_store_degradations_total %" PRIu64 "\n",
       store.degradations);
  Header(&out, "llmcache_store_recoveries_total", "counter",
         "Times the degraded store recovered.");
  Line(&out, "llmcache_store_recoveries_total %" PRIu64 "\n", store.recoveries);
  Header(&out, "llmcache_store_write_errors_total", "counter",
         "Store writes that failed or were refused.");
  Line(&out, "llmcache_store_write_errors_total %" PRIu64 "\n",
       store.write_errors);
  Header(&out, "llmcache_cache_entries", "gauge", "Entries in the cache.");
  Line(&out, "llmcache_cache_entries %" PRIu64 "\n", entries);
  Header(&out, "llmcache_cache_disk_bytes", "gauge",
         "Live database files (persistent mode).");
  Line(&out, "llmcache_cache_disk_bytes %" PRIu64 "\n", disk_bytes);
  return out;
}

std::string RenderShared(const CachedClientStats& p,
                         const SharedTierHealth& h) {
  std::string out;
  out.reserve(2048);
  Header(&out, "llmcache_shared_available", "gauge",
         "1 while the shared tier answers (circuit closed), else 0: requests "
         "then go on with the local tiers.");
  Line(&out, "llmcache_shared_available %d\n", h.available ? 1 : 0);
  Header(&out, "llmcache_shared_nodes", "gauge",
         "Masters of the shared tier (1 unless Redis Cluster).");
  Line(&out, "llmcache_shared_nodes %zu\n", h.nodes);
  const auto counter = [&out](const char* name, const char* help, uint64_t v) {
    Header(&out, name, "counter", help);
    Line(&out, "%s %" PRIu64 "\n", name, v);
  };
  counter("llmcache_shared_hits_total",
          "Requests answered from the shared tier.", p.shared_hits);
  counter("llmcache_shared_fills_total",
          "Shared-tier hits copied into the local tiers.", p.shared_fills);
  counter("llmcache_shared_lookups_total", "Shared-tier lookups.", h.gets);
  counter("llmcache_shared_stale_total",
          "Shared entries of an old generation (flushed), seen as misses.",
          h.stale);
  counter("llmcache_shared_puts_total", "Entry writes sent to the shared tier.",
          h.puts);
  counter("llmcache_shared_put_errors_total",
          "Entries the shared tier did not store (refused by Redis, e.g. OOM "
          "at maxmemory, lost on the way, or not sent).",
          h.put_errors);
  counter("llmcache_shared_errors_total",
          "Failed shared-tier operations (errors, timeouts, rejections).",
          h.errors);
  counter("llmcache_shared_timeouts_total",
          "Shared-tier operations past their deadline.", h.timeouts);
  counter("llmcache_shared_rejected_total",
          "Operations failed at once by the open circuit breaker.", h.rejected);
  counter("llmcache_shared_reconnects_total", "Reconnections to Redis.",
          h.reconnects);
  counter("llmcache_shared_leads_total",
          "Misses this instance led for the fleet (lease taken).",
          p.shared_leads);
  counter("llmcache_shared_lead_hits_total",
          "Misses answered by another instance's upstream call.",
          p.shared_lead_hits);
  counter("llmcache_shared_go_alone_total",
          "Misses that went upstream without a lease (released, timed out "
          "or unavailable).",
          p.shared_go_alone);
  counter("llmcache_shared_remote_flushes_total",
          "Flushes learned from other instances.", h.remote_flushes);
  return out;
}

}  // namespace llmcache::net::metrics
