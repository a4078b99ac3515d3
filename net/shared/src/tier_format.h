// The shared tier's private pieces without I/O of their own: the value
// header in front of every entry in Redis, the parsing of Redis' decimal
// replies, and the fleet statistics' read (tools). See redis_tier.h for the
// layout.

#ifndef LLMCACHE_NET_SHARED_SRC_TIER_FORMAT_H_
#define LLMCACHE_NET_SHARED_SRC_TIER_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "llmcache/net/redis.h"
#include "llmcache/net/redis_tier.h"

namespace llmcache::net::tier_internal {

// An entry's value: "LCR1", the cache generation and the model generation
// it was written under (little endian), then the engine's entry encoding.
inline constexpr char kMagic[4] = {'L', 'C', 'R', '1'};
inline constexpr size_t kHeaderSize = 4 + 8 + 8;
// The field of the whole cache's generation in <prefix>gen.
inline constexpr std::string_view kAllModels = "*";

void PutLe64(uint64_t v, char* p);
uint64_t GetLe64(const char* p);

// Decimal integers as Redis returns them; false for anything else.
bool ParseU64(std::string_view s, uint64_t* out);
bool ParseI64(std::string_view s, int64_t* out);

// Reads <prefix>gen, <prefix>models and each <prefix>stats:<model>, and sums
// DBSIZE over the masters, blocking at most `timeout_ms` per command.
Result<FleetStats> ReadFleetStats(RedisClient& redis, const std::string& prefix,
                                  int64_t timeout_ms);

}  // namespace llmcache::net::tier_internal

#endif  // LLMCACHE_NET_SHARED_SRC_TIER_FORMAT_H_
