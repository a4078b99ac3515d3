// RESP through hiredis, used as a protocol library only: its reader parses
// replies out of the bytes the socket delivers, its formatter encodes
// commands. Binary safe both ways.

#ifndef LLMCACHE_NET_REDIS_SRC_REDIS_PROTOCOL_H_
#define LLMCACHE_NET_REDIS_SRC_REDIS_PROTOCOL_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/net/redis.h"

struct redisReader;

namespace llmcache::net::redis_internal {

// Appends the RESP encoding of `argv` to `out`. kInvalidArgument for an
// empty argv.
Status AppendCommand(const std::vector<std::string>& argv, std::string& out);

// The replies in a byte stream, in order. Not copyable.
class ReplyReader {
 public:
  ReplyReader();
  ~ReplyReader();
  ReplyReader(const ReplyReader&) = delete;
  ReplyReader& operator=(const ReplyReader&) = delete;

  // Adds received bytes. An error (out of memory) leaves the reader broken.
  Status Feed(std::string_view bytes);
  // The next complete reply, nullopt when more bytes are needed, or an error
  // for a protocol violation (the stream is then unusable).
  Result<std::optional<RedisReply>> Next();

 private:
  redisReader* reader_;
};

}  // namespace llmcache::net::redis_internal

#endif  // LLMCACHE_NET_REDIS_SRC_REDIS_PROTOCOL_H_
