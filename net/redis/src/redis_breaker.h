// The circuit breaker of RedisClient, without I/O or clock of its own (times
// are passed in) so that its rules are plain to read:
//
//   closed --(`failures` consecutive failures)--> open
//   open --(open period over; one command let through)--> half-open
//   half-open --(its success)--> closed; --(its failure)--> open, period x2
//
// A connection that comes up ends the open period at once (the next command
// is the probe). Not thread-safe: the client uses it on its I/O thread.

#ifndef LLMCACHE_NET_REDIS_SRC_REDIS_BREAKER_H_
#define LLMCACHE_NET_REDIS_SRC_REDIS_BREAKER_H_

#include <chrono>
#include <cstdint>

namespace llmcache::net::redis_internal {

class CircuitBreaker {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  enum class Decision { kAllow, kProbe, kReject };

  CircuitBreaker(int failures, int64_t open_ms, int64_t max_open_ms);

  // Whether a command may go now. kProbe: it may, as the one half-open
  // probe; report its outcome with probe = true.
  Decision Admit(TimePoint now);
  // Any reply (error replies included): the server answers.
  void OnSuccess();
  // True when this failure opened (or re-opened) the breaker.
  bool OnFailure(TimePoint now, bool probe);
  // A connection came up: let the next command probe.
  void OnConnected(TimePoint now);

  bool open() const { return state_ != State::kClosed; }

 private:
  enum class State { kClosed, kOpen, kHalfOpen };
  void Open(TimePoint now, int64_t period_ms);

  const int failures_;
  const int64_t open_ms_, max_open_ms_;
  State state_ = State::kClosed;
  int consecutive_ = 0;
  int64_t period_ms_ = 0;
  TimePoint open_until_{};
  bool probe_in_flight_ = false;
};

}  // namespace llmcache::net::redis_internal

#endif  // LLMCACHE_NET_REDIS_SRC_REDIS_BREAKER_H_
