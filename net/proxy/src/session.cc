// SessionImpl: one client connection (see session.h), with its states and
// decisions in session_state.h. With server.cc, the only translation unit of
// the proxy that instantiates Beast/Asio templates; what a request's headers
// mean is in completion_request.cc and admin.cc.
//
// The hit path: a per-message Beast parser, then CachedClient::Prepare and
// Probe inline on the worker; a hit is written straight from the shared entry
// (a gather write of a hand-built head and the stored body: no copy). A miss
// (or a bypass) goes through CachedClient::Complete on the upstream thread;
// its events are posted back as HTTP chunks (HTTP/1.0: unframed, to close).

#include "session.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <forward_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "access.h"
#include "admin.h"
#include "completion_request.h"
#include "dashboard.h"
#include "llmcache/net/sse.h"
#include "metrics.h"
#include "proxy_util.h"
#include "server.h"
#include "session_http.h"
#include "session_state.h"
#include "stats_json.h"

namespace llmcache::net::proxy {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using metrics::Route;
using proxy_util::BodyTooLarge;
using proxy_util::ElapsedNs;
using proxy_util::HeadTooLarge;
using proxy_util::HttpError;
using proxy_util::kEventStream;
using proxy_util::kJson;
using proxy_util::MethodNotAllowed;

class SessionImpl final : public Session,
                          public std::enable_shared_from_this<SessionImpl> {
 public:
  SessionImpl(ProxyImpl& server, Worker& worker, tcp::socket socket,
              uint64_t id)
      : srv_(server),
        w_(worker),
        stream_(std::move(socket)),
        id_(id),
        shard_(*worker.shard),
        slot_(server.registry().open_connections),
        keepalive_(worker.ioc) {}

  void Start() override {
    buffer_.reserve(kReadBufferBytes);
    DoRead();
  }

  void CloseIfIdle() override {
    if (phase_ == SessionPhase::kIdle) CloseNow();
  }

  int64_t deadline_ns() const override { return deadline_.ns(); }

  void OnDeadline() override {
    if (!deadline_.Passed() || closed()) return;
    if (req_.note.empty() && phase_ == SessionPhase::kWriting) {
      req_.note = "client too slow: write timed out";
    }
    CloseNow();
  }

  void CloseAtShutdown() override {
    constexpr std::string_view kWhy = "the proxy is shutting down";
    const bool answering = !closed() && (phase_ == SessionPhase::kHandling ||
                                         phase_ == SessionPhase::kReadingBody);
    if (answering && req_.stream == StreamState::kNone) {
      ProxyImpl::Reject(stream_.socket(), "service_unavailable", kWhy);
    } else if (answering && req_.stream == StreamState::kOpen) {  // say so
      AppendEvent(
          req_.route == Route::kMessages
              ? proxy_util::AnthropicErrorJson(503, kWhy)
              : proxy_util::ErrorJson(503, "service_unavailable", kWhy));
      ProxyImpl::WriteNow(stream_.socket(), pending_);
    }
    CloseNow();
  }

  void CloseNow() override {
    if (conn_ == SocketState::kClosed) return;
    conn_ = SocketState::kClosed;
    if (ctl_) ctl_->cancelled.store(true);
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
    slot_.Closed();
    std::lock_guard<std::mutex> lock(w_.mu);
    w_.sessions.erase(id_);
  }

 private:
  bool closed() const { return conn_ == SocketState::kClosed; }

  // Nothing is read while a request waits for its answer: a client that
  // closes (or shuts down its sending side) meanwhile is closed at once; the
  // call goes on (see ConnectionSlot). Bytes sent early (pipelining) end the
  // watch.
  void WatchPeer() {
    if (std::exchange(watching_, true)) return;  // one wait serves each
    stream_.socket().async_wait(
        tcp::socket::wait_read,
        [self = shared_from_this()](beast::error_code ec) {
          self->watching_ = false;
          if (!ec && !self->closed() && self->slot_.awaiting() &&
              proxy_util::PeerClosed(self->stream_.socket().native_handle())) {
            self->req_.note = "client gone";
            self->CloseNow();
          }
        });
  }

  // ------------------------------------------------------------- reading

  void DoRead() {
    if (closed()) return;
    if (srv_.stopping()) {
      CloseNow();
      return;
    }
    parser_.emplace();
    parser_->header_limit(
        static_cast<std::uint32_t>(srv_.options().max_header_bytes));
    parser_->body_limit(srv_.options().max_body_bytes);
    deadline_.Arm(requests_read_ == 0 ? srv_.options().read_timeout
                                      : srv_.options().idle_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t n) {
          self->OnHeader(ec, n);
        });
  }

  // `header_bytes`: the head's. Beast's limit is on each parse step, not the
  // head (fields spread over reads got through with up to a read more).
  void OnHeader(beast::error_code ec, size_t header_bytes) {
    deadline_.Disarm();
    if (closed()) return;
    const bool over = header_bytes > srv_.options().max_header_bytes;
    if (ec == http::error::header_limit || (!ec && over)) {
      BeginRequest();  // the route: from the request line, parsed or not
      const auto raw = buffer_.cdata();
      ReadTarget(proxy_util::RequestLineTarget(
          Sv(parser_->get().target()),
          {static_cast<const char*>(raw.data()), raw.size()}));
      return SendError(HeadTooLarge(srv_.options().max_header_bytes), true);
    }
    if (ec == http::error::body_limit) {  // by its Content-Length
      BeginRequest();
      ReadTarget(Sv(parser_->get().target()));  // /messages: in its shape
      if (Admit()) SendError(BodyTooLarge(srv_.options().max_body_bytes), true);
      return;
    }
    proxy_util::HeadRepair fix;  // empty lines first, HTTP/1.2 (RFC 9112 2)
    if (ec == http::error::bad_method || ec == http::error::bad_version) {
      const auto raw = buffer_.data();
      fix = proxy_util::RepairRequestHead(static_cast<char*>(raw.data()),
                                          raw.size(),
                                          ec == http::error::bad_version);
      if (fix.kind == proxy_util::HeadRepair::kRetry && head_repairs_++ < 2) {
        buffer_.consume(fix.skip);
        DoRead();
        return deadline_.Restore();  // the head's own, not a new one
      }
    }
    if (ec) {
      // EOF, timeout, reset or a malformed message: nothing to answer.
      if (ec == http::error::end_of_stream || ec == asio::error::eof ||
          ec == beast::error::timeout || ec == asio::error::connection_reset ||
          ec == asio::error::operation_aborted) {
        return CloseNow();
      }
      BeginRequest();
      return SendError(proxy_util::MalformedHead(fix, ec.message()), true);
    }
    ++requests_read_;
    BeginRequest();
    ReadTarget(Sv(parser_->get().target()));
    if (!TransferEncodingAccepted(parser_->get())) {
      SendError(501, "not_implemented",
                "unsupported Transfer-Encoding (only chunked is accepted)",
                /*close=*/true);
      return;
    }
    if (!Admit()) return;
    PumpBody();
  }

  void ReadTarget(std::string_view target) {
    req_.SetTarget(target, !srv_.options().admin_token.empty());
  }

  // Access (access.h) before the body; false: answered (refused, preflight).
  bool Admit() {
    const auto& req = parser_->get();
    req_.keep_alive = req.keep_alive();
    req_.chunked = req.version() >= 11;
    req_.head = req.method() == http::verb::head;
    req_.get = req_.head || req.method() == http::verb::get;
    const AccessRequest ar = AccessRequestOf(
        req, req_.route,
        req_.route == Route::kOther && FindDashboardAsset(req_.path) != nullptr,
        req_.authority);
    const bool body_pending = !parser_->is_done();
    std::variant<HttpError, Access> checked = CheckAccess(srv_.access(), ar);
    if (auto* error = std::get_if<HttpError>(&checked)) {
      // Past the Origin check: an allowed page may read why.
      if (error->status == 401 && ar.origin) {
        AppendCorsHeaders(&cors_, *ar.origin);
      }
      if (error->status == 401 && body_pending &&
          !beast::iequals(req[http::field::expect], "100-continue")) {
        refusal_ = std::move(*error);  // answered once the body is read
        return true;
      }
      SendError(std::move(*error), body_pending);
      return false;
    }
    access_ = std::get<Access>(checked);
    if (access_.preflight) {
      AppendPreflightHeaders(
          &cors_, access_.cors_origin,
          Find(req, http::field::access_control_request_headers));
      if (body_pending) req_.keep_alive = false;
      SendWhole(204, {}, {}, {}, nullptr);
      return false;
    }
    AppendCorsHeaders(&cors_, access_.cors_origin);
    return true;
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
      deadline_.Arm(srv_.options().read_timeout);
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
    deadline_.Arm(srv_.options().read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->OnBody(ec);
                     });
  }

  void OnBody(beast::error_code ec) {
    deadline_.Disarm();
    if (closed()) return EndRequest();
    if (ec == http::error::body_limit) {
      return SendError(BodyTooLarge(srv_.options().max_body_bytes), true);
    }
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

  // Answers a request let in by Admit, its body read.
  void Handle() {
    phase_ = SessionPhase::kHandling;
    req_.t0 = SteadyClock::now();
    if (refusal_) return SendError(*std::exchange(refusal_, std::nullopt));
    const bool post = parser_->get().method() == http::verb::post;
    const std::string_view path = req_.path;
    switch (req_.route) {
      case Route::kChatCompletions:
      case Route::kEmbeddings:
      case Route::kResponses:
      case Route::kMessages:
        if (!post) return SendError(MethodNotAllowed("POST"));
        return HandleCompletion(metrics::EndpointOfRoute(req_.route));
      case Route::kModels:
        if (!req_.get) return SendError(MethodNotAllowed("GET, HEAD"));
        return HandleModels();
      case Route::kHealthz:
        if (!req_.get) return SendError(MethodNotAllowed("GET, HEAD"));
        body_ = srv_.RenderHealthzJson();  // cheap: answered inline
        return SendWhole(200, kJson, {}, body_, nullptr);
      case Route::kMetrics:
      case Route::kStats: {
        if (!req_.get) return SendError(MethodNotAllowed("GET, HEAD"));
        // Every tenant's models and spend: beyond loopback they need the
        // admin token (access.h).
        if (std::optional<HttpError> refused = CheckOperatorView(
                srv_.access(), srv_.options().admin_token,
                Find(parser_->get(), http::field::authorization))) {
          return SendError(std::move(*refused));
        }
        const bool stats = req_.route == Route::kStats;
        return RunOn(
            srv_.admin(),
            [srv = &srv_, stats]() -> std::pair<int, std::string> {
              return {200, stats ? srv->RenderStatsJson() : srv->MetricsText()};
            },
            stats ? kJson : "text/plain; version=0.0.4; charset=utf-8");
      }
      case Route::kAdmin:
        return HandleAdmin(path.substr(7));
      case Route::kCount:
      case Route::kOther:
        if (const DashboardAsset* asset = FindDashboardAsset(path)) {
          if (!req_.get) return SendError(MethodNotAllowed("GET, HEAD"));
          return SendWhole(200, asset->content_type, DashboardHeaders(),
                           asset->body, nullptr);
        }
        break;
    }
    SendError(404, "invalid_request_error", "no route for " + std::string(path),
              false);
  }

  // ------------------------------------------------------- completions

  // A request to a cached endpoint: the same pipeline for all.
  void HandleCompletion(Endpoint endpoint) {
    req_.endpoint = endpoint;
    auto& req = parser_->get();
    std::forward_list<std::string> joined;  // repeated headers, combined
    const auto find = [&req, &joined](std::string_view name) {
      return FindJoined(req, name, &joined);
    };
    CachedRequest creq;
    const ProxyOptions& o = srv_.options();
    const Status headers =
        ReadCompletionHeaders(find,
                              {.shared_cache = o.shared_cache,
                               .server_key = srv_.server_key(),
                               .api_key = access_.api_key,
                               .max_ttl_ms = o.max_ttl_ms.value_or(0)},
                              &scope_memo_, &creq);
    if (!headers.ok()) {
      return SendError(400, "invalid_request_error",
                       std::string(headers.message()), false);
    }
    if (!creq.no_store) {
      req_.ttl_ms = creq.ttl_ms.value_or(o.cached.ttl_ms.value_or(-1));
    }
    creq.endpoint = endpoint;
    creq.body = std::move(req.body());
    Result<PreparedRequest> prepared = srv_.cached().Prepare(std::move(creq));
    if (!prepared.ok()) {
      return SendError(400, "invalid_request_error",
                       std::string(prepared.status().message()), false);
    }
    PreparedRequest& p = *prepared;
    req_.key_hex = p.key_hex();
    req_.streaming = p.streaming();
    if (std::optional<CacheHit> hit = srv_.cached().Probe(p)) {
      return ServeHit(std::move(*hit));
    }

    // Upstream (miss or bypass) through the rest of the pipeline.
    req_.cache = p.decision().cache ? CacheResult::kMiss : CacheResult::kBypass;
    req_.bypass_reason = p.decision().reason;
    ctl_ = std::make_shared<StreamCtl>();
    // Not sent upstream for a client gone while it waited (caller_gone).
    p.set_caller_gone(CallerGone(ctl_, stream_.socket().native_handle()));
    StreamHandler on_chunk;
    auto self = shared_from_this();
    p.set_on_wait([self, n = requests_read_](bool waits) {
      asio::post(self->w_.ioc, [self, n, waits] {
        self->slot_.Waits(n, waits, self->closed());
      });
    });
    if (req_.streaming) {
      // A hit found further down (the shared tier, a flight): labelled
      // before its first event writes the head (same worker, in order).
      p.set_on_stream_hit([self] {
        asio::post(self->w_.ioc,
                   [self] { self->req_.cache = CacheResult::kHit; });
      });
      on_chunk = [self, ctl = ctl_](std::string_view data) {
        if (ctl->cancelled.load(std::memory_order_relaxed)) return false;
        asio::post(self->w_.ioc,
                   [self, d = std::string(data)] { self->OnChunk(d); });
        return true;
      };
    }
    slot_.Awaiting(requests_read_);
    srv_.cached().Complete(
        std::move(p), std::move(on_chunk), [self](Result<CachedResponse> r) {
          asio::post(self->w_.ioc, [self, r = std::move(r)]() mutable {
            self->OnCompleted(std::move(r));
          });
        });
    if (req_.streaming) ArmKeepalive();
    WatchPeer();
  }

  // Answers from a stored entry (counted by the cached client's probe).
  void ServeHit(CacheHit hit) {
    req_.cache = CacheResult::kHit;
    extra_.clear();
    AppendCacheHeaders(&extra_, CacheResult::kHit, BypassReason::kNone,
                       req_.key_hex, hit.age_ms);
    if (!req_.streaming) {
      const std::string_view body = hit.entry->body;
      SendWhole(200, kJson, extra_, body, std::move(hit.entry));
    } else {
      extra_.append("Cache-Control: no-cache\r\n");
      SendEvents(hit.events);
    }
    shard_.hit_latency.Observe(metrics::kHitBuckets, ElapsedNs(req_.t0));
  }

  // Sends a complete stream: chunked, or with a length to HTTP/1.0.
  void SendEvents(const std::vector<std::string>& events) {
    proxy_util::StreamBody(events, req_.chunked, &body_);
    SendWhole(200, kEventStream, extra_, body_, nullptr, req_.chunked);
  }

  void OnChunk(const std::string& data) {
    if (closed()) return;
    ++keepalive_gen_;  // events flow: no more waiting comments
    req_.live_events = true;
    StartStream();
    AppendEvent(data);
    // A client too slow: over the limit behind a write not done for 1 s (an
    // answer handed over whole, a replay, queues before any write can end).
    if (phase_ == SessionPhase::kWriting &&
        SteadyClock::now() - write_started_ > std::chrono::seconds(1) &&
        out_.size() + pending_.size() >
            srv_.options().max_stream_backlog_bytes) {
      req_.note = "client too slow: backlog over the limit";
      return CloseNow();
    }
    Flush();
  }

  // Waiting for its first event, a stream gets its head, then a comment,
  // every ProxyOptions::stream_keepalive: idle timeouts do not cut it.
  void ArmKeepalive() {
    if (srv_.options().stream_keepalive.count() <= 0) return;
    keepalive_.expires_after(srv_.options().stream_keepalive);
    keepalive_.async_wait([self = shared_from_this(),
                           gen = keepalive_gen_](beast::error_code ec) {
      if (ec || gen != self->keepalive_gen_ || self->closed()) return;
      self->StartStream();
      proxy_util::AppendStreamBytes(&self->pending_, kWaitingComment,
                                    self->req_.chunked);
      self->Flush();
      self->ArmKeepalive();
    });
  }

  // The head of a live stream, once.
  void StartStream() {
    if (req_.stream != StreamState::kNone) return;
    req_.stream = StreamState::kOpen;
    extra_.clear();
    AppendCacheHeaders(&extra_, req_.cache.value_or(CacheResult::kMiss),
                       req_.bypass_reason, req_.key_hex, 0);
    AppendTtlHeader(&extra_, req_.cache.value_or(CacheResult::kMiss),
                    req_.ttl_ms);
    extra_.append("Cache-Control: no-cache\r\n");
    pending_.clear();
    if (!req_.chunked) req_.keep_alive = false;  // the close ends the body
    proxy_util::AppendResponseHead(&pending_, 200, kEventStream,
                                   req_.chunked ? -1 : proxy_util::kUntilClose,
                                   req_.keep_alive && !srv_.stopping(), extra_,
                                   cors_);
    req_.status = 200;
  }

  void AppendEvent(std::string_view data) {
    if (req_.stream == StreamState::kOpen &&
        IsTerminalEvent(req_.endpoint, data)) {
      req_.stream = StreamState::kDoneSeen;
    }
    if (req_.endpoint == Endpoint::kChatCompletions) {
      proxy_util::AppendSseEvent(&pending_, data, req_.chunked);
    } else {
      proxy_util::AppendStreamBytes(&pending_, SseFrame(req_.endpoint, data),
                                    req_.chunked);
    }
  }

  // Writes what the stream has pending, one write at a time.
  void Flush() {
    if (phase_ == SessionPhase::kWriting || pending_.empty() || closed())
      return;
    phase_ = SessionPhase::kWriting;
    write_started_ = SteadyClock::now();
    std::swap(out_, pending_);
    pending_.clear();
    deadline_.Arm(srv_.options().read_timeout);
    asio::async_write(
        stream_, asio::buffer(out_),
        [self = shared_from_this()](beast::error_code ec, size_t n) {
          self->OnStreamWritten(ec, n);
        });
  }

  void OnStreamWritten(beast::error_code ec, size_t n) {
    deadline_.Disarm();
    phase_ = SessionPhase::kHandling;
    shard_.Add(shard_.response_bytes, n);
    if (ec || closed()) {
      // The client went away: cancel the upstream stream.
      if (req_.note.empty()) req_.note = ec ? "client gone" : "closed";
      CloseNow();  // cancels it
      if (req_.stream_ended()) EndRequest();
      return;
    }
    if (!pending_.empty()) return Flush();
    if (req_.stream_ended()) FinishStream();
  }

  // The stream is over and written.
  void FinishStream() {
    EndRequest();
    const bool clean = req_.stream == StreamState::kEndedClean;
    if (clean && req_.keep_alive && !srv_.stopping()) {
      DoRead();
    } else if (clean) {
      LingerClose();
    } else {
      CloseNow();  // no last chunk: the client sees a truncated body
    }
  }

  void OnCompleted(Result<CachedResponse> r) {
    slot_.Answered(closed());
    if (r.ok() || !IsNotCached(r.status())) {  // only-if-cached: no call
      shard_.upstream_latency.Observe(metrics::kUpstreamBuckets,
                                      ElapsedNs(req_.t0));
    }
    // A flight that ended as this request joined it answers from the store.
    if (r.ok() && r->result == CacheResult::kHit) req_.cache = r->result;
    ++keepalive_gen_;
    keepalive_.cancel();
    // Cancelled: its client is gone (caller_gone, or closed). No answer.
    if (!r.ok() && r.status().code() == StatusCode::kCancelled && !closed()) {
      req_.note = "client gone";
      CloseNow();
    }
    // Opened by waiting comments alone: the answer (or error) as events.
    const bool in_band =
        req_.stream == StreamState::kOpen && !req_.live_events && !closed();
    if (in_band) {
      proxy_util::InBandAnswer a = proxy_util::AnswerEvents(req_.endpoint, r);
      for (const std::string& e : a.events) AppendEvent(e);
      if (a.error_status != 0) {  // counted and logged as the error it is
        req_.status = a.error_status;
        req_.note = "an error event after the stream's 200 head";
      }
    }
    if (closed()) {
      if (req_.stream != StreamState::kNone)
        req_.stream = StreamState::kEndedBroken;
      if (phase_ != SessionPhase::kWriting) EndRequest();
      return;
    }
    if (req_.stream != StreamState::kNone) {
      // Also clean: ended by the upstream after its own error event.
      const bool clean =
          in_band || (r.ok() && (req_.stream == StreamState::kDoneSeen ||
                                 r->parsed.error.has_value()));
      req_.stream =
          clean ? StreamState::kEndedClean : StreamState::kEndedBroken;
      if (!clean) req_.note = proxy_util::StreamBrokenNote(r);
      if (clean && req_.chunked) pending_.append(proxy_util::kLastChunk);
      if (phase_ != SessionPhase::kWriting) {
        if (!pending_.empty()) {
          Flush();
        } else {
          FinishStream();
        }
      }
      return;
    }
    if (!r.ok()) {
      return SendError(LabelledCompletionFailure(
          r.status(), *req_.cache, req_.bypass_reason, req_.key_hex));
    }
    CachedResponse& c = *r;
    extra_.clear();
    // Points into c.headers: used before c goes away.
    const std::string_view content_type =
        AppendAnswerHeaders(&extra_, c, *req_.cache, req_.bypass_reason,
                            req_.key_hex)
            .value_or(kJson);
    if (c.streamed && c.status == 200) {
      // A stream request answered without events (e.g. a joined flight
      // whose leader was not streaming): replay the complete body.
      Result<std::vector<std::string>> events =
          ReplayEvents(req_.endpoint, c.body);
      if (events.ok()) return SendEvents(*events);
    }
    body_ = std::move(c.body);
    if (req_.route == Route::kMessages && c.status != 200) {
      if (std::optional<std::string> a =
              proxy_util::AnthropicErrorFromUpstream(c.status, body_)) {
        body_ = std::move(*a);
      }
    }
    SendWhole(c.status, content_type, extra_, body_, nullptr);
  }

  // ------------------------------------------------------------ models

  void HandleModels() {
    if (std::optional<ProxyImpl::ModelsEntry> m = srv_.CachedModels()) {
      req_.cache = CacheResult::kHit;
      return SendModels(std::move(*m), "X-Cache: HIT\r\n");
    }
    req_.cache = CacheResult::kMiss;
    std::forward_list<std::string> joined;  // every Cache-Control line
    if (proxy_util::OnlyIfCached(
            FindJoined(parser_->get(), "Cache-Control", &joined))) {
      return SendError(proxy_util::CompletionFailure(
          NotCachedError("the model list is not kept")));
    }
    auto self = shared_from_this();
    slot_.Awaiting(requests_read_);
    const bool leads = srv_.FetchModels(
        access_.api_key, w_.ioc, shard_,
        [self](Result<ProxyImpl::ModelsEntry> r) {
          asio::post(self->w_.ioc, [self, r = std::move(r)]() mutable {
            self->OnModels(std::move(r));
          });
        });
    // A waiter holds no upstream connection: its place is freed when its
    // client goes (WatchPeer), as for completions.
    if (leads) shard_.Add(shard_.models_fetches);
    if (!leads) slot_.Waits(requests_read_, true, closed());
    WatchPeer();
  }

  void OnModels(Result<ProxyImpl::ModelsEntry> r) {
    slot_.Answered(closed());
    if (closed()) return EndRequest();
    if (!r.ok()) return SendError(proxy_util::CompletionFailure(r.status()));
    SendModels(*std::move(r), "X-Cache: MISS\r\n");
  }

  // The list, or the model a /models/{id} path names.
  void SendModels(ProxyImpl::ModelsEntry m, std::string_view xc) {
    ProxyImpl::ModelsAnswer a = srv_.AnswerModels(std::move(m), req_.path);
    const std::string_view view = *a.body;
    SendWhole(a.status, a.content_type, xc, view, std::move(a.body));
  }

  // ------------------------------------------------------------- admin

  // /admin/<op>: validated here, run on the maintenance thread.
  void HandleAdmin(std::string_view op) {
    const auto& req = parser_->get();
    AdminAction action =
        ValidateAdminRequest({op, Sv(req.method_string()),
                              Sv(req[http::field::authorization]), req_.query},
                             srv_.options().admin_token);
    if (auto* error = std::get_if<HttpError>(&action)) {
      return SendError(std::move(*error));
    }
    RunOn(
        srv_.maintenance(),
        [srv = &srv_, action = std::move(action),
         body = std::move(parser_->get().body())] {  // import's lines
          return srv->RunAdminAction(action, body);
        },
        kJson);
  }

  // Runs `fn` on `pool` (the server's admin or maintenance thread) and sends
  // its (status, body): a 200 as `content_type`, anything else as JSON.
  template <typename Fn>
  void RunOn(asio::thread_pool& pool, Fn fn, std::string_view content_type) {
    auto self = shared_from_this();
    asio::post(pool, [self, fn = std::move(fn), content_type]() mutable {
      std::pair<int, std::string> out;
      try {
        out = fn();
      } catch (const std::exception& e) {
        out = {500, proxy_util::ErrorJson(500, "server_error", e.what())};
      }
      asio::post(
          self->w_.ioc, [self, out = std::move(out), content_type]() mutable {
            if (self->closed()) return self->EndRequest();
            self->body_ = std::move(out.second);
            self->SendWhole(out.first, out.first == 200 ? content_type : kJson,
                            {}, self->body_, nullptr);
          });
    });
  }

  // ----------------------------------------------------------- writing

  void SendError(int status, std::string_view type, std::string message,
                 bool close, std::string extra = {}) {
    SendError(HttpError{status, type, std::move(message), std::move(extra)},
              close);
  }

  // Sends one of the proxy's errors; `close`: then closes (lingering).
  void SendError(HttpError e, bool close = false) {
    if (close) req_.keep_alive = false;
    extra_ = std::move(e.extra_headers);
    body_ = req_.route == Route::kMessages
                ? proxy_util::AnthropicErrorJson(e.status, e.message)
                : proxy_util::ErrorJson(e.status, e.type, e.message);
    if (srv_.LogEnabled(LogLevel::kDebug)) {
      srv_.Log(LogLevel::kDebug,
               "error " + std::to_string(e.status) + ": " + e.message);
    }
    SendWhole(e.status, kJson, extra_, body_, nullptr);
  }

  // Writes a complete response: the head built here and `body` (kept alive
  // by `hold`, or ours). `content_type`, `extra`: read before this returns.
  void SendWhole(int status, std::string_view content_type,
                 std::string_view extra, std::string_view body,
                 std::shared_ptr<const void> hold, bool chunked = false) {
    phase_ = SessionPhase::kWriting;
    req_.status = status;
    hold_ = std::move(hold);
    if (srv_.stopping()) req_.keep_alive = false;
    head_.clear();
    proxy_util::AppendResponseHead(
        &head_, status, content_type,
        chunked ? -1 : static_cast<int64_t>(body.size()), req_.keep_alive,
        extra, cors_);
    // HEAD: GET's head (Content-Length too), no content (RFC 9110 9.3.2).
    const std::array<asio::const_buffer, 2> buffers = {
        asio::buffer(head_),
        asio::buffer(body.data(), req_.head ? 0 : body.size())};
    deadline_.Arm(srv_.options().read_timeout);
    asio::async_write(
        stream_, buffers,
        [self = shared_from_this()](beast::error_code ec, size_t n) {
          self->OnWritten(ec, n);
        });
  }

  void OnWritten(beast::error_code ec, size_t n) {
    deadline_.Disarm();
    hold_.reset();
    shard_.Add(shard_.response_bytes, n);
    EndRequest();
    if (ec || closed()) return CloseNow();
    if (req_.keep_alive && !srv_.stopping()) return DoRead();
    LingerClose();
  }

  // Half-closes, then drains for a moment: the client reads, not a reset.
  void LingerClose() {
    if (closed()) return;
    conn_ = SocketState::kLingering;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    deadline_.Arm(kLingerTimeout);
    Drain();
  }

  void Drain() {
    stream_.async_read_some(
        asio::buffer(scratch_),
        [self = shared_from_this()](beast::error_code ec, size_t) {
          if (ec || self->closed()) return self->CloseNow();
          self->Drain();
        });
  }

  // ------------------------------------------------------ bookkeeping

  void BeginRequest() {
    phase_ = SessionPhase::kReadingBody;
    req_.Reset();
    access_ = {};
    cors_.clear();
    refusal_.reset();
    head_repairs_ = 0;
    srv_.registry().in_flight.fetch_add(1, std::memory_order_relaxed);
  }

  // Counts and logs the request; it is no longer in flight.
  void EndRequest() {
    if (phase_ == SessionPhase::kIdle) return;
    phase_ = SessionPhase::kIdle;
    srv_.registry().in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (req_.status != 0) shard_.CountRequest(req_.route, req_.status);
    if (!srv_.LogEnabled(LogLevel::kInfo)) return;
    srv_.LogRequest(parser_ && parser_->is_header_done()
                        ? Sv(parser_->get().method_string())
                        : std::string_view("-"),
                    req_);
  }

  ProxyImpl& srv_;
  Worker& w_;
  beast::tcp_stream stream_;
  const uint64_t id_;
  Deadline deadline_;  // of the read or write in progress
  metrics::Shard& shard_;
  ConnectionSlot slot_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;

  SessionPhase phase_ = SessionPhase::kIdle;
  SocketState conn_ = SocketState::kOpen;
  uint64_t requests_read_ = 0;  // the first gets read_timeout, not idle
  int head_repairs_ = 0;        // of this request's head (RepairRequestHead)
  bool watching_ = false;       // a WatchPeer wait is pending
  RequestState req_;
  ScopeMemo scope_memo_;
  // What the access check let in; CORS lines of its answers (or none).
  Access access_;
  std::string cors_;
  // A 401 to answer once the request's body is read.
  std::optional<HttpError> refusal_;

  std::string head_, extra_, body_;  // output buffers, reused by requests
  std::shared_ptr<const void> hold_;

  // A live stream's output: written one write at a time.
  std::shared_ptr<StreamCtl> ctl_;
  std::string pending_;
  std::string out_;
  SteadyClock::time_point write_started_;
  // Waiting comments (ArmKeepalive); a wait of an older generation is void.
  asio::steady_timer keepalive_;
  uint64_t keepalive_gen_ = 0;

  std::array<char, 4096> scratch_;
};

}  // namespace

std::shared_ptr<Session> Session::Create(ProxyImpl& server, Worker& worker,
                                         tcp::socket socket, uint64_t id) {
  return std::make_shared<SessionImpl>(server, worker, std::move(socket), id);
}

}  // namespace llmcache::net::proxy
