// The OpenAI Responses API (POST /responses) on the wire: reading a response
// object, the cacheability rule, the replay of a stored response as the
// named-event stream the OpenAI SDKs consume, and the accumulation of a live
// stream (whose terminal event carries the whole response).

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

bool IsTerminalType(std::string_view type) {
  return type == "response.completed" || type == "response.incomplete" ||
         type == "response.failed";
}

CompletionUsage UsageFromObject(const json::object& u) {
  CompletionUsage usage;
  usage.prompt_tokens = ToUint64(Member(u, "input_tokens")).value_or(0);
  usage.completion_tokens = ToUint64(Member(u, "output_tokens")).value_or(0);
  usage.total_tokens =
      ToUint64(Member(u, "total_tokens"))
          .value_or(usage.prompt_tokens + usage.completion_tokens);
  if (const json::object* d = ObjectMember(u, "input_tokens_details")) {
    usage.cached_tokens = ToUint64(Member(*d, "cached_tokens")).value_or(0);
    usage.cache_write_tokens =
        ToUint64(Member(*d, "cache_write_tokens")).value_or(0);
  }
  if (const json::object* d = ObjectMember(u, "output_tokens_details")) {
    usage.reasoning_tokens =
        ToUint64(Member(*d, "reasoning_tokens")).value_or(0);
  }
  usage.cost = ToDouble(Member(u, "cost"));
  return usage;
}

void ReadMessageItem(const json::object& item, ParsedCompletion* c) {
  const json::array* content = ArrayMember(item, "content");
  if (content == nullptr) return;
  for (const json::value& part : *content) {
    if (!part.is_object()) continue;
    const json::object& p = part.get_object();
    const std::string type = StringOr(p, "type");
    if (type == "output_text") {
      c->content += StringOr(p, "text");
      c->content_null = false;
    } else if (type == "refusal") {
      c->refusal += StringOr(p, "refusal");
    }
  }
}

void ReadFunctionCall(const json::object& item, ParsedCompletion* c) {
  ToolCall call;
  call.index = static_cast<int>(c->tool_calls.size());
  call.id = StringOr(item, "call_id");
  call.type = "function";
  call.name = StringOr(item, "name");
  if (const json::value* args = Member(item, "arguments")) {
    if (args->is_string()) {
      call.arguments = std::string(args->get_string());
    } else if (!args->is_null()) {
      call.arguments = sse_util::SerializeFinite(*args);
    }
  }
  c->tool_calls.push_back(std::move(call));
}

void ReadReasoningItem(const json::object& item, ParsedCompletion* c) {
  const json::array* summary = ArrayMember(item, "summary");
  if (summary == nullptr) return;
  for (const json::value& part : *summary) {
    if (part.is_object()) c->reasoning += StringOr(part.get_object(), "text");
  }
}

// Builds the events of one replayed stream, numbering them.
class EventWriter {
 public:
  explicit EventWriter(std::vector<std::string>* out) : out_(out) {}

  // An event: "type" and "sequence_number" first, then `fields`.
  void Emit(std::string_view type, json::object fields) {
    json::object event;
    event.reserve(fields.size() + 2);
    event["type"] = type;
    event["sequence_number"] = sequence_++;
    for (auto& kv : fields) event.emplace(kv.key(), std::move(kv.value()));
    out_->push_back(NamedFrame(Endpoint::kResponses, std::move(event)));
  }

 private:
  std::vector<std::string>* out_;
  int64_t sequence_ = 0;
};

// The members that locate a content part: item_id, output_index and the
// index under `index_name`.
json::object PartPosition(const json::value* item_id, size_t output_index,
                          std::string_view index_name, size_t index) {
  json::object o;
  if (item_id != nullptr) o["item_id"] = *item_id;
  o["output_index"] = output_index;
  o[index_name] = index;
  return o;
}

json::object With(json::object o, std::string_view key, json::value v) {
  o[key] = std::move(v);
  return o;
}

json::object With(json::object o, std::string_view key, std::string_view s) {
  o[key] = s;
  return o;
}

void ReplayMessageContent(EventWriter& w, const json::array& content,
                          const json::value* item_id, size_t output_index) {
  for (size_t j = 0; j < content.size(); ++j) {
    const json::value& part = content[j];
    const json::object at =
        PartPosition(item_id, output_index, "content_index", j);
    if (!part.is_object()) {
      w.Emit("response.content_part.added", With(at, "part", part));
      w.Emit("response.content_part.done", With(at, "part", part));
      continue;
    }
    const json::object& p = part.get_object();
    const std::string type = StringOr(p, "type");
    if (type == "output_text") {
      json::object empty = p;
      empty["text"] = "";
      if (ArrayMember(p, "annotations") != nullptr) {
        empty["annotations"] = json::array();
      }
      w.Emit("response.content_part.added", With(at, "part", empty));
      const std::string text = StringOr(p, "text");
      if (!text.empty()) {
        w.Emit("response.output_text.delta", With(at, "delta", text));
      }
      if (const json::array* notes = ArrayMember(p, "annotations")) {
        for (size_t k = 0; k < notes->size(); ++k) {
          json::object e = at;
          e["annotation_index"] = k;
          e["annotation"] = (*notes)[k];
          w.Emit("response.output_text.annotation.added", std::move(e));
        }
      }
      w.Emit("response.output_text.done", With(at, "text", text));
    } else if (type == "refusal") {
      json::object empty = p;
      empty["refusal"] = "";
      w.Emit("response.content_part.added", With(at, "part", empty));
      const std::string refusal = StringOr(p, "refusal");
      if (!refusal.empty()) {
        w.Emit("response.refusal.delta", With(at, "delta", refusal));
      }
      w.Emit("response.refusal.done", With(at, "refusal", refusal));
    } else {
      w.Emit("response.content_part.added", With(at, "part", part));
    }
    w.Emit("response.content_part.done", With(at, "part", part));
  }
}

void ReplayReasoningSummary(EventWriter& w, const json::array& summary,
                            const json::value* item_id, size_t output_index) {
  for (size_t k = 0; k < summary.size(); ++k) {
    const json::value& part = summary[k];
    const json::object at =
        PartPosition(item_id, output_index, "summary_index", k);
    if (!part.is_object()) {
      w.Emit("response.reasoning_summary_part.added", With(at, "part", part));
      w.Emit("response.reasoning_summary_part.done", With(at, "part", part));
      continue;
    }
    json::object empty = part.get_object();
    if (empty.contains("text")) empty["text"] = "";
    w.Emit("response.reasoning_summary_part.added", With(at, "part", empty));
    const std::string text = StringOr(part.get_object(), "text");
    if (!text.empty()) {
      w.Emit("response.reasoning_summary_text.delta", With(at, "delta", text));
    }
    w.Emit("response.reasoning_summary_text.done", With(at, "text", text));
    w.Emit("response.reasoning_summary_part.done", With(at, "part", part));
  }
}

void ReplayItem(EventWriter& w, const json::value& item, size_t output_index) {
  json::object at;
  at["output_index"] = output_index;
  if (!item.is_object()) {
    w.Emit("response.output_item.added", With(at, "item", item));
    w.Emit("response.output_item.done", With(at, "item", item));
    return;
  }
  const json::object& o = item.get_object();
  const std::string type = StringOr(o, "type");
  const json::value* id = Member(o, "id");
  if (id != nullptr && !id->is_string()) id = nullptr;

  // The item as it starts: in progress, its streamed parts empty.
  json::object added = o;
  if (added.contains("status")) added["status"] = "in_progress";
  if (type == "message" && ArrayMember(o, "content") != nullptr) {
    added["content"] = json::array();
  } else if (type == "function_call" && Member(o, "arguments") != nullptr &&
             Member(o, "arguments")->is_string()) {
    added["arguments"] = "";
  } else if (type == "reasoning" && ArrayMember(o, "summary") != nullptr) {
    added["summary"] = json::array();
  }
  w.Emit("response.output_item.added", With(at, "item", std::move(added)));

  if (type == "message") {
    if (const json::array* content = ArrayMember(o, "content")) {
      ReplayMessageContent(w, *content, id, output_index);
    }
  } else if (type == "function_call") {
    const json::value* args = Member(o, "arguments");
    if (args != nullptr && args->is_string()) {
      json::object pos;
      if (id != nullptr) pos["item_id"] = *id;
      pos["output_index"] = output_index;
      if (!args->get_string().empty()) {
        w.Emit("response.function_call_arguments.delta",
               With(pos, "delta", *args));
      }
      w.Emit("response.function_call_arguments.done",
             With(pos, "arguments", *args));
    }
  } else if (type == "reasoning") {
    if (const json::array* summary = ArrayMember(o, "summary")) {
      ReplayReasoningSummary(w, *summary, id, output_index);
    }
  }
  w.Emit("response.output_item.done", With(at, "item", item));
}

class ResponsesAccumulator final : public ObjectAccumulator {
 public:
  ResponsesAccumulator() : ObjectAccumulator(&ParseResponsesObject) {}

 private:
  Status AddEvent(std::string_view data) override {
    const std::string_view trimmed = Trim(data);
    if (trimmed.empty() || trimmed.front() == ':' || trimmed == "[DONE]") {
      return Status();
    }
    Result<json::object> parsed = ParseObject(trimmed);
    if (!parsed.ok()) {
      return InvalidArgumentError("a Responses API event is not a JSON object");
    }
    json::object& event = *parsed;
    const std::string type = StringOr(event, "type");
    if (type.empty()) {
      // OpenRouter's envelope {"error":{...}} mid-stream.
      if (const json::value* e = Member(event, "error");
          e != nullptr && sse_util::IsTruthyError(e)) {
        RecordError(*e);
        return Status();
      }
      return InvalidArgumentError("a Responses API event without a type");
    }
    if (type == "error") {
      const json::value* nested = Member(event, "error");
      if (nested != nullptr && nested->is_object()) {
        RecordError(*nested);
      } else {
        event.erase("type");  // not an error code
        RecordError(json::value(std::move(event)));
      }
      return Status();
    }
    if (done_) return Status();  // nothing follows the terminal event
    if (json::object* response = FindObject(event, "response");
        response != nullptr && type.starts_with("response.")) {
      response_ = std::move(*response);
      if (IsTerminalType(type)) {
        done_ = true;
        items_.clear();
        if (const json::value* e = Member(*response_, "error")) {
          RecordError(*e);
        }
      }
      return Status();
    }
    if (type == "response.output_item.added" ||
        type == "response.output_item.done") {
      const std::optional<int64_t> index =
          ToInt64(Member(event, "output_index"));
      json::object* item = FindObject(event, "item");
      if (!index || *index < 0 || item == nullptr) {
        return InvalidArgumentError("an output item event without its item");
      }
      items_[*index] = std::move(*item);
    }
    return Status();
  }

  static json::object* FindObject(json::object& o, std::string_view key) {
    auto it = o.find(key);
    return it != o.end() && it->value().is_object() ? &it->value().get_object()
                                                    : nullptr;
  }

  static std::string_view Trim(std::string_view s) {
    const size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return std::string_view();
    const size_t e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
  }

  void RecordError(const json::value& v) {
    if (error_) return;
    error_ = ErrorFromValue(v);
  }

  // The terminal response; before it, the latest snapshot with the items
  // seen so far as its output.
  json::object Body() const override {
    json::object body = response_ ? *response_ : json::object();
    if (!done_ && !items_.empty()) {
      json::array output;
      output.reserve(items_.size());
      for (const auto& [index, item] : items_) output.push_back(item);
      body["output"] = std::move(output);
    }
    return body;
  }

  std::optional<json::object> response_;
  std::map<int64_t, json::object> items_;
};

}  // namespace

ParsedCompletion ParseResponsesObject(const json::object& o) {
  ParsedCompletion c;
  c.id = StringOr(o, "id");
  c.model = StringOr(o, "model");
  c.provider = StringOr(o, "provider");
  c.created = ToInt64(Member(o, "created_at")).value_or(0);
  c.finish_reason = StringOr(o, "status");
  if (const json::object* d = ObjectMember(o, "incomplete_details")) {
    c.native_finish_reason = StringOr(*d, "reason");
  }
  if (const json::value* e = Member(o, "error")) c.error = ErrorFromValue(*e);
  if (const json::object* u = ObjectMember(o, "usage")) {
    c.usage = UsageFromObject(*u);
  }
  const json::array* output = ArrayMember(o, "output");
  if (output == nullptr || output->empty()) return c;
  c.has_choices = true;
  for (const json::value& item : *output) {
    if (!item.is_object()) continue;
    const json::object& i = item.get_object();
    const std::string type = StringOr(i, "type");
    if (type == "message") {
      ReadMessageItem(i, &c);
    } else if (type == "function_call") {
      ReadFunctionCall(i, &c);
    } else if (type == "reasoning") {
      ReadReasoningItem(i, &c);
    }
  }
  return c;
}

std::string WhyNotCacheableResponses(const ParsedCompletion& c) {
  if (c.finish_reason != "completed") {
    return c.finish_reason.empty()
               ? std::string("no status")
               : "status is \"" + c.finish_reason.substr(0, 32) + "\"";
  }
  if (!c.has_choices) return "no output";
  return std::string();
}

Result<std::vector<std::string>> ReplayResponses(const json::object& o) {
  const json::value* object = Member(o, "object");
  if (object != nullptr &&
      !(object->is_string() && object->get_string() == "response")) {
    return InvalidArgumentError("not a Responses API response object");
  }
  const json::array* output = ArrayMember(o, "output");
  if (output == nullptr) {
    return InvalidArgumentError("a Responses API response without output");
  }
  std::vector<std::string> frames;
  frames.reserve(4 + output->size() * 8);
  EventWriter w(&frames);

  // The response as it starts: in progress, nothing produced, not billed.
  json::object start = o;
  start["status"] = "in_progress";
  start["output"] = json::array();
  if (start.contains("usage")) start["usage"] = nullptr;
  json::object created;
  created["response"] = start;
  w.Emit("response.created", std::move(created));
  json::object in_progress;
  in_progress["response"] = std::move(start);
  w.Emit("response.in_progress", std::move(in_progress));

  for (size_t i = 0; i < output->size(); ++i) ReplayItem(w, (*output)[i], i);

  const std::string status = StringOr(o, "status");
  std::string_view terminal = "response.completed";
  if (status == "incomplete") terminal = "response.incomplete";
  if (status == "failed") terminal = "response.failed";
  json::object end;
  end["response"] = o;
  w.Emit(terminal, std::move(end));
  return frames;
}

std::unique_ptr<EventAccumulator> MakeResponsesAccumulator() {
  return std::make_unique<ResponsesAccumulator>();
}

}  // namespace llmcache::net::endpoint_internal
