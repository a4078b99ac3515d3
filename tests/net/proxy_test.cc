// ProxyServer over real loopback sockets, in front of the fake OpenRouter:
// hits and misses, streams, per-request cache headers, scopes, errors and
// their shapes, limits, admin endpoints, metrics, stats, the store's health
// and /models. (Access control: proxy_security_test.cc.)

#include "llmcache/net/proxy.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fake_openrouter.h"
#include "llmcache/clock.h"
#include "llmcache/net/sse.h"
#include "testing/fault_fs.h"
#include "testing/http_client.h"
#include "testing/proxy_fixture.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

namespace llmcache::net {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using ::llmcache::fake::FakeOpenRouter;
using ::llmcache::fake::FakeOptions;
using ::llmcache::testing::HttpConnection;
using ::llmcache::testing::HttpGet;
using ::llmcache::testing::WaitFor;
using Reply = ::llmcache::testing::HttpReply;
using Headers = ::llmcache::testing::HttpHeaders;
using namespace std::chrono_literals;

std::string Body(const std::string& model, bool stream = false,
                 const std::string& text = "What is 2+2?",
                 const std::string& extra = R"("temperature":0)") {
  return R"({"model":")" + model + R"(",)" + extra + "," +
         (stream ? R"("stream":true,)" : "") +
         R"("messages":[{"role":"user","content":")" + text + R"("}]})";
}

// POST `body` (to the chat completions path unless `target` says otherwise)
// on a fresh connection.
Reply Post(uint16_t port, const std::string& body, const Headers& headers = {},
           const std::string& target = "/v1/chat/completions") {
  return ::llmcache::testing::HttpPost(port, target, body, headers);
}

// The assembled content of an SSE body; *done says whether [DONE] came.
std::string SseContent(const std::string& body, bool* done = nullptr) {
  SseParser parser;
  StreamAccumulator acc;
  parser.Feed(body, [&](SseEvent&& e) { EXPECT_OK(acc.Add(e.data)); });
  if (done != nullptr) *done = acc.done();
  return acc.Result().content;
}

std::string ContentOf(const std::string& completion_json) {
  auto p = ParseCompletion(completion_json);
  EXPECT_OK(p);
  return p.ok() ? p->content : "";
}

void ExpectErrorShape(const Reply& r, int status, const std::string& type) {
  EXPECT_EQ(r.status, status) << r.body << r.error;
  EXPECT_EQ(r.header("content-type"), "application/json");
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  ASSERT_FALSE(ec) << r.body;
  const json::object& e = v.at("error").as_object();
  EXPECT_EQ(e.at("type").as_string(), type) << r.body;
  EXPECT_EQ(e.at("code").to_number<int>(), status);
  EXPECT_FALSE(e.at("message").as_string().empty());
}

class ProxyTest : public ::llmcache::testing::ProxyFixture {
 protected:
  void SetUp() override {
    StartFake();
    if (!HasFatalFailure()) Restart();
  }

  ProxyOptions DefaultOptions() {
    ProxyOptions o = BaseProxyOptions(2, "");
    o.clock = &clock_;
    o.log = [this](LogLevel, std::string_view line) {
      std::lock_guard<std::mutex> lock(log_mu_);
      log_.emplace_back(line);
    };
    return o;
  }

  void StopProxy() { Stop(); }

  // Restarts the proxy with `o` on a memory cache (on clock_) wrapped in a
  // `Wrapper` (a Cache decorator the test drives), which it returns.
  template <typename Wrapper>
  std::shared_ptr<Wrapper> RestartOnWrapped(ProxyOptions o) {
    Stop();
    CacheOptions co;  // memory mode
    co.clock = &clock_;
    auto inner = Cache::Open(co);
    EXPECT_OK(inner);
    if (!inner.ok()) return nullptr;
    auto wrapped = std::make_shared<Wrapper>(std::move(inner).value());
    cache_ = wrapped;
    auto p = ProxyServer::Start(std::move(o), cache_);
    EXPECT_OK(p);
    if (!p.ok()) return nullptr;
    proxy_ = std::move(p).value();
    port_ = proxy_->port();
    return wrapped;
  }

  void Restart(const std::function<void(ProxyOptions&)>& tweak = nullptr) {
    CacheOptions co;
    co.path = dir_.path() + "/db";
    co.clock = &clock_;
    if (cache_tweak_) cache_tweak_(co);
    ProxyOptions o = DefaultOptions();
    if (tweak) tweak(o);
    StartProxy(std::move(co), std::move(o));
  }

  // Restarts the proxy on a fake of its own whose /models answers take
  // `delay_ms` (`tweak` applied after). The fake lives until the test ends;
  // null if it did not start.
  fake::FakeOpenRouter* RestartOnSlowModels(
      int delay_ms, const std::function<void(ProxyOptions&)>& tweak = nullptr) {
    fake::FakeOptions fo;
    fo.models_delay_ms = delay_ms;
    auto slow = fake::FakeOpenRouter::Start(fo);
    EXPECT_OK(slow);
    if (!slow.ok()) return nullptr;
    slow_models_ = std::move(slow).value();
    Restart([&](ProxyOptions& o) {
      o.upstream.base_url = slow_models_->base_url();
      if (tweak) tweak(o);
    });
    return slow_models_.get();
  }

  Reply Chat(const std::string& body, Headers headers = {}) {
    if (std::none_of(headers.begin(), headers.end(), [](const auto& h) {
          return h.first == "Authorization";
        })) {
      headers.emplace_back("Authorization", "Bearer key-A");
    }
    return Post(port_, body, headers);
  }

  std::vector<std::string> Logs() {
    std::lock_guard<std::mutex> lock(log_mu_);
    return log_;
  }

  // Whether a log line contains `text`.
  bool Logged(std::string_view text) {
    for (const std::string& line : Logs()) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }

  // Under a cap of two connections: runs `lead` on a thread until
  // `started`, then sends `method target body` (as key-A) on a second
  // connection and closes it while it waits. Its place must be freed at
  // once (a new client gets in) while the lead still waits. The lead's
  // answer.
  Reply LeaveBesideALeader(const std::function<Reply()>& lead,
                           const std::function<bool()>& started,
                           const std::string& method, const std::string& target,
                           const std::string& body) {
    Reply out;
    std::atomic<bool> done{false};
    std::thread leader([&] {
      out = lead();
      done = true;
    });
    EXPECT_TRUE(WaitFor(started));
    {
      HttpConnection waiter(port_);
      EXPECT_TRUE(waiter.Write(method, target, body,
                               {{"Authorization", "Bearer key-A"}}));
      EXPECT_TRUE(WaitFor([&] { return proxy_->counters().in_flight == 2; }));
    }  // closed while it waits
    EXPECT_TRUE(
        WaitFor([&] { return proxy_->counters().open_connections == 1; }, 2s));
    EXPECT_EQ(HttpGet(port_, "/healthz").status, 200);  // not 503
    EXPECT_FALSE(done) << "the lead ended before the checks";
    leader.join();
    return out;
  }

  // Connects `sock` with a 4 KiB receive buffer and sends a completion
  // request of `body` (as key-A); the caller then reads nothing.
  void SendFromASmallWindow(tcp::socket& sock, const std::string& body) {
    sock.open(tcp::v4());
    sock.set_option(asio::socket_base::receive_buffer_size(4096));
    sock.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    const std::string request =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Authorization: Bearer key-A\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    asio::write(sock, asio::buffer(request));
  }

  // Sends `body` (as key-A), waits for its upstream call (the first), then
  // shuts down the sending side: the proxy closes the connection without an
  // answer within 1.5 s, keeps its place while the call goes on, and frees
  // it when the call ends.
  void LeaveWhileItsCallRuns(const std::string& body) {
    asio::io_context ioc;
    tcp::socket sock(ioc);
    SendFromASmallWindow(sock, body);
    ASSERT_TRUE(WaitFor([&] { return fake_->completions() == 1; }));
    sock.shutdown(tcp::socket::shutdown_send);
    const auto left = std::chrono::steady_clock::now();
    EXPECT_EQ(DrainToTheEnd(sock), 0u);
    EXPECT_LT(std::chrono::steady_clock::now() - left, 1500ms);
    EXPECT_EQ(proxy_->counters().open_connections, 1u);
    EXPECT_EQ(proxy_->counters().in_flight, 1u);
    ASSERT_TRUE(WaitFor([&] { return proxy_->counters().in_flight == 0; }));
    EXPECT_TRUE(
        WaitFor([&] { return proxy_->counters().open_connections == 0; }));
  }

  // Reads what the kernel holds for `sock` up to its end, which must be a
  // close or a reset within 5 s of each read: the bytes read.
  // (::recv, not asio's read_some: asio waits again after a timeout.)
  static size_t DrainToTheEnd(tcp::socket& sock) {
    const timeval tv{.tv_sec = 5, .tv_usec = 0};
    EXPECT_EQ(setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv,
                         sizeof tv),
              0);
    size_t received = 0;
    std::array<char, 65536> buf;
    ssize_t n = 0;
    while ((n = ::recv(sock.native_handle(), buf.data(), buf.size(), 0)) > 0) {
      received += static_cast<size_t>(n);
    }
    const int err = n < 0 ? errno : 0;
    EXPECT_TRUE(n == 0 || err == ECONNRESET) << std::strerror(err);
    return received;
  }

  std::function<void(CacheOptions&)> cache_tweak_;
  llmcache::testing::TempDir dir_;
  FakeClock clock_;
  std::mutex log_mu_;
  std::vector<std::string> log_;
  std::unique_ptr<fake::FakeOpenRouter> slow_models_;  // RestartOnSlowModels
};

TEST_F(ProxyTest, MissThenHit) {
  const Reply first = Chat(Body("openai/gpt-4o-mini"));
  ASSERT_EQ(first.status, 200) << first.body << first.error;
  EXPECT_EQ(first.header("x-cache"), "MISS");
  EXPECT_EQ(first.header("content-type"), "application/json");
  EXPECT_EQ(first.header("x-cache-key").size(), 64u);
  const Reply second = Chat(Body("openai/gpt-4o-mini"));
  ASSERT_EQ(second.status, 200);
  EXPECT_EQ(second.header("x-cache"), "HIT");
  EXPECT_EQ(second.header("x-cache-key"), first.header("x-cache-key"));
  EXPECT_EQ(second.header("age"), "0");
  EXPECT_EQ(second.header("content-type"), "application/json");
  EXPECT_EQ(ContentOf(second.body), ContentOf(first.body));
  EXPECT_EQ(fake_->completions(), 1u);
  const ProxyCounters c = proxy_->counters();
  EXPECT_EQ(c.hits, 1u);
  EXPECT_EQ(c.misses, 1u);
}

// One request, one key, one count: the proxy hands each request to the
// cached client's pipeline, which keys it once (no second key in Complete)
// and counts it once, for hits, misses, streams and bypasses alike.
TEST_F(ProxyTest, EachRequestIsKeyedOnceAndCountedOnce) {
  const std::vector<std::pair<std::string, std::string>> requests = {
      {Body("openai/gpt-4o-mini"), "MISS"},
      {Body("openai/gpt-4o-mini"), "HIT"},
      {Body("openai/gpt-4o-mini", true), "HIT"},
      {Body("openai/gpt-4o", true), "MISS"},
      {Body("openai/gpt-4o", true), "HIT"},
      {Body("openai/gpt-4o", false, "What is 2+2?", R"("temperature":0.5)"),
       "BYPASS"},
  };
  auto client_stats = [this] {
    const Reply r = HttpGet(port_, "/stats");
    EXPECT_EQ(r.status, 200);
    boost::system::error_code ec;
    json::value v = json::parse(r.body, ec);
    EXPECT_FALSE(ec) << r.body;
    return v;
  };
  int keys = 0;
  for (const auto& [body, label] : requests) {
    const Reply r = Chat(body);
    ASSERT_EQ(r.status, 200) << r.body << r.error;
    EXPECT_EQ(r.header("x-cache"), label);
    ++keys;
    const json::value v = client_stats();
    const json::value& c = v.at("client");
    EXPECT_EQ(c.at("keys_computed").to_number<int>(), keys) << body;
    EXPECT_EQ(c.at("hits").to_number<int>() + c.at("misses").to_number<int>() +
                  c.at("bypasses").to_number<int>(),
              keys)
        << body;
  }
  const json::value v = client_stats();
  EXPECT_EQ(v.at("client").at("hits").to_number<int>(), 3);
  EXPECT_EQ(v.at("client").at("misses").to_number<int>(), 2);
  EXPECT_EQ(v.at("client").at("bypasses").to_number<int>(), 1);
  // The engine saw one counted lookup per cacheable request.
  EXPECT_EQ(v.at("cache").at("hits").to_number<int>() +
                v.at("cache").at("misses").to_number<int>(),
            5);
  const ProxyCounters c = proxy_->counters();
  EXPECT_EQ(c.hits, 3u);
  EXPECT_EQ(c.misses, 2u);
  EXPECT_EQ(c.bypasses, 1u);
  EXPECT_EQ(fake_->completions(), 3u);
}

TEST_F(ProxyTest, OpenRouterPathAndKeepAlive) {
  HttpConnection conn(port_);
  const Headers auth = {{"Authorization", "Bearer key-A"}};
  for (int i = 0; i < 3; ++i) {
    const Reply r = conn.Send("POST", "/api/v1/chat/completions",
                              Body("openai/gpt-4o-mini"), auth);
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.header("x-cache"), i == 0 ? "MISS" : "HIT");
  }
  EXPECT_EQ(fake_->completions(), 1u);
}

TEST_F(ProxyTest, AgeCountsSecondsSinceStored) {
  ASSERT_EQ(Chat(Body("openai/gpt-4o-mini")).status, 200);
  clock_.Advance(42'000);
  const Reply r = Chat(Body("openai/gpt-4o-mini"));
  EXPECT_EQ(r.header("x-cache"), "HIT");
  EXPECT_EQ(r.header("age"), "42");
}

TEST_F(ProxyTest, StreamMissThenStreamHit) {
  const Reply first = Chat(Body("openai/gpt-4o-mini", true));
  ASSERT_EQ(first.status, 200) << first.body << first.error;
  EXPECT_EQ(first.header("content-type"), "text/event-stream");
  EXPECT_EQ(first.header("x-cache"), "MISS");
  EXPECT_EQ(first.header("transfer-encoding"), "chunked");
  bool done = false;
  const std::string content = SseContent(first.body, &done);
  EXPECT_TRUE(done);
  EXPECT_FALSE(content.empty());
  EXPECT_NE(first.body.find("data: [DONE]\n\n"), std::string::npos);

  const Reply second = Chat(Body("openai/gpt-4o-mini", true));
  ASSERT_EQ(second.status, 200);
  EXPECT_EQ(second.header("content-type"), "text/event-stream");
  EXPECT_EQ(second.header("x-cache"), "HIT");
  EXPECT_EQ(second.header("cache-control"), "no-cache");
  EXPECT_EQ(SseContent(second.body, &done), content);
  EXPECT_TRUE(done);
  EXPECT_EQ(second.body.substr(second.body.size() - 14), "data: [DONE]\n\n");
  EXPECT_EQ(fake_->completions(), 1u);
}

TEST_F(ProxyTest, StreamsToHttp10ClientsAreNotChunked) {
  // HTTP/1.0 has no chunked coding: a live stream goes as it is and ends
  // when the proxy closes the connection (even one the client asked to keep
  // alive); a stored one goes with its length.
  std::string content;
  for (const std::string expect : {"MISS", "HIT"}) {
    HttpConnection conn(port_);
    ASSERT_TRUE(conn.connected()) << conn.error();
    const std::string body = Body("openai/gpt-4o-mini", true);
    ASSERT_TRUE(conn.WriteRaw(
        "POST /v1/chat/completions HTTP/1.0\r\nHost: 127.0.0.1\r\n"
        "Authorization: Bearer k\r\nConnection: keep-alive\r\n"
        "Content-Type: application/json\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body));
    const Reply r = conn.Read();
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.header("x-cache"), expect);
    EXPECT_EQ(r.header("transfer-encoding"), "");
    EXPECT_EQ(r.body.substr(0, 6), "data: ") << r.body;  // no chunk sizes
    ASSERT_GE(r.body.size(), 14u);
    EXPECT_EQ(r.body.substr(r.body.size() - 14), "data: [DONE]\n\n");
    bool done = false;
    const std::string got = SseContent(r.body, &done);
    EXPECT_TRUE(done);
    EXPECT_FALSE(got.empty());
    if (expect == "MISS") {
      content = got;
      EXPECT_EQ(r.header("connection"), "close");
      EXPECT_EQ(r.header("content-length"), "");
    } else {
      EXPECT_EQ(got, content);
      EXPECT_EQ(r.header("content-length"), std::to_string(r.body.size()));
    }
  }
  EXPECT_EQ(fake_->completions(), 1u);
}

TEST_F(ProxyTest, StreamedMissIsPassedThroughLive) {
  // fake/slow-250: 250 ms between upstream events. The first event must reach
  // the client long before the last one does, not all of them at the end.
  HttpConnection conn(port_);
  ASSERT_TRUE(conn.connected()) << conn.error();
  ASSERT_TRUE(conn.Write(
      "POST", "/v1/chat/completions", Body("fake/slow-250", /*stream=*/true),
      {{"Authorization", "Bearer key-A"}, {"Connection", "close"}}))
      << conn.error();
  const auto start = std::chrono::steady_clock::now();
  const Reply head = conn.ReadHead();
  ASSERT_EQ(head.status, 200) << head.error;
  std::optional<std::chrono::steady_clock::duration> first_data, done;
  std::string pending, piece;
  while (!done && conn.ReadBodyPiece(&piece)) {
    const auto now = std::chrono::steady_clock::now() - start;
    pending += piece;
    for (size_t eol; !done && (eol = pending.find('\n')) != std::string::npos;
         pending.erase(0, eol + 1)) {
      const std::string line = pending.substr(0, eol);
      if (!first_data && line.rfind("data: {", 0) == 0) first_data = now;
      if (line.rfind("data: [DONE]", 0) == 0) done = now;
    }
  }
  ASSERT_TRUE(first_data.has_value());
  ASSERT_TRUE(done.has_value());
  EXPECT_GE(*done - *first_data, std::chrono::milliseconds(600))
      << "events arrived in one burst after "
      << std::chrono::duration_cast<std::chrono::milliseconds>(*done).count()
      << " ms";
}

TEST_F(ProxyTest, PlainRequestJoiningAStreamGetsJson) {
  // A stream is in flight (250 ms between its events) when the same request
  // without "stream" arrives: it joins the flight and must get a JSON
  // completion, not the stream's events.
  HttpConnection conn(port_);
  ASSERT_TRUE(conn.connected()) << conn.error();
  ASSERT_TRUE(conn.Write(
      "POST", "/v1/chat/completions", Body("fake/slow-250", /*stream=*/true),
      {{"Authorization", "Bearer key-A"}, {"Connection", "close"}}))
      << conn.error();
  const Reply head = conn.ReadHead();
  ASSERT_EQ(head.status, 200) << head.error;
  ASSERT_EQ(head.header("content-type"), "text/event-stream");
  const Reply plain = Chat(Body("fake/slow-250", /*stream=*/false));
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_EQ(plain.header("content-type"), "application/json");
  EXPECT_EQ(plain.header("x-cache"), "MISS");
  EXPECT_EQ(plain.body.find("data:"), std::string::npos) << plain.body;
  EXPECT_FALSE(ContentOf(plain.body).empty()) << plain.body;
  EXPECT_EQ(fake_->completions(), 1u);  // it joined the stream's flight
  std::string rest, piece;
  while (conn.ReadBodyPiece(&piece)) rest += piece;
  EXPECT_EQ(SseContent(rest), ContentOf(plain.body));
}

TEST_F(ProxyTest, EntryThatCannotBeReplayedAsAStreamGoesUpstream) {
  // An imported entry whose body is not a completion: a streamed request
  // for it is answered from upstream, not with an error.
  KeyBuilder keys;
  auto key =
      keys.Compute(Body("m/odd", true), KeyScope{"", ApiKeyScope("key-A")});
  ASSERT_OK(key);
  ASSERT_OK(cache_->Insert(*key, "not a completion", InsertOptions{}));
  const Reply r = Chat(Body("m/odd", true));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-cache"), "MISS");
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  EXPECT_EQ(fake_->completions(), 1u);
}

TEST_F(ProxyTest, StreamAndNonStreamShareAnEntry) {
  const Reply plain = Chat(Body("openai/gpt-4o-mini", false, "one"));
  ASSERT_EQ(plain.header("x-cache"), "MISS");
  const Reply streamed = Chat(Body("openai/gpt-4o-mini", true, "one"));
  EXPECT_EQ(streamed.header("x-cache"), "HIT");
  EXPECT_EQ(SseContent(streamed.body), ContentOf(plain.body));

  const Reply s2 = Chat(Body("openai/gpt-4o-mini", true, "two"));
  ASSERT_EQ(s2.header("x-cache"), "MISS");
  const Reply p2 = Chat(Body("openai/gpt-4o-mini", false, "two"));
  EXPECT_EQ(p2.header("x-cache"), "HIT");
  EXPECT_EQ(ContentOf(p2.body), SseContent(s2.body));
  EXPECT_EQ(fake_->completions(), 2u);
}

TEST_F(ProxyTest, NoCacheSkipsTheLookupButStores) {
  ASSERT_EQ(Chat(Body("m/a")).header("x-cache"), "MISS");
  const Reply r = Chat(Body("m/a"), {{"Cache-Control", "no-cache"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-cache"), "MISS");
  EXPECT_EQ(fake_->completions(), 2u);
  EXPECT_EQ(Chat(Body("m/a")).header("x-cache"), "HIT");
  EXPECT_EQ(fake_->completions(), 2u);
}

TEST_F(ProxyTest, NoStoreDoesNotStore) {
  const Reply r = Chat(Body("m/a"), {{"Cache-Control", "no-store"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-cache"), "MISS");
  EXPECT_EQ(Chat(Body("m/a")).header("x-cache"), "MISS");
  EXPECT_EQ(fake_->completions(), 2u);
}

// Repeated lines of a header are one comma-joined value (RFC 9110 5.3): a
// no-store on the second Cache-Control line counts; a header that takes one
// value, given twice, is a 400.
TEST_F(ProxyTest, RepeatedHeaderLinesAreOneValue) {
  const Reply r = Chat(Body("m/a"), {{"Cache-Control", "no-cache"},
                                     {"Cache-Control", "no-store"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-cache"), "MISS");
  EXPECT_EQ(r.header("x-cache-stored"), "0");
  EXPECT_EQ(Chat(Body("m/a")).header("x-cache"), "MISS");
  EXPECT_EQ(fake_->completions(), 2u);
  for (const char* name : {"X-Cache-TTL", "X-Cache-Namespace"}) {
    const Reply twice =
        Chat(Body("m/a", false, "twice"), {{name, "60"}, {name, "60"}});
    EXPECT_EQ(twice.status, 400) << name;
    EXPECT_THAT(twice.body, ::testing::HasSubstr(name)) << twice.body;
  }
  EXPECT_EQ(fake_->completions(), 2u);
}

TEST_F(ProxyTest, MaxAgeRejectsOlderEntries) {
  ASSERT_EQ(Chat(Body("m/a")).header("x-cache"), "MISS");
  clock_.Advance(10'000);
  EXPECT_EQ(
      Chat(Body("m/a"), {{"Cache-Control", "max-age=60"}}).header("x-cache"),
      "HIT");
  EXPECT_EQ(
      Chat(Body("m/a"), {{"Cache-Control", "max-age=5"}}).header("x-cache"),
      "MISS");
  EXPECT_EQ(fake_->completions(), 2u);
}

TEST_F(ProxyTest, XCacheTtlSetsTheEntryLifetime) {
  ASSERT_EQ(Chat(Body("m/a", false, "short"), {{"X-Cache-TTL", "5"}})
                .header("x-cache"),
            "MISS");
  ASSERT_EQ(Chat(Body("m/a", false, "long")).header("x-cache"), "MISS");
  clock_.Advance(6'000);
  EXPECT_EQ(Chat(Body("m/a", false, "short")).header("x-cache"), "MISS");
  EXPECT_EQ(Chat(Body("m/a", false, "long")).header("x-cache"), "HIT");
}

// A request that joins an identical one in flight is told the lifetime the
// entry got: the leader's (X-Cache-TTL), not the one it asked for.
TEST_F(ProxyTest, AJoinerIsToldTheLifetimeTheEntryGot) {
  Reply lead;
  std::thread leader([&] {
    lead = Chat(Body("fake/delay-400", false, "ttl"), {{"X-Cache-TTL", "100"}});
  });
  ASSERT_TRUE(
      llmcache::testing::WaitFor([&] { return fake_->completions() == 1; }));
  const Reply joiner =
      Chat(Body("fake/delay-400", false, "ttl"), {{"X-Cache-TTL", "5"}});
  leader.join();
  EXPECT_EQ(lead.header("x-cache-ttl"), "100");
  EXPECT_EQ(joiner.header("x-cache"), "MISS");
  EXPECT_EQ(joiner.header("x-cache-stored"), "1");
  EXPECT_EQ(joiner.header("x-cache-ttl"), "100");
  EXPECT_EQ(fake_->completions(), 1u);
  clock_.Advance(6'000);  // past what the joiner asked for: still there
  EXPECT_EQ(Chat(Body("fake/delay-400", false, "ttl")).header("x-cache"),
            "HIT");
}

TEST_F(ProxyTest, NamespacesSeparateEntries) {
  EXPECT_EQ(Chat(Body("m/a"), {{"X-Cache-Namespace", "v1"}}).header("x-cache"),
            "MISS");
  EXPECT_EQ(Chat(Body("m/a"), {{"X-Cache-Namespace", "v2"}}).header("x-cache"),
            "MISS");
  EXPECT_EQ(Chat(Body("m/a")).header("x-cache"), "MISS");
  EXPECT_EQ(Chat(Body("m/a"), {{"X-Cache-Namespace", "v1"}}).header("x-cache"),
            "HIT");
  EXPECT_EQ(fake_->completions(), 3u);
}

TEST_F(ProxyTest, InvalidCacheHeadersAre400) {
  ExpectErrorShape(Chat(Body("m/a"), {{"Cache-Control", "max-age=soon"}}), 400,
                   "invalid_request_error");
  ExpectErrorShape(Chat(Body("m/a"), {{"X-Cache-TTL", "-1"}}), 400,
                   "invalid_request_error");
  ExpectErrorShape(Chat(Body("m/a"), {{"X-Cache-TTL", "ten"}}), 400,
                   "invalid_request_error");
  ExpectErrorShape(Chat(Body("m/a"), {{"X-Cache-Namespace", "bad ns!"}}), 400,
                   "invalid_request_error");
  EXPECT_EQ(fake_->completions(), 0u);
}

TEST_F(ProxyTest, BypassSaysWhy) {
  const Reply r = Chat(Body("m/a", false, "hi", R"("temperature":0.7)"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-cache"), "BYPASS");
  EXPECT_EQ(r.header("x-cache-bypass-reason"), "non_zero_temperature");
  EXPECT_EQ(
      Chat(Body("m/a", false, "hi", R"("temperature":0.7)")).header("x-cache"),
      "BYPASS");
  EXPECT_EQ(fake_->completions(), 2u);
  EXPECT_EQ(proxy_->counters().bypasses, 2u);
}

TEST_F(ProxyTest, EachApiKeyHasItsOwnScope) {
  EXPECT_EQ(
      Chat(Body("m/a"), {{"Authorization", "Bearer key-A"}}).header("x-cache"),
      "MISS");
  EXPECT_EQ(
      Chat(Body("m/a"), {{"Authorization", "Bearer key-B"}}).header("x-cache"),
      "MISS");
  EXPECT_EQ(
      Chat(Body("m/a"), {{"Authorization", "Bearer key-A"}}).header("x-cache"),
      "HIT");
  EXPECT_EQ(fake_->completions(), 2u);
}

TEST_F(ProxyTest, ScopeIsTheOneTheCliUses) {
  // An entry stored under ApiKeyScope(key) (as `llmcache warm` stores it) is
  // a hit for a client with that key.
  KeyBuilder keys;
  const std::string scope = ApiKeyScope("key-A");
  auto key = keys.Compute(Body("m/warmed"), KeyScope{"", scope});
  ASSERT_OK(key);
  ASSERT_OK(cache_->Insert(
      *key,
      R"({"id":"gen-w","object":"chat.completion","model":"m/warmed","choices":[{"index":0,"message":{"role":"assistant","content":"warmed"},"finish_reason":"stop"}]})",
      InsertOptions{}));
  const Reply r = Chat(Body("m/warmed"), {{"Authorization", "Bearer key-A"}});
  EXPECT_EQ(r.header("x-cache"), "HIT");
  EXPECT_EQ(r.header("x-cache-key"), key->Hex());
  EXPECT_EQ(ContentOf(r.body), "warmed");
  EXPECT_EQ(fake_->completions(), 0u);
}

TEST_F(ProxyTest, SharedCacheSharesAcrossKeys) {
  Restart([](ProxyOptions& o) { o.shared_cache = true; });
  EXPECT_EQ(Chat(Body("m/shared"), {{"Authorization", "Bearer key-A"}})
                .header("x-cache"),
            "MISS");
  EXPECT_EQ(Chat(Body("m/shared"), {{"Authorization", "Bearer key-B"}})
                .header("x-cache"),
            "HIT");
  EXPECT_EQ(fake_->completions(), 1u);
}

TEST_F(ProxyTest, ClientKeyIsForwardedAndServerKeyIsTheFallback) {
  Restart([](ProxyOptions& o) { o.upstream.api_key = "server-key"; });
  ASSERT_EQ(Chat(Body("m/a"), {{"Authorization", "Bearer client-key"}}).status,
            200);
  EXPECT_EQ(fake_->last_authorization(), "Bearer client-key");
  const Reply r = Post(port_, Body("m/b"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(fake_->last_authorization(), "Bearer server-key");
  // The server key's scope is its own: a client sending it explicitly
  // shares the entry, another key does not.
  EXPECT_EQ(Chat(Body("m/b"), {{"Authorization", "Bearer server-key"}})
                .header("x-cache"),
            "HIT");
  EXPECT_EQ(Chat(Body("m/b"), {{"Authorization", "Bearer client-key"}})
                .header("x-cache"),
            "MISS");
}

TEST_F(ProxyTest, AttributionHeadersArePassedUpstream) {
  ASSERT_EQ(Chat(Body("m/a"), {{"HTTP-Referer", "https://app.example"},
                               {"X-Title", "My App"}})
                .status,
            200);
  EXPECT_EQ(fake_->last_header("http-referer"), "https://app.example");
  EXPECT_EQ(fake_->last_header("x-title"), "My App");
}

TEST_F(ProxyTest, ApiKeyNeverReachesLogsOrDisk) {
  const std::string secret = "sk-or-v1-TOPSECRET0123456789abcdef";
  const Headers auth = {{"Authorization", "Bearer " + secret}};
  ASSERT_EQ(Chat(Body("m/a"), auth).status, 200);
  ASSERT_EQ(Chat(Body("m/a"), auth).header("x-cache"), "HIT");
  ASSERT_EQ(Chat(Body("m/a", true, "s"), auth).status, 200);
  ASSERT_EQ(Chat(Body("fake/fault-500"), auth).status, 500);
  ASSERT_EQ(HttpGet(port_, "/v1/models", auth).status, 200);
  StopProxy();  // closes the store: everything is on disk now
  const std::vector<std::string> lines = Logs();
  ASSERT_FALSE(lines.empty());
  for (const std::string& l : lines) {
    EXPECT_EQ(l.find(secret), std::string::npos) << l;
    EXPECT_EQ(l.find("TOPSECRET"), std::string::npos) << l;
  }
  size_t files = 0;
  for (const auto& e :
       std::filesystem::recursive_directory_iterator(dir_.path())) {
    if (!e.is_regular_file()) continue;
    ++files;
    std::ifstream in(e.path(), std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)),
                           std::istreambuf_iterator<char>());
    EXPECT_EQ(data.find("TOPSECRET"), std::string::npos) << e.path();
  }
  EXPECT_GT(files, 0u);
}

TEST_F(ProxyTest, OneLogLinePerRequestWithoutThePrompt) {
  ASSERT_EQ(Chat(Body("m/a", false, "PROMPT-TEXT-XYZ")).status, 200);
  ASSERT_EQ(Chat(Body("m/a", false, "PROMPT-TEXT-XYZ")).status, 200);
  // A request is logged once its response is written, which can be just
  // after the client has read it: wait for both lines.
  std::vector<std::string> lines;
  WaitFor([&] {
    lines = Logs();
    return std::count_if(lines.begin(), lines.end(),
                         [](const std::string& l) {
                           return l.find("POST /v1/chat/completions 200") !=
                                  std::string::npos;
                         }) >= 2 &&
           std::count_if(lines.begin(), lines.end(), [](const std::string& l) {
             return l.find("200 HIT") != std::string::npos;
           }) > 0;
  });
  int requests = 0;
  for (const std::string& l : lines) {
    EXPECT_EQ(l.find("PROMPT-TEXT-XYZ"), std::string::npos) << l;
    if (l.find("POST /v1/chat/completions 200") != std::string::npos) {
      ++requests;
    }
  }
  EXPECT_EQ(requests, 2);
  bool hit_logged = false;
  for (const std::string& l : lines) {
    if (l.find("200 HIT") != std::string::npos) hit_logged = true;
  }
  EXPECT_TRUE(hit_logged);
}

TEST_F(ProxyTest, UpstreamHttpErrorsPassThroughAndAreNotCached) {
  for (const char* model : {"fake/fault-429", "fake/fault-500"}) {
    const int want = std::string(model) == "fake/fault-429" ? 429 : 500;
    for (int i = 0; i < 2; ++i) {
      const Reply r = Chat(Body(model));
      EXPECT_EQ(r.status, want) << model;
      EXPECT_EQ(r.header("x-cache"), "MISS");
      auto err = ParseErrorEnvelope(r.body);
      ASSERT_TRUE(err.has_value()) << r.body;
      EXPECT_EQ(err->code, want);
      if (want == 429) {
        EXPECT_EQ(r.header("retry-after"), "1");
      }
    }
  }
  EXPECT_EQ(fake_->completions(), 4u);
}

// The SDKs retry 429 and 5xx answers unless told not to (X-Should-Retry):
// not a call the upstream may have billed (sent, then the connection reset),
// nor an error the proxy already retried (each SDK retry would be retried
// again: 12 upstream calls for one 429). A first-attempt 5xx the proxy did
// not retry stays retryable.
TEST_F(ProxyTest, ErrorsTheProxyRetriedOrThatMayBeBilledAreNotRetriedAgain) {
  Restart([](ProxyOptions& o) {
    o.upstream.max_attempts = 2;
    o.upstream.initial_backoff = std::chrono::milliseconds(1);
  });
  const Reply retried = Chat(Body("fake/fault-429"));
  EXPECT_EQ(retried.status, 429);
  EXPECT_EQ(retried.header("x-should-retry"), "false");
  EXPECT_EQ(fake_->completions(), 2u);
  const Reply reset = Chat(Body("fake/reset"));
  ExpectErrorShape(reset, 502, "upstream_error");
  EXPECT_EQ(reset.header("x-should-retry"), "false") << reset.body;
  EXPECT_NE(reset.body.find("billed"), std::string::npos) << reset.body;
  const Reply bad = Chat(Body("fake/fault-400"));
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.header("x-should-retry"), "");
  // Sent, then no headers in time (an upstream that answers when done).
  Restart([](ProxyOptions& o) {
    o.upstream.max_attempts = 1;
    o.upstream.headers_timeout = std::chrono::milliseconds(300);
  });
  const Reply late = Chat(Body("fake/hang"));
  ExpectErrorShape(late, 504, "upstream_timeout");
  EXPECT_EQ(late.header("x-should-retry"), "false") << late.body;
  const Reply once = Chat(Body("fake/fault-500"));
  EXPECT_EQ(once.status, 500);
  EXPECT_EQ(once.header("x-should-retry"), "");
}

TEST_F(ProxyTest, ErrorWith200IsPassedThroughAndNotCached) {
  for (int i = 0; i < 2; ++i) {
    const Reply r = Chat(Body("fake/error-200"));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("x-cache"), "MISS");
    EXPECT_TRUE(ParseErrorEnvelope(r.body).has_value()) << r.body;
  }
  EXPECT_EQ(fake_->completions(), 2u);
}

// A 200 whose body is not JSON (a broken upstream, a body cut short): a 502
// that says so, never passed on as an answer, never stored; to a stream
// request as well.
TEST_F(ProxyTest, A200ThatIsNotJsonIsA502) {
  for (bool stream : {false, true}) {
    for (int i = 0; i < 2; ++i) {
      const Reply r = Chat(Body("fake/not-json", stream));
      ExpectErrorShape(r, 502, "upstream_error");
      EXPECT_NE(r.body.find("not a JSON object"), std::string::npos) << r.body;
    }
  }
  EXPECT_EQ(fake_->completions(), 4u);
  // Leading whitespace (OpenRouter's keep-alive bytes) is still JSON.
  EXPECT_EQ(Chat(Body("fake/newlines")).status, 200);
}

TEST_F(ProxyTest, StreamedUpstreamErrorIsJson) {
  const Reply r = Chat(Body("fake/fault-503", true));
  EXPECT_EQ(r.status, 503);
  EXPECT_TRUE(ParseErrorEnvelope(r.body).has_value()) << r.body;
}

TEST_F(ProxyTest, CutStreamIsNotCleanlyEndedNorCached) {
  const Reply r = Chat(Body("fake/cut", true));
  // The proxy closes without the last chunk: the client sees an error or a
  // body without [DONE].
  ASSERT_TRUE(r.status == 0 || r.status == 200) << r.status;
  if (r.status == 0) {
    EXPECT_FALSE(r.error.empty());
  } else {
    bool done = true;
    SseContent(r.body, &done);
    EXPECT_FALSE(done);
  }
  // The access log says why the stream ended so (its status was 200).
  auto cut_logged = [&] {
    for (const std::string& line : Logs()) {
      if (line.find(" 200 MISS ") != std::string::npos &&
          (line.find("(stream cut upstream before its end)") !=
               std::string::npos ||
           line.find("(stream broken: ") != std::string::npos)) {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(llmcache::testing::WaitFor(cut_logged))
      << ::testing::PrintToString(Logs());
  const Reply again = Chat(Body("fake/cut", true));
  EXPECT_NE(again.header("x-cache"), "HIT");
  EXPECT_EQ(fake_->completions(), 2u);
}

// An upstream that ends its stream after an error event of its own: the
// client gets the event and a clean end of the body, so that its SDK raises
// that error, not a broken transfer. Nothing is stored.
TEST_F(ProxyTest, AStreamTheUpstreamEndsWithAnErrorEndsCleanly) {
  const Reply r = Chat(Body("fake/midstream-error", true));
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_NE(r.body.find("\"error\""), std::string::npos) << r.body;
  EXPECT_NE(Chat(Body("fake/midstream-error", true)).header("x-cache"), "HIT");
  EXPECT_EQ(fake_->completions(), 2u);
}

// `/stats` of the proxy as JSON (null if it cannot be read).
json::value ProxyStats(uint16_t port) {
  const Reply r = HttpGet(port, "/stats");
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  return ec ? json::value() : v;
}

// only-if-cached (RFC 9111 5.2.1.7): a hit as usual; anything else a 504
// that asks upstream for nothing and tells the SDKs not to retry.
TEST_F(ProxyTest, OnlyIfCachedNeverAsksUpstream) {
  const Headers only = {{"Cache-Control", "only-if-cached"}};
  const Reply cold = Chat(Body("m/a"), only);
  ExpectErrorShape(cold, 504, "not_cached");
  EXPECT_THAT(cold.body, ::testing::HasSubstr("only-if-cached")) << cold.body;
  EXPECT_EQ(cold.header("x-should-retry"), "false");
  EXPECT_EQ(cold.header("x-cache"), "MISS");
  EXPECT_EQ(cold.header("x-cache-stored"), "0");
  EXPECT_EQ(fake_->completions(), 0u);
  ExpectErrorShape(Chat(Body("m/a", true), only), 504, "not_cached");
  EXPECT_EQ(fake_->completions(), 0u);

  ASSERT_EQ(Chat(Body("m/a")).header("x-cache"), "MISS");
  const Reply warm = Chat(Body("m/a"), {{"Cache-Control", "Only-If-Cached"}});
  EXPECT_EQ(warm.status, 200) << warm.body;
  EXPECT_EQ(warm.header("x-cache"), "HIT");
  const Reply streamed = Chat(Body("m/a", true), only);
  EXPECT_EQ(streamed.status, 200) << streamed.body;
  EXPECT_EQ(streamed.header("x-cache"), "HIT");
  EXPECT_EQ(SseContent(streamed.body), ContentOf(warm.body));

  // Not answered from the cache however it is asked: a bypass, no-cache,
  // an entry older than max-age.
  const Reply hot =
      Chat(Body("m/a", false, "What is 2+2?", R"("temperature":0.7)"), only);
  ExpectErrorShape(hot, 504, "not_cached");
  EXPECT_EQ(hot.header("x-cache"), "BYPASS");
  ExpectErrorShape(
      Chat(Body("m/a"), {{"Cache-Control", "no-cache, only-if-cached"}}), 504,
      "not_cached");
  clock_.Advance(10'000);
  ExpectErrorShape(
      Chat(Body("m/a"), {{"Cache-Control", "only-if-cached, max-age=5"}}), 504,
      "not_cached");
  EXPECT_EQ(fake_->completions(), 1u);
  // Counted as misses (and a bypass), not as upstream errors.
  const json::value stats = ProxyStats(port_);
  ASSERT_TRUE(stats.is_object());
  EXPECT_EQ(stats.at("proxy").at("upstream_errors").to_number<int64_t>(), 0);
  // Nor do they count as upstream calls in the latency histogram: one call.
  EXPECT_THAT(
      HttpGet(port_, "/metrics").body,
      ::testing::HasSubstr("llmcache_upstream_latency_seconds_count 1\n"));

  // The model list: answered while kept, else a 504 that fetches nothing.
  const uint64_t before = fake_->requests();
  ExpectErrorShape(HttpGet(port_, "/v1/models", only), 504, "not_cached");
  ExpectErrorShape(HttpGet(port_, "/v1/models",
                           {{"Cache-Control", "no-transform"},
                            {"Cache-Control", "only-if-cached"}}),
                   504, "not_cached");  // on a second line too
  ExpectErrorShape(HttpGet(port_, "/v1/models/openai/gpt-4o-mini", only), 504,
                   "not_cached");
  EXPECT_EQ(fake_->requests(), before);
  ASSERT_EQ(HttpGet(port_, "/v1/models").status, 200);
  const Reply kept = HttpGet(port_, "/v1/models/openai/gpt-4o-mini", only);
  EXPECT_EQ(kept.status, 200) << kept.body;
  EXPECT_EQ(kept.header("x-cache"), "HIT");
  EXPECT_EQ(fake_->requests(), before + 1);
}

// The proxy's single-flight joins so far (-1 if /stats cannot be read).
int64_t FlightJoins(uint16_t port) {
  const json::value v = ProxyStats(port);
  const json::value* n = nullptr;
  if (const json::object* o = v.if_object()) {
    if (const json::value* c = o->if_contains("client"); c && c->is_object()) {
      n = c->as_object().if_contains("flight_joins");
    }
  }
  return n != nullptr && n->is_number() ? n->to_number<int64_t>() : -1;
}

// Plain requests waiting for an identical stream that the upstream leaves
// silent after its first event (cut by the stream idle timeout) are not
// handed that half answer: they start over together, and one new call
// answers them all.
TEST_F(ProxyTest, RequestsWaitingForACutStreamShareOneNewCall) {
  Restart([](ProxyOptions& o) { o.upstream.stream_idle_timeout = 2500ms; });
  // Stream: the role chunk, then 5 s of silence; plain: answered at once.
  const std::string model = "fake/flood-1-every-5000";
  HttpConnection lead(port_);
  ASSERT_TRUE(lead.Write("POST", "/v1/chat/completions", Body(model, true),
                         {{"Authorization", "Bearer key-A"}}));
  ASSERT_EQ(lead.ReadHead().status, 200);
  constexpr int kWaiters = 4;
  std::array<Reply, kWaiters> replies;
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&, i] { replies[i] = Chat(Body(model, false)); });
  }
  EXPECT_TRUE(WaitFor([&] { return FlightJoins(port_) == kWaiters; }, 2000ms))
      << "the waiters did not join the stream before its cut";
  for (std::thread& t : waiters) t.join();
  const std::string content = ContentOf(replies[0].body);
  EXPECT_NE(content, "");
  for (const Reply& r : replies) {
    EXPECT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.header("x-cache"), "MISS");
    EXPECT_EQ(ContentOf(r.body), content);
  }
  EXPECT_EQ(fake_->completions(), 2u);  // was 1 + kWaiters
  // The leader's stream ends broken (no [DONE]).
  std::string piece;
  std::string body;
  while (lead.ReadBodyPiece(&piece)) body += piece;
  bool done = true;
  SseContent(body, &done);
  EXPECT_FALSE(done);
}

// A stream past max_stored_stream_bytes goes on whole to its client and to a
// stream that joined it (it was cut at 64 MiB before), and is not stored;
// the plain requests that waited for it have no whole answer from it and
// share one new call, whose answer is stored. (A stream that joins after
// the first 8 MiB asks on its own: CachedClientFlightTest.)
TEST_F(ProxyTest, AStreamOverTheStoreLimitGoesOnWholeAndItsWaitersAskAgain) {
  Restart([](ProxyOptions& o) { o.cached.max_stored_stream_bytes = 1 << 20; });
  // 4 MiB in 64 KiB events, one every 20 ms (about 1.3 s).
  const std::string model = "fake/flood-4-every-20";
  HttpConnection lead(port_);
  ASSERT_TRUE(lead.Write("POST", "/v1/chat/completions", Body(model, true),
                         {{"Authorization", "Bearer key-A"}}));
  ASSERT_EQ(lead.ReadHead().status, 200);
  constexpr int kPlain = 2;
  std::array<Reply, kPlain + 1> replies;
  std::vector<std::thread> waiters;
  for (int i = 0; i <= kPlain; ++i) {
    waiters.emplace_back(
        [&, i] { replies[i] = Chat(Body(model, /*stream=*/i == kPlain)); });
  }
  EXPECT_TRUE(WaitFor([&] { return FlightJoins(port_) == kPlain + 1; }, 1000ms))
      << "the waiters did not join the stream while it ran";
  std::string piece;
  std::string body;
  while (lead.ReadBodyPiece(&piece)) body += piece;
  for (std::thread& t : waiters) t.join();
  bool done = false;
  EXPECT_GT(SseContent(body, &done).size(), size_t{4} << 20);
  EXPECT_TRUE(done);
  const Reply& joined_stream = replies[kPlain];
  EXPECT_EQ(joined_stream.status, 200) << joined_stream.error;
  done = false;
  EXPECT_GT(SseContent(joined_stream.body, &done).size(), size_t{4} << 20);
  EXPECT_TRUE(done);
  for (int i = 0; i < kPlain; ++i) {
    EXPECT_EQ(replies[i].status, 200) << replies[i].error;
    EXPECT_EQ(replies[i].header("x-cache"), "MISS");
    EXPECT_EQ(replies[i].header("x-cache-stored"), "1");
    EXPECT_NE(ContentOf(replies[i].body), "");
  }
  EXPECT_EQ(fake_->completions(), 2u);  // the stream, then one plain call
  const Reply again = Chat(Body(model, false));
  EXPECT_EQ(again.header("x-cache"), "HIT");
  EXPECT_EQ(ContentOf(again.body), ContentOf(replies[0].body));
  EXPECT_EQ(fake_->completions(), 2u);
}

// Past the store limit a stream whose client left, with no stream handed
// its events, is of no use to anyone: the call is cancelled at once, and
// a plain request that waited for it gets its own answer without waiting
// for the rest of the stream.
TEST_F(ProxyTest, AStreamOverTheStoreLimitWhoseClientLeftIsCancelled) {
  Restart([](ProxyOptions& o) { o.cached.max_stored_stream_bytes = 1 << 20; });
  // 16 MiB in 64 KiB events, one every 50 ms (about 13 s).
  const std::string model = "fake/flood-16-every-50";
  Reply plain;
  std::thread waiter;
  const auto start = std::chrono::steady_clock::now();
  {
    HttpConnection lead(port_);
    ASSERT_TRUE(lead.Write("POST", "/v1/chat/completions", Body(model, true),
                           {{"Authorization", "Bearer key-A"}}));
    ASSERT_EQ(lead.ReadHead().status, 200);
    waiter = std::thread([&] { plain = Chat(Body(model, false)); });
    EXPECT_TRUE(WaitFor([&] { return FlightJoins(port_) == 1; }, 1000ms));
    std::string piece;
    size_t read = 0;
    while (read < (size_t{2} << 20) && lead.ReadBodyPiece(&piece)) {
      read += piece.size();
    }
  }
  waiter.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 8s);
  EXPECT_EQ(plain.status, 200) << plain.error;
  EXPECT_EQ(plain.header("x-cache"), "MISS");
  EXPECT_EQ(plain.header("x-cache-stored"), "1");
  EXPECT_EQ(fake_->completions(), 2u);
  EXPECT_EQ(Chat(Body(model, false)).header("x-cache"), "HIT");
}

// A client that goes away mid-stream (the upstream call is then cancelled)
// is no upstream error.
TEST_F(ProxyTest, AClientGoingAwayMidStreamIsNoUpstreamError) {
  // Requests in flight besides the /stats request that asks.
  auto in_flight = [&] {
    const json::value v = ProxyStats(port_);
    return v.is_object()
               ? v.at("proxy").at("in_flight").to_number<int64_t>() - 1
               : -1;
  };
  {
    HttpConnection conn(port_);
    ASSERT_TRUE(conn.Write("POST", "/v1/chat/completions",
                           Body("fake/slow-200", true),
                           {{"Authorization", "Bearer k"}}));
    ASSERT_EQ(conn.ReadHead().status, 200);
  }
  EXPECT_TRUE(WaitFor([&] { return in_flight() == 0; }, 10s));
  const json::value stats = ProxyStats(port_);
  ASSERT_TRUE(stats.is_object());
  EXPECT_EQ(stats.at("proxy").at("upstream_errors").to_number<int64_t>(), 0);
  // The proxy serves the next client as before.
  EXPECT_EQ(Chat(Body("m/after")).status, 200);
}

// Reads a live stream's body from `conn` until its end (or `deadline`),
// noting when the first bytes came, when the first data event did and when
// the body ended.
struct StreamRead {
  std::string body;
  std::chrono::milliseconds first_bytes{-1}, first_data{-1}, end{-1};
};
StreamRead ReadStream(HttpConnection& conn,
                      std::chrono::steady_clock::time_point start) {
  StreamRead out;
  auto since = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
  };
  std::string piece;
  while (conn.ReadBodyPiece(&piece)) {
    if (out.first_bytes.count() < 0 && !piece.empty())
      out.first_bytes = since();
    out.body += piece;
    if (out.first_data.count() < 0 &&
        out.body.find("data: ") != std::string::npos) {
      out.first_data = since();
    }
  }
  out.end = since();
  return out;
}

// Posts stream request `body` on a connection of its own and reads the
// stream; an empty StreamRead unless the answer is a 200.
StreamRead PostStream(uint16_t port, const std::string& body) {
  HttpConnection conn(port);
  const auto start = std::chrono::steady_clock::now();
  if (!conn.Write("POST", "/v1/chat/completions", body,
                  {{"Authorization", "Bearer k"}}) ||
      conn.ReadHead().status != 200) {
    return {};
  }
  return ReadStream(conn, start);
}

// A stream waiting for its first event gets its head and SSE comments every
// stream_keepalive, so that idle timeouts between do not cut it; the answer
// then comes as it would have, and is stored.
TEST_F(ProxyTest, AStreamWaitingForItsFirstEventIsKeptAlive) {
  Restart([](ProxyOptions& o) { o.stream_keepalive = 100ms; });
  for (const char* expect : {"MISS", "HIT"}) {
    HttpConnection conn(port_);
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(conn.Write("POST", "/v1/chat/completions",
                           Body("fake/delay-800", true),
                           {{"Authorization", "Bearer k"}}));
    const Reply head = conn.ReadHead();
    ASSERT_EQ(head.status, 200) << head.error;
    EXPECT_EQ(head.header("x-cache"), expect);
    const StreamRead r = ReadStream(conn, start);
    bool done = false;
    EXPECT_FALSE(SseContent(r.body, &done).empty()) << r.body;
    EXPECT_TRUE(done) << r.body;
    if (std::string_view(expect) == "MISS") {
      // Comments first, well before the upstream's first event.
      EXPECT_EQ(r.body.find(": waiting for the upstream\n\n"), r.body.find(':'))
          << r.body;
      EXPECT_LT(r.body.find(": waiting"), r.body.find("data: ")) << r.body;
      EXPECT_GE(r.first_data.count(), 700) << r.body;
    } else {
      EXPECT_EQ(r.body.find(": waiting"), std::string::npos) << r.body;
    }
  }
  EXPECT_EQ(fake_->completions(), 1u);
}

// An upstream error after the head went: an error event the client's SDK
// raises, and a clean end; nothing stored. A request identical to a waiting
// stream is kept alive too, and gets the answer as events.
TEST_F(ProxyTest, AnErrorAfterTheKeptAliveHeadIsAnErrorEvent) {
  Restart([](ProxyOptions& o) { o.stream_keepalive = 100ms; });
  const std::string failing = Body("fake/fault-503-after-600", true);
  const Reply r = Chat(failing);
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(r.error.empty()) << r.error;  // a whole chunked body
  EXPECT_NE(r.body.find(": waiting"), std::string::npos) << r.body;
  SseParser parser;
  std::vector<std::string> data;
  parser.Feed(r.body, [&](SseEvent&& e) { data.push_back(e.data); });
  ASSERT_EQ(data.size(), 1u) << r.body;
  const std::optional<ApiError> error = ParseErrorEnvelope(data[0]);
  ASSERT_TRUE(error.has_value()) << data[0];
  EXPECT_EQ(error->code, 503) << data[0];
  EXPECT_EQ(Chat(failing).header("x-cache"), "MISS");

  // Two identical streams at once: the second waits for the first's answer.
  const std::string slow = Body("fake/delay-800", true, "Shared?");
  std::array<std::string, 2> bodies;
  std::vector<std::thread> clients;
  for (int i = 0; i < 2; ++i) {
    clients.emplace_back([&, i] { bodies[i] = PostStream(port_, slow).body; });
    // The second starts once the first's call is under way (it joins it).
    if (i == 0) {
      EXPECT_TRUE(WaitFor([&] { return fake_->completions() == 3; }));
    }
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(fake_->completions(), 3u);  // one call for both
  for (int i = 0; i < 2; ++i) {
    bool done = false;
    EXPECT_FALSE(SseContent(bodies[i], &done).empty()) << i;
    EXPECT_TRUE(done) << i << bodies[i];
    EXPECT_NE(bodies[i].find(": waiting"), std::string::npos) << i;
  }
  EXPECT_EQ(SseContent(bodies[0]), SseContent(bodies[1]));
}

// A stream identical to one under way joins it and gets its events as they
// come (those so far at once, then each with the leader's), not the whole
// answer when the leader's stream ends; one upstream call for both.
TEST_F(ProxyTest, AStreamThatJoinsAnotherGetsItsEventsAsTheyCome) {
  const std::string body = Body("fake/slow-120", true, "Live?");
  std::array<StreamRead, 2> got;
  std::vector<std::thread> clients;
  for (int i = 0; i < 2; ++i) {
    clients.emplace_back([&, i] { got[i] = PostStream(port_, body); });
    if (i == 0) {  // the second starts once the first streams
      EXPECT_TRUE(WaitFor([&] { return fake_->completions() == 1; }));
      std::this_thread::sleep_for(300ms);
    }
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(fake_->completions(), 1u);
  bool done = false;
  EXPECT_EQ(SseContent(got[1].body, &done), SseContent(got[0].body));
  EXPECT_TRUE(done) << got[1].body;
  // The leader's stream took >= 1 s more after the join.
  EXPECT_GE(got[1].end.count() - got[1].first_data.count(), 500)
      << "first data at " << got[1].first_data.count() << " ms, end at "
      << got[1].end.count() << " ms";
  EXPECT_GE(got[0].end.count(), 1200) << got[0].body;
}

// An answer handed over whole (a request that joined an identical one gets
// its events at once) piles up behind the first write for a moment: that is
// no slow client, and it is not cut at the backlog limit.
TEST_F(ProxyTest, AnAnswerHandedOverWholeIsNotCutAtTheBacklogLimit) {
  Restart([](ProxyOptions& o) { o.max_stream_backlog_bytes = 64 << 10; });
  std::string emoji;
  for (int i = 0; i < 200; ++i) emoji += "\xF0\x9F\x98\x80";
  const std::string body =
      Body("fake/delay-500", true, emoji,
           R"("temperature":0,"n":8,"logprobs":true,"top_logprobs":20)");
  std::array<std::string, 2> bodies;
  std::vector<std::thread> clients;
  for (int i = 0; i < 2; ++i) {
    clients.emplace_back([&, i] {
      HttpConnection conn(port_);
      if (conn.Write("POST", "/v1/chat/completions", body,
                     {{"Authorization", "Bearer k"}}) &&
          conn.ReadHead().status == 200) {
        bodies[i] = ReadStream(conn, std::chrono::steady_clock::now()).body;
      }
    });
    if (i == 0) {
      EXPECT_TRUE(WaitFor([&] { return fake_->completions() == 1; }));
    }
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(fake_->completions(), 1u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_GT(bodies[i].size(), size_t{1} << 20) << i;
    bool done = false;
    SseContent(bodies[i], &done);
    EXPECT_TRUE(done) << i;
  }
}

// A client that stops reading while its stream keeps coming is closed once
// more than max_stream_backlog_bytes wait behind a write that has not ended
// for 1 s, instead of holding the whole stream until the write timeout
// (30 s); a client that reads gets the whole stream under the same limit.
TEST_F(ProxyTest, AClientThatStopsReadingIsClosedAtTheBacklogLimit) {
  Restart([](ProxyOptions& o) { o.max_stream_backlog_bytes = 1 << 20; });
  {
    const Reply r = Chat(Body("fake/flood-16", true, "I read"));
    ASSERT_EQ(r.status, 200) << r.error;
    bool done = false;
    EXPECT_GT(SseContent(r.body, &done).size(), size_t{16} << 20);
    EXPECT_TRUE(done);
  }
  // 64 KiB every 20 ms for 20 s, to a client with a 4 KiB receive buffer
  // that reads nothing: closed once over 1 MiB waits behind a write not
  // done for 1 s.
  asio::io_context ioc;
  tcp::socket sock(ioc);
  SendFromASmallWindow(sock, Body("fake/flood-64-every-20", true, "I stall"));
  EXPECT_TRUE(WaitFor(
      [&] { return Logged("(client too slow: backlog over the limit)"); }, 15s))
      << ::testing::PrintToString(Logs());
  // What the kernel holds for the client, then the end: the connection is
  // closed, not left open.
  EXPECT_LT(DrainToTheEnd(sock), size_t{32} << 20);
  // The proxy goes on serving.
  EXPECT_EQ(Chat(Body("fake/flood-16", true, "I read")).header("x-cache"),
            "HIT");
}

TEST_F(ProxyTest, MalformedRequestsAre400) {
  ExpectErrorShape(Chat("{not json"), 400, "invalid_request_error");
  ExpectErrorShape(Chat(R"({"messages":[{"role":"user","content":"x"}]})"), 400,
                   "invalid_request_error");
  ExpectErrorShape(Chat(R"({"model":"m/a","temperature":0})"), 400,
                   "invalid_request_error");
  ExpectErrorShape(
      Chat(
          R"({"model":"","temperature":0,"messages":[{"role":"user","content":"x"}]})"),
      400, "invalid_request_error");
  ExpectErrorShape(Chat(R"({"model":"m/a","temperature":0,"messages":[]})"),
                   400, "invalid_request_error");
  // Only a variant suffix: no model to store or count the answer under.
  for (const char* model : {":free", ":"}) {
    const Reply r = Chat(std::string(R"({"model":")") + model +
                         R"(","temperature":0,"messages":[{"role":"user",)"
                         R"("content":"x"}]})");
    ExpectErrorShape(r, 400, "invalid_request_error");
    EXPECT_NE(r.body.find("names no model"), std::string::npos) << r.body;
  }
  EXPECT_EQ(fake_->completions(), 0u);
}

TEST_F(ProxyTest, BodyOverTheLimitIs413) {
  Restart([](ProxyOptions& o) { o.max_body_bytes = 1024; });
  const Reply r = Chat(Body("m/a", false, std::string(4096, 'x')));
  ExpectErrorShape(r, 413, "request_too_large");
  EXPECT_EQ(Chat(Body("m/a")).status, 200);
}

TEST_F(ProxyTest, HeadersOverTheLimitAre431) {
  Restart([](ProxyOptions& o) { o.max_header_bytes = 4096; });
  const Reply r = Chat(Body("m/a"), {{"X-Padding", std::string(8192, 'p')}});
  ExpectErrorShape(r, 431, "request_header_fields_too_large");
}

TEST_F(ProxyTest, UnreachableUpstreamIs502) {
  uint16_t closed_port = 0;
  {
    asio::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    closed_port = a.local_endpoint().port();
  }
  Restart([closed_port](ProxyOptions& o) {
    o.upstream.base_url =
        "http://127.0.0.1:" + std::to_string(closed_port) + "/api/v1";
  });
  const Reply r = Chat(Body("m/a"));
  ExpectErrorShape(r, 502, "upstream_error");
  // Labelled as every answer to a completion: a miss, not stored, no TTL.
  EXPECT_EQ(r.header("x-cache"), "MISS");
  EXPECT_EQ(r.header("x-cache-key").size(), 64u);
  EXPECT_EQ(r.header("x-cache-stored"), "0");
  EXPECT_FALSE(r.has_header("x-cache-ttl"));
  ExpectErrorShape(HttpGet(port_, "/v1/models"), 502, "upstream_error");
}

// An upstream error passes through as a miss that was not stored: it has
// no lifetime to announce.
TEST_F(ProxyTest, AnUpstreamErrorHasNoTtl) {
  const Reply r = Chat(Body("fake/fault-500"), {{"X-Cache-TTL", "60"}});
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.header("x-cache"), "MISS");
  EXPECT_EQ(r.header("x-cache-stored"), "0");
  EXPECT_FALSE(r.has_header("x-cache-ttl"));
  const Reply ok = Chat(Body("m/ttl"), {{"X-Cache-TTL", "60"}});
  EXPECT_EQ(ok.header("x-cache-stored"), "1");
  EXPECT_EQ(ok.header("x-cache-ttl"), "60");
}

TEST_F(ProxyTest, UpstreamDeadlineIs504) {
  Restart([](ProxyOptions& o) {
    o.upstream.headers_timeout = 300ms;
    o.upstream.request_timeout = 1000ms;
  });
  const Reply r = Chat(Body("fake/hang"));
  ExpectErrorShape(r, 504, "upstream_timeout");
  EXPECT_EQ(r.header("x-cache"), "MISS");
  ExpectErrorShape(Chat(Body("fake/hang", true)), 504, "upstream_timeout");
}

TEST_F(ProxyTest, UnknownPathIs404AndWrongMethodIs405) {
  ExpectErrorShape(HttpGet(port_, "/nope"), 404, "invalid_request_error");
  const Reply r = HttpGet(port_, "/v1/chat/completions");
  ExpectErrorShape(r, 405, "invalid_request_error");
  EXPECT_EQ(r.header("allow"), "POST");
  ExpectErrorShape(Post(port_, "{}", {}, "/healthz"), 405,
                   "invalid_request_error");
}

// RFC 9112 2.2 and 2.3, RFC 9110 9.1 and 10.1.1: empty lines before a
// request line are skipped (old clients send a CRLF after a POST body);
// HTTP/1.2 is read as 1.1, HTTP/2.0 is a 505; a method this server does not
// know is a 501 (methods are case-sensitive); an expectation other than
// 100-continue is a 417, except from HTTP/1.0, which has none.
TEST_F(ProxyTest, RequestLinesAndExpectationsAreReadAsTheRfcsSay) {
  const std::string body = Body("m/rfc");
  const std::string post =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Authorization: Bearer key-A\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  {
    HttpConnection conn(port_);
    ASSERT_TRUE(conn.WriteRaw("\r\n\r\n" + post + "\r\n"));
    const Reply first = conn.Read();
    EXPECT_EQ(first.status, 200) << first.body;
    ASSERT_TRUE(conn.WriteRaw(post));  // on the connection kept alive
    const Reply second = conn.Read();
    EXPECT_EQ(second.status, 200) << second.body;
    EXPECT_EQ(second.header("x-cache"), "HIT");
  }
  {
    HttpConnection conn(port_);
    ASSERT_TRUE(
        conn.WriteRaw("GET /healthz HTTP/1.2\r\nHost: 127.0.0.1\r\n\r\n"));
    const Reply r = conn.Read();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, R"({"status":"ok"})");
  }
  {
    // The version before its CRLF has come (Beast refuses it at once).
    HttpConnection conn(port_);
    ASSERT_TRUE(conn.WriteRaw("GET /healthz HTTP/1.2"));
    std::this_thread::sleep_for(200ms);
    ASSERT_TRUE(conn.WriteRaw("\r\nHost: 127.0.0.1\r\n\r\n"));
    EXPECT_EQ(conn.Read().status, 200);
  }
  for (const char* version : {"HTTP/2.0", "HTTP/0.9"}) {
    HttpConnection conn(port_);
    ASSERT_TRUE(conn.WriteRaw(std::string("GET /healthz ") + version +
                              "\r\nHost: 127.0.0.1\r\n\r\n"));
    const Reply r = conn.Read();
    ExpectErrorShape(r, 505, "invalid_request_error");
    EXPECT_EQ(r.header("connection"), "close");
  }
  for (const char* method : {"get", "FOO"}) {
    ExpectErrorShape(::llmcache::testing::HttpSend(port_, method, "/healthz"),
                     501, "not_implemented");
  }
  const uint64_t before = fake_->completions();
  ExpectErrorShape(Chat(Body("m/expect"), {{"Expect", "foo"}}), 417,
                   "invalid_request_error");
  EXPECT_EQ(fake_->completions(), before);
  HttpConnection conn(port_);
  ASSERT_TRUE(conn.WriteRaw("GET /healthz HTTP/1.0\r\nExpect: foo\r\n\r\n"));
  EXPECT_EQ(conn.Read().status, 200);
}

// Skipped empty lines do not buy a head more time: its read timeout runs
// from the first byte of the connection, not from the last empty line.
TEST_F(ProxyTest, EmptyLinesDoNotExtendTheReadTimeout) {
  Restart([](ProxyOptions& o) { o.read_timeout = 1000ms; });
  HttpConnection conn(port_);
  ASSERT_TRUE(conn.WriteRaw("\r\n\r\n"));
  std::this_thread::sleep_for(900ms);
  ASSERT_TRUE(conn.WriteRaw("\r\n\r\n"));  // a new 1 s would end at 1.9 s
  std::this_thread::sleep_for(700ms);
  (void)conn.WriteRaw("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  const Reply r = conn.Read();
  EXPECT_NE(r.status, 200) << "answered after the head's read timeout";
}

TEST_F(ProxyTest, Healthz) {
  const Reply r = HttpGet(port_, "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"status":"ok"})");
}

// A real cache whose Health() the test sets, and whose Compact() waits
// while the test holds it.
class HealthSetCache final : public Cache {
 public:
  explicit HealthSetCache(std::unique_ptr<Cache> inner)
      : inner_(std::move(inner)) {}
  void SetHealth(StoreHealth h) {
    std::lock_guard<std::mutex> lock(mu_);
    health_ = std::move(h);
  }
  std::atomic<int> flush_all_calls{0};
  void HoldCompact(bool hold) {
    std::lock_guard<std::mutex> lock(mu_);
    hold_compact_ = hold;
    cv_.notify_all();
  }
  // Waits (at most 10 s) until a Compact() call is being held.
  bool WaitCompactHeld() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10),
                        [this] { return compact_held_; });
  }
  StoreHealth Health() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return health_;
  }
  Result<LookupResult> Lookup(const RequestKey& key,
                              const LookupOptions& options) override {
    return inner_->Lookup(key, options);
  }
  Status Insert(const RequestKey& key, std::string_view body,
                const InsertOptions& options) override {
    return inner_->Insert(key, body, options);
  }
  void RecordBypass(BypassReason reason) override {
    inner_->RecordBypass(reason);
  }
  Result<uint64_t> FlushModel(std::string_view model) override {
    return inner_->FlushModel(model);
  }
  Status FlushAll() override {
    ++flush_all_calls;
    return inner_->FlushAll();
  }
  Result<uint64_t> PurgeKey(const Digest& digest) override {
    return inner_->PurgeKey(digest);
  }
  Result<uint64_t> PurgeNamespace(std::string_view ns) override {
    return inner_->PurgeNamespace(ns);
  }
  Result<uint64_t> PurgeExpired() override { return inner_->PurgeExpired(); }
  Result<uint64_t> PurgeOlderThan(int64_t age_ms) override {
    return inner_->PurgeOlderThan(age_ms);
  }
  Result<uint64_t> PurgeCreatedBefore(int64_t cutoff_ms) override {
    return inner_->PurgeCreatedBefore(cutoff_ms);
  }
  Result<std::shared_ptr<const Entry>> Find(const Digest& digest) override {
    return inner_->Find(digest);
  }
  Status ForEachEntry(
      const std::optional<std::string>& model,
      const std::function<bool(const EntryView&)>& fn,
      const std::function<void(std::string_view, const Status&)>& on_corrupt)
      override {
    return inner_->ForEachEntry(model, fn, on_corrupt);
  }
  Result<CacheStats> GetStats() override { return inner_->GetStats(); }
  Status CatchUp() override { return inner_->CatchUp(); }
  using Cache::Compact;
  Status Compact(const CompactOptions& options) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      compact_held_ = hold_compact_;
      cv_.notify_all();
      cv_.wait(lock, [this] { return !hold_compact_; });
      compact_held_ = false;
    }
    return inner_->Compact(options);
  }
  Status RunMaintenance() override { return inner_->RunMaintenance(); }
  bool persistent() const override { return inner_->persistent(); }
  int64_t default_ttl_ms() const override { return inner_->default_ttl_ms(); }

 private:
  std::unique_ptr<Cache> inner_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  StoreHealth health_;
  bool hold_compact_ = false;
  bool compact_held_ = false;
};

// An admin action (here a compaction the test holds, as a purge of millions
// of entries takes seconds) runs on its own thread: /stats and /metrics
// answer meanwhile (a scrape used to wait for the purge), a second admin
// action waits for the first, and both then answer.
TEST_F(ProxyTest, ScrapesAreAnsweredWhileAnAdminActionRuns) {
  ProxyOptions o = DefaultOptions();
  o.admin_token = "admin-secret";
  const std::shared_ptr<HealthSetCache> cache =
      RestartOnWrapped<HealthSetCache>(std::move(o));
  ASSERT_NE(cache, nullptr);
  ASSERT_EQ(Chat(Body("m/a")).header("x-cache"), "MISS");

  const Headers admin = {{"Authorization", "Bearer admin-secret"}};
  Reply compact, purge;
  std::jthread first, second;
  cache->HoldCompact(true);
  // Released however the test ends, before the threads are joined: a held
  // compaction would hold them and the proxy's shutdown up.
  struct Release {
    HealthSetCache* cache;
    ~Release() { cache->HoldCompact(false); }
  } release{cache.get()};
  first =
      std::jthread([&] { compact = Post(port_, "", admin, "/admin/compact"); });
  ASSERT_TRUE(cache->WaitCompactHeld());
  second = std::jthread(
      [&] { purge = Post(port_, "", admin, "/admin/purge?all=1"); });
  const Reply stats = HttpGet(port_, "/stats", {}, 5s);
  EXPECT_EQ(stats.status, 200) << stats.body;
  EXPECT_NE(stats.body.find("\"entries\":1"), std::string::npos) << stats.body;
  const Reply metrics = HttpGet(port_, "/metrics", {}, 5s);
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("\nllmcache_cache_entries 1\n"),
            std::string::npos)
      << metrics.body;
  EXPECT_EQ(Chat(Body("m/a")).header("x-cache"), "HIT");
  // The purge, sent before the scrapes, waits for the compaction.
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(cache->flush_all_calls.load(), 0);
  cache->HoldCompact(false);
  first.join();
  second.join();
  EXPECT_EQ(compact.status, 200) << compact.body;
  EXPECT_EQ(purge.status, 200) << purge.body;
  EXPECT_EQ(cache->flush_all_calls.load(), 1);
  EXPECT_EQ(Chat(Body("m/a")).header("x-cache"), "MISS");
}

// A real full disk under the store (injected under RocksDB): every request
// is answered during the fault, nothing is stored, health says degraded;
// once space is back the store recovers by itself and stores again.
TEST_F(ProxyTest, AFullDiskIsServedThroughAndHealsByItself) {
  using llmcache::testing::FaultFileSystem;
  auto fs = std::make_shared<FaultFileSystem>();
  cache_tweak_ = [fs](CacheOptions& co) {
    co.file_system = fs;
    co.memory_tier_bytes = 0;              // every hit below comes from RocksDB
    co.recovery_initial_backoff_ms = 500;  // stays degraded while checked
    co.recovery_max_backoff_ms = 500;
  };
  Restart();
  ASSERT_EQ(Chat(Body("m/before")).header("x-cache"), "MISS");
  auto metric = [this](const std::string& line) {
    return HttpGet(port_, "/metrics").body.find("\n" + line + "\n") !=
           std::string::npos;
  };

  fs->FailWrites(FaultFileSystem::NoSpace());
  for (int i = 0; i < 10; ++i) {
    const Reply r = Chat(Body("m/during", false, "q" + std::to_string(i)));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-cache"), "MISS");
    EXPECT_EQ(r.header("x-cache-stored"), "0");
    EXPECT_FALSE(ContentOf(r.body).empty());
  }
  // Right after a refused write (recovery is tried 500 ms later at the
  // earliest).
  ASSERT_EQ(Chat(Body("m/during", false, "last")).header("x-cache-stored"),
            "0");
  EXPECT_TRUE(metric("llmcache_store_degraded 1"));
  EXPECT_NE(HttpGet(port_, "/healthz").body.find(R"("status":"degraded")"),
            std::string::npos);
  // Lookups go on while writes are refused.
  EXPECT_EQ(Chat(Body("m/before")).header("x-cache"), "HIT");
  EXPECT_GT(fs->injected(), 0u);

  fs->Clear();
  ASSERT_TRUE(llmcache::testing::WaitFor([&] {
    return HttpGet(port_, "/healthz").body.find(R"("status":"ok")") !=
           std::string::npos;
  })) << HttpGet(port_, "/healthz").body;
  EXPECT_NE(HttpGet(port_, "/healthz").body.find("recovered_ms"),
            std::string::npos);
  EXPECT_TRUE(metric("llmcache_store_degraded 0"));
  // At least one recovery (a Resume() that succeeds while the disk is still
  // full is followed by another degradation).
  EXPECT_FALSE(metric("llmcache_store_recoveries_total 0"));
  const Reply after = Chat(Body("m/after"));
  EXPECT_EQ(after.header("x-cache"), "MISS");
  EXPECT_EQ(after.header("x-cache-stored"), "1");
  EXPECT_EQ(Chat(Body("m/after")).header("x-cache"), "HIT");
  EXPECT_EQ(Chat(Body("m/before")).header("x-cache"), "HIT");
}

// The issue: a degraded store (disk full, I/O error) was invisible. The
// proxy keeps answering (fail open) and /healthz, /metrics and /stats say
// so, and when it recovered.
TEST_F(ProxyTest, HealthMetricsAndStatsShowTheStoresHealth) {
  const std::shared_ptr<HealthSetCache> cache =
      RestartOnWrapped<HealthSetCache>(DefaultOptions());
  ASSERT_NE(cache, nullptr);
  auto get_json = [this](const std::string& target) {
    const Reply r = HttpGet(port_, target);
    EXPECT_EQ(r.status, 200) << target;
    boost::system::error_code ec;
    json::value v = json::parse(r.body, ec);
    EXPECT_FALSE(ec) << r.body;
    return v;
  };
  auto metric = [this](const std::string& line) {
    return HttpGet(port_, "/metrics").body.find("\n" + line + "\n") !=
           std::string::npos;
  };
  EXPECT_EQ(HttpGet(port_, "/healthz").body, R"({"status":"ok"})");
  EXPECT_TRUE(metric("llmcache_store_degraded 0"));

  StoreHealth h;
  h.degraded = true;
  h.error = "IO error: No space left on device";
  h.degraded_since_ms = 1'700'000'000'000;
  h.degradations = 1;
  h.write_errors = 3;
  cache->SetHealth(h);
  json::value v = get_json("/healthz");
  EXPECT_EQ(v.at("status"), "degraded");
  EXPECT_EQ(v.at("store").at("error"), "IO error: No space left on device");
  EXPECT_EQ(v.at("store").at("degraded_since_ms").to_number<int64_t>(),
            1'700'000'000'000);
  EXPECT_TRUE(metric("llmcache_store_degraded 1"));
  EXPECT_TRUE(metric("llmcache_store_degradations_total 1"));
  EXPECT_TRUE(metric("llmcache_store_write_errors_total 3"));
  EXPECT_EQ(get_json("/stats").at("store").at("degraded"), true);
  // Fail open: completions are still answered.
  EXPECT_EQ(Chat(Body("m/a")).status, 200);

  h.degraded = false;
  h.recoveries = 1;
  h.recovered_ms = 1'700'000'060'000;
  cache->SetHealth(h);
  v = get_json("/healthz");
  EXPECT_EQ(v.at("status"), "ok");
  EXPECT_EQ(v.at("store").at("recovered_ms").to_number<int64_t>(),
            1'700'000'060'000);
  EXPECT_TRUE(metric("llmcache_store_degraded 0"));
  EXPECT_TRUE(metric("llmcache_store_recoveries_total 1"));
}

TEST_F(ProxyTest, AdminIsDisabledWithoutAToken) {
  ExpectErrorShape(Post(port_, "", {}, "/admin/flush?model=m/a"), 404,
                   "invalid_request_error");
  ExpectErrorShape(
      Post(port_, "", {{"Authorization", "Bearer x"}}, "/admin/purge?all=1"),
      404, "invalid_request_error");
}

class ProxyAdminTest : public ProxyTest {
 protected:
  void SetUp() override {
    ProxyTest::SetUp();
    Restart([](ProxyOptions& o) { o.admin_token = "admin-secret"; });
  }
  Reply Admin(const std::string& target,
              const std::string& token = "admin-secret") {
    Headers h;
    if (!token.empty()) h.emplace_back("Authorization", "Bearer " + token);
    return Post(port_, "", h, target);
  }
  uint64_t Removed(const Reply& r) {
    boost::system::error_code ec;
    json::value v = json::parse(r.body, ec);
    EXPECT_FALSE(ec) << r.body;
    return ec ? 0 : v.at("removed").to_number<uint64_t>();
  }
};

TEST_F(ProxyAdminTest, NeedsTheToken) {
  ExpectErrorShape(Admin("/admin/flush?model=m/a", ""), 401,
                   "authentication_error");
  ExpectErrorShape(Admin("/admin/flush?model=m/a", "wrong"), 401,
                   "authentication_error");
  ExpectErrorShape(Admin("/admin/purge?all=1", "admin-secre"), 401,
                   "authentication_error");
  const Reply get = HttpGet(port_, "/admin/flush?model=m/a",
                            {{"Authorization", "Bearer admin-secret"}});
  EXPECT_EQ(get.status, 405);
}

// Only POST runs an admin action: GET and HEAD are 405 and change nothing
// (HEAD's answer has no content either).
TEST_F(ProxyAdminTest, GetAndHeadRunNothing) {
  ASSERT_EQ(Chat(Body("m/a")).header("x-cache"), "MISS");
  for (const char* target : {"/admin/purge?all=1", "/admin/import"}) {
    const Reply get =
        HttpGet(port_, target, {{"Authorization", "Bearer admin-secret"}});
    EXPECT_EQ(get.status, 405) << target;
    EXPECT_EQ(get.header("allow"), "POST");
    HttpConnection conn(port_);
    ASSERT_TRUE(conn.WriteRaw(std::string("HEAD ") + target +
                              " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Authorization: Bearer admin-secret\r\n"
                              "Connection: close\r\n\r\n"));
    const Reply head = conn.ReadHead();
    EXPECT_EQ(head.status, 405) << target;
  }
  const Reply on_get_route = HttpConnection(port_).Send("PUT", "/healthz");
  EXPECT_EQ(on_get_route.status, 405);
  EXPECT_EQ(on_get_route.header("allow"), "GET, HEAD");
  EXPECT_EQ(Chat(Body("m/a")).header("x-cache"), "HIT");
}

TEST_F(ProxyAdminTest, FlushModel) {
  ASSERT_EQ(Chat(Body("m/a")).header("x-cache"), "MISS");
  ASSERT_EQ(Chat(Body("m/b")).header("x-cache"), "MISS");
  const Reply r = Admin("/admin/flush?model=m/a");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Removed(r), 1u);
  EXPECT_EQ(Chat(Body("m/a")).header("x-cache"), "MISS");
  EXPECT_EQ(Chat(Body("m/b")).header("x-cache"), "HIT");
}

TEST_F(ProxyAdminTest, PurgeVariants) {
  const Reply a = Chat(Body("m/a", false, "1"));
  ASSERT_EQ(a.header("x-cache"), "MISS");
  ASSERT_EQ(Chat(Body("m/a", false, "2"), {{"X-Cache-Namespace", "ns1"}})
                .header("x-cache"),
            "MISS");
  ASSERT_EQ(
      Chat(Body("m/a", false, "3"), {{"X-Cache-TTL", "1"}}).header("x-cache"),
      "MISS");

  Reply r = Admin("/admin/purge?key=" + a.header("x-cache-key"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Removed(r), 1u);
  EXPECT_EQ(Chat(Body("m/a", false, "1")).header("x-cache"), "MISS");

  r = Admin("/admin/purge?namespace=ns1");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Removed(r), 1u);

  clock_.Advance(2'000);
  r = Admin("/admin/purge?expired=1");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Removed(r), 1u);

  clock_.Advance(3'600'000);
  r = Admin("/admin/purge?older_than=30m");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Removed(r), 1u);  // the re-stored "1"

  ASSERT_EQ(Chat(Body("m/b")).header("x-cache"), "MISS");
  r = Admin("/admin/purge?all=1");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Removed(r), 1u);
  EXPECT_EQ(Chat(Body("m/b")).header("x-cache"), "MISS");

  ExpectErrorShape(Admin("/admin/purge?older_than=soon"), 400,
                   "invalid_request_error");
  // An age that overflows is an error, not "everything".
  ExpectErrorShape(Admin("/admin/purge?older_than=999999999999d"), 400,
                   "invalid_request_error");
  ExpectErrorShape(Admin("/admin/flush?namespace=ns1"), 400,
                   "invalid_request_error");
  ExpectErrorShape(Admin("/admin/purge?key=abc"), 400, "invalid_request_error");
  ExpectErrorShape(Admin("/admin/purge"), 400, "invalid_request_error");
  ExpectErrorShape(Admin("/admin/nope?all=1"), 404, "invalid_request_error");
}

TEST_F(ProxyTest, MetricsAreInPrometheusFormat) {
  ASSERT_EQ(Chat(Body("m/a")).status, 200);
  ASSERT_EQ(Chat(Body("m/a")).status, 200);
  ASSERT_EQ(Chat(Body("m/a", false, "x", R"("temperature":1)")).status, 200);
  ASSERT_EQ(HttpGet(port_, "/nope").status, 404);
  const Reply r = HttpGet(port_, "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type").substr(0, 10), "text/plain");
  const std::string& m = r.body;
  for (const char* want : {
           "# TYPE llmcache_requests_total counter",
           "llmcache_requests_total{route=\"chat_completions\",code=\"2xx\"} 3",
           "llmcache_requests_total{route=\"other\",code=\"4xx\"} 1",
           "llmcache_cache_hits_total 1",
           "llmcache_cache_misses_total 1",
           "llmcache_cache_bypasses_total{reason=\"non_zero_temperature\"} 1",
           "# TYPE llmcache_hit_latency_seconds histogram",
           "llmcache_hit_latency_seconds_bucket{le=\"+Inf\"} 1",
           "llmcache_hit_latency_seconds_count 1",
           "llmcache_hit_latency_seconds_sum ",
           "llmcache_upstream_latency_seconds_count 2",
           "llmcache_response_bytes_total ",
           "llmcache_tokens_saved_total ",
           "llmcache_cost_saved_usd_total ",
           "llmcache_store_errors_total 0",
           "llmcache_in_flight_requests 1",
           "llmcache_open_connections ",
           "llmcache_cache_entries 1",
       }) {
    EXPECT_NE(m.find(want), std::string::npos) << want << "\n" << m;
  }
  EXPECT_EQ(m.find("llmcache_tokens_saved_total 0\n"), std::string::npos);
}

TEST_F(ProxyTest, StatsIsJson) {
  ASSERT_EQ(Chat(Body("m/a")).status, 200);
  ASSERT_EQ(Chat(Body("m/a")).status, 200);
  // A request is counted once its answer is written, which the client may
  // see first: wait for the count.
  ASSERT_TRUE(llmcache::testing::WaitFor(
      [&] { return proxy_->counters().requests >= 2; }));
  const Reply r = HttpGet(port_, "/stats");
  ASSERT_EQ(r.status, 200);
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  ASSERT_FALSE(ec) << r.body;
  EXPECT_EQ(v.at("proxy").at("requests").to_number<int>(), 2);
  EXPECT_EQ(v.at("proxy").at("hits").to_number<int>(), 1);
  EXPECT_EQ(v.at("proxy").at("misses").to_number<int>(), 1);
  EXPECT_EQ(v.at("client").at("hits").to_number<int>(), 1);
  EXPECT_EQ(v.at("client").at("misses").to_number<int>(), 1);
  EXPECT_EQ(v.at("cache").at("hits").to_number<int>(), 1);
  EXPECT_TRUE(v.at("cache").at("persistent").as_bool());
  EXPECT_EQ(v.at("cache").at("entries").to_number<int>(), 1);
  const json::array& models = v.at("cache").at("models").as_array();
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].at("model").as_string(), "m/a");
  EXPECT_EQ(v.at("client").at("upstream_calls").to_number<int>(), 1);
}

TEST_F(ProxyTest, ModelsArePassedThroughAndKeptBriefly) {
  const uint64_t before = fake_->requests();
  const Reply a = HttpGet(port_, "/v1/models", {{"Authorization", "Bearer k"}});
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_NE(a.body.find("\"data\""), std::string::npos);
  EXPECT_EQ(a.header("x-cache"), "MISS");
  const Reply b = HttpGet(port_, "/api/v1/models");
  ASSERT_EQ(b.status, 200);
  EXPECT_EQ(b.header("x-cache"), "HIT");
  EXPECT_EQ(b.body, a.body);
  EXPECT_EQ(fake_->requests(), before + 1);
}

// OpenAI's models.retrieve (GET /v1/models/{id}): the model's object from
// the upstream's list, which is fetched once for the list and every model.
TEST_F(ProxyTest, OneModelIsAnsweredFromTheList) {
  const uint64_t before = fake_->requests();
  const Reply a = HttpGet(port_, "/v1/models/openai/gpt-4o-mini",
                          {{"Authorization", "Bearer k"}});
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(a.header("content-type"), "application/json");
  EXPECT_EQ(a.header("x-cache"), "MISS");
  json::value v = json::parse(a.body);
  EXPECT_EQ(v.at("id").as_string(), "openai/gpt-4o-mini");
  EXPECT_EQ(v.at("pricing").at("prompt").as_string(), "0.00000015");
  // The slash sent as %2F, OpenRouter's prefix: the same, from the kept list.
  const Reply b = HttpGet(port_, "/api/v1/models/openai%2Fgpt-4o-mini");
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_EQ(b.header("x-cache"), "HIT");
  EXPECT_EQ(b.body, a.body);
  const Reply other = HttpGet(port_, "/v1/models/anthropic/claude-sonnet-4.5");
  ASSERT_EQ(other.status, 200) << other.body;
  EXPECT_EQ(json::parse(other.body).at("id").as_string(),
            "anthropic/claude-sonnet-4.5");
  // A model the list does not have: 404 in the proxy's error shape.
  const Reply none = HttpGet(port_, "/v1/models/openai/gpt-4o-minii");
  ExpectErrorShape(none, 404, "invalid_request_error");
  EXPECT_NE(none.body.find("openai/gpt-4o-minii"), std::string::npos)
      << none.body;
  // An id that decodes to bytes that are not text is not echoed: the answer
  // stays valid JSON.
  const Reply binary = HttpGet(port_, "/v1/models/%FF%00x");
  ExpectErrorShape(binary, 404, "invalid_request_error");
  EXPECT_EQ(binary.body.find('\xff'), std::string::npos) << binary.body;
  // The list is still the list; one upstream fetch served all of them.
  const Reply list = HttpGet(port_, "/v1/models");
  ASSERT_EQ(list.status, 200);
  EXPECT_TRUE(json::parse(list.body).at("data").is_array());
  EXPECT_EQ(fake_->requests(), before + 1);
  ExpectErrorShape(Post(port_, "{}", {}, "/v1/models/openai/gpt-4o-mini"), 405,
                   "invalid_request_error");
}

// An upstream whose model list is a 200 that is not a list (an HTML error
// page): /models/{id} is a 502 that says so, not a 404 for every model, and
// the page is not kept (the next request asks again).
TEST_F(ProxyTest, AModelListThatCannotBeReadIsNotKept) {
  fake::FakeOptions fo;
  fo.models_body = "<html>bad gateway</html>";
  auto bad = fake::FakeOpenRouter::Start(fo);
  ASSERT_OK(bad);
  Restart([&](ProxyOptions& o) { o.upstream.base_url = (*bad)->base_url(); });
  const Reply one = HttpGet(port_, "/v1/models/openai/gpt-4o-mini");
  ExpectErrorShape(one, 502, "upstream_error");
  EXPECT_NE(one.body.find("model list could not be read"), std::string::npos)
      << one.body;
  const Reply list = HttpGet(port_, "/v1/models");
  EXPECT_EQ(list.status, 200);  // the list route passes it on as it came
  EXPECT_EQ(list.body, "<html>bad gateway</html>");
  EXPECT_EQ(list.header("x-cache"), "MISS");
  EXPECT_EQ(HttpGet(port_, "/v1/models").header("x-cache"), "MISS");
  EXPECT_EQ((*bad)->requests(), 3u);
}

// Requests for the model list while it is being fetched wait for that one
// fetch (per API key: another key's answer may be a 401 for it), whether
// they ask for the list or one model.
TEST_F(ProxyTest, ConcurrentModelRequestsShareOneFetch) {
  fake::FakeOpenRouter* const slow = RestartOnSlowModels(400);
  ASSERT_NE(slow, nullptr);
  constexpr int kEach = 12;
  std::vector<Reply> replies(2 * kEach);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2 * kEach; ++i) {
    threads.emplace_back([&, i] {
      const std::string key = i % 2 == 0 ? "Bearer key-A" : "Bearer key-B";
      replies[i] = HttpGet(
          port_, i % 4 < 2 ? "/v1/models" : "/v1/models/openai/gpt-4o-mini",
          {{"Authorization", key}});
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 2 * kEach; ++i) {
    ASSERT_EQ(replies[i].status, 200) << i << replies[i].body;
    EXPECT_EQ(json::parse(replies[i].body).is_object(), true);
  }
  // One fetch per key (a request may find the list kept by the other
  // key's fetch, which ended first).
  EXPECT_GE(slow->requests(), 1u);
  EXPECT_LE(slow->requests(), 2u);
  const json::value stats = ProxyStats(port_);
  EXPECT_EQ(stats.at("proxy").at("models_fetches").to_number<uint64_t>(),
            slow->requests());
}

// A failed fetch is one upstream error however many requests waited for
// it; each of them is answered with it.
TEST_F(ProxyTest, AFailedModelFetchIsCountedOnce) {
  fake::FakeOpenRouter* const slow =
      RestartOnSlowModels(2000, [](ProxyOptions& o) {
        o.upstream.headers_timeout = std::chrono::milliseconds(500);
      });
  ASSERT_NE(slow, nullptr);
  constexpr int kWaiters = 6;
  std::vector<Reply> replies(kWaiters);
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] { replies[i] = HttpGet(port_, "/v1/models"); });
  }
  for (std::thread& t : threads) t.join();
  for (const Reply& r : replies) {
    EXPECT_EQ(r.status, 504) << r.body;
  }
  const json::value stats = ProxyStats(port_);
  const auto fetches =
      stats.at("proxy").at("models_fetches").to_number<uint64_t>();
  EXPECT_GE(fetches, 1u);
  EXPECT_LT(fetches, static_cast<uint64_t>(kWaiters));
  EXPECT_EQ(stats.at("proxy").at("models_errors").to_number<uint64_t>(),
            fetches);
}

// Stopping the proxy while requests wait for a model list fetch frees them
// (their sessions) before the workers they belong to (AddressSanitizer saw
// them destroyed after).
TEST_F(ProxyTest, StoppingWhileTheModelListIsFetchedFreesItsWaiters) {
  fake::FakeOpenRouter* const slow = RestartOnSlowModels(4000);
  ASSERT_NE(slow, nullptr);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([this] { (void)HttpGet(port_, "/v1/models"); });
  }
  ASSERT_TRUE(WaitFor([&] {
    return slow->requests() == 1 && proxy_->counters().in_flight == 2;
  }));
  proxy_->Shutdown(std::chrono::milliseconds(100));
  proxy_.reset();
  for (std::thread& t : threads) t.join();
}

TEST_F(ProxyTest, ModelsAreNotKeptWithZeroTtl) {
  Restart([](ProxyOptions& o) { o.models_ttl = 0ms; });
  const uint64_t before = fake_->requests();
  ASSERT_EQ(HttpGet(port_, "/v1/models").status, 200);
  ASSERT_EQ(HttpGet(port_, "/v1/models").status, 200);
  EXPECT_EQ(fake_->requests(), before + 2);
}

TEST_F(ProxyTest, ConnectionsOverTheLimitAreRefused) {
  Restart([](ProxyOptions& o) { o.max_connections = 1; });
  HttpConnection first(port_);
  ASSERT_EQ(first.Send("GET", "/healthz").status, 200);
  HttpConnection second(port_);
  const Reply r = second.Send("GET", "/healthz");
  EXPECT_TRUE(r.status == 503 || r.status == 0) << r.status;
  // The first connection still works, and a new one does after it closes.
  EXPECT_EQ(first.Send("GET", "/healthz").status, 200);
  EXPECT_GE(proxy_->counters().rejected_connections, 1u);
}

// Many clients at once on keep-alive connections, over a few keys, streams
// and plain requests mixed (run under ThreadSanitizer in CI): every request
// is answered with its own form, each key costs one upstream call, and the
// counters add up.
TEST_F(ProxyTest, ManyConnectionsAtOnce) {
  constexpr int kClients = 12, kEach = 15, kKeys = 10;
  std::atomic<int> bad{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      HttpConnection conn(port_);
      if (!conn.connected()) {
        ++bad;
        return;
      }
      for (int n = 0; n < kEach; ++n) {
        const bool stream = (c + n) % 2 == 0;
        const Reply r =
            conn.Send("POST", "/v1/chat/completions",
                      Body("openai/gpt-4o-mini", stream,
                           "key " + std::to_string((c * 7 + n) % kKeys)),
                      {{"Authorization", "Bearer key-A"}});
        const std::string type(r.header("content-type"));
        if (r.status != 200 ||
            type != (stream ? "text/event-stream" : "application/json")) {
          if (bad++ == 0) {
            ADD_FAILURE() << r.status << " " << type << " " << r.error << " "
                          << r.body;
          }
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(fake_->completions(), static_cast<uint64_t>(kKeys));
  const ProxyCounters counters = proxy_->counters();
  EXPECT_EQ(counters.hits + counters.misses,
            static_cast<uint64_t>(kClients * kEach));
}

TEST_F(ProxyTest, IdleKeepAliveConnectionsAreClosed) {
  Restart([](ProxyOptions& o) { o.idle_timeout = 200ms; });
  HttpConnection conn(port_);
  ASSERT_EQ(conn.Send("GET", "/healthz").status, 200);
  // Await the proxy closing the idle connection instead of sleeping past the
  // timeout: the read ends (end of stream) long before its own deadline.
  const auto start = std::chrono::steady_clock::now();
  conn.set_timeout(5s);
  const Reply closed = conn.Read();
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(closed.status, 0);
  EXPECT_FALSE(closed.timed_out) << "the idle connection was left open";
  EXPECT_LT(waited, 600ms);
  const Reply r = conn.Send("GET", "/healthz");
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(
      WaitFor([&] { return proxy_->counters().open_connections == 0; }));
  EXPECT_EQ(proxy_->counters().open_connections, 0u);
}

TEST_F(ProxyTest, SlowRequestsAreClosedAfterTheReadTimeout) {
  Restart([](ProxyOptions& o) { o.read_timeout = 200ms; });
  // Each read waits for the proxy to give up on the slow request and close
  // the connection (end of stream), well before the client's own deadline.
  HttpConnection conn(port_, 5s);
  conn.WriteRaw("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  const Reply headers = conn.Read();
  EXPECT_EQ(headers.status, 0);
  EXPECT_FALSE(headers.timed_out) << "a request with slow headers was kept";
  HttpConnection body(port_, 5s);
  body.WriteRaw(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Content-Length: 100\r\n\r\n{\"model\"");
  const Reply partial = body.Read();
  EXPECT_EQ(partial.status, 0);
  EXPECT_FALSE(partial.timed_out) << "a request with a slow body was kept";
}

// The read timeout bounds reads and writes, not the wait for the upstream:
// an answer slower than it, and a stream whose events come further apart,
// are served whole.
TEST_F(ProxyTest, TheReadTimeoutDoesNotCutAnAnswerBeingWaitedFor) {
  Restart([](ProxyOptions& o) { o.read_timeout = 200ms; });
  const Reply slow = Chat(Body("fake/delay-700"));
  EXPECT_EQ(slow.status, 200) << slow.error;
  EXPECT_EQ(slow.header("x-cache"), "MISS");
  const Reply stream = Chat(Body("fake/slow-300", /*stream=*/true));
  ASSERT_EQ(stream.status, 200) << stream.error;
  bool done = false;
  EXPECT_FALSE(SseContent(stream.body, &done).empty());
  EXPECT_TRUE(done) << stream.body;
  // The body read on its own, after 100 Continue: the same.
  const std::string split_body = Body("fake/delay-700", false, "split");
  HttpConnection split(port_, 5s);
  ASSERT_TRUE(split.WriteRaw(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Authorization: Bearer key-A\r\nContent-Type: application/json\r\n"
      "Expect: 100-continue\r\nContent-Length: " +
      std::to_string(split_body.size()) + "\r\n\r\n"));
  ASSERT_EQ(split.Read().status, 100);
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(split.WriteRaw(split_body));
  const Reply split_reply = split.Read();
  EXPECT_EQ(split_reply.status, 200) << split_reply.error;
  EXPECT_EQ(split_reply.header("x-cache"), "MISS");
  // Kept alive past the read timeout while idle (the idle timeout is 60 s).
  HttpConnection conn(port_);
  ASSERT_EQ(conn.Send("GET", "/healthz").status, 200);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(conn.Send("GET", "/healthz").status, 200) << conn.error();
}

// A client that stops reading a live stream is closed once a write has not
// finished for the read timeout (here with no backlog limit to close it
// first), and the access log says why.
TEST_F(ProxyTest, AClientThatStopsReadingIsClosedAfterTheWriteTimeout) {
  Restart([](ProxyOptions& o) {
    o.read_timeout = 500ms;
    o.max_stream_backlog_bytes = size_t{1} << 30;
  });
  asio::io_context ioc;
  tcp::socket sock(ioc);
  SendFromASmallWindow(sock, Body("fake/flood-64-every-20", true, "I stall"));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(WaitFor(
      [&] { return Logged("(client too slow: write timed out)"); }, 15s))
      << ::testing::PrintToString(Logs());
  // The flood takes 20 s; the socket buffers fill within a second or two.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_LT(DrainToTheEnd(sock), size_t{32} << 20);
  EXPECT_TRUE(
      WaitFor([&] { return proxy_->counters().open_connections == 0; }));
}

// A request waiting for its answer reads nothing from its connection. A
// client that closes meanwhile is noticed at once: its connection (and its
// place under max_connections) is freed while the call it waits for goes on.
// Here an identical request joins a flight and leaves; a new client gets in
// under a cap of two before the flight ends.
TEST_F(ProxyTest, AJoinerThatLeavesFreesItsConnectionAtOnce) {
  Restart([](ProxyOptions& o) { o.max_connections = 2; });
  const std::string body = Body("fake/delay-3000", false, "Leaving?");
  const Reply lead = LeaveBesideALeader(
      [&] { return Chat(body); }, [&] { return fake_->completions() == 1; },
      "POST", "/v1/chat/completions", body);
  EXPECT_EQ(lead.status, 200) << lead.error;
  EXPECT_EQ(lead.header("x-cache"), "MISS");
  EXPECT_EQ(lead.header("x-cache-stored"), "1");
  // The joiner's line, written as the flight ends.
  EXPECT_TRUE(WaitFor([&] { return Logged("(client gone)"); }))
      << ::testing::PrintToString(Logs());
  EXPECT_EQ(fake_->completions(), 1u);
}

// The same for a request that waits for the model list another request of
// its key is fetching: it leaves, and its place is freed before the fetch
// ends.
TEST_F(ProxyTest, AModelListWaiterThatLeavesFreesItsConnectionAtOnce) {
  fake::FakeOpenRouter* const slow =
      RestartOnSlowModels(3000, [](ProxyOptions& o) { o.max_connections = 2; });
  ASSERT_NE(slow, nullptr);
  const Reply lead = LeaveBesideALeader(
      [&] {
        return HttpGet(port_, "/v1/models",
                       {{"Authorization", "Bearer key-A"}});
      },
      [&] { return slow->requests() == 1; }, "GET", "/v1/models", "");
  EXPECT_EQ(lead.status, 200) << lead.error;
  EXPECT_EQ(slow->requests(), 1u);
}

// A request that leads the call and whose client leaves (here: shuts down
// its sending side) is closed at once too, but keeps its place until its
// call ends: max_connections bounds upstream connections as well. The
// answer it asked for is still stored (paid for once).
TEST_F(ProxyTest, ALeaderThatLeavesIsClosedAtOnceAndItsAnswerIsStored) {
  const std::string body = Body("fake/delay-3000", false, "Gone first");
  ASSERT_NO_FATAL_FAILURE(LeaveWhileItsCallRuns(body));
  const Reply again = Chat(body);
  EXPECT_EQ(again.status, 200) << again.error;
  EXPECT_EQ(again.header("x-cache"), "HIT");
  EXPECT_EQ(fake_->completions(), 1u);
  EXPECT_TRUE(WaitFor([&] { return Logged("(client gone)"); }))
      << ::testing::PrintToString(Logs());
}

// A stream that leaves before its first event is closed at once too. With
// nobody else waiting for it, its upstream stream is cancelled at its first
// event and nothing is stored.
TEST_F(ProxyTest, AStreamThatLeavesBeforeItsFirstEventIsClosedAtOnce) {
  const std::string body = Body("fake/delay-3000", true, "Gone streaming");
  ASSERT_NO_FATAL_FAILURE(LeaveWhileItsCallRuns(body));
  const Reply again = Chat(body);
  EXPECT_EQ(again.status, 200) << again.error;
  EXPECT_EQ(again.header("x-cache"), "MISS");
  EXPECT_EQ(fake_->completions(), 2u);
}

// A connection closed after its answer (Connection: close) drains what the
// client still sends for a moment, then is closed even if the client never
// closes its side.
TEST_F(ProxyTest, ALingeringConnectionIsClosedAfterTheLinger) {
  HttpConnection conn(port_);
  const auto start = std::chrono::steady_clock::now();
  const Reply r = conn.Send("GET", "/healthz", "", {{"Connection", "close"}});
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(proxy_->counters().open_connections, 1u);
  EXPECT_TRUE(
      WaitFor([&] { return proxy_->counters().open_connections == 0; }, 5s));
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GT(waited, 500ms);
  EXPECT_LT(waited, 3s);
}

TEST_F(ProxyTest, ExpectContinueIsAnswered) {
  HttpConnection conn(port_);
  const std::string body = Body("m/a");
  conn.WriteRaw(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Authorization: Bearer k\r\nExpect: 100-continue\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n");
  const Reply cont = conn.Read();
  EXPECT_EQ(cont.status, 100);
  conn.WriteRaw(body);
  const Reply r = conn.Read();
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.header("x-cache"), "MISS");
}

TEST_F(ProxyTest, ShutdownLetsInFlightRequestsFinish) {
  std::thread t([this] {
    const Reply r = Chat(Body("fake/delay-500"));
    EXPECT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.header("connection"), "close");
  });
  // Wait until the request is in flight.
  WaitFor([this] { return proxy_->counters().in_flight != 0; });
  ASSERT_EQ(proxy_->counters().in_flight, 1u);
  proxy_->Shutdown(5s);
  t.join();
  HttpConnection late(port_);
  EXPECT_FALSE(late.connected());
}

// Timeouts hold while shutting down: a request whose client stalls in the
// grace period is closed at its deadline instead of holding the shutdown
// for the whole grace.
TEST_F(ProxyTest, AClientStalledDuringShutdownIsClosedAtItsDeadline) {
  Restart([](ProxyOptions& o) { o.read_timeout = 300ms; });
  HttpConnection body(port_, 5s);
  ASSERT_TRUE(
      body.WriteRaw("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Authorization: Bearer key-A\r\nContent-Length: 100\r\n\r\n"
                    "{\"model\""));
  ASSERT_TRUE(WaitFor([this] { return proxy_->counters().in_flight != 0; }));
  const auto start = std::chrono::steady_clock::now();
  proxy_->Shutdown(20s);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 10s);
  EXPECT_EQ(proxy_->counters().in_flight, 0u);
  const Reply partial = body.Read();
  EXPECT_EQ(partial.status, 0);
  EXPECT_FALSE(partial.timed_out);
}

}  // namespace
}  // namespace llmcache::net
