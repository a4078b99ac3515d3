// The cached client's request counters, sharded so that counting a hit costs
// no contended atomic operation: each thread writes its own shard (relaxed
// atomics on its own cache lines) and a snapshot sums them.
//
// Thread safety: Add* from any thread; Snapshot from any thread.

#ifndef LLMCACHE_NET_CACHED_SRC_PIPELINE_COUNTERS_H_
#define LLMCACHE_NET_CACHED_SRC_PIPELINE_COUNTERS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "llmcache/net/cached_client.h"
#include "llmcache/policy.h"

namespace llmcache::net {

class PipelineCounters {
 public:
  // One field per counter of CachedClientStats.
  enum Counter : size_t {
    kKeysComputed,
    kHits,
    kMisses,
    kBypasses,
    kTokensSaved,
    kCostSavedNanousd,  // stored as the two's complement of an int64
    kUpstreamErrors,
    kUpstreamCalls,
    kFlightJoins,
    kStoreErrors,
    kStored,
    kNotStored,
    kModelDrifts,
    kPromptCacheReadTokens,
    kPromptCacheWriteTokens,
    kPromptCacheSavingsNanousd,  // two's complement of an int64
    kPricedResponses,
    kPromptCacheMarked,
    kSharedHits,
    kSharedErrors,
    kSharedFills,
    kSharedLeads,
    kSharedLeadHits,
    kSharedGoAlone,
    kEmbeddingInputsHit,
    kEmbeddingInputsMissed,
    kCount,
  };

  void Add(Counter c, uint64_t n = 1) {
    Mine().values[c].fetch_add(n, std::memory_order_relaxed);
  }
  void AddSigned(Counter c, int64_t n) { Add(c, static_cast<uint64_t>(n)); }
  // What a request of `endpoint` was answered with.
  enum Outcome : size_t { kOutcomeHit, kOutcomeMiss, kOutcomeBypass };
  void AddEndpoint(Endpoint endpoint, Outcome o) {
    const size_t e = static_cast<size_t>(endpoint);
    if (e < kEndpointCount) {
      Mine().endpoints[e * 3 + o].fetch_add(1, std::memory_order_relaxed);
    }
  }
  void AddBypass(BypassReason reason) {
    Shard& s = Mine();
    s.values[kBypasses].fetch_add(1, std::memory_order_relaxed);
    s.bypass_reasons[static_cast<size_t>(reason)].fetch_add(
        1, std::memory_order_relaxed);
  }

  CachedClientStats Snapshot() const {
    std::array<uint64_t, kCount> v{};
    CachedClientStats out;
    for (const Shard& s : shards_) {
      for (size_t i = 0; i < kCount; ++i) {
        v[i] += s.values[i].load(std::memory_order_relaxed);
      }
      for (size_t i = 0; i < out.bypass_reasons.size(); ++i) {
        out.bypass_reasons[i] +=
            s.bypass_reasons[i].load(std::memory_order_relaxed);
      }
      for (size_t e = 0; e < kEndpointCount; ++e) {
        auto& c = out.endpoints[e];
        c.hits +=
            s.endpoints[e * 3 + kOutcomeHit].load(std::memory_order_relaxed);
        c.misses +=
            s.endpoints[e * 3 + kOutcomeMiss].load(std::memory_order_relaxed);
        c.bypasses +=
            s.endpoints[e * 3 + kOutcomeBypass].load(std::memory_order_relaxed);
      }
    }
    out.keys_computed = v[kKeysComputed];
    out.hits = v[kHits];
    out.misses = v[kMisses];
    out.bypasses = v[kBypasses];
    out.tokens_saved = v[kTokensSaved];
    out.cost_saved_nanousd = static_cast<int64_t>(v[kCostSavedNanousd]);
    out.upstream_errors = v[kUpstreamErrors];
    out.upstream_calls = v[kUpstreamCalls];
    out.flight_joins = v[kFlightJoins];
    out.store_errors = v[kStoreErrors];
    out.stored = v[kStored];
    out.not_stored = v[kNotStored];
    out.model_drifts = v[kModelDrifts];
    out.prompt_cache_read_tokens = v[kPromptCacheReadTokens];
    out.prompt_cache_write_tokens = v[kPromptCacheWriteTokens];
    out.prompt_cache_savings_nanousd =
        static_cast<int64_t>(v[kPromptCacheSavingsNanousd]);
    out.priced_responses = v[kPricedResponses];
    out.prompt_cache_marked = v[kPromptCacheMarked];
    out.shared_hits = v[kSharedHits];
    out.shared_errors = v[kSharedErrors];
    out.shared_fills = v[kSharedFills];
    out.shared_leads = v[kSharedLeads];
    out.shared_lead_hits = v[kSharedLeadHits];
    out.shared_go_alone = v[kSharedGoAlone];
    out.embedding_inputs_hit = v[kEmbeddingInputsHit];
    out.embedding_inputs_missed = v[kEmbeddingInputsMissed];
    return out;
  }

 private:
  static constexpr size_t kShards = 16;
  struct alignas(64) Shard {
    std::array<std::atomic<uint64_t>, kCount> values{};
    std::array<std::atomic<uint64_t>, static_cast<size_t>(BypassReason::kCount)>
        bypass_reasons{};
    std::array<std::atomic<uint64_t>, kEndpointCount * 3> endpoints{};
  };

  // Threads take shards round robin on first use.
  Shard& Mine() {
    static std::atomic<size_t> next{0};
    thread_local const size_t slot =
        next.fetch_add(1, std::memory_order_relaxed) % kShards;
    return shards_[slot];
  }

  std::array<Shard, kShards> shards_;
};

}  // namespace llmcache::net

#endif  // LLMCACHE_NET_CACHED_SRC_PIPELINE_COUNTERS_H_
