// Tests of the fake OpenRouter's embeddings, Responses API and Messages
// endpoints (net/fake/fake_endpoints.h) over loopback: shapes, named-event
// streams that accumulate to the non-stream body, deterministic embeddings,
// the fault selectors and the counters.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fake_openrouter.h"
#include "testing/http_client.h"
#include "testing/status_matchers.h"

namespace llmcache::fake {
namespace {

namespace json = boost::json;
using ::llmcache::testing::HttpConnection;
using ::llmcache::testing::HttpHeaders;
using ::llmcache::testing::HttpPost;
using ::llmcache::testing::HttpReply;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kKey[] = "sk-or-v1-endpoints";

const HttpHeaders& Auth() {
  static const HttpHeaders h = {
      {"Authorization", std::string("Bearer ") + kKey}};
  return h;
}

json::object Parse(const std::string& s) {
  boost::system::error_code ec;
  json::value v = json::parse(s, ec);
  EXPECT_FALSE(ec) << "not JSON: " << s;
  if (ec || !v.is_object()) return {};
  return v.get_object();
}

std::string Str(const json::value& v) { return std::string(v.as_string()); }

// One named SSE event.
struct Event {
  std::string name;  // the "event:" line
  json::object data;
};

// The named events of an SSE body; keep-alive comments are skipped, and an
// event whose name differs from its data's "type" fails the test.
std::vector<Event> Events(const std::string& sse) {
  std::vector<Event> out;
  size_t pos = 0;
  while (pos < sse.size()) {
    size_t end = sse.find("\n\n", pos);
    if (end == std::string::npos) end = sse.size();
    const std::string block = sse.substr(pos, end - pos);
    pos = end + 2;
    if (block.empty() || block[0] == ':') continue;
    EXPECT_THAT(block, StartsWith("event: "));
    const size_t nl = block.find('\n');
    EXPECT_NE(nl, std::string::npos) << block;
    if (nl == std::string::npos) continue;
    Event e;
    e.name = block.substr(7, nl - 7);
    const std::string data_line = block.substr(nl + 1);
    EXPECT_THAT(data_line, StartsWith("data: "));
    e.data = Parse(data_line.substr(6));
    EXPECT_EQ(Str(e.data.at("type")), e.name);
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<std::string> Names(const std::vector<Event>& events) {
  std::vector<std::string> names;
  for (const Event& e : events) names.push_back(e.name);
  return names;
}

// Reads a (possibly broken) streamed answer piece by piece; *complete: whether
// the body ended as its framing says.
std::string ReadStream(uint16_t port, const std::string& target,
                       const std::string& body, bool* complete) {
  HttpConnection c(port);
  EXPECT_TRUE(c.connected()) << c.error();
  EXPECT_TRUE(c.Write("POST", target, body, Auth())) << c.error();
  HttpReply head = c.ReadHead();
  EXPECT_EQ(head.status, 200) << head.error;
  std::string all;
  std::string piece;
  while (c.ReadBodyPiece(&piece)) all += piece;
  *complete = c.body_complete();
  return all;
}

std::unique_ptr<FakeOpenRouter> StartFake() {
  FakeOptions options;
  options.api_key = kKey;
  options.keepalive_comments = 1;
  auto fake = FakeOpenRouter::Start(options);
  EXPECT_THAT(fake, ::llmcache::testing::IsOk());
  return fake.ok() ? std::move(fake).value() : nullptr;
}

class FakeEndpointsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_ = StartFake();
    ASSERT_NE(fake_, nullptr);
  }

  HttpReply Post(const std::string& target, const json::object& body,
                 const HttpHeaders& headers = Auth()) {
    return HttpPost(fake_->port(), target, json::serialize(body), headers);
  }

  std::unique_ptr<FakeOpenRouter> fake_;
};

// ------------------------------------------------------------ embeddings

json::object EmbedBody(const std::string& model, json::value input) {
  json::object b;
  b["model"] = model;
  b["input"] = std::move(input);
  return b;
}

std::vector<float> Floats(const json::value& embedding) {
  std::vector<float> v;
  for (const json::value& x : embedding.as_array()) {
    v.push_back(static_cast<float>(x.to_number<double>()));
  }
  return v;
}

std::vector<std::vector<float>> Vectors(const HttpReply& r) {
  std::vector<std::vector<float>> out;
  const json::object o = Parse(r.body);
  const json::value* data = o.if_contains("data");
  if (data == nullptr) return out;
  int64_t index = 0;
  for (const json::value& e : data->as_array()) {
    EXPECT_EQ(e.at("index").as_int64(), index++);
    out.push_back(Floats(e.at("embedding")));
  }
  return out;
}

std::string Base64Decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) break;  // '=' padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

TEST_F(FakeEndpointsTest, EmbeddingsHaveOpenAiShape) {
  HttpReply r = Post("/api/v1/embeddings",
                     EmbedBody("openai/text-embedding-3-small", "hello"));
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  const json::object o = Parse(r.body);
  std::vector<std::string> keys;
  for (const auto& kv : o) keys.emplace_back(kv.key());
  EXPECT_THAT(
      keys, ElementsAre("object", "data", "model", "usage", "id", "provider"));
  EXPECT_EQ(Str(o.at("object")), "list");
  EXPECT_EQ(Str(o.at("model")), "openai/text-embedding-3-small");
  EXPECT_EQ(Str(o.at("provider")), "OpenAI");
  EXPECT_THAT(Str(o.at("id")), StartsWith("gen-emb-"));
  EXPECT_EQ(r.header("X-Generation-Id"), Str(o.at("id")));
  const json::array& data = o.at("data").as_array();
  ASSERT_EQ(data.size(), 1u);
  EXPECT_EQ(Str(data[0].at("object")), "embedding");
  EXPECT_EQ(data[0].at("index").as_int64(), 0);
  const std::vector<float> v = Floats(data[0].at("embedding"));
  ASSERT_EQ(v.size(), 8u);
  double norm = 0;
  for (float x : v) norm += static_cast<double>(x) * x;
  EXPECT_NEAR(norm, 1.0, 1e-5);
  const json::object& u = o.at("usage").as_object();
  EXPECT_EQ(u.at("prompt_tokens").as_int64(), 2);  // ceil(5 / 4)
  EXPECT_EQ(u.at("total_tokens").as_int64(), 2);
  EXPECT_GE(u.at("cost").to_number<double>(), 0.0);
  EXPECT_EQ(fake_->embeddings(), 1u);
  EXPECT_EQ(fake_->embedded_items(), 1u);
  EXPECT_EQ(fake_->completions(), 0u);
}

TEST_F(FakeEndpointsTest, SameItemSameVectorAtAnyPosition) {
  const std::string model = "fake/echo";
  HttpReply batch =
      Post("/api/v1/embeddings",
           EmbedBody(model, json::array{"alpha", "beta", "gamma"}));
  HttpReply reordered =
      Post("/v1/embeddings", EmbedBody(model, json::array{"gamma", "alpha"}));
  HttpReply single = Post("/api/v1/embeddings", EmbedBody(model, "beta"));
  ASSERT_EQ(batch.status, 200) << batch.body;
  ASSERT_EQ(reordered.status, 200) << reordered.body;
  ASSERT_EQ(single.status, 200) << single.body;
  const auto b = Vectors(batch);
  const auto r = Vectors(reordered);
  const auto s = Vectors(single);
  ASSERT_EQ(b.size(), 3u);
  ASSERT_EQ(r.size(), 2u);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(r[0], b[2]);
  EXPECT_EQ(r[1], b[0]);
  EXPECT_EQ(s[0], b[1]);
  EXPECT_NE(b[0], b[1]);
  EXPECT_NE(b[1], b[2]);
  // Another model gives another vector.
  HttpReply other = Post("/api/v1/embeddings", EmbedBody("fake/other", "beta"));
  ASSERT_EQ(other.status, 200);
  EXPECT_NE(Vectors(other)[0], s[0]);
  EXPECT_EQ(Parse(batch.body).at("usage").at("prompt_tokens").as_int64(),
            2 + 1 + 2);
  EXPECT_EQ(fake_->embeddings(), 4u);
  EXPECT_EQ(fake_->embedded_items(), 7u);
}

TEST_F(FakeEndpointsTest, TokenArraysAreItems) {
  HttpReply one =
      Post("/api/v1/embeddings", EmbedBody("fake/echo", json::array{1, 2, 3}));
  HttpReply two =
      Post("/api/v1/embeddings",
           EmbedBody("fake/echo",
                     json::array{json::array{7, 8}, json::array{1, 2, 3}}));
  HttpReply text = Post("/api/v1/embeddings", EmbedBody("fake/echo", "1,2,3"));
  ASSERT_EQ(one.status, 200) << one.body;
  ASSERT_EQ(two.status, 200) << two.body;
  ASSERT_EQ(text.status, 200) << text.body;
  ASSERT_EQ(Vectors(one).size(), 1u);
  ASSERT_EQ(Vectors(two).size(), 2u);
  EXPECT_EQ(Vectors(two)[1], Vectors(one)[0]);
  EXPECT_NE(Vectors(text)[0], Vectors(one)[0]);
  EXPECT_EQ(Parse(one.body).at("usage").at("prompt_tokens").as_int64(), 3);
  EXPECT_EQ(Parse(two.body).at("usage").at("total_tokens").as_int64(), 5);
  EXPECT_EQ(fake_->embedded_items(), 4u);
}

TEST_F(FakeEndpointsTest, DimensionsAndBase64) {
  json::object body = EmbedBody("fake/echo", json::array{"x", "y"});
  body["dimensions"] = 300;
  HttpReply floats = Post("/api/v1/embeddings", body);
  body["encoding_format"] = "base64";
  HttpReply b64 = Post("/api/v1/embeddings", body);
  ASSERT_EQ(floats.status, 200) << floats.body;
  ASSERT_EQ(b64.status, 200) << b64.body;
  const auto v = Vectors(floats);
  ASSERT_EQ(v.size(), 2u);
  ASSERT_EQ(v[0].size(), 300u);
  const json::object b64_body = Parse(b64.body);
  const json::array& data = b64_body.at("data").as_array();
  ASSERT_EQ(data.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const std::string bytes = Base64Decode(Str(data[i].at("embedding")));
    ASSERT_EQ(bytes.size(), 300u * 4);
    std::vector<float> decoded(300);
    for (size_t k = 0; k < 300; ++k) {
      uint32_t word = 0;
      for (int b = 0; b < 4; ++b) {
        word |= static_cast<uint32_t>(static_cast<unsigned char>(
                    bytes[k * 4 + static_cast<size_t>(b)]))
                << (8 * b);
      }
      std::memcpy(&decoded[k], &word, sizeof(word));
    }
    EXPECT_EQ(decoded, v[i]) << i;
  }
  // The default length is 8, and the dimensions change the vector.
  HttpReply small = Post("/api/v1/embeddings", EmbedBody("fake/echo", "x"));
  ASSERT_EQ(Vectors(small)[0].size(), 8u);
  EXPECT_NE(Vectors(small)[0][0], v[0][0]);
}

TEST_F(FakeEndpointsTest, BadEmbeddingInputsAre400) {
  std::vector<json::object> bodies = {
      EmbedBody("fake/echo", 5),
      EmbedBody("fake/echo", json::array()),
      EmbedBody("fake/echo", json::array{1, "a"}),
      EmbedBody("fake/echo", json::array{"a", 1}),
      EmbedBody("fake/echo", json::array{json::array{1}, "a"}),
      EmbedBody("fake/echo", json::array{json::array()}),
      EmbedBody("fake/echo", json::object{{"text", "a"}}),
      json::object{{"model", "fake/echo"}},
  };
  json::object dims = EmbedBody("fake/echo", "a");
  dims["dimensions"] = 0;
  bodies.push_back(dims);
  dims["dimensions"] = 4097;
  bodies.push_back(dims);
  json::object format = EmbedBody("fake/echo", "a");
  format["encoding_format"] = "int8";
  bodies.push_back(format);
  for (const json::object& body : bodies) {
    HttpReply r = Post("/api/v1/embeddings", body);
    EXPECT_EQ(r.status, 400) << json::serialize(body);
    const json::object o = Parse(r.body);
    ASSERT_TRUE(o.contains("error")) << r.body;
    EXPECT_EQ(o.at("error").at("code").as_int64(), 400);
    EXPECT_TRUE(o.at("error").at("message").is_string());
  }
  EXPECT_EQ(fake_->embedded_items(), 0u);
}

TEST_F(FakeEndpointsTest, EmbeddingFaults) {
  HttpReply r = Post("/api/v1/embeddings", EmbedBody("fake/fault-503", "a"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("Retry-After"), "1");
  EXPECT_EQ(Parse(r.body).at("error").at("code").as_int64(), 503);

  const json::object flaky = EmbedBody("fake/flaky-429-1", "a");
  EXPECT_EQ(Post("/api/v1/embeddings", flaky).status, 429);
  EXPECT_EQ(Post("/api/v1/embeddings", flaky).status, 200);

  r = Post("/api/v1/embeddings", EmbedBody("fake/error-200", "a"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Parse(r.body).at("error").at("code").as_int64(), 502);

  r = HttpPost(fake_->port(), "/api/v1/embeddings",
               json::serialize(EmbedBody("fake/hang", "a")), Auth(),
               std::chrono::milliseconds(300));
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.timed_out);

  r = Post("/api/v1/embeddings", EmbedBody("fake/reset", "a"));
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.error.empty());

  // Only the flaky request's success embedded an item (the reset answer was
  // built too: its vectors were computed before the connection broke).
  EXPECT_EQ(fake_->embedded_items(), 2u);
  EXPECT_EQ(fake_->embeddings(), 6u);
}

TEST_F(FakeEndpointsTest, EmbedDelayIsPerItem) {
  // 40 ms per item, 3 items: at least 120 ms (a lower bound: a timer never
  // fires early).
  const auto start = std::chrono::steady_clock::now();
  HttpReply r =
      Post("/api/v1/embeddings",
           EmbedBody("fake/embed-delay-40000", json::array{"a", "b", "c"}));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Vectors(r).size(), 3u);
  EXPECT_GE(elapsed, std::chrono::milliseconds(120));
  // delay-<ms> applies to embeddings too.
  const auto start2 = std::chrono::steady_clock::now();
  EXPECT_EQ(Post("/api/v1/embeddings", EmbedBody("fake/delay-100", "a")).status,
            200);
  EXPECT_GE(std::chrono::steady_clock::now() - start2,
            std::chrono::milliseconds(100));
}

// --------------------------------------------------------- Responses API

json::object ResponsesBody(const std::string& model, const std::string& text,
                           bool stream = false) {
  json::object b;
  b["model"] = model;
  json::object user;
  user["role"] = "user";
  user["content"] = text;
  b["input"] = json::array{std::move(user)};
  b["instructions"] = "Be brief.";
  if (stream) b["stream"] = true;
  return b;
}

std::string OutputTextOf(const json::object& response) {
  const json::object& item = response.at("output").as_array()[0].as_object();
  return Str(item.at("content").as_array()[0].at("text"));
}

TEST_F(FakeEndpointsTest, ResponsesNonStreamShape) {
  HttpReply r = Post("/api/v1/responses",
                     ResponsesBody("openai/gpt-4o-mini", "Hi there"));
  ASSERT_EQ(r.status, 200) << r.body;
  const json::object o = Parse(r.body);
  EXPECT_THAT(Str(o.at("id")), StartsWith("resp_"));
  EXPECT_EQ(Str(o.at("object")), "response");
  EXPECT_GT(o.at("created_at").as_int64(), 1700000000);
  EXPECT_EQ(Str(o.at("status")), "completed");
  EXPECT_EQ(Str(o.at("model")), "openai/gpt-4o-mini");
  const json::array& output = o.at("output").as_array();
  ASSERT_EQ(output.size(), 1u);
  const json::object& item = output[0].as_object();
  EXPECT_EQ(Str(item.at("type")), "message");
  EXPECT_THAT(Str(item.at("id")), StartsWith("msg_"));
  EXPECT_EQ(Str(item.at("status")), "completed");
  EXPECT_EQ(Str(item.at("role")), "assistant");
  const json::object& part = item.at("content").as_array()[0].as_object();
  EXPECT_EQ(Str(part.at("type")), "output_text");
  EXPECT_THAT(Str(part.at("text")),
              StartsWith("Echo from openai/gpt-4o-mini: Hi there"));
  EXPECT_TRUE(part.at("annotations").as_array().empty());
  const json::object& u = o.at("usage").as_object();
  const int64_t in = u.at("input_tokens").as_int64();
  const int64_t out = u.at("output_tokens").as_int64();
  EXPECT_GT(in, 0);
  EXPECT_EQ(out, static_cast<int64_t>((Str(part.at("text")).size() + 3) / 4));
  EXPECT_EQ(u.at("total_tokens").as_int64(), in + out);
  EXPECT_EQ(u.at("input_tokens_details").at("cached_tokens").as_int64(), 0);
  EXPECT_EQ(u.at("output_tokens_details").at("reasoning_tokens").as_int64(), 0);
  EXPECT_NEAR(u.at("cost").to_number<double>(),
              in * 0.00000015 + out * 0.0000006, 1e-11);
  EXPECT_TRUE(o.at("error").is_null());
  EXPECT_TRUE(o.at("incomplete_details").is_null());
  EXPECT_EQ(Str(o.at("instructions")), "Be brief.");
  EXPECT_TRUE(o.at("temperature").is_null());
  EXPECT_TRUE(o.at("parallel_tool_calls").as_bool());
  EXPECT_EQ(Str(o.at("tool_choice")), "auto");
  EXPECT_TRUE(o.at("tools").as_array().empty());
  EXPECT_EQ(Str(o.at("text").at("format").at("type")), "text");
  EXPECT_EQ(fake_->responses(), 1u);
  EXPECT_EQ(fake_->completions(), 0u);
}

TEST_F(FakeEndpointsTest, ResponsesTextIsDeterministic) {
  json::object body = ResponsesBody("fake/echo", "same question");
  const std::string a =
      OutputTextOf(Parse(Post("/api/v1/responses", body).body));
  body["store"] = false;
  const std::string b = OutputTextOf(Parse(Post("/v1/responses", body).body));
  EXPECT_EQ(a, b);
  body["temperature"] = 0.5;
  const json::object c = Parse(Post("/api/v1/responses", body).body);
  EXPECT_NE(OutputTextOf(c), a);
  EXPECT_EQ(c.at("temperature").to_number<double>(), 0.5);
}

TEST_F(FakeEndpointsTest, ResponsesStreamAccumulatesToTheBody) {
  const json::object plain = Parse(
      Post("/api/v1/responses", ResponsesBody("fake/echo", "stream me")).body);
  HttpReply r = Post("/api/v1/responses",
                     ResponsesBody("fake/echo", "stream me", /*stream=*/true));
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.header("Content-Type"), "text/event-stream");
  EXPECT_EQ(r.body.find("[DONE]"), std::string::npos);
  const std::vector<Event> events = Events(r.body);
  const std::vector<std::string> names = Names(events);
  ASSERT_GE(names.size(), 11u);
  const size_t deltas = names.size() - 8;
  EXPECT_GE(deltas, 3u);
  std::vector<std::string> expected = {
      "response.created", "response.in_progress", "response.output_item.added",
      "response.content_part.added"};
  expected.insert(expected.end(), deltas, "response.output_text.delta");
  for (const char* n :
       {"response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"}) {
    expected.emplace_back(n);
  }
  EXPECT_EQ(names, expected);
  std::string text;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].data.at("sequence_number").as_int64(),
              static_cast<int64_t>(i));
    if (events[i].name == "response.output_text.delta") {
      text += Str(events[i].data.at("delta"));
    }
  }
  EXPECT_EQ(text, OutputTextOf(plain));
  EXPECT_EQ(Str(events[0].data.at("response").at("status")), "in_progress");
  json::object done = events.back().data.at("response").as_object();
  json::object expected_body = plain;
  // Equal up to ids and timestamps.
  for (json::object* o : {&done, &expected_body}) {
    o->erase("id");
    o->erase("created_at");
    (*o)["output"].as_array()[0].as_object().erase("id");
  }
  EXPECT_EQ(done, expected_body);
}

TEST_F(FakeEndpointsTest, ResponsesToolCall) {
  json::object body = ResponsesBody("fake/tool-call", "weather in Oslo");
  body["tools"] = json::array{json::object{{"type", "function"},
                                           {"name", "lookup"},
                                           {"parameters", json::object()}}};
  const json::object plain = Parse(Post("/api/v1/responses", body).body);
  const json::object& item = plain.at("output").as_array()[0].as_object();
  EXPECT_EQ(Str(item.at("type")), "function_call");
  EXPECT_THAT(Str(item.at("call_id")), StartsWith("call_"));
  EXPECT_EQ(Str(item.at("name")), "lookup");
  const std::string args = Str(item.at("arguments"));
  EXPECT_EQ(Str(Parse(args).at("query")), "weather in Oslo");
  EXPECT_EQ(plain.at("tools").as_array().size(), 1u);

  body["stream"] = true;
  HttpReply r = Post("/api/v1/responses", body);
  ASSERT_EQ(r.status, 200);
  const std::vector<Event> events = Events(r.body);
  std::string streamed;
  int deltas = 0;
  for (const Event& e : events) {
    if (e.name == "response.function_call_arguments.delta") {
      streamed += Str(e.data.at("delta"));
      ++deltas;
    }
  }
  EXPECT_GE(deltas, 3);
  EXPECT_EQ(streamed, args);
  EXPECT_EQ(events.back().name, "response.completed");
  EXPECT_EQ(Str(events.back()
                    .data.at("response")
                    .at("output")
                    .as_array()[0]
                    .at("call_id")),
            Str(item.at("call_id")));
}

TEST_F(FakeEndpointsTest, ResponsesMaxOutputTokensIsIncomplete) {
  json::object body = ResponsesBody("fake/echo", "a long enough question");
  body["max_output_tokens"] = 3;
  const json::object o = Parse(Post("/api/v1/responses", body).body);
  EXPECT_EQ(Str(o.at("status")), "incomplete");
  EXPECT_EQ(Str(o.at("incomplete_details").at("reason")), "max_output_tokens");
  EXPECT_EQ(OutputTextOf(o).size(), 12u);
  body["stream"] = true;
  const std::vector<Event> events =
      Events(Post("/api/v1/responses", body).body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().name, "response.incomplete");
}

TEST_F(FakeEndpointsTest, ResponsesFaults) {
  HttpReply r =
      Post("/api/v1/responses", ResponsesBody("fake/fault-429", "x", true));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_EQ(Parse(r.body).at("error").at("code").as_int64(), 429);

  // midstream-error: deltas, then an error event, and the stream ends.
  r = Post("/api/v1/responses",
           ResponsesBody("fake/midstream-error", "x", true));
  ASSERT_EQ(r.status, 200) << r.error;
  std::vector<Event> events = Events(r.body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().name, "error");
  EXPECT_EQ(Str(events.back().data.at("code")), "server_error");
  EXPECT_EQ(events[events.size() - 2].name, "response.output_text.delta");
  r = Post("/api/v1/responses", ResponsesBody("fake/midstream-error", "x"));
  EXPECT_EQ(Str(Parse(r.body).at("status")), "failed");

  // cut: the connection closes before response.completed.
  bool complete = true;
  const std::string cut = ReadStream(
      fake_->port(), "/api/v1/responses",
      json::serialize(ResponsesBody("fake/cut", "x", true)), &complete);
  EXPECT_FALSE(complete);
  EXPECT_THAT(cut, HasSubstr("response.output_text.delta"));
  EXPECT_EQ(cut.find("response.completed"), std::string::npos);

  r = Post("/api/v1/responses", ResponsesBody("fake/error-200", "x"));
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(Parse(r.body).contains("error"));
  EXPECT_EQ(
      Post("/api/v1/responses", json::object{{"model", "fake/echo"}}).status,
      400);
  EXPECT_EQ(fake_->responses(), 6u);
}

// ---------------------------------------------------------------- Messages

json::object MessagesBody(const std::string& model, const std::string& text,
                          bool stream = false) {
  json::object b;
  b["model"] = model;
  b["max_tokens"] = 1024;
  b["system"] = "You are terse.";
  json::object user;
  user["role"] = "user";
  user["content"] = json::array{json::object{{"type", "text"}, {"text", text}}};
  b["messages"] = json::array{std::move(user)};
  if (stream) b["stream"] = true;
  return b;
}

TEST_F(FakeEndpointsTest, MessagesNonStreamShape) {
  HttpReply r = Post("/api/v1/messages",
                     MessagesBody("anthropic/claude-3.5-sonnet", "Hello"));
  ASSERT_EQ(r.status, 200) << r.body;
  const json::object o = Parse(r.body);
  std::vector<std::string> keys;
  for (const auto& kv : o) keys.emplace_back(kv.key());
  EXPECT_THAT(keys, ElementsAre("id", "type", "role", "model", "content",
                                "stop_reason", "stop_sequence", "usage"));
  EXPECT_THAT(Str(o.at("id")), StartsWith("msg_"));
  EXPECT_EQ(Str(o.at("type")), "message");
  EXPECT_EQ(Str(o.at("role")), "assistant");
  EXPECT_EQ(Str(o.at("model")), "anthropic/claude-3.5-sonnet");
  const json::array& content = o.at("content").as_array();
  ASSERT_EQ(content.size(), 1u);
  EXPECT_EQ(Str(content[0].at("type")), "text");
  EXPECT_THAT(Str(content[0].at("text")),
              StartsWith("Echo from anthropic/claude-3.5-sonnet: Hello"));
  EXPECT_EQ(Str(o.at("stop_reason")), "end_turn");
  EXPECT_TRUE(o.at("stop_sequence").is_null());
  const json::object& u = o.at("usage").as_object();
  EXPECT_GT(u.at("input_tokens").as_int64(), 0);
  EXPECT_EQ(u.at("output_tokens").as_int64(),
            static_cast<int64_t>((Str(content[0].at("text")).size() + 3) / 4));
  EXPECT_EQ(u.at("cache_creation_input_tokens").as_int64(), 0);
  EXPECT_EQ(u.at("cache_read_input_tokens").as_int64(), 0);
  EXPECT_EQ(fake_->messages(), 1u);
  EXPECT_EQ(fake_->responses(), 0u);
  EXPECT_EQ(fake_->completions(), 0u);
}

TEST_F(FakeEndpointsTest, MessagesStreamAccumulatesToTheBody) {
  const json::object plain =
      Parse(Post("/api/v1/messages", MessagesBody("fake/echo", "stream")).body);
  HttpReply r = Post("/v1/messages",
                     MessagesBody("fake/echo", "stream", /*stream=*/true));
  ASSERT_EQ(r.status, 200) << r.error;
  const std::vector<Event> events = Events(r.body);
  const std::vector<std::string> names = Names(events);
  ASSERT_GE(names.size(), 9u);
  const size_t deltas = names.size() - 6;
  EXPECT_GE(deltas, 3u);
  std::vector<std::string> expected = {"message_start", "ping",
                                       "content_block_start"};
  expected.insert(expected.end(), deltas, "content_block_delta");
  for (const char* n :
       {"content_block_stop", "message_delta", "message_stop"}) {
    expected.emplace_back(n);
  }
  EXPECT_EQ(names, expected);
  std::string text;
  for (const Event& e : events) {
    if (e.name == "content_block_delta") {
      EXPECT_EQ(Str(e.data.at("delta").at("type")), "text_delta");
      text += Str(e.data.at("delta").at("text"));
    }
  }
  EXPECT_EQ(text, Str(plain.at("content").as_array()[0].at("text")));
  const json::object& start = events[0].data.at("message").as_object();
  EXPECT_EQ(start.at("usage").at("input_tokens"),
            plain.at("usage").at("input_tokens"));
  const json::object& delta = events[events.size() - 2].data;
  EXPECT_EQ(Str(delta.at("delta").at("stop_reason")), "end_turn");
  EXPECT_EQ(delta.at("usage").at("output_tokens"),
            plain.at("usage").at("output_tokens"));
}

TEST_F(FakeEndpointsTest, MessagesToolUse) {
  json::object body = MessagesBody("fake/tool-call", "weather in Lima");
  body["tools"] = json::array{
      json::object{{"name", "get_forecast"}, {"input_schema", json::object()}}};
  const json::object plain = Parse(Post("/api/v1/messages", body).body);
  EXPECT_EQ(Str(plain.at("stop_reason")), "tool_use");
  const json::object& block = plain.at("content").as_array()[0].as_object();
  EXPECT_EQ(Str(block.at("type")), "tool_use");
  EXPECT_THAT(Str(block.at("id")), StartsWith("toolu_"));
  EXPECT_EQ(Str(block.at("name")), "get_forecast");
  EXPECT_EQ(Str(block.at("input").at("query")), "weather in Lima");

  body["stream"] = true;
  const std::vector<Event> events = Events(Post("/api/v1/messages", body).body);
  std::string json_text;
  for (const Event& e : events) {
    if (e.name == "content_block_start") {
      EXPECT_EQ(Str(e.data.at("content_block").at("type")), "tool_use");
    }
    if (e.name == "content_block_delta") {
      EXPECT_EQ(Str(e.data.at("delta").at("type")), "input_json_delta");
      json_text += Str(e.data.at("delta").at("partial_json"));
    }
    if (e.name == "message_delta") {
      EXPECT_EQ(Str(e.data.at("delta").at("stop_reason")), "tool_use");
    }
  }
  EXPECT_EQ(json::value(Parse(json_text)), block.at("input"));
}

TEST_F(FakeEndpointsTest, MessagesErrorsUseAnthropicShape) {
  json::object body = MessagesBody("fake/echo", "x");
  body.erase("max_tokens");
  HttpReply r = Post("/api/v1/messages", body);
  EXPECT_EQ(r.status, 400);
  json::object o = Parse(r.body);
  EXPECT_EQ(Str(o.at("type")), "error");
  EXPECT_EQ(Str(o.at("error").at("type")), "invalid_request_error");
  EXPECT_THAT(Str(o.at("error").at("message")), HasSubstr("max_tokens"));

  r = Post("/api/v1/messages", MessagesBody("fake/fault-529", "x", true));
  EXPECT_EQ(r.status, 529);
  EXPECT_EQ(Str(Parse(r.body).at("error").at("type")), "overloaded_error");
  r = Post("/api/v1/messages", MessagesBody("fake/fault-429", "x"));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.header("Retry-After"), "1");
  EXPECT_EQ(Str(Parse(r.body).at("error").at("type")), "rate_limit_error");

  r = Post("/api/v1/messages", MessagesBody("fake/echo", "x"), {});
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(Str(Parse(r.body).at("error").at("type")), "authentication_error");
  r = Post("/api/v1/messages", MessagesBody("fake/echo", "x"),
           {{"Authorization", "Bearer wrong"}});
  EXPECT_EQ(r.status, 401);
}

TEST_F(FakeEndpointsTest, MessagesStreamFaults) {
  HttpReply r =
      Post("/api/v1/messages", MessagesBody("fake/midstream-error", "x", true));
  ASSERT_EQ(r.status, 200) << r.error;
  const std::vector<Event> events = Events(r.body);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back().name, "error");
  EXPECT_EQ(Str(events.back().data.at("error").at("type")), "overloaded_error");
  EXPECT_EQ(events[events.size() - 2].name, "content_block_delta");

  bool complete = true;
  const std::string cut = ReadStream(
      fake_->port(), "/api/v1/messages",
      json::serialize(MessagesBody("fake/cut", "x", true)), &complete);
  EXPECT_FALSE(complete);
  EXPECT_THAT(cut, HasSubstr("content_block_delta"));
  EXPECT_EQ(cut.find("message_stop"), std::string::npos);
}

// ---------------------------------------------------------------- counters

TEST_F(FakeEndpointsTest, CountersArePerEndpointAndReset) {
  Post("/api/v1/embeddings", EmbedBody("fake/echo", json::array{"a", "b"}));
  Post("/api/v1/responses", ResponsesBody("fake/echo", "a"));
  Post("/api/v1/responses", ResponsesBody("fake/echo", "a", true));
  Post("/api/v1/messages", MessagesBody("fake/echo", "a"));
  json::object chat;
  chat["model"] = "fake/echo";
  chat["messages"] =
      json::array{json::object{{"role", "user"}, {"content", "a"}}};
  EXPECT_EQ(Post("/api/v1/chat/completions", chat).status, 200);
  EXPECT_EQ(fake_->embeddings(), 1u);
  EXPECT_EQ(fake_->embedded_items(), 2u);
  EXPECT_EQ(fake_->responses(), 2u);
  EXPECT_EQ(fake_->messages(), 1u);
  EXPECT_EQ(fake_->completions(), 1u);
  EXPECT_EQ(fake_->requests(), 5u);
  // Wrong method: counted as a request to the endpoint, answered 405.
  EXPECT_EQ(
      ::llmcache::testing::HttpGet(fake_->port(), "/api/v1/responses", Auth())
          .status,
      405);
  fake_->ResetCounters();
  EXPECT_EQ(fake_->embeddings(), 0u);
  EXPECT_EQ(fake_->embedded_items(), 0u);
  EXPECT_EQ(fake_->responses(), 0u);
  EXPECT_EQ(fake_->messages(), 0u);
}

}  // namespace
}  // namespace llmcache::fake
