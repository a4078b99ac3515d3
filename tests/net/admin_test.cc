// Unit tests of the proxy's admin endpoints without HTTP
// (net/proxy/src/admin.h): validation order, the constant-time token check,
// the selectors each op accepts, and the purge and import answers' JSON.

#include "admin.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "llmcache/options.h"
#include "testing/fault_fs.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

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
  for (std::string_view q :
       {"older_than=soon", "older_than=999999999999d", "older_than=30",
        "key=abc", "model=", "nope=1", "model=*", "model=%2A"}) {
    const HttpError e = ErrorOf(Validate("purge", q));
    EXPECT_EQ(e.status, 400) << q;
    EXPECT_EQ(e.type, "invalid_request_error") << q;
    const std::string_view name = q.substr(0, q.find('='));
    const std::string_view value = q.substr(q.find('=') + 1);
    EXPECT_EQ(e.message, ParsePurgeSelector(name, value == "%2A" ? "*" : value)
                             .status()
                             .message())
        << q;
  }
  // "*" is no pattern (a flush of it answered 503 after a local purge).
  const HttpError star = ErrorOf(Validate("flush", "model=*"));
  EXPECT_EQ(star.status, 400);
  EXPECT_THAT(star.message, HasSubstr("all=1"));
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

// A shared tier whose flushes fail: by a timeout (the flush may still run
// when Redis answers) or because Redis is unreachable (it will not).
class FailingFlushTier final : public SharedTier {
 public:
  void Get(const RequestKey&, GetCallback) override {}
  void Put(const RequestKey&, std::shared_ptr<const Entry>) override {}
  void AcquireLead(const RequestKey&, std::function<void(Lead)>) override {}
  void Release(const RequestKey&, const std::string&) override {}
  void Record(std::string_view, SharedOutcome, const Usage&) override {}
  Result<uint64_t> FlushModel(std::string_view) override {
    return DeadlineExceededError("redis command timed out after 2000 ms");
  }
  Result<uint64_t> FlushAll() override {
    return UnavailableError("redis 127.0.0.1:1: connection refused");
  }
  Result<bool> PurgeKey(const Digest&) override { return false; }
  void SetFlushListener(std::function<void(std::string_view)>) override {}
  SharedTierHealth Health() const override { return {}; }
};

TEST_F(ProxyAdminPurgeTest, ASharedFlushThatTimedOutMayStillBeApplied) {
  FailingFlushTier tier;
  const auto noop = [](LogLevel, std::string_view) {};
  AdminAnswer a =
      RunAdminPurge(*cache_, *ParsePurgeSelector("model", "m/a"), noop, &tier);
  EXPECT_EQ(a.status, 503);
  EXPECT_THAT(a.body, HasSubstr("timed out"));
  EXPECT_THAT(a.body, HasSubstr("may still be applied"));
  a = RunAdminPurge(*cache_, *ParsePurgeSelector("all", "1"), noop, &tier);
  EXPECT_EQ(a.status, 503);
  EXPECT_THAT(a.body, HasSubstr("connection refused"));
  EXPECT_THAT(a.body, ::testing::Not(HasSubstr("may still be applied")));
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

TEST(ProxyAdminValidateTest, ImportTakesNoParameters) {
  EXPECT_TRUE(std::holds_alternative<AdminImport>(Validate("import", "")));
  EXPECT_EQ(ErrorOf(Validate("import", "model=m")).status, 400);
  EXPECT_EQ(ErrorOf(Validate("import", "", "")).status, 401);
  EXPECT_EQ(
      ErrorOf(Validate("import", "", "Bearer admin-secret", "GET")).status,
      405);
}

// A line as `llmcache export` writes it, for digest byte `k`.
std::string ExportLine(char k, std::string_view content, int64_t created_ms,
                       int64_t expires_ms) {
  json::object completion{
      {"id", "gen-1"},
      {"object", "chat.completion"},
      {"created", 1764000000},
      {"model", "m/imp"},
      {"choices",
       json::array{json::object{{"index", 0},
                                {"message", json::object{{"role", "assistant"},
                                                         {"content", content}}},
                                {"finish_reason", "stop"}}}},
      {"usage", json::object{{"prompt_tokens", 2}, {"completion_tokens", 3}}}};
  json::object line{{"key", std::string(64, k)},
                    {"model", "m/imp"},
                    {"resolved_model", "m/imp"},
                    {"namespace", "team"},
                    {"created", created_ms},
                    {"expires", expires_ms},
                    {"flags", 0},
                    {"usage", json::object{{"prompt_tokens", 2},
                                           {"completion_tokens", 3},
                                           {"cached_tokens", 0},
                                           {"cache_write_tokens", 0},
                                           {"cost_nanousd", 10}}},
                    {"response", json::serialize(completion)}};
  return json::serialize(line);
}

TEST_F(ProxyAdminPurgeTest, ImportStoresLinesAndReportsTheRestByNumber) {
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  // A byte-order mark, CRLF, a blank line, an expired entry, a malformed
  // line, and a last line without its line end.
  const std::string body = "\xEF\xBB\xBF" + ExportLine('a', "one", now, 0) +
                           "\r\n\n" + ExportLine('b', "old", 1000, 2000) +
                           "\n{\"key\":1}\n" +
                           ExportLine('c', "two", now, now + 60'000);
  const AdminAnswer a =
      RunAdminImport(*cache_, body, [this](LogLevel level, std::string_view l) {
        logs_.emplace_back(level, std::string(l));
      });
  ASSERT_EQ(a.status, 200) << a.body;
  const json::value v = json::parse(a.body);
  EXPECT_EQ(v.at("lines").to_number<int>(), 4);
  EXPECT_EQ(v.at("imported").to_number<int>(), 2);
  EXPECT_EQ(v.at("expired").to_number<int>(), 1);
  EXPECT_EQ(v.at("malformed").to_number<int>(), 1);
  ASSERT_EQ(v.at("errors").as_array().size(), 1u);
  EXPECT_EQ(v.at("errors").at(0).at("line").to_number<int>(), 4);
  EXPECT_FALSE(v.at("errors").at(0).at("error").as_string().empty());
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].second,
            "admin import: 2 entries stored, 1 expired, 1 malformed lines");

  RequestKey key;
  key.model = "m/imp";
  key.base_model = "m/imp";
  key.digest.fill(0xcc);
  Result<LookupResult> found = cache_->Lookup(key);
  ASSERT_OK(found);
  ASSERT_TRUE(found->hit());
  EXPECT_THAT(found->entry->body, HasSubstr("two"));
  EXPECT_EQ(found->entry->meta.ns, "team");
  key.digest.fill(0xbb);
  found = cache_->Lookup(key);
  ASSERT_OK(found);
  EXPECT_FALSE(found->hit());
}

// A store that fails stops the import at that line, with where and how
// many entries were stored before it: on a full disk a 503 (worth retrying
// once space is freed), as purges and compactions there are.
TEST(ProxyAdminImportTest, AFullDiskIs503NamingTheLine) {
  using llmcache::testing::FaultFileSystem;
  llmcache::testing::TempDir dir;
  auto fs = std::make_shared<FaultFileSystem>();
  CacheOptions o;
  o.path = dir.path() + "/db";
  o.maintenance_interval_ms = 0;
  o.memory_tier_bytes = 0;
  o.file_system = fs;
  auto cache = Cache::Open(o);
  ASSERT_OK(cache);
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::vector<std::pair<LogLevel, std::string>> logs;
  const LogSink log = [&logs](LogLevel level, std::string_view line) {
    logs.emplace_back(level, std::string(line));
  };
  AdminAnswer a =
      RunAdminImport(**cache, ExportLine('a', "one", now, 0) + "\n", log);
  ASSERT_EQ(a.status, 200) << a.body;
  fs->FailWrites(FaultFileSystem::NoSpace());
  a = RunAdminImport(**cache, "\n" + ExportLine('b', "two", now, 0) + "\n",
                     log);
  const AdminAnswer purge =
      RunAdminPurge(**cache, *ParsePurgeSelector("all", ""), log);
  const AdminAnswer compact = RunAdminCompact(**cache, log);
  fs->Clear();
  ASSERT_EQ(a.status, 503) << a.body;
  const json::value v = json::parse(a.body);
  EXPECT_EQ(v.at("error").at("type").as_string(), "service_unavailable");
  EXPECT_EQ(v.at("error").at("code").to_number<int>(), 503);
  EXPECT_EQ(v.at("error").at("line").to_number<int>(), 2);
  EXPECT_EQ(v.at("error").at("imported").to_number<int>(), 0);
  EXPECT_THAT(std::string(v.at("error").at("message").as_string()),
              HasSubstr("storing the entry of line 2 failed"));
  ASSERT_FALSE(logs.empty());
  EXPECT_EQ(logs.back().first, LogLevel::kError);
  for (const AdminAnswer& failed : {purge, compact}) {
    EXPECT_EQ(failed.status, 503) << failed.body;
    EXPECT_EQ(json::parse(failed.body).at("error").at("type").as_string(),
              "service_unavailable");
  }
}

TEST_F(ProxyAdminPurgeTest, ImportListsAtMostTwentyErrors) {
  std::string body;
  for (int i = 0; i < 30; ++i) body += "nope\n";
  const AdminAnswer a =
      RunAdminImport(*cache_, body, [](LogLevel, std::string_view) {});
  ASSERT_EQ(a.status, 200) << a.body;
  const json::value v = json::parse(a.body);
  EXPECT_EQ(v.at("malformed").to_number<int>(), 30);
  EXPECT_EQ(v.at("imported").to_number<int>(), 0);
  EXPECT_EQ(v.at("errors").as_array().size(), 20u);
}

}  // namespace
}  // namespace llmcache::net::proxy
