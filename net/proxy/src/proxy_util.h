// Pure helpers of the caching proxy (no Beast I/O, no sockets): request header
// and query parsing, the proxy's error answers, HTTP/1.1 response heads and
// chunk framing written straight into reused buffers.
//
// Thread safety: free functions; no shared state.

#ifndef LLMCACHE_NET_SRC_PROXY_UTIL_H_
#define LLMCACHE_NET_SRC_PROXY_UTIL_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "llmcache/net/cached_client.h"
#include "llmcache/status.h"

namespace llmcache::net::proxy_util {

// The directives of a request's Cache-Control header that the proxy obeys.
struct CacheDirectives {
  bool no_cache = false;        // skip the lookup, still store
  bool no_store = false;        // do not store the answer
  bool only_if_cached = false;  // answer from the caches or not at all
  std::optional<int64_t> max_age_s;
};

// Whether a Cache-Control value (nullopt: none) has only-if-cached, whatever
// its other directives are (one that ParseCacheControl refuses too).
bool OnlyIfCached(std::optional<std::string_view> cache_control);

// Parses a Cache-Control value: comma-separated directives, names
// case-insensitive; unknown directives are ignored. kInvalidArgument for a
// max-age that is not a non-negative integer (optionally quoted).
Result<CacheDirectives> ParseCacheControl(std::string_view value);

// Parses a non-negative decimal integer of at most 12 digits (all of `s`,
// surrounding spaces allowed). nullopt otherwise.
std::optional<int64_t> ParseSeconds(std::string_view s);

// True for a namespace of 1-128 characters of [A-Za-z0-9._:-].
bool ValidNamespace(std::string_view ns);

// The query string's parameters, percent-decoded ('+' is a space), in order.
std::vector<std::pair<std::string, std::string>> ParseQuery(
    std::string_view query);

// The token of "Bearer <token>" (scheme case-insensitive), or "" when the
// header is absent or uses another scheme.
std::string_view BearerToken(std::string_view authorization);

// The request-target of a head too large to parse (431), for an answer in
// the shape of its route: `parsed` when Beast's parser read the request line,
// else from the request line that begins `head` ("POST /v1/x HTTP/1.1\r\n..."
// gives "/v1/x"), "" when `head` does not begin with one whole.
std::string_view RequestLineTarget(std::string_view parsed,
                                   std::string_view head);

// A request target split: origin-form "/p?q", or absolute-form
// "http://host:port/p?q" (RFC 9112 3.2.2: a server must accept it), whose
// authority the Host check applies to as well. The views point into the
// target; a path that is empty in absolute form is "/".
struct TargetParts {
  std::optional<std::string_view> authority;  // absolute-form only
  std::string_view path;
  std::string_view query;  // after '?', not decoded
};
TargetParts SplitTarget(std::string_view target);

// What to make of a request head that Beast's parser refused. RFC 9112 2.2:
// a server SHOULD ignore empty lines before the request line (old clients
// send a CRLF after a POST body). 2.3: a later HTTP/1 minor version is read
// as the highest this server has, 1.1; another major version is a 505.
struct HeadRepair {
  enum Kind { kNone, kRetry, kVersionNotSupported };
  Kind kind = kNone;
  size_t skip = 0;  // kRetry: leading bytes (empty lines) to drop first
};
// `head`: the bytes read so far. With `bad_version` (Beast's error, else
// bad_method: only empty lines are skipped), a later minor version in the
// request line, whose CRLF may not have come yet, is rewritten in place
// ("HTTP/1.2" becomes "HTTP/1.1") for kRetry.
HeadRepair RepairRequestHead(char* head, size_t n, bool bad_version);

// Compares two secrets in time independent of where they differ (both are
// hashed first, so the length does not leak either).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// The model id of GET /v1/models/{id} (or /api/v1/models/{id}; OpenAI's
// models.retrieve), percent-decoded: ids have a slash ("openai/gpt-4o"),
// which SDKs send as it is or as %2F. nullopt for the list itself and for
// other paths.
std::optional<std::string> ModelIdOfPath(std::string_view path);

// The objects of an upstream GET /models answer ({"data":[{"id":...},...]})
// by id, each serialized on its own; nullopt when `list` is not such an
// answer (not JSON, no "data" array).
std::optional<std::unordered_map<std::string, std::string>> IndexModels(
    std::string_view list);

// {"error":{"message":...,"type":...,"code":status}}.
std::string ErrorJson(int status, std::string_view type,
                      std::string_view message);

// Anthropic's error shape, for the Messages route:
// {"type":"error","error":{"type":T,"message":...}}, T from the status
// (401 authentication_error, 402 billing_error, 403 permission_error, 404
// not_found_error, 413 request_too_large, 429 rate_limit_error, 408/504/524
// timeout_error, 503/529 overloaded_error, any other 4xx
// invalid_request_error, else api_error).
std::string AnthropicErrorJson(int status, std::string_view message);

// An upstream error answer on the Messages route in OpenRouter's own shape
// ({"error":{"message",...}} without a top-level "type"), rewritten in
// Anthropic's (AnthropicErrorJson), so that Anthropic's clients can read
// it; nullopt when `body` is not one (already Anthropic's, or not JSON).
std::optional<std::string> AnthropicErrorFromUpstream(int status,
                                                      std::string_view body);

// One of the proxy's own error answers: `status` with ErrorJson(status, type,
// message) as the body, plus `extra_headers` (lines ending in "\r\n").
struct HttpError {
  int status = 500;
  std::string_view type;  // e.g. "invalid_request_error"; a literal
  std::string message;
  std::string extra_headers;
};

// 405 "method not allowed; use <allow>" with an "Allow: <allow>" header.
HttpError MethodNotAllowed(std::string_view allow);
// A head Beast refused (`why`) and `fix` could not mend: 505 for another
// HTTP version, else 400.
HttpError MalformedHead(const HeadRepair& fix, std::string_view why);
// 413 and 431: a body or a head over the proxy's limits.
HttpError BodyTooLarge(size_t max_body_bytes);
HttpError HeadTooLarge(size_t max_header_bytes);

inline constexpr std::string_view kJson = "application/json";
inline constexpr std::string_view kEventStream = "text/event-stream";

// The steady clock's time in nanoseconds since its epoch.
inline int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Nanoseconds since `since` on the steady clock.
inline int64_t ElapsedNs(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now() - since)
      .count();
}

// Standard reason phrase ("OK", "Not Found", ...); "Unknown" otherwise.
std::string_view ReasonPhrase(int status);

// A content length for AppendResponseHead: a body that ends when the
// connection closes (a stream to an HTTP/1.0 client, which has no chunks).
inline constexpr int64_t kUntilClose = -2;

// Appends "HTTP/1.1 <status> <reason>\r\n", Content-Type, then either
// Content-Length (content_length >= 0) or Transfer-Encoding: chunked
// (content_length -1; neither for kUntilClose, 204 and 304), Connection:
// keep-alive|close, then `extra` and
// `extra2` (each line already ending in "\r\n"), then the blank line.
void AppendResponseHead(std::string* out, int status,
                        std::string_view content_type, int64_t content_length,
                        bool keep_alive, std::string_view extra,
                        std::string_view extra2 = {});

// The connection limit a server with `fd_limit` open files (the soft
// RLIMIT_NOFILE; 0 = unlimited) can keep: `requested`, capped to
// (fd_limit - reserve) / 2 (a connection may hold an upstream socket
// besides its own), and at least 1.
size_t ConnectionCap(size_t requested, uint64_t fd_limit, uint64_t reserve);

// Appends one header line "name: value\r\n".
void AppendHeader(std::string* out, std::string_view name,
                  std::string_view value);

// Appends an SSE event "data: <data>\n\n" framed as one HTTP chunk.
void AppendSseChunk(std::string* out, std::string_view data);
// Appends `bytes` framed as one HTTP chunk (nothing for empty bytes).
void AppendChunk(std::string* out, std::string_view bytes);
// Appends `bytes` of a streamed body: as one chunk, or as they are when
// the body is not chunked (nothing for empty bytes).
void AppendStreamBytes(std::string* out, std::string_view bytes, bool chunked);
// Sets `*out` to a whole stream body of `events` (AppendStreamBytes each),
// ended by the last chunk if `chunked`.
void StreamBody(const std::vector<std::string>& events, bool chunked,
                std::string* out);
// Appends an SSE event "data: <data>\n\n", as one chunk if `chunked`.
void AppendSseEvent(std::string* out, std::string_view data, bool chunked);

// The access log's line of one request: "METHOD PATH STATUS RESULT 1.234ms",
// then " (" `note` ")" if there is one; the path cut at 200 bytes, "-" for
// an empty field.
std::string AccessLogLine(std::string_view method, std::string_view path,
                          int status, std::string_view result, double ms,
                          std::string_view note);

// The proxy's answer to a completion (or /models) that failed with `s`: 400
// for a bad request (kInvalidArgument), 504 after an upstream deadline, else
// 502.
HttpError CompletionFailure(const Status& s);

// The events that answer a stream request whose head went before its answer
// came (ProxyOptions::stream_keepalive): a 200 replayed (ReplayEvents), or an
// error as one error event, which the client's SDK raises: an error envelope
// ({"error":{...}}: the upstream's own if it sent one), on Messages
// Anthropic's error (AnthropicErrorJson: its type from the status).
struct InBandAnswer {
  std::vector<std::string> events;
  int error_status = 0;  // the error's status; 0 for an answer
};
InBandAnswer AnswerEvents(Endpoint endpoint, const Result<CachedResponse>& r);

// The access log's note for a live stream that ended without its last event
// while its client was still there: "stream cut upstream before its end"
// (a 200 whose events stopped before [DONE]) or "stream broken: <why>" (the
// call failed after its first event: lost, timed out), `why` cut to 160
// bytes of printable ASCII.
std::string StreamBrokenNote(const Result<CachedResponse>& r);

// True if the peer of connected socket `fd` has closed its side (a peek
// reads the end of the stream) or the socket failed; false while it is open,
// with or without bytes to read. Never blocks.
bool PeerClosed(int fd);
// The last chunk of a chunked body.
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace llmcache::net::proxy_util

#endif  // LLMCACHE_NET_SRC_PROXY_UTIL_H_
