// Unit tests of the proxy's admin endpoints without HTTP
// (net/proxy/src/admin.h): validation order, the constant-time token check,
// the selectors each op accepts, and the purge answer's JSON.

#include "admin.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "llmcache/options.h"
#include "testing/status_matchers.h"

namespace llmcache::net::proxy {
namespace {

namespace json = boost::json;
using proxy_util::HttpError;
using ::testing::HasSubstr;

constexpr std::string_view kToken = "admin-secret";

AdminAction Validate(std::string_view op, std::string_view query,
                     std::string_view authorization = "Bearer admin-secret",
                     std::string_view method = "POST") {
  return ValidateAdminRequest({op, method, authorization, query}, kToken);
}

HttpError ErrorOf(const AdminAction& a) {
  EXPECT_TRUE(std::holds_alternative<HttpError>(a));
  return std::holds_alternative<HttpError>(a) ? std::get<HttpError>(a)
                                              : HttpError{};
}

PurgeSelector SelectorOf(const AdminAction& a) {
  EXPECT_TRUE(std::holds_alternative<PurgeSelector>(a))
      << (std::holds_alternative<HttpError>(a) ? std::get<HttpError>(a).message
                                               : "");
  return std::holds_alternative<PurgeSelector>(a) ? std::get<PurgeSelector>(a)
                                                  : PurgeSelector{};
}

TEST(ProxyAdminValidateTest, UnknownOpIs404BeforeAnythingElse) {
  const HttpError e = ErrorOf(Validate("nope", "all=1", "", "GET"));
  EXPECT_EQ(e.status, 404);
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_EQ(e.message, "no admin route nope");
  EXPECT_EQ(e.extra_headers, "");
}

TEST(ProxyAdminValidateTest, OtherMethodsAre405WithAllow) {
  for (std::string_view method : {"GET", "PUT", "DELETE", "post"}) {
    const HttpError e = ErrorOf(Validate("flush", "all=1", "", method));
    EXPECT_EQ(e.status, 405) << method;
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_EQ(e.message, "method not allowed; use POST");
    EXPECT_EQ(e.extra_headers, "Allow: POST\r\n");
  }
}

TEST(ProxyAdminValidateTest, MissingOrWrongTokenIs401) {
  for (std::string_view auth :
       {"", "Bearer", "Bearer ", "Bearer wrong", "Bearer admin-secre",
        "Bearer admin-secret2", "Basic admin-secret", "admin-secret"}) {
    const HttpError e = ErrorOf(Validate("purge", "all=1", auth));
    EXPECT_EQ(e.status, 401) << auth;
    EXPECT_EQ(e.type, "authentication_error");
    EXPECT_EQ(e.message,
              "admin endpoints need Authorization: Bearer <admin token>");
    EXPECT_EQ(e.extra_headers, "WWW-Authenticate: Bearer\r\n");
  }
}

TEST(ProxyAdminValidateTest, TokenSchemeIsCaseInsensitive) {
  EXPECT_EQ(SelectorOf(Validate("flush", "all=1", "bearer admin-secret")).kind,
            PurgeKind::kAll);
  EXPECT_EQ(
      SelectorOf(Validate("flush", "all=1", "BEARER  admin-secret ")).kind,
      PurgeKind::kAll);
}

TEST(ProxyAdminValidateTest, AuthIsCheckedBeforeTheQuery) {
  EXPECT_EQ(ErrorOf(Validate("purge", "", "")).status, 401);
  EXPECT_EQ(ErrorOf(Validate("purge", "bogus=1", "Bearer x")).status, 401);
}

TEST(ProxyAdminValidateTest, ExactlyOneSelector) {
  HttpError e = ErrorOf(Validate("flush", ""));
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_EQ(e.message, "give exactly one of model=M, all=1");
  e = ErrorOf(Validate("purge", "model=a&all=1"));
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.message,
            "give exactly one of model=M, all=1, key=HEX, namespace=NS, "
            "expired=1, older_than=DURATION");
  // Empty items are not parameters.
  EXPECT_EQ(SelectorOf(Validate("purge", "&all=1&")).kind, PurgeKind::kAll);
}

TEST(ProxyAdminValidateTest, FlushTakesModelOrAll) {
  PurgeSelector s = SelectorOf(Validate("flush", "model=openai%2Fgpt-4o"));
  EXPECT_EQ(s.kind, PurgeKind::kModel);
  EXPECT_EQ(s.name, "model");
  EXPECT_EQ(s.value, "openai/gpt-4o");
  EXPECT_EQ(SelectorOf(Validate("flush", "all=1")).kind, PurgeKind::kAll);
  for (const std::string& q :
       {std::string("namespace=ns1"), std::string("expired=1"),
        std::string("older_than=1h"), "key=" + std::string(64, 'a')}) {
    const HttpError e = ErrorOf(Validate("flush", q));
    EXPECT_EQ(e.status, 400) << q;
    EXPECT_EQ(e.message, "flush takes model=M or all=1") << q;
  }
}

TEST(ProxyAdminValidateTest, PurgeTakesEverySelector) {
  EXPECT_EQ(SelectorOf(Validate("purge", "model=m")).kind, PurgeKind::kModel);
  EXPECT_EQ(SelectorOf(Validate("purge", "all=1")).kind, PurgeKind::kAll);
  EXPECT_EQ(SelectorOf(Validate("purge", "namespace=ns1")).kind,
            PurgeKind::kNamespace);
  EXPECT_EQ(SelectorOf(Validate("purge", "expired=1")).kind,
            PurgeKind::kExpired);
  const PurgeSelector older = SelectorOf(Validate("purge", "older_than=30m"));
  EXPECT_EQ(older.kind, PurgeKind::kOlderThan);
  EXPECT_EQ(older.age_ms, 30 * 60 * 1000);
  EXPECT_EQ(SelectorOf(Validate("purge", "key=" + std::string(64, 'a'))).kind,
            PurgeKind::kKey);
}

TEST(ProxyAdminValidateTest, BadSelectorValuesAre400WithTheParserMessage) {
  for (std::string_view q : {"older_than=soon", "older_than=999999999999d",
                             "older_than=30", "key=abc", "model=", "nope=1"}) {
    const HttpError e = ErrorOf(Validate("purge", q));
    EXPECT_EQ(e.status, 400) << q;
    EXPECT_EQ(e.type, "invalid_request_error") << q;
    const std::string_view name = q.substr(0, q.find('='));
    const std::string_view value = q.substr(q.find('=') + 1);
    EXPECT_EQ(e.message, ParsePurgeSelector(name, value).status().message())
        << q;
  }
}

// ------------------------------------------------------------ RunAdminPurge

class ProxyAdminPurgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CacheOptions o;  // memory mode
    o.maintenance_interval_ms = 0;
    auto c = Cache::Open(o);
    ASSERT_OK(c);
    cache_ = std::move(c).value();
  }

  json::value Run(std::string_view name, std::string_view value,
                  int want_status = 200) {
    Result<PurgeSelector> sel = ParsePurgeSelector(name, value);
    EXPECT_OK(sel);
    const AdminAnswer a = RunAdminPurge(
        *cache_, *sel, [this](LogLevel level, std::string_view line) {
          logs_.emplace_back(level, std::string(line));
        });
    EXPECT_EQ(a.status, want_status) << a.body;
    return json::parse(a.body);
  }

  std::unique_ptr<Cache> cache_;
  std::vector<std::pair<LogLevel, std::string>> logs_;
};

TEST_F(ProxyAdminPurgeTest, AnswersWhatWasPurgedAndHowMany) {
  EXPECT_EQ(Run("all", "1"), json::parse(R"({"all":true,"removed":0})"));
  EXPECT_EQ(Run("expired", ""), json::parse(R"({"expired":true,"removed":0})"));
  EXPECT_EQ(Run("model", "m/a"), json::parse(R"({"model":"m/a","removed":0})"));
  EXPECT_EQ(Run("namespace", "ns1"),
            json::parse(R"({"namespace":"ns1","removed":0})"));
  EXPECT_EQ(Run("older_than", "2h"),
            json::parse(R"({"older_than":"2h","older_than_seconds":7200,)"
                        R"("removed":0})"));
}

TEST_F(ProxyAdminPurgeTest, LogsTheOutcomeAtInfo) {
  Run("model", "m/a");
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].first, LogLevel::kInfo);
  EXPECT_EQ(logs_[0].second, "admin model: removed 0 entries");
}

TEST(ProxyAdminValidateTest, CompactTakesNoParameters) {
  EXPECT_TRUE(std::holds_alternative<AdminCompact>(Validate("compact", "")));
  EXPECT_EQ(ErrorOf(Validate("compact", "all=1")).status, 400);
  EXPECT_EQ(ErrorOf(Validate("compact", "", "Bearer wrong")).status, 401);
  EXPECT_EQ(
      ErrorOf(Validate("compact", "", "Bearer admin-secret", "GET")).status,
      405);
}

TEST_F(ProxyAdminPurgeTest, CompactAnswersAndLogs) {
  const AdminAnswer a =
      RunAdminCompact(*cache_, [this](LogLevel level, std::string_view line) {
        logs_.emplace_back(level, std::string(line));
      });
  EXPECT_EQ(a.status, 200) << a.body;
  const json::value v = json::parse(a.body);
  EXPECT_EQ(v.at("compacted"), json::value(true));
  EXPECT_GE(v.at("ms").as_int64(), 0);
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].first, LogLevel::kInfo);
}

}  // namespace
}  // namespace llmcache::net::proxy
