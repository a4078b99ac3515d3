// MemoryTier implementation.

#include "memory_tier.h"

#include <algorithm>

namespace llmcache {

MemoryTier::MemoryTier(size_t byte_budget, size_t shard_count)
    : byte_budget_(byte_budget),
      shard_budget_(byte_budget / std::max<size_t>(shard_count, 1)),
      shards_(std::max<size_t>(shard_count, 1)) {}

MemoryTier::~MemoryTier() = default;

size_t MemoryTier::Charge(const Entry& entry) {
  // Body and strings plus the node, map slot, control block and strings'
  // headers: about 256 bytes of bookkeeping per entry.
  return entry.body.size() + entry.meta.model.size() +
         entry.meta.resolved_model.size() + entry.meta.ns.size() + 256;
}

std::shared_ptr<const Entry> MemoryTier::Get(const Digest& digest) {
  if (byte_budget_ == 0) return nullptr;
  Shard& shard = ShardFor(digest);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.index.find(digest);
  if (it == shard.index.end()) return nullptr;
  if (it->second != shard.lru.begin()) {
    shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
  }
  return it->second->entry;
}

void MemoryTier::RemoveLocked(Shard& shard, List::iterator it) {
  shard.bytes -= it->charge;
  bytes_.fetch_sub(it->charge, std::memory_order_relaxed);
  size_.fetch_sub(1, std::memory_order_relaxed);
  shard.index.erase(it->digest);
  shard.lru.erase(it);
}

bool MemoryTier::Put(const Digest& digest, std::shared_ptr<const Entry> entry,
                     const std::atomic<uint64_t>* epoch,
                     uint64_t expected_epoch) {
  if (!entry) return false;
  const size_t charge = Charge(*entry);
  if (charge > shard_budget_) return false;
  Shard& shard = ShardFor(digest);
  std::lock_guard<std::mutex> lock(shard.mu);
  if (epoch != nullptr &&
      epoch->load(std::memory_order_acquire) != expected_epoch) {
    return false;
  }
  auto found = shard.index.find(digest);
  if (found != shard.index.end()) RemoveLocked(shard, found->second);
  shard.lru.push_front(Node{digest, std::move(entry), charge});
  shard.index.emplace(digest, shard.lru.begin());
  shard.bytes += charge;
  bytes_.fetch_add(charge, std::memory_order_relaxed);
  size_.fetch_add(1, std::memory_order_relaxed);
  while (shard.bytes > shard_budget_ && !shard.lru.empty()) {
    auto victim = std::prev(shard.lru.end());
    if (listener_) listener_(victim->digest, *victim->entry, victim->charge);
    RemoveLocked(shard, victim);
  }
  return true;
}

std::shared_ptr<const Entry> MemoryTier::Erase(const Digest& digest) {
  Shard& shard = ShardFor(digest);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.index.find(digest);
  if (it == shard.index.end()) return nullptr;
  std::shared_ptr<const Entry> entry = std::move(it->second->entry);
  RemoveLocked(shard, it->second);
  return entry;
}

size_t MemoryTier::EraseIf(
    const std::function<bool(const Digest&, const Entry&)>& pred) {
  size_t removed = 0;
  for (Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    for (auto it = shard.lru.begin(); it != shard.lru.end();) {
      auto next = std::next(it);
      if (pred(it->digest, *it->entry)) {
        RemoveLocked(shard, it);
        ++removed;
      }
      it = next;
    }
  }
  return removed;
}

void MemoryTier::ForEach(
    const std::function<void(const Digest&,
                             const std::shared_ptr<const Entry>&)>& fn) const {
  for (const Shard& shard : shards_) {
    std::vector<std::pair<Digest, std::shared_ptr<const Entry>>> snapshot;
    {
      std::lock_guard<std::mutex> lock(shard.mu);
      snapshot.reserve(shard.index.size());
      for (const Node& n : shard.lru) snapshot.emplace_back(n.digest, n.entry);
    }
    for (const auto& [d, e] : snapshot) fn(d, e);
  }
}

void MemoryTier::Clear() {
  EraseIf([](const Digest&, const Entry&) { return true; });
}

}  // namespace llmcache
