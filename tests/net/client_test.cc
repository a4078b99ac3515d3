// Client against the fake OpenRouter on loopback: completion tokens, keep-
// alive, retries and Retry-After, no retry on 4xx, deadlines, TLS
// verification, streaming and cancellation.

#include "llmcache/net/client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "fake_openrouter.h"
#include "llmcache/net/sse.h"
#include "testing/io_loop.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

namespace llmcache::net {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using ::llmcache::fake::FakeOpenRouter;
using ::llmcache::fake::FakeOptions;
using ::llmcache::fake::TestCertificates;
using ::llmcache::testing::StatusIs;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

std::string Body(const std::string& model, bool stream = false,
                 const std::string& text = "hello") {
  return R"({"model":")" + model + R"(","temperature":0,)" +
         (stream ? R"("stream":true,)" : "") +
         R"("messages":[{"role":"user","content":")" + text + R"("}]})";
}

// An io_context run by two threads for the test's lifetime.
using Loop = ::llmcache::testing::IoLoop;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FakeOptions fo;
    fo.api_key = "sk-test-SECRET-1234";
    auto f = FakeOpenRouter::Start(fo);
    ASSERT_OK(f);
    fake_ = std::move(f).value();
  }

  ClientOptions Options() {
    ClientOptions o;
    o.base_url = fake_->base_url();
    o.api_key = "sk-test-SECRET-1234";
    o.initial_backoff = 10ms;
    o.max_backoff = 50ms;
    return o;
  }

  std::shared_ptr<Client> MakeClient(ClientOptions o) {
    auto c = Client::Create(loop_.ioc().get_executor(), std::move(o));
    EXPECT_OK(c);
    return c.ok() ? *c : nullptr;
  }

  Result<Response> Post(Client& c, const std::string& body, bool stream = false,
                        ChunkHandler chunks = nullptr) {
    Request r;
    r.body = body;
    r.stream = stream;
    return c.AsyncSend(std::move(r), std::move(chunks), asio::use_future).get();
  }

  Loop loop_;
  std::unique_ptr<FakeOpenRouter> fake_;
};

TEST_F(ClientTest, CompletesWithFutureCallbackAndCoroutine) {
  auto client = MakeClient(Options());
  // use_future
  Result<Response> r =
      client->AsyncComplete(Body("openai/gpt-4o-mini"), asio::use_future).get();
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->attempts, 1);
  auto parsed = ParseCompletion(r->body);
  ASSERT_OK(parsed);
  EXPECT_FALSE(parsed->content.empty());
  EXPECT_EQ(parsed->finish_reason, "stop");
  ASSERT_TRUE(parsed->usage.has_value());
  EXPECT_GT(parsed->usage->prompt_tokens, 0u);
  EXPECT_EQ(fake_->last_authorization(), "Bearer sk-test-SECRET-1234");

  // A plain callback.
  std::promise<Result<Response>> p;
  client->AsyncComplete(Body("openai/gpt-4o-mini"), [&](Result<Response> res) {
    p.set_value(std::move(res));
  });
  Result<Response> r2 = p.get_future().get();
  ASSERT_OK(r2);
  auto parsed2 = ParseCompletion(r2->body);
  ASSERT_OK(parsed2);
  EXPECT_EQ(parsed2->content, parsed->content);  // deterministic fake

  // A C++20 coroutine.
  auto fut = asio::co_spawn(
      loop_.ioc(),
      [client]() -> asio::awaitable<int> {
        Result<Response> res = co_await client->AsyncComplete(
            Body("openai/gpt-4o-mini"), asio::use_awaitable);
        co_return res.ok() ? res->status : -1;
      },
      asio::use_future);
  EXPECT_EQ(fut.get(), 200);
}

// An answer over max_response_bytes is not read, said as such (it was "lost
// before the response: body limit exceeded"), and the request is not sent
// again: the upstream did the work.
TEST_F(ClientTest, AnAnswerOverTheLimitIsRefusedAndNotSentAgain) {
  ClientOptions o = Options();
  o.max_response_bytes = 100;
  auto client = MakeClient(o);
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream);
    const uint64_t before = fake_->completions();
    Result<Response> r =
        Post(*client, Body("openai/gpt-4o-mini", stream, std::string(300, 'x')),
             stream, [](std::string_view) { return true; });
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr("larger than the client's limit of 100 bytes"));
    EXPECT_EQ(fake_->completions(), before + 1);
  }
}

// A stream is not bounded as a whole, only each of its events: a 4 MiB
// stream of 64 KiB events comes whole through a 1 MiB limit. One event over
// the limit fails the stream, said as such, without a second call.
TEST_F(ClientTest, AStreamIsBoundedByItsEventsNotByItsLength) {
  ClientOptions o = Options();
  o.max_response_bytes = 1 << 20;
  auto client = MakeClient(o);
  size_t bytes = 0;
  bool done = false;
  Result<Response> r = Post(*client, Body("fake/flood-4", true), true,
                            [&](std::string_view data) {
                              bytes += data.size();
                              done |= data == "[DONE]";
                              return true;
                            });
  ASSERT_OK(r);
  EXPECT_TRUE(r->streamed);
  EXPECT_TRUE(r->stream_complete);
  EXPECT_TRUE(done);
  EXPECT_GT(bytes, size_t{4} << 20);

  o.max_response_bytes = 32 << 10;  // under one 64 KiB event
  client = MakeClient(o);
  const uint64_t before = fake_->completions();
  bytes = 0;
  r = Post(*client, Body("fake/flood-1", true), true,
           [&](std::string_view data) {
             bytes += data.size();
             return true;
           });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("an event of the upstream's stream is larger than the "
                        "client's limit of 32768 bytes"));
  EXPECT_LT(bytes, size_t{32} << 10);
  EXPECT_EQ(fake_->completions(), before + 1);
}

TEST_F(ClientTest, ReusesKeepAliveConnection) {
  auto client = MakeClient(Options());
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(
        Post(*client, Body("openai/gpt-4o-mini", false, std::to_string(i))));
  }
  EXPECT_EQ(client->connections_opened(), 1u);
  EXPECT_EQ(fake_->connections(), 1u);
  EXPECT_EQ(fake_->completions(), 5u);
}

TEST_F(ClientTest, RetriesRetryableStatusesThenSucceeds) {
  auto client = MakeClient(Options());
  Result<Response> r = Post(*client, Body("fake/flaky-503-2"));
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->attempts, 3);
  EXPECT_EQ(fake_->completions(), 3u);
}

TEST_F(ClientTest, PostIsNotRetriedAfterAStatusThatMayFollowTheWork) {
  // 500, 502 and 524 may come after the upstream did (and billed) the work.
  for (int status : {500, 502, 524}) {
    ClientOptions o = Options();
    o.max_attempts = 3;
    auto client = MakeClient(o);
    fake_->ResetCounters();
    Result<Response> r =
        Post(*client, Body("fake/fault-" + std::to_string(status)));
    ASSERT_OK(r) << status;
    EXPECT_EQ(r->status, status);
    EXPECT_EQ(r->attempts, 1) << status;
    EXPECT_EQ(fake_->completions(), 1u) << status;
  }
}

TEST_F(ClientTest, AttemptsAreBoundedAndLastErrorReturned) {
  for (int status : {408, 503, 529}) {
    ClientOptions o = Options();
    o.max_attempts = 3;
    auto client = MakeClient(o);
    fake_->ResetCounters();
    Result<Response> r =
        Post(*client, Body("fake/fault-" + std::to_string(status)));
    ASSERT_OK(r) << status;
    EXPECT_EQ(r->status, status);
    EXPECT_EQ(r->attempts, 3) << status;
    EXPECT_EQ(fake_->completions(), 3u) << status;
    EXPECT_THAT(StatusFromUpstream(r->status, r->body),
                ::testing::Not(::llmcache::testing::IsOk()));
  }
}

TEST_F(ClientTest, HonoursRetryAfter) {
  ClientOptions o = Options();
  o.max_attempts = 2;
  auto client = MakeClient(o);
  const auto start = std::chrono::steady_clock::now();
  Result<Response> r = Post(*client, Body("fake/fault-429"));
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->attempts, 2);
  EXPECT_EQ(r->header("Retry-After"), "1");
  EXPECT_GE(waited, 1000ms);  // the server asked for 1 s; backoff was 10 ms
}

TEST_F(ClientTest, RetryAfterBeyondBudgetIsNotWaitedFor) {
  ClientOptions o = Options();
  o.retry_budget = 200ms;
  auto client = MakeClient(o);
  Result<Response> r = Post(*client, Body("fake/fault-503"));
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->attempts, 1);
}

TEST_F(ClientTest, NeverRetriesClientErrors) {
  auto client = MakeClient(Options());
  for (int status : {400, 401, 402, 403, 404, 413, 422}) {
    fake_->ResetCounters();
    Result<Response> r =
        Post(*client, Body("fake/fault-" + std::to_string(status)));
    ASSERT_OK(r);
    EXPECT_EQ(r->status, status);
    EXPECT_EQ(r->attempts, 1) << status;
    EXPECT_EQ(fake_->completions(), 1u) << status;
  }
}

TEST_F(ClientTest, HeadersDeadlineIsNotRetried) {
  ClientOptions o = Options();
  o.headers_timeout = 200ms;
  auto client = MakeClient(o);
  Result<Response> r = Post(*client, Body("fake/hang"));
  EXPECT_THAT(r, StatusIs(StatusCode::kDeadlineExceeded, "response headers"));
  EXPECT_EQ(fake_->completions(), 1u);
}

TEST_F(ClientTest, WholeRequestDeadline) {
  ClientOptions o = Options();
  o.request_timeout = 300ms;
  auto client = MakeClient(o);
  Result<Response> r = Post(*client, Body("fake/delay-3000"));
  EXPECT_THAT(r, StatusIs(StatusCode::kDeadlineExceeded, "deadline"));
}

TEST_F(ClientTest, ConnectionRefusedIsUnavailableAfterRetries) {
  // A port that was just free: nothing listens there.
  asio::io_context ioc;
  asio::ip::tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  const uint16_t port = a.local_endpoint().port();
  a.close();
  ClientOptions o = Options();
  o.base_url = "http://127.0.0.1:" + std::to_string(port) + "/api/v1";
  o.max_attempts = 3;
  auto client = MakeClient(o);
  Result<Response> r = Post(*client, Body("openai/gpt-4o-mini"));
  EXPECT_THAT(r, StatusIs(StatusCode::kUnavailable, "after 3 attempts"));
  EXPECT_EQ(r.status().message().find("SECRET"), std::string_view::npos);
}

TEST_F(ClientTest, PostWhoseAnswerWasLostIsNotSentAgain) {
  // The upstream got the whole request (and may bill it): sending it again
  // could pay twice.
  ClientOptions o = Options();
  o.max_attempts = 3;
  auto client = MakeClient(o);
  Result<Response> r = Post(*client, Body("fake/reset"));
  EXPECT_THAT(r, StatusIs(StatusCode::kUnavailable, "not retried"));
  EXPECT_EQ(fake_->completions(), 1u);
}

TEST_F(ClientTest, AnIdempotentPostIsSentAgain) {
  // Marked idempotent (the server does it once however often it arrives):
  // a lost answer and a status that may follow the work are retried.
  ClientOptions o = Options();
  o.max_attempts = 3;
  o.initial_backoff = std::chrono::milliseconds(1);
  auto client = MakeClient(o);
  for (const char* model : {"fake/reset", "fake/fault-500"}) {
    fake_->ResetCounters();
    Request req;
    req.body = Body(model);
    req.idempotent = true;
    Result<Response> r =
        client->AsyncSend(std::move(req), nullptr, asio::use_future).get();
    if (std::string_view(model) == "fake/reset") {
      EXPECT_THAT(r, StatusIs(StatusCode::kUnavailable, "after 3 attempts"));
      EXPECT_THAT(r,
                  ::testing::Not(StatusIs(StatusCode::kUnavailable, "billed")));
    } else {
      ASSERT_OK(r);
      EXPECT_EQ(r->attempts, 3);
    }
    EXPECT_EQ(fake_->completions(), 3u) << model;
  }
}

TEST_F(ClientTest, StreamsEventsAsTheyArrive) {
  auto client = MakeClient(Options());
  std::vector<std::string> events;
  Result<Response> r = Post(*client, Body("openai/gpt-4o-mini", true), true,
                            [&](std::string_view data) {
                              events.emplace_back(data);
                              return true;
                            });
  ASSERT_OK(r);
  EXPECT_TRUE(r->streamed);
  EXPECT_TRUE(r->stream_complete);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  StreamAccumulator acc;
  for (const auto& e : events) ASSERT_OK(acc.Add(e));
  EXPECT_TRUE(acc.done());
  // Same content as the non-streamed answer to the same request.
  Result<Response> plain = Post(*client, Body("openai/gpt-4o-mini"));
  ASSERT_OK(plain);
  auto parsed = ParseCompletion(plain->body);
  ASSERT_OK(parsed);
  EXPECT_EQ(acc.Result().content, parsed->content);
}

TEST_F(ClientTest, CancellingAStreamStopsIt) {
  auto client = MakeClient(Options());
  int seen = 0;
  Result<Response> r = Post(*client, Body("openai/gpt-4o-mini", true), true,
                            [&](std::string_view) { return ++seen < 2; });
  EXPECT_THAT(r, StatusIs(StatusCode::kCancelled));
  EXPECT_EQ(seen, 2);
}

TEST_F(ClientTest, StreamCutBeforeDoneIsNotComplete) {
  auto client = MakeClient(Options());
  std::vector<std::string> events;
  Result<Response> r =
      Post(*client, Body("fake/cut", true), true, [&](std::string_view d) {
        events.emplace_back(d);
        return true;
      });
  if (r.ok()) {
    EXPECT_FALSE(r->stream_complete);
  } else {
    EXPECT_THAT(r, StatusIs(StatusCode::kUnavailable));
  }
  EXPECT_FALSE(events.empty());
  EXPECT_NE(events.back(), "[DONE]");
}

// A loopback server that accepts connections and then does what `behave`
// says with each socket, on its own thread.
class RawServer {
 public:
  using Behaviour = std::function<void(asio::ip::tcp::socket&)>;
  explicit RawServer(Behaviour behave, int backlog = 16) : acceptor_(ioc_) {
    asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen(backlog);
    port_ = acceptor_.local_endpoint().port();
    if (behave) {
      thread_ = std::thread([this, behave] {
        boost::system::error_code ec;
        while (!stop_) {
          auto sock = std::make_shared<asio::ip::tcp::socket>(ioc_);
          acceptor_.accept(*sock, ec);
          if (ec || stop_) break;
          sockets_.push_back(sock);
          behave(*sock);
        }
      });
    }
  }
  ~RawServer() {
    stop_ = true;
    boost::system::error_code ec;
    if (thread_.joinable()) {
      // Wake the blocking accept with one last connection.
      asio::io_context ioc;
      asio::ip::tcp::socket wake(ioc);
      wake.connect({asio::ip::make_address("127.0.0.1"), port_}, ec);
      thread_.join();
    }
    acceptor_.close(ec);
    for (auto& s : sockets_) s->close(ec);
  }
  uint16_t port() const { return port_; }

 private:
  asio::io_context ioc_;
  asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<std::shared_ptr<asio::ip::tcp::socket>> sockets_;
  std::thread thread_;
};

// Reads one HTTP request (headers, then a Content-Length body) from `s`;
// returns what it read.
std::string ReadRequest(asio::ip::tcp::socket& s) {
  std::string data;
  char buf[4096];
  boost::system::error_code ec;
  size_t head_end;
  while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
    const size_t n = s.read_some(asio::buffer(buf), ec);
    if (ec) return data;
    data.append(buf, n);
  }
  size_t length = 0;
  const size_t cl = data.find("Content-Length: ");
  if (cl != std::string::npos && cl < head_end) {
    length = std::stoul(data.substr(cl + 16));
  }
  while (data.size() < head_end + 4 + length) {
    const size_t n = s.read_some(asio::buffer(buf), ec);
    if (ec) return data;
    data.append(buf, n);
  }
  return data;
}

// Writes `head` (status line and headers) with a 10-byte gzip body, and
// closes: an answer in a content coding that was not asked for.
void WriteGzipAnswer(asio::ip::tcp::socket& s, const std::string& head) {
  const std::string gzip("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
  boost::system::error_code ec;
  asio::write(s, asio::buffer(head + "Content-Length: 10\r\n\r\n" + gzip), ec);
  s.close(ec);
}

// The client asks for no content coding, and an answer in one anyway (a
// gzip body) is an error, not bytes handed on as if they were the JSON.
TEST_F(ClientTest, AContentCodingThatWasNotAskedForIsRefused) {
  std::atomic<int> requests{0};
  std::mutex mu;
  std::string seen;
  RawServer server([&](asio::ip::tcp::socket& s) {
    std::string request = ReadRequest(s);
    {
      std::lock_guard<std::mutex> lock(mu);
      seen = std::move(request);
    }
    ++requests;
    WriteGzipAnswer(s,
                    "HTTP/1.1 200 OK\r\n"
                    "Content-Type: application/json\r\n"
                    "Content-Encoding: gzip\r\n");
  });
  ClientOptions o = Options();
  o.base_url = "http://127.0.0.1:" + std::to_string(server.port()) + "/api/v1";
  auto client = MakeClient(o);
  Result<Response> r = Post(*client, Body("m/x"));
  EXPECT_THAT(r, StatusIs(StatusCode::kUnavailable,
                          "answered with Content-Encoding: gzip"));
  EXPECT_EQ(requests.load(), 1);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_THAT(seen, HasSubstr("\r\nAccept-Encoding: identity\r\n"));
}

// An error answer in a coding that was not asked for keeps its status and
// Retry-After (the client can still back off), with a readable body of the
// client's own instead of the coded one.
TEST_F(ClientTest, AnErrorInAContentCodingKeepsItsStatusAndRetryAfter) {
  std::atomic<int> requests{0};
  RawServer server([&](asio::ip::tcp::socket& s) {
    ReadRequest(s);
    ++requests;
    WriteGzipAnswer(s,
                    "HTTP/1.1 429 Too Many Requests\r\n"
                    "Content-Type: application/json\r\n"
                    "Content-Encoding: gzip\"x\r\n"
                    "Retry-After: 7\r\n");
  });
  ClientOptions o = Options();
  o.base_url = "http://127.0.0.1:" + std::to_string(server.port()) + "/api/v1";
  o.max_attempts = 1;
  auto client = MakeClient(o);
  Result<Response> r = Post(*client, Body("m/x"));
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->header("Retry-After"), "7");
  EXPECT_EQ(r->header("Content-Encoding"), "");
  EXPECT_EQ(r->header("Content-Length"), "");
  boost::system::error_code ec;
  json::value v = json::parse(r->body, ec);
  ASSERT_FALSE(ec) << r->body;
  EXPECT_EQ(v.at("error").at("code").to_number<int>(), 429);
  EXPECT_THAT(std::string(v.at("error").at("message").as_string()),
              HasSubstr("Content-Encoding: gzip?x, which was not read"));
  EXPECT_EQ(requests.load(), 1);
}

// A stream that ends before its first event (an empty body, or comments
// only) is an answer lost, not an empty answer.
TEST_F(ClientTest, AStreamThatEndsBeforeItsFirstEventIsLost) {
  for (const std::string& body : {std::string(), std::string(": hello\n\n")}) {
    std::atomic<int> requests{0};
    RawServer server([&](asio::ip::tcp::socket& s) {
      ReadRequest(s);
      ++requests;
      boost::system::error_code ec;
      asio::write(s,
                  asio::buffer("HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/event-stream\r\n"
                               "Content-Length: " +
                               std::to_string(body.size()) + "\r\n\r\n" + body),
                  ec);
      s.close(ec);
    });
    ClientOptions o = Options();
    o.base_url =
        "http://127.0.0.1:" + std::to_string(server.port()) + "/api/v1";
    o.max_attempts = 3;
    auto client = MakeClient(o);
    int events = 0;
    Result<Response> r =
        Post(*client, Body("m/x", true), true, [&](std::string_view) {
          ++events;
          return true;
        });
    EXPECT_THAT(
        r, StatusIs(StatusCode::kUnavailable, "ended before its first event"))
        << body;
    EXPECT_EQ(events, 0);
    // Sent, so not sent again (the upstream may have started it).
    EXPECT_EQ(requests.load(), 1);
  }
}

TEST_F(ClientTest, GetWhoseAnswerWasLostIsRetried) {
  // Each connection reads the request and closes without an answer.
  std::atomic<int> requests{0};
  RawServer server([&](asio::ip::tcp::socket& s) {
    ReadRequest(s);
    ++requests;
    boost::system::error_code ec;
    s.close(ec);
  });
  ClientOptions o = Options();
  o.base_url = "http://127.0.0.1:" + std::to_string(server.port()) + "/api/v1";
  o.max_attempts = 3;
  auto client = MakeClient(o);
  Request get;
  get.method = "GET";
  get.path = "/models";
  Result<Response> r =
      client->AsyncSend(std::move(get), nullptr, asio::use_future).get();
  EXPECT_THAT(r, StatusIs(StatusCode::kUnavailable, "after 3 attempts"));
  EXPECT_EQ(requests.load(), 3);

  // The same for a POST: one request, no second.
  requests = 0;
  Result<Response> post = Post(*client, Body("m/x"));
  EXPECT_THAT(post, StatusIs(StatusCode::kUnavailable, "not retried"));
  EXPECT_EQ(requests.load(), 1);
}

TEST_F(ClientTest, HugeRetryAfterDoesNotOverflow) {
  // 10^20 seconds: parsed naively, seconds x 1000 overflows (and came out
  // as a short wait, so the request was retried at once).
  std::atomic<int> requests{0};
  RawServer server([&](asio::ip::tcp::socket& s) {
    ReadRequest(s);
    ++requests;
    boost::system::error_code ec;
    asio::write(s,
                asio::buffer(std::string(
                    "HTTP/1.1 429 Too Many Requests\r\n"
                    "Retry-After: 100000000000000000000\r\n"
                    "Content-Length: 2\r\nConnection: close\r\n\r\n{}")),
                ec);
    s.close(ec);
  });
  ClientOptions o = Options();
  o.base_url = "http://127.0.0.1:" + std::to_string(server.port()) + "/api/v1";
  o.max_attempts = 3;
  o.retry_budget = 5s;
  auto client = MakeClient(o);
  Result<Response> r = Post(*client, Body("m/x"));
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->attempts, 1);  // the wait is beyond the budget
  EXPECT_EQ(requests.load(), 1);
}

TEST_F(ClientTest, ConnectionClosedWhileIdleIsNotUsedForAPost) {
  // Answers one request per connection with keep-alive, then closes it
  // while it sits in the client's pool.
  std::atomic<int> requests{0};
  RawServer server([&](asio::ip::tcp::socket& s) {
    ReadRequest(s);
    ++requests;
    const std::string body = R"({"choices":[]})";
    boost::system::error_code ec;
    asio::write(s,
                asio::buffer("HTTP/1.1 200 OK\r\nContent-Type: "
                             "application/json\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body),
                ec);
    s.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    s.close(ec);
  });
  ClientOptions o = Options();
  o.base_url = "http://127.0.0.1:" + std::to_string(server.port()) + "/api/v1";
  o.max_attempts = 1;
  auto client = MakeClient(o);
  ASSERT_OK(Post(*client, Body("m/x")));
  std::this_thread::sleep_for(100ms);  // the close reaches the client
  Result<Response> second = Post(*client, Body("m/x"));
  ASSERT_OK(second);
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(requests.load(), 2);
  EXPECT_EQ(client->connections_opened(), 2u);
}

TEST_F(ClientTest, StreamIdleDeadline) {
  // Headers and one event, then silence.
  RawServer server([](asio::ip::tcp::socket& s) {
    char buf[4096];
    boost::system::error_code ec;
    s.read_some(asio::buffer(buf), ec);
    const std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    const std::string event = "data: {\"choices\":[]}\n\n";
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", event.size());
    asio::write(s, asio::buffer(head + size + event + "\r\n"), ec);
  });
  ClientOptions o = Options();
  o.base_url = "http://127.0.0.1:" + std::to_string(server.port()) + "/api/v1";
  o.stream_idle_timeout = 300ms;
  auto client = MakeClient(o);
  int events = 0;
  Result<Response> r =
      Post(*client, Body("m/x", true), true, [&](std::string_view) {
        ++events;
        return true;
      });
  EXPECT_THAT(r, StatusIs(StatusCode::kDeadlineExceeded, "next stream event"));
  EXPECT_EQ(events, 1);
}

TEST_F(ClientTest, TlsHandshakeDeadline) {
  // Accepts TCP, never speaks TLS.
  RawServer server([](asio::ip::tcp::socket&) {});
  ClientOptions o = Options();
  o.base_url = "https://127.0.0.1:" + std::to_string(server.port()) + "/api/v1";
  o.handshake_timeout = 300ms;
  o.max_attempts = 1;
  auto client = MakeClient(o);
  EXPECT_THAT(Post(*client, Body("m/x")),
              StatusIs(StatusCode::kDeadlineExceeded, "TLS handshake"));
}

TEST_F(ClientTest, ConnectDeadline) {
  // A listener that never accepts, with its queue filled: further SYNs are
  // dropped, so connecting hangs until the client gives up.
  RawServer server(nullptr, /*backlog=*/0);
  asio::io_context ioc;
  std::vector<std::unique_ptr<asio::ip::tcp::socket>> fillers;
  for (int i = 0; i < 4; ++i) {
    auto s = std::make_unique<asio::ip::tcp::socket>(ioc);
    s->async_connect({asio::ip::make_address("127.0.0.1"), server.port()},
                     [](boost::system::error_code) {});
    fillers.push_back(std::move(s));
  }
  ioc.run_for(200ms);
  ClientOptions o = Options();
  o.base_url = "http://127.0.0.1:" + std::to_string(server.port()) + "/api/v1";
  o.connect_timeout = 300ms;
  o.max_attempts = 1;
  auto client = MakeClient(o);
  EXPECT_THAT(Post(*client, Body("m/x")),
              StatusIs(StatusCode::kDeadlineExceeded, "connecting"));
}

TEST_F(ClientTest, ResolveDeadline) {
  // A resolver that never answers (as a dead DNS server would).
  std::atomic<int> asked{0};
  ClientOptions o = Options();
  o.resolve_timeout = 200ms;
  o.max_attempts = 1;
  o.resolve_for_test = [&](const std::string&, const std::string&, auto) {
    ++asked;
  };
  auto client = MakeClient(o);
  EXPECT_THAT(Post(*client, Body("m/x")),
              StatusIs(StatusCode::kDeadlineExceeded, "resolving"));
  EXPECT_EQ(asked.load(), 1);
  EXPECT_EQ(client->connections_opened(), 0u);

  // One that answers late, after the deadline: ignored, no crash.
  std::function<void(boost::system::error_code,
                     std::vector<asio::ip::tcp::endpoint>)>
      late;
  std::mutex mu;
  o.resolve_for_test = [&](const std::string&, const std::string&, auto done) {
    std::lock_guard<std::mutex> lock(mu);
    late = std::move(done);
  };
  client = MakeClient(o);
  EXPECT_THAT(Post(*client, Body("m/x")),
              StatusIs(StatusCode::kDeadlineExceeded, "resolving"));
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_TRUE(late);
    late({}, {});
  }

  // One that answers in time: the request goes through.
  o.resolve_for_test = [port = fake_->port()](const std::string& host,
                                              const std::string&, auto done) {
    EXPECT_EQ(host, "127.0.0.1");
    done({},
         {asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port)});
  };
  client = MakeClient(o);
  Result<Response> ok = Post(*client, Body("openai/gpt-4o-mini"));
  ASSERT_OK(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(ClientTest, PlainHttpOnlyForLoopback) {
  ClientOptions o;
  o.base_url = "http://example.com/api/v1";
  EXPECT_THAT(Client::Create(loop_.ioc().get_executor(), o),
              StatusIs(StatusCode::kInvalidArgument, "loopback"));
  o.base_url = "ftp://127.0.0.1/x";
  EXPECT_THAT(Client::Create(loop_.ioc().get_executor(), o),
              StatusIs(StatusCode::kInvalidArgument));
  o.base_url = "http://[::1]:9/api/v1";
  EXPECT_OK(Client::Create(loop_.ioc().get_executor(), o));
  o.base_url = "HTTP://127.0.0.1:9/api/v1";  // schemes are case-insensitive
  EXPECT_OK(Client::Create(loop_.ioc().get_executor(), o));
}

// Parts of a base URL that were dropped silently, or a port that was sent
// to "127.0.0.1:" (retried four times) instead of refused.
TEST_F(ClientTest, BadBaseUrlsAndSettingsAreInvalid) {
  for (const char* url :
       {"http://127.0.0.1:99999/api/v1", "http://127.0.0.1:0/api/v1",
        "http://127.0.0.1:-1/api/v1", "http://127.0.0.1:/api/v1",
        "http://127.0.0.1:9/api/v1?x=1", "http://127.0.0.1:9/api/v1#f",
        "http://user:pw@127.0.0.1:9/api/v1"}) {
    ClientOptions o;
    o.base_url = url;
    EXPECT_THAT(Client::Create(loop_.ioc().get_executor(), o),
                StatusIs(StatusCode::kInvalidArgument))
        << url;
  }
  ClientOptions o;
  o.base_url = "http://127.0.0.1:9/api/v1";
  o.max_attempts = 0;
  EXPECT_THAT(Client::Create(loop_.ioc().get_executor(), o),
              StatusIs(StatusCode::kInvalidArgument, "max_attempts"));
  o.max_attempts = 1;
  o.headers_timeout = std::chrono::milliseconds(-5);
  EXPECT_THAT(Client::Create(loop_.ioc().get_executor(), o),
              StatusIs(StatusCode::kInvalidArgument, "headers_timeout"));
  o.headers_timeout = std::chrono::milliseconds(1);
  o.retry_budget = std::chrono::milliseconds(-1);
  EXPECT_THAT(Client::Create(loop_.ioc().get_executor(), o),
              StatusIs(StatusCode::kInvalidArgument, "retry_budget"));
}

class TlsClientTest : public ClientTest {
 protected:
  void SetUp() override {
    auto certs = TestCertificates::Generate();
    ASSERT_OK(certs);
    certs_ = std::move(certs).value();
    ca_file_ = dir_.path() + "/ca.pem";
    std::ofstream(ca_file_) << certs_.ca_cert_pem;
  }
  std::unique_ptr<FakeOpenRouter> StartTls(const std::string& cert,
                                           const std::string& key) {
    FakeOptions fo;
    fo.tls = true;
    fo.cert_pem = cert;
    fo.key_pem = key;
    auto f = FakeOpenRouter::Start(fo);
    EXPECT_OK(f);
    return f.ok() ? std::move(f).value() : nullptr;
  }
  ClientOptions TlsOptions(const FakeOpenRouter& f, const std::string& host) {
    ClientOptions o;
    o.base_url = "https://" + host + ":" + std::to_string(f.port()) + "/api/v1";
    o.api_key = "k";
    o.extra_ca_file = ca_file_;
    o.initial_backoff = 10ms;
    return o;
  }

  llmcache::testing::TempDir dir_;
  TestCertificates certs_;
  std::string ca_file_;
};

TEST_F(TlsClientTest, VerifiedTlsWorksByNameAndAddress) {
  auto f = StartTls(certs_.server_cert_pem, certs_.server_key_pem);
  ASSERT_NE(f, nullptr);
  for (const char* host : {"localhost", "127.0.0.1"}) {
    auto client = MakeClient(TlsOptions(*f, host));
    Result<Response> r = Post(*client, Body("openai/gpt-4o-mini"));
    ASSERT_OK(r) << host;
    EXPECT_EQ(r->status, 200);
  }
}

TEST_F(TlsClientTest, WrongHostNameIsRefusedWithoutRetry) {
  auto f = StartTls(certs_.wrong_host_cert_pem, certs_.wrong_host_key_pem);
  ASSERT_NE(f, nullptr);
  auto client = MakeClient(TlsOptions(*f, "localhost"));
  Result<Response> r = Post(*client, Body("openai/gpt-4o-mini"));
  EXPECT_THAT(r, StatusIs(StatusCode::kUnauthenticated, "TLS"));
  EXPECT_EQ(f->completions(), 0u);
  EXPECT_EQ(client->connections_opened(), 1u);  // no retry
}

TEST_F(TlsClientTest, UntrustedCertificateIsRefused) {
  auto f = StartTls(certs_.untrusted_cert_pem, certs_.untrusted_key_pem);
  ASSERT_NE(f, nullptr);
  auto client = MakeClient(TlsOptions(*f, "localhost"));
  Result<Response> r = Post(*client, Body("openai/gpt-4o-mini"));
  EXPECT_THAT(r, StatusIs(StatusCode::kUnauthenticated, "TLS"));
  EXPECT_EQ(client->connections_opened(), 1u);
}

TEST_F(TlsClientTest, WithoutTheTestCaTheServerIsNotTrusted) {
  auto f = StartTls(certs_.server_cert_pem, certs_.server_key_pem);
  ASSERT_NE(f, nullptr);
  ClientOptions o = TlsOptions(*f, "localhost");
  o.extra_ca_file.clear();
  auto client = MakeClient(o);
  EXPECT_THAT(Post(*client, Body("openai/gpt-4o-mini")),
              StatusIs(StatusCode::kUnauthenticated));
}

}  // namespace
}  // namespace llmcache::net
