// MemoryTier: a sharded, byte-budgeted LRU of decoded entries.
//
// The memory mode's whole store, and the hot tier in front of RocksDB in
// persistent mode. Entries are immutable and shared (std::shared_ptr), so a
// hit hands out a reference without copying the response.
//
// Thread safety: all methods may be called concurrently. Each shard has its
// own mutex; a digest picks its shard by its first bytes (digests are
// uniformly distributed).

#ifndef LLMCACHE_ENGINE_MEMORY_TIER_H_
#define LLMCACHE_ENGINE_MEMORY_TIER_H_

#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
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

  // The entry under `digest` (most recently used afterwards), or null.
  std::shared_ptr<const Entry> Get(const Digest& digest);

  // Stores `entry`, replacing any entry under `digest`, then evicts least
  // recently used entries of the shard until it fits its budget. If `epoch`
  // is given, stores only if *epoch still equals `expected_epoch` (checked
  // under the shard lock: a concurrent invalidation that bumps the epoch
  // before clearing cannot be undone by a late fill). An entry larger than a
  // shard's budget is not stored. Returns whether it was stored.
  bool Put(const Digest& digest, std::shared_ptr<const Entry> entry,
           const std::atomic<uint64_t>* epoch = nullptr,
           uint64_t expected_epoch = 0);

  // Removes one entry; returns the removed entry or null.
  std::shared_ptr<const Entry> Erase(const Digest& digest);

  // Removes every entry for which `pred` is true; returns how many. The
  // predicate runs under shard locks.
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
  struct DigestHash {
    size_t operator()(const Digest& d) const {
      size_t h;
      std::memcpy(&h, d.data() + 8, sizeof(h));
      return h;
    }
  };
  struct Node {
    Digest digest;
    std::shared_ptr<const Entry> entry;
    size_t charge;
  };
  using List = std::list<Node>;
  struct alignas(64) Shard {
    mutable std::mutex mu;
    List lru;  // front = most recently used
    std::unordered_map<Digest, List::iterator, DigestHash> index;
    size_t bytes = 0;
  };

  Shard& ShardFor(const Digest& d) {
    return shards_[static_cast<size_t>(d[0]) % shards_.size()];
  }
  // REQUIRES: shard.mu held.
  void RemoveLocked(Shard& shard, List::iterator it);

  const size_t byte_budget_;
  const size_t shard_budget_;
  std::vector<Shard> shards_;
  std::atomic<size_t> size_{0};
  std::atomic<size_t> bytes_{0};
  EvictionListener listener_;
};

}  // namespace llmcache

#endif  // LLMCACHE_ENGINE_MEMORY_TIER_H_
