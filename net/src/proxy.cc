// ProxyServer implementation: a Boost.Beast HTTP/1.1 server in front of
// CachedClient. This is the only translation unit of the proxy that
// instantiates Beast/Asio server templates; parsing helpers and metrics are
// in proxy_util.cc and metrics.cc.
//
// Threads:
//   - N workers, each running its own io_context (concurrency hint 1). A
//     connection (Session) lives on one worker for its whole life, so its
//     handlers never run concurrently and need no strand. The acceptor runs
//     on worker 0 and hands sockets out round robin.
//   - One upstream thread runs the Client (and CachedClient's callbacks);
//     results are posted back to the connection's worker.
//   - One admin thread runs store operations that may take a while (purges,
//     GetStats for /stats and /metrics), off the workers.
//
// The hit path: the request is parsed with a per-message Beast parser, the
// key computed and Cache::Lookup called inline on the worker; a hit is
// written straight from the shared, immutable entry (a gather write of a
// hand-built head and the stored body: no copy). A miss (or a bypass) goes
// through CachedClient with skip_lookup set when we already looked (so the
// engine counts one lookup per request); its stream events are posted back
// and written as HTTP chunks as they arrive.
//
// Decisions not spelled out in proxy.h:
//   - A stream whose upstream ends without [DONE] (cut, error) is ended by
//     closing the connection without the last chunk, so the client sees an
//     incomplete response instead of a clean end.
//   - Over the connection limit a connection gets a 503 and is closed.
//   - Responses that leave unread request bytes (413, 431, 400 on a bad
//     message) close the connection after draining briefly ("lingering
//     close"), so the client reads the answer instead of a reset.

#include "llmcache/net/proxy.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "llmcache/net/sse.h"
#include "llmcache/purge.h"
#include "metrics.h"
#include "proxy_util.h"

namespace llmcache::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using metrics::Route;

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kEventStream = "text/event-stream";
constexpr auto kLingerTimeout = std::chrono::milliseconds(1000);

// Upstream response headers passed through to the client.
constexpr std::array<std::string_view, 5> kPassResponseHeaders = {
    "Retry-After", "X-Generation-Id", "X-RateLimit-Limit",
    "X-RateLimit-Remaining", "X-RateLimit-Reset"};
// Request headers passed upstream (attribution; they never change output).
constexpr std::array<std::string_view, 5> kPassRequestHeaders = {
    "HTTP-Referer", "X-Title", "X-OpenRouter-Title", "X-OpenRouter-Categories",
    "X-Session-Id"};

int64_t ElapsedNs(SteadyClock::time_point since) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             SteadyClock::now() - since)
      .count();
}

std::string_view Sv(beast::string_view s) { return {s.data(), s.size()}; }

class ProxyImpl;
class Session;

struct Worker {
  explicit Worker(size_t i, metrics::Shard* s)
      : index(i), ioc(1), guard(asio::make_work_guard(ioc)), shard(s) {}
  const size_t index;
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> guard;
  metrics::Shard* const shard;
  std::thread thread;
  std::mutex mu;  // guards sessions
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions;
};

// Flag shared with upstream callbacks: set when the client went away.
struct StreamCtl {
  std::atomic<bool> cancelled{false};
};

class ProxyImpl final : public ProxyServer {
 public:
  ProxyImpl(ProxyOptions options, std::shared_ptr<Cache> cache)
      : options_(std::move(options)),
        cache_(std::move(cache)),
        metrics_(static_cast<size_t>(std::max(1, options_.threads))),
        keys_(options_.cached.key_options) {}

  ~ProxyImpl() override {
    Shutdown(std::chrono::milliseconds(10'000));
    // Upstream work (and the session references it holds) goes first, while
    // the workers' io_contexts still exist.
    cached_.reset();
    client_.reset();
    upstream_guard_.reset();
    upstream_.reset();
    admin_.reset();
    accept_timer_.reset();
    acceptor_.reset();
    workers_.clear();
  }

  Status Init();

  uint16_t port() const override { return port_; }
  std::string base_url() const override {
    return "http://" + display_host_ + ":" + std::to_string(port_);
  }
  void Shutdown(std::chrono::milliseconds grace) override;
  ProxyCounters counters() const override;
  std::string MetricsText() override;

  // For sessions.
  const ProxyOptions& options() const { return options_; }
  Cache& cache() { return *cache_; }
  CachedClient& cached() { return *cached_; }
  Client& client() { return *client_; }
  const KeyBuilder& keys() const { return keys_; }
  metrics::Registry& registry() { return metrics_; }
  asio::thread_pool& admin() { return *admin_; }
  const std::string& server_key() const { return client_->options().api_key; }
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  int64_t NowMs() const {
    return (options_.clock ? options_.clock : Clock::System())->NowMillis();
  }
  bool LogEnabled(LogLevel level) const {
    return static_cast<int>(level) <= static_cast<int>(options_.log_level);
  }
  void Log(LogLevel level, std::string_view line) {
    if (!LogEnabled(level)) return;
    try {
      if (options_.log) {
        options_.log(level, line);
      } else {
        std::string l = "llmcache: ";
        l.append(line);
        l.push_back('\n');
        std::fwrite(l.data(), 1, l.size(), stderr);
      }
    } catch (...) {
      // Logging never fails a request.
    }
  }

  // GET /models answers kept in memory.
  struct ModelsEntry {
    std::shared_ptr<const std::string> body;
    std::string content_type;
    SteadyClock::time_point fetched;
  };
  std::optional<ModelsEntry> CachedModels() {
    std::lock_guard<std::mutex> lock(models_mu_);
    if (!models_ || options_.models_ttl.count() <= 0 ||
        SteadyClock::now() - models_->fetched > options_.models_ttl) {
      return std::nullopt;
    }
    return models_;
  }
  void StoreModels(ModelsEntry e) {
    if (options_.models_ttl.count() <= 0) return;
    std::lock_guard<std::mutex> lock(models_mu_);
    models_ = std::move(e);
  }

  // Runs `fn` (returning Result<std::string> JSON) on the admin thread.
  std::string RenderStatsJson();

 private:
  void DoAccept();
  void OnAccept(Worker& target, beast::error_code ec, tcp::socket socket);
  void RunWorker(Worker& w);

  // Declared first: destroyed last (sessions touch it when they die).
  const ProxyOptions options_;
  std::shared_ptr<Cache> cache_;
  metrics::Registry metrics_;
  const KeyBuilder keys_;

  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<asio::io_context> upstream_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>>
      upstream_guard_;
  std::thread upstream_thread_;
  std::unique_ptr<asio::thread_pool> admin_;
  std::shared_ptr<Client> client_;
  std::shared_ptr<CachedClient> cached_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::unique_ptr<asio::steady_timer> accept_timer_;
  size_t next_worker_ = 0;
  uint64_t next_session_id_ = 0;
  uint16_t port_ = 0;
  std::string display_host_;

  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;
  bool stopped_ = false;

  std::mutex models_mu_;
  std::optional<ModelsEntry> models_;
};

// One client connection. All of its members are used on its worker's thread
// only; upstream callbacks post back to it.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ProxyImpl& server, Worker& worker, tcp::socket socket, uint64_t id)
      : srv_(server),
        w_(worker),
        stream_(std::move(socket)),
        id_(id),
        shard_(*worker.shard) {}

  ~Session() {
    srv_.registry().open_connections.fetch_sub(1, std::memory_order_relaxed);
  }

  void Start() { DoRead(); }

  // Closes the connection if no request is being answered (shutdown).
  void CloseIfIdle() {
    if (!request_active_) CloseNow();
  }

  void CloseNow() {
    if (closed_) return;
    closed_ = true;
    if (ctl_) ctl_->cancelled.store(true);
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
    std::lock_guard<std::mutex> lock(w_.mu);
    w_.sessions.erase(id_);
  }

 private:
  // ------------------------------------------------------------- reading

  void DoRead() {
    if (closed_) return;
    if (srv_.stopping()) {
      CloseNow();
      return;
    }
    parser_.emplace();
    parser_->header_limit(
        static_cast<std::uint32_t>(srv_.options().max_header_bytes));
    parser_->body_limit(srv_.options().max_body_bytes);
    stream_.expires_after(first_ ? srv_.options().read_timeout
                                 : srv_.options().idle_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) {
          self->OnHeader(ec);
        });
  }

  void OnHeader(beast::error_code ec) {
    if (closed_) return;
    if (ec == http::error::header_limit) {
      BeginRequest();
      route_ = Route::kOther;
      SendError(431, "request_header_fields_too_large",
                "request headers larger than " +
                    std::to_string(srv_.options().max_header_bytes) + " bytes",
                /*close=*/true);
      return;
    }
    if (ec == http::error::body_limit) {
      BeginRequest();
      SendTooLarge();
      return;
    }
    if (ec) {
      // EOF, timeout, reset or a malformed message: nothing to answer.
      if (ec != http::error::end_of_stream && ec != asio::error::eof &&
          ec != beast::error::timeout && ec != asio::error::connection_reset &&
          ec != asio::error::operation_aborted) {
        BeginRequest();
        route_ = Route::kOther;
        SendError(400, "invalid_request_error",
                  "malformed HTTP request: " + ec.message(), /*close=*/true);
        return;
      }
      CloseNow();
      return;
    }
    first_ = false;
    BeginRequest();
    PumpBody();
  }

  // Feeds body bytes already buffered to the parser; reads the rest.
  void PumpBody() {
    beast::error_code ec;
    while (!parser_->is_done() && buffer_.size() > 0) {
      const size_t n = parser_->put(buffer_.data(), ec);
      buffer_.consume(n);
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec || n == 0) break;
    }
    if (ec) {
      OnBody(ec);
      return;
    }
    if (parser_->is_done()) {
      Handle();
      return;
    }
    auto self = shared_from_this();
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      static constexpr std::string_view kContinue =
          "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_after(srv_.options().read_timeout);
      asio::async_write(stream_, asio::buffer(kContinue),
                        [self](beast::error_code wec, size_t) {
                          if (wec) return self->OnBody(wec);
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    stream_.expires_after(srv_.options().read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->OnBody(ec);
                     });
  }

  void OnBody(beast::error_code ec) {
    if (closed_) return EndRequest();
    if (ec == http::error::body_limit) return SendTooLarge();
    if (ec) {
      if (ec == beast::error::timeout || ec == http::error::end_of_stream ||
          ec == asio::error::eof || ec == asio::error::connection_reset ||
          ec == http::error::partial_message) {
        CloseNow();
        EndRequest();
        return;
      }
      SendError(400, "invalid_request_error",
                "malformed HTTP request: " + ec.message(), /*close=*/true);
      return;
    }
    Handle();
  }

  // ------------------------------------------------------------ routing

  void Handle() {
    t0_ = SteadyClock::now();
    const auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    const std::string_view target = Sv(req.target());
    const size_t q = target.find('?');
    const std::string_view path = target.substr(0, q);
    query_ =
        q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
    path_ = path;
    const http::verb method = req.method();
    if (path == "/v1/chat/completions" || path == "/api/v1/chat/completions") {
      route_ = Route::kChatCompletions;
      if (method != http::verb::post) return MethodNotAllowed("POST");
      return HandleChat();
    }
    if (path == "/v1/models" || path == "/api/v1/models") {
      route_ = Route::kModels;
      if (method != http::verb::get) return MethodNotAllowed("GET");
      return HandleModels();
    }
    if (path == "/healthz") {
      route_ = Route::kHealthz;
      if (method != http::verb::get) return MethodNotAllowed("GET");
      static constexpr std::string_view kOk = R"({"status":"ok"})";
      return SendWhole(200, kJson, {}, kOk, nullptr);
    }
    if (path == "/metrics") {
      route_ = Route::kMetrics;
      if (method != http::verb::get) return MethodNotAllowed("GET");
      return RunOnAdmin(
          [srv = &srv_]() -> std::pair<int, std::string> {
            return {200, srv->MetricsText()};
          },
          "text/plain; version=0.0.4; charset=utf-8");
    }
    if (path == "/stats") {
      route_ = Route::kStats;
      if (method != http::verb::get) return MethodNotAllowed("GET");
      return RunOnAdmin(
          [srv = &srv_]() -> std::pair<int, std::string> {
            return {200, srv->RenderStatsJson()};
          },
          kJson);
    }
    if (path.substr(0, 7) == "/admin/" && !srv_.options().admin_token.empty()) {
      route_ = Route::kAdmin;
      return HandleAdmin(path.substr(7), method);
    }
    route_ = Route::kOther;
    SendError(404, "invalid_request_error", "no route for " + std::string(path),
              false);
  }

  void MethodNotAllowed(std::string_view allow) {
    std::string extra;
    proxy_util::AppendHeader(&extra, "Allow", allow);
    SendError(405, "invalid_request_error",
              "method not allowed; use " + std::string(allow), false,
              std::move(extra));
  }

  // ------------------------------------------------------- completions

  void HandleChat() {
    auto& req = parser_->get();
    const ProxyOptions& o = srv_.options();
    CachedRequest creq;

    const std::string_view token =
        proxy_util::BearerToken(Sv(req[http::field::authorization]));
    creq.api_key = std::string(token);
    if (!o.shared_cache) {
      const std::string_view effective =
          token.empty() ? std::string_view(srv_.server_key()) : token;
      if (!scope_valid_ || effective != last_key_) {
        last_key_.assign(effective);
        last_scope_ =
            effective.empty() ? std::string() : ApiKeyScope(effective);
        scope_valid_ = true;
      }
      creq.scope = last_scope_;
    }

    if (auto it = req.find(http::field::cache_control); it != req.end()) {
      Result<proxy_util::CacheDirectives> d =
          proxy_util::ParseCacheControl(Sv(it->value()));
      if (!d.ok()) {
        return SendError(400, "invalid_request_error",
                         std::string(d.status().message()), false);
      }
      creq.skip_lookup = d->no_cache;
      creq.no_store = d->no_store;
      if (d->max_age_s) creq.max_age_ms = *d->max_age_s * 1000;
    }
    if (auto it = req.find("X-Cache-TTL"); it != req.end()) {
      std::optional<int64_t> ttl = proxy_util::ParseSeconds(Sv(it->value()));
      if (!ttl) {
        return SendError(400, "invalid_request_error",
                         "X-Cache-TTL must be a non-negative integer of "
                         "seconds (0 = never expires)",
                         false);
      }
      creq.ttl_ms = *ttl * 1000;
    }
    ns_.clear();
    if (auto it = req.find("X-Cache-Namespace"); it != req.end()) {
      const std::string_view ns = Sv(it->value());
      if (!proxy_util::ValidNamespace(ns)) {
        return SendError(400, "invalid_request_error",
                         "X-Cache-Namespace must be 1-128 characters of "
                         "[A-Za-z0-9._:-]",
                         false);
      }
      ns_.assign(ns);
    }
    for (std::string_view name : kPassRequestHeaders) {
      if (auto it = req.find(beast::string_view(name.data(), name.size()));
          it != req.end()) {
        creq.headers.push_back(
            Header{std::string(name), std::string(Sv(it->value()))});
      }
    }

    const std::string_view ns =
        ns_.empty() ? std::string_view(o.cached.default_namespace)
                    : std::string_view(ns_);
    RequestInfo info;
    Result<RequestKey> key =
        srv_.keys().Compute(req.body(), KeyScope{ns, creq.scope}, &info);
    if (!key.ok()) {
      return SendError(400, "invalid_request_error",
                       std::string(key.status().message()), false);
    }
    if (key->model.empty()) {
      return SendError(400, "invalid_request_error",
                       "request member \"model\" is empty", false);
    }
    if (info.message_count == 0) {
      return SendError(400, "invalid_request_error",
                       "request member \"messages\" is empty", false);
    }
    key_hex_ = key->Hex();
    const Decision decision = Decide(info, o.cached.mode);
    stream_req_ = info.stream;

    bool looked_up = false;
    if (decision.cache && !creq.skip_lookup) {
      LookupOptions lo;
      lo.max_age_ms = creq.max_age_ms;
      Result<LookupResult> r = srv_.cache().Lookup(*key, lo);
      if (!r.ok()) {
        // Fail open: CachedClient looks again (and logs, rate-limited).
        shard_.Add(shard_.store_errors);
      } else if (r->hit() && ServeHit(std::move(r->entry))) {
        return;
      } else {
        looked_up = true;
      }
    }

    // Upstream (miss or bypass) through CachedClient.
    label_ = decision.cache ? "MISS" : "BYPASS";
    bypass_reason_ = decision.reason;
    creq.looked_up = looked_up;
    creq.body = std::move(req.body());
    creq.ns = ns_;
    headers_sent_ = false;
    done_seen_ = false;
    stream_finished_ = false;
    ctl_ = std::make_shared<StreamCtl>();
    StreamHandler on_chunk;
    auto self = shared_from_this();
    if (stream_req_) {
      on_chunk = [self, ctl = ctl_](std::string_view data) {
        if (ctl->cancelled.load(std::memory_order_relaxed)) return false;
        asio::post(self->w_.ioc,
                   [self, d = std::string(data)] { self->OnChunk(d); });
        return true;
      };
    }
    srv_.cached().Complete(
        std::move(creq), std::move(on_chunk), [self](Result<CachedResponse> r) {
          asio::post(self->w_.ioc, [self, r = std::move(r)]() mutable {
            self->OnCompleted(std::move(r));
          });
        });
  }

  // Answers from a stored entry; false (nothing sent) when a stream was asked
  // for and the entry cannot be replayed as one: then it goes upstream.
  bool ServeHit(std::shared_ptr<const Entry> entry) {
    if (stream_req_) {
      Result<std::vector<std::string>> events = ReplayAsSse(entry->body);
      if (!events.ok()) {
        srv_.Log(LogLevel::kWarn, "entry " + key_hex_ +
                                      " cannot be replayed as a stream (" +
                                      std::string(events.status().message()) +
                                      "); asking upstream");
        return false;
      }
      body_.clear();
      for (const std::string& e : *events) proxy_util::AppendChunk(&body_, e);
      body_.append(proxy_util::kLastChunk);
    }
    label_ = "HIT";
    shard_.Add(shard_.hits);
    const Usage& u = entry->meta.usage;
    shard_.Add(shard_.tokens_saved, u.prompt_tokens + u.completion_tokens);
    shard_.cost_saved_nanousd.fetch_add(u.cost_nanousd,
                                        std::memory_order_relaxed);
    const int64_t age_s =
        std::max<int64_t>(0, srv_.NowMs() - entry->meta.created_ms) / 1000;
    extra_.clear();
    extra_.append("X-Cache: HIT\r\nX-Cache-Key: ");
    extra_.append(key_hex_);
    extra_.append("\r\nAge: ");
    extra_.append(std::to_string(age_s));
    extra_.append("\r\n");
    if (!stream_req_) {
      const std::string_view body = entry->body;
      SendWhole(200, kJson, extra_, body, std::move(entry));
    } else {
      extra_.append("Cache-Control: no-cache\r\n");
      SendWhole(200, kEventStream, extra_, body_, nullptr, /*chunked=*/true);
    }
    shard_.hit_latency.Observe(metrics::kHitBuckets, ElapsedNs(t0_));
    return true;
  }

  // The extra headers of a miss/bypass answer.
  void CacheHeaders(std::string* out) {
    out->append("X-Cache: ");
    out->append(label_);
    out->append("\r\n");
    if (std::string_view(label_) == "BYPASS") {
      proxy_util::AppendHeader(out, "X-Cache-Bypass-Reason",
                               BypassReasonName(bypass_reason_));
    }
    if (!key_hex_.empty())
      proxy_util::AppendHeader(out, "X-Cache-Key", key_hex_);
  }

  void OnChunk(const std::string& data) {
    if (closed_) return;
    if (!headers_sent_) {
      headers_sent_ = true;
      extra_.clear();
      CacheHeaders(&extra_);
      extra_.append("Cache-Control: no-cache\r\n");
      pending_.clear();
      proxy_util::AppendResponseHead(&pending_, 200, kEventStream, -1,
                                     keep_alive_ && !srv_.stopping(), extra_);
      status_ = 200;
    }
    if (data == "[DONE]") done_seen_ = true;
    proxy_util::AppendSseChunk(&pending_, data);
    Flush();
  }

  void Flush() {
    if (writing_ || pending_.empty() || closed_) return;
    writing_ = true;
    std::swap(out_, pending_);
    pending_.clear();
    stream_.expires_after(srv_.options().read_timeout);
    asio::async_write(
        stream_, asio::buffer(out_),
        [self = shared_from_this()](beast::error_code ec, size_t n) {
          self->OnStreamWritten(ec, n);
        });
  }

  void OnStreamWritten(beast::error_code ec, size_t n) {
    writing_ = false;
    shard_.Add(shard_.response_bytes, n);
    if (ec || closed_) {
      // The client went away: cancel the upstream stream.
      if (ctl_) ctl_->cancelled.store(true);
      CloseNow();
      if (stream_finished_) EndRequest();
      return;
    }
    if (!pending_.empty()) return Flush();
    if (stream_finished_) FinishStream();
  }

  void FinishStream() {
    EndRequest();
    if (stream_clean_ && keep_alive_ && !srv_.stopping()) {
      DoRead();
    } else if (stream_clean_) {
      LingerClose();
    } else {
      CloseNow();  // no last chunk: the client sees a truncated body
    }
  }

  void OnCompleted(Result<CachedResponse> r) {
    shard_.upstream_latency.Observe(metrics::kUpstreamBuckets, ElapsedNs(t0_));
    if (r.ok()) {
      switch (r->result) {
        case CacheResult::kHit:
          label_ = "HIT";
          shard_.Add(shard_.hits);
          shard_.Add(shard_.tokens_saved,
                     r->usage.prompt_tokens + r->usage.completion_tokens);
          shard_.cost_saved_nanousd.fetch_add(r->usage.cost_nanousd,
                                              std::memory_order_relaxed);
          break;
        case CacheResult::kMiss:
          shard_.Add(shard_.misses);
          break;
        case CacheResult::kBypass:
          shard_.Add(shard_.bypasses[static_cast<size_t>(r->bypass_reason)]);
          break;
      }
      if (r->result != CacheResult::kHit && r->status != 200) {
        shard_.Add(shard_.upstream_errors);
      }
    } else {
      shard_.Add(shard_.upstream_errors);
    }
    if (closed_) {
      stream_finished_ = true;
      if (!writing_) EndRequest();
      return;
    }
    if (headers_sent_) {
      stream_finished_ = true;
      stream_clean_ = r.ok() && done_seen_;
      if (stream_clean_) pending_.append(proxy_util::kLastChunk);
      if (!writing_) {
        if (!pending_.empty()) {
          Flush();
        } else {
          FinishStream();
        }
      }
      return;
    }
    if (!r.ok()) {
      const Status& s = r.status();
      if (s.code() == StatusCode::kDeadlineExceeded) {
        return SendError(504, "upstream_timeout",
                         "upstream timed out: " + std::string(s.message()),
                         false);
      }
      if (s.code() == StatusCode::kInvalidArgument) {
        return SendError(400, "invalid_request_error", std::string(s.message()),
                         false);
      }
      return SendError(502, "upstream_error",
                       "upstream failed: " + std::string(s.message()), false);
    }
    CachedResponse& c = *r;
    extra_.clear();
    CacheHeaders(&extra_);
    if (c.result == CacheResult::kHit) {
      extra_.append("Age: " + std::to_string(c.age_ms / 1000) + "\r\n");
    }
    std::string_view content_type = kJson;
    for (const Header& h : c.headers) {
      if (beast::iequals(h.name, "Content-Type")) {
        content_type_ = h.value;
        content_type = content_type_;
        continue;
      }
      for (std::string_view name : kPassResponseHeaders) {
        if (beast::iequals(h.name, name)) {
          proxy_util::AppendHeader(&extra_, name, h.value);
        }
      }
    }
    if (c.streamed && c.status == 200) {
      // A stream request answered without events (e.g. a joined flight
      // whose leader was not streaming): replay the complete body.
      Result<std::vector<std::string>> events = ReplayAsSse(c.body);
      if (events.ok()) {
        body_.clear();
        for (const std::string& e : *events) proxy_util::AppendChunk(&body_, e);
        body_.append(proxy_util::kLastChunk);
        return SendWhole(200, kEventStream, extra_, body_, nullptr, true);
      }
    }
    body_ = std::move(c.body);
    SendWhole(c.status, content_type, extra_, body_, nullptr);
  }

  // ------------------------------------------------------------ models

  void HandleModels() {
    if (std::optional<ProxyImpl::ModelsEntry> m = srv_.CachedModels()) {
      label_ = "HIT";
      const std::string_view body = *m->body;
      content_type_ = m->content_type;
      return SendWhole(200, content_type_, "X-Cache: HIT\r\n", body,
                       std::move(m->body));
    }
    label_ = "MISS";
    shard_.Add(shard_.models_fetches);
    Request up;
    up.method = "GET";
    up.path = "/models";
    up.api_key = std::string(proxy_util::BearerToken(
        Sv(parser_->get()[http::field::authorization])));
    auto self = shared_from_this();
    srv_.client().Send(std::move(up), nullptr, [self](Result<Response> r) {
      asio::post(self->w_.ioc, [self, r = std::move(r)]() mutable {
        self->OnModels(std::move(r));
      });
    });
  }

  void OnModels(Result<Response> r) {
    if (closed_) return EndRequest();
    if (!r.ok()) {
      shard_.Add(shard_.upstream_errors);
      const bool timeout = r.status().code() == StatusCode::kDeadlineExceeded;
      return SendError(
          timeout ? 504 : 502, timeout ? "upstream_timeout" : "upstream_error",
          "upstream failed: " + std::string(r.status().message()), false);
    }
    std::string ct(r->header("Content-Type"));
    if (ct.empty()) ct = kJson;
    auto body = std::make_shared<const std::string>(std::move(r->body));
    if (r->status == 200) {
      srv_.StoreModels(ProxyImpl::ModelsEntry{body, ct, SteadyClock::now()});
    } else {
      shard_.Add(shard_.upstream_errors);
    }
    content_type_ = std::move(ct);
    const std::string_view view = *body;
    SendWhole(r->status, content_type_, "X-Cache: MISS\r\n", view,
              std::move(body));
  }

  // ------------------------------------------------------------- admin

  void HandleAdmin(std::string_view op, http::verb method) {
    if (op != "flush" && op != "purge") {
      return SendError(404, "invalid_request_error",
                       "no admin route " + std::string(op), false);
    }
    if (method != http::verb::post) return MethodNotAllowed("POST");
    const std::string_view token =
        proxy_util::BearerToken(Sv(parser_->get()[http::field::authorization]));
    if (token.empty() ||
        !proxy_util::ConstantTimeEquals(token, srv_.options().admin_token)) {
      std::string extra;
      proxy_util::AppendHeader(&extra, "WWW-Authenticate", "Bearer");
      return SendError(401, "authentication_error",
                       "admin endpoints need Authorization: Bearer <admin "
                       "token>",
                       false, std::move(extra));
    }
    const auto params = proxy_util::ParseQuery(query_);
    if (params.size() != 1) {
      return SendError(
          400, "invalid_request_error",
          "give exactly one of model=M, all=1" +
              std::string(op == "purge" ? ", key=HEX, namespace=NS, "
                                          "expired=1, older_than=DURATION"
                                        : ""),
          false);
    }
    const std::string& name = params[0].first;
    const std::string& value = params[0].second;
    Result<PurgeSelector> selector = ParsePurgeSelector(name, value);
    const bool allowed =
        selector.ok() &&
        (op == "purge" || selector->kind == PurgeKind::kModel ||
         selector->kind == PurgeKind::kAll);
    if (!allowed) {
      return SendError(400, "invalid_request_error",
                       selector.ok() ? "flush takes model=M or all=1"
                                     : std::string(selector.status().message()),
                       false);
    }
    RunOnAdmin(
        [srv = &srv_,
         sel = std::move(*selector)]() -> std::pair<int, std::string> {
          Result<uint64_t> removed = Purge(srv->cache(), sel);
          if (!removed.ok()) {
            srv->Log(LogLevel::kError, "admin " + sel.name + " failed: " +
                                           removed.status().ToString());
            return {500, proxy_util::ErrorJson(500, "server_error",
                                               removed.status().ToString())};
          }
          json::object out;
          if (sel.kind == PurgeKind::kAll || sel.kind == PurgeKind::kExpired) {
            out[sel.name] = true;
          } else {
            out[sel.name] = sel.value;
          }
          if (sel.kind == PurgeKind::kOlderThan) {
            out["older_than_seconds"] = sel.age_ms / 1000;
          }
          out["removed"] = *removed;
          srv->Log(LogLevel::kInfo, "admin " + sel.name + ": removed " +
                                        std::to_string(*removed) + " entries");
          return {200, json::serialize(out)};
        },
        kJson);
  }

  // Runs `fn` on the admin thread and sends its (status, body).
  template <typename Fn>
  void RunOnAdmin(Fn fn, std::string_view content_type) {
    content_type_ = content_type;
    auto self = shared_from_this();
    asio::post(srv_.admin(), [self, fn = std::move(fn)]() mutable {
      std::pair<int, std::string> out;
      try {
        out = fn();
      } catch (const std::exception& e) {
        out = {500, proxy_util::ErrorJson(500, "server_error", e.what())};
      }
      asio::post(self->w_.ioc, [self, out = std::move(out)]() mutable {
        if (self->closed_) return self->EndRequest();
        self->body_ = std::move(out.second);
        self->SendWhole(
            out.first,
            out.first == 200 ? std::string_view(self->content_type_) : kJson,
            {}, self->body_, nullptr);
      });
    });
  }

  // ----------------------------------------------------------- writing

  void SendTooLarge() {
    SendError(413, "request_too_large",
              "request body larger than " +
                  std::to_string(srv_.options().max_body_bytes) + " bytes",
              /*close=*/true);
  }

  void SendError(int status, std::string_view type, std::string message,
                 bool close, std::string extra = {}) {
    if (close) keep_alive_ = false;
    extra_ = std::move(extra);
    body_ = proxy_util::ErrorJson(status, type, message);
    if (srv_.LogEnabled(LogLevel::kDebug)) {
      srv_.Log(LogLevel::kDebug,
               "error " + std::to_string(status) + ": " + message);
    }
    SendWhole(status, kJson, extra_, body_, nullptr);
  }

  // Writes a complete response: the head built here and `body` (kept alive
  // by `hold`, or owned by this session).
  void SendWhole(int status, std::string_view content_type,
                 std::string_view extra, std::string_view body,
                 std::shared_ptr<const void> hold, bool chunked = false) {
    status_ = status;
    hold_ = std::move(hold);
    if (srv_.stopping()) keep_alive_ = false;
    head_.clear();
    proxy_util::AppendResponseHead(
        &head_, status, content_type,
        chunked ? -1 : static_cast<int64_t>(body.size()), keep_alive_, extra);
    const std::array<asio::const_buffer, 2> buffers = {
        asio::buffer(head_), asio::buffer(body.data(), body.size())};
    stream_.expires_after(srv_.options().read_timeout);
    asio::async_write(
        stream_, buffers,
        [self = shared_from_this()](beast::error_code ec, size_t n) {
          self->OnWritten(ec, n);
        });
  }

  void OnWritten(beast::error_code ec, size_t n) {
    hold_.reset();
    shard_.Add(shard_.response_bytes, n);
    EndRequest();
    if (ec || closed_) return CloseNow();
    if (keep_alive_ && !srv_.stopping()) return DoRead();
    LingerClose();
  }

  // Half-closes, then drains what the client still sends for a moment, so
  // that it reads our answer instead of a reset.
  void LingerClose() {
    if (closed_) return;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(kLingerTimeout);
    Drain();
  }

  void Drain() {
    stream_.async_read_some(
        asio::buffer(scratch_),
        [self = shared_from_this()](beast::error_code ec, size_t) {
          if (ec || self->closed_) return self->CloseNow();
          self->Drain();
        });
  }

  // ------------------------------------------------------ bookkeeping

  void BeginRequest() {
    request_active_ = true;
    status_ = 0;
    label_ = "-";
    route_ = Route::kOther;
    path_ = {};
    key_hex_.clear();
    stream_req_ = false;
    t0_ = SteadyClock::now();
    srv_.registry().in_flight.fetch_add(1, std::memory_order_relaxed);
  }

  void EndRequest() {
    if (!request_active_) return;
    request_active_ = false;
    srv_.registry().in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (status_ != 0) shard_.CountRequest(route_, status_);
    if (!srv_.LogEnabled(LogLevel::kInfo)) return;
    const double ms = static_cast<double>(ElapsedNs(t0_)) / 1e6;
    std::string_view method = "-";
    if (parser_ && parser_->is_header_done()) {
      method = Sv(parser_->get().method_string());
    }
    char line[512];
    const int n =
        std::snprintf(line, sizeof(line), "%.*s %.*s %d %s %.3fms",
                      static_cast<int>(method.size()), method.data(),
                      static_cast<int>(std::min<size_t>(path_.size(), 200)),
                      path_.empty() ? "-" : path_.data(), status_, label_, ms);
    if (n > 0) {
      srv_.Log(LogLevel::kInfo,
               std::string_view(line, std::min<size_t>(n, sizeof(line) - 1)));
    }
  }

  ProxyImpl& srv_;
  Worker& w_;
  beast::tcp_stream stream_;
  const uint64_t id_;
  metrics::Shard& shard_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool first_ = true;
  bool closed_ = false;
  bool keep_alive_ = true;
  bool request_active_ = false;

  // The current request.
  SteadyClock::time_point t0_;
  Route route_ = Route::kOther;
  int status_ = 0;
  const char* label_ = "-";
  BypassReason bypass_reason_ = BypassReason::kNone;
  std::string_view path_;
  std::string_view query_;
  std::string key_hex_;
  std::string ns_;
  std::string content_type_;
  bool stream_req_ = false;

  // Scope of the last API key seen on this connection.
  bool scope_valid_ = false;
  std::string last_key_;
  std::string last_scope_;

  // Output buffers, reused across requests.
  std::string head_;
  std::string extra_;
  std::string body_;
  std::shared_ptr<const void> hold_;

  // A live stream.
  std::shared_ptr<StreamCtl> ctl_;
  std::string pending_;
  std::string out_;
  bool writing_ = false;
  bool headers_sent_ = false;
  bool done_seen_ = false;
  bool stream_finished_ = false;
  bool stream_clean_ = false;

  std::array<char, 4096> scratch_;
};

Status ProxyImpl::Init() {
  try {
    const int threads = options_.threads;
    const size_t n = static_cast<size_t>(std::max(1, threads));
    CachedClientOptions co = options_.cached;
    co.log = [this](std::string_view line) { Log(LogLevel::kWarn, line); };

    upstream_ = std::make_unique<asio::io_context>(1);
    upstream_guard_.emplace(asio::make_work_guard(*upstream_));
    Result<std::shared_ptr<Client>> client =
        Client::Create(upstream_->get_executor(), options_.upstream);
    if (!client.ok()) return client.status();
    client_ = std::move(client).value();
    cached_ = CachedClient::Create(cache_, client_, std::move(co));
    admin_ = std::make_unique<asio::thread_pool>(1);

    for (size_t i = 0; i < n; ++i) {
      workers_.push_back(std::make_unique<Worker>(i, &metrics_.shard(i)));
    }
    beast::error_code ec;
    const std::string host =
        options_.host == "localhost" ? "127.0.0.1" : options_.host;
    const asio::ip::address address = asio::ip::make_address(host, ec);
    if (ec) return InvalidArgumentError("bad listen host '" + host + "'");
    const tcp::endpoint endpoint(address, options_.port);
    acceptor_ = std::make_unique<tcp::acceptor>(workers_[0]->ioc);
    accept_timer_ = std::make_unique<asio::steady_timer>(workers_[0]->ioc);
    acceptor_->open(endpoint.protocol(), ec);
    if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(endpoint, ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return UnavailableError("cannot listen on " + host + ":" +
                              std::to_string(options_.port) + ": " +
                              ec.message());
    }
    port_ = acceptor_->local_endpoint(ec).port();
    if (ec) return InternalError("local_endpoint: " + ec.message());
    display_host_ = host == "0.0.0.0"                     ? "127.0.0.1"
                    : host == "::"                        ? "[::1]"
                    : host.find(':') != std::string::npos ? "[" + host + "]"
                                                          : host;
    DoAccept();
    upstream_thread_ = std::thread([this] {
      for (;;) {
        try {
          upstream_->run();
          return;
        } catch (...) {
          // Handlers catch their own exceptions; keep going regardless.
        }
      }
    });
    for (auto& w : workers_) {
      Worker* wp = w.get();
      w->thread = std::thread([this, wp] { RunWorker(*wp); });
    }
    return Status();
  } catch (const std::exception& e) {
    return InternalError(std::string("cannot start the proxy: ") + e.what());
  }
}

void ProxyImpl::RunWorker(Worker& w) {
  for (;;) {
    try {
      w.ioc.run();
      return;
    } catch (...) {
      // A handler threw (allocation failure): keep serving.
    }
  }
}

void ProxyImpl::DoAccept() {
  Worker& target = *workers_[next_worker_++ % workers_.size()];
  acceptor_->async_accept(
      target.ioc, [this, &target](beast::error_code ec, tcp::socket socket) {
        OnAccept(target, ec, std::move(socket));
      });
}

void ProxyImpl::OnAccept(Worker& target, beast::error_code ec,
                         tcp::socket socket) {
  if (ec == asio::error::operation_aborted || !acceptor_->is_open() ||
      stopping()) {
    return;
  }
  if (ec) {
    // E.g. EMFILE: back off briefly instead of spinning.
    Log(LogLevel::kWarn, "accept failed: " + ec.message());
    accept_timer_->expires_after(std::chrono::milliseconds(50));
    accept_timer_->async_wait([this](beast::error_code) {
      if (!stopping()) DoAccept();
    });
    return;
  }
  socket.set_option(tcp::no_delay(true), ec);
  const int64_t open =
      metrics_.open_connections.fetch_add(1, std::memory_order_relaxed);
  if (static_cast<uint64_t>(open) >= options_.max_connections) {
    metrics_.open_connections.fetch_sub(1, std::memory_order_relaxed);
    metrics_.rejected_connections.fetch_add(1, std::memory_order_relaxed);
    const std::string body =
        proxy_util::ErrorJson(503, "overloaded", "too many connections");
    std::string msg;
    proxy_util::AppendResponseHead(&msg, 503, kJson,
                                   static_cast<int64_t>(body.size()), false,
                                   "Retry-After: 1\r\n");
    msg += body;
    socket.non_blocking(true, ec);
    socket.write_some(asio::buffer(msg), ec);
    socket.shutdown(tcp::socket::shutdown_send, ec);
    socket.close(ec);
    DoAccept();
    return;
  }
  try {
    const uint64_t id = ++next_session_id_;
    auto session =
        std::make_shared<Session>(*this, target, std::move(socket), id);
    {
      std::lock_guard<std::mutex> lock(target.mu);
      target.sessions[id] = session;
    }
    asio::post(target.ioc, [session] { session->Start(); });
  } catch (const std::exception& e) {
    Log(LogLevel::kError, std::string("cannot start a session: ") + e.what());
  }
  DoAccept();
}

void ProxyImpl::Shutdown(std::chrono::milliseconds grace) {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  if (workers_.empty()) return;  // Init failed before anything ran
  stopping_.store(true);
  auto for_each_session = [this](auto fn) {
    for (auto& w : workers_) {
      Worker* wp = w.get();
      asio::post(wp->ioc, [wp, fn] {
        std::vector<std::shared_ptr<Session>> sessions;
        {
          std::lock_guard<std::mutex> lock(wp->mu);
          for (auto& [id, weak] : wp->sessions) {
            if (auto s = weak.lock()) sessions.push_back(std::move(s));
          }
        }
        for (auto& s : sessions) fn(*s);
      });
    }
  };
  try {
    asio::post(workers_[0]->ioc, [this] {
      beast::error_code ec;
      acceptor_->close(ec);
      accept_timer_->cancel();
    });
    for_each_session([](Session& s) { s.CloseIfIdle(); });
    const auto deadline = SteadyClock::now() + grace;
    while (metrics_.in_flight.load() > 0 && SteadyClock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (metrics_.in_flight.load() > 0) {
      Log(LogLevel::kWarn, "shutdown grace period over; dropping " +
                               std::to_string(metrics_.in_flight.load()) +
                               " in-flight requests");
    }
    for_each_session([](Session& s) { s.CloseNow(); });
    // Let the closes run, then stop.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } catch (...) {
    // post() only throws on allocation failure; stop regardless.
  }
  for (auto& w : workers_) {
    w->guard.reset();
    w->ioc.stop();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  upstream_guard_.reset();
  if (upstream_) upstream_->stop();
  if (upstream_thread_.joinable()) upstream_thread_.join();
  if (admin_) admin_->join();
}

ProxyCounters ProxyImpl::counters() const {
  const metrics::Totals t = metrics_.Sum();
  ProxyCounters c;
  c.requests = t.requests;
  c.hits = t.hits;
  c.misses = t.misses;
  c.bypasses = t.bypasses;
  c.upstream_errors = t.upstream_errors;
  c.store_errors = t.store_errors;
  c.models_upstream_fetches = t.models_fetches;
  c.open_connections = t.open_connections;
  c.in_flight = t.in_flight;
  c.rejected_connections = t.rejected_connections;
  return c;
}

std::string ProxyImpl::MetricsText() {
  uint64_t entries = 0;
  uint64_t disk_bytes = 0;
  if (Result<CacheStats> s = cache_->GetStats(); s.ok()) {
    entries = s->entries;
    disk_bytes = s->disk_bytes;
  }
  const uint64_t client_store_errors =
      cached_ ? cached_->stats().store_errors : 0;
  return metrics_.Render(client_store_errors, entries, disk_bytes);
}

std::string ProxyImpl::RenderStatsJson() {
  json::object root;
  Result<CacheStats> s = cache_->GetStats();
  if (s.ok()) {
    json::object c;
    c["hits"] = s->hits;
    c["misses"] = s->misses;
    c["expired"] = s->expired;
    c["hit_rate"] = s->hit_rate();
    c["inserts"] = s->inserts;
    c["flushes"] = s->flushes;
    c["evictions"] = s->evictions;
    c["purged"] = s->purged;
    c["store_errors"] = s->store_errors;
    json::object by_reason;
    for (size_t i = 1; i < s->bypasses.size(); ++i) {
      by_reason[BypassReasonName(static_cast<BypassReason>(i))] =
          s->bypasses[i];
    }
    c["bypasses"] = std::move(by_reason);
    c["tokens_saved"] = s->tokens_saved;
    c["cost_saved_usd"] = static_cast<double>(s->cost_saved_nanousd) / 1e9;
    c["entries"] = s->entries;
    c["bytes"] = s->bytes;
    c["disk_bytes"] = s->disk_bytes;
    c["memory_tier_entries"] = s->memory_tier_entries;
    c["memory_tier_bytes"] = s->memory_tier_bytes;
    c["persistent"] = cache_->persistent();
    json::array models;
    for (const ModelStats& m : s->models) {
      json::object mo;
      mo["model"] = m.model;
      mo["entries"] = m.entries;
      mo["bytes"] = m.bytes;
      mo["hits"] = m.hits;
      mo["tokens_saved"] = m.tokens_saved;
      mo["cost_saved_usd"] = static_cast<double>(m.cost_saved_nanousd) / 1e9;
      mo["last_resolved_model"] = m.last_resolved_model;
      mo["own_column_family"] = m.own_column_family;
      models.push_back(std::move(mo));
    }
    c["models"] = std::move(models);
    root["cache"] = std::move(c);
  } else {
    root["cache_error"] = s.status().ToString();
  }
  const metrics::Totals t = metrics_.Sum();
  json::object p;
  p["requests"] = t.requests;
  p["hits"] = t.hits;
  p["misses"] = t.misses;
  p["bypasses"] = t.bypasses;
  json::object reasons;
  for (size_t i = 1; i < t.bypass_reasons.size(); ++i) {
    reasons[BypassReasonName(static_cast<BypassReason>(i))] =
        t.bypass_reasons[i];
  }
  p["bypass_reasons"] = std::move(reasons);
  p["tokens_saved"] = t.tokens_saved;
  p["cost_saved_usd"] = static_cast<double>(t.cost_saved_nanousd) / 1e9;
  p["response_bytes"] = t.response_bytes;
  p["upstream_errors"] = t.upstream_errors;
  p["store_errors"] = t.store_errors;
  p["in_flight"] = t.in_flight;
  p["open_connections"] = t.open_connections;
  p["rejected_connections"] = t.rejected_connections;
  root["proxy"] = std::move(p);
  if (cached_) {
    const CachedClientStats cs = cached_->stats();
    json::object c;
    c["hits"] = cs.hits;
    c["misses"] = cs.misses;
    c["bypasses"] = cs.bypasses;
    c["upstream_calls"] = cs.upstream_calls;
    c["flight_joins"] = cs.flight_joins;
    c["store_errors"] = cs.store_errors;
    c["stored"] = cs.stored;
    c["not_stored"] = cs.not_stored;
    c["model_drifts"] = cs.model_drifts;
    c["prompt_cache_read_tokens"] = cs.prompt_cache_read_tokens;
    c["prompt_cache_write_tokens"] = cs.prompt_cache_write_tokens;
    root["client"] = std::move(c);
  }
  return json::serialize(root);
}

}  // namespace

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "error";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kDebug:
      return "debug";
  }
  return "info";
}

std::optional<LogLevel> LogLevelFromName(std::string_view name) {
  for (LogLevel l :
       {LogLevel::kError, LogLevel::kWarn, LogLevel::kInfo, LogLevel::kDebug}) {
    if (LogLevelName(l) == name) return l;
  }
  if (name == "warning") return LogLevel::kWarn;
  return std::nullopt;
}

Result<std::unique_ptr<ProxyServer>> ProxyServer::Start(
    ProxyOptions options, std::shared_ptr<Cache> cache) {
  if (!cache) return InvalidArgumentError("ProxyServer needs a cache");
  if (options.threads <= 0) {
    options.threads =
        static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  if (options.max_header_bytes == 0 || options.max_body_bytes == 0) {
    return InvalidArgumentError("body and header limits must be positive");
  }
  // The key builders must accept every body the server accepts.
  options.cached.key_options.max_body_bytes = std::max(
      options.cached.key_options.max_body_bytes, options.max_body_bytes);
  try {
    auto impl =
        std::make_unique<ProxyImpl>(std::move(options), std::move(cache));
    LLMCACHE_RETURN_IF_ERROR(impl->Init());
    return std::unique_ptr<ProxyServer>(std::move(impl));
  } catch (const std::exception& e) {
    return InternalError(std::string("cannot start the proxy: ") + e.what());
  }
}

}  // namespace llmcache::net
