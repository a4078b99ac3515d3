// The provider prompt-cache simulation (private to net/fake): Anthropic-style
// explicit caching, with the markers of docs/openrouter.md (prompt-cache
// markers), shared by all connections of one fake.
//
// The prompt is a sequence of blocks: each tool, then per message a header
// block (role, tool calls, tool_call_id, name) and one block per content part
// (a string content is one block). Its size in bytes is the text of each part
// (parts without "text", and tools: their JSON without markers), plus 4 per
// message and the JSON of its tool calls; prompt_tokens = max(1, ceil(bytes /
// 4)). A string content is the same block as a one-part text array of it.
//
// Every `cache_control` object / `prompt_cache_breakpoint` on a tool, a
// content part or a message, and one at the top level of the body (automatic
// caching: on the last block), marks a breakpoint. A request with breakpoints
// reports as cached_tokens the longest prefix, ending at a block boundary up
// to the last breakpoint, that an earlier request wrote (same base model), and
// the rest up to the last breakpoint as cache_write_tokens (tokens here are
// floor(prefix bytes / 4)); then it writes every breakpoint after the hit.
// TTL 5 min, or 1 h with "ttl":"1h"; a hit refreshes it. No minimum prompt
// size. Without breakpoints nothing is read or written.

#ifndef LLMCACHE_NET_FAKE_FAKE_PROMPT_CACHE_H_
#define LLMCACHE_NET_FAKE_FAKE_PROMPT_CACHE_H_

#include <boost/json/object.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llmcache::fake::internal {

// The prompt as a sequence of cacheable blocks (tools, then message parts).
struct PromptBlocks {
  struct Block {
    uint64_t prefix_hash;  // hash of the model and all blocks up to this one
    size_t prefix_bytes;   // bytes up to and including this block
    bool breakpoint;
    bool ttl_1h;
  };
  std::vector<Block> blocks;
  size_t total_bytes = 0;
};

// REQUIRES: `base_model` has no `:variant`.
PromptBlocks BuildPromptBlocks(const boost::json::object& body,
                               std::string_view base_model);

struct PromptUsage {
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t cache_write_tokens = 0;
  bool write_1h = false;  // the last breakpoint asked for a 1 h TTL
};

// Thread-safe.
class PromptCacheSim {
 public:
  // Reads and writes the cache for one request; returns its token counts.
  PromptUsage Account(const PromptBlocks& prompt);

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    Clock::time_point expiry;
    Clock::duration ttl;
  };
  std::mutex mu_;
  std::unordered_map<uint64_t, Entry> entries_;  // prefix_hash -> entry
};

}  // namespace llmcache::fake::internal

#endif  // LLMCACHE_NET_FAKE_FAKE_PROMPT_CACHE_H_
