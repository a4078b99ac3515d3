// Prompt caching (Anthropic-style explicit breakpoints via OpenRouter) and
// cost accounting from `usage`. See docs/openrouter.md
// (#cache-markers, #provider-caching, #usage-and-cost, #models-pricing).
//
// Thread safety: free functions and immutable tables.

#ifndef LLMCACHE_NET_PROMPT_CACHE_H_
#define LLMCACHE_NET_PROMPT_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "llmcache/net/completion.h"
#include "llmcache/status.h"

namespace llmcache::net {

struct BreakpointOptions {
  // A block is "large" when its text has at least this many bytes. When 0,
  // the model family's minimum cacheable prompt (MinCacheableTokens) times
  // 4 bytes per token is used. Default: 0.
  size_t min_block_bytes = 0;
  // Anthropic allows at most 4 explicit breakpoints per request, counting
  // the ones the caller already placed. Default: 4.
  int max_breakpoints = 4;
  // `ttl` of the markers added: "" (provider default, 5 minutes) or "1h".
  std::string ttl;
  // Also mark the conversation so far: the last text block of the last
  // message that has one (a string content becomes a one-part text array).
  // Anthropic's multi-turn pattern: the next turn, whose prompt extends this
  // one, reads the cached prefix back up to this breakpoint and writes only
  // what is new. Placed when the body has at least the minimum bytes; it
  // takes the second slot, after the system prompt. Default: false.
  bool rolling = false;
  // Leave a request that already carries any marker (cache_control or
  // prompt_cache_breakpoint, anywhere) exactly as sent. Default: false.
  bool skip_marked = false;
};

// Whether the upstream model takes explicit `cache_control` breakpoints
// (docs/openrouter.md#provider-caching): Anthropic Claude (author
// "anthropic", or a name starting with "claude") and Google Gemini 2.5 and
// later (author "google", name "gemini-<version>"). Other models cache
// automatically (OpenAI, DeepSeek, xAI, ...) or not at all: markers would
// only change their bodies. Case-insensitive; `:variant` ignored.
bool SupportsExplicitPromptCache(std::string_view model);

// `serve --prompt-cache` and the X-LLMCache-Prompt-Cache header.
enum class PromptCacheMode : uint8_t {
  kOff,   // the body goes upstream as the client sent it
  kAuto,  // ApplyAutoPromptCache on its way upstream
};
std::string_view PromptCacheModeName(PromptCacheMode mode);  // "off", "auto"
std::optional<PromptCacheMode> PromptCacheModeFromName(std::string_view name);

// The `auto` policy for a chat-completions body going upstream: unchanged
// (byte for byte) unless SupportsExplicitPromptCache(model) and the caller
// placed no marker; then AddCacheBreakpoints with `rolling`: the system
// prompt, the conversation so far, then the largest other blocks, at most 4
// breakpoints.
Result<std::string> ApplyAutoPromptCache(std::string_view body,
                                         std::string_view model);

// Minimum cacheable prompt of a model family, in tokens
// (docs/openrouter.md#provider-caching): Anthropic Opus 4.5+/Haiku 4.5: 4096,
// Haiku 3.5: 2048, other Claude: 1024; Gemini 2.5 Pro: 4096, Gemini Flash:
// 1024; otherwise 1024.
size_t MinCacheableTokens(std::string_view model);

// Returns `body` with `cache_control: {"type":"ephemeral"[, "ttl"]}` added to
// large static blocks: the system/developer messages' text (a string content
// becomes a one-part text array) first, then the largest other text parts in
// order of size (with `rolling`, the conversation's last block comes second),
// up to max_breakpoints in total including the ones already present, which
// are kept as they are. Messages after the last user message
// are never marked. Returns the body unchanged (byte for byte) when nothing
// qualifies. kInvalidArgument if the body is not a chat request. The response
// cache key does not change: cache_control is excluded from keys, and a
// one-part text array keys like the plain string it replaces.
Result<std::string> AddCacheBreakpoints(std::string_view body,
                                        std::string_view model,
                                        const BreakpointOptions& options = {});

// USD per token, from /models `pricing` (decimal strings).
struct ModelPricing {
  double prompt = 0;
  double completion = 0;
  std::optional<double> input_cache_read;
  std::optional<double> input_cache_write;
};

class PricingTable {
 public:
  // Loads a GET /api/v1/models response ({"data":[{"id","pricing":{...}}]}).
  static Result<PricingTable> FromModelsJson(std::string_view json);
  // Loads the same shape from a file.
  static Result<PricingTable> FromFile(const std::string& path);

  void Set(std::string model, ModelPricing pricing);
  // Looks up `model`, then its base model (without `:variant`).
  const ModelPricing* Find(std::string_view model) const;
  size_t size() const { return prices_.size(); }

 private:
  std::map<std::string, ModelPricing, std::less<>> prices_;
};

struct CostBreakdown {
  double prompt_cost = 0;  // uncached + cache reads + cache writes
  double completion_cost = 0;
  double total = 0;  // usage.cost when present, else the sum
  bool from_usage_cost = false;
  // What the same request would have cost without prompt caching (all prompt
  // tokens at the prompt price), and the difference: positive = saved,
  // negative = cache writes cost more than they saved this time.
  double uncached_total = 0;
  double prompt_cache_savings = 0;
};

// Prices `usage` for `model` (docs/openrouter.md#cost-formula):
//   uncached = prompt - cached - cache_write
//   prompt_cost = uncached*P_prompt + cached*P_read + cache_write*P_write
//   completion_cost = completion*P_completion
// P_read / P_write default to P_prompt when the table has none.
// kNotFound if the model is not in the table.
Result<CostBreakdown> ComputeCost(const PricingTable& table,
                                  std::string_view model,
                                  const CompletionUsage& usage);

// The provider prompt cache's effect on one response, in USD, kept apart:
//   saved         = cached_tokens x (P_prompt - P_read)
//   write_premium = cache_write_tokens x (P_write - P_prompt)
// (docs/openrouter.md#provider-caching, #cost-formula). When usage.cost is
// present it wins: the prompt actually cost usage.cost - completion_tokens x
// P_completion, so saved = (prompt_tokens x P_prompt - that) +
// write_premium, never below 0 (only when cached_tokens > 0; fees inside
// usage.cost, e.g. web search, would count as less saved).
struct PromptCacheEffect {
  double saved = 0;
  double write_premium = 0;
  bool from_usage_cost = false;
};
// kNotFound if the model is not in the table.
Result<PromptCacheEffect> ComputePromptCacheEffect(
    const PricingTable& table, std::string_view model,
    const CompletionUsage& usage);

}  // namespace llmcache::net

#endif  // LLMCACHE_NET_PROMPT_CACHE_H_
