// ProxyServer: the caching proxy behind `llmcache serve` — an
// OpenAI-compatible HTTP/1.1 server in front of CachedClient.
//
// Routes (both the OpenAI path and OpenRouter's /api/v1 path are accepted):
//   POST /v1/chat/completions, /api/v1/chat/completions
//        The cached completion. Non-streamed answers are application/json;
//        with "stream": true the answer is text/event-stream (chunked): a hit
//        is replayed, a miss passed through live as upstream events arrive
//        and stored after a clean end ([DONE]).
//   POST /v1/embeddings, /v1/responses, /v1/messages (and under /api/v1)
//        Embeddings (a batch cached input by input), the OpenAI Responses
//        API and Anthropic Messages, through the same pipeline
//        (CachedRequest::endpoint); their streams are passed through and
//        replayed with named events ("event: <type>"). On /v1/messages the
//        proxy's own errors use Anthropic's shape and `x-api-key` counts as
//        `Authorization: Bearer`.
//   GET  /v1/models, /api/v1/models      upstream's list, kept in memory for
//                                        ProxyOptions::models_ttl
//   GET  /healthz                        {"status":"ok"}; with "store":
//                                        {...} (Cache::Health()) once the
//                                        store has had write trouble, and
//                                        {"status":"degraded", ...} while
//                                        it is degraded: still 200 (the
//                                        proxy fails open and keeps
//                                        answering, from the cache and
//                                        upstream; a load balancer should
//                                        not take it out of service)
//   GET  /metrics                        Prometheus text format (llmcache_*)
//   GET  /stats                          JSON: "cache" (the engine's
//                                        statistics, per model), "proxy"
//                                        (this server's counters: every
//                                        request) and "client" (CachedClient's:
//                                        only requests that reached it, so
//                                        not the hits served inline)
//   POST /admin/flush?model=M | all=1    only with an admin token (404
//   POST /admin/purge?model=M | all=1 | key=HEX | namespace=NS | expired=1 |
//                     older_than=30s|15m|2h|7d
//                                        otherwise); `Authorization: Bearer
//                                        <admin token>` or 401. Answers
//                                        {"removed": N, ...}.
//
// Access (checked right after a request's headers, before anything is
// looked up or forwarded, on every route; the threat is a web page in a
// browser on the same machine or network using the proxy, and with it the
// operator's upstream key and the cached answers of other users):
//   Host       must name the proxy: localhost, 127.0.0.1, [::1], the listen
//              address, or one of allow_hosts (any port), so a page on a
//              DNS-rebinding name cannot reach it. Listening on 0.0.0.0 or
//              :: any IP literal is accepted too (rebinding needs a name).
//              Otherwise 403 permission_error; no Host on HTTP/1.1, or two,
//              is a 400.
//   Origin     browsers send it on cross-origin requests: unless it is one
//              of allow_origins (exact scheme://host[:port]; "*" = any),
//              403 permission_error, on every route (/healthz included).
//              An allowed origin's answers carry
//              Access-Control-Allow-Origin (and Expose-Headers), and its
//              preflight (OPTIONS with Access-Control-Request-Method) gets
//              204 with Access-Control-Allow-Methods/-Headers. Without an
//              Origin, a Sec-Fetch-Site other than same-origin or none (a
//              cross-site page's no-cors request) is a 403 too. Requests
//              without these headers (SDKs, curl) are unaffected.
//   Authorization  when present, must be `Bearer <key>`: any other scheme
//              (Basic, Digest, a bare or empty token) is a 401 on the
//              routes that go upstream, never answered with the server's
//              key.
//   client_token   when set, every route but /healthz, /metrics (operators
//              scrape it; it holds counts, no prompts, answers or model
//              names) and /admin/* (the admin token guards those) needs it:
//              `X-Llmcache-Token: <token>` (then Authorization, if any,
//              carries the client's own upstream key), or `Authorization:
//              Bearer <token>` (then the server's key is used upstream and
//              the cache scope is the server key's). Compared in constant
//              time; otherwise 401 authentication_error.
//
// Request headers on completions:
//   Authorization: Bearer K   forwarded upstream; the server's key
//                             (ClientOptions::api_key) when absent. Unless
//                             shared_cache, each key has its own cache scope:
//                             ApiKeyScope(key), a hash (never the key), the
//                             same scope `llmcache warm` and `key` use.
//   Cache-Control: no-cache (skip the lookup, still store), no-store (do not
//                  store), max-age=N (accept entries at most N s old),
//                  only-if-cached (a hit, or a 504 not_cached with
//                  X-Should-Retry: false; nothing goes upstream; RFC 9111
//                  5.2.1.7); other directives are ignored.
//   X-Cache-TTL: N            seconds the stored entry lives (0 = forever),
//                             at most max_ttl_ms: a longer one, or 0 while
//                             max_ttl_ms is not 0, gets the ceiling (a
//                             client may shorten a lifetime, never lengthen
//                             it)
//   X-Cache-Namespace: NS     1-128 of [A-Za-z0-9._:-]
//   HTTP-Referer, X-Title, X-OpenRouter-Title, X-OpenRouter-Categories,
//   X-Session-Id              passed upstream (attribution; not in the key)
// Invalid values of these headers are a 400.
//
// Response headers on completions:
//   X-Cache: HIT | MISS | BYPASS
//   X-Cache-Bypass-Reason: <reason>   with BYPASS, e.g. non_zero_temperature
//                                     (BypassReasonName)
//   X-Cache-Key: <64 hex>             when the request could be keyed
//   Age: <seconds>                    on hits
//   X-Cache-TTL: <seconds>            on misses: the lifetime an entry
//                                     stored from this answer gets (0 =
//                                     forever), when known (cached.ttl_ms
//                                     set, or the request's X-Cache-TTL)
// A stream's headers go out before its end is known: X-Cache says what was
// known then (a hit is known; a live miss says MISS even if it will not be
// stored).
//
// Errors: an upstream HTTP error is passed through with its status and body
// (never cached). The proxy's own errors are
// {"error":{"message":"...","type":"...","code":<http status>}}: 400
// invalid_request_error (malformed JSON, no model, no messages, a bad
// header, a missing Host), 401 authentication_error, 403 permission_error
// (Host or Origin not allowed), 404 / 405 invalid_request_error, 413
// request_too_large, 431 request_header_fields_too_large, 502 upstream_error
// (upstream unreachable or connection lost), 503 overloaded (too many
// connections; the connection is then closed), 504 upstream_timeout.
//
// Connections and file descriptors: the connection limit in effect
// (max_connections()) is ProxyOptions::max_connections capped to what the
// process's open-file limit (RLIMIT_NOFILE, soft) allows: (limit - reserve)
// / 2 — a client connection may hold an upstream socket too — with a
// reserve of 64 + 4 per thread + the upstream's idle pool, plus 256 for
// RocksDB's files in persistent mode (the engine keeps every table file
// open). A connection whose client leaves while its request leads an
// upstream call is closed at once but counts until that call ends; one
// whose request waits for an identical request's answer stops counting
// then. Connections beyond the limit are accepted and answered 503
// (Retry-After: 1, Connection: close). If accept fails anyway for lack of
// descriptors (EMFILE, ENFILE), the proxy frees a spare descriptor it keeps
// for that, accepts, answers 503 and closes; without one it retries after
// 50 ms, so it never spins. Such failures are logged at most every 10 s and
// counted in llmcache_accept_errors_total. `llmcache serve` raises the soft
// limit to the hard one at start.
//
// Concurrency: `threads` worker threads, each running its own io_context;
// one acceptor hands connections out round robin, and a connection lives on
// one thread for its whole life (no strand, no cross-thread hop on a hit:
// the key is computed and the cache looked up inline). Misses go through
// CachedClient on a separate upstream thread and come back to the
// connection's thread.
//
// Thread safety: all methods may be called from any thread.

#ifndef LLMCACHE_NET_PROXY_H_
#define LLMCACHE_NET_PROXY_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/cache.h"
#include "llmcache/clock.h"
#include "llmcache/net/cached_client.h"
#include "llmcache/net/client.h"
#include "llmcache/status.h"

namespace llmcache::net {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

// "error", "warn", "info", "debug" and the inverse.
std::string_view LogLevelName(LogLevel level);
std::optional<LogLevel> LogLevelFromName(std::string_view name);

// Receives complete log lines (without a trailing newline). Called from any
// thread, possibly concurrently. Lines never contain API keys or prompts.
using LogSink = std::function<void(LogLevel level, std::string_view line)>;

struct ProxyOptions {
  // Address to listen on. Default: 127.0.0.1 (loopback only).
  std::string host = "127.0.0.1";
  // 0 = an ephemeral port (see ProxyServer::port()). Default: 8080.
  uint16_t port = 8080;
  // Worker threads (one io_context each). 0 = the CPUs the process may use
  // (UsableCpus, llmcache/cpus.h: affinity and cgroup quota).
  // Default: 0.
  int threads = 0;

  // The upstream: base_url (the proxy appends /chat/completions and
  // /models), the server's API key (used when a client sends none), extra
  // CA file, deadlines and retries.
  ClientOptions upstream;
  // Cache policy: mode, default namespace, TTL. `log` is replaced by the
  // proxy's logger.
  CachedClientOptions cached;

  // All clients share one cache scope instead of one per API key.
  // Default: false.
  bool shared_cache = false;
  // Enables /admin/* for `Authorization: Bearer <admin_token>`. Empty: the
  // admin endpoints answer 404. Default: empty.
  std::string admin_token;

  // Origins whose web pages may use the proxy (CORS): exact
  // "scheme://host[:port]" (a default port and a trailing "/" are
  // ignored), or "*" for any page. Requests with another Origin get 403.
  // Default: none.
  std::vector<std::string> allow_origins;
  // Host names accepted besides localhost, 127.0.0.1, [::1] and the listen
  // address (any port), or "*" to accept any Host. Default: none.
  std::vector<std::string> allow_hosts;
  // The proxy's access token (see "Access" above); never logged. Empty:
  // none needed. Default: empty.
  std::string client_token;
  // Whether the operator views (/stats and /metrics: every tenant's models
  // and spend; the dashboard's data) answer anyone who may reach the proxy.
  // When not, they need `Authorization: Bearer <admin_token>` (401 without
  // it; 403 when no admin token is set). GET /dashboard and its script and
  // style hold no data and are always served. nullopt = open iff `host` is
  // a loopback address (127.0.0.0/8, ::1, localhost). Default: nullopt.
  std::optional<bool> operator_views_open;

  // Ceiling of a stored entry's lifetime: a client's X-Cache-TTL (and the
  // default, cached.ttl_ms) are cut to it. 0 = no ceiling (a client may ask
  // for 0, forever). nullopt = cached.ttl_ms, or the engine's default TTL
  // (CacheOptions::default_ttl_ms) when that is not set. Default: nullopt.
  std::optional<int64_t> max_ttl_ms;

  // Larger request bodies get 413. Default: 8 MiB.
  size_t max_body_bytes = 8u << 20;
  // Larger request headers get 431. Default: 16 KiB.
  size_t max_header_bytes = 16u << 10;
  // Connections beyond this many get a 503 and are closed; capped by the
  // open-file limit (see above). Default: 10000.
  size_t max_connections = 10000;
  // Deadline for reading one request (headers of the first request of a
  // connection, and any body) and for writing one response chunk. Not
  // counted while the request waits for its answer. Like idle_timeout, a
  // per-connection deadline checked by a periodic sweep, not a timer per
  // read or write: the sweep runs every quarter of the shortest of the two
  // and the 1 s linger of a closing connection, at least every 250 ms and
  // at most every 5 ms, so a connection is closed within that long after
  // its deadline passed.
  // Default: 30 s.
  std::chrono::milliseconds read_timeout{30'000};
  // What a live stream may hold for a client that reads slower than the
  // upstream writes; past it that client is closed (the upstream call goes
  // on if others wait for its answer). Unbounded, a client that stopped
  // reading would hold the whole stream until the write timeout.
  // Default: 4 MiB.
  size_t max_stream_backlog_bytes = 4u << 20;
  // A stream request still waiting for its first event after this long (a
  // slow upstream, or an identical request's answer) gets its head and an
  // SSE comment (": waiting for the upstream"), again every this long, so
  // that idle timeouts between (a load balancer's 60 s) do not cut it. An
  // error after that goes as an error event ({"error":{...}}) and the
  // stream ends. 0 = never. Default: 15 s.
  std::chrono::milliseconds stream_keepalive{15'000};
  // How long a keep-alive connection may sit idle between requests.
  // Default: 60 s.
  std::chrono::milliseconds idle_timeout{60'000};
  // How long GET /models answers are kept in memory. 0 = not kept.
  // Default: 60 s.
  std::chrono::milliseconds models_ttl{60'000};

  // Lines above this level are dropped; each request is logged at kInfo.
  // Default: kInfo.
  LogLevel log_level = LogLevel::kInfo;
  // Where log lines go. Null: stderr, prefixed "llmcache: ".
  LogSink log;

  // Source of time for the Age header. Null = the system clock (use the
  // cache's clock when it has one). Not owned.
  const Clock* clock = nullptr;
};

// A snapshot of the proxy's counters (also in /metrics and /stats): HTTP
// requests and connections are the proxy's own; hits, misses, bypasses and
// upstream and store errors are the cached client's (CachedClientStats),
// where each completion request is counted once.
struct ProxyCounters {
  uint64_t requests = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t bypasses = 0;
  uint64_t upstream_errors = 0;  // transport errors and upstream non-200s
  uint64_t store_errors = 0;
  uint64_t models_upstream_fetches = 0;
  uint64_t open_connections = 0;
  uint64_t in_flight = 0;
  uint64_t rejected_connections = 0;
  uint64_t accept_errors = 0;  // accept failures (e.g. out of descriptors)
};

class ProxyServer {
 public:
  // Binds, listens and starts serving. `cache` is shared with the caller
  // (close it after Shutdown). kUnavailable when the address cannot be
  // bound (e.g. the port is in use), naming it; kInvalidArgument for bad
  // options (malformed host, bad upstream URL or CA file).
  static Result<std::unique_ptr<ProxyServer>> Start(
      ProxyOptions options, std::shared_ptr<Cache> cache);

  // Shuts down (with the default grace of 10 s) if still running. With a
  // shared tier (ProxyOptions::cached.shared), shut the tier down after
  // Shutdown and before destroying the server: a request cut by the grace
  // period may still wait on the tier, whose answer goes to the server's
  // upstream io_context (`llmcache serve` does so).
  virtual ~ProxyServer() = default;
  ProxyServer(const ProxyServer&) = delete;
  ProxyServer& operator=(const ProxyServer&) = delete;

  // The port actually bound.
  virtual uint16_t port() const = 0;
  // "http://<host>:<port>".
  virtual std::string base_url() const = 0;

  // Stops accepting, closes idle connections, lets in-flight requests
  // finish for up to `grace` (their connections close after the response),
  // then closes everything and joins the threads. Idempotent; blocks.
  virtual void Shutdown(std::chrono::milliseconds grace) = 0;
  // Ends a Shutdown's grace period now (from any thread, e.g. on a second
  // SIGINT): the requests still in flight are dropped.
  virtual void EndGrace() = 0;

  // The connection limit in effect: ProxyOptions::max_connections, capped
  // by the open-file limit at Start.
  virtual size_t max_connections() const = 0;

  virtual ProxyCounters counters() const = 0;
  // The /metrics text.
  virtual std::string MetricsText() = 0;

 protected:
  ProxyServer() = default;
};

}  // namespace llmcache::net

#endif  // LLMCACHE_NET_PROXY_H_
