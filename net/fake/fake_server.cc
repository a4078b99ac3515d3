// The fake's HTTP/1.1 server: Boost.Beast over plain TCP or TLS, built on
// C++20 coroutines. One coroutine per connection, on its own strand, reads
// requests (with size limits and deadlines), asks the Responder for a Plan
// (fake_responder.h; the embeddings, Responses API and Messages endpoints:
// ApiEndpoints, fake_endpoints.h) and executes it: delays, chunked SSE, hangs,
// cuts and resets. Also FakeOpenRouter::Start(), the counters and Stop().
//
// The only translation unit of the fake that includes Beast or Asio: keep
// their template instantiations here, for build time.

#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "fake_endpoints.h"
#include "fake_openrouter.h"
#include "fake_responder.h"

namespace llmcache::fake {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using Request = http::request<http::string_body>;
using internal::ApiEndpoints;
using internal::ApiPath;
using internal::Plan;
using internal::RequestView;
using internal::Responder;

constexpr size_t kMaxBodyBytes = 32u << 20;
constexpr uint32_t kMaxHeaderBytes = 64u << 10;
constexpr auto kIdleTimeout = std::chrono::seconds(60);
constexpr auto kIoTimeout = std::chrono::seconds(30);
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr auto kTlsShutdownTimeout = std::chrono::seconds(1);
// How long Stop() lets sessions finish after closing their sockets before it
// stops the io_context outright.
constexpr auto kStopGrace = std::chrono::seconds(3);

std::string_view View(beast::string_view s) {
  return std::string_view(s.data(), s.size());
}

// The completion token of every co_await here: the error goes to `ec`
// instead of being thrown.
net::redirect_error_t<net::use_awaitable_t<>> Tok(beast::error_code& ec) {
  return net::redirect_error(net::use_awaitable, ec);
}

// A connection, as seen by Stop(): close it from its strand.
class ConnBase {
 public:
  virtual ~ConnBase() = default;
  virtual net::any_io_executor executor() = 0;
  // REQUIRES: on the connection's strand.
  virtual void CloseNow() = 0;
};

template <class Stream>
class Conn final : public ConnBase {
 public:
  template <class... Args>
  explicit Conn(Args&&... args)
      : stream(std::forward<Args>(args)...), timer(stream.get_executor()) {}

  net::any_io_executor executor() override { return stream.get_executor(); }

  void CloseNow() override {
    closed = true;
    beast::error_code ec;
    auto& tcp_stream = beast::get_lowest_layer(stream);
    tcp_stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp_stream.socket().close(ec);
    tcp_stream.cancel();
    timer.cancel();
  }

  // Closes with RST instead of FIN: SO_LINGER with a zero timeout.
  void Reset() {
    beast::error_code ec;
    auto& socket = beast::get_lowest_layer(stream).socket();
    socket.set_option(net::socket_base::linger(true, 0), ec);
    socket.close(ec);
  }

  // A clean TCP close without a TLS close_notify.
  void Cut() {
    beast::error_code ec;
    auto& socket = beast::get_lowest_layer(stream).socket();
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  Stream stream;
  net::steady_timer timer;
  bool closed = false;
};

using PlainStream = beast::tcp_stream;
using TlsStream = ssl::stream<beast::tcp_stream>;

class FakeImpl final : public FakeOpenRouter {
 public:
  explicit FakeImpl(const FakeOptions& options)
      : options_(options),
        responder_(options_),
        endpoints_(options_),
        ioc_(std::max(1, options.threads)),
        accept_strand_(net::make_strand(ioc_)),
        acceptor_(accept_strand_) {}

  ~FakeImpl() override { Stop(); }

  Status Init() {
    beast::error_code ec;
    if (options_.tls) {
      if (options_.cert_pem.empty() || options_.key_pem.empty()) {
        return InvalidArgumentError("tls requires cert_pem and key_pem");
      }
      ssl_ctx_.emplace(ssl::context::tls_server);
      ssl_ctx_->set_options(
          ssl::context::default_workarounds | ssl::context::no_sslv2 |
              ssl::context::no_sslv3 | ssl::context::single_dh_use,
          ec);
      SSL_CTX_set_min_proto_version(ssl_ctx_->native_handle(), TLS1_2_VERSION);
      ssl_ctx_->use_certificate_chain(net::buffer(options_.cert_pem), ec);
      if (ec) return InvalidArgumentError("bad cert_pem: " + ec.message());
      ssl_ctx_->use_private_key(net::buffer(options_.key_pem),
                                ssl::context::pem, ec);
      if (ec) return InvalidArgumentError("bad key_pem: " + ec.message());
    }
    const std::string host =
        options_.host == "localhost" ? "127.0.0.1" : options_.host;
    const net::ip::address address = net::ip::make_address(host, ec);
    if (ec) return InvalidArgumentError("bad host: " + options_.host);
    const tcp::endpoint endpoint(address, options_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return UnavailableError("cannot listen on " + host + ":" +
                              std::to_string(options_.port) + ": " +
                              ec.message());
    }
    port_ = acceptor_.local_endpoint(ec).port();
    if (ec) return InternalError("local_endpoint: " + ec.message());
    display_host_ = host == "0.0.0.0"                     ? "127.0.0.1"
                    : host == "::"                        ? "[::1]"
                    : host.find(':') != std::string::npos ? "[" + host + "]"
                                                          : host;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++active_;
    }
    net::co_spawn(accept_strand_, AcceptLoop(),
                  [this](std::exception_ptr) { SessionDone(0); });
    const int threads = std::max(1, options_.threads);
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] { RunLoop(); });
    }
    return Status();
  }

  uint16_t port() const override { return port_; }

  std::string base_url() const override {
    return std::string(options_.tls ? "https://" : "http://") + display_host_ +
           ":" + std::to_string(port_) + "/api/v1";
  }

  uint64_t requests() const override { return requests_.load(); }
  uint64_t completions() const override { return completions_.load(); }
  uint64_t embeddings() const override { return embeddings_.load(); }
  uint64_t embedded_items() const override { return embedded_items_.load(); }
  uint64_t responses() const override { return responses_.load(); }
  uint64_t messages() const override { return messages_.load(); }
  uint64_t connections() const override { return connections_.load(); }

  std::string last_authorization() const override {
    return last_header("authorization");
  }

  std::string last_header(const std::string& name) const override {
    std::lock_guard<std::mutex> lock(headers_mu_);
    for (const auto& [k, v] : last_headers_) {
      if (beast::iequals(k, name)) return v;
    }
    return "";
  }

  void ResetCounters() override {
    requests_ = 0;
    completions_ = 0;
    embeddings_ = 0;
    embedded_items_ = 0;
    responses_ = 0;
    messages_ = 0;
    connections_ = 0;
    {
      std::lock_guard<std::mutex> lock(headers_mu_);
      last_headers_.clear();
    }
    responder_.ResetFlaky();
    endpoints_.ResetFlaky();
  }

  void Stop() override {
    std::lock_guard<std::mutex> stop_lock(stop_mu_);
    if (stopped_) return;
    stopped_ = true;
    std::vector<std::shared_ptr<ConnBase>> conns;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      for (auto& [id, weak] : conns_) {
        if (auto c = weak.lock()) conns.push_back(std::move(c));
      }
    }
    try {
      net::post(accept_strand_, [this] {
        beast::error_code ec;
        acceptor_.close(ec);
      });
      for (auto& c : conns) {
        net::post(c->executor(), [c] { c->CloseNow(); });
      }
      conns.clear();
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, kStopGrace, [this] { return active_ == 0; });
      }
    } catch (...) {
      // post() only throws on allocation failure; fall through to stop().
    }
    ioc_.stop();
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void RunLoop() {
    for (;;) {
      try {
        ioc_.run();
        return;
      } catch (...) {
        // Handlers catch their own exceptions; keep serving regardless.
      }
    }
  }

  void SessionDone(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    if (id != 0) conns_.erase(id);
    --active_;
    if (active_ == 0) cv_.notify_all();
  }

  net::awaitable<void> AcceptLoop() {
    beast::error_code ec;
    for (;;) {
      tcp::socket socket =
          co_await acceptor_.async_accept(net::make_strand(ioc_), Tok(ec));
      if (ec == net::error::operation_aborted || !acceptor_.is_open()) break;
      if (ec) {
        // E.g. EMFILE: back off briefly instead of spinning.
        net::steady_timer t(accept_strand_, std::chrono::milliseconds(10));
        co_await t.async_wait(Tok(ec));
        continue;
      }
      connections_.fetch_add(1);
      socket.set_option(tcp::no_delay(true), ec);
      if (options_.tls) {
        Launch(std::make_shared<Conn<TlsStream>>(
            beast::tcp_stream(std::move(socket)), *ssl_ctx_));
      } else {
        Launch(std::make_shared<Conn<PlainStream>>(std::move(socket)));
      }
    }
  }

  template <class Stream>
  void Launch(std::shared_ptr<Conn<Stream>> conn) {
    uint64_t id = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;  // the socket closes with `conn`
      id = ++next_conn_id_;
      conns_[id] = conn;
      ++active_;
    }
    net::co_spawn(conn->executor(), Session(conn),
                  [this, id](std::exception_ptr) { SessionDone(id); });
  }

  bool stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  template <class Stream>
  net::awaitable<void> Session(std::shared_ptr<Conn<Stream>> conn) {
    try {
      co_await Serve(conn);
    } catch (...) {
      // A session never takes the server down.
    }
    if (!conn->closed) conn->CloseNow();
  }

  template <class Stream>
  net::awaitable<void> Serve(std::shared_ptr<Conn<Stream>> conn) {
    constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
    Stream& stream = conn->stream;
    beast::tcp_stream& tcp_stream = beast::get_lowest_layer(stream);
    beast::error_code ec;
    if constexpr (kTls) {
      tcp_stream.expires_after(kHandshakeTimeout);
      co_await stream.async_handshake(ssl::stream_base::server, Tok(ec));
      if (ec) co_return;
    }
    beast::flat_buffer buffer;
    bool keep_alive = true;
    while (keep_alive && !conn->closed) {
      // A fresh parser per message, with limits.
      http::request_parser<http::string_body> parser;
      parser.header_limit(kMaxHeaderBytes);
      parser.body_limit(kMaxBodyBytes);
      tcp_stream.expires_after(kIdleTimeout);
      co_await http::async_read_header(stream, buffer, parser, Tok(ec));
      if (ec) co_return;
      if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
        http::response<http::empty_body> cont{http::status::continue_,
                                              parser.get().version()};
        tcp_stream.expires_after(kIoTimeout);
        co_await http::async_write(stream, cont, Tok(ec));
        if (ec) co_return;
      }
      if (!parser.is_done()) {
        tcp_stream.expires_after(kIoTimeout);
        co_await http::async_read(stream, buffer, parser, Tok(ec));
      }
      if (ec == http::error::body_limit) {
        // 413, then close: the rest of the body is never read.
        requests_.fetch_add(1);
        Plan plan;
        plan.status = 413;
        plan.body = R"({"error":{"code":413,"message":"Payload too large."}})";
        co_await Execute(conn, plan, parser.get().version(), false);
        co_return;
      }
      if (ec) co_return;
      Request req = parser.release();
      std::string_view path = View(req.target());
      path = path.substr(0, path.find('?'));
      const ApiPath api = internal::FindApiPath(path);
      Record(req, path, api);
      const RequestView view{
          .method = View(req.method_string()),
          .path = path,
          .authorization = View(req[http::field::authorization]),
          .body = req.body()};
      const Plan plan = api == ApiPath::kNone ? responder_.Handle(view)
                                              : endpoints_.Handle(api, view);
      if (plan.embedded_items > 0) {
        embedded_items_.fetch_add(static_cast<uint64_t>(plan.embedded_items));
      }
      if (options_.log_requests) {
        std::fprintf(stderr, "fake-openrouter: %s %.*s -> %u %s\n",
                     std::string(req.method_string()).c_str(),
                     static_cast<int>(req.target().size()), req.target().data(),
                     plan.status, plan.model.c_str());
      }
      keep_alive =
          co_await Execute(conn, plan, req.version(), req.keep_alive());
    }
    if (conn->closed) co_return;
    if constexpr (kTls) {
      tcp_stream.expires_after(kTlsShutdownTimeout);
      co_await stream.async_shutdown(Tok(ec));
    } else {
      tcp_stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  // Waits on the connection's timer; false if the wait was cancelled.
  template <class Stream>
  net::awaitable<bool> Sleep(Conn<Stream>& conn, std::chrono::microseconds d) {
    if (conn.closed || stopping()) co_return false;
    beast::error_code ec;
    conn.timer.expires_after(d);
    co_await conn.timer.async_wait(Tok(ec));
    co_return !ec && !conn.closed;
  }

  // Sends `plan`; returns whether the connection may serve another request.
  template <class Stream>
  net::awaitable<bool> Execute(std::shared_ptr<Conn<Stream>> conn,
                               const Plan& plan, unsigned version,
                               bool keep_alive) {
    Stream& stream = conn->stream;
    beast::tcp_stream& tcp_stream = beast::get_lowest_layer(stream);
    beast::error_code ec;
    const std::chrono::microseconds delay =
        std::chrono::milliseconds(plan.delay_ms) +
        std::chrono::microseconds(plan.delay_us);
    if (delay.count() > 0) {
      const bool slept = co_await Sleep(*conn, delay);
      if (!slept) co_return false;
    }
    if (plan.kind == Plan::Kind::kHang) {
      // Read (and drop) whatever comes until the peer or Stop() closes.
      tcp_stream.expires_never();
      std::array<char, 4096> scratch;
      for (;;) {
        co_await stream.async_read_some(net::buffer(scratch), Tok(ec));
        if (ec) co_return false;
      }
    }
    const bool complete = plan.kind == Plan::Kind::kComplete;
    http::response<http::empty_body> res;
    res.version(version);
    res.result(plan.status);
    if (plan.status == 524) res.reason("A Timeout Occurred");
    if (plan.status == 529) res.reason("Site Overloaded");
    res.set(http::field::content_type, plan.content_type);
    if (!plan.generation_id.empty()) {
      res.set("X-Generation-Id", plan.generation_id);
    }
    for (const auto& [name, value] : plan.headers) res.set(name, value);
    res.keep_alive(keep_alive && complete);
    if (plan.stream) {
      res.chunked(true);
    } else {
      res.content_length(plan.body.size());
    }
    http::response_serializer<http::empty_body> serializer(res);
    tcp_stream.expires_after(kIoTimeout);
    co_await http::async_write_header(stream, serializer, Tok(ec));
    if (ec) co_return false;

    if (!plan.stream) {
      const size_t n = complete ? plan.body.size() : plan.body.size() / 2;
      tcp_stream.expires_after(kIoTimeout);
      co_await net::async_write(stream, net::buffer(plan.body.data(), n),
                                Tok(ec));
      if (ec) co_return false;
    } else {
      for (size_t i = 0; i < plan.events.size(); ++i) {
        if (i == plan.flood_at && plan.flood_count > 0) {
          const auto chunk = http::make_chunk(net::buffer(plan.flood_event));
          for (int64_t n = 0; n < plan.flood_count; ++n) {
            if (plan.flood_gap_ms > 0) {
              const bool slept = co_await Sleep(
                  *conn, std::chrono::milliseconds(plan.flood_gap_ms));
              if (!slept) co_return false;
            }
            tcp_stream.expires_after(kIoTimeout);
            co_await net::async_write(stream, chunk, Tok(ec));
            if (ec) co_return false;
          }
        }
        if (i > 0 && plan.event_gap_ms > 0) {
          const bool slept = co_await Sleep(
              *conn, std::chrono::milliseconds(plan.event_gap_ms));
          if (!slept) co_return false;
        }
        const auto chunk = http::make_chunk(net::buffer(plan.events[i]));
        tcp_stream.expires_after(kIoTimeout);
        co_await net::async_write(stream, chunk, Tok(ec));
        if (ec) co_return false;  // the client went away: stop writing
      }
      if (complete) {
        const auto last = http::make_chunk_last();
        tcp_stream.expires_after(kIoTimeout);
        co_await net::async_write(stream, last, Tok(ec));
        if (ec) co_return false;
      }
    }
    if (plan.kind == Plan::Kind::kReset) {
      conn->closed = true;
      conn->Reset();
      co_return false;
    }
    if (plan.kind == Plan::Kind::kCut) {
      conn->closed = true;
      conn->Cut();
      co_return false;
    }
    co_return keep_alive;
  }

  void Record(const Request& req, std::string_view path, ApiPath api) {
    requests_.fetch_add(1);
    if (internal::IsCompletionPath(path)) completions_.fetch_add(1);
    if (api == ApiPath::kEmbeddings) embeddings_.fetch_add(1);
    if (api == ApiPath::kResponses) responses_.fetch_add(1);
    if (api == ApiPath::kMessages) messages_.fetch_add(1);
    std::vector<std::pair<std::string, std::string>> headers;
    for (const auto& field : req) {
      headers.emplace_back(std::string(field.name_string()),
                           std::string(field.value()));
    }
    std::lock_guard<std::mutex> lock(headers_mu_);
    last_headers_ = std::move(headers);
  }

  const FakeOptions options_;
  Responder responder_;
  ApiEndpoints endpoints_;
  // Declared before ioc_ so that it outlives every stream using it.
  std::optional<ssl::context> ssl_ctx_;
  net::io_context ioc_;
  net::strand<net::io_context::executor_type> accept_strand_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  std::string display_host_;

  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> completions_{0};
  std::atomic<uint64_t> embeddings_{0};
  std::atomic<uint64_t> embedded_items_{0};
  std::atomic<uint64_t> responses_{0};
  std::atomic<uint64_t> messages_{0};
  std::atomic<uint64_t> connections_{0};
  mutable std::mutex headers_mu_;
  // The last request's headers, names as sent.
  std::vector<std::pair<std::string, std::string>> last_headers_;

  std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  bool stopping_ = false;
  int active_ = 0;  // running sessions plus the accept loop
  uint64_t next_conn_id_ = 0;
  std::map<uint64_t, std::weak_ptr<ConnBase>> conns_;

  std::mutex stop_mu_;
  bool stopped_ = false;
};

}  // namespace

Result<std::unique_ptr<FakeOpenRouter>> FakeOpenRouter::Start(
    const FakeOptions& o) {
  try {
    if (o.threads < 1) return InvalidArgumentError("threads must be >= 1");
    auto impl = std::make_unique<FakeImpl>(o);
    Status s = impl->Init();
    if (!s.ok()) return s;
    return std::unique_ptr<FakeOpenRouter>(std::move(impl));
  } catch (const std::exception& e) {
    return InternalError(std::string("fake openrouter: ") + e.what());
  } catch (...) {
    return InternalError("fake openrouter: unknown exception");
  }
}

}  // namespace llmcache::fake
