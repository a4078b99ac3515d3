// Unit tests of what a completion's HTTP headers mean to the cache, without
// HTTP (net/proxy/src/completion_request.h): request headers into a
// CachedRequest (API key and scope, Cache-Control, X-Cache-TTL under the
// operator's ceiling, X-Cache-Namespace, attribution), the 400 messages, and
// the response's cache headers and passed-through upstream headers.

#include "completion_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/beast/core/string.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/key.h"
#include "proxy_util.h"
#include "testing/status_matchers.h"

namespace llmcache::net::proxy {
namespace {

using ::llmcache::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::IsEmpty;

// Headers as a client sent them; lookups are case-insensitive, the first
// value wins.
class FakeHeaders {
 public:
  FakeHeaders(std::initializer_list<std::pair<std::string, std::string>> h)
      : headers_(h) {}
  std::optional<std::string_view> operator()(std::string_view name) const {
    ++lookups_;
    for (const auto& [n, v] : headers_) {
      if (boost::beast::iequals(n, name)) return std::string_view(v);
    }
    return std::nullopt;
  }
  mutable int lookups_ = 0;

 private:
  std::vector<std::pair<std::string, std::string>> headers_;
};

Result<CachedRequest> Read(const FakeHeaders& h,
                           CompletionHeaderOptions options = {},
                           ScopeMemo* memo = nullptr) {
  ScopeMemo local;
  CachedRequest out;
  Status s = ReadCompletionHeaders(h, options, memo ? memo : &local, &out);
  if (!s.ok()) return s;
  return out;
}

CompletionHeaderOptions Opts(std::string_view server_key,
                             std::string_view api_key = {},
                             bool shared_cache = false,
                             int64_t max_ttl_ms = 0) {
  CompletionHeaderOptions o;
  o.shared_cache = shared_cache;
  o.server_key = server_key;
  o.api_key = api_key;
  o.max_ttl_ms = max_ttl_ms;
  return o;
}

MATCHER_P2(IsHeader, name, value, "") {
  return arg.name == name && arg.value == value;
}

TEST(ProxyCompletionRequestTest, NoHeadersGiveTheDefaults) {
  Result<CachedRequest> r = Read(FakeHeaders{});
  ASSERT_OK(r);
  EXPECT_EQ(r->api_key, "");
  EXPECT_EQ(r->scope, "");
  EXPECT_FALSE(r->skip_lookup);
  EXPECT_FALSE(r->no_store);
  EXPECT_EQ(r->max_age_ms, -1);
  EXPECT_EQ(r->ttl_ms, std::nullopt);
  EXPECT_EQ(r->ns, "");
  EXPECT_THAT(r->headers, IsEmpty());
  EXPECT_EQ(r->body, "");
}

TEST(ProxyCompletionRequestTest, ClientKeyIsForwardedAndScoped) {
  Result<CachedRequest> r = Read(FakeHeaders{}, Opts("sk-server", "sk-client"));
  ASSERT_OK(r);
  EXPECT_EQ(r->api_key, "sk-client");
  EXPECT_EQ(r->scope, ApiKeyScope("sk-client"));
  EXPECT_NE(r->scope, "");
}

// The access check (access.h) resolves Authorization; here it is not read,
// so a header the access check refused can never slip through as a key.
TEST(ProxyCompletionRequestTest, AuthorizationIsNotReadHere) {
  Result<CachedRequest> r = Read(
      FakeHeaders{{"Authorization", "Bearer sk-header"}}, Opts("sk-server"));
  ASSERT_OK(r);
  EXPECT_EQ(r->api_key, "");
  EXPECT_EQ(r->scope, ApiKeyScope("sk-server"));
}

TEST(ProxyCompletionRequestTest, WithoutAKeyTheServerKeysScopeApplies) {
  Result<CachedRequest> r = Read(FakeHeaders{}, Opts("sk-server"));
  ASSERT_OK(r);
  EXPECT_EQ(r->api_key, "");  // the client then uses its own key
  EXPECT_EQ(r->scope, ApiKeyScope("sk-server"));
}

TEST(ProxyCompletionRequestTest, SharedCacheHasNoScope) {
  Result<CachedRequest> r =
      Read(FakeHeaders{}, Opts("s", "k", /*shared_cache=*/true));
  ASSERT_OK(r);
  EXPECT_EQ(r->api_key, "k");
  EXPECT_EQ(r->scope, "");
}

TEST(ProxyCompletionRequestTest, ScopeMemoFollowsTheKey) {
  ScopeMemo memo;
  EXPECT_EQ(memo.ScopeOf(""), "");
  EXPECT_EQ(memo.ScopeOf("a"), ApiKeyScope("a"));
  EXPECT_EQ(memo.ScopeOf("a"), ApiKeyScope("a"));
  EXPECT_EQ(memo.ScopeOf("b"), ApiKeyScope("b"));
  EXPECT_EQ(memo.ScopeOf(""), "");
  EXPECT_EQ(memo.ScopeOf("a"), ApiKeyScope("a"));

  // Across requests of one connection.
  Result<CachedRequest> r1 = Read(FakeHeaders{}, Opts("", "k1"), &memo);
  Result<CachedRequest> r2 = Read(FakeHeaders{}, Opts("", "k2"), &memo);
  Result<CachedRequest> r3 = Read(FakeHeaders{}, Opts("", "k1"), &memo);
  ASSERT_OK(r1);
  ASSERT_OK(r2);
  ASSERT_OK(r3);
  EXPECT_EQ(r1->scope, ApiKeyScope("k1"));
  EXPECT_EQ(r2->scope, ApiKeyScope("k2"));
  EXPECT_EQ(r3->scope, ApiKeyScope("k1"));
}

TEST(ProxyCompletionRequestTest, CacheControl) {
  Result<CachedRequest> r =
      Read(FakeHeaders{{"Cache-Control", "No-Cache, no-store, max-age=30"}});
  ASSERT_OK(r);
  EXPECT_TRUE(r->skip_lookup);
  EXPECT_TRUE(r->no_store);
  EXPECT_EQ(r->max_age_ms, 30'000);

  r = Read(FakeHeaders{{"Cache-Control", "private, max-age=\"0\""}});
  ASSERT_OK(r);
  EXPECT_FALSE(r->skip_lookup);
  EXPECT_FALSE(r->no_store);
  EXPECT_EQ(r->max_age_ms, 0);

  EXPECT_THAT(Read(FakeHeaders{{"Cache-Control", "max-age=-1"}}),
              StatusIs(StatusCode::kInvalidArgument,
                       "Cache-Control max-age must be a non-negative integer "
                       "of seconds"));
}

TEST(ProxyCompletionRequestTest, CacheTtl) {
  Result<CachedRequest> r = Read(FakeHeaders{{"X-Cache-TTL", " 3600 "}});
  ASSERT_OK(r);
  EXPECT_EQ(r->ttl_ms, 3'600'000);
  r = Read(FakeHeaders{{"x-cache-ttl", "0"}});
  ASSERT_OK(r);
  EXPECT_EQ(r->ttl_ms, 0);  // never expires
  for (const char* bad : {"", "-1", "1.5", "1h", "9999999999999"}) {
    Result<CachedRequest> e = Read(FakeHeaders{{"X-Cache-TTL", bad}});
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(e.status().message(),
              "X-Cache-TTL must be a non-negative integer of seconds (0 = "
              "never expires)");
  }
}

TEST(ProxyCompletionRequestTest, ClampTtl) {
  EXPECT_EQ(ClampTtlMs(5'000, 0), 5'000);  // no ceiling
  EXPECT_EQ(ClampTtlMs(0, 0), 0);          // forever, allowed
  EXPECT_EQ(ClampTtlMs(5'000, 60'000), 5'000);
  EXPECT_EQ(ClampTtlMs(60'000, 60'000), 60'000);
  EXPECT_EQ(ClampTtlMs(60'001, 60'000), 60'000);
  EXPECT_EQ(ClampTtlMs(0, 60'000), 60'000);  // forever is not allowed
}

// A client may shorten the operator's TTL, never lengthen it: X-Cache-TTL
// over the ceiling, or 0 (forever) under one, gets the ceiling.
TEST(ProxyCompletionRequestTest, CacheTtlIsCutToTheCeiling) {
  const CompletionHeaderOptions o = Opts("", "", false, 3'600'000);
  Result<CachedRequest> r = Read(FakeHeaders{{"X-Cache-TTL", "60"}}, o);
  ASSERT_OK(r);
  EXPECT_EQ(r->ttl_ms, 60'000);
  r = Read(FakeHeaders{{"X-Cache-TTL", "86400"}}, o);
  ASSERT_OK(r);
  EXPECT_EQ(r->ttl_ms, 3'600'000);
  r = Read(FakeHeaders{{"X-Cache-TTL", "0"}}, o);
  ASSERT_OK(r);
  EXPECT_EQ(r->ttl_ms, 3'600'000);
  r = Read(FakeHeaders{}, o);
  ASSERT_OK(r);
  EXPECT_EQ(r->ttl_ms, std::nullopt);  // the operator's default applies
}

TEST(ProxyCompletionRequestTest, CacheNamespace) {
  Result<CachedRequest> r =
      Read(FakeHeaders{{"X-Cache-Namespace", "team-a:eval_1.2"}});
  ASSERT_OK(r);
  EXPECT_EQ(r->ns, "team-a:eval_1.2");
  for (std::string bad : {std::string(), std::string("a b"), std::string("ä"),
                          std::string(129, 'n')}) {
    Result<CachedRequest> e = Read(FakeHeaders{{"X-Cache-Namespace", bad}});
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_EQ(e.status().message(),
              "X-Cache-Namespace must be 1-128 characters of [A-Za-z0-9._:-]");
  }
}

TEST(ProxyCompletionRequestTest, FirstInvalidHeaderWins) {
  Result<CachedRequest> e = Read(FakeHeaders{{"X-Cache-Namespace", "a b"},
                                             {"X-Cache-TTL", "x"},
                                             {"Cache-Control", "max-age=x"}});
  EXPECT_THAT(e, StatusIs(StatusCode::kInvalidArgument, "Cache-Control"));
  e = Read(FakeHeaders{{"X-Cache-Namespace", "a b"}, {"X-Cache-TTL", "x"}});
  EXPECT_THAT(e, StatusIs(StatusCode::kInvalidArgument, "X-Cache-TTL"));
}

TEST(ProxyCompletionRequestTest, AttributionHeadersArePassedUpstream) {
  Result<CachedRequest> r = Read(FakeHeaders{
      {"x-session-id", "s1"},
      {"X-Title", "My App"},
      {"http-referer", "https://example.com"},
      {"X-OpenRouter-Title", "t"},
      {"X-OpenRouter-Categories", "cli-agent"},
      {"X-Unrelated", "no"},
      {"X-Title", "second value ignored"},
  });
  ASSERT_OK(r);
  // In kPassRequestHeaders' order, under their canonical names.
  EXPECT_THAT(r->headers,
              ElementsAre(IsHeader("HTTP-Referer", "https://example.com"),
                          IsHeader("X-Title", "My App"),
                          IsHeader("X-OpenRouter-Title", "t"),
                          IsHeader("X-OpenRouter-Categories", "cli-agent"),
                          IsHeader("X-Session-Id", "s1")));
}

// HTTP/1.0's Pragma: no-cache counts as Cache-Control: no-cache when there is
// no Cache-Control (RFC 9111 5.4), and only then.
TEST(ProxyCompletionRequestTest, PragmaNoCacheWithoutCacheControl) {
  Result<CachedRequest> pragma = Read({{"Pragma", "no-cache"}});
  ASSERT_OK(pragma);
  EXPECT_TRUE(pragma->skip_lookup);
  Result<CachedRequest> both =
      Read({{"Pragma", "no-cache"}, {"Cache-Control", "max-age=60"}});
  ASSERT_OK(both);
  EXPECT_FALSE(both->skip_lookup);
  EXPECT_EQ(both->max_age_ms, 60000);
  Result<CachedRequest> other = Read({{"Pragma", "x-other"}});
  ASSERT_OK(other);
  EXPECT_FALSE(other->skip_lookup);
}

TEST(ProxyCompletionRequestTest, LeavesTheBodyAlone) {
  ScopeMemo memo;
  CachedRequest out;
  out.body = R"({"model":"m"})";
  ASSERT_OK(ReadCompletionHeaders(FakeHeaders{}, {}, &memo, &out));
  EXPECT_EQ(out.body, R"({"model":"m"})");
}

// ------------------------------------------------------ response headers

TEST(ProxyCompletionResponseTest, HitHeaders) {
  std::string out;
  AppendCacheHeaders(&out, CacheResult::kHit, BypassReason::kNone,
                     std::string(64, 'a'), 12'999);
  EXPECT_EQ(out, "X-Cache: HIT\r\nX-Cache-Key: " + std::string(64, 'a') +
                     "\r\nAge: 12\r\n");
}

TEST(ProxyCompletionResponseTest, MissHeaders) {
  std::string out = "Prior: 1\r\n";
  AppendCacheHeaders(&out, CacheResult::kMiss, BypassReason::kNone, "abc",
                     5'000);
  EXPECT_EQ(out, "Prior: 1\r\nX-Cache: MISS\r\nX-Cache-Key: abc\r\n");
}

TEST(ProxyCompletionResponseTest, BypassHeadersNameTheReason) {
  std::string out;
  AppendCacheHeaders(&out, CacheResult::kBypass,
                     BypassReason::kNonZeroTemperature, "abc", 0);
  EXPECT_EQ(out,
            "X-Cache: BYPASS\r\nX-Cache-Bypass-Reason: non_zero_temperature"
            "\r\nX-Cache-Key: abc\r\n");
  // Not keyed: no X-Cache-Key.
  out.clear();
  AppendCacheHeaders(&out, CacheResult::kBypass, BypassReason::kModeNever, "",
                     0);
  EXPECT_EQ(out, "X-Cache: BYPASS\r\nX-Cache-Bypass-Reason: mode_never\r\n");
}

TEST(ProxyCompletionResponseTest, UpstreamHeadersPassedThrough) {
  const std::vector<Header> upstream = {
      {"content-type", "application/json; charset=utf-8"},
      {"retry-after", "7"},
      {"Set-Cookie", "no"},
      {"x-generation-id", "gen-1"},
      {"X-RATELIMIT-LIMIT", "100"},
      {"X-RateLimit-Remaining", "99"},
      {"X-RateLimit-Reset", "60"},
      {"X-RateLimit-Remaining", "98"},
      {"Server", "upstream"},
  };
  std::string out;
  const std::optional<std::string_view> ct =
      AppendUpstreamHeaders(&out, upstream);
  EXPECT_EQ(ct, "application/json; charset=utf-8");
  EXPECT_EQ(out,
            "Retry-After: 7\r\nX-Generation-Id: gen-1\r\n"
            "X-RateLimit-Limit: 100\r\nX-RateLimit-Remaining: 99\r\n"
            "X-RateLimit-Reset: 60\r\nX-RateLimit-Remaining: 98\r\n");
}

TEST(ProxyCompletionResponseTest, LastContentTypeWinsAndNoneIsNullopt) {
  std::string out;
  EXPECT_EQ(AppendUpstreamHeaders(&out, {}), std::nullopt);
  EXPECT_EQ(AppendUpstreamHeaders(
                &out, {{"Content-Type", "a"}, {"CONTENT-TYPE", "b"}}),
            "b");
  EXPECT_EQ(out, "");
}

}  // namespace
}  // namespace llmcache::net::proxy
