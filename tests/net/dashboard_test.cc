// GET /dashboard and the operator views:
//   - the page, its script and its style over real loopback sockets: 200,
//     their content types, the Content-Security-Policy and the other
//     headers, nothing fetched from anywhere but the proxy;
//   - the access rules of /stats apply to them: a DNS-rebinding Host and a
//     cross-origin page are refused; with a client token the page itself
//     still loads (it holds no data);
//   - the operator-views decision (OperatorViewsOpen) for loopback, the
//     wildcard and LAN addresses, with and without the flag;
//   - with the operator views closed (as beyond loopback): /stats and
//     /metrics need the admin token (401 without or with a wrong one, 403
//     when none is configured, saying how to open them), and the dashboard
//     page is still served.
// The browser side (rendering, escaping, polling, the token form) is
// tests/browser/dashboard_browser_test.mjs.

#include "dashboard.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "access.h"
#include "fake_openrouter.h"
#include "llmcache/cache.h"
#include "llmcache/net/proxy.h"
#include "testing/http_client.h"
#include "testing/proxy_fixture.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

namespace llmcache::net::proxy {
namespace {

namespace json = boost::json;
using ::llmcache::fake::FakeOpenRouter;
using ::llmcache::fake::FakeOptions;
using ::llmcache::testing::HttpGet;
using ::llmcache::testing::HttpSend;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using Reply = ::llmcache::testing::HttpReply;
using Headers = ::llmcache::testing::HttpHeaders;
using namespace std::chrono_literals;

constexpr char kCsp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'";

std::string Body(const std::string& model) {
  return R"({"model":")" + model +
         R"(","temperature":0,"messages":[{"role":"user","content":"hi"}]})";
}

void ExpectError(const Reply& r, int status, const std::string& type) {
  EXPECT_EQ(r.status, status) << r.body << r.error;
  boost::system::error_code ec;
  const json::value v = json::parse(r.body, ec);
  ASSERT_FALSE(ec) << r.body;
  EXPECT_EQ(v.at("error").at("type").as_string(), type) << r.body;
}

// ------------------------------------------------- the decision, no HTTP

TEST(OperatorViewsOpenTest, OpenOnLoopbackOnlyUnlessTheFlagSays) {
  for (const char* loopback :
       {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "0:0::1", "localhost",
        "LocalHost.", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(OperatorViewsOpen(loopback, std::nullopt)) << loopback;
    EXPECT_TRUE(OperatorViewsOpen(loopback, true)) << loopback;
    EXPECT_FALSE(OperatorViewsOpen(loopback, false)) << loopback;
  }
  for (const char* beyond :
       {"0.0.0.0", "::", "[::]", "192.168.1.20", "10.0.0.5", "fe80::1",
        "2001:db8::1", "::ffff:192.168.1.20", "proxy.example.com", "128.0.0.1",
        ""}) {
    EXPECT_FALSE(OperatorViewsOpen(beyond, std::nullopt)) << beyond;
    EXPECT_TRUE(OperatorViewsOpen(beyond, true)) << beyond;
    EXPECT_FALSE(OperatorViewsOpen(beyond, false)) << beyond;
  }
}

TEST(OperatorViewsOpenTest, PolicyFollowsTheOptions) {
  ProxyOptions o;
  Result<AccessPolicy> p = MakeAccessPolicy(o);
  ASSERT_OK(p);
  EXPECT_TRUE(p->operator_views_open);  // 127.0.0.1 by default
  o.host = "0.0.0.0";
  p = MakeAccessPolicy(o);
  ASSERT_OK(p);
  EXPECT_FALSE(p->operator_views_open);
  EXPECT_FALSE(p->operator_views_closed_by_flag);
  o.operator_views_open = true;
  p = MakeAccessPolicy(o);
  ASSERT_OK(p);
  EXPECT_TRUE(p->operator_views_open);
  o.host = "127.0.0.1";
  o.operator_views_open = false;
  p = MakeAccessPolicy(o);
  ASSERT_OK(p);
  EXPECT_FALSE(p->operator_views_open);
  EXPECT_TRUE(p->operator_views_closed_by_flag);
}

TEST(OperatorViewsOpenTest, CheckOperatorView) {
  AccessPolicy open;
  open.operator_views_open = true;
  EXPECT_EQ(CheckOperatorView(open, "", std::nullopt), std::nullopt);
  EXPECT_EQ(CheckOperatorView(open, "adm", std::nullopt), std::nullopt);

  AccessPolicy closed;
  closed.operator_views_open = false;
  std::optional<proxy_util::HttpError> e =
      CheckOperatorView(closed, "", std::string_view("Bearer x"));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->status, 403);
  EXPECT_THAT(e->message, HasSubstr("--admin-token"));
  EXPECT_THAT(e->message, HasSubstr("listens beyond loopback"));
  EXPECT_THAT(e->message, HasSubstr("with --open-operator-views"));
  // Closed by the flag (on loopback, say): it says so, and does not advise
  // opening them.
  AccessPolicy by_flag = closed;
  by_flag.operator_views_closed_by_flag = true;
  e = CheckOperatorView(by_flag, "", std::nullopt);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->status, 403);
  EXPECT_THAT(e->message, HasSubstr("(--open-operator-views=false)"));
  EXPECT_THAT(e->message, Not(HasSubstr("loopback")));
  EXPECT_THAT(e->message, Not(HasSubstr("with --open-operator-views")));

  e = CheckOperatorView(closed, "adm", std::nullopt);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->status, 401);
  EXPECT_THAT(e->extra_headers, HasSubstr("WWW-Authenticate: Bearer"));
  for (const char* bad : {"Bearer adm2", "Bearer ", "Basic adm", "adm"}) {
    e = CheckOperatorView(closed, "adm", std::string_view(bad));
    ASSERT_TRUE(e.has_value()) << bad;
    EXPECT_EQ(e->status, 401) << bad;
  }
  EXPECT_EQ(CheckOperatorView(closed, "adm", std::string_view("Bearer adm")),
            std::nullopt);
  EXPECT_EQ(CheckOperatorView(closed, "adm", std::string_view("bearer  adm ")),
            std::nullopt);
}

TEST(DashboardAssetsTest, PathsAndTypes) {
  ASSERT_NE(FindDashboardAsset("/dashboard"), nullptr);
  EXPECT_THAT(std::string(FindDashboardAsset("/dashboard")->content_type),
              StartsWith("text/html"));
  ASSERT_NE(FindDashboardAsset("/dashboard.js"), nullptr);
  ASSERT_NE(FindDashboardAsset("/dashboard.css"), nullptr);
  EXPECT_EQ(FindDashboardAsset("/dashboard.json"), nullptr);
  EXPECT_EQ(FindDashboardAsset("/dashboard/x"), nullptr);
  EXPECT_EQ(FindDashboardAsset("/"), nullptr);
  EXPECT_EQ(DashboardCsp(), kCsp);
}

// ------------------------------------------------------ over real sockets

class DashboardTest : public ::llmcache::testing::ProxyFixture {
 protected:
  void SetUp() override {
    StartFake();
    if (!HasFatalFailure()) Restart();
  }

  void Restart(const std::function<void(ProxyOptions&)>& tweak = nullptr) {
    ProxyOptions o = BaseProxyOptions(1, "sk-SERVER");
    if (tweak) tweak(o);
    StartProxy(CacheOptions{}, std::move(o));
  }
};

void ExpectDashboardHeaders(const Reply& r, const std::string& target) {
  EXPECT_EQ(r.header("Content-Security-Policy"), kCsp) << target;
  EXPECT_EQ(r.header("X-Content-Type-Options"), "nosniff") << target;
  EXPECT_EQ(r.header("Referrer-Policy"), "no-referrer") << target;
  EXPECT_EQ(r.header("Cache-Control"), "no-store") << target;
  EXPECT_EQ(r.header("X-Frame-Options"), "DENY") << target;
  EXPECT_FALSE(r.has_header("Access-Control-Allow-Origin")) << target;
}

TEST_F(DashboardTest, PageAndAssetsAreServedWithTheirHeaders) {
  struct Want {
    const char* target;
    const char* type;
  };
  for (const Want& w : {Want{"/dashboard", "text/html; charset=utf-8"},
                        Want{"/dashboard?interval=500", "text/html"},
                        Want{"/dashboard.js", "text/javascript"},
                        Want{"/dashboard.css", "text/css"}}) {
    const Reply r = HttpGet(port_, w.target);
    ASSERT_EQ(r.status, 200) << w.target << r.error;
    EXPECT_THAT(r.header("Content-Type"), StartsWith(w.type)) << w.target;
    ExpectDashboardHeaders(r, w.target);
    EXPECT_FALSE(r.body.empty());
    // Everything comes from the proxy: no scheme, no network-path URL, no
    // CDN.
    for (const char* external :
         {"http://", "https://", "//cdn", "cdn.", "ws:", "@import", "url("}) {
      EXPECT_THAT(r.body, Not(HasSubstr(external)))
          << w.target << " references " << external;
    }
  }
  const std::string html = HttpGet(port_, "/dashboard").body;
  EXPECT_THAT(html, HasSubstr(R"(src="/dashboard.js")"));
  EXPECT_THAT(html, HasSubstr(R"(href="/dashboard.css")"));
  EXPECT_THAT(html, HasSubstr(R"(id="hit-rate-chart")"));
  EXPECT_THAT(html, HasSubstr(R"(id="updated-at")"));
  // No inline script or style (the CSP would block them anyway).
  EXPECT_THAT(html, Not(HasSubstr("<script>")));
  EXPECT_THAT(html, Not(HasSubstr("<style")));
  EXPECT_THAT(html, Not(HasSubstr("style=")));
  EXPECT_THAT(html, Not(HasSubstr("onclick")));
  EXPECT_THAT(html, Not(HasSubstr("onload")));
  // The script never hands /stats data to the HTML parser.
  const std::string js = HttpGet(port_, "/dashboard.js").body;
  EXPECT_THAT(js, Not(HasSubstr("innerHTML")));
  EXPECT_THAT(js, Not(HasSubstr("outerHTML")));
  EXPECT_THAT(js, Not(HasSubstr("insertAdjacentHTML")));
  EXPECT_THAT(js, Not(HasSubstr("document.write")));
  EXPECT_THAT(js, Not(HasSubstr("localStorage")));
  EXPECT_THAT(js, HasSubstr("sessionStorage"));
  EXPECT_THAT(js, HasSubstr("textContent"));

  ExpectError(HttpSend(port_, "POST", "/dashboard", "x"), 405,
              "invalid_request_error");
  ExpectError(HttpGet(port_, "/dashboard/secret"), 404,
              "invalid_request_error");
}

TEST_F(DashboardTest, AccessRulesApplyLikeOnStats) {
  for (const char* target : {"/dashboard", "/dashboard.js", "/stats"}) {
    // DNS rebinding: a page on another name that resolves to 127.0.0.1.
    ExpectError(HttpGet(port_, target, {{"Host", "rebind.evil.example"}}), 403,
                "permission_error");
    ExpectError(HttpGet(port_, target, {{"Host", "rebind.evil.example:8080"}}),
                403, "permission_error");
    // A cross-origin page, with an Origin or (no-cors) only Sec-Fetch-Site.
    ExpectError(HttpGet(port_, target, {{"Origin", "http://evil.example"}}),
                403, "permission_error");
    ExpectError(HttpGet(port_, target, {{"Sec-Fetch-Site", "cross-site"}}), 403,
                "permission_error");
    // A same-origin fetch, and the page typed into the address bar.
    EXPECT_EQ(
        HttpGet(port_, target, {{"Sec-Fetch-Site", "same-origin"}}).status, 200)
        << target;
    EXPECT_EQ(HttpGet(port_, target,
                      {{"Sec-Fetch-Site", "none"}, {"Host", "localhost:1"}})
                  .status,
              200)
        << target;
  }
  // An allowed origin gets CORS headers on the page too, as on /stats.
  Restart([](ProxyOptions& o) { o.allow_origins = {"http://app.example"}; });
  const Reply r =
      HttpGet(port_, "/dashboard", {{"Origin", "http://app.example"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Access-Control-Allow-Origin"), "http://app.example");
}

TEST_F(DashboardTest, PageNeedsNoClientTokenButStatsDoes) {
  Restart([](ProxyOptions& o) { o.client_token = "proxy-token"; });
  EXPECT_EQ(HttpGet(port_, "/dashboard").status, 200);
  EXPECT_EQ(HttpGet(port_, "/dashboard.js").status, 200);
  EXPECT_EQ(HttpGet(port_, "/dashboard.css").status, 200);
  ExpectError(HttpGet(port_, "/stats"), 401, "authentication_error");
  EXPECT_EQ(HttpGet(port_, "/stats", {{"Authorization", "Bearer proxy-token"}})
                .status,
            200);
  // Other paths are not opened by it.
  ExpectError(HttpGet(port_, "/v1/models"), 401, "authentication_error");
}

// With both tokens on loopback, /stats takes either: the dashboard asks for
// the admin token, which was refused (only the client token opened it).
TEST_F(DashboardTest, LoopbackStatsTakeTheAdminTokenBesideTheClientToken) {
  Restart([](ProxyOptions& o) {
    o.client_token = "proxy-token";
    o.admin_token = "adm-secret";
  });
  for (const char* token : {"proxy-token", "adm-secret"}) {
    EXPECT_EQ(HttpGet(port_, "/stats",
                      {{"Authorization", std::string("Bearer ") + token}})
                  .status,
              200)
        << token;
  }
  const Reply none = HttpGet(port_, "/stats");
  ExpectError(none, 401, "authentication_error");
  EXPECT_NE(none.body.find("admin token or its access token"),
            std::string::npos)
      << none.body;
  ExpectError(
      HttpGet(port_, "/stats", {{"Authorization", "Bearer adm-secreT"}}), 401,
      "authentication_error");
  // The admin token is not a client token elsewhere.
  ExpectError(HttpSend(port_, "POST", "/v1/chat/completions", Body("m/a"),
                       {{"Authorization", "Bearer adm-secret"}}),
              401, "authentication_error");
}

TEST_F(DashboardTest, LoopbackOperatorViewsAreOpenByDefault) {
  EXPECT_EQ(HttpGet(port_, "/stats").status, 200);
  EXPECT_EQ(HttpGet(port_, "/metrics").status, 200);
}

TEST_F(DashboardTest, ClosedOperatorViewsNeedTheAdminToken) {
  Restart([](ProxyOptions& o) {
    o.operator_views_open = false;  // as when listening beyond loopback
    o.admin_token = "adm-secret";
  });
  ASSERT_EQ(HttpSend(port_, "POST", "/v1/chat/completions", Body("m/a")).status,
            200);
  const uint64_t upstream = fake_->requests();
  for (const char* target : {"/stats", "/metrics"}) {
    Reply r = HttpGet(port_, target);
    ExpectError(r, 401, "authentication_error");
    EXPECT_EQ(r.header("WWW-Authenticate"), "Bearer") << target;
    EXPECT_THAT(r.body, Not(HasSubstr("m/a")));
    ExpectError(
        HttpGet(port_, target, {{"Authorization", "Bearer wrong-secret"}}), 401,
        "authentication_error");
    ExpectError(HttpGet(port_, target, {{"Authorization", "Basic adm-secret"}}),
                401, "authentication_error");
    ExpectError(HttpGet(port_, target, {{"X-Llmcache-Token", "adm-secret"}}),
                401, "authentication_error");
    r = HttpGet(port_, target, {{"Authorization", "Bearer adm-secret"}});
    EXPECT_EQ(r.status, 200) << target << r.body;
    EXPECT_THAT(r.body, HasSubstr(target == std::string("/stats")
                                      ? "m/a"
                                      : "llmcache_requests_total"))
        << target;
  }
  EXPECT_EQ(fake_->requests(), upstream);
  // The page holds no data: still served, and still with its headers.
  const Reply page = HttpGet(port_, "/dashboard");
  EXPECT_EQ(page.status, 200);
  ExpectDashboardHeaders(page, "/dashboard");
  EXPECT_EQ(HttpGet(port_, "/dashboard.js").status, 200);
  // Monitoring of liveness stays open.
  EXPECT_EQ(HttpGet(port_, "/healthz").status, 200);
  // Completions are unaffected.
  EXPECT_EQ(HttpSend(port_, "POST", "/v1/chat/completions", Body("m/a"))
                .header("X-Cache"),
            "HIT");
}

TEST_F(DashboardTest, ClosedOperatorViewsWithoutAdminTokenSayHowToOpenThem) {
  Restart([](ProxyOptions& o) { o.operator_views_open = false; });
  for (const char* target : {"/stats", "/metrics"}) {
    const Reply r =
        HttpGet(port_, target, {{"Authorization", "Bearer anything"}});
    ExpectError(r, 403, "permission_error");
    EXPECT_THAT(r.body, HasSubstr("--open-operator-views")) << target;
    EXPECT_THAT(r.body, HasSubstr("--admin-token")) << target;
  }
  EXPECT_EQ(HttpGet(port_, "/dashboard").status, 200);
}

TEST_F(DashboardTest, ClosedStatsTakeTheAdminTokenEvenWithAClientToken) {
  Restart([](ProxyOptions& o) {
    o.operator_views_open = false;
    o.admin_token = "adm-secret";
    o.client_token = "proxy-token";
  });
  // The client token does not open the operator views; the admin token
  // does, without the client token.
  ExpectError(HttpGet(port_, "/stats", {{"X-Llmcache-Token", "proxy-token"}}),
              401, "authentication_error");
  ExpectError(
      HttpGet(port_, "/stats", {{"Authorization", "Bearer proxy-token"}}), 401,
      "authentication_error");
  EXPECT_EQ(
      HttpGet(port_, "/stats", {{"Authorization", "Bearer adm-secret"}}).status,
      200);
  EXPECT_EQ(HttpGet(port_, "/dashboard").status, 200);
}

}  // namespace
}  // namespace llmcache::net::proxy
