// The bodies and streams of the Responses API and Anthropic Messages, built
// from one ApiAnswer so that accumulating a stream gives the non-stream body.
// Shapes as OpenAI and Anthropic document them; rules in fake_endpoints.h.

#include <boost/json.hpp>
#include <utility>

#include "fake_endpoints.h"
#include "fake_util.h"

namespace llmcache::fake::internal {
namespace {

namespace json = boost::json;

// The deltas of a stream: `text` in at least 3 pieces (fewer only when it is
// shorter), cut as `end` says. *error: whether an error event follows.
std::vector<std::string> Deltas(std::string_view text, int pieces,
                                StreamEnd end, bool* error) {
  std::vector<std::string> out = SplitPieces(text, std::max(3, pieces));
  *error = false;
  switch (end) {
    case StreamEnd::kComplete:
      break;
    case StreamEnd::kMidstreamError:
      out.resize(std::min<size_t>(out.size(), 2));
      *error = true;
      break;
    case StreamEnd::kCut:
      out.resize(
          std::min<size_t>(out.size(), std::max<size_t>(1, out.size() / 2)));
      break;
    case StreamEnd::kReset:
      out.resize(std::min<size_t>(out.size(), 1));
      break;
  }
  return out;
}

// ---------------------------------------------------------- Responses API

json::object ResponsesUsage(const ApiAnswer& a) {
  json::object u;
  u["input_tokens"] = a.input_tokens;
  u["input_tokens_details"] = json::object{{"cached_tokens", 0}};
  u["output_tokens"] = a.output_tokens;
  u["output_tokens_details"] = json::object{{"reasoning_tokens", 0}};
  u["total_tokens"] = a.input_tokens + a.output_tokens;
  u["cost"] = a.cost;
  return u;
}

json::object OutputText(std::string_view text) {
  json::object part;
  part["type"] = "output_text";
  part["text"] = text;
  part["annotations"] = json::array();
  return part;
}

// The output item; `done` false: as announced by output_item.added.
json::object OutputItem(const ApiAnswer& a, bool done) {
  json::object item;
  if (a.tool_call) {
    item["type"] = "function_call";
    item["id"] = a.item_id;
    item["call_id"] = a.call_id;
    item["name"] = a.tool_name;
    item["arguments"] = done ? a.tool_arguments : "";
    item["status"] = done ? "completed" : "in_progress";
    return item;
  }
  item["type"] = "message";
  item["id"] = a.item_id;
  item["status"] = !done         ? "in_progress"
                   : a.truncated ? "incomplete"
                                 : "completed";
  item["role"] = "assistant";
  json::array content;
  if (done) content.emplace_back(OutputText(a.text));
  item["content"] = std::move(content);
  return item;
}

// The response; `done` false: as in response.created and .in_progress.
json::object Response(const ApiAnswer& a, bool done) {
  json::object r;
  r["id"] = a.id;
  r["object"] = "response";
  r["created_at"] = a.created;
  r["status"] = !done         ? "in_progress"
                : a.truncated ? "incomplete"
                              : "completed";
  r["model"] = a.model;
  json::array output;
  if (done) output.emplace_back(OutputItem(a, true));
  r["output"] = std::move(output);
  r["usage"] = done ? json::value(ResponsesUsage(a)) : json::value(nullptr);
  r["error"] = nullptr;
  if (done && a.truncated) {
    r["incomplete_details"] = json::object{{"reason", "max_output_tokens"}};
  } else {
    r["incomplete_details"] = nullptr;
  }
  r["instructions"] = a.instructions;
  r["temperature"] = a.temperature;
  r["parallel_tool_calls"] = true;
  r["tool_choice"] = a.tool_choice;
  r["tools"] = a.tools;
  r["text"] = json::object{{"format", json::object{{"type", "text"}}}};
  return r;
}

// Appends event `type` with `fields` and the next sequence number.
class ResponsesStream {
 public:
  void Add(std::string_view type, json::object fields = {}) {
    json::object e;
    e["type"] = type;
    e["sequence_number"] = next_++;
    for (auto& kv : fields) e[kv.key()] = std::move(kv.value());
    events_.push_back(NamedEvent(e));
  }
  int64_t next() const { return next_; }
  std::vector<std::string>& events() { return events_; }

 private:
  int64_t next_ = 0;
  std::vector<std::string> events_;
};

// ---------------------------------------------------------------- Messages

json::object MessagesUsage(const ApiAnswer& a, int64_t output_tokens) {
  json::object u;
  u["input_tokens"] = a.input_tokens;
  u["output_tokens"] = output_tokens;
  u["cache_creation_input_tokens"] = 0;
  u["cache_read_input_tokens"] = 0;
  return u;
}

const char* StopReason(const ApiAnswer& a) {
  return a.tool_call ? "tool_use" : a.truncated ? "max_tokens" : "end_turn";
}

json::object Message(const ApiAnswer& a, bool done) {
  json::object m;
  m["id"] = a.id;
  m["type"] = "message";
  m["role"] = "assistant";
  m["model"] = a.model;
  json::array content;
  if (done) {
    json::object block;
    if (a.tool_call) {
      block["type"] = "tool_use";
      block["id"] = a.call_id;
      block["name"] = a.tool_name;
      block["input"] = json::parse(a.tool_arguments);
    } else {
      block["type"] = "text";
      block["text"] = a.text;
    }
    content.emplace_back(std::move(block));
  }
  m["content"] = std::move(content);
  m["stop_reason"] = done ? json::value(StopReason(a)) : json::value(nullptr);
  m["stop_sequence"] = nullptr;
  // Anthropic's message_start reports one output token so far.
  m["usage"] = MessagesUsage(a, done ? a.output_tokens : 1);
  return m;
}

}  // namespace

std::string NamedEvent(const json::object& data) {
  const json::value* type = data.if_contains("type");
  std::string out = "event: ";
  if (type != nullptr && type->is_string()) out += type->get_string().c_str();
  out += "\ndata: ";
  out += json::serialize(data);
  out += "\n\n";
  return out;
}

json::object ResponsesObject(const ApiAnswer& a) { return Response(a, true); }

std::string ResponsesErrorEvent(int64_t sequence_number) {
  json::object e;
  e["type"] = "error";
  e["sequence_number"] = sequence_number;
  e["code"] = "server_error";
  e["message"] = "The server had an error while processing your request.";
  e["param"] = nullptr;
  return NamedEvent(e);
}

std::vector<std::string> ResponsesEvents(const ApiAnswer& a, int pieces,
                                         StreamEnd end) {
  ResponsesStream s;
  s.Add("response.created", {{"response", Response(a, false)}});
  s.Add("response.in_progress", {{"response", Response(a, false)}});
  s.Add("response.output_item.added",
        {{"output_index", 0}, {"item", OutputItem(a, false)}});
  bool error = false;
  if (a.tool_call) {
    for (const std::string& d : Deltas(a.tool_arguments, pieces, end, &error)) {
      s.Add("response.function_call_arguments.delta",
            {{"item_id", a.item_id}, {"output_index", 0}, {"delta", d}});
    }
  } else {
    s.Add("response.content_part.added", {{"item_id", a.item_id},
                                          {"output_index", 0},
                                          {"content_index", 0},
                                          {"part", OutputText("")}});
    for (const std::string& d : Deltas(a.text, pieces, end, &error)) {
      s.Add("response.output_text.delta", {{"item_id", a.item_id},
                                           {"output_index", 0},
                                           {"content_index", 0},
                                           {"delta", d},
                                           {"logprobs", json::array()}});
    }
  }
  if (error) {
    s.events().push_back(ResponsesErrorEvent(s.next()));
    return std::move(s.events());
  }
  if (end != StreamEnd::kComplete) return std::move(s.events());
  if (a.tool_call) {
    s.Add("response.function_call_arguments.done",
          {{"item_id", a.item_id},
           {"output_index", 0},
           {"name", a.tool_name},
           {"arguments", a.tool_arguments}});
  } else {
    s.Add("response.output_text.done", {{"item_id", a.item_id},
                                        {"output_index", 0},
                                        {"content_index", 0},
                                        {"text", a.text},
                                        {"logprobs", json::array()}});
    s.Add("response.content_part.done", {{"item_id", a.item_id},
                                         {"output_index", 0},
                                         {"content_index", 0},
                                         {"part", OutputText(a.text)}});
  }
  s.Add("response.output_item.done",
        {{"output_index", 0}, {"item", OutputItem(a, true)}});
  s.Add(a.truncated ? "response.incomplete" : "response.completed",
        {{"response", Response(a, true)}});
  return std::move(s.events());
}

json::object MessagesObject(const ApiAnswer& a) { return Message(a, true); }

json::object AnthropicError(std::string_view type, std::string_view message) {
  json::object err;
  err["type"] = type;
  err["message"] = message;
  json::object env;
  env["type"] = "error";
  env["error"] = std::move(err);
  return env;
}

const char* AnthropicErrorType(unsigned status) {
  switch (status) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 402:
      return "billing_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 504:
      return "timeout_error";
    case 529:
      return "overloaded_error";
    default:
      return status < 500 ? "invalid_request_error" : "api_error";
  }
}

std::vector<std::string> MessagesEvents(const ApiAnswer& a, int pieces,
                                        StreamEnd end) {
  std::vector<std::string> out;
  out.push_back(NamedEvent(
      json::object{{"type", "message_start"}, {"message", Message(a, false)}}));
  out.push_back(NamedEvent(json::object{{"type", "ping"}}));
  json::object block;
  if (a.tool_call) {
    block["type"] = "tool_use";
    block["id"] = a.call_id;
    block["name"] = a.tool_name;
    block["input"] = json::object();
  } else {
    block["type"] = "text";
    block["text"] = "";
  }
  out.push_back(NamedEvent(json::object{{"type", "content_block_start"},
                                        {"index", 0},
                                        {"content_block", std::move(block)}}));
  bool error = false;
  const std::string_view streamed = a.tool_call ? a.tool_arguments : a.text;
  for (const std::string& d : Deltas(streamed, pieces, end, &error)) {
    json::object delta;
    if (a.tool_call) {
      delta["type"] = "input_json_delta";
      delta["partial_json"] = d;
    } else {
      delta["type"] = "text_delta";
      delta["text"] = d;
    }
    out.push_back(NamedEvent(json::object{{"type", "content_block_delta"},
                                          {"index", 0},
                                          {"delta", std::move(delta)}}));
  }
  if (error) {
    out.push_back(NamedEvent(AnthropicError("overloaded_error", "Overloaded")));
    return out;
  }
  if (end != StreamEnd::kComplete) return out;
  out.push_back(
      NamedEvent(json::object{{"type", "content_block_stop"}, {"index", 0}}));
  json::object delta;
  delta["stop_reason"] = StopReason(a);
  delta["stop_sequence"] = nullptr;
  out.push_back(NamedEvent(json::object{
      {"type", "message_delta"},
      {"delta", std::move(delta)},
      {"usage", json::object{{"output_tokens", a.output_tokens}}}}));
  out.push_back(NamedEvent(json::object{{"type", "message_stop"}}));
  return out;
}

}  // namespace llmcache::fake::internal
