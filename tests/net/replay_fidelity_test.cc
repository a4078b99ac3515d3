// Replay fidelity: a cached answer replayed as a stream carries every field
// the live answer carried, and an entry stored from a stream is the body a
// non-streamed request would have received (llmcache/net/sse.h,
// docs/openrouter.md#stream-handling). End to end through a CachedClient over
// the fake OpenRouter and a real RocksDB cache, for rich answers: n > 1,
// reasoning with reasoning_details, annotations, logprobs, a refusal, a tool
// call with reasoning. Streams are also reassembled the way the official
// openai-node SDK does (ChatCompletionStream), to check that a replay is
// complete for it too.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fake_openrouter.h"
#include "llmcache/cache.h"
#include "llmcache/net/cached_client.h"
#include "llmcache/net/client.h"
#include "llmcache/net/sse.h"
#include "testing/io_loop.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/test_cache.h"

namespace llmcache::net {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using ::llmcache::fake::FakeOpenRouter;
using ::llmcache::fake::FakeOptions;
using namespace std::chrono_literals;

// ------------------------------------------------------------------ helpers

json::object ParseObject(std::string_view s) {
  boost::system::error_code ec;
  json::value v = json::parse(s, ec);
  EXPECT_FALSE(ec) << "not JSON: " << s;
  if (ec || !v.is_object()) return {};
  return std::move(v.as_object());
}

// The data payloads of replayed events ("data: {...}\n\n").
std::vector<std::string> Payloads(const std::vector<std::string>& events) {
  std::vector<std::string> out;
  for (const std::string& e : events) {
    std::string_view p = e;
    if (p.starts_with("data: ")) p.remove_prefix(6);
    while (!p.empty() && p.back() == '\n') p.remove_suffix(1);
    out.emplace_back(p);
  }
  return out;
}

// StreamAccumulator over `payloads`; the accumulated body, parsed.
json::object Accumulate(const std::vector<std::string>& payloads) {
  StreamAccumulator acc;
  for (const std::string& p : payloads) EXPECT_OK(acc.Add(p));
  EXPECT_TRUE(acc.done());
  EXPECT_FALSE(acc.error().has_value());
  return ParseObject(acc.ToCompletionJson());
}

// How the openai-node SDK (v5, src/lib/ChatCompletionStream.ts,
// #accumulateChatCompletion and finalizeChatCompletion) reassembles chunks:
// top-level members by assignment; per choice (by index) logprobs.content and
// .refusal arrays appended, finish_reason when truthy, other choice members
// by assignment; delta content and refusal concatenated when truthy, tool
// calls by index (id, type, name assigned when truthy, arguments
// concatenated), and every other delta member (reasoning, reasoning_details,
// annotations, ...) by assignment: the last chunk's value wins. Also
// reproduced: a choice's first chunk with non-null logprobs has its arrays
// appended to themselves (the snapshot shares the chunk's object).
json::object OpenAiNodeAccumulate(const std::vector<std::string>& payloads) {
  json::object snapshot;
  bool started = false;
  std::map<int64_t, json::object> choices;
  std::map<int64_t, std::map<int64_t, json::object>> tool_calls;
  auto truthy = [](const json::value* v) {
    if (v == nullptr || v->is_null()) return false;
    if (v->is_string()) return !v->get_string().empty();
    if (v->is_bool()) return v->get_bool();
    return true;
  };
  for (const std::string& p : payloads) {
    if (p == "[DONE]") break;
    json::object chunk = ParseObject(p);
    for (const auto& kv : chunk) {
      if (kv.key() == "choices") continue;
      snapshot[kv.key()] = kv.value();
    }
    started = true;
    for (const json::value& cv : chunk.at("choices").as_array()) {
      const json::object& c = cv.as_object();
      const int64_t index = c.at("index").as_int64();
      json::value logprobs =
          c.contains("logprobs") ? c.at("logprobs") : json::value(nullptr);
      auto it = choices.find(index);
      if (it == choices.end()) {
        json::object fresh;
        fresh["finish_reason"] =
            c.contains("finish_reason") ? c.at("finish_reason") : nullptr;
        fresh["index"] = index;
        fresh["message"] = json::object();
        fresh["logprobs"] = logprobs;
        for (const auto& kv : c) {
          if (kv.key() != "delta" && kv.key() != "finish_reason" &&
              kv.key() != "index" && kv.key() != "logprobs") {
            fresh[kv.key()] = kv.value();
          }
        }
        it = choices.emplace(index, std::move(fresh)).first;
      }
      json::object& choice = it->second;
      if (truthy(&logprobs)) {
        json::value& cur = choice["logprobs"];
        if (!truthy(&cur)) {
          cur = logprobs;
        } else {
          for (const char* key : {"content", "refusal"}) {
            const json::value* add = logprobs.as_object().if_contains(key);
            if (add == nullptr || !add->is_array()) continue;
            json::value& into = cur.as_object()[key];
            if (!into.is_array()) into = json::array();
            const json::array copy = add->as_array();  // may alias `into`
            for (const json::value& e : copy) into.as_array().push_back(e);
          }
        }
      }
      if (truthy(c.if_contains("finish_reason"))) {
        choice["finish_reason"] = c.at("finish_reason");
      }
      for (const auto& kv : c) {
        if (kv.key() != "delta" && kv.key() != "finish_reason" &&
            kv.key() != "index" && kv.key() != "logprobs") {
          choice[kv.key()] = kv.value();
        }
      }
      const json::object* delta = c.at("delta").if_object();
      if (delta == nullptr) continue;
      json::object& message = choice["message"].as_object();
      for (const auto& kv : *delta) {
        const std::string_view key = kv.key();
        const json::value& v = kv.value();
        if (key == "content" || key == "refusal") {
          if (!truthy(&v)) continue;
          json::value& cur = message[key];
          std::string text =
              cur.is_string() ? std::string(cur.as_string()) : std::string();
          text += std::string(v.as_string());
          cur = text;
        } else if (key == "role") {
          if (truthy(&v)) message["role"] = v;
        } else if (key == "tool_calls") {
          if (!v.is_array()) continue;
          message["tool_calls"];  // becomes present
          for (const json::value& fv : v.as_array()) {
            const json::object& f = fv.as_object();
            json::object& call = tool_calls[index][f.at("index").as_int64()];
            for (const auto& fkv : f) {
              const std::string_view fk = fkv.key();
              if (fk == "index") continue;
              if (fk == "id" || fk == "type") {
                if (truthy(&fkv.value())) call[fk] = fkv.value();
              } else if (fk == "function") {
                const json::object& fn = fkv.value().as_object();
                if (!call.contains("function")) {
                  json::object init;
                  init["name"] = fn.contains("name") ? fn.at("name") : "";
                  init["arguments"] = "";
                  call["function"] = std::move(init);
                }
                json::object& cf = call["function"].as_object();
                if (truthy(fn.if_contains("name"))) cf["name"] = fn.at("name");
                if (truthy(fn.if_contains("arguments"))) {
                  cf["arguments"] =
                      std::string(cf.at("arguments").as_string()) +
                      std::string(fn.at("arguments").as_string());
                }
              } else {
                call[fk] = fkv.value();
              }
            }
          }
        } else if (key != "function_call") {
          message[key] = v;  // Object.assign
        }
      }
    }
  }
  EXPECT_TRUE(started);
  // finalizeChatCompletion.
  json::array out;
  for (auto& [index, choice] : choices) {
    json::object& message = choice["message"].as_object();
    if (!message.contains("content")) message["content"] = nullptr;
    if (!message.contains("refusal")) message["refusal"] = nullptr;
    if (message.contains("tool_calls")) {
      json::array calls;
      for (auto& [i, call] : tool_calls[index]) calls.push_back(call);
      message["tool_calls"] = std::move(calls);
    }
    EXPECT_TRUE(choice.at("finish_reason").is_string())
        << "missing finish_reason for choice " << index;
    EXPECT_TRUE(message.contains("role"))
        << "missing role for choice " << index;
    out.push_back(choice);
  }
  snapshot["choices"] = std::move(out);
  snapshot["object"] = "chat.completion";
  return snapshot;
}

// "<absent>" for a missing member, so that absent and null differ.
json::value Get(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr ? *v : json::value("<absent>");
}

const json::object& ChoiceAt(const json::object& response, size_t i) {
  return response.at("choices").as_array().at(i).as_object();
}

// Compares two responses field by field: the members of every choice's
// message, its finish reasons and logprobs, and the response's usage, model,
// provider and system fingerprint. `message_keys` names the message members
// to compare (every one, for bodies of the same shape).
void ExpectSameFields(const json::object& a, const json::object& b,
                      const std::string& what,
                      const std::vector<std::string>& message_keys = {
                          "role", "content", "refusal", "reasoning",
                          "reasoning_details", "annotations", "tool_calls"}) {
  SCOPED_TRACE(what);
  for (const char* key : {"usage", "model", "provider", "system_fingerprint"}) {
    EXPECT_EQ(Get(a, key), Get(b, key)) << key;
  }
  const json::array& ca = a.at("choices").as_array();
  const json::array& cb = b.at("choices").as_array();
  ASSERT_EQ(ca.size(), cb.size());
  for (size_t i = 0; i < ca.size(); ++i) {
    SCOPED_TRACE("choice " + std::to_string(i));
    const json::object& x = ca[i].as_object();
    const json::object& y = cb[i].as_object();
    for (const char* key :
         {"index", "finish_reason", "native_finish_reason", "logprobs"}) {
      EXPECT_EQ(Get(x, key), Get(y, key)) << key;
    }
    const json::object& mx = x.at("message").as_object();
    const json::object& my = y.at("message").as_object();
    for (const std::string& key : message_keys) {
      EXPECT_EQ(Get(mx, key), Get(my, key)) << "message." << key;
    }
  }
}

// Everything but what changes from one generation to the next.
json::object WithoutIdentity(json::object o) {
  o.erase("id");
  o.erase("created");
  return o;
}

// ------------------------------------------------- SDK reassembly, unit

// A stored body with every field the issue names, in OpenRouter's shape:
// two choices; reasoning with three kinds of reasoning_details; annotations;
// content logprobs whose tokens spell the content; a tool call; a refusal
// with its logprobs; usage with cost and details; extra top-level members.
constexpr char kRich[] = R"({
  "id":"gen-1767225600-Ab3dE5gH7jK9mN1pQ3sT","provider":"Anthropic",
  "model":"anthropic/claude-sonnet-4.5","object":"chat.completion",
  "created":1767225600,
  "choices":[
    {"logprobs":{"content":[
        {"token":"Gr\u00fc","logprob":-0.25,"bytes":[71,114,195,188],
         "top_logprobs":[{"token":"Gr\u00fc","logprob":-0.25,"bytes":[71,114,195,188]}]},
        {"token":"\u00dfe ","logprob":-1.5,"bytes":[195,159,101,32],"top_logprobs":[]},
        {"token":"\ud83d\ude00","logprob":-3.0,"bytes":[240,159,152,128],"top_logprobs":[]},
        {"token":" ok","logprob":0.0,"bytes":[32,111,107],"top_logprobs":[]}],
      "refusal":null},
     "finish_reason":"tool_calls","native_finish_reason":"tool_use","index":0,
     "message":{"role":"assistant","content":"Gr\u00fc\u00dfe \ud83d\ude00 ok",
       "refusal":null,"reasoning":"First think, then call.",
       "reasoning_details":[
         {"type":"reasoning.summary","summary":"Plan: call lookup.","id":"rs_1",
          "format":"openai-responses-v1","index":0},
         {"type":"reasoning.text","text":"First think, then call.",
          "signature":"sig_abc","id":null,"format":"anthropic-claude-v1","index":1},
         {"type":"reasoning.encrypted","data":"ZW5jcnlwdGVk","id":"rs_2",
          "format":"anthropic-claude-v1","index":2}],
       "tool_calls":[{"id":"call_1","type":"function","function":
         {"name":"lookup","arguments":"{\"q\":\"K\u00f6ln\",\"n\":[1,2,3]}"}}],
       "annotations":[{"type":"url_citation","url_citation":
         {"url":"https://example.com/a","title":"A","content":"a",
          "start_index":0,"end_index":4}}]}},
    {"logprobs":{"content":null,"refusal":[
        {"token":"No","logprob":-0.125,"bytes":[78,111],"top_logprobs":[]},
        {"token":".","logprob":-0.5,"bytes":[46],"top_logprobs":[]}]},
     "finish_reason":"stop","native_finish_reason":"stop","index":1,
     "message":{"role":"assistant","content":null,"refusal":"No.",
       "reasoning":null}}],
  "system_fingerprint":"fp_1","service_tier":"standard",
  "usage":{"prompt_tokens":29,"completion_tokens":33,"total_tokens":62,
    "cost":0.00002415,"is_byok":false,
    "prompt_tokens_details":{"cached_tokens":3,"cache_write_tokens":5},
    "cost_details":{"upstream_inference_cost":null},
    "completion_tokens_details":{"reasoning_tokens":7}}})";

TEST(ReplayFidelityUnitTest, AccumulatingTheReplayGivesTheStoredBodyBack) {
  const json::object stored = ParseObject(kRich);
  for (size_t piece : {size_t{1}, size_t{3}, size_t{8}, size_t{64}}) {
    SCOPED_TRACE("piece_bytes " + std::to_string(piece));
    Result<std::vector<std::string>> events = ReplayAsSse(kRich, piece);
    ASSERT_OK(events);
    // Object equality ignores member order.
    EXPECT_EQ(Accumulate(Payloads(*events)), stored);
  }
}

// Numbers are written as the shortest plain decimal that reads back the
// same, as the upstream wrote them, not in Boost.JSON's exponent form
// ("cost":0.0001 was replayed as 1E-4).
TEST(ReplayFidelityUnitTest, NumbersKeepTheirPlainForm) {
  constexpr std::string_view kBody =
      R"({"id":"g","object":"chat.completion","created":1,"model":"m",)"
      R"("choices":[{"index":0,"message":{"role":"assistant","content":"hi"},)"
      R"("finish_reason":"stop","logprobs":{"content":[{"token":"hi",)"
      R"("logprob":-0.00012,"top_logprobs":[]}]}}],"usage":{"prompt_tokens":1,)"
      R"("completion_tokens":1,"total_tokens":2,"cost":0.0001}})";
  Result<std::vector<std::string>> events = ReplayAsSse(kBody, 64);
  ASSERT_OK(events);
  std::string all;
  for (const std::string& e : *events) all += e;
  EXPECT_NE(all.find(R"("cost":0.0001)"), std::string::npos) << all;
  EXPECT_NE(all.find(R"("logprob":-0.00012)"), std::string::npos) << all;
  EXPECT_EQ(all.find("E-"), std::string::npos) << all;
}

TEST(ReplayFidelityUnitTest, TheOpenAiNodeSdkReassemblesEveryField) {
  const json::object stored = ParseObject(kRich);
  for (size_t piece : {size_t{1}, size_t{5}, size_t{64}}) {
    Result<std::vector<std::string>> events = ReplayAsSse(kRich, piece);
    ASSERT_OK(events);
    const json::object sdk = OpenAiNodeAccumulate(Payloads(*events));
    ExpectSameFields(sdk, stored, "piece_bytes " + std::to_string(piece));
  }
}

// The check above can fail: a replay that splits reasoning into pieces, as
// a live stream does, is not reassembled whole by the SDK.
TEST(ReplayFidelityUnitTest, TheSdkModelKeepsOnlyTheLastPieceOfUnknownMembers) {
  const std::vector<std::string> live = {
      R"({"id":"g","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"Thin"},"finish_reason":null}]})",
      R"({"id":"g","choices":[{"index":0,"delta":{"reasoning":"king"},"finish_reason":null,"logprobs":{"content":[{"token":"x"}]}}]})",
      R"({"id":"g","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop","logprobs":{"content":[{"token":"y"}]}}]})",
      "[DONE]"};
  const json::object sdk = OpenAiNodeAccumulate(live);
  const json::object& message = ChoiceAt(sdk, 0).at("message").as_object();
  EXPECT_EQ(message.at("reasoning"), "king");
  EXPECT_EQ(message.at("content"), "x");
  EXPECT_EQ(ChoiceAt(sdk, 0).at("logprobs").at("content").as_array().size(),
            2u);
  // The self-append of a choice's first chunk's logprobs.
  const json::object dup = OpenAiNodeAccumulate(
      {R"({"id":"g","choices":[{"index":0,"delta":{"role":"assistant","content":"a"},"finish_reason":"stop","logprobs":{"content":[{"token":"a"}]}}]})"});
  EXPECT_EQ(ChoiceAt(dup, 0).at("logprobs").at("content").as_array().size(),
            2u);
}

// ------------------------------------------------------ end to end fixture

// Requests with rich answers from the fake (net/fake/fake_openrouter.h).
struct RichRequest {
  const char* name;
  std::string body;  // without "stream"
  // What the answer must hold, so that no comparison is vacuous.
  void (*expect)(const json::object& response);
};

void PrintTo(const RichRequest& r, std::ostream* os) { *os << r.name; }

std::string RequestBody(const std::string& model, const std::string& extra,
                        const std::string& text) {
  return R"({"model":")" + model + R"(","temperature":0,)" + extra +
         R"(,"messages":[{"role":"user","content":")" + text + R"("}]})";
}

void ExpectAnnotatedReasoningWithLogprobs(const json::object& r) {
  ASSERT_EQ(r.at("choices").as_array().size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const json::object& c = ChoiceAt(r, i);
    EXPECT_EQ(c.at("index"), static_cast<int64_t>(i));
    const json::object& m = c.at("message").as_object();
    EXPECT_FALSE(m.at("content").as_string().empty());
    EXPECT_FALSE(m.at("reasoning").as_string().empty());
    const json::array& details = m.at("reasoning_details").as_array();
    ASSERT_EQ(details.size(), 2u);
    EXPECT_EQ(details[0].at("text"), m.at("reasoning"));
    EXPECT_TRUE(details[0].at("signature").is_string());
    EXPECT_EQ(details[1].at("type"), "reasoning.encrypted");
    EXPECT_EQ(m.at("annotations").as_array().size(), 2u);
    const json::array& tokens = c.at("logprobs").at("content").as_array();
    ASSERT_FALSE(tokens.empty());
    EXPECT_EQ(tokens[0].at("top_logprobs").as_array().size(), 2u);
  }
  EXPECT_NE(ChoiceAt(r, 0).at("message").at("content"),
            ChoiceAt(r, 1).at("message").at("content"));
  EXPECT_GT(r.at("usage")
                .at("completion_tokens_details")
                .at("reasoning_tokens")
                .as_int64(),
            0);
}

void ExpectToolCallWithReasoning(const json::object& r) {
  const json::object& m = ChoiceAt(r, 0).at("message").as_object();
  EXPECT_TRUE(m.at("content").is_null());
  ASSERT_EQ(m.at("tool_calls").as_array().size(), 1u);
  EXPECT_EQ(m.at("tool_calls").at(0).at("function").at("name"), "lookup");
  EXPECT_FALSE(m.at("tool_calls")
                   .at(0)
                   .at("function")
                   .at("arguments")
                   .as_string()
                   .empty());
  EXPECT_EQ(m.at("reasoning_details").as_array().size(), 2u);
  EXPECT_EQ(ChoiceAt(r, 0).at("finish_reason"), "tool_calls");
}

void ExpectRefusalWithLogprobs(const json::object& r) {
  const json::object& c = ChoiceAt(r, 0);
  EXPECT_TRUE(c.at("message").at("content").is_null());
  EXPECT_FALSE(c.at("message").at("refusal").as_string().empty());
  EXPECT_TRUE(c.at("logprobs").at("content").is_null());
  EXPECT_FALSE(c.at("logprobs").at("refusal").as_array().empty());
}

void ExpectPlainMultibyte(const json::object& r) {
  EXPECT_THAT(
      std::string(ChoiceAt(r, 0).at("message").at("content").as_string()),
      ::testing::HasSubstr("K\xC3\xB6ln"));
}

std::vector<RichRequest> RichRequests() {
  return {
      {"AnnotationsReasoningLogprobsTwoChoices",
       RequestBody("fake/annotations",
                   R"("n":2,"logprobs":true,"top_logprobs":2,)"
                   R"("reasoning":{"effort":"high"})",
                   "Cite your sources about caching"),
       ExpectAnnotatedReasoningWithLogprobs},
      {"ToolCallWithReasoning",
       RequestBody(
           "fake/tool-call",
           R"("reasoning":{"max_tokens":1024},"tools":[{"type":)"
           R"("function","function":{"name":"lookup","parameters":{}}}])",
           "What is the weather in Paris?"),
       ExpectToolCallWithReasoning},
      {"RefusalWithLogprobs",
       RequestBody("fake/refusal", R"("logprobs":true,"top_logprobs":1)",
                   "Something I must refuse"),
       ExpectRefusalWithLogprobs},
      {"PlainMultibyte",
       RequestBody("openai/gpt-4o-mini", R"("max_tokens":512)",
                   "Gr\xC3\xBC\xC3\x9F"
                   "e aus K\xC3\xB6ln \xE6\x97\xA5\xE6\x9C\xAC "
                   "\xF0\x9F\x98\x80"),
       ExpectPlainMultibyte},
  };
}

std::string WithStream(const std::string& body) {
  return body.substr(0, body.size() - 1) + R"(,"stream":true})";
}

struct Recorder {
  std::mutex mu;
  std::vector<std::string> payloads;
  StreamHandler Handler() {
    return [this](std::string_view d) {
      std::lock_guard<std::mutex> lock(mu);
      payloads.emplace_back(d);
      return true;
    };
  }
};

class ReplayFidelityTest : public ::testing::TestWithParam<RichRequest> {
 protected:
  void SetUp() override {
    FakeOptions fo;
    fo.stream_pieces = 5;
    auto f = FakeOpenRouter::Start(fo);
    ASSERT_OK(f);
    fake_ = std::move(f).value();
    auto c = llmcache::testing::OpenTestCache(dir_.path() + "/db");
    ASSERT_OK(c);
    cache_ = std::shared_ptr<Cache>(std::move(c).value());
    ClientOptions co;
    co.base_url = fake_->base_url();
    co.api_key = "k";
    co.max_attempts = 1;
    auto client = Client::Create(loop_.ioc().get_executor(), co);
    ASSERT_OK(client);
    CachedClientOptions o;
    o.log = [](std::string_view) {};
    cached_ = CachedClient::Create(cache_, *client, std::move(o));
  }

  Result<CachedResponse> Call(const std::string& body,
                              Recorder* recorder = nullptr,
                              CachedRequest req = {}) {
    req.body = body;
    StreamHandler handler;
    if (recorder != nullptr) handler = recorder->Handler();
    return cached_
        ->AsyncComplete(std::move(req), std::move(handler), asio::use_future)
        .get();
  }

  // What the upstream answers, not streamed, right now: a request that
  // neither looks up nor stores.
  json::object FreshUpstream(const std::string& body) {
    CachedRequest req;
    req.skip_lookup = true;
    req.no_store = true;
    Result<CachedResponse> r = Call(body, nullptr, std::move(req));
    EXPECT_OK(r);
    if (!r.ok()) return {};
    EXPECT_EQ(r->result, CacheResult::kMiss);
    EXPECT_FALSE(r->stored);
    return ParseObject(r->body);
  }

  llmcache::testing::TempDir dir_;
  llmcache::testing::IoLoop loop_;
  std::unique_ptr<FakeOpenRouter> fake_;
  std::shared_ptr<Cache> cache_;
  std::shared_ptr<CachedClient> cached_;
};

// (a) A streamed miss, then the same request streamed again: the hit's
// replay reassembles to what the live stream did, field by field.
TEST_P(ReplayFidelityTest, StreamedMissThenStreamedHit) {
  const std::string body = WithStream(GetParam().body);
  Recorder live;
  Result<CachedResponse> miss = Call(body, &live);
  ASSERT_OK(miss);
  ASSERT_EQ(miss->result, CacheResult::kMiss);
  ASSERT_TRUE(miss->stored) << miss->not_stored_reason;
  ASSERT_EQ(live.payloads.back(), "[DONE]");

  Recorder replay;
  Result<CachedResponse> hit = Call(body, &replay);
  ASSERT_OK(hit);
  ASSERT_EQ(hit->result, CacheResult::kHit);
  EXPECT_EQ(fake_->completions(), 1u);

  const json::object from_live = Accumulate(live.payloads);
  const json::object from_replay = Accumulate(replay.payloads);
  GetParam().expect(from_live);
  ExpectSameFields(from_live, from_replay, "live vs replayed");
  EXPECT_EQ(from_live, from_replay);  // every member, id and created too
  EXPECT_EQ(ParseObject(hit->body), from_live);  // what was stored
  // The SDK reassembles the replay completely.
  ExpectSameFields(OpenAiNodeAccumulate(replay.payloads), from_live,
                   "openai-node reassembly of the replay");
  // And the stream-derived entry is what the upstream answers unstreamed.
  ExpectSameFields(WithoutIdentity(from_live),
                   WithoutIdentity(FreshUpstream(GetParam().body)),
                   "stored from the stream vs a fresh non-stream answer");
}

// (b) A non-stream miss (the entry stored from JSON), then a streamed hit.
TEST_P(ReplayFidelityTest, NonStreamMissThenStreamedHit) {
  Result<CachedResponse> miss = Call(GetParam().body);
  ASSERT_OK(miss);
  ASSERT_EQ(miss->result, CacheResult::kMiss);
  ASSERT_TRUE(miss->stored) << miss->not_stored_reason;
  const json::object stored = ParseObject(miss->body);
  GetParam().expect(stored);

  Recorder replay;
  Result<CachedResponse> hit = Call(WithStream(GetParam().body), &replay);
  ASSERT_OK(hit);
  ASSERT_EQ(hit->result, CacheResult::kHit);
  EXPECT_EQ(hit->body, miss->body);
  EXPECT_EQ(fake_->completions(), 1u);

  const json::object from_replay = Accumulate(replay.payloads);
  ExpectSameFields(from_replay, stored, "replay vs the stored JSON");
  EXPECT_EQ(from_replay, stored);  // every member
  ExpectSameFields(OpenAiNodeAccumulate(replay.payloads), stored,
                   "openai-node reassembly of the replay");
}

// (c) A streamed miss, then a non-stream hit: the entry stored from the
// stream equals what the upstream answers unstreamed for that request
// (n = 2 and logprobs in the first request, every shape in the others).
TEST_P(ReplayFidelityTest, StreamedMissThenNonStreamHit) {
  Recorder live;
  Result<CachedResponse> miss = Call(WithStream(GetParam().body), &live);
  ASSERT_OK(miss);
  ASSERT_EQ(miss->result, CacheResult::kMiss);
  ASSERT_TRUE(miss->stored) << miss->not_stored_reason;

  Result<CachedResponse> hit = Call(GetParam().body);
  ASSERT_OK(hit);
  ASSERT_EQ(hit->result, CacheResult::kHit);
  EXPECT_FALSE(hit->streamed);
  const json::object from_cache = ParseObject(hit->body);
  GetParam().expect(from_cache);

  const json::object upstream = FreshUpstream(GetParam().body);
  GetParam().expect(upstream);
  EXPECT_EQ(fake_->completions(), 2u);
  ExpectSameFields(from_cache, upstream, "non-stream hit vs upstream");
  // Member by member, but for the generation's id and time.
  EXPECT_EQ(WithoutIdentity(from_cache), WithoutIdentity(upstream));
}

INSTANTIATE_TEST_SUITE_P(
    Rich, ReplayFidelityTest, ::testing::ValuesIn(RichRequests()),
    [](const ::testing::TestParamInfo<RichRequest>& param_info) {
      return std::string(param_info.param.name);
    });

}  // namespace
}  // namespace llmcache::net
