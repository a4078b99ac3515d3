// The proxy's other cached endpoints over real loopback sockets, in front of
// the fake OpenRouter: embeddings (single inputs and batches cached input by
// input), the Responses API and Anthropic Messages (miss then hit, streams
// replayed as the endpoint's own events, bypass reasons, errors in the
// endpoint's shape, nothing stored from a failure).

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "fake_openrouter.h"
#include "llmcache/net/endpoint.h"
#include "llmcache/net/proxy.h"
#include "llmcache/net/sse.h"
#include "testing/http_client.h"
#include "testing/proxy_fixture.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

namespace llmcache::net {
namespace {

namespace json = boost::json;
using ::llmcache::fake::FakeOpenRouter;
using ::llmcache::fake::FakeOptions;
using Reply = ::llmcache::testing::HttpReply;
using Headers = ::llmcache::testing::HttpHeaders;
using namespace std::chrono_literals;

json::value Json(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  EXPECT_FALSE(ec) << text;
  return v;
}

// The frames of an SSE body: (event name or "", data).
std::vector<std::pair<std::string, std::string>> Frames(
    const std::string& body) {
  std::vector<std::pair<std::string, std::string>> out;
  SseParser parser;
  parser.Feed(body, [&](SseEvent&& e) { out.emplace_back(e.event, e.data); });
  return out;
}

// The body a stream accumulates to.
json::value Accumulated(Endpoint endpoint, const std::string& sse) {
  std::unique_ptr<EventAccumulator> acc = MakeEventAccumulator(endpoint);
  for (const auto& [event, data] : Frames(sse)) {
    EXPECT_OK(acc->Add(data));
  }
  EXPECT_TRUE(acc->done());
  return Json(acc->ToJson());
}

class ProxyEndpointsTest : public ::llmcache::testing::ProxyFixture {
 protected:
  void SetUp() override {
    StartFake();
    if (HasFatalFailure()) return;
    CacheOptions co;
    co.path = dir_.path() + "/db";
    StartProxy(std::move(co), BaseProxyOptions(2, "sk-test-server"));
  }

  Reply Post(const std::string& target, const std::string& body,
             const Headers& headers = {}) {
    return ::llmcache::testing::HttpPost(proxy_->port(), target, body, headers);
  }
  Reply Embed(const std::string& input_json, const std::string& extra = "") {
    return Post("/v1/embeddings",
                R"({"model":"openai/text-embedding-3-small",)" + extra +
                    R"("input":)" + input_json + "}");
  }

  testing::TempDir dir_;
};

// ---------------------------------------------------------------- embeddings

TEST_F(ProxyEndpointsTest, EmbeddingMissThenHitWithoutTemperature) {
  const Reply first = Embed(R"("the quick brown fox")");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("x-cache"), "MISS");
  const Reply second = Embed(R"("the quick brown fox")");
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(second.header("x-cache"), "HIT");
  EXPECT_EQ(fake_->embeddings(), 1u);
  // The answer is the stored one but for its usage: as for a batch, what
  // this request spent upstream, nothing (a string input and the same input
  // in an array answer alike).
  json::value hit = Json(second.body);
  json::value miss = Json(first.body);
  EXPECT_GT(miss.at("usage").at("prompt_tokens").to_number<int>(), 0);
  EXPECT_EQ(hit.at("usage").at("prompt_tokens").to_number<int>(), 0);
  EXPECT_EQ(hit.at("usage").at("total_tokens").to_number<int>(), 0);
  EXPECT_EQ(hit.at("data"), miss.at("data"));
  EXPECT_EQ(hit.at("model"), miss.at("model"));
  hit.as_object().erase("usage");
  miss.as_object().erase("usage");
  EXPECT_EQ(hit, miss);
  const Reply in_array = Embed(R"(["the quick brown fox"])");
  EXPECT_EQ(in_array.header("x-cache"), "HIT");
  EXPECT_EQ(Json(in_array.body).at("usage"), Json(second.body).at("usage"));
}

TEST_F(ProxyEndpointsTest, BatchIsCachedInputByInputInOrder) {
  const Reply a = Embed(R"(["alpha","bravo","charlie","delta"])");
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(a.header("x-cache"), "MISS");
  EXPECT_EQ(fake_->embedded_items(), 4u);

  // The same batch again: all four from the cache, nothing upstream.
  const Reply again = Embed(R"(["alpha","bravo","charlie","delta"])");
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.header("x-cache"), "HIT");
  EXPECT_EQ(fake_->embedded_items(), 4u);
  EXPECT_EQ(Json(again.body).at("data"), Json(a.body).at("data"));
  EXPECT_EQ(Json(again.body).at("usage").at("prompt_tokens").to_number<int>(),
            0);

  // Half overlapping, in another order: only the two new inputs go
  // upstream, in one request; the answer keeps this batch's order.
  const Reply half = Embed(R"(["echo","charlie","foxtrot","alpha"])");
  ASSERT_EQ(half.status, 200) << half.body;
  EXPECT_EQ(half.header("x-cache"), "MISS");
  EXPECT_EQ(fake_->embeddings(), 2u);
  EXPECT_EQ(fake_->embedded_items(), 6u);
  const json::value half_json = Json(half.body);
  const json::value a_json = Json(a.body);
  const json::array& data = half_json.at("data").as_array();
  ASSERT_EQ(data.size(), 4u);
  const json::array& first = a_json.at("data").as_array();
  for (size_t i = 0; i < data.size(); ++i) {
    EXPECT_EQ(data[i].at("index").to_number<int>(), static_cast<int>(i));
  }
  EXPECT_EQ(data[1].at("embedding"), first[2].at("embedding"));  // charlie
  EXPECT_EQ(data[3].at("embedding"), first[0].at("embedding"));  // alpha
  // Usage is what was spent upstream: "echo" and "foxtrot" alone.
  const Reply alone = Embed(R"(["echo","foxtrot"])");
  EXPECT_EQ(alone.header("x-cache"), "HIT");
  EXPECT_EQ(fake_->embeddings(), 2u);

  // Each input is the entry of the single-input request.
  const Reply single = Embed(R"("foxtrot")");
  EXPECT_EQ(single.header("x-cache"), "HIT");
  EXPECT_EQ(Json(single.body).at("data").at(0).at("embedding"),
            data[2].at("embedding"));
}

TEST_F(ProxyEndpointsTest, BatchUsageIsWhatWentUpstream) {
  ASSERT_EQ(Embed(R"(["aaaa","bbbbbbbb"])").status, 200);
  const Reply r = Embed(R"(["aaaa","bbbbbbbb","cccccccccccc"])");
  ASSERT_EQ(r.status, 200) << r.body;
  // The fake counts ceil(bytes / 4) tokens per string: 3 for the new one.
  EXPECT_EQ(Json(r.body).at("usage").at("prompt_tokens").to_number<int>(), 3);
}

TEST_F(ProxyEndpointsTest, RepeatedInputsOfABatchGoUpstreamOnce) {
  const Reply r = Embed(R"(["same","other","same"])");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(fake_->embedded_items(), 2u);
  const json::value r_json = Json(r.body);
  const json::array& data = r_json.at("data").as_array();
  ASSERT_EQ(data.size(), 3u);
  EXPECT_EQ(data[0].at("embedding"), data[2].at("embedding"));
  EXPECT_EQ(data[2].at("index").to_number<int>(), 2);
}

TEST_F(ProxyEndpointsTest, EncodingsAndDimensionsAreSeparateEntries) {
  ASSERT_EQ(Embed(R"("x")").status, 200);
  const Reply b64 = Embed(R"("x")", R"("encoding_format":"base64",)");
  EXPECT_EQ(b64.header("x-cache"), "MISS");
  EXPECT_TRUE(Json(b64.body).at("data").at(0).at("embedding").is_string());
  const Reply dims = Embed(R"("x")", R"("dimensions":4,)");
  EXPECT_EQ(dims.header("x-cache"), "MISS");
  EXPECT_EQ(Json(dims.body).at("data").at(0).at("embedding").as_array().size(),
            4u);
}

TEST_F(ProxyEndpointsTest, EmbeddingErrorsAreNotCached) {
  const std::string body =
      R"({"model":"fake/fault-500","input":["one","two"]})";
  const Reply first = Post("/v1/embeddings", body);
  EXPECT_EQ(first.status, 500) << first.body;
  const Reply second = Post("/v1/embeddings", body);
  EXPECT_EQ(second.status, 500);
  EXPECT_EQ(second.header("x-cache"), "MISS");
  EXPECT_EQ(fake_->embeddings(), 2u);
}

// A 200 that is not JSON is a 502 on every endpoint (in Anthropic's shape
// on Messages), and nothing is stored.
TEST_F(ProxyEndpointsTest, A200ThatIsNotJsonIsA502OnEveryEndpoint) {
  const std::pair<std::string, std::string> requests[] = {
      {"/v1/embeddings", R"({"model":"fake/not-json","input":"one"})"},
      {"/v1/embeddings", R"({"model":"fake/not-json","input":["a","b"]})"},
      {"/v1/responses",
       R"({"model":"fake/not-json","temperature":0,"input":"x"})"},
      {"/v1/messages", R"({"model":"fake/not-json","max_tokens":8,)"
                       R"("temperature":0,"messages":[{"role":"user",)"
                       R"("content":"x"}]})"}};
  for (const auto& [path, body] : requests) {
    for (int i = 0; i < 2; ++i) {
      const Reply r = Post(path, body);
      EXPECT_EQ(r.status, 502) << path << ": " << r.body;
      EXPECT_NE(r.header("x-cache"), "HIT") << path;
      const json::value v = Json(r.body);
      if (path == "/v1/messages") {
        EXPECT_EQ(v.at("type").as_string(), "error") << r.body;
        EXPECT_EQ(v.at("error").at("type").as_string(), "api_error");
      } else {
        EXPECT_TRUE(v.at("error").at("message").is_string()) << r.body;
      }
    }
  }
  EXPECT_EQ(fake_->embeddings(), 4u);
  EXPECT_EQ(fake_->responses(), 2u);
}

TEST_F(ProxyEndpointsTest, MalformedEmbeddingsRequestIs400) {
  const Reply r = Post("/v1/embeddings", R"({"model":"m","input":[]})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(fake_->embeddings(), 0u);
}

TEST_F(ProxyEndpointsTest, BatchInputsStayInTheirTenantsScope) {
  const std::string body =
      R"({"model":"openai/text-embedding-3-small","input":["t1","t2"]})";
  const Reply a =
      Post("/v1/embeddings", body, {{"Authorization", "Bearer sk-tenant-a"}});
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(
      Post("/v1/embeddings", body, {{"Authorization", "Bearer sk-tenant-a"}})
          .header("x-cache"),
      "HIT");
  // Another key never sees tenant A's inputs.
  const Reply b =
      Post("/v1/embeddings", body, {{"Authorization", "Bearer sk-tenant-b"}});
  EXPECT_EQ(b.header("x-cache"), "MISS");
  EXPECT_EQ(fake_->embedded_items(), 4u);
}

TEST_F(ProxyEndpointsTest, PerRequestControlsApplyToBatches) {
  const std::string body =
      R"({"model":"openai/text-embedding-3-small","input":["n1","n2"]})";
  // no-store: answered, nothing kept.
  const Reply kept_not =
      Post("/v1/embeddings", body, {{"Cache-Control", "no-store"}});
  ASSERT_EQ(kept_not.status, 200) << kept_not.body;
  EXPECT_EQ(kept_not.header("x-cache-stored"), "0");
  EXPECT_EQ(Post("/v1/embeddings", body).header("x-cache"), "MISS");
  EXPECT_EQ(Post("/v1/embeddings", body).header("x-cache"), "HIT");
  // Another namespace is another key; no-cache looks nothing up.
  EXPECT_EQ(Post("/v1/embeddings", body, {{"X-Cache-Namespace", "v2"}})
                .header("x-cache"),
            "MISS");
  EXPECT_EQ(Post("/v1/embeddings", body, {{"Cache-Control", "no-cache"}})
                .header("x-cache"),
            "MISS");
  EXPECT_EQ(fake_->embedded_items(), 8u);
}

// only-if-cached on a batch: answered when every input is cached, else a
// 504 that sends none of them upstream.
TEST_F(ProxyEndpointsTest, OnlyIfCachedBatchesAreAllCachedOrRefused) {
  const Headers only = {{"Cache-Control", "only-if-cached"}};
  ASSERT_EQ(Post("/v1/embeddings",
                 R"({"model":"openai/text-embedding-3-small","input":"o1"})")
                .status,
            200);
  EXPECT_EQ(fake_->embedded_items(), 1u);
  const Reply part = Post(
      "/v1/embeddings",
      R"({"model":"openai/text-embedding-3-small","input":["o1","o2","o2"]})",
      only);
  EXPECT_EQ(part.status, 504) << part.body;
  EXPECT_THAT(part.body, ::testing::HasSubstr("1 of 2 distinct inputs"));
  EXPECT_EQ(part.header("x-should-retry"), "false");
  EXPECT_EQ(fake_->embedded_items(), 1u);
  const Reply all = Post(
      "/v1/embeddings",
      R"({"model":"openai/text-embedding-3-small","input":["o1","o1"]})", only);
  EXPECT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(all.header("x-cache"), "HIT");
  EXPECT_EQ(fake_->embedded_items(), 1u);
}

// ----------------------------------------------------------------- responses

std::string ResponsesBody(bool stream, const std::string& extra = "") {
  return std::string(R"({"model":"openai/gpt-4o-mini","temperature":0,)") +
         (stream ? R"("stream":true,)" : "") + extra +
         R"("input":"Say hello"})";
}

TEST_F(ProxyEndpointsTest, ResponsesMissThenHit) {
  const Reply first = Post("/v1/responses", ResponsesBody(false));
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("x-cache"), "MISS");
  const Reply second = Post("/v1/responses", ResponsesBody(false));
  EXPECT_EQ(second.header("x-cache"), "HIT");
  EXPECT_EQ(Json(second.body), Json(first.body));
  EXPECT_EQ(fake_->responses(), 1u);
}

TEST_F(ProxyEndpointsTest, ResponsesStreamReplayEqualsTheLiveStream) {
  const Reply live = Post("/v1/responses", ResponsesBody(true));
  ASSERT_EQ(live.status, 200) << live.body;
  EXPECT_EQ(live.header("x-cache"), "MISS");
  const Reply replay = Post("/v1/responses", ResponsesBody(true));
  ASSERT_EQ(replay.status, 200) << replay.body;
  EXPECT_EQ(replay.header("x-cache"), "HIT");
  EXPECT_EQ(fake_->responses(), 1u);
  EXPECT_EQ(Accumulated(Endpoint::kResponses, replay.body),
            Accumulated(Endpoint::kResponses, live.body));
  // Every replayed event is named after its type, in order, created first
  // and completed last.
  const auto frames = Frames(replay.body);
  ASSERT_GE(frames.size(), 3u);
  EXPECT_EQ(frames.front().first, "response.created");
  EXPECT_EQ(frames.back().first, "response.completed");
  for (const auto& [event, data] : frames) {
    EXPECT_EQ(Json(data).at("type").as_string(), event);
  }
  // And a plain request gets the stream's answer as JSON.
  const Reply plain = Post("/v1/responses", ResponsesBody(false));
  EXPECT_EQ(plain.header("x-cache"), "HIT");
  EXPECT_EQ(Json(plain.body).at("output"),
            Accumulated(Endpoint::kResponses, live.body).at("output"));
}

TEST_F(ProxyEndpointsTest, StatefulResponsesBypassWithTheirReason) {
  const Reply stored =
      Post("/v1/responses", ResponsesBody(false, R"("store":true,)"));
  EXPECT_EQ(stored.header("x-cache"), "BYPASS");
  EXPECT_EQ(stored.header("x-cache-bypass-reason"), "store_requested");
  const Reply chained =
      Post("/v1/responses",
           ResponsesBody(false, R"("previous_response_id":"resp_1",)"));
  EXPECT_EQ(chained.header("x-cache-bypass-reason"), "previous_response");
  const Reply background =
      Post("/v1/responses", ResponsesBody(false, R"("background":true,)"));
  EXPECT_EQ(background.header("x-cache-bypass-reason"), "background");
}

TEST_F(ProxyEndpointsTest, ResponsesCutStreamIsNotStored) {
  const std::string body =
      R"({"model":"fake/cut","temperature":0,"stream":true,"input":"x"})";
  Post("/v1/responses", body);
  const Reply again = Post("/v1/responses", body);
  EXPECT_NE(again.header("x-cache"), "HIT");
  EXPECT_EQ(fake_->responses(), 2u);
}

TEST_F(ProxyEndpointsTest, ResponsesErrorsAreNotStored) {
  const std::string failed =
      R"({"model":"fake/fault-500","temperature":0,"input":"x"})";
  EXPECT_EQ(Post("/v1/responses", failed).status, 500);
  EXPECT_EQ(Post("/v1/responses", failed).header("x-cache"), "MISS");
  // A stream that ends with an error event is passed on, not stored.
  const std::string broken =
      R"({"model":"fake/midstream-error","temperature":0,"stream":true,)"
      R"("input":"x"})";
  Post("/v1/responses", broken);
  EXPECT_NE(Post("/v1/responses", broken).header("x-cache"), "HIT");
  EXPECT_EQ(fake_->responses(), 4u);
}

// ------------------------------------------------------------------ messages

TEST_F(ProxyEndpointsTest, MessagesCutStreamIsNotStored) {
  const std::string body =
      R"({"model":"fake/cut","max_tokens":16,"temperature":0,"stream":true,)"
      R"("messages":[{"role":"user","content":"x"}]})";
  Post("/v1/messages", body);
  EXPECT_NE(Post("/v1/messages", body).header("x-cache"), "HIT");
  EXPECT_EQ(fake_->messages(), 2u);
}

std::string MessagesBody(bool stream, const std::string& system) {
  return std::string(
             R"({"model":"anthropic/claude-sonnet-4.5","max_tokens":64,)"
             R"("temperature":0,)") +
         (stream ? R"("stream":true,)" : "") + R"("system":)" + system +
         R"(,"messages":[{"role":"user","content":"Hi"}]})";
}

TEST_F(ProxyEndpointsTest, AnthropicBetaHeadersAreForwardedAndKeyed) {
  const std::string body = MessagesBody(false, R"("B")");
  ASSERT_EQ(Post("/v1/messages", body).status, 200);
  const Reply beta =
      Post("/v1/messages", body,
           {{"anthropic-beta", "interleaved-thinking-2025-05-14"}});
  EXPECT_EQ(beta.header("x-cache"), "MISS");
  EXPECT_EQ(fake_->last_header("anthropic-beta"),
            "interleaved-thinking-2025-05-14");
  EXPECT_EQ(Post("/v1/messages", body,
                 {{"anthropic-beta", "interleaved-thinking-2025-05-14"}})
                .header("x-cache"),
            "HIT");
}

TEST_F(ProxyEndpointsTest, MessagesMissThenHitIgnoringCacheControl) {
  const Reply first =
      Post("/v1/messages", MessagesBody(false, R"("Be brief.")"),
           {{"x-api-key", "sk-test"}, {"anthropic-version", "2023-06-01"}});
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("x-cache"), "MISS");
  // The same system prompt as a block marked for prompt caching.
  const Reply second =
      Post("/v1/messages",
           MessagesBody(false, R"([{"type":"text","text":"Be brief.",)"
                               R"("cache_control":{"type":"ephemeral"}}])"),
           {{"x-api-key", "sk-test"}});
  EXPECT_EQ(second.header("x-cache"), "HIT") << second.body;
  EXPECT_EQ(Json(second.body), Json(first.body));
  EXPECT_EQ(fake_->messages(), 1u);
}

TEST_F(ProxyEndpointsTest, MessagesStreamReplaysTheMessagesEvents) {
  const Reply live = Post("/v1/messages", MessagesBody(true, R"("S")"));
  ASSERT_EQ(live.status, 200) << live.body;
  const Reply replay = Post("/v1/messages", MessagesBody(true, R"("S")"));
  ASSERT_EQ(replay.status, 200);
  EXPECT_EQ(replay.header("x-cache"), "HIT");
  EXPECT_EQ(Accumulated(Endpoint::kMessages, replay.body),
            Accumulated(Endpoint::kMessages, live.body));
  std::vector<std::string> names;
  for (const auto& [event, data] : Frames(replay.body)) {
    names.push_back(event);
  }
  ASSERT_GE(names.size(), 5u);
  EXPECT_EQ(names.front(), "message_start");
  EXPECT_EQ(names[names.size() - 2], "message_delta");
  EXPECT_EQ(names.back(), "message_stop");
  EXPECT_NE(std::find(names.begin(), names.end(), "content_block_delta"),
            names.end());
}

TEST_F(ProxyEndpointsTest, UpstreamErrorsOnMessagesAreInAnthropicShape) {
  const std::string body = R"({"model":"fake/fault-429","max_tokens":8,)"
                           R"("temperature":0,"messages":[{"role":"user",)"
                           R"("content":"x"}]})";
  const Reply r = Post("/v1/messages", body);
  EXPECT_EQ(r.status, 429);
  const json::value v = Json(r.body);
  EXPECT_EQ(v.at("type").as_string(), "error");
  EXPECT_EQ(v.at("error").at("type").as_string(), "rate_limit_error");
}

// A Messages stream kept alive (its head went with 200 while it waited) that
// then fails gets Anthropic's `error` event with the type of the status, as
// a stream Anthropic fails mid-way does: the upstream's error, or the
// proxy's own (an upstream timeout). The request counts as the error it is.
TEST_F(ProxyEndpointsTest, AnErrorAfterAKeptAliveMessagesHeadIsAnthropics) {
  CacheOptions co;
  co.path = dir_.path() + "/db";
  net::ProxyOptions po = BaseProxyOptions(2, "sk-test-server");
  po.stream_keepalive = 100ms;
  po.upstream.headers_timeout = 600ms;  // the proxy's own 504
  StartProxy(std::move(co), std::move(po));
  ASSERT_NE(proxy_, nullptr);
  for (const auto& [fault, type] :
       std::vector<std::pair<std::string, std::string>>{
           {"fault-429-after-300", "rate_limit_error"},
           {"fault-529-after-300", "overloaded_error"},
           {"delay-1500", "timeout_error"}}) {
    const std::string body = R"({"model":"fake/)" + fault +
                             R"(","max_tokens":8,"temperature":0,)"
                             R"("stream":true,"messages":[{"role":"user",)"
                             R"("content":"x"}]})";
    const Reply r = Post("/v1/messages", body);
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_TRUE(r.error.empty()) << r.error;  // a whole chunked body
    EXPECT_NE(r.body.find(": waiting"), std::string::npos) << r.body;
    const auto frames = Frames(r.body);
    ASSERT_EQ(frames.size(), 1u) << r.body;
    EXPECT_EQ(frames[0].first, "error") << r.body;
    const json::value v = Json(frames[0].second);
    EXPECT_EQ(v.at("type").as_string(), "error") << r.body;
    EXPECT_EQ(v.at("error").at("type").as_string(), type) << r.body;
  }
  const std::string metrics =
      ::llmcache::testing::HttpGet(proxy_->port(), "/metrics").body;
  for (const char* line : {R"(route="messages",code="4xx"} 1)",
                           R"(route="messages",code="5xx"} 2)",
                           R"(route="messages",code="2xx"} 0)"}) {
    EXPECT_NE(metrics.find(line), std::string::npos) << line << "\n" << metrics;
  }
}

TEST_F(ProxyEndpointsTest, MessagesErrorsUseAnthropicShape) {
  const Reply bad = Post("/v1/messages", R"({"model":"m","messages":)");
  EXPECT_EQ(bad.status, 400);
  const json::value v = Json(bad.body);
  EXPECT_EQ(v.at("type").as_string(), "error");
  EXPECT_EQ(v.at("error").at("type").as_string(), "invalid_request_error");
  // An upstream failure is passed on and not stored.
  const std::string body = R"({"model":"fake/fault-529","max_tokens":8,)"
                           R"("temperature":0,"messages":[{"role":"user",)"
                           R"("content":"x"}]})";
  EXPECT_EQ(Post("/v1/messages", body).status, 529);
  EXPECT_EQ(Post("/v1/messages", body).header("x-cache"), "MISS");
}

TEST_F(ProxyEndpointsTest, StatsCountEachEndpoint) {
  Embed(R"("s")");
  Embed(R"("s")");
  Post("/v1/responses", ResponsesBody(false));
  Post("/v1/messages", MessagesBody(false, R"("S")"));
  Post("/v1/messages", MessagesBody(false, R"("S")"));
  const auto r = ::llmcache::testing::HttpGet(proxy_->port(), "/stats");
  ASSERT_EQ(r.status, 200);
  const json::value stats = Json(r.body);
  const json::value& e = stats.at("client").at("endpoints");
  EXPECT_EQ(e.at("embeddings").at("hits").to_number<int>(), 1);
  EXPECT_EQ(e.at("embeddings").at("misses").to_number<int>(), 1);
  EXPECT_EQ(e.at("responses").at("misses").to_number<int>(), 1);
  EXPECT_EQ(e.at("messages").at("hits").to_number<int>(), 1);
  EXPECT_EQ(e.at("chat_completions").at("hits").to_number<int>(), 0);
}

}  // namespace
}  // namespace llmcache::net
