// The system clock.

#include "llmcache/clock.h"

#include <chrono>

namespace llmcache {
namespace {

class SystemClock final : public Clock {
 public:
  int64_t NowMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace

const Clock* Clock::System() {
  static const SystemClock* const clock = new SystemClock();
  return clock;
}

}  // namespace llmcache
