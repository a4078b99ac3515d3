// The JSON of embeddings batches, cut into inputs and put back together:
//   - a batch request (`input` an array of strings or of token arrays)
//     becomes one single-input request body per input, keyed like a request
//     that sent that input alone (so a batch and a single request share
//     entries), and the request for a subset of its inputs;
//   - an upstream answer for n inputs becomes n single-input answers, each
//     with its share of the usage;
//   - the answer to the batch is assembled from one single-input answer per
//     input, in the batch's order, with the right `index` fields.
// Private to llmcache::cached.
//
// Thread safety: free functions.

#ifndef LLMCACHE_NET_CACHED_SRC_EMBEDDING_JSON_H_
#define LLMCACHE_NET_CACHED_SRC_EMBEDDING_JSON_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/entry.h"
#include "llmcache/net/completion.h"
#include "llmcache/status.h"

namespace llmcache::net::embedding_json {

struct Input {
  // The batch's request with `input` set to this input alone.
  std::string body;
  // Its weight in the batch's usage: the length of a token array, else the
  // input's UTF-8 bytes (at least 1). Upstream reports usage per batch
  // only; a batch's tokens are shared out in proportion to these.
  uint64_t weight = 1;
};

// The most inputs a batch may have (OpenAI's limit for one request).
inline constexpr size_t kMaxInputs = 2048;

// kInvalidArgument when `body` is not an object whose `input` is a
// non-empty array of strings or of arrays of integers, or has more than
// kMaxInputs of them.
Result<std::vector<Input>> SplitRequest(std::string_view body);

// The batch request with `input` holding only the inputs at `indices`, in
// that order (each index < the batch's inputs).
Result<std::string> SubsetRequest(std::string_view body,
                                  const std::vector<size_t>& indices);

struct InputAnswer {
  std::string body;  // a one-embedding answer, `index` 0
  Usage usage;       // its share of the answer's usage and cost
};

// Cuts an upstream answer for weights.size() inputs into single-input
// answers (the answer's other members kept in each). kInvalidArgument
// unless `data` holds exactly one embedding for each index 0..n-1.
Result<std::vector<InputAnswer>> SplitAnswer(
    std::string_view body, const std::vector<uint64_t>& weights);

// What the upstream calls of a batch spent, summed over its calls.
struct Spent {
  uint64_t prompt_tokens = 0;
  uint64_t total_tokens = 0;
  double cost = 0;
  bool has_cost = false;
  void Add(const CompletionUsage* usage) {
    if (usage == nullptr) return;
    prompt_tokens += usage->prompt_tokens;
    total_tokens += std::max(usage->total_tokens, usage->prompt_tokens);
    if (usage->cost) {
      cost += *usage->cost;
      has_cost = true;
    }
  }
};

// The answer to a batch: the embedding of inputs[i] at index i, the other
// members from `upstream` when it is not empty (the first answer to the
// inputs that were missing), else from inputs[0]; `usage` is what was spent
// upstream (`spent`: its prompt_tokens, total_tokens and cost replace
// upstream's, other usage members kept), or zero tokens when nothing went
// upstream.
Result<std::string> Assemble(const std::vector<std::string_view>& inputs,
                             std::string_view upstream, const Spent& spent);

// A single-input request's hit as it is answered: the stored answer with
// usage 0, as a batch's hit answers (the entry keeps its own usage, counted
// as savings). `stored` itself when it cannot be rewritten.
std::shared_ptr<const Entry> HitAnswer(std::shared_ptr<const Entry> stored);

// The number of embeddings in an answer's `data` (0 when it has none).
size_t CountEmbeddings(std::string_view body);

}  // namespace llmcache::net::embedding_json

#endif  // LLMCACHE_NET_CACHED_SRC_EMBEDDING_JSON_H_
