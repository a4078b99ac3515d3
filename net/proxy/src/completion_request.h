// What the HTTP headers of POST /chat/completions mean to the cache, both
// ways, without any HTTP machinery (no Beast I/O):
//   - ReadCompletionHeaders: the request's headers (Cache-Control,
//     X-Cache-TTL, X-Cache-Namespace and the attribution headers passed
//     upstream) and the API key the access check let in (access.h) into a
//     CachedRequest, or the 400 message of an invalid value;
//   - AppendCacheHeaders / AppendUpstreamHeaders: the response's X-Cache,
//     X-Cache-Bypass-Reason, X-Cache-Key and Age lines and the upstream
//     headers passed through.
// proxy.h documents the headers themselves.
//
// Thread safety: free functions; a ScopeMemo belongs to one connection.

#ifndef LLMCACHE_NET_PROXY_SRC_COMPLETION_REQUEST_H_
#define LLMCACHE_NET_PROXY_SRC_COMPLETION_REQUEST_H_

#include <array>
#include <cstdint>
#include <forward_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "llmcache/net/cached_client.h"
#include "llmcache/net/client.h"
#include "llmcache/policy.h"
#include "llmcache/status.h"
#include "proxy_util.h"

namespace llmcache::net::proxy {

// A request's headers by name: the value of the named header (names are
// case-insensitive; repeated lines joined, as FindJoined does), or nullopt
// when it is absent. A borrowed callable
// (like a function_ref): no allocation, valid while the callable lives.
class HeaderLookup {
 public:
  template <typename F, typename = std::enable_if_t<
                            !std::is_same_v<std::decay_t<F>, HeaderLookup>>>
  HeaderLookup(const F& find)  // NOLINT: implicit, like std::function
      : find_(&find), call_([](const void* f, std::string_view name) {
          return std::optional<std::string_view>(
              (*static_cast<const F*>(f))(name));
        }) {}

  std::optional<std::string_view> operator()(std::string_view name) const {
    return call_(find_, name);
  }

 private:
  const void* find_;
  std::optional<std::string_view> (*call_)(const void*, std::string_view);
};

// The value of the request header `name` in `fields` (Beast's; names are
// case-insensitive), or nullopt when it is absent. Repeated lines are one
// value, joined with ", " into a string added to `joined` (RFC 9110 5.3):
// two Cache-Control lines count as one list, and a header that takes one
// value, given twice, is then invalid. The view lives as long as `joined`
// and `fields`.
template <typename Fields>
std::optional<std::string_view> FindJoined(
    const Fields& fields, std::string_view name,
    std::forward_list<std::string>* joined) {
  auto value = [](auto i) {
    return std::string_view(i->value().data(), i->value().size());
  };
  // The common cases first: absent (one lookup), or there once.
  const auto first = fields.find({name.data(), name.size()});
  if (first == fields.end()) return std::nullopt;
  if (fields.count({name.data(), name.size()}) == 1) return value(first);
  auto [it, end] = fields.equal_range({name.data(), name.size()});
  std::string& out = joined->emplace_front(value(it));
  for (++it; it != end; ++it) out.append(", ").append(value(it));
  return out;
}

// Request headers passed upstream (attribution; they never change output).
inline constexpr std::array<std::string_view, 5> kPassRequestHeaders = {
    "HTTP-Referer", "X-Title", "X-OpenRouter-Title", "X-OpenRouter-Categories",
    "X-Session-Id"};
// Request headers that can change the answer: passed upstream and made part
// of the key (the Anthropic beta features a request turns on).
inline constexpr std::array<std::string_view, 2> kKeyedRequestHeaders = {
    "anthropic-beta", "x-anthropic-beta"};
// Upstream response headers passed through to the client.
inline constexpr std::array<std::string_view, 5> kPassResponseHeaders = {
    "Retry-After", "X-Generation-Id", "X-RateLimit-Limit",
    "X-RateLimit-Remaining", "X-RateLimit-Reset"};

// The cache scope of the last API key seen on a connection: clients send the
// same key on every request, so it is hashed once per connection.
class ScopeMemo {
 public:
  // ApiKeyScope(key); "" for an empty key.
  const std::string& ScopeOf(std::string_view key);

 private:
  std::optional<std::string> key_;  // nullopt until the first request
  std::string scope_;
};

struct CompletionHeaderOptions {
  // One cache scope for everyone instead of one per API key.
  bool shared_cache = false;
  // The key used upstream when a request has none (ClientOptions::api_key);
  // its scope is the scope of such requests.
  std::string_view server_key;
  // The request's own upstream key, as the access check resolved it from
  // Authorization (Access::api_key); empty = the server's key.
  std::string_view api_key;
  // Ceiling of X-Cache-TTL in ms (ClampTtlMs); 0 = none.
  int64_t max_ttl_ms = 0;
};

// A client's TTL under the operator's ceiling: `requested_ms` when
// max_ttl_ms is 0 (no ceiling) or it is shorter; else max_ttl_ms (also for
// 0, "forever", which only an operator without a ceiling grants).
int64_t ClampTtlMs(int64_t requested_ms, int64_t max_ttl_ms);

// Fills `out`'s api_key (options.api_key), scope (unless shared_cache: the
// scope of api_key, or of server_key when it is empty), skip_lookup,
// no_store, max_age_ms, ttl_ms (clamped by ClampTtlMs), ns and headers from
// the request's headers, in that order (kKeyedRequestHeaders are also
// appended to the scope); `out->body` is left alone.
// Authorization is not read here: the access check (access.h) has.
// kInvalidArgument with the message of the 400 answer for an invalid
// Cache-Control max-age, X-Cache-TTL, X-Cache-Namespace or
// X-LLMCache-Prompt-Cache (off|auto: out->prompt_cache; `out` is then partly
// filled).
Status ReadCompletionHeaders(HeaderLookup headers,
                             const CompletionHeaderOptions& options,
                             ScopeMemo* memo, CachedRequest* out);

// Appends "X-Cache: HIT|MISS|BYPASS", with BYPASS "X-Cache-Bypass-Reason:
// <BypassReasonName(reason)>", "X-Cache-Key: <key_hex>" unless key_hex is
// empty, and with HIT "Age: <age_ms / 1000>" (header lines ending in
// "\r\n").
void AppendCacheHeaders(std::string* out, CacheResult result,
                        BypassReason reason, std::string_view key_hex,
                        int64_t age_ms);

// The proxy's own answer to a completion that failed with `s`
// (proxy_util::CompletionFailure), labelled like any other: AppendCacheHeaders
// lines, and "X-Cache-Stored: 0" for a miss.
proxy_util::HttpError LabelledCompletionFailure(const Status& s,
                                                CacheResult result,
                                                BypassReason reason,
                                                std::string_view key_hex);

// Appends "X-Cache-TTL: <ttl_ms / 1000>" to a miss whose lifetime is known
// (ttl_ms >= 0).
void AppendTtlHeader(std::string* out, CacheResult result, int64_t ttl_ms);

// The header lines of a whole answer `c` to a completion: AppendCacheHeaders;
// for a miss, X-Cache-TTL (the lifetime the entry got, when stored) and
// whether the answer is now in the cache ("X-Cache-Stored: 1|0"; a stream's
// headers leave before it is stored, so only whole answers say it); then
// AppendUpstreamHeaders, whose Content-Type it returns.
std::optional<std::string_view> AppendAnswerHeaders(std::string* out,
                                                    const CachedResponse& c,
                                                    CacheResult result,
                                                    BypassReason reason,
                                                    std::string_view key_hex);

// Appends the upstream headers named in kPassResponseHeaders (every
// occurrence, under the canonical name) and returns the value of the last
// Content-Type among them (nullopt when there is none). The view points into
// `upstream`.
std::optional<std::string_view> AppendUpstreamHeaders(
    std::string* out, const std::vector<Header>& upstream);

}  // namespace llmcache::net::proxy

#endif  // LLMCACHE_NET_PROXY_SRC_COMPLETION_REQUEST_H_
