// MemoryTier: a sharded, byte-budgeted cache of decoded entries with CLOCK
// eviction.
//
// The memory mode's whole store, and the hot tier in front of RocksDB in
// persistent mode. Entries are immutable and shared (std::shared_ptr), so a
// hit hands out a reference without copying the response.
//
// Layout: each shard is a flat open-addressing table (linear probing,
// backward-shift deletion, no tombstones) of cache-line sized slots keyed by
// the digest's bytes; digests are SHA-256, so any 8 of their bytes are a
// uniform hash. A lookup reads one slot line (rarely two) and the entry.
//
// Eviction is CLOCK (second chance): a hit only sets the slot's reference
// bit, so lookups never write to shared lists. When a Put pushes the shard
// over its budget, the shard's hand sweeps the slots: a referenced entry
// loses its bit and stays, an unreferenced one is evicted. New entries start
// unreferenced, so a run of one-off inserts evicts entries nobody asked for
// again before it evicts ones that were hit.
//
// Thread safety: all methods may be called concurrently. Each shard has its
// own mutex; a digest picks its shard by its first byte.

#ifndef LLMCACHE_ENGINE_MEMORY_TIER_H_
#define LLMCACHE_ENGINE_MEMORY_TIER_H_

#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "llmcache/entry.h"
#include "llmcache/key.h"

namespace llmcache {

class MemoryTier {
 public:
  // Called with each entry the budget pushes out (under the shard lock: keep
  // it short and do not call back into the tier).
  using EvictionListener =
      std::function<void(const Digest&, const Entry& entry, size_t charge)>;

  // `byte_budget` 0 makes a tier that stores nothing.
  explicit MemoryTier(size_t byte_budget, size_t shard_count = 16);
  ~MemoryTier();
  MemoryTier(const MemoryTier&) = delete;
  MemoryTier& operator=(const MemoryTier&) = delete;

  void set_eviction_listener(EvictionListener listener) {
    listener_ = std::move(listener);
  }

  // The entry under `digest` (marked referenced), or null.
  std::shared_ptr<const Entry> Get(const Digest& digest);

  // Stores `entry`, replacing any entry under `digest`, then evicts
  // unreferenced entries of the shard (CLOCK order) until it fits its
  // budget; the entry just stored is never its own victim. If `epoch` is
  // given, stores only if *epoch still equals `expected_epoch` (checked
  // under the shard lock: a concurrent invalidation that bumps the epoch
  // before clearing cannot be undone by a late fill). An entry larger than a
  // shard's budget is not stored. Returns whether it was stored.
  bool Put(const Digest& digest, std::shared_ptr<const Entry> entry,
           const std::atomic<uint64_t>* epoch = nullptr,
           uint64_t expected_epoch = 0);

  // Removes one entry; returns the removed entry or null.
  std::shared_ptr<const Entry> Erase(const Digest& digest);

  // Removes every entry for which `pred` is true; returns how many. The
  // predicate runs under shard locks, once per entry.
  size_t EraseIf(const std::function<bool(const Digest&, const Entry&)>& pred);

  // Calls `fn` on a snapshot of every entry (taken shard by shard).
  void ForEach(
      const std::function<void(const Digest&,
                               const std::shared_ptr<const Entry>&)>& fn) const;

  void Clear();

  size_t size() const { return size_.load(std::memory_order_relaxed); }
  size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  size_t byte_budget() const { return byte_budget_; }

  // What an entry costs against the budget.
  static size_t Charge(const Entry& entry);

 private:
  // One table slot: a cache line. Empty when `entry` is null.
  struct alignas(64) Slot {
    Digest digest{};
    std::shared_ptr<const Entry> entry;
    size_t charge = 0;
    // Set by hits, cleared by the CLOCK hand. Atomic so that a hit may set
    // it without owning the slot exclusively.
    std::atomic<uint8_t> referenced{0};
  };
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::unique_ptr<Slot[]> slots;
    size_t capacity = 0;  // 0 or a power of two
    size_t used = 0;      // occupied slots
    size_t hand = 0;      // CLOCK hand: the next slot the sweep examines
    size_t bytes = 0;
    // Copies of `slots` and `capacity - 1` that Get may read without the
    // lock, only to prefetch the slot line it will probe under the lock
    // (a stale copy costs a useless prefetch, never a wrong answer).
    std::atomic<const Slot*> prefetch_slots{nullptr};
    std::atomic<size_t> prefetch_mask{0};
  };
  static constexpr size_t kNotFound = ~size_t{0};

  // The table hash: digest bytes 8..15 (byte 0 picks the shard).
  static uint64_t SlotHash(const Digest& d) {
    uint64_t h;
    std::memcpy(&h, d.data() + 8, sizeof(h));
    return h;
  }
  static bool SameDigest(const Digest& a, const Digest& b) {
    return std::memcmp(a.data(), b.data(), sizeof(Digest)) == 0;
  }

  Shard& ShardFor(const Digest& d) {
    return shards_[static_cast<size_t>(d[0]) % shards_.size()];
  }
  // REQUIRES: shard.mu held (for all the helpers below).
  static size_t FindLocked(const Shard& shard, const Digest& d);
  // Doubles the table (or creates it) and reinserts every entry.
  static void GrowLocked(Shard& shard);
  // Empties slot `i`, shifting the rest of its probe run back; returns the
  // removed entry.
  std::shared_ptr<const Entry> RemoveLocked(Shard& shard, size_t i);
  // Advances the hand to the next unreferenced entry other than `keep` and
  // evicts it. There must be one besides `keep`.
  void EvictOneLocked(Shard& shard, const Entry* keep);

  const size_t byte_budget_;
  const size_t shard_budget_;
  std::vector<Shard> shards_;
  std::atomic<size_t> size_{0};
  std::atomic<size_t> bytes_{0};
  EvictionListener listener_;
};

}  // namespace llmcache

#endif  // LLMCACHE_ENGINE_MEMORY_TIER_H_
