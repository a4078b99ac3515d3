// Who may use the proxy, and how much of the machine it may take:
//   - the access rules without HTTP (net/proxy/src/access.h): Host (DNS
//     rebinding), Origin and Sec-Fetch-Site (web pages), Authorization
//     schemes, the client token, CORS headers;
//   - the same over real loopback sockets, in front of the fake OpenRouter:
//     a cross-origin "simple" request, a hostile page asking for a cached
//     answer, Basic credentials, a rebinding Host, the client token — each
//     refused before anything is looked up or forwarded;
//   - the operator's TTL ceiling, read back from the stored entry;
//   - the open-file limit: connections capped below it get 503 and the
//     server keeps serving; out of descriptors, accept answers 503 instead
//     of leaving clients hanging, without spinning.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "access.h"
#include "fake_openrouter.h"
#include "llmcache/cache.h"
#include "llmcache/clock.h"
#include "llmcache/key.h"
#include "llmcache/net/proxy.h"
#include "testing/http_client.h"
#include "testing/proxy_fixture.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

namespace llmcache::net::proxy {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using ::llmcache::fake::FakeOpenRouter;
using ::llmcache::fake::FakeOptions;
using ::llmcache::testing::HttpConnection;
using ::llmcache::testing::HttpGet;
using ::llmcache::testing::HttpSend;
using ::llmcache::testing::WaitFor;
using ::testing::HasSubstr;
using Reply = ::llmcache::testing::HttpReply;
using Headers = ::llmcache::testing::HttpHeaders;
using metrics::Route;
using namespace std::chrono_literals;

// ------------------------------------------------------------ access rules

AccessPolicy Policy(const std::function<void(ProxyOptions&)>& tweak = nullptr) {
  ProxyOptions o;
  if (tweak) tweak(o);
  Result<AccessPolicy> p = MakeAccessPolicy(o);
  EXPECT_OK(p);
  return p.ok() ? *p : AccessPolicy();
}

AccessRequest Req(Route route, std::optional<std::string_view> host =
                                   std::string_view("127.0.0.1:8080")) {
  AccessRequest r;
  r.route = route;
  r.method = route == Route::kChatCompletions ? "POST" : "GET";
  r.version = 11;
  r.host = host;
  return r;
}

// The status of a refusal, or 0 when the request is let in.
int StatusOf(const std::variant<proxy_util::HttpError, Access>& v) {
  if (const auto* e = std::get_if<proxy_util::HttpError>(&v)) return e->status;
  return 0;
}

TEST(NormalizeOriginTest, SchemeHostAndPortOnly) {
  EXPECT_EQ(NormalizeOrigin("http://localhost:3000"), "http://localhost:3000");
  EXPECT_EQ(NormalizeOrigin("HTTPS://App.Example.COM"),
            "https://app.example.com");
  EXPECT_EQ(NormalizeOrigin("http://a.example:80"), "http://a.example");
  EXPECT_EQ(NormalizeOrigin("https://a.example:443/"), "https://a.example");
  EXPECT_EQ(NormalizeOrigin("https://a.example:80"), "https://a.example:80");
  EXPECT_EQ(NormalizeOrigin("http://[0:0::1]:8080"), "http://[::1]:8080");
  EXPECT_EQ(NormalizeOrigin("chrome-extension://abcdef"),
            "chrome-extension://abcdef");
  for (const char* bad :
       {"", "null", "localhost:3000", "http://", "http://a.example/path",
        "http://a.example?x=1", "http://user@a.example", "http://a.example:x",
        "http://a.example:99999", "http://a b", "://a.example",
        "1http://a.example"}) {
    EXPECT_EQ(NormalizeOrigin(bad), std::nullopt) << bad;
  }
}

TEST(AccessPolicyTest, BadSettingsAreInvalidArguments) {
  ProxyOptions o;
  o.allow_origins = {"http://ok.example", "http://bad.example/path"};
  Result<AccessPolicy> p = MakeAccessPolicy(o);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(p.status().message()),
              HasSubstr("http://bad.example/path"));
  o.allow_origins = {"null"};
  EXPECT_FALSE(MakeAccessPolicy(o).ok());
  o.allow_origins = {};
  o.allow_hosts = {"proxy.internal:8080"};
  p = MakeAccessPolicy(o);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()),
              HasSubstr("proxy.internal:8080"));
  o.allow_hosts = {"proxy.internal", "10.0.0.7", "fd00::7", "[fd00::8]", "*"};
  EXPECT_OK(MakeAccessPolicy(o));
}

TEST(CheckAccessTest, HostMustNameTheProxy) {
  const AccessPolicy p = Policy();
  for (const char* ok : {"127.0.0.1", "127.0.0.1:8080", "localhost",
                         "LOCALHOST:1234", "[::1]:8080", "[0:0::1]"}) {
    EXPECT_EQ(StatusOf(CheckAccess(p, Req(Route::kHealthz, ok))), 0) << ok;
  }
  // A DNS-rebinding page reaches the proxy under its own name.
  for (const char* refused : {"evil.example", "evil.example:8080", "127.0.0.2",
                              "10.0.0.7:8080", "localhost.evil.example"}) {
    EXPECT_EQ(StatusOf(CheckAccess(p, Req(Route::kChatCompletions, refused))),
              403)
        << refused;
    EXPECT_EQ(StatusOf(CheckAccess(p, Req(Route::kHealthz, refused))), 403)
        << refused;
  }
  for (const char* malformed : {"", "a:b:c", "[::1", "a b", "host:99999"}) {
    EXPECT_EQ(StatusOf(CheckAccess(p, Req(Route::kHealthz, malformed))), 400)
        << malformed;
  }
}

TEST(CheckAccessTest, MissingOrRepeatedHost) {
  const AccessPolicy p = Policy();
  AccessRequest r = Req(Route::kHealthz, std::nullopt);
  EXPECT_EQ(StatusOf(CheckAccess(p, r)), 400);
  r.version = 10;  // HTTP/1.0 has no Host requirement
  EXPECT_EQ(StatusOf(CheckAccess(p, r)), 0);
  r = Req(Route::kHealthz);
  r.repeated = "Host";
  EXPECT_EQ(StatusOf(CheckAccess(p, r)), 400);
}

// An absolute-form target's authority is checked as a Host is, and so is
// the Host header beside it.
TEST(CheckAccessTest, AnAbsoluteFormAuthorityIsCheckedAsAHost) {
  const AccessPolicy p = Policy();
  AccessRequest r = Req(Route::kChatCompletions);
  r.target_authority = "localhost:8080";
  EXPECT_EQ(StatusOf(CheckAccess(p, r)), 0);
  r.target_authority = "evil.example";
  EXPECT_EQ(StatusOf(CheckAccess(p, r)), 403);
  r.target_authority = "user@localhost";
  EXPECT_EQ(StatusOf(CheckAccess(p, r)), 400);
  r = Req(Route::kChatCompletions, "evil.example");
  r.target_authority = "127.0.0.1";
  EXPECT_EQ(StatusOf(CheckAccess(p, r)), 403);
  r = Req(Route::kChatCompletions, std::nullopt);  // RFC 9112 3.2: still 400
  r.target_authority = "127.0.0.1";
  EXPECT_EQ(StatusOf(CheckAccess(p, r)), 400);
}

// A second line of a credential header would be ignored (the first wins):
// refused instead, on every route.
TEST(CheckAccessTest, RepeatedCredentialHeadersAre400) {
  const AccessPolicy p = Policy();
  for (std::string_view name :
       {"Authorization", "X-Api-Key", "X-Llmcache-Token"}) {
    for (Route route : {Route::kChatCompletions, Route::kHealthz, Route::kAdmin,
                        Route::kMessages}) {
      AccessRequest r = Req(route);
      r.repeated = name;
      const auto checked = CheckAccess(p, r);
      ASSERT_EQ(StatusOf(checked), 400) << name;
      EXPECT_EQ(std::get<proxy_util::HttpError>(checked).message,
                "more than one " + std::string(name) + " header");
    }
  }
}

TEST(CheckAccessTest, AllowedHostsAndWildcardListening) {
  const AccessPolicy named = Policy([](ProxyOptions& o) {
    o.host = "10.0.0.7";
    o.allow_hosts = {"Proxy.Internal", "fd00::8"};
  });
  for (const char* ok :
       {"10.0.0.7:8080", "proxy.internal", "[fd00::8]:1", "localhost:8080"}) {
    EXPECT_EQ(StatusOf(CheckAccess(named, Req(Route::kHealthz, ok))), 0) << ok;
  }
  EXPECT_EQ(StatusOf(CheckAccess(named, Req(Route::kHealthz, "10.0.0.8"))),
            403);
  // Listening on every address: any IP literal, but names only if allowed.
  const AccessPolicy wildcard =
      Policy([](ProxyOptions& o) { o.host = "0.0.0.0"; });
  for (const char* ok : {"192.168.1.20:8080", "10.1.2.3", "[fe80::1]:8080"}) {
    EXPECT_EQ(StatusOf(CheckAccess(wildcard, Req(Route::kHealthz, ok))), 0)
        << ok;
  }
  EXPECT_EQ(
      StatusOf(CheckAccess(wildcard, Req(Route::kHealthz, "evil.example"))),
      403);
  const AccessPolicy any =
      Policy([](ProxyOptions& o) { o.allow_hosts = {"*"}; });
  EXPECT_EQ(
      StatusOf(CheckAccess(any, Req(Route::kHealthz, "whatever.example"))), 0);
}

TEST(CheckAccessTest, OriginsMustBeAllowed) {
  const AccessPolicy none = Policy();
  AccessRequest r = Req(Route::kChatCompletions);
  r.origin = "http://evil.example";
  // Every route: a hostile page must not spend credits, read a cached
  // answer, or the statistics.
  for (Route route :
       {Route::kChatCompletions, Route::kModels, Route::kStats, Route::kMetrics,
        Route::kHealthz, Route::kAdmin, Route::kOther}) {
    r.route = route;
    EXPECT_EQ(StatusOf(CheckAccess(none, r)), 403) << metrics::RouteName(route);
  }
  r.route = Route::kChatCompletions;
  r.origin = "null";  // sandboxed frames, file:// pages
  EXPECT_EQ(StatusOf(CheckAccess(none, r)), 403);

  const AccessPolicy app = Policy([](ProxyOptions& o) {
    o.allow_origins = {"http://localhost:3000", "https://app.example"};
  });
  r.origin = "http://localhost:3000";
  auto v = CheckAccess(app, r);
  ASSERT_EQ(StatusOf(v), 0);
  EXPECT_EQ(std::get<Access>(v).cors_origin, "http://localhost:3000");
  EXPECT_FALSE(std::get<Access>(v).preflight);
  r.origin = "https://app.example:443";
  EXPECT_EQ(StatusOf(CheckAccess(app, r)), 0);
  for (const char* refused :
       {"http://localhost:3001", "https://localhost:3000", "http://app.example",
        "https://app.example.evil.example", "null"}) {
    r.origin = refused;
    EXPECT_EQ(StatusOf(CheckAccess(app, r)), 403) << refused;
  }
  const AccessPolicy any =
      Policy([](ProxyOptions& o) { o.allow_origins = {"*"}; });
  r.origin = "https://anything.example";
  EXPECT_EQ(StatusOf(CheckAccess(any, r)), 0);
}

TEST(CheckAccessTest, CrossSiteFetchesWithoutOriginAreRefused) {
  const AccessPolicy p = Policy();
  AccessRequest r = Req(Route::kModels);
  for (const char* site : {"cross-site", "same-site", "Cross-Site"}) {
    r.sec_fetch_site = site;
    EXPECT_EQ(StatusOf(CheckAccess(p, r)), 403) << site;
  }
  for (const char* site : {"same-origin", "none"}) {
    r.sec_fetch_site = site;
    EXPECT_EQ(StatusOf(CheckAccess(p, r)), 0) << site;
  }
}

TEST(CheckAccessTest, PreflightOfAnAllowedOriginNeedsNoCredentials) {
  const AccessPolicy p = Policy([](ProxyOptions& o) {
    o.allow_origins = {"http://localhost:3000"};
    o.client_token = "proxy-token";
  });
  AccessRequest r = Req(Route::kChatCompletions);
  r.method = "OPTIONS";
  r.origin = "http://localhost:3000";
  r.access_control_request_method = "POST";
  auto v = CheckAccess(p, r);
  ASSERT_EQ(StatusOf(v), 0);
  EXPECT_TRUE(std::get<Access>(v).preflight);
  r.origin = "http://evil.example";
  EXPECT_EQ(StatusOf(CheckAccess(p, r)), 403);
}

TEST(CheckAccessTest, OnlyBearerCredentialsAreAccepted) {
  const AccessPolicy p = Policy();
  AccessRequest r = Req(Route::kChatCompletions);
  r.authorization = "Bearer sk-client";
  auto v = CheckAccess(p, r);
  ASSERT_EQ(StatusOf(v), 0);
  EXPECT_EQ(std::get<Access>(v).api_key, "sk-client");
  r.authorization = std::nullopt;  // no key: the server's
  v = CheckAccess(p, r);
  ASSERT_EQ(StatusOf(v), 0);
  EXPECT_EQ(std::get<Access>(v).api_key, "");
  for (const char* bad : {"Basic dXNlcjpwYXNz", "Digest username=\"u\"",
                          "sk-bare-token", "Bearer", "Bearer  ", ""}) {
    r.authorization = bad;
    r.route = Route::kChatCompletions;
    const auto e = CheckAccess(p, r);
    ASSERT_EQ(StatusOf(e), 401) << bad;
    const auto& error = std::get<proxy_util::HttpError>(e);
    EXPECT_EQ(error.type, "authentication_error");
    EXPECT_THAT(error.extra_headers, HasSubstr("WWW-Authenticate: Bearer"));
    r.route = Route::kModels;
    EXPECT_EQ(StatusOf(CheckAccess(p, r)), 401) << bad;
    // Routes that forward nothing do not care without a client token.
    r.route = Route::kHealthz;
    EXPECT_EQ(StatusOf(CheckAccess(p, r)), 0) << bad;
    r.route = Route::kStats;
    EXPECT_EQ(StatusOf(CheckAccess(p, r)), 0) << bad;
  }
}

TEST(CheckAccessTest, ClientToken) {
  const AccessPolicy p =
      Policy([](ProxyOptions& o) { o.client_token = "proxy-token"; });
  AccessRequest r = Req(Route::kChatCompletions);
  EXPECT_EQ(StatusOf(CheckAccess(p, r)), 401);  // nothing
  r.authorization = "Bearer sk-client";         // a key, but no token
  EXPECT_EQ(StatusOf(CheckAccess(p, r)), 401);
  // The token in its own header; the client's key is forwarded.
  r.token = "proxy-token";
  auto v = CheckAccess(p, r);
  ASSERT_EQ(StatusOf(v), 0);
  EXPECT_EQ(std::get<Access>(v).api_key, "sk-client");
  r.authorization = std::nullopt;  // ... or the server's key
  v = CheckAccess(p, r);
  ASSERT_EQ(StatusOf(v), 0);
  EXPECT_EQ(std::get<Access>(v).api_key, "");
  r.token = "proxy-tokeN";
  EXPECT_EQ(StatusOf(CheckAccess(p, r)), 401);
  r.token = "";
  EXPECT_EQ(StatusOf(CheckAccess(p, r)), 401);
  // The token as the Bearer credential: the server's key upstream (the
  // token itself is never forwarded as a key).
  r.token = std::nullopt;
  r.authorization = "Bearer proxy-token";
  v = CheckAccess(p, r);
  ASSERT_EQ(StatusOf(v), 0);
  EXPECT_EQ(std::get<Access>(v).api_key, "");
  r.token = "proxy-token";
  v = CheckAccess(p, r);
  ASSERT_EQ(StatusOf(v), 0);
  EXPECT_EQ(std::get<Access>(v).api_key, "");
  r.token = std::nullopt;
  r.authorization = "Basic cHJveHktdG9rZW4=";
  EXPECT_EQ(StatusOf(CheckAccess(p, r)), 401);
  // /stats and unknown paths need it; /healthz, /metrics and /admin/* not.
  r.authorization = std::nullopt;
  for (Route route : {Route::kModels, Route::kStats, Route::kOther}) {
    r.route = route;
    EXPECT_EQ(StatusOf(CheckAccess(p, r)), 401) << metrics::RouteName(route);
  }
  for (Route route : {Route::kHealthz, Route::kMetrics, Route::kAdmin}) {
    r.route = route;
    EXPECT_EQ(StatusOf(CheckAccess(p, r)), 0) << metrics::RouteName(route);
  }
}

TEST(CheckAccessTest, XApiKeyIsTheBearerOnMessagesOnly) {
  // Without a client token: the Anthropic SDK's key is forwarded.
  const AccessPolicy open = Policy();
  AccessRequest r = Req(Route::kMessages);
  r.method = "POST";
  r.x_api_key = " sk-ant-client ";
  auto v = CheckAccess(open, r);
  ASSERT_EQ(StatusOf(v), 0);
  EXPECT_EQ(std::get<Access>(v).api_key, "sk-ant-client");
  r.authorization = "Bearer sk-from-authorization";  // Authorization wins
  v = CheckAccess(open, r);
  ASSERT_EQ(StatusOf(v), 0);
  EXPECT_EQ(std::get<Access>(v).api_key, "sk-from-authorization");
  r.authorization = std::nullopt;
  r.route = Route::kChatCompletions;  // elsewhere it is not a credential
  v = CheckAccess(open, r);
  ASSERT_EQ(StatusOf(v), 0);
  EXPECT_EQ(std::get<Access>(v).api_key, "");

  // With a client token: x-api-key may carry the token (the server's key is
  // used, the token never forwarded), or the client's key beside
  // X-Llmcache-Token; another value alone is refused.
  const AccessPolicy guarded =
      Policy([](ProxyOptions& o) { o.client_token = "proxy-token"; });
  r.route = Route::kMessages;
  r.x_api_key = "proxy-token";
  v = CheckAccess(guarded, r);
  ASSERT_EQ(StatusOf(v), 0);
  EXPECT_EQ(std::get<Access>(v).api_key, "");
  r.x_api_key = "sk-ant-client";
  EXPECT_EQ(StatusOf(CheckAccess(guarded, r)), 401);
  r.token = "proxy-token";
  v = CheckAccess(guarded, r);
  ASSERT_EQ(StatusOf(v), 0);
  EXPECT_EQ(std::get<Access>(v).api_key, "sk-ant-client");
  r.token = std::nullopt;
  r.route = Route::kChatCompletions;
  r.x_api_key = "proxy-token";
  EXPECT_EQ(StatusOf(CheckAccess(guarded, r)), 401);
}

TEST(CorsHeadersTest, AllowedOriginAndPreflight) {
  std::string out;
  AppendCorsHeaders(&out, "");
  EXPECT_EQ(out, "");
  AppendCorsHeaders(&out, "http://localhost:3000");
  EXPECT_THAT(
      out, HasSubstr("Access-Control-Allow-Origin: http://localhost:3000\r\n"));
  EXPECT_THAT(out, HasSubstr("Vary: Origin\r\n"));
  EXPECT_THAT(out, HasSubstr("Access-Control-Expose-Headers: X-Cache,"));
  out.clear();
  AppendPreflightHeaders(&out, "http://localhost:3000",
                         "authorization, content-type, x-stainless-os");
  EXPECT_THAT(out, HasSubstr("Access-Control-Allow-Methods: GET, POST, "
                             "OPTIONS\r\n"));
  EXPECT_THAT(out, HasSubstr("Access-Control-Allow-Headers: authorization, "
                             "content-type, x-stainless-os\r\n"));
  EXPECT_THAT(out, HasSubstr("Access-Control-Max-Age: 600\r\n"));
  out.clear();
  // Anything that is not a list of header names is not echoed.
  AppendPreflightHeaders(&out, "http://localhost:3000", "a;b=\"c\"");
  EXPECT_THAT(out, HasSubstr("Access-Control-Allow-Headers: Authorization, "
                             "Content-Type,"));
}

// ------------------------------------------------------- over the network

std::string Body(const std::string& model, const std::string& text = "hi") {
  return R"({"model":")" + model +
         R"(","temperature":0,"messages":[{"role":"user","content":")" + text +
         R"("}]})";
}

void ExpectError(const Reply& r, int status, const std::string& type) {
  EXPECT_EQ(r.status, status) << r.body << r.error;
  boost::system::error_code ec;
  const json::value v = json::parse(r.body, ec);
  ASSERT_FALSE(ec) << r.body;
  EXPECT_EQ(v.at("error").at("type").as_string(), type) << r.body;
  EXPECT_EQ(v.at("error").at("code").to_number<int>(), status);
}

class ProxySecurityTest : public ::llmcache::testing::ProxyFixture {
 protected:
  void SetUp() override {
    StartFake();
    if (!HasFatalFailure()) Restart();
  }

  // (Re)starts the proxy, with the server's key "sk-SERVER" unless `tweak`
  // changes it, on a persistent cache (memory when `memory`).
  void Restart(const std::function<void(ProxyOptions&)>& tweak = nullptr,
               bool memory = false) {
    CacheOptions co;
    if (!memory) co.path = dir_.Sub("db");
    co.clock = &clock_;
    ProxyOptions o = BaseProxyOptions(2, "sk-SERVER");
    o.clock = &clock_;
    if (tweak) tweak(o);
    StartProxy(std::move(co), std::move(o));
  }

  Reply Post(const std::string& body, const Headers& headers,
             const std::string& target = "/v1/chat/completions") {
    return HttpSend(port_, "POST", target, body, headers);
  }

  llmcache::testing::TempDir dir_;
  FakeClock clock_{1'700'000'000'000};
};

// The issue's attack: a page's cross-origin "simple" request (no
// preflight) would be forwarded with the server's key.
TEST_F(ProxySecurityTest, CrossOriginSimpleRequestIsRefusedBeforeForwarding) {
  const uint64_t before = fake_->requests();
  const Reply r = Post(Body("m/a"), {{"Content-Type", "text/plain"},
                                     {"Origin", "http://evil.example"}});
  ExpectError(r, 403, "permission_error");
  EXPECT_FALSE(r.has_header("Access-Control-Allow-Origin"));
  EXPECT_EQ(fake_->completions(), 0u);
  EXPECT_EQ(fake_->requests(), before);
  // Also with the page's own (Bearer) key, and for /models.
  ExpectError(Post(Body("m/a"), {{"Origin", "http://evil.example"},
                                 {"Authorization", "Bearer sk-page"}}),
              403, "permission_error");
  ExpectError(HttpGet(port_, "/v1/models", {{"Origin", "http://evil.example"}}),
              403, "permission_error");
  EXPECT_EQ(fake_->requests(), before);
  // Without an Origin (an SDK, curl) it works as before.
  const Reply sdk = Post(Body("m/a"), {});
  EXPECT_EQ(sdk.status, 200) << sdk.body;
  EXPECT_EQ(fake_->last_authorization(), "Bearer sk-SERVER");
}

// A cached answer may hold another user's data: a hostile page gets no hit.
TEST_F(ProxySecurityTest, HitsAreNotServedToAHostilePage) {
  ASSERT_EQ(Post(Body("m/secret"), {}).header("x-cache"), "MISS");
  ASSERT_EQ(Post(Body("m/secret"), {}).header("x-cache"), "HIT");
  const Reply r = Post(Body("m/secret"), {{"Origin", "http://evil.example"},
                                          {"Content-Type", "text/plain"}});
  ExpectError(r, 403, "permission_error");
  EXPECT_FALSE(r.has_header("X-Cache"));
  EXPECT_EQ(r.body.find("choices"), std::string::npos);
  // Nor a no-cors request without an Origin from a cross-site page.
  ExpectError(HttpGet(port_, "/stats", {{"Sec-Fetch-Site", "cross-site"}}), 403,
              "permission_error");
  EXPECT_EQ(proxy_->counters().hits, 1u);
}

TEST_F(ProxySecurityTest, AllowedOriginGetsCorsAndItsPreflight) {
  Restart([](ProxyOptions& o) { o.allow_origins = {"http://localhost:3000"}; });
  const Reply pre = HttpSend(
      port_, "OPTIONS", "/v1/chat/completions", "",
      {{"Origin", "http://localhost:3000"},
       {"Access-Control-Request-Method", "POST"},
       {"Access-Control-Request-Headers", "authorization, content-type"}});
  EXPECT_EQ(pre.status, 204) << pre.body << pre.error;
  EXPECT_EQ(pre.header("access-control-allow-origin"), "http://localhost:3000");
  EXPECT_EQ(pre.header("access-control-allow-headers"),
            "authorization, content-type");
  EXPECT_THAT(pre.header("access-control-allow-methods"), HasSubstr("POST"));
  EXPECT_EQ(pre.header("vary"), "Origin");
  const Reply r = Post(Body("m/a"), {{"Origin", "http://localhost:3000"},
                                     {"Authorization", "Bearer sk-page"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-cache"), "MISS");
  EXPECT_EQ(r.header("access-control-allow-origin"), "http://localhost:3000");
  EXPECT_THAT(r.header("access-control-expose-headers"), HasSubstr("X-Cache"));
  EXPECT_EQ(fake_->last_authorization(), "Bearer sk-page");
  // A stream's head carries it too.
  const Reply s = Post(
      R"({"model":"m/s","temperature":0,"stream":true,"messages":[{"role":"user","content":"x"}]})",
      {{"Origin", "http://localhost:3000"}});
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_EQ(s.header("content-type"), "text/event-stream");
  EXPECT_EQ(s.header("access-control-allow-origin"), "http://localhost:3000");
  // Another origin, and its preflight, are refused.
  const Reply other = HttpSend(port_, "OPTIONS", "/v1/chat/completions", "",
                               {{"Origin", "http://localhost:3001"},
                                {"Access-Control-Request-Method", "POST"}});
  ExpectError(other, 403, "permission_error");
  EXPECT_FALSE(other.has_header("access-control-allow-origin"));
  EXPECT_EQ(fake_->completions(), 2u);
}

// A body over the limit announced by its Content-Length is refused before it
// is read, after the access check: an allowed page reads the 413 (CORS
// headers; it saw "Failed to fetch"), a hostile one gets its 403.
TEST_F(ProxySecurityTest, ATooLargeBodyIsA413AnAllowedPageCanRead) {
  Restart([](ProxyOptions& o) {
    o.allow_origins = {"http://localhost:3000"};
    o.max_body_bytes = 1024;
  });
  for (const char* origin : {"http://localhost:3000", "http://evil.example"}) {
    HttpConnection conn(port_);
    ASSERT_TRUE(conn.WriteRaw(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Origin: " +
        std::string(origin) +
        "\r\nAuthorization: Bearer sk-page\r\n"
        "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"));
    const Reply r = conn.Read();
    if (std::string_view(origin) == "http://localhost:3000") {
      ExpectError(r, 413, "request_too_large");
      EXPECT_EQ(r.header("access-control-allow-origin"), origin);
    } else {
      ExpectError(r, 403, "permission_error");
      EXPECT_FALSE(r.has_header("access-control-allow-origin"));
    }
    EXPECT_EQ(r.header("connection"), "close");
  }
  EXPECT_EQ(fake_->completions(), 0u);
}

// The issue: `Authorization: Basic ...` was treated as keyless and got the
// server's key.
TEST_F(ProxySecurityTest, NonBearerAuthorizationIs401AndNeverGetsTheServerKey) {
  const uint64_t before = fake_->requests();
  for (const char* auth :
       {"Basic dXNlcjpwYXNz", "sk-bare", "Bearer ", "Digest u=1"}) {
    const Reply r = Post(Body("m/a"), {{"Authorization", auth}});
    ExpectError(r, 401, "authentication_error");
    EXPECT_EQ(r.header("www-authenticate"), "Bearer") << auth;
    ExpectError(HttpGet(port_, "/v1/models", {{"Authorization", auth}}), 401,
                "authentication_error");
  }
  EXPECT_EQ(fake_->requests(), before);
  // The connection survives a refusal of a request it sent whole.
  HttpConnection conn(port_);
  EXPECT_EQ(conn.Send("POST", "/v1/chat/completions", Body("m/a"),
                      {{"Authorization", "Basic eDp5"}})
                .status,
            401);
  EXPECT_EQ(conn.Send("GET", "/healthz").status, 200);
}

TEST_F(ProxySecurityTest, DnsRebindingHostIsRefused) {
  const uint64_t before = fake_->requests();
  const std::string port = std::to_string(port_);
  const Reply r = Post(Body("m/a"), {{"Host", "rebind.evil.example:" + port}});
  ExpectError(r, 403, "permission_error");
  ExpectError(HttpGet(port_, "/stats", {{"Host", "rebind.evil.example"}}), 403,
              "permission_error");
  EXPECT_EQ(fake_->requests(), before);
  EXPECT_EQ(Post(Body("m/a"), {{"Host", "localhost:" + port}}).status, 200);
  EXPECT_EQ(Post(Body("m/a"), {{"Host", "127.0.0.1:" + port}}).status, 200);
  // No Host at all on HTTP/1.1.
  HttpConnection conn(port_);
  ASSERT_TRUE(conn.WriteRaw("GET /healthz HTTP/1.1\r\n\r\n"));
  ExpectError(conn.Read(), 400, "invalid_request_error");
  // An allowed name.
  Restart([](ProxyOptions& o) { o.allow_hosts = {"llmcache.internal"}; });
  EXPECT_EQ(
      HttpGet(port_, "/healthz", {{"Host", "llmcache.internal:8080"}}).status,
      200);
}

// RFC 9112 3.2.2: a server must accept the absolute form of a target.
TEST_F(ProxySecurityTest, AbsoluteFormTargetsAreRoutedAndChecked) {
  const std::string origin = "http://127.0.0.1:" + std::to_string(port_);
  const Reply miss = ::llmcache::testing::HttpPost(
      port_, origin + "/v1/chat/completions", Body("m/abs"), {});
  ASSERT_EQ(miss.status, 200) << miss.body;
  EXPECT_EQ(miss.header("x-cache"), "MISS");
  EXPECT_EQ(Post(Body("m/abs"), {}).header("x-cache"), "HIT");
  EXPECT_EQ(HttpGet(port_, "HTTP://LOCALHOST/healthz?x=1").status, 200);
  EXPECT_EQ(HttpGet(port_, origin).status, HttpGet(port_, "/").status);
  const uint64_t before = fake_->requests();
  ExpectError(::llmcache::testing::HttpPost(
                  port_, "http://rebind.evil.example/v1/chat/completions",
                  Body("m/evil"), {}),
              403, "permission_error");
  EXPECT_EQ(fake_->requests(), before);
}

TEST_F(ProxySecurityTest, RefusedBodiesAreNotRead) {
  const uint64_t before = fake_->requests();
  // A refused request that announced a body gets its answer without a 100
  // Continue, and the connection is closed (its body is never read).
  HttpConnection conn(port_);
  const std::string body = Body("m/a");
  ASSERT_TRUE(
      conn.WriteRaw("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Origin: http://evil.example\r\nExpect: 100-continue\r\n"
                    "Content-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n"));
  const Reply r = conn.Read();
  ExpectError(r, 403, "permission_error");
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_EQ(fake_->requests(), before);
}

TEST_F(ProxySecurityTest, ClientToken) {
  Restart([](ProxyOptions& o) { o.client_token = "proxy-token"; });
  const uint64_t before = fake_->requests();
  ExpectError(Post(Body("m/a"), {}), 401, "authentication_error");
  ExpectError(Post(Body("m/a"), {{"Authorization", "Bearer sk-client"}}), 401,
              "authentication_error");
  ExpectError(Post(Body("m/a"), {{"X-Llmcache-Token", "wrong"}}), 401,
              "authentication_error");
  ExpectError(HttpGet(port_, "/stats"), 401, "authentication_error");
  ExpectError(HttpGet(port_, "/v1/models"), 401, "authentication_error");
  EXPECT_EQ(fake_->requests(), before);
  // The token in its own header, with the client's own key.
  Reply r = Post(Body("m/a"), {{"X-Llmcache-Token", "proxy-token"},
                               {"Authorization", "Bearer sk-client"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-cache"), "MISS");
  EXPECT_EQ(fake_->last_authorization(), "Bearer sk-client");
  EXPECT_EQ(fake_->last_header("X-Llmcache-Token"), "");
  // The token as Bearer: the server's key, and the server key's scope.
  r = Post(Body("m/b"), {{"Authorization", "Bearer proxy-token"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(fake_->last_authorization(), "Bearer sk-SERVER");
  r = Post(Body("m/b"), {{"X-Llmcache-Token", "proxy-token"},
                         {"Authorization", "Bearer sk-SERVER"}});
  EXPECT_EQ(r.header("x-cache"), "HIT");
  r = Post(Body("m/b"), {{"X-Llmcache-Token", "proxy-token"},
                         {"Authorization", "Bearer sk-client"}});
  EXPECT_EQ(r.header("x-cache"), "MISS");
  // Monitoring needs no token.
  EXPECT_EQ(HttpGet(port_, "/healthz").status, 200);
  EXPECT_EQ(HttpGet(port_, "/metrics").status, 200);
  EXPECT_EQ(
      HttpGet(port_, "/stats", {{"X-Llmcache-Token", "proxy-token"}}).status,
      200);
}

// The issue: `X-Cache-TTL: 0` pinned an entry forever over the operator's
// --ttl. A client may shorten the lifetime, never lengthen it.
TEST_F(ProxySecurityTest, ClientTtlIsCutToTheOperatorsCeiling) {
  Restart([](ProxyOptions& o) { o.cached.ttl_ms = 3'600'000; });
  auto expires_in = [this](const Reply& r) -> int64_t {
    Result<Digest> d = DigestFromHex(r.header("x-cache-key"));
    EXPECT_OK(d);
    if (!d.ok()) return -2;
    Result<std::shared_ptr<const Entry>> e = cache_->Find(*d);
    EXPECT_OK(e);
    if (!e.ok() || *e == nullptr) return -2;
    const EntryMeta& m = (*e)->meta;
    return m.expires_ms == 0 ? -1 : m.expires_ms - m.created_ms;
  };
  const Reply forever = Post(Body("m/a", "0"), {{"X-Cache-TTL", "0"}});
  ASSERT_EQ(forever.status, 200) << forever.body;
  EXPECT_EQ(forever.header("x-cache-ttl"), "3600");
  EXPECT_EQ(expires_in(forever), 3'600'000);
  const Reply longer = Post(Body("m/a", "long"), {{"X-Cache-TTL", "999999"}});
  EXPECT_EQ(longer.header("x-cache-ttl"), "3600");
  EXPECT_EQ(expires_in(longer), 3'600'000);
  const Reply shorter = Post(Body("m/a", "short"), {{"X-Cache-TTL", "60"}});
  EXPECT_EQ(shorter.header("x-cache-ttl"), "60");
  EXPECT_EQ(expires_in(shorter), 60'000);
  const Reply plain = Post(Body("m/a", "plain"), {});
  EXPECT_EQ(plain.header("x-cache-ttl"), "3600");
  EXPECT_EQ(expires_in(plain), 3'600'000);
  // The pinned entry expires with the ceiling.
  clock_.Advance(3'600'001);
  EXPECT_EQ(Post(Body("m/a", "0"), {}).header("x-cache"), "MISS");

  // An operator who allows it: forever is forever.
  Restart([](ProxyOptions& o) {
    o.cached.ttl_ms = 3'600'000;
    o.max_ttl_ms = 0;
  });
  const Reply pinned = Post(Body("m/b", "0"), {{"X-Cache-TTL", "0"}});
  EXPECT_EQ(pinned.header("x-cache-ttl"), "0");
  EXPECT_EQ(expires_in(pinned), -1);
  // A higher ceiling than the default.
  Restart([](ProxyOptions& o) {
    o.cached.ttl_ms = 3'600'000;
    o.max_ttl_ms = 7 * 86'400'000LL;
  });
  const Reply week = Post(Body("m/c", "w"), {{"X-Cache-TTL", "86400"}});
  EXPECT_EQ(expires_in(week), 86'400'000);
  const Reply capped = Post(Body("m/c", "0"), {{"X-Cache-TTL", "0"}});
  EXPECT_EQ(expires_in(capped), 7 * 86'400'000LL);
}

// ------------------------------------------------------ file descriptors

int OpenFds() {
  int n = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator("/proc/self/fd")) {
    ++n;
  }
  return n;
}

// Sets the soft RLIMIT_NOFILE for the scope; restores it after.
class ScopedFdLimit {
 public:
  explicit ScopedFdLimit(rlim_t soft) {
    ok_ = getrlimit(RLIMIT_NOFILE, &saved_) == 0 && soft <= saved_.rlim_max;
    if (!ok_) return;
    struct rlimit rl = saved_;
    rl.rlim_cur = soft;
    ok_ = setrlimit(RLIMIT_NOFILE, &rl) == 0;
  }
  ~ScopedFdLimit() {
    if (ok_) setrlimit(RLIMIT_NOFILE, &saved_);
  }
  bool ok() const { return ok_; }

 private:
  struct rlimit saved_ {};
  bool ok_ = false;
};

// The issue: --max-connections 10,000 over a soft limit of 1,024 meant
// accept failing with EMFILE and new clients getting nothing. The cap keeps
// the server under the limit; beyond it, 503; after, service again.
TEST_F(ProxySecurityTest, ConnectionsAreCappedBelowTheOpenFileLimit) {
  const int open_now = OpenFds();
  ScopedFdLimit limit(static_cast<rlim_t>(open_now + 500));
  if (!limit.ok()) GTEST_SKIP() << "cannot lower RLIMIT_NOFILE here";
  Restart();  // default max_connections: 10000
  const size_t cap = proxy_->max_connections();
  EXPECT_LT(cap, 10'000u);
  EXPECT_LE(cap, static_cast<size_t>(open_now + 500) / 2);
  ASSERT_GE(cap, 2u);
  std::vector<std::unique_ptr<HttpConnection>> conns;
  for (size_t i = 0; i < cap; ++i) {
    conns.push_back(std::make_unique<HttpConnection>(port_));
    ASSERT_TRUE(conns.back()->connected()) << i << conns.back()->error();
    const Reply r = conns.back()->Send("GET", "/healthz");
    ASSERT_EQ(r.status, 200) << "connection " << i << ": " << r.error;
  }
  // One more: a 503, not silence.
  {
    HttpConnection extra(port_);
    const Reply r = extra.Send("GET", "/healthz");
    EXPECT_EQ(r.status, 503) << r.error;
    EXPECT_EQ(r.header("connection"), "close");
    EXPECT_EQ(r.header("retry-after"), "1");
  }
  EXPECT_GE(proxy_->counters().rejected_connections, 1u);
  // The ones inside the cap still work; closing one makes room.
  EXPECT_EQ(conns.front()->Send("GET", "/healthz").status, 200);
  conns.pop_back();
  ASSERT_TRUE(
      WaitFor([&] { return proxy_->counters().open_connections < cap; }));
  HttpConnection again(port_);
  EXPECT_EQ(again.Send("GET", "/healthz").status, 200) << again.error();
  EXPECT_EQ(proxy_->counters().accept_errors, 0u);
  conns.clear();
  Stop();  // before the limit is restored
}

// Reads what the server sends on `socket` until it closes, or nothing came
// for 5 s (a server that never answers fails the test instead of hanging
// it).
std::string ReadAll(tcp::socket& socket) {
  const int fd = socket.native_handle();
  struct timeval tv {};
  tv.tv_sec = 5;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Two lines of Authorization (or another header access depends on) are a
// 400 on the wire too: the proxy counts the lines, not only reads the first.
TEST_F(ProxySecurityTest, RepeatedCredentialLinesAreRefused) {
  for (const char* name : {"Authorization", "X-Llmcache-Token", "Host"}) {
    Headers headers = {{name, "Bearer one"}, {name, "Bearer two"}};
    if (std::string_view(name) == "Host") {
      headers = {{"Host", "127.0.0.1"}, {"Host", "evil.example"}};
    }
    const Reply r =
        HttpConnection(port_).Send("POST", "/v1/chat/completions",
                                   R"({"model":"m/a","messages":[]})", headers);
    EXPECT_EQ(r.status, 400) << name << ": " << r.body;
    EXPECT_NE(r.body.find(std::string("more than one ") + name),
              std::string::npos)
        << r.body;
  }
  EXPECT_EQ(fake_->completions(), 0u);
}

// HEAD gets GET's head, Content-Length included, and no content (RFC 9110
// 9.3.2), on every route (a 405 too): the next answer on the connection
// starts right after the head, where a client expects it.
TEST_F(ProxySecurityTest, HeadIsAnsweredWithoutContent) {
  asio::io_context ioc;
  tcp::socket c(ioc);
  boost::system::error_code ec;
  c.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
  ASSERT_FALSE(ec) << ec.message();
  const std::string req =
      "HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
      "HEAD /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
      "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  asio::write(c, asio::buffer(req), ec);
  ASSERT_FALSE(ec) << ec.message();
  const std::string answer = ReadAll(c);
  const std::string body = "{\"status\":\"ok\"}";
  // Three heads; the only content is the GET's, at the end.
  size_t heads = 0;
  for (size_t at = answer.find("HTTP/1.1 "); at != std::string::npos;
       at = answer.find("HTTP/1.1 ", at + 1)) {
    ++heads;
  }
  EXPECT_EQ(heads, 3u) << answer;
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 ", 0), 0u) << answer;
  EXPECT_NE(answer.find("\r\n\r\nHTTP/1.1 405 "), std::string::npos) << answer;
  EXPECT_EQ(answer.find("method not allowed"), std::string::npos) << answer;
  EXPECT_EQ(answer.find(body), answer.size() - body.size()) << answer;
  // The HEAD's head has the GET's length.
  const std::string first_head = answer.substr(0, answer.find("\r\n\r\n"));
  EXPECT_NE(first_head.find("Content-Length: " + std::to_string(body.size())),
            std::string::npos)
      << first_head;
}

// Out of descriptors altogether (another part of the process took them):
// accept fails with EMFILE. A pending client gets a 503 (the proxy frees its
// spare descriptor for it) instead of waiting forever, the proxy does not
// spin on the failing accept, and serves again once descriptors are back.
TEST_F(ProxySecurityTest, OutOfDescriptorsPendingClientsGet503) {
  Restart(nullptr, /*memory=*/true);  // no RocksDB files to open meanwhile
  asio::io_context ioc;
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port_);
  // Client sockets made while descriptors last; connected after.
  std::vector<tcp::socket> clients;
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back(ioc);
    clients.back().open(tcp::v4());
  }
  std::vector<int> fillers;
  {
    ScopedFdLimit limit(static_cast<rlim_t>(OpenFds() + 32));
    if (!limit.ok()) GTEST_SKIP() << "cannot lower RLIMIT_NOFILE here";
    for (;;) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) break;
      fillers.push_back(fd);
    }
    ASSERT_EQ(errno, EMFILE);
    const uint64_t errors_before = proxy_->counters().accept_errors;
    for (tcp::socket& c : clients) {
      boost::system::error_code ec;
      c.connect(endpoint, ec);
      ASSERT_FALSE(ec) << ec.message();
      const std::string req =
          "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
      asio::write(c, asio::buffer(req), ec);
      ASSERT_FALSE(ec) << ec.message();
      const std::string answer = ReadAll(c);
      // Plain checks, not matchers: with no descriptor left, UBSan's own
      // vptr check of a matcher cannot run (it needs one) and reports.
      EXPECT_EQ(answer.rfind("HTTP/1.1 503 ", 0), 0u) << answer;
      EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
      EXPECT_NE(answer.find("\"overloaded\""), std::string::npos) << answer;
    }
    // Each pending client cost one failed accept: no busy loop (a spinning
    // acceptor would count thousands while a client waits).
    std::this_thread::sleep_for(200ms);
    const uint64_t errors = proxy_->counters().accept_errors - errors_before;
    EXPECT_GE(errors, 3u);
    EXPECT_LE(errors, 12u);
    for (int fd : fillers) ::close(fd);
  }
  // Descriptors are back: served again.
  const Reply r = HttpGet(port_, "/healthz");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_GE(proxy_->counters().rejected_connections, 3u);
}

}  // namespace
}  // namespace llmcache::net::proxy
