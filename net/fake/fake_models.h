// The fake's model table (private to net/fake): ids, provider names, limits
// and prices, as served by GET /api/v1/models and used to price completions.
// Shapes as in docs/openrouter.md (models and prices).

#ifndef LLMCACHE_NET_FAKE_FAKE_MODELS_H_
#define LLMCACHE_NET_FAKE_FAKE_MODELS_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace llmcache::fake::internal {

struct ModelInfo {
  const char* id;
  const char* name;
  const char* provider;  // display name used in responses
  const char* tokenizer;
  int64_t created;
  int64_t context_length;
  int64_t max_completion_tokens;
  // USD per token, decimal strings as /models reports them.
  const char* prompt;
  const char* completion;
  const char* input_cache_read;
  const char* input_cache_write;
  const char* input_cache_write_1h;  // nullptr: not listed
};

// The listed model `base_model` (no `:variant`); fake/echo for any other id,
// so that every model has prices.
const ModelInfo& FindModel(std::string_view base_model);

// The provider reported for `base_model`: the listed model's, else one
// guessed from the author prefix ("openai/" -> "OpenAI"), else "Fake".
std::string ProviderName(std::string_view base_model);

// A /models price string as a number; 0 for nullptr.
double ParsePrice(const char* price);

// The GET /api/v1/models body.
std::string ModelsJson();

}  // namespace llmcache::fake::internal

#endif  // LLMCACHE_NET_FAKE_FAKE_MODELS_H_
