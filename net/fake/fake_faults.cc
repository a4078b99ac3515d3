// The `fake/...` fault selectors and the table of error statuses.

#include "fake_faults.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <system_error>
#include <utility>

#include "fake_models.h"

namespace llmcache::fake::internal {
namespace {

constexpr int kMaxDelayMs = 10 * 60 * 1000;

// Parses all of `s` as a non-negative decimal integer.
std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v < 0) {
    return std::nullopt;
  }
  return v;
}

bool IsErrorStatus(int64_t s) { return s >= 400 && s <= 599; }

constexpr StatusInfo kStatusInfo[] = {
    {400, "Provider returned error", "invalid_request"},
    {401, "User not found.", "authentication"},
    {402, "Insufficient credits. Add more using https://openrouter.ai/credits",
     "payment_required"},
    {403, "Your input was flagged by moderation.", "permission_denied"},
    {404, "No endpoints found that support this request.", "not_found"},
    {408, "Operation timed out. Please try again later.", "timeout"},
    {413, "Payload too large.", "payload_too_large"},
    {422, "Unprocessable request.", "unprocessable"},
    {429, "Rate limit exceeded", "rate_limit_exceeded"},
    {500, "Internal Server Error", "server"},
    {502, "Provider returned error", "provider_unavailable"},
    {503, "No available providers could serve this request.",
     "provider_overloaded"},
    {524, "Provider timed out.", "timeout"},
    {529, "Provider is overloaded.", "provider_overloaded"},
};

}  // namespace

Selector ParseSelector(std::string_view base_model) {
  using Kind = Selector::Kind;
  Selector sel;
  static constexpr std::string_view kPrefix = "fake/";
  if (!base_model.starts_with(kPrefix)) return sel;
  const std::string_view name = base_model.substr(kPrefix.size());
  static constexpr std::pair<std::string_view, Kind> kFixed[] = {
      {"error-200", Kind::kError200},
      {"choice-error", Kind::kChoiceError},
      {"empty", Kind::kEmpty},
      {"tool-call", Kind::kToolCall},
      {"refusal", Kind::kRefusal},
      {"annotations", Kind::kAnnotations},
      {"midstream-error", Kind::kMidstreamError},
      {"cut", Kind::kCut},
      {"reset", Kind::kReset},
      {"hang", Kind::kHang},
      {"newlines", Kind::kNewlines},
      {"not-json", Kind::kNotJson}};
  for (const auto& [n, k] : kFixed) {
    if (name == n) {
      sel.kind = k;
      return sel;
    }
  }
  if (name.starts_with("fault-")) {
    // fault-<status>, or fault-<status>-after-<ms>: the error comes late.
    std::string_view status = name.substr(6);
    std::optional<int64_t> after = 0;
    if (const size_t a = status.find("-after-"); a != std::string_view::npos) {
      after = ParseInt(status.substr(a + 7));
      status = status.substr(0, a);
    }
    auto s = ParseInt(status);
    if (s && after && IsErrorStatus(*s)) {
      sel.kind = Kind::kFault;
      sel.status = static_cast<unsigned>(*s);
      sel.ms = static_cast<int>(std::min<int64_t>(*after, kMaxDelayMs));
    }
  } else if (name.starts_with("flaky-")) {
    // flaky-<status>-<n>, or flaky-<status>-<n>-after-<ms>.
    std::string_view rest = name.substr(6);
    std::optional<int64_t> after = 0;
    if (const size_t a = rest.find("-after-"); a != std::string_view::npos) {
      after = ParseInt(rest.substr(a + 7));
      rest = rest.substr(0, a);
    }
    const size_t dash = rest.find('-');
    if (dash != std::string_view::npos) {
      auto s = ParseInt(rest.substr(0, dash));
      auto n = ParseInt(rest.substr(dash + 1));
      if (s && n && after && IsErrorStatus(*s)) {
        sel.kind = Kind::kFlaky;
        sel.status = static_cast<unsigned>(*s);
        sel.count = *n;
        sel.ms = static_cast<int>(std::min<int64_t>(*after, kMaxDelayMs));
      }
    }
  } else if (name.starts_with("embed-delay-")) {
    auto us = ParseInt(name.substr(12));
    if (us) {
      sel.kind = Kind::kEmbedDelay;
      sel.us = std::min<int64_t>(*us, int64_t{kMaxDelayMs} * 1000);
    }
  } else if (name.starts_with("flood-")) {
    // flood-<mib>, or flood-<mib>-every-<ms>: paced.
    std::string_view mib_text = name.substr(6);
    std::optional<int64_t> every = 0;
    if (const size_t e = mib_text.find("-every-");
        e != std::string_view::npos) {
      every = ParseInt(mib_text.substr(e + 7));
      mib_text = mib_text.substr(0, e);
    }
    auto mib = ParseInt(mib_text);
    if (mib && every && *mib >= 1 && *mib <= 1024) {
      sel.kind = Kind::kFlood;
      sel.count = *mib;
      sel.ms = static_cast<int>(std::min<int64_t>(*every, kMaxDelayMs));
    }
  } else if (name.starts_with("delay-") || name.starts_with("slow-")) {
    const bool delay = name.starts_with("delay-");
    auto ms = ParseInt(name.substr(delay ? 6 : 5));
    if (ms) {
      sel.kind = delay ? Kind::kDelay : Kind::kSlow;
      sel.ms = static_cast<int>(std::min<int64_t>(*ms, kMaxDelayMs));
    }
  }
  return sel;
}

const StatusInfo* FindStatusInfo(unsigned status) {
  for (const StatusInfo& s : kStatusInfo) {
    if (s.status == status) return &s;
  }
  return nullptr;
}

boost::json::object SimpleError(unsigned code, std::string_view message) {
  boost::json::object err;
  err["code"] = code;
  err["message"] = message;
  boost::json::object env;
  env["error"] = std::move(err);
  return env;
}

boost::json::object FaultEnvelope(unsigned status,
                                  std::string_view base_model) {
  const StatusInfo* info = FindStatusInfo(status);
  boost::json::object meta;
  meta["error_type"] = info != nullptr ? info->error_type : "unmapped";
  meta["provider_name"] = ProviderName(base_model);
  boost::json::object err;
  err["code"] = status;
  err["message"] = info != nullptr ? info->message : "Fake fault";
  err["metadata"] = std::move(meta);
  boost::json::object env;
  env["error"] = std::move(err);
  env["user_id"] = "user_fake";
  return env;
}

std::vector<std::pair<std::string, std::string>> ErrorHeaders(
    unsigned status, int64_t now_unix) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (status == 429 || status == 503) headers.emplace_back("Retry-After", "1");
  if (status == 429) {
    headers.emplace_back("X-RateLimit-Limit", "20");
    headers.emplace_back("X-RateLimit-Remaining", "0");
    headers.emplace_back("X-RateLimit-Reset",
                         std::to_string((now_unix + 1) * 1000));
  }
  return headers;
}

}  // namespace llmcache::fake::internal
