// Tests for the SSE parser, the stream accumulator and the replay of stored
// responses (llmcache/net/sse.h), on the wire shapes of docs/openrouter.md
// (#streaming-sse, #errors-in-200).

#include "llmcache/net/sse.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstddef>
#include <map>
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

// A realistic OpenRouter stream (docs/openrouter.md#streaming-sse): keep-alive
// comments, role chunk, content pieces (one multibyte), reasoning, two
// interleaved tool calls, a finish chunk, the usage chunk and [DONE].
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

// An event (or a line) that passes the bound is not dispatched, and nothing
// after it is: the stream is unusable from there. Events up to the bound
// pass, however many there are.
TEST(SseParserTest, AnEventOverTheBoundStopsTheParser) {
  {
    SseParser parser;
    parser.set_max_event_bytes(16);
    // A 16-byte line ("data: " and ten bytes of data): at the bound.
    EXPECT_THAT(FeedParts(parser, {"data: 12345", "67890\n\ndata: a\n\n"}),
                ElementsAre(Data("1234567890"), Data("a")));
    EXPECT_FALSE(parser.too_large());
  }
  // Over it: a 17-byte line, in one Feed or split, or a line that takes the
  // event to 8 + 14 bytes.
  for (const std::vector<std::string_view>& parts :
       std::vector<std::vector<std::string_view>>{
           {"data: a\n\ndata: 12345678901\n\ndata: b\n\n"},
           {"data: a\n\ndata: 12345", "678901\n\ndata: b\n\n"},
           {"data: a\n\ndata: 12345678\ndata: 12345678\n\ndata: b\n\n"},
           // The type and the id are held too: 10 + 12 and 10 + 12 bytes.
           {"data: a\n\nevent: 0123456789\ndata: abcdef\n\ndata: b\n\n"},
           {"data: a\n\nid: 0123456789\ndata: abcdef\n\ndata: b\n\n"}}) {
    SseParser parser;
    parser.set_max_event_bytes(16);
    EXPECT_THAT(FeedParts(parser, parts), ElementsAre(Data("a")))
        << ::testing::PrintToString(parts);
    EXPECT_TRUE(parser.too_large());
    EXPECT_THAT(FeedParts(parser, {"data: c\n\n"}), ElementsAre());
  }
  // A line without its end counts too (a comment as well).
  SseParser parser;
  parser.set_max_event_bytes(16);
  EXPECT_THAT(FeedParts(parser, {": 0123456789abcdef"}), ElementsAre());
  EXPECT_TRUE(parser.too_large());
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
  EXPECT_FALSE(message.contains("reasoning_details"));
  EXPECT_FALSE(message.contains("annotations"));
  // As in OpenRouter's non-streaming message
  // (docs/openrouter.md#response-body).
  EXPECT_TRUE(message.at("reasoning").is_null());
  EXPECT_TRUE(message.at("refusal").is_null());
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
      // Reasoning is sent whole (ReasoningIsSentWholeInOneChunk).
      for (std::string_view key : {"content"}) {
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

// A long text goes in about 256 pieces (each chunk repeats the
// response's members, so 64-byte pieces of a 10 MiB answer would be 163,840
// chunks), and the pieces still spell it; so do a long tool call's
// arguments, and the answer accumulates back whole.
TEST(ReplayAsSseTest, ALongTextGoesInAbout256Pieces) {
  std::string content;
  for (size_t i = 0; content.size() < 1000000; ++i) {
    content += "word" + std::to_string(i) + " \u00e9\u65e5 ";  // multibyte
  }
  const std::string arguments(300000, 'x');
  const std::string body =
      R"({"id":"g","model":"m","created":1,"choices":[{"index":0,)"
      R"("message":{"role":"assistant","content":")" +
      content +
      R"(","tool_calls":[{"id":"c","type":"function","function":)"
      R"({"name":"f","arguments":")" +
      arguments +
      R"("}}]},"finish_reason":"stop"}],"usage":{)"
      R"("prompt_tokens":1,"completion_tokens":2,"total_tokens":3}})";
  Result<ParsedCompletion> stored = ParseCompletion(body);
  ASSERT_OK(stored);
  Result<std::vector<std::string>> chunks = ReplayAsSse(body, 64);
  ASSERT_OK(chunks);
  size_t content_pieces = 0, argument_pieces = 0, bytes = 0;
  for (const std::string& c : *chunks) {
    bytes += c.size();
    EXPECT_TRUE(IsValidUtf8(c));
    if (c.find(R"("delta":{"content":")") != std::string::npos) {
      ++content_pieces;
    }
    if (c.find(R"("function":{"arguments":")") != std::string::npos) {
      ++argument_pieces;
    }
  }
  EXPECT_GE(content_pieces, 250u);
  EXPECT_LE(content_pieces, 260u);
  EXPECT_EQ(argument_pieces, 256u);  // one-byte characters: exactly
  // Not much more than the answer itself (~1.3 MB of text and arguments).
  EXPECT_LT(bytes, 1500000u);
  StreamAccumulator acc;
  ASSERT_OK(Accumulate(Join(*chunks), &acc));
  EXPECT_TRUE(acc.done());
  ExpectSameResponse(acc.Result(), *stored);
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

// ---------------------------------------------------------------------------
// Faithful accumulation and replay: every choice and every member.

json::object ParseObj(std::string_view s) {
  boost::system::error_code ec;
  json::value v = json::parse(s, ec);
  EXPECT_FALSE(ec) << s;
  if (ec || !v.is_object()) return {};
  return std::move(v.as_object());
}

// A chunk of gen-5 with `choices` and, optionally, more top-level members.
std::string Chunk5(std::string_view choices, std::string_view extra = "") {
  std::string s =
      R"({"id":"gen-5","provider":"OpenAI","model":"openai/gpt-4o",)"
      R"("object":"chat.completion.chunk","created":1767225600,)"
      R"("system_fingerprint":"fp_5","choices":)";
  s += choices;
  s += extra;
  s += '}';
  return s;
}

json::object AccumulatedBody(const std::vector<std::string>& chunks) {
  StreamAccumulator acc;
  for (const std::string& c : chunks) EXPECT_OK(acc.Add(c));
  return ParseObj(acc.ToCompletionJson());
}

const json::object& MessageOf(const json::object& body, size_t i) {
  return body.at("choices").at(i).at("message").as_object();
}

TEST(StreamAccumulatorTest, KeepsEveryChoiceByIndex) {
  // n = 3, interleaved, the last choice first.
  StreamAccumulator acc;
  for (
      const std::string& c : std::vector<std::string>{
          Chunk5(
              R"([{"index":2,"delta":{"role":"assistant","content":""},"finish_reason":null}])"),
          Chunk5(
              R"([{"index":0,"delta":{"role":"assistant","content":"Zero "},"finish_reason":null}])"),
          Chunk5(
              R"([{"index":1,"delta":{"role":"assistant","content":"One "},"finish_reason":null},)"
              R"({"index":2,"delta":{"content":"Two "},"finish_reason":null}])"),
          Chunk5(
              R"([{"index":0,"delta":{"content":"zero"},"finish_reason":"stop","native_finish_reason":"stop"}])"),
          Chunk5(
              R"([{"index":2,"delta":{"content":"two"},"finish_reason":"length"}])"),
          Chunk5(
              R"([{"index":1,"delta":{"content":"one"},"finish_reason":"stop"}])"),
          Chunk5(
              "[]",
              R"(,"usage":{"prompt_tokens":3,"completion_tokens":9,"total_tokens":12})"),
          std::string("[DONE]")}) {
    ASSERT_OK(acc.Add(c));
  }
  const json::object body = ParseObj(acc.ToCompletionJson());
  const json::array& choices = body.at("choices").as_array();
  ASSERT_EQ(choices.size(), 3u);
  const char* const kContent[] = {"Zero zero", "One one", "Two two"};
  const char* const kFinish[] = {"stop", "stop", "length"};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(choices[i].at("index"), static_cast<int64_t>(i));
    EXPECT_EQ(choices[i].at("message").at("content"), kContent[i]);
    EXPECT_EQ(choices[i].at("message").at("role"), "assistant");
    EXPECT_EQ(choices[i].at("finish_reason"), kFinish[i]);
  }
  EXPECT_EQ(choices[0].at("native_finish_reason"), "stop");
  EXPECT_TRUE(choices[1].at("native_finish_reason").is_null());
  // Result() describes the first choice.
  EXPECT_EQ(acc.Result().content, "Zero zero");
  EXPECT_EQ(acc.Result().finish_reason, "stop");
  EXPECT_EQ(WhyNotCacheable(200, acc.Result()), "");
}

TEST(StreamAccumulatorTest, MergesReasoningDetailsByIndex) {
  const json::object body = AccumulatedBody({
      // reasoning.text at index 0 in three pieces, its signature last.
      Chunk5(
          R"([{"index":0,"delta":{"role":"assistant","content":"","reasoning":"Let me ",)"
          R"("reasoning_details":[{"type":"reasoning.text","text":"Let me ","id":null,)"
          R"("format":"anthropic-claude-v1","index":0}]}}])"),
      Chunk5(
          R"([{"index":0,"delta":{"reasoning":"think.","reasoning_details":[)"
          R"({"type":"reasoning.text","text":"think.","format":"anthropic-claude-v1","index":0}]}}])"),
      Chunk5(
          R"([{"index":0,"delta":{"reasoning_details":[{"type":"reasoning.text","text":"",)"
          R"("signature":"sig_1","format":"anthropic-claude-v1","index":0}]}}])"),
      // a summary and an encrypted block, each in two pieces, in one chunk
      // and the next.
      Chunk5(
          R"([{"index":0,"delta":{"reasoning_details":[)"
          R"({"type":"reasoning.summary","summary":"Sum","id":"s1","format":"openai-responses-v1","index":1},)"
          R"({"type":"reasoning.encrypted","data":"QUJD","id":"e1","format":"openai-responses-v1","index":2}]}}])"),
      Chunk5(R"([{"index":0,"delta":{"reasoning_details":[)"
             R"({"type":"reasoning.summary","summary":"mary.","index":1},)"
             R"({"type":"reasoning.encrypted","data":"REVG","index":2}]}}])"),
      // without an index: an element of its own; the same index with
      // another type: an element of its own too.
      Chunk5(
          R"([{"index":0,"delta":{"reasoning_details":[{"type":"reasoning.text","text":"loose"},)"
          R"({"type":"reasoning.encrypted","data":"WFla","index":0}]}}])"),
      Chunk5(
          R"([{"index":0,"delta":{"content":"Answer."},"finish_reason":"stop"}])"),
  });
  const json::object& m = MessageOf(body, 0);
  EXPECT_EQ(m.at("reasoning"), "Let me think.");
  EXPECT_EQ(json::value(m.at("reasoning_details")), json::parse(R"([
      {"type":"reasoning.text","text":"Let me think.","id":null,
       "format":"anthropic-claude-v1","index":0,"signature":"sig_1"},
      {"type":"reasoning.summary","summary":"Summary.","id":"s1",
       "format":"openai-responses-v1","index":1},
      {"type":"reasoning.encrypted","data":"QUJDREVG","id":"e1",
       "format":"openai-responses-v1","index":2},
      {"type":"reasoning.text","text":"loose"},
      {"type":"reasoning.encrypted","data":"WFla","index":0}])"));
}

TEST(StreamAccumulatorTest, ConcatenatesLogprobsOfContentAndRefusal) {
  const json::object body = AccumulatedBody({
      Chunk5(
          R"([{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null}])"),
      Chunk5(
          R"([{"index":0,"delta":{"content":"Hel"},"logprobs":{"content":[)"
          R"({"token":"Hel","logprob":-0.5,"bytes":[72,101,108],"top_logprobs":[]}],"refusal":null}}])"),
      Chunk5(
          R"([{"index":0,"delta":{"content":"lo"},"logprobs":{"content":[)"
          R"({"token":"lo","logprob":-0.25,"bytes":[108,111],"top_logprobs":[{"token":"lo","logprob":-0.25,"bytes":[108,111]}]}],"refusal":null}}])"),
      Chunk5(
          R"([{"index":0,"delta":{},"finish_reason":"stop","logprobs":null}])"),
      // a second choice refuses
      Chunk5(
          R"([{"index":1,"delta":{"role":"assistant","content":null,"refusal":"No"},)"
          R"("logprobs":{"content":null,"refusal":[{"token":"No","logprob":-1.0,"bytes":[78,111],"top_logprobs":[]}]}}])"),
      Chunk5(
          R"([{"index":1,"delta":{"refusal":"."},)"
          R"("logprobs":{"content":null,"refusal":[{"token":".","logprob":-2.0,"bytes":[46],"top_logprobs":[]}]}}])"),
      Chunk5(R"([{"index":1,"delta":{},"finish_reason":"stop"}])"),
  });
  EXPECT_EQ(json::value(body.at("choices").at(0).at("logprobs")),
            json::parse(R"({"content":[
      {"token":"Hel","logprob":-0.5,"bytes":[72,101,108],"top_logprobs":[]},
      {"token":"lo","logprob":-0.25,"bytes":[108,111],
       "top_logprobs":[{"token":"lo","logprob":-0.25,"bytes":[108,111]}]}],
      "refusal":null})"));
  EXPECT_EQ(MessageOf(body, 0).at("content"), "Hello");
  EXPECT_TRUE(MessageOf(body, 0).at("refusal").is_null());
  EXPECT_EQ(json::value(body.at("choices").at(1).at("logprobs")),
            json::parse(R"({"content":null,"refusal":[
      {"token":"No","logprob":-1.0,"bytes":[78,111],"top_logprobs":[]},
      {"token":".","logprob":-2.0,"bytes":[46],"top_logprobs":[]}]})"));
  EXPECT_TRUE(MessageOf(body, 1).at("content").is_null());
  EXPECT_EQ(MessageOf(body, 1).at("refusal"), "No.");
}

// The logprobs arrays are held as text while a stream runs: the completion
// is still what merging them as JSON gives, in each case a merge meets (a
// first empty array, a null that keeps what came, a value that replaces an
// array and an array that replaces a value, a token that looks like the
// accumulator's placeholders), with the members in their arrival order.
TEST(StreamAccumulatorTest, LogprobsHeldAsTextMergeAsTheirJson) {
  const std::string look_alike =
      R"(\"llmcache-logprobs-0000000000000000-0-content\")";
  StreamAccumulator acc;
  for (const std::string& c : {
           Chunk5(R"([{"index":0,"delta":{"content":"a"},)"
                  R"("logprobs":{"content":[],"refusal":null,"x":1}}])"),
           Chunk5(R"([{"index":0,"delta":{"content":"b"},"logprobs":)"
                  R"({"content":[{"token":")" +
                  look_alike + R"(","logprob":-0.5,"bytes":[98]}]}}])"),
           Chunk5(R"([{"index":0,"delta":{},)"
                  R"("logprobs":{"content":null,"x":2}}])"),
           Chunk5(
               R"([{"index":0,"delta":{"content":"c"},)"
               R"("logprobs":{"content":[{"token":"c","logprob":-1e999}]}}])"),
           // choice 1: an array replaced by a value, then by arrays again
           Chunk5(R"([{"index":1,"delta":{"content":"z"},)"
                  R"("logprobs":{"refusal":[{"token":"r1"}]}}])"),
           Chunk5(R"([{"index":1,"delta":{},"logprobs":{"refusal":"gone"}}])"),
           Chunk5(R"([{"index":1,"delta":{},)"
                  R"("logprobs":{"refusal":[{"token":"r2"}]}}])"),
           Chunk5(R"([{"index":1,"delta":{},)"
                  R"("logprobs":{"refusal":[{"token":"r3"}]}}])"),
           // choice 2: logprobs that are no object replace the arrays
           Chunk5(R"([{"index":2,"delta":{"content":"y"},)"
                  R"("logprobs":{"content":[{"token":"y"}]}}])"),
           Chunk5(R"([{"index":2,"delta":{},"logprobs":"opaque"}])"),
       }) {
    EXPECT_OK(acc.Add(c));
  }
  const std::string text = acc.ToCompletionJson();
  const json::object body = ParseObj(text);
  EXPECT_EQ(json::value(body.at("choices").at(0).at("logprobs")),
            json::parse(R"({"content":[{"token":")" + look_alike +
                        R"(","logprob":-0.5,"bytes":[98]},)"
                        R"({"token":"c","logprob":null}],)"
                        R"("refusal":null,"x":2})"))
      << text;
  EXPECT_EQ(json::value(body.at("choices").at(1).at("logprobs")),
            json::parse(R"({"refusal":[{"token":"r2"},{"token":"r3"}]})"))
      << text;
  EXPECT_EQ(json::value(body.at("choices").at(2).at("logprobs")),
            json::value("opaque"))
      << text;
  EXPECT_NE(text.find(R"("logprobs":{"content":[{"token":")" + look_alike),
            std::string::npos)
      << text;
  EXPECT_LT(text.find(R"("refusal":null,"x":2)"), text.find(R"("index":1)"))
      << text;
}

TEST(StreamAccumulatorTest, KeepsAnnotationsRefusalAndOtherMembers) {
  StreamAccumulator acc;
  for (
      const std::string& c : std::vector<std::string>{
          Chunk5(
              R"([{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"finish_reason":null}])",
              R"(,"service_tier":"default")"),
          Chunk5(R"([{"index":0,"delta":{"content":"See [1]."}}])"),
          Chunk5(
              R"([{"index":0,"delta":{"annotations":[{"type":"url_citation","url_citation":)"
              R"({"url":"https://a.example","title":"A","start_index":4,"end_index":7}}]}}])"),
          Chunk5(
              R"([{"index":0,"delta":{"annotations":[{"type":"url_citation","url_citation":)"
              R"({"url":"https://b.example","title":"B","start_index":0,"end_index":3}}],)"
              R"("images":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}}])"),
          Chunk5(
              R"([{"index":0,"delta":{},"finish_reason":"stop","native_finish_reason":"end_turn",)"
              R"("stop_reason":"end"}])",
              R"(,"service_tier":null)"),
          // the usage chunk after the finish, with the usage's details
          Chunk5(
              "[]",
              R"(,"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,)"
              R"("cost":0.00012,"is_byok":false,"prompt_tokens_details":{"cached_tokens":4,)"
              R"("cache_write_tokens":2},"cost_details":{"upstream_inference_cost":null},)"
              R"("completion_tokens_details":{"reasoning_tokens":1}})"),
          std::string("[DONE]")}) {
    ASSERT_OK(acc.Add(c));
  }
  const json::object body = ParseObj(acc.ToCompletionJson());
  const json::object& m = MessageOf(body, 0);
  EXPECT_EQ(m.at("content"), "See [1].");
  EXPECT_TRUE(m.at("refusal").is_null());
  EXPECT_TRUE(m.at("reasoning").is_null());
  ASSERT_EQ(m.at("annotations").as_array().size(), 2u);
  EXPECT_EQ(m.at("annotations").at(1).at("url_citation").at("url"),
            "https://b.example");
  EXPECT_EQ(m.at("images").as_array().size(), 1u);
  const json::object& c = body.at("choices").at(0).as_object();
  EXPECT_EQ(c.at("stop_reason"), "end");
  EXPECT_EQ(c.at("native_finish_reason"), "end_turn");
  EXPECT_EQ(body.at("service_tier"), "default");  // a later null keeps it
  EXPECT_EQ(body.at("system_fingerprint"), "fp_5");
  EXPECT_EQ(body.at("object"), "chat.completion");
  EXPECT_EQ(json::value(body.at("usage")), json::parse(R"({"prompt_tokens":10,
      "completion_tokens":5,"total_tokens":15,"cost":0.00012,"is_byok":false,
      "prompt_tokens_details":{"cached_tokens":4,"cache_write_tokens":2},
      "cost_details":{"upstream_inference_cost":null},
      "completion_tokens_details":{"reasoning_tokens":1}})"));
  const ParsedCompletion r = acc.Result();
  ASSERT_TRUE(r.usage.has_value());
  EXPECT_EQ(r.usage->cached_tokens, 4u);
  EXPECT_EQ(r.usage->cache_write_tokens, 2u);
  EXPECT_EQ(r.usage->reasoning_tokens, 1u);
  EXPECT_DOUBLE_EQ(r.usage->cost.value_or(0), 0.00012);
}

TEST(StreamAccumulatorTest, ARefusalIsTheAnswerAndMayBeStored) {
  StreamAccumulator acc;
  ASSERT_OK(acc.Add(Chunk5(
      R"([{"index":0,"delta":{"role":"assistant","content":null,"refusal":"I can"},"finish_reason":null}])")));
  ASSERT_OK(acc.Add(Chunk5(
      R"([{"index":0,"delta":{"refusal":"not."},"finish_reason":"stop"}])")));
  const ParsedCompletion r = acc.Result();
  EXPECT_TRUE(r.content_null);
  EXPECT_EQ(r.refusal, "I cannot.");
  EXPECT_EQ(WhyNotCacheable(200, r), "");
}

TEST(StreamAccumulatorTest, ToolCallsWithSplitArgumentsAndExtraMembers) {
  const json::object body = AccumulatedBody({
      Chunk5(
          R"([{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[)"
          R"({"index":1,"id":"call_b","type":"function","function":{"name":"b","arguments":""}},)"
          R"({"index":0,"id":"call_a","type":"function","function":{"name":"a","arguments":"{\"x\""},)"
          R"("extra_content":{"google":{"thought_signature":"ts"}}}]}}])"),
      Chunk5(
          R"([{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}},)"
          R"({"index":1,"function":{"arguments":"{}"}}]}}])"),
      Chunk5(R"([{"index":0,"delta":{},"finish_reason":"tool_calls"}])"),
  });
  EXPECT_EQ(json::value(MessageOf(body, 0).at("tool_calls")), json::parse(R"([
      {"id":"call_a","type":"function","function":{"name":"a","arguments":"{\"x\":1}"},
       "extra_content":{"google":{"thought_signature":"ts"}}},
      {"id":"call_b","type":"function","function":{"name":"b","arguments":"{}"}}])"));
  EXPECT_TRUE(MessageOf(body, 0).at("content").is_null());
}

// A body in OpenRouter's shape with every field of the issue
// (docs/openrouter.md#response-body): two choices, reasoning and three kinds
// of reasoning_details, annotations, logprobs whose tokens spell the content,
// a tool call, a refusal with logprobs, images, usage with cost and details.
constexpr char kEveryField[] = R"({
  "id":"gen-9","provider":"Anthropic","model":"anthropic/claude-sonnet-4.5",
  "object":"chat.completion","created":1767225600,
  "choices":[
    {"logprobs":{"content":[
        {"token":"Gr\u00fc","logprob":-0.25,"bytes":[71,114,195,188],"top_logprobs":[]},
        {"token":"\u00dfe \ud83d\ude00","logprob":-1.5,"bytes":[195,159,101,32,240,159,152,128],"top_logprobs":[]},
        {"token":" ok","logprob":0.0,"bytes":[32,111,107],"top_logprobs":[]}],
      "refusal":null},
     "finish_reason":"tool_calls","native_finish_reason":"tool_use","index":0,
     "message":{"role":"assistant","content":"Gr\u00fc\u00dfe \ud83d\ude00 ok",
       "refusal":null,"reasoning":"First think, then call.",
       "reasoning_details":[
         {"type":"reasoning.summary","summary":"Plan.","id":"rs_1","format":"openai-responses-v1","index":0},
         {"type":"reasoning.text","text":"First think, then call.","signature":"sig","id":null,
          "format":"anthropic-claude-v1","index":1},
         {"type":"reasoning.encrypted","data":"ZW5j","id":"rs_2","format":"anthropic-claude-v1","index":2}],
       "tool_calls":[{"id":"call_1","type":"function","function":
         {"name":"lookup","arguments":"{\"q\":\"K\u00f6ln\",\"n\":[1,2,3]}"}},
         {"id":"call_2","type":"function","function":{"name":"noop","arguments":"{}"}}],
       "annotations":[{"type":"url_citation","url_citation":
         {"url":"https://example.com/a","title":"A","content":"a","start_index":0,"end_index":4}}],
       "images":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}},
    {"logprobs":{"content":null,"refusal":[
        {"token":"No","logprob":-0.125,"bytes":[78,111],"top_logprobs":[]}]},
     "finish_reason":"stop","native_finish_reason":"stop","index":1,
     "message":{"role":"assistant","content":null,"refusal":"No","reasoning":null,
       "annotations":[]}}],
  "system_fingerprint":null,"service_tier":"standard",
  "usage":{"prompt_tokens":29,"completion_tokens":33,"total_tokens":62,"cost":0.00002415,
    "is_byok":false,"prompt_tokens_details":{"cached_tokens":3,"cache_write_tokens":5},
    "cost_details":{"upstream_inference_cost":null,"upstream_inference_prompt_cost":0.00000435},
    "completion_tokens_details":{"reasoning_tokens":7}}})";

TEST(ReplayAsSseTest, RoundTripKeepsEveryField) {
  const json::object stored = ParseObj(kEveryField);
  for (size_t piece : {size_t{1}, size_t{2}, size_t{4}, size_t{7}, size_t{64},
                       size_t{100000}}) {
    SCOPED_TRACE("piece_bytes " + std::to_string(piece));
    Result<std::vector<std::string>> chunks = ReplayAsSse(kEveryField, piece);
    ASSERT_OK(chunks);
    StreamAccumulator acc;
    ASSERT_OK(Accumulate(Join(*chunks), &acc));
    EXPECT_TRUE(acc.done());
    // Object equality ignores member order.
    EXPECT_EQ(ParseObj(acc.ToCompletionJson()), stored);
    // And the replay of that is the same replay.
    Result<std::vector<std::string>> again =
        ReplayAsSse(acc.ToCompletionJson(), piece);
    ASSERT_OK(again);
    StreamAccumulator acc2;
    ASSERT_OK(Accumulate(Join(*again), &acc2));
    EXPECT_EQ(ParseObj(acc2.ToCompletionJson()), stored);
  }
}

TEST(ReplayAsSseTest, LiveStreamRoundTripKeepsEveryField) {
  // A live stream with pieces everywhere, accumulated, replayed and
  // accumulated again.
  const std::vector<std::string> live = {
      Chunk5(
          R"([{"index":0,"delta":{"role":"assistant","content":"","reasoning":"Hm",)"
          R"("reasoning_details":[{"type":"reasoning.text","text":"Hm","format":"x","index":0}]},)"
          R"("finish_reason":null,"native_finish_reason":null,"logprobs":null}])"),
      Chunk5(
          R"([{"index":1,"delta":{"role":"assistant","content":""},"finish_reason":null,"logprobs":null}])"),
      Chunk5(
          R"([{"index":0,"delta":{"reasoning":"m.","reasoning_details":[{"type":"reasoning.text",)"
          R"("text":"m.","signature":"s","index":0}]},"finish_reason":null,"logprobs":null}])"),
      Chunk5(
          R"([{"index":0,"delta":{"content":"A"},"logprobs":{"content":[{"token":"A","logprob":-1.0,)"
          R"("bytes":[65],"top_logprobs":[]}],"refusal":null}}])"),
      Chunk5(
          R"([{"index":1,"delta":{"content":"B"},"logprobs":{"content":[{"token":"B","logprob":-2.0,)"
          R"("bytes":[66],"top_logprobs":[]}],"refusal":null}}])"),
      Chunk5(
          R"([{"index":0,"delta":{"content":"a","annotations":[{"type":"url_citation",)"
          R"("url_citation":{"url":"https://x.example","start_index":0,"end_index":1}}]},)"
          R"("logprobs":{"content":[{"token":"a","logprob":-0.5,"bytes":[97],"top_logprobs":[]}],"refusal":null}}])"),
      Chunk5(
          R"([{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","type":"function",)"
          R"("function":{"name":"f","arguments":"{\"k\":"}}]}}])"),
      Chunk5(
          R"([{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"2}"}}]}}])"),
      Chunk5(
          R"([{"index":0,"delta":{},"finish_reason":"tool_calls","native_finish_reason":"tool_use"},)"
          R"({"index":1,"delta":{},"finish_reason":"stop","native_finish_reason":"stop"}])"),
      Chunk5(
          "[]",
          R"(,"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"cost":0.5})"),
      "[DONE]"};
  StreamAccumulator first;
  for (const std::string& c : live) ASSERT_OK(first.Add(c));
  const std::string stored = first.ToCompletionJson();
  const json::object expected = ParseObj(stored);
  // Every piece arrived.
  const json::object& m0 = MessageOf(expected, 0);
  EXPECT_EQ(m0.at("content"), "Aa");
  EXPECT_EQ(m0.at("reasoning"), "Hmm.");
  EXPECT_EQ(m0.at("reasoning_details").at(0).at("text"), "Hmm.");
  EXPECT_EQ(m0.at("reasoning_details").at(0).at("signature"), "s");
  EXPECT_EQ(m0.at("annotations").as_array().size(), 1u);
  EXPECT_EQ(m0.at("tool_calls").at(0).at("function").at("arguments"),
            "{\"k\":2}");
  EXPECT_EQ(expected.at("choices")
                .at(0)
                .at("logprobs")
                .at("content")
                .as_array()
                .size(),
            2u);
  EXPECT_EQ(MessageOf(expected, 1).at("content"), "B");
  for (size_t piece : {size_t{1}, size_t{3}, size_t{64}}) {
    Result<std::vector<std::string>> chunks = ReplayAsSse(stored, piece);
    ASSERT_OK(chunks);
    StreamAccumulator again;
    ASSERT_OK(Accumulate(Join(*chunks), &again));
    EXPECT_EQ(ParseObj(again.ToCompletionJson()), expected)
        << "piece_bytes " << piece;
  }
}

// Payloads of the replay's chunks, parsed (not [DONE]).
std::vector<json::object> ReplayedChunks(std::string_view body,
                                         size_t piece_bytes) {
  std::vector<json::object> out;
  Result<std::vector<std::string>> chunks = ReplayAsSse(body, piece_bytes);
  EXPECT_OK(chunks);
  if (!chunks.ok()) return out;
  for (size_t i = 0; i + 1 < chunks->size(); ++i) {
    std::string_view c = (*chunks)[i];
    out.push_back(ParseObj(c.substr(6, c.size() - 8)));
  }
  return out;
}

TEST(ReplayAsSseTest, LogprobsRideWithTheirContentPieces) {
  std::map<int64_t, bool> first_of_choice_seen;
  for (const json::object& chunk : ReplayedChunks(kEveryField, 5)) {
    for (const json::value& cv : chunk.at("choices").as_array()) {
      const json::object& c = cv.as_object();
      const int64_t index = c.at("index").as_int64();
      const json::object& delta = c.at("delta").as_object();
      if (!first_of_choice_seen[index]) {
        // The role chunk carries no logprobs (openai-node would double
        // them) but the members stored empty.
        first_of_choice_seen[index] = true;
        EXPECT_EQ(delta.at("role"), "assistant");
        EXPECT_TRUE(c.at("logprobs").is_null());
        // Choice 0 has refusal null; choice 1 has one, sent later.
        EXPECT_EQ(delta.contains("refusal"), index == 0);
        continue;
      }
      const json::value* content = delta.if_contains("content");
      if (index != 0 || content == nullptr) continue;
      // Each content piece carries exactly the tokens that spell it.
      std::string spelled;
      for (const json::value& t : c.at("logprobs").at("content").as_array()) {
        spelled += std::string(t.at("token").as_string());
      }
      EXPECT_EQ(spelled, std::string(content->as_string()));
      EXPECT_TRUE(c.at("logprobs").at("refusal").is_null());
    }
  }
  EXPECT_EQ(first_of_choice_seen.size(), 2u);
}

TEST(ReplayAsSseTest, ReasoningIsSentWholeInOneChunk) {
  int reasoning_chunks = 0;
  for (const json::object& chunk : ReplayedChunks(kEveryField, 3)) {
    for (const json::value& cv : chunk.at("choices").as_array()) {
      const json::object& delta = cv.at("delta").as_object();
      const json::value* r = delta.if_contains("reasoning");
      if (r == nullptr || r->is_null()) continue;
      ++reasoning_chunks;
      EXPECT_EQ(*r, "First think, then call.");
      EXPECT_EQ(delta.at("reasoning_details").as_array().size(), 3u);
    }
  }
  EXPECT_EQ(reasoning_chunks, 1);
}

TEST(ReplayAsSseTest, EveryChoiceIsReplayedWithItsIndex) {
  std::vector<int64_t> finished;
  bool usage_last = false;
  const std::vector<json::object> chunks = ReplayedChunks(kEveryField, 64);
  for (const json::object& chunk : chunks) {
    EXPECT_EQ(chunk.at("object"), "chat.completion.chunk");
    EXPECT_EQ(chunk.at("service_tier"), "standard");
    EXPECT_FALSE(chunk.contains("error"));
    usage_last = chunk.contains("usage");
    for (const json::value& cv : chunk.at("choices").as_array()) {
      if (cv.at("finish_reason").is_string()) {
        finished.push_back(cv.at("index").as_int64());
      }
    }
  }
  EXPECT_THAT(finished, ElementsAre(0, 1));
  EXPECT_TRUE(usage_last);
  EXPECT_TRUE(chunks.back().at("choices").as_array().empty());
}

TEST(ReplayAsSseTest, AStoredChoiceErrorIsTheErrorEventOfItsChoice) {
  const std::string body =
      R"({"id":"g","model":"m","created":1,"choices":[)"
      R"({"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"},)"
      R"({"index":1,"message":{"role":"assistant","content":"par"},"finish_reason":"error",)"
      R"("error":{"code":502,"message":"cut"}}]})";
  int errors = 0;
  for (const json::object& chunk : ReplayedChunks(body, 64)) {
    if (!chunk.contains("error")) continue;
    ++errors;
    EXPECT_EQ(chunk.at("choices").at(0).at("index"), 1);
    EXPECT_EQ(chunk.at("error").at("code"), 502);
  }
  EXPECT_EQ(errors, 1);
  Result<std::vector<std::string>> chunks = ReplayAsSse(body);
  ASSERT_OK(chunks);
  StreamAccumulator acc;
  ASSERT_OK(Accumulate(Join(*chunks), &acc));
  ASSERT_TRUE(acc.error().has_value());
  EXPECT_EQ(acc.error()->code, 502);
  const json::object again = ParseObj(acc.ToCompletionJson());
  EXPECT_FALSE(again.at("choices").at(0).as_object().contains("error"));
  EXPECT_EQ(again.at("choices").at(1).at("error").at("message"), "cut");
}

}  // namespace
}  // namespace llmcache::net
