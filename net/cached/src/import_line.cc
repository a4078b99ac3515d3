// `llmcache import`'s line parser: the layout `llmcache export` writes, read
// by a direct scan, and any other JSON object through Boost.JSON. See
// import_line.h.

#include "llmcache/net/import_line.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "llmcache/entry.h"
#include "llmcache/key.h"
#include "llmcache/net/completion.h"
#include "llmcache/net/endpoint.h"
#include "llmcache/net/json_util.h"

namespace llmcache::net {
namespace json = boost::json;

namespace {

// What a response of `endpoint` is called in messages.
std::string AnswerName(Endpoint endpoint) {
  switch (endpoint) {
    case Endpoint::kChatCompletions:
      return "a chat completion";
    case Endpoint::kEmbeddings:
      return "an embeddings answer";
    case Endpoint::kResponses:
      return "a Responses API answer";
    case Endpoint::kMessages:
      return "a Messages API answer";
  }
  return "an answer";
}

// `name` in double quotes, for messages. (Built by appending: GCC 12 warns
// falsely, -Wrestrict, on "\"" + std::string(name) inlined here.)
std::string Quoted(std::string_view name) {
  std::string q;
  q.reserve(name.size() + 2);
  q += '"';
  q += name;
  q += '"';
  return q;
}

// Reads an optional non-negative integer member; false (with *error) if it
// is present but not one.
bool GetUint(const json::object& o, std::string_view name, uint64_t* out,
             std::string* error) {
  const json::value* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) return true;
  if (v->is_uint64()) {
    *out = v->get_uint64();
    return true;
  }
  if (v->is_int64() && v->get_int64() >= 0) {
    *out = static_cast<uint64_t>(v->get_int64());
    return true;
  }
  *error = Quoted(name) + " must be a non-negative integer";
  return false;
}

// Reads a string member into `out` (a view into `o`; empty if absent and
// not `required`).
bool GetStringView(const json::object& o, std::string_view name,
                   std::string_view* out, std::string* error, bool required) {
  *out = std::string_view();
  const json::value* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) {
    if (required) *error = "missing " + Quoted(name);
    return !required;
  }
  if (!v->is_string()) {
    *error = Quoted(name) + " must be a string";
    return false;
  }
  const json::string& str = v->get_string();
  *out = std::string_view(str.data(), str.size());
  return true;
}

// As GetStringView, copied into `out`, whose buffer is reused (a line's
// strings go into the previous line's).
bool GetString(const json::object& o, std::string_view name, std::string* out,
               std::string* error, bool required) {
  std::string_view view;
  if (!GetStringView(o, name, &view, error, required)) return false;
  out->assign(view);
  return true;
}

// The options of an accepted line (both readers).
void SetAccepted(const Usage& usage, uint64_t flags, uint64_t created,
                 uint64_t expires, InsertOptions* options) {
  options->usage = usage;
  options->flags = static_cast<uint8_t>(flags) | kEntryFlagImported;
  options->created_ms = static_cast<int64_t>(created);
  options->expires_ms = static_cast<int64_t>(expires);
  // Entries that never expire keep "never": ttl 0.
  if (expires == 0) options->ttl_ms = 0;
}

}  // namespace

bool ParseImportLineGeneral(std::string_view line, int64_t now_ms,
                            ImportLine* out, std::string* error) {
  // `out` may hold an earlier line: what is optional starts empty.
  out->ns.clear();
  out->resolved_model.clear();
  out->options = InsertOptions();
  boost::system::error_code ec;
  // As net::json_util::ParseJson, with the parsed line's memory on the stack
  // (a line is parsed and dropped: one allocation per member otherwise).
  unsigned char buffer[8192];
  json::monotonic_resource memory(buffer, sizeof(buffer));
  json::value v = net::json_util::ParseJson(line, ec, &memory);
  if (ec) {
    *error = "invalid JSON: " + ec.message();
    return false;
  }
  if (!v.is_object()) {
    *error = "not a JSON object";
    return false;
  }
  const json::object& o = v.get_object();
  std::string_view key_hex;
  if (!GetStringView(o, "key", &key_hex, error, true)) return false;
  Result<Digest> d = DigestFromHex(key_hex);
  if (!d.ok()) {
    *error = "\"key\" must be 64 hex digits";
    return false;
  }
  out->key.digest = *d;
  if (!GetString(o, "model", &out->key.model, error, true)) return false;
  if (out->key.model.empty()) {
    *error = "\"model\" is empty";
    return false;
  }
  out->key.base_model.assign(BaseModel(out->key.model));
  if (out->key.base_model.empty()) {
    *error = "\"model\" names no model before its ':' variant";
    return false;
  }
  if (!GetString(o, "namespace", &out->ns, error, false)) return false;
  if (!GetString(o, "resolved_model", &out->resolved_model, error, false)) {
    return false;
  }
  uint64_t created = 0, expires = 0, flags = 0;
  if (!GetUint(o, "created", &created, error) ||
      !GetUint(o, "expires", &expires, error) ||
      !GetUint(o, "flags", &flags, error)) {
    return false;
  }
  // An expiry past the year 9999 (older versions wrote them) expires then.
  if (created > static_cast<uint64_t>(kMaxEntryTimeMs) ||
      expires > static_cast<uint64_t>(INT64_MAX) || flags > 0xFF) {
    *error = "\"created\", \"expires\" or \"flags\" out of range";
    return false;
  }
  if (created == 0) {
    const json::value* c = o.if_contains("created");
    *error = c == nullptr || c->is_null()
                 ? "missing \"created\" (Unix milliseconds)"
                 : "\"created\" must be a time after 1970 (Unix milliseconds)";
    return false;
  }
  if (static_cast<int64_t>(created) > now_ms + 5 * 60'000) {
    *error = "\"created\" is in the future";
    return false;
  }
  if (expires != 0 && expires < created) {
    *error = "\"expires\" is before \"created\"";
    return false;
  }
  Usage usage;
  if (const json::value* u = o.if_contains("usage");
      u != nullptr && !u->is_null()) {
    if (!u->is_object()) {
      *error = "\"usage\" must be an object";
      return false;
    }
    const json::object& uo = u->get_object();
    uint64_t cost = 0;
    if (!GetUint(uo, "prompt_tokens", &usage.prompt_tokens, error) ||
        !GetUint(uo, "completion_tokens", &usage.completion_tokens, error) ||
        !GetUint(uo, "cached_tokens", &usage.cached_tokens, error) ||
        !GetUint(uo, "cache_write_tokens", &usage.cache_write_tokens, error) ||
        !GetUint(uo, "cost_nanousd", &cost, error)) {
      *error = "usage: " + *error;
      return false;
    }
    if (cost > static_cast<uint64_t>(INT64_MAX)) {
      *error = "usage: \"cost_nanousd\" out of range";
      return false;
    }
    usage.cost_nanousd = static_cast<int64_t>(cost);
  }
  const json::value* r = o.if_contains("response");
  if (r == nullptr || r->is_null()) {
    *error = "missing \"response\"";
    return false;
  }
  if (r->is_string()) {
    const json::string& body = r->get_string();
    out->body.assign(body.data(), body.size());
  } else if (r->is_object()) {
    out->body = net::json_util::Serialize(*r);
  } else {
    *error = "\"response\" must be a string (the stored body) or an object";
    return false;
  }
  if (!EntryMetadataFits(out->key.model.size(), out->resolved_model.size(),
                         out->ns.size())) {
    *error =
        "\"model\", \"resolved_model\" and \"namespace\" are longer "
        "than " +
        std::to_string(kMaxEntryMetadataBytes) + " bytes together";
    return false;
  }
  for (const std::string* field :
       {&out->key.model, &out->ns, &out->resolved_model}) {
    if (HasControlCharacters(*field)) {
      *error = "a model or namespace contains control characters";
      return false;
    }
  }
  // Only what the service itself would have stored: a clean answer of the
  // entry's endpoint (a chat completion, an embeddings answer, ...).
  // The common clean shape of a chat completion in one pass; anything else
  // through the full parse, which also says what is wrong.
  const Endpoint endpoint = EntryEndpoint(static_cast<uint8_t>(flags));
  if (endpoint == Endpoint::kChatCompletions &&
      net::IsPlainlyCacheableCompletion(out->body)) {
    SetAccepted(usage, flags, created, expires, &out->options);
    return true;
  }
  Result<net::ParsedCompletion> completion =
      net::ParseEndpointResponse(endpoint, out->body);
  if (!completion.ok()) {
    *error = "\"response\" is not " + AnswerName(endpoint) + ": " +
             std::string(completion.status().message());
    return false;
  }
  if (std::string why = net::WhyNotCacheable(endpoint, 200, *completion);
      !why.empty()) {
    *error = "\"response\" would not be cached: " + why;
    return false;
  }
  SetAccepted(usage, flags, created, expires, &out->options);
  return true;
}

namespace {

// The first byte at or after `p` that ends a plain run of a JSON string: a
// quote, a backslash, a control character or the first byte of a multi-byte
// UTF-8 sequence (validated by the caller); `end` if none.
const char* SkipPlain(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i space = _mm_set1_epi8(0x20);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Signed: bytes >= 0x80 are negative, so below 0x20 too.
    const __m128i special = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
        _mm_cmplt_epi8(v, space));
    const int mask = _mm_movemask_epi8(special);
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  for (; p < end; ++p) {
    const auto c = static_cast<unsigned char>(*p);
    if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) return p;
  }
  return end;
}

// The length of the well-formed UTF-8 sequence that starts at `p` (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF), or 0.
size_t Utf8SequenceLength(const char* p, const char* end) {
  const auto at = [&](size_t i) { return static_cast<unsigned char>(p[i]); };
  const auto cont = [&](size_t i, unsigned lo = 0x80, unsigned hi = 0xBF) {
    return static_cast<size_t>(end - p) > i && at(i) >= lo && at(i) <= hi;
  };
  const unsigned c = at(0);
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c >= 0xE1 && c <= 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// Reads the layout `llmcache export` writes, in its order, without
// whitespace. Each step consumes what it expects or fails; a failure only
// means "not this layout" (the general parser then reads the line and says
// what is wrong with it, if anything).
class ExportLayoutReader {
 public:
  explicit ExportLayoutReader(std::string_view line)
      : p_(line.data()), end_(line.data() + line.size()) {}

  bool Literal(std::string_view s) {
    if (static_cast<size_t>(end_ - p_) < s.size() ||
        std::memcmp(p_, s.data(), s.size()) != 0) {
      return false;
    }
    p_ += s.size();
    return true;
  }

  // `n` bytes of a string's plain text (no escapes), then its closing quote.
  bool Plain(size_t n, std::string_view* out) {
    if (static_cast<size_t>(end_ - p_) < n + 1 ||
        SkipPlain(p_, p_ + n) != p_ + n || p_[n] != '"') {
      return false;
    }
    *out = std::string_view(p_, n);
    p_ += n + 1;
    return true;
  }

  // A plain non-negative integer (JSON's form: no sign, fraction, exponent
  // or leading zero) of at most 18 digits, so it cannot overflow.
  bool Uint(uint64_t* out) {
    const char* start = p_;
    uint64_t v = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
      if (p_ - start == 18) return false;
      v = v * 10 + static_cast<uint64_t>(*p_ - '0');
      ++p_;
    }
    const size_t n = static_cast<size_t>(p_ - start);
    if (n == 0 || (n > 1 && *start == '0')) return false;
    *out = v;
    return true;
  }

  // A JSON string of well-formed UTF-8 with the two-character escapes,
  // decoded into `out` (its buffer reused). \u escapes are left to the
  // general parser.
  bool String(std::string* out) {
    if (p_ == end_ || *p_ != '"') return false;
    ++p_;
    out->clear();
    while (true) {
      const char* run = p_;
      p_ = SkipPlain(p_, end_);
      out->append(run, static_cast<size_t>(p_ - run));
      if (p_ == end_) return false;
      if (*p_ == '"') {
        ++p_;
        return true;
      }
      if (static_cast<unsigned char>(*p_) >= 0x80) {
        const size_t n = Utf8SequenceLength(p_, end_);
        if (n == 0) return false;
        out->append(p_, n);
        p_ += n;
        continue;
      }
      if (*p_ != '\\' || end_ - p_ < 2) return false;
      char decoded;
      switch (p_[1]) {
        case '"':
          decoded = '"';
          break;
        case '\\':
          decoded = '\\';
          break;
        case '/':
          decoded = '/';
          break;
        case 'b':
          decoded = '\b';
          break;
        case 'f':
          decoded = '\f';
          break;
        case 'n':
          decoded = '\n';
          break;
        case 'r':
          decoded = '\r';
          break;
        case 't':
          decoded = '\t';
          break;
        default:
          return false;
      }
      out->push_back(decoded);
      p_ += 2;
    }
  }

  bool AtEnd() const { return p_ == end_; }

 private:
  const char* p_;
  const char* const end_;
};

bool HasControlCharacters(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20;
  });
}

}  // namespace

// The line in the layout `llmcache export` writes, accepted only if the
// general parser would accept it, with the same result: every check of
// ParseImportLineGeneral, without its messages. False leaves `out`
// unspecified.
bool ParseExportLayout(std::string_view line, int64_t now_ms, ImportLine* out) {
  ExportLayoutReader r(line);
  std::string_view key_hex;
  uint64_t created = 0, expires = 0, flags = 0, cost = 0;
  Usage usage;
  if (!r.Literal(R"({"key":")") || !r.Plain(2 * kDigestSize, &key_hex) ||
      !r.Literal(R"(,"model":)") || !r.String(&out->key.model) ||
      !r.Literal(R"(,"resolved_model":)") || !r.String(&out->resolved_model) ||
      !r.Literal(R"(,"namespace":)") || !r.String(&out->ns) ||
      !r.Literal(R"(,"created":)") || !r.Uint(&created) ||
      !r.Literal(R"(,"expires":)") || !r.Uint(&expires) ||
      !r.Literal(R"(,"flags":)") || !r.Uint(&flags) ||
      !r.Literal(R"(,"usage":{"prompt_tokens":)") ||
      !r.Uint(&usage.prompt_tokens) || !r.Literal(R"(,"completion_tokens":)") ||
      !r.Uint(&usage.completion_tokens) || !r.Literal(R"(,"cached_tokens":)") ||
      !r.Uint(&usage.cached_tokens) ||
      !r.Literal(R"(,"cache_write_tokens":)") ||
      !r.Uint(&usage.cache_write_tokens) || !r.Literal(R"(,"cost_nanousd":)") ||
      !r.Uint(&cost) || !r.Literal(R"(},"response":)") ||
      !r.String(&out->body) || !r.Literal("}") || !r.AtEnd()) {
    return false;
  }
  Result<Digest> d = DigestFromHex(key_hex);
  if (!d.ok() || BaseModel(out->key.model).empty() || flags > 0xFF ||
      created == 0 || static_cast<int64_t>(created) > now_ms + 5 * 60'000 ||
      (expires != 0 && expires < created) ||
      !EntryMetadataFits(out->key.model.size(), out->resolved_model.size(),
                         out->ns.size()) ||
      HasControlCharacters(out->key.model) || HasControlCharacters(out->ns) ||
      HasControlCharacters(out->resolved_model)) {
    return false;
  }
  const Endpoint endpoint = EntryEndpoint(static_cast<uint8_t>(flags));
  if (endpoint != Endpoint::kChatCompletions ||
      !net::IsPlainlyCacheableCompletion(out->body)) {
    Result<net::ParsedCompletion> completion =
        net::ParseEndpointResponse(endpoint, out->body);
    if (!completion.ok() ||
        !net::WhyNotCacheable(endpoint, 200, *completion).empty()) {
      return false;
    }
  }
  out->key.digest = *d;
  out->key.base_model.assign(BaseModel(out->key.model));
  usage.cost_nanousd = static_cast<int64_t>(cost);
  out->options = InsertOptions();
  SetAccepted(usage, flags, created, expires, &out->options);
  return true;
}

bool ParseImportLine(std::string_view line, int64_t now_ms, ImportLine* out,
                     std::string* error) {
  return ParseExportLayout(line, now_ms, out) ||
         ParseImportLineGeneral(line, now_ms, out, error);
}

bool HasControlCharacters(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20;
  });
}

}  // namespace llmcache::net
