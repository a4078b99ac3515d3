// CacheStats as JSON (llmcache/stats_json.h documents the shape).

#include "llmcache/stats_json.h"

#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>

#include "llmcache/policy.h"

namespace llmcache {
namespace {

namespace json = boost::json;

double NanoUsdToUsd(int64_t nanousd) {
  return static_cast<double>(nanousd) / 1e9;
}

json::object ModelObject(const ModelStats& m) {
  json::object o;
  o["model"] = m.model;
  o["entries"] = m.entries;
  o["bytes"] = m.bytes;
  o["hits"] = m.hits;
  o["tokens_saved"] = m.tokens_saved;
  o["cost_saved_usd"] = NanoUsdToUsd(m.cost_saved_nanousd);
  o["last_resolved_model"] = m.last_resolved_model;
  o["own_column_family"] = m.own_column_family;
  o["provider_cache_read_tokens"] = m.provider_cache_read_tokens;
  o["provider_cache_write_tokens"] = m.provider_cache_write_tokens;
  o["provider_cache_saved_usd"] = NanoUsdToUsd(m.provider_cache_saved_nanousd);
  o["provider_cache_write_premium_usd"] =
      NanoUsdToUsd(m.provider_cache_write_premium_nanousd);
  o["drift_events"] = m.drift_events;
  return o;
}

}  // namespace

std::string ModelStatsJson(const ModelStats& model) {
  return json::serialize(ModelObject(model));
}

std::string CacheStatsJson(const CacheStats& s) {
  json::object by_reason;
  uint64_t bypasses = 0;
  for (size_t i = 1; i < s.bypasses.size(); ++i) {  // 0 is kNone
    by_reason[BypassReasonName(static_cast<BypassReason>(i))] = s.bypasses[i];
    bypasses += s.bypasses[i];
  }
  json::array models;
  models.reserve(s.models.size());
  for (const ModelStats& m : s.models) models.push_back(ModelObject(m));

  json::object o;
  o["hits"] = s.hits;
  o["misses"] = s.misses;
  o["expired"] = s.expired;
  o["hit_rate"] = s.hit_rate();
  o["inserts"] = s.inserts;
  o["flushes"] = s.flushes;
  o["evictions"] = s.evictions;
  o["purged"] = s.purged;
  o["store_errors"] = s.store_errors;
  o["bypasses"] = bypasses;
  o["bypasses_by_reason"] = std::move(by_reason);
  o["tokens_saved"] = s.tokens_saved;
  o["cost_saved_usd"] = NanoUsdToUsd(s.cost_saved_nanousd);
  o["entries"] = s.entries;
  o["bytes"] = s.bytes;
  o["disk_bytes"] = s.disk_bytes;
  o["stored_bytes"] = s.stored_bytes;
  o["compression_ratio"] = s.compression_ratio();
  o["memory_tier_entries"] = s.memory_tier_entries;
  o["memory_tier_bytes"] = s.memory_tier_bytes;
  o["persistent"] = s.persistent;
  o["models"] = std::move(models);
  return json::serialize(o);
}

}  // namespace llmcache
