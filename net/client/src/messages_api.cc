// Anthropic Messages (POST /messages) on the wire: reading a message, the
// cacheability rule, the replay of a stored message as the named-event
// stream the Anthropic SDKs consume, and the accumulation of a live stream
// block by block.

#include <boost/json.hpp>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "endpoint_internal.h"
#include "llmcache/net/endpoint.h"
#include "llmcache/net/json_util.h"
#include "sse_util.h"

namespace llmcache::net::endpoint_internal {
namespace {

namespace json = boost::json;
using json_util::ArrayMember;
using json_util::Member;
using json_util::ObjectMember;
using sse_util::StringOr;

// Blocks whose `input` streams as input_json_delta fragments: client tools,
// server tools (web search, code execution) and MCP tools.
bool StreamsInput(const json::object& block) {
  const std::string type = StringOr(block, "type");
  const json::value* input = Member(block, "input");
  return input != nullptr && input->is_object() &&
         (type == "tool_use" || type == "server_tool_use" ||
          type == "mcp_tool_use");
}

CompletionUsage UsageFromObject(const json::object& u) {
  CompletionUsage usage;
  const uint64_t input = ToUint64(Member(u, "input_tokens")).value_or(0);
  const uint64_t read =
      ToUint64(Member(u, "cache_read_input_tokens")).value_or(0);
  const uint64_t write =
      ToUint64(Member(u, "cache_creation_input_tokens")).value_or(0);
  usage.prompt_tokens = input + read + write;
  usage.completion_tokens = ToUint64(Member(u, "output_tokens")).value_or(0);
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
  usage.cached_tokens = read;
  usage.cache_write_tokens = write;
  usage.cost = ToDouble(Member(u, "cost"));
  return usage;
}

// Appends `text` to the string member `key` (created when absent or not a
// string).
void AppendString(json::object& o, std::string_view key,
                  std::string_view text) {
  json::value& v = o[key];
  if (!v.is_string()) v = json::string();
  v.get_string().append(text);
}

void Emit(std::vector<std::string>* out, json::object event) {
  out->push_back(NamedFrame(Endpoint::kMessages, std::move(event)));
}

json::object Event(std::string_view type) {
  json::object e;
  e["type"] = type;
  return e;
}

void ReplayBlock(std::vector<std::string>* out, const json::value& block,
                 size_t index) {
  json::object start = Event("content_block_start");
  start["index"] = index;
  std::vector<json::object> deltas;
  if (block.is_object()) {
    const json::object& b = block.get_object();
    const std::string type = StringOr(b, "type");
    // The block as it starts: its streamed members empty, any other member
    // (citations, cache_control, ...) whole.
    json::object head = b;
    auto delta = [&deltas](std::string_view delta_type, std::string_view key,
                           std::string_view v) {
      json::object d;
      d["type"] = delta_type;
      d[key] = v;
      deltas.push_back(std::move(d));
    };
    if (type == "text" && Member(b, "text") != nullptr &&
        Member(b, "text")->is_string()) {
      head["text"] = "";
      const std::string text = StringOr(b, "text");
      if (!text.empty()) delta("text_delta", "text", text);
    } else if (type == "thinking") {
      std::string_view s;
      if (sse_util::StringMember(b, "thinking", &s)) {
        head["thinking"] = "";
        if (!s.empty()) delta("thinking_delta", "thinking", s);
      }
      if (sse_util::StringMember(b, "signature", &s)) {
        head["signature"] = "";
        if (!s.empty()) delta("signature_delta", "signature", s);
      }
    } else if (StreamsInput(b)) {
      head["input"] = json::object();
      const json::object& input = Member(b, "input")->get_object();
      if (!input.empty()) {
        delta("input_json_delta", "partial_json",
              sse_util::SerializeFinite(json::value(input)));
      }
    }
    start["content_block"] = std::move(head);
  } else {
    start["content_block"] = block;
  }
  Emit(out, std::move(start));
  for (json::object& d : deltas) {
    json::object e = Event("content_block_delta");
    e["index"] = index;
    e["delta"] = std::move(d);
    Emit(out, std::move(e));
  }
  json::object stop = Event("content_block_stop");
  stop["index"] = index;
  Emit(out, std::move(stop));
}

class MessagesAccumulator final : public ObjectAccumulator {
 public:
  MessagesAccumulator() : ObjectAccumulator(&ParseMessagesObject) {}

 private:
  struct Block {
    json::object block;
    std::string partial_json;  // input_json_delta fragments, joined
  };

  Status AddEvent(std::string_view data) override {
    const std::string_view trimmed = Trim(data);
    if (trimmed.empty() || trimmed.front() == ':' || trimmed == "[DONE]") {
      return Status();
    }
    Result<json::object> parsed = ParseObject(trimmed);
    if (!parsed.ok()) {
      return InvalidArgumentError("a Messages event is not a JSON object");
    }
    json::object& event = *parsed;
    const std::string type = StringOr(event, "type");
    if (type.empty()) {
      // OpenRouter's envelope {"error":{...}} mid-stream.
      if (const json::value* e = Member(event, "error");
          e != nullptr && sse_util::IsTruthyError(e)) {
        RecordError(*e);
        if (!error_event_) error_event_ = std::move(event);
        return Status();
      }
      return InvalidArgumentError("a Messages event without a type");
    }
    if (type == "ping") return Status();
    if (type == "error") {
      const json::value* e = Member(event, "error");
      RecordError(e != nullptr ? *e : json::value("error event"));
      if (!error_event_) error_event_ = std::move(event);
      return Status();
    }
    if (done_) return Status();  // nothing follows message_stop
    if (type == "message_start") return Start(event);
    if (type == "content_block_start") {
      const std::optional<int64_t> index = IndexOf(event);
      auto it = event.find("content_block");
      if (!index || it == event.end() || !it->value().is_object()) {
        return InvalidArgumentError("content_block_start without its block");
      }
      blocks_[*index] = Block{std::move(it->value().get_object()), {}};
      return Status();
    }
    if (type == "content_block_delta") return Delta(event);
    if (type == "content_block_stop") {
      const std::optional<int64_t> index = IndexOf(event);
      auto it = index ? blocks_.find(*index) : blocks_.end();
      if (it == blocks_.end()) {
        return InvalidArgumentError("content_block_stop of an unknown block");
      }
      if (!FinishInput(it->second)) {
        return InvalidArgumentError("a tool_use input is not a JSON object");
      }
      return Status();
    }
    if (type == "message_delta") return MessageDelta(event);
    if (type == "message_stop") done_ = true;
    return Status();  // events added after this version are skipped
  }

  Status Start(json::object& event) {
    auto it = event.find("message");
    if (it == event.end() || !it->value().is_object()) {
      return InvalidArgumentError("message_start without its message");
    }
    message_ = std::move(it->value().get_object());
    blocks_.clear();
    if (const json::array* content = ArrayMember(*message_, "content")) {
      for (size_t i = 0; i < content->size(); ++i) {
        if ((*content)[i].is_object()) {
          blocks_[static_cast<int64_t>(i)] =
              Block{(*content)[i].get_object(), {}};
        }
      }
    }
    return Status();
  }

  Status Delta(json::object& event) {
    const std::optional<int64_t> index = IndexOf(event);
    auto it = index ? blocks_.find(*index) : blocks_.end();
    const json::object* delta = ObjectMember(event, "delta");
    if (it == blocks_.end() || delta == nullptr) {
      return InvalidArgumentError("content_block_delta of an unknown block");
    }
    Block& block = it->second;
    const std::string type = StringOr(*delta, "type");
    std::string_view s;
    if (type == "text_delta" && sse_util::StringMember(*delta, "text", &s)) {
      AppendString(block.block, "text", s);
    } else if (type == "input_json_delta" &&
               sse_util::StringMember(*delta, "partial_json", &s)) {
      block.partial_json += s;
    } else if (type == "thinking_delta" &&
               sse_util::StringMember(*delta, "thinking", &s)) {
      AppendString(block.block, "thinking", s);
    } else if (type == "signature_delta" &&
               sse_util::StringMember(*delta, "signature", &s)) {
      AppendString(block.block, "signature", s);
    } else if (type == "citations_delta") {
      if (const json::value* citation = Member(*delta, "citation")) {
        json::value& list = block.block["citations"];
        if (!list.is_array()) list = json::array();
        list.get_array().push_back(*citation);
      }
    }
    return Status();
  }

  Status MessageDelta(json::object& event) {
    if (!message_) {
      return InvalidArgumentError("message_delta before message_start");
    }
    if (const json::object* delta = ObjectMember(event, "delta")) {
      for (const auto& kv : *delta) (*message_)[kv.key()] = kv.value();
    }
    if (const json::object* usage = ObjectMember(event, "usage")) {
      json::value& into = (*message_)["usage"];
      if (!into.is_object()) into = json::object();
      for (const auto& kv : *usage) into.get_object()[kv.key()] = kv.value();
    }
    return Status();
  }

  // Parses the joined input fragments into `input`; false when they are
  // not a JSON object.
  static bool FinishInput(Block& block) {
    if (block.partial_json.empty()) return true;
    Result<json::object> input = ParseObject(block.partial_json);
    if (!input.ok()) return false;
    block.block["input"] = std::move(*input);
    block.partial_json.clear();
    return true;
  }

  static std::optional<int64_t> IndexOf(const json::object& event) {
    return sse_util::IndexOf(event);
  }

  static std::string_view Trim(std::string_view s) {
    const size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return std::string_view();
    const size_t e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
  }

  void RecordError(const json::value& v) {
    if (!error_) error_ = ErrorFromValue(v);
  }

  // The message so far; without one, the error event (the body a
  // non-streaming request gets for the same error), else {}.
  json::object Body() const override {
    if (!message_) return error_event_ ? *error_event_ : json::object();
    json::object body = *message_;
    json::array content;
    content.reserve(blocks_.size());
    for (const auto& [index, b] : blocks_) {
      Block block = b;
      FinishInput(block);  // a block cut short keeps its last whole input
      content.push_back(std::move(block.block));
    }
    body["content"] = std::move(content);
    return body;
  }

  std::optional<json::object> message_;
  std::map<int64_t, Block> blocks_;
  std::optional<json::object> error_event_;
};

}  // namespace

ParsedCompletion ParseMessagesObject(const json::object& o) {
  ParsedCompletion c;
  c.id = StringOr(o, "id");
  c.model = StringOr(o, "model");
  c.provider = StringOr(o, "provider");
  c.created = ToInt64(Member(o, "created")).value_or(0);
  // Anthropic's {"type":"error","error":{...}} and OpenRouter's
  // {"error":{...}} both carry the error in `error`.
  if (const json::value* e = Member(o, "error")) c.error = ErrorFromValue(*e);
  if (!c.error && StringOr(o, "type") == "error") {
    c.error = ApiError{0, "error", "error without details", ""};
  }
  c.finish_reason = StringOr(o, "stop_reason");
  if (const json::object* u = ObjectMember(o, "usage")) {
    c.usage = UsageFromObject(*u);
  }
  const json::array* content = ArrayMember(o, "content");
  if (StringOr(o, "type") != "message" || content == nullptr ||
      content->empty()) {
    return c;
  }
  c.has_choices = true;
  for (const json::value& block : *content) {
    if (!block.is_object()) continue;
    const json::object& b = block.get_object();
    const std::string type = StringOr(b, "type");
    if (type == "text") {
      c.content += StringOr(b, "text");
      c.content_null = false;
    } else if (type == "tool_use") {
      ToolCall call;
      call.index = static_cast<int>(c.tool_calls.size());
      call.id = StringOr(b, "id");
      call.type = "function";
      call.name = StringOr(b, "name");
      if (const json::value* input = Member(b, "input")) {
        call.arguments = sse_util::SerializeFinite(*input);
      }
      c.tool_calls.push_back(std::move(call));
    } else if (type == "thinking") {
      c.reasoning += StringOr(b, "thinking");
    }
  }
  return c;
}

std::string WhyNotCacheableMessages(const ParsedCompletion& c) {
  if (!c.has_choices) return "not a message, or no content";
  const std::string& r = c.finish_reason;
  if (r != "end_turn" && r != "max_tokens" && r != "stop_sequence" &&
      r != "tool_use" && r != "refusal") {
    return r.empty() ? std::string("no stop_reason")
                     : "stop_reason is \"" + r.substr(0, 32) + "\"";
  }
  return std::string();
}

Result<std::vector<std::string>> ReplayMessages(const json::object& o) {
  const json::array* content = ArrayMember(o, "content");
  if (StringOr(o, "type") != "message" || content == nullptr) {
    return InvalidArgumentError("not an Anthropic message");
  }
  std::vector<std::string> frames;
  frames.reserve(content->size() * 3 + 3);

  // The message as it starts: no content, no stop reason yet, and (as the
  // upstream does) at most one output token counted so far.
  json::object message = o;
  message["content"] = json::array();
  if (message.contains("stop_reason")) message["stop_reason"] = nullptr;
  if (message.contains("stop_sequence")) message["stop_sequence"] = nullptr;
  if (auto it = message.find("usage");
      it != message.end() && it->value().is_object()) {
    json::object& usage = it->value().get_object();
    if (std::optional<uint64_t> out = ToUint64(Member(usage, "output_tokens"));
        out && *out > 1) {
      usage["output_tokens"] = 1;
    }
  }
  json::object start = Event("message_start");
  start["message"] = std::move(message);
  Emit(&frames, std::move(start));

  for (size_t i = 0; i < content->size(); ++i) {
    ReplayBlock(&frames, (*content)[i], i);
  }

  // The stop reason and the final usage, merged into the message.
  json::object delta;
  if (const json::value* r = Member(o, "stop_reason"))
    delta["stop_reason"] = *r;
  if (const json::value* s = Member(o, "stop_sequence")) {
    delta["stop_sequence"] = *s;
  }
  json::object end = Event("message_delta");
  end["delta"] = std::move(delta);
  if (const json::object* usage = ObjectMember(o, "usage")) {
    end["usage"] = *usage;
  }
  Emit(&frames, std::move(end));
  Emit(&frames, Event("message_stop"));
  return frames;
}

std::unique_ptr<EventAccumulator> MakeMessagesAccumulator() {
  return std::make_unique<MessagesAccumulator>();
}

}  // namespace llmcache::net::endpoint_internal
