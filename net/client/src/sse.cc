// Server-sent events: the WHATWG line parser and the chat-completion chunk
// accumulator (the replay of a stored response is in sse_replay.cc).
// Shapes: docs/openrouter.md (#streaming-sse, #errors-in-200).

#include "llmcache/net/sse.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "llmcache/net/json_util.h"
#include "sse_util.h"

namespace llmcache::net {
namespace {

namespace json = boost::json;
using json_util::ArrayMember;
using json_util::kMaxJsonDepth;
using json_util::Member;
using json_util::ObjectMember;
using json_util::ParseJson;
using sse_util::IndexOf;
using sse_util::IsEmptyValue;
using sse_util::IsTruthyError;
using sse_util::SerializeFinite;
using sse_util::SplitUtf8;
using sse_util::StringMember;
using sse_util::StringOr;

// How much of a bad chunk is quoted in an error message.
constexpr size_t kQuoteBytes = 64;

std::string Quote(std::string_view data) {
  std::string q(data.substr(0, kQuoteBytes));
  for (char& ch : q) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7F) ch = '?';
  }
  if (data.size() > kQuoteBytes) q += "...";
  return q;
}

}  // namespace

// ---------------------------------------------------------------------------
// SseParser

void SseParser::Feed(std::string_view bytes,
                     const std::function<void(SseEvent&&)>& on_event) {
  // Interprets one complete line (without its terminator).
  auto process_line = [this, &on_event](std::string_view line) {
    if (line.empty()) {
      if (!has_data_) {
        // WHATWG: an event without data is dropped (its type too).
        pending_.event.clear();
        pending_.data.clear();
        return;
      }
      SseEvent ev;
      ev.event = std::move(pending_.event);
      ev.data = std::move(pending_.data);
      ev.id = pending_.id;  // the last event ID persists across events
      pending_.event.clear();
      pending_.data.clear();
      has_data_ = false;
      on_event(std::move(ev));
      return;
    }
    if (line.front() == ':') {
      ++comments_;
      return;
    }
    std::string_view field = line;
    std::string_view value;
    if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
      field = line.substr(0, colon);
      value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
      if (has_data_) pending_.data += '\n';
      pending_.data += value;
      has_data_ = true;
    } else if (field == "event") {
      pending_.event.assign(value);
    } else if (field == "id") {
      if (value.find('\0') == std::string_view::npos) pending_.id.assign(value);
    }
    // "retry" and unknown fields are ignored.
  };

  if (too_large_) return;
  // What the event holds so far and the line being read, whether it is
  // held in line_ or not, so that where the bytes were split does not
  // matter.
  auto over = [this](size_t line) {
    too_large_ = pending_.data.size() + pending_.event.size() +
                     pending_.id.size() + line >
                 max_event_bytes_;
    return too_large_;
  };
  size_t pos = 0;
  const size_t n = bytes.size();
  if (last_was_cr_ && n > 0) {
    // The previous Feed ended with CR: a leading LF completes that CRLF.
    if (bytes[0] == '\n') pos = 1;
    last_was_cr_ = false;
  }
  while (pos < n) {
    const size_t eol = bytes.find_first_of("\r\n", pos);
    if (eol == std::string_view::npos) {
      line_.append(bytes.substr(pos));
      over(line_.size());
      break;
    }
    if (line_.empty()) {
      if (over(eol - pos)) return;
      process_line(bytes.substr(pos, eol - pos));
    } else {
      line_.append(bytes.substr(pos, eol - pos));
      if (over(line_.size())) return;
      process_line(line_);
      line_.clear();
    }
    if (bytes[eol] == '\n') {
      pos = eol + 1;
    } else if (eol + 1 < n) {
      pos = eol + (bytes[eol + 1] == '\n' ? 2 : 1);
    } else {
      last_was_cr_ = true;
      pos = n;
    }
  }
}

bool SseParser::Finish() {
  const bool truncated = !line_.empty() || has_data_ || !pending_.event.empty();
  line_.clear();
  pending_ = SseEvent();
  has_data_ = false;
  last_was_cr_ = false;
  return truncated;
}

// ---------------------------------------------------------------------------
// StreamAccumulator

namespace {

// A JSON number as a whole int64 (0 when it is not a finite number within
// range).
int64_t ClampedInt64(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    const uint64_t u = v.get_uint64();
    return u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
               ? 0
               : static_cast<int64_t>(u);
  }
  if (v.is_double()) {
    const double d = v.get_double();
    if (!std::isfinite(d) || d < -9.2e18 || d > 9.2e18) return 0;
    return static_cast<int64_t>(d);
  }
  return 0;
}

// How the members of a stream merge into the complete response
// (docs/openrouter.md#stream-handling):
//   * delta members are pieces: strings concatenate, arrays append, other
//     values replace; a null only records that the member exists;
//   * choice and top-level members are repeated by every chunk (a snapshot):
//     the last non-null value wins; a null only records that it exists.

void MergeDeltaValue(json::object& into, std::string_view key,
                     const json::value& v) {
  auto it = into.find(key);
  if (it == into.end()) {
    into.emplace(key, v);
    return;
  }
  json::value& cur = it->value();
  if (v.is_null()) return;
  if (v.is_string() && cur.is_string()) {
    cur.get_string().append(v.get_string());
  } else if (v.is_array() && cur.is_array()) {
    json::array& a = cur.get_array();
    for (const json::value& e : v.get_array()) a.push_back(e);
  } else {
    cur = v;
  }
}

void MergeSnapshotValue(json::object& into, std::string_view key,
                        const json::value& v) {
  auto it = into.find(key);
  if (it == into.end()) {
    into.emplace(key, v);
  } else if (!v.is_null()) {
    it->value() = v;
  }
}

// The text members of a reasoning detail, whose pieces concatenate.
bool IsDetailText(std::string_view key) {
  return key == "text" || key == "summary" || key == "data";
}

struct ToolCallState {
  std::string id;
  std::string type;
  std::string name;
  std::string arguments;
  json::object extras;     // other members of the call, in arrival order
  json::object fn_extras;  // other members of `function`

  void Add(const json::object& fragment) {
    std::string_view s;
    for (const auto& kv : fragment) {
      const std::string_view key = kv.key();
      if (key == "index") continue;
      if (key == "id") {
        if (id.empty() && StringMember(fragment, key, &s)) id.assign(s);
      } else if (key == "type") {
        if (type.empty() && StringMember(fragment, key, &s)) type.assign(s);
      } else if (key == "function" && kv.value().is_object()) {
        const json::object& f = kv.value().get_object();
        for (const auto& fkv : f) {
          const std::string_view fkey = fkv.key();
          const json::value& fv = fkv.value();
          if (fkey == "name") {
            if (name.empty() && fv.is_string()) name.assign(fv.get_string());
          } else if (fkey == "arguments") {
            if (fv.is_string()) {
              arguments.append(fv.get_string());
            } else if (!fv.is_null() && arguments.empty()) {
              // Some providers send the arguments as an object.
              arguments = SerializeFinite(fv);
            }
          } else {
            MergeSnapshotValue(fn_extras, fkey, fv);
          }
        }
      } else {
        MergeSnapshotValue(extras, key, kv.value());
      }
    }
  }

  json::object ToJson() const {
    json::object fn;
    fn["name"] = name;
    fn["arguments"] = arguments;
    for (const auto& kv : fn_extras) fn.emplace(kv.key(), kv.value());
    json::object call;
    call["id"] = id;
    call["type"] = type.empty() ? "function" : type;
    call["function"] = std::move(fn);
    for (const auto& kv : extras) call.emplace(kv.key(), kv.value());
    return call;
  }
};

// What stands for choice `index`'s logprobs.`key` array in a serialized
// completion until SpliceLogprobs puts the array's text there: the random
// `nonce` makes it a string that no upstream text holds.
std::string LogprobsPlaceholder(uint64_t nonce, int64_t index,
                                std::string_view key) {
  char head[64];
  std::snprintf(head, sizeof(head),
                "llmcache-logprobs-%016" PRIx64 "-%" PRId64 "-", nonce, index);
  return std::string(head).append(key);
}

// One choice of the stream, by its `index`.
struct ChoiceState {
  // Every delta member but tool_calls and reasoning_details, merged.
  json::object message;
  std::map<int64_t, ToolCallState> tool_calls;  // by `index`
  bool tool_calls_seen = false;  // an array arrived (maybe empty)
  bool tool_calls_null = false;  // a null arrived
  json::array reasoning_details;
  std::map<int64_t, size_t> detail_at;  // index -> latest element with it
  bool details_seen = false;            // an array arrived (maybe empty)
  bool details_null = false;            // a null arrived
  // Null until an object arrives. Its `content` and `refusal` arrays, which
  // concatenate, are held as the JSON text of their elements (`lp_text`,
  // comma-separated), with an empty array in their place here: as a DOM a
  // long stream's top_logprobs took ~4x their text, for the whole stream.
  json::value logprobs;
  std::map<std::string, std::string, std::less<>> lp_text;
  std::string finish_reason;  // the last non-empty one
  std::string native_finish_reason;
  json::object fields;  // other choice members (error, ...), snapshots

  void Add(const json::object& choice) {
    for (const auto& kv : choice) {
      const std::string_view key = kv.key();
      const json::value& v = kv.value();
      if (key == "index") continue;
      if (key == "delta") {
        if (v.is_object()) AddDelta(v.get_object());
      } else if (key == "logprobs") {
        AddLogprobs(v);
      } else if (key == "finish_reason") {
        if (v.is_string() && !v.get_string().empty()) {
          finish_reason.assign(v.get_string());
        }
      } else if (key == "native_finish_reason") {
        if (v.is_string() && !v.get_string().empty()) {
          native_finish_reason.assign(v.get_string());
        }
      } else if (key == "message") {
        // Not a stream member; never merged into the deltas.
      } else {
        MergeSnapshotValue(fields, key, v);
      }
    }
  }

  void AddDelta(const json::object& delta) {
    for (const auto& kv : delta) {
      const std::string_view key = kv.key();
      const json::value& v = kv.value();
      if (key == "role") {
        if (v.is_string() && !v.get_string().empty()) message["role"] = v;
      } else if (key == "tool_calls") {
        if (v.is_array()) {
          tool_calls_seen = true;
          AddToolCalls(v.get_array());
        } else if (v.is_null()) {
          tool_calls_null = true;
        }
      } else if (key == "reasoning_details") {
        if (v.is_array()) {
          details_seen = true;
          for (const json::value& d : v.get_array()) AddDetail(d);
        } else if (v.is_null()) {
          details_null = true;
        }
      } else {
        MergeDeltaValue(message, key, v);
      }
    }
  }

  void AddToolCalls(const json::array& calls) {
    for (size_t i = 0; i < calls.size(); ++i) {
      if (!calls[i].is_object()) continue;
      const json::object& c = calls[i].get_object();
      // `index` is required by the protocol; its position is the fallback.
      const int64_t index = IndexOf(c).value_or(static_cast<int64_t>(i));
      tool_calls[index].Add(c);
    }
  }

  // Elements with the `index` of an earlier element of the same type are
  // its continuation: text, summary and data concatenate, other members
  // keep their first non-null value (docs/openrouter.md#stream-handling).
  void AddDetail(const json::value& d) {
    const json::object* o = d.if_object();
    const std::optional<int64_t> index =
        o != nullptr ? IndexOf(*o) : std::nullopt;
    if (index) {
      auto it = detail_at.find(*index);
      if (it != detail_at.end()) {
        json::object& cur = reasoning_details[it->second].get_object();
        const json::value* type = Member(*o, "type");
        const json::value* cur_type = Member(cur, "type");
        if (type == nullptr || type->is_null() || cur_type == nullptr ||
            *type == *cur_type) {
          for (const auto& kv : *o) {
            const std::string_view key = kv.key();
            if (key == "index") continue;
            auto at = cur.find(key);
            if (at == cur.end()) {
              cur.emplace(key, kv.value());
            } else if (IsDetailText(key) && at->value().is_string() &&
                       kv.value().is_string()) {
              at->value().get_string().append(kv.value().get_string());
            } else if (at->value().is_null()) {
              at->value() = kv.value();
            }
          }
          return;
        }
      }
      detail_at[*index] = reasoning_details.size();
    }
    reasoning_details.push_back(d);
  }

  // logprobs.content and logprobs.refusal arrays concatenate (a null keeps
  // what came, any other value replaces it); other members are snapshots.
  void AddLogprobs(const json::value& v) {
    if (v.is_null()) return;
    if (!v.is_object()) {
      logprobs = v;
      lp_text.clear();
      return;
    }
    if (!logprobs.is_object()) {
      logprobs = json::object();
      lp_text.clear();
    }
    json::object& cur = logprobs.get_object();
    for (const auto& kv : v.get_object()) {
      const std::string_view key = kv.key();
      const json::value& e = kv.value();
      if (key != "content" && key != "refusal") {
        MergeSnapshotValue(cur, key, e);
        continue;
      }
      auto at = cur.find(key);
      if (e.is_null() && at != cur.end()) continue;
      auto text = lp_text.find(key);
      if (!e.is_array()) {  // replaces what came
        if (text != lp_text.end()) lp_text.erase(text);
        cur[key] = e;
        continue;
      }
      if (text == lp_text.end()) {  // a first array, or one replacing a value
        text = lp_text.emplace(std::string(key), std::string()).first;
        cur[key] = json::array();
      }
      for (const json::value& element : e.get_array()) {
        if (!text->second.empty()) text->second += ',';
        text->second += SerializeFinite(element);
      }
    }
  }

  json::object ToJson(int64_t index, const json::value* error,
                      uint64_t nonce) const {
    json::object m;
    auto role = message.find("role");
    m["role"] =
        role != message.end() ? role->value() : json::value("assistant");
    auto content = message.find("content");
    m["content"] =
        content != message.end() ? content->value() : json::value(nullptr);
    // OpenRouter's non-streaming message always has these two.
    for (std::string_view key : {"refusal", "reasoning"}) {
      auto it = message.find(key);
      m[key] = it != message.end() ? it->value() : json::value(nullptr);
    }
    for (const auto& kv : message) {
      if (!m.contains(kv.key())) m.emplace(kv.key(), kv.value());
    }
    if (details_seen) {
      m["reasoning_details"] = reasoning_details;
    } else if (details_null) {
      m["reasoning_details"] = nullptr;
    }
    if (!tool_calls.empty()) {
      json::array calls;
      calls.reserve(tool_calls.size());
      for (const auto& [i, call] : tool_calls) calls.push_back(call.ToJson());
      m["tool_calls"] = std::move(calls);
    } else if (tool_calls_seen) {
      m["tool_calls"] = json::array();
    } else if (tool_calls_null) {
      m["tool_calls"] = nullptr;
    }

    json::object c;
    c["index"] = index;
    c["message"] = std::move(m);
    c["finish_reason"] = finish_reason.empty() ? json::value(nullptr)
                                               : json::value(finish_reason);
    c["native_finish_reason"] = native_finish_reason.empty()
                                    ? json::value(nullptr)
                                    : json::value(native_finish_reason);
    c["logprobs"] = logprobs;
    if (!lp_text.empty() && logprobs.is_object()) {
      // Placeholders, which SpliceLogprobs replaces with the arrays' text.
      json::object& lp = c["logprobs"].get_object();
      for (const auto& [key, text] : lp_text) {
        lp[key] = LogprobsPlaceholder(nonce, index, key);
      }
    }
    for (const auto& kv : fields) c.emplace(kv.key(), kv.value());
    // A top-level error event stays with the choice it ended.
    if (error != nullptr && !IsTruthyError(Member(c, "error"))) {
      c["error"] = *error;
    }
    return c;
  }
};

}  // namespace

struct StreamAccumulator::Impl {
  std::string id;
  std::string model;
  std::string provider;
  json::value created;  // as sent; null until seen
  json::object extra;   // other top-level members (system_fingerprint, ...)
  std::map<int64_t, ChoiceState> choices;  // by `index`
  bool has_choices = false;
  std::optional<CompletionUsage> usage;
  json::value usage_raw;  // the usage object as received; null until seen
  json::value error_raw;  // the first error as received; null until seen
  // A top-level error event without choices; null until seen.
  json::value top_error;
  // Choices ended by a top-level error event: index -> the error.
  std::map<int64_t, json::value> choice_top_errors;

  const ChoiceState* First() const {
    return choices.empty() ? nullptr : &choices.begin()->second;
  }
};

namespace {

// `json` with each logprobs placeholder of `choices` (ToJson) replaced by
// its array: "[" the elements' text "]". One pass over `json`.
std::string SpliceLogprobs(std::string json,
                           const std::map<int64_t, ChoiceState>& choices,
                           uint64_t nonce) {
  struct Piece {
    size_t at;
    size_t size;
    const std::string* text;
  };
  std::vector<Piece> pieces;
  for (const auto& [index, state] : choices) {
    for (const auto& [key, text] : state.lp_text) {
      const std::string quoted =
          '"' + LogprobsPlaceholder(nonce, index, key) + '"';
      const size_t at = json.find(quoted);
      if (at != std::string::npos) pieces.push_back({at, quoted.size(), &text});
    }
  }
  if (pieces.empty()) return json;
  std::sort(pieces.begin(), pieces.end(),
            [](const Piece& a, const Piece& b) { return a.at < b.at; });
  size_t size = json.size();
  for (const Piece& p : pieces) size += p.text->size() + 2 - p.size;
  std::string out;
  out.reserve(size);
  size_t from = 0;
  for (const Piece& p : pieces) {
    out.append(json, from, p.at - from);
    out += '[';
    out += *p.text;
    out += ']';
    from = p.at + p.size;
  }
  out.append(json, from);
  return out;
}

}  // namespace

StreamAccumulator::StreamAccumulator() : impl_(std::make_unique<Impl>()) {}
StreamAccumulator::~StreamAccumulator() = default;
StreamAccumulator::StreamAccumulator(StreamAccumulator&&) noexcept = default;
StreamAccumulator& StreamAccumulator::operator=(StreamAccumulator&&) noexcept =
    default;

Status StreamAccumulator::Add(std::string_view data) {
  try {
    if (data.starts_with("[DONE]")) {
      done_ = true;
      return Status();
    }
    boost::system::error_code ec;
    const json::value v = ParseJson(data, ec);
    if (ec || !v.is_object()) {
      return InvalidArgumentError("stream chunk is not a JSON object: " +
                                  Quote(data));
    }
    const json::object& o = v.get_object();
    const json::array* choices = ArrayMember(o, "choices");
    const json::value* usage = Member(o, "usage");
    const bool has_usage = usage != nullptr && usage->is_object();
    // A debug echo (docs/openrouter.md#stream-debug-echo) carries no part of
    // the response.
    if (Member(o, "debug") != nullptr &&
        (choices == nullptr || choices->empty()) && !has_usage) {
      return Status();
    }
    // A moved-from accumulator starts over rather than crash.
    if (impl_ == nullptr) impl_ = std::make_unique<Impl>();
    Impl& impl = *impl_;
    for (const auto& kv : o) {
      const std::string_view key = kv.key();
      const json::value& value = kv.value();
      if (key == "id" || key == "model" || key == "provider") {
        std::string& field = key == "id"      ? impl.id
                             : key == "model" ? impl.model
                                              : impl.provider;
        if (field.empty() && value.is_string())
          field.assign(value.get_string());
      } else if (key == "created") {
        if (impl.created.is_null() && value.is_number()) impl.created = value;
      } else if (key == "object" || key == "choices" || key == "usage" ||
                 key == "error" || key == "debug" || key == "obfuscation") {
        // Chunk framing, handled below, or not part of the response.
      } else {
        MergeSnapshotValue(impl.extra, key, value);
      }
    }

    const json::value* top_error = Member(o, "error");
    const bool top_error_truthy = IsTruthyError(top_error);
    const json::value* choice_error = nullptr;
    bool chunk_had_choice = false;
    if (choices != nullptr) {
      for (const json::value& c : *choices) {
        if (!c.is_object()) continue;
        const json::object& choice = c.get_object();
        // A missing (or invalid) index is the first choice.
        const int64_t index = IndexOf(choice).value_or(0);
        impl.choices[index].Add(choice);
        impl.has_choices = true;
        chunk_had_choice = true;
        if (const json::value* e = Member(choice, "error"); IsTruthyError(e)) {
          if (choice_error == nullptr) choice_error = e;
        }
        if (top_error_truthy) impl.choice_top_errors.emplace(index, *top_error);
      }
    }
    if (top_error_truthy && !chunk_had_choice && impl.top_error.is_null()) {
      impl.top_error = *top_error;
    }
    const bool has_error = top_error_truthy || choice_error != nullptr;
    if (has_usage || (has_error && !error_)) {
      // Usage and error chunks are rare (one each): parse them again with
      // ParseCompletion so both paths share one reading of these shapes.
      llmcache::Result<ParsedCompletion> parsed = ParseCompletion(data);
      if (parsed.ok()) {
        if (has_usage && parsed->usage) {
          impl.usage = parsed->usage;
          impl.usage_raw = *usage;
        }
        if (has_error && !error_ && parsed->error) {
          error_ = parsed->error;
          impl.error_raw = top_error_truthy ? *top_error : *choice_error;
        }
      }
    }
    return Status();
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory accumulating a stream");
  } catch (const std::exception& e) {
    return InternalError(std::string("accumulating a stream: ") + e.what());
  }
}

ParsedCompletion StreamAccumulator::Result() const {
  static const Impl* const kEmpty = new Impl();  // never destroyed
  const Impl& impl = impl_ != nullptr ? *impl_ : *kEmpty;
  ParsedCompletion c;
  c.id = impl.id;
  c.model = impl.model;
  c.provider = impl.provider;
  c.created = ClampedInt64(impl.created);
  c.has_choices = impl.has_choices;
  c.usage = impl.usage;
  c.error = error_;
  const ChoiceState* first = impl.First();
  if (first == nullptr) return c;
  std::string_view s;
  if (StringMember(first->message, "content", &s)) {
    c.content.assign(s);
    c.content_null = false;
  }
  if ((StringMember(first->message, "reasoning", &s) && !s.empty()) ||
      StringMember(first->message, "reasoning_content", &s)) {
    c.reasoning.assign(s);
  }
  if (StringMember(first->message, "refusal", &s)) c.refusal.assign(s);
  c.tool_calls.reserve(first->tool_calls.size());
  for (const auto& [index, call] : first->tool_calls) {
    ToolCall t;
    t.index = static_cast<int>(std::min<int64_t>(index, 1 << 30));
    t.id = call.id;
    t.type = call.type.empty() ? "function" : call.type;
    t.name = call.name;
    t.arguments = call.arguments;
    c.tool_calls.push_back(std::move(t));
  }
  c.finish_reason = first->finish_reason;
  c.native_finish_reason = first->native_finish_reason;
  return c;
}

std::string StreamAccumulator::ToCompletionJson() const {
  try {
    static const Impl* const kEmpty = new Impl();  // never destroyed
    const Impl& impl = impl_ != nullptr ? *impl_ : *kEmpty;
    thread_local std::mt19937_64 random{std::random_device{}()};
    const uint64_t nonce = random();
    json::object root;
    root["id"] = impl.id;
    if (!impl.provider.empty()) root["provider"] = impl.provider;
    root["model"] = impl.model;
    root["object"] = "chat.completion";
    root["created"] = impl.created.is_null() ? json::value(0) : impl.created;

    // An error stays with the response: in the choice it ended when the
    // stream had choices (docs/openrouter.md#errors-in-200, "in a choice"),
    // else at the top level.
    json::array choices;
    if (impl.choices.empty()) {
      const ChoiceState none;
      choices.push_back(none.ToJson(0, nullptr, nonce));
    } else {
      bool top_error_placed = impl.top_error.is_null();
      for (const auto& [index, state] : impl.choices) {
        const json::value* error = nullptr;
        if (auto it = impl.choice_top_errors.find(index);
            it != impl.choice_top_errors.end()) {
          error = &it->second;
        } else if (!top_error_placed) {
          error = &impl.top_error;
          top_error_placed = true;
        }
        choices.push_back(state.ToJson(index, error, nonce));
      }
    }
    root["choices"] = std::move(choices);
    if (!impl.top_error.is_null() && !impl.has_choices) {
      root["error"] = impl.top_error;
    }
    for (const auto& kv : impl.extra) root.emplace(kv.key(), kv.value());
    if (!impl.usage_raw.is_null()) root["usage"] = impl.usage_raw;
    return SpliceLogprobs(SerializeFinite(std::move(root)), impl.choices,
                          nonce);
  } catch (const std::exception&) {
    return std::string();
  }
}

// ---------------------------------------------------------------------------
// ReplayAsSse

}  // namespace llmcache::net
