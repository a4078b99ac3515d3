// A faithful local fake of OpenRouter's chat-completions API, for tests and
// for trying the whole stack without an API key (`llmcache fake-openrouter`).
//
// Serves, on 127.0.0.1 (ephemeral port by default), over HTTP or HTTPS:
//   POST /api/v1/chat/completions   non-stream and stream (SSE), shapes as in
//                                   ../shared/openrouter/API.md §5-§6
//   GET  /api/v1/models             a small model list with pricing (§10)
// Deterministic: the same request body gives the same content.
//
// Faults are selected by the request's `model` (so they work through the
// proxy too):
//   fake/fault-<status>      that HTTP status with the error envelope
//                            (429 and 503 carry "Retry-After: 1")
//   fake/flaky-<status>-<n>  the first n requests with this exact body get
//                            <status>, later ones succeed
//   fake/delay-<ms>          answer normally after <ms> milliseconds
//   fake/error-200           HTTP 200 with a top-level error envelope
//   fake/choice-error        HTTP 200, a choice with finish_reason "error"
//   fake/empty               HTTP 200, no content and no tool calls
//   fake/tool-call           HTTP 200, a tool call (streams: fragments)
//   fake/midstream-error     stream: two content chunks, then an error event
//   fake/cut                 stream: content, then the connection closes
//                            before [DONE]; non-stream: body cut short
//   fake/reset               the connection is reset in the middle of the body
//   fake/hang                headers are never sent (the client must time out)
//   fake/slow-<ms>           stream: <ms> between events (non-stream: before
//                            the answer), to test idle deadlines and cancels
//   fake/newlines            non-stream body preceded by "\n\n\n" keep-alive
//                            bytes, as OpenRouter sends for slow upstreams
// Any other model answers normally. Prompt caching is simulated: a request
// with `cache_control` markers reports cache_write_tokens the first time and
// cached_tokens afterwards.
//
// Thread safety: all methods may be called from any thread.

#ifndef LLMCACHE_NET_FAKE_FAKE_OPENROUTER_H_
#define LLMCACHE_NET_FAKE_FAKE_OPENROUTER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "llmcache/status.h"

namespace llmcache::fake {

// A throwaway CA and server certificates, generated with OpenSSL.
struct TestCertificates {
  std::string ca_cert_pem;
  std::string server_cert_pem;  // CN/SAN: localhost, 127.0.0.1, ::1
  std::string server_key_pem;
  std::string wrong_host_cert_pem;  // signed by the CA, SAN: wrong.example
  std::string wrong_host_key_pem;
  std::string untrusted_cert_pem;   // self-signed, SAN: localhost, 127.0.0.1
  std::string untrusted_key_pem;

  static Result<TestCertificates> Generate();
};

struct FakeOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0 = ephemeral
  bool tls = false;
  std::string cert_pem;  // required with tls
  std::string key_pem;
  int threads = 2;
  // The accepted API key. Empty: any non-empty bearer token is accepted.
  // Missing header: 401 "No auth credentials found"; wrong key: 401
  // "User not found.".
  std::string api_key;
  // ": OPENROUTER PROCESSING" comments sent before the first stream chunk.
  int keepalive_comments = 1;
  // Content pieces per streamed response.
  int stream_pieces = 6;
  bool log_requests = false;  // one line per request on stderr
};

class FakeOpenRouter {
 public:
  static Result<std::unique_ptr<FakeOpenRouter>> Start(const FakeOptions& o);
  virtual ~FakeOpenRouter() = default;

  virtual uint16_t port() const = 0;
  // "http://127.0.0.1:<port>/api/v1" (https with tls).
  virtual std::string base_url() const = 0;

  virtual uint64_t requests() const = 0;     // HTTP requests received
  virtual uint64_t completions() const = 0;  // chat-completion requests
  virtual uint64_t connections() const = 0;  // TCP connections accepted
  virtual std::string last_authorization() const = 0;
  virtual std::string last_header(const std::string& name) const = 0;
  virtual void ResetCounters() = 0;

  // Stops accepting, closes connections, joins threads. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace llmcache::fake

#endif  // LLMCACHE_NET_FAKE_FAKE_OPENROUTER_H_
