// RateLimitedLog (llmcache/net/redis.h).

#include <cstdio>
#include <string>

#include "llmcache/net/redis.h"

namespace llmcache::net {

void RateLimitedLog::Write(std::string line) try {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (written_ && now - last_ < std::chrono::milliseconds(interval_ms_)) {
      ++suppressed_;
      return;
    }
    written_ = true;
    last_ = now;
    if (suppressed_ > 0) {
      line += " (" + std::to_string(suppressed_) + " similar lines suppressed)";
      suppressed_ = 0;
    }
  }
  if (sink_) {
    sink_(line);
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
} catch (...) {
  // Logging must not throw into the caller's callbacks.
}

}  // namespace llmcache::net
