// CachedClient's single flight: identical requests in flight at once wait
// for the first (the leader) and are handed its answer, or start over when
// it has none for them (cached_client_impl.h; JoinOrLead in
// cached_client.cc starts flights). A streaming waiter of a streaming leader
// is handed the leader's events as they come (FanOut), those before it
// joined at once.

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cctype>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cached_client_impl.h"
#include "llmcache/net/sse.h"

namespace llmcache::net::internal {
namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

bool CachedClientImpl::KeepsStreamForWaiters(const Digest& digest,
                                             bool live_only) {
  std::lock_guard<std::mutex> lock(flights_mu_);
  auto it = flights_.find(digest);
  if (it == flights_.end()) return false;
  Flight& f = *it->second;
  if (f.closing) return false;
  const std::vector<Waiter>& waiters = f.waiters;
  const bool keeps =
      live_only ? std::any_of(waiters.begin(), waiters.end(),
                              [](const Waiter& w) {
                                return w.live != nullptr && !w.live->gone;
                              })
                : !waiters.empty();
  if (!keeps) f.closing = true;
  return keeps;
}

void CachedClientImpl::FanOut(const Digest& digest, std::string_view data) {
  std::vector<std::shared_ptr<LiveWaiter>> live;
  {
    std::lock_guard<std::mutex> lock(flights_mu_);
    auto it = flights_.find(digest);
    if (it == flights_.end()) return;
    Flight& f = *it->second;
    Event event;
    if (f.kept && f.event_bytes + data.size() > kMaxKeptEventBytes) {
      f.kept = false;  // joiners from now on get the answer at the end
      f.events = {};
    } else if (f.kept) {
      event = std::make_shared<const std::string>(data);
      f.events.push_back(event);
      f.event_bytes += data.size();
    }
    for (Waiter& w : f.waiters) {
      if (w.live == nullptr || w.live->gone) continue;
      if (!event) event = std::make_shared<const std::string>(data);
      w.live->queue.push_back(event);
      live.push_back(w.live);
    }
  }
  for (const std::shared_ptr<LiveWaiter>& w : live) HandQueued(*w);
}

void CachedClientImpl::HandQueued(LiveWaiter& live) {
  {
    std::lock_guard<std::mutex> lock(flights_mu_);
    if (live.draining) return;  // that thread hands these too, in order
    live.draining = true;
  }
  std::vector<Event> queue;
  std::function<void()> then;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(flights_mu_);
      // A flight that ended before any of its events was taken for this
      // waiter answers it as a plain waiter (FinishFlight): nothing more.
      if (live.queue.empty() || (live.ended && !live.started)) {
        live.draining = false;
        then = std::move(live.then);
        live.then = nullptr;
        break;
      }
      live.started = true;
      queue.clear();
      queue.swap(live.queue);
    }
    for (const Event& e : queue) {
      if (live.gone) break;
      try {
        if (!live.on_chunk(*e)) live.gone = true;
      } catch (const std::exception&) {  // out of memory: as if it left
        live.gone = true;
      }
    }
  }
  if (then) then();
}

// Ends a flight: removes it, then hands the leader's outcome to every
// waiter, in the waiter's own form (JSON, or events for a stream),
// whichever form the leader asked for. When the leader was cancelled by
// its own caller, each waiter starts over (a new flight). When the leader's
// stream did not end whole (a 200 cut before [DONE], or a connection lost
// or timed out after its first event), none is handed a partial answer, or
// the leader's failure half way, as if it were its own: the waiters start
// over too, and the first to do so leads one new flight that those of its
// API key join (Restart; others call on their own, and a no-store waiter
// never leads); a waiter that waited for a second flight not whole either
// asks upstream on its own. An answer about the key (401, 402, 403, 429)
// goes only to waiters with the leader's API key: with a shared scope, one
// tenant's is not another's, and its message may name the key; the others
// start over (a flight of their key's, or a call of their own). A stream
// that passed max_stored_stream_bytes ends its live waiters as it ended and
// has no whole answer for the others: plain requests start over as after a
// cut, streams each with a call of their own.
void CachedClientImpl::FinishFlight(const Digest& digest,
                                    const Result<CachedResponse>* out,
                                    bool stream_cut, bool stream_over) {
  std::shared_ptr<Flight> flight;
  {
    std::lock_guard<std::mutex> lock(flights_mu_);
    auto it = flights_.find(digest);
    if (it == flights_.end()) return;
    flight = std::move(it->second);
    flights_.erase(it);
  }
  const bool cancelled =
      !out->ok() && out->status().code() == StatusCode::kCancelled;
  // A stream too large to be kept whole has no answer to hand out either.
  const bool partial = (out->ok() && (*out)->status == 200 &&
                        (!(*out)->complete || stream_over)) ||
                       (stream_cut && !cancelled);
  // The statuses that answer the key rather than the request; a failed
  // call (unreachable, timed out) or a 5xx is everyone's.
  const int status = out->ok() ? (*out)->status : 0;
  const bool about_key =
      status == 401 || status == 402 || status == 403 || status == 429;
  // The outcome for waiters handed the leader's events, copied once here,
  // not under the flights' lock.
  std::shared_ptr<const Result<CachedResponse>> shared_out;
  for (Waiter& w : flight->waiters) {
    // A waiter that was handed the leader's events (some taken to be
    // handed) ends as the leader's stream did, whole, cut or failed, once
    // the rest are handed (by whichever thread hands them). One not yet
    // handed any (its catch-up still queued) is handed nothing more: it is
    // answered as the other waiters are.
    if (w.live != nullptr) {
      const std::shared_ptr<LiveWaiter> live = w.live;
      if (!shared_out) {
        shared_out = std::make_shared<const Result<CachedResponse>>(*out);
      }
      bool ends_live = false;
      {
        std::lock_guard<std::mutex> lock(flights_mu_);
        live->ended = true;
        ends_live = live->started;
        if (ends_live) {
          LiveWaiter* l = live.get();  // alive while HandQueued runs `then`
          live->then = [l, done = std::move(w.done), result = shared_out] {
            if (l->gone) {
              done(CancelledError("stream cancelled by the caller"));
            } else if (!result->ok()) {
              done(result->status());
            } else {
              CachedResponse copy = **result;
              copy.joined_flight = true;
              done(std::move(copy));
            }
          };
        }
      }
      if (ends_live) {
        HandQueued(*live);
        continue;
      }
    }
    if (cancelled || partial ||
        (about_key && w.request.request().api_key != flight->api_key)) {
      auto self =
          std::static_pointer_cast<CachedClientImpl>(shared_from_this());
      // After a stream past the store limit (also one cancelled), a stream
      // asks on its own, so that plain requests never wait for such a
      // stream again, and a plain request starts over once at most.
      const bool over_or_cut = partial || stream_over;
      const Again again = stream_over && w.on_chunk != nullptr ? Again::kSolo
                          : over_or_cut                        ? Again::kRetry
                                                               : Again::kRejoin;
      boost::asio::post(client_->executor(),
                        [self, w = std::move(w), again]() mutable {
                          self->Restart(std::move(w), again);
                        });
      continue;
    }
    if (!out->ok()) {
      w.done(out->status());
      continue;
    }
    CachedResponse copy = **out;
    copy.joined_flight = true;
    const bool leader_streamed = copy.streamed;
    copy.streamed = w.on_chunk != nullptr && copy.status == 200;
    if (copy.streamed) {
      Result<std::vector<std::string>> events =
          ReplayEvents(w.request.endpoint(), copy.body);
      if (!events.ok()) {
        // The leader's answer cannot be replayed as events (its form
        // differed): this stream asks upstream on its own.
        auto self =
            std::static_pointer_cast<CachedClientImpl>(shared_from_this());
        boost::asio::post(client_->executor(),
                          [self, w = std::move(w)]() mutable {
                            self->Restart(std::move(w), Again::kSolo);
                          });
        continue;
      }
      if (copy.result == CacheResult::kHit &&
          w.request.request().on_stream_hit) {
        w.request.request().on_stream_hit();
      }
      if (!Deliver(*events, w.on_chunk)) {
        w.done(CancelledError("stream cancelled by the caller"));
        continue;
      }
    } else if (leader_streamed) {
      // The body is the complete JSON the stream was accumulated into;
      // the upstream's headers described the stream.
      for (Header& h : copy.headers) {
        if (EqualsIgnoreCase(h.name, "Content-Type")) {
          h.value = "application/json";
        }
      }
    }
    w.done(std::move(copy));
  }
}

// A waiter whose flight ended without a usable answer: it leads or joins
// a new flight, or (kSolo, or a second kRetry) asks upstream for its own
// answer, outside any flight, so that it cannot be handed a partial answer
// again.
void CachedClientImpl::Restart(Waiter w, Again again) {
  const std::function<bool()>& gone = w.request.request().caller_gone;
  if (gone && gone()) {
    w.done(CancelledError(
        "the caller went away while it waited for an identical request"));
    return;
  }
  Callback fallback = w.done;
  try {
    if (again == Again::kSolo || (again == Again::kRetry && w.retried)) {
      if (w.request.request().on_wait) w.request.request().on_wait(false);
      CallUpstream(std::move(w.request), CacheResult::kMiss,
                   BypassReason::kNone, std::move(w.on_chunk),
                   std::move(w.done), /*flight=*/false);
      return;
    }
    JoinOrLead(std::move(w.request), std::move(w.on_chunk), std::move(w.done),
               /*rejoin=*/true,
               /*retried=*/w.retried || again == Again::kRetry);
  } catch (const std::exception& e) {
    Log(std::string("cached completion failed: ") + e.what());
    if (fallback) fallback(InternalError(e.what()));
  }
}

}  // namespace llmcache::net::internal

namespace llmcache::net {

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

namespace {
constexpr std::string_view kNotCachedTail =
    ", and Cache-Control: only-if-cached forbids asking upstream";
}  // namespace

Status NotCachedError(std::string_view why) {
  return NotFoundError(std::string(why) + std::string(kNotCachedTail));
}

bool IsNotCached(const Status& s) {
  return s.code() == StatusCode::kNotFound &&
         s.message().ends_with(kNotCachedTail);
}

}  // namespace llmcache::net
