// StatsCollector implementation, and the names of the counters (their
// persistent spellings are in format.h).

#include "stats.h"

#include "format.h"

namespace llmcache {

static_assert(kCounterNames.size() == static_cast<size_t>(Counter::kCount));
static_assert(kModelCounterNames.size() ==
              static_cast<size_t>(ModelCounter::kCount));

std::string_view CounterName(Counter c) {
  const auto i = static_cast<size_t>(c);
  return i < kCounterNames.size() ? kCounterNames[i] : "unknown";
}

std::string_view ModelCounterName(ModelCounter c) {
  const auto i = static_cast<size_t>(c);
  return i < kModelCounterNames.size() ? kModelCounterNames[i] : "unknown";
}

bool StatsDelta::empty() const {
  for (int64_t v : global) {
    if (v != 0) return false;
  }
  for (int64_t v : bypasses) {
    if (v != 0) return false;
  }
  return models.empty();
}

namespace {
std::atomic<uint64_t> next_collector_id{1};
std::atomic<size_t> next_stat_stripe{0};

// The last model this thread counted against, per thread: lookups of one
// model in a row (the common case) then touch no shared lock.
struct LastModel {
  uint64_t owner = 0;
  std::string model;
  ModelCounters* counters = nullptr;
};
thread_local LastModel last_model;
}  // namespace

size_t NextStatStripe() {
  return next_stat_stripe.fetch_add(1, std::memory_order_relaxed) %
         kStatStripes;
}

StatsCollector::StatsCollector() : id_(next_collector_id.fetch_add(1)) {}

ModelCounters& StatsCollector::ForModel(std::string_view base_model) {
  LastModel& last = last_model;
  if (last.owner == id_ && last.model == base_model) return *last.counters;
  ModelCounters* counters;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = models_.find(base_model);
    if (it == models_.end()) {
      it = models_
               .emplace(std::string(base_model),
                        std::make_unique<ModelCounters>())
               .first;
    }
    counters = it->second.get();
  }
  last.owner = id_;
  last.model.assign(base_model);
  last.counters = counters;
  return *counters;
}

StatsDelta StatsCollector::Collect(bool drain) const {
  StatsDelta d;
  for (size_t i = 0; i < d.global.size(); ++i) {
    d.global[i] = drain ? global_.Take(i) : global_.Get(i);
  }
  for (size_t i = 0; i < bypasses_.size(); ++i) {
    d.bypasses[i] = drain ? bypasses_[i].exchange(0, std::memory_order_relaxed)
                          : bypasses_[i].load(std::memory_order_relaxed);
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [model, counters] : models_) {
    std::array<int64_t, static_cast<size_t>(ModelCounter::kCount)> values{};
    bool any = false;
    for (size_t i = 0; i < values.size(); ++i) {
      values[i] = drain ? counters->v.Take(i) : counters->v.Get(i);
      any = any || values[i] != 0;
    }
    if (any) d.models.emplace(model, values);
  }
  return d;
}

StatsDelta StatsCollector::Drain() { return Collect(true); }
StatsDelta StatsCollector::Peek() const { return Collect(false); }

void StatsCollector::ResetModel(std::string_view base_model) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(base_model);
  if (it == models_.end()) return;
  it->second->v.Zero(static_cast<size_t>(ModelCounter::kEntries));
  it->second->v.Zero(static_cast<size_t>(ModelCounter::kBytes));
}

void StatsCollector::ResetAllEntryCounts() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [model, counters] : models_) {
    counters->v.Zero(static_cast<size_t>(ModelCounter::kEntries));
    counters->v.Zero(static_cast<size_t>(ModelCounter::kBytes));
  }
}

void AddProviderStats(StatsCollector& stats, std::string_view base_model,
                      const ProviderStatsDelta& d) {
  if (d.read_tokens == 0 && d.write_tokens == 0 && d.saved_nanousd == 0 &&
      d.write_premium_nanousd == 0 && d.drift_events == 0) {
    return;
  }
  ModelCounters& m = stats.ForModel(base_model);
  m.Add(ModelCounter::kProviderCacheReadTokens,
        static_cast<int64_t>(d.read_tokens));
  m.Add(ModelCounter::kProviderCacheWriteTokens,
        static_cast<int64_t>(d.write_tokens));
  m.Add(ModelCounter::kProviderCacheSavedNanoUsd, d.saved_nanousd);
  m.Add(ModelCounter::kProviderCacheWritePremiumNanoUsd,
        d.write_premium_nanousd);
  m.Add(ModelCounter::kDriftEvents, static_cast<int64_t>(d.drift_events));
}

}  // namespace llmcache
