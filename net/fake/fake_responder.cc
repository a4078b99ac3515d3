// The responder: request -> Plan. Routing, auth and validation, the fault
// dispatch, and the completion answers (non-stream JSON and SSE events) with
// their usage and cost. Rules in fake_responder.h.

#include "fake_responder.h"

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <ctime>
#include <iterator>
#include <random>

#include "fake_faults.h"
#include "fake_features.h"
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
  uint64_t hash = 0;       // of the body minus stream, stream_options and usage
  std::string prefix;      // "Echo from <model>: <excerpt>\n"
  std::string content;     // choice 0's
  int64_t max_tokens = 0;  // 0 = no limit
  std::string finish_reason = "stop";  // choice 0's
  std::string excerpt;  // of the last user message, for reasoning
  std::string tool_name;
  std::string tool_arguments;
};

std::string Sse(const boost::json::value& v) {
  return "data: " + boost::json::serialize(v) + "\n\n";
}

boost::json::object ContentDelta(std::string_view content) {
  boost::json::object d;
  d["role"] = "assistant";
  d["content"] = content;
  return d;
}

namespace {

namespace json = boost::json;

constexpr size_t kExcerptCodePoints = 200;
constexpr int kErrorChunkCode = 502;

int64_t Now() { return static_cast<int64_t>(std::time(nullptr)); }

double RoundCost(double v) { return std::round(v * 1e12) / 1e12; }

// ------------------------------------------------------------ error bodies

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
                   int64_t reasoning_tokens, std::string_view base,
                   bool free_of_charge) {
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
  ctd["reasoning_tokens"] = reasoning_tokens;
  ctd["image_tokens"] = 0;
  ctd["audio_tokens"] = 0;
  u["completion_tokens_details"] = std::move(ctd);
  return u;
}

// ------------------------------------------------------------- SSE events

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
                       const json::object* error = nullptr, int index = 0,
                       json::value logprobs = nullptr) {
  json::object c = ChunkBase(g);
  json::object choice;
  choice["index"] = index;
  choice["delta"] = std::move(delta);
  choice["finish_reason"] =
      finish_reason ? json::value(finish_reason) : json::value(nullptr);
  choice["native_finish_reason"] =
      finish_reason ? json::value(finish_reason) : json::value(nullptr);
  choice["logprobs"] = std::move(logprobs);
  if (error != nullptr) choice["error"] = *error;
  json::array choices;
  choices.emplace_back(std::move(choice));
  c["choices"] = std::move(choices);
  c["system_fingerprint"] = g.fingerprint;
  return Sse(c);
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

// ------------------------------------------------------- answer contents

constexpr std::string_view kSentences[] = {
    "The cache remembers what the model said.",
    "Deterministic answers make caching easy to test.",
    "Every token saved is a token not paid for.",
    "This reply was generated locally by the fake.",
    "Nothing here left the loopback interface.",
    "The same question always gets the same answer.",
    "Prompt caching and response caching are different things.",
    "A kept-alive connection saves a handshake.",
};

constexpr char kReasoningFormat[] = "anthropic-claude-v1";

// Choice `i`'s content into *content (max_tokens applied); its finish reason.
std::string ChoiceText(const Generation& g, int i, std::string* content) {
  *content = g.prefix +
             std::string(kSentences[(g.hash + static_cast<uint64_t>(i)) %
                                    std::size(kSentences)]) +
             " (ref " + Hex(g.hash, 8) + ")";
  if (g.max_tokens > 0 && CeilDiv4(content->size()) > g.max_tokens) {
    content->resize(Utf8Floor(*content, static_cast<size_t>(g.max_tokens) * 4));
    return "length";
  }
  return "stop";
}

// One choice of an answer, the same streamed or not.
struct ChoiceOut {
  int index = 0;
  bool content_null = false;
  std::string content;
  std::string refusal;    // non-empty: a refusal (content is null)
  std::string reasoning;  // non-empty: reasoning was asked for
  std::string signature;  // of the reasoning.text detail
  std::string encrypted;  // data of the reasoning.encrypted detail
  std::string encrypted_id;
  json::object tool_call;  // non-empty: a tool call (content is null)
  json::array annotations;
  bool has_logprobs = false;
  json::array token_logprobs;  // of the content, or of the refusal
  std::string finish;
  int64_t completion_tokens = 0;  // reasoning included
  int64_t reasoning_tokens = 0;
};

json::array Annotations(const Generation& g, std::string_view content) {
  json::array out;
  for (int k = 1; k <= 2; ++k) {
    json::object citation;
    citation["url"] = "https://example.com/fake/" +
                      Hex(g.hash ^ static_cast<uint64_t>(k), 8) + "/" +
                      std::to_string(k);
    citation["title"] = "Fake source " + std::to_string(k);
    citation["content"] =
        "Cited text " + std::to_string(k) + " for " + Utf8Prefix(g.excerpt, 20);
    citation["start_index"] = 0;
    citation["end_index"] =
        static_cast<int64_t>(std::min<size_t>(content.size(), 10 * k));
    json::object a;
    a["type"] = "url_citation";
    a["url_citation"] = std::move(citation);
    out.emplace_back(std::move(a));
  }
  return out;
}

json::array ReasoningDetails(const ChoiceOut& c) {
  json::object text;
  text["type"] = "reasoning.text";
  text["text"] = c.reasoning;
  text["signature"] = c.signature;
  text["id"] = nullptr;
  text["format"] = kReasoningFormat;
  text["index"] = 0;
  json::object encrypted;
  encrypted["type"] = "reasoning.encrypted";
  encrypted["data"] = c.encrypted;
  encrypted["id"] = c.encrypted_id;
  encrypted["format"] = kReasoningFormat;
  encrypted["index"] = 1;
  return json::array{std::move(text), std::move(encrypted)};
}

json::value LogprobsOf(const ChoiceOut& c, json::array tokens) {
  if (!c.has_logprobs) return nullptr;
  json::object lp;
  if (c.refusal.empty()) {
    lp["content"] = std::move(tokens);
    lp["refusal"] = nullptr;
  } else {
    lp["content"] = nullptr;
    lp["refusal"] = std::move(tokens);
  }
  return lp;
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
    plan.body = options_.models_body ? *options_.models_body : ModelsJson();
    plan.delay_ms = options_.models_delay_ms;
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
  plan.headers = ErrorHeaders(status, Now());
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
  const std::string_view token = BearerToken(req.authorization);
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
      plan.delay_ms = sel.ms;
      break;
    case Kind::kFlaky: {
      int64_t seen = 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        seen = ++flaky_[Fnv1a(req.body)];
      }
      if (seen <= sel.count) {
        plan = ErrorPlan(sel.status, FaultEnvelope(sel.status, base));
        plan.delay_ms = sel.ms;
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
    case Kind::kFlood:
      plan = Success(body, base, stream, Shape::kNormal);
      if (stream) AddFlood(sel.count, sel.ms, &plan);
      break;
    case Kind::kNewlines:
      plan = Success(body, base, stream, Shape::kNormal);
      if (!stream) plan.body.insert(0, "\n\n\n");
      break;
    case Kind::kNotJson:  // a plain answer cut in half, streamed or not
      plan = Success(body, base, /*stream=*/false, Shape::kNormal);
      plan.body.resize(plan.body.size() / 2);
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
    case Kind::kRefusal:
      plan = Success(body, base, stream, Shape::kRefusal);
      break;
    case Kind::kAnnotations:
      plan = Success(body, base, stream, Shape::kAnnotations);
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
    case Kind::kEmbedDelay:  // embeddings only
    case Kind::kNone:
      plan = Success(body, base, stream, Shape::kNormal);
      break;
  }
  plan.model = model;
  return plan;
}

Generation Responder::MakeGeneration(const json::object& body,
                                     std::string_view base) {
  Generation g;
  g.created = Now();
  g.id = NewGenerationId(g.created);
  g.model = std::string(base);
  // A model drift on demand (fake_openrouter.h): the answer names another
  // resolved model.
  if (const json::string* resolved = FindString(body, "x_fake_resolved_model");
      resolved != nullptr && !resolved->empty()) {
    g.model.assign(resolved->data(), resolved->size());
  }
  g.provider = ProviderName(base);
  g.fingerprint = "fp_" + Hex(Fnv1a(base), 10);
  json::object canonical = body;
  canonical.erase("stream");
  canonical.erase("stream_options");
  canonical.erase("usage");
  g.hash = Fnv1a(json::serialize(canonical));
  const std::string last_user = LastUserText(body);
  const json::string* model = FindString(body, "model");
  g.prefix = "Echo from " + std::string(model->data(), model->size()) + ": " +
             Utf8Prefix(last_user, kExcerptCodePoints) + "\n";
  g.excerpt = Utf8Prefix(last_user, 40);
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    const json::value* v = body.if_contains(key);
    if (v != nullptr && v->is_int64() && v->get_int64() > 0) {
      g.max_tokens = v->get_int64();
    }
  }
  g.finish_reason = ChoiceText(g, 0, &g.content);
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
  const Generation g = MakeGeneration(body, base);
  const Features f = ReadFeatures(body);
  const PromptUsage prompt = cache_.Account(BuildPromptBlocks(body, base));

  // Every choice, from the same rules, streamed or not.
  std::vector<ChoiceOut> choices(static_cast<size_t>(f.n));
  int64_t completion_tokens = 0;
  int64_t reasoning_tokens = 0;
  for (int i = 0; i < f.n; ++i) {
    ChoiceOut& c = choices[static_cast<size_t>(i)];
    c.index = i;
    const uint64_t salt = i == 0 ? 0 : SplitMix(static_cast<uint64_t>(i));
    c.finish = ChoiceText(g, i, &c.content);
    switch (shape) {
      case Shape::kNormal:
      case Shape::kAnnotations:
        c.completion_tokens = CeilDiv4(c.content.size());
        if (shape == Shape::kAnnotations) {
          c.annotations = Annotations(g, c.content);
        }
        break;
      case Shape::kEmpty:
        c.content.clear();
        c.finish = "stop";
        break;
      case Shape::kToolCall:
        c.content.clear();
        c.content_null = true;
        c.finish = "tool_calls";
        c.completion_tokens =
            CeilDiv4(g.tool_name.size() + g.tool_arguments.size());
        c.tool_call["id"] = "call_" + Alnum(g.hash ^ 0x5bd1e995ULL ^ salt, 24);
        c.tool_call["type"] = "function";
        c.tool_call["function"] = json::object{{"name", g.tool_name},
                                               {"arguments", g.tool_arguments}};
        break;
      case Shape::kRefusal:
        c.content.clear();
        c.content_null = true;
        c.refusal = "I'm sorry, but I can't help with that. (ref " +
                    Hex(g.hash ^ salt, 8) + ")";
        c.finish = "stop";
        c.completion_tokens = CeilDiv4(c.refusal.size());
        break;
      case Shape::kChoiceError:
        c.content.resize(Utf8Floor(c.content, c.content.size() / 2));
        c.finish = "error";
        c.completion_tokens = CeilDiv4(c.content.size());
        break;
    }
    if (f.reasoning) {
      c.reasoning =
          "The user wrote \"" + g.excerpt + "\". Choice " + std::to_string(i) +
          " will say: " +
          std::string(kSentences[(g.hash + 3 + salt) % std::size(kSentences)]);
      c.signature = "sig_" + Alnum(g.hash ^ 0xA5A5A5A5ULL ^ salt, 40);
      c.encrypted = Alnum(g.hash ^ 0xC3C3C3C3ULL ^ salt, 48) + "==";
      c.encrypted_id = "rs_" + Alnum(g.hash ^ 0x3C3C3C3CULL ^ salt, 16);
      c.reasoning_tokens = CeilDiv4(c.reasoning.size());
      c.completion_tokens += c.reasoning_tokens;
    }
    const std::string& text = c.refusal.empty() ? c.content : c.refusal;
    if (f.logprobs && !text.empty()) {
      c.has_logprobs = true;
      c.token_logprobs =
          TokenLogprobs(text, g.hash ^ (salt + 1), f.top_logprobs);
    }
    completion_tokens += c.completion_tokens;
    reasoning_tokens += c.reasoning_tokens;
  }
  json::object usage = Usage(prompt, completion_tokens, reasoning_tokens, base,
                             /*free_of_charge=*/shape == Shape::kChoiceError);
  if (!options_.usage_cost) usage.erase("cost");

  if (!stream) {
    json::array out_choices;
    for (const ChoiceOut& c : choices) {
      json::object message;
      message["role"] = "assistant";
      if (c.content_null) {
        message["content"] = nullptr;
      } else {
        message["content"] = c.content;
      }
      message["refusal"] =
          c.refusal.empty() ? json::value(nullptr) : json::value(c.refusal);
      if (c.reasoning.empty()) {
        message["reasoning"] = nullptr;
      } else {
        message["reasoning"] = c.reasoning;
        message["reasoning_details"] = ReasoningDetails(c);
      }
      if (!c.tool_call.empty()) {
        message["tool_calls"] = json::array{c.tool_call};
      }
      if (!c.annotations.empty()) message["annotations"] = c.annotations;
      json::object choice;
      choice["logprobs"] = LogprobsOf(c, c.token_logprobs);
      choice["finish_reason"] = c.finish;
      choice["native_finish_reason"] = c.finish;
      choice["index"] = c.index;
      choice["message"] = std::move(message);
      if (shape == Shape::kChoiceError) choice["error"] = ChoiceError();
      out_choices.emplace_back(std::move(choice));
    }
    json::object r;
    r["id"] = g.id;
    r["provider"] = g.provider;
    r["model"] = g.model;
    r["object"] = "chat.completion";
    r["created"] = g.created;
    r["choices"] = std::move(out_choices);
    r["system_fingerprint"] = g.fingerprint;
    r["usage"] = std::move(usage);
    Plan plan;
    plan.generation_id = g.id;
    plan.body = json::serialize(r);
    return plan;
  }

  // Each choice's events, then interleaved (choice 0, 1, ..., 0, 1, ...)
  // as a provider streaming n > 1 choices does.
  const int pieces = std::max(1, options_.stream_pieces);
  std::vector<std::vector<std::string>> per_choice;
  for (const ChoiceOut& c : choices) {
    std::vector<std::string> events;
    const int i = c.index;
    const bool text_null = c.content_null;
    // The role chunk.
    if (text_null) {
      json::object d;
      d["role"] = "assistant";
      d["content"] = nullptr;
      events.push_back(DeltaEvent(g, std::move(d), nullptr, nullptr, i));
    } else {
      events.push_back(DeltaEvent(g, ContentDelta(""), nullptr, nullptr, i));
    }
    // Reasoning as OpenRouter streams it: text pieces, each with its
    // reasoning_details piece (same index: a continuation), the signature,
    // then the encrypted block in two pieces
    // (docs/openrouter.md#stream-chunks).
    if (!c.reasoning.empty()) {
      bool first = true;
      for (const std::string& piece :
           SplitPieces(c.reasoning, std::max(2, pieces / 2))) {
        json::object detail;
        detail["type"] = "reasoning.text";
        detail["text"] = piece;
        if (first) detail["id"] = nullptr;
        detail["format"] = kReasoningFormat;
        detail["index"] = 0;
        json::object d;
        d["role"] = "assistant";
        d["reasoning"] = piece;
        d["reasoning_details"] = json::array{std::move(detail)};
        events.push_back(DeltaEvent(g, std::move(d), nullptr, nullptr, i));
        first = false;
      }
      json::object sig;
      sig["type"] = "reasoning.text";
      sig["text"] = "";
      sig["signature"] = c.signature;
      sig["format"] = kReasoningFormat;
      sig["index"] = 0;
      json::object d;
      d["role"] = "assistant";
      d["reasoning_details"] = json::array{std::move(sig)};
      events.push_back(DeltaEvent(g, std::move(d), nullptr, nullptr, i));
      const size_t half = c.encrypted.size() / 2;
      for (int part = 0; part < 2; ++part) {
        json::object enc;
        enc["type"] = "reasoning.encrypted";
        enc["data"] =
            part == 0 ? c.encrypted.substr(0, half) : c.encrypted.substr(half);
        if (part == 0) enc["id"] = c.encrypted_id;
        enc["format"] = kReasoningFormat;
        enc["index"] = 1;
        json::object ed;
        ed["role"] = "assistant";
        ed["reasoning_details"] = json::array{std::move(enc)};
        events.push_back(DeltaEvent(g, std::move(ed), nullptr, nullptr, i));
      }
    }
    if (!c.tool_call.empty()) {
      // The first fragment names the call; the arguments follow in up to
      // max(3, stream_pieces) fragments.
      json::object call0;
      call0["index"] = 0;
      call0["id"] = c.tool_call.at("id");
      call0["type"] = "function";
      call0["function"] =
          json::object{{"name", g.tool_name}, {"arguments", ""}};
      json::object delta;
      delta["role"] = "assistant";
      delta["content"] = nullptr;
      delta["tool_calls"] = json::array{call0};
      events.push_back(DeltaEvent(g, std::move(delta), nullptr, nullptr, i));
      for (const std::string& piece :
           SplitPieces(g.tool_arguments, std::max(3, pieces))) {
        json::object frag;
        frag["index"] = 0;
        frag["function"] = json::object{{"arguments", piece}};
        json::object d;
        d["role"] = "assistant";
        d["tool_calls"] = json::array{frag};
        events.push_back(DeltaEvent(g, std::move(d), nullptr, nullptr, i));
      }
    } else {
      // Content (or the refusal) in pieces; with logprobs, each piece is a
      // run of whole tokens and carries their logprobs.
      const std::string_view key = c.refusal.empty() ? "content" : "refusal";
      const std::string& text = c.refusal.empty() ? c.content : c.refusal;
      auto text_delta = [&](std::string_view piece) {
        json::object d;
        d["role"] = "assistant";
        d[key] = piece;
        return d;
      };
      if (c.has_logprobs) {
        for (json::array& run : TokenRuns(c.token_logprobs, pieces)) {
          const std::string piece = RunText(run);
          events.push_back(DeltaEvent(g, text_delta(piece), nullptr, nullptr, i,
                                      LogprobsOf(c, std::move(run))));
        }
      } else {
        for (const std::string& piece : SplitPieces(text, pieces)) {
          events.push_back(
              DeltaEvent(g, text_delta(piece), nullptr, nullptr, i));
        }
      }
    }
    if (!c.annotations.empty()) {
      json::object d = ContentDelta("");
      d["annotations"] = c.annotations;
      events.push_back(DeltaEvent(g, std::move(d), nullptr, nullptr, i));
    }
    json::object finish_delta;
    if (text_null) {
      finish_delta["role"] = "assistant";
    } else {
      finish_delta = ContentDelta("");
    }
    if (shape == Shape::kChoiceError) {
      const json::object err = ChoiceError();
      events.push_back(
          DeltaEvent(g, std::move(finish_delta), c.finish.c_str(), &err, i));
    } else {
      events.push_back(
          DeltaEvent(g, std::move(finish_delta), c.finish.c_str(), nullptr, i));
    }
    per_choice.push_back(std::move(events));
  }
  Plan plan = StreamPlan(g);
  for (size_t k = 0;; ++k) {
    bool any = false;
    for (std::vector<std::string>& events : per_choice) {
      if (k < events.size()) {
        plan.events.push_back(std::move(events[k]));
        any = true;
      }
    }
    if (!any) break;
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
