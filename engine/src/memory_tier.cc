// MemoryTier implementation.

#include "memory_tier.h"

#include <algorithm>
#include <utility>

namespace llmcache {

namespace {
constexpr size_t kMinCapacity = 16;

// The table grows before more than 5/8 of its slots are used: linear
// probing then reads about one slot line per hit and a few per miss.
bool NeedsGrowth(size_t used, size_t capacity) {
  return (used + 1) * 8 > capacity * 5;
}
}  // namespace

MemoryTier::MemoryTier(size_t byte_budget, size_t shard_count)
    : byte_budget_(byte_budget),
      shard_budget_(byte_budget / std::max<size_t>(shard_count, 1)),
      shards_(std::max<size_t>(shard_count, 1)) {}

MemoryTier::~MemoryTier() = default;

size_t MemoryTier::Charge(const Entry& entry) {
  // Body and strings plus the slot (at most two per entry at the table's
  // lowest load), control block and strings' headers: about 256 bytes of
  // bookkeeping per entry.
  return entry.body.size() + entry.meta.model.size() +
         entry.meta.resolved_model.size() + entry.meta.ns.size() + 256;
}

size_t MemoryTier::FindLocked(const Shard& shard, const Digest& d) {
  if (shard.capacity == 0) return kNotFound;
  const size_t mask = shard.capacity - 1;
  for (size_t i = SlotHash(d) & mask;; i = (i + 1) & mask) {
    const Slot& s = shard.slots[i];
    if (!s.entry) return kNotFound;  // the load factor keeps an empty slot
    if (SameDigest(s.digest, d)) return i;
  }
}

std::shared_ptr<const Entry> MemoryTier::Get(const Digest& digest) {
  if (byte_budget_ == 0) return nullptr;
  Shard& shard = ShardFor(digest);
  // Start the (likely) cache miss on the home slot before taking the lock:
  // the lock's atomic instruction would otherwise hold the load back.
  if (const Slot* slots = shard.prefetch_slots.load(std::memory_order_relaxed);
      slots != nullptr) {
    __builtin_prefetch(slots +
                       (SlotHash(digest) &
                        shard.prefetch_mask.load(std::memory_order_relaxed)));
  }
  std::lock_guard<std::mutex> lock(shard.mu);
  const size_t i = FindLocked(shard, digest);
  if (i == kNotFound) return nullptr;
  Slot& s = shard.slots[i];
  // Only write when the bit changes: a hot slot's line stays clean.
  if (s.referenced.load(std::memory_order_relaxed) == 0) {
    s.referenced.store(1, std::memory_order_relaxed);
  }
  return s.entry;
}

void MemoryTier::GrowLocked(Shard& shard) {
  const size_t capacity =
      shard.capacity == 0 ? kMinCapacity : shard.capacity * 2;
  const size_t mask = capacity - 1;
  auto slots = std::make_unique<Slot[]>(capacity);
  for (size_t j = 0; j < shard.capacity; ++j) {
    Slot& from = shard.slots[j];
    if (!from.entry) continue;
    size_t i = SlotHash(from.digest) & mask;
    while (slots[i].entry) i = (i + 1) & mask;
    Slot& to = slots[i];
    to.digest = from.digest;
    to.entry = std::move(from.entry);
    to.charge = from.charge;
    to.referenced.store(from.referenced.load(std::memory_order_relaxed),
                        std::memory_order_relaxed);
  }
  shard.slots = std::move(slots);
  shard.capacity = capacity;
  shard.hand &= mask;
  shard.prefetch_slots.store(shard.slots.get(), std::memory_order_relaxed);
  shard.prefetch_mask.store(mask, std::memory_order_relaxed);
}

std::shared_ptr<const Entry> MemoryTier::RemoveLocked(Shard& shard, size_t i) {
  const size_t mask = shard.capacity - 1;
  Slot& victim = shard.slots[i];
  std::shared_ptr<const Entry> removed = std::move(victim.entry);
  shard.bytes -= victim.charge;
  --shard.used;
  bytes_.fetch_sub(victim.charge, std::memory_order_relaxed);
  size_.fetch_sub(1, std::memory_order_relaxed);
  // Backward shift: move later members of the probe run into the hole when
  // the hole lies between their home slot and where they are, so that
  // every entry stays reachable from its home without tombstones.
  size_t hole = i;
  for (size_t j = (i + 1) & mask; shard.slots[j].entry; j = (j + 1) & mask) {
    Slot& s = shard.slots[j];
    const size_t home = SlotHash(s.digest) & mask;
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      Slot& to = shard.slots[hole];
      to.digest = s.digest;
      to.entry = std::move(s.entry);
      to.charge = s.charge;
      to.referenced.store(s.referenced.load(std::memory_order_relaxed),
                          std::memory_order_relaxed);
      hole = j;
    }
  }
  Slot& empty = shard.slots[hole];
  empty.charge = 0;
  empty.referenced.store(0, std::memory_order_relaxed);
  return removed;
}

void MemoryTier::EvictOneLocked(Shard& shard, const Entry* keep) {
  const size_t mask = shard.capacity - 1;
  for (;;) {
    Slot& s = shard.slots[shard.hand];
    if (s.entry && s.entry.get() != keep) {
      if (s.referenced.load(std::memory_order_relaxed) != 0) {
        s.referenced.store(0, std::memory_order_relaxed);  // second chance
      } else {
        if (listener_) listener_(s.digest, *s.entry, s.charge);
        // The hand stays: the backward shift may have moved the next entry
        // of the run into this slot.
        RemoveLocked(shard, shard.hand);
        return;
      }
    }
    shard.hand = (shard.hand + 1) & mask;
  }
}

bool MemoryTier::Put(const Digest& digest, std::shared_ptr<const Entry> entry,
                     const std::atomic<uint64_t>* epoch,
                     uint64_t expected_epoch) {
  if (!entry) return false;
  const size_t charge = Charge(*entry);
  if (charge > shard_budget_) return false;
  std::shared_ptr<const Entry> replaced;  // released after the lock
  Shard& shard = ShardFor(digest);
  std::lock_guard<std::mutex> lock(shard.mu);
  if (epoch != nullptr &&
      epoch->load(std::memory_order_acquire) != expected_epoch) {
    return false;
  }
  const Entry* const stored = entry.get();
  if (const size_t i = FindLocked(shard, digest); i != kNotFound) {
    // Same key, new value: the slot (and its reference bit) stays.
    Slot& s = shard.slots[i];
    replaced = std::move(s.entry);
    s.entry = std::move(entry);
    shard.bytes = shard.bytes - s.charge + charge;
    bytes_.fetch_sub(s.charge, std::memory_order_relaxed);
    bytes_.fetch_add(charge, std::memory_order_relaxed);
    s.charge = charge;
  } else {
    if (NeedsGrowth(shard.used, shard.capacity)) GrowLocked(shard);
    const size_t mask = shard.capacity - 1;
    size_t j = SlotHash(digest) & mask;
    while (shard.slots[j].entry) j = (j + 1) & mask;
    Slot& s = shard.slots[j];
    s.digest = digest;
    s.entry = std::move(entry);
    s.charge = charge;
    s.referenced.store(0, std::memory_order_relaxed);
    ++shard.used;
    shard.bytes += charge;
    bytes_.fetch_add(charge, std::memory_order_relaxed);
    size_.fetch_add(1, std::memory_order_relaxed);
  }
  // The new entry fits a shard on its own, so while the shard is over
  // budget there is another entry to evict.
  while (shard.bytes > shard_budget_) EvictOneLocked(shard, stored);
  return true;
}

std::shared_ptr<const Entry> MemoryTier::Erase(const Digest& digest) {
  Shard& shard = ShardFor(digest);
  std::lock_guard<std::mutex> lock(shard.mu);
  const size_t i = FindLocked(shard, digest);
  if (i == kNotFound) return nullptr;
  return RemoveLocked(shard, i);
}

size_t MemoryTier::EraseIf(
    const std::function<bool(const Digest&, const Entry&)>& pred) {
  size_t removed = 0;
  for (Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    if (shard.used == 0) continue;
    const size_t mask = shard.capacity - 1;
    // Start right after an empty slot: no probe run crosses it (removals
    // never fill an empty slot), so backward shifts only move entries the
    // scan has not reached yet, and each entry is tested exactly once.
    size_t start = 0;
    while (shard.slots[start].entry) ++start;
    size_t i = (start + 1) & mask;
    for (size_t visited = 0; visited + 1 < shard.capacity;) {
      Slot& s = shard.slots[i];
      if (s.entry && pred(s.digest, *s.entry)) {
        RemoveLocked(shard, i);  // look at slot i again: a shift may fill it
        ++removed;
        continue;
      }
      i = (i + 1) & mask;
      ++visited;
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
      snapshot.reserve(shard.used);
      for (size_t i = 0; i < shard.capacity; ++i) {
        const Slot& s = shard.slots[i];
        if (s.entry) snapshot.emplace_back(s.digest, s.entry);
      }
    }
    for (const auto& [d, e] : snapshot) fn(d, e);
  }
}

void MemoryTier::Clear() {
  for (Shard& shard : shards_) {
    std::unique_ptr<Slot[]> slots;  // entries are released after the lock
    {
      std::lock_guard<std::mutex> lock(shard.mu);
      bytes_.fetch_sub(shard.bytes, std::memory_order_relaxed);
      size_.fetch_sub(shard.used, std::memory_order_relaxed);
      slots = std::move(shard.slots);
      shard.prefetch_slots.store(nullptr, std::memory_order_relaxed);
      shard.prefetch_mask.store(0, std::memory_order_relaxed);
      shard.capacity = 0;
      shard.used = 0;
      shard.hand = 0;
      shard.bytes = 0;
    }
  }
}

}  // namespace llmcache
