// The responder: request -> Plan. Routing, auth and validation, the fault
// dispatch, and the completion answers (non-stream JSON and SSE events) with
// their usage and cost. Rules in fake_responder.h.

#include "fake_responder.h"

#include <algorithm>
#include <boost/algorithm/string/predicate.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <ctime>
#include <iterator>
#include <random>

#include "fake_faults.h"
#include "fake_models.h"
#include "fake_util.h"
#include "llmcache/key.h"

namespace llmcache::fake::internal {

// Everything derived from one valid chat-completion request.
struct Generation {
  std::string id;
  int64_t created = 0;
  std::string model;  // as reported: the request's model without `:variant`
  std::string provider;
  std::string fingerprint;
  uint64_t hash = 0;  // of the body minus stream, stream_options and usage
  std::string content;
  std::string finish_reason = "stop";
  std::string tool_name;
  std::string tool_arguments;
  std::string tool_call_id;
};

namespace {

namespace json = boost::json;

constexpr size_t kExcerptCodePoints = 200;
constexpr int kErrorChunkCode = 502;

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

double RoundCost(double v) { return std::round(v * 1e12) / 1e12; }

// ------------------------------------------------------------ error bodies

json::object SimpleError(unsigned code, std::string_view message) {
  json::object err;
  err["code"] = code;
  err["message"] = message;
  json::object env;
  env["error"] = std::move(err);
  return env;
}

json::object FaultEnvelope(unsigned status, std::string_view model) {
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

json::object ChoiceError() {
  json::object err;
  err["code"] = kErrorChunkCode;
  err["message"] = "Provider disconnected mid-stream";
  err["metadata"] = json::object{{"error_type", "provider_unavailable"}};
  return err;
}

// -------------------------------------------------------------- generation

std::string LastUserText(const json::object& body) {
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

json::object Usage(const PromptUsage& p, int64_t completion_tokens,
                   std::string_view base, bool free_of_charge) {
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

// ------------------------------------------------------------- SSE events

std::string Sse(const json::value& v) {
  return "data: " + json::serialize(v) + "\n\n";
}

json::object ChunkBase(const Generation& g) {
  json::object c;
  c["id"] = g.id;
  c["provider"] = g.provider;
  c["model"] = g.model;
  c["object"] = "chat.completion.chunk";
  c["created"] = g.created;
  return c;
}

std::string DeltaEvent(const Generation& g, json::object delta,
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

json::object ContentDelta(std::string_view content) {
  json::object d;
  d["role"] = "assistant";
  d["content"] = content;
  return d;
}

std::string UsageEvent(const Generation& g, json::object usage) {
  json::object c = ChunkBase(g);
  c["choices"] = json::array();
  c["usage"] = std::move(usage);
  return Sse(c);
}

// The mid-stream error event of docs/openrouter.md (errors inside a 200),
// key order as documented.
std::string ErrorEvent(const Generation& g) {
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

}  // namespace

bool IsCompletionPath(std::string_view path) {
  return path == "/api/v1/chat/completions" || path == "/v1/chat/completions";
}

Responder::Responder(const FakeOptions& options)
    : options_(options),
      seed_(std::random_device{}() ^
            static_cast<uint64_t>(
                std::chrono::steady_clock::now().time_since_epoch().count())) {}

Plan Responder::Handle(const RequestView& req) {
  if (IsCompletionPath(req.path)) {
    if (req.method != "POST") {
      return ErrorPlan(405, SimpleError(405, "Method Not Allowed"));
    }
    return Completion(req);
  }
  if (req.path == "/api/v1/models" || req.path == "/v1/models") {
    if (req.method != "GET") {
      return ErrorPlan(405, SimpleError(405, "Method Not Allowed"));
    }
    Plan plan;
    plan.generation_id = NewGenerationId(Now());
    plan.body = ModelsJson();
    return plan;
  }
  return ErrorPlan(404, SimpleError(404, "Not Found"));
}

void Responder::ResetFlaky() {
  std::lock_guard<std::mutex> lock(mu_);
  flaky_.clear();
}

// gen-<unix time>-<20 alphanumerics>
std::string Responder::NewGenerationId(int64_t created) {
  const uint64_t n = counter_.fetch_add(1, std::memory_order_relaxed);
  return "gen-" + std::to_string(created) + "-" +
         Alnum(seed_ ^ SplitMix(n), 20);
}

Plan Responder::ErrorPlan(unsigned status, const json::object& envelope) {
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
Plan Responder::AuthError(std::string_view message) {
  json::object err;
  err["message"] = message;
  err["code"] = 401;
  json::object env;
  env["error"] = std::move(err);
  return ErrorPlan(401, env);
}

Plan Responder::Completion(const RequestView& req) {
  // 1. Authentication: "Bearer <token>", the scheme in any case.
  const std::string_view auth = req.authorization;
  std::string_view token;
  if (auth.size() > 7 && boost::algorithm::istarts_with(auth, "bearer ")) {
    token = auth.substr(7);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  }
  if (token.empty()) return AuthError("No auth credentials found");
  if (!options_.api_key.empty() && token != options_.api_key) {
    return AuthError("User not found.");
  }

  // 2. The body.
  boost::system::error_code ec;
  json::value parsed = json::parse(req.body, ec);
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
    return ErrorPlan(400,
                     SimpleError(400, "Input required: specify \"messages\""));
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
        seen = ++flaky_[Fnv1a(req.body)];
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

Generation Responder::MakeGeneration(const json::object& body,
                                     std::string_view base) {
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
  g.content = "Echo from " + std::string(model->data(), model->size()) + ": " +
              Utf8Prefix(last_user, kExcerptCodePoints) + "\n" +
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
    g.content.resize(Utf8Floor(g.content, static_cast<size_t>(max_tokens) * 4));
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

Plan Responder::StreamPlan(const Generation& g) const {
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

Plan Responder::Success(const json::object& body, std::string_view base,
                        bool stream, Shape shape) {
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
    // The first fragment names the call; the arguments follow in up to
    // max(3, stream_pieces) fragments.
    json::object first = tool_call;
    first["function"] = json::object{{"name", g.tool_name}, {"arguments", ""}};
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

// Stream only: the role chunk, two content chunks, the error event; no usage
// and no [DONE].
Plan Responder::MidstreamError(const json::object& body,
                               std::string_view base) {
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

Plan Responder::Error200(const json::object& body, std::string_view base,
                         bool stream) {
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

Plan Responder::Broken(const json::object& body, std::string_view base,
                       bool stream, Plan::Kind kind) {
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

}  // namespace llmcache::fake::internal
