// WaitFor: waits until a condition holds or a deadline passes, for tests
// that must wait for something another thread or process does (a request to
// be in flight, a log line, a file to grow) without a fixed sleep.
//
//   ASSERT_TRUE(llmcache::testing::WaitFor(
//       [&] { return proxy->counters().in_flight == 1; }))
//       << "the request never reached the proxy";
//
// The condition is polled, first every 100 µs and backing off to every
// 10 ms, so a quick event is seen quickly and a slow one costs little CPU.
// Header-only.

#ifndef LLMCACHE_TESTS_TESTING_WAIT_H_
#define LLMCACHE_TESTS_TESTING_WAIT_H_

#include <algorithm>
#include <chrono>
#include <thread>

namespace llmcache::testing {

// Default deadline: long enough for a loaded machine or a sanitizer build,
// short enough that a missing event fails the test well before ctest's
// timeout.
inline constexpr std::chrono::milliseconds kWaitTimeout{10'000};

// True as soon as `condition()` returns true; false if it still does not
// after `timeout` (it is evaluated one last time at the deadline).
template <class Condition>
bool WaitFor(Condition&& condition,
             std::chrono::milliseconds timeout = kWaitTimeout) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + timeout;
  std::chrono::microseconds pause(100);
  for (;;) {
    if (condition()) return true;
    const Clock::time_point now = Clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(
        std::min<Clock::duration>(pause, deadline - now));
    pause = std::min(pause * 2, std::chrono::microseconds(10'000));
  }
}

}  // namespace llmcache::testing

#endif  // LLMCACHE_TESTS_TESTING_WAIT_H_
