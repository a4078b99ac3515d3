// Completion request and response headers. See completion_request.h.

#include "completion_request.h"

#include <boost/beast/core/string.hpp>
#include <charconv>

#include "llmcache/key.h"
#include "llmcache/net/prompt_cache.h"
#include "proxy_util.h"

namespace llmcache::net::proxy {

const std::string& ScopeMemo::ScopeOf(std::string_view key) {
  if (!key_ || *key_ != key) {
    if (!key_) key_.emplace();
    key_->assign(key);
    if (key.empty()) {
      scope_.clear();
    } else {
      scope_ = ApiKeyScope(key);
    }
  }
  return scope_;
}

int64_t ClampTtlMs(int64_t requested_ms, int64_t max_ttl_ms) {
  if (max_ttl_ms <= 0) return requested_ms;
  if (requested_ms == 0 || requested_ms > max_ttl_ms) return max_ttl_ms;
  return requested_ms;
}

Status ReadCompletionHeaders(HeaderLookup headers,
                             const CompletionHeaderOptions& options,
                             ScopeMemo* memo, CachedRequest* out) {
  const std::string_view token = options.api_key;
  out->api_key.assign(token);
  if (!options.shared_cache) {
    out->scope = memo->ScopeOf(token.empty() ? options.server_key : token);
  }

  if (std::optional<std::string_view> v = headers("Cache-Control")) {
    Result<proxy_util::CacheDirectives> d = proxy_util::ParseCacheControl(*v);
    if (!d.ok()) return d.status();
    out->skip_lookup = d->no_cache;
    out->no_store = d->no_store;
    out->only_if_cached = d->only_if_cached;
    if (d->max_age_s) out->max_age_ms = *d->max_age_s * 1000;
  } else if (std::optional<std::string_view> p = headers("Pragma")) {
    // HTTP/1.0's no-cache, which counts only without Cache-Control (RFC
    // 9111 5.4).
    Result<proxy_util::CacheDirectives> d = proxy_util::ParseCacheControl(*p);
    out->skip_lookup = d.ok() && d->no_cache;
  }
  if (std::optional<std::string_view> v = headers("X-Cache-TTL")) {
    std::optional<int64_t> ttl = proxy_util::ParseSeconds(*v);
    if (!ttl) {
      return InvalidArgumentError(
          "X-Cache-TTL must be a non-negative integer of seconds (0 = never "
          "expires)");
    }
    out->ttl_ms = ClampTtlMs(*ttl * 1000, options.max_ttl_ms);
  }
  if (std::optional<std::string_view> v = headers("X-Cache-Namespace")) {
    if (!proxy_util::ValidNamespace(*v)) {
      return InvalidArgumentError(
          "X-Cache-Namespace must be 1-128 characters of [A-Za-z0-9._:-]");
    }
    out->ns.assign(*v);
  }
  for (std::string_view name : kPassRequestHeaders) {
    if (std::optional<std::string_view> v = headers(name)) {
      out->headers.push_back(Header{std::string(name), std::string(*v)});
    }
  }
  // Headers that can change the answer go upstream and into the key: two
  // requests that differ in them never share an entry. (The key covers the
  // scope; the scope is never stored.)
  for (std::string_view name : kKeyedRequestHeaders) {
    if (std::optional<std::string_view> v = headers(name)) {
      out->headers.push_back(Header{std::string(name), std::string(*v)});
      out->scope.append("\x1f");
      out->scope.append(name);
      out->scope.push_back('=');
      out->scope.append(*v);
    }
  }
  // Provider prompt caching for this request (never forwarded, not keyed).
  if (std::optional<std::string_view> v = headers("X-LLMCache-Prompt-Cache")) {
    out->prompt_cache = PromptCacheModeFromName(*v);
    if (!out->prompt_cache) {
      return InvalidArgumentError(
          "X-LLMCache-Prompt-Cache must be off or auto");
    }
  }
  return Status();
}

void AppendCacheHeaders(std::string* out, CacheResult result,
                        BypassReason reason, std::string_view key_hex,
                        int64_t age_ms) {
  proxy_util::AppendHeader(out, "X-Cache", CacheResultName(result));
  if (result == CacheResult::kBypass) {
    proxy_util::AppendHeader(out, "X-Cache-Bypass-Reason",
                             BypassReasonName(reason));
  }
  if (!key_hex.empty()) proxy_util::AppendHeader(out, "X-Cache-Key", key_hex);
  if (result == CacheResult::kHit) {
    char num[24];
    const auto r = std::to_chars(num, num + sizeof(num), age_ms / 1000);
    proxy_util::AppendHeader(out, "Age", std::string_view(num, r.ptr - num));
  }
}

proxy_util::HttpError LabelledCompletionFailure(const Status& s,
                                                CacheResult result,
                                                BypassReason reason,
                                                std::string_view key_hex) {
  proxy_util::HttpError e = proxy_util::CompletionFailure(s);
  AppendCacheHeaders(&e.extra_headers, result, reason, key_hex, 0);
  if (result == CacheResult::kMiss) e.extra_headers += "X-Cache-Stored: 0\r\n";
  return e;
}

void AppendTtlHeader(std::string* out, CacheResult result, int64_t ttl_ms) {
  if (result != CacheResult::kMiss || ttl_ms < 0) return;
  proxy_util::AppendHeader(out, "X-Cache-TTL", std::to_string(ttl_ms / 1000));
}

std::optional<std::string_view> AppendAnswerHeaders(std::string* out,
                                                    const CachedResponse& c,
                                                    CacheResult result,
                                                    BypassReason reason,
                                                    std::string_view key_hex) {
  AppendCacheHeaders(out, result, reason, key_hex, c.age_ms);
  if (c.stored) AppendTtlHeader(out, result, c.ttl_ms);  // the leader's
  if (result == CacheResult::kMiss) {
    proxy_util::AppendHeader(out, "X-Cache-Stored", c.stored ? "1" : "0");
  }
  // An upstream error the client already retried (429, 5xx): the SDKs
  // would retry each of those retries again.
  if (c.status >= 400 && c.attempts > 1) {
    proxy_util::AppendHeader(out, "X-Should-Retry", "false");
  }
  return AppendUpstreamHeaders(out, c.headers);
}

std::optional<std::string_view> AppendUpstreamHeaders(
    std::string* out, const std::vector<Header>& upstream) {
  std::optional<std::string_view> content_type;
  for (const Header& h : upstream) {
    if (boost::beast::iequals(h.name, "Content-Type")) {
      content_type = h.value;
      continue;
    }
    for (std::string_view name : kPassResponseHeaders) {
      if (boost::beast::iequals(h.name, name)) {
        proxy_util::AppendHeader(out, name, h.value);
      }
    }
  }
  return content_type;
}

}  // namespace llmcache::net::proxy
