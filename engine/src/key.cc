// Canonical request keys: the public API of llmcache/key.h.
//
// Pipeline (KeyBuilder::Compute), one file per stage under engine/src/key/:
//   0. Check: the body size limit (key/inspect.h, CheckBodySize).
//   1. Parse (key/parser.h): one pass over the body that validates RFC 8259
//      syntax and UTF-8 and records one Entry per value in the thread's
//      Workspace (key/workspace.h), objects sorted by member name, and notes
//      which values are byte-for-byte canonical already. String scanning,
//      UTF-8 and escapes are in key/json_text.h.
//   2. Inspect (key/inspect.h): the top-level members give RequestInfo and
//      the members each endpoint requires (`model`, `messages`, `input`).
//   3. Emit (key/emitter.h): an iterative walk writes the canonical bytes
//      into a sink (key/sinks.h). For the key the sink is a buffer flushed
//      into SHA-256, so the canonical body is never materialised;
//      Canonicalize() runs the same walk into a string.
//   4. Digest (key/sha256.h): SHA-256 through OpenSSL 3 over the prefix
//      documented in key.h and the canonical body.
//
// All scratch memory is thread_local and reused, so a steady-state call makes
// no heap allocation except for the strings it returns.
//
// Performance notes (measured; see bench/key_bench.cc): the cost is per
// token much more than per byte, so the hot paths avoid per-token heap work,
// function calls and wide loads of narrow recent stores. Strings are checked
// 16 bytes inline, then scanned 64 bytes at a time (AVX2 when the CPU has it,
// chosen at run time; SSE2 otherwise), stepping over escapes and UTF-8
// inside a block. The stages are header-only and included by this file
// alone, so the whole pipeline is one translation unit and inlines freely.

#include "llmcache/key.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// The stages in pipeline order, not sorted: definition order steers GCC's
// inlining decisions, and this order is the one that was measured.
// clang-format off
#include "key/sha256.h"
#include "key/workspace.h"
#include "key/json_text.h"
#include "key/parser.h"
#include "key/sinks.h"
#include "key/emitter.h"
#include "key/inspect.h"
// clang-format on

namespace llmcache {
namespace {

using key_internal::Hasher;
using key_internal::HashSink;
using key_internal::Workspace;

// Parses `body` into `ws` and inspects it as a request for `endpoint`.
Status ParseRequest(Workspace& ws, std::string_view body, Endpoint endpoint,
                    const KeyOptions& options, RequestInfo* info,
                    std::string* model) {
  if (Status s = key_internal::CheckBodySize(body, options); !s.ok()) {
    return s;
  }
  ws.Reset(body);
  if (Status s = key_internal::Parser(ws, body, options.max_depth).Parse();
      !s.ok()) {
    return s;
  }
  return key_internal::Inspect(ws, endpoint, info, model);
}

// Writes the canonical form of the parsed request in `ws` into `sink`: chat
// completions and embeddings through the chat emitter (the measured hot
// path), the Anthropic Messages and Responses layouts, which have block
// markers in more places (key.h), through their own instantiations.
template <typename Sink>
void Emit(Workspace& ws, Endpoint endpoint, const KeyOptions& options,
          Sink* sink) {
  using key_internal::Ctx;
  using key_internal::Emitter;
  switch (endpoint) {
    case Endpoint::kMessages:
      Emitter<Sink, Ctx::kTopAnthropic>(ws, options, sink).Run();
      return;
    case Endpoint::kResponses:
      Emitter<Sink, Ctx::kTopResponses>(ws, options, sink).Run();
      return;
    default:
      Emitter<Sink>(ws, options, sink).Run();
      return;
  }
}

// Writes the low `bytes` bytes of `value` to `out`, most significant first.
inline void PutBigEndian(char* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    out[i] = static_cast<char>((value >> (8 * (bytes - 1 - i))) & 0xFF);
  }
}

// Writes the digest prefix documented in key.h: "llmcache\0" (chat
// completions) or "llmcache/<EndpointName>\0" (every other endpoint, so that
// equal bodies sent to different endpoints never share a key), the format
// version (4 bytes BE), then namespace and scope, each as an 8-byte BE
// length followed by the bytes.
void WriteDigestPrefix(Endpoint endpoint, const KeyScope& scope,
                       HashSink& sink) {
  if (LLMCACHE_UNLIKELY(endpoint != Endpoint::kChatCompletions)) {
    const std::string_view name = EndpointName(endpoint);
    sink.Write("llmcache/", 9);
    sink.Write(name.data(), name.size());
    char head[5] = {'\0'};
    PutBigEndian(head + 1, kKeyFormatVersion, 4);
    sink.Write(head, sizeof(head));
  } else {
    char head[13] = {'l', 'l', 'm', 'c', 'a', 'c', 'h', 'e', '\0'};
    PutBigEndian(head + 9, kKeyFormatVersion, 4);
    sink.Write(head, sizeof(head));
  }
  char len[8];
  PutBigEndian(len, scope.ns.size(), 8);
  sink.Write(len, sizeof(len));
  sink.Write(scope.ns.data(), scope.ns.size());
  PutBigEndian(len, scope.scope.size(), 8);
  sink.Write(len, sizeof(len));
  sink.Write(scope.scope.data(), scope.scope.size());
}

}  // namespace

// ---------------------------------------------------------------------------
// Public API.

std::string_view EndpointName(Endpoint endpoint) {
  switch (endpoint) {
    case Endpoint::kChatCompletions:
      return "chat_completions";
    case Endpoint::kEmbeddings:
      return "embeddings";
    case Endpoint::kResponses:
      return "responses";
    case Endpoint::kMessages:
      return "messages";
  }
  return "unknown";
}

std::optional<Endpoint> EndpointFromName(std::string_view name) {
  if (name == "chat") return Endpoint::kChatCompletions;
  for (size_t i = 0; i < kEndpointCount; ++i) {
    const auto endpoint = static_cast<Endpoint>(i);
    if (EndpointName(endpoint) == name) return endpoint;
  }
  return std::nullopt;
}

std::string DigestToHex(const Digest& digest) {
  std::string out(2 * kDigestSize, '\0');
  for (size_t i = 0; i < kDigestSize; ++i) {
    out[2 * i] = key_internal::kLowerHex[digest[i] >> 4];
    out[2 * i + 1] = key_internal::kLowerHex[digest[i] & 0xF];
  }
  return out;
}

Result<Digest> DigestFromHex(std::string_view hex) {
  if (hex.size() != 2 * kDigestSize) {
    return InvalidArgumentError("digest hex must be 64 characters, got " +
                                std::to_string(hex.size()));
  }
  // A table, not branches: digits and letters alternate at random.
  static constexpr auto kHex = [] {
    std::array<int8_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
      t[static_cast<size_t>(c)] =
          static_cast<int8_t>(key_internal::HexValue(static_cast<char>(c)));
    }
    return t;
  }();
  Digest digest{};
  for (size_t i = 0; i < kDigestSize; ++i) {
    const int hi = kHex[static_cast<unsigned char>(hex[2 * i])];
    const int lo = kHex[static_cast<unsigned char>(hex[2 * i + 1])];
    if (hi < 0 || lo < 0) {
      return InvalidArgumentError(
          "digest hex has a non-hex character at offset " +
          std::to_string(hi < 0 ? 2 * i : 2 * i + 1));
    }
    digest[i] = static_cast<uint8_t>((hi << 4) | lo);
  }
  return digest;
}

std::string_view BaseModel(std::string_view model) {
  // The first ':' with no '/' after it, so that a base model has none and
  // BaseModel(BaseModel(m)) == BaseModel(m).
  size_t first = std::string_view::npos;
  for (size_t i = model.size(); i > 0; --i) {
    const char c = model[i - 1];
    if (c == '/') break;
    if (c == ':') first = i - 1;
  }
  return first == std::string_view::npos ? model : model.substr(0, first);
}

std::vector<std::string> KeyOptions::DefaultExcludedFields() {
  return {"stream",       "stream_options",   "usage",
          "user",         "session_id",       "metadata",
          "trace",        "prompt_cache_key", "prompt_cache_options",
          "cache_control"};
}

std::vector<std::string> KeyOptions::DefaultExcludedBlockFields() {
  return {"cache_control", "prompt_cache_breakpoint"};
}

KeyBuilder::KeyBuilder(KeyOptions options) : options_(std::move(options)) {}

KeyBuilder::~KeyBuilder() = default;

Result<RequestKey> KeyBuilder::Compute(std::string_view body,
                                       const KeyScope& scope,
                                       RequestInfo* info) const {
  return Compute(body, scope, Endpoint::kChatCompletions, info);
}

Result<RequestKey> KeyBuilder::Compute(std::string_view body,
                                       const KeyScope& scope, Endpoint endpoint,
                                       RequestInfo* info) const {
  if (static_cast<size_t>(endpoint) >= kEndpointCount) {
    return InvalidArgumentError("invalid endpoint value " +
                                std::to_string(static_cast<int>(endpoint)));
  }
  try {
    key_internal::WorkspaceLease lease;
    Workspace& ws = lease.ws();
    RequestInfo facts;
    RequestKey key;
    if (Status s = ParseRequest(ws, body, endpoint, options_,
                                info != nullptr ? &facts : nullptr, &key.model);
        !s.ok()) {
      return s;
    }
    Hasher hasher;
    {
      HashSink sink(&hasher);
      WriteDigestPrefix(endpoint, scope, sink);
      Emit(ws, endpoint, options_, &sink);
      sink.Flush();
    }
    if (!hasher.Finish(&key.digest)) {
      return InternalError("SHA-256 through OpenSSL failed");
    }
    key.base_model.assign(BaseModel(key.model));
    if (info != nullptr) {
      // Field by field, so that info->model reuses its buffer.
      info->model.assign(key.model);
      info->stream = facts.stream;
      info->has_temperature = facts.has_temperature;
      info->temperature = facts.temperature;
      info->has_web_plugin = facts.has_web_plugin;
      info->has_web_search_options = facts.has_web_search_options;
      info->has_web_search_tool = facts.has_web_search_tool;
      info->has_debug = facts.has_debug;
      info->message_count = facts.message_count;
      info->endpoint = endpoint;
      info->has_previous_response = facts.has_previous_response;
      info->store = facts.store;
      info->background = facts.background;
      info->has_stored_prompt = facts.has_stored_prompt;
      info->input_is_batch = facts.input_is_batch;
      info->input_count = facts.input_count;
    }
    return key;
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory computing the request key");
  } catch (...) {
    return InternalError("unexpected exception computing the request key");
  }
}

Result<std::string> KeyBuilder::Canonicalize(std::string_view body) const {
  return Canonicalize(body, Endpoint::kChatCompletions);
}

Result<std::string> KeyBuilder::Canonicalize(std::string_view body,
                                             Endpoint endpoint) const {
  if (static_cast<size_t>(endpoint) >= kEndpointCount) {
    return InvalidArgumentError("invalid endpoint value " +
                                std::to_string(static_cast<int>(endpoint)));
  }
  try {
    key_internal::WorkspaceLease lease;
    Workspace& ws = lease.ws();
    std::string model;
    if (Status s = ParseRequest(ws, body, endpoint, options_, nullptr, &model);
        !s.ok()) {
      return s;
    }
    std::string out;
    key_internal::StringSink sink(&out, body.size());
    Emit(ws, endpoint, options_, &sink);
    sink.Finish();
    return out;
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory canonicalising the request");
  } catch (...) {
    return InternalError("unexpected exception canonicalising the request");
  }
}

Digest Sha256(std::string_view data) {
  // Cannot report errors: if OpenSSL fails (no default provider) the result
  // is the all-zero digest. Compute() reports the same failure as kInternal.
  Digest digest{};
  Hasher hasher;
  hasher.Update(data.data(), data.size());
  if (!hasher.Finish(&digest)) digest.fill(0);
  return digest;
}

std::string ApiKeyScope(std::string_view api_key) {
  if (api_key.empty()) return std::string();
  std::string input = "llmcache-scope-v1:";
  input.append(api_key);
  return DigestToHex(Sha256(input));
}

}  // namespace llmcache
