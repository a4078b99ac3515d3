// Server-sent events: the WHATWG line parser, the chat-completion chunk
// accumulator and the replay of a stored response as a chunk stream.
// Shapes: docs/openrouter.md (#streaming-sse, #errors-in-200).

#include "llmcache/net/sse.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "llmcache/net/json_util.h"

namespace llmcache::net {
namespace {

namespace json = boost::json;
using json_util::ArrayMember;
using json_util::kMaxJsonDepth;
using json_util::Member;
using json_util::ObjectMember;
using json_util::ParseJson;

// How much of a bad chunk is quoted in an error message.
constexpr size_t kQuoteBytes = 64;

// Sets *out to the member's text and returns true if it is a string.
bool StringMember(const json::object& o, std::string_view key,
                  std::string_view* out) {
  const json::value* v = Member(o, key);
  if (v == nullptr || !v->is_string()) return false;
  *out = v->get_string();
  return true;
}

std::string StringOr(const json::object& o, std::string_view key) {
  std::string_view s;
  return StringMember(o, key, &s) ? std::string(s) : std::string();
}

// True for an `error` member the OpenAI SDKs would raise on (truthy).
bool IsTruthyError(const json::value* v) {
  if (v == nullptr || v->is_null()) return false;
  if (v->is_bool()) return v->get_bool();
  if (v->is_string()) return !v->get_string().empty();
  if (v->is_object()) return !v->get_object().empty();
  if (v->is_array()) return !v->get_array().empty();
  return true;
}

std::string Quote(std::string_view data) {
  std::string q(data.substr(0, kQuoteBytes));
  for (char& ch : q) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7F) ch = '?';
  }
  if (data.size() > kQuoteBytes) q += "...";
  return q;
}

bool IsUtf8Continuation(char ch) {
  return (static_cast<unsigned char>(ch) & 0xC0) == 0x80;
}

// Splits `text` into pieces of at most `max_bytes` bytes that never end
// inside a UTF-8 sequence. A single code point longer than `max_bytes` makes
// a piece of its own (a piece is never empty).
std::vector<std::string_view> SplitUtf8(std::string_view text,
                                        size_t max_bytes) {
  std::vector<std::string_view> pieces;
  if (max_bytes == 0) max_bytes = 1;
  pieces.reserve(text.size() / max_bytes + 1);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = std::min(pos + max_bytes, text.size());
    if (end < text.size() && IsUtf8Continuation(text[end])) {
      size_t back = end;
      while (back > pos && IsUtf8Continuation(text[back])) --back;
      if (back > pos) {
        end = back;
      } else {
        while (end < text.size() && IsUtf8Continuation(text[end])) ++end;
      }
    }
    pieces.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return pieces;
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
      break;
    }
    if (line_.empty()) {
      process_line(bytes.substr(pos, eol - pos));
    } else {
      line_.append(bytes.substr(pos, eol - pos));
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

struct StreamAccumulator::Impl {
  std::string id;
  std::string model;
  std::string provider;
  json::value created;             // as sent; null until seen
  json::value system_fingerprint;  // as sent; null until seen
  std::string role;
  std::string content;
  bool content_seen = false;  // a string `content` delta arrived
  std::string reasoning;
  std::map<int, ToolCall> tool_calls;  // by `index`
  std::string finish_reason;
  std::string native_finish_reason;
  bool has_choices = false;
  std::optional<CompletionUsage> usage;
  json::value usage_raw;  // the usage object as received; null until seen
  json::value error_raw;  // the first error as received; null until seen

  void AddChoice(const json::object& choice);
  void AddToolCalls(const json::array& calls);
};

StreamAccumulator::StreamAccumulator() : impl_(std::make_unique<Impl>()) {}
StreamAccumulator::~StreamAccumulator() = default;
StreamAccumulator::StreamAccumulator(StreamAccumulator&&) noexcept = default;
StreamAccumulator& StreamAccumulator::operator=(StreamAccumulator&&) noexcept =
    default;

void StreamAccumulator::Impl::AddChoice(const json::object& choice) {
  has_choices = true;
  if (const json::object* delta = ObjectMember(choice, "delta")) {
    std::string_view s;
    if (StringMember(*delta, "role", &s) && !s.empty()) role.assign(s);
    if (StringMember(*delta, "content", &s)) {
      content += s;
      content_seen = true;
    }
    if (StringMember(*delta, "reasoning", &s) ||
        StringMember(*delta, "reasoning_content", &s)) {
      reasoning += s;
    }
    if (const json::array* calls = ArrayMember(*delta, "tool_calls")) {
      AddToolCalls(*calls);
    }
  }
  std::string_view s;
  if (StringMember(choice, "finish_reason", &s) && !s.empty()) {
    finish_reason.assign(s);
  }
  if (StringMember(choice, "native_finish_reason", &s) && !s.empty()) {
    native_finish_reason.assign(s);
  }
}

void StreamAccumulator::Impl::AddToolCalls(const json::array& calls) {
  for (size_t i = 0; i < calls.size(); ++i) {
    if (!calls[i].is_object()) continue;
    const json::object& c = calls[i].get_object();
    // `index` is required by the protocol; its position is the fallback.
    int index = static_cast<int>(i);
    if (const json::value* v = Member(c, "index"); v != nullptr) {
      if (v->is_int64() && v->get_int64() >= 0 && v->get_int64() < 1 << 20) {
        index = static_cast<int>(v->get_int64());
      } else if (v->is_uint64() && v->get_uint64() < 1 << 20) {
        index = static_cast<int>(v->get_uint64());
      }
    }
    ToolCall& call = tool_calls[index];
    call.index = index;
    std::string_view s;
    if (call.id.empty() && StringMember(c, "id", &s)) call.id.assign(s);
    if (call.type.empty() && StringMember(c, "type", &s)) call.type.assign(s);
    if (const json::object* f = ObjectMember(c, "function")) {
      if (call.name.empty() && StringMember(*f, "name", &s)) {
        call.name.assign(s);
      }
      if (StringMember(*f, "arguments", &s)) call.arguments += s;
    }
  }
}

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
    std::string_view s;
    if (impl.id.empty() && StringMember(o, "id", &s)) impl.id.assign(s);
    if (impl.model.empty() && StringMember(o, "model", &s))
      impl.model.assign(s);
    if (impl.provider.empty() && StringMember(o, "provider", &s)) {
      impl.provider.assign(s);
    }
    if (const json::value* c = Member(o, "created");
        c != nullptr && impl.created.is_null() && c->is_number()) {
      impl.created = *c;
    }
    if (const json::value* f = Member(o, "system_fingerprint");
        f != nullptr && f->is_string()) {
      impl.system_fingerprint = *f;
    }

    const json::value* top_error = Member(o, "error");
    const json::value* choice_error = nullptr;
    if (choices != nullptr) {
      for (const json::value& c : *choices) {
        if (!c.is_object()) continue;
        const json::object& choice = c.get_object();
        // OpenRouter sends one choice; any other index is not ours to merge.
        const json::value* index = Member(choice, "index");
        if (index != nullptr && index->is_number() &&
            !(index->is_int64() && index->get_int64() == 0) &&
            !(index->is_uint64() && index->get_uint64() == 0)) {
          continue;
        }
        impl.AddChoice(choice);
        if (const json::value* e = Member(choice, "error"); IsTruthyError(e)) {
          choice_error = e;
        }
      }
    }
    const bool has_error = IsTruthyError(top_error) || choice_error != nullptr;
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
          impl.error_raw =
              IsTruthyError(top_error) ? *top_error : *choice_error;
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
  if (impl.created.is_int64()) {
    c.created = impl.created.get_int64();
  } else if (impl.created.is_uint64()) {
    c.created = static_cast<int64_t>(impl.created.get_uint64());
  } else if (impl.created.is_double()) {
    c.created = static_cast<int64_t>(impl.created.get_double());
  }
  c.content = impl.content;
  c.content_null = !impl.content_seen;
  c.reasoning = impl.reasoning;
  c.tool_calls.reserve(impl.tool_calls.size());
  for (const auto& [index, call] : impl.tool_calls) {
    c.tool_calls.push_back(call);
    if (c.tool_calls.back().type.empty()) c.tool_calls.back().type = "function";
  }
  c.finish_reason = impl.finish_reason;
  c.native_finish_reason = impl.native_finish_reason;
  c.has_choices = impl.has_choices;
  c.usage = impl.usage;
  c.error = error_;
  return c;
}

std::string StreamAccumulator::ToCompletionJson() const {
  try {
    static const Impl* const kEmpty = new Impl();  // never destroyed
    const Impl& impl = impl_ != nullptr ? *impl_ : *kEmpty;
    json::object root;
    root["id"] = impl.id;
    if (!impl.provider.empty()) root["provider"] = impl.provider;
    root["model"] = impl.model;
    root["object"] = "chat.completion";
    root["created"] = impl.created.is_null() ? json::value(0) : impl.created;

    json::object message;
    message["role"] = impl.role.empty() ? "assistant" : impl.role;
    if (impl.content_seen) {
      message["content"] = impl.content;
    } else {
      message["content"] = nullptr;
    }
    if (!impl.reasoning.empty()) message["reasoning"] = impl.reasoning;
    if (!impl.tool_calls.empty()) {
      json::array calls;
      calls.reserve(impl.tool_calls.size());
      for (const auto& [index, call] : impl.tool_calls) {
        json::object fn;
        fn["name"] = call.name;
        fn["arguments"] = call.arguments;
        json::object tc;
        tc["id"] = call.id;
        tc["type"] = call.type.empty() ? "function" : call.type;
        tc["function"] = std::move(fn);
        calls.push_back(std::move(tc));
      }
      message["tool_calls"] = std::move(calls);
    }

    json::object choice;
    choice["index"] = 0;
    choice["message"] = std::move(message);
    choice["finish_reason"] = impl.finish_reason.empty()
                                  ? json::value(nullptr)
                                  : json::value(impl.finish_reason);
    choice["native_finish_reason"] =
        impl.native_finish_reason.empty()
            ? json::value(nullptr)
            : json::value(impl.native_finish_reason);
    choice["logprobs"] = nullptr;
    // An error stays with the response: in the choice when the stream had
    // choices (docs/openrouter.md#errors-in-200, "in a choice"), else at the
    // top level.
    if (!impl.error_raw.is_null() && impl.has_choices) {
      choice["error"] = impl.error_raw;
    }
    json::array choices;
    choices.push_back(std::move(choice));
    root["choices"] = std::move(choices);
    if (!impl.error_raw.is_null() && !impl.has_choices) {
      root["error"] = impl.error_raw;
    }
    if (!impl.system_fingerprint.is_null()) {
      root["system_fingerprint"] = impl.system_fingerprint;
    }
    if (!impl.usage_raw.is_null()) root["usage"] = impl.usage_raw;
    return json::serialize(root);
  } catch (const std::exception&) {
    return std::string();
  }
}

// ---------------------------------------------------------------------------
// ReplayAsSse

namespace {

// Builds the chunks of one replayed stream.
class ChunkWriter {
 public:
  ChunkWriter(const json::object& response, std::vector<std::string>* out)
      : out_(out) {
    for (std::string_view key : {"id", "provider", "model"}) {
      if (const json::value* v = Member(response, key)) head_[key] = *v;
    }
    head_["object"] = "chat.completion.chunk";
    if (const json::value* v = Member(response, "created")) {
      head_["created"] = *v;
    }
    if (const json::value* v = Member(response, "system_fingerprint")) {
      fingerprint_ = *v;
    }
  }

  // A chunk with one choice carrying `delta`.
  void Delta(json::object delta, json::value finish_reason = nullptr,
             json::value native_finish_reason = nullptr,
             const json::value* error = nullptr) {
    json::object choice;
    choice["index"] = 0;
    choice["delta"] = std::move(delta);
    choice["finish_reason"] = std::move(finish_reason);
    choice["native_finish_reason"] = std::move(native_finish_reason);
    choice["logprobs"] = nullptr;
    json::array choices;
    choices.push_back(std::move(choice));
    json::object chunk = head_;
    if (error != nullptr) chunk["error"] = *error;
    chunk["choices"] = std::move(choices);
    Emit(std::move(chunk));
  }

  // The usage chunk: `choices: []` (the documented shape).
  void UsageChunk(const json::value& usage) {
    json::object chunk = head_;
    chunk["choices"] = json::array();
    chunk["usage"] = usage;
    Emit(std::move(chunk));
  }

 private:
  void Emit(json::object chunk) {
    if (!fingerprint_.is_null()) {
      chunk["system_fingerprint"] = fingerprint_;
    }
    std::string line = "data: ";
    line += json::serialize(chunk);
    line += "\n\n";
    out_->push_back(std::move(line));
  }

  json::object head_;
  json::value fingerprint_;
  std::vector<std::string>* out_;
};

}  // namespace

Result<std::vector<std::string>> ReplayAsSse(std::string_view completion_json,
                                             size_t piece_bytes) {
  try {
    boost::system::error_code ec;
    const json::value v = ParseJson(completion_json, ec);
    if (ec || !v.is_object()) {
      return InvalidArgumentError("stored response is not a JSON object");
    }
    const json::object& response = v.get_object();
    const json::array* choices = ArrayMember(response, "choices");
    if (choices == nullptr || choices->empty() ||
        !choices->front().is_object()) {
      return InvalidArgumentError("stored response has no choices");
    }
    const json::object& choice = choices->front().get_object();
    const json::object no_message;
    const json::object* message = ObjectMember(choice, "message");
    if (message == nullptr) message = &no_message;

    std::vector<std::string> out;
    ChunkWriter writer(response, &out);

    const json::value* content = Member(*message, "content");
    const bool content_is_string = content != nullptr && content->is_string();
    {
      json::object delta;
      delta["role"] = "assistant";
      if (content_is_string) {
        delta["content"] = "";
      } else {
        delta["content"] = nullptr;
      }
      writer.Delta(std::move(delta));
    }
    std::string_view text;
    if (StringMember(*message, "reasoning", &text) ||
        StringMember(*message, "reasoning_content", &text)) {
      for (std::string_view piece : SplitUtf8(text, piece_bytes)) {
        json::object delta;
        delta["reasoning"] = piece;
        writer.Delta(std::move(delta));
      }
    }
    if (StringMember(*message, "refusal", &text) && !text.empty()) {
      json::object delta;
      delta["refusal"] = text;
      writer.Delta(std::move(delta));
    }
    if (content_is_string) {
      for (std::string_view piece :
           SplitUtf8(content->get_string(), piece_bytes)) {
        json::object delta;
        delta["content"] = piece;
        writer.Delta(std::move(delta));
      }
    }
    if (const json::array* calls = ArrayMember(*message, "tool_calls")) {
      int index = 0;
      for (const json::value& c : *calls) {
        if (!c.is_object()) continue;
        const json::object& call = c.get_object();
        std::string_view name;
        std::string arguments;
        if (const json::object* f = ObjectMember(call, "function")) {
          StringMember(*f, "name", &name);
          const json::value* args = Member(*f, "arguments");
          if (args != nullptr && args->is_string()) {
            arguments = std::string(args->get_string());
          } else if (args != nullptr && !args->is_null()) {
            arguments = json::serialize(*args);
          }
        }
        // The first fragment names the call; the arguments follow in pieces.
        json::object fn;
        fn["name"] = name;
        fn["arguments"] = "";
        json::object head;
        head["index"] = index;
        head["id"] = StringOr(call, "id");
        std::string type = StringOr(call, "type");
        head["type"] = type.empty() ? "function" : type;
        head["function"] = std::move(fn);
        json::array head_calls;
        head_calls.push_back(std::move(head));
        json::object delta;
        delta["tool_calls"] = std::move(head_calls);
        writer.Delta(std::move(delta));
        for (std::string_view piece : SplitUtf8(arguments, piece_bytes)) {
          json::object piece_fn;
          piece_fn["arguments"] = piece;
          json::object fragment;
          fragment["index"] = index;
          fragment["function"] = std::move(piece_fn);
          json::array fragments;
          fragments.push_back(std::move(fragment));
          json::object piece_delta;
          piece_delta["tool_calls"] = std::move(fragments);
          writer.Delta(std::move(piece_delta));
        }
        ++index;
      }
    }
    {
      const json::value* finish = Member(choice, "finish_reason");
      const json::value* native = Member(choice, "native_finish_reason");
      // A stored error is replayed as the mid-stream error event
      // (docs/openrouter.md#errors-in-200), which the OpenAI SDKs raise on.
      const json::value* error = Member(response, "error");
      if (!IsTruthyError(error)) error = Member(choice, "error");
      if (!IsTruthyError(error)) error = nullptr;
      writer.Delta(json::object(), finish ? *finish : json::value(nullptr),
                   native ? *native : json::value(nullptr), error);
    }
    if (const json::value* usage = Member(response, "usage");
        usage != nullptr && usage->is_object()) {
      writer.UsageChunk(*usage);
    }
    out.emplace_back("data: [DONE]\n\n");
    return out;
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory replaying a response");
  } catch (const std::exception& e) {
    return InternalError(std::string("replaying a response: ") + e.what());
  }
}

}  // namespace llmcache::net
