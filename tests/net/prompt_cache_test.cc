// Tests for cache-breakpoint placement, model-family minimums, the /models
// price table and cost accounting (llmcache/net/prompt_cache.h), against
// docs/openrouter.md (#cache-markers, #provider-caching, #cost-formula,
// #models-pricing).

#include "llmcache/net/prompt_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/key.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

namespace llmcache::net {
namespace {

namespace json = boost::json;
using ::llmcache::testing::StatusIs;
using ::testing::HasSubstr;

constexpr double kEps = 1e-12;

// ---------------------------------------------------------------------------
// MinCacheableTokens

TEST(PromptCacheTest, MinCacheableTokensFollowsTheFamilyTable) {
  struct Case {
    std::string_view model;
    size_t tokens;
  };
  const Case cases[] = {
      {"anthropic/claude-opus-4.5", 4096},
      {"anthropic/claude-opus-4.6", 4096},
      {"anthropic/claude-opus-4.8", 4096},
      {"anthropic/claude-opus-4-5-20251101", 4096},
      {"anthropic/claude-opus-4.5:nitro", 4096},
      {"anthropic/claude-haiku-4.5", 4096},
      {"anthropic/claude-3.5-haiku", 2048},
      {"anthropic/claude-3-5-haiku-20241022", 2048},
      {"anthropic/claude-opus-4", 1024},
      {"anthropic/claude-opus-4.1", 1024},
      {"anthropic/claude-sonnet-4", 1024},
      {"anthropic/claude-sonnet-4.5", 1024},
      {"anthropic/claude-4.5-sonnet-20250929", 1024},
      {"anthropic/claude-sonnet-4.6", 1024},
      {"anthropic/claude-3.7-sonnet:thinking", 1024},
      {"google/gemini-2.5-pro", 4096},
      {"google/gemini-2.5-pro-preview-05-06", 4096},
      {"google/gemini-2.5-flash", 1024},
      {"google/gemini-2.5-flash-lite", 1024},
      {"openai/gpt-4o", 1024},
      {"openai/gpt-5.6-sol", 1024},
      {"deepseek/deepseek-chat", 1024},
      {"", 1024},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(MinCacheableTokens(c.model), c.tokens) << c.model;
  }
}

// ---------------------------------------------------------------------------
// AddCacheBreakpoints

std::string Big(size_t n, char c = 'x') { return std::string(n, c); }

json::value Parse(std::string_view s) { return json::parse(s); }

const json::value& Msg(const json::value& body, size_t i) {
  return body.at("messages").at(i);
}

json::value Marker(std::string_view ttl = "") {
  json::object m;
  m["type"] = "ephemeral";
  if (!ttl.empty()) m["ttl"] = ttl;
  return m;
}

BreakpointOptions Min(size_t bytes) {
  BreakpointOptions o;
  o.min_block_bytes = bytes;
  return o;
}

TEST(PromptCacheTest, SystemStringBecomesAMarkedTextPart) {
  const std::string sys = Big(200, 's');
  const std::string body =
      R"({"model":"anthropic/claude-sonnet-4.5","messages":[{"role":"system",)"
      R"("content":")" +
      sys + R"("},{"role":"user","content":"Hi"}]})";
  Result<std::string> out =
      AddCacheBreakpoints(body, "anthropic/claude-sonnet-4.5", Min(100));
  ASSERT_OK(out);
  const json::value v = Parse(*out);
  json::object part;
  part["type"] = "text";
  part["text"] = sys;
  part["cache_control"] = Marker();
  EXPECT_EQ(Msg(v, 0).at("content"), json::array({part}));
  EXPECT_EQ(Msg(v, 0).at("role"), "system");
  EXPECT_EQ(Msg(v, 1), Parse(R"({"role":"user","content":"Hi"})"));
}

TEST(PromptCacheTest, TtlIsWrittenIntoTheMarker) {
  const std::string body = R"({"model":"m","messages":[{"role":"developer",)"
                           R"("content":")" +
                           Big(50) + R"("},{"role":"user","content":"q"}]})";
  BreakpointOptions o = Min(10);
  o.ttl = "1h";
  Result<std::string> out = AddCacheBreakpoints(body, "m", o);
  ASSERT_OK(out);
  EXPECT_EQ(Msg(Parse(*out), 0).at("content").at(0).at("cache_control"),
            Marker("1h"));
}

TEST(PromptCacheTest, SystemArrayGetsItsLastTextPartMarked) {
  const std::string body =
      R"({"model":"m","messages":[{"role":"system","content":[)"
      R"({"type":"text","text":")" +
      Big(60) + R"("},{"type":"text","text":")" + Big(60) +
      R"("}]},{"role":"user","content":"q"}]})";
  Result<std::string> out = AddCacheBreakpoints(body, "m", Min(100));
  ASSERT_OK(out);
  const json::value v = Parse(*out);
  EXPECT_FALSE(
      Msg(v, 0).at("content").at(0).as_object().contains("cache_control"));
  EXPECT_EQ(Msg(v, 0).at("content").at(1).at("cache_control"), Marker());
}

// The marker rule of docs/openrouter.md#cache-markers: the book gets the
// marker, the small parts do not.
TEST(PromptCacheTest, LargeUserContextPartIsMarkedSmallOnesAreNot) {
  const std::string book = Big(5000, 'b');
  const std::string body =
      R"({"model":"anthropic/claude-sonnet-4.5","messages":[{"role":"user",)"
      R"("content":[{"type":"text","text":"Given the book below:"},)"
      R"({"type":"text","text":")" +
      book + R"("},{"type":"text","text":"Name all the characters"}]}]})";
  // Default threshold: 1024 tokens * 4 bytes for Sonnet 4.5.
  Result<std::string> out =
      AddCacheBreakpoints(body, "anthropic/claude-sonnet-4.5");
  ASSERT_OK(out);
  const json::value v = Parse(*out);
  const json::array& parts = Msg(v, 0).at("content").as_array();
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_FALSE(parts[0].as_object().contains("cache_control"));
  EXPECT_EQ(parts[1].at("cache_control"), Marker());
  EXPECT_EQ(parts[1].at("text").as_string(), book);
  EXPECT_FALSE(parts[2].as_object().contains("cache_control"));
}

TEST(PromptCacheTest, DefaultThresholdFollowsTheModelFamily) {
  auto body_with = [](size_t n) {
    return R"({"model":"x","messages":[{"role":"user","content":[)"
           R"({"type":"text","text":")" +
           Big(n) + R"("}]}]})";
  };
  // Sonnet 4.5: 1024 tokens = 4096 bytes.
  EXPECT_EQ(
      *AddCacheBreakpoints(body_with(4095), "anthropic/claude-sonnet-4.5"),
      body_with(4095));
  EXPECT_THAT(
      *AddCacheBreakpoints(body_with(4096), "anthropic/claude-sonnet-4.5"),
      HasSubstr("cache_control"));
  // Opus 4.5: 4096 tokens = 16384 bytes.
  EXPECT_EQ(*AddCacheBreakpoints(body_with(16383), "anthropic/claude-opus-4.5"),
            body_with(16383));
  EXPECT_THAT(
      *AddCacheBreakpoints(body_with(16384), "anthropic/claude-opus-4.5"),
      HasSubstr("cache_control"));
}

TEST(PromptCacheTest, LargestPartsAreMarkedFirstUpToTheLimit) {
  std::string body = R"({"model":"m","messages":[{"role":"user","content":[)";
  const size_t sizes[] = {300, 500, 200, 400, 600, 100};
  for (size_t i = 0; i < std::size(sizes); ++i) {
    if (i != 0) body += ',';
    body += R"({"type":"text","text":")" + Big(sizes[i]) + R"("})";
  }
  body += "]}]}";
  BreakpointOptions o = Min(150);
  o.max_breakpoints = 3;
  Result<std::string> out = AddCacheBreakpoints(body, "m", o);
  ASSERT_OK(out);
  const json::value v = Parse(*out);
  const json::array& parts = Msg(v, 0).at("content").as_array();
  std::vector<size_t> marked;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].as_object().contains("cache_control")) marked.push_back(i);
  }
  EXPECT_EQ(marked, (std::vector<size_t>{1, 3, 4}));  // 500, 400, 600
}

TEST(PromptCacheTest, SystemFirstThenOthersAndNeverMoreThanTheLimit) {
  std::string body = R"({"model":"m","messages":[)";
  body += R"({"role":"system","content":")" + Big(150) + R"("},)";
  body += R"({"role":"user","content":")" + Big(900) + R"("},)";
  body += R"({"role":"assistant","content":")" + Big(800) + R"("},)";
  body +=
      R"({"role":"tool","tool_call_id":"t","content":")" + Big(700) + R"("},)";
  body += R"({"role":"user","content":[{"type":"text","text":")" + Big(600) +
          R"("},{"type":"text","text":")" + Big(500) + R"("}]}]})";
  Result<std::string> out = AddCacheBreakpoints(body, "m", Min(100));
  ASSERT_OK(out);
  const json::value v = Parse(*out);
  auto string_marked = [&](size_t i) {
    const json::value& c = Msg(v, i).at("content");
    return c.is_array() && c.at(0).as_object().contains("cache_control");
  };
  EXPECT_TRUE(string_marked(0));  // system, although the smallest
  EXPECT_TRUE(string_marked(1));  // 900
  EXPECT_TRUE(string_marked(2));  // 800
  EXPECT_TRUE(string_marked(3));  // 700
  EXPECT_FALSE(Msg(v, 4).at("content").at(0).as_object().contains(
      "cache_control"));  // 600: over the limit of 4
  size_t markers = 0;
  for (size_t pos = out->find("cache_control"); pos != std::string::npos;
       pos = out->find("cache_control", pos + 1)) {
    ++markers;
  }
  EXPECT_EQ(markers, 4u);
}

TEST(PromptCacheTest, CallerMarkersCountTowardTheLimitAndAreKept) {
  const std::string caller_part =
      R"({"type":"text","text":"tiny","cache_control":{"type":"ephemeral",)"
      R"("ttl":"1h"}})";
  std::string body =
      R"({"model":"m","messages":[{"role":"user","content":[)" + caller_part;
  for (int i = 0; i < 5; ++i) {
    body += R"(,{"type":"text","text":")" + Big(200 + i) + R"("})";
  }
  body += "]}]}";
  Result<std::string> out = AddCacheBreakpoints(body, "m", Min(100));
  ASSERT_OK(out);
  EXPECT_THAT(*out, HasSubstr(caller_part));  // byte for byte
  const json::value v = Parse(*out);
  const json::array& parts = Msg(v, 0).at("content").as_array();
  int marked = 0;
  for (const json::value& p : parts) {
    if (p.as_object().contains("cache_control")) ++marked;
  }
  EXPECT_EQ(marked, 4);  // the caller's + 3 new
  EXPECT_EQ(parts[0].at("cache_control"), Marker("1h"));
  EXPECT_FALSE(parts[1].as_object().contains("cache_control"));  // smallest
  EXPECT_FALSE(parts[2].as_object().contains("cache_control"));
}

TEST(PromptCacheTest, NoRoomLeftMeansNoChange) {
  // Top-level automatic caching, a marked tool, an OpenAI-style breakpoint and
  // a message-level marker already use the four slots.
  const std::string body =
      R"({"model":"m","cache_control":{"type":"ephemeral"},"tools":[{"type":)"
      R"("function","function":{"name":"f","parameters":{}},"cache_control":)"
      R"({"type":"ephemeral"}}],"messages":[{"role":"system","content":")" +
      Big(500) +
      R"(","cache_control":{"type":"ephemeral"}},{"role":"user","content":[)"
      R"({"type":"text","text":"a","prompt_cache_breakpoint":{"mode":)"
      R"("explicit"}},{"type":"text","text":")" +
      Big(500) + R"("}]}]})";
  Result<std::string> out = AddCacheBreakpoints(body, "m", Min(100));
  ASSERT_OK(out);
  EXPECT_EQ(*out, body);
}

TEST(PromptCacheTest, MessagesAfterTheLastUserMessageAreNeverMarked) {
  const std::string assistant =
      R"({"role":"assistant","content":")" + Big(5000, 'a') + R"("})";
  const std::string tool =
      R"({"role":"tool","tool_call_id":"c","content":[{"type":"text",)"
      R"("text":")" +
      Big(6000, 't') + R"("}]})";
  const std::string body =
      R"({"model":"m","messages":[{"role":"user","content":")" + Big(300) +
      R"("},)" + assistant + "," + tool + "]}";
  Result<std::string> out = AddCacheBreakpoints(body, "m", Min(100));
  ASSERT_OK(out);
  EXPECT_THAT(*out, HasSubstr("," + assistant + "," + tool + "]}"));
  const json::value v = Parse(*out);
  EXPECT_EQ(Msg(v, 0).at("content").at(0).at("cache_control"), Marker());
}

TEST(PromptCacheTest, NoUserMessageMeansNoChange) {
  const std::string body =
      R"({"model":"m","messages":[{"role":"system","content":")" + Big(300) +
      R"("},{"role":"assistant","content":")" + Big(300) + R"("}]})";
  Result<std::string> out = AddCacheBreakpoints(body, "m", Min(100));
  ASSERT_OK(out);
  EXPECT_EQ(*out, body);
}

TEST(PromptCacheTest, NothingQualifiesReturnsTheBodyByteForByte) {
  const std::string body =
      " {\"model\" : \"anthropic/claude-sonnet-4.5\",\n \"temperature\":0.70,"
      "\"seed\":123456789012345678901234567890,\"messages\":[ {\"role\":"
      "\"system\",\"content\":\"caf\\u00e9\"}, {\"role\":\"user\",\"content\":"
      "[{\"type\":\"text\",\"text\":\"short\"},{\"type\":\"image_url\","
      "\"image_url\":{\"url\":\"https://e.x/a.png\"}}]}]}\n";
  Result<std::string> out =
      AddCacheBreakpoints(body, "anthropic/claude-sonnet-4.5");
  ASSERT_OK(out);
  EXPECT_EQ(*out, body);
}

TEST(PromptCacheTest, EverythingElseKeepsItsExactSpelling) {
  // Odd whitespace, escapes, number spellings, a huge integer and member
  // order survive; only the marker bytes are added.
  const std::string big = Big(300);
  const std::string body =
      "{ \"model\":\"m\", \"temperature\" : 1.0E0 ,\"seed\":"
      "123456789012345678901234567890,\n\"messages\" : [\n  { \"role\" : "
      "\"user\" , \"content\" : [ { \"type\" : \"text\" , \"text\" : \"" +
      big + "\" } , {\"text\":\"\\u00e9\\n\",\"type\":\"text\"} ] }\n ] }";
  Result<std::string> out = AddCacheBreakpoints(body, "m", Min(100));
  ASSERT_OK(out);
  const std::string want =
      "{ \"model\":\"m\", \"temperature\" : 1.0E0 ,\"seed\":"
      "123456789012345678901234567890,\n\"messages\" : [\n  { \"role\" : "
      "\"user\" , \"content\" : [ { \"type\" : \"text\" , \"text\" : \"" +
      big +
      "\" ,\"cache_control\":{\"type\":\"ephemeral\"}} , {\"text\":"
      "\"\\u00e9\\n\",\"type\":\"text\"} ] }\n ] }";
  EXPECT_EQ(*out, want);
}

TEST(PromptCacheTest, EscapedMemberNamesAndStringsAreFound) {
  // "m\u0065ssages" is "messages"; the string content is copied as sent.
  const std::string body =
      R"({"model":"m","m\u0065ssages":[{"role":"user","c\u006fntent":"\"q\" )" +
      Big(200) + R"("}]})";
  Result<std::string> out = AddCacheBreakpoints(body, "m", Min(100));
  ASSERT_OK(out);
  const json::value v = Parse(*out);
  EXPECT_EQ(Msg(v, 0).at("content").at(0).at("text").as_string(),
            "\"q\" " + Big(200));
  EXPECT_THAT(*out, HasSubstr(R"([{"type":"text","text":"\"q\" )"));
}

TEST(PromptCacheTest, MarkersNeverChangeTheResponseCacheKey) {
  // Markers on existing text parts, and a string `content` turned into a
  // one-part marked array: the key stays the same either way.
  const std::vector<std::string> bodies = {
      R"({"model":"anthropic/claude-sonnet-4.5","temperature":0,"messages":[)"
      R"({"role":"system","content":[{"type":"text","text":")" +
          Big(5000) +
          R"("}]},{"role":"user","content":[{"type":"text","text":")" +
          Big(6000, 'u') + R"("},{"type":"text","text":"Question?"}]}]})",
      R"({"model":"anthropic/claude-sonnet-4.5","temperature":0,"messages":[)"
      R"({"role":"system","content":")" +
          Big(5000) + R"("},{"role":"user","content":")" + Big(6000, 'u') +
          R"("}]})",
  };
  const KeyBuilder keys;
  for (const std::string& body : bodies) {
    Result<std::string> out =
        AddCacheBreakpoints(body, "anthropic/claude-sonnet-4.5");
    ASSERT_OK(out);
    ASSERT_NE(*out, body);
    Result<RequestKey> before = keys.Compute(body, KeyScope());
    Result<RequestKey> after = keys.Compute(*out, KeyScope());
    ASSERT_OK(before);
    ASSERT_OK(after);
    EXPECT_EQ(before->Hex(), after->Hex());
  }
}

TEST(PromptCacheTest, NonChatBodiesAreInvalidArgument) {
  for (std::string_view body :
       {"", "not json", "[]", "42", R"({"model":"m","prompt":"hi"})",
        R"({"model":"m","messages":"hi"})", R"({"messages":{}})"}) {
    EXPECT_THAT(AddCacheBreakpoints(body, "m"),
                StatusIs(StatusCode::kInvalidArgument))
        << body;
  }
}

TEST(PromptCacheTest, DeeplyNestedToolSchemasAreAccepted) {
  std::string schema;
  for (int i = 0; i < 60; ++i)
    schema += R"({"type":"object","properties":{"a":)";
  schema += "{}";
  for (int i = 0; i < 60; ++i) schema += "}}";
  const std::string body =
      R"({"model":"m","tools":[{"type":"function","function":{"name":"f",)"
      R"("parameters":)" +
      schema + R"(}}],"messages":[{"role":"user","content":")" + Big(200) +
      R"("}]})";
  Result<std::string> out = AddCacheBreakpoints(body, "m", Min(100));
  ASSERT_OK(out);
  EXPECT_THAT(*out, HasSubstr("cache_control"));
}

// ---------------------------------------------------------------------------
// PricingTable

// docs/openrouter.md#models-pricing, the documented pricing, plus a router with
// variable ("-1") prices and an explicit `:free` variant.
constexpr char kModelsJson[] = R"({"data":[{"id":"anthropic/claude-sonnet-4.5",
  "canonical_slug":"anthropic/claude-4.5-sonnet-20250929","name":"Claude",
  "created":1692901234,"context_length":1000000,
  "architecture":{"modality":"text->text","input_modalities":["text","image","file"],
    "output_modalities":["text"],"tokenizer":"Claude","instruct_type":null},
  "pricing":{"prompt":"0.000003","completion":"0.000015","request":"0","image":"0",
    "web_search":"0.01","internal_reasoning":"0","input_cache_read":"0.0000003",
    "input_cache_write":"0.00000375","input_cache_write_1h":"0.000006",
    "overrides":[{"min_prompt_tokens":200000,"prompt":"0.000006"}]},
  "top_provider":{"context_length":1000000,"max_completion_tokens":64000,"is_moderated":true},
  "per_request_limits":null,"supported_parameters":["tools","temperature"],
  "default_parameters":null,"expiration_date":null},
 {"id":"openrouter/auto","pricing":{"prompt":"-1","completion":"-1"}},
 {"id":"meta/llama:free","pricing":{"prompt":"0","completion":"0"}},
 {"id":"meta/llama","pricing":{"prompt":"0.0000001","completion":"0.0000002"}},
 {"id":"broken","pricing":{"prompt":"abc","completion":"0.1"}}],
 "total_count":5,"links":{"next":null}})";

TEST(PricingTest, LoadsTheModelsListing) {
  Result<PricingTable> table = PricingTable::FromModelsJson(kModelsJson);
  ASSERT_OK(table);
  EXPECT_EQ(table->size(), 3u);  // the router and the broken entry skipped
  const ModelPricing* p = table->Find("anthropic/claude-sonnet-4.5");
  ASSERT_NE(p, nullptr);
  EXPECT_DOUBLE_EQ(p->prompt, 0.000003);
  EXPECT_DOUBLE_EQ(p->completion, 0.000015);
  ASSERT_TRUE(p->input_cache_read.has_value());
  EXPECT_DOUBLE_EQ(*p->input_cache_read, 0.0000003);
  ASSERT_TRUE(p->input_cache_write.has_value());
  EXPECT_DOUBLE_EQ(*p->input_cache_write, 0.00000375);
  EXPECT_EQ(table->Find("openrouter/auto"), nullptr);
  EXPECT_EQ(table->Find("broken"), nullptr);
}

TEST(PricingTest, VariantsFallBackToTheBaseModel) {
  Result<PricingTable> table = PricingTable::FromModelsJson(kModelsJson);
  ASSERT_OK(table);
  const ModelPricing* base = table->Find("anthropic/claude-sonnet-4.5");
  EXPECT_EQ(table->Find("anthropic/claude-sonnet-4.5:nitro"), base);
  EXPECT_EQ(table->Find("anthropic/claude-sonnet-4.5:thinking"), base);
  // An exact entry wins over the base model.
  const ModelPricing* free = table->Find("meta/llama:free");
  ASSERT_NE(free, nullptr);
  EXPECT_EQ(free->prompt, 0);
  EXPECT_DOUBLE_EQ(table->Find("meta/llama:floor")->prompt, 0.0000001);
  EXPECT_EQ(table->Find("anthropic/claude-opus-4.5"), nullptr);
  EXPECT_EQ(table->Find("anthropic"), nullptr);
}

TEST(PricingTest, RejectsWhatIsNotAModelsListing) {
  EXPECT_THAT(PricingTable::FromModelsJson("nope"),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(PricingTable::FromModelsJson(R"({"models":[]})"),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(PricingTable::FromModelsJson("[]"),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(PricingTest, LoadsASingleModelResponse) {
  Result<PricingTable> table = PricingTable::FromModelsJson(
      R"({"data":{"id":"x/y","pricing":{"prompt":"0.000001","completion":"0.000002"}}})");
  ASSERT_OK(table);
  ASSERT_NE(table->Find("x/y"), nullptr);
}

TEST(PricingTest, DiscountLowersEveryPrice) {
  Result<PricingTable> table = PricingTable::FromModelsJson(
      R"({"data":[{"id":"d","pricing":{"prompt":"0.000002","completion":)"
      R"("0.00001","input_cache_read":"0.0000005","discount":0.25}}]})");
  ASSERT_OK(table);
  const ModelPricing* p = table->Find("d");
  ASSERT_NE(p, nullptr);
  EXPECT_NEAR(p->prompt, 0.0000015, kEps);
  EXPECT_NEAR(p->completion, 0.0000075, kEps);
  EXPECT_NEAR(p->input_cache_read.value_or(0), 0.000000375, kEps);
}

TEST(PricingTest, LoadsFromAFile) {
  llmcache::testing::TempDir dir;
  const std::string path = dir.path() + "/models.json";
  {
    std::ofstream f(path);
    f << kModelsJson;
  }
  Result<PricingTable> table = PricingTable::FromFile(path);
  ASSERT_OK(table);
  EXPECT_EQ(table->size(), 3u);
  EXPECT_THAT(PricingTable::FromFile(dir.path() + "/missing.json"),
              StatusIs(StatusCode::kNotFound));
  {
    std::ofstream f(dir.path() + "/bad.json");
    f << "{";
  }
  EXPECT_THAT(PricingTable::FromFile(dir.path() + "/bad.json"),
              StatusIs(StatusCode::kInvalidArgument, "bad.json"));
}

TEST(PricingTest, SetReplaces) {
  PricingTable table;
  table.Set("a/b", {1, 2, std::nullopt, std::nullopt});
  table.Set("a/b", {3, 4, std::nullopt, std::nullopt});
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(table.Find("a/b")->prompt, 3);
}

// ---------------------------------------------------------------------------
// ComputeCost (docs/openrouter.md#cost-formula)

PricingTable CheckTable() {
  // Decimal strings, as /models sends them.
  Result<PricingTable> table = PricingTable::FromModelsJson(
      R"({"data":[{"id":"openai/gpt-5.6-sol","pricing":{"prompt":"0.000002",)"
      R"("completion":"0.00001","input_cache_read":"0.0000005",)"
      R"("input_cache_write":"0.0000025"}},{"id":"x-ai/grok-4.6","pricing":{)"
      R"("prompt":"0.000002","completion":"0.00001",)"
      R"("input_cache_read":"0.0000005"}}]})");
  EXPECT_OK(table);
  return table.ok() ? *table : PricingTable();
}

TEST(CostTest, Check1CacheWritesAtOneAndAQuarter) {
  CompletionUsage u;
  u.prompt_tokens = 21462;
  u.cache_write_tokens = 21459;
  u.cached_tokens = 0;
  u.completion_tokens = 6418;
  Result<CostBreakdown> c = ComputeCost(CheckTable(), "openai/gpt-5.6-sol", u);
  ASSERT_OK(c);
  EXPECT_NEAR(c->prompt_cost, 0.0536535, kEps);
  EXPECT_NEAR(c->completion_cost, 0.06418, kEps);
  EXPECT_NEAR(c->total, 0.1178335, kEps);
  EXPECT_FALSE(c->from_usage_cost);
  // Without caching: 21462 · 2e-6 = 0.042924 for the prompt. Writes cost more
  // than they saved this time: negative savings.
  EXPECT_NEAR(c->uncached_total, 0.042924 + 0.06418, kEps);
  EXPECT_NEAR(c->prompt_cache_savings, 0.042924 - 0.0536535, kEps);
  EXPECT_LT(c->prompt_cache_savings, 0);
}

TEST(CostTest, Check1WithUsageCost) {
  CompletionUsage u;
  u.prompt_tokens = 21462;
  u.cache_write_tokens = 21459;
  u.completion_tokens = 6418;
  u.cost = 0.1178335;
  Result<CostBreakdown> c = ComputeCost(CheckTable(), "openai/gpt-5.6-sol", u);
  ASSERT_OK(c);
  EXPECT_TRUE(c->from_usage_cost);
  EXPECT_EQ(c->total, 0.1178335);
  EXPECT_NEAR(c->prompt_cost, 0.0536535, kEps);
}

TEST(CostTest, Check2CacheReadsAtAQuarter) {
  CompletionUsage u;
  u.prompt_tokens = 38523;
  u.cached_tokens = 128;
  Result<CostBreakdown> c = ComputeCost(CheckTable(), "x-ai/grok-4.6", u);
  ASSERT_OK(c);
  EXPECT_NEAR(c->prompt_cost, 0.076854, kEps);
  EXPECT_NEAR(c->completion_cost, 0, kEps);
  EXPECT_NEAR(c->total, 0.076854, kEps);
  // Reads save (2e-6 − 5e-7) per cached token: positive.
  EXPECT_NEAR(c->prompt_cache_savings, 128 * 1.5e-6, kEps);
  EXPECT_GT(c->prompt_cache_savings, 0);
  EXPECT_NEAR(c->uncached_total, 38523 * 2e-6, kEps);
}

TEST(CostTest, UsageCostIsTheTotalEvenWithFees) {
  // Plugin fees appear only in usage.cost; savings are unaffected by them.
  CompletionUsage u;
  u.prompt_tokens = 38523;
  u.cached_tokens = 128;
  u.cost = 0.086854;  // 0.01 of web-search fees on top
  Result<CostBreakdown> c = ComputeCost(CheckTable(), "x-ai/grok-4.6", u);
  ASSERT_OK(c);
  EXPECT_TRUE(c->from_usage_cost);
  EXPECT_EQ(c->total, 0.086854);
  EXPECT_NEAR(c->prompt_cache_savings, 128 * 1.5e-6, kEps);
  EXPECT_NEAR(c->uncached_total, 0.086854 + 128 * 1.5e-6, kEps);
}

TEST(CostTest, MissingCachePricesDefaultToThePromptPrice) {
  PricingTable table;
  table.Set("p/q", {0.000001, 0.000004, std::nullopt, std::nullopt});
  CompletionUsage u;
  u.prompt_tokens = 1000;
  u.cached_tokens = 300;
  u.cache_write_tokens = 200;
  u.completion_tokens = 10;
  Result<CostBreakdown> c = ComputeCost(table, "p/q:floor", u);
  ASSERT_OK(c);
  EXPECT_NEAR(c->prompt_cost, 0.001, kEps);
  EXPECT_NEAR(c->completion_cost, 0.00004, kEps);
  EXPECT_NEAR(c->prompt_cache_savings, 0, kEps);
}

TEST(CostTest, UnknownModelIsNotFound) {
  CompletionUsage u;
  u.prompt_tokens = 1;
  EXPECT_THAT(ComputeCost(CheckTable(), "anthropic/claude-opus-4.5", u),
              StatusIs(StatusCode::kNotFound, "anthropic/claude-opus-4.5"));
  EXPECT_THAT(ComputeCost(PricingTable(), "x-ai/grok-4.6", u),
              StatusIs(StatusCode::kNotFound));
}

}  // namespace
}  // namespace llmcache::net
