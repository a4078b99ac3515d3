// Cacheability policy: may this request be answered from the cache?
//
// Thread safety: free functions over immutable inputs.

#ifndef LLMCACHE_POLICY_H_
#define LLMCACHE_POLICY_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "llmcache/key.h"

namespace llmcache {

enum class CacheMode {
  // Cache only requests with an explicit `temperature` equal to 0.
  kDeterministic,
  // Cache every request that is not always-bypassed (tests, replays).
  kAlways,
  // Never cache.
  kNever,
};

// Why a request bypasses the cache. Values are persisted in statistics:
// never change or reuse them; add new ones before kCount.
enum class BypassReason : uint8_t {
  kNone = 0,
  kNoTemperature = 1,       // deterministic mode, `temperature` absent
  kNonZeroTemperature = 2,  // deterministic mode, `temperature` != 0
  kWebSearch = 3,      // `:online`, a `web` plugin, web_search_options, or a
                       // web-search server tool: live data
  kDriftingModel = 4,  // openrouter/auto, `~...-latest`, `@preset/...`
  kDebug = 5,          // `debug` present
  kModeNever = 6,      // CacheMode::kNever
  // Responses API requests whose answer depends on upstream state:
  kPreviousResponse = 7,  // `previous_response_id` or `conversation`
  kStoreRequested = 8,    // `store: true` (the upstream keeps the response)
  kBackground = 9,        // `background: true` (answered by polling)
  kStoredPrompt = 10,     // `prompt`: a template stored (and editable)
                          // upstream
  kCount = 11,
};

// Stable snake_case name, e.g. "non_zero_temperature"; "unknown" if invalid.
std::string_view BypassReasonName(BypassReason reason);
// Inverse of BypassReasonName.
std::optional<BypassReason> BypassReasonFromName(std::string_view name);

// Stable names "deterministic", "always", "never" and their inverse.
std::string_view CacheModeName(CacheMode mode);
std::optional<CacheMode> CacheModeFromName(std::string_view name);

struct Decision {
  bool cache = false;
  BypassReason reason = BypassReason::kNone;  // kNone iff cache

  static Decision Cache() { return {true, BypassReason::kNone}; }
  static Decision Bypass(BypassReason r) { return {false, r}; }
};

// The decision for a request. Checks in this order, whatever the mode:
// debug, web search, drifting model, the Responses API's state
// (previous response or conversation, store, background, stored prompt);
// then the mode
// (never -> kModeNever; deterministic -> temperature present and == 0,
// except for embeddings, which involve no sampling and are cached; always
// -> cache).
Decision Decide(const RequestInfo& info, CacheMode mode);

}  // namespace llmcache

#endif  // LLMCACHE_POLICY_H_
