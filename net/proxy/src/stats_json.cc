// GET /stats rendering. See stats_json.h.

#include "stats_json.h"

#include <boost/json.hpp>

#include "llmcache/net/json_util.h"
#include "llmcache/stats_json.h"

namespace llmcache::net {
namespace {

namespace json = boost::json;

double Usd(int64_t nanousd) { return static_cast<double>(nanousd) / 1e9; }

json::object StoreObject(const StoreHealth& h) {
  json::object o;
  o["degraded"] = h.degraded;
  if (h.degraded) {
    o["error"] = h.error;
    o["degraded_since_ms"] = h.degraded_since_ms;
  }
  if (h.recovered_ms != 0) o["recovered_ms"] = h.recovered_ms;
  o["degradations"] = h.degradations;
  o["recoveries"] = h.recoveries;
  o["recovery_attempts"] = h.recovery_attempts;
  o["write_errors"] = h.write_errors;
  return o;
}

}  // namespace

std::string StoreHealthJson(const StoreHealth& store) {
  return json_util::Serialize(StoreObject(store));
}

namespace {

json::object SharedObject(const SharedTierHealth& h) {
  json::object o;
  o["backend"] = h.backend;
  o["url"] = h.url;
  o["available"] = h.available;
  o["cluster"] = h.cluster;
  o["nodes"] = h.nodes;
  o["generations_loaded"] = h.generations_loaded;
  o["gets"] = h.gets;
  o["hits"] = h.hits;
  o["misses"] = h.misses;
  o["stale"] = h.stale;
  o["puts"] = h.puts;
  o["put_errors"] = h.put_errors;
  o["errors"] = h.errors;
  o["timeouts"] = h.timeouts;
  o["rejected"] = h.rejected;
  o["reconnects"] = h.reconnects;
  o["moved"] = h.moved;
  o["ask"] = h.ask;
  o["leases_taken"] = h.leases_taken;
  o["lease_waits"] = h.lease_waits;
  o["lease_hits"] = h.lease_hits;
  o["lease_timeouts"] = h.lease_timeouts;
  o["lease_released_empty"] = h.lease_released_empty;
  o["remote_flushes"] = h.remote_flushes;
  if (!h.last_error.empty()) o["last_error"] = h.last_error;
  return o;
}

}  // namespace

std::string SharedTierJson(const SharedTierHealth& shared) {
  return json_util::Serialize(SharedObject(shared));
}

std::string HealthzJson(const StoreHealth& store,
                        const SharedTierHealth* shared) {
  const bool troubled = store.degraded || store.degradations != 0 ||
                        store.recoveries != 0 || store.write_errors != 0 ||
                        store.recovered_ms != 0;
  if (!troubled && shared == nullptr) return R"({"status":"ok"})";
  json::object root;
  const bool degraded =
      store.degraded || (shared != nullptr && !shared->available);
  root["status"] = degraded ? "degraded" : "ok";
  if (troubled) root["store"] = StoreObject(store);
  if (shared != nullptr) root["shared"] = SharedObject(*shared);
  return json_util::Serialize(root);
}

std::string StatsJson(const Result<CacheStats>& cache, const metrics::Totals& t,
                      const CachedClientStats& cs, const StoreHealth& store,
                      const SharedTierHealth* shared) {
  json::object root;
  if (cache.ok()) {
    root["cache"] = json::parse(CacheStatsJson(*cache));
  } else {
    root["cache_error"] = cache.status().ToString();
  }
  json::object reasons;
  for (size_t i = 1; i < cs.bypass_reasons.size(); ++i) {
    reasons[BypassReasonName(static_cast<BypassReason>(i))] =
        cs.bypass_reasons[i];
  }

  // The request outcomes are the pipeline's counts (counted once, there);
  // "proxy" repeats them under the names it has always had.
  json::object p;
  p["requests"] = t.requests;
  p["hits"] = cs.hits;
  p["misses"] = cs.misses;
  p["bypasses"] = cs.bypasses;
  p["bypass_reasons"] = reasons;
  p["tokens_saved"] = cs.tokens_saved;
  p["cost_saved_usd"] = Usd(cs.cost_saved_nanousd);
  p["response_bytes"] = t.response_bytes;
  p["upstream_errors"] = cs.upstream_errors + t.models_errors;
  p["store_errors"] = cs.store_errors;
  p["models_fetches"] = t.models_fetches;
  p["models_errors"] = t.models_errors;
  p["in_flight"] = t.in_flight;
  p["open_connections"] = t.open_connections;
  p["rejected_connections"] = t.rejected_connections;
  p["accept_errors"] = t.accept_errors;
  p["max_connections"] = t.max_connections;
  root["proxy"] = std::move(p);
  root["store"] = StoreObject(store);

  json::object c;
  c["keys_computed"] = cs.keys_computed;
  c["hits"] = cs.hits;
  c["misses"] = cs.misses;
  c["bypasses"] = cs.bypasses;
  c["bypasses_by_reason"] = std::move(reasons);
  c["tokens_saved"] = cs.tokens_saved;
  c["cost_saved_usd"] = Usd(cs.cost_saved_nanousd);
  c["upstream_calls"] = cs.upstream_calls;
  c["upstream_errors"] = cs.upstream_errors;
  c["flight_joins"] = cs.flight_joins;
  c["store_errors"] = cs.store_errors;
  c["stored"] = cs.stored;
  c["not_stored"] = cs.not_stored;
  c["model_drifts"] = cs.model_drifts;
  c["prompt_cache_read_tokens"] = cs.prompt_cache_read_tokens;
  c["prompt_cache_write_tokens"] = cs.prompt_cache_write_tokens;
  c["prompt_cache_savings_usd"] = Usd(cs.prompt_cache_savings_nanousd);
  c["priced_responses"] = cs.priced_responses;
  c["prompt_cache_marked"] = cs.prompt_cache_marked;
  json::object endpoints;
  for (size_t e = 0; e < cs.endpoints.size(); ++e) {
    json::object counts;
    counts["hits"] = cs.endpoints[e].hits;
    counts["misses"] = cs.endpoints[e].misses;
    counts["bypasses"] = cs.endpoints[e].bypasses;
    endpoints[EndpointName(static_cast<Endpoint>(e))] = std::move(counts);
  }
  c["endpoints"] = std::move(endpoints);
  c["embedding_inputs_hit"] = cs.embedding_inputs_hit;
  c["embedding_inputs_missed"] = cs.embedding_inputs_missed;
  // Provider prompt caching (kept apart from the response cache's savings)
  // and model drift, per base model.
  json::object pc;
  pc["mode"] = PromptCacheModeName(cs.prompt_cache_mode);
  pc["read_tokens"] = cs.prompt_cache_read_tokens;
  pc["write_tokens"] = cs.prompt_cache_write_tokens;
  pc["saved_usd"] = Usd(cs.prompt_cache_saved_nanousd);
  pc["write_premium_usd"] = Usd(cs.prompt_cache_write_premium_nanousd);
  json::array pc_models;
  for (const CachedClientStats::PromptCacheModel& m : cs.prompt_cache_models) {
    pc_models.push_back(
        json::object{{"model", m.model},
                     {"read_tokens", m.read_tokens},
                     {"write_tokens", m.write_tokens},
                     {"saved_usd", Usd(m.saved_nanousd)},
                     {"write_premium_usd", Usd(m.write_premium_nanousd)}});
  }
  pc["models"] = std::move(pc_models);
  c["prompt_cache"] = std::move(pc);
  json::object drift;
  drift["flush_on_drift"] = cs.flush_on_drift;
  json::array drift_models;
  for (const CachedClientStats::DriftModel& m : cs.drift_models) {
    drift_models.push_back(json::object{{"model", m.model},
                                        {"resolved_model", m.resolved_model},
                                        {"drift_events", m.drift_events},
                                        {"last_drift_ms", m.last_drift_ms}});
  }
  drift["models"] = std::move(drift_models);
  c["drift"] = std::move(drift);
  root["client"] = std::move(c);
  if (shared != nullptr) {
    json::object s = SharedObject(*shared);
    json::object pipeline;
    pipeline["hits"] = cs.shared_hits;
    pipeline["errors"] = cs.shared_errors;
    pipeline["fills"] = cs.shared_fills;
    pipeline["leads"] = cs.shared_leads;
    pipeline["lead_hits"] = cs.shared_lead_hits;
    pipeline["go_alone"] = cs.shared_go_alone;
    s["pipeline"] = std::move(pipeline);
    root["shared"] = std::move(s);
  }
  return json_util::Serialize(root);
}

}  // namespace llmcache::net
