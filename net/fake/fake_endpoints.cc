// ApiEndpoints: routing, auth and validation of the embeddings, Responses API
// and Messages endpoints, their fault selectors, and the content of each
// answer (the shapes are in fake_embeddings.cc and fake_api_events.cc). Rules
// in fake_endpoints.h.

#include "fake_endpoints.h"

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <ctime>
#include <iterator>
#include <random>
#include <utility>

#include "fake_faults.h"
#include "fake_models.h"
#include "fake_util.h"
#include "llmcache/key.h"

namespace llmcache::fake::internal {
namespace {

namespace json = boost::json;
using Kind = Selector::Kind;

constexpr size_t kExcerptCodePoints = 200;
constexpr int kDefaultDimensions = 8;
constexpr int kMaxDimensions = 4096;
constexpr int64_t kMaxDelayUs = int64_t{10} * 60 * 1000 * 1000;

constexpr std::string_view kSentences[] = {
    "The fake answered this from its own rules.",
    "The same request always gets the same answer.",
    "Nothing here left the loopback interface.",
    "A cached answer costs nothing the second time.",
};

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

double RoundCost(double v) { return std::round(v * 1e12) / 1e12; }

bool BoolMember(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_bool() && v->get_bool();
}

// A positive integer member; 0 when absent, -1 when present but not one.
int64_t PositiveMember(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return 0;
  return v->is_int64() && v->get_int64() > 0 ? v->get_int64() : -1;
}

// The text of a message `content`: a string, or the `text` of its parts.
std::string ContentText(const json::value* content) {
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

// The last user input: Responses `input` (a string or items) or Messages
// `messages`.
std::string LastUserText(const json::value& input) {
  if (const json::string* s = input.if_string()) {
    return std::string(s->data(), s->size());
  }
  const json::array* items = input.if_array();
  if (items == nullptr) return "";
  for (auto it = items->rbegin(); it != items->rend(); ++it) {
    if (!it->is_object()) continue;
    const json::string* role = FindString(it->get_object(), "role");
    if (role != nullptr && *role == "user") {
      return ContentText(it->get_object().if_contains("content"));
    }
  }
  return "";
}

// The first declared tool's name: `name` (Responses, Messages) or
// `function.name` (chat style).
std::string ToolName(const json::object& body) {
  const json::value* tools = body.if_contains("tools");
  const json::array* arr = tools != nullptr ? tools->if_array() : nullptr;
  if (arr != nullptr && !arr->empty() && arr->front().is_object()) {
    const json::object& t = arr->front().get_object();
    if (const json::string* n = FindString(t, "name")) {
      return std::string(n->data(), n->size());
    }
    if (const json::object* f = FindObject(t, "function")) {
      if (const json::string* n = FindString(*f, "name")) {
        return std::string(n->data(), n->size());
      }
    }
  }
  return "get_weather";
}

// OpenRouter's in-band error (fake/error-200), as chat completions send it.
json::object InBandError(std::string_view base) {
  json::object meta;
  meta["raw"] = "upstream connection reset";
  meta["provider_name"] = ProviderName(base);
  meta["error_type"] = "provider_unavailable";
  json::object err;
  err["code"] = 502;
  err["message"] = "Provider returned error";
  err["metadata"] = std::move(meta);
  json::object env;
  env["error"] = std::move(err);
  env["user_id"] = "user_fake";
  return env;
}

StreamEnd EndOf(const Selector& sel) {
  switch (sel.kind) {
    case Kind::kMidstreamError:
      return StreamEnd::kMidstreamError;
    case Kind::kCut:
      return StreamEnd::kCut;
    case Kind::kReset:
      return StreamEnd::kReset;
    default:
      return StreamEnd::kComplete;
  }
}

// The transport faults that only change how a plan is sent.
void ApplyTransport(const Selector& sel, Plan* plan) {
  switch (sel.kind) {
    case Kind::kDelay:
      plan->delay_ms = sel.ms;
      break;
    case Kind::kSlow:
      if (plan->stream) {
        plan->event_gap_ms = sel.ms;
      } else {
        plan->delay_ms = sel.ms;
      }
      break;
    case Kind::kNewlines:
      if (!plan->stream) plan->body.insert(0, "\n\n\n");
      break;
    case Kind::kNotJson:
      if (!plan->stream) plan->body.resize(plan->body.size() / 2);
      break;
    case Kind::kCut:
      plan->kind = Plan::Kind::kCut;
      break;
    case Kind::kReset:
      plan->kind = Plan::Kind::kReset;
      break;
    default:
      break;
  }
}

// The stream headers and keep-alive comments, before any event.
Plan StreamHead(const FakeOptions& options, std::string generation_id) {
  Plan plan;
  plan.stream = true;
  plan.content_type = "text/event-stream";
  plan.headers.emplace_back("Cache-Control", "no-cache");
  plan.generation_id = std::move(generation_id);
  for (int i = 0; i < options.keepalive_comments; ++i) {
    plan.events.emplace_back(": OPENROUTER PROCESSING\n\n");
  }
  return plan;
}

}  // namespace

ApiPath FindApiPath(std::string_view path) {
  if (path.starts_with("/api/v1/")) {
    path.remove_prefix(7);
  } else if (path.starts_with("/v1/")) {
    path.remove_prefix(3);
  } else {
    return ApiPath::kNone;
  }
  if (path == "/embeddings") return ApiPath::kEmbeddings;
  if (path == "/responses") return ApiPath::kResponses;
  if (path == "/messages") return ApiPath::kMessages;
  return ApiPath::kNone;
}

ApiEndpoints::ApiEndpoints(const FakeOptions& options)
    : options_(options),
      seed_(std::random_device{}() ^
            static_cast<uint64_t>(
                std::chrono::steady_clock::now().time_since_epoch().count())) {}

void ApiEndpoints::ResetFlaky() {
  std::lock_guard<std::mutex> lock(mu_);
  flaky_.clear();
}

// <unix time>-<20 alphanumerics>
std::string ApiEndpoints::NewId(int64_t created) {
  const uint64_t n = counter_.fetch_add(1, std::memory_order_relaxed);
  return std::to_string(created) + "-" + Alnum(seed_ ^ SplitMix(n), 20);
}

bool ApiEndpoints::FlakyFails(ApiPath api, std::string_view body,
                              int64_t count) {
  const uint64_t key = Fnv1a(body, SplitMix(static_cast<uint64_t>(api)));
  std::lock_guard<std::mutex> lock(mu_);
  return ++flaky_[key] <= count;
}

Plan ApiEndpoints::Error(ApiPath api, unsigned status, std::string_view base,
                         std::string_view message) {
  Plan plan;
  plan.status = status;
  plan.generation_id = "gen-" + NewId(Now());
  plan.headers = ErrorHeaders(status, Now());
  if (api == ApiPath::kMessages) {
    std::string text(message);
    if (text.empty()) {
      const StatusInfo* info = FindStatusInfo(status);
      text = status == 529     ? "Overloaded"
             : info != nullptr ? info->message
                               : "Fake fault";
    }
    plan.body =
        json::serialize(AnthropicError(AnthropicErrorType(status), text));
  } else if (status == 401) {
    // As chat completions answer it (message before code).
    json::object err;
    err["message"] = message;
    err["code"] = 401;
    plan.body = json::serialize(json::object{{"error", std::move(err)}});
  } else {
    plan.body = json::serialize(message.empty() ? FaultEnvelope(status, base)
                                                : SimpleError(status, message));
  }
  return plan;
}

Plan ApiEndpoints::Handle(ApiPath api, const RequestView& req) {
  if (req.method != "POST") return Error(api, 405, "", "Method Not Allowed");
  const std::string_view token = BearerToken(req.authorization);
  if (token.empty()) return Error(api, 401, "", "No auth credentials found");
  if (!options_.api_key.empty() && token != options_.api_key) {
    return Error(api, 401, "", "User not found.");
  }
  boost::system::error_code ec;
  json::value parsed = json::parse(req.body, ec);
  if (ec || !parsed.is_object()) {
    return Error(api, 400, "", "Invalid JSON in request body");
  }
  const json::object& body = parsed.get_object();
  const json::string* model = FindString(body, "model");
  if (model == nullptr || model->empty()) {
    return Error(api, 400, "",
                 api == ApiPath::kMessages ? "model: Field required"
                                           : "No models provided");
  }
  const std::string base(BaseModel(std::string_view(*model)));

  // Validation first (a 400 whatever the model), then the faults.
  Plan plan;
  switch (api) {
    case ApiPath::kEmbeddings:
      plan = Embeddings(body, base);
      break;
    case ApiPath::kResponses: {
      const json::value* input = body.if_contains("input");
      if (input == nullptr || !(input->is_string() || input->is_array())) {
        return Error(api, 400, "", "Input required: specify \"input\"");
      }
      break;
    }
    case ApiPath::kMessages: {
      if (PositiveMember(body, "max_tokens") <= 0) {
        return Error(api, 400, "",
                     "max_tokens: Field required (a positive integer)");
      }
      const json::value* messages = body.if_contains("messages");
      if (messages == nullptr || !messages->is_array() ||
          messages->get_array().empty()) {
        return Error(api, 400, "",
                     "messages: at least one message is required");
      }
      break;
    }
    case ApiPath::kNone:
      return Error(api, 404, "", "Not Found");
  }
  if (plan.status != 200) return plan;  // an embeddings input error

  const Selector sel = ParseSelector(base);
  if (sel.kind == Kind::kFault ||
      (sel.kind == Kind::kFlaky && FlakyFails(api, req.body, sel.count))) {
    plan = Error(api, sel.status, base);
    plan.delay_ms = sel.ms;  // -after-<ms>: the error comes late
  } else if (sel.kind == Kind::kHang) {
    plan = Plan();
    plan.kind = Plan::Kind::kHang;
  } else {
    if (api == ApiPath::kResponses) plan = Responses(body, base);
    if (api == ApiPath::kMessages) plan = Messages(body, base);
    if (sel.kind == Kind::kEmbedDelay && plan.embedded_items > 0) {
      plan.delay_us = std::min(kMaxDelayUs, sel.us * plan.embedded_items);
    }
    ApplyTransport(sel, &plan);
    if (sel.kind == Kind::kError200) plan.embedded_items = 0;
  }
  if (plan.status != 200 || plan.kind == Plan::Kind::kHang) {
    plan.embedded_items = 0;
  }
  plan.model = std::string(*model);
  return plan;
}

Plan ApiEndpoints::Embeddings(const json::object& body, std::string_view base) {
  const ApiPath api = ApiPath::kEmbeddings;
  const json::value* input = body.if_contains("input");
  if (input == nullptr) {
    return Error(api, 400, "", "Input required: specify \"input\"");
  }
  std::string error;
  const std::optional<std::vector<EmbeddingItem>> items =
      ParseEmbeddingInput(*input, &error);
  if (!items) return Error(api, 400, "", error);
  int dimensions = kDefaultDimensions;
  if (const json::value* d = body.if_contains("dimensions")) {
    if (!d->is_int64() || d->get_int64() < 1 ||
        d->get_int64() > kMaxDimensions) {
      return Error(api, 400, "",
                   "dimensions must be an integer from 1 to " +
                       std::to_string(kMaxDimensions));
    }
    dimensions = static_cast<int>(d->get_int64());
  }
  bool base64 = false;
  if (const json::value* f = body.if_contains("encoding_format")) {
    const json::string* s = f->if_string();
    if (s == nullptr || (*s != "float" && *s != "base64")) {
      return Error(api, 400, "",
                   "encoding_format must be \"float\" or \"base64\"");
    }
    base64 = *s == "base64";
  }
  if (ParseSelector(base).kind == Kind::kError200) {
    Plan plan;
    plan.generation_id = "gen-emb-" + NewId(Now());
    plan.body = json::serialize(InBandError(base));
    return plan;
  }

  json::array data;
  int64_t tokens = 0;
  for (size_t i = 0; i < items->size(); ++i) {
    const EmbeddingItem& item = (*items)[i];
    const std::vector<float> v =
        EmbeddingVector(base, dimensions, item.canonical);
    json::object e;
    e["object"] = "embedding";
    if (base64) {
      e["embedding"] = Base64Floats(v);
    } else {
      json::array numbers;
      numbers.reserve(v.size());
      for (float x : v) numbers.emplace_back(static_cast<double>(x));
      e["embedding"] = std::move(numbers);
    }
    e["index"] = static_cast<int64_t>(i);
    data.emplace_back(std::move(e));
    tokens += item.tokens;
  }
  const std::string id = "gen-emb-" + NewId(Now());
  json::object usage;
  usage["prompt_tokens"] = tokens;
  usage["total_tokens"] = tokens;
  usage["cost"] = RoundCost(static_cast<double>(tokens) *
                            ParsePrice(FindModel(base).prompt));
  json::object r;
  r["object"] = "list";
  r["data"] = std::move(data);
  r["model"] = base;
  r["usage"] = std::move(usage);
  r["id"] = id;
  r["provider"] = ProviderName(base);
  Plan plan;
  plan.generation_id = id;
  plan.body = json::serialize(r);
  plan.embedded_items = static_cast<int64_t>(items->size());
  return plan;
}

ApiAnswer ApiEndpoints::MakeAnswer(ApiPath api, const json::object& body,
                                   std::string_view base, bool tool_call) {
  const bool responses = api == ApiPath::kResponses;
  ApiAnswer a;
  a.created = Now();
  const uint64_t unique = SplitMix(
      seed_ ^ SplitMix(counter_.fetch_add(1, std::memory_order_relaxed)));
  a.id = (responses ? "resp_" : "msg_") + Hex(unique, 16) +
         Hex(SplitMix(unique), 16);
  a.model = std::string(base);
  json::object canonical = body;
  canonical.erase("stream");
  canonical.erase("stream_options");
  canonical.erase("store");
  const uint64_t hash = Fnv1a(json::serialize(canonical),
                              Fnv1a(responses ? "responses" : "messages"));
  const json::value& input =
      body.at(responses ? std::string_view("input") : "messages");
  const std::string user = LastUserText(input);
  a.tool_call = tool_call;
  if (responses) {
    a.item_id = (tool_call ? "fc_" : "msg_") + Hex(SplitMix(unique ^ 1), 16) +
                Hex(SplitMix(unique ^ 2), 16);
  }
  if (tool_call) {
    a.call_id =
        (responses ? "call_" : "toolu_") + Alnum(hash ^ 0x5bd1e995ULL, 24);
    a.tool_name = ToolName(body);
    json::object args;
    args["query"] = Utf8Prefix(user, 60);
    args["units"] = "metric";
    a.tool_arguments = json::serialize(args);
    a.output_tokens = CeilDiv4(a.tool_name.size() + a.tool_arguments.size());
  } else {
    const json::string& model = body.at("model").get_string();
    a.text = "Echo from " + std::string(model.data(), model.size()) + ": " +
             Utf8Prefix(user, kExcerptCodePoints) + "\n" +
             std::string(kSentences[hash % std::size(kSentences)]) + " (ref " +
             Hex(hash, 8) + ")";
    const int64_t max_tokens =
        PositiveMember(body, responses ? "max_output_tokens" : "max_tokens");
    if (max_tokens > 0 && CeilDiv4(a.text.size()) > max_tokens) {
      a.text.resize(Utf8Floor(a.text, static_cast<size_t>(max_tokens) * 4));
      a.truncated = true;
    }
    a.output_tokens = CeilDiv4(a.text.size());
  }
  std::string prompt = json::serialize(input);
  if (const json::value* extra =
          body.if_contains(responses ? "instructions" : "system")) {
    prompt += json::serialize(*extra);
  }
  a.input_tokens = std::max<int64_t>(1, CeilDiv4(prompt.size()));
  const ModelInfo& m = FindModel(base);
  a.cost = RoundCost(
      static_cast<double>(a.input_tokens) * ParsePrice(m.prompt) +
      static_cast<double>(a.output_tokens) * ParsePrice(m.completion));
  auto echo = [&](std::string_view key, json::value fallback) {
    const json::value* v = body.if_contains(key);
    return v != nullptr ? *v : fallback;
  };
  a.instructions = echo("instructions", nullptr);
  a.temperature = echo("temperature", nullptr);
  a.tools = echo("tools", json::array());
  a.tool_choice = echo("tool_choice", "auto");
  return a;
}

Plan ApiEndpoints::Responses(const json::object& body, std::string_view base) {
  const Selector sel = ParseSelector(base);
  const bool stream = BoolMember(body, "stream");
  if (sel.kind == Kind::kError200) {
    if (!stream) {
      Plan plan;
      plan.generation_id = "gen-" + NewId(Now());
      plan.body = json::serialize(InBandError(base));
      return plan;
    }
    Plan plan = StreamHead(options_, "gen-" + NewId(Now()));
    plan.events.push_back(ResponsesErrorEvent(0));
    return plan;
  }
  const ApiAnswer a =
      MakeAnswer(ApiPath::kResponses, body, base, sel.kind == Kind::kToolCall);
  if (!stream) {
    json::object r = ResponsesObject(a);
    if (sel.kind == Kind::kMidstreamError) {
      r["status"] = "failed";
      r["output"] = json::array();
      r["usage"] = nullptr;
      r["error"] = json::object{
          {"code", "server_error"},
          {"message",
           "The server had an error while processing your request."}};
    }
    Plan plan;
    plan.generation_id = a.id;
    plan.body = json::serialize(r);
    return plan;
  }
  Plan plan = StreamHead(options_, a.id);
  for (std::string& e :
       ResponsesEvents(a, std::max(1, options_.stream_pieces), EndOf(sel))) {
    plan.events.push_back(std::move(e));
  }
  return plan;
}

Plan ApiEndpoints::Messages(const json::object& body, std::string_view base) {
  const Selector sel = ParseSelector(base);
  const bool stream = BoolMember(body, "stream");
  if (sel.kind == Kind::kError200) {
    const json::object err =
        AnthropicError("api_error", "Internal server error");
    if (!stream) {
      Plan plan;
      plan.generation_id = "gen-" + NewId(Now());
      plan.body = json::serialize(err);
      return plan;
    }
    Plan plan = StreamHead(options_, "gen-" + NewId(Now()));
    plan.events.push_back(NamedEvent(err));
    return plan;
  }
  if (sel.kind == Kind::kMidstreamError && !stream) {
    return Error(ApiPath::kMessages, 529, base);
  }
  const ApiAnswer a =
      MakeAnswer(ApiPath::kMessages, body, base, sel.kind == Kind::kToolCall);
  if (!stream) {
    Plan plan;
    plan.generation_id = a.id;
    plan.body = json::serialize(MessagesObject(a));
    return plan;
  }
  Plan plan = StreamHead(options_, a.id);
  for (std::string& e :
       MessagesEvents(a, std::max(1, options_.stream_pieces), EndOf(sel))) {
    plan.events.push_back(std::move(e));
  }
  return plan;
}

}  // namespace llmcache::fake::internal
