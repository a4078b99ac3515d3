// Canonical request keys.
//
// A chat-completions request body (OpenAI / OpenRouter JSON) is turned into a
// canonical byte string and a SHA-256 key, so that equivalent requests share
// one cache entry and any request whose output could differ gets another.
//
// Canonical form (key format version 1; see KeyBuilder for the exact rules):
//   - object members sorted bytewise by key, recursively at every depth;
//   - no insignificant whitespace; arrays keep their order;
//   - strings as UTF-8, escaping only `"`, `\` and control characters
//     (\b \f \n \r \t, otherwise \u00xx with lowercase hex);
//   - numbers normalised: equal values give equal bytes. Integral values with
//     magnitude below 1e21 are written as plain integers from their exact
//     decimal value (`0`, `0.0`, `-0`, `0e0` -> `0`; `1.0`, `1e0` -> `1`;
//     large seeds keep every digit); every other value is written in the
//     shortest form that round-trips through an IEEE double;
//   - excluded members (KeyOptions) are removed before hashing;
//   - a message `content` that is a single text part,
//     [{"type":"text","text":T}] (excluded block members aside), is written
//     as the string T, so marking a block for prompt caching never changes
//     the key.
//
// The key digest is SHA-256 over:
//   "llmcache\0" kKeyFormatVersion (4 bytes, big endian)
//   len(namespace) (8 bytes BE) namespace
//   len(scope) (8 bytes BE) scope
//   canonical body
// so that a namespace or scope change gives an unrelated key.
//
// Thread safety: KeyBuilder is immutable after construction; all const
// methods may be called concurrently.

#ifndef LLMCACHE_KEY_H_
#define LLMCACHE_KEY_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/status.h"

namespace llmcache {

// Version of the key derivation. Part of every digest. Never reuse a value:
// bump it whenever the canonical form or the digest input changes.
inline constexpr uint32_t kKeyFormatVersion = 1;

inline constexpr size_t kDigestSize = 32;
using Digest = std::array<uint8_t, kDigestSize>;

// The API a request body is written for. Keys of different endpoints never
// collide: the digest input of every endpoint but chat completions starts
// with "llmcache/<EndpointName>\0" instead of "llmcache\0" (chat keys are
// unchanged from key format version 1). Values are persisted (entry flags,
// statistics): never change or reuse them.
enum class Endpoint : uint8_t {
  kChatCompletions = 0,  // POST /chat/completions (OpenAI-style)
  kEmbeddings = 1,       // POST /embeddings
  kResponses = 2,        // POST /responses (OpenAI Responses API)
  kMessages = 3,         // POST /messages (Anthropic Messages API)
};
inline constexpr size_t kEndpointCount = 4;

// Stable names: "chat_completions", "embeddings", "responses", "messages";
// "unknown" for an invalid value.
std::string_view EndpointName(Endpoint endpoint);
// Inverse of EndpointName; also accepts "chat".
std::optional<Endpoint> EndpointFromName(std::string_view name);

// Lowercase hex of `digest` (64 characters).
std::string DigestToHex(const Digest& digest);
// Parses 64 hex characters (either case). InvalidArgument otherwise.
Result<Digest> DigestFromHex(std::string_view hex);

// The model id without its `:variant` suffix ("openai/gpt-4o:floor" ->
// "openai/gpt-4o"). The suffix starts at the first ':' that comes after the
// last '/', so that ids with two ("a/b:free:online") are variants of the
// same base model, and a base model has no suffix of its own (before
// 2026-12-07 the last ':' started it: "a/b:free:online" was a model
// "a/b:free", which `--model a/b:free` could not name). Ids without a
// variant are returned unchanged.
std::string_view BaseModel(std::string_view model);

struct KeyOptions {
  // Top-level request members that never change the output and are left out
  // of the key. Default: stream, stream_options, usage, user, session_id,
  // metadata, trace, prompt_cache_key, prompt_cache_options, cache_control.
  std::vector<std::string> excluded_fields = DefaultExcludedFields();

  // Members left out wherever they mark a block for prompt caching: at the top
  // level, in each `messages[i]`, in each content part `messages[i].content[j]`
  // and in each `tools[i]`. They are NOT removed elsewhere (for example a
  // property named `cache_control` inside a tool's JSON schema is content).
  // Default: cache_control, prompt_cache_breakpoint.
  std::vector<std::string> excluded_block_fields = DefaultExcludedBlockFields();

  // Requests nested deeper than this (objects and arrays) are rejected.
  // Default: 64.
  size_t max_depth = 64;

  // Request bodies larger than this are rejected. Default: 8 MiB.
  size_t max_body_bytes = 8u << 20;

  static std::vector<std::string> DefaultExcludedFields();
  static std::vector<std::string> DefaultExcludedBlockFields();
};

// Who the key is for. Both strings are opaque to llmcache.
struct KeyScope {
  // Chosen by the user; bump it to version all keys (e.g. after a system
  // prompt or policy change). Default: empty.
  std::string_view ns;
  // Isolates tenants: pass e.g. a hash of the API key. Requests with different
  // scopes never share an entry. Default: empty (shared).
  std::string_view scope;
};

// Facts about a request that the cacheability policy needs; filled by the
// same parse that computes the key.
struct RequestInfo {
  std::string model;  // exactly as sent
  bool stream = false;
  bool has_temperature = false;
  // Valid when has_temperature; NaN if `temperature` is not a number.
  double temperature = 0;
  bool has_web_plugin = false;          // plugins: [{"id":"web", ...}]
  bool has_web_search_options = false;  // web_search_options present
  // tools: [{"type":"openrouter:web..."}] (e.g. openrouter:web_search)
  bool has_web_search_tool = false;
  bool has_debug = false;    // debug present
  size_t message_count = 0;  // elements of `messages`

  Endpoint endpoint = Endpoint::kChatCompletions;
  // Responses API: state kept by the upstream makes the answer depend on
  // more than the body. `previous_response_id` or `conversation` present
  // and not null; `store` is true; `background` is true.
  bool has_previous_response = false;
  bool store = false;
  bool background = false;
  // Responses API: `prompt` (a prompt template stored upstream) present and
  // not null.
  bool has_stored_prompt = false;
  // Embeddings: `input` is an array of inputs (strings or token arrays),
  // cached item by item, rather than one string or one token array.
  bool input_is_batch = false;
  // Embeddings: the number of inputs (1 for a single one). Responses: 1 for
  // a string `input`, else its elements.
  size_t input_count = 0;
};

struct RequestKey {
  Digest digest{};
  std::string model;       // exactly as sent, including any `:variant`
  std::string base_model;  // BaseModel(model)

  std::string Hex() const { return DigestToHex(digest); }
};

class KeyBuilder {
 public:
  explicit KeyBuilder(KeyOptions options = KeyOptions());
  ~KeyBuilder();
  KeyBuilder(const KeyBuilder&) = delete;
  KeyBuilder& operator=(const KeyBuilder&) = delete;

  // Computes the key of `body`. When `info` is not null it is filled too.
  // Errors in the request are kInvalidArgument, with a message that says what
  // is wrong and where: body over max_body_bytes, not JSON, invalid UTF-8, a
  // number out of the range of a double, not an object, duplicate member
  // names in any object, nesting deeper than max_depth, no `model` string,
  // no `messages` array. kResourceExhausted when memory runs out, kInternal
  // when OpenSSL fails.
  Result<RequestKey> Compute(std::string_view body, const KeyScope& scope,
                             RequestInfo* info = nullptr) const;

  // The same for a body written for `endpoint`. What is required differs:
  //   chat completions  `model` (string) and `messages` (array);
  //   embeddings        `model` and `input`: a string, an array of integers
  //                     (one token array), or a non-empty array of strings
  //                     or of integer arrays (a batch);
  //   responses         `model`; `input`, when present, a string or array;
  //   messages          `model` and `messages` (array).
  // Block markers (KeyOptions::excluded_block_fields) are also left out of
  // Anthropic `system` blocks, of the blocks nested in a `tool_result`'s
  // `content`, and of Responses `input` items and their content parts; a
  // `system` that is a single text block is written as its text, as
  // `content` is.
  Result<RequestKey> Compute(std::string_view body, const KeyScope& scope,
                             Endpoint endpoint, RequestInfo* info) const;

  // The canonical body text (without the version/namespace/scope prefix), for
  // debugging why two requests do or don't share a key. Same errors as
  // Compute.
  Result<std::string> Canonicalize(std::string_view body) const;
  Result<std::string> Canonicalize(std::string_view body,
                                   Endpoint endpoint) const;

  const KeyOptions& options() const { return options_; }

 private:
  KeyOptions options_;
};

// Raw SHA-256 of `data` with a fetched EVP_MD and a per-thread reused context
// (the baseline the key benchmark is compared against). All zeros if OpenSSL
// fails (no default provider); Compute reports that as kInternal.
Digest Sha256(std::string_view data);

// The tenant scope of an API key, as the proxy and the CLI derive it: the
// lowercase hex SHA-256 of "llmcache-scope-v1:" + key. The key itself never
// reaches a digest input, the disk or a log; empty for an empty key (shared).
std::string ApiKeyScope(std::string_view api_key);

}  // namespace llmcache

#endif  // LLMCACHE_KEY_H_
