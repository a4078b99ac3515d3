// CachedClient implementation. No Beast here: upstream calls go through
// Client::Send.

#include "llmcache/net/cached_client.h"

#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "llmcache/clock.h"
#include "llmcache/net/sse.h"

namespace llmcache::net {
namespace {

namespace json = boost::json;

struct DigestHash {
  size_t operator()(const Digest& d) const {
    size_t h;
    std::memcpy(&h, d.data(), sizeof(h));
    return h;
  }
};

int64_t NowMs() { return Clock::System()->NowMillis(); }

// Strips the "data: " prefix and the blank line of a replayed event.
std::string_view EventData(std::string_view sse) {
  if (sse.substr(0, 6) == "data: ") sse.remove_prefix(6);
  while (!sse.empty() && (sse.back() == '\n' || sse.back() == '\r')) {
    sse.remove_suffix(1);
  }
  return sse;
}

// Replays a stored body to a stream handler. False if the handler cancelled
// or the body could not be replayed.
bool Replay(const std::string& body, const StreamHandler& on_chunk) {
  Result<std::vector<std::string>> events = ReplayAsSse(body);
  if (!events.ok()) return false;
  for (const std::string& e : *events) {
    if (!on_chunk(EventData(e))) return false;
  }
  return true;
}

class CachedClientImpl final : public CachedClient {
 public:
  CachedClientImpl(std::shared_ptr<Cache> cache, std::shared_ptr<Client> client,
                   CachedClientOptions options)
      : cache_(std::move(cache)),
        client_(std::move(client)),
        options_(std::move(options)),
        keys_(options_.key_options) {
    // Seed the drift detector with what the store remembers.
    if (auto s = cache_->GetStats(); s.ok()) {
      for (const ModelStats& m : s->models) {
        if (!m.last_resolved_model.empty()) {
          resolved_[m.model] = m.last_resolved_model;
        }
      }
    }
  }

  void Complete(CachedRequest request, StreamHandler on_chunk,
                Callback done) override {
    // A copy, so that the caller hears of a failure even after `done` was
    // moved along (only allocation failures throw here).
    Callback fallback = done;
    try {
      CompleteImpl(std::move(request), std::move(on_chunk), std::move(done));
    } catch (const std::exception& e) {
      Log(std::string("cached completion failed: ") + e.what());
      if (fallback) fallback(InternalError(e.what()));
    }
  }

  CachedClientStats stats() const override {
    CachedClientStats s;
    s.hits = hits_.load();
    s.misses = misses_.load();
    s.bypasses = bypasses_.load();
    s.upstream_calls = upstream_calls_.load();
    s.flight_joins = flight_joins_.load();
    s.store_errors = store_errors_.load();
    s.stored = stored_.load();
    s.not_stored = not_stored_.load();
    s.model_drifts = model_drifts_.load();
    s.prompt_cache_read_tokens = prompt_cache_read_tokens_.load();
    s.prompt_cache_write_tokens = prompt_cache_write_tokens_.load();
    s.prompt_cache_savings_nanousd = prompt_cache_savings_nanousd_.load();
    s.priced_responses = priced_responses_.load();
    return s;
  }

  Cache& cache() override { return *cache_; }
  boost::asio::any_io_executor client_executor() const override {
    return client_->executor();
  }

 private:
  struct Waiter {
    CachedRequest request;   // to try again if the flight ends without result
    std::string ns;          // owned copy of request.ns
    StreamHandler on_chunk;  // null: not streaming
    Callback done;
  };
  struct Flight {
    std::vector<Waiter> waiters;
  };

  void CompleteImpl(CachedRequest request, StreamHandler on_chunk,
                    Callback done) {
    RequestInfo info;
    const std::string_view ns =
        request.ns.empty() ? std::string_view(options_.default_namespace)
                           : request.ns;
    Result<RequestKey> key =
        keys_.Compute(request.body, KeyScope{ns, request.scope}, &info);
    if (!key.ok()) {
      done(key.status());
      return;
    }
    const bool streaming = info.stream && on_chunk != nullptr;
    if (!streaming) on_chunk = nullptr;
    const Decision decision = Decide(info, options_.mode);
    if (!decision.cache) {
      cache_->RecordBypass(decision.reason);
      bypasses_.fetch_add(1);
      CallUpstream(std::move(request), *key, CacheResult::kBypass,
                   decision.reason, std::move(on_chunk), std::move(done),
                   /*flight=*/false);
      return;
    }

    bool store_ok = true;
    if (!request.skip_lookup && !request.looked_up &&
        TryServeHit(*key, request, on_chunk, done, true, &store_ok)) {
      return;
    }

    // Single flight: join an identical in-flight miss, or lead one.
    {
      std::lock_guard<std::mutex> lock(flights_mu_);
      auto it = flights_.find(key->digest);
      if (it != flights_.end()) {
        Waiter w;
        w.ns = std::string(request.ns);
        w.request = std::move(request);
        w.request.ns = {};
        w.on_chunk = std::move(on_chunk);
        w.done = std::move(done);
        it->second->waiters.push_back(std::move(w));
        flight_joins_.fetch_add(1);
        return;
      }
      flights_.emplace(key->digest, std::make_shared<Flight>());
    }
    // A flight that ended between our lookup and our registration has
    // stored its result: look again before paying for another call.
    if (!request.skip_lookup && store_ok) {
      std::optional<CachedResponse> hit;
      if (TryServeHit(*key, request, on_chunk, done, false, &store_ok, &hit)) {
        const Result<CachedResponse> shared =
            hit ? Result<CachedResponse>(std::move(*hit))
                : Result<CachedResponse>(
                      UnavailableError("flight ended without a result"));
        FinishFlight(key->digest, &shared);
        return;
      }
    }
    misses_.fetch_add(1);
    CallUpstream(std::move(request), *key, CacheResult::kMiss,
                 BypassReason::kNone, std::move(on_chunk), std::move(done),
                 /*flight=*/true);
  }

  // Serves a hit; false on a miss or a store failure (fail open, and
  // *store_ok becomes false). `record` counts the lookup in the statistics.
  // With `copy` set, a hit is also copied there (for waiters of a flight).
  bool TryServeHit(const RequestKey& key, const CachedRequest& request,
                   const StreamHandler& on_chunk, const Callback& done,
                   bool record, bool* store_ok,
                   std::optional<CachedResponse>* copy = nullptr) {
    LookupOptions lo;
    lo.max_age_ms = request.max_age_ms;
    lo.record_stats = record;
    Result<LookupResult> r = cache_->Lookup(key, lo);
    if (!r.ok()) {
      StoreFailure("lookup", r.status());
      *store_ok = false;
      return false;
    }
    if (!r->hit()) return false;
    // A stream needs the entry replayable as events (an imported or foreign
    // entry may not be): otherwise it is a miss and goes upstream.
    Result<std::vector<std::string>> events = std::vector<std::string>();
    if (on_chunk) {
      events = ReplayAsSse(r->entry->body);
      if (!events.ok()) {
        Log("entry " + key.Hex() + " cannot be replayed as a stream (" +
            std::string(events.status().message()) + "); asking upstream");
        return false;
      }
    }
    hits_.fetch_add(1);
    CachedResponse out;
    out.result = CacheResult::kHit;
    out.key_hex = key.Hex();
    out.status = 200;
    out.body = r->entry->body;
    out.usage = r->entry->meta.usage;
    out.age_ms = std::max<int64_t>(0, NowMs() - r->entry->meta.created_ms);
    if (auto parsed = ParseCompletion(out.body); parsed.ok()) {
      out.parsed = std::move(*parsed);
    }
    if (copy != nullptr) *copy = out;
    if (on_chunk) {
      out.streamed = true;
      for (const std::string& e : *events) {
        if (!on_chunk(EventData(e))) {
          done(CancelledError("stream cancelled by the caller"));
          return true;
        }
      }
    }
    done(std::move(out));
    return true;
  }

  void CallUpstream(CachedRequest request, const RequestKey& key,
                    CacheResult kind, BypassReason reason,
                    StreamHandler on_chunk, Callback done, bool flight) {
    upstream_calls_.fetch_add(1);
    Request up;
    up.body = request.body;
    up.api_key = std::move(request.api_key);
    up.headers = std::move(request.headers);
    up.stream = on_chunk != nullptr;
    auto acc = std::make_shared<StreamAccumulator>();
    auto acc_status = std::make_shared<Status>();
    ChunkHandler chunks;
    auto self = std::static_pointer_cast<CachedClientImpl>(shared_from_this());
    if (on_chunk) {
      // When the leader's own client goes away, the stream goes on while
      // others wait for it (they would all fail otherwise); with nobody
      // waiting the upstream call is cancelled.
      auto caller_gone = std::make_shared<bool>(false);
      chunks = [acc, acc_status, on_chunk, caller_gone, flight, self,
                digest = key.digest](std::string_view data) {
        if (acc_status->ok()) *acc_status = acc->Add(data);
        if (*caller_gone) return true;
        if (on_chunk(data)) return true;
        *caller_gone = true;
        return flight && self->HasWaiters(digest);
      };
    }
    client_->Send(std::move(up), std::move(chunks),
                  [self, key, kind, reason, acc, acc_status, flight,
                   no_store = request.no_store, ttl = request.ttl_ms,
                   ns = std::string(
                       request.ns.empty()
                           ? std::string_view(self->options_.default_namespace)
                           : request.ns),
                   done = std::move(done)](Result<Response> r) mutable {
                    Result<CachedResponse> out =
                        self->Finish(std::move(r), key, kind, reason, *acc,
                                     *acc_status, no_store, ttl, ns);
                    if (flight) {
                      self->FinishFlight(key.digest, &out);
                    }
                    done(std::move(out));
                  });
  }

  Result<CachedResponse> Finish(Result<Response> r, const RequestKey& key,
                                CacheResult kind, BypassReason reason,
                                const StreamAccumulator& acc,
                                const Status& acc_status, bool no_store,
                                std::optional<int64_t> ttl,
                                const std::string& ns) {
    if (!r.ok()) return r.status();
    Response& resp = *r;
    CachedResponse out;
    out.result = kind;
    out.bypass_reason = reason;
    out.key_hex = key.Hex();
    out.status = resp.status;
    out.headers = std::move(resp.headers);
    out.streamed = resp.streamed;
    if (resp.streamed) {
      out.body = acc.ToCompletionJson();
      out.parsed = acc.Result();
      if (acc.error()) out.parsed.error = acc.error();
    } else {
      out.body = std::move(resp.body);
      if (auto parsed = ParseCompletion(out.body); parsed.ok()) {
        out.parsed = std::move(*parsed);
      }
    }
    if (out.parsed.usage) {
      out.usage = ToEngineUsage(*out.parsed.usage);
      AccountPromptCache(key.model, out.parsed);
    }
    if (kind != CacheResult::kMiss) return out;

    std::string why = WhyNotCacheable(out.status, out.parsed);
    if (why.empty() && resp.streamed) {
      if (!acc_status.ok()) {
        why = "stream was not valid JSON events";
      } else if (!resp.stream_complete || !acc.done()) {
        why = "stream ended before [DONE]";
      }
    }
    if (why.empty() && no_store) why = "no-store requested";
    if (!why.empty()) {
      out.not_stored_reason = std::move(why);
      not_stored_.fetch_add(1);
      return out;
    }
    InsertOptions io;
    io.ns = ns;
    io.ttl_ms = ttl ? ttl : options_.ttl_ms;
    io.usage = out.usage;
    io.resolved_model = out.parsed.model;
    io.flags = static_cast<uint8_t>(
        (resp.streamed ? kEntryFlagFromStream : 0) |
        (out.parsed.tool_calls.empty() ? 0 : kEntryFlagToolCalls));
    CheckDrift(key.base_model, out.parsed.model);
    Status s = cache_->Insert(key, out.body, io);
    if (s.ok()) {
      out.stored = true;
      stored_.fetch_add(1);
    } else {
      StoreFailure("insert", s);
      out.not_stored_reason = "store failed";
      not_stored_.fetch_add(1);
    }
    return out;
  }

  bool HasWaiters(const Digest& digest) {
    std::lock_guard<std::mutex> lock(flights_mu_);
    auto it = flights_.find(digest);
    return it != flights_.end() && !it->second->waiters.empty();
  }

  // Ends a flight: removes it, then hands the leader's outcome to every
  // waiter. When the leader was cancelled by its own caller (or there is no
  // outcome), each waiter starts over on its own instead of failing.
  void FinishFlight(const Digest& digest, const Result<CachedResponse>* out) {
    std::shared_ptr<Flight> flight;
    {
      std::lock_guard<std::mutex> lock(flights_mu_);
      auto it = flights_.find(digest);
      if (it == flights_.end()) return;
      flight = std::move(it->second);
      flights_.erase(it);
    }
    for (Waiter& w : flight->waiters) {
      if (out == nullptr ||
          (!out->ok() && out->status().code() == StatusCode::kCancelled)) {
        auto self =
            std::static_pointer_cast<CachedClientImpl>(shared_from_this());
        boost::asio::post(
            client_->executor(), [self, w = std::move(w)]() mutable {
              w.request.ns = w.ns;
              self->Complete(std::move(w.request), std::move(w.on_chunk),
                             std::move(w.done));
            });
        continue;
      }
      if (!out->ok()) {
        w.done(out->status());
        continue;
      }
      CachedResponse copy = **out;
      copy.joined_flight = true;
      if (w.on_chunk) {
        copy.streamed = true;
        if (copy.status == 200 && !Replay(copy.body, w.on_chunk)) {
          w.done(CancelledError("stream cancelled by the caller"));
          continue;
        }
      }
      w.done(std::move(copy));
    }
  }

  // Provider-side prompt caching of one upstream response.
  void AccountPromptCache(const std::string& requested_model,
                          const ParsedCompletion& c) {
    const CompletionUsage& u = *c.usage;
    prompt_cache_read_tokens_.fetch_add(u.cached_tokens);
    prompt_cache_write_tokens_.fetch_add(u.cache_write_tokens);
    if (!options_.pricing) return;
    Result<CostBreakdown> cost = ComputeCost(
        *options_.pricing, c.model.empty() ? requested_model : c.model, u);
    if (!cost.ok() && !c.model.empty()) {
      cost = ComputeCost(*options_.pricing, requested_model, u);
    }
    if (!cost.ok()) return;
    priced_responses_.fetch_add(1);
    prompt_cache_savings_nanousd_.fetch_add(
        static_cast<int64_t>(std::llround(cost->prompt_cache_savings * 1e9)));
  }

  void CheckDrift(const std::string& base_model, const std::string& resolved) {
    if (resolved.empty()) return;
    std::string previous;
    {
      std::lock_guard<std::mutex> lock(resolved_mu_);
      std::string& last = resolved_[base_model];
      if (last == resolved) return;
      previous = last;
      last = resolved;
    }
    if (previous.empty()) return;  // first sighting
    model_drifts_.fetch_add(1);
    Log("model drift: " + base_model + " now resolves to " + resolved +
        " (was " + previous + ")" +
        (options_.flush_on_model_drift ? "; flushing its entries" : ""));
    if (options_.flush_on_model_drift) {
      if (auto f = cache_->FlushModel(base_model); !f.ok()) {
        StoreFailure("flush on drift", f.status());
      }
    }
  }

  void StoreFailure(std::string_view what, const Status& s) {
    store_errors_.fetch_add(1);
    const int64_t now = NowMs();
    int64_t last = last_store_log_ms_.load();
    if (now - last < options_.store_error_log_interval_ms && last != 0) return;
    if (!last_store_log_ms_.compare_exchange_strong(last, now)) return;
    Log("cache store " + std::string(what) +
        " failed (request served "
        "upstream; further failures logged at most every " +
        std::to_string(options_.store_error_log_interval_ms / 1000) +
        " s): " + s.ToString());
  }

  void Log(const std::string& line) {
    if (options_.log) {
      options_.log(line);
    } else {
      std::cerr << "llmcache: " << line << "\n";
    }
  }

  const std::shared_ptr<Cache> cache_;
  const std::shared_ptr<Client> client_;
  const CachedClientOptions options_;
  const KeyBuilder keys_;

  std::mutex flights_mu_;
  std::unordered_map<Digest, std::shared_ptr<Flight>, DigestHash> flights_;
  std::mutex resolved_mu_;
  std::unordered_map<std::string, std::string> resolved_;

  std::atomic<uint64_t> hits_{0}, misses_{0}, bypasses_{0}, upstream_calls_{0},
      flight_joins_{0}, store_errors_{0}, stored_{0}, not_stored_{0},
      model_drifts_{0}, prompt_cache_read_tokens_{0},
      prompt_cache_write_tokens_{0}, priced_responses_{0};
  std::atomic<int64_t> prompt_cache_savings_nanousd_{0};
  std::atomic<int64_t> last_store_log_ms_{0};
};

}  // namespace

std::string_view CacheResultName(CacheResult r) {
  switch (r) {
    case CacheResult::kHit:
      return "HIT";
    case CacheResult::kMiss:
      return "MISS";
    case CacheResult::kBypass:
      return "BYPASS";
  }
  return "MISS";
}

std::shared_ptr<CachedClient> CachedClient::Create(
    std::shared_ptr<Cache> cache, std::shared_ptr<Client> client,
    CachedClientOptions options) {
  return std::make_shared<CachedClientImpl>(std::move(cache), std::move(client),
                                            std::move(options));
}

void FetchPricing(Client& client,
                  std::function<void(Result<PricingTable>)> done) {
  Request r;
  r.method = "GET";
  r.path = "/models";
  client.Send(std::move(r), nullptr,
              [done = std::move(done)](Result<Response> resp) {
                if (!resp.ok()) {
                  done(resp.status());
                } else if (resp->status != 200) {
                  done(StatusFromUpstream(resp->status, resp->body));
                } else {
                  done(PricingTable::FromModelsJson(resp->body));
                }
              });
}

Result<std::string> CachedClient::BuildChatBody(std::string_view model,
                                                std::string_view messages_json,
                                                std::string_view params_json) {
  try {
    boost::system::error_code ec;
    json::value messages = json::parse(messages_json, ec);
    if (ec || !messages.is_array()) {
      return InvalidArgumentError("messages must be a JSON array");
    }
    json::value params = params_json.empty() ? json::value(json::object())
                                             : json::parse(params_json, ec);
    if (ec || !params.is_object()) {
      return InvalidArgumentError("params must be a JSON object");
    }
    json::object body = std::move(params.as_object());
    body["model"] = json::string(model);
    body["messages"] = std::move(messages);
    if (!body.contains("temperature")) body["temperature"] = 0;
    if (!body.contains("max_tokens")) body["max_tokens"] = 1024;
    return json::serialize(body);
  } catch (const std::exception& e) {
    return InvalidArgumentError(std::string("cannot build request: ") +
                                e.what());
  }
}

}  // namespace llmcache::net
