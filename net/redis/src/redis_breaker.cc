#include "redis_breaker.h"

#include <algorithm>

namespace llmcache::net::redis_internal {

CircuitBreaker::CircuitBreaker(int failures, int64_t open_ms,
                               int64_t max_open_ms)
    : failures_(std::max(failures, 1)),
      open_ms_(std::max<int64_t>(open_ms, 1)),
      max_open_ms_(std::max(max_open_ms, open_ms_)) {}

CircuitBreaker::Decision CircuitBreaker::Admit(TimePoint now) {
  switch (state_) {
    case State::kClosed:
      return Decision::kAllow;
    case State::kOpen:
      if (now < open_until_) return Decision::kReject;
      state_ = State::kHalfOpen;
      probe_in_flight_ = true;
      return Decision::kProbe;
    case State::kHalfOpen:
      if (probe_in_flight_) return Decision::kReject;
      probe_in_flight_ = true;
      return Decision::kProbe;
  }
  return Decision::kAllow;
}

void CircuitBreaker::OnSuccess() {
  // A reply to a command sent before the breaker opened closes it as well as
  // the probe's: either shows that the server answers.
  consecutive_ = 0;
  state_ = State::kClosed;
  probe_in_flight_ = false;
  period_ms_ = 0;
}

bool CircuitBreaker::OnFailure(TimePoint now, bool probe) {
  switch (state_) {
    case State::kClosed:
      if (++consecutive_ >= failures_) {
        Open(now, open_ms_);
        return true;
      }
      return false;
    case State::kOpen:
      return false;  // commands sent before it opened
    case State::kHalfOpen:
      if (!probe) return false;
      Open(now, std::min(period_ms_ * 2, max_open_ms_));
      return true;
  }
  return false;
}

void CircuitBreaker::OnConnected(TimePoint now) {
  if (state_ == State::kOpen) open_until_ = now;
}

void CircuitBreaker::Open(TimePoint now, int64_t period_ms) {
  state_ = State::kOpen;
  probe_in_flight_ = false;
  period_ms_ = std::max(period_ms, open_ms_);
  open_until_ = now + std::chrono::milliseconds(period_ms_);
}

}  // namespace llmcache::net::redis_internal
