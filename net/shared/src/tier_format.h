// The shared tier's private pieces without I/O of their own: the value
// header in front of every entry in Redis, the parsing of Redis' decimal
// replies, and the tools' blocking reads: the fleet statistics, the walk
// over the entries. See redis_tier.h for the
// layout.

#ifndef LLMCACHE_NET_SHARED_SRC_TIER_FORMAT_H_
#define LLMCACHE_NET_SHARED_SRC_TIER_FORMAT_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "llmcache/net/redis.h"
#include "llmcache/net/redis_tier.h"

namespace llmcache::net::tier_internal {

// An entry's value: "LCR1", the cache generation and the model generation
// it was written under (little endian), then the engine's entry encoding.
inline constexpr char kMagic[4] = {'L', 'C', 'R', '1'};
inline constexpr size_t kHeaderSize = 4 + 8 + 8;
// The field of the whole cache's generation in <prefix>gen.
inline constexpr std::string_view kAllModels = "*";
// The field of <prefix>gen's epoch: a random number set when the hash is
// created (never a model id, which has no control characters). A Redis that
// restarts empty gets a new one, so an instance that knew the old epoch
// learns that the generations started again, and that any generation of the
// new epoch is a flush it has not applied.
inline constexpr std::string_view kEpochField = "\x01epoch";

// Releases a lease only for its holder; renews it only for its holder.
inline constexpr std::string_view kReleaseScript =
    "if redis.call('get',KEYS[1])==ARGV[1] then "
    "return redis.call('del',KEYS[1]) end return 0";
inline constexpr std::string_view kRenewScript =
    "if redis.call('get',KEYS[1])==ARGV[1] then "
    "return redis.call('pexpire',KEYS[1],ARGV[2]) end return 0";
// Adds field/increment pairs to one hash (one key: one slot).
inline constexpr std::string_view kAddScript =
    "for i=1,#ARGV,2 do redis.call('hincrby',KEYS[1],ARGV[i],ARGV[i+1]) end "
    "return 1";
// A flush: the generations' epoch set if there is none, the model's
// generation raised; returns the generation and the epoch it belongs to.
inline constexpr std::string_view kFlushScript =
    "redis.call('hsetnx',KEYS[1],ARGV[1],ARGV[2]) return {redis.call("
    "'hincrby',KEYS[1],ARGV[3],1),redis.call('hget',KEYS[1],ARGV[1])}";

// The parts of a tier's health its Redis client knows (available: connected,
// the breaker closed, the last command answered).
void FillFromRedis(const RedisHealth& r, SharedTierHealth* h);

// The models an instance keeps fleet statistics of apart, in Redis hashes
// that never expire: a client may send any model id (one answered with a
// 400, a bypass), so at most kMax ids of at most kMaxBytes each; any other
// counts as kOther. Not thread-safe (the caller's lock).
class FleetModels {
 public:
  static constexpr size_t kMax = 256;
  static constexpr size_t kMaxBytes = 256;
  static constexpr std::string_view kOther = "(other models)";
  // The name `model`'s counts go under.
  const std::string& Admit(std::string_view model);

 private:
  std::set<std::string, std::less<>> names_;
  const std::string other_{kOther};
};

// Joins `t` unless it is the calling thread (then detached); true if joined.
bool JoinUnlessSelf(std::thread& t);

// A lease token: the 32 hex digits of two random words.
std::string HexToken(uint64_t a, uint64_t b);

// The generations file of an instance: "model\tgeneration" lines, and the
// epoch they belong to as a kEpochField line (none in files of earlier
// versions: *epoch = 0). False when there is no file.
bool ReadGenerationsFile(const std::string& path,
                         std::unordered_map<std::string, uint64_t>* gens,
                         uint64_t* epoch);
// Replaces the file atomically (a temporary file renamed over it); errors
// are ignored (the next save tries again).
void WriteGenerationsFile(const std::string& path,
                          const std::unordered_map<std::string, uint64_t>& gens,
                          uint64_t epoch);

void PutLe64(uint64_t v, char* p);
uint64_t GetLe64(const char* p);

// Decimal integers as Redis returns them; false for anything else.
bool ParseU64(std::string_view s, uint64_t* out);
bool ParseI64(std::string_view s, int64_t* out);

// Reads <prefix>gen, <prefix>models and each <prefix>stats:<model>, and sums
// DBSIZE over the masters, blocking at most `timeout_ms` per command.
Result<FleetStats> ReadFleetStats(RedisClient& redis, const std::string& prefix,
                                  int64_t timeout_ms);

// Calls `fn` for each entry under <prefix>e:{...} (of `model`'s base model
// if given), scanning every master and reading 256 values at a time; stops
// early when `fn` returns false. `decode` turns a stored value into its
// entry: kNotFound skips it (an old generation), kUnavailable ends the walk
// (cannot tell live from flushed), anything else is corruption, passed to
// `on_corrupt` (or returned when there is none).
Status ForEachStoredEntry(
    RedisClient& redis, const std::string& prefix,
    const std::optional<std::string>& model,
    const std::function<Result<Entry>(std::string_view value)>& decode,
    const std::function<bool(const EntryView&)>& fn,
    const std::function<void(std::string_view, const Status&)>& on_corrupt);

}  // namespace llmcache::net::tier_internal

#endif  // LLMCACHE_NET_SHARED_SRC_TIER_FORMAT_H_
