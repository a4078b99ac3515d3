// SharedTier: a cache tier shared by many instances (llmcache::shared's
// RedisTier keeps it on Redis or Redis Cluster). The cached client puts it
// under its local tiers:
//
//   memory tier -> local RocksDB (optional) -> shared tier -> upstream
//
//   - A hit in the shared tier fills the local tiers with the entry's
//     remaining TTL; an upstream answer is written to every tier.
//   - Flushes are generations: each model (and the whole cache) has one, an
//     entry records those it was written under, and an entry older than the
//     current generation is a miss. A flush on any instance reaches the
//     others at once (and within a bounded time if they missed the news);
//     each then drops the model from its local tiers (SetFlushListener).
//   - Cross-instance single flight: Lead takes a short lease per key; the
//     other instances wait, with a deadline, for the leader's value.
//   - Fail open: every operation has a deadline; an unreachable, slow or
//     refusing shared tier is a miss (or "go alone"), never an error for the
//     request.
//
// Callbacks run on the tier's own threads: keep them short, never block.
// Thread safety: all methods may be called concurrently.

#ifndef LLMCACHE_NET_SHARED_TIER_H_
#define LLMCACHE_NET_SHARED_TIER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "llmcache/entry.h"
#include "llmcache/key.h"
#include "llmcache/policy.h"
#include "llmcache/status.h"

namespace llmcache::net {

struct SharedTierHealth {
  std::string backend;     // e.g. "redis"
  std::string url;         // redacted: never a password
  bool available = false;  // connected, breaker closed, last operation ok
  bool cluster = false;
  size_t nodes = 0;
  bool generations_loaded = false;
  int64_t unavailable_since_ms = 0;  // 0 = available
  // Operations.
  uint64_t gets = 0, hits = 0, misses = 0, stale = 0;  // stale: old generation
  uint64_t puts = 0, put_errors = 0;
  uint64_t errors = 0, timeouts = 0, rejected = 0;  // rejected: breaker open
  uint64_t reconnects = 0, moved = 0, ask = 0;
  // Cross-instance single flight.
  uint64_t leases_taken = 0, lease_waits = 0, lease_hits = 0,
           lease_timeouts = 0, lease_released_empty = 0;
  // Flushes learned from other instances (pub/sub or the periodic check).
  uint64_t remote_flushes = 0;
  std::string last_error;  // never holds a password
};

// What a request was answered with, for fleet statistics.
enum class SharedOutcome : uint8_t { kHit, kMiss, kBypass };

class SharedTier {
 public:
  virtual ~SharedTier() = default;

  // A hit (the entry), a miss (null), or an error (fail open: a miss).
  // One round trip. An entry of an old generation, expired, or that cannot
  // be decoded is a miss.
  using GetCallback =
      std::function<void(Result<std::shared_ptr<const Entry>> entry)>;
  virtual void Get(const RequestKey& key, GetCallback done) = 0;

  // Writes an entry (expiring with it); failures are counted, not reported.
  virtual void Put(const RequestKey& key,
                   std::shared_ptr<const Entry> entry) = 0;

  // Cross-instance single flight for a miss.
  enum class LeadOutcome : uint8_t {
    kLeader,   // this instance holds the lease: call upstream, Put, Release
    kHit,      // another instance's answer arrived while waiting (`entry`)
    kGoAlone,  // the lease ended without a value, the wait timed out, or
               // the tier is unavailable: call upstream, without a lease
  };
  struct Lead {
    LeadOutcome outcome = LeadOutcome::kGoAlone;
    std::string token;                   // kLeader: pass it to Release
    std::shared_ptr<const Entry> entry;  // kHit
  };
  virtual void AcquireLead(const RequestKey& key,
                           std::function<void(Lead)> done) = 0;
  // Gives the lease up (after Put, or after a failure, so that the waiters
  // go upstream at once). Only the holder's own token releases it.
  virtual void Release(const RequestKey& key, const std::string& token) = 0;

  // Fleet statistics: batched locally and summed in the tier periodically.
  virtual void Record(std::string_view base_model, SharedOutcome outcome,
                      const Usage& saved) = 0;

  // Administrative operations; they block for at most the tier's admin
  // timeout: call them from tools or an admin thread, never an I/O thread.
  // The new generation of the model / of the whole cache.
  virtual Result<uint64_t> FlushModel(std::string_view base_model) = 0;
  virtual Result<uint64_t> FlushAll() = 0;
  // FlushModel without blocking the caller (an I/O thread: a model drift);
  // a failure is logged. By default FlushModel itself.
  virtual void FlushModelLater(std::string_view base_model) {
    (void)FlushModel(base_model);
  }
  // True if the entry existed.
  virtual Result<bool> PurgeKey(const Digest& digest) = 0;

  // Called (on a tier thread) when a flush is learned from another instance:
  // `base_model` flushed, or everything (empty). Set once, before use.
  virtual void SetFlushListener(
      std::function<void(std::string_view base_model)> listener) = 0;

  // Counts the flushes this tier knows of (its own and those learned from
  // other instances), each counted before the local tiers are flushed for
  // it. An entry read before a flush may be written to the local tiers
  // after it: the cached client reads the count before asking the tier
  // and again after filling, and takes the fill back if the count moved.
  // A tier that never flushes may leave it at 0.
  virtual uint64_t flush_count() const { return 0; }

  virtual SharedTierHealth Health() const = 0;
};

}  // namespace llmcache::net

#endif  // LLMCACHE_NET_SHARED_TIER_H_
