// Prompt caching: placing Anthropic-style cache breakpoints in a request, the
// model-family minimums, the /models price table and cost accounting.
// See docs/openrouter.md (#cache-markers, #provider-caching, #cost-formula,
// #models-pricing).
//
// AddCacheBreakpoints decides with a Boost.JSON tree but edits the original
// text: markers are spliced in at byte offsets found by a small scanner, so
// every byte the function does not mean to change (number spellings, string
// escapes, member order, whitespace) stays exactly as the caller sent it.

#include "llmcache/net/prompt_cache.h"

#include <algorithm>
#include <boost/algorithm/string/case_conv.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <exception>
#include <fstream>
#include <iterator>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "llmcache/key.h"
#include "llmcache/net/json_util.h"

namespace llmcache::net {
namespace {

namespace json = boost::json;
using json_util::ArrayMember;
using json_util::kMaxJsonDepth;
using json_util::Member;
using json_util::ObjectMember;
using json_util::ParseJson;

constexpr size_t kNpos = std::string_view::npos;

bool IsSet(const json::value* v) { return v != nullptr && !v->is_null(); }

// ---------------------------------------------------------------------------
// Model families

struct Version {
  int major = -1;  // -1: no version in the name
  int minor = 0;
  bool AtLeast(int ma, int mi) const {
    return major > ma || (major == ma && minor >= mi);
  }
};

bool IsShortNumber(std::string_view s) {
  return !s.empty() && s.size() <= 2 &&
         std::all_of(s.begin(), s.end(),
                     [](char c) { return c >= '0' && c <= '9'; });
}

int ToInt(std::string_view s) {
  int v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// The first version in a model name: "claude-opus-4.5" and "claude-opus-4-5"
// -> 4.5, "claude-3-5-haiku-20241022" -> 3.5, "claude-sonnet-4-20250514" ->
// 4.0, "gemini-2.5-pro-preview-05-06" -> 2.5. Components have at most two
// digits, so dates are never taken for versions.
Version ParseVersion(std::string_view name) {
  std::vector<std::string_view> tokens;
  size_t start = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '-' || name[i] == '_') {
      tokens.push_back(name.substr(start, i - start));
      start = i + 1;
    }
  }
  Version v;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const std::string_view token = tokens[t];
    const size_t dot = token.find('.');
    if (dot != kNpos) {
      const std::string_view ma = token.substr(0, dot);
      std::string_view mi = token.substr(dot + 1);
      mi = mi.substr(0, mi.find('.'));
      if (IsShortNumber(ma) && IsShortNumber(mi)) {
        v.major = ToInt(ma);
        v.minor = ToInt(mi);
        return v;
      }
      continue;
    }
    if (IsShortNumber(token)) {
      v.major = ToInt(token);
      if (t + 1 < tokens.size() && IsShortNumber(tokens[t + 1])) {
        v.minor = ToInt(tokens[t + 1]);
      }
      return v;
    }
  }
  return v;
}

bool HasToken(std::string_view name, std::string_view word) {
  size_t pos = name.find(word);
  while (pos != kNpos) {
    const bool left = pos == 0 || name[pos - 1] == '-' || name[pos - 1] == '_';
    const size_t end = pos + word.size();
    const bool right =
        end == name.size() || name[end] == '-' || name[end] == '_';
    if (left && right) return true;
    pos = name.find(word, pos + 1);
  }
  return false;
}

// ---------------------------------------------------------------------------
// Byte offsets in already-validated JSON text

// Finds the spans of values in JSON text that Boost.JSON has already
// accepted, so it only guards against running off the end. Every position
// returned is an offset into the text; kNpos means "not as expected".
class JsonScanner {
 public:
  explicit JsonScanner(std::string_view text) : s_(text) {}

  size_t SkipWs(size_t p) const {
    while (p < s_.size() &&
           (s_[p] == ' ' || s_[p] == '\t' || s_[p] == '\n' || s_[p] == '\r')) {
      ++p;
    }
    return p;
  }

  // `p` at '"': the position after the closing quote.
  size_t StringEnd(size_t p) const {
    for (size_t q = p + 1; q < s_.size(); ++q) {
      if (s_[q] == '\\') {
        ++q;
      } else if (s_[q] == '"') {
        return q + 1;
      }
    }
    return kNpos;
  }

  // `p` at the first byte of a value: the position after it.
  size_t ValueEnd(size_t p) const {
    if (p >= s_.size()) return kNpos;
    const char c = s_[p];
    if (c == '"') return StringEnd(p);
    if (c == '{' || c == '[') {
      int depth = 0;
      for (size_t q = p; q < s_.size(); ++q) {
        const char d = s_[q];
        if (d == '"') {
          q = StringEnd(q);
          if (q == kNpos) return kNpos;
          --q;
        } else if (d == '{' || d == '[') {
          ++depth;
        } else if (d == '}' || d == ']') {
          if (--depth == 0) return q + 1;
        }
      }
      return kNpos;
    }
    size_t q = p;
    while (q < s_.size() && s_[q] != ',' && s_[q] != '}' && s_[q] != ']' &&
           s_[q] != ' ' && s_[q] != '\t' && s_[q] != '\n' && s_[q] != '\r') {
      ++q;
    }
    return q;
  }

  // Calls f(key, value_begin, value_end) for each member of the object at
  // `p` (whitespace allowed before it). Returns the offset of its '}'.
  template <typename F>
  size_t Members(size_t p, F&& f) const {
    p = SkipWs(p);
    if (p >= s_.size() || s_[p] != '{') return kNpos;
    p = SkipWs(p + 1);
    if (p < s_.size() && s_[p] == '}') return p;
    while (p < s_.size() && s_[p] == '"') {
      const size_t key_end = StringEnd(p);
      if (key_end == kNpos) return kNpos;
      const std::string key = DecodeKey(p, key_end);
      p = SkipWs(key_end);
      if (p >= s_.size() || s_[p] != ':') return kNpos;
      const size_t begin = SkipWs(p + 1);
      const size_t end = ValueEnd(begin);
      if (end == kNpos) return kNpos;
      f(std::string_view(key), begin, end);
      p = SkipWs(end);
      if (p < s_.size() && s_[p] == '}') return p;
      if (p >= s_.size() || s_[p] != ',') return kNpos;
      p = SkipWs(p + 1);
    }
    return kNpos;
  }

  // Calls f(index, begin, end) for each element of the array at `p`.
  // Returns the offset of its ']'.
  template <typename F>
  size_t Elements(size_t p, F&& f) const {
    p = SkipWs(p);
    if (p >= s_.size() || s_[p] != '[') return kNpos;
    p = SkipWs(p + 1);
    if (p < s_.size() && s_[p] == ']') return p;
    for (size_t index = 0;; ++index) {
      const size_t end = ValueEnd(p);
      if (end == kNpos) return kNpos;
      f(index, p, end);
      p = SkipWs(end);
      if (p < s_.size() && s_[p] == ']') return p;
      if (p >= s_.size() || s_[p] != ',') return kNpos;
      p = SkipWs(p + 1);
    }
  }

 private:
  // The member name in [begin, end) (quotes included), with escapes decoded.
  std::string DecodeKey(size_t begin, size_t end) const {
    const std::string_view raw = s_.substr(begin + 1, end - begin - 2);
    if (raw.find('\\') == kNpos) return std::string(raw);
    boost::system::error_code ec;
    const json::value v = json::parse(s_.substr(begin, end - begin), ec);
    return !ec && v.is_string() ? std::string(v.get_string()) : std::string();
  }

  std::string_view s_;
};

// ---------------------------------------------------------------------------
// Breakpoint placement

// A block to mark: messages[message].content[part], or the whole string
// content when part is kNpos.
struct Mark {
  size_t message;
  size_t part;
  size_t bytes;
};

struct Edit {
  size_t begin;  // bytes [begin, end) of the body are replaced by `text`
  size_t end;
  std::string text;
};

bool IsSystemRole(std::string_view role) {
  return role == "system" || role == "developer";
}

bool PartHasMarker(const json::object& part) {
  return IsSet(Member(part, "cache_control")) ||
         IsSet(Member(part, "prompt_cache_breakpoint"));
}

// The text of a `{type:"text", text}` part, or nullptr.
const json::string* PartText(const json::value& part) {
  if (!part.is_object()) return nullptr;
  const json::object& o = part.get_object();
  const json::value* type = Member(o, "type");
  const json::value* text = Member(o, "text");
  if (type == nullptr || !type->is_string() || type->get_string() != "text" ||
      text == nullptr || !text->is_string()) {
    return nullptr;
  }
  return &text->get_string();
}

// Breakpoints the caller already placed: top-level automatic caching, tools,
// messages, and content parts (either marker style; Anthropic counts them all
// against its limit).
int CountMarkers(const json::object& root) {
  int count = IsSet(Member(root, "cache_control")) ? 1 : 0;
  if (const json::value* tools = Member(root, "tools");
      tools != nullptr && tools->is_array()) {
    for (const json::value& t : tools->get_array()) {
      if (t.is_object() && PartHasMarker(t.get_object())) ++count;
    }
  }
  for (const json::value& m : Member(root, "messages")->get_array()) {
    if (!m.is_object()) continue;
    if (PartHasMarker(m.get_object())) ++count;
    const json::value* content = Member(m.get_object(), "content");
    if (content == nullptr || !content->is_array()) continue;
    for (const json::value& part : content->get_array()) {
      if (part.is_object() && PartHasMarker(part.get_object())) ++count;
    }
  }
  return count;
}

// True if the message or any of its parts already has a marker.
bool MessageHasMarker(const json::object& message) {
  if (PartHasMarker(message)) return true;
  const json::value* content = Member(message, "content");
  if (content == nullptr || !content->is_array()) return false;
  for (const json::value& part : content->get_array()) {
    if (part.is_object() && PartHasMarker(part.get_object())) return true;
  }
  return false;
}

std::string MarkerJson(const BreakpointOptions& options) {
  std::string marker = R"({"type":"ephemeral")";
  if (!options.ttl.empty()) {
    marker += R"(,"ttl":)";
    marker += json_util::Serialize(json::value(options.ttl));
  }
  marker += '}';
  return marker;
}

// Chooses the blocks to mark (see the header for the rule).
std::vector<Mark> ChooseMarks(const json::array& messages, size_t last_user,
                              size_t min_bytes, size_t budget) {
  std::vector<Mark> marks;
  // System and developer messages first, in order.
  for (size_t i = 0; i <= last_user && marks.size() < budget; ++i) {
    if (!messages[i].is_object()) continue;
    const json::object& m = messages[i].get_object();
    const json::value* role = Member(m, "role");
    if (role == nullptr || !role->is_string() ||
        !IsSystemRole(role->get_string()) || MessageHasMarker(m)) {
      continue;
    }
    const json::value* content = Member(m, "content");
    if (content == nullptr) continue;
    if (content->is_string()) {
      const size_t bytes = content->get_string().size();
      if (bytes >= min_bytes && bytes > 0) marks.push_back({i, kNpos, bytes});
    } else if (content->is_array()) {
      // The whole system prompt is one block: mark its last text part.
      size_t bytes = 0;
      size_t last_text = kNpos;
      const json::array& parts = content->get_array();
      for (size_t j = 0; j < parts.size(); ++j) {
        if (const json::string* text = PartText(parts[j])) {
          bytes += text->size();
          last_text = j;
        }
      }
      if (last_text != kNpos && bytes >= min_bytes && bytes > 0) {
        marks.push_back({i, last_text, bytes});
      }
    }
  }
  if (marks.size() >= budget) return marks;

  // Then the largest other text blocks.
  std::vector<Mark> others;
  for (size_t i = 0; i <= last_user; ++i) {
    if (!messages[i].is_object()) continue;
    const json::object& m = messages[i].get_object();
    const json::value* role = Member(m, "role");
    if ((role != nullptr && role->is_string() &&
         IsSystemRole(role->get_string())) ||
        PartHasMarker(m)) {
      continue;
    }
    const json::value* content = Member(m, "content");
    if (content == nullptr) continue;
    if (content->is_string()) {
      const size_t bytes = content->get_string().size();
      if (bytes >= min_bytes && bytes > 0) others.push_back({i, kNpos, bytes});
    } else if (content->is_array()) {
      const json::array& parts = content->get_array();
      for (size_t j = 0; j < parts.size(); ++j) {
        const json::string* text = PartText(parts[j]);
        if (text == nullptr || PartHasMarker(parts[j].get_object())) continue;
        if (text->size() >= min_bytes && !text->empty()) {
          others.push_back({i, j, text->size()});
        }
      }
    }
  }
  std::stable_sort(
      others.begin(), others.end(),
      [](const Mark& a, const Mark& b) { return a.bytes > b.bytes; });
  for (const Mark& mark : others) {
    if (marks.size() >= budget) break;
    marks.push_back(mark);
  }
  return marks;
}

// The rolling breakpoint: the last text block of the last message that has
// one. nullopt when that block (or its message) is marked already, or there
// is none.
std::optional<Mark> RollingMark(const json::array& messages) {
  for (size_t i = messages.size(); i-- > 0;) {
    if (!messages[i].is_object()) continue;
    const json::object& m = messages[i].get_object();
    if (PartHasMarker(m)) return std::nullopt;
    const json::value* content = Member(m, "content");
    if (content == nullptr) continue;
    if (content->is_string()) {
      if (content->get_string().empty()) continue;
      return Mark{i, kNpos, content->get_string().size()};
    }
    if (!content->is_array()) continue;
    const json::array& parts = content->get_array();
    for (size_t j = parts.size(); j-- > 0;) {
      const json::string* text = PartText(parts[j]);
      if (text == nullptr) continue;
      if (PartHasMarker(parts[j].get_object())) return std::nullopt;
      return Mark{i, j, text->size()};
    }
  }
  return std::nullopt;
}

// Turns the marks into text edits of `body`.
Status PlanEdits(std::string_view body, size_t message_count,
                 const std::vector<Mark>& marks, const std::string& marker,
                 std::vector<Edit>* edits) {
  const JsonScanner scanner(body);
  const Status not_found = InternalError("cannot locate a message in the body");
  size_t messages_at = kNpos;
  // Boost.JSON keeps the last of duplicate members; so does this.
  if (scanner.Members(0,
                      [&](std::string_view key, size_t begin, size_t) {
                        if (key == "messages") messages_at = begin;
                      }) == kNpos ||
      messages_at == kNpos) {
    return not_found;
  }
  std::vector<std::pair<size_t, size_t>> spans;
  spans.reserve(message_count);
  if (scanner.Elements(messages_at,
                       [&](size_t, size_t begin, size_t end) {
                         spans.emplace_back(begin, end);
                       }) == kNpos ||
      spans.size() != message_count) {
    return not_found;
  }
  for (const Mark& mark : marks) {
    size_t content_begin = kNpos;
    size_t content_end = kNpos;
    if (scanner.Members(spans[mark.message].first,
                        [&](std::string_view key, size_t begin, size_t end) {
                          if (key == "content") {
                            content_begin = begin;
                            content_end = end;
                          }
                        }) == kNpos ||
        content_begin == kNpos) {
      return not_found;
    }
    if (mark.part == kNpos) {
      // A string content becomes a one-part text array; the string literal
      // is copied as sent.
      if (body[content_begin] != '"') return not_found;
      std::string text = R"([{"type":"text","text":)";
      text.append(body.substr(content_begin, content_end - content_begin));
      text += R"(,"cache_control":)";
      text += marker;
      text += "}]";
      edits->push_back({content_begin, content_end, std::move(text)});
      continue;
    }
    size_t part_begin = kNpos;
    size_t part_end = kNpos;
    if (scanner.Elements(content_begin,
                         [&](size_t index, size_t begin, size_t end) {
                           if (index == mark.part) {
                             part_begin = begin;
                             part_end = end;
                           }
                         }) == kNpos ||
        part_begin == kNpos || body[part_end - 1] != '}') {
      return not_found;
    }
    const size_t close = part_end - 1;
    const bool empty = scanner.SkipWs(part_begin + 1) == close;
    std::string text = empty ? R"("cache_control":)" : R"(,"cache_control":)";
    text += marker;
    edits->push_back({close, close, std::move(text)});
  }
  return Status();
}

Result<std::string> AddCacheBreakpointsImpl(std::string_view body,
                                            std::string_view model,
                                            const BreakpointOptions& options) {
  boost::system::error_code ec;
  const json::value doc = ParseJson(body, ec);
  if (ec)
    return InvalidArgumentError("request body is not JSON: " + ec.message());
  if (!doc.is_object()) {
    return InvalidArgumentError("request body is not a JSON object");
  }
  const json::object& root = doc.get_object();
  const json::value* messages_value = Member(root, "messages");
  if (messages_value == nullptr || !messages_value->is_array()) {
    return InvalidArgumentError(
        "not a chat request: `messages` is missing or not an array");
  }
  const json::array& messages = messages_value->get_array();
  size_t last_user = kNpos;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (!messages[i].is_object()) continue;
    const json::value* role = Member(messages[i].get_object(), "role");
    if (role != nullptr && role->is_string() && role->get_string() == "user") {
      last_user = i;
    }
  }
  const int existing = CountMarkers(root);
  if (last_user == kNpos || existing >= options.max_breakpoints ||
      (options.skip_marked && existing > 0)) {
    return std::string(body);
  }
  const size_t budget = static_cast<size_t>(options.max_breakpoints - existing);
  const size_t min_bytes = options.min_block_bytes != 0
                               ? options.min_block_bytes
                               : MinCacheableTokens(model) * 4;
  // The rolling breakpoint caches the whole prompt: worth it once the prompt
  // (here: the body) reaches the minimum. It takes one slot, reserved before
  // the large blocks are chosen.
  std::optional<Mark> rolling;
  if (options.rolling && body.size() >= min_bytes) {
    rolling = RollingMark(messages);
  }
  std::vector<Mark> marks =
      ChooseMarks(messages, last_user, min_bytes, budget - (rolling ? 1 : 0));
  if (rolling && std::none_of(marks.begin(), marks.end(), [&](const Mark& m) {
        return m.message == rolling->message && m.part == rolling->part;
      })) {
    marks.push_back(*rolling);
  }
  if (marks.empty()) return std::string(body);

  std::vector<Edit> edits;
  edits.reserve(marks.size());
  LLMCACHE_RETURN_IF_ERROR(
      PlanEdits(body, messages.size(), marks, MarkerJson(options), &edits));
  std::sort(edits.begin(), edits.end(),
            [](const Edit& a, const Edit& b) { return a.begin < b.begin; });
  size_t extra = 0;
  for (const Edit& e : edits) extra += e.text.size();
  std::string out;
  out.reserve(body.size() + extra);
  size_t pos = 0;
  for (const Edit& e : edits) {
    out.append(body.substr(pos, e.begin - pos));
    out += e.text;
    pos = e.end;
  }
  out.append(body.substr(pos));
  return out;
}

// ---------------------------------------------------------------------------
// Prices

// A /models price: a decimal string ("0.000003") or, leniently, a number.
std::optional<double> ParsePrice(const json::value* v) {
  if (v == nullptr) return std::nullopt;
  double d = 0;
  if (v->is_string()) {
    std::string_view s = v->get_string();
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    if (s.empty()) return std::nullopt;
    const auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), d);
    if (err != std::errc() || end != s.data() + s.size()) return std::nullopt;
  } else if (v->is_double()) {
    d = v->get_double();
  } else if (v->is_int64()) {
    d = static_cast<double>(v->get_int64());
  } else if (v->is_uint64()) {
    d = static_cast<double>(v->get_uint64());
  } else {
    return std::nullopt;
  }
  if (!std::isfinite(d)) return std::nullopt;
  return d;
}

// The pricing of one /models entry; nullopt when it has no usable prompt and
// completion price (routers such as openrouter/auto list "-1").
std::optional<ModelPricing> PricingFromObject(const json::object& p) {
  const std::optional<double> prompt = ParsePrice(Member(p, "prompt"));
  const std::optional<double> completion = ParsePrice(Member(p, "completion"));
  if (!prompt || !completion || *prompt < 0 || *completion < 0) {
    return std::nullopt;
  }
  ModelPricing pricing;
  pricing.prompt = *prompt;
  pricing.completion = *completion;
  if (std::optional<double> read = ParsePrice(Member(p, "input_cache_read"));
      read && *read >= 0) {
    pricing.input_cache_read = read;
  }
  if (std::optional<double> write = ParsePrice(Member(p, "input_cache_write"));
      write && *write >= 0) {
    pricing.input_cache_write = write;
  }
  // `discount`: effective price = price × (1 − discount)
  // (docs/openrouter.md#models-pricing).
  if (const json::value* d = Member(p, "discount");
      d != nullptr && d->is_number()) {
    const double discount = d->to_number<double>();
    if (discount > 0 && discount < 1) {
      const double f = 1 - discount;
      pricing.prompt *= f;
      pricing.completion *= f;
      if (pricing.input_cache_read) *pricing.input_cache_read *= f;
      if (pricing.input_cache_write) *pricing.input_cache_write *= f;
    }
  }
  return pricing;
}

}  // namespace

size_t MinCacheableTokens(std::string_view model) {
  std::string_view base = BaseModel(model);
  if (const size_t slash = base.rfind('/'); slash != kNpos) {
    base.remove_prefix(slash + 1);
  }
  const std::string name = boost::algorithm::to_lower_copy(
      std::string(base), std::locale::classic());
  const Version version = ParseVersion(name);
  if (name.find("claude") != kNpos) {
    if (HasToken(name, "opus")) return version.AtLeast(4, 5) ? 4096 : 1024;
    if (HasToken(name, "haiku")) {
      if (version.AtLeast(4, 5)) return 4096;
      if (version.major == 3 && version.minor == 5) return 2048;
      return 1024;
    }
    return 1024;
  }
  if (name.find("gemini") != kNpos) {
    if (HasToken(name, "pro") && version.AtLeast(2, 5)) return 4096;
    return 1024;
  }
  return 1024;
}

bool SupportsExplicitPromptCache(std::string_view model) {
  std::string id = boost::algorithm::to_lower_copy(
      std::string(BaseModel(model)), std::locale::classic());
  if (!id.empty() && id.front() == '~') id.erase(0, 1);  // "latest" aliases
  std::string_view author;
  std::string_view name = id;
  if (const size_t slash = id.find('/'); slash != kNpos) {
    author = std::string_view(id).substr(0, slash);
    name = std::string_view(id).substr(slash + 1);
  }
  // docs/openrouter.md#provider-caching: Anthropic Claude takes explicit or
  // top-level cache_control; Gemini 2.5+ takes cache_control (explicit
  // caching, last marker only). Everyone else caches automatically or not.
  if (author == "anthropic" || name.starts_with("claude")) return true;
  if ((author.empty() || author == "google") && name.starts_with("gemini-")) {
    return ParseVersion(name).AtLeast(2, 5);
  }
  return false;
}

std::string_view PromptCacheModeName(PromptCacheMode mode) {
  return mode == PromptCacheMode::kAuto ? "auto" : "off";
}

std::optional<PromptCacheMode> PromptCacheModeFromName(std::string_view name) {
  if (name == "off") return PromptCacheMode::kOff;
  if (name == "auto") return PromptCacheMode::kAuto;
  return std::nullopt;
}

Result<std::string> ApplyAutoPromptCache(std::string_view body,
                                         std::string_view model) {
  if (!SupportsExplicitPromptCache(model)) return std::string(body);
  BreakpointOptions options;
  options.rolling = true;
  options.skip_marked = true;
  return AddCacheBreakpoints(body, model, options);
}

Result<std::string> AddCacheBreakpoints(std::string_view body,
                                        std::string_view model,
                                        const BreakpointOptions& options) {
  try {
    return AddCacheBreakpointsImpl(body, model, options);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory adding cache breakpoints");
  } catch (const std::exception& e) {
    return InternalError(std::string("adding cache breakpoints: ") + e.what());
  }
}

Result<PricingTable> PricingTable::FromModelsJson(std::string_view text) {
  try {
    boost::system::error_code ec;
    const json::value doc = ParseJson(text, ec);
    if (ec)
      return InvalidArgumentError("models list is not JSON: " + ec.message());
    const json::value* data =
        doc.is_object() ? Member(doc.get_object(), "data") : nullptr;
    if (data == nullptr || !(data->is_array() || data->is_object())) {
      return InvalidArgumentError(
          "not a /models response: no `data` array or object");
    }
    PricingTable table;
    auto add = [&table](const json::value& entry) {
      if (!entry.is_object()) return;
      const json::object& o = entry.get_object();
      const json::value* id = Member(o, "id");
      const json::value* pricing = Member(o, "pricing");
      if (id == nullptr || !id->is_string() || id->get_string().empty() ||
          pricing == nullptr || !pricing->is_object()) {
        return;
      }
      if (std::optional<ModelPricing> p =
              PricingFromObject(pricing->get_object())) {
        table.Set(std::string(id->get_string()), *p);
      }
    };
    if (data->is_array()) {
      for (const json::value& entry : data->get_array()) add(entry);
    } else {
      add(*data);  // GET /api/v1/model/{author}/{slug}: a single model
    }
    return table;
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory loading prices");
  } catch (const std::exception& e) {
    return InternalError(std::string("loading prices: ") + e.what());
  }
}

Result<PricingTable> PricingTable::FromFile(const std::string& path) {
  std::string text;
  try {
    std::ifstream in(path, std::ios::binary);
    if (!in) return NotFoundError("cannot open price file " + path);
    std::ostringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) return DataLossError("cannot read price file " + path);
    text = std::move(buffer).str();
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory reading " + path);
  } catch (const std::exception& e) {
    return InternalError("reading " + path + ": " + e.what());
  }
  Result<PricingTable> table = FromModelsJson(text);
  if (!table.ok()) return table.status().WithContext(path);
  return table;
}

void PricingTable::Set(std::string model, ModelPricing pricing) {
  prices_.insert_or_assign(std::move(model), pricing);
}

const ModelPricing* PricingTable::Find(std::string_view model) const {
  if (auto it = prices_.find(model); it != prices_.end()) return &it->second;
  const std::string_view base = BaseModel(model);
  if (base.size() != model.size()) {
    if (auto it = prices_.find(base); it != prices_.end()) return &it->second;
  }
  return nullptr;
}

Result<CostBreakdown> ComputeCost(const PricingTable& table,
                                  std::string_view model,
                                  const CompletionUsage& usage) {
  const ModelPricing* p = table.Find(model);
  if (p == nullptr) {
    return NotFoundError("no price for model " + std::string(model));
  }
  const double read_price = p->input_cache_read.value_or(p->prompt);
  const double write_price = p->input_cache_write.value_or(p->prompt);
  // prompt_tokens includes cache reads and writes
  // (docs/openrouter.md#cost-formula); a usage record that claims more cached
  // than prompt tokens prices none uncached.
  const uint64_t cached_and_written =
      usage.cached_tokens + usage.cache_write_tokens;
  const uint64_t uncached = usage.prompt_tokens > cached_and_written
                                ? usage.prompt_tokens - cached_and_written
                                : 0;
  CostBreakdown cost;
  cost.prompt_cost =
      static_cast<double>(uncached) * p->prompt +
      static_cast<double>(usage.cached_tokens) * read_price +
      static_cast<double>(usage.cache_write_tokens) * write_price;
  cost.completion_cost =
      static_cast<double>(usage.completion_tokens) * p->completion;
  if (usage.cost) {
    cost.total = *usage.cost;
    cost.from_usage_cost = true;
  } else {
    cost.total = cost.prompt_cost + cost.completion_cost;
  }
  // Savings compare prompt pricing only, so fees inside usage.cost (plugins,
  // web search) count on both sides and cancel out.
  const double uncached_prompt_cost =
      static_cast<double>(usage.prompt_tokens) * p->prompt;
  cost.prompt_cache_savings = uncached_prompt_cost - cost.prompt_cost;
  cost.uncached_total = cost.total + cost.prompt_cache_savings;
  return cost;
}

Result<PromptCacheEffect> ComputePromptCacheEffect(
    const PricingTable& table, std::string_view model,
    const CompletionUsage& usage) {
  const ModelPricing* p = table.Find(model);
  if (p == nullptr) {
    return NotFoundError("no price for model " + std::string(model));
  }
  const double read_price = p->input_cache_read.value_or(p->prompt);
  const double write_price = p->input_cache_write.value_or(p->prompt);
  PromptCacheEffect e;
  e.write_premium =
      static_cast<double>(usage.cache_write_tokens) * (write_price - p->prompt);
  e.saved = static_cast<double>(usage.cached_tokens) * (p->prompt - read_price);
  if (usage.cost && usage.cached_tokens > 0) {
    // What the prompt actually cost, per the upstream's own bill.
    const double prompt_paid =
        *usage.cost -
        static_cast<double>(usage.completion_tokens) * p->completion;
    const double uncached =
        static_cast<double>(usage.prompt_tokens) * p->prompt;
    e.saved = std::max(0.0, uncached - prompt_paid + e.write_premium);
    e.from_usage_cost = true;
  }
  return e;
}

}  // namespace llmcache::net
