// CachedClient implementation: the request pipeline (prepare, probe, single
// flight, upstream, store) and its counters. No Beast here: upstream calls go
// through Client::Send.

#include "llmcache/net/cached_client.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "cached_client_impl.h"
#include "embedding_json.h"
#include "llmcache/clock.h"
#include "llmcache/net/import_line.h"
#include "llmcache/net/json_util.h"
#include "llmcache/net/sse.h"
#include "pipeline_counters.h"

namespace llmcache::net {
namespace {

namespace json = boost::json;

}  // namespace

namespace internal {

bool Deliver(const std::vector<std::string>& events,
             const StreamHandler& on_chunk) {
  for (const std::string& e : events) {
    if (!on_chunk(FrameData(e))) return false;
  }
  return true;
}

CachedClientImpl::CachedClientImpl(std::shared_ptr<Cache> cache,
                                   std::shared_ptr<Client> client,
                                   CachedClientOptions options)
    : cache_(std::move(cache)),
      client_(std::move(client)),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::System()),
      keys_(options_.key_options),
      shared_(options_.shared),
      pricing_(options_.pricing) {
  if (shared_) {
    // A flush on another instance drops the model from the local tiers
    // too (the shared tier hides its entries by generation).
    shared_->SetFlushListener(
        [cache = cache_, log = options_.log](std::string_view model) {
          Status s = model.empty() ? cache->FlushAll()
                                   : cache->FlushModel(model).status();
          std::string line =
              "shared tier: another instance flushed " +
              (model.empty() ? std::string("the whole cache")
                             : "model " + std::string(model)) +
              "; local tiers flushed" +
              (s.ok() ? std::string() : " (failed: " + s.ToString() + ")");
          if (log) {
            log(line);
          } else {
            std::cerr << "llmcache: " << line << "\n";
          }
        });
  }
  // Seed the drift detector with what the store remembers.
  if (auto s = cache_->GetStats(); s.ok()) {
    for (const ModelStats& m : s->models) {
      if (!m.last_resolved_model.empty() || m.drift_events != 0) {
        DriftState& d = resolved_[m.model];
        d.resolved = m.last_resolved_model;
        d.events = m.drift_events;
      }
    }
  }
}

Result<PreparedRequest> CachedClientImpl::Prepare(CachedRequest request) const {
  if (request.ttl_ms && *request.ttl_ms < 0) {
    return InvalidArgumentError("ttl_ms must be >= 0");
  }
  try {
    if (request.ns.empty()) request.ns = options_.default_namespace;
    RequestInfo info;
    Result<RequestKey> key =
        keys_.Compute(request.body, KeyScope{request.ns, request.scope},
                      request.endpoint, &info);
    counters_.Add(PipelineCounters::kKeysComputed);
    if (!key.ok()) return key.status();
    if (key->model.empty()) {
      return InvalidArgumentError("request member \"model\" is empty");
    }
    // ":free" would be stored and counted as a model with no name.
    if (key->base_model.empty()) {
      return InvalidArgumentError("request member \"model\" (\"" + key->model +
                                  "\") names no model before its ':' variant");
    }
    // As import refuses them: an entry stored under such a name could not
    // be exported and imported back (and no provider names a model so).
    if (HasControlCharacters(key->model) || HasControlCharacters(request.ns)) {
      return InvalidArgumentError(
          "request member \"model\" or the namespace contains control "
          "characters");
    }
    if (info.input_is_batch && info.input_count > embedding_json::kMaxInputs) {
      return InvalidArgumentError("embeddings request has " +
                                  std::to_string(info.input_count) +
                                  " inputs, over the limit of " +
                                  std::to_string(embedding_json::kMaxInputs));
    }
    if (info.message_count == 0 &&
        (request.endpoint == Endpoint::kChatCompletions ||
         request.endpoint == Endpoint::kMessages)) {
      return InvalidArgumentError("request member \"messages\" is empty");
    }
    const Decision decision = Decide(info, options_.mode);
    return MakePrepared(std::move(request), std::move(*key), info, decision);
  } catch (const std::exception& e) {
    return InternalError(std::string("cannot prepare the request: ") +
                         e.what());
  }
}

void CachedClientImpl::Complete(PreparedRequest request, StreamHandler on_chunk,
                                Callback done) {
  // A copy, so that the caller hears of a failure even after `done` was
  // moved along (only allocation failures throw here).
  Callback fallback = done;
  try {
    CompletePrepared(std::move(request), std::move(on_chunk), std::move(done));
  } catch (const std::exception& e) {
    Log(std::string("cached completion failed: ") + e.what());
    if (fallback) fallback(InternalError(e.what()));
  }
}

void CachedClientImpl::Complete(CachedRequest request, StreamHandler on_chunk,
                                Callback done) {
  Result<PreparedRequest> p = Prepare(std::move(request));
  if (!p.ok()) {
    if (done) done(p.status());
    return;
  }
  Complete(std::move(*p), std::move(on_chunk), std::move(done));
}

std::optional<CacheHit> CachedClientImpl::Probe(PreparedRequest& p,
                                                bool count) {
  if (p.probed() || p.batch()) return std::nullopt;
  bool store_failed = false;
  std::optional<CacheHit> hit = Lookup(
      p, /*record=*/count, /*replay=*/count && p.streaming(), &store_failed);
  if (!count) return hit;
  SetProbeState(p, hit            ? ProbeState::kHit
                   : store_failed ? ProbeState::kStoreFailed
                                  : ProbeState::kLookedUp);
  if (hit) CountHit(hit->entry->meta.usage, p.key().base_model, p.endpoint());
  return hit;
}

// Looks `p` up (a counted lookup when `record`); a stream request
// (`replay`) needs its entry replayable as events. Counts nothing else.
// *store_failed is set when the store failed (fail open).
std::optional<CacheHit> CachedClientImpl::Lookup(const PreparedRequest& p,
                                                 bool record, bool replay,
                                                 bool* store_failed) {
  if (!p.decision().cache || p.request().skip_lookup) return std::nullopt;
  LookupOptions lo;
  lo.max_age_ms = p.request().max_age_ms;
  lo.record_stats = record;
  Result<LookupResult> r = cache_->Lookup(p.key(), lo);
  if (!r.ok()) {
    StoreFailure("lookup", r.status());
    *store_failed = true;
    return std::nullopt;
  }
  if (!r->hit()) return std::nullopt;
  CacheHit hit;
  hit.age_ms =
      std::max<int64_t>(0, clock_->NowMillis() - r->entry->meta.created_ms);
  if (replay) {
    // A stream needs the entry replayable as events (an imported or
    // foreign entry may not be): otherwise it is a miss and goes upstream.
    Result<std::vector<std::string>> events =
        ReplayEvents(p.endpoint(), r->entry->body);
    if (!events.ok()) {
      Log("entry " + p.key_hex() + " cannot be replayed as a stream (" +
          std::string(events.status().message()) + "); asking upstream");
      return std::nullopt;
    }
    hit.events = std::move(*events);
  }
  hit.entry = p.endpoint() == Endpoint::kEmbeddings
                  ? embedding_json::HitAnswer(std::move(r->entry))
                  : std::move(r->entry);
  return hit;
}

void CachedClientImpl::CountHit(const Usage& u, const std::string& base_model,
                                Endpoint endpoint) {
  counters_.Add(PipelineCounters::kHits);
  counters_.AddEndpoint(endpoint, PipelineCounters::kOutcomeHit);
  counters_.Add(PipelineCounters::kTokensSaved,
                u.prompt_tokens + u.completion_tokens);
  counters_.AddSigned(PipelineCounters::kCostSavedNanousd, u.cost_nanousd);
  if (shared_) shared_->Record(base_model, SharedOutcome::kHit, u);
}

// Counts what a request is answered with, once, when it is answered: a
// hit, or else (cacheable requests, `outcome`) a miss; and an upstream
// failure (a transport error or a non-200 answer).
CachedClient::Callback CachedClientImpl::Counted(Callback done, bool outcome,
                                                 const std::string& model,
                                                 Endpoint endpoint) {
  auto self = std::static_pointer_cast<CachedClientImpl>(shared_from_this());
  return [self, outcome, endpoint,
          model = self->shared_ ? model : std::string(),
          done = std::move(done)](Result<CachedResponse> r) {
    const bool hit = r.ok() && r->result == CacheResult::kHit;
    if (hit) {
      self->CountHit(r->usage, model, endpoint);
    } else {
      if (outcome) {
        self->counters_.Add(PipelineCounters::kMisses);
        self->counters_.AddEndpoint(endpoint, PipelineCounters::kOutcomeMiss);
        if (self->shared_) {
          self->shared_->Record(model, SharedOutcome::kMiss, Usage{});
        }
      }
      // A caller that went away (a closed connection mid-stream) is not the
      // upstream's failure.
      if (r.ok() ? r->status != 200
                 : r.status().code() != StatusCode::kCancelled &&
                       !IsNotCached(r.status())) {
        self->counters_.Add(PipelineCounters::kUpstreamErrors);
      }
    }
    done(std::move(r));
  };
}

void CachedClientImpl::CompletePrepared(PreparedRequest p,
                                        StreamHandler on_chunk, Callback done) {
  const bool streaming = p.streaming() && on_chunk != nullptr;
  if (!streaming) on_chunk = nullptr;
  const Decision decision = p.decision();
  if (!decision.cache) {
    cache_->RecordBypass(decision.reason);
    counters_.AddBypass(decision.reason);
    counters_.AddEndpoint(p.endpoint(), PipelineCounters::kOutcomeBypass);
    if (shared_) {
      shared_->Record(p.key().base_model, SharedOutcome::kBypass, Usage{});
    }
    Callback counted =
        Counted(std::move(done), false, p.key().base_model, p.endpoint());
    if (p.request().only_if_cached) {
      return counted(
          NotCachedError("not cacheable (" +
                         std::string(BypassReasonName(decision.reason)) + ")"));
    }
    CallUpstream(std::move(p), CacheResult::kBypass, decision.reason,
                 std::move(on_chunk), std::move(counted),
                 /*flight=*/false);
    return;
  }
  // A hit that Probe found (and counted): answer from the store again
  // without counting it twice.
  if (p.batch()) return CompleteBatch(std::move(p), std::move(done));
  const bool counted = GetProbeState(p) == ProbeState::kHit;
  if (!counted) {
    done = Counted(std::move(done), true, p.key().base_model, p.endpoint());
  }
  if (!p.probed()) {
    bool store_failed = false;
    std::optional<CacheHit> hit =
        Lookup(p, /*record=*/true, streaming, &store_failed);
    SetProbeState(
        p, store_failed ? ProbeState::kStoreFailed : ProbeState::kLookedUp);
    if (hit) {
      DeliverHit(HitResponse(p, *hit), hit->events, on_chunk, done,
                 p.request().on_stream_hit);
      return;
    }
  }
  JoinOrLead(std::move(p), std::move(on_chunk), std::move(done),
             /*rejoin=*/false);
}

// Single flight: joins an identical in-flight miss, or leads one
// (`rejoin`: a waiter whose flight ended without a result; `retried`: one
// that already started over after a flight without a whole answer). A
// no-store request leads none: what joined it would go unstored.
void CachedClientImpl::JoinOrLead(PreparedRequest p, StreamHandler on_chunk,
                                  Callback done, bool rejoin, bool retried) {
  if (p.request().only_if_cached) {
    // Never in a flight: its waiters would hear "not cached" too.
    if (shared_ && !p.request().skip_lookup) {
      return SharedLookup(std::make_shared<SharedStep>(
          SharedStep{std::move(p), std::move(on_chunk), std::move(done), 0,
                     /*flight=*/false}));
    }
    return done(NotCachedError(p.request().skip_lookup
                                   ? "Cache-Control: no-cache skips the cache"
                                   : "not cached"));
  }
  const Digest digest = p.key().digest;
  bool leads = !p.request().no_store;
  bool joined = false;
  std::shared_ptr<LiveWaiter> catch_up;  // the events so far, to hand now
  // Calls the request's on_wait, with flights_mu_ held: its notices then
  // come in the order of its joins and restarts (a restart follows the end
  // of the flight it joined, which takes the lock).
  const auto tell_waits = [this](const PreparedRequest& r, bool waits) {
    if (!r.request().on_wait) return;
    try {
      r.request().on_wait(waits);
    } catch (const std::exception& e) {  // a notice: the flight goes on
      Log(std::string("cached completion: on_wait failed: ") + e.what());
    }
  };
  {
    std::lock_guard<std::mutex> lock(flights_mu_);
    auto it = flights_.find(digest);
    // Started over: joins only a flight of its own API key (another key's
    // may fail for that key again); with another key's in flight it makes
    // a call of its own, with none it leads one (unless no-store). A
    // flight being cancelled is joined by no one: a call of its own too.
    if (it != flights_.end() && !it->second->closing &&
        (!rejoin || it->second->api_key == p.request().api_key)) {
      if (!rejoin) counters_.Add(PipelineCounters::kFlightJoins);
      Flight& f = *it->second;
      std::shared_ptr<LiveWaiter> live;
      if (on_chunk && f.kept) {  // the events so far; the rest as they come
        live = std::make_shared<LiveWaiter>();
        live->on_chunk = on_chunk;
        live->queue = f.events;
        if (!live->queue.empty()) catch_up = live;
      }
      tell_waits(p, true);
      f.waiters.push_back(Waiter{std::move(p), std::move(on_chunk),
                                 std::move(done), std::move(live), retried});
      joined = true;
    } else {
      if (rejoin) tell_waits(p, false);  // it waited until now
      leads = leads && it == flights_.end();
      if (leads) {
        auto flight = std::make_shared<Flight>();
        flight->api_key = p.request().api_key;
        flights_.emplace(digest, std::move(flight));
      }
    }
  }
  if (joined) {
    if (catch_up) {
      // Handed now, not with the leader's next event (a reasoning model
      // may pause for long between two), on the client's executor, where
      // the leader's events are handed too.
      auto self =
          std::static_pointer_cast<CachedClientImpl>(shared_from_this());
      boost::asio::post(client_->executor(),
                        [self, catch_up] { self->HandQueued(*catch_up); });
    }
    return;
  }
  // From here the flight must end whatever happens, or every identical
  // request after it would wait for ever.
  try {
    // A flight that ended between our lookup and our registration has
    // stored its result: look again (uncounted) before paying for
    // another call.
    if (!p.request().skip_lookup &&
        GetProbeState(p) != ProbeState::kStoreFailed) {
      bool store_failed = false;
      std::optional<CacheHit> hit =
          Lookup(p, /*record=*/false, on_chunk != nullptr, &store_failed);
      if (hit) {
        const Result<CachedResponse> shared = HitResponse(p, *hit);
        if (leads) FinishFlight(digest, &shared);
        DeliverHit(*shared, hit->events, on_chunk, done,
                   p.request().on_stream_hit);
        return;
      }
    }
    if (shared_ && !p.request().skip_lookup) {
      SharedLookup(std::make_shared<SharedStep>(SharedStep{
          std::move(p), std::move(on_chunk), std::move(done), 0, leads}));
      return;
    }
    CallUpstream(std::move(p), CacheResult::kMiss, BypassReason::kNone,
                 std::move(on_chunk), std::move(done), /*flight=*/leads);
  } catch (const std::exception& e) {
    const Result<CachedResponse> failed =
        InternalError(std::string("cached completion failed: ") + e.what());
    if (leads) FinishFlight(digest, &failed);
    throw;
  }
}

// Hands a hit to its caller: its events to a stream handler (Lookup made
// them, since it replays whenever there is a handler), then the response
// whole.
void CachedClientImpl::DeliverHit(CachedResponse out,
                                  const std::vector<std::string>& events,
                                  const StreamHandler& on_chunk,
                                  const Callback& done,
                                  const std::function<void()>& on_stream_hit) {
  if (on_chunk) {
    if (on_stream_hit) on_stream_hit();
    out.streamed = true;
    if (!Deliver(events, on_chunk)) {
      done(CancelledError("stream cancelled by the caller"));
      return;
    }
  }
  done(std::move(out));
}

// The flight leader asks the shared tier (one round trip), then takes the
// cross-instance lead for a miss. Its continuations run on the client's
// executor; the flight ends in every path.
void CachedClientImpl::SharedLookup(std::shared_ptr<SharedStep> step) {
  step->flush_count = shared_->flush_count();
  shared_->Get(
      step->request.key(),
      OnClientExecutor<Result<std::shared_ptr<const Entry>>>(
          [self = self(), step](Result<std::shared_ptr<const Entry>> r) {
            self->Guarded(step, [&] {
              if (!r.ok()) {
                self->counters_.Add(PipelineCounters::kSharedErrors);
              } else if (*r && self->ServeShared(*step, *r)) {
                return;
              }
              if (step->request.request().only_if_cached) {
                return step->done(NotCachedError("not cached"));
              }
              self->SharedLead(step);
            });
          }));
}

void CachedClientImpl::SharedLead(std::shared_ptr<SharedStep> step) {
  // A request that will not store its answer must not make the fleet
  // wait for it.
  if (!options_.shared_single_flight || step->request.request().no_store) {
    return CallUpstream(std::move(step->request), CacheResult::kMiss,
                        BypassReason::kNone, std::move(step->on_chunk),
                        std::move(step->done), /*flight=*/step->flight);
  }
  shared_->AcquireLead(
      step->request.key(),
      OnClientExecutor<SharedTier::Lead>(
          [self = self(), step](SharedTier::Lead lead) {
            self->Guarded(step, [&] {
              std::string token;
              switch (lead.outcome) {
                case SharedTier::LeadOutcome::kLeader:
                  self->counters_.Add(PipelineCounters::kSharedLeads);
                  token = std::move(lead.token);
                  break;
                case SharedTier::LeadOutcome::kHit:
                  if (lead.entry && self->ServeShared(*step, lead.entry)) {
                    self->counters_.Add(PipelineCounters::kSharedLeadHits);
                    return;
                  }
                  break;
                case SharedTier::LeadOutcome::kGoAlone:
                  self->counters_.Add(PipelineCounters::kSharedGoAlone);
                  break;
              }
              self->CallUpstream(std::move(step->request), CacheResult::kMiss,
                                 BypassReason::kNone, std::move(step->on_chunk),
                                 std::move(step->done),
                                 /*flight=*/step->flight, std::move(token));
            });
          }));
}

// Runs a shared-tier continuation; if it throws (allocation), the flight
// ends with the error and the leader hears of it.
template <typename Fn>
void CachedClientImpl::Guarded(const std::shared_ptr<SharedStep>& step,
                               Fn&& fn) {
  const Digest digest = step->request.key().digest;
  Callback fallback = step->done;
  try {
    fn();
  } catch (const std::exception& e) {
    const Result<CachedResponse> failed =
        InternalError(std::string("cached completion failed: ") + e.what());
    if (step->flight) FinishFlight(digest, &failed);
    Log(std::string("cached completion failed: ") + e.what());
    if (fallback) fallback(InternalError(e.what()));
  }
}

// Answers a flight leader (and its waiters) with an entry from the shared
// tier, after filling the local tiers with it. False when the entry does
// not suit the request (too old for max-age, or a stream request whose
// entry cannot be replayed): the caller goes on to upstream.
bool CachedClientImpl::ServeShared(SharedStep& step,
                                   const std::shared_ptr<const Entry>& e) {
  const PreparedRequest& p = step.request;
  const int64_t now = clock_->NowMillis();
  if (e->meta.ExpiredAt(now)) return false;
  if (p.request().max_age_ms >= 0 &&
      now - e->meta.created_ms > p.request().max_age_ms) {
    return false;
  }
  CacheHit hit;
  hit.age_ms = std::max<int64_t>(0, now - e->meta.created_ms);
  if (step.on_chunk) {
    Result<std::vector<std::string>> events =
        ReplayEvents(p.endpoint(), e->body);
    if (!events.ok()) return false;
    hit.events = std::move(*events);
  }
  hit.entry =
      p.endpoint() == Endpoint::kEmbeddings ? embedding_json::HitAnswer(e) : e;
  FillFromShared(p.key(), e, step.flush_count);
  counters_.Add(PipelineCounters::kSharedHits);
  const Result<CachedResponse> shared = HitResponse(p, hit);
  if (step.flight) FinishFlight(p.key().digest, &shared);
  DeliverHit(*shared, hit.events, step.on_chunk, step.done,
             p.request().on_stream_hit);
  return true;
}

void CachedClientImpl::FillFromShared(const RequestKey& key,
                                      std::shared_ptr<const Entry> e,
                                      uint64_t flush_count) {
  // Fill the local tiers with the entry's remaining TTL, after the answer
  // (posted: the caller hears first; a store write may wait behind an
  // admin purge).
  boost::asio::post(client_->executor(), [self = self(), key, e, flush_count] {
    // A flush since the entry was read: the local tiers were (or are about
    // to be) flushed of it. The tier counts a flush before the local one
    // starts, so a write that lands after that local flush sees the count
    // moved once it is done, and takes the entry back (at worst a fresher
    // entry under the same key, written meanwhile, goes too: a miss).
    if (self->shared_->flush_count() != flush_count) return;
    InsertOptions io;
    io.ns = e->meta.ns;
    io.usage = e->meta.usage;
    io.resolved_model = e->meta.resolved_model;
    io.flags = e->meta.flags;
    io.created_ms = e->meta.created_ms;
    io.expires_ms = e->meta.expires_ms;
    if (io.expires_ms == 0) io.ttl_ms = 0;
    if (Status s = self->cache_->Insert(key, e->body, io); !s.ok()) {
      self->StoreFailure("fill from the shared tier", s);
      return;
    }
    if (self->shared_->flush_count() != flush_count) {
      if (Result<uint64_t> gone = self->cache_->PurgeKey(key.digest);
          !gone.ok()) {
        self->StoreFailure("taking back a fill from the shared tier",
                           gone.status());
      }
      return;
    }
    self->counters_.Add(PipelineCounters::kSharedFills);
  });
}

void CachedClientImpl::CallUpstream(PreparedRequest p, CacheResult kind,
                                    BypassReason reason, StreamHandler on_chunk,
                                    Callback done, bool flight,
                                    std::string lease_token) {
  counters_.Add(PipelineCounters::kUpstreamCalls);
  Request up;
  CachedRequest& req = MutableRequest(p);
  // Provider prompt caching: breakpoints on the body that goes upstream
  // only (keyed already; hits never get here). A body the policy cannot
  // read goes as sent.
  if (p.endpoint() == Endpoint::kChatCompletions &&
      req.prompt_cache.value_or(options_.prompt_cache) ==
          PromptCacheMode::kAuto) {
    if (Result<std::string> marked =
            ApplyAutoPromptCache(req.body, p.key().model);
        marked.ok() && *marked != req.body) {
      req.body = std::move(*marked);
      counters_.Add(PipelineCounters::kPromptCacheMarked);
    }
  }
  up.body = std::move(req.body);
  up.api_key = std::move(req.api_key);
  up.headers = std::move(req.headers);
  up.path = std::string(UpstreamPath(p.endpoint()));
  up.stream = on_chunk != nullptr;
  std::shared_ptr<StreamTally> tally;
  if (on_chunk) {
    if (std::unique_ptr<EventAccumulator> acc =
            MakeEventAccumulator(p.endpoint())) {
      tally = std::make_shared<StreamTally>(std::move(acc), p.endpoint(),
                                            options_.max_stored_stream_bytes);
    } else {
      on_chunk = nullptr;
    }
  }
  ChunkHandler chunks;
  auto self = std::static_pointer_cast<CachedClientImpl>(shared_from_this());
  if (on_chunk) {
    // When the leader's own client goes away, the stream goes on while
    // others wait for it (they would all fail otherwise); with nobody
    // waiting, or past the store limit nobody handed its events, the
    // upstream call is cancelled.
    auto caller_gone = std::make_shared<bool>(false);
    chunks = [tally, on_chunk, caller_gone, flight, self,
              digest = p.key().digest](std::string_view data) {
      tally->Add(data);
      if (flight) self->FanOut(digest, data);
      if (!*caller_gone) {
        if (on_chunk(data)) return true;
        *caller_gone = true;
      }
      return flight &&
             self->KeepsStreamForWaiters(digest, /*live_only=*/tally->over());
    };
  }
  // An answer that a flush overtakes is not stored after it (read before
  // the call: a flush from here on began after the question).
  const uint64_t flush_count =
      cache_->FlushCount(p.key().base_model, p.request().ns);
  client_->Send(std::move(up), std::move(chunks),
                [self, p = std::move(p), kind, reason, tally, flight,
                 flush_count, token = std::move(lease_token),
                 done = std::move(done)](Result<Response> r) mutable {
                  Result<CachedResponse> out = self->Finish(
                      std::move(r), p, kind, reason, tally.get(), flush_count);
                  // After the Put (same key slot, same connection, in order):
                  // waiters on other instances find the value, or see the lease
                  // gone and go upstream themselves.
                  if (!token.empty()) self->shared_->Release(p.key(), token);
                  if (flight) {
                    self->FinishFlight(p.key().digest, &out,
                                       !out.ok() && tally && tally->begun(),
                                       tally && tally->over());
                  }
                  done(std::move(out));
                });
}

Result<CachedResponse> CachedClientImpl::Finish(
    Result<Response> r, const PreparedRequest& p, CacheResult kind,
    BypassReason reason, const StreamTally* tally, uint64_t flush_count) {
  if (!r.ok()) return r.status();
  Response& resp = *r;
  const RequestKey& key = p.key();
  const Endpoint endpoint = p.endpoint();
  CachedResponse out;
  out.result = kind;
  out.bypass_reason = reason;
  out.key_hex = p.key_hex();
  out.status = resp.status;
  out.headers = std::move(resp.headers);
  out.attempts = resp.attempts;
  out.streamed = resp.streamed && tally != nullptr;
  if (out.streamed) {
    // Past max_stored_stream_bytes: no body, only the usage and error the
    // stream's last events gave (its events went to the caller as they came).
    out.body = tally->ToJson();
    out.parsed = tally->Parsed();
  } else {
    out.body = std::move(resp.body);
    auto parsed = ParseEndpointResponse(endpoint, out.body);
    if (parsed.ok()) out.parsed = std::move(*parsed);
    if (const std::string no =
            out.status == 200 && (tally != nullptr || !p.info().stream)
                ? WhyNoAnswer(  // (not a stream its caller reads raw)
                      endpoint, out.body, parsed.status(), out.parsed)
                : std::string();
        !no.empty()) {
      return UnavailableError("upstream answered 200 with " + no);
    }
  }
  if (out.parsed.usage) {
    out.usage = ToEngineUsage(*out.parsed.usage);
    AccountPromptCache(key.model, key.base_model, out.parsed, &out.usage);
  }
  // A whole stream: its last event seen ("[DONE]" for chat completions,
  // whose accumulator also needs every choice finished).
  const bool stream_whole =
      tally != nullptr && tally->Whole(resp.stream_complete);
  // Whole: a 200 that is not a stream cut short (whether or not it may be
  // stored: an answer with an error inside is whole too).
  out.complete = out.status == 200 && (!out.streamed || stream_whole);
  if (kind != CacheResult::kMiss) return out;

  std::string why =
      out.streamed && tally->over()
          ? "stream larger than the " +
                std::to_string(options_.max_stored_stream_bytes) +
                "-byte limit of what is stored (max_stored_stream_bytes)"
          : WhyNotCacheable(endpoint, out.status, out.parsed);
  if (why.empty() && endpoint == Endpoint::kEmbeddings) {
    // One input, one vector: an entry is what a batch's input is answered
    // with.
    if (const size_t n = embedding_json::CountEmbeddings(out.body); n != 1) {
      why =
          "the answer holds " + std::to_string(n) + " embeddings for one input";
    }
  }
  if (why.empty() && out.streamed) {
    if (!tally->status().ok()) {
      why = "stream was not valid JSON events";
    } else if (!stream_whole) {
      why = endpoint == Endpoint::kChatCompletions
                ? "stream ended before [DONE]"
                : "stream ended before its last event";
    }
  }
  if (why.empty() && p.request().no_store) why = "no-store requested";
  if (!why.empty()) {
    out.not_stored_reason = std::move(why);
    counters_.Add(PipelineCounters::kNotStored);
    return out;
  }
  // A flush for drift is this answer's: the new model's answer stays.
  if (CheckDrift(key.base_model, out.parsed.model)) {
    flush_count = cache_->FlushCount(key.base_model, p.request().ns);
  }
  const uint8_t flags = static_cast<uint8_t>(
      (out.streamed ? kEntryFlagFromStream : 0) |
      (out.parsed.tool_calls.empty() ? 0 : kEntryFlagToolCalls) |
      EntryEndpointFlags(static_cast<uint8_t>(endpoint)));
  std::string why_not;
  if (Store(key, p.request(), out.body, out.usage, out.parsed.model, flags,
            flush_count, &why_not)) {
    out.stored = true;
    out.ttl_ms = StoredTtlMs(p.request());
  } else {
    out.not_stored_reason =
        why_not.empty() ? std::string("store failed") : std::move(why_not);
  }
  return out;
}

bool CachedClientImpl::Store(const RequestKey& key, const CachedRequest& req,
                             const std::string& body, const Usage& usage,
                             const std::string& resolved_model, uint8_t flags,
                             uint64_t flush_count, std::string* why) {
  auto overtaken = [&] {
    if (why != nullptr) *why = "a flush began while it was asked for";
    counters_.Add(PipelineCounters::kNotStored);
    return false;
  };
  // Checked here too, to keep it from the shared tier (a flush in the moment
  // between this check and the local insert is caught by the insert).
  if (cache_->FlushCount(key.base_model, req.ns) != flush_count) {
    return overtaken();
  }
  InsertOptions io;
  io.flush_count = flush_count;
  io.ns = req.ns;
  io.ttl_ms = req.ttl_ms ? req.ttl_ms : options_.ttl_ms;
  io.usage = usage;
  io.resolved_model = resolved_model;
  io.flags = flags;
  if (shared_) {
    // Every tier gets the same entry: the same times, hence the same TTL.
    const int64_t ttl = io.ttl_ms.value_or(cache_->default_ttl_ms());
    auto entry = std::make_shared<Entry>();
    entry->meta.flags = io.flags;
    entry->meta.created_ms = clock_->NowMillis();
    entry->meta.expires_ms = ExpiryAfter(entry->meta.created_ms, ttl);
    entry->meta.usage = io.usage;
    entry->meta.model = key.model;
    entry->meta.resolved_model = resolved_model;
    entry->meta.ns = std::string(io.ns);
    entry->body = body;
    io.created_ms = entry->meta.created_ms;
    io.expires_ms = entry->meta.expires_ms;
    shared_->Put(key, std::move(entry));
  }
  Status s = cache_->Insert(key, body, io);
  if (s.ok()) {
    counters_.Add(PipelineCounters::kStored);
    return true;
  }
  if (s.code() == StatusCode::kAborted) return overtaken();
  StoreFailure("insert", s);
  counters_.Add(PipelineCounters::kNotStored);
  return false;
}

CachedClientStats CachedClientImpl::stats() const {
  CachedClientStats s = counters_.Snapshot();
  s.prompt_cache_mode = options_.prompt_cache;
  s.flush_on_drift = options_.flush_on_model_drift;
  {
    std::lock_guard<std::mutex> lock(prompt_cache_mu_);
    s.prompt_cache_models.reserve(prompt_cache_models_.size());
    for (const auto& [model, m] : prompt_cache_models_) {
      s.prompt_cache_models.push_back(m);
      s.prompt_cache_saved_nanousd += m.saved_nanousd;
      s.prompt_cache_write_premium_nanousd += m.write_premium_nanousd;
    }
  }
  {
    std::lock_guard<std::mutex> lock(resolved_mu_);
    s.drift_models.reserve(resolved_.size());
    for (const auto& [model, d] : resolved_) {
      s.drift_models.push_back({model, d.resolved, d.events, d.last_drift_ms});
    }
  }
  std::sort(
      s.drift_models.begin(), s.drift_models.end(),
      [](const CachedClientStats::DriftModel& a,
         const CachedClientStats::DriftModel& b) { return a.model < b.model; });
  return s;
}

void CachedClientImpl::StoreFailure(std::string_view what, const Status& s) {
  counters_.Add(PipelineCounters::kStoreErrors);
  const int64_t now = Clock::System()->NowMillis();
  int64_t last = last_store_log_ms_.load();
  if (now - last < options_.store_error_log_interval_ms && last != 0) return;
  if (!last_store_log_ms_.compare_exchange_strong(last, now)) return;
  Log("cache store " + std::string(what) +
      " failed (request served "
      "upstream; further failures logged at most every " +
      std::to_string(options_.store_error_log_interval_ms / 1000) +
      " s): " + s.ToString());
}

void CachedClientImpl::Log(const std::string& line) {
  if (options_.log) {
    options_.log(line);
  } else {
    std::cerr << "llmcache: " << line << "\n";
  }
}

}  // namespace internal

using internal::CachedClientImpl;

CachedResponse CachedClient::HitResponse(const PreparedRequest& request,
                                         const CacheHit& hit) {
  CachedResponse out;
  out.result = CacheResult::kHit;
  out.key_hex = request.key_hex();
  out.status = 200;
  out.body = hit.entry->body;
  out.usage = hit.entry->meta.usage;
  out.age_ms = hit.age_ms;
  out.complete = true;  // only whole answers are stored
  if (auto parsed = ParseEndpointResponse(request.endpoint(), out.body);
      parsed.ok()) {
    out.parsed = std::move(*parsed);
  }
  return out;
}

std::shared_ptr<CachedClient> CachedClient::Create(
    std::shared_ptr<Cache> cache, std::shared_ptr<Client> client,
    CachedClientOptions options) {
  auto impl = std::make_shared<CachedClientImpl>(
      std::move(cache), std::move(client), std::move(options));
  impl->StartPricingRefresh();
  return impl;
}

Result<std::string> CachedClient::BuildChatBody(std::string_view model,
                                                std::string_view messages_json,
                                                std::string_view params_json) {
  try {
    // As deep as a request body may be (json::parse alone stops at 32).
    boost::system::error_code ec;
    json::value messages = json_util::ParseJson(messages_json, ec);
    if (ec || !messages.is_array()) {
      return InvalidArgumentError("messages must be a JSON array");
    }
    json::value params = params_json.empty()
                             ? json::value(json::object())
                             : json_util::ParseJson(params_json, ec);
    if (ec || !params.is_object()) {
      return InvalidArgumentError("params must be a JSON object");
    }
    json::object body = std::move(params.as_object());
    body["model"] = json::string(model);
    body["messages"] = std::move(messages);
    if (!body.contains("temperature")) body["temperature"] = 0;
    if (!body.contains("max_tokens")) body["max_tokens"] = 1024;
    return json_util::Serialize(body);
  } catch (const std::exception& e) {
    return InvalidArgumentError(std::string("cannot build request: ") +
                                e.what());
  }
}

}  // namespace llmcache::net
