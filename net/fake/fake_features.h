// What a request asks the fake for beyond the plain answer (choices,
// logprobs, reasoning; fake_openrouter.h), and the fake's token logprobs.
// Private to net/fake.

#ifndef LLMCACHE_NET_FAKE_FAKE_FEATURES_H_
#define LLMCACHE_NET_FAKE_FAKE_FEATURES_H_

#include <boost/json.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llmcache::fake::internal {

constexpr int kMaxChoices = 8;
constexpr int kMaxTopLogprobs = 20;

// What a request asks for beyond the plain answer (fake_openrouter.h).
struct Features {
  int n = 1;
  bool logprobs = false;
  int top_logprobs = 0;
  bool reasoning = false;
};

Features ReadFeatures(const boost::json::object& body);

// The logprobs of `text`: tokens of at most 4 bytes, never inside a UTF-8
// sequence, with a deterministic logprob (a multiple of 1/1024, exact in
// binary) and `top` alternatives, the first being the token itself.
boost::json::array TokenLogprobs(std::string_view text, uint64_t seed, int top);

// Splits `tokens` (TokenLogprobs) into at most `n` runs of similar length.
std::vector<boost::json::array> TokenRuns(const boost::json::array& tokens,
                                          int n);

// The text of a run of tokens.
std::string RunText(const boost::json::array& run);

}  // namespace llmcache::fake::internal

#endif  // LLMCACHE_NET_FAKE_FAKE_FEATURES_H_
