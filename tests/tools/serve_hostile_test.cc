// Hostile clients against `llmcache serve` (the built binary, as a
// subprocess, in front of the fake OpenRouter run in this process; loopback
// only): slow headers, slow bodies, idle keep-alive connections, pipelined
// requests, request smuggling (Content-Length with Transfer-Encoding,
// unknown transfer codings, duplicate lengths), bodies and headers over the
// limits, deeply nested and huge JSON. Each must get its documented answer
// (README "The caching proxy", llmcache/net/proxy.h) within its deadline,
// while a well-behaved client keeps getting answers.
//
// The server runs with short limits so that the test is quick: read and idle
// timeouts of 1 s, a 1 MiB body limit, a 4 KiB header limit.
//
// Deadlines are checked with generous slack (the server is a separate
// process; the machine may be loaded): they catch a missing timeout, not a
// slow one.
//
// Request smuggling, for reference: RFC 9112 section 6.1 and 6.3 (a request
// with both Transfer-Encoding and Content-Length, or whose final transfer
// coding is not chunked, cannot be framed reliably: answer 400 and close)
// and section 6.1 (a transfer coding the server does not understand: 501).

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fake_openrouter.h"
#include "testing/http_client.h"
#include "testing/status_matchers.h"
#include "testing/subprocess.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

#ifndef LLMCACHE_BIN
#error "LLMCACHE_BIN must name the llmcache executable"
#endif

namespace llmcache {
namespace {

using ::llmcache::testing::HttpReply;
using ::llmcache::testing::WaitFor;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kReadTimeout = 1s;
constexpr auto kIdleTimeout = 1s;
constexpr size_t kMaxBody = 1u << 20;
constexpr size_t kMaxHeader = 4u << 10;
// How late past its deadline the server may close a connection.
constexpr auto kSlack = 3s;

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::string Body(const std::string& model, const std::string& text = "hi") {
  return R"({"model":")" + model +
         R"(","temperature":0,"messages":[{"role":"user","content":")" + text +
         R"("}]})";
}

// A raw TCP connection to 127.0.0.1:port: bytes exactly as given, for what
// a well-behaved client (HttpConnection) would never send.
class RawConn {
 public:
  explicit RawConn(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      error_ = std::strerror(errno);
      close(fd_);
      fd_ = -1;
      return;
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~RawConn() {
    if (fd_ >= 0) close(fd_);
  }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;

  bool ok() const { return fd_ >= 0; }
  const std::string& error() const { return error_; }

  // False once the peer has closed (EPIPE, ECONNRESET).
  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads what arrives within `timeout`; true if the peer closed (EOF or
  // reset) by then. *out receives the bytes.
  bool ReadUntilClosed(std::chrono::milliseconds timeout, std::string* out) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      const int r = poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      char buf[65536];
      const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return true;
      out->append(buf, static_cast<size_t>(n));
    }
  }

  // Whether something (data, EOF or an error) is readable now or within
  // `timeout`.
  bool Readable(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    return poll(&p, 1, static_cast<int>(timeout.count())) > 0;
  }

 private:
  int fd_ = -1;
  std::string error_;
};

// The status codes of the responses in `raw` (status lines at the start of
// the text or after a blank line; bodies here never hold "HTTP/1.1 ").
std::vector<int> Statuses(const std::string& raw) {
  std::vector<int> out;
  size_t pos = 0;
  while ((pos = raw.find("HTTP/1.1 ", pos)) != std::string::npos) {
    if (pos == 0 || raw.compare(pos - 2, 2, "\r\n") == 0 ||
        raw.compare(pos - 1, 1, "}") == 0) {
      out.push_back(std::atoi(raw.c_str() + pos + 9));
    }
    pos += 9;
  }
  return out;
}

// A well-behaved client that keeps sending requests (a health check and a
// completion, each on a fresh connection) while a test misbehaves beside
// it, and counts what did not come back right.
class Bystander {
 public:
  // Sends its completions once first, so that they are cached and the
  // upstream sees none of its requests afterwards.
  explicit Bystander(uint16_t port) : port_(port) {
    for (int i = 0; i < kBodies; ++i) {
      ::llmcache::testing::HttpPost(port_, "/v1/chat/completions", BodyFor(i),
                                    {{"Authorization", "Bearer k"}}, 5s);
    }
    thread_ = std::thread([this] { Run(); });
  }
  ~Bystander() { Stop(); }

  // Stops and returns a description of the failures ("" if none).
  std::string Stop() {
    if (thread_.joinable()) {
      stop_.store(true);
      thread_.join();
    }
    return failures_;
  }
  int answered() const { return answered_.load(); }

 private:
  void Run() {
    int i = 0;
    while (!stop_.load()) {
      const auto t0 = Clock::now();
      HttpReply r =
          (i++ % 2 == 0)
              ? ::llmcache::testing::HttpGet(port_, "/healthz", {}, 5s)
              : ::llmcache::testing::HttpPost(
                    port_, "/v1/chat/completions", BodyFor(i % kBodies),
                    {{"Authorization", "Bearer k"}}, 5s);
      if (r.status == 200) {
        answered_.fetch_add(1);
      } else if (failures_.size() < 2000) {
        failures_ += "status " + std::to_string(r.status) + " after " +
                     std::to_string(Seconds(Clock::now() - t0)) +
                     " s: " + r.error + "; ";
      }
      std::this_thread::sleep_for(50ms);
    }
  }

  static constexpr int kBodies = 4;
  static std::string BodyFor(int i) {
    return Body("bystander/m", "b" + std::to_string(i));
  }

  const uint16_t port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  std::string failures_;
  std::thread thread_;
};

class ServeHostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto f = fake::FakeOpenRouter::Start(fake::FakeOptions{});
    ASSERT_OK(f);
    fake_ = std::move(f).value();
  }

  std::vector<std::string> ServeArgv() {
    return {LLMCACHE_BIN,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            dir_.Sub("db"),
            "--upstream",
            fake_->base_url(),
            "--threads",
            "2",
            "--read-timeout",
            "1",
            "--idle-timeout",
            "1",
            "--max-body-bytes",
            std::to_string(kMaxBody),
            "--max-header-bytes",
            std::to_string(kMaxHeader),
            "--log-level",
            "warn"};
  }

  // Starts `argv` (serve) and waits for its port; 0 if it did not start.
  uint16_t StartServe(const std::vector<std::string>& argv) {
    ::llmcache::testing::BackgroundOptions o;
    o.drop_env_prefixes = ::llmcache::testing::kLlmcacheEnvironment;
    o.stdout_path = dir_.Sub("serve.out");
    o.stderr_path = dir_.Sub("serve.err");
    serve_ = std::make_unique<::llmcache::testing::BackgroundProcess>(argv, o);
    uint16_t port = 0;
    WaitFor(
        [&] {
          const std::string out = serve_->Out();
          const size_t at = out.find("listening on http://");
          if (at != std::string::npos) {
            const size_t colon = out.find(':', at + 20);
            const size_t end = out.find_first_not_of("0123456789", colon + 1);
            if (colon != std::string::npos && end != std::string::npos) {
              port = static_cast<uint16_t>(
                  std::stoi(out.substr(colon + 1, end - colon - 1)));
              return true;
            }
          }
          return serve_->Exited();
        },
        30s);
    return port;
  }

  void StartDefault() {
    port_ = StartServe(ServeArgv());
    ASSERT_NE(port_, 0) << serve_->Err();
  }

  // After a hostile client: the server still answers, and the bystander got
  // every answer.
  void ExpectStillServing(Bystander& b) {
    // At least a couple of its requests overlap or follow the hostile one.
    WaitFor([&] { return b.answered() >= 2; }, 10s);
    const std::string failures = b.Stop();
    EXPECT_EQ(failures, "") << "a normal client was not served meanwhile";
    EXPECT_GT(b.answered(), 0);
    EXPECT_EQ(::llmcache::testing::HttpGet(port_, "/healthz", {}, 5s).status,
              200);
    EXPECT_FALSE(serve_->Exited()) << serve_->Err();
  }

  ::llmcache::testing::TempDir dir_;
  std::unique_ptr<fake::FakeOpenRouter> fake_;
  std::unique_ptr<::llmcache::testing::BackgroundProcess> serve_;
  uint16_t port_ = 0;
};

// Header bytes a tenth of a second apart, forever: the connection must be
// closed (or answered 408) once the read timeout has passed.
TEST_F(ServeHostileTest, SlowHeadersAreCutAtTheReadTimeout) {
  ASSERT_NO_FATAL_FAILURE(StartDefault());
  Bystander b(port_);
  const uint64_t upstream = fake_->completions();
  RawConn c(port_);
  ASSERT_TRUE(c.ok()) << c.error();
  const auto t0 = Clock::now();
  const std::string head =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  std::string got;
  bool closed = false;
  for (size_t i = 0; Clock::now() - t0 < kReadTimeout + kSlack; ++i) {
    if (!c.Send(std::string_view(&head[i % head.size()], 1))) {
      closed = true;
      break;
    }
    if (c.Readable(100ms)) {
      closed = c.ReadUntilClosed(2s, &got);
      break;
    }
  }
  const auto elapsed = Clock::now() - t0;
  EXPECT_TRUE(closed) << "still open after " << Seconds(elapsed) << " s";
  EXPECT_GE(elapsed, kReadTimeout - 100ms) << "closed before the timeout";
  if (!got.empty()) {
    EXPECT_EQ(Statuses(got), std::vector<int>{408}) << got;
  }
  EXPECT_EQ(fake_->completions(), upstream);
  ExpectStillServing(b);
}

// A body trickling in a byte per 100 ms is cut at the read timeout.
TEST_F(ServeHostileTest, SlowBodyIsCutAtTheReadTimeout) {
  ASSERT_NO_FATAL_FAILURE(StartDefault());
  Bystander b(port_);
  const uint64_t upstream = fake_->completions();
  RawConn c(port_);
  ASSERT_TRUE(c.ok()) << c.error();
  const std::string body = Body("slow/body");
  ASSERT_TRUE(
      c.Send("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Content-Type: application/json\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n"));
  const auto t0 = Clock::now();
  std::string got;
  bool closed = false;
  for (size_t i = 0;
       i < body.size() && Clock::now() - t0 < kReadTimeout + kSlack; ++i) {
    if (!c.Send(std::string_view(&body[i], 1))) {
      closed = true;
      break;
    }
    if (c.Readable(100ms)) {
      closed = c.ReadUntilClosed(2s, &got);
      break;
    }
  }
  const auto elapsed = Clock::now() - t0;
  EXPECT_TRUE(closed) << "still open after " << Seconds(elapsed) << " s";
  EXPECT_GE(elapsed, kReadTimeout - 100ms);
  if (!got.empty()) {
    EXPECT_EQ(Statuses(got), std::vector<int>{408}) << got;
  }
  EXPECT_EQ(fake_->completions(), upstream) << "the cut request went upstream";
  ExpectStillServing(b);
}

// A keep-alive connection that sends nothing after its first request is
// closed after the idle timeout.
TEST_F(ServeHostileTest, IdleKeepAliveIsClosedAfterTheIdleTimeout) {
  ASSERT_NO_FATAL_FAILURE(StartDefault());
  Bystander b(port_);
  const uint64_t upstream = fake_->completions();
  RawConn c(port_);
  ASSERT_TRUE(c.ok()) << c.error();
  ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  std::string got;
  const auto t0 = Clock::now();
  const bool closed = c.ReadUntilClosed(kIdleTimeout + kSlack, &got);
  const auto elapsed = Clock::now() - t0;
  EXPECT_EQ(Statuses(got), std::vector<int>{200}) << got;
  EXPECT_TRUE(closed) << "idle connection still open after " << Seconds(elapsed)
                      << " s";
  EXPECT_GE(elapsed, kIdleTimeout - 100ms) << "closed before the idle timeout";
  EXPECT_EQ(fake_->completions(), upstream);
  ExpectStillServing(b);
}

// Several requests in one write are answered, in order, on the connection.
TEST_F(ServeHostileTest, PipelinedRequestsAreAnsweredInOrder) {
  ASSERT_NO_FATAL_FAILURE(StartDefault());
  Bystander b(port_);
  const uint64_t upstream = fake_->completions();
  const std::string body = Body("pipe/m");
  const std::string post =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Authorization: Bearer k\r\n"
      "Content-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  ::llmcache::testing::HttpConnection c(port_, 5s);
  ASSERT_TRUE(c.connected()) << c.error();
  ASSERT_TRUE(c.WriteRaw(
      post + "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + post +
      "GET /no-such-route HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" +
      "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  const HttpReply r1 = c.Read();
  EXPECT_EQ(r1.status, 200) << r1.error << r1.body;
  EXPECT_EQ(r1.header("X-Cache"), "MISS");
  const HttpReply r2 = c.Read();
  EXPECT_EQ(r2.status, 200) << r2.error;
  EXPECT_EQ(r2.body, R"({"status":"ok"})");
  const HttpReply r3 = c.Read();
  EXPECT_EQ(r3.status, 200) << r3.error;
  EXPECT_EQ(r3.header("X-Cache"), "HIT");
  EXPECT_EQ(r3.body, r1.body);
  const HttpReply r4 = c.Read();
  EXPECT_EQ(r4.status, 404) << r4.error;
  const HttpReply r5 = c.Read();
  EXPECT_EQ(r5.status, 200) << r5.error;
  EXPECT_EQ(fake_->completions(), upstream + 1);
  ExpectStillServing(b);
}

// Sends `request` (with a smuggled GET /healthz after what a
// Content-Length-only reader would see as its end) and expects exactly one
// answer with a status in `allowed`, then the connection closed.
void ExpectRejectedWithoutSmuggling(uint16_t port, const std::string& request,
                                    std::vector<int> allowed) {
  SCOPED_TRACE(request);
  RawConn c(port);
  ASSERT_TRUE(c.ok()) << c.error();
  ASSERT_TRUE(c.Send(request));
  std::string got;
  const bool closed = c.ReadUntilClosed(5s, &got);
  const std::vector<int> statuses = Statuses(got);
  ASSERT_EQ(statuses.size(), 1u) << "answers: " << got;
  EXPECT_NE(std::find(allowed.begin(), allowed.end(), statuses[0]),
            allowed.end())
      << got;
  EXPECT_TRUE(closed) << "the connection stayed open after: " << got;
}

TEST_F(ServeHostileTest, ContentLengthWithTransferEncodingIsRejected) {
  ASSERT_NO_FATAL_FAILURE(StartDefault());
  Bystander b(port_);
  const uint64_t upstream = fake_->completions();
  const std::string smuggled =
      "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  // CL.TE: a Content-Length reader takes the chunk and the smuggled request
  // as the body; a chunked reader ends at "0" and sees a second request.
  const std::string chunked_body = "0\r\n\r\n" + smuggled;
  ExpectRejectedWithoutSmuggling(port_,
                                 "POST /v1/chat/completions HTTP/1.1\r\nHost: "
                                 "127.0.0.1\r\nContent-Length: " +
                                     std::to_string(chunked_body.size()) +
                                     "\r\nTransfer-Encoding: chunked\r\n\r\n" +
                                     chunked_body,
                                 {400});
  // TE.CL: the same, fields in the other order.
  ExpectRejectedWithoutSmuggling(port_,
                                 "POST /v1/chat/completions HTTP/1.1\r\nHost: "
                                 "127.0.0.1\r\nTransfer-Encoding: "
                                 "chunked\r\nContent-Length: 4\r\n\r\n" +
                                     chunked_body,
                                 {400});
  // Two different Content-Lengths.
  ExpectRejectedWithoutSmuggling(port_,
                                 "POST /v1/chat/completions HTTP/1.1\r\nHost: "
                                 "127.0.0.1\r\nContent-Length: 0\r\n"
                                 "Content-Length: " +
                                     std::to_string(smuggled.size()) +
                                     "\r\n\r\n" + smuggled,
                                 {400});
  // Transfer-Encoding twice.
  ExpectRejectedWithoutSmuggling(
      port_,
      "POST /v1/chat/completions HTTP/1.1\r\nHost: "
      "127.0.0.1\r\nTransfer-Encoding: "
      "chunked\r\nTransfer-Encoding: chunked\r\n\r\n" +
          chunked_body,
      {400});
  EXPECT_EQ(fake_->completions(), upstream);
  ExpectStillServing(b);
}

// A transfer coding the server does not implement, or chunked not last:
// the body's length is unknown, so the request must be refused (501 or 400)
// and the connection closed, never read as a body-less request followed by
// whatever the "body" holds.
TEST_F(ServeHostileTest, UnknownTransferCodingIsRejectedWithoutSmuggling) {
  ASSERT_NO_FATAL_FAILURE(StartDefault());
  Bystander b(port_);
  const uint64_t upstream = fake_->completions();
  const std::string smuggled =
      "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  for (const char* coding : {"gzip", "chunked, gzip", "identity", "x-custom"}) {
    ExpectRejectedWithoutSmuggling(
        port_,
        std::string("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Transfer-Encoding: ") +
            coding + "\r\n\r\n" + smuggled,
        {400, 501});
  }
  EXPECT_EQ(fake_->completions(), upstream);
  ExpectStillServing(b);
}

// A coding applied before chunked (or chunked with parameters, which it has
// none of): the chunked framing would be read, the coding ignored, and the
// compressed bytes taken for JSON. Refused with 501, as RFC 9112 6.1 asks,
// and closed; "Chunked" in any case is chunked.
TEST_F(ServeHostileTest, CodingsBeforeChunkedAreRejected) {
  ASSERT_NO_FATAL_FAILURE(StartDefault());
  Bystander b(port_);
  const uint64_t upstream = fake_->completions();
  const std::string json =
      R"({"model":"m/te","temperature":0,"messages":[{"role":"user",)"
      R"("content":"te"}]})";
  char size[16];
  std::snprintf(size, sizeof(size), "%zx", json.size());
  const std::string chunked =
      std::string(size) + "\r\n" + json + "\r\n0\r\n\r\n";
  const std::string head =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const char* te :
       {"Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: deflate,chunked\r\n",
        "Transfer-Encoding: chunked;foo=bar\r\n",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"}) {
    ExpectRejectedWithoutSmuggling(port_, head + te + "\r\n" + chunked, {501});
  }
  EXPECT_EQ(fake_->completions(), upstream);
  // The Anthropic endpoint answers the refusal in its own error shape.
  {
    RawConn c(port_);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(
        c.Send("POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Transfer-Encoding: gzip, chunked\r\n\r\n" +
               chunked));
    std::string got;
    c.ReadUntilClosed(5s, &got);
    EXPECT_EQ(Statuses(got), std::vector<int>{501}) << got;
    EXPECT_NE(got.find(R"("type":"error")"), std::string::npos) << got;
  }
  RawConn c(port_);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c.Send(head +
                     "Transfer-Encoding: Chunked\r\n"
                     "Authorization: Bearer k\r\nConnection: close\r\n\r\n" +
                     chunked));
  std::string got;
  c.ReadUntilClosed(5s, &got);
  EXPECT_EQ(Statuses(got), std::vector<int>{200}) << got;
  ExpectStillServing(b);
}

TEST_F(ServeHostileTest, BodyOverTheLimitIs413) {
  ASSERT_NO_FATAL_FAILURE(StartDefault());
  Bystander b(port_);
  const uint64_t upstream = fake_->completions();
  {
    // Announced: answered from the headers, before the body is sent.
    RawConn c(port_);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(
        c.Send("POST /v1/chat/completions HTTP/1.1\r\nHost: "
               "127.0.0.1\r\nContent-Length: " +
               std::to_string(kMaxBody + 1) + "\r\n\r\n"));
    std::string got;
    c.ReadUntilClosed(5s, &got);
    EXPECT_EQ(Statuses(got), std::vector<int>{413}) << got;
    EXPECT_NE(got.find("request_too_large"), std::string::npos) << got;
  }
  {
    // On /v1/messages in Anthropic's error shape.
    RawConn c(port_);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(
        c.Send("POST /v1/messages HTTP/1.1\r\nHost: "
               "127.0.0.1\r\nContent-Length: " +
               std::to_string(kMaxBody + 1) + "\r\n\r\n"));
    std::string got;
    c.ReadUntilClosed(5s, &got);
    EXPECT_EQ(Statuses(got), std::vector<int>{413}) << got;
    EXPECT_NE(got.find(R"("type":"error")"), std::string::npos) << got;
  }
  {
    // Chunked: found out while reading.
    RawConn c(port_);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(
        c.Send("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Transfer-Encoding: chunked\r\n\r\n"));
    const std::string chunk(64u << 10, 'x');
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", chunk.size());
    for (size_t sent = 0; sent <= kMaxBody; sent += chunk.size()) {
      if (!c.Send(std::string(size) + chunk + "\r\n")) break;
    }
    std::string got;
    c.ReadUntilClosed(5s, &got);
    EXPECT_EQ(Statuses(got), std::vector<int>{413}) << got.substr(0, 300);
  }
  EXPECT_EQ(fake_->completions(), upstream);
  ExpectStillServing(b);
}

TEST_F(ServeHostileTest, HeadersOverTheLimitAre431) {
  ASSERT_NO_FATAL_FAILURE(StartDefault());
  Bystander b(port_);
  const uint64_t upstream = fake_->completions();
  for (const size_t n : {kMaxHeader + 1, size_t{64} << 10}) {
    RawConn c(port_);
    ASSERT_TRUE(c.ok());
    c.Send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " +
           std::string(n, 'h') + "\r\n\r\n");
    std::string got;
    c.ReadUntilClosed(5s, &got);
    EXPECT_EQ(Statuses(got), std::vector<int>{431}) << got.substr(0, 300);
    EXPECT_NE(got.find("request_header_fields_too_large"), std::string::npos);
  }
  // Many small headers add up the same way.
  {
    RawConn c(port_);
    ASSERT_TRUE(c.ok());
    std::string head = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (int i = 0; head.size() <= 2 * kMaxHeader; ++i) {
      head += "X-H" + std::to_string(i) + ": v\r\n";
    }
    c.Send(head + "\r\n");
    std::string got;
    c.ReadUntilClosed(5s, &got);
    EXPECT_EQ(Statuses(got), std::vector<int>{431}) << got.substr(0, 300);
  }
  // A head one byte over the limit, in three fields each far under it (and
  // sent in pieces, as a client's writes arrive), is refused; one of exactly
  // the limit is served.
  for (const size_t extra : {size_t{1}, size_t{0}}) {
    const std::string start =
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    const size_t fields = kMaxHeader + extra - start.size() - 2;
    std::string head = start;
    for (int i = 0; i < 3; ++i) {
      const size_t size = i < 2 ? fields / 3 : fields - 2 * (fields / 3);
      head += "X-P" + std::to_string(i) + ": " + std::string(size - 8, 'p') +
              "\r\n";
    }
    head += "\r\n";
    ASSERT_EQ(head.size(), kMaxHeader + extra);
    RawConn c(port_);
    ASSERT_TRUE(c.ok());
    for (size_t at = 0; at < head.size(); at += 3000) {
      c.Send(head.substr(at, 3000));
      std::this_thread::sleep_for(5ms);
    }
    std::string got;
    c.ReadUntilClosed(5s, &got);
    EXPECT_EQ(Statuses(got), std::vector<int>{extra == 0 ? 200 : 431})
        << got.substr(0, 300);
  }
  // On /v1/messages in Anthropic's error shape (the route from the request
  // line: the head itself is never parsed).
  {
    RawConn c(port_);
    ASSERT_TRUE(c.ok());
    c.Send(
        "POST /v1/messages?beta=true HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "X-Big: " +
        std::string(kMaxHeader + 1, 'h') + "\r\n\r\n");
    std::string got;
    c.ReadUntilClosed(5s, &got);
    EXPECT_EQ(Statuses(got), std::vector<int>{431}) << got.substr(0, 300);
    EXPECT_NE(got.find(R"("type":"error")"), std::string::npos) << got;
    EXPECT_NE(got.find("request headers larger than"), std::string::npos);
  }
  EXPECT_EQ(fake_->completions(), upstream);
  ExpectStillServing(b);
}

// 100,000 nested arrays: a 400 (the key builder's depth limit), quickly, and
// the server is still there (no stack overflow).
TEST_F(ServeHostileTest, DeeplyNestedJsonIs400) {
  ASSERT_NO_FATAL_FAILURE(StartDefault());
  Bystander b(port_);
  const uint64_t upstream = fake_->completions();
  for (
      const std::string& body :
      {R"({"model":"deep/m","temperature":0,"messages":)" +
           std::string(100'000, '['),
       R"({"model":"deep/m","temperature":0,"messages":[{"role":"user","content":)" +
           std::string(50'000, '[') + std::string(50'000, ']') + "}]}",
       std::string(100'000, '{')}) {
    const auto t0 = Clock::now();
    const HttpReply r =
        ::llmcache::testing::HttpPost(port_, "/v1/chat/completions", body,
                                      {{"Authorization", "Bearer k"}}, 10s);
    EXPECT_EQ(r.status, 400) << r.error << r.body.substr(0, 300);
    EXPECT_NE(r.body.find("invalid_request_error"), std::string::npos);
    EXPECT_LT(Clock::now() - t0, 5s);
  }
  EXPECT_EQ(fake_->completions(), upstream);
  ExpectStillServing(b);
}

// A large request within the body limit is answered (and cached).
TEST_F(ServeHostileTest, HugeJsonWithinTheLimitIsAnswered) {
  ASSERT_NO_FATAL_FAILURE(StartDefault());
  Bystander b(port_);
  const uint64_t upstream = fake_->completions();
  // ~900 KiB: one long message and many small ones.
  std::string messages = "[";
  for (int i = 0; i < 5000; ++i) {
    messages += R"({"role":"user","content":"message )" + std::to_string(i) +
                R"( of many"},)";
  }
  messages +=
      R"({"role":"user","content":")" + std::string(700'000, 'z') + R"("}])";
  const std::string body =
      R"({"model":"huge/m","temperature":0,"messages":)" + messages + "}";
  ASSERT_LT(body.size(), kMaxBody);
  ASSERT_GT(body.size(), kMaxBody * 8 / 10);
  for (const char* expected : {"MISS", "HIT"}) {
    const HttpReply r =
        ::llmcache::testing::HttpPost(port_, "/v1/chat/completions", body,
                                      {{"Authorization", "Bearer k"}}, 20s);
    EXPECT_EQ(r.status, 200) << r.error << r.body.substr(0, 300);
    EXPECT_EQ(r.header("X-Cache"), expected);
  }
  EXPECT_EQ(fake_->completions(), upstream + 1);
  ExpectStillServing(b);
}

// Connections far beyond what the process's descriptors allow: `llmcache
// serve` runs with RLIMIT_NOFILE 256 (soft and hard, so it cannot raise it)
// and 10,000 clients connect and each sends a request. Every connection must
// be answered (200, or 503 overloaded beyond the cap) or refused promptly,
// none left hanging; the server must not spin while they wait; once they
// are gone, a normal request succeeds.
// (Before the cap, accept() failed with EMFILE and the connections beyond
// it waited in the listen backlog unanswered.)
TEST_F(ServeHostileTest, TenThousandConnectionsAgainstALowFdLimit) {
  rlimit lim{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  constexpr size_t kConnections = 10'000;
  if (lim.rlim_cur < kConnections + 200 && lim.rlim_max >= kConnections + 200) {
    lim.rlim_cur = kConnections + 200;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
  }
  ASSERT_GE(lim.rlim_cur, kConnections + 200)
      << "this test needs " << kConnections + 200 << " descriptors";

  std::vector<std::string> argv = {"/bin/sh", "-c",
                                   "ulimit -n 256 && exec \"$@\"", "sh"};
  for (const std::string& a : ServeArgv()) argv.push_back(a);
  port_ = StartServe(argv);
  ASSERT_NE(port_, 0) << serve_->Err();

  struct Conn {
    int fd = -1;
    std::string got;
    bool done = false;  // answered, refused, reset or closed
  };
  std::vector<Conn> conns(kConnections);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port_);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::string request =
      "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  const auto t0 = Clock::now();
  size_t refused = 0;
  for (Conn& c : conns) {
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ASSERT_GE(c.fd, 0) << std::strerror(errno);
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 &&
        errno != EINPROGRESS) {
      c.done = true;
      ++refused;
    }
  }
  // Send each request once connected; collect answers and closes.
  std::vector<bool> sent(kConnections, false);
  const auto deadline = t0 + 20s;
  size_t open = kConnections - refused;
  long cpu_before = -1;
  auto serve_cpu_ticks = [&]() -> long {
    std::ifstream f("/proc/" + std::to_string(serve_->pid()) + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)),
                  std::istreambuf_iterator<char>());
    const size_t close = s.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream rest(s.substr(close + 2));
    std::string skip;
    for (int i = 0; i < 11; ++i) rest >> skip;  // fields 3..13
    long ut = 0, st = 0;
    rest >> ut >> st;
    return ut + st;
  };
  while (open > 0 && Clock::now() < deadline) {
    std::vector<pollfd> fds;
    std::vector<size_t> idx;
    for (size_t i = 0; i < conns.size(); ++i) {
      if (conns[i].done) continue;
      fds.push_back(
          {conns[i].fd, static_cast<short>(sent[i] ? POLLIN : POLLOUT), 0});
      idx.push_back(i);
    }
    if (poll(fds.data(), fds.size(), 100) < 0) break;
    for (size_t k = 0; k < fds.size(); ++k) {
      Conn& c = conns[idx[k]];
      if (fds[k].revents == 0) continue;
      if (!sent[idx[k]]) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 ||
            send(c.fd, request.data(), request.size(), MSG_NOSIGNAL) < 0) {
          c.done = true;
          --open;
          continue;
        }
        sent[idx[k]] = true;
        continue;
      }
      char buf[4096];
      const ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
      if (n > 0) c.got.append(buf, static_cast<size_t>(n));
      if (n <= 0 || c.got.find("\r\n\r\n") != std::string::npos) {
        c.done = true;
        --open;
      }
    }
    if (cpu_before < 0 && Clock::now() - t0 > 2s)
      cpu_before = serve_cpu_ticks();
  }
  const long cpu_after = serve_cpu_ticks();
  size_t ok = 0, overloaded = 0, closed = 0, other = 0, hanging = 0;
  for (const Conn& c : conns) {
    if (!c.done) {
      ++hanging;
    } else if (c.got.empty()) {
      ++closed;
    } else if (c.got.starts_with("HTTP/1.1 200")) {
      ++ok;
    } else if (c.got.starts_with("HTTP/1.1 503")) {
      ++overloaded;
      EXPECT_NE(c.got.find("overloaded"), std::string::npos) << c.got;
    } else {
      ++other;
    }
  }
  std::printf(
      "10000 connections: %zu answered 200, %zu answered 503, %zu "
      "refused or closed, %zu other, %zu unanswered after %.1f s\n",
      ok, overloaded, closed + refused, other, hanging,
      Seconds(Clock::now() - t0));
  EXPECT_EQ(hanging, 0u) << "connections neither answered nor refused";
  EXPECT_EQ(other, 0u);
  EXPECT_GT(ok, 0u);
  // Not spinning: while the connections waited, the server used well under
  // one core (clock ticks are 10 ms; the window is several seconds).
  if (cpu_before >= 0 && cpu_after >= 0) {
    const long hz = sysconf(_SC_CLK_TCK);
    EXPECT_LT(static_cast<double>(cpu_after - cpu_before) / hz,
              0.5 * Seconds(Clock::now() - t0))
        << "the server spun while connections waited";
  }
  for (Conn& c : conns) close(c.fd);
  // Afterwards, normal service.
  HttpReply r;
  EXPECT_TRUE(WaitFor(
      [&] {
        r = ::llmcache::testing::HttpGet(port_, "/healthz", {}, 2s);
        return r.status == 200;
      },
      10s))
      << r.status << " " << r.error;
  // The server may still be closing its side of the 10000 connections (they
  // count against its connection limit until then): a 503 "overloaded"
  // meanwhile, then 200 (seen once on a loaded machine).
  int status = 0;
  EXPECT_TRUE(WaitFor(
      [&] {
        status = ::llmcache::testing::HttpPost(
                     port_, "/v1/chat/completions", Body("after/m"),
                     {{"Authorization", "Bearer k"}}, 10s)
                     .status;
        return status == 200;
      },
      10s))
      << status;
  EXPECT_FALSE(serve_->Exited()) << serve_->Err();
}

}  // namespace
}  // namespace llmcache
