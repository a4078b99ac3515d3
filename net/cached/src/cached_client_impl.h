// The cached client's implementation class, shared by its translation units:
//   cached_client.cc  prepare, probe, single flight, upstream, store, flush
//                     (every endpoint, one request = one entry);
//   cached_flight.cc  single flight: handing the leader's answer on;
//   cached_batch.cc   embeddings batches, cached input by input.
// Private to llmcache::cached.

#ifndef LLMCACHE_NET_CACHED_SRC_CACHED_CLIENT_IMPL_H_
#define LLMCACHE_NET_CACHED_SRC_CACHED_CLIENT_IMPL_H_

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "llmcache/net/cached_client.h"
#include "pipeline_counters.h"
#include "stream_tally.h"

namespace llmcache::net::internal {

struct DigestHash {
  size_t operator()(const Digest& d) const {
    size_t h;
    std::memcpy(&h, d.data(), sizeof(h));
    return h;
  }
};

class CachedClientImpl final : public CachedClient {
 public:
  CachedClientImpl(std::shared_ptr<Cache> cache, std::shared_ptr<Client> client,
                   CachedClientOptions options);

  Result<PreparedRequest> Prepare(CachedRequest request) const override;
  std::optional<CacheHit> Probe(PreparedRequest& p, bool count) override;
  void Complete(PreparedRequest request, StreamHandler on_chunk,
                Callback done) override;
  void Complete(CachedRequest request, StreamHandler on_chunk,
                Callback done) override;

  CachedClientStats stats() const override;
  void SetPricing(std::shared_ptr<const PricingTable> pricing) override;
  std::shared_ptr<const PricingTable> pricing() const override;
  // Starts the /models refresh (CachedClientOptions::pricing_refresh_ms);
  // Create calls it once the instance is shared.
  void StartPricingRefresh();
  Cache& cache() override { return *cache_; }
  SharedTier* shared_tier() const override { return shared_.get(); }
  boost::asio::any_io_executor client_executor() const override {
    return client_->executor();
  }

 private:
  using Event = std::shared_ptr<const std::string>;
  // A streaming waiter handed the leader's events as they come (FanOut),
  // those before it joined at once (a catch-up posted when it joins). One
  // thread at a time hands its queue, in order (HandQueued: `draining`).
  struct LiveWaiter {
    StreamHandler on_chunk;
    // Under flights_mu_:
    std::vector<Event> queue;       // not yet handed
    bool draining = false;          // a thread is handing the queue
    bool started = false;           // some of it was taken to be handed
    bool ended = false;             // the flight ended
    std::function<void()> then;     // the end, once the queue is handed
    std::atomic<bool> gone{false};  // its handler said stop
  };
  struct Waiter {
    PreparedRequest request;  // to try again if the flight ends without one
    StreamHandler on_chunk;   // null: not streaming
    Callback done;
    std::shared_ptr<LiveWaiter> live;  // null: the answer comes at the end
    // Started over once already after a flight without a whole answer.
    bool retried = false;
  };
  struct Flight {
    std::vector<Waiter> waiters;
    // The leader's: its errors go only to waiters with the same key.
    std::string api_key;
    // The leader's stream so far, for streaming waiters that join it while
    // it runs, as long as it is under kMaxKeptEventBytes (`kept`: every
    // event is here); later ones get the answer when it ends.
    std::vector<Event> events;
    size_t event_bytes = 0;
    bool kept = true;
    // The leader's call is being cancelled (KeepsStreamForWaiters): nobody
    // joins it any more.
    bool closing = false;
  };
  static constexpr size_t kMaxKeptEventBytes = 8u << 20;
  // A flight leader on its way through the shared tier.
  struct SharedStep {
    PreparedRequest request;
    StreamHandler on_chunk;
    Callback done;
    uint64_t flush_count = 0;  // the tier's, before it was asked
    bool flight = true;        // leads a flight (JoinOrLead)
  };
  struct Batch;  // cached_batch.cc
  // Called when an embeddings input another batch sent upstream is
  // answered: its entry, or null when that batch got no usable answer.
  using InputWaiter = std::function<void(std::shared_ptr<const Entry>)>;

  std::shared_ptr<CachedClientImpl> self() {
    return std::static_pointer_cast<CachedClientImpl>(shared_from_this());
  }

  // ---- cached_client.cc
  std::optional<CacheHit> Lookup(const PreparedRequest& p, bool record,
                                 bool replay, bool* store_failed);
  void CountHit(const Usage& u, const std::string& base_model,
                Endpoint endpoint);
  Callback Counted(Callback done, bool outcome, const std::string& model,
                   Endpoint endpoint);
  void CompletePrepared(PreparedRequest p, StreamHandler on_chunk,
                        Callback done);
  void JoinOrLead(PreparedRequest p, StreamHandler on_chunk, Callback done,
                  bool rejoin, bool retried = false);
  static void DeliverHit(CachedResponse out,
                         const std::vector<std::string>& events,
                         const StreamHandler& on_chunk, const Callback& done,
                         const std::function<void()>& on_stream_hit);
  // A shared-tier continuation. The tier calls it on its own I/O thread;
  // `fn` then runs on the client's executor, with everything it holds: the
  // client, the request, the caller's callbacks. Nothing of the request
  // stays with the tier once it has answered, so none of it can be
  // destroyed on the tier's thread (where the client's last reference
  // would tear down its HTTP client after the io_context it was made for
  // may be gone).
  template <typename Arg, typename Fn>
  std::function<void(Arg)> OnClientExecutor(Fn fn) const;
  void SharedLookup(std::shared_ptr<SharedStep> step);
  void SharedLead(std::shared_ptr<SharedStep> step);
  template <typename Fn>
  void Guarded(const std::shared_ptr<SharedStep>& step, Fn&& fn);
  bool ServeShared(SharedStep& step, const std::shared_ptr<const Entry>& e);
  // Writes an entry found in the shared tier to the local tiers, after the
  // answer, on the client's executor; not if the tier learned of a flush
  // since `flush_count` (SharedTier::flush_count, read before the entry
  // was), and taken back if it learns of one during the write.
  void FillFromShared(const RequestKey& key, std::shared_ptr<const Entry> e,
                      uint64_t flush_count);
  void CallUpstream(PreparedRequest p, CacheResult kind, BypassReason reason,
                    StreamHandler on_chunk, Callback done, bool flight,
                    std::string lease_token = {});
  // `flush_count`: the cache's FlushCount() before upstream was asked.
  Result<CachedResponse> Finish(Result<Response> r, const PreparedRequest& p,
                                CacheResult kind, BypassReason reason,
                                const StreamTally* tally, uint64_t flush_count);
  // Stores one answer under `key` in every tier (the same times, hence the
  // same TTL, everywhere). False (and counted, logged) when the local
  // store failed.
  // Not if a flush began since FlushCount() returned `flush_count` (the
  // answer was asked for before it); `why` then says so.
  bool Store(const RequestKey& key, const CachedRequest& req,
             const std::string& body, const Usage& usage,
             const std::string& resolved_model, uint8_t flags,
             uint64_t flush_count, std::string* why = nullptr);
  // Whether the streaming leader whose caller left should go on: whether
  // the flight of `digest` has waiters (`live_only`: ones still handed the
  // leader's events as they come). When it has none the caller cancels the
  // call, so the flight is closed first, under the same lock: a request
  // that comes before it ends makes a call of its own instead of joining a
  // stream about to be cut.
  bool KeepsStreamForWaiters(const Digest& digest, bool live_only);
  // The lifetime Store gives `req`'s answer (CachedResponse::ttl_ms).
  int64_t StoredTtlMs(const CachedRequest& req) const {
    return req.ttl_ms.value_or(options_.ttl_ms.value_or(-1));
  }
  // cached_flight.cc. The leader's event `data`: kept for streaming waiters
  // that join later and handed to the live ones. On the leader's thread.
  void FanOut(const Digest& digest, std::string_view data);
  // Hands `live` its queued events, then its end once set; from any
  // thread (one that finds another handing them leaves them to it).
  void HandQueued(LiveWaiter& live);
  // cached_flight.cc. `stream_cut`: the leader's stream failed after its
  // first event. `stream_over`: it passed max_stored_stream_bytes, so it has
  // no whole body to hand out.
  void FinishFlight(const Digest& digest, const Result<CachedResponse>* out,
                    bool stream_cut = false, bool stream_over = false);
  // How a waiter whose flight had no answer for it starts over.
  enum class Again {
    kRejoin,  // leads or joins a flight of its API key
    kRetry,   // the same, once; then kSolo (the leader's was not whole)
    kSolo,    // a call of its own, outside any flight
  };
  void Restart(Waiter w, Again again);
  // `usage` (may be null): given the cost by the upstream's prices when the
  // answer's usage had none (usage.cost is OpenRouter's; other
  // OpenAI-compatible upstreams leave it out).
  void AccountPromptCache(const std::string& requested_model,
                          const std::string& base_model,
                          const ParsedCompletion& c, Usage* usage = nullptr);
  void RefreshPricing();
  void SchedulePricingRefresh();
  // True if it flushed the model (flush_on_model_drift).
  bool CheckDrift(const std::string& base_model, const std::string& resolved);
  void StoreFailure(std::string_view what, const Status& s);
  void Log(const std::string& line);

  // ---- cached_batch.cc
  // Answers an embeddings batch (PreparedRequest::batch()): each input
  // looked up on its own, the missing ones sent upstream in one request,
  // the answer assembled in the batch's order. `done` is called once, in
  // every path.
  void CompleteBatch(PreparedRequest p, Callback done);
  void StartBatch(const std::shared_ptr<Batch>& b);
  template <typename Round>
  void BatchSharedAnswer(const std::shared_ptr<Batch>& b, size_t u,
                         Round& round, Result<std::shared_ptr<const Entry>> r);
  void BatchLead(const std::shared_ptr<Batch>& b,
                 const std::vector<size_t>& still_missing);
  // Sends the unique inputs `sent` upstream in one request; `lead`: they
  // are the inputs whose flights this batch leads.
  void BatchUpstream(std::shared_ptr<Batch> b, std::vector<size_t> sent,
                     bool lead);
  void BatchAnswered(std::shared_ptr<Batch> b, const std::vector<size_t>& sent,
                     bool lead, Result<Response> r);
  // Ends the flights this batch leads, handing each waiter its input's
  // entry from `answers` (parallel to `sent`), or null.
  void EndInputFlights(
      const std::shared_ptr<Batch>& b, const std::vector<size_t>& sent,
      const std::vector<std::shared_ptr<const Entry>>& answers);
  // Ends a batch with `status` (its flights too).
  void AbortBatch(const std::shared_ptr<Batch>& b, Status status);
  void BatchInputSettled(const std::shared_ptr<Batch>& b, size_t unique,
                         std::shared_ptr<const Entry> e);
  void BatchFinish(const std::shared_ptr<Batch>& b);

  const std::shared_ptr<Cache> cache_;
  const std::shared_ptr<Client> client_;
  const CachedClientOptions options_;
  const Clock* const clock_;
  const KeyBuilder keys_;
  const std::shared_ptr<SharedTier> shared_;

  std::mutex flights_mu_;
  std::unordered_map<Digest, std::shared_ptr<Flight>, DigestHash> flights_;
  // Embeddings inputs on their way upstream inside a batch, and who else
  // waits for them.
  std::mutex input_flights_mu_;
  std::unordered_map<Digest, std::vector<InputWaiter>, DigestHash>
      input_flights_;
  // The drift detector: per base model, the last resolved model and its
  // changes.
  struct DriftState {
    std::string resolved;
    uint64_t events = 0;
    int64_t last_drift_ms = 0;
  };
  mutable std::mutex resolved_mu_;
  std::unordered_map<std::string, DriftState> resolved_;
  // Provider prompt caching per base model (this instance).
  mutable std::mutex prompt_cache_mu_;
  std::map<std::string, CachedClientStats::PromptCacheModel, std::less<>>
      prompt_cache_models_;
  mutable std::mutex pricing_mu_;
  std::shared_ptr<const PricingTable> pricing_;
  std::unique_ptr<boost::asio::steady_timer> pricing_timer_;
  std::atomic<bool> pricing_failure_logged_{false};

  mutable PipelineCounters counters_;  // Prepare (const) counts keys
  std::atomic<int64_t> last_store_log_ms_{0};
};

template <typename Arg, typename Fn>
std::function<void(Arg)> CachedClientImpl::OnClientExecutor(Fn fn) const {
  return [ex = client_->executor(), fn = std::move(fn)](Arg arg) mutable {
    // Moved out: the tier may keep (and later destroy) this callback on
    // its thread; what it held is the executor's now.
    boost::asio::post(ex, [fn = std::move(fn), arg = std::move(arg)]() mutable {
      try {
        fn(std::move(arg));
      } catch (...) {
        // `fn` answers its own failures (Guarded); nothing may unwind
        // through the io_context (the tier's thread caught it before).
      }
    });
  };
}

// Hands replayed events to a stream handler. False if the handler
// cancelled.
bool Deliver(const std::vector<std::string>& events,
             const StreamHandler& on_chunk);

}  // namespace llmcache::net::internal

#endif  // LLMCACHE_NET_CACHED_SRC_CACHED_CLIENT_IMPL_H_
