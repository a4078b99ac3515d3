// Unit tests of the proxy's pure helpers (net/proxy/src/proxy_util.h):
// Cache-Control, X-Cache-TTL and namespace parsing, query strings, bearer
// tokens, secret comparison, error bodies, response heads and chunk framing.

#include "proxy_util.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "llmcache/net/sse.h"
#include "testing/status_matchers.h"

namespace llmcache::net::proxy_util {
namespace {

namespace json = boost::json;
using ::llmcache::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using namespace std::string_literals;
using namespace std::string_view_literals;

// ------------------------------------------------------- ParseCacheControl

TEST(ProxyUtilCacheControlTest, EmptyValueMeansNoDirectives) {
  for (const char* value : {"", " ", ",", " , ,\t,"}) {
    auto d = ParseCacheControl(value);
    ASSERT_OK(d) << "'" << value << "'";
    EXPECT_FALSE(d->no_cache) << value;
    EXPECT_FALSE(d->no_store) << value;
    EXPECT_FALSE(d->max_age_s.has_value()) << value;
  }
}

TEST(ProxyUtilCacheControlTest, EachDirectiveAlone) {
  auto no_cache = ParseCacheControl("no-cache");
  ASSERT_OK(no_cache);
  EXPECT_TRUE(no_cache->no_cache);
  EXPECT_FALSE(no_cache->no_store);
  EXPECT_FALSE(no_cache->max_age_s.has_value());

  auto no_store = ParseCacheControl("no-store");
  ASSERT_OK(no_store);
  EXPECT_FALSE(no_store->no_cache);
  EXPECT_TRUE(no_store->no_store);
  EXPECT_FALSE(no_store->max_age_s.has_value());

  auto max_age = ParseCacheControl("max-age=60");
  ASSERT_OK(max_age);
  EXPECT_FALSE(max_age->no_cache);
  EXPECT_FALSE(max_age->no_store);
  EXPECT_EQ(max_age->max_age_s, 60);
  EXPECT_FALSE(max_age->only_if_cached);

  auto only = ParseCacheControl("only-if-cached");
  ASSERT_OK(only);
  EXPECT_TRUE(only->only_if_cached);
  EXPECT_FALSE(only->no_cache);
  EXPECT_FALSE(only->no_store);
}

// RFC 9111 1.2.2: a delta-seconds past what a cache represents counts as
// 2^31 (it was a 400); other bad values stay errors.
TEST(ProxyUtilCacheControlTest, AHugeMaxAgeIsTwoToTheThirtyFirst) {
  for (const char* value :
       {"max-age=99999999999999999999", "max-age=\"1000000000000\""}) {
    auto d = ParseCacheControl(value);
    ASSERT_OK(d) << value;
    EXPECT_EQ(d->max_age_s, int64_t{2147483648}) << value;
  }
  EXPECT_EQ(ParseCacheControl("max-age=999999999999")->max_age_s, 999999999999);
  for (const char* bad : {"max-age=-1", "max-age=1e9", "max-age=", "max-age"}) {
    EXPECT_FALSE(ParseCacheControl(bad).ok()) << bad;
  }
}

TEST(ProxyUtilCacheControlTest, CombinedWithSpacesAndAnyCase) {
  auto d = ParseCacheControl(" No-Cache ,\tNO-STORE, Max-Age = 5 ");
  ASSERT_OK(d);
  EXPECT_TRUE(d->no_cache);
  EXPECT_TRUE(d->no_store);
  EXPECT_EQ(d->max_age_s, 5);
  auto packed = ParseCacheControl("no-store,max-age=0");
  ASSERT_OK(packed);
  EXPECT_TRUE(packed->no_store);
  EXPECT_EQ(packed->max_age_s, 0);
}

TEST(ProxyUtilCacheControlTest, MaxAgeMayBeQuoted) {
  auto d = ParseCacheControl(R"(max-age="30")");
  ASSERT_OK(d);
  EXPECT_EQ(d->max_age_s, 30);
  auto spaced = ParseCacheControl(R"(max-age= "7" )");
  ASSERT_OK(spaced);
  EXPECT_EQ(spaced->max_age_s, 7);
}

TEST(ProxyUtilCacheControlTest, MaxAgeBounds) {
  auto zero = ParseCacheControl("max-age=0");
  ASSERT_OK(zero);
  EXPECT_EQ(zero->max_age_s, 0);
  auto largest = ParseCacheControl("max-age=999999999999");
  ASSERT_OK(largest);
  EXPECT_EQ(largest->max_age_s, 999'999'999'999);
  auto leading_zeros = ParseCacheControl("max-age=007");
  ASSERT_OK(leading_zeros);
  EXPECT_EQ(leading_zeros->max_age_s, 7);
}

TEST(ProxyUtilCacheControlTest, LaterMaxAgeWins) {
  auto d = ParseCacheControl("max-age=5, max-age=10");
  ASSERT_OK(d);
  EXPECT_EQ(d->max_age_s, 10);
}

TEST(ProxyUtilCacheControlTest, UnknownDirectivesAreIgnored) {
  for (const char* value :
       {"private", "public, must-revalidate", "max-stale=10", "min-fresh=5",
        "s-maxage=5", "max-agex=5", "xmax-age=5",
        "no-transform, only-if-cached", R"(community="UCI", foo=bar)",
        "max-stale=soon"}) {
    auto d = ParseCacheControl(value);
    ASSERT_OK(d) << value;
    EXPECT_FALSE(d->no_cache) << value;
    EXPECT_FALSE(d->no_store) << value;
    EXPECT_FALSE(d->max_age_s.has_value()) << value;
  }
  auto mixed = ParseCacheControl("private, no-cache, proxy-revalidate");
  ASSERT_OK(mixed);
  EXPECT_TRUE(mixed->no_cache);
  EXPECT_FALSE(mixed->no_store);
}

TEST(ProxyUtilCacheControlTest, DirectiveWithAnArgumentStillCounts) {
  // no-cache="Set-Cookie" (a field list) is still no-cache for the proxy.
  auto d = ParseCacheControl(R"(no-cache="Set-Cookie")");
  ASSERT_OK(d);
  EXPECT_TRUE(d->no_cache);
}

TEST(ProxyUtilCacheControlTest, BadMaxAgeIsInvalidArgument) {
  for (const char* value :
       {"max-age", "max-age=", "max-age=soon", "max-age=-1", "max-age=+1",
        "max-age=1.5", "max-age=1e3", "max-age=0x10", "max-age=5s",
        "max-age=1 2", R"(max-age="")", R"(max-age="5)", R"(max-age=5")",
        R"(max-age='5')", "no-cache, max-age=soon, no-store"}) {
    EXPECT_THAT(ParseCacheControl(value),
                StatusIs(StatusCode::kInvalidArgument, "max-age"))
        << value;
  }
}

// ------------------------------------------------------------ ParseSeconds

TEST(ProxyUtilParseSecondsTest, NonNegativeIntegers) {
  EXPECT_EQ(ParseSeconds("0"), 0);
  EXPECT_EQ(ParseSeconds("1"), 1);
  EXPECT_EQ(ParseSeconds("3600"), 3600);
  EXPECT_EQ(ParseSeconds("0042"), 42);
}

TEST(ProxyUtilParseSecondsTest, SurroundingSpacesAndTabsAreAllowed) {
  EXPECT_EQ(ParseSeconds(" 7"), 7);
  EXPECT_EQ(ParseSeconds("7 "), 7);
  EXPECT_EQ(ParseSeconds("\t 7 \t"), 7);
}

TEST(ProxyUtilParseSecondsTest, AtMostTwelveDigits) {
  EXPECT_EQ(ParseSeconds("999999999999"), 999'999'999'999);
  EXPECT_EQ(ParseSeconds("000000000001"), 1);
  // The limit is on the digits, not on the surrounding spaces.
  EXPECT_EQ(ParseSeconds("  999999999999  "), 999'999'999'999);
  EXPECT_EQ(ParseSeconds("1000000000000"), std::nullopt);
  EXPECT_EQ(ParseSeconds("0000000000001"), std::nullopt);
  EXPECT_EQ(ParseSeconds("9223372036854775807"), std::nullopt);
  EXPECT_EQ(ParseSeconds("99999999999999999999"), std::nullopt);
}

TEST(ProxyUtilParseSecondsTest, AnythingElseIsRejected) {
  for (std::string_view s : {""sv, " "sv, "\t"sv, "-1"sv, "+1"sv, "1.5"sv,
                             "1e3"sv, "0x10"sv, "ten"sv, "10s"sv, "1 2"sv,
                             "1,000"sv, "\n5"sv, "5\r"sv, "\"5\""sv, "5\0"sv}) {
    EXPECT_EQ(ParseSeconds(s), std::nullopt) << "'" << s << "'";
  }
}

// ---------------------------------------------------------- ValidNamespace

TEST(ProxyUtilNamespaceTest, AllowedCharacters) {
  for (const char* ns : {"a", "v1", "Z", "0", "team.docs", "a_b", "tenant:42",
                         "x-y", "A-Za-z0-9._:-"}) {
    EXPECT_TRUE(ValidNamespace(ns)) << ns;
  }
}

TEST(ProxyUtilNamespaceTest, LengthFromOneTo128) {
  EXPECT_FALSE(ValidNamespace(""));
  EXPECT_TRUE(ValidNamespace(std::string(1, 'n')));
  EXPECT_TRUE(ValidNamespace(std::string(128, 'n')));
  EXPECT_FALSE(ValidNamespace(std::string(129, 'n')));
}

TEST(ProxyUtilNamespaceTest, OtherCharactersAreRejected) {
  for (std::string_view ns : {"bad ns!"sv, "a b"sv, "a/b"sv, "a\\b"sv, "a,b"sv,
                              "a;b"sv, "a=b"sv, "a\"b"sv, "ns\n"sv, "\tns"sv,
                              "n\0s"sv, "caf\xc3\xa9"sv, "a@b"sv, "*"sv}) {
    EXPECT_FALSE(ValidNamespace(ns)) << "'" << ns << "'";
  }
}

// -------------------------------------------------------------- ParseQuery

TEST(ProxyUtilModelsTest, ModelIdOfPath) {
  EXPECT_EQ(ModelIdOfPath("/v1/models/openai/gpt-4o"), "openai/gpt-4o");
  EXPECT_EQ(ModelIdOfPath("/api/v1/models/openai%2fgpt-4o"), "openai/gpt-4o");
  // '+' is itself in a path; a malformed escape is kept as it is.
  EXPECT_EQ(ModelIdOfPath("/v1/models/a/b+c%2"), "a/b+c%2");
  EXPECT_EQ(ModelIdOfPath("/v1/models/m:free"), "m:free");
  EXPECT_EQ(ModelIdOfPath("/v1/models"), std::nullopt);
  EXPECT_EQ(ModelIdOfPath("/v1/models/"), std::nullopt);
  EXPECT_EQ(ModelIdOfPath("/v2/models/x"), std::nullopt);
  EXPECT_EQ(ModelIdOfPath("/v1/modelsx/y"), std::nullopt);
}

TEST(ProxyUtilModelsTest, IndexModelsById) {
  const auto index = IndexModels(
      R"({"data":[{"id":"a/b","name":"B","pricing":{"discount":0.1}},)"
      R"({"name":"no id"},{"id":5},"x",{"id":"c/d","created":1700000000}]})");
  ASSERT_TRUE(index.has_value());
  ASSERT_EQ(index->size(), 2u);
  // Each object whole; doubles in their shortest form.
  EXPECT_EQ(index->at("a/b"),
            R"({"id":"a/b","name":"B","pricing":{"discount":0.1}})");
  EXPECT_EQ(index->at("c/d"), R"({"id":"c/d","created":1700000000})");
  // An empty list is a list; anything without a "data" array is none.
  EXPECT_THAT(IndexModels(R"({"data":[]})"), ::testing::Optional(IsEmpty()));
  EXPECT_EQ(IndexModels("not json"), std::nullopt);
  EXPECT_EQ(IndexModels("<html>bad gateway</html>"), std::nullopt);
  EXPECT_EQ(IndexModels(R"({"data":{}})"), std::nullopt);
  EXPECT_EQ(IndexModels(R"({"error":{"code":500}})"), std::nullopt);
  EXPECT_EQ(IndexModels(R"([1,2])"), std::nullopt);
}

TEST(ProxyUtilParseQueryTest, EmptyQuery) {
  EXPECT_THAT(ParseQuery(""), IsEmpty());
  EXPECT_THAT(ParseQuery("&&&"), IsEmpty());
}

TEST(ProxyUtilParseQueryTest, ParametersInOrderIncludingRepeats) {
  EXPECT_THAT(ParseQuery("model=m/a&all=1&model=m/b"),
              ElementsAre(Pair("model", "m/a"), Pair("all", "1"),
                          Pair("model", "m/b")));
}

TEST(ProxyUtilParseQueryTest, MissingValuesAndNames) {
  EXPECT_THAT(ParseQuery("all"), ElementsAre(Pair("all", "")));
  EXPECT_THAT(ParseQuery("all="), ElementsAre(Pair("all", "")));
  EXPECT_THAT(ParseQuery("=v"), ElementsAre(Pair("", "v")));
  EXPECT_THAT(ParseQuery("&a=1&&b&"),
              ElementsAre(Pair("a", "1"), Pair("b", "")));
  // Only the first '=' separates.
  EXPECT_THAT(ParseQuery("a=1=2"), ElementsAre(Pair("a", "1=2")));
}

TEST(ProxyUtilParseQueryTest, PercentDecodingAndPlus) {
  EXPECT_THAT(ParseQuery("ns=a%20b+c"), ElementsAre(Pair("ns", "a b c")));
  EXPECT_THAT(ParseQuery("m=openai%2Fgpt-4o%2fmini"),
              ElementsAre(Pair("m", "openai/gpt-4o/mini")));
  EXPECT_THAT(ParseQuery("p=%2B1"), ElementsAre(Pair("p", "+1")));
  EXPECT_THAT(ParseQuery("older%5Fthan=30m"),
              ElementsAre(Pair("older_than", "30m")));
  EXPECT_THAT(ParseQuery("x=%41"), ElementsAre(Pair("x", "A")));
  EXPECT_THAT(ParseQuery("x=%00"), ElementsAre(Pair("x", "\0"s)));
  // Encoded separators do not separate.
  EXPECT_THAT(ParseQuery("x=a%26b%3Dc"), ElementsAre(Pair("x", "a&b=c")));
}

TEST(ProxyUtilParseQueryTest, MalformedEscapesAreKeptLiterally) {
  EXPECT_THAT(ParseQuery("x=%zz"), ElementsAre(Pair("x", "%zz")));
  EXPECT_THAT(ParseQuery("x=%4"), ElementsAre(Pair("x", "%4")));
  EXPECT_THAT(ParseQuery("x=%"), ElementsAre(Pair("x", "%")));
  EXPECT_THAT(ParseQuery("x=%g1"), ElementsAre(Pair("x", "%g1")));
  EXPECT_THAT(ParseQuery("x=100%"), ElementsAre(Pair("x", "100%")));
}

// ------------------------------------------------------- RequestLineTarget

TEST(ProxyUtilRequestLineTargetTest, TheTargetOfAWholeRequestLine) {
  EXPECT_EQ(RequestLineTarget("", "POST /v1/messages HTTP/1.1\r\nHost: x\r\n"),
            "/v1/messages");
  EXPECT_EQ(RequestLineTarget("", "GET /a?b=c HTTP/1.0\r\n"), "/a?b=c");
  // Not a whole request line: no route to guess from.
  EXPECT_EQ(RequestLineTarget("", "POST /v1/messages HTTP/1.1"), "");
  EXPECT_EQ(RequestLineTarget("", ""), "");
  // Beast's parser read the request line: what it read.
  EXPECT_EQ(RequestLineTarget("/v1/messages", "Host: x y\r\n"), "/v1/messages");
  EXPECT_EQ(RequestLineTarget("", "POST  HTTP/1.1\r\n"), "");
  EXPECT_EQ(RequestLineTarget("", " /x HTTP/1.1\r\n"), "");
  EXPECT_EQ(RequestLineTarget("", "POST /x\r\n"), "");
  EXPECT_EQ(RequestLineTarget("", "POST /x HTTP/1.1 extra\r\n"), "");
  // Only a visible ASCII path (the target goes into the log).
  EXPECT_EQ(RequestLineTarget("", "POST x HTTP/1.1\r\n"), "");
  EXPECT_EQ(RequestLineTarget("", "POST /a\nb HTTP/1.1\r\n"), "");
  EXPECT_EQ(RequestLineTarget("", "POST /a\x1b[2J HTTP/1.1\r\n"), "");
}

// ------------------------------------------------------------- BearerToken

TEST(ProxyUtilBearerTokenTest, TokenOfTheBearerScheme) {
  EXPECT_EQ(BearerToken("Bearer sk-or-v1-abc"), "sk-or-v1-abc");
  EXPECT_EQ(BearerToken("bearer abc"), "abc");
  EXPECT_EQ(BearerToken("BEARER abc"), "abc");
  EXPECT_EQ(BearerToken("  Bearer   abc \t"), "abc");
  // Everything after the scheme, inner spaces included.
  EXPECT_EQ(BearerToken("Bearer a b"), "a b");
}

TEST(ProxyUtilBearerTokenTest, PointsIntoTheHeader) {
  const std::string header = "Bearer token-123";
  const std::string_view token = BearerToken(header);
  ASSERT_EQ(token, "token-123");
  EXPECT_EQ(token.data(), header.data() + 7);
}

TEST(ProxyUtilBearerTokenTest, EmptyForOtherSchemesOrNoToken) {
  for (const char* header : {"", " ", "Bearer", "Bearer ", "Bearer    ",
                             "Basic dXNlcjpwdw==", "Bearerabc", "Bearer\tabc",
                             "Token abc", "abc", "Bear abc"}) {
    EXPECT_EQ(BearerToken(header), "") << "'" << header << "'";
  }
}

// ------------------------------------------------------ ConstantTimeEquals

TEST(ProxyUtilConstantTimeEqualsTest, EqualOnlyForIdenticalSecrets) {
  EXPECT_TRUE(ConstantTimeEquals("admin-secret", "admin-secret"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("admin-secret", "admin-secreT"));
  EXPECT_FALSE(ConstantTimeEquals("admin-secret", "admin-secre"));
  EXPECT_FALSE(ConstantTimeEquals("admin-secre", "admin-secret"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
  EXPECT_FALSE(ConstantTimeEquals("x", ""));
  EXPECT_FALSE(ConstantTimeEquals("a\0b"sv, "a\0c"sv));
  EXPECT_TRUE(ConstantTimeEquals("a\0b"sv, "a\0b"sv));
  const std::string long_secret(10'000, 's');
  EXPECT_TRUE(ConstantTimeEquals(long_secret, std::string(10'000, 's')));
  EXPECT_FALSE(ConstantTimeEquals(long_secret, long_secret + "s"));
}

// --------------------------------------------------------------- ErrorJson

TEST(ProxyUtilErrorJsonTest, OpenAiErrorShape) {
  EXPECT_EQ(ErrorJson(400, "invalid_request_error", "bad"),
            R"({"error":{"message":"bad","type":"invalid_request_error",)"
            R"("code":400}})");
}

TEST(ProxyUtilErrorJsonTest, MessageIsEscaped) {
  const std::string message =
      "quote \" backslash \\ newline \n tab \t control \x01 caf\xc3\xa9";
  const std::string body = ErrorJson(502, "upstream_error", message);
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  ASSERT_FALSE(ec) << body;
  const json::object& e = v.at("error").as_object();
  EXPECT_EQ(e.at("message").as_string(), message);
  EXPECT_EQ(e.at("type").as_string(), "upstream_error");
  EXPECT_EQ(e.at("code").as_int64(), 502);
  EXPECT_EQ(body.find('\n'), std::string::npos) << body;
}

TEST(ProxyUtilErrorJsonTest, EmptyMessageAndAnyStatus) {
  const std::string body = ErrorJson(599, "", "");
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  ASSERT_FALSE(ec) << body;
  EXPECT_EQ(v.at("error").at("message").as_string(), "");
  EXPECT_EQ(v.at("error").at("type").as_string(), "");
  EXPECT_EQ(v.at("error").at("code").as_int64(), 599);
}

// ------------------------------------------------------------ ReasonPhrase

TEST(ProxyUtilReasonPhraseTest, KnownStatuses) {
  const std::vector<std::pair<int, std::string_view>> known = {
      {100, "Continue"},
      {200, "OK"},
      {201, "Created"},
      {204, "No Content"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {402, "Payment Required"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {408, "Request Timeout"},
      {409, "Conflict"},
      {410, "Gone"},
      {411, "Length Required"},
      {413, "Payload Too Large"},
      {415, "Unsupported Media Type"},
      {417, "Expectation Failed"},
      {422, "Unprocessable Entity"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {501, "Not Implemented"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
      {505, "HTTP Version Not Supported"},
      {524, "A Timeout Occurred"},
      {529, "Site Overloaded"},
  };
  for (const auto& [status, phrase] : known) {
    EXPECT_EQ(ReasonPhrase(status), phrase) << status;
  }
}

TEST(ProxyUtilReasonPhraseTest, OthersAreUnknown) {
  for (int status :
       {0, -1, 1, 99, 101, 202, 299, 302, 418, 451, 506, 599, 600, 1000}) {
    EXPECT_EQ(ReasonPhrase(status), "Unknown") << status;
  }
}

// ------------------------------------------------------ AppendResponseHead

TEST(ProxyUtilResponseHeadTest, ContentLengthAndKeepAlive) {
  std::string out;
  AppendResponseHead(&out, 200, "application/json", 15, true, "");
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\n"
            "Server: llmcache\r\n"
            "Content-Type: application/json\r\n"
            "Content-Length: 15\r\n"
            "Connection: keep-alive\r\n"
            "\r\n");
}

TEST(ProxyUtilResponseHeadTest, ChunkedCloseWithExtraHeaders) {
  std::string out;
  AppendResponseHead(&out, 200, "text/event-stream", -1, false,
                     "X-Cache: MISS\r\nCache-Control: no-cache\r\n");
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\n"
            "Server: llmcache\r\n"
            "Content-Type: text/event-stream\r\n"
            "Transfer-Encoding: chunked\r\n"
            "Connection: close\r\n"
            "X-Cache: MISS\r\n"
            "Cache-Control: no-cache\r\n"
            "\r\n");
}

TEST(ProxyUtilResponseHeadTest, UntilCloseHasNoFramingHeader) {
  std::string out;
  AppendResponseHead(&out, 200, "text/event-stream", kUntilClose, false, "");
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\n"
            "Server: llmcache\r\n"
            "Content-Type: text/event-stream\r\n"
            "Connection: close\r\n"
            "\r\n");
}

// Anthropic's SDKs raise by status, but callers read error.type: each
// status gets the type Anthropic's API reference gives it.
TEST(ProxyUtilAnthropicErrorTest, TypeOfEachStatus) {
  for (const auto& [status, type] :
       std::vector<std::pair<int, std::string>>{{400, "invalid_request_error"},
                                                {401, "authentication_error"},
                                                {402, "billing_error"},
                                                {403, "permission_error"},
                                                {404, "not_found_error"},
                                                {405, "invalid_request_error"},
                                                {408, "timeout_error"},
                                                {409, "invalid_request_error"},
                                                {413, "request_too_large"},
                                                {422, "invalid_request_error"},
                                                {429, "rate_limit_error"},
                                                {500, "api_error"},
                                                {502, "api_error"},
                                                {503, "overloaded_error"},
                                                {504, "timeout_error"},
                                                {524, "timeout_error"},
                                                {529, "overloaded_error"}}) {
    const json::value v = json::parse(AnthropicErrorJson(status, "m"));
    EXPECT_EQ(v.at("type").as_string(), "error") << status;
    EXPECT_EQ(v.at("error").at("type").as_string(), type) << status;
    EXPECT_EQ(v.at("error").at("message").as_string(), "m") << status;
  }
  // An OpenRouter-shaped 402 becomes Anthropic's billing error.
  const std::optional<std::string> up = AnthropicErrorFromUpstream(
      402, R"({"error":{"code":402,"message":"Insufficient credits"}})");
  ASSERT_TRUE(up.has_value());
  const json::value v = json::parse(*up);
  EXPECT_EQ(v.at("error").at("type").as_string(), "billing_error");
  EXPECT_EQ(v.at("error").at("message").as_string(), "Insufficient credits");
}

TEST(ProxyUtilStreamBrokenNoteTest, SaysWhyInPrintableAscii) {
  CachedResponse whole_but_cut;
  whole_but_cut.status = 200;
  EXPECT_EQ(StreamBrokenNote(whole_but_cut),
            "stream cut upstream before its end");
  EXPECT_EQ(StreamBrokenNote(UnavailableError("connection lost mid-body")),
            "stream broken: connection lost mid-body");
  const std::string odd = "a\nb\x01" + std::string(300, 'c');
  const std::string note = StreamBrokenNote(DeadlineExceededError(odd));
  EXPECT_EQ(note, "stream broken: a?b?" + std::string(156, 'c'));
}

TEST(ProxyUtilResponseHeadTest, NoContentTypeZeroLengthAndUnknownStatus) {
  std::string out;
  AppendResponseHead(&out, 299, "", 0, true, "");
  EXPECT_EQ(out,
            "HTTP/1.1 299 Unknown\r\n"
            "Server: llmcache\r\n"
            "Content-Length: 0\r\n"
            "Connection: keep-alive\r\n"
            "\r\n");
}

TEST(ProxyUtilResponseHeadTest, LargestContentLength) {
  std::string out;
  AppendResponseHead(&out, 413, "application/json",
                     std::numeric_limits<int64_t>::max(), false, "");
  EXPECT_THAT(out, ::testing::StartsWith("HTTP/1.1 413 Payload Too Large\r\n"));
  EXPECT_THAT(
      out, ::testing::HasSubstr("\r\nContent-Length: 9223372036854775807\r\n"));
}

TEST(ProxyUtilResponseHeadTest, AppendsToWhatIsThere) {
  std::string out = "previous";
  AppendResponseHead(&out, 100, "", -1, true, "");
  EXPECT_EQ(out,
            "previousHTTP/1.1 100 Continue\r\n"
            "Server: llmcache\r\n"
            "Transfer-Encoding: chunked\r\n"
            "Connection: keep-alive\r\n"
            "\r\n");
}

TEST(ProxyUtilResponseHeadTest, NoContentHasNoFramingAndBothExtrasFollow) {
  std::string out;
  AppendResponseHead(&out, 204, "", 0, true, "A: 1\r\n", "B: 2\r\n");
  EXPECT_EQ(out,
            "HTTP/1.1 204 No Content\r\n"
            "Server: llmcache\r\n"
            "Connection: keep-alive\r\n"
            "A: 1\r\n"
            "B: 2\r\n"
            "\r\n");
}

// ------------------------------------------------------------ ConnectionCap

TEST(ProxyUtilConnectionCapTest, CappedByTheOpenFileLimit) {
  // The usual soft limit of 1,024 cannot hold 10,000 connections: each may
  // hold an upstream socket besides its own, after the reserve.
  EXPECT_EQ(ConnectionCap(10'000, 1'024, 100), 462u);
  EXPECT_EQ(ConnectionCap(10'000, 1'048'576, 400), 10'000u);
  EXPECT_EQ(ConnectionCap(300, 1'024, 100), 300u);
  EXPECT_EQ(ConnectionCap(10'000, 0, 100), 10'000u);  // unlimited
}

TEST(ProxyUtilConnectionCapTest, AtLeastOne) {
  EXPECT_EQ(ConnectionCap(10'000, 64, 100), 1u);
  EXPECT_EQ(ConnectionCap(10'000, 101, 100), 1u);
  EXPECT_EQ(ConnectionCap(0, 1'024, 100), 1u);
}

TEST(ProxyUtilResponseHeadTest, AppendHeader) {
  std::string out = "X: 1\r\n";
  AppendHeader(&out, "Retry-After", "1");
  AppendHeader(&out, "X-Empty", "");
  EXPECT_EQ(out, "X: 1\r\nRetry-After: 1\r\nX-Empty: \r\n");
}

// ---------------------------------------------------------- chunk framing

// Decodes a complete chunked body; nullopt if its framing is wrong or it
// does not end with the last chunk.
std::optional<std::string> Dechunk(std::string_view framed) {
  std::string body;
  for (;;) {
    const size_t eol = framed.find("\r\n");
    if (eol == std::string_view::npos || eol == 0) return std::nullopt;
    size_t size = 0;
    for (char c : framed.substr(0, eol)) {
      const int digit = (c >= '0' && c <= '9')   ? c - '0'
                        : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                                 : -1;  // lower case only
      if (digit < 0) return std::nullopt;
      size = size * 16 + static_cast<size_t>(digit);
    }
    framed.remove_prefix(eol + 2);
    if (framed.size() < size + 2 || framed.substr(size, 2) != "\r\n") {
      return std::nullopt;
    }
    if (size == 0) {
      return framed.size() == 2 ? std::optional<std::string>(body)
                                : std::nullopt;
    }
    body.append(framed.substr(0, size));
    framed.remove_prefix(size + 2);
  }
}

TEST(ProxyUtilChunkTest, OneChunk) {
  std::string out;
  AppendChunk(&out, "hello");
  EXPECT_EQ(out, "5\r\nhello\r\n");
}

TEST(ProxyUtilChunkTest, SizeIsLowerCaseHex) {
  std::string out;
  AppendChunk(&out, std::string(26, 'x'));
  EXPECT_EQ(out.substr(0, 4), "1a\r\n");
  out.clear();
  AppendChunk(&out, std::string(4096, 'x'));
  EXPECT_EQ(out.substr(0, 6), "1000\r\n");
  EXPECT_EQ(out.size(), 6u + 4096u + 2u);
}

TEST(ProxyUtilChunkTest, EmptyBytesAppendNothing) {
  // An empty chunk would be the last chunk and end the body.
  std::string out = "kept";
  AppendChunk(&out, "");
  EXPECT_EQ(out, "kept");
}

TEST(ProxyUtilChunkTest, UnchunkedStreamBytesAreAsTheyAre) {
  std::string out;
  AppendStreamBytes(&out, "event: a\ndata: {}\n\n", false);
  AppendSseEvent(&out, "[DONE]", false);
  EXPECT_EQ(out, "event: a\ndata: {}\n\ndata: [DONE]\n\n");
  std::string chunked;
  AppendStreamBytes(&chunked, "ab", true);
  AppendSseEvent(&chunked, "x", true);
  EXPECT_EQ(chunked, "2\r\nab\r\n9\r\ndata: x\n\n\r\n");
}

TEST(ProxyUtilChunkTest, BinaryBytesAndCrLfInsideAChunk) {
  const std::string bytes = "a\r\n0\r\n\r\n\0b"s;
  std::string out;
  AppendChunk(&out, bytes);
  out.append(kLastChunk);
  EXPECT_EQ(Dechunk(out), bytes);
}

TEST(ProxyUtilChunkTest, LastChunk) {
  EXPECT_EQ(kLastChunk, "0\r\n\r\n");
  EXPECT_EQ(Dechunk(kLastChunk), "");
}

TEST(ProxyUtilChunkTest, SseChunkFramesOneEvent) {
  std::string out;
  AppendSseChunk(&out, "{}");
  // "data: {}\n\n" is 10 bytes.
  EXPECT_EQ(out, "a\r\ndata: {}\n\n\r\n");
  out.clear();
  AppendSseChunk(&out, "");
  EXPECT_EQ(out, "8\r\ndata: \n\n\r\n");
}

TEST(ProxyUtilChunkTest, ChunksDecodeToTheBytesAndEvents) {
  const std::vector<std::string> events = {
      R"({"choices":[{"delta":{"content":"Hel"}}]})",
      R"({"choices":[{"delta":{"content":"lo"}}]})", std::string(300, 'z'),
      "[DONE]"};
  std::string out;
  AppendChunk(&out, ": OPENROUTER PROCESSING\n\n");
  for (const std::string& e : events) AppendSseChunk(&out, e);
  AppendChunk(&out, "");  // no-op
  out.append(kLastChunk);
  const std::optional<std::string> body = Dechunk(out);
  ASSERT_TRUE(body.has_value()) << out;
  std::string want = ": OPENROUTER PROCESSING\n\n";
  for (const std::string& e : events) want += "data: " + e + "\n\n";
  EXPECT_EQ(*body, want);

  SseParser parser;
  std::vector<std::string> parsed;
  parser.Feed(*body, [&](SseEvent&& e) { parsed.push_back(e.data); });
  EXPECT_FALSE(parser.Finish());
  EXPECT_EQ(parsed, events);
  EXPECT_EQ(parser.comments(), 1u);
}

TEST(ProxyUtilCacheControlTest, OnlyIfCachedIsFoundWhateverTheRest) {
  EXPECT_FALSE(OnlyIfCached(std::nullopt));
  EXPECT_FALSE(OnlyIfCached("no-cache"));
  EXPECT_FALSE(OnlyIfCached("only-if-cachedX, x"));
  EXPECT_TRUE(OnlyIfCached("Only-If-Cached"));
  EXPECT_TRUE(OnlyIfCached("max-age=abc , only-if-cached"));
  EXPECT_TRUE(OnlyIfCached("no-store,,only-if-cached,"));
}

TEST(ProxyUtilTargetTest, OriginAndAbsoluteForms) {
  TargetParts t = SplitTarget("/v1/models?x=1");
  EXPECT_FALSE(t.authority.has_value());
  EXPECT_EQ(t.path, "/v1/models");
  EXPECT_EQ(t.query, "x=1");
  t = SplitTarget("HTTPS://Example.COM:8080/v1/chat/completions");
  EXPECT_EQ(t.authority, "Example.COM:8080");
  EXPECT_EQ(t.path, "/v1/chat/completions");
  EXPECT_EQ(t.query, "");
  t = SplitTarget("http://localhost?a=b");
  EXPECT_EQ(t.authority, "localhost");
  EXPECT_EQ(t.path, "/");
  EXPECT_EQ(t.query, "a=b");
  t = SplitTarget("http://localhost");
  EXPECT_EQ(t.authority, "localhost");
  EXPECT_EQ(t.path, "/");
  // Not a scheme this proxy has: an origin-form path that routes nowhere.
  t = SplitTarget("ftp://x/y");
  EXPECT_FALSE(t.authority.has_value());
  EXPECT_EQ(t.path, "ftp://x/y");
  t = SplitTarget("*");
  EXPECT_EQ(t.path, "*");
}

// RFC 9112 2.2 and 2.3: what Beast refuses that a server should take.
TEST(ProxyUtilHeadRepairTest, EmptyLinesAndOtherVersions) {
  auto repair = [](std::string* head) {
    return RepairRequestHead(head->data(), head->size(), true);
  };
  std::string head = "\r\n\nGET / HTTP/1.1\r\n\r\n";
  HeadRepair r = repair(&head);
  EXPECT_EQ(r.kind, HeadRepair::kRetry);
  EXPECT_EQ(r.skip, 3u);
  head = "GET /v1/models HTTP/1.2\r\nHost: x\r\n\r\n";
  r = repair(&head);
  EXPECT_EQ(r.kind, HeadRepair::kRetry);
  EXPECT_EQ(r.skip, 0u);
  EXPECT_EQ(head, "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n");
  // Beast refuses the version before the CRLF has come.
  for (const char* early : {"GET /x HTTP/1.2", "GET /x HTTP/1.2\r"}) {
    head = early;
    EXPECT_EQ(RepairRequestHead(head.data(), head.size(), true).kind,
              HeadRepair::kRetry)
        << early;
    EXPECT_TRUE(head.starts_with("GET /x HTTP/1.1")) << early;
  }
  head = "GET /x HTTP/2.0";
  EXPECT_EQ(repair(&head).kind, HeadRepair::kVersionNotSupported);
  // A bad method: only empty lines are skipped.
  head = "G@T / HTTP/1.2\r\n\r\n";
  EXPECT_EQ(RepairRequestHead(head.data(), head.size(), false).kind,
            HeadRepair::kNone);
  EXPECT_EQ(head, "G@T / HTTP/1.2\r\n\r\n");
  head = "\r\nG@T / HTTP/1.1\r\n\r\n";
  EXPECT_EQ(RepairRequestHead(head.data(), head.size(), false).skip, 2u);
  head = "GET / HTTP/1.9\r\n";
  EXPECT_EQ(repair(&head).kind, HeadRepair::kRetry);
  EXPECT_EQ(head, "GET / HTTP/1.1\r\n");
  for (const char* v : {"2.0", "0.9", "3.1"}) {
    head = std::string("GET / HTTP/") + v + "\r\n\r\n";
    EXPECT_EQ(repair(&head).kind, HeadRepair::kVersionNotSupported) << v;
    EXPECT_EQ(head, std::string("GET / HTTP/") + v + "\r\n\r\n");
  }
  // Anything else stays refused, unchanged.
  for (const char* bad :
       {"G@T / HTTP/1.1\r\n\r\n", "GET / HTTP/1.2\n\n", "GET / HTTP/12\r\n",
        "GET / HTTP/1.x\r\n", "GET / HTTP/1.2 ", "GET /HTTP/1.2\r\n", "",
        "GET / XTTP/1.2\r\n", "HTTP/1.2\r\n"}) {
    head = bad;
    EXPECT_EQ(repair(&head).kind, HeadRepair::kNone) << bad;
    EXPECT_EQ(head, bad);
  }
}

}  // namespace
}  // namespace llmcache::net::proxy_util
