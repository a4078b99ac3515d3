// What an upstream stream's events come to, for the cached client
// (CachedClientImpl::CallUpstream): the events gathered into the answer that
// is stored, up to CachedClientOptions::max_stored_stream_bytes; past it,
// only what the end of the call needs (whether the stream ended whole and,
// as far as small late events tell it, its usage and any error event: for
// chat completions, where they come in events of their own). Private to
// llmcache::cached.

#ifndef LLMCACHE_NET_CACHED_SRC_STREAM_TALLY_H_
#define LLMCACHE_NET_CACHED_SRC_STREAM_TALLY_H_

#include <cstddef>
#include <memory>
#include <string_view>

#include "llmcache/net/endpoint.h"
#include "llmcache/status.h"

namespace llmcache::net::internal {

// Used on the call's thread only (the chunk handler, then the callback).
class StreamTally {
 public:
  // `acc` gathers the events (MakeEventAccumulator(endpoint)); `limit` is
  // max_stored_stream_bytes.
  StreamTally(std::unique_ptr<EventAccumulator> acc, Endpoint endpoint,
              size_t limit);

  // Takes one event's data, in order.
  void Add(std::string_view data);

  bool begun() const { return begun_; }  // an event came
  // Past the limit: nothing is gathered any more (what was is freed); the
  // stream has no whole answer to store or hand out.
  bool over() const { return over_; }
  // Whether the stream ended whole: under the limit, the accumulator's
  // terminal event with no failure before it (chat completions also need
  // the client's [DONE], `done_seen`); past it, the terminal event.
  bool Whole(bool done_seen) const;
  // The first failure of the accumulator (events that were not the
  // endpoint's JSON) while the stream was gathered.
  const Status& status() const { return status_; }
  // Under the limit: the gathered answer. Past it: what events small enough
  // to look at said of usage and errors (the rest empty).
  std::string ToJson() const;
  ParsedCompletion Parsed() const;

 private:
  std::unique_ptr<EventAccumulator> acc_;   // null once over
  std::unique_ptr<EventAccumulator> tail_;  // past the limit
  const Endpoint endpoint_;
  const size_t limit_;
  Status status_;
  size_t bytes_ = 0;       // event bytes gathered
  size_t tail_bytes_ = 0;  // event bytes given to tail_
  bool begun_ = false;
  bool over_ = false;
  bool terminal_ = false;  // past the limit: the terminal event came
};

}  // namespace llmcache::net::internal

#endif  // LLMCACHE_NET_CACHED_SRC_STREAM_TALLY_H_
