// Pure cluster logic without I/O: the slot map of a Redis Cluster, built from
// CLUSTER SLOTS and patched by -MOVED, and the parsing of redirections.

#ifndef LLMCACHE_NET_REDIS_SRC_REDIS_TOPOLOGY_H_
#define LLMCACHE_NET_REDIS_SRC_REDIS_TOPOLOGY_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/net/redis.h"

namespace llmcache::net::redis_internal {

inline constexpr int kSlots = 16384;

// "host:port", with brackets around an IPv6 host: the key of a connection.
std::string NodeKey(const RedisUrl::Node& node);

// An error reply that the cluster client follows or retries.
struct Redirect {
  enum class Kind { kNone, kMoved, kAsk, kTryAgain } kind = Kind::kNone;
  int slot = -1;
  RedisUrl::Node node;  // kMoved, kAsk
};
// Classifies the error line `error` (without the leading '-'). A MOVED or ASK
// whose host is empty (Redis 7 "unknown endpoint") gets `default_host`, the
// host of the node that answered. A malformed MOVED/ASK is kNone (the error
// is then returned as it is).
Redirect ParseRedirect(std::string_view error, std::string_view default_host);

// Slot -> master. Masters are kept in the order first seen; indexes into
// masters() are stable until the next Apply.
class SlotMap {
 public:
  SlotMap() { owner_.fill(-1); }

  // Replaces the map with a CLUSTER SLOTS reply; an empty host in it means
  // `default_host` (the node asked). kInvalidArgument (map unchanged) when
  // the reply is not a CLUSTER SLOTS answer.
  Status Apply(const RedisReply& cluster_slots, std::string_view default_host);
  // -MOVED: `slot` now belongs to `node` (added to the masters if new).
  void SetOwner(int slot, const RedisUrl::Node& node);
  // Seeds the masters list (before the first CLUSTER SLOTS): no slot owned.
  void SetMasters(std::vector<RedisUrl::Node> masters);

  // The master of `slot`, or nullopt when unknown.
  std::optional<RedisUrl::Node> OwnerOf(int slot) const;
  const std::vector<RedisUrl::Node>& masters() const { return masters_; }
  bool IsMaster(const RedisUrl::Node& node) const;

 private:
  int IndexOf(const RedisUrl::Node& node);
  std::vector<RedisUrl::Node> masters_;
  std::array<int16_t, kSlots> owner_;
};

}  // namespace llmcache::net::redis_internal

#endif  // LLMCACHE_NET_REDIS_SRC_REDIS_TOPOLOGY_H_
