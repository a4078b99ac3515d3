// CachedClient: provider prompt-cache accounting of upstream answers, model
// drift (and the flush it may trigger), and the /models price table with its
// background refresh. No Beast here: upstream calls go through Client::Send.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <string>

#include "cached_client_impl.h"
#include "llmcache/clock.h"
#include "llmcache/net/cached_client.h"

namespace llmcache::net {
namespace internal {

// Provider-side prompt caching of one upstream response: this instance's
// counters, and the engine's per-model ones (persisted).
void CachedClientImpl::AccountPromptCache(const std::string& requested_model,
                                          const std::string& base_model,
                                          const ParsedCompletion& c,
                                          Usage* usage) {
  const CompletionUsage& u = *c.usage;
  counters_.Add(PipelineCounters::kPromptCacheReadTokens, u.cached_tokens);
  counters_.Add(PipelineCounters::kPromptCacheWriteTokens,
                u.cache_write_tokens);
  ProviderStatsDelta d;
  d.read_tokens = u.cached_tokens;
  d.write_tokens = u.cache_write_tokens;
  // Priced by the resolved model, else the requested one.
  if (const std::shared_ptr<const PricingTable> table = pricing()) {
    const std::string& first = c.model.empty() ? requested_model : c.model;
    Result<CostBreakdown> cost = ComputeCost(*table, first, u);
    Result<PromptCacheEffect> effect =
        ComputePromptCacheEffect(*table, first, u);
    if (!cost.ok() && !c.model.empty()) {
      cost = ComputeCost(*table, requested_model, u);
      effect = ComputePromptCacheEffect(*table, requested_model, u);
    }
    if (cost.ok()) {
      if (usage != nullptr && !u.cost && std::isfinite(cost->total)) {
        usage->cost_nanousd = std::llround(cost->total * 1e9);
      }
      counters_.Add(PipelineCounters::kPricedResponses);
      counters_.AddSigned(
          PipelineCounters::kPromptCacheSavingsNanousd,
          static_cast<int64_t>(std::llround(cost->prompt_cache_savings * 1e9)));
    }
    if (effect.ok()) {
      d.saved_nanousd = static_cast<int64_t>(std::llround(effect->saved * 1e9));
      d.write_premium_nanousd =
          static_cast<int64_t>(std::llround(effect->write_premium * 1e9));
    }
  }
  if (d.read_tokens == 0 && d.write_tokens == 0 && d.saved_nanousd == 0 &&
      d.write_premium_nanousd == 0) {
    return;
  }
  {
    std::lock_guard<std::mutex> lock(prompt_cache_mu_);
    auto it = prompt_cache_models_.find(base_model);
    if (it == prompt_cache_models_.end()) {
      it = prompt_cache_models_
               .emplace(base_model, CachedClientStats::PromptCacheModel{})
               .first;
      it->second.model = base_model;
    }
    it->second.read_tokens += d.read_tokens;
    it->second.write_tokens += d.write_tokens;
    it->second.saved_nanousd += d.saved_nanousd;
    it->second.write_premium_nanousd += d.write_premium_nanousd;
  }
  cache_->RecordProviderStats(base_model, d);
}

// Logs each change of a model's resolved model once: A, A, B, B, A logs
// A -> B and B -> A (under the lock, so concurrent answers agree on the
// order); the first sighting of a model is no drift.
bool CachedClientImpl::CheckDrift(const std::string& base_model,
                                  const std::string& resolved) {
  if (resolved.empty()) return false;
  std::string previous;
  {
    std::lock_guard<std::mutex> lock(resolved_mu_);
    DriftState& state = resolved_[base_model];
    if (state.resolved == resolved) return false;
    previous = std::move(state.resolved);
    state.resolved = resolved;
    if (previous.empty()) return false;  // first sighting
    ++state.events;
    state.last_drift_ms = clock_->NowMillis();
  }
  counters_.Add(PipelineCounters::kModelDrifts);
  ProviderStatsDelta d;
  d.drift_events = 1;
  cache_->RecordProviderStats(base_model, d);
  Log("model drift: " + base_model + " now resolves to " + resolved + " (was " +
      previous + ")" +
      (options_.flush_on_model_drift ? "; flushing its entries" : ""));
  if (!options_.flush_on_model_drift) return false;
  // Every instance's: the shared tier's generation too (or the old answers
  // come back from there, and other instances keep serving them).
  if (shared_) shared_->FlushModelLater(base_model);
  if (auto f = cache_->FlushModel(base_model); !f.ok()) {
    StoreFailure("flush on drift", f.status());
    return false;
  }
  return true;
}

void CachedClientImpl::SetPricing(std::shared_ptr<const PricingTable> pricing) {
  std::lock_guard<std::mutex> lock(pricing_mu_);
  pricing_ = std::move(pricing);
}

std::shared_ptr<const PricingTable> CachedClientImpl::pricing() const {
  std::lock_guard<std::mutex> lock(pricing_mu_);
  return pricing_;
}

void CachedClientImpl::StartPricingRefresh() {
  if (options_.pricing_refresh_ms <= 0 || pricing_timer_) return;
  pricing_timer_ =
      std::make_unique<boost::asio::steady_timer>(client_->executor());
  std::weak_ptr<CachedClientImpl> weak = self();
  boost::asio::post(client_->executor(), [weak] {
    if (auto self = weak.lock()) self->RefreshPricing();
  });
}

// On the client's executor (as are FetchPricing's callback and the timer's).
void CachedClientImpl::RefreshPricing() {
  std::weak_ptr<CachedClientImpl> weak = self();
  FetchPricing(*client_, [weak](Result<PricingTable> table) {
    std::shared_ptr<CachedClientImpl> self = weak.lock();
    if (!self) return;
    if (table.ok()) {
      self->SetPricing(std::make_shared<const PricingTable>(std::move(*table)));
      if (self->pricing_failure_logged_.exchange(false)) {
        self->Log("model prices loaded from /models again");
      }
    } else if (!self->pricing_failure_logged_.exchange(true)) {
      self->Log(
          "cannot load model prices from /models (keeping the " +
          std::string(self->pricing() ? "previous ones" : "none so far") +
          "; retried every " +
          std::to_string(self->options_.pricing_refresh_ms / 1000) +
          " s, logged again once they load): " + table.status().ToString());
    }
    self->SchedulePricingRefresh();
  });
}

void CachedClientImpl::SchedulePricingRefresh() {
  try {
    pricing_timer_->expires_after(
        std::chrono::milliseconds(options_.pricing_refresh_ms));
    std::weak_ptr<CachedClientImpl> weak = self();
    pricing_timer_->async_wait([weak](boost::system::error_code ec) {
      if (ec) return;
      if (auto self = weak.lock()) self->RefreshPricing();
    });
  } catch (const std::exception& e) {
    Log(std::string("cannot schedule the price refresh: ") + e.what());
  }
}

}  // namespace internal

void FetchPricing(Client& client,
                  std::function<void(Result<PricingTable>)> done) {
  Request r;
  r.method = "GET";
  r.path = "/models";
  client.Send(std::move(r), nullptr,
              [done = std::move(done)](Result<Response> resp) {
                if (!resp.ok()) {
                  done(resp.status());
                } else if (resp->status != 200) {
                  done(StatusFromUpstream(resp->status, resp->body));
                } else {
                  done(PricingTable::FromModelsJson(resp->body));
                }
              });
}

}  // namespace llmcache::net
