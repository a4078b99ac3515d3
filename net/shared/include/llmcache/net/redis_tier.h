// RedisTier: the shared tier (shared_tier.h) on Redis or Redis Cluster, over
// RedisClient (redis.h).
//
// Layout (prefix "llmcache:" by default; K = the request key in hex):
//   <prefix>e:{K}      the entry: a 20-byte header ("LCR1", the cache and
//                      model generations it was written under, little
//                      endian) + the engine's versioned entry encoding;
//                      PX = the entry's remaining TTL
//   <prefix>l:{K}      the single-flight lease: a random token, PX = lease
//                      time, renewed while its holder waits for upstream
//   <prefix>gen        hash: generation per base model, "*" for the cache,
//                      and "\x01epoch": a random number set when the hash
//                      is created, new after Redis restarted empty
//   <prefix>flush      pub/sub channel: "<model>\t<generation>" per flush
//   <prefix>stats:<m>  hash: fleet counters of model m (hits, misses,
//                      bypasses, tokens_saved, cost_saved_nanousd)
//   <prefix>models     set: the models with fleet counters
//
// The entry and its lease share a hash tag ({K}), hence a slot: a lookup is
// one GET, a waiter's poll one MGET, and entries spread over the cluster by
// key. No command spans two slots; no flush walks keys (SCAN/DEL): a flush
// is one script on <prefix>gen (the epoch set if missing, HINCRBY) and one
// PUBLISH, and the old entries age out by TTL.
//
// Generations: each instance keeps the generations it knows in memory,
// updated at once by the flush channel and at most `generation_check_ms`
// later by a periodic HGETALL (for messages missed while disconnected). An
// entry written under an older generation is a miss. Until the generations
// were read once, the tier neither serves nor writes entries. Generations of
// another epoch than the one an instance knows are flushes it missed while
// Redis restarted empty (it forgets its own and applies them). Entries an
// instance writes between such a restart and its next read of the
// generations carry the old epoch's numbers: they stay visible until those
// models are flushed past them.
// Instances of versions before the epoch read "\x01epoch" as a model and
// flush that (absent) model once: upgrade a fleet together.

#ifndef LLMCACHE_NET_REDIS_TIER_H_
#define LLMCACHE_NET_REDIS_TIER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/cache.h"
#include "llmcache/net/redis.h"
#include "llmcache/net/shared_tier.h"

namespace llmcache::net {

struct RedisTierOptions {
  RedisOptions redis;
  std::string prefix = "llmcache:";
  // Lease of a cross-instance single flight: its time to live (renewed by
  // the holder every third of it), and the longest a waiter waits for the
  // leader's answer before going upstream itself.
  int64_t lease_ms = 5'000;
  int64_t lease_wait_ms = 60'000;
  // A waiter's first poll interval (doubling up to 100 ms).
  int64_t lease_poll_ms = 5;
  // Bound on the time to learn of a flush whose message was missed.
  int64_t generation_check_ms = 1'000;
  // Fleet counters are summed in Redis this often.
  int64_t stats_flush_ms = 1'000;
  // A file where the generations the local tiers are consistent with are
  // kept (e.g. in the local database's folder). At start, a generation above
  // the file's is a flush missed while this instance was down: the flush
  // listener drops that model from the local tiers. Empty: none (a local
  // tier that starts empty needs none).
  std::string generations_file;
  // Deadline of the blocking administrative calls (flush, purge, stats).
  int64_t admin_timeout_ms = 2'000;
  // Where log lines go; null = stderr. Never receives passwords.
  std::function<void(std::string_view line)> log;
};

// Fleet statistics of one model, summed over every instance.
struct FleetModelStats {
  std::string model;
  uint64_t hits = 0, misses = 0, bypasses = 0;
  uint64_t tokens_saved = 0;
  int64_t cost_saved_nanousd = 0;
  uint64_t generation = 0;
};
struct FleetStats {
  std::vector<FleetModelStats> models;  // sorted by name
  uint64_t cache_generation = 0;
  uint64_t keys = 0;  // DBSIZE summed over the masters (all keys)
};

class RedisTier final : public SharedTier {
 public:
  // Connects in the background and reads the generations (waiting at most
  // the command timeout for them). Never fails for an unreachable Redis:
  // the tier then fails open until it is reachable.
  static Result<std::shared_ptr<RedisTier>> Create(RedisTierOptions options);
  ~RedisTier() override;

  void Get(const RequestKey& key, GetCallback done) override;
  void Put(const RequestKey& key, std::shared_ptr<const Entry> entry) override;
  void AcquireLead(const RequestKey& key,
                   std::function<void(Lead)> done) override;
  void Release(const RequestKey& key, const std::string& token) override;
  void Record(std::string_view base_model, SharedOutcome outcome,
              const Usage& saved) override;
  Result<uint64_t> FlushModel(std::string_view base_model) override;
  Result<uint64_t> FlushAll() override;
  void FlushModelLater(std::string_view base_model) override;
  Result<bool> PurgeKey(const Digest& digest) override;
  void SetFlushListener(
      std::function<void(std::string_view base_model)> listener) override;
  // Every raise of a generation: a flush here, a flush message, a raise
  // seen by the periodic check or at start from the generations file.
  uint64_t flush_count() const override;
  SharedTierHealth Health() const override;

  // Blocking (tools): the fleet's statistics.
  Result<FleetStats> ReadFleetStats();
  // Blocking (tools: export, verify): calls `fn` for every live entry of the
  // shared tier (of BaseModel(*model) if given), until it returns false.
  // Entries of an old generation are invisible and skipped; a value that
  // does not decode goes to `on_corrupt` with its key (kDataLoss without
  // it). Walks every master with SCAN and reads with pipelined GETs; it
  // never blocks Redis (no KEYS).
  Status ForEachEntry(
      const std::optional<std::string>& model,
      const std::function<bool(const EntryView&)>& fn,
      const std::function<void(std::string_view key, const Status&)>&
          on_corrupt = nullptr);
  // Sums the pending fleet counters into Redis now (blocking).
  Status FlushStats();
  // Stops the timers and the client and joins their threads; pending work
  // fails open (a wait for another instance's lead goes alone: its callback
  // runs on the calling thread). Call it before the io_context that its
  // callers' continuations are posted to goes (CachedClient). Idempotent.
  void Shutdown();

  RedisClient& client();

  // Exposed for tests: the Redis key of an entry.
  std::string EntryKey(const Digest& digest) const;

  class Impl;

 private:
  explicit RedisTier(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace llmcache::net

#endif  // LLMCACHE_NET_REDIS_TIER_H_
