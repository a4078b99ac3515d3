// Tests for the wire formats of the cached endpoints (llmcache/net/endpoint.h):
// parsing and cacheability of embeddings, Responses API and Anthropic
// Messages bodies; the replay of stored bodies as named-event streams and
// its accumulation back into the same body; live-like streams; SSE framing;
// and the dispatch to the chat-completion functions.

#include "llmcache/net/endpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/key.h"
#include "llmcache/net/completion.h"
#include "llmcache/net/sse.h"
#include "testing/status_matchers.h"

namespace llmcache::net {
namespace {

namespace json = boost::json;
using ::llmcache::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

json::value Json(std::string_view text) { return json::parse(text); }

// ---- Bodies ----

constexpr std::string_view kResponsesText = R"({
  "id":"resp_1","object":"response","created_at":1767225600,
  "status":"completed","model":"openai/gpt-4o-mini","provider":"OpenAI",
  "output":[{"type":"message","id":"msg_1","status":"completed",
    "role":"assistant","content":[{"type":"output_text","text":"Paris.",
    "annotations":[]}]}],
  "usage":{"input_tokens":14,"input_tokens_details":{"cached_tokens":4},
    "output_tokens":3,"output_tokens_details":{"reasoning_tokens":0},
    "total_tokens":17,"cost":0.0000039},
  "error":null,"incomplete_details":null,"temperature":0,"tools":[],
  "parallel_tool_calls":true,"metadata":{}})";

constexpr std::string_view kResponsesFunctionCalls = R"({
  "id":"resp_2","object":"response","created_at":1767225601,
  "status":"completed","model":"openai/gpt-4o",
  "output":[
    {"type":"function_call","id":"fc_1","call_id":"call_a","name":"weather",
     "arguments":"{\"city\":\"Paris\"}","status":"completed"},
    {"type":"function_call","id":"fc_2","call_id":"call_b","name":"time",
     "arguments":"{\"tz\":\"CET\"}","status":"completed"}],
  "usage":{"input_tokens":30,"output_tokens":20,"total_tokens":50},
  "error":null,"incomplete_details":null})";

constexpr std::string_view kResponsesRefusal = R"({
  "id":"resp_3","object":"response","created_at":1767225602,
  "status":"completed","model":"openai/gpt-4o",
  "output":[{"type":"message","id":"msg_3","status":"completed",
    "role":"assistant","content":[{"type":"refusal",
    "refusal":"I can't help with that."}]}],
  "usage":{"input_tokens":10,"output_tokens":7,"total_tokens":17},
  "error":null})";

constexpr std::string_view kResponsesReasoning = R"({
  "id":"resp_4","object":"response","created_at":1767225603,
  "status":"completed","model":"openai/o4-mini",
  "output":[
    {"type":"reasoning","id":"rs_1","summary":[
      {"type":"summary_text","text":"First, recall capitals."},
      {"type":"summary_text","text":" Then answer."}],
     "encrypted_content":null},
    {"type":"message","id":"msg_4","status":"completed","role":"assistant",
     "content":[
       {"type":"output_text","text":"Paris ","annotations":[]},
       {"type":"output_text","text":"(France).","annotations":[
         {"type":"url_citation","start_index":0,"end_index":5,
          "url":"https://example.org","title":"Example"}]}]},
    {"type":"function_call","id":"fc_9","call_id":"call_9","name":"log",
     "arguments":"","status":"completed"}],
  "usage":{"input_tokens":20,"output_tokens":120,
    "output_tokens_details":{"reasoning_tokens":100},"total_tokens":140},
  "error":null})";

constexpr std::string_view kMessagesText = R"({
  "id":"msg_01","type":"message","role":"assistant",
  "model":"anthropic/claude-sonnet-4.5","provider":"Anthropic",
  "content":[{"type":"text","text":"Paris."}],
  "stop_reason":"end_turn","stop_sequence":null,
  "usage":{"input_tokens":12,"output_tokens":5,
    "cache_creation_input_tokens":100,"cache_read_input_tokens":200,
    "cost":0.00042}})";

constexpr std::string_view kMessagesToolUse = R"({
  "id":"msg_02","type":"message","role":"assistant","model":"claude",
  "content":[
    {"type":"text","text":"Let me check."},
    {"type":"tool_use","id":"toolu_1","name":"weather",
     "input":{"city":"Paris","days":[1,2],"units":{"t":"C"}}},
    {"type":"tool_use","id":"toolu_2","name":"now","input":{}}],
  "stop_reason":"tool_use","stop_sequence":null,
  "usage":{"input_tokens":50,"output_tokens":40}})";

constexpr std::string_view kMessagesThinking = R"({
  "id":"msg_03","type":"message","role":"assistant","model":"claude",
  "content":[
    {"type":"thinking","thinking":"The capital of France is Paris.",
     "signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3h"},
    {"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix/LafPsn4a"},
    {"type":"text","text":"Paris.","citations":[
      {"type":"char_location","cited_text":"Paris","document_index":0,
       "start_char_index":0,"end_char_index":5}]},
    {"type":"text","text":" Indeed."}],
  "stop_reason":"stop_sequence","stop_sequence":"###",
  "usage":{"input_tokens":9,"output_tokens":77,
    "cache_creation_input_tokens":0,"cache_read_input_tokens":0}})";

constexpr std::string_view kMessagesRedactedOnly = R"({
  "id":"msg_04","type":"message","role":"assistant","model":"claude",
  "content":[{"type":"redacted_thinking","data":"abc"},
    {"type":"text","text":"Done."}],
  "stop_reason":"max_tokens","stop_sequence":null,
  "usage":{"input_tokens":1,"output_tokens":2}})";

// ---- Helpers ----

// Feeds the data of every frame; returns the accumulator.
std::unique_ptr<EventAccumulator> Accumulate(
    Endpoint endpoint, const std::vector<std::string>& frames) {
  std::unique_ptr<EventAccumulator> acc = MakeEventAccumulator(endpoint);
  EXPECT_NE(acc, nullptr);
  if (acc == nullptr) return acc;
  for (const std::string& frame : frames) {
    EXPECT_OK(acc->Add(FrameData(frame))) << frame;
  }
  return acc;
}

// The replay of `body` accumulates back into `body`; only the last frame is
// terminal; every frame names its event.
void ExpectRoundTrip(Endpoint endpoint, std::string_view body) {
  SCOPED_TRACE(body);
  Result<std::vector<std::string>> frames = ReplayEvents(endpoint, body);
  ASSERT_OK(frames.status());
  ASSERT_GE(frames->size(), 3u);
  for (size_t i = 0; i < frames->size(); ++i) {
    const std::string& frame = (*frames)[i];
    const std::string_view data = FrameData(frame);
    const json::value event = Json(data);
    const std::string type(event.at("type").as_string());
    EXPECT_EQ(frame,
              "event: " + type + "\ndata: " + std::string(data) + "\n\n");
    EXPECT_EQ(frame, SseFrame(endpoint, data));
    EXPECT_EQ(IsTerminalEvent(endpoint, data), i + 1 == frames->size())
        << frame;
    if (endpoint == Endpoint::kResponses) {
      EXPECT_EQ(event.at("sequence_number").to_number<int64_t>(),
                static_cast<int64_t>(i));
    }
  }
  std::unique_ptr<EventAccumulator> acc = Accumulate(endpoint, *frames);
  ASSERT_NE(acc, nullptr);
  EXPECT_TRUE(acc->done());
  EXPECT_FALSE(acc->error().has_value());
  EXPECT_EQ(Json(acc->ToJson()), Json(body));

  Result<ParsedCompletion> want = ParseEndpointResponse(endpoint, body);
  ASSERT_OK(want.status());
  const ParsedCompletion got = acc->Parsed();
  EXPECT_EQ(got.id, want->id);
  EXPECT_EQ(got.content, want->content);
  EXPECT_EQ(got.reasoning, want->reasoning);
  EXPECT_EQ(got.refusal, want->refusal);
  EXPECT_EQ(got.tool_calls.size(), want->tool_calls.size());
  EXPECT_EQ(got.finish_reason, want->finish_reason);
  EXPECT_THAT(WhyNotCacheable(endpoint, 200, got), IsEmpty());
}

std::vector<std::string> Types(const std::vector<std::string>& frames) {
  std::vector<std::string> types;
  for (const std::string& f : frames) {
    types.emplace_back(Json(FrameData(f)).at("type").as_string());
  }
  return types;
}

// ---- Dispatch and framing ----

TEST(EndpointTest, PathsAndNamedEvents) {
  EXPECT_EQ(UpstreamPath(Endpoint::kChatCompletions), "/chat/completions");
  EXPECT_EQ(UpstreamPath(Endpoint::kEmbeddings), "/embeddings");
  EXPECT_EQ(UpstreamPath(Endpoint::kResponses), "/responses");
  EXPECT_EQ(UpstreamPath(Endpoint::kMessages), "/messages");
  EXPECT_FALSE(NamedEvents(Endpoint::kChatCompletions));
  EXPECT_FALSE(NamedEvents(Endpoint::kEmbeddings));
  EXPECT_TRUE(NamedEvents(Endpoint::kResponses));
  EXPECT_TRUE(NamedEvents(Endpoint::kMessages));
}

TEST(EndpointTest, SseFrameNamesEventsByTopLevelType) {
  EXPECT_EQ(SseFrame(Endpoint::kChatCompletions, R"({"type":"x"})"),
            "data: {\"type\":\"x\"}\n\n");
  EXPECT_EQ(SseFrame(Endpoint::kChatCompletions, "[DONE]"), "data: [DONE]\n\n");
  EXPECT_EQ(SseFrame(Endpoint::kEmbeddings, "{}"), "data: {}\n\n");
  EXPECT_EQ(SseFrame(Endpoint::kResponses,
                     R"({"type":"response.created","sequence_number":0})"),
            "event: response.created\n"
            "data: {\"type\":\"response.created\",\"sequence_number\":0}\n\n");
  EXPECT_EQ(SseFrame(Endpoint::kMessages, R"( {"index":0, "type" : "ping"})"),
            "event: ping\ndata:  {\"index\":0, \"type\" : \"ping\"}\n\n");
  // The "type" of a nested object, or in a string, is not the event's.
  constexpr std::string_view kNested =
      R"({"a":{"type":"inner"},"s":"\"type\":\"no\"","type":"outer"})";
  EXPECT_EQ(SseFrame(Endpoint::kMessages, kNested),
            "event: outer\ndata: " + std::string(kNested) + "\n\n");
  EXPECT_EQ(SseFrame(Endpoint::kMessages, R"({"a":{"type":"inner"}})"),
            "data: {\"a\":{\"type\":\"inner\"}}\n\n");
  EXPECT_EQ(SseFrame(Endpoint::kMessages, R"({"type":1})"),
            "data: {\"type\":1}\n\n");
  EXPECT_EQ(SseFrame(Endpoint::kMessages, R"(["type","x"])"),
            "data: [\"type\",\"x\"]\n\n");
  EXPECT_EQ(SseFrame(Endpoint::kResponses, "not json"), "data: not json\n\n");
  // A name with escapes (here a line break) is not written out.
  EXPECT_EQ(SseFrame(Endpoint::kResponses, R"({"type":"a\nb"})"),
            "data: {\"type\":\"a\\nb\"}\n\n");
}

TEST(EndpointTest, FrameDataIsTheDataLine) {
  EXPECT_EQ(FrameData("data: {\"a\":1}\n\n"), "{\"a\":1}");
  EXPECT_EQ(FrameData("event: ping\ndata: {\"type\":\"ping\"}\n\n"),
            "{\"type\":\"ping\"}");
  EXPECT_EQ(FrameData("data:[DONE]\r\n\r\n"), "[DONE]");
  EXPECT_EQ(FrameData("{\"raw\":true}"), "{\"raw\":true}");
  EXPECT_EQ(FrameData(": comment\n\n"), ": comment\n\n");
  const std::string frame =
      SseFrame(Endpoint::kMessages, R"({"type":"message_stop"})");
  EXPECT_EQ(FrameData(frame), R"({"type":"message_stop"})");
}

TEST(EndpointTest, TerminalEvents) {
  EXPECT_TRUE(IsTerminalEvent(Endpoint::kChatCompletions, "[DONE]"));
  EXPECT_TRUE(IsTerminalEvent(Endpoint::kChatCompletions, " [DONE]\n"));
  EXPECT_FALSE(IsTerminalEvent(Endpoint::kChatCompletions, R"({"id":"x"})"));
  EXPECT_FALSE(IsTerminalEvent(Endpoint::kEmbeddings, "[DONE]"));
  for (std::string_view type :
       {"response.completed", "response.incomplete", "response.failed"}) {
    EXPECT_TRUE(IsTerminalEvent(
        Endpoint::kResponses,
        R"({"type":")" + std::string(type) + R"(","response":{}})"))
        << type;
  }
  EXPECT_FALSE(IsTerminalEvent(Endpoint::kResponses,
                               R"({"type":"response.created","response":{}})"));
  EXPECT_FALSE(IsTerminalEvent(Endpoint::kResponses, "[DONE]"));
  EXPECT_FALSE(IsTerminalEvent(
      Endpoint::kResponses,
      R"({"item":{"type":"response.completed"},"type":"response.output_item.done"})"));
  EXPECT_FALSE(
      IsTerminalEvent(Endpoint::kResponses, R"({"type":"error","code":"x"})"));
  EXPECT_TRUE(
      IsTerminalEvent(Endpoint::kMessages, R"({"type":"message_stop"})"));
  EXPECT_FALSE(IsTerminalEvent(Endpoint::kMessages,
                               R"({"type":"message_delta","delta":{}})"));
  EXPECT_FALSE(IsTerminalEvent(Endpoint::kMessages, R"({"type":"ping"})"));
  EXPECT_FALSE(IsTerminalEvent(Endpoint::kMessages, "[DONE]"));
  EXPECT_FALSE(IsTerminalEvent(Endpoint::kMessages, R"({"type":"message_st)"));
}

TEST(EndpointTest, ChatDispatchEqualsTheChatFunctions) {
  constexpr std::string_view kBody = R"({"id":"gen-1","provider":"OpenAI",
    "model":"openai/gpt-4o-mini","object":"chat.completion","created":1767225600,
    "choices":[{"index":0,"logprobs":null,"finish_reason":"tool_calls",
      "native_finish_reason":"tool_calls","message":{"role":"assistant",
      "content":"Checking the weather in Paris, France, for you now.",
      "refusal":null,"reasoning":null,"tool_calls":[{"id":"call_1",
      "type":"function","function":{"name":"w","arguments":"{\"c\":1}"}}]}}],
    "usage":{"prompt_tokens":14,"completion_tokens":3,"total_tokens":17}})";
  Result<ParsedCompletion> a =
      ParseEndpointResponse(Endpoint::kChatCompletions, kBody);
  Result<ParsedCompletion> b = ParseCompletion(kBody);
  ASSERT_OK(a.status());
  ASSERT_OK(b.status());
  EXPECT_EQ(a->id, b->id);
  EXPECT_EQ(a->content, b->content);
  EXPECT_EQ(a->tool_calls.size(), 1u);
  EXPECT_EQ(a->tool_calls[0].arguments, b->tool_calls[0].arguments);
  EXPECT_EQ(a->usage->prompt_tokens, b->usage->prompt_tokens);
  EXPECT_EQ(WhyNotCacheable(Endpoint::kChatCompletions, 200, *a),
            WhyNotCacheable(200, *b));
  EXPECT_EQ(WhyNotCacheable(Endpoint::kChatCompletions, 429, *a),
            WhyNotCacheable(429, *b));
  ParsedCompletion empty;
  empty.has_choices = true;
  EXPECT_EQ(WhyNotCacheable(Endpoint::kChatCompletions, 200, empty),
            WhyNotCacheable(200, empty));
  EXPECT_THAT(WhyNotCacheable(Endpoint::kChatCompletions, 200, empty),
              Not(IsEmpty()));

  Result<std::vector<std::string>> replay =
      ReplayEvents(Endpoint::kChatCompletions, kBody);
  Result<std::vector<std::string>> old = ReplayAsSse(kBody);
  ASSERT_OK(replay.status());
  ASSERT_OK(old.status());
  EXPECT_EQ(*replay, *old);
  EXPECT_EQ(replay->back(), "data: [DONE]\n\n");

  StreamAccumulator direct;
  std::unique_ptr<EventAccumulator> acc =
      MakeEventAccumulator(Endpoint::kChatCompletions);
  ASSERT_NE(acc, nullptr);
  for (size_t i = 0; i < replay->size(); ++i) {
    const std::string_view data = FrameData((*replay)[i]);
    EXPECT_EQ(IsTerminalEvent(Endpoint::kChatCompletions, data),
              i + 1 == replay->size());
    EXPECT_OK(acc->Add(data));
    EXPECT_OK(direct.Add(data));
  }
  EXPECT_TRUE(acc->done());
  EXPECT_EQ(acc->ToJson(), direct.ToCompletionJson());
  EXPECT_EQ(acc->Parsed().content, direct.Result().content);
  EXPECT_EQ(Json(acc->ToJson()).at("choices"), Json(kBody).at("choices"));
}

// ---- Embeddings ----

TEST(EndpointTest, EmbeddingsParse) {
  constexpr std::string_view kBody = R"({"object":"list","data":[
      {"object":"embedding","embedding":[0.1,-2,3e-3],"index":0},
      {"object":"embedding","embedding":"AAAAPwAAAD8=","index":1}],
    "model":"openai/text-embedding-3-small","id":"gen-emb-1",
    "provider":"OpenAI",
    "usage":{"prompt_tokens":8,"total_tokens":8,"cost":0.00000016}})";
  Result<ParsedCompletion> c =
      ParseEndpointResponse(Endpoint::kEmbeddings, kBody);
  ASSERT_OK(c.status());
  EXPECT_EQ(c->model, "openai/text-embedding-3-small");
  EXPECT_EQ(c->id, "gen-emb-1");
  EXPECT_EQ(c->provider, "OpenAI");
  EXPECT_TRUE(c->has_choices);
  EXPECT_FALSE(c->content_null);
  ASSERT_TRUE(c->usage.has_value());
  EXPECT_EQ(c->usage->prompt_tokens, 8u);
  EXPECT_EQ(c->usage->completion_tokens, 0u);
  EXPECT_EQ(c->usage->total_tokens, 8u);
  EXPECT_DOUBLE_EQ(c->usage->cost.value_or(0), 0.00000016);
  EXPECT_FALSE(c->error.has_value());
  EXPECT_THAT(WhyNotCacheable(Endpoint::kEmbeddings, 200, *c), IsEmpty());
  EXPECT_THAT(WhyNotCacheable(Endpoint::kEmbeddings, 500, *c),
              HasSubstr("500"));

  EXPECT_THAT(ReplayEvents(Endpoint::kEmbeddings, kBody).status(),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(MakeEventAccumulator(Endpoint::kEmbeddings), nullptr);
}

TEST(EndpointTest, EmbeddingsWithoutEmbeddingsAreNotCached) {
  for (std::string_view body : {
           R"({"object":"list","data":[],"model":"m"})",
           R"({"object":"list","model":"m"})",
           R"({"data":[{"embedding":[0.1]}]})",                // no index
           R"({"data":[{"embedding":[0.1,"x"],"index":0}]})",  // not a number
           R"({"data":[{"embedding":{"a":1},"index":0}]})",    // object
           R"({"data":[{"embedding":[0.1],"index":0},"junk"]})",  // not an
                                                                  // object
       }) {
    Result<ParsedCompletion> c =
        ParseEndpointResponse(Endpoint::kEmbeddings, body);
    ASSERT_OK(c.status()) << body;
    EXPECT_FALSE(c->has_choices) << body;
    EXPECT_EQ(WhyNotCacheable(Endpoint::kEmbeddings, 200, *c), "no embeddings")
        << body;
  }
  EXPECT_THAT(ParseEndpointResponse(Endpoint::kEmbeddings, "[1,2]").status(),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseEndpointResponse(Endpoint::kEmbeddings, "{").status(),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(EndpointTest, OpenRouterErrorEnvelopeForEveryEndpoint) {
  constexpr std::string_view kEnvelope =
      "\n\n{\"error\":{\"code\":429,\"message\":\"Rate limited\","
      "\"metadata\":{\"provider_name\":\"X\"}}}";
  for (Endpoint e : {Endpoint::kChatCompletions, Endpoint::kEmbeddings,
                     Endpoint::kResponses, Endpoint::kMessages}) {
    Result<ParsedCompletion> c = ParseEndpointResponse(e, kEnvelope);
    ASSERT_OK(c.status());
    ASSERT_TRUE(c->error.has_value()) << static_cast<int>(e);
    EXPECT_EQ(c->error->code, 429);
    EXPECT_EQ(c->error->message, "Rate limited");
    EXPECT_EQ(c->error->metadata_json, R"({"provider_name":"X"})");
    EXPECT_FALSE(c->has_choices);
    EXPECT_THAT(WhyNotCacheable(e, 200, *c), HasSubstr("error in response"));
  }
}

// ---- Responses API ----

TEST(EndpointTest, ResponsesParse) {
  Result<ParsedCompletion> c =
      ParseEndpointResponse(Endpoint::kResponses, kResponsesText);
  ASSERT_OK(c.status());
  EXPECT_EQ(c->id, "resp_1");
  EXPECT_EQ(c->model, "openai/gpt-4o-mini");
  EXPECT_EQ(c->provider, "OpenAI");
  EXPECT_EQ(c->created, 1767225600);
  EXPECT_EQ(c->content, "Paris.");
  EXPECT_FALSE(c->content_null);
  EXPECT_EQ(c->finish_reason, "completed");
  EXPECT_TRUE(c->has_choices);
  EXPECT_FALSE(c->error.has_value());
  ASSERT_TRUE(c->usage.has_value());
  EXPECT_EQ(c->usage->prompt_tokens, 14u);
  EXPECT_EQ(c->usage->completion_tokens, 3u);
  EXPECT_EQ(c->usage->total_tokens, 17u);
  EXPECT_EQ(c->usage->cached_tokens, 4u);
  EXPECT_DOUBLE_EQ(c->usage->cost.value_or(0), 0.0000039);
  EXPECT_THAT(WhyNotCacheable(Endpoint::kResponses, 200, *c), IsEmpty());

  c = ParseEndpointResponse(Endpoint::kResponses, kResponsesFunctionCalls);
  ASSERT_OK(c.status());
  ASSERT_EQ(c->tool_calls.size(), 2u);
  EXPECT_EQ(c->tool_calls[0].index, 0);
  EXPECT_EQ(c->tool_calls[0].id, "call_a");
  EXPECT_EQ(c->tool_calls[0].name, "weather");
  EXPECT_EQ(c->tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(c->tool_calls[1].index, 1);
  EXPECT_EQ(c->tool_calls[1].id, "call_b");
  EXPECT_TRUE(c->content.empty());
  EXPECT_THAT(WhyNotCacheable(Endpoint::kResponses, 200, *c), IsEmpty());

  c = ParseEndpointResponse(Endpoint::kResponses, kResponsesRefusal);
  ASSERT_OK(c.status());
  EXPECT_EQ(c->refusal, "I can't help with that.");
  EXPECT_TRUE(c->content.empty());

  c = ParseEndpointResponse(Endpoint::kResponses, kResponsesReasoning);
  ASSERT_OK(c.status());
  EXPECT_EQ(c->reasoning, "First, recall capitals. Then answer.");
  EXPECT_EQ(c->content, "Paris (France).");
  EXPECT_EQ(c->usage->reasoning_tokens, 100u);
  ASSERT_EQ(c->tool_calls.size(), 1u);
  EXPECT_EQ(c->tool_calls[0].arguments, "");
}

TEST(EndpointTest, ResponsesCacheability) {
  json::value body = Json(kResponsesText);
  auto why = [&body](int status = 200) {
    Result<ParsedCompletion> c =
        ParseEndpointResponse(Endpoint::kResponses, json::serialize(body));
    EXPECT_OK(c.status());
    return c.ok() ? WhyNotCacheable(Endpoint::kResponses, status, *c)
                  : std::string("parse failed");
  };
  EXPECT_THAT(why(), IsEmpty());
  EXPECT_THAT(why(502), HasSubstr("HTTP status 502"));

  body.as_object()["status"] = "incomplete";
  body.as_object()["incomplete_details"] =
      Json(R"({"reason":"max_output_tokens"})");
  EXPECT_EQ(why(), "status is \"incomplete\"");
  body.as_object().erase("status");
  EXPECT_EQ(why(), "no status");
  body.as_object()["status"] = "completed";
  body.as_object()["output"] = json::array();
  EXPECT_EQ(why(), "no output");
  body.as_object().erase("output");
  EXPECT_EQ(why(), "no output");

  body = Json(kResponsesText);
  body.as_object()["status"] = "failed";
  body.as_object()["error"] =
      Json(R"({"code":"server_error","message":"The model failed"})");
  Result<ParsedCompletion> c =
      ParseEndpointResponse(Endpoint::kResponses, json::serialize(body));
  ASSERT_OK(c.status());
  ASSERT_TRUE(c->error.has_value());
  EXPECT_EQ(c->error->code_text, "server_error");
  EXPECT_EQ(c->error->message, "The model failed");
  EXPECT_THAT(why(), HasSubstr("error in response server_error"));
}

TEST(EndpointTest, ResponsesReplayRoundTrips) {
  for (std::string_view body : {kResponsesText, kResponsesFunctionCalls,
                                kResponsesRefusal, kResponsesReasoning}) {
    ExpectRoundTrip(Endpoint::kResponses, body);
  }
}

TEST(EndpointTest, ResponsesReplayShape) {
  Result<std::vector<std::string>> frames =
      ReplayEvents(Endpoint::kResponses, kResponsesText);
  ASSERT_OK(frames.status());
  EXPECT_EQ(Types(*frames),
            (std::vector<std::string>{
                "response.created", "response.in_progress",
                "response.output_item.added", "response.content_part.added",
                "response.output_text.delta", "response.output_text.done",
                "response.content_part.done", "response.output_item.done",
                "response.completed"}));
  const json::value created = Json(FrameData((*frames)[0]));
  EXPECT_EQ(created.at("response").at("status"), "in_progress");
  EXPECT_EQ(created.at("response").at("output"), json::array());
  EXPECT_EQ(created.at("response").at("id"), "resp_1");
  const json::value added = Json(FrameData((*frames)[2]));
  EXPECT_EQ(added.at("output_index"), 0);
  EXPECT_EQ(added.at("item").at("status"), "in_progress");
  EXPECT_EQ(added.at("item").at("content"), json::array());
  const json::value part = Json(FrameData((*frames)[3]));
  EXPECT_EQ(part.at("item_id"), "msg_1");
  EXPECT_EQ(part.at("part").at("text"), "");
  const json::value delta = Json(FrameData((*frames)[4]));
  EXPECT_EQ(delta.at("delta"), "Paris.");
  EXPECT_EQ(delta.at("content_index"), 0);
  EXPECT_EQ(Json(FrameData((*frames)[5])).at("text"), "Paris.");
  EXPECT_EQ(Json(FrameData(frames->back())).at("response"),
            Json(kResponsesText));

  frames = ReplayEvents(Endpoint::kResponses, kResponsesFunctionCalls);
  ASSERT_OK(frames.status());
  EXPECT_EQ(Types(*frames),
            (std::vector<std::string>{
                "response.created", "response.in_progress",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done", "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done", "response.completed"}));
  const json::value fc = Json(FrameData((*frames)[2]));
  EXPECT_EQ(fc.at("item").at("arguments"), "");
  EXPECT_EQ(Json(FrameData((*frames)[3])).at("delta"), R"({"city":"Paris"})");

  frames = ReplayEvents(Endpoint::kResponses, kResponsesRefusal);
  ASSERT_OK(frames.status());
  EXPECT_EQ(Types(*frames)[4], "response.refusal.delta");
  EXPECT_EQ(Types(*frames)[5], "response.refusal.done");

  frames = ReplayEvents(Endpoint::kResponses, kResponsesReasoning);
  ASSERT_OK(frames.status());
  const std::vector<std::string> types = Types(*frames);
  EXPECT_EQ(std::count(types.begin(), types.end(),
                       "response.reasoning_summary_text.delta"),
            2);
  EXPECT_EQ(std::count(types.begin(), types.end(),
                       "response.output_text.annotation.added"),
            1);
  EXPECT_EQ(Json(FrameData((*frames)[2])).at("item").at("summary"),
            json::array());
}

TEST(EndpointTest, ResponsesReplayOfAKeptAliveBody) {
  // OpenRouter's keep-alive newlines before the JSON are stored too.
  const std::string body = "\n\n" + std::string(kResponsesText);
  ExpectRoundTrip(Endpoint::kResponses, body);
  Result<std::vector<std::string>> frames =
      ReplayEvents(Endpoint::kResponses, body);
  ASSERT_OK(frames.status());
  EXPECT_TRUE(
      Json(FrameData(frames->front())).at("response").at("usage").is_null());
}

TEST(EndpointTest, NonObjectBodiesAreInvalid) {
  for (Endpoint e : {Endpoint::kChatCompletions, Endpoint::kEmbeddings,
                     Endpoint::kResponses, Endpoint::kMessages}) {
    EXPECT_THAT(ParseEndpointResponse(e, "").status(),
                StatusIs(StatusCode::kInvalidArgument));
    EXPECT_THAT(ParseEndpointResponse(e, "\"text\"").status(),
                StatusIs(StatusCode::kInvalidArgument));
    EXPECT_THAT(ParseEndpointResponse(e, "<html>502</html>").status(),
                StatusIs(StatusCode::kInvalidArgument));
  }
}

TEST(EndpointTest, ResponsesReplayOfOtherStatusesEndsWithTheirEvent) {
  json::value body = Json(kResponsesText);
  body.as_object()["status"] = "incomplete";
  Result<std::vector<std::string>> frames =
      ReplayEvents(Endpoint::kResponses, json::serialize(body));
  ASSERT_OK(frames.status());
  EXPECT_EQ(Types(*frames).back(), "response.incomplete");
  EXPECT_TRUE(IsTerminalEvent(Endpoint::kResponses, FrameData(frames->back())));
}

TEST(EndpointTest, ReplayRefusesBodiesOfOtherEndpoints) {
  EXPECT_THAT(ReplayEvents(Endpoint::kResponses, kMessagesText).status(),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ReplayEvents(Endpoint::kMessages, kResponsesText).status(),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ReplayEvents(Endpoint::kMessages, "not json").status(),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ReplayEvents(Endpoint::kResponses, "[]").status(),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(
      ReplayEvents(Endpoint::kMessages,
                   R"({"type":"error","error":{"type":"x","message":"y"}})")
          .status(),
      StatusIs(StatusCode::kInvalidArgument));
}

// A live-like Responses stream: snapshots, deltas, then the terminal event
// with the whole response.
TEST(EndpointTest, ResponsesAccumulatesALiveStream) {
  std::unique_ptr<EventAccumulator> acc =
      MakeEventAccumulator(Endpoint::kResponses);
  ASSERT_NE(acc, nullptr);
  const json::value full = Json(kResponsesText);
  json::value start = full;
  start.as_object()["status"] = "in_progress";
  start.as_object()["output"] = json::array();
  json::object created{{"type", "response.created"},
                       {"sequence_number", 0},
                       {"response", start}};
  EXPECT_OK(acc->Add(json::serialize(created)));
  EXPECT_OK(acc->Add(": keep-alive"));
  EXPECT_OK(acc->Add(
      R"({"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"type":"message","id":"msg_1","status":"in_progress","role":"assistant","content":[]}})"));
  for (std::string_view piece : {"Pa", "ri", "s."}) {
    json::object delta{{"type", "response.output_text.delta"},
                       {"sequence_number", 2},
                       {"item_id", "msg_1"},
                       {"output_index", 0},
                       {"content_index", 0},
                       {"delta", piece}};
    EXPECT_OK(acc->Add(json::serialize(delta)));
  }
  EXPECT_FALSE(acc->done());
  // Before the terminal event: the snapshot with the items seen so far.
  json::value partial = Json(acc->ToJson());
  EXPECT_EQ(partial.at("status"), "in_progress");
  EXPECT_EQ(partial.at("output").as_array().size(), 1u);
  EXPECT_THAT(WhyNotCacheable(Endpoint::kResponses, 200, acc->Parsed()),
              Not(IsEmpty()));

  json::object completed{{"type", "response.completed"},
                         {"sequence_number", 9},
                         {"response", full}};
  EXPECT_OK(acc->Add(json::serialize(completed)));
  EXPECT_TRUE(acc->done());
  EXPECT_EQ(Json(acc->ToJson()), full);
  // Nothing after the terminal event changes the body.
  EXPECT_OK(acc->Add(json::serialize(created)));
  EXPECT_OK(acc->Add("[DONE]"));
  EXPECT_EQ(Json(acc->ToJson()), full);
  EXPECT_EQ(acc->Parsed().content, "Paris.");
  EXPECT_FALSE(acc->error().has_value());
}

TEST(EndpointTest, ResponsesErrorEvents) {
  std::unique_ptr<EventAccumulator> acc =
      MakeEventAccumulator(Endpoint::kResponses);
  EXPECT_OK(acc->Add(
      R"({"type":"response.created","sequence_number":0,"response":{"id":"resp_x","object":"response","status":"in_progress","output":[]}})"));
  EXPECT_OK(acc->Add(
      R"({"type":"error","sequence_number":1,"code":"rate_limit_exceeded","message":"Slow down","param":null})"));
  ASSERT_TRUE(acc->error().has_value());
  EXPECT_EQ(acc->error()->code_text, "rate_limit_exceeded");
  EXPECT_EQ(acc->error()->message, "Slow down");
  EXPECT_FALSE(acc->done());
  const ParsedCompletion c = acc->Parsed();
  ASSERT_TRUE(c.error.has_value());
  EXPECT_THAT(WhyNotCacheable(Endpoint::kResponses, 200, c),
              HasSubstr("error in response"));

  // response.failed is terminal and carries its error.
  acc = MakeEventAccumulator(Endpoint::kResponses);
  EXPECT_OK(acc->Add(
      R"({"type":"response.failed","sequence_number":3,"response":{"id":"resp_y","object":"response","status":"failed","output":[],"error":{"code":"server_error","message":"boom"}}})"));
  EXPECT_TRUE(acc->done());
  ASSERT_TRUE(acc->error().has_value());
  EXPECT_EQ(acc->error()->message, "boom");

  // OpenRouter's envelope mid-stream.
  acc = MakeEventAccumulator(Endpoint::kResponses);
  EXPECT_OK(acc->Add(R"({"error":{"code":502,"message":"Provider down"}})"));
  ASSERT_TRUE(acc->error().has_value());
  EXPECT_EQ(acc->error()->code, 502);

  acc = MakeEventAccumulator(Endpoint::kResponses);
  EXPECT_THAT(acc->Add("not json"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(acc->Add(R"({"sequence_number":1})"),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(acc->Add(R"({"type":"response.output_item.added"})"),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(acc->ToJson(), "{}");
}

// ---- Anthropic Messages ----

TEST(EndpointTest, MessagesParse) {
  Result<ParsedCompletion> c =
      ParseEndpointResponse(Endpoint::kMessages, kMessagesText);
  ASSERT_OK(c.status());
  EXPECT_EQ(c->id, "msg_01");
  EXPECT_EQ(c->model, "anthropic/claude-sonnet-4.5");
  EXPECT_EQ(c->provider, "Anthropic");
  EXPECT_EQ(c->content, "Paris.");
  EXPECT_FALSE(c->content_null);
  EXPECT_EQ(c->finish_reason, "end_turn");
  EXPECT_TRUE(c->has_choices);
  ASSERT_TRUE(c->usage.has_value());
  EXPECT_EQ(c->usage->prompt_tokens, 312u);
  EXPECT_EQ(c->usage->completion_tokens, 5u);
  EXPECT_EQ(c->usage->total_tokens, 317u);
  EXPECT_EQ(c->usage->cached_tokens, 200u);
  EXPECT_EQ(c->usage->cache_write_tokens, 100u);
  EXPECT_DOUBLE_EQ(c->usage->cost.value_or(0), 0.00042);
  EXPECT_THAT(WhyNotCacheable(Endpoint::kMessages, 200, *c), IsEmpty());

  c = ParseEndpointResponse(Endpoint::kMessages, kMessagesToolUse);
  ASSERT_OK(c.status());
  EXPECT_EQ(c->content, "Let me check.");
  ASSERT_EQ(c->tool_calls.size(), 2u);
  EXPECT_EQ(c->tool_calls[0].id, "toolu_1");
  EXPECT_EQ(c->tool_calls[0].name, "weather");
  EXPECT_EQ(Json(c->tool_calls[0].arguments),
            Json(R"({"city":"Paris","days":[1,2],"units":{"t":"C"}})"));
  EXPECT_EQ(c->tool_calls[1].index, 1);
  EXPECT_EQ(c->tool_calls[1].arguments, "{}");
  EXPECT_EQ(c->finish_reason, "tool_use");

  c = ParseEndpointResponse(Endpoint::kMessages, kMessagesThinking);
  ASSERT_OK(c.status());
  EXPECT_EQ(c->reasoning, "The capital of France is Paris.");
  EXPECT_EQ(c->content, "Paris. Indeed.");
}

TEST(EndpointTest, MessagesErrorShapes) {
  Result<ParsedCompletion> c = ParseEndpointResponse(
      Endpoint::kMessages,
      R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  ASSERT_OK(c.status());
  ASSERT_TRUE(c->error.has_value());
  EXPECT_EQ(c->error->code_text, "overloaded_error");
  EXPECT_EQ(c->error->message, "Overloaded");
  EXPECT_FALSE(c->has_choices);
  EXPECT_THAT(WhyNotCacheable(Endpoint::kMessages, 200, *c),
              HasSubstr("overloaded_error"));
  EXPECT_THAT(WhyNotCacheable(Endpoint::kMessages, 529, *c), HasSubstr("529"));
}

TEST(EndpointTest, MessagesCacheability) {
  json::value body = Json(kMessagesText);
  auto why = [&body]() {
    Result<ParsedCompletion> c =
        ParseEndpointResponse(Endpoint::kMessages, json::serialize(body));
    EXPECT_OK(c.status());
    return c.ok() ? WhyNotCacheable(Endpoint::kMessages, 200, *c)
                  : std::string("parse failed");
  };
  for (std::string_view ok :
       {"end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"}) {
    body.as_object()["stop_reason"] = ok;
    EXPECT_THAT(why(), IsEmpty()) << ok;
  }
  body.as_object()["stop_reason"] = "pause_turn";
  EXPECT_EQ(why(), "stop_reason is \"pause_turn\"");
  body.as_object()["stop_reason"] = nullptr;
  EXPECT_EQ(why(), "no stop_reason");
  body.as_object()["stop_reason"] = "end_turn";
  body.as_object()["content"] = json::array();
  EXPECT_EQ(why(), "not a message, or no content");
  body = Json(kMessagesText);
  body.as_object()["type"] = "something_else";
  EXPECT_EQ(why(), "not a message, or no content");
  body = Json(kMessagesText);
  Result<ParsedCompletion> c =
      ParseEndpointResponse(Endpoint::kMessages, kMessagesText);
  ASSERT_OK(c.status());
  EXPECT_THAT(WhyNotCacheable(Endpoint::kMessages, 400, *c),
              HasSubstr("HTTP status 400"));
}

TEST(EndpointTest, MessagesReplayRoundTrips) {
  for (std::string_view body : {kMessagesText, kMessagesToolUse,
                                kMessagesThinking, kMessagesRedactedOnly}) {
    ExpectRoundTrip(Endpoint::kMessages, body);
  }
  // Without stop_sequence or usage: nothing is added on the way back.
  ExpectRoundTrip(Endpoint::kMessages,
                  R"({"id":"m","type":"message","role":"assistant",
                      "model":"x","content":[{"type":"text","text":"hi"}],
                      "stop_reason":"end_turn"})");
}

TEST(EndpointTest, MessagesReplayShape) {
  Result<std::vector<std::string>> frames =
      ReplayEvents(Endpoint::kMessages, kMessagesThinking);
  ASSERT_OK(frames.status());
  EXPECT_EQ(
      Types(*frames),
      (std::vector<std::string>{
          "message_start", "content_block_start", "content_block_delta",
          "content_block_delta", "content_block_stop", "content_block_start",
          "content_block_stop", "content_block_start", "content_block_delta",
          "content_block_stop", "content_block_start", "content_block_delta",
          "content_block_stop", "message_delta", "message_stop"}));
  const json::value start = Json(FrameData((*frames)[0]));
  EXPECT_EQ(start.at("message").at("content"), json::array());
  EXPECT_TRUE(start.at("message").at("stop_reason").is_null());
  EXPECT_TRUE(start.at("message").at("stop_sequence").is_null());
  EXPECT_EQ(start.at("message").at("usage").at("output_tokens"), 1);
  EXPECT_EQ(start.at("message").at("usage").at("input_tokens"), 9);
  const json::value thinking = Json(FrameData((*frames)[1]));
  EXPECT_EQ(thinking.at("content_block"),
            Json(R"({"type":"thinking","thinking":"","signature":""})"));
  EXPECT_EQ(Json(FrameData((*frames)[2])).at("delta").at("type"),
            "thinking_delta");
  EXPECT_EQ(
      Json(FrameData((*frames)[3])).at("delta"),
      Json(
          R"({"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3h"})"));
  EXPECT_EQ(
      Json(FrameData((*frames)[5])).at("content_block"),
      Json(
          R"({"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix/LafPsn4a"})"));
  const json::value end = Json(FrameData((*frames)[13]));
  EXPECT_EQ(end.at("delta"),
            Json(R"({"stop_reason":"stop_sequence","stop_sequence":"###"})"));
  EXPECT_EQ(end.at("usage").at("output_tokens"), 77);

  frames = ReplayEvents(Endpoint::kMessages, kMessagesToolUse);
  ASSERT_OK(frames.status());
  const json::value tool_start = Json(FrameData((*frames)[4]));
  EXPECT_EQ(tool_start.at("content_block").at("input"), json::object());
  const json::value tool_delta = Json(FrameData((*frames)[5]));
  EXPECT_EQ(tool_delta.at("delta").at("type"), "input_json_delta");
  EXPECT_EQ(Json(tool_delta.at("delta").at("partial_json").as_string()),
            Json(R"({"city":"Paris","days":[1,2],"units":{"t":"C"}})"));
}

// A live-like Messages stream: pings, text in several deltas, a tool_use
// input in partial_json pieces, and the final usage in message_delta.
constexpr std::string_view kLiveMessages[] = {
    R"({"type":"message_start","message":{"id":"msg_live","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":10,"output_tokens":1}}})",
    R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})",
    R"({"type": "ping"})",
    R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me "}})",
    R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"look that "}})",
    R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"up. \u00e9"}})",
    R"({"type":"content_block_stop","index":0})",
    R"({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{}}})",
    R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}})",
    R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"locat"}})",
    R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ion\": \"San Fra"}})",
    R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ncisco, CA\", \"n\": [1, 2]}"}})",
    R"({"type":"content_block_stop","index":1})",
    R"({"type":"ping"})",
    R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}})",
    R"({"type":"message_stop"})",
};

constexpr std::string_view kLiveMessagesBody = R"({"id":"msg_live",
  "type":"message","role":"assistant","model":"claude-sonnet-4-5",
  "content":[{"type":"text","text":"Let me look that up. \u00e9"},
    {"type":"tool_use","id":"toolu_01","name":"get_weather",
     "input":{"location":"San Francisco, CA","n":[1,2]}}],
  "stop_reason":"tool_use","stop_sequence":null,
  "usage":{"input_tokens":25,"cache_creation_input_tokens":0,
    "cache_read_input_tokens":10,"output_tokens":89}})";

TEST(EndpointTest, MessagesAccumulatesALiveStream) {
  std::unique_ptr<EventAccumulator> acc =
      MakeEventAccumulator(Endpoint::kMessages);
  ASSERT_NE(acc, nullptr);
  for (size_t i = 0; i < std::size(kLiveMessages); ++i) {
    EXPECT_FALSE(acc->done());
    EXPECT_EQ(IsTerminalEvent(Endpoint::kMessages, kLiveMessages[i]),
              i + 1 == std::size(kLiveMessages));
    // As the SSE parser hands them over, from frames with named events.
    const std::string frame = SseFrame(Endpoint::kMessages, kLiveMessages[i]);
    EXPECT_THAT(frame, StartsWith("event: "));
    EXPECT_OK(acc->Add(FrameData(frame))) << kLiveMessages[i];
  }
  EXPECT_TRUE(acc->done());
  EXPECT_FALSE(acc->error().has_value());
  EXPECT_EQ(Json(acc->ToJson()), Json(kLiveMessagesBody));
  const ParsedCompletion c = acc->Parsed();
  EXPECT_EQ(c.content, "Let me look that up. \xc3\xa9");
  ASSERT_EQ(c.tool_calls.size(), 1u);
  EXPECT_EQ(Json(c.tool_calls[0].arguments),
            Json(R"({"location":"San Francisco, CA","n":[1,2]})"));
  EXPECT_EQ(c.usage->completion_tokens, 89u);
  EXPECT_EQ(c.usage->prompt_tokens, 35u);
  EXPECT_THAT(WhyNotCacheable(Endpoint::kMessages, 200, c), IsEmpty());
}

TEST(EndpointTest, MessagesStreamWithoutItsEndIsNotDone) {
  std::unique_ptr<EventAccumulator> acc =
      MakeEventAccumulator(Endpoint::kMessages);
  // Cut inside the tool_use input.
  for (size_t i = 0; i < 10; ++i) EXPECT_OK(acc->Add(kLiveMessages[i]));
  EXPECT_FALSE(acc->done());
  const json::value partial = Json(acc->ToJson());
  EXPECT_EQ(partial.at("content").as_array().size(), 2u);
  EXPECT_EQ(partial.at("content").at(0).at("text"),
            "Let me look that up. \u00e9");
  EXPECT_EQ(partial.at("content").at(1).at("input"), json::object());
  EXPECT_TRUE(partial.at("stop_reason").is_null());
  EXPECT_THAT(WhyNotCacheable(Endpoint::kMessages, 200, acc->Parsed()),
              Not(IsEmpty()));

  // Everything but message_stop.
  acc = MakeEventAccumulator(Endpoint::kMessages);
  for (size_t i = 0; i + 1 < std::size(kLiveMessages); ++i) {
    EXPECT_OK(acc->Add(kLiveMessages[i]));
  }
  EXPECT_FALSE(acc->done());

  EXPECT_EQ(MakeEventAccumulator(Endpoint::kMessages)->ToJson(), "{}");
}

TEST(EndpointTest, MessagesErrorEvents) {
  std::unique_ptr<EventAccumulator> acc =
      MakeEventAccumulator(Endpoint::kMessages);
  EXPECT_OK(acc->Add(kLiveMessages[0]));
  EXPECT_OK(acc->Add(kLiveMessages[1]));
  EXPECT_OK(acc->Add(kLiveMessages[3]));
  EXPECT_OK(acc->Add(
      R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})"));
  ASSERT_TRUE(acc->error().has_value());
  EXPECT_EQ(acc->error()->code_text, "overloaded_error");
  EXPECT_EQ(acc->error()->message, "Overloaded");
  EXPECT_FALSE(acc->done());
  const ParsedCompletion c = acc->Parsed();
  ASSERT_TRUE(c.error.has_value());
  EXPECT_EQ(c.content, "Let me ");
  EXPECT_THAT(WhyNotCacheable(Endpoint::kMessages, 200, c),
              HasSubstr("overloaded_error"));

  // An error before any message: the body is the error.
  acc = MakeEventAccumulator(Endpoint::kMessages);
  EXPECT_OK(acc->Add(
      R"({"type":"error","error":{"type":"api_error","message":"Internal"}})"));
  EXPECT_EQ(
      Json(acc->ToJson()),
      Json(
          R"({"type":"error","error":{"type":"api_error","message":"Internal"}})"));
  EXPECT_EQ(acc->Parsed().error->code_text, "api_error");

  // OpenRouter's envelope mid-stream.
  acc = MakeEventAccumulator(Endpoint::kMessages);
  EXPECT_OK(acc->Add(kLiveMessages[0]));
  EXPECT_OK(acc->Add(R"({"error":{"code":502,"message":"Provider down"}})"));
  ASSERT_TRUE(acc->error().has_value());
  EXPECT_EQ(acc->error()->code, 502);
}

TEST(EndpointTest, MessagesRejectsMalformedEvents) {
  std::unique_ptr<EventAccumulator> acc =
      MakeEventAccumulator(Endpoint::kMessages);
  EXPECT_THAT(acc->Add("{not json"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(acc->Add("[1]"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(acc->Add(R"({"index":0})"),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(acc->Add(R"({"type":"message_start"})"),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(acc->Add(R"({"type":"message_delta","delta":{}})"),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_OK(acc->Add(kLiveMessages[0]));
  EXPECT_THAT(
      acc->Add(
          R"({"type":"content_block_delta","index":5,"delta":{"type":"text_delta","text":"x"}})"),
      StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(acc->Add(R"({"type":"content_block_stop","index":5})"),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_OK(acc->Add(
      R"({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"n","input":{}}})"));
  EXPECT_OK(acc->Add(
      R"({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}})"));
  EXPECT_THAT(acc->Add(R"({"type":"content_block_stop","index":0})"),
              StatusIs(StatusCode::kInvalidArgument));
  // Events of later API versions are skipped, comments and [DONE] too.
  EXPECT_OK(acc->Add(R"({"type":"some_future_event","x":1})"));
  EXPECT_OK(acc->Add(": comment"));
  EXPECT_OK(acc->Add("[DONE]"));
  EXPECT_OK(acc->Add("  "));
}

// A 200 with no answer in it: not JSON on any endpoint; a chat completion
// with neither choices nor an error. An empty Messages or Responses answer
// is still one (Anthropic may answer with no content).
TEST(EndpointTest, WhyNoAnswer) {
  auto no = [](Endpoint e, std::string_view body) {
    Result<ParsedCompletion> p = ParseEndpointResponse(e, body);
    return WhyNoAnswer(e, body, p.status(), p.ok() ? *p : ParsedCompletion());
  };
  for (Endpoint e : {Endpoint::kChatCompletions, Endpoint::kEmbeddings,
                     Endpoint::kResponses, Endpoint::kMessages}) {
    for (std::string_view body : {"", "<html>bad gateway</html>",
                                  R"({"choices":[{"mes)", "[1,2]", "null"}) {
      EXPECT_EQ(no(e, body), "a body that is not a JSON object")
          << static_cast<int>(e) << ": " << body;
    }
    EXPECT_THAT(no(e, R"({"error":{"code":500,"message":"x"}})"), IsEmpty());
  }
  EXPECT_EQ(no(Endpoint::kChatCompletions, "{}"),
            "neither choices, nor an error, nor usage");
  EXPECT_EQ(no(Endpoint::kChatCompletions, R"({"choices":[]})"),
            "neither choices, nor an error, nor usage");
  // Billed: passed on (a retry would pay again).
  EXPECT_THAT(no(Endpoint::kChatCompletions,
                 R"({"choices":[],"usage":{"prompt_tokens":3,)"
                 R"("completion_tokens":0,"total_tokens":3}})"),
              IsEmpty());
  // Not refused as invalid (say, out of memory): not told.
  EXPECT_THAT(
      WhyNoAnswer(Endpoint::kChatCompletions, "not json",
                  ResourceExhaustedError("out of memory"), ParsedCompletion()),
      IsEmpty());
  EXPECT_THAT(no(Endpoint::kChatCompletions,
                 "\n\n"
                 R"({"choices":[{"message":{"content":"x"}}]})"),
              IsEmpty());
  EXPECT_THAT(
      no(Endpoint::kMessages, R"({"type":"message","content":[],"role":"x"})"),
      IsEmpty());
  EXPECT_THAT(no(Endpoint::kResponses, R"({"output":[]})"), IsEmpty());
}

}  // namespace
}  // namespace llmcache::net
