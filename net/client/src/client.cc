// Client implementation: Beast over TCP or TLS, driven by C++20 coroutines.
//
// Each request runs as a coroutine on its own strand. Each connection has a
// strand of its own, and every operation on a connection (including its
// timers) runs on that strand: an attempt is a coroutine spawned on the
// connection's strand, which the request's coroutine awaits. A pooled
// connection is used by one attempt at a time.
//
// This is the only translation unit of the client that instantiates Beast
// and Asio templates.

#include "llmcache/net/client.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <random>

#include "llmcache/net/sse.h"

namespace llmcache::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

template <typename T>
using awaitable = asio::awaitable<T>;

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(std::string(host), ec);
  return !ec && addr.is_loopback();
}

// Statuses that say the upstream did not do the work (timed out reading
// the request, rate limited, unavailable or overloaded): a POST may be sent
// again. After 500, 502 or 524 it may have been done (and billed).
constexpr std::string_view kSentNotRetried =
    "not retried: the request had been sent";

bool IsNotStartedStatus(int status) {
  return status == 408 || status == 429 || status == 503 || status == 529;
}

bool IsRetryableStatus(int status) {
  switch (status) {
    case 408:
    case 429:
    case 500:
    case 502:
    case 503:
    case 524:
    case 529:
      return true;
    default:
      return false;
  }
}

struct Target {
  bool tls = true;
  std::string host;  // without brackets
  std::string port;
  std::string base_path;  // without trailing slash
  std::string host_header;
  bool host_is_ip = false;
};

// One connection. All of its I/O runs on `strand`.
struct Conn {
  explicit Conn(const asio::any_io_executor& ex)
      : strand(asio::make_strand(ex)) {
    // Beast reads at most the buffer's free capacity (512 bytes when empty
    // and unreserved) and its parser consumes the body as it goes, so an
    // unreserved buffer read a 600 KB embeddings answer 512 bytes at a time.
    buffer.reserve(64 * 1024);
  }
  asio::strand<asio::any_io_executor> strand;
  std::unique_ptr<beast::tcp_stream> tcp;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  bool connected = false;

  beast::tcp_stream& lowest() {
    return tls ? beast::get_lowest_layer(*tls) : *tcp;
  }
  // For an idle pooled connection (no operation pending): false when the
  // peer has closed or reset it, or (plain HTTP) sent bytes nobody asked
  // for. Checked before reuse, so that a POST is rarely written to a
  // connection the upstream already closed (it is not retried once sent).
  bool LooksOpen() {
    if (!connected) return false;
    char byte;
    const ssize_t n = ::recv(lowest().socket().native_handle(), &byte, 1,
                             MSG_PEEK | MSG_DONTWAIT);
    // Bytes on an idle connection: a close (FIN, or TLS's close_notify
    // record before it) or something nobody asked for. Either way it is not
    // reused (a new connection costs a handshake; a POST written to a
    // closing one would fail and not be sent again).
    if (n >= 0) return false;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  }
  void Close() {
    connected = false;
    if (!tls && !tcp) return;  // failed before a stream existed
    boost::system::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().socket().close(ec);
    connected = false;
  }
};

// What one attempt produced.
struct Attempt {
  Status status;  // OK: `response` holds an HTTP response
  Response response;
  bool retryable = false;  // transport failure worth another attempt
  bool stale = false;      // a reused connection failed before any byte
  bool chunks_delivered = false;
  bool reusable = false;  // the connection may go back to the pool
  // The whole request reached the socket: from here the upstream may have
  // started (and billed) it, so a POST is not sent again.
  bool sent = false;
};

// Retry-After in whole seconds (RFC 9110 10.2.3; the HTTP-date form is
// ignored), capped at a day so that the milliseconds cannot overflow.
milliseconds ParseRetryAfter(std::string_view value) {
  constexpr int64_t kMaxSeconds = 24 * 3600;
  int64_t secs = 0;
  size_t i = 0;
  while (i < value.size() && value[i] == ' ') ++i;
  const size_t digits_start = i;
  for (; i < value.size() && value[i] >= '0' && value[i] <= '9'; ++i) {
    secs = std::min(kMaxSeconds, secs * 10 + (value[i] - '0'));
  }
  if (i == digits_start) return milliseconds(0);
  while (i < value.size() && value[i] == ' ') ++i;
  if (i != value.size()) return milliseconds(0);
  return milliseconds(secs * 1000);
}

class ClientImpl final : public Client {
 public:
  ClientImpl(asio::any_io_executor ex, ClientOptions options, Target target,
             std::unique_ptr<ssl::context> ctx)
      : ex_(std::move(ex)),
        options_(std::move(options)),
        target_(std::move(target)),
        ctx_(std::move(ctx)) {}

  void Send(Request request, ChunkHandler on_chunk, Callback done) override {
    auto self = std::static_pointer_cast<ClientImpl>(shared_from_this());
    asio::co_spawn(
        asio::make_strand(ex_),
        Run(self, std::move(request), std::move(on_chunk)),
        [done = std::move(done)](std::exception_ptr e, Attempt a) mutable {
          if (e) {
            done(InternalError("unexpected exception in the HTTP client"));
          } else if (!a.status.ok()) {
            done(std::move(a.status));
          } else {
            done(std::move(a.response));
          }
        });
  }

  asio::any_io_executor executor() const override { return ex_; }
  const ClientOptions& options() const override { return options_; }
  uint64_t connections_opened() const override {
    return connections_opened_.load(std::memory_order_relaxed);
  }

 private:
  // An idle connection that still looks open (see Conn::LooksOpen), or null.
  std::shared_ptr<Conn> TakeIdle() {
    for (;;) {
      std::shared_ptr<Conn> c;
      {
        std::lock_guard<std::mutex> lock(pool_mu_);
        if (idle_.empty()) return nullptr;
        c = std::move(idle_.back());
        idle_.pop_back();
      }
      if (c->LooksOpen()) return c;
      asio::post(c->strand, [c] { c->Close(); });
    }
  }

  void GiveBack(std::shared_ptr<Conn> c) {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (idle_.size() < options_.max_idle_per_host) {
      idle_.push_back(std::move(c));
    } else {
      asio::post(c->strand, [c] { c->Close(); });
    }
  }

  // The whole request with its retries. The result is an Attempt (Result<T>
  // has no default constructor, which co_spawn needs).
  static awaitable<Attempt> Run(std::shared_ptr<ClientImpl> self,
                                Request request, ChunkHandler on_chunk) {
    const ClientOptions& o = self->options_;
    const auto first_start = Clock::now();
    int attempts = 0;
    int stale_retries = 0;
    std::minstd_rand rng(std::random_device{}());
    for (;;) {
      ++attempts;
      std::shared_ptr<Conn> conn = self->TakeIdle();
      const bool reused = conn != nullptr;
      if (!conn) conn = std::make_shared<Conn>(self->ex_);
      Attempt a = co_await asio::co_spawn(
          conn->strand, self->DoAttempt(conn, request, on_chunk),
          asio::use_awaitable);
      // Only a request the upstream cannot have started is sent again: one
      // that failed before it was written whole, or an idempotent one (a GET,
      // or one marked so).
      const bool resendable =
          !a.sent || request.method == "GET" || request.idempotent;
      if (a.stale && reused && stale_retries < 2 && resendable) {
        // The server closed an idle connection: not a real attempt.
        --attempts;
        ++stale_retries;
        continue;
      }
      if (a.reusable) self->GiveBack(conn);

      bool retry = false;
      milliseconds retry_after{0};
      if (a.status.ok()) {
        retry = IsRetryableStatus(a.response.status) &&
                (request.method == "GET" || request.idempotent ||
                 IsNotStartedStatus(a.response.status));
        retry_after = ParseRetryAfter(a.response.header("Retry-After"));
      } else {
        retry = a.retryable && resendable;
      }
      if (retry && !a.chunks_delivered && attempts < o.max_attempts) {
        const int shift = std::min(attempts - 1, 20);
        milliseconds backoff = std::min<milliseconds>(
            o.max_backoff, o.initial_backoff * (int64_t{1} << shift));
        // Jitter: 50%..100% of the exponential backoff.
        backoff = milliseconds(
            backoff.count() / 2 +
            static_cast<int64_t>(
                rng() % static_cast<uint64_t>(backoff.count() / 2 + 1)));
        const milliseconds wait = std::max(backoff, retry_after);
        if (Clock::now() + wait - first_start <= o.retry_budget) {
          asio::steady_timer timer(co_await asio::this_coro::executor);
          timer.expires_after(wait);
          boost::system::error_code ec;
          co_await timer.async_wait(
              asio::redirect_error(asio::use_awaitable, ec));
          continue;
        }
      }
      if (!a.status.ok()) {
        std::string context = "after " + std::to_string(attempts) +
                              (attempts == 1 ? " attempt" : " attempts");
        // Sent whole and not idempotent: whatever failed after (headers
        // that never came, a reset, an answer too large), the upstream may
        // have started it.
        if (!resendable) {
          context += "; ";
          context += kSentNotRetried;
          context += ", so the upstream may have started (and billed) it";
        }
        a.status = a.status.WithContext(context);
      }
      a.response.attempts = attempts;
      co_return a;
    }
  }

  // Connects `conn` (resolve, TCP, TLS). Runs on conn->strand.
  awaitable<Attempt> Connect(std::shared_ptr<Conn> conn,
                             Clock::time_point deadline) {
    Attempt a;
    boost::system::error_code ec;
    auto bounded = [&](milliseconds phase) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      return std::max(milliseconds(1), std::min(phase, left));
    };

    std::vector<tcp::endpoint> endpoints;
    bool resolve_timed_out = false;
    asio::steady_timer resolve_timer(conn->strand);
    resolve_timer.expires_after(bounded(options_.resolve_timeout));
    if (!options_.resolve_for_test) {
      // The timer's handler owns what it touches: it can run after this
      // block (and this frame) ended, when the timer expired just as the
      // answer came (cancel() does not recall a handler already queued).
      struct Resolve {
        explicit Resolve(const asio::strand<asio::any_io_executor>& strand)
            : resolver(strand) {}
        tcp::resolver resolver;
        bool timed_out = false;
      };
      auto r = std::make_shared<Resolve>(conn->strand);
      resolve_timer.async_wait([r](boost::system::error_code tec) {
        if (!tec) {
          r->timed_out = true;
          r->resolver.cancel();
        }
      });
      auto results = co_await r->resolver.async_resolve(
          target_.host, target_.port,
          asio::redirect_error(asio::use_awaitable, ec));
      resolve_timer.cancel();
      resolve_timed_out = r->timed_out;
      for (const auto& e : results) endpoints.push_back(e.endpoint());
    } else {
      // The injected resolver answers on any thread, or never: its answer is
      // posted to the connection's strand and ends the wait on the timer.
      struct Pending {
        bool answered = false;
        bool abandoned = false;
        boost::system::error_code ec;
        std::vector<tcp::endpoint> endpoints;
      };
      auto pending = std::make_shared<Pending>();
      options_.resolve_for_test(
          target_.host, target_.port,
          [pending, strand = conn->strand, timer = &resolve_timer](
              boost::system::error_code rec, std::vector<tcp::endpoint> eps) {
            asio::post(strand, [pending, timer, rec, eps = std::move(eps)] {
              if (pending->abandoned) return;
              pending->answered = true;
              pending->ec = rec;
              pending->endpoints = eps;
              timer->cancel();
            });
          });
      boost::system::error_code tec;
      co_await resolve_timer.async_wait(
          asio::redirect_error(asio::use_awaitable, tec));
      if (pending->answered) {
        ec = pending->ec;
        endpoints = std::move(pending->endpoints);
      } else {
        pending->abandoned = true;  // on the strand: no answer can race this
        resolve_timed_out = true;
        ec = asio::error::operation_aborted;
      }
    }
    if (!ec && endpoints.empty()) ec = asio::error::host_not_found;
    if (ec) {
      if (resolve_timed_out) {
        a.status =
            DeadlineExceededError("resolving " + target_.host + " timed out");
      } else {
        a.status = UnavailableError("cannot resolve " + target_.host + ": " +
                                    ec.message());
        a.retryable = true;
      }
      co_return a;
    }

    if (target_.tls) {
      conn->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(
          conn->strand, *ctx_);
    } else {
      conn->tcp = std::make_unique<beast::tcp_stream>(conn->strand);
    }
    conn->lowest().expires_after(bounded(options_.connect_timeout));
    co_await conn->lowest().async_connect(
        endpoints, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == beast::error::timeout) {
        a.status = DeadlineExceededError("connecting to " +
                                         target_.host_header + " timed out");
      } else {
        a.status = UnavailableError("cannot connect to " + target_.host_header +
                                    ": " + ec.message());
      }
      a.retryable = true;
      co_return a;
    }
    connections_opened_.fetch_add(1, std::memory_order_relaxed);

    if (target_.tls) {
      SSL* ssl_handle = conn->tls->native_handle();
      // SSL_set_tlsext_host_name, without the macro's C cast.
      if (!target_.host_is_ip &&
          SSL_ctrl(ssl_handle, SSL_CTRL_SET_TLSEXT_HOSTNAME,
                   TLSEXT_NAMETYPE_host_name,
                   const_cast<char*>(target_.host.c_str())) != 1) {
        a.status = InternalError("cannot set TLS SNI");
        co_return a;
      }
      conn->tls->set_verify_mode(ssl::verify_peer);
      conn->tls->set_verify_callback(ssl::host_name_verification(target_.host));
      conn->lowest().expires_after(bounded(options_.handshake_timeout));
      co_await conn->tls->async_handshake(
          ssl::stream_base::client,
          asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        const long verify = SSL_get_verify_result(ssl_handle);
        if (ec == beast::error::timeout) {
          a.status = DeadlineExceededError("TLS handshake with " +
                                           target_.host_header + " timed out");
          a.retryable = true;
        } else if (verify != X509_V_OK) {
          // Never retried: the peer is not who it must be.
          a.status = UnauthenticatedError(
              "TLS verification of " + target_.host +
              " failed: " + X509_verify_cert_error_string(verify));
        } else if (ec.category() == asio::error::get_ssl_category()) {
          a.status =
              UnauthenticatedError("TLS handshake with " + target_.host_header +
                                   " failed: " + ec.message());
        } else {
          a.status =
              UnavailableError("TLS handshake with " + target_.host_header +
                               " failed: " + ec.message());
          a.retryable = true;
        }
        co_return a;
      }
    }
    conn->connected = true;
    co_return a;
  }

  awaitable<Attempt> DoAttempt(std::shared_ptr<Conn> conn,
                               const Request& request,
                               const ChunkHandler& on_chunk) {
    try {
      const auto start = Clock::now();
      const auto deadline = start + options_.request_timeout;
      const bool reused = conn->connected;
      if (!conn->connected) {
        Attempt c = co_await Connect(conn, deadline);
        if (!c.status.ok()) {
          conn->Close();
          co_return c;
        }
      }
      Attempt a;
      if (conn->tls) {
        a = co_await Exchange(*conn->tls, *conn, request, on_chunk, deadline,
                              reused);
      } else {
        a = co_await Exchange(*conn->tcp, *conn, request, on_chunk, deadline,
                              reused);
      }
      a.response.latency =
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() -
                                                                start);
      if (!a.reusable) conn->Close();
      co_return a;
    } catch (const std::exception& e) {
      conn->Close();
      Attempt a;
      a.status = InternalError(std::string("HTTP client failure: ") + e.what());
      co_return a;
    }
  }

  template <typename Stream>
  awaitable<Attempt> Exchange(Stream& stream, Conn& conn,
                              const Request& request,
                              const ChunkHandler& on_chunk,
                              Clock::time_point deadline, bool reused) {
    Attempt a;
    boost::system::error_code ec;
    bool capped_by_deadline = false;  // the last expiry was the deadline's
    auto bounded = [&](milliseconds phase) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      capped_by_deadline = left <= phase;
      return std::max(milliseconds(1), std::min(phase, left));
    };
    auto timed_out = [&](std::string_view phase) {
      const bool whole = capped_by_deadline;
      return DeadlineExceededError(
          whole ? "request to " + target_.host_header + " exceeded its " +
                      std::to_string(options_.request_timeout.count()) +
                      " ms deadline"
                : std::string(phase) + " from " + target_.host_header +
                      " timed out");
    };

    http::request<http::string_body> req;
    req.method(request.method == "GET" ? http::verb::get : http::verb::post);
    req.target(target_.base_path + request.path);
    req.version(11);
    req.set(http::field::host, target_.host_header);
    req.set(http::field::user_agent, "llmcache/0.1");
    const std::string& key =
        request.api_key.empty() ? options_.api_key : request.api_key;
    if (!key.empty()) req.set(http::field::authorization, "Bearer " + key);
    bool has_referer = false, has_title = false;
    for (const Header& h : request.headers) {
      req.set(h.name, h.value);
      has_referer |= beast::iequals(h.name, "HTTP-Referer");
      has_title |= beast::iequals(h.name, "X-Title");
    }
    if (!has_referer && !options_.http_referer.empty()) {
      req.set("HTTP-Referer", options_.http_referer);
    }
    if (!has_title && !options_.x_title.empty()) {
      req.set("X-Title", options_.x_title);
    }
    if (req.method() == http::verb::post) {
      req.set(http::field::content_type, "application/json");
      req.body() = request.body;
    }
    if (request.stream) req.set(http::field::accept, "text/event-stream");
    // Bodies are read, relayed and stored as they are: no content coding
    // (without the header an upstream may pick one; a gzip body was passed
    // on without its Content-Encoding, as bytes no client could read).
    req.set(http::field::accept_encoding, "identity");
    req.keep_alive(true);
    req.prepare_payload();

    conn.lowest().expires_after(bounded(options_.headers_timeout));
    co_await http::async_write(stream, req,
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      a.stale = reused;
      a.retryable = true;
      a.status = ec == beast::error::timeout
                     ? timed_out("sending the request")
                     : UnavailableError("sending the request to " +
                                        target_.host_header +
                                        " failed: " + ec.message());
      co_return a;
    }
    a.sent = true;

    http::response_parser<http::buffer_body> parser;
    // Set once the head says whether this is a stream (Beast checks a
    // Content-Length against the limit as the head ends).
    parser.body_limit(boost::none);
    conn.lowest().expires_after(bounded(options_.headers_timeout));
    co_await http::async_read_header(
        stream, conn.buffer, parser,
        asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == beast::error::timeout) {
        a.status = timed_out("waiting for the response headers");
      } else {
        a.stale = reused && conn.buffer.size() == 0;
        a.retryable = true;
        a.status =
            UnavailableError("connection to " + target_.host_header +
                             " lost before the response: " + ec.message());
      }
      co_return a;
    }
    Response& r = a.response;
    r.status = static_cast<int>(parser.get().result_int());
    for (const auto& f : parser.get()) {
      r.headers.push_back(
          Header{std::string(f.name_string()), std::string(f.value())});
    }
    if (const std::string_view coding = r.header("Content-Encoding");
        !coding.empty() && !beast::iequals(coding, "identity")) {
      // Not read: the connection is dropped with the body (not reusable).
      if (r.status >= 400) {
        // An error answer keeps its status and headers (a 429's
        // Retry-After), with a body of our own in OpenRouter's error shape.
        std::string named(coding);  // JSON-safe: token characters only
        for (char& c : named) {
          if (!std::isalnum(static_cast<unsigned char>(c)) &&
              std::string_view("-_., ").find(c) == std::string_view::npos) {
            c = '?';
          }
        }
        r.body = "{\"error\":{\"code\":" + std::to_string(r.status) +
                 ",\"message\":\"the upstream answered HTTP " +
                 std::to_string(r.status) +
                 " with a body in Content-Encoding: " + named +
                 ", which was not read\"}}";
        std::erase_if(r.headers, [](const Header& h) {
          return beast::iequals(h.name, "Content-Encoding") ||
                 beast::iequals(h.name, "Content-Length") ||
                 beast::iequals(h.name, "Transfer-Encoding");
        });
        co_return a;
      }
      a.status = UnavailableError(
          "the upstream answered with Content-Encoding: " +
          std::string(coding) +
          ", which the request did not accept (Accept-Encoding: identity); "
          "not read");
      co_return a;
    }
    const std::string_view ctype = r.header("Content-Type");
    r.streamed = request.stream && r.status == 200 &&
                 ctype.starts_with("text/event-stream");
    SseParser sse;
    if (r.streamed) {
      // A live stream is not bounded as a whole (its events are relayed as
      // they come, nothing holds all of it): each event is.
      sse.set_max_event_bytes(options_.max_response_bytes);
    } else if (!parser.is_done() && parser.content_length().value_or(0) >
                                        options_.max_response_bytes) {
      // The answer was not lost, it is not read (and the request was done:
      // never sent again).
      a.status = ResourceExhaustedError(
          "the upstream's answer is larger than the client's limit of " +
          std::to_string(options_.max_response_bytes) +
          " bytes (ClientOptions::max_response_bytes); not read");
      co_return a;
    } else {
      parser.body_limit(options_.max_response_bytes);
    }
    bool cancelled = false;
    bool any_event = false;
    auto on_event = [&](SseEvent&& ev) {
      if (cancelled) return;
      any_event = true;
      if (ev.data == "[DONE]") r.stream_complete = true;
      if (on_chunk) {
        a.chunks_delivered = true;
        if (!on_chunk(ev.data)) cancelled = true;
      }
    };
    std::array<char, 16384> buf;
    while (!parser.is_done()) {
      parser.get().body().data = buf.data();
      parser.get().body().size = buf.size();
      conn.lowest().expires_after(bounded(r.streamed
                                              ? options_.stream_idle_timeout
                                              : options_.request_timeout));
      // read_some, not read: read() only returns once the buffer is full or
      // the message is complete, which would batch a live stream's events
      // into 16 KiB lumps (or deliver a short stream all at its end).
      co_await http::async_read_some(
          stream, conn.buffer, parser,
          asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      const size_t n = buf.size() - parser.get().body().size;
      if (r.streamed) {
        sse.Feed(std::string_view(buf.data(), n), on_event);
        if (sse.too_large() && !cancelled) {
          // As an answer over the limit: asking again would get it again.
          a.status = ResourceExhaustedError(
              "an event of the upstream's stream is larger than the "
              "client's limit of " +
              std::to_string(options_.max_response_bytes) +
              " bytes (ClientOptions::max_response_bytes); stream not read "
              "further");
          co_return a;
        }
      } else {
        r.body.append(buf.data(), n);
      }
      if (cancelled) {
        a.status = CancelledError("stream cancelled by the caller");
        co_return a;
      }
      if (ec) {
        a.retryable = !a.chunks_delivered;
        if (ec == beast::error::timeout) {
          a.status = timed_out(r.streamed ? "waiting for the next stream event"
                                          : "reading the response body");
        } else if (ec == http::error::body_limit) {
          a.status = ResourceExhaustedError(
              "the upstream's answer is larger than the client's limit of " +
              std::to_string(options_.max_response_bytes) +
              " bytes (ClientOptions::max_response_bytes); not read");
          a.retryable = false;
        } else {
          a.status = UnavailableError(
              "connection to " + target_.host_header + " lost mid-body" +
              (r.streamed ? std::string(" (stream cut before [DONE])") : "") +
              ": " + ec.message());
        }
        co_return a;
      }
    }
    if (r.streamed) {
      sse.Finish();
      if (!any_event) {
        // A stream that ended before its first event (an empty body, or
        // only comments) is an answer lost, not an empty answer: as a
        // connection lost before the response.
        a.retryable = true;
        a.status = UnavailableError("the stream from " + target_.host_header +
                                    " ended before its first event");
        co_return a;
      }
    }
    a.reusable = parser.keep_alive() && options_.max_idle_per_host > 0;
    co_return a;
  }

  const asio::any_io_executor ex_;
  const ClientOptions options_;
  const Target target_;
  const std::unique_ptr<ssl::context> ctx_;
  std::mutex pool_mu_;
  std::vector<std::shared_ptr<Conn>> idle_;
  std::atomic<uint64_t> connections_opened_{0};
};

}  // namespace

bool RepeatingMayBill(const Status& failure) {
  const std::string_view m = failure.message();
  return m.find(kSentNotRetried) != std::string_view::npos ||
         m.find(" attempts") != std::string_view::npos;
}

std::string_view Response::header(std::string_view name) const {
  for (const Header& h : headers) {
    if (beast::iequals(h.name, name)) return h.value;
  }
  return {};
}

Result<std::shared_ptr<Client>> Client::Create(asio::any_io_executor executor,
                                               ClientOptions options) {
  try {
    auto url = boost::urls::parse_uri(options.base_url);
    if (!url) {
      return InvalidArgumentError("invalid base URL '" + options.base_url +
                                  "': " + url.error().message());
    }
    Target t;
    // Schemes are case-insensitive (RFC 3986 3.1): scheme_id() folds them.
    if (url->scheme_id() == boost::urls::scheme::https) {
      t.tls = true;
    } else if (url->scheme_id() == boost::urls::scheme::http) {
      t.tls = false;
    } else {
      return InvalidArgumentError("base URL must be http or https: " +
                                  options.base_url);
    }
    switch (url->host_type()) {
      case boost::urls::host_type::ipv4:
      case boost::urls::host_type::ipv6:
        t.host_is_ip = true;
        t.host = url->host_address();
        break;
      case boost::urls::host_type::name:
        t.host = url->host_address();
        break;
      default:
        return InvalidArgumentError("base URL has no usable host: " +
                                    options.base_url);
    }
    if (t.host.empty()) {
      return InvalidArgumentError("base URL has no host: " + options.base_url);
    }
    if (!t.tls && !IsLoopbackHost(t.host)) {
      return InvalidArgumentError(
          "plain http is allowed only for loopback hosts; use https for " +
          t.host);
    }
    // What would be dropped silently, or sent to another port than meant.
    if (url->has_query() || url->has_fragment() || url->has_userinfo()) {
      return InvalidArgumentError(
          "base URL must not have a query, a fragment or user info "
          "(credentials go in the API key): " +
          options.base_url);
    }
    if (url->has_port()) {
      const std::string_view port = url->port();
      const bool digits = !port.empty() && port.size() <= 5 &&
                          std::all_of(port.begin(), port.end(), [](char c) {
                            return c >= '0' && c <= '9';
                          });
      if (!digits || std::stoi(std::string(port)) < 1 ||
          std::stoi(std::string(port)) > 65535) {
        return InvalidArgumentError("base URL has an invalid port '" +
                                    std::string(port) +
                                    "' (want 1-65535): " + options.base_url);
      }
    }
    t.port = url->has_port() ? std::string(url->port())
                             : std::string(t.tls ? "443" : "80");
    t.host_header = std::string(url->encoded_host_and_port());
    t.base_path = std::string(url->encoded_path());
    while (!t.base_path.empty() && t.base_path.back() == '/') {
      t.base_path.pop_back();
    }

    if (options.max_attempts < 1) {
      return InvalidArgumentError("max_attempts must be >= 1 (1 = no retry)");
    }
    for (const auto& [name, limit] :
         {std::pair{"resolve_timeout", options.resolve_timeout},
          {"connect_timeout", options.connect_timeout},
          {"handshake_timeout", options.handshake_timeout},
          {"headers_timeout", options.headers_timeout},
          {"request_timeout", options.request_timeout},
          {"stream_idle_timeout", options.stream_idle_timeout}}) {
      if (limit.count() <= 0) {
        return InvalidArgumentError(std::string(name) + " must be > 0");
      }
    }
    if (options.initial_backoff.count() < 0 ||
        options.max_backoff.count() < 0 || options.retry_budget.count() < 0) {
      return InvalidArgumentError(
          "initial_backoff, max_backoff and retry_budget must be >= 0");
    }
    if (options.api_key.empty()) {
      if (const char* env = std::getenv("OPENROUTER_API_KEY")) {
        options.api_key = env;
      }
    }

    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    ctx->set_options(ssl::context::default_workarounds |
                     ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    ctx->set_default_verify_paths(ec);
    if (!options.extra_ca_file.empty()) {
      ctx->load_verify_file(options.extra_ca_file, ec);
      if (ec) {
        return InvalidArgumentError("cannot load CA file " +
                                    options.extra_ca_file + ": " +
                                    ec.message());
      }
    }
    ctx->set_verify_mode(ssl::verify_peer);
    return std::shared_ptr<Client>(std::make_shared<ClientImpl>(
        std::move(executor), std::move(options), std::move(t), std::move(ctx)));
  } catch (const std::exception& e) {
    return InvalidArgumentError(std::string("cannot create client: ") +
                                e.what());
  }
}

}  // namespace llmcache::net
