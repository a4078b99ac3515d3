// The fake OpenRouter: a Boost.Beast HTTP/1.1 server (plain TCP or TLS) built
// on C++20 coroutines, answering with the shapes of
// ../shared/openrouter/API.md §5-§8 and §10. All Beast/Asio instantiations of
// the fake live in this file.
//
// Layout: pure helpers (hashing, UTF-8, pricing) -> Responder (turns a request
// into a Plan: status, headers, body or SSE events, fault behaviour; no I/O)
// -> FakeImpl (sockets: one coroutine per connection on its own strand, which
// executes Plans).
//
// Behaviour not spelled out in fake_openrouter.h (documented here):
//   * Extra selectors: `fake/slow-<ms>` waits <ms> between SSE events (and
//     before a non-stream answer) so clients can cancel mid-stream;
//     `fake/newlines` prefixes a non-stream JSON body with "\n\n\n" (the
//     keep-alive bytes OpenRouter sends while an upstream is slow).
//   * Stream variants of the in-band faults: `error-200` sends the keep-alive
//     comments, one chunk with a top-level `error` and finish_reason "error",
//     then ends the stream without [DONE]; `choice-error` streams half of the
//     content, then a chunk whose choice carries `error` and finish_reason
//     "error", then the usage chunk and [DONE]; non-stream `midstream-error`
//     answers like `choice-error`.
//   * `fault-<status>` accepts any status 400..599; `flaky-<status>-<n>`
//     counts per exact request body (ResetCounters() forgets the counts).
//   * HTTP-status faults are JSON even when the request asked to stream (as
//     OpenRouter does for errors raised before the first token).
//   * Tokens: prompt_tokens = ceil(prompt bytes / 4) where the prompt bytes
//     are the text of all message parts (other parts and tools: their JSON),
//     plus 4 per message; completion_tokens = ceil(content bytes / 4).
//     `max_tokens`/`max_completion_tokens` truncates the content
//     (finish_reason "length").
//   * Prompt caching: every `cache_control` / `prompt_cache_breakpoint` on a
//     tool, a content part or a message, and a top-level `cache_control`
//     (automatic: on the last block), marks a breakpoint. The longest cached
//     prefix (any block boundary up to the last breakpoint, same base model)
//     is reported as cached_tokens, the rest up to the last breakpoint as
//     cache_write_tokens; TTL 5 min, or 1 h with "ttl":"1h"; a hit refreshes
//     it. No minimum prompt size.
//   * Cost: §8.2 with the /models prices (unknown models: fake/echo prices;
//     1 h writes use input_cache_write_1h); finish_reason "error" costs 0.

#include "fake_openrouter.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llmcache::fake {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Request = http::request<http::string_body>;

constexpr size_t kMaxBodyBytes = 32u << 20;
constexpr uint32_t kMaxHeaderBytes = 64u << 10;
constexpr auto kIdleTimeout = std::chrono::seconds(60);
constexpr auto kIoTimeout = std::chrono::seconds(30);
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr auto kTlsShutdownTimeout = std::chrono::seconds(1);
// How long Stop() lets sessions finish after closing their sockets before it
// stops the io_context outright.
constexpr auto kStopGrace = std::chrono::seconds(3);
constexpr int kMaxDelayMs = 10 * 60 * 1000;
constexpr size_t kExcerptCodePoints = 200;
constexpr int kErrorChunkCode = 502;

// ------------------------------------------------------------------ helpers

constexpr uint64_t kFnvOffset = 14695981039346656037ULL;
constexpr uint64_t kFnvPrime = 1099511628211ULL;

uint64_t Fnv1a(std::string_view s, uint64_t h = kFnvOffset) {
  for (unsigned char c : s) {
    h ^= c;
    h *= kFnvPrime;
  }
  return h;
}

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string Alnum(uint64_t seed, size_t n) {
  static constexpr std::string_view kChars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string out;
  out.reserve(n);
  uint64_t s = seed;
  for (size_t i = 0; i < n; ++i) {
    s = SplitMix(s);
    out.push_back(kChars[s % kChars.size()]);
  }
  return out;
}

std::string Hex(uint64_t v, int digits) {
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string out(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kHex[v & 0xf];
    v >>= 4;
  }
  return out;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Parses all of `s` as a non-negative decimal integer.
std::optional<int64_t> ParseInt(std::string_view s) {
  int64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v < 0) {
    return std::nullopt;
  }
  return v;
}

double ParsePrice(const char* s) {
  if (s == nullptr) return 0;
  std::string_view sv(s);
  double v = 0;
  std::from_chars(sv.data(), sv.data() + sv.size(), v);
  return v;
}

bool IsUtf8Continuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// The largest code point boundary <= pos.
size_t Utf8Floor(std::string_view s, size_t pos) {
  if (pos >= s.size()) return s.size();
  while (pos > 0 && IsUtf8Continuation(s[pos])) --pos;
  return pos;
}

std::string Utf8Prefix(std::string_view s, size_t max_code_points) {
  size_t code_points = 0;
  size_t i = 0;
  for (; i < s.size(); ++i) {
    if (!IsUtf8Continuation(s[i])) {
      if (code_points == max_code_points) break;
      ++code_points;
    }
  }
  return std::string(s.substr(0, i));
}

// Splits `s` into at most `n` non-empty pieces of similar size, never inside
// a UTF-8 sequence.
std::vector<std::string> SplitPieces(std::string_view s, int n) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  const size_t pieces =
      std::clamp<size_t>(static_cast<size_t>(std::max(n, 1)), 1, s.size());
  size_t begin = 0;
  for (size_t i = 1; i <= pieces; ++i) {
    const size_t end = Utf8Floor(s, s.size() * i / pieces);
    if (end > begin) {
      out.emplace_back(s.substr(begin, end - begin));
      begin = end;
    }
  }
  return out;
}

int64_t CeilDiv4(size_t bytes) { return static_cast<int64_t>((bytes + 3) / 4); }

double RoundCost(double v) { return std::round(v * 1e12) / 1e12; }

std::string_view BaseModel(std::string_view model) {
  const size_t colon = model.find(':');
  return colon == std::string_view::npos ? model : model.substr(0, colon);
}

const json::object* FindObject(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr ? v->if_object() : nullptr;
}

const json::string* FindString(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr ? v->if_string() : nullptr;
}

// ------------------------------------------------------------------- models

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

// Prices: sonnet-4.5 as in API.md §10; the others are list prices of the same
// era (only their shape matters to tests).
constexpr ModelInfo kModels[] = {
    {"anthropic/claude-sonnet-4.5", "Anthropic: Claude Sonnet 4.5", "Anthropic",
     "Claude", 1759161676, 1000000, 64000, "0.000003", "0.000015", "0.0000003",
     "0.00000375", "0.000006"},
    {"openai/gpt-4o-mini", "OpenAI: GPT-4o-mini", "OpenAI", "GPT", 1721260800,
     128000, 16384, "0.00000015", "0.0000006", "0.000000075", "0.00000015",
     nullptr},
    {"openai/gpt-4o", "OpenAI: GPT-4o", "OpenAI", "GPT", 1715558400, 128000,
     16384, "0.0000025", "0.00001", "0.00000125", "0.0000025", nullptr},
    {"google/gemini-2.5-flash", "Google: Gemini 2.5 Flash", "Google AI Studio",
     "Gemini", 1750172488, 1048576, 65535, "0.0000003", "0.0000025",
     "0.000000075", "0.0000003833", nullptr},
    {"deepseek/deepseek-chat-v3.1", "DeepSeek: DeepSeek V3.1", "DeepSeek",
     "DeepSeek", 1755779628, 163840, 163840, "0.0000002", "0.0000008",
     "0.00000002", "0.0000002", nullptr},
    {"fake/echo", "Fake: Echo", "Fake", "Other", 1700000000, 200000, 8192,
     "0.000001", "0.000002", "0.0000001", "0.00000125", "0.000002"},
};
constexpr size_t kDefaultModel = 5;  // fake/echo prices unknown models

const ModelInfo& FindModel(std::string_view base_model) {
  for (const ModelInfo& m : kModels) {
    if (base_model == m.id) return m;
  }
  return kModels[kDefaultModel];
}

std::string ProviderName(std::string_view base_model) {
  for (const ModelInfo& m : kModels) {
    if (base_model == m.id) return m.provider;
  }
  static constexpr std::pair<std::string_view, std::string_view> kByAuthor[] = {
      {"openai/", "OpenAI"},
      {"anthropic/", "Anthropic"},
      {"google/", "Google AI Studio"},
      {"deepseek/", "DeepSeek"},
      {"x-ai/", "xAI"},
      {"mistralai/", "Mistral"},
      {"meta-llama/", "Together"}};
  for (const auto& [prefix, name] : kByAuthor) {
    if (StartsWith(base_model, prefix)) return std::string(name);
  }
  return "Fake";
}

std::string ModelsJson() {
  json::array data;
  for (const ModelInfo& m : kModels) {
    json::object pricing;
    pricing["prompt"] = m.prompt;
    pricing["completion"] = m.completion;
    pricing["request"] = "0";
    pricing["image"] = "0";
    pricing["web_search"] = "0";
    pricing["internal_reasoning"] = "0";
    pricing["input_cache_read"] = m.input_cache_read;
    pricing["input_cache_write"] = m.input_cache_write;
    if (m.input_cache_write_1h != nullptr) {
      pricing["input_cache_write_1h"] = m.input_cache_write_1h;
    }
    json::object arch;
    arch["modality"] = "text->text";
    arch["input_modalities"] = json::array{"text"};
    arch["output_modalities"] = json::array{"text"};
    arch["tokenizer"] = m.tokenizer;
    arch["instruct_type"] = nullptr;
    json::object top;
    top["context_length"] = m.context_length;
    top["max_completion_tokens"] = m.max_completion_tokens;
    top["is_moderated"] = std::string_view(m.provider) == "Anthropic" ||
                          std::string_view(m.provider) == "OpenAI";
    json::object model;
    model["id"] = m.id;
    model["canonical_slug"] = m.id;
    model["name"] = m.name;
    model["created"] = m.created;
    model["description"] =
        std::string(m.name) + " (served by the llmcache fake)";
    model["context_length"] = m.context_length;
    model["architecture"] = std::move(arch);
    model["pricing"] = std::move(pricing);
    model["top_provider"] = std::move(top);
    model["per_request_limits"] = nullptr;
    model["supported_parameters"] = json::array{
        "max_tokens", "temperature", "top_p",       "stop",
        "seed",       "tools",       "tool_choice", "response_format"};
    model["default_parameters"] = nullptr;
    model["expiration_date"] = nullptr;
    data.emplace_back(std::move(model));
  }
  json::object root;
  root["data"] = std::move(data);
  root["total_count"] = static_cast<int64_t>(std::size(kModels));
  root["links"] = json::object{{"next", nullptr}};
  return json::serialize(root);
}

// ------------------------------------------------------------ fault selector

struct Selector {
  enum class Kind {
    kNone,
    kFault,
    kFlaky,
    kDelay,
    kSlow,
    kError200,
    kChoiceError,
    kEmpty,
    kToolCall,
    kMidstreamError,
    kCut,
    kReset,
    kHang,
    kNewlines,
  };
  Kind kind = Kind::kNone;
  unsigned status = 0;
  int64_t count = 0;  // flaky: failing requests
  int ms = 0;         // delay / slow
};

bool IsErrorStatus(int64_t s) { return s >= 400 && s <= 599; }

Selector ParseSelector(std::string_view base_model) {
  using Kind = Selector::Kind;
  Selector sel;
  if (!StartsWith(base_model, "fake/")) return sel;
  const std::string_view name = base_model.substr(5);
  static constexpr std::pair<std::string_view, Kind> kFixed[] = {
      {"error-200", Kind::kError200},
      {"choice-error", Kind::kChoiceError},
      {"empty", Kind::kEmpty},
      {"tool-call", Kind::kToolCall},
      {"midstream-error", Kind::kMidstreamError},
      {"cut", Kind::kCut},
      {"reset", Kind::kReset},
      {"hang", Kind::kHang},
      {"newlines", Kind::kNewlines}};
  for (const auto& [n, k] : kFixed) {
    if (name == n) {
      sel.kind = k;
      return sel;
    }
  }
  if (StartsWith(name, "fault-")) {
    auto s = ParseInt(name.substr(6));
    if (s && IsErrorStatus(*s)) {
      sel.kind = Kind::kFault;
      sel.status = static_cast<unsigned>(*s);
    }
  } else if (StartsWith(name, "flaky-")) {
    const std::string_view rest = name.substr(6);
    const size_t dash = rest.find('-');
    if (dash != std::string_view::npos) {
      auto s = ParseInt(rest.substr(0, dash));
      auto n = ParseInt(rest.substr(dash + 1));
      if (s && n && IsErrorStatus(*s)) {
        sel.kind = Kind::kFlaky;
        sel.status = static_cast<unsigned>(*s);
        sel.count = *n;
      }
    }
  } else if (StartsWith(name, "delay-") || StartsWith(name, "slow-")) {
    const bool delay = StartsWith(name, "delay-");
    auto ms = ParseInt(name.substr(delay ? 6 : 5));
    if (ms) {
      sel.kind = delay ? Kind::kDelay : Kind::kSlow;
      sel.ms = static_cast<int>(std::min<int64_t>(*ms, kMaxDelayMs));
    }
  }
  return sel;
}

struct StatusInfo {
  unsigned status;
  const char* message;
  const char* error_type;
};

constexpr StatusInfo kStatusInfo[] = {
    {400, "Provider returned error", "invalid_request"},
    {401, "User not found.", "authentication"},
    {402, "Insufficient credits. Add more using https://openrouter.ai/credits",
     "payment_required"},
    {403, "Your input was flagged by moderation.", "permission_denied"},
    {404, "No endpoints found that support this request.", "not_found"},
    {408, "Operation timed out. Please try again later.", "timeout"},
    {413, "Payload too large.", "payload_too_large"},
    {422, "Unprocessable request.", "unprocessable"},
    {429, "Rate limit exceeded", "rate_limit_exceeded"},
    {500, "Internal Server Error", "server"},
    {502, "Provider returned error", "provider_unavailable"},
    {503, "No available providers could serve this request.",
     "provider_overloaded"},
    {524, "Provider timed out.", "timeout"},
    {529, "Provider is overloaded.", "provider_overloaded"},
};

const StatusInfo* FindStatusInfo(unsigned status) {
  for (const StatusInfo& s : kStatusInfo) {
    if (s.status == status) return &s;
  }
  return nullptr;
}

// ---------------------------------------------------------- prompt caching

// The prompt as a sequence of cacheable blocks (tools, then message parts).
struct PromptBlocks {
  struct Block {
    uint64_t prefix_hash;  // hash of the model and all blocks up to this one
    size_t prefix_bytes;   // bytes up to and including this block
    bool breakpoint;
    bool ttl_1h;
  };
  std::vector<Block> blocks;
  size_t total_bytes = 0;
};

// Returns whether `o` carries a cache marker, and whether its TTL is 1 h.
bool HasMarker(const json::object& o, bool* ttl_1h) {
  if (const json::object* cc = FindObject(o, "cache_control")) {
    const json::string* ttl = FindString(*cc, "ttl");
    *ttl_1h = ttl != nullptr && *ttl == "1h";
    return true;
  }
  if (o.contains("prompt_cache_breakpoint")) {
    *ttl_1h = false;
    return true;
  }
  return false;
}

std::string SerializeWithoutMarkers(const json::value& v) {
  if (const json::object* o = v.if_object()) {
    if (o->contains("cache_control") ||
        o->contains("prompt_cache_breakpoint")) {
      json::object copy = *o;
      copy.erase("cache_control");
      copy.erase("prompt_cache_breakpoint");
      return json::serialize(copy);
    }
  }
  return json::serialize(v);
}

PromptBlocks BuildPromptBlocks(const json::object& body,
                               std::string_view base_model) {
  PromptBlocks out;
  uint64_t hash = Fnv1a(base_model);
  auto add = [&](std::string_view key, size_t bytes, bool marker, bool ttl_1h) {
    hash = Fnv1a(key, Fnv1a("\x1f", hash));
    out.total_bytes += bytes;
    out.blocks.push_back({hash, out.total_bytes, marker, ttl_1h});
  };
  if (const json::value* tools = body.if_contains("tools")) {
    if (const json::array* arr = tools->if_array()) {
      for (const json::value& tool : *arr) {
        bool ttl_1h = false;
        const bool marker =
            tool.is_object() && HasMarker(tool.get_object(), &ttl_1h);
        const std::string text = SerializeWithoutMarkers(tool);
        add("tool:" + text, text.size(), marker, ttl_1h);
      }
    }
  }
  const json::value* messages = body.if_contains("messages");
  if (messages != nullptr && messages->is_array()) {
    for (const json::value& mv : messages->get_array()) {
      if (!mv.is_object()) continue;
      const json::object& m = mv.get_object();
      // A header block: the role and everything but the content (tool calls,
      // tool_call_id, name), 4 bytes of overhead plus any tool calls.
      json::object header = m;
      header.erase("content");
      header.erase("cache_control");
      header.erase("prompt_cache_breakpoint");
      size_t header_bytes = 4;
      if (const json::value* tc = m.if_contains("tool_calls")) {
        header_bytes += json::serialize(*tc).size();
      }
      add("msg:" + json::serialize(header), header_bytes, false, false);
      const json::value* content = m.if_contains("content");
      if (content != nullptr) {
        if (const json::string* s = content->if_string()) {
          add(json::serialize(*content), s->size(), false, false);
        } else if (const json::array* parts = content->if_array()) {
          for (const json::value& part : *parts) {
            bool ttl_1h = false;
            bool marker = false;
            size_t bytes = 0;
            const std::string text = SerializeWithoutMarkers(part);
            if (const json::object* po = part.if_object()) {
              marker = HasMarker(*po, &ttl_1h);
              const json::string* t = FindString(*po, "text");
              bytes = t != nullptr ? t->size() : text.size();
            } else {
              bytes = text.size();
            }
            add(text, bytes, marker, ttl_1h);
          }
        }
      }
      bool ttl_1h = false;
      if (HasMarker(m, &ttl_1h)) {
        out.blocks.back().breakpoint = true;
        out.blocks.back().ttl_1h = ttl_1h;
      }
    }
  }
  bool ttl_1h = false;
  if (!out.blocks.empty() && HasMarker(body, &ttl_1h)) {  // automatic caching
    out.blocks.back().breakpoint = true;
    out.blocks.back().ttl_1h = ttl_1h;
  }
  return out;
}

struct PromptUsage {
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t cache_write_tokens = 0;
  bool write_1h = false;
};

// Anthropic-style explicit prompt caching, shared by all connections.
class PromptCacheSim {
 public:
  PromptUsage Account(const PromptBlocks& prompt) {
    PromptUsage u;
    u.prompt_tokens = std::max<int64_t>(1, CeilDiv4(prompt.total_bytes));
    int last = -1;
    for (size_t i = 0; i < prompt.blocks.size(); ++i) {
      if (prompt.blocks[i].breakpoint) last = static_cast<int>(i);
    }
    if (last < 0) return u;
    const auto now = Clock::now();
    std::lock_guard<std::mutex> lock(mu_);
    int hit = -1;
    for (int i = last; i >= 0; --i) {
      auto it =
          entries_.find(prompt.blocks[static_cast<size_t>(i)].prefix_hash);
      if (it != entries_.end() && it->second.expiry > now) {
        hit = i;
        it->second.expiry = now + it->second.ttl;  // reads refresh the TTL
        break;
      }
    }
    auto tokens_at = [&](int i) {
      return static_cast<int64_t>(
          prompt.blocks[static_cast<size_t>(i)].prefix_bytes / 4);
    };
    u.cached_tokens = hit >= 0 ? tokens_at(hit) : 0;
    u.cache_write_tokens =
        std::max<int64_t>(0, tokens_at(last) - u.cached_tokens);
    u.write_1h = prompt.blocks[static_cast<size_t>(last)].ttl_1h;
    for (int i = hit + 1; i <= last; ++i) {
      const auto& b = prompt.blocks[static_cast<size_t>(i)];
      if (!b.breakpoint) continue;
      const Clock::duration ttl = b.ttl_1h
                                      ? Clock::duration(std::chrono::hours(1))
                                      : std::chrono::minutes(5);
      entries_[b.prefix_hash] = Entry{now + ttl, ttl};
    }
    if (entries_.size() > 100000) {
      for (auto it = entries_.begin(); it != entries_.end();) {
        it = it->second.expiry <= now ? entries_.erase(it) : std::next(it);
      }
    }
    return u;
  }

 private:
  struct Entry {
    Clock::time_point expiry;
    Clock::duration ttl;
  };
  std::mutex mu_;
  std::unordered_map<uint64_t, Entry> entries_;
};

// -------------------------------------------------------------------- plans

// What to send for one request; executed by FakeImpl::Execute.
struct Plan {
  enum class Kind {
    kComplete,  // the whole response
    kHang,      // never answer
    kCut,       // part of the body, then a clean close (FIN / no TLS notify)
    kReset,     // part of the body, then RST (SO_LINGER 0)
  };
  Kind kind = Kind::kComplete;
  unsigned status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string generation_id;
  // Non-stream: the body (kCut/kReset send half of it after a Content-Length
  // for all of it). Stream (chunked): one SSE event per element; kCut/kReset
  // send all events and then break the connection.
  bool stream = false;
  std::string body;
  std::vector<std::string> events;
  int delay_ms = 0;      // before the status line
  int event_gap_ms = 0;  // between SSE events
  std::string model;     // for logging
};

std::string Sse(const json::value& v) {
  return "data: " + json::serialize(v) + "\n\n";
}

// Everything derived from one valid chat-completion request.
struct Generation {
  std::string id;
  int64_t created = 0;
  std::string model;  // as reported: the request's model without `:variant`
  std::string provider;
  std::string fingerprint;
  uint64_t hash = 0;  // of the body minus stream options
  std::string content;
  std::string finish_reason = "stop";
  std::string tool_name;
  std::string tool_arguments;
  std::string tool_call_id;
};

class Responder {
 public:
  explicit Responder(const FakeOptions& options)
      : options_(options),
        seed_(std::random_device{}() ^
              static_cast<uint64_t>(Clock::now().time_since_epoch().count())) {}

  // REQUIRES: path is the request target without the query.
  Plan Handle(const Request& req, std::string_view path) {
    if (path == "/api/v1/chat/completions" || path == "/v1/chat/completions") {
      if (req.method() != http::verb::post) {
        return ErrorPlan(405, SimpleError(405, "Method Not Allowed"));
      }
      return Completion(req);
    }
    if (path == "/api/v1/models" || path == "/v1/models") {
      if (req.method() != http::verb::get) {
        return ErrorPlan(405, SimpleError(405, "Method Not Allowed"));
      }
      Plan plan;
      plan.generation_id = NewGenerationId(Now());
      plan.body = ModelsJson();
      return plan;
    }
    return ErrorPlan(404, SimpleError(404, "Not Found"));
  }

  void ResetFlaky() {
    std::lock_guard<std::mutex> lock(mu_);
    flaky_.clear();
  }

 private:
  static int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

  std::string NewGenerationId(int64_t created) {
    const uint64_t n = counter_.fetch_add(1, std::memory_order_relaxed);
    return "gen-" + std::to_string(created) + "-" +
           Alnum(seed_ ^ SplitMix(n), 20);
  }

  static json::object SimpleError(unsigned code, std::string_view message) {
    json::object err;
    err["code"] = code;
    err["message"] = message;
    json::object env;
    env["error"] = std::move(err);
    return env;
  }

  static json::object FaultEnvelope(unsigned status, std::string_view model) {
    const StatusInfo* info = FindStatusInfo(status);
    json::object meta;
    meta["error_type"] = info != nullptr ? info->error_type : "unmapped";
    meta["provider_name"] = ProviderName(model);
    json::object err;
    err["code"] = status;
    err["message"] = info != nullptr ? info->message : "Fake fault";
    err["metadata"] = std::move(meta);
    json::object env;
    env["error"] = std::move(err);
    env["user_id"] = "user_fake";
    return env;
  }

  Plan ErrorPlan(unsigned status, const json::object& envelope) {
    Plan plan;
    plan.status = status;
    plan.generation_id = NewGenerationId(Now());
    plan.body = json::serialize(envelope);
    if (status == 429 || status == 503) {
      plan.headers.emplace_back("Retry-After", "1");
    }
    if (status == 429) {
      plan.headers.emplace_back("X-RateLimit-Limit", "20");
      plan.headers.emplace_back("X-RateLimit-Remaining", "0");
      plan.headers.emplace_back("X-RateLimit-Reset",
                                std::to_string((Now() + 1) * 1000));
    }
    return plan;
  }

  // 401 bodies are verbatim from real captures (message before code).
  Plan AuthError(std::string_view message) {
    json::object err;
    err["message"] = message;
    err["code"] = 401;
    json::object env;
    env["error"] = std::move(err);
    return ErrorPlan(401, env);
  }

  Plan Completion(const Request& req) {
    // 1. Authentication.
    const auto auth_it = req.find(http::field::authorization);
    std::string_view auth;
    if (auth_it != req.end()) {
      auth = std::string_view(auth_it->value().data(), auth_it->value().size());
    }
    std::string_view token;
    if (auth.size() > 7 && ToLower(auth.substr(0, 7)) == "bearer ") {
      token = auth.substr(7);
      while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    }
    if (token.empty()) return AuthError("No auth credentials found");
    if (!options_.api_key.empty() && token != options_.api_key) {
      return AuthError("User not found.");
    }

    // 2. The body.
    boost::system::error_code ec;
    json::value parsed = json::parse(req.body(), ec);
    if (ec || !parsed.is_object()) {
      return ErrorPlan(400, SimpleError(400, "Invalid JSON in request body"));
    }
    const json::object& body = parsed.get_object();
    const json::string* model_str = FindString(body, "model");
    if (model_str == nullptr || model_str->empty()) {
      return ErrorPlan(400, SimpleError(400, "No models provided"));
    }
    const json::value* messages = body.if_contains("messages");
    if (messages == nullptr || !messages->is_array() ||
        messages->get_array().empty()) {
      return ErrorPlan(
          400, SimpleError(400, "Input required: specify \"messages\""));
    }
    const std::string model(model_str->data(), model_str->size());
    const std::string base(BaseModel(model));
    const json::value* stream_v = body.if_contains("stream");
    const bool stream =
        stream_v != nullptr && stream_v->is_bool() && stream_v->get_bool();

    // 3. Faults.
    using Kind = Selector::Kind;
    const Selector sel = ParseSelector(base);
    Plan plan;
    switch (sel.kind) {
      case Kind::kFault:
        plan = ErrorPlan(sel.status, FaultEnvelope(sel.status, base));
        break;
      case Kind::kFlaky: {
        int64_t seen = 0;
        {
          std::lock_guard<std::mutex> lock(mu_);
          seen = ++flaky_[Fnv1a(req.body())];
        }
        if (seen <= sel.count) {
          plan = ErrorPlan(sel.status, FaultEnvelope(sel.status, base));
        } else {
          plan = Success(body, base, stream, Shape::kNormal);
        }
        break;
      }
      case Kind::kDelay:
        plan = Success(body, base, stream, Shape::kNormal);
        plan.delay_ms = sel.ms;
        break;
      case Kind::kSlow:
        plan = Success(body, base, stream, Shape::kNormal);
        if (stream) {
          plan.event_gap_ms = sel.ms;
        } else {
          plan.delay_ms = sel.ms;
        }
        break;
      case Kind::kNewlines:
        plan = Success(body, base, stream, Shape::kNormal);
        if (!stream) plan.body.insert(0, "\n\n\n");
        break;
      case Kind::kError200:
        plan = Error200(body, base, stream);
        break;
      case Kind::kChoiceError:
        plan = Success(body, base, stream, Shape::kChoiceError);
        break;
      case Kind::kEmpty:
        plan = Success(body, base, stream, Shape::kEmpty);
        break;
      case Kind::kToolCall:
        plan = Success(body, base, stream, Shape::kToolCall);
        break;
      case Kind::kMidstreamError:
        plan = stream ? MidstreamError(body, base)
                      : Success(body, base, stream, Shape::kChoiceError);
        break;
      case Kind::kCut:
      case Kind::kReset:
        plan = Broken(
            body, base, stream,
            sel.kind == Kind::kCut ? Plan::Kind::kCut : Plan::Kind::kReset);
        break;
      case Kind::kHang:
        plan.kind = Plan::Kind::kHang;
        break;
      case Kind::kNone:
        plan = Success(body, base, stream, Shape::kNormal);
        break;
    }
    plan.model = model;
    return plan;
  }

  // ------------------------------------------------------- generation

  static std::string LastUserText(const json::object& body) {
    const json::array& messages = body.at("messages").get_array();
    for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
      if (!it->is_object()) continue;
      const json::object& m = it->get_object();
      const json::string* role = FindString(m, "role");
      if (role == nullptr || *role != "user") continue;
      const json::value* content = m.if_contains("content");
      if (content == nullptr) return "";
      if (const json::string* s = content->if_string()) {
        return std::string(s->data(), s->size());
      }
      std::string text;
      if (const json::array* parts = content->if_array()) {
        for (const json::value& p : *parts) {
          if (!p.is_object()) continue;
          const json::string* t = FindString(p.get_object(), "text");
          if (t == nullptr) continue;
          if (!text.empty()) text += ' ';
          text.append(t->data(), t->size());
        }
      }
      return text;
    }
    return "";
  }

  Generation MakeGeneration(const json::object& body, std::string_view base) {
    static constexpr std::string_view kSentences[] = {
        "The cache remembers what the model said.",
        "Deterministic answers make caching easy to test.",
        "Every token saved is a token not paid for.",
        "This reply was generated locally by the fake.",
        "Nothing here left the loopback interface.",
        "The same question always gets the same answer.",
        "Prompt caching and response caching are different things.",
        "A kept-alive connection saves a handshake.",
    };
    Generation g;
    g.created = Now();
    g.id = NewGenerationId(g.created);
    g.model = std::string(base);
    g.provider = ProviderName(base);
    g.fingerprint = "fp_" + Hex(Fnv1a(base), 10);
    json::object canonical = body;
    canonical.erase("stream");
    canonical.erase("stream_options");
    canonical.erase("usage");
    g.hash = Fnv1a(json::serialize(canonical));
    const std::string last_user = LastUserText(body);
    const json::string* model = FindString(body, "model");
    g.content = "Echo from " + std::string(model->data(), model->size()) +
                ": " + Utf8Prefix(last_user, kExcerptCodePoints) + "\n" +
                std::string(kSentences[g.hash % std::size(kSentences)]) +
                " (ref " + Hex(g.hash, 8) + ")";
    int64_t max_tokens = 0;
    for (const char* key : {"max_tokens", "max_completion_tokens"}) {
      const json::value* v = body.if_contains(key);
      if (v != nullptr && v->is_int64() && v->get_int64() > 0) {
        max_tokens = v->get_int64();
      }
    }
    if (max_tokens > 0 && CeilDiv4(g.content.size()) > max_tokens) {
      g.content.resize(
          Utf8Floor(g.content, static_cast<size_t>(max_tokens) * 4));
      g.finish_reason = "length";
    }
    // Tool call: the first declared function, else "get_weather".
    g.tool_name = "get_weather";
    if (const json::value* tools = body.if_contains("tools")) {
      if (const json::array* arr = tools->if_array(); arr && !arr->empty()) {
        if (const json::object* t = arr->front().if_object()) {
          if (const json::object* f = FindObject(*t, "function")) {
            if (const json::string* n = FindString(*f, "name")) {
              g.tool_name = std::string(n->data(), n->size());
            }
          }
        }
      }
    }
    json::object args;
    args["query"] = Utf8Prefix(last_user, 60);
    args["units"] = "metric";
    g.tool_arguments = json::serialize(args);
    g.tool_call_id = "call_" + Alnum(g.hash ^ 0x5bd1e995ULL, 24);
    return g;
  }

  json::object Usage(const PromptUsage& p, int64_t completion_tokens,
                     std::string_view base, bool free_of_charge) const {
    const ModelInfo& m = FindModel(base);
    const double p_prompt = ParsePrice(m.prompt);
    const double p_read = ParsePrice(m.input_cache_read);
    const double p_write = p.write_1h && m.input_cache_write_1h != nullptr
                               ? ParsePrice(m.input_cache_write_1h)
                               : ParsePrice(m.input_cache_write);
    const int64_t uncached = std::max<int64_t>(
        0, p.prompt_tokens - p.cached_tokens - p.cache_write_tokens);
    double prompt_cost = static_cast<double>(uncached) * p_prompt +
                         static_cast<double>(p.cached_tokens) * p_read +
                         static_cast<double>(p.cache_write_tokens) * p_write;
    double completion_cost =
        static_cast<double>(completion_tokens) * ParsePrice(m.completion);
    if (free_of_charge) prompt_cost = completion_cost = 0;
    json::object u;
    u["prompt_tokens"] = p.prompt_tokens;
    u["completion_tokens"] = completion_tokens;
    u["total_tokens"] = p.prompt_tokens + completion_tokens;
    u["cost"] = RoundCost(prompt_cost + completion_cost);
    u["is_byok"] = false;
    json::object ptd;
    ptd["cached_tokens"] = p.cached_tokens;
    ptd["cache_write_tokens"] = p.cache_write_tokens;
    ptd["audio_tokens"] = 0;
    ptd["video_tokens"] = 0;
    u["prompt_tokens_details"] = std::move(ptd);
    json::object cd;
    cd["upstream_inference_cost"] = nullptr;
    cd["upstream_inference_prompt_cost"] = RoundCost(prompt_cost);
    cd["upstream_inference_completions_cost"] = RoundCost(completion_cost);
    u["cost_details"] = std::move(cd);
    json::object ctd;
    ctd["reasoning_tokens"] = 0;
    ctd["image_tokens"] = 0;
    ctd["audio_tokens"] = 0;
    u["completion_tokens_details"] = std::move(ctd);
    return u;
  }

  static json::object ChunkBase(const Generation& g) {
    json::object c;
    c["id"] = g.id;
    c["provider"] = g.provider;
    c["model"] = g.model;
    c["object"] = "chat.completion.chunk";
    c["created"] = g.created;
    return c;
  }

  static std::string DeltaEvent(const Generation& g, json::object delta,
                                const char* finish_reason,
                                const json::object* error = nullptr) {
    json::object c = ChunkBase(g);
    json::object choice;
    choice["index"] = 0;
    choice["delta"] = std::move(delta);
    choice["finish_reason"] =
        finish_reason ? json::value(finish_reason) : json::value(nullptr);
    choice["native_finish_reason"] =
        finish_reason ? json::value(finish_reason) : json::value(nullptr);
    choice["logprobs"] = nullptr;
    if (error != nullptr) choice["error"] = *error;
    json::array choices;
    choices.emplace_back(std::move(choice));
    c["choices"] = std::move(choices);
    c["system_fingerprint"] = g.fingerprint;
    return Sse(c);
  }

  static json::object ContentDelta(std::string_view content) {
    json::object d;
    d["role"] = "assistant";
    d["content"] = content;
    return d;
  }

  static std::string UsageEvent(const Generation& g, json::object usage) {
    json::object c = ChunkBase(g);
    c["choices"] = json::array();
    c["usage"] = std::move(usage);
    return Sse(c);
  }

  // The §7.3 mid-stream error event (key order as documented).
  static std::string ErrorEvent(const Generation& g) {
    json::object meta;
    meta["error_type"] = "provider_unavailable";
    json::object err;
    err["code"] = kErrorChunkCode;
    err["message"] = "Provider returned error";
    err["metadata"] = std::move(meta);
    json::object choice;
    choice["index"] = 0;
    choice["delta"] = json::object{{"content", ""}};
    choice["finish_reason"] = "error";
    json::object c;
    c["id"] = g.id;
    c["object"] = "chat.completion.chunk";
    c["created"] = g.created;
    c["model"] = g.model;
    c["provider"] = g.provider;
    c["error"] = std::move(err);
    json::array choices;
    choices.emplace_back(std::move(choice));
    c["choices"] = std::move(choices);
    return Sse(c);
  }

  static json::object ChoiceError() {
    json::object err;
    err["code"] = kErrorChunkCode;
    err["message"] = "Provider disconnected mid-stream";
    err["metadata"] = json::object{{"error_type", "provider_unavailable"}};
    return err;
  }

  Plan StreamPlan(const Generation& g) const {
    Plan plan;
    plan.stream = true;
    plan.content_type = "text/event-stream";
    plan.headers.emplace_back("Cache-Control", "no-cache");
    plan.generation_id = g.id;
    for (int i = 0; i < options_.keepalive_comments; ++i) {
      plan.events.emplace_back(": OPENROUTER PROCESSING\n\n");
    }
    return plan;
  }

  enum class Shape { kNormal, kEmpty, kToolCall, kChoiceError };

  Plan Success(const json::object& body, std::string_view base, bool stream,
               Shape shape) {
    Generation g = MakeGeneration(body, base);
    const PromptUsage prompt = cache_.Account(BuildPromptBlocks(body, base));
    std::string content = g.content;
    std::string finish = g.finish_reason;
    int64_t completion_tokens = 0;
    switch (shape) {
      case Shape::kNormal:
        completion_tokens = CeilDiv4(content.size());
        break;
      case Shape::kEmpty:
        content.clear();
        finish = "stop";
        break;
      case Shape::kToolCall:
        content.clear();
        finish = "tool_calls";
        completion_tokens =
            CeilDiv4(g.tool_name.size() + g.tool_arguments.size());
        break;
      case Shape::kChoiceError:
        content.resize(Utf8Floor(content, content.size() / 2));
        finish = "error";
        completion_tokens = CeilDiv4(content.size());
        break;
    }
    json::object usage = Usage(prompt, completion_tokens, base,
                               /*free_of_charge=*/shape == Shape::kChoiceError);
    json::object tool_call;
    tool_call["id"] = g.tool_call_id;
    tool_call["type"] = "function";
    tool_call["function"] =
        json::object{{"name", g.tool_name}, {"arguments", g.tool_arguments}};

    if (!stream) {
      json::object message;
      message["role"] = "assistant";
      if (shape == Shape::kToolCall) {
        message["content"] = nullptr;
      } else {
        message["content"] = content;
      }
      message["refusal"] = nullptr;
      message["reasoning"] = nullptr;
      if (shape == Shape::kToolCall) {
        json::array calls;
        calls.emplace_back(std::move(tool_call));
        message["tool_calls"] = std::move(calls);
      }
      json::object choice;
      choice["logprobs"] = nullptr;
      choice["finish_reason"] = finish;
      choice["native_finish_reason"] = finish;
      choice["index"] = 0;
      choice["message"] = std::move(message);
      if (shape == Shape::kChoiceError) choice["error"] = ChoiceError();
      json::object r;
      r["id"] = g.id;
      r["provider"] = g.provider;
      r["model"] = g.model;
      r["object"] = "chat.completion";
      r["created"] = g.created;
      json::array choices;
      choices.emplace_back(std::move(choice));
      r["choices"] = std::move(choices);
      r["system_fingerprint"] = g.fingerprint;
      r["usage"] = std::move(usage);
      Plan plan;
      plan.generation_id = g.id;
      plan.body = json::serialize(r);
      return plan;
    }

    Plan plan = StreamPlan(g);
    plan.events.push_back(DeltaEvent(g, ContentDelta(""), nullptr));
    if (shape == Shape::kToolCall) {
      // The first fragment names the call; the arguments follow in >= 3.
      json::object first = tool_call;
      first["function"] =
          json::object{{"name", g.tool_name}, {"arguments", ""}};
      json::object call0;
      call0["index"] = 0;
      for (auto& kv : first) call0[kv.key()] = kv.value();
      json::object delta;
      delta["role"] = "assistant";
      delta["content"] = nullptr;
      delta["tool_calls"] = json::array{call0};
      plan.events.push_back(DeltaEvent(g, std::move(delta), nullptr));
      for (const std::string& piece :
           SplitPieces(g.tool_arguments, std::max(3, options_.stream_pieces))) {
        json::object frag;
        frag["index"] = 0;
        frag["function"] = json::object{{"arguments", piece}};
        json::object d;
        d["role"] = "assistant";
        d["tool_calls"] = json::array{frag};
        plan.events.push_back(DeltaEvent(g, std::move(d), nullptr));
      }
    } else {
      for (const std::string& piece :
           SplitPieces(content, options_.stream_pieces)) {
        plan.events.push_back(DeltaEvent(g, ContentDelta(piece), nullptr));
      }
    }
    if (shape == Shape::kChoiceError) {
      const json::object err = ChoiceError();
      plan.events.push_back(
          DeltaEvent(g, ContentDelta(""), finish.c_str(), &err));
    } else {
      plan.events.push_back(DeltaEvent(g, ContentDelta(""), finish.c_str()));
    }
    plan.events.push_back(UsageEvent(g, std::move(usage)));
    plan.events.emplace_back("data: [DONE]\n\n");
    return plan;
  }

  Plan MidstreamError(const json::object& body, std::string_view base) {
    const Generation g = MakeGeneration(body, base);
    Plan plan = StreamPlan(g);
    plan.events.push_back(DeltaEvent(g, ContentDelta(""), nullptr));
    const std::vector<std::string> pieces =
        SplitPieces(g.content, std::max(3, options_.stream_pieces));
    for (size_t i = 0; i < pieces.size() && i < 2; ++i) {
      plan.events.push_back(DeltaEvent(g, ContentDelta(pieces[i]), nullptr));
    }
    plan.events.push_back(ErrorEvent(g));
    return plan;
  }

  Plan Error200(const json::object& body, std::string_view base, bool stream) {
    const Generation g = MakeGeneration(body, base);
    if (stream) {
      Plan plan = StreamPlan(g);
      plan.events.push_back(ErrorEvent(g));
      return plan;
    }
    json::object meta;
    meta["raw"] = "upstream connection reset";
    meta["provider_name"] = g.provider;
    meta["error_type"] = "provider_unavailable";
    json::object err;
    err["code"] = kErrorChunkCode;
    err["message"] = "Provider returned error";
    err["metadata"] = std::move(meta);
    json::object env;
    env["error"] = std::move(err);
    env["user_id"] = "user_fake";
    Plan plan;
    plan.generation_id = g.id;
    plan.body = json::serialize(env);
    return plan;
  }

  Plan Broken(const json::object& body, std::string_view base, bool stream,
              Plan::Kind kind) {
    Plan plan = Success(body, base, stream, Shape::kNormal);
    plan.kind = kind;
    if (stream) {
      // Keep the comments, the role chunk and the first content chunks; the
      // reset variant breaks off earlier than the cut.
      const size_t header =
          static_cast<size_t>(std::max(0, options_.keepalive_comments) + 1);
      const size_t content = plan.events.size() - header - 3;  // finish etc.
      const size_t keep =
          kind == Plan::Kind::kCut ? std::max<size_t>(1, content / 2) : 1;
      plan.events.resize(std::min(plan.events.size(), header + keep));
    }
    return plan;
  }

  const FakeOptions options_;
  const uint64_t seed_;
  std::atomic<uint64_t> counter_{0};
  std::mutex mu_;
  std::unordered_map<uint64_t, int64_t> flaky_;  // body hash -> requests seen
  PromptCacheSim cache_;
};

// --------------------------------------------------------------- sessions

net::redirect_error_t<net::use_awaitable_t<>> Tok(beast::error_code& ec) {
  return net::redirect_error(net::use_awaitable, ec);
}

// A connection, as seen by Stop(): close it from its strand.
class ConnBase {
 public:
  virtual ~ConnBase() = default;
  virtual net::any_io_executor executor() = 0;
  // REQUIRES: on the connection's strand.
  virtual void CloseNow() = 0;
};

template <class Stream>
class Conn final : public ConnBase {
 public:
  template <class... Args>
  explicit Conn(Args&&... args)
      : stream(std::forward<Args>(args)...), timer(stream.get_executor()) {}

  net::any_io_executor executor() override { return stream.get_executor(); }

  void CloseNow() override {
    closed = true;
    beast::error_code ec;
    auto& tcp_stream = beast::get_lowest_layer(stream);
    tcp_stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp_stream.socket().close(ec);
    tcp_stream.cancel();
    timer.cancel();
  }

  // Closes with RST instead of FIN: SO_LINGER with a zero timeout.
  void Reset() {
    beast::error_code ec;
    auto& socket = beast::get_lowest_layer(stream).socket();
    socket.set_option(net::socket_base::linger(true, 0), ec);
    socket.close(ec);
  }

  // A clean TCP close without a TLS close_notify.
  void Cut() {
    beast::error_code ec;
    auto& socket = beast::get_lowest_layer(stream).socket();
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  Stream stream;
  net::steady_timer timer;
  bool closed = false;
};

using PlainStream = beast::tcp_stream;
using TlsStream = ssl::stream<beast::tcp_stream>;

class FakeImpl final : public FakeOpenRouter {
 public:
  explicit FakeImpl(const FakeOptions& options)
      : options_(options),
        responder_(options_),
        ioc_(std::max(1, options.threads)),
        accept_strand_(net::make_strand(ioc_)),
        acceptor_(accept_strand_) {}

  ~FakeImpl() override { Stop(); }

  Status Init() {
    beast::error_code ec;
    if (options_.tls) {
      if (options_.cert_pem.empty() || options_.key_pem.empty()) {
        return InvalidArgumentError("tls requires cert_pem and key_pem");
      }
      ssl_ctx_.emplace(ssl::context::tls_server);
      ssl_ctx_->set_options(
          ssl::context::default_workarounds | ssl::context::no_sslv2 |
              ssl::context::no_sslv3 | ssl::context::single_dh_use,
          ec);
      SSL_CTX_set_min_proto_version(ssl_ctx_->native_handle(), TLS1_2_VERSION);
      ssl_ctx_->use_certificate_chain(net::buffer(options_.cert_pem), ec);
      if (ec) return InvalidArgumentError("bad cert_pem: " + ec.message());
      ssl_ctx_->use_private_key(net::buffer(options_.key_pem),
                                ssl::context::pem, ec);
      if (ec) return InvalidArgumentError("bad key_pem: " + ec.message());
    }
    const std::string host =
        options_.host == "localhost" ? "127.0.0.1" : options_.host;
    const net::ip::address address = net::ip::make_address(host, ec);
    if (ec) return InvalidArgumentError("bad host: " + options_.host);
    const tcp::endpoint endpoint(address, options_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return UnavailableError("cannot listen on " + host + ":" +
                              std::to_string(options_.port) + ": " +
                              ec.message());
    }
    port_ = acceptor_.local_endpoint(ec).port();
    if (ec) return InternalError("local_endpoint: " + ec.message());
    display_host_ = host == "0.0.0.0"                     ? "127.0.0.1"
                    : host == "::"                        ? "[::1]"
                    : host.find(':') != std::string::npos ? "[" + host + "]"
                                                          : host;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++active_;
    }
    net::co_spawn(accept_strand_, AcceptLoop(),
                  [this](std::exception_ptr) { SessionDone(0); });
    const int threads = std::max(1, options_.threads);
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] { RunLoop(); });
    }
    return Status();
  }

  uint16_t port() const override { return port_; }

  std::string base_url() const override {
    return std::string(options_.tls ? "https://" : "http://") + display_host_ +
           ":" + std::to_string(port_) + "/api/v1";
  }

  uint64_t requests() const override { return requests_.load(); }
  uint64_t completions() const override { return completions_.load(); }
  uint64_t connections() const override { return connections_.load(); }

  std::string last_authorization() const override {
    return last_header("authorization");
  }

  std::string last_header(const std::string& name) const override {
    const std::string key = ToLower(name);
    std::lock_guard<std::mutex> lock(headers_mu_);
    for (const auto& [k, v] : last_headers_) {
      if (k == key) return v;
    }
    return "";
  }

  void ResetCounters() override {
    requests_ = 0;
    completions_ = 0;
    connections_ = 0;
    {
      std::lock_guard<std::mutex> lock(headers_mu_);
      last_headers_.clear();
    }
    responder_.ResetFlaky();
  }

  void Stop() override {
    std::lock_guard<std::mutex> stop_lock(stop_mu_);
    if (stopped_) return;
    stopped_ = true;
    std::vector<std::shared_ptr<ConnBase>> conns;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      for (auto& [id, weak] : conns_) {
        if (auto c = weak.lock()) conns.push_back(std::move(c));
      }
    }
    try {
      net::post(accept_strand_, [this] {
        beast::error_code ec;
        acceptor_.close(ec);
      });
      for (auto& c : conns) {
        net::post(c->executor(), [c] { c->CloseNow(); });
      }
      conns.clear();
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, kStopGrace, [this] { return active_ == 0; });
      }
    } catch (...) {
      // post() only throws on allocation failure; fall through to stop().
    }
    ioc_.stop();
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void RunLoop() {
    for (;;) {
      try {
        ioc_.run();
        return;
      } catch (...) {
        // Handlers catch their own exceptions; keep serving regardless.
      }
    }
  }

  void SessionDone(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    if (id != 0) conns_.erase(id);
    --active_;
    if (active_ == 0) cv_.notify_all();
  }

  net::awaitable<void> AcceptLoop() {
    beast::error_code ec;
    for (;;) {
      tcp::socket socket =
          co_await acceptor_.async_accept(net::make_strand(ioc_), Tok(ec));
      if (ec == net::error::operation_aborted || !acceptor_.is_open()) break;
      if (ec) {
        // E.g. EMFILE: back off briefly instead of spinning.
        net::steady_timer t(accept_strand_, std::chrono::milliseconds(10));
        co_await t.async_wait(Tok(ec));
        continue;
      }
      connections_.fetch_add(1);
      socket.set_option(tcp::no_delay(true), ec);
      if (options_.tls) {
        Launch(std::make_shared<Conn<TlsStream>>(
            beast::tcp_stream(std::move(socket)), *ssl_ctx_));
      } else {
        Launch(std::make_shared<Conn<PlainStream>>(std::move(socket)));
      }
    }
  }

  template <class Stream>
  void Launch(std::shared_ptr<Conn<Stream>> conn) {
    uint64_t id = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;  // the socket closes with `conn`
      id = ++next_conn_id_;
      conns_[id] = conn;
      ++active_;
    }
    net::co_spawn(conn->executor(), Session(conn),
                  [this, id](std::exception_ptr) { SessionDone(id); });
  }

  bool stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  template <class Stream>
  net::awaitable<void> Session(std::shared_ptr<Conn<Stream>> conn) {
    try {
      co_await Serve(conn);
    } catch (...) {
      // A session never takes the server down.
    }
    if (!conn->closed) conn->CloseNow();
  }

  template <class Stream>
  net::awaitable<void> Serve(std::shared_ptr<Conn<Stream>> conn) {
    constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
    Stream& stream = conn->stream;
    beast::tcp_stream& tcp_stream = beast::get_lowest_layer(stream);
    beast::error_code ec;
    if constexpr (kTls) {
      tcp_stream.expires_after(kHandshakeTimeout);
      co_await stream.async_handshake(ssl::stream_base::server, Tok(ec));
      if (ec) co_return;
    }
    beast::flat_buffer buffer;
    bool keep_alive = true;
    while (keep_alive && !conn->closed) {
      // A fresh parser per message, with limits.
      http::request_parser<http::string_body> parser;
      parser.header_limit(kMaxHeaderBytes);
      parser.body_limit(kMaxBodyBytes);
      tcp_stream.expires_after(kIdleTimeout);
      co_await http::async_read_header(stream, buffer, parser, Tok(ec));
      if (ec) co_return;
      if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
        http::response<http::empty_body> cont{http::status::continue_,
                                              parser.get().version()};
        tcp_stream.expires_after(kIoTimeout);
        co_await http::async_write(stream, cont, Tok(ec));
        if (ec) co_return;
      }
      if (!parser.is_done()) {
        tcp_stream.expires_after(kIoTimeout);
        co_await http::async_read(stream, buffer, parser, Tok(ec));
      }
      if (ec == http::error::body_limit) {
        requests_.fetch_add(1);
        Plan plan;
        plan.status = 413;
        plan.body = R"({"error":{"code":413,"message":"Payload too large."}})";
        co_await Execute(conn, plan, parser.get().version(), false);
        co_return;
      }
      if (ec) co_return;
      Request req = parser.release();
      std::string_view path(req.target().data(), req.target().size());
      path = path.substr(0, path.find('?'));
      Record(req, path);
      Plan plan = responder_.Handle(req, path);
      if (options_.log_requests) {
        std::fprintf(stderr, "fake-openrouter: %s %.*s -> %u %s\n",
                     std::string(req.method_string()).c_str(),
                     static_cast<int>(req.target().size()), req.target().data(),
                     plan.status, plan.model.c_str());
      }
      keep_alive =
          co_await Execute(conn, plan, req.version(), req.keep_alive());
    }
    if (conn->closed) co_return;
    if constexpr (kTls) {
      tcp_stream.expires_after(kTlsShutdownTimeout);
      co_await stream.async_shutdown(Tok(ec));
    } else {
      tcp_stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  // Waits on the connection's timer; false if the wait was cancelled.
  template <class Stream>
  net::awaitable<bool> Sleep(Conn<Stream>& conn, int ms) {
    if (conn.closed || stopping()) co_return false;
    beast::error_code ec;
    conn.timer.expires_after(std::chrono::milliseconds(ms));
    co_await conn.timer.async_wait(Tok(ec));
    co_return !ec && !conn.closed;
  }

  // Sends `plan`; returns whether the connection may serve another request.
  template <class Stream>
  net::awaitable<bool> Execute(std::shared_ptr<Conn<Stream>> conn,
                               const Plan& plan, unsigned version,
                               bool keep_alive) {
    Stream& stream = conn->stream;
    beast::tcp_stream& tcp_stream = beast::get_lowest_layer(stream);
    beast::error_code ec;
    if (plan.delay_ms > 0) {
      const bool slept = co_await Sleep(*conn, plan.delay_ms);
      if (!slept) co_return false;
    }
    if (plan.kind == Plan::Kind::kHang) {
      // Read (and drop) whatever comes until the peer or Stop() closes.
      tcp_stream.expires_never();
      std::array<char, 4096> scratch;
      for (;;) {
        co_await stream.async_read_some(net::buffer(scratch), Tok(ec));
        if (ec) co_return false;
      }
    }
    const bool complete = plan.kind == Plan::Kind::kComplete;
    http::response<http::empty_body> res;
    res.version(version);
    res.result(plan.status);
    if (plan.status == 524) res.reason("A Timeout Occurred");
    if (plan.status == 529) res.reason("Site Overloaded");
    res.set(http::field::content_type, plan.content_type);
    if (!plan.generation_id.empty()) {
      res.set("X-Generation-Id", plan.generation_id);
    }
    for (const auto& [name, value] : plan.headers) res.set(name, value);
    res.keep_alive(keep_alive && complete);
    if (plan.stream) {
      res.chunked(true);
    } else {
      res.content_length(plan.body.size());
    }
    http::response_serializer<http::empty_body> serializer(res);
    tcp_stream.expires_after(kIoTimeout);
    co_await http::async_write_header(stream, serializer, Tok(ec));
    if (ec) co_return false;

    if (!plan.stream) {
      const size_t n = complete ? plan.body.size() : plan.body.size() / 2;
      tcp_stream.expires_after(kIoTimeout);
      co_await net::async_write(stream, net::buffer(plan.body.data(), n),
                                Tok(ec));
      if (ec) co_return false;
    } else {
      for (size_t i = 0; i < plan.events.size(); ++i) {
        if (i > 0 && plan.event_gap_ms > 0) {
          const bool slept = co_await Sleep(*conn, plan.event_gap_ms);
          if (!slept) co_return false;
        }
        const auto chunk = http::make_chunk(net::buffer(plan.events[i]));
        tcp_stream.expires_after(kIoTimeout);
        co_await net::async_write(stream, chunk, Tok(ec));
        if (ec) co_return false;  // the client went away: stop writing
      }
      if (complete) {
        const auto last = http::make_chunk_last();
        tcp_stream.expires_after(kIoTimeout);
        co_await net::async_write(stream, last, Tok(ec));
        if (ec) co_return false;
      }
    }
    if (plan.kind == Plan::Kind::kReset) {
      conn->closed = true;
      conn->Reset();
      co_return false;
    }
    if (plan.kind == Plan::Kind::kCut) {
      conn->closed = true;
      conn->Cut();
      co_return false;
    }
    co_return keep_alive;
  }

  void Record(const Request& req, std::string_view path) {
    requests_.fetch_add(1);
    if (path == "/api/v1/chat/completions" || path == "/v1/chat/completions") {
      completions_.fetch_add(1);
    }
    std::vector<std::pair<std::string, std::string>> headers;
    for (const auto& field : req) {
      headers.emplace_back(
          ToLower(std::string_view(field.name_string().data(),
                                   field.name_string().size())),
          std::string(field.value()));
    }
    std::lock_guard<std::mutex> lock(headers_mu_);
    last_headers_ = std::move(headers);
  }

  const FakeOptions options_;
  Responder responder_;
  // Declared before ioc_ so that it outlives every stream using it.
  std::optional<ssl::context> ssl_ctx_;
  net::io_context ioc_;
  net::strand<net::io_context::executor_type> accept_strand_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  std::string display_host_;

  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> completions_{0};
  std::atomic<uint64_t> connections_{0};
  mutable std::mutex headers_mu_;
  // Lower-cased names of the last request's headers.
  std::vector<std::pair<std::string, std::string>> last_headers_;

  std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  bool stopping_ = false;
  int active_ = 0;  // running sessions plus the accept loop
  uint64_t next_conn_id_ = 0;
  std::map<uint64_t, std::weak_ptr<ConnBase>> conns_;

  std::mutex stop_mu_;
  bool stopped_ = false;
};

}  // namespace

Result<std::unique_ptr<FakeOpenRouter>> FakeOpenRouter::Start(
    const FakeOptions& o) {
  try {
    if (o.threads < 1) return InvalidArgumentError("threads must be >= 1");
    auto impl = std::make_unique<FakeImpl>(o);
    Status s = impl->Init();
    if (!s.ok()) return s;
    return std::unique_ptr<FakeOpenRouter>(std::move(impl));
  } catch (const std::exception& e) {
    return InternalError(std::string("fake openrouter: ") + e.what());
  } catch (...) {
    return InternalError("fake openrouter: unknown exception");
  }
}

}  // namespace llmcache::fake
