// Tests for canonical request keys (llmcache/key.h).

#include "llmcache/key.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "testing/status_matchers.h"

namespace llmcache {
namespace {

using ::llmcache::testing::IsOk;
using ::llmcache::testing::StatusIs;
using ::testing::HasSubstr;

const KeyBuilder& DefaultBuilder() {
  static const KeyBuilder* builder = new KeyBuilder();
  return *builder;
}

// The hex key of `body`, or "error: ..." so that comparisons fail loudly.
std::string Key(std::string_view body, KeyScope scope = {},
                const KeyBuilder& builder = DefaultBuilder()) {
  Result<RequestKey> key = builder.Compute(body, scope);
  if (!key.ok()) return "error: " + key.status().ToString();
  return key->Hex();
}

std::string Canon(std::string_view body,
                  const KeyBuilder& builder = DefaultBuilder()) {
  Result<std::string> canon = builder.Canonicalize(body);
  if (!canon.ok()) return "error: " + canon.status().ToString();
  return *canon;
}

// A minimal valid request with `extra` members appended (",..." form).
std::string Request(std::string_view extra = "") {
  std::string body =
      R"({"model":"openai/gpt-4o","messages":[{"role":"user","content":"Hi"}])";
  if (!extra.empty()) {
    body += ',';
    body += extra;
  }
  body += '}';
  return body;
}

// The canonical form of a JSON number, via a request member.
std::string CanonNumber(std::string_view number) {
  const std::string canon =
      Canon(R"({"model":"m","messages":[],"x":)" + std::string(number) + "}");
  const std::string prefix = R"({"messages":[],"model":"m","x":)";
  if (canon.rfind(prefix, 0) != 0) return canon;
  return canon.substr(prefix.size(), canon.size() - prefix.size() - 1);
}

// The canonical form of a JSON string literal (with quotes), likewise.
std::string CanonString(std::string_view literal) {
  const std::string canon =
      Canon(R"({"model":"m","messages":[],"x":)" + std::string(literal) + "}");
  const std::string prefix = R"({"messages":[],"model":"m","x":)";
  if (canon.rfind(prefix, 0) != 0) return canon;
  return canon.substr(prefix.size(), canon.size() - prefix.size() - 1);
}

// ---------------------------------------------------------------------------
// Canonical form.

TEST(KeyCanonicalTest, SortsMembersBytewiseAtEveryDepth) {
  const std::string a =
      R"({"model":"m","messages":[{"role":"user","content":"x"}],)"
      R"("z":{"b":{"d":1,"c":{"y":true,"x":null}},"a":0},"B":1})";
  const std::string b =
      R"({"B":1,"z":{"a":0,"b":{"c":{"x":null,"y":true},"d":1}},)"
      R"("messages":[{"content":"x","role":"user"}],"model":"m"})";
  EXPECT_EQ(Canon(a),
            R"({"B":1,"messages":[{"content":"x","role":"user"}],"model":"m",)"
            R"("z":{"a":0,"b":{"c":{"x":null,"y":true},"d":1}}})");
  EXPECT_EQ(Key(a), Key(b));
}

TEST(KeyCanonicalTest, SortsByUnsignedBytesOfDecodedNames) {
  // "\u00e9" (0xC3 0xA9) sorts after "z"; "\u0062" is "b".
  EXPECT_EQ(Canon(R"({"model":"m","messages":[],"\u00e9":1,"z":2,"\u0062":3})"),
            "{\"b\":3,\"messages\":[],\"model\":\"m\",\"z\":2,\"\xC3\xA9\":1}");
}

TEST(KeyCanonicalTest, RemovesInsignificantWhitespace) {
  const std::string pretty =
      " {\n  \"model\" : \"m\",\r\n\t\"messages\" : [ { \"role\" : \"user\" ,"
      " \"content\" : [ ] } ] , \"n\" : [ 1 , 2 ] , \"o\" : { } } \n";
  EXPECT_EQ(Canon(pretty),
            R"({"messages":[{"content":[],"role":"user"}],"model":"m",)"
            R"("n":[1,2],"o":{}})");
  EXPECT_EQ(Key(pretty),
            Key(R"({"model":"m","messages":[{"role":"user","content":[]}],)"
                R"("n":[1,2],"o":{}})"));
}

TEST(KeyCanonicalTest, ArraysKeepTheirOrder) {
  EXPECT_NE(Key(Request(R"("stop":["a","b"])")),
            Key(Request(R"("stop":["b","a"])")));
}

TEST(KeyCanonicalTest, AlreadyCanonicalBodyIsReproducedExactly) {
  const std::string canonical =
      R"({"messages":[{"content":"a \"quoted\"\nline\u0001","role":"user"}],)"
      R"("model":"m","n":[-1.5,0,1e+21,true,false,null],"o":{"a":{}}})";
  EXPECT_EQ(Canon(canonical), canonical);
}

TEST(KeyCanonicalTest, CanonicalizeIsIdempotent) {
  const std::string body =
      "{\"model\":\"m\", \"messages\":[{\"role\":\"user\",\"content\":"
      "\"\\u00e9\\/\\u0041\"}], \"temperature\":0.50, \"seed\":1e3}";
  const std::string once = Canon(body);
  EXPECT_EQ(Canon(once), once);
  EXPECT_EQ(Key(once), Key(body));
}

TEST(KeyCanonicalTest, ZeroHasOneForm) {
  for (const char* zero :
       {"0", "0.0", "-0", "0e0", "-0.0e-5", "0E+3", "0.000"}) {
    EXPECT_EQ(CanonNumber(zero), "0") << zero;
  }
  EXPECT_EQ(Key(Request(R"("x":0)")), Key(Request(R"("x":-0.0)")));
}

TEST(KeyCanonicalTest, IntegralValuesAreWrittenAsIntegers) {
  for (const char* one :
       {"1", "1.0", "1e0", "10e-1", "0.1e1", "1.000", "1E+0"}) {
    EXPECT_EQ(CanonNumber(one), "1") << one;
  }
  EXPECT_EQ(CanonNumber("-2.50e1"), "-25");
  EXPECT_EQ(CanonNumber("1e20"), "100000000000000000000");
  EXPECT_EQ(CanonNumber("123.456e3"), "123456");
}

TEST(KeyCanonicalTest, NonIntegralValuesUseShortestRoundTrip) {
  EXPECT_EQ(CanonNumber("0.1"), "0.1");
  EXPECT_EQ(CanonNumber("0.10"), "0.1");
  EXPECT_EQ(CanonNumber("1e-1"), "0.1");
  EXPECT_EQ(CanonNumber("0.100e0"), "0.1");
  EXPECT_EQ(CanonNumber("-1.5"), "-1.5");
  EXPECT_EQ(CanonNumber("2.5e-3"), "0.0025");
  EXPECT_EQ(CanonNumber("1e-7"), "1e-07");  // std::to_chars shortest form
  EXPECT_NE(Key(Request(R"("top_p":1.5)")), Key(Request(R"("top_p":1.25)")));
}

TEST(KeyCanonicalTest, LargeValuesUseShortestRoundTrip) {
  // 1e21 and above are not written as integers.
  EXPECT_EQ(CanonNumber("1e21"), "1e+21");
  EXPECT_EQ(CanonNumber("1000000000000000000000"), "1e+21");
  EXPECT_EQ(CanonNumber("-1.5e300"), "-1.5e+300");
}

TEST(KeyCanonicalTest, BigIntegersKeepEveryDigit) {
  EXPECT_EQ(CanonNumber("12345678901234567890"), "12345678901234567890");
  EXPECT_EQ(CanonNumber("-123456789012345678901"), "-123456789012345678901");
  EXPECT_EQ(CanonNumber("12345678901234567890.0"), "12345678901234567890");
  EXPECT_EQ(CanonNumber("1234567890123456789e1"), "12345678901234567890");
  // Adjacent seeds that a double cannot tell apart still get different keys.
  EXPECT_NE(Key(Request(R"("seed":12345678901234567890)")),
            Key(Request(R"("seed":12345678901234567891)")));
}

TEST(KeyCanonicalTest, NumbersOutsideDoubleRangeAreRejected) {
  for (const char* n : {"1e400", "-1e400", "1e-400", "1e999999999999999"}) {
    EXPECT_THAT(
        DefaultBuilder().Compute(Request(std::string("\"x\":") + n), {}),
        StatusIs(StatusCode::kInvalidArgument, "out of the range"))
        << n;
  }
}

TEST(KeyCanonicalTest, StringEscapeFormsAreEquivalent) {
  EXPECT_EQ(CanonString(R"("\u0041")"), R"("A")");
  EXPECT_EQ(CanonString(R"("\/")"), R"("/")");
  EXPECT_EQ(CanonString(R"("\u00e9")"), "\"\xC3\xA9\"");
  EXPECT_EQ(CanonString(R"("\u00E9")"), "\"\xC3\xA9\"");
  EXPECT_EQ(CanonString(R"("\ud83d\ude00")"), "\"\xF0\x9F\x98\x80\"");
  EXPECT_EQ(CanonString(R"("\u000a\u0009\u0008\u000c\u000d")"),
            R"("\n\t\b\f\r")");
  EXPECT_EQ(CanonString(R"("\u001F\u0000")"), R"("\u001f\u0000")");
  EXPECT_EQ(CanonString(R"("\u0022\u005c")"), R"("\"\\")");
  EXPECT_EQ(CanonString("\"\x7F\""), "\"\x7F\"");  // DEL is not escaped
  EXPECT_EQ(Key(Request(R"("x":"\u0041\/")")), Key(Request(R"("x":"A/")")));
}

TEST(KeyCanonicalTest, EscapedNamesAreDecoded) {
  EXPECT_EQ(Key(Request(R"("\u0074emperature":0)")),
            Key(Request(R"("temperature":0)")));
  EXPECT_EQ(Canon(R"({"model":"m","messages":[],"a\nb":1})"),
            R"({"a\nb":1,"messages":[],"model":"m"})");
}

// ---------------------------------------------------------------------------
// Exclusions.

TEST(KeyExclusionTest, CacheControlMovedBetweenContentPartsKeepsTheKey) {
  const std::string a =
      R"({"model":"anthropic/claude-sonnet-4.5","messages":[{"role":"user",)"
      R"("content":[{"type":"text","text":"Book","cache_control":)"
      R"({"type":"ephemeral","ttl":"1h"}},{"type":"text","text":"Q"}]}]})";
  const std::string b =
      R"({"model":"anthropic/claude-sonnet-4.5","messages":[{"role":"user",)"
      R"("content":[{"type":"text","text":"Book"},{"type":"text","text":"Q",)"
      R"("cache_control":{"type":"ephemeral"}}]}]})";
  const std::string none =
      R"({"model":"anthropic/claude-sonnet-4.5","messages":[{"role":"user",)"
      R"("content":[{"type":"text","text":"Book"},{"type":"text","text":"Q"}]}]})";
  EXPECT_EQ(Key(a), Key(b));
  EXPECT_EQ(Key(a), Key(none));
}

TEST(KeyExclusionTest, PromptCacheBreakpointMovedKeepsTheKey) {
  const std::string a =
      R"({"model":"openai/gpt-5","messages":[{"role":"user","content":[)"
      R"({"type":"text","text":"A","prompt_cache_breakpoint":{"mode":"explicit"}},)"
      R"({"type":"text","text":"B"}]}]})";
  const std::string b =
      R"({"model":"openai/gpt-5","messages":[{"role":"user","content":[)"
      R"({"type":"text","text":"A"},{"type":"text","text":"B",)"
      R"("prompt_cache_breakpoint":{"mode":"explicit"}}]}]})";
  EXPECT_EQ(Key(a), Key(b));
}

TEST(KeyExclusionTest, BlockFieldsAreExcludedAtEveryBlockLevel) {
  const std::string base =
      R"({"model":"m","messages":[{"role":"system","content":"S"}],)"
      R"("tools":[{"type":"function","function":{"name":"f"}}]})";
  // Top level, on a message, on a tool.
  EXPECT_EQ(Key(base),
            Key(R"({"model":"m","cache_control":{"type":"ephemeral"},)"
                R"("messages":[{"role":"system","content":"S",)"
                R"("cache_control":{"type":"ephemeral"}}],)"
                R"("tools":[{"type":"function","function":{"name":"f"},)"
                R"("cache_control":{"type":"ephemeral"},)"
                R"("prompt_cache_breakpoint":{"mode":"explicit"}}]})"));
}

TEST(KeyExclusionTest, SingleTextPartEqualsPlainStringContent) {
  // Marking a block for prompt caching turns "content":"S" into one text
  // part; the key must not change.
  const std::string plain =
      R"({"model":"m","messages":[{"role":"system","content":"S"},)"
      R"({"role":"user","content":"Q"}]})";
  const std::string part =
      R"({"model":"m","messages":[{"role":"system","content":[{"type":"text",)"
      R"("text":"S","cache_control":{"type":"ephemeral"}}]},)"
      R"({"role":"user","content":[{"text":"Q","type":"text"}]}]})";
  EXPECT_EQ(Key(plain), Key(part));
  EXPECT_EQ(Canon(plain), Canon(part));
  // Two parts, another part type, or an extra member are not plain text.
  EXPECT_NE(Key(plain),
            Key(R"({"model":"m","messages":[{"role":"system","content":"S"},)"
                R"({"role":"user","content":[{"type":"text","text":"Q"},)"
                R"({"type":"text","text":""}]}]})"));
  EXPECT_NE(
      Key(plain),
      Key(R"({"model":"m","messages":[{"role":"system","content":"S"},)"
          R"({"role":"user","content":[{"type":"input_text","text":"Q"}]}]})"));
  EXPECT_NE(
      Key(plain),
      Key(R"({"model":"m","messages":[{"role":"system","content":"S"},)"
          R"({"role":"user","content":[{"type":"text","text":"Q","x":1}]}]})"));
  // Only message content is folded, not look-alikes elsewhere.
  EXPECT_NE(
      Key(R"({"model":"m","messages":[],"x":{"content":"Q"}})"),
      Key(R"({"model":"m","messages":[],"x":{"content":[{"type":"text","text":"Q"}]}})"));
}

TEST(KeyExclusionTest, CacheControlInsideToolSchemaIsContent) {
  const std::string with =
      R"({"model":"m","messages":[],"tools":[{"type":"function","function":)"
      R"({"name":"f","parameters":{"type":"object","properties":)"
      R"({"cache_control":{"type":"string"}}}}}]})";
  const std::string without =
      R"({"model":"m","messages":[],"tools":[{"type":"function","function":)"
      R"({"name":"f","parameters":{"type":"object","properties":{}}}}]})";
  EXPECT_NE(Key(with), Key(without));
  EXPECT_THAT(Canon(with), HasSubstr("cache_control"));
}

TEST(KeyExclusionTest, BlockFieldsBelowBlockLevelAreContent) {
  // Inside a content part's nested object, and inside a tool's function.
  EXPECT_NE(
      Key(R"({"model":"m","messages":[{"role":"user","content":[{"type":)"
          R"("image_url","image_url":{"url":"u","cache_control":1}}]}]})"),
      Key(R"({"model":"m","messages":[{"role":"user","content":[{"type":)"
          R"("image_url","image_url":{"url":"u"}}]}]})"));
  EXPECT_NE(Key(R"({"model":"m","messages":[],"tools":[{"type":"function",)"
                R"("function":{"name":"f","cache_control":1}}]})"),
            Key(R"({"model":"m","messages":[],"tools":[{"type":"function",)"
                R"("function":{"name":"f"}}]})"));
  // A top-level-only exclusion does not apply inside messages.
  EXPECT_NE(Key(R"({"model":"m","messages":[{"role":"user","user":"x"}]})"),
            Key(R"({"model":"m","messages":[{"role":"user"}]})"));
}

TEST(KeyExclusionTest, DefaultExcludedFieldsDoNotChangeTheKey) {
  const std::string base = Key(Request());
  for (const char* member :
       {R"("stream":true)", R"("stream_options":{"include_usage":true})",
        R"("usage":{"include":true})", R"("user":"u-123")",
        R"("session_id":"s-1")", R"("metadata":{"k":"v"})",
        R"("trace":{"trace_id":"t"})", R"("prompt_cache_key":"pk")",
        R"("prompt_cache_options":{"mode":"explicit","ttl":"30m"})",
        R"("cache_control":{"type":"ephemeral"})"}) {
    EXPECT_EQ(Key(Request(member)), base) << member;
  }
}

TEST(KeyExclusionTest, EveryContentFieldChangesTheKey) {
  struct Case {
    const char* name;
    const char* a;
    const char* b;
  };
  const Case cases[] = {
      {"temperature", "0", "0.7"},
      {"top_p", "0.9", "1"},
      {"top_k", "40", "41"},
      {"frequency_penalty", "0.5", "-0.5"},
      {"presence_penalty", "0.5", "1"},
      {"repetition_penalty", "1", "1.1"},
      {"min_p", "0.05", "0.1"},
      {"top_a", "0.1", "0.2"},
      {"seed", "1", "2"},
      {"max_tokens", "100", "101"},
      {"max_completion_tokens", "100", "200"},
      {"stop", R"("\n")", R"(["\n","END"])"},
      {"logit_bias", R"({"50256":-100})", R"({"50256":100})"},
      {"logprobs", "true", "false"},
      {"top_logprobs", "5", "6"},
      {"response_format", R"({"type":"json_object"})", R"({"type":"text"})"},
      {"structured_outputs", "true", "false"},
      {"tools", R"([{"type":"function","function":{"name":"f"}}])",
       R"([{"type":"function","function":{"name":"g"}}])"},
      {"tool_choice", R"("auto")", R"("required")"},
      {"parallel_tool_calls", "true", "false"},
      {"reasoning", R"({"effort":"high"})", R"({"effort":"low"})"},
      {"reasoning_effort", R"("high")", R"("low")"},
      {"include_reasoning", "true", "false"},
      {"provider", R"({"order":["a"]})", R"({"order":["b"]})"},
      {"models", R"(["a/b","c/d"])", R"(["c/d","a/b"])"},
      {"route", R"("fallback")", R"("sort")"},
      {"transforms", R"(["middle-out"])", "[]"},
      {"plugins", R"([{"id":"file-parser"}])", R"([{"id":"moderation"}])"},
      {"web_search_options", R"({"search_context_size":"low"})",
       R"({"search_context_size":"high"})"},
      {"verbosity", R"("low")", R"("high")"},
      {"prediction", R"({"type":"content","content":"x"})",
       R"({"type":"content","content":"y"})"},
      {"modalities", R"(["text"])", R"(["text","image"])"},
      {"image_config", R"({"aspect_ratio":"1:1"})",
       R"({"aspect_ratio":"16:9"})"},
      {"service_tier", R"("flex")", R"("priority")"},
      {"preset", R"("a")", R"("b")"},
      {"max_tool_calls", "1", "2"},
      {"debug", R"({"echo_upstream_body":true})", R"({})"},
  };
  const std::string base = Key(Request());
  for (const Case& c : cases) {
    const std::string a =
        Key(Request(std::string("\"") + c.name + "\":" + c.a));
    const std::string b =
        Key(Request(std::string("\"") + c.name + "\":" + c.b));
    EXPECT_NE(a, base) << c.name << " (present vs omitted)";
    EXPECT_NE(a, b) << c.name << " (value)";
    EXPECT_THAT(a, ::testing::Not(HasSubstr("error"))) << c.name;
  }
}

TEST(KeyExclusionTest, UnknownFieldsAreIncluded) {
  EXPECT_NE(Key(Request(R"("x_new_param":1)")), Key(Request()));
  EXPECT_NE(Key(R"({"model":"m","messages":[{"role":"user","x":1}]})"),
            Key(R"({"model":"m","messages":[{"role":"user"}]})"));
}

TEST(KeyExclusionTest, OmittedIsNotTheDefault) {
  EXPECT_NE(Key(Request(R"("temperature":1)")), Key(Request()));
  EXPECT_NE(Key(Request(R"("top_p":1)")), Key(Request()));
  EXPECT_NE(Key(Request(R"("parallel_tool_calls":true)")), Key(Request()));
  EXPECT_NE(Key(Request(R"("x":null)")), Key(Request()));
}

TEST(KeyExclusionTest, ConfiguredExtraExclusionIsHonoured) {
  KeyOptions options;
  options.excluded_fields.push_back("service_tier");
  const KeyBuilder builder(options);
  EXPECT_EQ(Key(Request(R"("service_tier":"flex")"), {}, builder),
            Key(Request(), {}, builder));
  EXPECT_NE(Key(Request(R"("service_tier":"flex")")), Key(Request()));
}

TEST(KeyExclusionTest, ExclusionsCanBeTurnedOff) {
  KeyOptions options;
  options.excluded_fields.clear();
  options.excluded_block_fields.clear();
  const KeyBuilder builder(options);
  EXPECT_NE(Key(Request(R"("stream":true)"), {}, builder),
            Key(Request(), {}, builder));
  EXPECT_NE(Key(R"({"model":"m","messages":[{"role":"u","cache_control":{}}]})",
                {}, builder),
            Key(R"({"model":"m","messages":[{"role":"u"}]})", {}, builder));
}

TEST(KeyExclusionTest, DefaultOptionListsMatchTheContract) {
  EXPECT_THAT(KeyOptions::DefaultExcludedFields(),
              ::testing::UnorderedElementsAre(
                  "stream", "stream_options", "usage", "user", "session_id",
                  "metadata", "trace", "prompt_cache_key",
                  "prompt_cache_options", "cache_control"));
  EXPECT_THAT(KeyOptions::DefaultExcludedBlockFields(),
              ::testing::UnorderedElementsAre("cache_control",
                                              "prompt_cache_breakpoint"));
  const KeyOptions options;
  EXPECT_EQ(options.max_depth, 64u);
  EXPECT_EQ(options.max_body_bytes, 8u << 20);
}

// ---------------------------------------------------------------------------
// Model, scope and digest.

TEST(KeyModelTest, VariantChangesTheKeyAndIsReported) {
  EXPECT_NE(Key(R"({"model":"a/b","messages":[]})"),
            Key(R"({"model":"a/b:floor","messages":[]})"));
  Result<RequestKey> key = DefaultBuilder().Compute(
      R"({"model":"openai\/gpt-4o:nitro","messages":[]})", {});
  ASSERT_OK(key);
  EXPECT_EQ(key->model, "openai/gpt-4o:nitro");
  EXPECT_EQ(key->base_model, "openai/gpt-4o");
}

TEST(KeyModelTest, BaseModelStripsOnlyTheVariant) {
  EXPECT_EQ(BaseModel("a/b:floor"), "a/b");
  EXPECT_EQ(BaseModel("a/b"), "a/b");
  EXPECT_EQ(BaseModel("a:b/c"), "a:b/c");
  EXPECT_EQ(BaseModel("a:b/c:free"), "a:b/c");
  EXPECT_EQ(BaseModel("gpt-4o:online"), "gpt-4o");
  EXPECT_EQ(BaseModel("~anthropic/claude-sonnet-latest"),
            "~anthropic/claude-sonnet-latest");
  EXPECT_EQ(BaseModel(""), "");
  // Two variants: both go (a base model has no ':' after its last '/', so
  // the base of a base is itself).
  EXPECT_EQ(BaseModel("a/b:free:online"), "a/b");
  EXPECT_EQ(BaseModel("a:b/c:free:online"), "a:b/c");
  EXPECT_EQ(BaseModel("gpt-4o::x"), "gpt-4o");
  for (std::string_view m : {"a/b:free:online", "a/b:x", "a:b/c", "x:y:z"}) {
    EXPECT_EQ(BaseModel(BaseModel(m)), BaseModel(m)) << m;
  }
}

TEST(KeyScopeTest, NamespaceAndScopeChangeTheKey) {
  const std::string body = Request();
  const std::string base = Key(body);
  EXPECT_NE(Key(body, {"v2", ""}), base);
  EXPECT_NE(Key(body, {"", "tenant"}), base);
  EXPECT_NE(Key(body, {"v2", ""}), Key(body, {"", "v2"}));
  // Length prefixes: moving bytes between namespace and scope matters.
  EXPECT_NE(Key(body, {"ab", ""}), Key(body, {"a", "b"}));
  EXPECT_EQ(Key(body, {"v2", "t"}), Key(body, {"v2", "t"}));
}

void AppendBigEndian(std::string* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
}

TEST(KeyDigestTest, DigestCoversVersionNamespaceScopeAndCanonicalBody) {
  const std::string body =
      R"({"temperature":0, "model":"m","messages":[{"role":"user","content":"x"}]})";
  const KeyScope scope{"ns-1", "tenant-42"};
  std::string input("llmcache", 9);  // with the NUL
  AppendBigEndian(&input, kKeyFormatVersion, 4);
  AppendBigEndian(&input, scope.ns.size(), 8);
  input += scope.ns;
  AppendBigEndian(&input, scope.scope.size(), 8);
  input += scope.scope;
  input += Canon(body);
  Result<RequestKey> key = DefaultBuilder().Compute(body, scope);
  ASSERT_OK(key);
  EXPECT_EQ(key->digest, Sha256(input));
}

TEST(KeyDigestTest, Sha256MatchesKnownVectors) {
  EXPECT_EQ(DigestToHex(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(DigestToHex(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(DigestToHex(Sha256(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(KeyDigestTest, HexRoundTrips) {
  const Digest digest = Sha256("abc");
  const std::string hex = DigestToHex(digest);
  EXPECT_EQ(hex.size(), 64u);
  Result<Digest> back = DigestFromHex(hex);
  ASSERT_OK(back);
  EXPECT_EQ(*back, digest);
  std::string upper = hex;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return std::toupper(c); });
  back = DigestFromHex(upper);
  ASSERT_OK(back);
  EXPECT_EQ(*back, digest);
}

TEST(KeyDigestTest, MalformedHexIsInvalidArgument) {
  EXPECT_THAT(DigestFromHex("abc"),
              StatusIs(StatusCode::kInvalidArgument, "64 characters"));
  EXPECT_THAT(DigestFromHex(std::string(63, '0') + "g"),
              StatusIs(StatusCode::kInvalidArgument, "non-hex"));
  EXPECT_THAT(DigestFromHex(std::string(65, '0')),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(KeyDigestTest, RequestKeyHexIsTheDigestHex) {
  Result<RequestKey> key = DefaultBuilder().Compute(Request(), {});
  ASSERT_OK(key);
  EXPECT_EQ(key->Hex(), DigestToHex(key->digest));
}

// ---------------------------------------------------------------------------
// Bad input.

TEST(KeyInputTest, MalformedJsonIsInvalidArgument) {
  for (const char* body : {"",
                           "   ",
                           "{",
                           "}",
                           "nope",
                           "{'model':'m'}",
                           R"({"model":"m",})",
                           R"({"model":"m","messages":[1,]})",
                           R"({"model" "m"})",
                           R"({"model":"m","messages":[]} x)",
                           R"({"model":"m","messages":[]}{})",
                           R"({"model":"m","messages":[01]})",
                           R"({"model":"m","messages":[1.]})",
                           R"({"model":"m","messages":[.5]})",
                           R"({"model":"m","messages":[+1]})",
                           R"({"model":"m","messages":[1e]})",
                           R"({"model":"m","messages":[NaN]})",
                           R"({"model":"m","messages":[tru]})",
                           R"({"model":"m","messages":[nul]})",
                           R"({"model":"m","messages":["a\x"]})",
                           R"({"model":"m","messages":["\u12"]})",
                           R"({"model":"m","messages":["abc)",
                           R"({"model":"m","messages":[]/**/})",
                           "\xEF\xBB\xBF{\"model\":\"m\",\"messages\":[]}"}) {
    EXPECT_THAT(DefaultBuilder().Compute(body, {}),
                StatusIs(StatusCode::kInvalidArgument, "invalid JSON"))
        << body;
    EXPECT_THAT(DefaultBuilder().Canonicalize(body),
                StatusIs(StatusCode::kInvalidArgument))
        << body;
  }
}

TEST(KeyInputTest, ErrorNamesTheByteOffset) {
  EXPECT_THAT(DefaultBuilder().Compute(R"({"model":"m",])", {}),
              StatusIs(StatusCode::kInvalidArgument, "at byte 13"));
}

TEST(KeyInputTest, InvalidUtf8IsInvalidArgument) {
  for (const char* bad :
       {"\xFF", "\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80",
        "\xC3", "\xE2\x82", "\x80", "\xF8\x88\x80\x80\x80"}) {
    const std::string body =
        std::string(R"({"model":"m","messages":[],"x":"ok )") + bad + "\"}";
    EXPECT_THAT(DefaultBuilder().Compute(body, {}),
                StatusIs(StatusCode::kInvalidArgument, "invalid UTF-8"));
    // Also in a member name.
    const std::string in_name =
        std::string(R"({"model":"m","messages":[],")") + bad + "\":1}";
    EXPECT_THAT(DefaultBuilder().Compute(in_name, {}),
                StatusIs(StatusCode::kInvalidArgument, "invalid UTF-8"));
  }
  // Valid multi-byte sequences of every length are accepted.
  EXPECT_THAT(
      DefaultBuilder().Compute(
          "{\"model\":\"m\",\"messages\":[],\"x\":\"\xC3\xA9 \xE2\x82\xAC "
          "\xF0\x9F\x98\x80 \xEF\xBF\xBF \xF4\x8F\xBF\xBF\"}",
          {}),
      IsOk());
}

TEST(KeyInputTest, UnpairedSurrogateEscapesAreInvalidArgument) {
  for (const char* s : {R"("\ud800")", R"("\udc00")", R"("\ud800x")",
                        R"("\ud800\u0041")", R"("\ud800\ud800")"}) {
    EXPECT_THAT(
        DefaultBuilder().Compute(Request(std::string("\"x\":") + s), {}),
        StatusIs(StatusCode::kInvalidArgument, "surrogate"))
        << s;
  }
}

TEST(KeyInputTest, RawControlCharacterInStringIsInvalidArgument) {
  EXPECT_THAT(DefaultBuilder().Compute(Request("\"x\":\"a\nb\""), {}),
              StatusIs(StatusCode::kInvalidArgument, "control character"));
  EXPECT_THAT(
      DefaultBuilder().Compute(Request(std::string("\"x\":\"a\0b\"", 9)), {}),
      StatusIs(StatusCode::kInvalidArgument, "control character"));
}

TEST(KeyInputTest, NonObjectBodyIsInvalidArgument) {
  for (const char* body : {"[]", "1", R"("s")", "null", "true"}) {
    EXPECT_THAT(DefaultBuilder().Compute(body, {}),
                StatusIs(StatusCode::kInvalidArgument, "not a JSON object"))
        << body;
  }
}

TEST(KeyInputTest, MissingOrMistypedModelIsInvalidArgument) {
  EXPECT_THAT(DefaultBuilder().Compute(R"({"messages":[]})", {}),
              StatusIs(StatusCode::kInvalidArgument, "\"model\""));
  EXPECT_THAT(DefaultBuilder().Compute(R"({"model":1,"messages":[]})", {}),
              StatusIs(StatusCode::kInvalidArgument, "\"model\""));
  EXPECT_THAT(DefaultBuilder().Compute(R"({"model":null,"messages":[]})", {}),
              StatusIs(StatusCode::kInvalidArgument, "\"model\""));
}

TEST(KeyInputTest, MissingOrMistypedMessagesIsInvalidArgument) {
  EXPECT_THAT(DefaultBuilder().Compute(R"({"model":"m"})", {}),
              StatusIs(StatusCode::kInvalidArgument, "\"messages\""));
  EXPECT_THAT(DefaultBuilder().Compute(R"({"model":"m","messages":{}})", {}),
              StatusIs(StatusCode::kInvalidArgument, "\"messages\""));
  EXPECT_THAT(DefaultBuilder().Canonicalize(R"({"model":"m","messages":"x"})"),
              StatusIs(StatusCode::kInvalidArgument, "\"messages\""));
}

TEST(KeyInputTest, DuplicateMemberNamesAreInvalidArgument) {
  EXPECT_THAT(DefaultBuilder().Compute(
                  R"({"model":"m","messages":[],"model":"n"})", {}),
              StatusIs(StatusCode::kInvalidArgument,
                       "duplicate member name \"model\""));
  // At depth 3, inside an excluded member, and when only escapes differ.
  EXPECT_THAT(
      DefaultBuilder().Compute(Request(R"("a":{"b":{"c":1,"d":2,"c":3}})"), {}),
      StatusIs(StatusCode::kInvalidArgument, "duplicate"));
  EXPECT_THAT(
      DefaultBuilder().Compute(Request(R"("metadata":{"k":1,"k":2})"), {}),
      StatusIs(StatusCode::kInvalidArgument, "duplicate"));
  EXPECT_THAT(
      DefaultBuilder().Compute(Request(R"("a":{"x":1,"\u0078":2})"), {}),
      StatusIs(StatusCode::kInvalidArgument, "duplicate"));
  // A large object takes the std::sort path.
  std::string big = R"("big":{)";
  for (int i = 0; i < 40; ++i) big += "\"k" + std::to_string(i) + "\":1,";
  big += R"("k7":2})";
  EXPECT_THAT(DefaultBuilder().Compute(Request(big), {}),
              StatusIs(StatusCode::kInvalidArgument, "duplicate"));
}

TEST(KeyInputTest, LargeObjectsAreSorted) {
  std::string forward = R"("big":{)";
  std::string backward = R"("big":{)";
  for (int i = 0; i < 40; ++i) {
    forward += (i ? "," : "") + ("\"k" + std::to_string(100 + i) + "\":1");
    backward += (i ? "," : "") + ("\"k" + std::to_string(139 - i) + "\":1");
  }
  forward += "}";
  backward += "}";
  EXPECT_EQ(Key(Request(forward)), Key(Request(backward)));
}

TEST(KeyInputTest, BodyOverMaxBodyBytesIsInvalidArgument) {
  KeyOptions options;
  options.max_body_bytes = 64;
  const KeyBuilder builder(options);
  const std::string body = Request(R"("x":")" + std::string(100, 'a') + "\"");
  EXPECT_THAT(builder.Compute(body, {}),
              StatusIs(StatusCode::kInvalidArgument, "max_body_bytes"));
  EXPECT_THAT(builder.Canonicalize(body),
              StatusIs(StatusCode::kInvalidArgument, "max_body_bytes"));
  EXPECT_THAT(builder.Compute(R"({"model":"m","messages":[]})", {}), IsOk());
}

std::string Nested(size_t depth) {
  return R"({"model":"m","messages":)" + std::string(depth, '[') +
         std::string(depth, ']') + "}";
}

TEST(KeyInputTest, NestingDeeperThanMaxDepthIsInvalidArgument) {
  // The request object itself is depth 1.
  EXPECT_THAT(DefaultBuilder().Compute(Nested(63), {}), IsOk());
  EXPECT_THAT(DefaultBuilder().Compute(Nested(64), {}),
              StatusIs(StatusCode::kInvalidArgument, "max_depth (64)"));
  KeyOptions options;
  options.max_depth = 3;
  const KeyBuilder builder(options);
  EXPECT_THAT(builder.Compute(Nested(2), {}), IsOk());
  EXPECT_THAT(builder.Compute(Nested(3), {}),
              StatusIs(StatusCode::kInvalidArgument, "max_depth"));
  EXPECT_THAT(
      builder.Compute(R"({"model":"m","messages":[],"x":{"y":{}}})", {}),
      IsOk());
  EXPECT_THAT(
      builder.Compute(R"({"model":"m","messages":[],"x":{"y":{"z":{}}}})", {}),
      StatusIs(StatusCode::kInvalidArgument, "max_depth"));
}

TEST(KeyInputTest, HundredThousandDeepNestingIsRejectedWithoutCrashing) {
  EXPECT_THAT(DefaultBuilder().Compute(Nested(100000), {}),
              StatusIs(StatusCode::kInvalidArgument, "max_depth"));
  std::string objects = R"({"model":"m","messages":[],"x":)";
  for (int i = 0; i < 100000; ++i) objects += R"({"a":)";
  EXPECT_THAT(DefaultBuilder().Compute(objects, {}),
              StatusIs(StatusCode::kInvalidArgument, "max_depth"));
}

TEST(KeyInputTest, HundredThousandDeepNestingWithHugeMaxDepthDoesNotRecurse) {
  KeyOptions options;
  options.max_depth = std::numeric_limits<size_t>::max();
  const KeyBuilder builder(options);
  EXPECT_THAT(builder.Compute(Nested(100000), {}), IsOk());
  Result<std::string> canon = builder.Canonicalize(Nested(100000));
  ASSERT_OK(canon);
  EXPECT_EQ(canon->size(), Nested(100000).size());
  std::string objects = R"({"model":"m","messages":[],"x":)";
  for (int i = 0; i < 100000; ++i) objects += R"({"b":1,"a":)";
  objects += "0";
  for (int i = 0; i < 100000; ++i) objects += "}";
  objects += "}";
  EXPECT_THAT(builder.Compute(objects, {}), IsOk());
  // Unterminated deep nesting is an error, not a crash.
  EXPECT_THAT(builder.Compute(std::string(100000, '['), {}),
              StatusIs(StatusCode::kInvalidArgument, "invalid JSON"));
}

// ---------------------------------------------------------------------------
// Long strings: the parser checks a string's first 16 bytes inline and scans
// the rest 64 bytes at a time (SSE2 or AVX2), stepping over canonical escapes
// and UTF-8 inside a block. Every kind of byte at every offset around the
// 16-, 32- and 64-byte edges must be handled as the byte-by-byte grammar
// says, and errors must name the same byte.

// `off` plain bytes, `mid`, then `tail` plain bytes.
std::string Around(size_t off, std::string_view mid, size_t tail) {
  return std::string(off, 'a') + std::string(mid) + std::string(tail, 'b');
}

// Where the string value of CanonString's body starts (its opening quote).
size_t StringValueOffset() {
  return std::string_view(R"({"model":"m","messages":[],"x":)").size();
}

TEST(KeyLongStringTest, EscapesAndUtf8AtEveryOffsetAroundBlockEdges) {
  // Each event with its canonical form.
  const std::vector<std::pair<std::string, std::string>> events = {
      {R"(\n)", R"(\n)"},
      {R"(\")", R"(\")"},
      {R"(\\)", R"(\\)"},
      {R"(\t\b\f\r)", R"(\t\b\f\r)"},
      {R"(\\\")", R"(\\\")"},
      {R"(\u0001)", R"(\u0001)"},
      {R"(\u001F)", R"(\u001f)"},
      {R"(\/)", "/"},
      {R"(\u00e9)", "\xC3\xA9"},
      {R"(\u0041)", "A"},
      {R"(\ud83d\ude00)", "\xF0\x9F\x98\x80"},
      {"\xC3\xA9", "\xC3\xA9"},
      {"\xE2\x82\xAC", "\xE2\x82\xAC"},
      {"\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"},
      {"\xEF\xBF\xBF\xF4\x8F\xBF\xBF", "\xEF\xBF\xBF\xF4\x8F\xBF\xBF"},
      {"\xC3\xA9\\n\xE2\x82\xAC", "\xC3\xA9\\n\xE2\x82\xAC"},
  };
  for (const auto& [raw, canonical] : events) {
    for (size_t off = 0; off <= 200; ++off) {
      for (size_t tail : {0, 1, 15, 70, 150}) {
        const std::string literal = '"' + Around(off, raw, tail) + '"';
        const std::string expected = '"' + Around(off, canonical, tail) + '"';
        ASSERT_EQ(CanonString(literal), expected)
            << raw << " at " << off << ", " << tail << " after";
        if (raw != canonical) {
          // The same string in its canonical form has the same key.
          ASSERT_EQ(Key(R"({"model":"m","messages":[],"x":)" + literal + "}"),
                    Key(R"({"model":"m","messages":[],"x":)" + expected + "}"))
              << raw << " at " << off;
        }
      }
    }
  }
}

TEST(KeyLongStringTest, InvalidBytesAtEveryOffsetNameTheirByte) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"\xFF", "invalid UTF-8 in string"},
      {"\x80", "invalid UTF-8 in string"},
      {"\xC3", "invalid UTF-8 in string"},              // truncated by 'b'
      {"\xE2\x82", "invalid UTF-8 in string"},          // truncated by 'b'
      {"\xF0\x9F\x98", "invalid UTF-8 in string"},      // truncated by 'b'
      {"\xC0\xAF", "invalid UTF-8 in string"},          // overlong
      {"\xED\xA0\x80", "invalid UTF-8 in string"},      // surrogate
      {"\xF4\x90\x80\x80", "invalid UTF-8 in string"},  // above U+10FFFF
      {std::string(1, '\0'), "unescaped control character in string"},
      {"\x1F", "unescaped control character in string"},
      {"\t", "unescaped control character in string"},
      {R"(\x)", "invalid escape sequence in string"},
      {"\\\x01", "invalid escape sequence in string"},
      {"\\\xC3\xA9", "invalid escape sequence in string"},
      {R"(\u12G4)", "invalid \\u escape"},
      {R"(\ud800)", "unpaired UTF-16 surrogate"},
      {R"(\udc00)", "unpaired UTF-16 surrogate"},
  };
  const size_t value_at = StringValueOffset();
  for (const auto& [raw, message] : bad) {
    for (size_t off = 0; off <= 200; ++off) {
      for (size_t tail : {1, 70}) {
        const std::string body = R"({"model":"m","messages":[],"x":")" +
                                 Around(off, raw, tail) + "\"}";
        const std::string want =
            "at byte " + std::to_string(value_at + 1 + off) + ": " + message;
        Result<RequestKey> key = DefaultBuilder().Compute(body, {});
        ASSERT_FALSE(key.ok()) << raw << " at " << off;
        ASSERT_THAT(key.status().message(), HasSubstr(want))
            << raw << " at " << off;
        // The same in a member name.
        const std::string in_name = R"({"model":"m","messages":[],")" +
                                    Around(off, raw, tail) + "\":1}";
        Result<RequestKey> name_key = DefaultBuilder().Compute(in_name, {});
        ASSERT_FALSE(name_key.ok()) << raw << " at " << off;
        ASSERT_THAT(name_key.status().message(), HasSubstr(message));
      }
    }
  }
}

TEST(KeyLongStringTest, StringsRunningIntoTheEndOfTheBody) {
  const size_t value_at = StringValueOffset();
  for (size_t n = 0; n <= 200; ++n) {
    const std::string head =
        R"({"model":"m","messages":[],"x":")" + std::string(n, 'a');
    const std::string want =
        "at byte " + std::to_string(value_at) + ": unterminated string";
    for (const std::string& body :
         {head, head + "\\", head + "\\n", head + "\xE2\x82\xAC"}) {
      Result<RequestKey> key = DefaultBuilder().Compute(body, {});
      ASSERT_FALSE(key.ok()) << n;
      ASSERT_THAT(key.status().message(), HasSubstr(want)) << n;
    }
    // Cut inside a UTF-8 sequence: the sequence is what is wrong.
    const std::string cut = head + "\xE2\x82";
    Result<RequestKey> key = DefaultBuilder().Compute(cut, {});
    ASSERT_FALSE(key.ok()) << n;
    ASSERT_THAT(key.status().message(),
                HasSubstr("at byte " + std::to_string(value_at + 1 + n) +
                          ": invalid UTF-8 in string"));
    // Closed right at the end: valid, however long.
    ASSERT_EQ(CanonString('"' + std::string(n, 'a') + '"'),
              '"' + std::string(n, 'a') + '"');
  }
}

TEST(KeyLongStringTest, LongMemberNamesAreDecodedAndCompared) {
  for (size_t off = 0; off <= 140; ++off) {
    // Names that differ only in how a byte is escaped are duplicates.
    const std::string plain = Around(off, "x", 20);
    const std::string escaped = Around(off, R"(\u0078)", 20);
    EXPECT_THAT(DefaultBuilder().Compute(
                    Request("\"" + plain + "\":1,\"" + escaped + "\":2"), {}),
                StatusIs(StatusCode::kInvalidArgument, "duplicate"))
        << off;
    // A long name with a canonical escape is kept as it is, in order.
    const std::string name = Around(off, R"(\n)", 20);
    EXPECT_EQ(Canon(R"({"model":"m","messages":[],")" + name + R"(":1})"),
              R"({")" + name + R"(":1,"messages":[],"model":"m"})")
        << off;
  }
}

TEST(KeyLongStringTest, MegabyteStringsOfProse) {
  // Prose with canonical escapes and UTF-8 at irregular distances, in a body
  // that is its own canonical form; then the same with a non-canonical
  // escape near the end, which must be decoded.
  std::string text;
  std::mt19937 rng(7);
  const char* const pieces[] = {"word ",    R"(\")",        R"(\n\n)",
                                "\xC3\xA9", "\xE2\x80\x9C", "\xF0\x9F\x99\x82",
                                R"(\\)"};
  while (text.size() < (1u << 20)) {
    text.append(rng() % 90, 'q');
    text += pieces[rng() % std::size(pieces)];
  }
  const std::string body = R"({"messages":[{"content":")" + text +
                           R"(","role":"user"}],"model":"m"})";
  EXPECT_EQ(Canon(body), body);
  const std::string with_slash = R"({"messages":[{"content":")" + text +
                                 R"(\/","role":"user"}],"model":"m"})";
  EXPECT_EQ(Canon(with_slash), R"({"messages":[{"content":")" + text +
                                   R"(/","role":"user"}],"model":"m"})");
  EXPECT_EQ(Key(with_slash), Key(R"({"messages":[{"content":")" + text +
                                 R"(/","role":"user"}],"model":"m"})"));
  // One invalid byte deep inside is still found.
  std::string broken = body;
  const size_t at = body.find('q', body.size() / 2);
  ASSERT_NE(at, std::string::npos);
  broken[at] = '\x01';
  EXPECT_THAT(DefaultBuilder().Compute(broken, {}),
              StatusIs(StatusCode::kInvalidArgument,
                       "at byte " + std::to_string(at) +
                           ": unescaped control character"));
}

TEST(KeyLongStringTest, LongStringsInsideDeepNesting) {
  KeyOptions options;
  options.max_depth = 200;
  const KeyBuilder builder(options);
  const std::string text = Around(100, R"(\"\n)", 100) + "\xE2\x82\xAC";
  std::string body = R"({"messages":[],"model":"m","x":)";
  for (int i = 0; i < 150; ++i) body += R"({"a":")" + text + R"(","b":)";
  body += "0";
  for (int i = 0; i < 150; ++i) body += "}";
  body += "}";
  Result<std::string> canon = builder.Canonicalize(body);
  ASSERT_OK(canon);
  EXPECT_EQ(*canon, body);
  // One level more than allowed.
  KeyOptions shallow;
  shallow.max_depth = 150;
  EXPECT_THAT(KeyBuilder(shallow).Compute(body, {}),
              StatusIs(StatusCode::kInvalidArgument, "max_depth (150)"));
}

// ---------------------------------------------------------------------------
// RequestInfo.

RequestInfo InfoOf(std::string_view body) {
  RequestInfo info;
  Result<RequestKey> key = DefaultBuilder().Compute(body, {}, &info);
  EXPECT_THAT(key, IsOk()) << body;
  return info;
}

TEST(KeyInfoTest, DefaultsWhenNothingIsSet) {
  const RequestInfo info = InfoOf(Request());
  EXPECT_EQ(info.model, "openai/gpt-4o");
  EXPECT_FALSE(info.stream);
  EXPECT_FALSE(info.has_temperature);
  EXPECT_FALSE(info.has_web_plugin);
  EXPECT_FALSE(info.has_web_search_options);
  EXPECT_FALSE(info.has_web_search_tool);
  EXPECT_FALSE(info.has_debug);
}

TEST(KeyInfoTest, TemperatureAndStream) {
  RequestInfo info = InfoOf(Request(R"("temperature":0.0,"stream":true)"));
  EXPECT_TRUE(info.has_temperature);
  EXPECT_EQ(info.temperature, 0.0);
  EXPECT_TRUE(info.stream);
  info = InfoOf(Request(R"("temperature":0.7,"stream":false)"));
  EXPECT_TRUE(info.has_temperature);
  EXPECT_DOUBLE_EQ(info.temperature, 0.7);
  EXPECT_FALSE(info.stream);
  info = InfoOf(Request(R"("temperature":-0)"));
  EXPECT_EQ(info.temperature, 0.0);
  info = InfoOf(Request(R"("temperature":"0")"));
  EXPECT_TRUE(info.has_temperature);
  EXPECT_TRUE(std::isnan(info.temperature));
  // null is "not given" (SDKs send it for an unset optional): the
  // upstream's default temperature, so the reason is no_temperature.
  info = InfoOf(Request(R"("temperature":null)"));
  EXPECT_FALSE(info.has_temperature);
}

TEST(KeyInfoTest, WebSearchSignals) {
  EXPECT_TRUE(
      InfoOf(Request(R"("plugins":[{"id":"file-parser"},{"id":"web"}])"))
          .has_web_plugin);
  EXPECT_TRUE(
      InfoOf(Request(R"("plugins":[{"id":"w\u0065b","max_results":3}])"))
          .has_web_plugin);
  EXPECT_FALSE(InfoOf(Request(R"("plugins":[{"id":"file-parser"},"web"])"))
                   .has_web_plugin);
  EXPECT_FALSE(InfoOf(Request(R"("plugins":{"id":"web"})")).has_web_plugin);
  EXPECT_TRUE(
      InfoOf(Request(R"("web_search_options":{})")).has_web_search_options);
  EXPECT_TRUE(InfoOf(Request(R"("tools":[{"type":"openrouter:web_search"}])"))
                  .has_web_search_tool);
  EXPECT_TRUE(InfoOf(Request(R"("tools":[{"type":"function","function":{}},)"
                             R"({"type":"openrouter:web_fetch"}])"))
                  .has_web_search_tool);
  EXPECT_FALSE(
      InfoOf(Request(R"("tools":[{"type":"function","function":{"name":)"
                     R"("openrouter:web_search"}}])"))
          .has_web_search_tool);
  EXPECT_FALSE(InfoOf(Request(R"("tools":[{"type":"openrouter:datetime"}])"))
                   .has_web_search_tool);
}

TEST(KeyInfoTest, DebugPresence) {
  EXPECT_TRUE(
      InfoOf(Request(R"("debug":{"echo_upstream_body":true})")).has_debug);
  EXPECT_TRUE(InfoOf(Request(R"("debug":null)")).has_debug);
}

TEST(KeyInfoTest, InfoIsOverwrittenNotMerged) {
  RequestInfo info;
  info.has_debug = true;
  info.stream = true;
  ASSERT_OK(DefaultBuilder().Compute(Request(), {}, &info));
  EXPECT_FALSE(info.has_debug);
  EXPECT_FALSE(info.stream);
}

// ---------------------------------------------------------------------------
// Properties over generated requests.

// Random JSON values, each printed two ways: with members in the given order
// and compact, or shuffled with random whitespace.
class JsonGen {
 public:
  explicit JsonGen(uint32_t seed) : rng_(seed) {}

  struct Value {
    std::string a;  // one spelling
    std::string b;  // an equivalent spelling
  };

  Value Gen(int depth) {
    const int kind = depth <= 0 ? Pick(4) : Pick(6);
    switch (kind) {
      case 0: {
        const int n = Pick(2000) - 1000;
        return {std::to_string(n), std::to_string(n) + (Pick(2) ? ".0" : "e0")};
      }
      case 1: {
        std::string s = Word();
        return {"\"" + s + "\"", "\"" + Escaped(s) + "\""};
      }
      case 2:
        return {"true", "true"};
      case 3:
        return {"null", "null"};
      case 4: {
        Value out{"[", "[" + Ws()};
        const int n = Pick(4);
        for (int i = 0; i < n; ++i) {
          Value v = Gen(depth - 1);
          out.a += (i ? "," : "") + v.a;
          out.b += (i ? "," + Ws() : "") + v.b + Ws();
        }
        out.a += "]";
        out.b += "]";
        return out;
      }
      default: {
        const int n = Pick(5);
        std::vector<std::pair<std::string, Value>> members;
        for (int i = 0; i < n; ++i) {
          members.emplace_back(Word() + std::to_string(i), Gen(depth - 1));
        }
        Value out{"{", "{" + Ws()};
        for (int i = 0; i < n; ++i) {
          out.a += (i ? "," : "") + ("\"" + members[i].first + "\":") +
                   members[i].second.a;
        }
        std::shuffle(members.begin(), members.end(), rng_);
        for (int i = 0; i < n; ++i) {
          out.b += (i ? "," + Ws() : "") + ("\"" + members[i].first + "\"") +
                   Ws() + ":" + Ws() + members[i].second.b;
        }
        out.a += "}";
        out.b += Ws() + "}";
        return out;
      }
    }
  }

 private:
  int Pick(int n) {
    return static_cast<int>(rng_() % static_cast<uint32_t>(n));
  }
  std::string Ws() { return Pick(3) == 0 ? " \n\t" : ""; }
  std::string Word() {
    static const char* const kWords[] = {"a",
                                         "b",
                                         "role",
                                         "content",
                                         "cache_control",
                                         "x y",
                                         "\xC3\xA9t\xC3\xA9",
                                         "q\"uote",
                                         "tab\there"};
    std::string w = kWords[Pick(9)];
    std::string out;
    for (char c : w) {
      if (c == '"') {
        out += "\\\"";
      } else if (c == '\t') {
        out += "\\t";
      } else {
        out += c;
      }
    }
    return out;
  }
  // Re-spells the (already escaped) string `s` with \u escapes for ASCII
  // letters.
  std::string Escaped(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      const char c = s[i];
      if (c == '\\') {  // keep existing escapes as they are
        out += s.substr(i, 2);
        ++i;
      } else if (c >= 'a' && c <= 'z' && Pick(2)) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04X", c);
        out += buf;
      } else {
        out += c;
      }
    }
    return out;
  }

  std::mt19937 rng_;
};

TEST(KeyPropertyTest, EquivalentSpellingsShareAKey) {
  for (uint32_t seed = 0; seed < 300; ++seed) {
    JsonGen gen(seed);
    const JsonGen::Value v = gen.Gen(4);
    const std::string a = R"({"model":"m","messages":[],"v":)" + v.a + "}";
    const std::string b =
        "{ \"v\" : " + v.b + R"(, "messages":[ ],"model":"m"})";
    ASSERT_EQ(Key(a), Key(b)) << a << "\n" << b;
    ASSERT_EQ(Canon(a), Canon(b)) << a << "\n" << b;
    const std::string canon = Canon(a);
    ASSERT_EQ(Canon(canon), canon);
  }
}

TEST(KeyPropertyTest, ChangingAnyValueChangesTheKey) {
  for (uint32_t seed = 0; seed < 100; ++seed) {
    JsonGen gen(seed);
    const JsonGen::Value v = gen.Gen(3);
    const std::string a = R"({"model":"m","messages":[],"v":)" + v.a + "}";
    const std::string b = R"({"model":"m","messages":[],"v":[)" + v.a + "]}";
    ASSERT_NE(Key(a), Key(b));
  }
}

TEST(KeyThreadTest, ConcurrentComputationsAgree) {
  std::vector<std::string> bodies;
  for (int i = 0; i < 16; ++i) {
    bodies.push_back(Request(R"("seed":)" + std::to_string(i) + R"(,"x":")" +
                             std::string(static_cast<size_t>(i) * 500, 'x') +
                             "\""));
  }
  std::vector<std::string> expected;
  for (const std::string& b : bodies) expected.push_back(Key(b));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 50; ++round) {
        for (size_t i = 0; i < bodies.size(); ++i) {
          if (Key(bodies[i]) != expected[i]) ++mismatches[t];
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_THAT(mismatches, ::testing::Each(0));
}

TEST(KeyThreadTest, LargeBodyThenSmallBodyOnOneThread) {
  // Exercises workspace trimming after a large request.
  std::string big = R"("x":[)";
  for (int i = 0; i < 200000; ++i) big += (i ? ",\"ab\"" : "\"ab\"");
  big += "]";
  const std::string small = Key(Request());
  EXPECT_THAT(Key(Request(big)), ::testing::Not(HasSubstr("error")));
  EXPECT_EQ(Key(Request()), small);
}

TEST(ApiKeyScopeTest, IsAHashThatNeverContainsTheKey) {
  const std::string scope = ApiKeyScope("sk-or-v1-secret");
  EXPECT_EQ(scope.size(), 64u);
  EXPECT_EQ(scope, DigestToHex(Sha256("llmcache-scope-v1:sk-or-v1-secret")));
  EXPECT_EQ(scope.find("secret"), std::string::npos);
  EXPECT_NE(scope, ApiKeyScope("sk-or-v1-other"));
  EXPECT_EQ(scope, ApiKeyScope("sk-or-v1-secret"));
  EXPECT_EQ(ApiKeyScope(""), "");
}

TEST(RequestInfoTest, CountsMessages) {
  KeyBuilder keys;
  RequestInfo info;
  ASSERT_TRUE(keys.Compute(R"({"model":"m","messages":[]})", {}, &info).ok());
  EXPECT_EQ(info.message_count, 0u);
  ASSERT_TRUE(
      keys.Compute(
              R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"}]},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]})",
              {}, &info)
          .ok());
  EXPECT_EQ(info.message_count, 3u);
}

// ---------------------------------------------------------------------------
// Endpoints.

// The hex key of `body` sent to `endpoint`, or "error: ...".
std::string EpKey(Endpoint endpoint, std::string_view body,
                  KeyScope scope = {}) {
  Result<RequestKey> key =
      DefaultBuilder().Compute(body, scope, endpoint, nullptr);
  if (!key.ok()) return "error: " + key.status().ToString();
  return key->Hex();
}

std::string EpCanon(Endpoint endpoint, std::string_view body) {
  Result<std::string> canon = DefaultBuilder().Canonicalize(body, endpoint);
  if (!canon.ok()) return "error: " + canon.status().ToString();
  return *canon;
}

RequestInfo EpInfo(Endpoint endpoint, std::string_view body) {
  RequestInfo info;
  Result<RequestKey> key = DefaultBuilder().Compute(body, {}, endpoint, &info);
  EXPECT_THAT(key, IsOk()) << body;
  return info;
}

constexpr Endpoint kAllEndpoints[] = {
    Endpoint::kChatCompletions, Endpoint::kEmbeddings, Endpoint::kResponses,
    Endpoint::kMessages};

TEST(KeyEndpointTest, NamesAreStableAndRoundTrip) {
  EXPECT_EQ(EndpointName(Endpoint::kChatCompletions), "chat_completions");
  EXPECT_EQ(EndpointName(Endpoint::kEmbeddings), "embeddings");
  EXPECT_EQ(EndpointName(Endpoint::kResponses), "responses");
  EXPECT_EQ(EndpointName(Endpoint::kMessages), "messages");
  EXPECT_EQ(EndpointName(static_cast<Endpoint>(kEndpointCount)), "unknown");
  for (Endpoint e : kAllEndpoints) {
    EXPECT_EQ(EndpointFromName(EndpointName(e)), e);
  }
  EXPECT_EQ(EndpointFromName("chat"), Endpoint::kChatCompletions);
  EXPECT_EQ(EndpointFromName("unknown"), std::nullopt);
  EXPECT_EQ(EndpointFromName("Messages"), std::nullopt);
  EXPECT_EQ(EndpointFromName(""), std::nullopt);
}

TEST(KeyEndpointTest, ChatKeysAreUnchanged) {
  // Pinned from key format version 1 before the other endpoints existed: a
  // change here invalidates every chat entry ever stored.
  const KeyScope scope{"ns", "tenant"};
  const std::string simple =
      R"({"model":"openai/gpt-4o","messages":[{"role":"user","content":"Hi"}],"temperature":0})";
  const std::string marked =
      R"({"model":"anthropic/claude-sonnet-4","messages":[{"role":"system","content":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}]},{"role":"user","content":[{"type":"text","text":"Hi"},{"type":"image_url","image_url":{"url":"data:x"}}]}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"cache_control":{"type":"string"}}}},"cache_control":{"type":"ephemeral"}}],"stream":true})";
  for (const std::string& key :
       {Key(simple, scope), EpKey(Endpoint::kChatCompletions, simple, scope)}) {
    EXPECT_EQ(
        key,
        "583328528e28b224bb7636916044a4e10df15f4ffe66c72bbaaf1610acf47a09");
  }
  EXPECT_EQ(EpKey(Endpoint::kChatCompletions, marked, scope),
            "fd10243d8f792fe65de029a77690025a70320118bedd6c06f7c577111d2d9deb");
  EXPECT_EQ(Canon(marked), EpCanon(Endpoint::kChatCompletions, marked));
}

TEST(KeyEndpointTest, DigestPrefixNamesTheEndpoint) {
  const std::string body = R"({"model":"m","input":"hello","messages":[]})";
  const KeyScope scope{"ns-1", "tenant-42"};
  for (Endpoint endpoint :
       {Endpoint::kEmbeddings, Endpoint::kResponses, Endpoint::kMessages}) {
    std::string input = "llmcache/";
    input += EndpointName(endpoint);
    input.push_back('\0');
    AppendBigEndian(&input, kKeyFormatVersion, 4);
    AppendBigEndian(&input, scope.ns.size(), 8);
    input += scope.ns;
    AppendBigEndian(&input, scope.scope.size(), 8);
    input += scope.scope;
    input += EpCanon(endpoint, body);
    EXPECT_EQ(EpKey(endpoint, body, scope), DigestToHex(Sha256(input)))
        << EndpointName(endpoint);
  }
}

TEST(KeyEndpointTest, EqualBodiesUnderDifferentEndpointsGetDifferentKeys) {
  // Valid for every endpoint: model, messages and input.
  const std::string body =
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"input":"x"})";
  std::vector<std::string> keys;
  for (Endpoint e : kAllEndpoints) {
    keys.push_back(EpKey(e, body));
    EXPECT_THAT(keys.back(), ::testing::Not(HasSubstr("error")))
        << EndpointName(e);
  }
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(std::unique(keys.begin(), keys.end()), keys.end());
  // The canonical body is the same: only the digest prefix differs.
  EXPECT_EQ(EpCanon(Endpoint::kEmbeddings, body), Canon(body));
}

TEST(KeyEndpointTest, InvalidEndpointValueIsInvalidArgument) {
  const auto bad = static_cast<Endpoint>(kEndpointCount);
  EXPECT_THAT(DefaultBuilder().Compute(Request(), {}, bad, nullptr),
              StatusIs(StatusCode::kInvalidArgument, "endpoint"));
  EXPECT_THAT(DefaultBuilder().Canonicalize(Request(), bad),
              StatusIs(StatusCode::kInvalidArgument, "endpoint"));
}

TEST(KeyEndpointTest, RequiredMembersPerEndpoint) {
  struct Case {
    Endpoint endpoint;
    const char* body;
    const char* message;  // empty: valid
  };
  const Case cases[] = {
      // Chat completions: messages unchanged from before.
      {Endpoint::kChatCompletions, R"({"model":"m","input":"x"})",
       "request has no \"messages\" member"},
      {Endpoint::kChatCompletions, R"({"messages":[]})",
       "request has no \"model\" member"},
      // Embeddings: model and input; messages is not needed.
      {Endpoint::kEmbeddings, R"({"model":"m","input":"x"})", ""},
      {Endpoint::kEmbeddings, R"({"input":"x"})",
       "embeddings request has no \"model\" member"},
      {Endpoint::kEmbeddings, R"({"model":7,"input":"x"})",
       "embeddings request member \"model\" is not a string"},
      {Endpoint::kEmbeddings, R"({"model":"m","messages":[]})",
       "embeddings request has no \"input\" member"},
      {Endpoint::kEmbeddings, R"({"model":"m","input":{"text":"x"}})",
       "embeddings request member \"input\" is not a string or an array"},
      {Endpoint::kEmbeddings, R"({"model":"m","input":null})",
       "embeddings request member \"input\" is not a string or an array"},
      // Responses: model; input optional, a string or an array.
      {Endpoint::kResponses, R"({"model":"m"})", ""},
      {Endpoint::kResponses, R"({"model":"m","input":"x"})", ""},
      {Endpoint::kResponses, R"({"model":"m","input":[]})", ""},
      {Endpoint::kResponses, R"({"input":"x"})",
       "responses request has no \"model\" member"},
      {Endpoint::kResponses, R"({"model":"m","input":1})",
       "responses request member \"input\" is not a string or an array"},
      {Endpoint::kResponses, R"({"model":"m","input":null})",
       "responses request member \"input\" is not a string or an array"},
      // Messages: model and messages.
      {Endpoint::kMessages, R"({"model":"m","messages":[]})", ""},
      {Endpoint::kMessages, R"({"model":"m","input":"x"})",
       "messages request has no \"messages\" member"},
      {Endpoint::kMessages, R"({"model":"m","messages":"x"})",
       "messages request member \"messages\" is not an array"},
      {Endpoint::kMessages, R"({"model":null,"messages":[]})",
       "messages request member \"model\" is not a string"},
  };
  for (const Case& c : cases) {
    const Result<RequestKey> key =
        DefaultBuilder().Compute(c.body, {}, c.endpoint, nullptr);
    const Result<std::string> canon =
        DefaultBuilder().Canonicalize(c.body, c.endpoint);
    if (*c.message == '\0') {
      EXPECT_THAT(key, IsOk()) << EndpointName(c.endpoint) << " " << c.body;
      EXPECT_THAT(canon, IsOk()) << EndpointName(c.endpoint) << " " << c.body;
    } else {
      EXPECT_THAT(key, StatusIs(StatusCode::kInvalidArgument, c.message))
          << EndpointName(c.endpoint) << " " << c.body;
      EXPECT_THAT(canon, StatusIs(StatusCode::kInvalidArgument, c.message))
          << EndpointName(c.endpoint) << " " << c.body;
    }
  }
}

TEST(KeyEndpointTest, EmbeddingsInputShapes) {
  struct Case {
    const char* input;
    bool batch;
    size_t count;
  };
  const Case valid[] = {
      {R"("one text")", false, 1},
      {R"([1,2,3])", false, 1},
      {R"([0])", false, 1},
      {R"([1.0,2e0])", false, 1},  // integral values written another way
      {R"(["a"])", true, 1},
      {R"(["a","b","c"])", true, 3},
      {R"([[1,2],[3]])", true, 2},
  };
  for (const Case& c : valid) {
    const std::string body =
        std::string(R"({"model":"m","input":)") + c.input + "}";
    const RequestInfo info = EpInfo(Endpoint::kEmbeddings, body);
    EXPECT_EQ(info.endpoint, Endpoint::kEmbeddings) << c.input;
    EXPECT_EQ(info.input_is_batch, c.batch) << c.input;
    EXPECT_EQ(info.input_count, c.count) << c.input;
  }
  struct Bad {
    const char* input;
    const char* message;
  };
  const Bad invalid[] = {
      {"[]", "\"input\" is an empty array"},
      {R"([1,"a"])", "\"input[1]\" is not an integer"},
      {"[1,2.5]", "\"input[1]\" is not an integer"},
      {"[1,[2]]", "\"input[1]\" is not an integer"},
      {R"(["a",1])", "\"input[1]\" is not a string"},
      {R"(["a",["b"]])", "\"input[1]\" is not a string"},
      {R"([[1],"a"])", "\"input[1]\" is not a non-empty array of integers"},
      {R"([[1],[]])", "\"input[1]\" is not a non-empty array of integers"},
      {R"([[1],["a"]])", "\"input[1]\" is not a non-empty array of integers"},
      {R"([[1.5]])", "\"input[0]\" is not a non-empty array of integers"},
      {R"([null])", "\"input[0]\" is not a string, an integer or an array"},
      {R"([{"text":"a"}])",
       "\"input[0]\" is not a string, an integer or an array"},
      {"true", "\"input\" is not a string or an array"},
  };
  for (const Bad& c : invalid) {
    const std::string body =
        std::string(R"({"model":"m","input":)") + c.input + "}";
    EXPECT_THAT(
        DefaultBuilder().Compute(body, {}, Endpoint::kEmbeddings, nullptr),
        StatusIs(StatusCode::kInvalidArgument, c.message))
        << c.input;
  }
  // The order of a batch is part of the key; token ids are too.
  EXPECT_NE(EpKey(Endpoint::kEmbeddings, R"({"model":"m","input":["a","b"]})"),
            EpKey(Endpoint::kEmbeddings, R"({"model":"m","input":["b","a"]})"));
  EXPECT_NE(EpKey(Endpoint::kEmbeddings, R"({"model":"m","input":[1,2]})"),
            EpKey(Endpoint::kEmbeddings, R"({"model":"m","input":[1,3]})"));
  // Request-level exclusions apply as for chat.
  EXPECT_EQ(
      EpKey(Endpoint::kEmbeddings, R"({"model":"m","input":"a"})"),
      EpKey(Endpoint::kEmbeddings, R"({"model":"m","input":"a","user":"u"})"));
}

TEST(KeyEndpointTest, ResponsesInfo) {
  RequestInfo info = EpInfo(Endpoint::kResponses, R"({"model":"m"})");
  EXPECT_EQ(info.endpoint, Endpoint::kResponses);
  EXPECT_EQ(info.input_count, 0u);
  EXPECT_FALSE(info.has_previous_response);
  EXPECT_FALSE(info.store);
  EXPECT_FALSE(info.background);
  EXPECT_EQ(
      EpInfo(Endpoint::kResponses, R"({"model":"m","input":"x"})").input_count,
      1u);
  EXPECT_EQ(EpInfo(Endpoint::kResponses,
                   R"({"model":"m","input":[{"role":"user","content":"a"},)"
                   R"({"role":"assistant","content":"b"}]})")
                .input_count,
            2u);

  EXPECT_TRUE(EpInfo(Endpoint::kResponses,
                     R"({"model":"m","previous_response_id":"resp_1"})")
                  .has_previous_response);
  EXPECT_TRUE(EpInfo(Endpoint::kResponses,
                     R"({"model":"m","conversation":{"id":"conv_1"}})")
                  .has_previous_response);
  EXPECT_TRUE(
      EpInfo(Endpoint::kResponses, R"({"model":"m","conversation":"conv_1"})")
          .has_previous_response);
  // null says "no previous response".
  info = EpInfo(Endpoint::kResponses,
                R"({"model":"m","previous_response_id":null,)"
                R"("conversation":null})");
  EXPECT_FALSE(info.has_previous_response);

  EXPECT_TRUE(
      EpInfo(Endpoint::kResponses, R"({"model":"m","store":true})").store);
  EXPECT_FALSE(
      EpInfo(Endpoint::kResponses, R"({"model":"m","store":false})").store);
  EXPECT_FALSE(
      EpInfo(Endpoint::kResponses, R"({"model":"m","store":"true"})").store);
  EXPECT_TRUE(EpInfo(Endpoint::kResponses, R"({"model":"m","background":true})")
                  .background);
  EXPECT_TRUE(EpInfo(Endpoint::kResponses,
                     R"({"model":"m","prompt":{"id":"pmpt_1","version":"2"}})")
                  .has_stored_prompt);
  EXPECT_FALSE(EpInfo(Endpoint::kResponses, R"({"model":"m","prompt":null})")
                   .has_stored_prompt);
  EXPECT_FALSE(
      EpInfo(Endpoint::kResponses, R"({"model":"m","background":false})")
          .background);

  // Responses state is a Responses API notion: chat's `store` (kept for
  // evals) does not make a chat request stateful.
  info = EpInfo(Endpoint::kChatCompletions,
                R"({"model":"m","messages":[],"store":true,)"
                R"("previous_response_id":"r","background":true})");
  EXPECT_FALSE(info.store);
  EXPECT_FALSE(info.has_previous_response);
  EXPECT_FALSE(info.background);
  EXPECT_EQ(info.endpoint, Endpoint::kChatCompletions);

  // Info is overwritten, not merged, across endpoints.
  info = EpInfo(Endpoint::kResponses,
                R"({"model":"m","store":true,"input":["a","b"]})");
  ASSERT_OK(DefaultBuilder().Compute(Request(), {}, &info));
  EXPECT_FALSE(info.store);
  EXPECT_EQ(info.input_count, 0u);
  EXPECT_EQ(info.endpoint, Endpoint::kChatCompletions);
  EXPECT_EQ(info.message_count, 1u);
}

TEST(KeyEndpointTest, MessagesInfo) {
  const RequestInfo info = EpInfo(
      Endpoint::kMessages,
      R"({"model":"claude-sonnet-4-5","max_tokens":64,"temperature":0,)"
      R"("stream":true,"messages":[{"role":"user","content":"a"},)"
      R"({"role":"assistant","content":"b"},{"role":"user","content":"c"}]})");
  EXPECT_EQ(info.endpoint, Endpoint::kMessages);
  EXPECT_EQ(info.model, "claude-sonnet-4-5");
  EXPECT_EQ(info.message_count, 3u);
  EXPECT_TRUE(info.has_temperature);
  EXPECT_TRUE(info.stream);
  EXPECT_EQ(info.input_count, 0u);
}

TEST(KeyEndpointTest, WebSearchToolsOfEveryProvider) {
  struct Case {
    const char* type;
    bool web;
  };
  const Case cases[] = {
      {"openrouter:web_search", true},
      {"web_search", true},
      {"web_search_preview", true},
      {"web_search_preview_2025_03_11", true},
      {"web_search_20250305", true},
      {"web_fetch", true},
      {"web_fetch_20250910", true},
      {"function", false},
      {"file_search", false},
      {"code_interpreter", false},
      {"web", false},
      {"websearch", false},
      {"x_web_search", false},
  };
  for (const Case& c : cases) {
    const std::string tools = std::string(R"("tools":[{"type":"function"},)") +
                              R"({"type":")" + c.type + R"("}])";
    // Valid for every endpoint.
    const std::string body =
        R"({"model":"m","messages":[],"input":"x",)" + tools + "}";
    for (Endpoint e : kAllEndpoints) {
      EXPECT_EQ(EpInfo(e, body).has_web_search_tool, c.web)
          << c.type << " " << EndpointName(e);
    }
  }
  // The type of a function's name is not a tool type.
  EXPECT_FALSE(EpInfo(Endpoint::kResponses,
                      R"({"model":"m","tools":[{"type":"function",)"
                      R"("name":"web_search"}]})")
                   .has_web_search_tool);
}

TEST(KeyEndpointTest, AnthropicSystemBlocksAndStringAgree) {
  const std::string plain =
      R"({"model":"c","max_tokens":8,"system":"Be brief.",)"
      R"("messages":[{"role":"user","content":"Hi"}]})";
  const std::string block =
      R"({"model":"c","max_tokens":8,"system":[{"type":"text",)"
      R"("text":"Be brief.","cache_control":{"type":"ephemeral"}}],)"
      R"("messages":[{"role":"user","content":[{"type":"text","text":"Hi",)"
      R"("cache_control":{"type":"ephemeral","ttl":"1h"}}]}]})";
  EXPECT_EQ(EpKey(Endpoint::kMessages, plain),
            EpKey(Endpoint::kMessages, block));
  EXPECT_EQ(EpCanon(Endpoint::kMessages, plain),
            EpCanon(Endpoint::kMessages, block));
  // Under the chat layout `system` is an ordinary member: not folded.
  EXPECT_NE(EpCanon(Endpoint::kChatCompletions, plain),
            EpCanon(Endpoint::kChatCompletions, block));

  // Several system blocks: markers moved between them keep the key; the
  // blocks themselves are content.
  const std::string two_a =
      R"({"model":"c","system":[{"type":"text","text":"A",)"
      R"("cache_control":{"type":"ephemeral"}},{"type":"text","text":"B"}],)"
      R"("messages":[]})";
  const std::string two_b =
      R"({"model":"c","system":[{"type":"text","text":"A"},)"
      R"({"type":"text","text":"B","prompt_cache_breakpoint":{}}],)"
      R"("messages":[]})";
  const std::string two_none =
      R"({"model":"c","system":[{"type":"text","text":"A"},)"
      R"({"type":"text","text":"B"}],"messages":[]})";
  EXPECT_EQ(EpKey(Endpoint::kMessages, two_a),
            EpKey(Endpoint::kMessages, two_b));
  EXPECT_EQ(EpKey(Endpoint::kMessages, two_a),
            EpKey(Endpoint::kMessages, two_none));
  EXPECT_NE(EpKey(Endpoint::kMessages, two_none),
            EpKey(Endpoint::kMessages,
                  R"({"model":"c","system":[{"type":"text","text":"A"},)"
                  R"({"type":"text","text":"C"}],"messages":[]})"));
  EXPECT_NE(EpKey(Endpoint::kMessages, two_none),
            EpKey(Endpoint::kMessages,
                  R"({"model":"c","system":"AB","messages":[]})"));
}

TEST(KeyEndpointTest, AnthropicToolResultBlocksExcludeMarkers) {
  const auto body = [](std::string_view marker) {
    return std::string(
               R"({"model":"c","max_tokens":8,"messages":[)"
               R"({"role":"user","content":"q"},{"role":"assistant","content":)"
               R"([{"type":"tool_use","id":"t1","name":"f","input":{}}]},)"
               R"({"role":"user","content":[{"type":"tool_result",)"
               R"("tool_use_id":"t1","content":[{"type":"text","text":"r1"},)"
               R"({"type":"text","text":"r2")") +
           std::string(marker) + "}]}]}]}";
  };
  const std::string none = EpKey(Endpoint::kMessages, body(""));
  EXPECT_THAT(none, ::testing::Not(HasSubstr("error")));
  EXPECT_EQ(none, EpKey(Endpoint::kMessages,
                        body(R"(,"cache_control":{"type":"ephemeral"})")));
  EXPECT_EQ(none, EpKey(Endpoint::kMessages,
                        body(R"(,"prompt_cache_breakpoint":{})")));
  // Other members of the nested block are content.
  EXPECT_NE(none, EpKey(Endpoint::kMessages, body(R"(,"citations":[])")));
  // The marker on the tool_result block itself, and on the tool_use block.
  const std::string marked_result =
      R"({"model":"c","max_tokens":8,"messages":[)"
      R"({"role":"user","content":"q"},{"role":"assistant","content":)"
      R"([{"type":"tool_use","id":"t1","name":"f","input":{},)"
      R"("cache_control":{"type":"ephemeral"}}]},)"
      R"({"role":"user","content":[{"type":"tool_result",)"
      R"("cache_control":{"type":"ephemeral"},)"
      R"("tool_use_id":"t1","content":[{"type":"text","text":"r1"},)"
      R"({"type":"text","text":"r2"}]}]}]})";
  EXPECT_EQ(none, EpKey(Endpoint::kMessages, marked_result));
  // Under the chat layout a block's `content` is ordinary content.
  EXPECT_NE(EpCanon(Endpoint::kChatCompletions, body("")),
            EpCanon(Endpoint::kChatCompletions,
                    body(R"(,"cache_control":{"type":"ephemeral"})")));
  // Deeper than the nested blocks, the member is content again.
  EXPECT_NE(
      EpKey(Endpoint::kMessages,
            R"({"model":"c","messages":[{"role":"user","content":[{"type":)"
            R"("tool_result","content":[{"type":"image","source":)"
            R"({"type":"base64","data":"x","cache_control":1}}]}]}]})"),
      EpKey(Endpoint::kMessages,
            R"({"model":"c","messages":[{"role":"user","content":[{"type":)"
            R"("tool_result","content":[{"type":"image","source":)"
            R"({"type":"base64","data":"x"}}]}]}]})"));
}

TEST(KeyEndpointTest, AnthropicToolSchemaMarkerIsContent) {
  const std::string with =
      R"({"model":"c","messages":[],"tools":[{"name":"f","input_schema":)"
      R"({"type":"object","properties":{"cache_control":{"type":"string"}}}}]})";
  const std::string without =
      R"({"model":"c","messages":[],"tools":[{"name":"f","input_schema":)"
      R"({"type":"object","properties":{}}}]})";
  EXPECT_NE(EpKey(Endpoint::kMessages, with),
            EpKey(Endpoint::kMessages, without));
  EXPECT_THAT(EpCanon(Endpoint::kMessages, with), HasSubstr("cache_control"));
  // The marker on the tool itself is not.
  EXPECT_EQ(EpKey(Endpoint::kMessages, without),
            EpKey(Endpoint::kMessages,
                  R"({"model":"c","messages":[],"tools":[{"name":"f",)"
                  R"("cache_control":{"type":"ephemeral"},"input_schema":)"
                  R"({"type":"object","properties":{}}}]})"));
}

TEST(KeyEndpointTest, ResponsesInputItemsExcludeMarkers) {
  const std::string none =
      R"({"model":"o","input":[{"role":"user","content":[{"type":)"
      R"("input_text","text":"a"},{"type":"input_text","text":"b"}]},)"
      R"({"type":"function_call_output","call_id":"c1","output":"x"}]})";
  const std::string on_item =
      R"({"model":"o","input":[{"role":"user","cache_control":{},"content":)"
      R"([{"type":"input_text","text":"a"},{"type":"input_text","text":"b"}]},)"
      R"({"type":"function_call_output","call_id":"c1","output":"x",)"
      R"("prompt_cache_breakpoint":{"mode":"explicit"}}]})";
  const std::string on_part =
      R"({"model":"o","input":[{"role":"user","content":[{"type":)"
      R"("input_text","text":"a","cache_control":{"type":"ephemeral"}},)"
      R"({"type":"input_text","text":"b"}]},)"
      R"({"type":"function_call_output","call_id":"c1","output":"x"}]})";
  const std::string key = EpKey(Endpoint::kResponses, none);
  EXPECT_THAT(key, ::testing::Not(HasSubstr("error")));
  EXPECT_EQ(key, EpKey(Endpoint::kResponses, on_item));
  EXPECT_EQ(key, EpKey(Endpoint::kResponses, on_part));
  EXPECT_EQ(EpCanon(Endpoint::kResponses, none),
            EpCanon(Endpoint::kResponses, on_part));
  // Content parts are not folded into a string (input_text is no chat part).
  EXPECT_NE(EpKey(Endpoint::kResponses,
                  R"({"model":"o","input":[{"role":"user","content":"a"}]})"),
            EpKey(Endpoint::kResponses,
                  R"({"model":"o","input":[{"role":"user","content":[{"type":)"
                  R"("input_text","text":"a"}]}]})"));
  // A marker inside a tool's parameters is content; on the tool it is not.
  const std::string tool_with =
      R"({"model":"o","input":"x","tools":[{"type":"function","name":"f",)"
      R"("parameters":{"properties":{"cache_control":{}}}}]})";
  const std::string tool_without =
      R"({"model":"o","input":"x","tools":[{"type":"function","name":"f",)"
      R"("parameters":{"properties":{}}}]})";
  EXPECT_NE(EpKey(Endpoint::kResponses, tool_with),
            EpKey(Endpoint::kResponses, tool_without));
  EXPECT_EQ(EpKey(Endpoint::kResponses, tool_without),
            EpKey(Endpoint::kResponses,
                  R"({"model":"o","input":"x","tools":[{"type":"function",)"
                  R"("name":"f","cache_control":{},)"
                  R"("parameters":{"properties":{}}}]})"));
  // A string input is content like any other.
  EXPECT_NE(EpKey(Endpoint::kResponses, R"({"model":"o","input":"a"})"),
            EpKey(Endpoint::kResponses, R"({"model":"o","input":"b"})"));
  // Request-level exclusions apply at the top.
  EXPECT_EQ(EpKey(Endpoint::kResponses, R"({"model":"o","input":"a"})"),
            EpKey(Endpoint::kResponses,
                  R"({"model":"o","input":"a","stream":true,)"
                  R"("metadata":{"k":"v"},"prompt_cache_key":"p"})"));
  // But not inside input items.
  EXPECT_NE(EpKey(Endpoint::kResponses,
                  R"({"model":"o","input":[{"role":"user","content":"a"}]})"),
            EpKey(Endpoint::kResponses,
                  R"({"model":"o","input":[{"role":"user","content":"a",)"
                  R"("metadata":{}}]})"));
}

}  // namespace
}  // namespace llmcache
