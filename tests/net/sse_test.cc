// Tests for the SSE parser, the stream accumulator and the replay of stored
// responses (llmcache/net/sse.h), on the wire shapes of docs/openrouter.md (#streaming-sse,
// #errors-in-200).

#include "llmcache/net/sse.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "llmcache/net/completion.h"
#include "testing/status_matchers.h"

namespace llmcache::net {
namespace {

namespace json = boost::json;
using ::llmcache::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using Ev = std::tuple<std::string, std::string, std::string>;  // event,data,id

// Feeds `parts` in order and returns the events, as tuples.
std::vector<Ev> FeedParts(SseParser& parser,
                          const std::vector<std::string_view>& parts) {
  std::vector<Ev> events;
  for (std::string_view part : parts) {
    parser.Feed(part, [&events](SseEvent&& e) {
      events.emplace_back(std::move(e.event), std::move(e.data),
                          std::move(e.id));
    });
  }
  return events;
}

std::vector<Ev> FeedWhole(std::string_view stream, bool* truncated = nullptr) {
  SseParser parser;
  std::vector<Ev> events = FeedParts(parser, {stream});
  const bool t = parser.Finish();
  if (truncated != nullptr) *truncated = t;
  return events;
}

std::vector<Ev> FeedBytewise(std::string_view stream) {
  SseParser parser;
  std::vector<Ev> events;
  for (size_t i = 0; i < stream.size(); ++i) {
    std::vector<Ev> more = FeedParts(parser, {stream.substr(i, 1)});
    events.insert(events.end(), more.begin(), more.end());
  }
  EXPECT_FALSE(parser.Finish());
  return events;
}

Ev Data(std::string data) { return Ev("", std::move(data), ""); }

std::string Replace(std::string s, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  for (size_t hit = s.find(from); hit != std::string::npos;
       hit = s.find(from, pos)) {
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
  }
  out.append(s, pos);
  return out;
}

// A realistic OpenRouter stream (docs/openrouter.md#streaming-sse): keep-alive comments, role chunk,
// content pieces (one multibyte), reasoning, two interleaved tool calls, a
// finish chunk, the usage chunk and [DONE].
const std::string& RealisticStream() {
  static const std::string* const kStream = new std::string(
      ": OPENROUTER PROCESSING\n\n"
      ": OPENROUTER PROCESSING\n\n"
      R"(data: {"id":"gen-1","provider":"OpenAI","model":"openai/gpt-4o",)"
      R"("object":"chat.completion.chunk","created":1739458867,"choices":[{)"
      R"("index":0,"delta":{"role":"assistant","content":""},)"
      R"("finish_reason":null,"native_finish_reason":null,"logprobs":null}],)"
      R"("system_fingerprint":"fp_1"})"
      "\n\n"
      R"(data: {"id":"gen-1","provider":"OpenAI","model":"openai/gpt-4o",)"
      R"("object":"chat.completion.chunk","created":1739458867,"choices":[{)"
      R"("index":0,"delta":{"role":"assistant","reasoning":"Think "},)"
      R"("finish_reason":null}]})"
      "\n\n"
      ": OPENROUTER PROCESSING\n\n"
      R"(data: {"id":"gen-1","provider":"OpenAI","model":"openai/gpt-4o",)"
      R"("object":"chat.completion.chunk","created":1739458867,"choices":[{)"
      R"("index":0,"delta":{"role":"assistant","reasoning":"hard."},)"
      R"("finish_reason":null}]})"
      "\n\n"
      R"(data: {"id":"gen-1","provider":"OpenAI","model":"openai/gpt-4o",)"
      R"("object":"chat.completion.chunk","created":1739458867,"choices":[{)"
      R"("index":0,"delta":{"role":"assistant","content":"Hello, "},)"
      R"("finish_reason":null}]})"
      "\n\n"
      "data: {\"id\":\"gen-1\",\"provider\":\"OpenAI\",\"model\":"
      "\"openai/gpt-4o\",\"object\":\"chat.completion.chunk\",\"created\":"
      "1739458867,\"choices\":[{\"index\":0,\"delta\":{\"content\":"
      "\"w\xC3\xB6rld \xE2\x82\xAC\xF0\x9F\x98\x80\"},\"finish_reason\":null}]}"
      "\n\n"
      R"(data: {"id":"gen-1","provider":"OpenAI","model":"openai/gpt-4o",)"
      R"("object":"chat.completion.chunk","created":1739458867,"choices":[{)"
      R"("index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":)"
      R"("function","function":{"name":"get_weather","arguments":""}}]},)"
      R"("finish_reason":null}]})"
      "\n\n"
      R"(data: {"id":"gen-1","provider":"OpenAI","model":"openai/gpt-4o",)"
      R"("object":"chat.completion.chunk","created":1739458867,"choices":[{)"
      R"("index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":)"
      R"("function","function":{"name":"get_time","arguments":"{\"tz\":"}}]},)"
      R"("finish_reason":null}]})"
      "\n\n"
      R"(data: {"id":"gen-1","provider":"OpenAI","model":"openai/gpt-4o",)"
      R"("object":"chat.completion.chunk","created":1739458867,"choices":[{)"
      R"("index":0,"delta":{"tool_calls":[{"index":0,"function":)"
      R"({"arguments":"{\"city\":"}},{"index":1,"function":{"arguments":)"
      R"("\"UTC\"}"}}]},"finish_reason":null}]})"
      "\n\n"
      R"(data: {"id":"gen-1","provider":"OpenAI","model":"openai/gpt-4o",)"
      R"("object":"chat.completion.chunk","created":1739458867,"choices":[{)"
      R"("index":0,"delta":{"tool_calls":[{"index":0,"function":)"
      R"({"arguments":"\"Paris\"}"}}]},"finish_reason":null}]})"
      "\n\n"
      R"(data: {"id":"gen-1","provider":"OpenAI","model":"openai/gpt-4o",)"
      R"("object":"chat.completion.chunk","created":1739458867,"choices":[{)"
      R"("index":0,"delta":{"role":"assistant","content":""},)"
      R"("finish_reason":"tool_calls","native_finish_reason":"tool_calls",)"
      R"("logprobs":null}]})"
      "\n\n"
      R"(data: {"id":"gen-1","provider":"OpenAI","model":"openai/gpt-4o",)"
      R"("object":"chat.completion.chunk","created":1739458867,"choices":[],)"
      R"("usage":{"prompt_tokens":1697,"completion_tokens":52,)"
      R"("total_tokens":1749,"cost":0.0052365,"is_byok":false,)"
      R"("prompt_tokens_details":{"cached_tokens":1024,)"
      R"("cache_write_tokens":0},"completion_tokens_details":)"
      R"({"reasoning_tokens":4}}})"
      "\n\n"
      "data: [DONE]\n\n");
  return *kStream;
}

constexpr int kRealisticEvents = 12;  // 11 chunks + [DONE]

// ---------------------------------------------------------------------------
// SseParser

TEST(SseParserTest, LfCrlfAndLoneCrGiveTheSameEvents) {
  const std::string lf = "data: a\n\nevent: x\ndata: b\nid: 7\n\n";
  const std::vector<Ev> want = {Data("a"), Ev("x", "b", "7")};
  EXPECT_EQ(FeedWhole(lf), want);
  EXPECT_EQ(FeedWhole(Replace(lf, "\n", "\r\n")), want);
  EXPECT_EQ(FeedWhole(Replace(lf, "\n", "\r")), want);
  // Mixed in one stream.
  EXPECT_EQ(FeedWhole("data: a\r\n\rdata: b\n\r\n"),
            (std::vector<Ev>{Data("a"), Data("b")}));
}

TEST(SseParserTest, CommentsAnywhereAreSkippedAndCounted) {
  SseParser parser;
  const std::vector<Ev> events = FeedParts(
      parser, {": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n"
               "data: one\n: OPENROUTER PROCESSING\ndata: two\n\n"
               ":\n\n"
               "data: three\n\n: trailing\n"});
  EXPECT_EQ(events, (std::vector<Ev>{Data("one\ntwo"), Data("three")}));
  EXPECT_EQ(parser.comments(), 5u);
  EXPECT_FALSE(parser.Finish());
}

TEST(SseParserTest, MultiLineDataIsJoinedWithNewlines) {
  EXPECT_THAT(FeedWhole("data: {\"a\":\ndata: 1}\ndata:\ndata:  x\n\n"),
              ElementsAre(Data("{\"a\":\n1}\n\n x")));
}

TEST(SseParserTest, FieldRules) {
  // No space after the colon; only one space removed; a bare field name is a
  // field with an empty value; unknown fields and retry are ignored.
  EXPECT_THAT(FeedWhole("data:x\n\ndata:  y\n\ndata\n\nretry: 10\nfoo: bar\n"
                        "data: z\n\n"),
              ElementsAre(Data("x"), Data(" y"), Data(""), Data("z")));
  // An event without data is not dispatched, and its type does not leak.
  EXPECT_THAT(FeedWhole("event: ping\n\ndata: d\n\n"), ElementsAre(Data("d")));
  // The last event ID persists across events.
  EXPECT_THAT(FeedWhole("id: 1\ndata: a\n\ndata: b\n\n"),
              ElementsAre(Ev("", "a", "1"), Ev("", "b", "1")));
  // A colon inside the value is kept.
  EXPECT_THAT(FeedWhole("data: a: b\n\n"), ElementsAre(Data("a: b")));
}

TEST(SseParserTest, DoneAndErrorEventsAreOrdinaryData) {
  const std::string error_event =
      R"({"id":"gen-abc123","object":"chat.completion.chunk",)"
      R"("created":1234567890,"model":"openai/gpt-4o","provider":"OpenAI",)"
      R"("error":{"code":429,"message":"Rate limit exceeded"},"choices":)"
      R"([{"index":0,"delta":{"content":""},"finish_reason":"error"}]})";
  EXPECT_THAT(FeedWhole("data: " + error_event + "\n\ndata: [DONE]\n\n"),
              ElementsAre(Data(error_event), Data("[DONE]")));
}

TEST(SseParserTest, UnterminatedEventIsDiscardedAndReported) {
  bool truncated = false;
  EXPECT_THAT(FeedWhole("data: a\n\ndata: b", &truncated),
              ElementsAre(Data("a")));
  EXPECT_TRUE(truncated);
  EXPECT_THAT(FeedWhole("data: a\n\ndata: b\n", &truncated),
              ElementsAre(Data("a")));
  EXPECT_TRUE(truncated);
  EXPECT_THAT(FeedWhole("data: a\n\n", &truncated), ElementsAre(Data("a")));
  EXPECT_FALSE(truncated);
  EXPECT_THAT(FeedWhole("", &truncated), ElementsAre());
  EXPECT_FALSE(truncated);
}

TEST(SseParserTest, FinishResetsTheParser) {
  SseParser parser;
  EXPECT_TRUE(FeedParts(parser, {"data: partial"}).empty());
  EXPECT_TRUE(parser.Finish());
  EXPECT_THAT(FeedParts(parser, {"data: next\n\n"}), ElementsAre(Data("next")));
  EXPECT_FALSE(parser.Finish());
}

TEST(SseParserTest, CrAtTheEndOfAFeedThenLfAtTheStartOfTheNext) {
  SseParser parser;
  std::vector<Ev> events =
      FeedParts(parser, {"data: a\r", "\n\r", "\ndata: b\r", "\r"});
  EXPECT_EQ(events, (std::vector<Ev>{Data("a"), Data("b")}));
  // An empty Feed between CR and LF does not lose the pairing.
  SseParser p2;
  events = FeedParts(p2, {"data: c\r", "", "\n", "\r", "", "\n"});
  EXPECT_EQ(events, (std::vector<Ev>{Data("c")}));
}

class SseSplitTest : public ::testing::TestWithParam<std::string_view> {
 protected:
  std::string Stream() const {
    return Replace(RealisticStream(), "\n", std::string(GetParam()));
  }
};

TEST_P(SseSplitTest, OneByteAtATimeEqualsWholeFeed) {
  const std::string stream = Stream();
  const std::vector<Ev> whole = FeedWhole(stream);
  ASSERT_EQ(whole.size(), static_cast<size_t>(kRealisticEvents));
  EXPECT_EQ(FeedBytewise(stream), whole);
}

TEST_P(SseSplitTest, EverySplitPointEqualsWholeFeed) {
  const std::string stream = Stream();
  const std::vector<Ev> whole = FeedWhole(stream);
  for (size_t split = 0; split <= stream.size(); ++split) {
    SseParser parser;
    const std::string_view s(stream);
    std::vector<Ev> got =
        FeedParts(parser, {s.substr(0, split), s.substr(split)});
    EXPECT_FALSE(parser.Finish()) << "split at " << split;
    ASSERT_EQ(got, whole) << "split at " << split;
  }
}

TEST_P(SseSplitTest, EveryPairOfSplitPointsNearLineEnds) {
  // Three-way splits around every line terminator (where CRLF pairs break).
  const std::string stream = Stream();
  const std::vector<Ev> whole = FeedWhole(stream);
  const std::string_view s(stream);
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\r' && s[i] != '\n') continue;
    for (size_t j = i + 1; j <= std::min(s.size(), i + 3); ++j) {
      SseParser parser;
      std::vector<Ev> got =
          FeedParts(parser, {s.substr(0, i), s.substr(i, j - i), s.substr(j)});
      ASSERT_EQ(got, whole) << "splits at " << i << ", " << j;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Sse, SseSplitTest, ::testing::Values("\n", "\r\n", "\r"),
    [](const ::testing::TestParamInfo<std::string_view>& i) {
      return i.param == "\n"     ? std::string("Lf")
             : i.param == "\r\n" ? std::string("Crlf")
                                 : std::string("Cr");
    });

// ---------------------------------------------------------------------------
// StreamAccumulator

// Parses `stream` and adds every event to `acc`; returns the first error.
Status Accumulate(std::string_view stream, StreamAccumulator* acc) {
  SseParser parser;
  Status status;
  parser.Feed(stream, [&](SseEvent&& e) {
    if (status.ok()) status = acc->Add(e.data);
  });
  if (parser.Finish()) return DataLossError("truncated stream");
  return status;
}

TEST(StreamAccumulatorTest, AccumulatesTheRealisticStream) {
  StreamAccumulator acc;
  ASSERT_OK(Accumulate(RealisticStream(), &acc));
  EXPECT_TRUE(acc.done());
  EXPECT_FALSE(acc.error().has_value());
  const ParsedCompletion c = acc.Result();
  EXPECT_EQ(c.id, "gen-1");
  EXPECT_EQ(c.model, "openai/gpt-4o");
  EXPECT_EQ(c.provider, "OpenAI");
  EXPECT_EQ(c.created, 1739458867);
  EXPECT_TRUE(c.has_choices);
  EXPECT_FALSE(c.content_null);
  EXPECT_EQ(c.content, "Hello, w\xC3\xB6rld \xE2\x82\xAC\xF0\x9F\x98\x80");
  EXPECT_EQ(c.reasoning, "Think hard.");
  ASSERT_EQ(c.tool_calls.size(), 2u);
  EXPECT_EQ(c.tool_calls[0].index, 0);
  EXPECT_EQ(c.tool_calls[0].id, "call_a");
  EXPECT_EQ(c.tool_calls[0].type, "function");
  EXPECT_EQ(c.tool_calls[0].name, "get_weather");
  EXPECT_EQ(c.tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(c.tool_calls[1].index, 1);
  EXPECT_EQ(c.tool_calls[1].id, "call_b");
  EXPECT_EQ(c.tool_calls[1].name, "get_time");
  EXPECT_EQ(c.tool_calls[1].arguments, R"({"tz":"UTC"})");
  EXPECT_EQ(c.finish_reason, "tool_calls");
  EXPECT_EQ(c.native_finish_reason, "tool_calls");
  EXPECT_FALSE(c.error.has_value());
  ASSERT_TRUE(c.usage.has_value());
  EXPECT_EQ(c.usage->prompt_tokens, 1697u);
  EXPECT_EQ(c.usage->completion_tokens, 52u);
  EXPECT_EQ(c.usage->total_tokens, 1749u);
  EXPECT_EQ(c.usage->cached_tokens, 1024u);
  EXPECT_EQ(c.usage->reasoning_tokens, 4u);
  ASSERT_TRUE(c.usage->cost.has_value());
  EXPECT_DOUBLE_EQ(*c.usage->cost, 0.0052365);
  EXPECT_EQ(WhyNotCacheable(200, c), "");
}

std::string Chunk(std::string_view choices, std::string_view extra = "") {
  std::string s =
      R"({"id":"gen-9","provider":"Anthropic","model":"anthropic/claude-sonnet-4.5",)"
      R"("object":"chat.completion.chunk","created":1764031697,"choices":)";
  s += choices;
  s += extra;
  s += '}';
  return s;
}

constexpr char kUsage[] =
    R"(,"usage":{"prompt_tokens":100,"completion_tokens":5,"total_tokens":105,)"
    R"("cost":0.000375,"prompt_tokens_details":{"cached_tokens":0,)"
    R"("cache_write_tokens":90}})";

// The three usage-chunk shapes of docs/openrouter.md#stream-usage-chunk.
class StreamUsageChunkTest : public ::testing::TestWithParam<std::string_view> {
};

TEST_P(StreamUsageChunkTest, EveryUsageChunkVariantIsRead) {
  StreamAccumulator acc;
  ASSERT_OK(acc.Add(Chunk(
      R"([{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}])")));
  ASSERT_OK(acc.Add(
      Chunk(R"([{"index":0,"delta":{"content":"Hi"},"finish_reason":null}])")));
  ASSERT_OK(acc.Add(Chunk(
      R"([{"index":0,"delta":{"content":""},"finish_reason":"stop","native_finish_reason":"end_turn"}])")));
  ASSERT_OK(acc.Add(Chunk(GetParam(), kUsage)));
  ASSERT_OK(acc.Add("[DONE]"));
  EXPECT_TRUE(acc.done());
  const ParsedCompletion c = acc.Result();
  EXPECT_EQ(c.content, "Hi");
  EXPECT_EQ(c.finish_reason, "stop");
  EXPECT_EQ(c.native_finish_reason, "end_turn");
  ASSERT_TRUE(c.usage.has_value());
  EXPECT_EQ(c.usage->prompt_tokens, 100u);
  EXPECT_EQ(c.usage->cache_write_tokens, 90u);
  EXPECT_DOUBLE_EQ(c.usage->cost.value_or(0), 0.000375);
}

INSTANTIATE_TEST_SUITE_P(
    Stream, StreamUsageChunkTest,
    ::testing::Values(
        "[]",
        R"([{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null,"native_finish_reason":null}])",
        R"([{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop","native_finish_reason":"end_turn"}])"));

TEST(StreamAccumulatorTest, DebugChunkIsIgnored) {
  StreamAccumulator with_debug;
  StreamAccumulator without;
  ASSERT_OK(with_debug.Add(Chunk(
      "[]",
      R"(,"debug":{"echo_upstream_body":{"model":"claude","messages":[]}})")));
  for (StreamAccumulator* acc : {&with_debug, &without}) {
    ASSERT_OK(acc->Add(Chunk(
        R"([{"index":0,"delta":{"role":"assistant","content":"x"},"finish_reason":"stop"}])")));
    ASSERT_OK(acc->Add(Chunk("[]", kUsage)));
  }
  EXPECT_EQ(with_debug.ToCompletionJson(), without.ToCompletionJson());
  EXPECT_EQ(with_debug.Result().content, "x");
}

TEST(StreamAccumulatorTest, NonJsonDataIsInvalidArgument) {
  StreamAccumulator acc;
  EXPECT_THAT(acc.Add(": OPENROUTER PROCESSING"),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(acc.Add(R"({"id":"gen-1","choices":[)"),
              StatusIs(StatusCode::kInvalidArgument, "not a JSON object"));
  EXPECT_THAT(acc.Add("42"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_FALSE(acc.done());
}

TEST(StreamAccumulatorTest, MidStreamErrorIsRecorded) {
  const std::string stream =
      "data: " +
      Chunk(
          R"([{"index":0,"delta":{"role":"assistant","content":"Par"},"finish_reason":null}])") +
      "\n\n"
      R"(data: {"id":"gen-abc123","object":"chat.completion.chunk",)"
      R"("created":1234567890,"model":"openai/gpt-4o","provider":"OpenAI",)"
      R"("error":{"code":429,"message":"Rate limit exceeded","metadata":)"
      R"({"error_type":"rate_limit_exceeded"}},"choices":[{"index":0,)"
      R"("delta":{"content":""},"finish_reason":"error"}]})"
      "\n\n";
  StreamAccumulator acc;
  ASSERT_OK(Accumulate(stream, &acc));
  EXPECT_FALSE(acc.done());
  ASSERT_TRUE(acc.error().has_value());
  EXPECT_EQ(acc.error()->code, 429);
  EXPECT_EQ(acc.error()->message, "Rate limit exceeded");
  EXPECT_EQ(acc.error()->metadata_json,
            R"({"error_type":"rate_limit_exceeded"})");
  const ParsedCompletion c = acc.Result();
  EXPECT_EQ(c.content, "Par");
  EXPECT_EQ(c.finish_reason, "error");
  ASSERT_TRUE(c.error.has_value());
  EXPECT_NE(WhyNotCacheable(200, c), "");

  // The stored form keeps the error, so it is never mistaken for clean.
  Result<ParsedCompletion> back = ParseCompletion(acc.ToCompletionJson());
  ASSERT_OK(back);
  ASSERT_TRUE(back->error.has_value());
  EXPECT_EQ(back->error->code, 429);
  EXPECT_EQ(back->finish_reason, "error");
}

TEST(StreamAccumulatorTest, MidStreamErrorWithStringCode) {
  StreamAccumulator acc;
  ASSERT_OK(
      acc.Add(R"({"id":"g","object":"chat.completion.chunk","error":{"code":)"
              R"("server_error","message":"Internal"},"choices":[]})"));
  ASSERT_TRUE(acc.error().has_value());
  EXPECT_EQ(acc.error()->code, 0);
  EXPECT_EQ(acc.error()->code_text, "server_error");
}

void ExpectSameResponse(const ParsedCompletion& a, const ParsedCompletion& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.provider, b.provider);
  EXPECT_EQ(a.created, b.created);
  EXPECT_EQ(a.content, b.content);
  EXPECT_EQ(a.content_null, b.content_null);
  EXPECT_EQ(a.reasoning, b.reasoning);
  ASSERT_EQ(a.tool_calls.size(), b.tool_calls.size());
  for (size_t i = 0; i < a.tool_calls.size(); ++i) {
    EXPECT_EQ(a.tool_calls[i].index, b.tool_calls[i].index) << i;
    EXPECT_EQ(a.tool_calls[i].id, b.tool_calls[i].id) << i;
    EXPECT_EQ(a.tool_calls[i].type, b.tool_calls[i].type) << i;
    EXPECT_EQ(a.tool_calls[i].name, b.tool_calls[i].name) << i;
    EXPECT_EQ(a.tool_calls[i].arguments, b.tool_calls[i].arguments) << i;
  }
  EXPECT_EQ(a.finish_reason, b.finish_reason);
  EXPECT_EQ(a.native_finish_reason, b.native_finish_reason);
  EXPECT_EQ(a.has_choices, b.has_choices);
  ASSERT_EQ(a.usage.has_value(), b.usage.has_value());
  if (a.usage) {
    EXPECT_EQ(a.usage->prompt_tokens, b.usage->prompt_tokens);
    EXPECT_EQ(a.usage->completion_tokens, b.usage->completion_tokens);
    EXPECT_EQ(a.usage->total_tokens, b.usage->total_tokens);
    EXPECT_EQ(a.usage->cached_tokens, b.usage->cached_tokens);
    EXPECT_EQ(a.usage->cache_write_tokens, b.usage->cache_write_tokens);
    EXPECT_EQ(a.usage->reasoning_tokens, b.usage->reasoning_tokens);
    EXPECT_EQ(a.usage->cost, b.usage->cost);
  }
  EXPECT_EQ(a.error.has_value(), b.error.has_value());
}

TEST(StreamAccumulatorTest, ToCompletionJsonRoundTripsThroughParseCompletion) {
  StreamAccumulator acc;
  ASSERT_OK(Accumulate(RealisticStream(), &acc));
  const std::string body = acc.ToCompletionJson();
  Result<ParsedCompletion> parsed = ParseCompletion(body);
  ASSERT_OK(parsed);
  ExpectSameResponse(*parsed, acc.Result());

  const json::value v = json::parse(body);
  EXPECT_EQ(v.at("object"), "chat.completion");
  EXPECT_EQ(v.at("system_fingerprint"), "fp_1");
  const json::object& message = v.at("choices").at(0).at("message").as_object();
  EXPECT_EQ(message.at("role"), "assistant");
  EXPECT_EQ(message.at("reasoning"), "Think hard.");
  EXPECT_EQ(message.at("tool_calls").as_array().size(), 2u);
  // Usage as received, including fields the parser does not model.
  EXPECT_EQ(v.at("usage").at("is_byok"), false);
}

TEST(StreamAccumulatorTest, ToCompletionJsonOfAContentOnlyStream) {
  StreamAccumulator acc;
  ASSERT_OK(acc.Add(Chunk(
      R"([{"index":0,"delta":{"role":"assistant","content":"A"},"finish_reason":null}])")));
  ASSERT_OK(acc.Add(Chunk(
      R"([{"index":0,"delta":{"content":"B"},"finish_reason":"stop","native_finish_reason":"end_turn"}])")));
  ASSERT_OK(acc.Add(Chunk("[]", kUsage)));
  const std::string body = acc.ToCompletionJson();
  const json::value v = json::parse(body);
  const json::object& message = v.at("choices").at(0).at("message").as_object();
  EXPECT_EQ(message.at("content"), "AB");
  EXPECT_FALSE(message.contains("tool_calls"));
  EXPECT_FALSE(message.contains("reasoning"));
  Result<ParsedCompletion> parsed = ParseCompletion(body);
  ASSERT_OK(parsed);
  ExpectSameResponse(*parsed, acc.Result());
}

// ---------------------------------------------------------------------------
// ReplayAsSse

// A stored body for every replay test: reasoning, multibyte content, tool
// calls and full usage.
constexpr char kStored[] =
    "{\"id\":\"gen-77\",\"provider\":\"Google AI Studio\",\"model\":"
    "\"google/gemini-2.5-pro\",\"object\":\"chat.completion\",\"created\":"
    "1764926476,\"choices\":[{\"logprobs\":null,\"finish_reason\":"
    "\"tool_calls\",\"native_finish_reason\":\"STOP\",\"index\":0,"
    "\"message\":{\"role\":\"assistant\",\"content\":\"Gr\xC3\xBC\xC3\x9F"
    "e aus K\xC3\xB6ln \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E "
    "\xF0\x9F\x98\x80\xF0\x9F\x8E\x89 done.\",\"reasoning\":\"Greet, then "
    "call the tools \xE2\x9C\x93\",\"tool_calls\":[{\"id\":\"call_1\","
    "\"type\":\"function\",\"function\":{\"name\":\"lookup\",\"arguments\":"
    "\"{\\\"q\\\":\\\"K\xC3\xB6ln\\\"}\"}},{\"id\":\"call_2\",\"type\":"
    "\"function\",\"function\":{\"name\":\"noop\",\"arguments\":\"{}\"}}]}}],"
    "\"system_fingerprint\":null,\"usage\":{\"prompt_tokens\":29,"
    "\"completion_tokens\":33,\"total_tokens\":62,\"cost\":0.00002415,"
    "\"is_byok\":false,\"prompt_tokens_details\":{\"cached_tokens\":3,"
    "\"cache_write_tokens\":0},\"completion_tokens_details\":"
    "{\"reasoning_tokens\":7}}}";

std::string Join(const std::vector<std::string>& chunks) {
  std::string s;
  for (const std::string& c : chunks) s += c;
  return s;
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80         ? 1
                 : (c >> 5) == 6  ? 2
                 : (c >> 4) == 14 ? 3
                 : (c >> 3) == 30 ? 4
                                  : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

TEST(ReplayAsSseTest, ReplayedStreamAccumulatesToTheStoredResponse) {
  Result<ParsedCompletion> stored = ParseCompletion(kStored);
  ASSERT_OK(stored);
  for (size_t piece : {size_t{1}, size_t{2}, size_t{3}, size_t{5}, size_t{64},
                       size_t{100000}}) {
    Result<std::vector<std::string>> chunks = ReplayAsSse(kStored, piece);
    ASSERT_OK(chunks);
    StreamAccumulator acc;
    ASSERT_OK(Accumulate(Join(*chunks), &acc));
    EXPECT_TRUE(acc.done());
    EXPECT_FALSE(acc.error().has_value());
    SCOPED_TRACE("piece_bytes " + std::to_string(piece));
    ExpectSameResponse(acc.Result(), *stored);
  }
}

TEST(ReplayAsSseTest, ReplayedStreamSurvivesBytewiseDelivery) {
  Result<std::vector<std::string>> chunks = ReplayAsSse(kStored, 7);
  ASSERT_OK(chunks);
  const std::string stream = Join(*chunks);
  EXPECT_EQ(FeedBytewise(stream), FeedWhole(stream));
}

TEST(ReplayAsSseTest, ChunksAreWhatTheOpenAiSdksAccept) {
  Result<std::vector<std::string>> chunks = ReplayAsSse(kStored, 16);
  ASSERT_OK(chunks);
  ASSERT_GE(chunks->size(), 4u);
  EXPECT_EQ(chunks->back(), "data: [DONE]\n\n");
  bool saw_usage = false;
  for (size_t i = 0; i + 1 < chunks->size(); ++i) {
    const std::string& c = (*chunks)[i];
    ASSERT_EQ(c.substr(0, 6), "data: ") << c;
    ASSERT_EQ(c.substr(c.size() - 2), "\n\n") << c;
    const std::string_view payload =
        std::string_view(c).substr(6, c.size() - 8);
    // One data line per event: no raw newline inside the payload.
    EXPECT_EQ(payload.find_first_of("\r\n"), std::string_view::npos);
    boost::system::error_code ec;
    const json::value v = json::parse(payload, ec);
    ASSERT_FALSE(ec) << payload;
    ASSERT_TRUE(v.is_object());
    const json::object& o = v.as_object();
    EXPECT_EQ(o.at("object"), "chat.completion.chunk");
    EXPECT_EQ(o.at("id"), "gen-77");
    EXPECT_EQ(o.at("model"), "google/gemini-2.5-pro");
    EXPECT_EQ(o.at("provider"), "Google AI Studio");
    EXPECT_EQ(o.at("created"), 1764926476);
    EXPECT_FALSE(o.contains("error"));  // the SDKs raise on a truthy error
    ASSERT_TRUE(o.at("choices").is_array());
    if (o.contains("usage")) {
      saw_usage = true;
      EXPECT_TRUE(o.at("choices").as_array().empty());
      EXPECT_EQ(o.at("usage").at("prompt_tokens"), 29);
      EXPECT_EQ(i + 2, chunks->size()) << "usage is the last chunk";
    } else {
      ASSERT_EQ(o.at("choices").as_array().size(), 1u);
      const json::object& choice = o.at("choices").at(0).as_object();
      EXPECT_EQ(choice.at("index"), 0);
      EXPECT_TRUE(choice.at("delta").is_object());
    }
  }
  EXPECT_TRUE(saw_usage);
  // The first chunk is the role chunk.
  const json::value first =
      json::parse(std::string_view((*chunks)[0]).substr(6));
  EXPECT_EQ(first.at("choices").at(0).at("delta").at("role"), "assistant");
}

TEST(ReplayAsSseTest, PiecesNeverSplitAUtf8Sequence) {
  for (size_t piece = 1; piece <= 8; ++piece) {
    Result<std::vector<std::string>> chunks = ReplayAsSse(kStored, piece);
    ASSERT_OK(chunks);
    for (size_t i = 0; i + 1 < chunks->size(); ++i) {
      const json::value v =
          json::parse(std::string_view((*chunks)[i]).substr(6));
      if (v.at("choices").as_array().empty()) continue;
      const json::object& delta = v.at("choices").at(0).at("delta").as_object();
      std::vector<std::string_view> texts;
      for (std::string_view key : {"content", "reasoning"}) {
        if (const json::value* t = delta.if_contains(key);
            t != nullptr && t->is_string()) {
          texts.push_back(t->get_string());
        }
      }
      if (const json::value* calls = delta.if_contains("tool_calls")) {
        texts.push_back(
            calls->at(0).at("function").at("arguments").get_string());
      }
      for (std::string_view t : texts) {
        EXPECT_TRUE(IsValidUtf8(t)) << "piece_bytes " << piece;
        // Longer than piece_bytes only for a single code point.
        if (t.size() > piece) {
          EXPECT_LE(t.size(), 4u);
          const auto lead = static_cast<unsigned char>(t[0]);
          EXPECT_GE(lead, 0xC0u);
          EXPECT_EQ(t.size(), lead >= 0xF0 ? 4u : lead >= 0xE0 ? 3u : 2u);
        }
      }
    }
  }
}

TEST(ReplayAsSseTest, ContentIsSplitIntoPiecesOfAtMostPieceBytes) {
  const std::string content(200, 'a');
  const std::string body = R"({"id":"g","model":"m","created":1,"choices":[{)"
                           R"("message":{"role":"assistant","content":")" +
                           content +
                           R"("},"finish_reason":"stop"}],"usage":{)"
                           R"("prompt_tokens":1,"completion_tokens":2}})";
  Result<std::vector<std::string>> chunks = ReplayAsSse(body, 64);
  ASSERT_OK(chunks);
  // role + 4 content pieces (64+64+64+8) + finish + usage + [DONE]
  ASSERT_EQ(chunks->size(), 8u);
  EXPECT_THAT((*chunks)[1], HasSubstr(std::string(64, 'a')));
  EXPECT_THAT((*chunks)[4], HasSubstr(R"("content":"aaaaaaaa")"));
  EXPECT_THAT((*chunks)[5], HasSubstr(R"("finish_reason":"stop")"));
}

TEST(ReplayAsSseTest, StreamedMissAndItsReplayGiveTheSameResponse) {
  // A streamed miss is stored as ToCompletionJson and replayed on a hit.
  StreamAccumulator miss;
  ASSERT_OK(Accumulate(RealisticStream(), &miss));
  const std::string stored = miss.ToCompletionJson();
  Result<std::vector<std::string>> chunks = ReplayAsSse(stored, 3);
  ASSERT_OK(chunks);
  StreamAccumulator hit;
  ASSERT_OK(Accumulate(Join(*chunks), &hit));
  EXPECT_TRUE(hit.done());
  ExpectSameResponse(hit.Result(), miss.Result());
  // And the hit stores exactly what the miss stored.
  EXPECT_EQ(hit.ToCompletionJson(), stored);
}

TEST(ReplayAsSseTest, NullContentWithToolCallsStaysNull) {
  const std::string body =
      R"({"id":"g","model":"m","created":1,"choices":[{"message":{"role":)"
      R"("assistant","content":null,"tool_calls":[{"id":"c1","type":)"
      R"("function","function":{"name":"f","arguments":"{\"a\":1}"}}]},)"
      R"("finish_reason":"tool_calls"}]})";
  Result<std::vector<std::string>> chunks = ReplayAsSse(body);
  ASSERT_OK(chunks);
  StreamAccumulator acc;
  ASSERT_OK(Accumulate(Join(*chunks), &acc));
  Result<ParsedCompletion> stored = ParseCompletion(body);
  ASSERT_OK(stored);
  ExpectSameResponse(acc.Result(), *stored);
  EXPECT_TRUE(acc.Result().content_null);
}

TEST(ReplayAsSseTest, RejectsWhatIsNotAResponse) {
  EXPECT_THAT(ReplayAsSse("not json"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ReplayAsSse("[]"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ReplayAsSse(R"({"error":{"code":500,"message":"x"}})"),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ReplayAsSse(R"({"choices":[]})"),
              StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace llmcache::net
