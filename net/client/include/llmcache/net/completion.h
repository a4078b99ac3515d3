// Chat-completion responses as OpenRouter sends them: parsing the essentials
// of a response body, mapping error envelopes to Status, and deciding whether
// a response is clean enough to cache. See docs/openrouter.md
// (#response-body to #usage-and-cost).
//
// Thread safety: free functions; no shared state.

#ifndef LLMCACHE_NET_COMPLETION_H_
#define LLMCACHE_NET_COMPLETION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/entry.h"
#include "llmcache/status.h"

namespace llmcache::net {

struct ToolCall {
  int index = 0;
  std::string id;
  std::string type;  // "function"
  std::string name;
  std::string arguments;  // JSON text, as sent (for streams: fragments joined)
};

struct CompletionUsage {
  uint64_t prompt_tokens = 0;  // includes cached and cache-write tokens
  uint64_t completion_tokens = 0;
  uint64_t total_tokens = 0;
  uint64_t cached_tokens = 0;       // prompt_tokens_details.cached_tokens
  uint64_t cache_write_tokens = 0;  // prompt_tokens_details.cache_write_tokens
  uint64_t reasoning_tokens = 0;  // completion_tokens_details.reasoning_tokens
  std::optional<double> cost;     // usage.cost (USD), the ground truth
};

// An OpenRouter error: the envelope {"error":{"code","message","metadata"}},
// a choice-level error, or a mid-stream error event.
struct ApiError {
  int code = 0;  // numeric code (HTTP-like); 0 if the code was a string
  std::string code_text;  // the code as sent when it was a string
  std::string message;
  std::string metadata_json;  // `metadata` as compact JSON, or empty
};

// The essentials of a complete (non-streaming, or accumulated) response:
// the first choice's output, the response's usage and any error. The body
// itself is what gets stored and replayed (every choice, every member).
struct ParsedCompletion {
  std::string id;
  std::string model;  // the model actually used (resolved)
  std::string provider;
  int64_t created = 0;
  std::string content;  // choices[0].message.content ("" if null)
  bool content_null = true;
  std::string reasoning;  // .reasoning, else .reasoning_content
  std::string refusal;    // .refusal ("" if null)
  std::vector<ToolCall> tool_calls;
  std::string finish_reason;         // "" if null
  std::string native_finish_reason;  // "" if null
  bool has_choices = false;
  std::optional<CompletionUsage> usage;
  // The top-level error, else the first choice error (of any choice).
  std::optional<ApiError> error;
};

// Parses a response body (leading whitespace keep-alive bytes allowed).
// kInvalidArgument if it is not a JSON object.
Result<ParsedCompletion> ParseCompletion(std::string_view body);

// Parses an error envelope body; nullopt if the body is not one.
std::optional<ApiError> ParseErrorEnvelope(std::string_view body);

// The Status for an upstream error: the code follows the HTTP status (or
// error.code for a 200-with-error): 400/422 -> kInvalidArgument,
// 401 -> kUnauthenticated, 402 -> kResourceExhausted (credits),
// 403 -> kPermissionDenied, 404 -> kNotFound, 408/504/524 ->
// kDeadlineExceeded, 413 -> kInvalidArgument, 429 -> kResourceExhausted,
// 500 -> kInternal, 502/503/529 -> kUnavailable; others kUnknown. The message
// is "upstream <status>: <error.message>" (the body is not JSON: a short,
// sanitised prefix of it).
Status StatusFromUpstream(int http_status, std::string_view body);

// Why a response must not be stored (empty when it may be): non-200 status,
// a top-level or choice-level error, finish_reason "error", or no content, no
// refusal and no tool calls (a refusal is the model's answer, as
// deterministic as any other).
std::string WhyNotCacheable(int http_status, const ParsedCompletion& c);

// True only if `body` is a chat completion that ParseCompletion reads and
// WhyNotCacheable(200, ...) accepts: a quick check of the common clean shape
// in one pass, without a tree (net/client/src/completion_check.cc lists what
// it requires). False says "not certain": ask those two, which also say why.
// `llmcache import` calls it for every line.
bool IsPlainlyCacheableCompletion(std::string_view body);

// The engine's usage record: tokens, and cost in nano-USD (0 if absent).
Usage ToEngineUsage(const CompletionUsage& usage);

}  // namespace llmcache::net

#endif  // LLMCACHE_NET_COMPLETION_H_
