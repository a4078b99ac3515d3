// Tests of the fake OpenRouter (net/fake) through a minimal Beast client on
// loopback: response shapes (docs/openrouter.md: non-streaming response,
// streaming, models and prices), determinism, auth, every fault selector,
// prompt caching, keep-alive, TLS with the generated certificates, Stop().

#include "fake_openrouter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "llmcache/key.h"
#include "llmcache/net/sse.h"
#include "testing/status_matchers.h"

namespace llmcache::fake {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;
using tcp = boost::asio::ip::tcp;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kKey[] = "sk-or-v1-test";

// --------------------------------------------------------------- the client

struct Reply {
  beast::error_code ec;  // transport or parse error; status may still be set
  unsigned status = 0;
  http::response_header<> header;
  std::string body;

  std::string Header(std::string_view name) const {
    auto it = header.find(beast::string_view(name.data(), name.size()));
    return it == header.end() ? std::string() : std::string(it->value());
  }
};

// A synchronous HTTP/1.1 client (plain or TLS) on one connection: each call
// runs the io_context until the operation completes or its deadline passes.
class TestClient {
 public:
  // Plain HTTP.
  explicit TestClient(uint16_t port) : port_(port) {}
  // TLS trusting only `ca_pem`, verifying the peer as `verify_host` (also
  // sent as SNI).
  TestClient(uint16_t port, const std::string& ca_pem, std::string verify_host)
      : port_(port), verify_host_(std::move(verify_host)) {
    ctx_.emplace(ssl::context::tls_client);
    beast::error_code ec;
    ctx_->add_certificate_authority(net::buffer(ca_pem), ec);
    EXPECT_FALSE(ec) << ec.message();
    ctx_->set_verify_mode(ssl::verify_peer);
  }

  beast::error_code Connect(milliseconds timeout = milliseconds(5000)) {
    const tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port_);
    if (!ctx_) {
      plain_.emplace(ioc_);
      plain_->expires_after(timeout);
      return Run([&](auto done) { plain_->async_connect(ep, done); });
    }
    tls_.emplace(ioc_, *ctx_);
    auto& lowest = beast::get_lowest_layer(*tls_);
    lowest.expires_after(timeout);
    beast::error_code ec =
        Run([&](auto done) { lowest.async_connect(ep, done); });
    if (ec) return ec;
    // SNI + host name verification (the 1.81 example forgets the latter).
    SSL_ctrl(tls_->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
             TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(verify_host_.c_str()));
    tls_->set_verify_callback(ssl::host_name_verification(verify_host_));
    lowest.expires_after(timeout);
    return Run([&](auto done) {
      tls_->async_handshake(ssl::stream_base::client, done);
    });
  }

  beast::error_code Send(
      http::verb verb, const std::string& target, const std::string& body,
      const std::vector<std::pair<std::string, std::string>>& headers) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [name, value] : headers) req.set(name, value);
    if (verb == http::verb::post) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    Lowest().expires_after(milliseconds(5000));
    return WithStream([&](auto& s) {
      return Run([&](auto done) { http::async_write(s, req, done); });
    });
  }

  Reply Read(milliseconds timeout = milliseconds(5000)) {
    Reply r;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    Lowest().expires_after(timeout);
    r.ec = WithStream([&](auto& s) {
      return Run(
          [&](auto done) { http::async_read(s, buffer_, parser, done); });
    });
    if (parser.is_header_done()) {
      r.status = parser.get().result_int();
      r.header = parser.get().base();
    }
    r.body = parser.get().body();
    return r;
  }

  Reply Request(http::verb verb, const std::string& target,
                const std::string& body = "",
                std::vector<std::pair<std::string, std::string>> headers =
                    {{"Authorization", std::string("Bearer ") + kKey}},
                milliseconds timeout = milliseconds(5000)) {
    Reply r;
    r.ec = Send(verb, target, body, headers);
    if (r.ec) return r;
    return Read(timeout);
  }

  Reply Chat(const std::string& body,
             const std::string& auth = std::string("Bearer ") + kKey,
             milliseconds timeout = milliseconds(5000)) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!auth.empty()) headers.emplace_back("Authorization", auth);
    return Request(http::verb::post, "/api/v1/chat/completions", body, headers,
                   timeout);
  }

 private:
  beast::tcp_stream& Lowest() {
    return ctx_ ? beast::get_lowest_layer(*tls_) : *plain_;
  }

  template <class F>
  beast::error_code WithStream(F&& f) {
    if (ctx_) return f(*tls_);
    return f(*plain_);
  }

  // Starts an operation with a completion handler `done(ec, n)` and runs the
  // io_context until it has completed.
  template <class Start>
  beast::error_code Run(Start&& start) {
    beast::error_code result;
    bool finished = false;
    start([&](beast::error_code ec, auto&&...) {
      result = ec;
      finished = true;
    });
    ioc_.restart();
    while (!finished && ioc_.run_one() > 0) {
    }
    return result;
  }

  uint16_t port_;
  std::string verify_host_;
  net::io_context ioc_;
  std::optional<ssl::context> ctx_;
  std::optional<beast::tcp_stream> plain_;
  std::optional<ssl::stream<beast::tcp_stream>> tls_;
  beast::flat_buffer buffer_;
};

// ------------------------------------------------------------------ helpers

std::string ChatBody(const std::string& model, const std::string& text,
                     bool stream = false) {
  json::object user;
  user["role"] = "user";
  user["content"] = text;
  json::array messages;
  messages.emplace_back(std::move(user));
  json::object body;
  body["model"] = model;
  body["messages"] = std::move(messages);
  if (stream) body["stream"] = true;
  return json::serialize(body);
}

json::object ParseObject(const std::string& s) {
  boost::system::error_code ec;
  json::value v = json::parse(s, ec);
  EXPECT_FALSE(ec) << "not JSON: " << s;
  if (ec || !v.is_object()) return {};
  return v.get_object();
}

// The JSON payloads of an SSE body's `data:` events (not [DONE]).
std::vector<json::object> DataEvents(const std::string& sse) {
  std::vector<json::object> out;
  size_t pos = 0;
  while (pos < sse.size()) {
    size_t end = sse.find("\n\n", pos);
    if (end == std::string::npos) end = sse.size();
    const std::string event = sse.substr(pos, end - pos);
    pos = end + 2;
    if (event.rfind("data: ", 0) != 0 || event == "data: [DONE]") continue;
    out.push_back(ParseObject(event.substr(6)));
  }
  return out;
}

std::string StreamedContent(const std::vector<json::object>& events) {
  std::string content;
  for (const json::object& e : events) {
    const json::array& choices = e.at("choices").as_array();
    if (choices.empty()) continue;
    const json::object& delta = choices[0].at("delta").as_object();
    if (const json::value* c = delta.if_contains("content");
        c != nullptr && c->is_string()) {
      content += std::string(c->get_string());
    }
  }
  return content;
}

std::string ContentOf(const json::object& response) {
  return std::string(response.at("choices")
                         .as_array()[0]
                         .at("message")
                         .at("content")
                         .as_string());
}

std::unique_ptr<FakeOpenRouter> StartFake(FakeOptions options = {}) {
  auto fake = FakeOpenRouter::Start(options);
  EXPECT_OK(fake);
  return fake.ok() ? std::move(fake).value() : nullptr;
}

// Generated once per test binary.
const TestCertificates& Certs() {
  static const TestCertificates certs = [] {
    auto r = TestCertificates::Generate();
    EXPECT_OK(r);
    return r.ok() ? *r : TestCertificates{};
  }();
  return certs;
}

// ---------------------------------------------------------- plain fixture

class FakeOpenRouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FakeOptions options;
    options.api_key = kKey;
    options.keepalive_comments = 2;
    fake_ = StartFake(options);
    ASSERT_NE(fake_, nullptr);
  }

  Reply Chat(const std::string& body,
             const std::string& auth = std::string("Bearer ") + kKey,
             milliseconds timeout = milliseconds(5000)) {
    TestClient client(fake_->port());
    beast::error_code ec = client.Connect();
    EXPECT_FALSE(ec) << ec.message();
    return client.Chat(body, auth, timeout);
  }

  std::unique_ptr<FakeOpenRouter> fake_;
};

TEST_F(FakeOpenRouterTest, BaseUrlNamesThePort) {
  EXPECT_EQ(fake_->base_url(),
            "http://127.0.0.1:" + std::to_string(fake_->port()) + "/api/v1");
  EXPECT_NE(fake_->port(), 0);
}

TEST_F(FakeOpenRouterTest, NonStreamResponseHasTheDocumentedShape) {
  Reply r = Chat(ChatBody("openai/gpt-4o-mini", "Hello there"));
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  json::object o = ParseObject(r.body);
  const std::string id(o.at("id").as_string());
  EXPECT_THAT(id, StartsWith("gen-"));
  EXPECT_EQ(r.Header("X-Generation-Id"), id);
  // gen-<unix>-<20 alnum>
  const size_t dash = id.rfind('-');
  EXPECT_EQ(id.size() - dash - 1, 20u);
  EXPECT_EQ(o.at("provider").as_string(), "OpenAI");
  EXPECT_EQ(o.at("model").as_string(), "openai/gpt-4o-mini");
  EXPECT_EQ(o.at("object").as_string(), "chat.completion");
  EXPECT_GT(o.at("created").as_int64(), 1700000000);
  EXPECT_TRUE(o.at("system_fingerprint").is_string());
  // Key order as emitted by OpenRouter.
  std::vector<std::string> keys;
  for (const auto& kv : o) keys.emplace_back(kv.key());
  EXPECT_THAT(keys, ::testing::ElementsAre("id", "provider", "model", "object",
                                           "created", "choices",
                                           "system_fingerprint", "usage"));
  const json::array& choices = o.at("choices").as_array();
  ASSERT_EQ(choices.size(), 1u);
  const json::object& c = choices[0].as_object();
  EXPECT_TRUE(c.at("logprobs").is_null());
  EXPECT_EQ(c.at("finish_reason").as_string(), "stop");
  EXPECT_EQ(c.at("native_finish_reason").as_string(), "stop");
  EXPECT_EQ(c.at("index").as_int64(), 0);
  const json::object& m = c.at("message").as_object();
  EXPECT_EQ(m.at("role").as_string(), "assistant");
  EXPECT_THAT(std::string(m.at("content").as_string()),
              StartsWith("Echo from openai/gpt-4o-mini: Hello there"));
  EXPECT_TRUE(m.at("refusal").is_null());
  EXPECT_TRUE(m.at("reasoning").is_null());
  const json::object& u = o.at("usage").as_object();
  const int64_t prompt = u.at("prompt_tokens").as_int64();
  const int64_t completion = u.at("completion_tokens").as_int64();
  EXPECT_GT(prompt, 0);
  EXPECT_GT(completion, 0);
  EXPECT_EQ(u.at("total_tokens").as_int64(), prompt + completion);
  EXPECT_FALSE(u.at("is_byok").as_bool());
  EXPECT_EQ(u.at("prompt_tokens_details").at("cached_tokens").as_int64(), 0);
  EXPECT_EQ(u.at("prompt_tokens_details").at("cache_write_tokens").as_int64(),
            0);
  EXPECT_EQ(u.at("prompt_tokens_details").at("audio_tokens").as_int64(), 0);
  EXPECT_EQ(u.at("completion_tokens_details").at("reasoning_tokens").as_int64(),
            0);
  // docs/openrouter.md (usage and cost) with gpt-4o-mini prices.
  const double expected = prompt * 0.00000015 + completion * 0.0000006;
  EXPECT_NEAR(u.at("cost").to_number<double>(), expected, 1e-11);
  const json::object& cd = u.at("cost_details").as_object();
  EXPECT_TRUE(cd.at("upstream_inference_cost").is_null());
  EXPECT_NEAR(cd.at("upstream_inference_prompt_cost").to_number<double>(),
              prompt * 0.00000015, 1e-11);
  EXPECT_NEAR(cd.at("upstream_inference_completions_cost").to_number<double>(),
              completion * 0.0000006, 1e-11);
}

TEST_F(FakeOpenRouterTest, VariantIsDroppedFromTheReportedModel) {
  Reply r = Chat(ChatBody("openai/gpt-4o-mini:nitro", "hi"));
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(ParseObject(r.body).at("model").as_string(), "openai/gpt-4o-mini");
}

// The fake drops variants exactly as the engine does (llmcache::BaseModel),
// for the reported model and for the fault selectors.
TEST_F(FakeOpenRouterTest, VariantsAreDroppedAsTheEngineDoes) {
  for (const std::string model :
       {"openai/gpt-4o", "openai/gpt-4o:floor", "openai/gpt-4o:beta:nitro",
        "fake/echo:free"}) {
    Reply r = Chat(ChatBody(model, "hi"));
    ASSERT_EQ(r.status, 200u) << model;
    EXPECT_EQ(ParseObject(r.body).at("model").as_string(),
              std::string(llmcache::BaseModel(model)))
        << model;
  }
  EXPECT_EQ(Chat(ChatBody("fake/fault-503:nitro", "hi")).status, 503u);
}

TEST_F(FakeOpenRouterTest, WrongMethodIs405) {
  TestClient client(fake_->port());
  ASSERT_FALSE(client.Connect());
  Reply r = client.Request(http::verb::get, "/api/v1/chat/completions");
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(ParseObject(r.body).at("error").at("code").as_int64(), 405);
  r = client.Request(http::verb::post, "/api/v1/models", "{}");
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(fake_->completions(), 1u);
}

TEST_F(FakeOpenRouterTest, LegacyPathIsAccepted) {
  TestClient client(fake_->port());
  ASSERT_FALSE(client.Connect());
  Reply r = client.Request(http::verb::post, "/v1/chat/completions",
                           ChatBody("openai/gpt-4o", "hi"));
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(fake_->completions(), 1u);
}

TEST_F(FakeOpenRouterTest, StreamHasTheDocumentedShape) {
  Reply r = Chat(ChatBody("openai/gpt-4o-mini", "Stream me", true));
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.Header("Content-Type"), "text/event-stream");
  EXPECT_EQ(r.Header("Transfer-Encoding"), "chunked");
  EXPECT_THAT(r.body, StartsWith(": OPENROUTER PROCESSING\n\n"
                                 ": OPENROUTER PROCESSING\n\ndata: {"));
  EXPECT_THAT(
      r.body,
      HasSubstr(
          R"("choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null,"native_finish_reason":null,"logprobs":null}])"));
  EXPECT_THAT(r.body, HasSubstr(R"("choices":[],"usage":{"prompt_tokens":)"));
  EXPECT_THAT(r.body, ::testing::EndsWith("\n\ndata: [DONE]\n\n"));

  std::vector<json::object> events = DataEvents(r.body);
  // role + 6 pieces + finish + usage
  ASSERT_EQ(events.size(), 9u);
  const std::string id(events[0].at("id").as_string());
  EXPECT_EQ(r.Header("X-Generation-Id"), id);
  for (const json::object& e : events) {
    EXPECT_EQ(e.at("id").as_string(), id);
    EXPECT_EQ(e.at("object").as_string(), "chat.completion.chunk");
    EXPECT_EQ(e.at("provider").as_string(), "OpenAI");
    EXPECT_EQ(e.at("model").as_string(), "openai/gpt-4o-mini");
    EXPECT_EQ(e.at("created"), events[0].at("created"));
  }
  const json::object& finish =
      events[7].at("choices").as_array()[0].as_object();
  EXPECT_EQ(finish.at("finish_reason").as_string(), "stop");
  EXPECT_EQ(finish.at("native_finish_reason").as_string(), "stop");
  EXPECT_TRUE(events[8].at("choices").as_array().empty());
  EXPECT_GT(events[8].at("usage").at("total_tokens").as_int64(), 0);

  // The same request without streaming gives the same content.
  Reply plain = Chat(ChatBody("openai/gpt-4o-mini", "Stream me"));
  EXPECT_EQ(StreamedContent(events), ContentOf(ParseObject(plain.body)));
}

TEST_F(FakeOpenRouterTest, SameBodyGivesSameContentAndFreshIds) {
  const std::string body = ChatBody("anthropic/claude-sonnet-4.5", "Same?");
  json::object a = ParseObject(Chat(body).body);
  json::object b = ParseObject(Chat(body).body);
  EXPECT_EQ(ContentOf(a), ContentOf(b));
  EXPECT_NE(a.at("id"), b.at("id"));
  json::object c =
      ParseObject(Chat(ChatBody("anthropic/claude-sonnet-4.5", "Other?")).body);
  EXPECT_NE(ContentOf(a), ContentOf(c));
}

TEST_F(FakeOpenRouterTest, MaxTokensTruncatesWithFinishReasonLength) {
  Reply r =
      Chat(R"({"model":"openai/gpt-4o","max_tokens":3,)"
           R"("messages":[{"role":"user","content":"a long question"}]})");
  json::object o = ParseObject(r.body);
  EXPECT_EQ(ContentOf(o).size(), 12u);
  EXPECT_EQ(o.at("choices").as_array()[0].at("finish_reason").as_string(),
            "length");
  EXPECT_EQ(o.at("usage").at("completion_tokens").as_int64(), 3);
}

TEST_F(FakeOpenRouterTest, MissingAuthorizationIs401NoCredentials) {
  Reply r = Chat(ChatBody("openai/gpt-4o", "hi"), /*auth=*/"");
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(r.body,
            R"({"error":{"message":"No auth credentials found","code":401}})");
  EXPECT_EQ(fake_->last_authorization(), "");
}

TEST_F(FakeOpenRouterTest, WrongKeyIs401UserNotFound) {
  Reply r = Chat(ChatBody("openai/gpt-4o", "hi"), "Bearer sk-or-v1-wrong");
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(r.body, R"({"error":{"message":"User not found.","code":401}})");
  EXPECT_EQ(fake_->last_authorization(), "Bearer sk-or-v1-wrong");
}

TEST_F(FakeOpenRouterTest, BearerSchemeIsCaseInsensitiveAndTokenIsTrimmed) {
  EXPECT_EQ(Chat(ChatBody("openai/gpt-4o", "hi"), std::string("bearer ") + kKey)
                .status,
            200u);
  EXPECT_EQ(
      Chat(ChatBody("openai/gpt-4o", "hi"), std::string("BEARER   ") + kKey)
          .status,
      200u);
  for (const std::string& auth :
       {std::string("Bearer"), std::string("Bearer    "),
        std::string("Basic ") + kKey, std::string(kKey)}) {
    Reply r = Chat(ChatBody("openai/gpt-4o", "hi"), auth);
    EXPECT_EQ(r.status, 401u) << auth;
    EXPECT_EQ(r.body,
              R"({"error":{"message":"No auth credentials found","code":401}})")
        << auth;
  }
}

TEST(FakeOpenRouterAuthTest, AnyKeyIsAcceptedWhenNoneIsConfigured) {
  auto fake = StartFake();
  ASSERT_NE(fake, nullptr);
  TestClient client(fake->port());
  ASSERT_FALSE(client.Connect());
  EXPECT_EQ(client.Chat(ChatBody("openai/gpt-4o", "hi"), "Bearer x").status,
            200u);
  EXPECT_EQ(client.Chat(ChatBody("openai/gpt-4o", "hi"), "").status, 401u);
}

TEST_F(FakeOpenRouterTest, InvalidBodiesAre400) {
  for (const std::string& body :
       {std::string("not json"), std::string(R"({"messages":[]})"),
        std::string(R"({"model":"openai/gpt-4o"})"),
        std::string(R"({"model":"openai/gpt-4o","messages":[]})")}) {
    Reply r = Chat(body);
    EXPECT_EQ(r.status, 400u) << body;
    json::object o = ParseObject(r.body);
    EXPECT_EQ(o.at("error").at("code").as_int64(), 400) << body;
  }
}

TEST_F(FakeOpenRouterTest, UnknownPathIs404) {
  TestClient client(fake_->port());
  ASSERT_FALSE(client.Connect());
  Reply r = client.Request(http::verb::get, "/api/v1/nothing");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(ParseObject(r.body).at("error").at("code").as_int64(), 404);
}

TEST_F(FakeOpenRouterTest, FaultSelectorsGiveTheirStatusAndEnvelope) {
  for (unsigned status : {400u, 401u, 402u, 403u, 404u, 408u, 413u, 422u, 429u,
                          500u, 502u, 503u, 524u, 529u}) {
    for (bool stream : {false, true}) {
      Reply r =
          Chat(ChatBody("fake/fault-" + std::to_string(status), "x", stream));
      SCOPED_TRACE(status);
      ASSERT_FALSE(r.ec) << r.ec.message();
      EXPECT_EQ(r.status, status);
      EXPECT_EQ(r.Header("Content-Type"), "application/json");
      json::object o = ParseObject(r.body);
      EXPECT_EQ(o.at("error").at("code").as_int64(), status);
      EXPECT_FALSE(o.at("error").at("message").as_string().empty());
      EXPECT_TRUE(o.at("error").at("metadata").is_object());
      EXPECT_TRUE(o.at("user_id").is_string());
      const bool retry_after = status == 429 || status == 503;
      EXPECT_EQ(r.Header("Retry-After"), retry_after ? "1" : "");
    }
  }
}

TEST_F(FakeOpenRouterTest, FlakyFailsTheFirstNRequestsPerBody) {
  const std::string a = ChatBody("fake/flaky-503-2", "first body");
  const std::string b = ChatBody("fake/flaky-503-2", "second body");
  Reply r1 = Chat(a);
  EXPECT_EQ(r1.status, 503u);
  EXPECT_EQ(r1.Header("Retry-After"), "1");
  EXPECT_EQ(Chat(b).status, 503u);  // counted separately
  EXPECT_EQ(Chat(a).status, 503u);
  EXPECT_EQ(Chat(a).status, 200u);
  EXPECT_EQ(Chat(a).status, 200u);
  EXPECT_EQ(Chat(b).status, 503u);
  EXPECT_EQ(Chat(b).status, 200u);
  fake_->ResetCounters();
  EXPECT_EQ(Chat(a).status, 503u);
}

TEST_F(FakeOpenRouterTest, DelayAnswersNormallyAfterTheDelay) {
  const auto start = std::chrono::steady_clock::now();
  Reply r = Chat(ChatBody("fake/delay-250", "wait"));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status, 200u);
  EXPECT_GE(elapsed, milliseconds(250));
  EXPECT_EQ(ParseObject(r.body).at("model").as_string(), "fake/delay-250");
}

TEST_F(FakeOpenRouterTest, Error200HasATopLevelErrorAndNoChoices) {
  Reply r = Chat(ChatBody("fake/error-200", "x"));
  EXPECT_EQ(r.status, 200u);
  json::object o = ParseObject(r.body);
  EXPECT_FALSE(o.contains("choices"));
  EXPECT_EQ(o.at("error").at("code").as_int64(), 502);
  EXPECT_FALSE(o.at("error").at("message").as_string().empty());

  Reply s = Chat(ChatBody("fake/error-200", "x", true));
  EXPECT_EQ(s.status, 200u);
  EXPECT_FALSE(s.ec) << s.ec.message();
  std::vector<json::object> events = DataEvents(s.body);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].contains("error"));
  EXPECT_THAT(s.body, ::testing::Not(HasSubstr("[DONE]")));
}

TEST_F(FakeOpenRouterTest, ChoiceErrorKeepsPartialOutput) {
  Reply r = Chat(ChatBody("fake/choice-error", "partial please"));
  EXPECT_EQ(r.status, 200u);
  json::object o = ParseObject(r.body);
  const json::object& c = o.at("choices").as_array()[0].as_object();
  EXPECT_EQ(c.at("finish_reason").as_string(), "error");
  EXPECT_EQ(c.at("error").at("code").as_int64(), 502);
  EXPECT_EQ(c.at("error").at("metadata").at("error_type").as_string(),
            "provider_unavailable");
  EXPECT_FALSE(c.at("message").at("content").as_string().empty());
  EXPECT_EQ(o.at("usage").at("cost").to_number<double>(), 0.0);

  Reply s = Chat(ChatBody("fake/choice-error", "partial please", true));
  std::vector<json::object> events = DataEvents(s.body);
  ASSERT_GE(events.size(), 3u);
  const json::object& last_choice =
      events[events.size() - 2].at("choices").as_array()[0].as_object();
  EXPECT_EQ(last_choice.at("finish_reason").as_string(), "error");
  EXPECT_TRUE(last_choice.contains("error"));
}

TEST_F(FakeOpenRouterTest, EmptyHasNoContentAndNoToolCalls) {
  Reply r = Chat(ChatBody("fake/empty", "x"));
  json::object o = ParseObject(r.body);
  const json::object& m =
      o.at("choices").as_array()[0].at("message").as_object();
  EXPECT_EQ(m.at("content").as_string(), "");
  EXPECT_FALSE(m.contains("tool_calls"));
  EXPECT_EQ(o.at("usage").at("completion_tokens").as_int64(), 0);

  Reply s = Chat(ChatBody("fake/empty", "x", true));
  EXPECT_EQ(StreamedContent(DataEvents(s.body)), "");
  EXPECT_THAT(s.body, ::testing::EndsWith("data: [DONE]\n\n"));
}

TEST_F(FakeOpenRouterTest, ToolCallNonStream) {
  Reply r = Chat(
      R"({"model":"fake/tool-call","messages":[{"role":"user","content":"weather?"}],)"
      R"("tools":[{"type":"function","function":{"name":"lookup","parameters":{}}}]})");
  json::object o = ParseObject(r.body);
  const json::object& c = o.at("choices").as_array()[0].as_object();
  EXPECT_EQ(c.at("finish_reason").as_string(), "tool_calls");
  const json::array& calls = c.at("message").at("tool_calls").as_array();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_THAT(std::string(calls[0].at("id").as_string()), StartsWith("call_"));
  EXPECT_EQ(calls[0].at("type").as_string(), "function");
  EXPECT_EQ(calls[0].at("function").at("name").as_string(), "lookup");
  ParseObject(std::string(calls[0].at("function").at("arguments").as_string()));
}

TEST_F(FakeOpenRouterTest, ToolCallStreamsFragments) {
  Reply r = Chat(ChatBody("fake/tool-call", "weather?", true));
  std::vector<json::object> events = DataEvents(r.body);
  std::string arguments;
  int fragments = 0;
  bool first = true;
  std::string finish;
  for (const json::object& e : events) {
    const json::array& choices = e.at("choices").as_array();
    if (choices.empty()) continue;
    const json::object& choice = choices[0].as_object();
    if (choice.at("finish_reason").is_string()) {
      finish = std::string(choice.at("finish_reason").as_string());
    }
    const json::value* tc =
        choice.at("delta").as_object().if_contains("tool_calls");
    if (tc == nullptr) continue;
    const json::object& call = tc->as_array()[0].as_object();
    EXPECT_EQ(call.at("index").as_int64(), 0);
    if (first) {
      EXPECT_THAT(std::string(call.at("id").as_string()), StartsWith("call_"));
      EXPECT_EQ(call.at("function").at("name").as_string(), "get_weather");
      first = false;
    } else {
      EXPECT_FALSE(call.contains("id"));
    }
    const json::string& piece = call.at("function").at("arguments").as_string();
    if (!piece.empty()) ++fragments;
    arguments += std::string(piece);
  }
  EXPECT_GE(fragments, 3);
  EXPECT_EQ(finish, "tool_calls");
  EXPECT_TRUE(ParseObject(arguments).contains("query"));
  EXPECT_THAT(r.body, ::testing::EndsWith("data: [DONE]\n\n"));
}

// ------------------------------------------ answers selected by the request

std::string FeatureBody(const std::string& model, const std::string& extra,
                        bool stream = false) {
  return R"({"model":")" + model + R"(",)" + extra +
         (stream ? R"(,"stream":true)" : "") +
         R"(,"messages":[{"role":"user","content":"Tell me about K\u00f6ln"}]})";
}

const json::object& ChoiceOf(const json::object& r, size_t i) {
  return r.at("choices").as_array().at(i).as_object();
}

std::string Spelled(const json::array& tokens) {
  std::string s;
  for (const json::value& t : tokens)
    s += std::string(t.at("token").as_string());
  return s;
}

TEST_F(FakeOpenRouterTest, ChoicesLogprobsReasoningAndAnnotations) {
  Reply r = Chat(FeatureBody(
      "fake/annotations",
      R"("n":3,"logprobs":true,"top_logprobs":2,"reasoning":{"effort":"low"})"));
  ASSERT_EQ(r.status, 200u);
  json::object o = ParseObject(r.body);
  const json::array& choices = o.at("choices").as_array();
  ASSERT_EQ(choices.size(), 3u);
  int64_t reasoning_tokens = 0;
  int64_t completion_tokens = 0;
  for (size_t i = 0; i < 3; ++i) {
    const json::object& c = ChoiceOf(o, i);
    EXPECT_EQ(c.at("index").as_int64(), static_cast<int64_t>(i));
    EXPECT_EQ(c.at("finish_reason").as_string(), "stop");
    const json::object& m = c.at("message").as_object();
    const std::string content(m.at("content").as_string());
    EXPECT_THAT(content, StartsWith("Echo from fake/annotations: Tell me"));
    // logprobs: tokens that spell the content, 2 alternatives each, the
    // first being the token itself.
    const json::array& tokens = c.at("logprobs").at("content").as_array();
    EXPECT_EQ(Spelled(tokens), content);
    EXPECT_TRUE(c.at("logprobs").at("refusal").is_null());
    for (const json::value& t : tokens) {
      EXPECT_LE(t.at("token").as_string().size(), 4u);
      EXPECT_LE(t.at("logprob").as_double(), 0.0);
      EXPECT_EQ(t.at("bytes").as_array().size(),
                t.at("token").as_string().size());
      ASSERT_EQ(t.at("top_logprobs").as_array().size(), 2u);
      EXPECT_EQ(t.at("top_logprobs").at(0).at("token"), t.at("token"));
    }
    // reasoning and its details
    const std::string reasoning(m.at("reasoning").as_string());
    EXPECT_THAT(reasoning, HasSubstr("Choice " + std::to_string(i)));
    const json::array& details = m.at("reasoning_details").as_array();
    ASSERT_EQ(details.size(), 2u);
    EXPECT_EQ(details[0].at("type"), "reasoning.text");
    EXPECT_EQ(details[0].at("text"), m.at("reasoning"));
    EXPECT_THAT(std::string(details[0].at("signature").as_string()),
                StartsWith("sig_"));
    EXPECT_EQ(details[0].at("format"), "anthropic-claude-v1");
    EXPECT_EQ(details[0].at("index"), 0);
    EXPECT_EQ(details[1].at("type"), "reasoning.encrypted");
    EXPECT_FALSE(details[1].at("data").as_string().empty());
    EXPECT_EQ(details[1].at("index"), 1);
    // annotations
    const json::array& annotations = m.at("annotations").as_array();
    ASSERT_EQ(annotations.size(), 2u);
    EXPECT_EQ(annotations[0].at("type"), "url_citation");
    EXPECT_THAT(
        std::string(annotations[0].at("url_citation").at("url").as_string()),
        StartsWith("https://example.com/"));
    reasoning_tokens += static_cast<int64_t>((reasoning.size() + 3) / 4);
    completion_tokens += static_cast<int64_t>((content.size() + 3) / 4);
  }
  EXPECT_NE(ChoiceOf(o, 0).at("message").at("content"),
            ChoiceOf(o, 1).at("message").at("content"));
  const json::object& u = o.at("usage").as_object();
  EXPECT_EQ(u.at("completion_tokens_details").at("reasoning_tokens").as_int64(),
            reasoning_tokens);
  EXPECT_EQ(u.at("completion_tokens").as_int64(),
            completion_tokens + reasoning_tokens);
}

TEST_F(FakeOpenRouterTest, RefusalHasNullContent) {
  Reply r = Chat(FeatureBody("fake/refusal", R"("logprobs":true)"));
  json::object o = ParseObject(r.body);
  const json::object& c = ChoiceOf(o, 0);
  const json::object& m = c.at("message").as_object();
  EXPECT_TRUE(m.at("content").is_null());
  EXPECT_THAT(std::string(m.at("refusal").as_string()),
              StartsWith("I'm sorry"));
  EXPECT_EQ(c.at("finish_reason"), "stop");
  EXPECT_TRUE(c.at("logprobs").at("content").is_null());
  EXPECT_EQ(Spelled(c.at("logprobs").at("refusal").as_array()),
            std::string(m.at("refusal").as_string()));
  EXPECT_TRUE(c.at("logprobs")
                  .at("refusal")
                  .at(0)
                  .at("top_logprobs")
                  .as_array()
                  .empty());  // no top_logprobs asked
}

TEST_F(FakeOpenRouterTest, ReasoningOnlyWhenAskedAndNotExcluded) {
  auto has_reasoning = [this](const std::string& extra) {
    json::object o =
        ParseObject(Chat(FeatureBody("openai/gpt-4o", extra)).body);
    const json::object& m = ChoiceOf(o, 0).at("message").as_object();
    EXPECT_EQ(m.at("reasoning").is_string(), m.contains("reasoning_details"))
        << extra;
    return m.at("reasoning").is_string();
  };
  EXPECT_FALSE(has_reasoning(R"("temperature":0)"));
  EXPECT_TRUE(has_reasoning(R"("reasoning":{})"));
  EXPECT_TRUE(has_reasoning(R"("reasoning":{"max_tokens":100})"));
  EXPECT_FALSE(
      has_reasoning(R"("reasoning":{"effort":"high","exclude":true})"));
  EXPECT_FALSE(has_reasoning(R"("reasoning":{"enabled":false})"));
  EXPECT_FALSE(has_reasoning(R"("reasoning":{"effort":"none"})"));
  EXPECT_TRUE(has_reasoning(R"("include_reasoning":true)"));
  EXPECT_TRUE(has_reasoning(R"("reasoning_effort":"medium")"));
  EXPECT_FALSE(has_reasoning(R"("reasoning_effort":"none")"));
}

TEST_F(FakeOpenRouterTest, StreamedChoicesInterleaveAndCarryTheirLogprobs) {
  Reply r = Chat(FeatureBody("openai/gpt-4o",
                             R"("n":2,"logprobs":true,"reasoning":{})", true));
  ASSERT_EQ(r.status, 200u);
  std::vector<json::object> events = DataEvents(r.body);
  std::vector<int64_t> order;
  bool split_details = false;
  for (const json::object& e : events) {
    const json::array& choices = e.at("choices").as_array();
    if (choices.empty()) continue;
    const json::object& c = choices[0].as_object();
    order.push_back(c.at("index").as_int64());
    const json::object& delta = c.at("delta").as_object();
    if (const json::value* d = delta.if_contains("reasoning_details")) {
      // Each reasoning piece carries the matching detail piece.
      const json::object& detail = d->at(0).as_object();
      if (detail.at("type") == "reasoning.text" &&
          delta.contains("reasoning")) {
        EXPECT_EQ(detail.at("text"), delta.at("reasoning"));
        split_details = true;
      }
    }
    const json::value* content = delta.if_contains("content");
    if (content != nullptr && content->is_string() &&
        !content->as_string().empty()) {
      EXPECT_EQ(Spelled(c.at("logprobs").at("content").as_array()),
                std::string(content->as_string()));
    } else {
      EXPECT_TRUE(c.at("logprobs").is_null());
    }
  }
  EXPECT_TRUE(split_details);
  ASSERT_GE(order.size(), 4u);
  EXPECT_EQ(order[0], 0);
  EXPECT_EQ(order[1], 1);  // the second choice starts before the first ends
  EXPECT_EQ(order[2], 0);
}

// Streamed or not, the fake gives the same answer: the accumulated stream
// is the non-streamed body but for the generation's id and time.
class FakeStreamEqualsBodyTest : public FakeOpenRouterTest,
                                 public ::testing::WithParamInterface<
                                     std::pair<const char*, const char*>> {};

TEST_P(FakeStreamEqualsBodyTest, AccumulatedStreamIsTheNonStreamBody) {
  const std::string model = GetParam().first;
  const std::string extra = GetParam().second;
  json::object plain = ParseObject(Chat(FeatureBody(model, extra)).body);
  Reply s = Chat(FeatureBody(model, extra, true));
  ASSERT_EQ(s.status, 200u);
  llmcache::net::StreamAccumulator acc;
  for (const json::object& e : DataEvents(s.body)) {
    ASSERT_OK(acc.Add(json::serialize(e)));
  }
  ASSERT_OK(acc.Add("[DONE]"));
  json::object streamed = ParseObject(acc.ToCompletionJson());
  for (json::object* o : {&plain, &streamed}) {
    o->erase("id");
    o->erase("created");
  }
  EXPECT_EQ(streamed, plain) << json::serialize(streamed) << "\n"
                             << json::serialize(plain);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FakeStreamEqualsBodyTest,
    ::testing::Values(
        std::make_pair("openai/gpt-4o-mini", R"("temperature":0)"),
        std::make_pair("openai/gpt-4o-mini", R"("max_tokens":3)"),
        std::make_pair("fake/empty", R"("temperature":0)"),
        std::make_pair("fake/tool-call", R"("reasoning":{},"n":2)"),
        std::make_pair("fake/refusal", R"("logprobs":true,"top_logprobs":3)"),
        std::make_pair("fake/annotations",
                       R"("n":3,"logprobs":true,"top_logprobs":1,)"
                       R"("include_reasoning":true)")));

TEST_F(FakeOpenRouterTest, MidstreamErrorEndsWithoutDone) {
  Reply r = Chat(ChatBody("fake/midstream-error", "x", true));
  EXPECT_FALSE(r.ec) << r.ec.message();  // the chunked body ends cleanly
  EXPECT_EQ(r.status, 200u);
  std::vector<json::object> events = DataEvents(r.body);
  ASSERT_EQ(events.size(), 4u);  // role, 2 content chunks, error
  EXPECT_FALSE(StreamedContent({events[1], events[2]}).empty());
  const json::object& err = events[3];
  std::vector<std::string> keys;
  for (const auto& kv : err) keys.emplace_back(kv.key());
  EXPECT_THAT(keys, ::testing::ElementsAre("id", "object", "created", "model",
                                           "provider", "error", "choices"));
  EXPECT_EQ(err.at("error").at("code").as_int64(), 502);
  EXPECT_EQ(err.at("choices").as_array()[0].at("finish_reason").as_string(),
            "error");
  EXPECT_THAT(r.body, ::testing::Not(HasSubstr("[DONE]")));
}

TEST_F(FakeOpenRouterTest, HangNeverAnswers) {
  Reply r = Chat(ChatBody("fake/hang", "x"), std::string("Bearer ") + kKey,
                 milliseconds(300));
  EXPECT_EQ(r.ec, beast::error::timeout);
  EXPECT_EQ(r.status, 0u);
}

TEST_F(FakeOpenRouterTest, SlowStreamSpacesTheEvents) {
  const auto start = std::chrono::steady_clock::now();
  Reply r = Chat(ChatBody("fake/slow-20", "x", true));
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(200));
  EXPECT_THAT(r.body, ::testing::EndsWith("data: [DONE]\n\n"));
}

TEST_F(FakeOpenRouterTest, FloodStreamsMebibytesOfContentThenEndsAsUsual) {
  Reply r = Chat(ChatBody("fake/flood-2", "flood me", true));
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 200u);
  EXPECT_THAT(r.body, ::testing::EndsWith("data: [DONE]\n\n"));
  std::vector<json::object> events = DataEvents(r.body);
  ASSERT_EQ(events.size(), 9u + 32u);  // the usual events, 2 MiB in 64 KiB
  const std::string id(events[0].at("id").as_string());
  size_t flood = 0;
  for (const json::object& e : events) {
    EXPECT_EQ(e.at("id").as_string(), id);
    const json::array& choices = e.at("choices").as_array();
    if (choices.empty()) continue;
    const json::value* content =
        choices[0].at("delta").as_object().if_contains("content");
    if (content != nullptr && content->as_string().size() == 65536) ++flood;
  }
  EXPECT_EQ(flood, 32u);
  EXPECT_GT(StreamedContent(events).size(), size_t{2} << 20);
  // With two choices and logprobs: choice 0's text, after its role chunk,
  // without logprobs.
  {
    json::object two = ParseObject(ChatBody("fake/flood-1", "flood me", true));
    two["n"] = 2;
    two["logprobs"] = true;
    Reply r2 = Chat(json::serialize(two));
    const std::vector<json::object> ev = DataEvents(r2.body);
    size_t big = 0;
    bool role_seen = false;
    for (const json::object& e : ev) {
      const json::array& choices = e.at("choices").as_array();
      if (choices.empty()) continue;
      const json::object& c = choices[0].as_object();
      const json::value* text =
          c.at("delta").as_object().if_contains("content");
      if (c.at("index").as_int64() == 0 && text != nullptr &&
          text->as_string().empty()) {
        role_seen = true;
      }
      if (text == nullptr || text->as_string().size() != 65536) continue;
      ++big;
      EXPECT_TRUE(role_seen);
      EXPECT_EQ(c.at("index").as_int64(), 0);
      EXPECT_TRUE(c.at("logprobs").is_null());
    }
    EXPECT_EQ(big, 16u);
  }
  // Paced: 16 events 10 ms apart.
  const auto start = std::chrono::steady_clock::now();
  Reply paced = Chat(ChatBody("fake/flood-1-every-10", "flood me", true));
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(160));
  EXPECT_EQ(DataEvents(paced.body).size(), 9u + 16u);
  // Not streamed: the usual answer.
  Reply plain = Chat(ChatBody("fake/flood-2", "flood me"));
  EXPECT_EQ(plain.status, 200u);
  EXPECT_LT(plain.body.size(), 4096u);
  // Out of range: an ordinary model.
  for (const char* m : {"fake/flood-0", "fake/flood-1025", "fake/flood-x"}) {
    Reply other = Chat(ChatBody(m, "flood me", true));
    EXPECT_EQ(DataEvents(other.body).size(), 9u) << m;
  }
}

TEST_F(FakeOpenRouterTest, NewlinesPrecedeTheJson) {
  Reply r = Chat(ChatBody("fake/newlines", "x"));
  EXPECT_THAT(r.body, StartsWith("\n\n\n{"));
  EXPECT_EQ(ParseObject(r.body).at("object").as_string(), "chat.completion");
}

TEST_F(FakeOpenRouterTest, ModelsListsPricing) {
  TestClient client(fake_->port());
  ASSERT_FALSE(client.Connect());
  Reply r = client.Request(http::verb::get, "/api/v1/models", "", {});
  ASSERT_EQ(r.status, 200u);
  json::object o = ParseObject(r.body);
  const json::array& data = o.at("data").as_array();
  EXPECT_GE(data.size(), 4u);
  bool sonnet = false;
  bool mini = false;
  for (const json::value& m : data) {
    const json::object& pricing = m.at("pricing").as_object();
    for (const char* key :
         {"prompt", "completion", "input_cache_read", "input_cache_write"}) {
      EXPECT_TRUE(pricing.at(key).is_string()) << key;
    }
    if (m.at("id").as_string() == "anthropic/claude-sonnet-4.5") {
      sonnet = true;
      EXPECT_EQ(pricing.at("prompt").as_string(), "0.000003");
      EXPECT_EQ(pricing.at("completion").as_string(), "0.000015");
      EXPECT_EQ(pricing.at("input_cache_read").as_string(), "0.0000003");
      EXPECT_EQ(pricing.at("input_cache_write").as_string(), "0.00000375");
    }
    if (m.at("id").as_string() == "openai/gpt-4o-mini") mini = true;
  }
  EXPECT_TRUE(sonnet);
  EXPECT_TRUE(mini);
  EXPECT_EQ(client.Request(http::verb::get, "/v1/models").status, 200u);
}

TEST_F(FakeOpenRouterTest, PromptCachingWritesThenReads) {
  const std::string big(8000, 'b');
  const std::string body =
      R"({"model":"anthropic/claude-sonnet-4.5","messages":[)"
      R"({"role":"system","content":[{"type":"text","text":")" +
      big +
      R"(","cache_control":{"type":"ephemeral"}}]},)"
      R"({"role":"user","content":"question one"}]})";
  json::object first = ParseObject(Chat(body).body);
  const json::object& u1 = first.at("usage").as_object();
  const int64_t write =
      u1.at("prompt_tokens_details").at("cache_write_tokens").as_int64();
  EXPECT_GE(write, 2000);
  EXPECT_EQ(u1.at("prompt_tokens_details").at("cached_tokens").as_int64(), 0);
  const int64_t p1 = u1.at("prompt_tokens").as_int64();
  const int64_t c1 = u1.at("completion_tokens").as_int64();
  EXPECT_NEAR(u1.at("cost").to_number<double>(),
              (p1 - write) * 3e-6 + write * 3.75e-6 + c1 * 15e-6, 1e-10);

  // Same prefix, another question: the prefix is read from the cache.
  std::string second_body = body;
  second_body.replace(second_body.find("question one"), 12, "question two");
  json::object second = ParseObject(Chat(second_body).body);
  const json::object& u2 = second.at("usage").as_object();
  EXPECT_EQ(u2.at("prompt_tokens_details").at("cached_tokens").as_int64(),
            write);
  EXPECT_EQ(u2.at("prompt_tokens_details").at("cache_write_tokens").as_int64(),
            0);
  const int64_t p2 = u2.at("prompt_tokens").as_int64();
  const int64_t c2 = u2.at("completion_tokens").as_int64();
  EXPECT_NEAR(u2.at("cost").to_number<double>(),
              (p2 - write) * 3e-6 + write * 0.3e-6 + c2 * 15e-6, 1e-10);
  EXPECT_LT(u2.at("cost").to_number<double>(),
            u1.at("cost").to_number<double>());

  // Without markers nothing is cached.
  json::object plain =
      ParseObject(Chat(ChatBody("anthropic/claude-sonnet-4.5", big)).body);
  EXPECT_EQ(plain.at("usage")
                .at("prompt_tokens_details")
                .at("cache_write_tokens")
                .as_int64(),
            0);
}

TEST_F(FakeOpenRouterTest, CountsRequestsAndRemembersHeaders) {
  TestClient client(fake_->port());
  ASSERT_FALSE(client.Connect());
  Reply r = client.Request(http::verb::post, "/api/v1/chat/completions",
                           ChatBody("openai/gpt-4o", "hi"),
                           {{"Authorization", std::string("Bearer ") + kKey},
                            {"X-Title", "llmcache tests"},
                            {"HTTP-Referer", "https://example.test"}});
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(client.Request(http::verb::get, "/api/v1/models", "", {}).status,
            200u);
  EXPECT_EQ(fake_->requests(), 2u);
  EXPECT_EQ(fake_->completions(), 1u);
  EXPECT_EQ(fake_->connections(), 1u);
  // The last request (GET /models) had no such headers.
  EXPECT_EQ(fake_->last_header("x-title"), "");
  EXPECT_EQ(fake_->last_authorization(), "");

  r = client.Chat(ChatBody("openai/gpt-4o", "hi"));
  r = client.Request(http::verb::post, "/api/v1/chat/completions",
                     ChatBody("openai/gpt-4o", "hi"),
                     {{"Authorization", std::string("Bearer ") + kKey},
                      {"X-Title", "llmcache tests"}});
  EXPECT_EQ(fake_->last_header("x-title"), "llmcache tests");
  EXPECT_EQ(fake_->last_header("X-TITLE"), "llmcache tests");
  EXPECT_EQ(fake_->last_authorization(), std::string("Bearer ") + kKey);

  fake_->ResetCounters();
  EXPECT_EQ(fake_->requests(), 0u);
  EXPECT_EQ(fake_->completions(), 0u);
  EXPECT_EQ(fake_->connections(), 0u);
  EXPECT_EQ(fake_->last_authorization(), "");
}

TEST_F(FakeOpenRouterTest, StopWithAHungRequestReturnsPromptly) {
  TestClient client(fake_->port());
  ASSERT_FALSE(client.Connect());
  ASSERT_FALSE(client.Send(http::verb::post, "/api/v1/chat/completions",
                           ChatBody("fake/hang", "x"),
                           {{"Authorization", std::string("Bearer ") + kKey}}));
  for (int i = 0; i < 200 && fake_->requests() == 0; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_EQ(fake_->requests(), 1u);
  const auto start = std::chrono::steady_clock::now();
  fake_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
  Reply r = client.Read(milliseconds(2000));
  EXPECT_TRUE(r.ec);
  EXPECT_NE(r.ec, beast::error::timeout);  // closed by Stop(), not timed out
  fake_->Stop();                           // idempotent
}

TEST_F(FakeOpenRouterTest, ConcurrentClientsAndStopMidStream) {
  // Four clients stream slowly on their own connections (each event 50 ms
  // apart); Stop() in the middle must close them all promptly.
  std::vector<std::thread> threads;
  std::vector<Reply> replies(4);
  for (size_t i = 0; i < replies.size(); ++i) {
    threads.emplace_back([this, i, &replies] {
      TestClient client(fake_->port());
      if (client.Connect()) return;
      // A quick request first, so that every connection is busy when Stop()
      // comes.
      client.Chat(ChatBody("openai/gpt-4o", "warm up " + std::to_string(i)));
      replies[i] = client.Chat(
          ChatBody("fake/slow-50", "slow " + std::to_string(i), true));
    });
  }
  for (int i = 0; i < 400 && fake_->requests() < 8; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_EQ(fake_->requests(), 8u);
  std::this_thread::sleep_for(milliseconds(120));
  const auto start = std::chrono::steady_clock::now();
  fake_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
  for (std::thread& t : threads) t.join();
  for (const Reply& r : replies) {
    EXPECT_EQ(r.status, 200u);
    EXPECT_TRUE(r.ec);  // cut off by Stop()
    EXPECT_THAT(r.body, StartsWith(": OPENROUTER PROCESSING"));
  }
  EXPECT_EQ(fake_->connections(), 4u);
}

TEST(FakeOpenRouterStartTest, RejectsBadOptions) {
  FakeOptions tls;
  tls.tls = true;
  EXPECT_THAT(FakeOpenRouter::Start(tls),
              testing::StatusIs(StatusCode::kInvalidArgument));
  FakeOptions host;
  host.host = "not an address";
  EXPECT_THAT(FakeOpenRouter::Start(host),
              testing::StatusIs(StatusCode::kInvalidArgument));
  FakeOptions threads;
  threads.threads = 0;
  EXPECT_THAT(FakeOpenRouter::Start(threads),
              testing::StatusIs(StatusCode::kInvalidArgument));
}

TEST(FakeOpenRouterStartTest, PortInUseIsUnavailable) {
  auto first = StartFake();
  ASSERT_NE(first, nullptr);
  FakeOptions same;
  same.port = first->port();
  // SO_REUSEADDR does not allow two listeners on one port.
  EXPECT_THAT(FakeOpenRouter::Start(same),
              testing::StatusIs(StatusCode::kUnavailable));
}

// ------------------------------------------- over plain TCP and over TLS

class FakeTransportTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    FakeOptions options;
    options.api_key = kKey;
    if (GetParam()) {
      options.tls = true;
      options.cert_pem = Certs().server_cert_pem;
      options.key_pem = Certs().server_key_pem;
    }
    fake_ = StartFake(options);
    ASSERT_NE(fake_, nullptr);
  }

  std::unique_ptr<TestClient> NewClient() {
    if (GetParam()) {
      return std::make_unique<TestClient>(fake_->port(), Certs().ca_cert_pem,
                                          "localhost");
    }
    return std::make_unique<TestClient>(fake_->port());
  }

  std::unique_ptr<FakeOpenRouter> fake_;
};

TEST_P(FakeTransportTest, NonStreamAndStreamSucceed) {
  auto client = NewClient();
  ASSERT_FALSE(client->Connect());
  Reply r = client->Chat(ChatBody("openai/gpt-4o-mini", "hello"));
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(ParseObject(r.body).at("object").as_string(), "chat.completion");
  Reply s = client->Chat(ChatBody("openai/gpt-4o-mini", "hello", true));
  ASSERT_FALSE(s.ec) << s.ec.message();
  EXPECT_THAT(s.body, ::testing::EndsWith("data: [DONE]\n\n"));
  EXPECT_EQ(fake_->base_url().substr(0, GetParam() ? 8 : 7),
            GetParam() ? "https://" : "http://");
}

TEST_P(FakeTransportTest, KeepAliveReusesTheConnection) {
  auto client = NewClient();
  ASSERT_FALSE(client->Connect());
  EXPECT_EQ(client->Chat(ChatBody("openai/gpt-4o", "one")).status, 200u);
  EXPECT_EQ(client->Chat(ChatBody("openai/gpt-4o", "two", true)).status, 200u);
  EXPECT_EQ(client->Chat(ChatBody("fake/fault-429", "three")).status, 429u);
  EXPECT_EQ(client->Chat(ChatBody("openai/gpt-4o", "four")).status, 200u);
  EXPECT_EQ(fake_->connections(), 1u);
  EXPECT_EQ(fake_->requests(), 4u);

  auto other = NewClient();
  ASSERT_FALSE(other->Connect());
  EXPECT_EQ(other->Chat(ChatBody("openai/gpt-4o", "five")).status, 200u);
  EXPECT_EQ(fake_->connections(), 2u);
}

TEST_P(FakeTransportTest, CutStreamEndsBeforeDone) {
  auto client = NewClient();
  ASSERT_FALSE(client->Connect());
  Reply r = client->Chat(ChatBody("fake/cut", "x", true));
  EXPECT_EQ(r.status, 200u);
  EXPECT_TRUE(r.ec);
  EXPECT_NE(r.ec, beast::error::timeout);
  EXPECT_THAT(r.body, HasSubstr("Echo"));
  EXPECT_THAT(r.body, ::testing::Not(HasSubstr("[DONE]")));
}

TEST_P(FakeTransportTest, CutNonStreamBodyIsShort) {
  auto client = NewClient();
  ASSERT_FALSE(client->Connect());
  Reply r = client->Chat(ChatBody("fake/cut", "x"));
  EXPECT_EQ(r.status, 200u);
  EXPECT_TRUE(r.ec);
  EXPECT_NE(r.ec, beast::error::timeout);
}

TEST_P(FakeTransportTest, ResetGivesTheClientAReadError) {
  for (bool stream : {false, true}) {
    auto client = NewClient();
    ASSERT_FALSE(client->Connect());
    Reply r = client->Chat(ChatBody("fake/reset", "x", stream));
    EXPECT_TRUE(r.ec) << "stream=" << stream;
    EXPECT_NE(r.ec, beast::error::timeout);
    if (!GetParam()) {
      EXPECT_EQ(r.ec, net::error::connection_reset) << r.ec.message();
    }
  }
}

TEST_P(FakeTransportTest, StopDuringHangReturnsPromptly) {
  auto client = NewClient();
  ASSERT_FALSE(client->Connect());
  Reply r = client->Chat(ChatBody("fake/hang", "x"),
                         std::string("Bearer ") + kKey, milliseconds(300));
  EXPECT_EQ(r.ec, beast::error::timeout);
  const auto start = std::chrono::steady_clock::now();
  fake_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
}

std::string TransportName(const ::testing::TestParamInfo<bool>& param) {
  return param.param ? "Tls" : "Plain";
}

INSTANTIATE_TEST_SUITE_P(FakeTransports, FakeTransportTest,
                         ::testing::Values(false, true), TransportName);

// ------------------------------------------------------------------- TLS

class FakeTlsTest : public ::testing::Test {
 protected:
  std::unique_ptr<FakeOpenRouter> StartTls(const std::string& cert,
                                           const std::string& key) {
    FakeOptions options;
    options.tls = true;
    options.cert_pem = cert;
    options.key_pem = key;
    return StartFake(options);
  }
};

TEST_F(FakeTlsTest, TrustedCaAndMatchingHostSucceed) {
  auto fake = StartTls(Certs().server_cert_pem, Certs().server_key_pem);
  ASSERT_NE(fake, nullptr);
  EXPECT_EQ(fake->base_url(),
            "https://127.0.0.1:" + std::to_string(fake->port()) + "/api/v1");
  for (const char* host : {"localhost", "127.0.0.1"}) {
    TestClient client(fake->port(), Certs().ca_cert_pem, host);
    beast::error_code ec = client.Connect();
    ASSERT_FALSE(ec) << host << ": " << ec.message();
    EXPECT_EQ(client.Chat(ChatBody("openai/gpt-4o", "tls")).status, 200u);
  }
}

TEST_F(FakeTlsTest, WrongHostCertificateFailsTheHandshake) {
  auto fake = StartTls(Certs().wrong_host_cert_pem, Certs().wrong_host_key_pem);
  ASSERT_NE(fake, nullptr);
  TestClient client(fake->port(), Certs().ca_cert_pem, "localhost");
  beast::error_code ec = client.Connect();
  EXPECT_TRUE(ec);
  EXPECT_EQ(ec.category(), net::error::get_ssl_category()) << ec.message();
  // The chain itself is fine: verifying the name it was issued for works.
  TestClient right_name(fake->port(), Certs().ca_cert_pem, "wrong.example");
  EXPECT_FALSE(right_name.Connect());
}

TEST_F(FakeTlsTest, UntrustedCertificateFailsTheHandshake) {
  auto fake = StartTls(Certs().untrusted_cert_pem, Certs().untrusted_key_pem);
  ASSERT_NE(fake, nullptr);
  TestClient client(fake->port(), Certs().ca_cert_pem, "localhost");
  beast::error_code ec = client.Connect();
  EXPECT_TRUE(ec);
  EXPECT_EQ(ec.category(), net::error::get_ssl_category()) << ec.message();
}

TEST_F(FakeTlsTest, PlainClientGetsNoHttpAnswer) {
  auto fake = StartTls(Certs().server_cert_pem, Certs().server_key_pem);
  ASSERT_NE(fake, nullptr);
  TestClient client(fake->port());
  ASSERT_FALSE(client.Connect());
  Reply r = client.Chat(ChatBody("openai/gpt-4o", "x"), "Bearer k",
                        milliseconds(2000));
  EXPECT_TRUE(r.ec);
  EXPECT_NE(r.status, 200u);
}

// ------------------------------------------------------------ certificates

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

X509Ptr ParsePem(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

TEST(CertTest, GeneratesPemMaterial) {
  const TestCertificates& c = Certs();
  for (const std::string* cert :
       {&c.ca_cert_pem, &c.server_cert_pem, &c.wrong_host_cert_pem,
        &c.untrusted_cert_pem}) {
    EXPECT_THAT(*cert, StartsWith("-----BEGIN CERTIFICATE-----"));
  }
  for (const std::string* key :
       {&c.server_key_pem, &c.wrong_host_key_pem, &c.untrusted_key_pem}) {
    EXPECT_THAT(*key, StartsWith("-----BEGIN PRIVATE KEY-----"));
  }
  EXPECT_NE(c.server_key_pem, c.wrong_host_key_pem);
}

TEST(CertTest, NamesAndChainAreAsDocumented) {
  const TestCertificates& c = Certs();
  X509Ptr ca = ParsePem(c.ca_cert_pem);
  X509Ptr server = ParsePem(c.server_cert_pem);
  X509Ptr wrong = ParsePem(c.wrong_host_cert_pem);
  X509Ptr untrusted = ParsePem(c.untrusted_cert_pem);
  ASSERT_TRUE(ca && server && wrong && untrusted);
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  EXPECT_EQ(X509_check_ca(server.get()), 0);
  EXPECT_EQ(X509_check_host(server.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(server.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(server.get(), "::1", 0), 1);
  EXPECT_EQ(X509_check_host(wrong.get(), "wrong.example", 0, 0, nullptr), 1);
  EXPECT_NE(X509_check_host(wrong.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(untrusted.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_issued(ca.get(), server.get()), X509_V_OK);
  EXPECT_EQ(X509_check_issued(ca.get(), wrong.get()), X509_V_OK);
  EXPECT_NE(X509_check_issued(ca.get(), untrusted.get()), X509_V_OK);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(server.get()),
                             X509_get0_serialNumber(wrong.get())),
            0);
  // Valid now.
  EXPECT_LT(X509_cmp_current_time(X509_get0_notBefore(server.get())), 0);
  EXPECT_GT(X509_cmp_current_time(X509_get0_notAfter(server.get())), 0);
}

}  // namespace
}  // namespace llmcache::fake
