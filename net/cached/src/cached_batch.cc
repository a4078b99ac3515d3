// Embeddings batches: one request, many inputs, each cached on its own.
//
//   1. The batch is cut into single-input requests (embedding_json.h), each
//      keyed as if it had been sent alone; repeated inputs are one.
//   2. Each input is looked up in the local tiers, then (when configured)
//      in the shared tier.
//   3. The inputs still missing are led or joined: an input another batch
//      already sent upstream is waited for; the others go upstream in ONE
//      request, in the batch's order.
//   4. The answer is cut into one entry per input (its share of the usage),
//      stored in every tier, handed to the batches that waited for it, and
//      the batch's answer is assembled in the original order with `index`
//      fields 0..n-1 and the usage actually spent upstream.
// An input whose leader got no usable answer is sent upstream again by each
// batch that waited for it, once, outside any flight.

#include <boost/asio/post.hpp>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cached_client_impl.h"
#include "embedding_json.h"
#include "pipeline_counters.h"

namespace llmcache::net::internal {

struct CachedClientImpl::Batch {
  explicit Batch(PreparedRequest p) : request(std::move(p)) {}

  PreparedRequest request;  // the whole batch
  Callback done;
  std::vector<embedding_json::Input> inputs;  // per input of the batch
  std::vector<size_t> unique_of;              // input -> unique input
  // Per unique input:
  std::vector<RequestKey> keys;
  std::vector<size_t> first;  // its first position in the batch
  std::vector<std::shared_ptr<const Entry>> entries;
  std::vector<uint8_t> cached;  // answered from a cache tier

  std::mutex mu;
  size_t pending = 0;         // unique inputs not answered yet
  std::vector<size_t> led;    // in flights this batch leads (not ended yet)
  std::vector<size_t> retry;  // their leader failed: send them ourselves
  bool retried = false;
  bool finished = false;
  // The upstream answers: the first one's body (the members of the batch's
  // answer), its headers, what every call spent, and a failure that ends
  // the batch.
  std::string upstream_body;
  std::vector<Header> headers;
  embedding_json::Spent spent;
  std::string resolved_model;  // of the first answer
  std::optional<Status> error;
  std::optional<CachedResponse> error_answer;  // an upstream error answer
  bool stored = true;
  uint64_t shared_flush_count = 0;  // the tier's, before it was asked
  uint64_t flush_count = 0;         // the local tiers', before it was asked
};

void CachedClientImpl::CompleteBatch(PreparedRequest p, Callback done) {
  auto b = std::make_shared<Batch>(std::move(p));
  b->done = std::move(done);
  // From here the batch ends in every path, exactly once (BatchFinish).
  try {
    StartBatch(b);
  } catch (const std::exception& e) {
    AbortBatch(
        b, InternalError(std::string("embeddings batch failed: ") + e.what()));
  }
}

void CachedClientImpl::StartBatch(const std::shared_ptr<Batch>& b) {
  const CachedRequest& req = b->request.request();
  Result<std::vector<embedding_json::Input>> inputs =
      embedding_json::SplitRequest(req.body);
  if (!inputs.ok()) return AbortBatch(b, inputs.status());
  b->inputs = std::move(*inputs);
  b->flush_count = cache_->FlushCount(b->request.key().base_model, req.ns);
  std::unordered_map<Digest, size_t, DigestHash> seen;
  b->unique_of.resize(b->inputs.size());
  for (size_t i = 0; i < b->inputs.size(); ++i) {
    Result<RequestKey> key =
        keys_.Compute(b->inputs[i].body, KeyScope{req.ns, req.scope},
                      Endpoint::kEmbeddings, nullptr);
    if (!key.ok()) return AbortBatch(b, key.status());
    auto [it, added] = seen.emplace(key->digest, b->keys.size());
    if (added) {
      b->keys.push_back(std::move(*key));
      b->first.push_back(i);
    }
    b->unique_of[i] = it->second;
  }
  const size_t n = b->keys.size();
  b->entries.resize(n);
  b->cached.assign(n, 0);

  // The local tiers. Each input is an entry of its own, looked up (and
  // counted in the store's statistics) on its own.
  std::vector<size_t> missing;
  for (size_t u = 0; u < n; ++u) {
    if (!req.skip_lookup) {
      LookupOptions lo;
      lo.max_age_ms = req.max_age_ms;
      Result<LookupResult> r = cache_->Lookup(b->keys[u], lo);
      if (!r.ok()) {
        StoreFailure("lookup", r.status());
      } else if (r->hit()) {
        b->entries[u] = std::move(r->entry);
        b->cached[u] = 1;
        continue;
      }
    }
    missing.push_back(u);
  }
  {
    std::lock_guard<std::mutex> lock(b->mu);
    b->pending = missing.size();
  }
  if (missing.empty()) return BatchFinish(b);
  if (!shared_ || req.skip_lookup) return BatchLead(b, missing);

  // The shared tier: one GET per missing input, all in flight at once.
  struct SharedRound {
    std::mutex mu;
    size_t left = 0;
    std::vector<size_t> still_missing;
  };
  auto round = std::make_shared<SharedRound>();
  round->left = missing.size();
  b->shared_flush_count = shared_->flush_count();
  for (size_t u : missing) {
    shared_->Get(
        b->keys[u],
        OnClientExecutor<Result<std::shared_ptr<const Entry>>>(
            [self = self(), b, u,
             round](Result<std::shared_ptr<const Entry>> r) {
              try {
                self->BatchSharedAnswer(b, u, *round, std::move(r));
              } catch (const std::exception& e) {
                self->AbortBatch(
                    b, InternalError(std::string("embeddings batch failed: ") +
                                     e.what()));
              }
            }));
  }
}

template <typename Round>
void CachedClientImpl::BatchSharedAnswer(
    const std::shared_ptr<Batch>& b, size_t u, Round& round,
    Result<std::shared_ptr<const Entry>> r) {
  std::shared_ptr<const Entry> e;
  const int64_t now = clock_->NowMillis();
  const int64_t max_age = b->request.request().max_age_ms;
  if (!r.ok()) {
    counters_.Add(PipelineCounters::kSharedErrors);
  } else if (*r && !(*r)->meta.ExpiredAt(now) &&
             (max_age < 0 || now - (*r)->meta.created_ms <= max_age)) {
    e = *r;
  }
  bool last = false;
  {
    std::lock_guard<std::mutex> lock(round.mu);
    if (!e) round.still_missing.push_back(u);
    last = --round.left == 0;
  }
  if (e) {
    counters_.Add(PipelineCounters::kSharedHits);
    FillFromShared(b->keys[u], e, b->shared_flush_count);
    {
      std::lock_guard<std::mutex> lock(b->mu);
      if (b->finished) return;
      b->cached[u] = 1;
    }
    BatchInputSettled(b, u, std::move(e));
  }
  if (!last) return;
  std::vector<size_t> rest;
  {
    std::lock_guard<std::mutex> lock(round.mu);
    rest = std::move(round.still_missing);
  }
  if (rest.empty()) return;
  // On the client's executor already (OnClientExecutor); the caller
  // catches what BatchLead throws.
  BatchLead(b, rest);
}

void CachedClientImpl::BatchLead(const std::shared_ptr<Batch>& b,
                                 const std::vector<size_t>& still_missing) {
  // Lead or join each input's flight, then send what this batch leads. A
  // no-store batch leads none (what joined it would go unstored): it sends
  // the inputs no other batch is asking for on its own.
  if (b->request.request().only_if_cached) {
    return AbortBatch(
        b, NotCachedError(std::to_string(still_missing.size()) + " of " +
                          std::to_string(b->keys.size()) +
                          " distinct inputs are not cached"));
  }
  const bool no_store = b->request.request().no_store;
  std::vector<size_t> led, alone;
  {
    std::lock_guard<std::mutex> lock(input_flights_mu_);
    for (size_t u : still_missing) {
      auto it = input_flights_.find(b->keys[u].digest);
      if (it != input_flights_.end()) {
        it->second.push_back(
            [self = self(), b, u](std::shared_ptr<const Entry> e) {
              self->BatchInputSettled(b, u, std::move(e));
            });
      } else if (no_store) {
        alone.push_back(u);
      } else {
        input_flights_.emplace(b->keys[u].digest, std::vector<InputWaiter>());
        led.push_back(u);
      }
    }
  }
  if (!alone.empty()) BatchUpstream(b, std::move(alone), /*lead=*/false);
  if (led.empty()) return;  // every input is on its way in other batches
  {
    std::lock_guard<std::mutex> lock(b->mu);
    b->led = led;
  }
  BatchUpstream(b, std::move(led), /*lead=*/true);
}

void CachedClientImpl::BatchUpstream(std::shared_ptr<Batch> b,
                                     std::vector<size_t> sent, bool lead) {
  std::vector<size_t> positions;
  positions.reserve(sent.size());
  for (size_t u : sent) positions.push_back(b->first[u]);
  Result<std::string> body =
      embedding_json::SubsetRequest(b->request.request().body, positions);
  if (!body.ok()) {
    return BatchAnswered(std::move(b), sent, lead, body.status());
  }
  counters_.Add(PipelineCounters::kUpstreamCalls);
  Request up;
  up.path = std::string(UpstreamPath(Endpoint::kEmbeddings));
  up.body = std::move(*body);
  up.api_key = b->request.request().api_key;
  up.headers = b->request.request().headers;
  client_->Send(std::move(up), nullptr,
                [self = self(), b, sent = std::move(sent),
                 lead](Result<Response> r) mutable {
                  try {
                    self->BatchAnswered(b, sent, lead, std::move(r));
                  } catch (const std::exception& e) {
                    self->AbortBatch(
                        b,
                        InternalError(std::string("embeddings batch failed: ") +
                                      e.what()));
                  }
                });
}

void CachedClientImpl::BatchAnswered(std::shared_ptr<Batch> b,
                                     const std::vector<size_t>& sent, bool lead,
                                     Result<Response> r) {
  std::vector<std::shared_ptr<const Entry>> answers(sent.size());
  ParsedCompletion parsed;
  std::string why;
  if (r.ok()) {
    if (auto p = ParseEndpointResponse(Endpoint::kEmbeddings, r->body);
        p.ok()) {
      parsed = std::move(*p);
    }
    why = WhyNotCacheable(Endpoint::kEmbeddings, r->status, parsed);
    if (parsed.usage)
      AccountPromptCache(b->request.key().model, b->request.key().base_model,
                         parsed);
  }
  if (!r.ok()) {
    std::lock_guard<std::mutex> lock(b->mu);
    if (!b->error && !b->error_answer) b->error = r.status();
  } else if (r->status != 200 || parsed.error) {
    // An upstream error is the batch's answer, as the upstream sent it.
    CachedResponse out;
    out.result = CacheResult::kMiss;
    out.key_hex = b->request.key_hex();
    out.status = r->status;
    out.body = std::move(r->body);
    out.headers = std::move(r->headers);
    out.parsed = std::move(parsed);
    out.not_stored_reason = std::move(why);
    out.complete = out.status == 200;
    counters_.Add(PipelineCounters::kNotStored);
    std::lock_guard<std::mutex> lock(b->mu);
    if (!b->error && !b->error_answer) b->error_answer = std::move(out);
  } else {
    std::vector<uint64_t> weights;
    for (size_t u : sent) weights.push_back(b->inputs[b->first[u]].weight);
    Result<std::vector<embedding_json::InputAnswer>> split =
        why.empty() ? embedding_json::SplitAnswer(r->body, weights)
                    : Result<std::vector<embedding_json::InputAnswer>>(
                          InvalidArgumentError(why));
    if (!split.ok()) {
      // A 200 without one embedding per input cannot answer the batch.
      counters_.Add(PipelineCounters::kNotStored);
      std::lock_guard<std::mutex> lock(b->mu);
      if (!b->error && !b->error_answer) {
        b->error = UnavailableError("upstream embeddings answer unusable: " +
                                    std::string(split.status().message()));
      }
    } else {
      const std::string& resolved = parsed.model;
      // A flush for drift is this answer's: the new model's answer stays.
      const uint64_t flush_count =
          CheckDrift(b->request.key().base_model, resolved)
              ? cache_->FlushCount(b->request.key().base_model,
                                   b->request.request().ns)
              : b->flush_count;
      const uint8_t flags =
          EntryEndpointFlags(static_cast<uint8_t>(Endpoint::kEmbeddings));
      const bool no_store = b->request.request().no_store;
      bool stored = !no_store;
      for (size_t k = 0; k < sent.size(); ++k) {
        embedding_json::InputAnswer& a = (*split)[k];
        auto e = std::make_shared<Entry>();
        e->meta.flags = flags;
        e->meta.created_ms = clock_->NowMillis();
        e->meta.usage = a.usage;
        e->meta.model = b->keys[sent[k]].model;
        e->meta.resolved_model = resolved;
        e->meta.ns = b->request.request().ns;
        e->body = std::move(a.body);
        if (!no_store) {
          stored &= Store(b->keys[sent[k]], b->request.request(), e->body,
                          a.usage, resolved, flags, flush_count);
        }
        answers[k] = std::move(e);
      }
      if (no_store) counters_.Add(PipelineCounters::kNotStored);
      std::lock_guard<std::mutex> lock(b->mu);
      b->spent.Add(parsed.usage ? &*parsed.usage : nullptr);
      if (b->upstream_body.empty()) {
        b->upstream_body = std::move(r->body);
        b->headers = std::move(r->headers);
        b->resolved_model = resolved;
      }
      b->stored = b->stored && stored;
    }
  }
  // Other batches waiting for the inputs this one leads get them (or go on
  // their own when there is no answer).
  if (lead) EndInputFlights(b, sent, answers);
  for (size_t k = 0; k < sent.size(); ++k) {
    BatchInputSettled(b, sent[k], answers[k]);
  }
}

void CachedClientImpl::EndInputFlights(
    const std::shared_ptr<Batch>& b, const std::vector<size_t>& sent,
    const std::vector<std::shared_ptr<const Entry>>& answers) {
  std::vector<size_t> led;
  {
    std::lock_guard<std::mutex> lock(b->mu);
    led.swap(b->led);
  }
  for (size_t u : led) {
    std::vector<InputWaiter> waiters;
    {
      std::lock_guard<std::mutex> lock(input_flights_mu_);
      auto it = input_flights_.find(b->keys[u].digest);
      if (it == input_flights_.end()) continue;
      waiters = std::move(it->second);
      input_flights_.erase(it);
    }
    std::shared_ptr<const Entry> e;
    for (size_t k = 0; k < sent.size() && k < answers.size(); ++k) {
      if (sent[k] == u) e = answers[k];
    }
    for (InputWaiter& w : waiters) w(e);
  }
}

void CachedClientImpl::AbortBatch(const std::shared_ptr<Batch>& b,
                                  Status status) {
  {
    std::lock_guard<std::mutex> lock(b->mu);
    if (!b->error) b->error = std::move(status);
  }
  // The inputs it leads: their waiters go on without them.
  EndInputFlights(b, {}, {});
  BatchFinish(b);
}

void CachedClientImpl::BatchInputSettled(const std::shared_ptr<Batch>& b,
                                         size_t u,
                                         std::shared_ptr<const Entry> e) {
  bool last = false;
  std::vector<size_t> resend;
  {
    std::lock_guard<std::mutex> lock(b->mu);
    if (b->finished) return;
    if (e) {
      b->entries[u] = std::move(e);
    } else if (!b->error && !b->error_answer) {
      b->retry.push_back(u);  // another batch's leader got no answer
    }
    last = b->pending > 0 && --b->pending == 0;
    if (last && !b->retry.empty() && !b->retried && !b->error &&
        !b->error_answer) {
      b->retried = true;
      resend.swap(b->retry);
      b->pending = resend.size();
    }
  }
  if (!resend.empty()) {
    boost::asio::post(
        client_->executor(), [self = self(), b, resend = std::move(resend)] {
          try {
            self->BatchUpstream(b, resend, /*lead=*/false);
          } catch (const std::exception& ex) {
            self->AbortBatch(
                b, InternalError(std::string("embeddings batch failed: ") +
                                 ex.what()));
          }
        });
    return;
  }
  if (last) BatchFinish(b);
}

void CachedClientImpl::BatchFinish(const std::shared_ptr<Batch>& b) {
  // What the batch ends with, taken under its lock: an abort may finish it
  // while late answers still arrive (they see `finished` and stop).
  std::vector<std::shared_ptr<const Entry>> entries;
  std::vector<uint8_t> cached;
  std::optional<Status> error;
  std::optional<CachedResponse> error_answer;
  std::string upstream_body;
  std::vector<Header> headers;
  embedding_json::Spent spent;
  bool stored = false;
  std::string resolved;
  {
    std::lock_guard<std::mutex> lock(b->mu);
    if (b->finished) return;
    resolved = b->resolved_model;
    b->finished = true;
    entries = b->entries;
    cached = b->cached;
    error = std::move(b->error);
    error_answer = std::move(b->error_answer);
    upstream_body = std::move(b->upstream_body);
    headers = std::move(b->headers);
    spent = b->spent;
    stored = b->stored;
  }
  const Endpoint endpoint = Endpoint::kEmbeddings;
  const std::string& model = b->request.key().base_model;
  // What the inputs found in a cache saved.
  Usage saved;
  uint64_t inputs_hit = 0, inputs_missed = 0;
  for (size_t i = 0; i < b->inputs.size() && i < b->unique_of.size(); ++i) {
    const size_t u = b->unique_of[i];
    if (u < cached.size() && cached[u] && entries[u]) {
      ++inputs_hit;
      saved.prompt_tokens += entries[u]->meta.usage.prompt_tokens;
      saved.completion_tokens += entries[u]->meta.usage.completion_tokens;
      saved.cost_nanousd += entries[u]->meta.usage.cost_nanousd;
    } else {
      ++inputs_missed;
    }
  }
  counters_.Add(PipelineCounters::kEmbeddingInputsHit, inputs_hit);
  counters_.Add(PipelineCounters::kEmbeddingInputsMissed, inputs_missed);
  const bool all_cached = inputs_missed == 0;

  Result<CachedResponse> out = InternalError("embeddings batch unanswered");
  if (error) {
    out = std::move(*error);
  } else if (error_answer) {
    out = std::move(*error_answer);
  } else {
    std::vector<std::string_view> bodies;
    bodies.reserve(b->inputs.size());
    bool whole = !b->inputs.empty();
    for (size_t i = 0; i < b->inputs.size(); ++i) {
      const std::shared_ptr<const Entry>& e = entries[b->unique_of[i]];
      if (!e) {
        whole = false;
        break;
      }
      bodies.push_back(e->body);
    }
    Result<std::string> body =
        whole ? embedding_json::Assemble(bodies, upstream_body, spent)
              : Result<std::string>(
                    UnavailableError("an embeddings input got no answer"));
    if (!body.ok()) {
      out = body.status();
    } else {
      CachedResponse r;
      r.result = all_cached ? CacheResult::kHit : CacheResult::kMiss;
      r.key_hex = b->request.key_hex();
      r.status = 200;
      r.body = std::move(*body);
      r.headers = std::move(headers);
      r.usage = saved;
      r.stored = !all_cached && stored;
      if (r.stored) r.ttl_ms = StoredTtlMs(b->request.request());
      r.complete = true;
      // The essentials without parsing the answer again (its vectors are
      // most of its bytes).
      r.parsed.model = std::move(resolved);
      r.parsed.has_choices = true;
      r.parsed.content_null = false;
      out = std::move(r);
    }
  }
  // Counted once, as one request: a hit when every input was cached.
  if (out.ok() && all_cached) {
    CountHit(saved, model, endpoint);
  } else {
    counters_.Add(PipelineCounters::kMisses);
    counters_.AddEndpoint(endpoint, PipelineCounters::kOutcomeMiss);
    // The cached inputs saved something only if the batch was answered: a
    // failed one is sent again whole.
    if (!out.ok() || out->status != 200) {
      saved = Usage{};
      // As for single requests: a caller gone, or only-if-cached, is no
      // failure of the upstream.
      if (out.ok() || (out.status().code() != StatusCode::kCancelled &&
                       !IsNotCached(out.status()))) {
        counters_.Add(PipelineCounters::kUpstreamErrors);
      }
    }
    counters_.Add(PipelineCounters::kTokensSaved,
                  saved.prompt_tokens + saved.completion_tokens);
    counters_.AddSigned(PipelineCounters::kCostSavedNanousd,
                        saved.cost_nanousd);
    if (shared_) shared_->Record(model, SharedOutcome::kMiss, saved);
  }
  b->done(std::move(out));
}

}  // namespace llmcache::net::internal
