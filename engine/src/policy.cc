// Cacheability policy: names of modes and bypass reasons, and the decision.

#include "llmcache/policy.h"

#include <boost/algorithm/string/predicate.hpp>
#include <cstddef>
#include <string_view>

#include "format.h"

namespace llmcache {
namespace {

// kBypassReasonNames (format.h) is indexed by BypassReason value.
static_assert(kBypassReasonNames.size() ==
              static_cast<size_t>(BypassReason::kCount));

// True if any `:`-separated variant after the last '/' is "online"
// ("openai/gpt-4o:online", and conservatively "x/y:online:floor").
bool HasOnlineVariant(std::string_view model) {
  const size_t slash = model.rfind('/');
  std::string_view tail =
      slash == std::string_view::npos ? model : model.substr(slash + 1);
  size_t colon = tail.find(':');
  while (colon != std::string_view::npos) {
    tail = tail.substr(colon + 1);
    colon = tail.find(':');
    if (tail.substr(0, colon) == "online") return true;
  }
  return false;
}

// Models whose meaning changes over time without the request changing:
// OpenRouter routers ("openrouter/auto", "openrouter/free", ...), `~` aliases
// ("~anthropic/claude-sonnet-latest") and presets ("@preset/x",
// "model@preset/x"). Prefixes are matched case-insensitively to err on the
// side of bypassing.
bool IsDriftingModel(std::string_view model) {
  return boost::algorithm::istarts_with(model, "openrouter/") ||
         model.starts_with('~') ||
         boost::algorithm::icontains(model, "@preset/");
}

}  // namespace

std::string_view BypassReasonName(BypassReason reason) {
  const auto i = static_cast<size_t>(reason);
  return i < kBypassReasonNames.size() ? kBypassReasonNames[i] : "unknown";
}

std::optional<BypassReason> BypassReasonFromName(std::string_view name) {
  for (size_t i = 0; i < kBypassReasonNames.size(); ++i) {
    if (kBypassReasonNames[i] == name) return static_cast<BypassReason>(i);
  }
  return std::nullopt;
}

std::string_view CacheModeName(CacheMode mode) {
  switch (mode) {
    case CacheMode::kDeterministic:
      return "deterministic";
    case CacheMode::kAlways:
      return "always";
    case CacheMode::kNever:
      return "never";
  }
  return "unknown";
}

std::optional<CacheMode> CacheModeFromName(std::string_view name) {
  for (CacheMode mode :
       {CacheMode::kDeterministic, CacheMode::kAlways, CacheMode::kNever}) {
    if (CacheModeName(mode) == name) return mode;
  }
  return std::nullopt;
}

Decision Decide(const RequestInfo& info, CacheMode mode) {
  if (info.has_debug) return Decision::Bypass(BypassReason::kDebug);
  if (HasOnlineVariant(info.model) || info.has_web_plugin ||
      info.has_web_search_options || info.has_web_search_tool) {
    return Decision::Bypass(BypassReason::kWebSearch);
  }
  if (IsDriftingModel(info.model)) {
    return Decision::Bypass(BypassReason::kDriftingModel);
  }
  // The Responses API's upstream state: the answer depends on more than the
  // body (an earlier response or a conversation), or the client relies on
  // the upstream keeping the response (store, background polling), which a
  // cached answer would not do. KeyBuilder sets these for Responses bodies
  // only.
  if (info.has_previous_response) {
    return Decision::Bypass(BypassReason::kPreviousResponse);
  }
  if (info.store) return Decision::Bypass(BypassReason::kStoreRequested);
  if (info.background) return Decision::Bypass(BypassReason::kBackground);
  if (info.has_stored_prompt) {
    return Decision::Bypass(BypassReason::kStoredPrompt);
  }
  switch (mode) {
    case CacheMode::kAlways:
      return Decision::Cache();
    case CacheMode::kDeterministic:
      // Embeddings are a function of the input: nothing is sampled.
      if (info.endpoint == Endpoint::kEmbeddings) return Decision::Cache();
      if (!info.has_temperature) {
        return Decision::Bypass(BypassReason::kNoTemperature);
      }
      // NaN (temperature not a number) compares unequal: bypass.
      if (!(info.temperature == 0)) {
        return Decision::Bypass(BypassReason::kNonZeroTemperature);
      }
      return Decision::Cache();
    case CacheMode::kNever:
      break;
  }
  // kNever, and any out-of-range mode value: never cache.
  return Decision::Bypass(BypassReason::kModeNever);
}

}  // namespace llmcache
