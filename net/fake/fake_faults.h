// Fault injection and answer shapes chosen by model id (private to
// net/fake): parsing the `fake/...` selectors listed in fake_openrouter.h, and
// the HTTP error statuses with OpenRouter's messages and error types, as in
// docs/openrouter.md (errors). What each fault sends is up to the responder.

#ifndef LLMCACHE_NET_FAKE_FAKE_FAULTS_H_
#define LLMCACHE_NET_FAKE_FAKE_FAULTS_H_

#include <cstdint>
#include <string_view>

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
  };
  Kind kind = Kind::kNone;
  unsigned status = 0;  // fault, flaky: 400..599
  int64_t count = 0;    // flaky: failing requests
  int ms = 0;           // delay, slow: at most 10 minutes
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

}  // namespace llmcache::fake::internal

#endif  // LLMCACHE_NET_FAKE_FAKE_FAULTS_H_
