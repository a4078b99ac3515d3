// Tests for response parsing, upstream error mapping and the cacheability rule
// (llmcache/net/completion.h), on the shapes of docs/openrouter.md
// (#response-body, #errors, #usage-and-cost).

#include "llmcache/net/completion.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "testing/status_matchers.h"

namespace llmcache::net {
namespace {

using ::llmcache::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// docs/openrouter.md#response-body, the documented shape, preceded by
// keep-alive newlines.
constexpr char kFullResponse[] =
    "\n\n"
    R"({"id":"gen-1764926476-0N0195qHFzGljvYKVijc","provider":"OpenAI",)"
    R"("model":"openai/gpt-4o-mini","object":"chat.completion",)"
    R"("created":1764926476,"choices":[{"logprobs":null,)"
    R"("finish_reason":"stop","native_finish_reason":"stop","index":0,)"
    R"("message":{"role":"assistant","content":"Hello there","refusal":null,)"
    R"("reasoning":null}}],"system_fingerprint":"fp_aa07c96156",)"
    R"("usage":{"prompt_tokens":29,"completion_tokens":33,"total_tokens":62,)"
    R"("cost":0.00002415,"is_byok":false,"prompt_tokens_details":)"
    R"({"cached_tokens":3,"cache_write_tokens":5,"audio_tokens":0,)"
    R"("video_tokens":0},"cost_details":{"upstream_inference_cost":null,)"
    R"("upstream_inference_prompt_cost":0.00000435,)"
    R"("upstream_inference_completions_cost":0.0000198},)"
    R"("completion_tokens_details":{"reasoning_tokens":7,"image_tokens":0,)"
    R"("audio_tokens":0}}})";

TEST(CompletionTest, ParsesTheDocumentedResponseAfterKeepAliveWhitespace) {
  Result<ParsedCompletion> r = ParseCompletion(kFullResponse);
  ASSERT_OK(r);
  const ParsedCompletion& c = *r;
  EXPECT_EQ(c.id, "gen-1764926476-0N0195qHFzGljvYKVijc");
  EXPECT_EQ(c.model, "openai/gpt-4o-mini");
  EXPECT_EQ(c.provider, "OpenAI");
  EXPECT_EQ(c.created, 1764926476);
  EXPECT_TRUE(c.has_choices);
  EXPECT_FALSE(c.content_null);
  EXPECT_EQ(c.content, "Hello there");
  EXPECT_EQ(c.reasoning, "");
  EXPECT_TRUE(c.tool_calls.empty());
  EXPECT_EQ(c.finish_reason, "stop");
  EXPECT_EQ(c.native_finish_reason, "stop");
  EXPECT_FALSE(c.error.has_value());
  ASSERT_TRUE(c.usage.has_value());
  EXPECT_EQ(c.usage->prompt_tokens, 29u);
  EXPECT_EQ(c.usage->completion_tokens, 33u);
  EXPECT_EQ(c.usage->total_tokens, 62u);
  EXPECT_EQ(c.usage->cached_tokens, 3u);
  EXPECT_EQ(c.usage->cache_write_tokens, 5u);
  EXPECT_EQ(c.usage->reasoning_tokens, 7u);
  ASSERT_TRUE(c.usage->cost.has_value());
  EXPECT_DOUBLE_EQ(*c.usage->cost, 0.00002415);
}

TEST(CompletionTest, NullContentIsEmptyAndFlagged) {
  Result<ParsedCompletion> r = ParseCompletion(
      R"({"id":"gen-1","choices":[{"index":0,"message":{"role":"assistant",)"
      R"("content":null},"finish_reason":"length",)"
      R"("native_finish_reason":null}]})");
  ASSERT_OK(r);
  EXPECT_TRUE(r->content_null);
  EXPECT_EQ(r->content, "");
  EXPECT_EQ(r->finish_reason, "length");
  EXPECT_EQ(r->native_finish_reason, "");
  EXPECT_FALSE(r->usage.has_value());
}

TEST(CompletionTest, EmptyStringContentIsNotNull) {
  Result<ParsedCompletion> r = ParseCompletion(
      R"({"choices":[{"message":{"role":"assistant","content":""}}]})");
  ASSERT_OK(r);
  EXPECT_FALSE(r->content_null);
  EXPECT_EQ(r->content, "");
}

TEST(CompletionTest, ReadsReasoning) {
  Result<ParsedCompletion> r = ParseCompletion(
      R"({"choices":[{"message":{"role":"assistant","content":"42",)"
      R"("reasoning":"Let me think.","reasoning_details":[{"type":)"
      R"("reasoning.text","text":"Let me think.","index":0}]},)"
      R"("finish_reason":"stop"}]})");
  ASSERT_OK(r);
  EXPECT_EQ(r->content, "42");
  EXPECT_EQ(r->reasoning, "Let me think.");
}

TEST(CompletionTest, ReadsToolCalls) {
  Result<ParsedCompletion> r = ParseCompletion(
      R"({"id":"gen-2","model":"anthropic/claude-sonnet-4.5","choices":[{)"
      R"("index":0,"finish_reason":"tool_calls","native_finish_reason":)"
      R"("tool_use","message":{"role":"assistant","content":null,)"
      R"("tool_calls":[{"id":"call_a","type":"function","function":{"name":)"
      R"("get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"call_b",)"
      R"("type":"function","function":{"name":"get_time","arguments":"{}"}}]}}]})");
  ASSERT_OK(r);
  EXPECT_TRUE(r->content_null);
  ASSERT_EQ(r->tool_calls.size(), 2u);
  EXPECT_EQ(r->tool_calls[0].index, 0);
  EXPECT_EQ(r->tool_calls[0].id, "call_a");
  EXPECT_EQ(r->tool_calls[0].type, "function");
  EXPECT_EQ(r->tool_calls[0].name, "get_weather");
  EXPECT_EQ(r->tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(r->tool_calls[1].index, 1);
  EXPECT_EQ(r->tool_calls[1].id, "call_b");
  EXPECT_EQ(r->tool_calls[1].name, "get_time");
  EXPECT_EQ(r->tool_calls[1].arguments, "{}");
  EXPECT_EQ(r->finish_reason, "tool_calls");
  EXPECT_EQ(r->native_finish_reason, "tool_use");
}

TEST(CompletionTest, ReadsARefusal) {
  Result<ParsedCompletion> r = ParseCompletion(
      R"({"choices":[{"message":{"role":"assistant","content":null,)"
      R"("refusal":"I can't help with that."},"finish_reason":"stop"}]})");
  ASSERT_OK(r);
  EXPECT_TRUE(r->content_null);
  EXPECT_EQ(r->refusal, "I can't help with that.");
  EXPECT_EQ(ParseCompletion(kFullResponse)->refusal, "");  // refusal: null
}

// n > 1: the essentials are the first choice's; an error in any choice is
// the response's.
TEST(CompletionTest, SeveralChoices) {
  Result<ParsedCompletion> r = ParseCompletion(
      R"({"choices":[{"index":0,"message":{"content":"first"},)"
      R"("finish_reason":"stop"},{"index":1,"message":{"content":"sec"},)"
      R"("finish_reason":"error","error":{"code":502,"message":"cut"}}]})");
  ASSERT_OK(r);
  EXPECT_EQ(r->content, "first");
  EXPECT_EQ(r->finish_reason, "stop");
  ASSERT_TRUE(r->error.has_value());
  EXPECT_EQ(r->error->message, "cut");
  EXPECT_THAT(WhyNotCacheable(200, *r), HasSubstr("error"));
}

TEST(CompletionTest, UsageWithNullDetailsAndNoCost) {
  Result<ParsedCompletion> r = ParseCompletion(
      R"({"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":)"
      R"(10,"completion_tokens":2,"total_tokens":12,)"
      R"("prompt_tokens_details":null,"completion_tokens_details":null}})");
  ASSERT_OK(r);
  ASSERT_TRUE(r->usage.has_value());
  EXPECT_EQ(r->usage->prompt_tokens, 10u);
  EXPECT_EQ(r->usage->completion_tokens, 2u);
  EXPECT_EQ(r->usage->total_tokens, 12u);
  EXPECT_EQ(r->usage->cached_tokens, 0u);
  EXPECT_EQ(r->usage->cache_write_tokens, 0u);
  EXPECT_EQ(r->usage->reasoning_tokens, 0u);
  EXPECT_FALSE(r->usage->cost.has_value());
}

TEST(CompletionTest, UsageWithNullCostHasNoCost) {
  Result<ParsedCompletion> r = ParseCompletion(
      R"({"choices":[],"usage":{"prompt_tokens":1,"cost":null}})");
  ASSERT_OK(r);
  ASSERT_TRUE(r->usage.has_value());
  EXPECT_FALSE(r->usage->cost.has_value());
}

TEST(CompletionTest, TopLevelErrorWith200HasNoChoices) {
  Result<ParsedCompletion> r = ParseCompletion(
      R"({"error":{"code":502,"message":"Provider returned error",)"
      R"("metadata":{"raw":"upstream said no","provider_name":"OpenAI"}},)"
      R"("user_id":"user_1"})");
  ASSERT_OK(r);
  EXPECT_FALSE(r->has_choices);
  ASSERT_TRUE(r->error.has_value());
  EXPECT_EQ(r->error->code, 502);
  EXPECT_EQ(r->error->code_text, "");
  EXPECT_EQ(r->error->message, "Provider returned error");
  EXPECT_EQ(r->error->metadata_json,
            R"({"raw":"upstream said no","provider_name":"OpenAI"})");
}

TEST(CompletionTest, ChoiceLevelErrorKeepsPartialOutput) {
  Result<ParsedCompletion> r = ParseCompletion(
      R"({"choices":[{"message":{"role":"assistant","content":)"
      R"("partial output..."},"finish_reason":"error","error":{"code":502,)"
      R"("message":"Provider disconnected mid-stream","metadata":)"
      R"({"error_type":"provider_unavailable"}}}]})");
  ASSERT_OK(r);
  EXPECT_TRUE(r->has_choices);
  EXPECT_EQ(r->content, "partial output...");
  EXPECT_EQ(r->finish_reason, "error");
  ASSERT_TRUE(r->error.has_value());
  EXPECT_EQ(r->error->code, 502);
  EXPECT_EQ(r->error->message, "Provider disconnected mid-stream");
  EXPECT_EQ(r->error->metadata_json,
            R"({"error_type":"provider_unavailable"})");
}

TEST(CompletionTest, StringErrorCodeIsKeptAsText) {
  Result<ParsedCompletion> r =
      ParseCompletion(R"({"error":{"code":"server_error","message":"boom"}})");
  ASSERT_OK(r);
  ASSERT_TRUE(r->error.has_value());
  EXPECT_EQ(r->error->code, 0);
  EXPECT_EQ(r->error->code_text, "server_error");
  EXPECT_EQ(r->error->message, "boom");
  EXPECT_EQ(r->error->metadata_json, "");
}

TEST(CompletionTest, NullErrorIsNoError) {
  Result<ParsedCompletion> r =
      ParseCompletion(R"({"error":null,"choices":[{"message":{"content":"ok"},)"
                      R"("error":null}]})");
  ASSERT_OK(r);
  EXPECT_FALSE(r->error.has_value());
}

TEST(CompletionTest, RejectsBodiesThatAreNotJsonObjects) {
  EXPECT_THAT(ParseCompletion(""), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseCompletion("<html>502</html>"),
              StatusIs(StatusCode::kInvalidArgument, "not JSON"));
  EXPECT_THAT(ParseCompletion("[1,2]"),
              StatusIs(StatusCode::kInvalidArgument, "not a JSON object"));
  EXPECT_THAT(ParseCompletion(R"({"id":"gen-1")"),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(CompletionTest, ParseErrorEnvelope) {
  std::optional<ApiError> e = ParseErrorEnvelope(
      R"({"error":{"message":"No auth credentials found","code":401}})");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, 401);
  EXPECT_EQ(e->message, "No auth credentials found");

  // Availability errors may carry http_status instead of code
  // (docs/openrouter.md#error-envelope).
  e = ParseErrorEnvelope(
      R"({"error":{"message":"No endpoints","error_type":"not_found",)"
      R"("http_status":404}})");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, 404);

  EXPECT_FALSE(ParseErrorEnvelope(kFullResponse).has_value());
  EXPECT_FALSE(ParseErrorEnvelope("not json").has_value());
  EXPECT_FALSE(ParseErrorEnvelope(R"({"error":null})").has_value());
  EXPECT_FALSE(ParseErrorEnvelope("").has_value());
}

struct UpstreamCase {
  int http;
  StatusCode code;
};

TEST(CompletionStatusTest, MapsEveryDocumentedStatus) {
  const std::vector<UpstreamCase> cases = {
      {400, StatusCode::kInvalidArgument},
      {401, StatusCode::kUnauthenticated},
      {402, StatusCode::kResourceExhausted},
      {403, StatusCode::kPermissionDenied},
      {404, StatusCode::kNotFound},
      {408, StatusCode::kDeadlineExceeded},
      {413, StatusCode::kInvalidArgument},
      {422, StatusCode::kInvalidArgument},
      {429, StatusCode::kResourceExhausted},
      {500, StatusCode::kInternal},
      {502, StatusCode::kUnavailable},
      {503, StatusCode::kUnavailable},
      {504, StatusCode::kDeadlineExceeded},
      {524, StatusCode::kDeadlineExceeded},
      {529, StatusCode::kUnavailable},
      {418, StatusCode::kUnknown},
      {501, StatusCode::kUnknown},
      {302, StatusCode::kUnknown},
  };
  for (const UpstreamCase& c : cases) {
    const std::string body = R"({"error":{"code":)" + std::to_string(c.http) +
                             R"(,"message":"Something went wrong"},)"
                             R"("user_id":"user_x"})";
    const Status s = StatusFromUpstream(c.http, body);
    EXPECT_EQ(s.code(), c.code) << c.http << ": " << s;
    EXPECT_EQ(s.message(),
              "upstream " + std::to_string(c.http) + ": Something went wrong")
        << c.http;
  }
}

TEST(CompletionStatusTest, UsesTheMessageOfTheEnvelope) {
  const Status s = StatusFromUpstream(
      402,
      R"({"error":{"message":"This request requires more credits, or fewer )"
      R"(max_tokens.","code":402,"metadata":{"provider_name":null}},)"
      R"("user_id":"user_1"})");
  EXPECT_THAT(s, StatusIs(StatusCode::kResourceExhausted,
                          "upstream 402: This request requires more credits"));
}

TEST(CompletionStatusTest, TwoHundredWithErrorFollowsErrorCode) {
  EXPECT_THAT(
      StatusFromUpstream(200, R"({"error":{"code":429,"message":"Rate limit )"
                              R"(exceeded","metadata":{"error_type":)"
                              R"("rate_limit_exceeded"}}})"),
      StatusIs(StatusCode::kResourceExhausted,
               "upstream 429: Rate limit exceeded"));
  // The choice-level form (docs/openrouter.md#errors-in-200).
  EXPECT_THAT(
      StatusFromUpstream(
          200, R"({"choices":[{"message":{"content":"partial"},)"
               R"("finish_reason":"error","error":{"code":502,"message":)"
               R"("Provider disconnected mid-stream"}}]})"),
      StatusIs(StatusCode::kUnavailable,
               "upstream 502: Provider disconnected mid-stream"));
  // A string code gives no HTTP-like status to follow.
  EXPECT_THAT(StatusFromUpstream(
                  200, R"({"error":{"code":"server_error","message":"x"}})"),
              StatusIs(StatusCode::kUnknown, "upstream 200: x"));
}

TEST(CompletionStatusTest, NonJsonBodyGivesASanitisedShortPrefix) {
  const std::string html =
      "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
      "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>"
      "\r\n</body>\r\n</html>\r\n" +
      std::string(5000, 'x');
  const Status s = StatusFromUpstream(502, html);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_THAT(
      std::string(s.message()),
      StartsWith("upstream 502: 502 Bad Gateway 502 Bad Gateway nginx"));
  EXPECT_LE(s.message().size(), 200u);
  for (char ch : s.message()) {
    const auto c = static_cast<unsigned char>(ch);
    EXPECT_TRUE(c >= 0x20 && c != 0x7F) << "control char " << int{c};
  }
}

TEST(CompletionStatusTest, BinaryGarbageIsSanitised) {
  std::string body = "oops\x01\x02\x1b[31m\tred\n";
  body += "\xC3\xA9t\xC3\xA9 ";  // "été", kept
  body += "\xFF\xFE";            // invalid UTF-8
  body += std::string(1000, '\n');
  body += "tail";
  const Status s = StatusFromUpstream(503, body);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(),
            "upstream 503: oops [31m red \xC3\xA9t\xC3\xA9 ?? tail");
}

TEST(CompletionStatusTest, LongBodyIsCutOnACharacterBoundary) {
  std::string body;
  for (int i = 0; i < 200; ++i) body += "\xE2\x82\xAC";  // "€"
  const Status s = StatusFromUpstream(500, body);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  std::string_view m = s.message();
  ASSERT_TRUE(m.size() > 3 && m.substr(m.size() - 3) == "...");
  m.remove_suffix(3);
  m.remove_prefix(std::string_view("upstream 500: ").size());
  EXPECT_EQ(m.size() % 3, 0u);
  EXPECT_LE(m.size(), 160u);
}

TEST(CompletionStatusTest, EmptyBody) {
  EXPECT_THAT(
      StatusFromUpstream(504, ""),
      StatusIs(StatusCode::kDeadlineExceeded, "upstream 504: (empty body)"));
}

TEST(CompletionStatusTest, JsonWithoutEnvelopeIsQuoted) {
  EXPECT_THAT(StatusFromUpstream(404, R"({"detail":"Not Found"})"),
              StatusIs(StatusCode::kNotFound,
                       R"(upstream 404: {"detail":"Not Found"})"));
}

TEST(CompletionStatusTest, ControlCharactersInJsonMessagesAreRemoved) {
  const Status s = StatusFromUpstream(
      400, R"({"error":{"code":400,"message":"line one\nline two\u0007"}})");
  EXPECT_EQ(s.message(), "upstream 400: line one line two");
}

ParsedCompletion Parse(std::string_view body) {
  Result<ParsedCompletion> r = ParseCompletion(body);
  EXPECT_OK(r);
  return r.ok() ? *r : ParsedCompletion();
}

TEST(CompletionCacheabilityTest, CleanResponsesMayBeStored) {
  EXPECT_EQ(WhyNotCacheable(200, Parse(kFullResponse)), "");
  EXPECT_EQ(WhyNotCacheable(
                200, Parse(R"({"choices":[{"message":{"content":null,)"
                           R"("tool_calls":[{"id":"c","type":"function",)"
                           R"("function":{"name":"f","arguments":"{}"}}]},)"
                           R"("finish_reason":"tool_calls"}]})")),
            "");
}

TEST(CompletionCacheabilityTest, NonOkStatus) {
  EXPECT_THAT(WhyNotCacheable(500, Parse(kFullResponse)), HasSubstr("500"));
  EXPECT_THAT(WhyNotCacheable(201, Parse(kFullResponse)), HasSubstr("201"));
}

TEST(CompletionCacheabilityTest, TopLevelError) {
  EXPECT_THAT(
      WhyNotCacheable(200, Parse(R"({"error":{"code":429,"message":"slow"}})")),
      HasSubstr("error"));
}

TEST(CompletionCacheabilityTest, ChoiceLevelError) {
  const ParsedCompletion c =
      Parse(R"({"choices":[{"message":{"content":"partial"},)"
            R"("finish_reason":"stop","error":{"code":502,"message":"x"}}]})");
  EXPECT_THAT(WhyNotCacheable(200, c), HasSubstr("error"));
}

TEST(CompletionCacheabilityTest, FinishReasonError) {
  const ParsedCompletion c = Parse(
      R"({"choices":[{"message":{"content":"partial"},"finish_reason":"error"}]})");
  EXPECT_THAT(WhyNotCacheable(200, c), HasSubstr("finish_reason"));
}

TEST(CompletionCacheabilityTest, ARefusalMayBeStored) {
  // A refusal is the model's answer: replaying it is as faithful as any.
  EXPECT_EQ(WhyNotCacheable(
                200, Parse(R"({"choices":[{"message":{"content":null,)"
                           R"("refusal":"No."},"finish_reason":"stop"}]})")),
            "");
}

TEST(CompletionCacheabilityTest, NoContentAndNoToolCalls) {
  EXPECT_THAT(
      WhyNotCacheable(200, Parse(R"({"choices":[{"message":{"content":null},)"
                                 R"("finish_reason":"stop"}]})")),
      HasSubstr("no content"));
  EXPECT_THAT(
      WhyNotCacheable(200, Parse(R"({"choices":[{"message":{"content":""},)"
                                 R"("finish_reason":"stop"}]})")),
      HasSubstr("no content"));
  EXPECT_THAT(
      WhyNotCacheable(200, Parse(R"({"choices":[{"message":{"content":null,)"
                                 R"("refusal":""},"finish_reason":"stop"}]})")),
      HasSubstr("no refusal"));
  EXPECT_NE(WhyNotCacheable(200, Parse(R"({"choices":[]})")), "");
}

TEST(CompletionUsageTest, RoundsCostToNanoUsd) {
  CompletionUsage u;
  u.prompt_tokens = 29;
  u.completion_tokens = 33;
  u.total_tokens = 62;
  u.cached_tokens = 3;
  u.cache_write_tokens = 5;
  u.cost = 0.00002415;
  const Usage e = ToEngineUsage(u);
  EXPECT_EQ(e.prompt_tokens, 29u);
  EXPECT_EQ(e.completion_tokens, 33u);
  EXPECT_EQ(e.cached_tokens, 3u);
  EXPECT_EQ(e.cache_write_tokens, 5u);
  EXPECT_EQ(e.cost_nanousd, 24150);

  u.cost = 0.1178335;
  EXPECT_EQ(ToEngineUsage(u).cost_nanousd, 117833500);
  u.cost = 1.4999999e-9;  // rounds to nearest
  EXPECT_EQ(ToEngineUsage(u).cost_nanousd, 1);
}

TEST(CompletionUsageTest, AbsentCostIsZero) {
  CompletionUsage u;
  u.prompt_tokens = 1;
  EXPECT_EQ(ToEngineUsage(u).cost_nanousd, 0);
}

TEST(CompletionUsageTest, FromAParsedResponse) {
  const ParsedCompletion c = Parse(kFullResponse);
  ASSERT_TRUE(c.usage.has_value());
  EXPECT_EQ(ToEngineUsage(*c.usage).cost_nanousd, 24150);
}

}  // namespace
}  // namespace llmcache::net
