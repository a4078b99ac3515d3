// Cacheability policy: names of modes and bypass reasons, and the decision.

#include "llmcache/policy.h"

#include <array>
#include <cstddef>
#include <string_view>

namespace llmcache {
namespace {

// Indexed by BypassReason value. Persisted in statistics: never change.
constexpr std::array<std::string_view,
                     static_cast<size_t>(BypassReason::kCount)>
    kReasonNames = {
        "none",       "no_temperature", "non_zero_temperature",
        "web_search", "drifting_model", "debug",
        "mode_never",
};

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

bool ContainsIgnoreCase(std::string_view s, std::string_view needle) {
  for (size_t i = 0; i + needle.size() <= s.size(); ++i) {
    if (StartsWithIgnoreCase(s.substr(i), needle)) return true;
  }
  return false;
}

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
  return StartsWithIgnoreCase(model, "openrouter/") ||
         (!model.empty() && model.front() == '~') ||
         ContainsIgnoreCase(model, "@preset/");
}

}  // namespace

std::string_view BypassReasonName(BypassReason reason) {
  const auto i = static_cast<size_t>(reason);
  return i < kReasonNames.size() ? kReasonNames[i] : "unknown";
}

std::optional<BypassReason> BypassReasonFromName(std::string_view name) {
  for (size_t i = 0; i < kReasonNames.size(); ++i) {
    if (kReasonNames[i] == name) return static_cast<BypassReason>(i);
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
  switch (mode) {
    case CacheMode::kAlways:
      return Decision::Cache();
    case CacheMode::kDeterministic:
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
