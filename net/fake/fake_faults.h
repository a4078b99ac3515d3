// Fault injection and answer shapes chosen by model id (private to
// net/fake): parsing the `fake/...` selectors listed in fake_openrouter.h, and
// the HTTP error statuses with OpenRouter's messages, error types and
// headers, as in docs/openrouter.md (errors). What each fault sends is up to
// the responder (chat completions) and ApiEndpoints (the other endpoints).

#ifndef LLMCACHE_NET_FAKE_FAKE_FAULTS_H_
#define LLMCACHE_NET_FAKE_FAKE_FAULTS_H_

#include <boost/json/object.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llmcache::fake::internal {

struct Selector {
  enum class Kind {
    kNone,  // answer normally
    kFault,
    kFlaky,
    kDelay,
    kSlow,
    kError200,
    kChoiceError,
    kEmpty,
    kToolCall,
    kRefusal,
    kAnnotations,
    kMidstreamError,
    kCut,
    kReset,
    kHang,
    kNewlines,
    kNotJson,
    kEmbedDelay,
    kFlood,
  };
  Kind kind = Kind::kNone;
  unsigned status = 0;  // fault, flaky: 400..599
  int64_t count = 0;    // flaky: failing requests; flood: MiB (1..1024)
  int ms = 0;      // delay, slow, fault (-after-), flood (-every-): <= 10 min
  int64_t us = 0;  // embed-delay: per input item, at most 10 minutes
};

// The fault `base_model` (a model id without `:variant`) selects. kNone for
// models outside `fake/` and for malformed selectors (e.g. fake/fault-200).
Selector ParseSelector(std::string_view base_model);

struct StatusInfo {
  unsigned status;
  const char* message;
  const char* error_type;
};

// The message and error type OpenRouter sends with `status`; nullptr for a
// status it is not known to send.
const StatusInfo* FindStatusInfo(unsigned status);

// {"error":{"code":<code>,"message":<message>}}
boost::json::object SimpleError(unsigned code, std::string_view message);

// The envelope of fake/fault-<status>: code, the status's message and
// metadata (error_type, provider_name of `base_model`), and user_id.
boost::json::object FaultEnvelope(unsigned status, std::string_view base_model);

// The headers OpenRouter sends with an error `status`: Retry-After for 429
// and 503, the X-RateLimit-* headers for 429 (reset: now + 1 s, in ms).
std::vector<std::pair<std::string, std::string>> ErrorHeaders(unsigned status,
                                                              int64_t now_unix);

}  // namespace llmcache::fake::internal

#endif  // LLMCACHE_NET_FAKE_FAKE_FAULTS_H_
