// The states of a proxy connection (a Session, session.cc), explicit instead
// of flags. No Beast.
//
//   SessionPhase  where the current request is:
//                   kIdle -> kReadingBody -> kHandling -> kWriting -> kIdle
//                 kIdle: no request (waiting for the next one's headers, or
//                 lingering). A request counts as in flight from
//                 kReadingBody until it is back to kIdle; shutdown closes
//                 kIdle connections at once and waits for the others.
//                 During a live stream kHandling and kWriting alternate, one
//                 chunk write at a time.
//   SocketState   kOpen -> kLingering (half-closed after the last answer,
//                 draining) -> kClosed. Orthogonal to the phase: a
//                 connection closed under a request (client gone, shutdown)
//                 keeps it in flight until its handler comes back and
//                 unwinds.
//   StreamState   a completion answered as a live stream (per request):
//                   kNone -> kOpen -> kDoneSeen -> kEndedClean
//                                 \-----------\-> kEndedBroken
//   RequestState  everything about the current request, reset in one place
//                 when a request begins.
//
// Decisions of the session not spelled out in proxy.h:
//   - Access (Host, Origin, credentials: access.h) is checked once a
//     request's headers are in, before its body is read (no 100 Continue for
//     a refused request). A 400 or 403 leaving a body unread closes after the
//     answer; a 401 (wrong credentials, not a hostile page) reads the body
//     and keeps the connection, unless the client waits for 100 Continue.
//   - A stream that the upstream cuts short (no [DONE], no error event of
//     its own) is ended by closing without the last chunk: the client sees
//     it incomplete. One the upstream ends after an error event, and one
//     whose head went before its answer (stream_keepalive: the answer or
//     the error is then sent as events), end cleanly.
//   - A request whose call was cancelled (its client gone) gets no answer:
//     the connection is closed.
//   - Responses that leave unread request bytes (413, 431, 400 on a bad
//     message) close the connection after draining briefly ("lingering
//     close"), so the client reads the answer instead of a reset.
//
// Thread safety: used on the session's worker thread only, but for StreamCtl
// (and CallerGone), which the upstream's callbacks read on other threads.

#ifndef LLMCACHE_NET_PROXY_SRC_SESSION_STATE_H_
#define LLMCACHE_NET_PROXY_SRC_SESSION_STATE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "llmcache/net/cached_client.h"
#include "llmcache/policy.h"
#include "metrics.h"
#include "proxy_util.h"

namespace llmcache::net::proxy {

// Flag shared with upstream callbacks: set when the client went away.
struct StreamCtl {
  std::atomic<bool> cancelled{false};
};

// CachedRequest::caller_gone for a request on connected socket `fd`: the
// session closed it (`ctl`), or its client did (proxy_util::PeerClosed).
inline std::function<bool()> CallerGone(std::shared_ptr<const StreamCtl> ctl,
                                        int fd) {
  return [ctl = std::move(ctl), fd] {
    return ctl->cancelled.load() || proxy_util::PeerClosed(fd);
  };
}

// A connection's place under ProxyOptions::max_connections, which bounds
// upstream connections too (one per client connection: server.cc). Given
// back when its socket closes, but a request whose client has gone keeps it
// while it still has an upstream call of its own, until that call ends; one
// that waits for an identical request's answer (CachedRequest::on_wait) has
// none. Released at the latest when destroyed.
class ConnectionSlot {
 public:
  explicit ConnectionSlot(std::atomic<int64_t>& open) : open_(open) {}
  ~ConnectionSlot() { Release(); }
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;

  // The `request`-th request of the connection went to the pipeline.
  void Awaiting(uint64_t request) {
    request_ = request;
    awaiting_ = true;
    waits_ = false;
  }
  // CachedRequest::on_wait of that request, `closed`: the socket's state. A
  // waiter whose client left as it started over to call upstream itself
  // takes its place back (over the cap for a moment, never uncounted).
  void Waits(uint64_t request, bool waits, bool closed) {
    if (request != request_ || !awaiting_) return;
    waits_ = waits;
    if (waits && closed) Release();
    if (!waits && !held_) {
      open_.fetch_add(1, std::memory_order_relaxed);
      held_ = true;
    }
  }
  // Its answer (or failure) came back.
  void Answered(bool closed) {
    awaiting_ = false;
    if (closed) Release();
  }
  // The socket closed.
  void Closed() {
    if (!awaiting_ || waits_) Release();
  }
  bool awaiting() const { return awaiting_; }

 private:
  void Release() {
    if (held_) open_.fetch_sub(1, std::memory_order_relaxed);
    held_ = false;
  }

  std::atomic<int64_t>& open_;
  uint64_t request_ = 0;
  bool held_ = true;
  bool awaiting_ = false;  // a pipeline answer is awaited
  bool waits_ = false;     // ... by waiting for an identical request's
};

enum class SessionPhase : uint8_t {
  kIdle,         // no request
  kReadingBody,  // a request's headers are in; its body is being read
  kHandling,     // a handler has it: inline, upstream thread, admin thread
  kWriting,      // a write of the answer (whole, or a chunk) is in flight
};

enum class SocketState : uint8_t { kOpen, kLingering, kClosed };

enum class StreamState : uint8_t {
  kNone,         // no live stream: the answer is written whole
  kOpen,         // the head went out; upstream events are arriving
  kDoneSeen,     // the stream's last event ("[DONE]", response.completed,
                 // message_stop) went out; the upstream call has not
                 // returned
  kEndedClean,   // the call returned OK after it: last chunk queued
  kEndedBroken,  // it returned without it or failed, or the client left:
                 // no last chunk, the connection closes
};

struct RequestState {
  std::chrono::steady_clock::time_point t0;  // for latencies and the log
  metrics::Route route = metrics::Route::kOther;
  // The cached endpoint of a completion route.
  Endpoint endpoint = Endpoint::kChatCompletions;
  int status = 0;  // of the answer; 0 = nothing answered (not counted)
  // X-Cache of a completion or of /models; the log's label ("-" if none).
  std::optional<CacheResult> cache;
  BypassReason bypass_reason = BypassReason::kNone;
  std::string_view path;   // into the parser's message
  std::string_view query;  // after '?'
  // Of an absolute-form target ("http://host/v1/..."), checked as Host is.
  std::optional<std::string_view> authority;
  bool keep_alive = true;  // cleared by errors that close, and by shutdown
  bool head = false;       // a HEAD request: every answer goes without body
  bool get = false;        // GET, or HEAD (answered as GET, without body)
  bool streaming = false;  // "stream": true in the body
  bool chunked = true;  // streams in chunks; HTTP/1.0: the body ends at close
  StreamState stream = StreamState::kNone;
  std::string key_hex;  // its capacity is reused across requests
  // A completion's stored lifetime (X-Cache-TTL on a miss); -1 = unknown.
  int64_t ttl_ms = -1;
  // For the access log: why a stream broke off (its capacity is reused).
  std::string note;
  bool live_events = false;  // a stream's events came as they were made

  // From the request target: path, query, authority and route.
  void SetTarget(std::string_view target, bool admin_enabled) {
    const proxy_util::TargetParts t = proxy_util::SplitTarget(target);
    path = t.path;
    query = t.query;
    authority = t.authority;
    route = metrics::RouteOfPath(path, admin_enabled);
  }

  void Reset() {
    t0 = std::chrono::steady_clock::now();
    route = metrics::Route::kOther;
    endpoint = Endpoint::kChatCompletions;
    status = 0;
    cache.reset();
    bypass_reason = BypassReason::kNone;
    path = {};
    query = {};
    authority.reset();
    keep_alive = true;
    head = false;
    get = false;
    streaming = false;
    chunked = true;
    stream = StreamState::kNone;
    key_hex.clear();
    ttl_ms = -1;
    note.clear();
    live_events = false;
  }
  bool stream_ended() const {
    return stream == StreamState::kEndedClean ||
           stream == StreamState::kEndedBroken;
  }
};

// A connection's one deadline: armed around each read and write (the read,
// idle and write timeouts), disarmed when it completes (the linger's covers
// all its reads and is not disarmed), and read by its worker's periodic
// sweep, which closes the connection once it has passed. No timer per
// operation. Arm and Disarm on the session's thread; ns() and Passed() from
// any thread.
class Deadline {
 public:
  void Arm(std::chrono::milliseconds d) {
    ns_.store(proxy_util::SteadyNs() + std::chrono::nanoseconds(d).count(),
              std::memory_order_relaxed);
  }
  void Disarm() {
    last_ns_ = ns();
    ns_.store(0, std::memory_order_relaxed);
  }
  // Armed again at the time the last Disarm took away.
  void Restore() { ns_.store(last_ns_, std::memory_order_relaxed); }
  // Steady-clock nanoseconds; 0: none.
  int64_t ns() const { return ns_.load(std::memory_order_relaxed); }
  bool Passed() const {
    const int64_t d = ns();
    return d != 0 && proxy_util::SteadyNs() >= d;
  }

 private:
  std::atomic<int64_t> ns_{0};
  int64_t last_ns_ = 0;  // the session's own thread only
};

}  // namespace llmcache::net::proxy

#endif  // LLMCACHE_NET_PROXY_SRC_SESSION_STATE_H_
