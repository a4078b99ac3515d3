// The fake OpenRouter: a test double of OpenRouter's API on loopback (chat
// completions, and the embeddings, Responses API and Anthropic Messages
// endpoints it also serves). The tests and benchmarks use it in place of the
// real service, and it backs `llmcache fake-openrouter`, a demo of the whole
// stack that needs no API key. It is not a general-purpose server and not
// part of llmcache::net. Start here; what it mimics is summarised in
// docs/openrouter.md (the fake upstream).
//
// Serves, on 127.0.0.1 (ephemeral port by default), over HTTP or HTTPS:
//   POST /api/v1/chat/completions   non-stream and stream (SSE), shapes as in
//                                   docs/openrouter.md (non-streaming
//                                   response; streaming)
//   GET  /api/v1/models             a small model list with prices, as in
//                                   docs/openrouter.md (models and prices)
//   POST /api/v1/embeddings         OpenAI's shape: `input` a string, strings,
//                                   one token array or token arrays; a
//                                   unit-length vector per item, a function
//                                   of (model, dimensions, item) only, so the
//                                   same item gets the same vector at any
//                                   batch position; `dimensions` (default 8,
//                                   at most 4096); encoding_format "base64":
//                                   little-endian float32, base64-encoded.
//                                   Tokens: ceil(bytes / 4) per string (at
//                                   least 1), a token array's length
//   POST /api/v1/responses          the OpenAI Responses API: a response
//                                   object; stream: named events
//                                   (response.created ... response.completed
//                                   with sequence_number, no [DONE])
//   POST /api/v1/messages           the Anthropic Messages API (bearer auth):
//                                   a message (`max_tokens` required); stream:
//                                   message_start, ping, content_block_*,
//                                   message_delta, message_stop; errors in
//                                   Anthropic's {"type":"error",...} shape
// (also under the legacy /v1 prefix; other paths: 404, other methods: 405).
// Deterministic: the same request body, streamed or not, gives the same
// content. The rules of the last three are in fake_endpoints.h.
//
// Faults are selected by the request's `model` (so they work through the
// proxy too); a `:variant` suffix is ignored, as llmcache::BaseModel does:
//   fake/fault-<status>      that HTTP status (400..599) with the error
//                            envelope (429 and 503 carry "Retry-After: 1"),
//                            as JSON even when the request asked to stream;
//                            fake/fault-<status>-after-<ms> answers it
//                            after <ms> milliseconds (also for flaky)
//   fake/flaky-<status>-<n>  the first n requests with this exact body get
//                            <status>, later ones succeed
//   fake/delay-<ms>          answer normally after <ms> milliseconds (at
//                            most 10 minutes)
//   fake/error-200           HTTP 200 with a top-level error envelope
//   fake/choice-error        HTTP 200, a choice with finish_reason "error"
//   fake/empty               HTTP 200, no content and no tool calls
//   fake/tool-call           HTTP 200, a tool call (streams: fragments),
//                            content null
//   fake/refusal             HTTP 200, content null and a `refusal` (streams:
//                            refusal pieces), finish_reason "stop"
//   fake/annotations         HTTP 200, content with two url_citation
//                            `annotations` (streams: one chunk after the
//                            content)
//   fake/midstream-error     stream: two content chunks, then an error event
//                            and no [DONE]; non-stream: like choice-error
//   fake/cut                 stream: content, then the connection closes
//                            before [DONE]; non-stream: body cut short
//   fake/reset               the connection is reset in the middle of the body
//   fake/hang                headers are never sent (the client must time out)
//   fake/slow-<ms>           stream: <ms> between events (non-stream: before
//                            the answer), to test idle deadlines and cancels
//   fake/flood-<mib>         stream: <mib> MiB (1..1024) more content in
//                            64 KiB events before the first content piece,
//                            as fast as the reader takes them;
//                            fake/flood-<mib>-every-<ms> one event every
//                            <ms> (non-stream: answers normally; usage does
//                            not count the flood; through the proxy a
//                            stream over 64 MiB goes on but is not stored)
//   fake/not-json            HTTP 200, the plain (non-stream) JSON answer cut
//                            in half, also to a stream request (other
//                            endpoints: their non-stream answers)
//   fake/newlines            non-stream body preceded by "\n\n\n" keep-alive
//                            bytes, as OpenRouter sends for slow upstreams
//   fake/embed-delay-<us>    embeddings: answer after <us> microseconds per
//                            input item (others: answer normally)
// The embeddings, Responses and Messages endpoints honour fault, flaky,
// delay, slow, hang, cut, reset, newlines and error-200 (in their own error
// shape); Responses and Messages also tool-call (a function_call item /
// tool_use block; streamed as argument deltas) and midstream-error (an error
// event after two text deltas). Other selectors answer normally there.
// Any other model (and a malformed selector) answers normally. Prompt caching
// is simulated: a request with `cache_control` markers reports
// cache_write_tokens the first time and cached_tokens afterwards.
//
// Request members select more of the answer, with any model above (so they
// combine with the shapes, e.g. a tool call with reasoning):
//   "n": k                   k choices (1..8), each with its own content;
//                            streams interleave the choices' chunks.
//                            (OpenRouter itself answers one choice;
//                            OpenAI-compatible upstreams honour n, so the cache
//                            must keep all.)
//   "logprobs": true         choice.logprobs {content: [...], refusal: null}
//                            ({content: null, refusal: [...]} for a refusal):
//                            tokens of at most 4 bytes with token, logprob,
//                            bytes and top_logprobs; streamed, each content
//                            piece is a run of whole tokens carrying theirs
//   "top_logprobs": k        k alternatives per token (0..20; the first is the
//                            token itself)
//   "reasoning": {...}       message.reasoning and message.reasoning_details
//                            (a reasoning.text detail with a signature and a
//                            reasoning.encrypted one, format
//                            anthropic-claude-v1), and reasoning_tokens in
//                            usage; off with exclude: true, enabled: false
//                            or effort "none". Also `include_reasoning: true`
//                            or a `reasoning_effort` other than "none".
//                            Streamed: reasoning pieces, each with a
//                            reasoning_details piece of the same index (a
//                            continuation, as OpenRouter streams them), then
//                            the signature, then the encrypted data in two
//                            pieces, to exercise the merge.
//   "x_fake_resolved_model": "m"  the answer's `model` is m instead of the
//                            requested base model: a model drift on demand
//                            (chat completions)
// Streamed or not, the same request gives the same choices: accumulating the
// stream gives the non-streamed body (up to id and created).
//
// The files, one idea each (the headers other than this one are private to
// net/fake):
//   fake_openrouter.h      this interface
//   fake_server.cc         the HTTP/1.1 server (the only Beast/Asio unit):
//                          sockets, TLS, keep-alive, executing Plans
//   fake_responder.h/.cc   request -> Plan: routing, auth, completion answers
//                          (non-stream and SSE), usage and cost
//   fake_endpoints.h/.cc   the same for embeddings, Responses and Messages
//   fake_embeddings.cc     embedding inputs, vectors, base64
//   fake_api_events.cc     Responses and Messages bodies and event streams
//   fake_faults.h/.cc      the fault selectors above and the error statuses
//   fake_features.h/.cc    n, logprobs and reasoning asked for; token logprobs
//   fake_models.h/.cc      the model table, its prices and GET /models
//   fake_prompt_cache.h/.cc  the provider prompt-cache simulation
//   fake_util.h/.cc        hashing, ids, UTF-8 cutting, JSON lookups
//   test_certs.cc          TestCertificates::Generate()
// The exact rules (content, token counts, cost, cache prefixes) are in the
// opening comments of fake_responder.h and fake_prompt_cache.h.
//
// Thread safety: all methods may be called from any thread.

#ifndef LLMCACHE_NET_FAKE_FAKE_OPENROUTER_H_
#define LLMCACHE_NET_FAKE_FAKE_OPENROUTER_H_

#include <cstdint>
#include <memory>
#include <optional>
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
  std::string untrusted_cert_pem;  // self-signed, SAN: localhost, 127.0.0.1
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
  // Content pieces per streamed response (at most; tool-call arguments and
  // fake/midstream-error use at least 3).
  int stream_pieces = 6;
  bool log_requests = false;  // one line per request on stderr
  // When set, the body of every GET /models answer (a 200) instead of the
  // model list: an upstream whose list cannot be read (an HTML page).
  std::optional<std::string> models_body;
  // Milliseconds before every GET /models answer.
  int models_delay_ms = 0;
  // false: chat completions' usage has no "cost" (as OpenAI-compatible
  // upstreams other than OpenRouter send it).
  bool usage_cost = true;
};

class FakeOpenRouter {
 public:
  static Result<std::unique_ptr<FakeOpenRouter>> Start(const FakeOptions& o);
  virtual ~FakeOpenRouter() = default;

  virtual uint16_t port() const = 0;
  // "http://<host>:<port>/api/v1" (https with tls); 0.0.0.0 and localhost
  // show as 127.0.0.1, :: as [::1].
  virtual std::string base_url() const = 0;

  virtual uint64_t requests() const = 0;     // HTTP requests received
  virtual uint64_t completions() const = 0;  // chat-completion requests
  // Requests to POST /embeddings, and the input items of the vectors sent
  // (successful answers, cut and reset ones included).
  virtual uint64_t embeddings() const = 0;
  virtual uint64_t embedded_items() const = 0;
  virtual uint64_t responses() const = 0;    // requests to POST /responses
  virtual uint64_t messages() const = 0;     // requests to POST /messages
  virtual uint64_t connections() const = 0;  // TCP connections accepted
  virtual std::string last_authorization() const = 0;
  // A header of the last request (name case-insensitive); "" if absent.
  virtual std::string last_header(const std::string& name) const = 0;
  // Zeroes the counters, forgets the last request's headers and the
  // fake/flaky-<status>-<n> counts.
  virtual void ResetCounters() = 0;

  // Stops accepting, closes connections, joins threads. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace llmcache::fake

#endif  // LLMCACHE_NET_FAKE_FAKE_OPENROUTER_H_
