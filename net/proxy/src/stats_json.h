// The JSON of GET /stats (the engine's statistics, the store's health, the
// proxy's HTTP counters and the cache pipeline's counts, in one object) and
// of GET /healthz. No Beast.

#ifndef LLMCACHE_NET_PROXY_SRC_STATS_JSON_H_
#define LLMCACHE_NET_PROXY_SRC_STATS_JSON_H_

#include <string>

#include "llmcache/cache.h"
#include "llmcache/net/cached_client.h"
#include "llmcache/net/shared_tier.h"
#include "llmcache/status.h"
#include "metrics.h"

namespace llmcache::net {

// {"cache":  CacheStatsJson (llmcache/stats_json.h) of the engine's
//            statistics: the same object as `llmcache stats --json` prints
//            (without its "database"); "cache_error": "<status>" instead
//            when they cannot be read,
//  "proxy":  {requests (HTTP, every route), hits, misses, bypasses,
//             bypass_reasons: {reason: n}, tokens_saved, cost_saved_usd,
//             response_bytes, upstream_errors, store_errors, models_fetches,
//             models_errors, in_flight, open_connections,
//             rejected_connections, accept_errors, max_connections} — the
//             request outcomes and errors are the pipeline's counts, as in
//             "client",
//  "store":  StoreHealthJson(store),
//  "client": {keys_computed, hits, misses, bypasses,
//             bypasses_by_reason: {reason: n}, tokens_saved, cost_saved_usd,
//             upstream_calls, upstream_errors, flight_joins, store_errors,
//             stored, not_stored, model_drifts, prompt_cache_read_tokens,
//             prompt_cache_write_tokens, prompt_cache_savings_usd,
//             priced_responses,
//             prompt_cache: {mode, read_tokens, write_tokens, saved_usd,
//                            write_premium_usd, models: [{model,
//                            read_tokens, write_tokens, saved_usd,
//                            write_premium_usd}]},
//             drift: {flush_on_drift, models: [{model, resolved_model,
//                     drift_events, last_drift_ms}]}}}
// Each completion request is counted once, by the pipeline, as a hit, a miss
// or a bypass; "proxy" reports those counts beside its own HTTP counters.
// With a shared tier, "shared": SharedTierJson plus the pipeline's shared
// counters (hits, errors, fills, leads, lead_hits, go_alone).
std::string StatsJson(const Result<CacheStats>& cache,
                      const metrics::Totals& proxy,
                      const CachedClientStats& pipeline,
                      const StoreHealth& store,
                      const SharedTierHealth* shared = nullptr);

// The shared tier's state: {"backend", "url" (no password), "available",
// "cluster", "nodes", "generations_loaded", "gets", "hits", "misses",
// "stale", "puts", "put_errors", "errors", "timeouts", "rejected",
// "reconnects", "moved", "ask", "leases_taken", "lease_waits",
// "lease_hits", "lease_timeouts", "lease_released_empty",
// "remote_flushes", "last_error"}.
std::string SharedTierJson(const SharedTierHealth& shared);

// The store's write health as a JSON object: {"degraded": bool, "error":
// "<what degraded it>" (only while degraded), "degraded_since_ms": <Unix
// ms> (only while degraded), "recovered_ms": <Unix ms of the last
// recovery> (only after one), "degradations", "recoveries",
// "recovery_attempts", "write_errors"}.
std::string StoreHealthJson(const StoreHealth& store);

// The body of GET /healthz: {"status":"ok"} for a store that never had
// write trouble; {"status":"ok","store":StoreHealthJson} once it had (e.g.
// recovered, or writes failed); {"status":"degraded","store":...} while it
// is degraded. With a shared tier: "shared": SharedTierJson, and the status
// is "degraded" while the shared tier is unavailable (requests are still
// answered, from the local tiers and upstream).
std::string HealthzJson(const StoreHealth& store,
                        const SharedTierHealth* shared = nullptr);

}  // namespace llmcache::net

#endif  // LLMCACHE_NET_PROXY_SRC_STATS_JSON_H_
