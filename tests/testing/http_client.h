// A blocking HTTP/1.1 client for tests that talk to a server over loopback
// (the proxy in-process, `llmcache serve` as a subprocess): one keep-alive
// connection, requests with any method, target, headers and body, replies
// with status, headers (case-insensitive lookup) and body, chunked and SSE
// bodies read whole or piece by piece as they arrive.
//
//   llmcache::testing::HttpReply r =
//       llmcache::testing::HttpPost(port, "/v1/chat/completions", body);
//   EXPECT_EQ(r.status, 200) << r.error;
//   EXPECT_EQ(r.header("X-Cache"), "MISS");
//
// Every operation (connect, write, read of a response, read of one body
// piece) has a deadline, so a hung server fails the test instead of hanging
// it. Beast lives only in http_client.cc (the llmcache_testing_http library).
//
// Thread safety: one HttpConnection per thread; the free functions may be
// called from any thread.

#ifndef LLMCACHE_TESTS_TESTING_HTTP_CLIENT_H_
#define LLMCACHE_TESTS_TESTING_HTTP_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llmcache::testing {

// Header lines in order; names as sent or received.
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// Deadline of each operation unless the caller says otherwise.
inline constexpr std::chrono::milliseconds kHttpTimeout{10'000};

struct HttpReply {
  // The response status; 0 when no complete response was read (connection
  // refused, closed or reset, timed out, malformed): then `error` says why,
  // and headers and body are empty so that no assertion passes on a partial
  // response.
  int status = 0;
  HttpHeaders headers;     // as received, in order
  std::string body;        // decoded (no chunk framing)
  std::string error;       // "" when the response was read completely
  bool timed_out = false;  // the deadline passed (a hung server)

  // The value of the first header called `name` (any case), "" if none.
  std::string header(std::string_view name) const;
  // Whether a header called `name` (any case) is present.
  bool has_header(std::string_view name) const;
  // How many headers are called `name` (any case).
  size_t header_count(std::string_view name) const;
};

// One client connection to 127.0.0.1:<port>, kept alive across requests.
class HttpConnection {
 public:
  // Connects (blocking, at most `timeout`); see connected() and error().
  explicit HttpConnection(uint16_t port,
                          std::chrono::milliseconds timeout = kHttpTimeout);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  bool connected() const;
  // Why the last operation failed ("" if it did not).
  const std::string& error() const;
  // Whether the last operation failed because its deadline passed.
  bool timed_out() const;
  // The deadline of each later operation.
  void set_timeout(std::chrono::milliseconds timeout);

  // Writes a request and reads its response. Host is 127.0.0.1 unless given.
  // For POST, PUT and PATCH, Content-Type is application/json unless given
  // and Content-Length is always set; for other methods only when there is a
  // body. `headers` are added as given (a name may repeat).
  HttpReply Send(std::string_view method, std::string_view target,
                 std::string_view body = {}, const HttpHeaders& headers = {});

  // Writes a request (framed as Send does) without reading the response.
  // False on failure (see error()).
  bool Write(std::string_view method, std::string_view target,
             std::string_view body = {}, const HttpHeaders& headers = {});
  // Writes raw bytes (a partial request, a body after 100 Continue, ...).
  bool WriteRaw(std::string_view bytes);

  // Reads one whole response (an interim 100 Continue counts as one), or the
  // rest of the one whose head ReadHead() returned.
  HttpReply Read();

  // Reads the status line and headers only (body empty); then ReadBodyPiece()
  // or Read() for the body.
  HttpReply ReadHead();
  // After ReadHead(): waits for more of the body and sets *piece to the bytes
  // that arrived (chunk framing removed). False when the body is complete
  // (see body_complete()) or on error (see error(), timed_out()).
  bool ReadBodyPiece(std::string* piece);
  // Whether the body of the response being read has ended as its framing
  // says (last chunk, Content-Length reached).
  bool body_complete() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One request on a fresh connection to 127.0.0.1:<port>.
HttpReply HttpSend(uint16_t port, std::string_view method,
                   std::string_view target, std::string_view body = {},
                   const HttpHeaders& headers = {},
                   std::chrono::milliseconds timeout = kHttpTimeout);
inline HttpReply HttpGet(uint16_t port, std::string_view target,
                         const HttpHeaders& headers = {},
                         std::chrono::milliseconds timeout = kHttpTimeout) {
  return HttpSend(port, "GET", target, {}, headers, timeout);
}
inline HttpReply HttpPost(uint16_t port, std::string_view target,
                          std::string_view body,
                          const HttpHeaders& headers = {},
                          std::chrono::milliseconds timeout = kHttpTimeout) {
  return HttpSend(port, "POST", target, body, headers, timeout);
}

}  // namespace llmcache::testing

#endif  // LLMCACHE_TESTS_TESTING_HTTP_CLIENT_H_
