// Client: an asynchronous OpenRouter (OpenAI-compatible) HTTP client.
//
// HTTP/1.1 over Boost.Beast, TLS through OpenSSL 3 with SNI, peer
// verification against the system trust store (plus an optional CA file) and
// host-name verification. Plain http:// is accepted only for loopback hosts.
// Connections are pooled per host and reused (keep-alive). Every phase has a
// deadline; the retryable statuses (408, 429, 500, 502, 503, 524, 529; for
// a POST only 408, 429, 503 and 529, which say the work was not done) are
// retried with exponential backoff and jitter, honouring Retry-After (whole
// seconds, capped at a day), within a bounded number of attempts and total
// time. A connection failure is retried only when the upstream cannot have
// started the work: before the request was written whole (resolve, connect,
// TLS, write), or for a GET. A POST whose request was sent and whose answer
// was lost (reset, cut, closed before the headers) is not sent again, since
// it may have been billed; the error says so. Idle pooled connections are
// checked before reuse, so a closed one is not used for a POST.
//
// Asynchronous in the Asio style: the initiating functions take a completion
// token, so a caller can pass a callback, boost::asio::use_future or
// boost::asio::use_awaitable. The completion signature is
// void(Result<Response>): an OK result means an HTTP response was received
// (whatever its status: inspect it); a non-OK one means no usable response
// (kUnavailable: could not connect / connection lost; kDeadlineExceeded;
// kCancelled; kUnauthenticated: TLS verification failed; kInvalidArgument).
//
// Thread safety: a Client may be used from any number of threads, also when
// its io_context is run by several threads. The API key never appears in
// errors or logs.

#ifndef LLMCACHE_NET_CLIENT_H_
#define LLMCACHE_NET_CLIENT_H_

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "llmcache/net/completion.h"
#include "llmcache/status.h"

namespace llmcache::net {

struct ClientOptions {
  // Where the API lives; "/chat/completions" and "/models" are appended.
  // Default: https://openrouter.ai/api/v1.
  std::string base_url = "https://openrouter.ai/api/v1";
  // Bearer token. Empty: $OPENROUTER_API_KEY at Create() time (may stay
  // empty: then requests carry no Authorization unless the request has one).
  std::string api_key;
  // Attribution headers sent with every request unless the request sets
  // its own. Empty = not sent.
  std::string http_referer;
  std::string x_title;
  // PEM file of extra trusted CAs (tests use their own CA). Default: none.
  std::string extra_ca_file;

  std::chrono::milliseconds resolve_timeout{5'000};
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds handshake_timeout{10'000};
  // From the end of writing the request to the end of the response headers.
  std::chrono::milliseconds headers_timeout{120'000};
  // One attempt, from start to last byte.
  std::chrono::milliseconds request_timeout{600'000};
  // Longest silence between two reads of a streamed body.
  std::chrono::milliseconds stream_idle_timeout{120'000};

  // Attempts in all (1 = no retry).
  int max_attempts = 4;
  std::chrono::milliseconds initial_backoff{250};
  std::chrono::milliseconds max_backoff{8'000};
  // No new attempt starts after this much time since the first one.
  std::chrono::milliseconds retry_budget{60'000};

  // Idle keep-alive connections kept per host. 0 disables reuse.
  size_t max_idle_per_host = 8;
  // Larger response bodies fail with kResourceExhausted. A stream (a
  // streamed request answered with text/event-stream) has no bound as a
  // whole, since its events go to the chunk handler as they come: each of
  // its events has this one (a larger event fails the stream the same way).
  size_t max_response_bytes = 64u << 20;

  // For tests (an injected OS layer): resolves instead of the system
  // resolver. It must call `done` at most once, from any thread; never
  // calling it simulates a resolver that hangs. Default: null (system).
  using ResolveFn = std::function<void(
      const std::string& host, const std::string& port,
      std::function<void(boost::system::error_code,
                         std::vector<boost::asio::ip::tcp::endpoint>)>
          done)>;
  ResolveFn resolve_for_test;
};

struct Header {
  std::string name;
  std::string value;
};

struct Request {
  std::string method = "POST";
  // Path relative to base_url, e.g. "/chat/completions".
  std::string path = "/chat/completions";
  std::string body;
  // Overrides ClientOptions::api_key for this request when not empty (a
  // proxy forwards its client's key).
  std::string api_key;
  // Extra headers (e.g. attribution headers passed through by the proxy).
  std::vector<Header> headers;
  // Read the response as a server-sent-event stream when it is one.
  bool stream = false;
  // Safe to send again once sent: the server does it once however often it
  // arrives (GETs always are). Otherwise a request that was sent is not
  // retried, as the upstream may have started (and billed) it.
  bool idempotent = false;
};

struct Response {
  int status = 0;
  std::vector<Header> headers;
  // The raw body for non-streamed responses; empty for a consumed stream.
  std::string body;
  bool streamed = false;                 // the body was read as an event stream
  bool stream_complete = false;          // streamed and "[DONE]" was seen
  int attempts = 0;                      // attempts made (1 = no retry)
  std::chrono::microseconds latency{0};  // of the last attempt, to last byte

  // Value of the first header named `name` (case-insensitive), or "".
  std::string_view header(std::string_view name) const;
};

// Whether a failed call should not be repeated by whoever asked for it: the
// request had been sent (the upstream may have started, and billed, it) or
// the client already retried it. Read from the context the client adds to
// its failures ("after N attempts; not retried: ...").
bool RepeatingMayBill(const Status& failure);

// Called with the `data` of every event of a streamed 200 response, in
// order, never concurrently. Return false to cancel: the client stops
// reading, closes the connection and completes with kCancelled.
using ChunkHandler = std::function<bool(std::string_view data)>;

class Client : public std::enable_shared_from_this<Client> {
 public:
  using Callback = std::function<void(Result<Response>)>;

  // kInvalidArgument for a malformed base_url (also one with a query, a
  // fragment, user info or a port outside 1-65535), a non-https URL to a
  // host that is not loopback, an unreadable CA file, max_attempts < 1, a
  // timeout <= 0, or a negative backoff or retry budget.
  static Result<std::shared_ptr<Client>> Create(
      boost::asio::any_io_executor executor, ClientOptions options);
  virtual ~Client() = default;

  // Sends `request`; for a streamed response `on_chunk` (may be null) sees
  // each event's data as it arrives. Token: callback, use_future,
  // use_awaitable, ... with signature void(Result<Response>).
  template <typename Token>
  auto AsyncSend(Request request, ChunkHandler on_chunk, Token&& token) {
    return boost::asio::async_initiate<Token, void(Result<Response>)>(
        [self = shared_from_this()](auto handler, Request req,
                                    ChunkHandler chunks) {
          auto h = std::make_shared<decltype(handler)>(std::move(handler));
          auto ex = boost::asio::get_associated_executor(*h, self->executor());
          self->Send(std::move(req), std::move(chunks),
                     [h, ex](Result<Response> r) {
                       boost::asio::post(ex, [h, r = std::move(r)]() mutable {
                         std::move (*h)(std::move(r));
                       });
                     });
        },
        token, std::move(request), std::move(on_chunk));
  }

  // POST body to /chat/completions (non-streaming).
  template <typename Token>
  auto AsyncComplete(std::string body, Token&& token) {
    Request r;
    r.body = std::move(body);
    return AsyncSend(std::move(r), nullptr, std::forward<Token>(token));
  }

  // The callback form every initiating function ends in.
  virtual void Send(Request request, ChunkHandler on_chunk, Callback done) = 0;

  virtual boost::asio::any_io_executor executor() const = 0;
  virtual const ClientOptions& options() const = 0;

  // Connections opened so far (for observing keep-alive reuse).
  virtual uint64_t connections_opened() const = 0;

 protected:
  Client() = default;
};

}  // namespace llmcache::net

#endif  // LLMCACHE_NET_CLIENT_H_
