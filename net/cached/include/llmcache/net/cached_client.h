// CachedClient: the cached completion pipeline, the only place a request is
// keyed, decided, looked up and counted. Every caller (the proxy, `llmcache
// warm`, library users) goes through it:
//
//   Prepare   parse + key + policy decision, once per request
//             (PreparedRequest carries key, decision, scope and controls)
//   Probe     the hit probe: one counted lookup; a hit is returned as the
//             shared stored entry (zero copy), replay-ready for streams
//   Complete  on a miss (or a bypass): single flight -> upstream -> store,
//             counted; given a CachedRequest it runs all three stages
//
//   - A hit returns the stored response (with its stored usage and cost, so
//     savings can be reported); a streamed request gets it replayed as a
//     chunk stream an OpenAI SDK accepts.
//   - Single flight: concurrent identical misses make exactly one upstream
//     call; the others wait for its result (or its error, never cached),
//     each in its own form: JSON for a plain request, events for a stream,
//     whichever form the leader asked for. A streaming waiter of a
//     streaming leader is handed the leader's events as they come (those
//     before it joined at once, posted to the client's executor; up to 8 MiB
//     of them are kept for joiners, a later one gets the answer replayed at
//     the end), in order, by one thread at a time (the leader's, or the
//     executor's), and then ends as the leader's call did, whole or not.
//     Any other waiter, and a stream not yet handed any event, is never
//     handed an answer that is not whole (a stream cut before [DONE], or
//     failed after its first event): those start over together, the first
//     leading one new call that the others of its API key wait for; one
//     whose second answer is not whole either asks upstream on its own. A
//     401, 402, 403 or 429 goes only to waiters with the leader's API key (a
//     shared scope's other tenants start a flight of their own). A stream
//     whose caller left with nobody waiting is cancelled; a request that
//     comes before that call has ended joins nothing: it calls on its own.
//   - Fail open: if the store fails (disk full, corrupt, locked), the request
//     still goes upstream and succeeds; failures are counted and logged at
//     most once per interval.
//   - Only clean completions are stored: HTTP 200, no error anywhere, finish
//     reason not "error", content, a refusal or tool calls; a stream only
//     after its terminal [DONE]. Streams and non-streams share entries: a
//     stream is stored as the JSON a plain request gets (every choice,
//     reasoning and its details, annotations, logprobs, refusal, tool calls,
//     usage), and a stored answer is replayed with all of them.
//   - Model drift: when a fresh response reports a resolved model different
//     from the last one seen for that model, it is counted and logged and,
//     if configured, the model's entries are flushed.
//   - Statistics: each request is counted once, as a hit, a miss or a bypass
//     (CachedClientStats), by this class alone; the engine's persistent
//     statistics count the same lookup once.
//
// Thread safety: all methods may be called concurrently.
// Lifetime: a request in flight holds the client. Its continuations run on
// the HTTP client's executor (those of a shared tier too: the tier's own
// threads keep nothing of a request once they have answered it), so the
// client is released there. Keep that executor's io_context alive until the
// last request is answered and, with a shared tier, until the tier has shut
// down (RedisTier::Shutdown joins the threads that post to it).

#ifndef LLMCACHE_NET_CACHED_CLIENT_H_
#define LLMCACHE_NET_CACHED_CLIENT_H_

#include <array>
#include <atomic>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "llmcache/cache.h"
#include "llmcache/clock.h"
#include "llmcache/key.h"
#include "llmcache/net/client.h"
#include "llmcache/net/completion.h"
#include "llmcache/net/endpoint.h"
#include "llmcache/net/prompt_cache.h"
#include "llmcache/net/shared_tier.h"
#include "llmcache/policy.h"

namespace llmcache::net {

struct CachedClientOptions {
  CacheMode mode = CacheMode::kDeterministic;
  // Source of time for the age of hits. Null = the system clock. Not owned.
  const Clock* clock = nullptr;
  KeyOptions key_options;
  // Namespace used when a request names none.
  std::string default_namespace;
  // TTL of stored entries; nullopt = the cache's default.
  std::optional<int64_t> ttl_ms;
  // Flush a model's entries when its resolved model changes. Default: off.
  bool flush_on_model_drift = false;
  // Store failures are logged at most once per this interval.
  int64_t store_error_log_interval_ms = 60'000;
  // Prices for prompt-caching accounting (see PricingTable; load it from a
  // file or with FetchPricing). Null: only token counts are recorded.
  // Replaced by SetPricing and by the refresh below.
  std::shared_ptr<const PricingTable> pricing;
  // When > 0: GET <upstream>/models (FetchPricing) right after Create and
  // then every this many ms, the result replacing the prices; a failed
  // fetch keeps the previous ones and is logged once (until one succeeds).
  // 0: never. Default: 0.
  int64_t pricing_refresh_ms = 0;
  // Provider prompt caching on the way upstream (chat completions only;
  // CachedRequest::prompt_cache overrides it per request): kAuto adds
  // breakpoints with ApplyAutoPromptCache (prompt_cache.h) to the body sent
  // upstream on a miss or bypass, never to the key. Default: kOff.
  PromptCacheMode prompt_cache = PromptCacheMode::kOff;
  // Where log lines go; null = stderr. Never receives keys or prompts.
  std::function<void(std::string_view line)> log;
  // A tier shared by many instances, under the local ones (see
  // shared_tier.h); null = none. Its flushes drop the flushed model from the
  // local tiers.
  std::shared_ptr<SharedTier> shared;
  // Concurrent identical misses on different instances make one upstream
  // call (SharedTier::AcquireLead). Default: on.
  bool shared_single_flight = true;
  // A streamed answer whose events pass this many bytes in all goes on to
  // its caller (and to streaming waiters handed its events) to the end, but
  // is no longer gathered: it is not stored, its CachedResponse has no body
  // (for chat completions, the usage and error its last events carried),
  // and the waiters of its flight not handed its events as they came (plain
  // requests, streams that joined after its first 8 MiB) start over: plain
  // requests as after a stream cut short (the first leads one new call that
  // the others of its API key join), streams each with a call of their own.
  // If its caller goes away with no stream waiter left, the call is
  // cancelled. Bounds the memory a stream holds. Default: 64 MiB.
  size_t max_stored_stream_bytes = 64u << 20;
};

struct CachedRequest {
  // The API the body is written for (POST /chat/completions, /embeddings,
  // /responses or /messages upstream).
  Endpoint endpoint = Endpoint::kChatCompletions;
  std::string body;          // the request body, as the endpoint takes it
  std::string ns;            // namespace; empty = options' default
  std::string scope;         // tenant scope (e.g. ApiKeyScope of the API key)
  bool skip_lookup = false;  // Cache-Control: no-cache (still stores)
  bool no_store = false;     // Cache-Control: no-store
  // Cache-Control: only-if-cached (RFC 9111 5.2.1.7): answered from the
  // tiers (local, then shared) or not at all. Nothing goes upstream: a
  // request they do not answer (a miss, a bypass, no-cache) ends with
  // NotCachedError, and it neither leads nor joins a flight.
  bool only_if_cached = false;
  int64_t max_age_ms = -1;        // accept only younger entries; -1 = any
  std::optional<int64_t> ttl_ms;  // overrides the options' TTL
  std::string api_key;  // forwarded upstream instead of the client's own
  // Overrides CachedClientOptions::prompt_cache for this request (not in
  // the key).
  std::optional<PromptCacheMode> prompt_cache;
  std::vector<Header> headers;  // passed upstream (attribution)
  // Stream requests: called once, on any thread, right before the events of
  // a hit that Complete found (in the shared tier, or a single flight that
  // ended with one) go to the stream handler, so that the caller can label
  // its response a hit before the first event. May be null.
  std::function<void()> on_stream_hit;
  // May be null. Called on any thread before a request that waited for an
  // identical one's answer, which ended without a usable one (a stream cut
  // short, the leader's caller gone), asks upstream itself: true if its
  // caller has gone away (a closed connection). It then ends kCancelled
  // instead of paying for an answer nobody reads.
  std::function<bool()> caller_gone;
  // May be null. Called on any thread when the request starts to wait for an
  // identical request's answer in this process (true: it holds no upstream
  // connection of its own meanwhile), and when, after such a wait, it asks
  // upstream itself (false), in that order; perhaps with the client's lock
  // held, so it must not block or call the client (record, or post). A
  // server may then free the place of a connection whose client has gone
  // while the request waits. (A wait for another instance's call on the
  // shared tier, or for another batch's embeddings, is not told.)
  std::function<void(bool waits)> on_wait;
};

// A request after the pipeline's first stage (CachedClient::Prepare): its
// body validated, keyed and decided, once. Read-only: what was keyed cannot
// change afterwards (set namespace, scope and controls on the CachedRequest
// before preparing it). Move it on to Probe and Complete.
class PreparedRequest {
 public:
  // The request as keyed; `ns` resolved to the options' default when empty.
  const CachedRequest& request() const { return request_; }
  const RequestKey& key() const { return key_; }
  const std::string& key_hex() const { return key_hex_; }  // key().Hex()
  const RequestInfo& info() const { return info_; }
  const Decision& decision() const { return decision_; }
  Endpoint endpoint() const { return request_.endpoint; }
  // "stream": true in the body (never for embeddings, which do not stream).
  bool streaming() const {
    return info_.stream && request_.endpoint != Endpoint::kEmbeddings;
  }
  // An embeddings request whose `input` is an array of inputs: each input
  // is cached on its own (Complete answers it; Probe never does).
  bool batch() const { return info_.input_is_batch; }
  // Probe has looked this request up (Complete will not count it again).
  bool probed() const { return probe_ != ProbeState::kNotProbed; }
  // Sets CachedRequest::on_stream_hit (it does not change the key).
  void set_on_stream_hit(std::function<void()> fn) {
    request_.on_stream_hit = std::move(fn);
  }
  // Sets CachedRequest::caller_gone (it does not change the key).
  void set_caller_gone(std::function<bool()> fn) {
    request_.caller_gone = std::move(fn);
  }
  // Sets CachedRequest::on_wait (it does not change the key).
  void set_on_wait(std::function<void(bool)> fn) {
    request_.on_wait = std::move(fn);
  }

 private:
  friend class CachedClient;
  enum class ProbeState : uint8_t { kNotProbed, kLookedUp, kStoreFailed, kHit };
  PreparedRequest() = default;

  CachedRequest request_;
  RequestKey key_;
  std::string key_hex_;
  RequestInfo info_;
  Decision decision_;
  ProbeState probe_ = ProbeState::kNotProbed;
};

// A hit found by CachedClient::Probe (already counted).
struct CacheHit {
  std::shared_ptr<const Entry> entry;  // shared, immutable: send it as is
  int64_t age_ms = 0;                  // age of the entry
  // Streaming requests: the entry replayed as the endpoint's SSE frames
  // (ReplayEvents, endpoint.h: chat completions end with "data: [DONE]").
  // Empty otherwise.
  std::vector<std::string> events;
};

enum class CacheResult { kHit, kMiss, kBypass };
std::string_view CacheResultName(CacheResult r);  // "HIT", "MISS", "BYPASS"

// The end of an only_if_cached request that the tiers do not answer
// (kNotFound, its message ending in what only-if-cached forbids), and its
// test.
Status NotCachedError(std::string_view why);
bool IsNotCached(const Status& s);

struct CachedResponse {
  CacheResult result = CacheResult::kMiss;
  BypassReason bypass_reason = BypassReason::kNone;
  std::string key_hex;  // empty for bypasses that could not be keyed
  int status = 0;       // HTTP status (200 for hits)
  // Complete response JSON (also for streams; empty for one over
  // CachedClientOptions::max_stored_stream_bytes).
  std::string body;
  std::vector<Header> headers;  // upstream headers (misses/bypasses)
  int attempts = 0;  // misses/bypasses: upstream attempts (1 = no retry)
  ParsedCompletion parsed;
  Usage usage;          // hits: the stored usage (what the hit saved)
  int64_t age_ms = 0;   // hits: age of the entry
  bool stored = false;  // misses: the response was stored
  // Stored misses: the lifetime it was stored with (the request's TTL, else
  // the options'; 0 = forever), also for the waiters of a single flight
  // (the leader's); -1 when the cache's default applied.
  int64_t ttl_ms = -1;
  // A whole answer: HTTP 200 and, for a stream, its [DONE] (hits: always).
  // Only whole answers are handed to the waiters of a single flight, but
  // for a stream that was handed the leader's events as they came. A stream
  // past max_stored_stream_bytes can be whole with no body: it is handed
  // only to the streams that were handed its events.
  bool complete = false;
  std::string not_stored_reason;
  bool joined_flight = false;  // waited for an identical in-flight request
  bool streamed = false;
};

// Receives the SSE payloads of a streamed request ("data" of each event,
// including "[DONE]"), in order, never concurrently. Return false to cancel.
using StreamHandler = std::function<bool(std::string_view data)>;

struct CachedClientStats {
  // Requests keyed by Prepare (valid or not): once per request.
  uint64_t keys_computed = 0;
  // Every request that reached a decision is exactly one of these three, by
  // what it was answered with: a hit (from the store, also when a just-ended
  // flight had stored it), a miss (an upstream answer, its own or, for a
  // request that joined a single flight, the leader's), or a bypass.
  uint64_t hits = 0, misses = 0, bypasses = 0;
  // Bypasses by reason (indexed by BypassReason; [0] unused).
  std::array<uint64_t, static_cast<size_t>(BypassReason::kCount)>
      bypass_reasons{};
  // What the hits saved: the stored usage of each entry served.
  uint64_t tokens_saved = 0;
  int64_t cost_saved_nanousd = 0;
  // Requests answered with an upstream failure: a transport error or a
  // non-200 answer (each waiter of a failed flight counts); not a caller
  // that went away (kCancelled).
  uint64_t upstream_errors = 0;
  uint64_t upstream_calls = 0;
  uint64_t flight_joins = 0;
  uint64_t store_errors = 0;
  uint64_t stored = 0, not_stored = 0;
  uint64_t model_drifts = 0;
  // Provider-side prompt caching seen in upstream usage (separate from the
  // response cache's savings, which the engine's statistics hold).
  uint64_t prompt_cache_read_tokens = 0;
  uint64_t prompt_cache_write_tokens = 0;
  // Priced with CachedClientOptions::pricing: what prompt caching saved
  // against the uncached price (negative when writes cost more than reads
  // saved), in nano-USD.
  int64_t prompt_cache_savings_nanousd = 0;
  uint64_t priced_responses = 0;
  // Requests whose upstream body got breakpoints from the `auto` policy.
  uint64_t prompt_cache_marked = 0;
  // CachedClientOptions::prompt_cache.
  PromptCacheMode prompt_cache_mode = PromptCacheMode::kOff;
  // Provider prompt caching per base model, this instance's (the engine
  // persists the same counts: ModelStats::provider_cache_*): tokens read
  // and written, what reads saved and writes cost over the prompt price
  // (ComputePromptCacheEffect; 0 until prices are known). Sorted by model;
  // the two sums are over the models.
  struct PromptCacheModel {
    std::string model;
    uint64_t read_tokens = 0;
    uint64_t write_tokens = 0;
    int64_t saved_nanousd = 0;
    int64_t write_premium_nanousd = 0;
  };
  std::vector<PromptCacheModel> prompt_cache_models;
  int64_t prompt_cache_saved_nanousd = 0;
  int64_t prompt_cache_write_premium_nanousd = 0;
  // Model drift per base model: the last resolved model seen, the drift
  // events (persisted ones included: ModelStats::drift_events) and when the
  // last one happened here (Unix ms; 0: not since start). Sorted by model.
  bool flush_on_drift = false;
  struct DriftModel {
    std::string model;
    std::string resolved_model;
    uint64_t drift_events = 0;
    int64_t last_drift_ms = 0;
  };
  std::vector<DriftModel> drift_models;
  // The shared tier: hits answered from it (also in `hits`), its lookups
  // that failed (answered from upstream: fail open), local fills, and the
  // cross-instance single flight (leads taken, answers another instance
  // made, waits that ended without one).
  uint64_t shared_hits = 0;
  uint64_t shared_errors = 0;
  uint64_t shared_fills = 0;
  uint64_t shared_leads = 0;
  uint64_t shared_lead_hits = 0;
  uint64_t shared_go_alone = 0;
  // Per endpoint (indexed by Endpoint): requests answered with a hit, a
  // miss or a bypass (the three add up to hits, misses and bypasses).
  struct EndpointCounts {
    uint64_t hits = 0, misses = 0, bypasses = 0;
  };
  std::array<EndpointCounts, kEndpointCount> endpoints{};
  // Embeddings batches: inputs answered from the cache, and inputs sent
  // upstream. A batch is one request: a hit when every input was cached,
  // else a miss.
  uint64_t embedding_inputs_hit = 0;
  uint64_t embedding_inputs_missed = 0;
};

class CachedClient : public std::enable_shared_from_this<CachedClient> {
 public:
  using Callback = std::function<void(Result<CachedResponse>)>;

  // `cache` and `client` must outlive nothing: they are shared.
  static std::shared_ptr<CachedClient> Create(std::shared_ptr<Cache> cache,
                                              std::shared_ptr<Client> client,
                                              CachedClientOptions options);
  virtual ~CachedClient() = default;

  // The cached completion, all stages (Prepare, Probe, Complete). With
  // `on_chunk` set and "stream": true in the body, the response is delivered
  // as events (a hit replayed, a miss passed through live) and the final
  // CachedResponse still carries the complete body (not for a stream past
  // CachedClientOptions::max_stored_stream_bytes). kInvalidArgument for a
  // body that is not a valid request; transport errors as Client reports
  // them; an upstream HTTP error is an OK result with its status and body
  // (never cached).
  // `Request` is a CachedRequest (all stages) or a PreparedRequest.
  template <typename Request, typename Token>
  auto AsyncComplete(Request request, StreamHandler on_chunk, Token&& token) {
    static_assert(std::is_same_v<Request, CachedRequest> ||
                  std::is_same_v<Request, PreparedRequest>);
    return boost::asio::async_initiate<Token, void(Result<CachedResponse>)>(
        [self = shared_from_this()](auto handler, Request req,
                                    StreamHandler chunks) {
          auto h = std::make_shared<decltype(handler)>(std::move(handler));
          auto ex =
              boost::asio::get_associated_executor(*h, self->client_executor());
          self->Complete(std::move(req), std::move(chunks),
                         [h, ex](Result<CachedResponse> r) {
                           boost::asio::post(ex,
                                             [h, r = std::move(r)]() mutable {
                                               std::move (*h)(std::move(r));
                                             });
                         });
        },
        token, std::move(request), std::move(on_chunk));
  }

  // The seed's convenience call: model + messages (a JSON array) + extra
  // params (a JSON object, may be "{}"); `temperature` defaults to 0 and
  // `max_tokens` to 1024 when the params leave them out.
  template <typename Token>
  auto AsyncChat(std::string model, std::string messages_json,
                 std::string params_json, Token&& token) {
    // One initiation for both outcomes (lazy tokens need one type).
    return boost::asio::async_initiate<Token, void(Result<CachedResponse>)>(
        [self = shared_from_this()](auto handler, Result<std::string> body) {
          auto h = std::make_shared<decltype(handler)>(std::move(handler));
          auto ex =
              boost::asio::get_associated_executor(*h, self->client_executor());
          auto deliver = [h, ex](Result<CachedResponse> r) {
            boost::asio::post(ex, [h, r = std::move(r)]() mutable {
              std::move (*h)(std::move(r));
            });
          };
          if (!body.ok()) return deliver(body.status());  // BuildChatBody's
          CachedRequest req;
          req.body = std::move(*body);
          self->Complete(std::move(req), nullptr, std::move(deliver));
        },
        token, BuildChatBody(model, messages_json, params_json));
  }
  static Result<std::string> BuildChatBody(std::string_view model,
                                           std::string_view messages_json,
                                           std::string_view params_json);

  // Stage 1: validates and keys the body and decides, once. The key covers
  // the namespace (request.ns, else the options' default) and the scope.
  // kInvalidArgument for a body that is not a valid chat request (malformed
  // JSON, no or empty "model" or "messages", too large).
  virtual Result<PreparedRequest> Prepare(CachedRequest request) const = 0;

  // Stage 2, the hit probe: looks the request up unless it bypasses or asks
  // for no lookup (skip_lookup). A hit is counted here and returned, with
  // its events for a stream request; nullopt means "go on with Complete" (a
  // miss, a bypass, a lookup error — fail open — or a stream request whose
  // entry cannot be replayed as events). After a hit, Complete is not
  // needed (if called, it answers from the store without counting again).
  // With `count` false, no hit or miss is counted, no events are made and a
  // later Complete looks again (`llmcache warm` skipping what is cached); a
  // store failure is still counted and logged.
  virtual std::optional<CacheHit> Probe(PreparedRequest& request,
                                        bool count = true) = 0;

  // Stage 3: completes a prepared request — a probe first if it has not had
  // one, then the single flight, the upstream call and the store. `done` is
  // called once, on any thread.
  virtual void Complete(PreparedRequest request, StreamHandler on_chunk,
                        Callback done) = 0;
  // All stages in one call.
  virtual void Complete(CachedRequest request, StreamHandler on_chunk,
                        Callback done) = 0;

  // A CachedResponse for a hit (for callers that want the response whole).
  static CachedResponse HitResponse(const PreparedRequest& request,
                                    const CacheHit& hit);

  virtual CachedClientStats stats() const = 0;
  // Replaces the prices used for prompt-caching accounting (any thread;
  // requests being accounted keep the table they started with). Null: no
  // prices.
  virtual void SetPricing(std::shared_ptr<const PricingTable> pricing) = 0;
  virtual std::shared_ptr<const PricingTable> pricing() const = 0;
  virtual Cache& cache() = 0;
  // The shared tier (CachedClientOptions::shared), or null.
  virtual SharedTier* shared_tier() const = 0;
  virtual boost::asio::any_io_executor client_executor() const = 0;

 protected:
  CachedClient() = default;

  // For implementations: making and advancing a PreparedRequest.
  using ProbeState = PreparedRequest::ProbeState;
  static PreparedRequest MakePrepared(CachedRequest request, RequestKey key,
                                      RequestInfo info, Decision decision) {
    PreparedRequest p;
    p.key_hex_ = key.Hex();
    p.request_ = std::move(request);
    p.key_ = std::move(key);
    p.info_ = info;
    p.decision_ = decision;
    return p;
  }
  static ProbeState GetProbeState(const PreparedRequest& p) { return p.probe_; }
  static void SetProbeState(PreparedRequest& p, ProbeState s) { p.probe_ = s; }
  // The body, API key and headers, moved out to go upstream.
  static CachedRequest& MutableRequest(PreparedRequest& p) {
    return p.request_;
  }
};

// Fetches GET <base_url>/models and loads its pricing. `done` gets the table,
// or the transport / upstream / parse error.
void FetchPricing(Client& client,
                  std::function<void(Result<PricingTable>)> done);

}  // namespace llmcache::net

#endif  // LLMCACHE_NET_CACHED_CLIENT_H_
