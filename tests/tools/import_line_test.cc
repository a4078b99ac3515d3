// ParseImportLine reads the layout `llmcache export` writes by a direct scan
// and everything else through Boost.JSON (ParseImportLineGeneral): both must
// give the same result, accepted or not, for every line.

#include "llmcache/net/import_line.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "llmcache/entry.h"
#include "llmcache/key.h"

namespace llmcache::net {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;

constexpr int64_t kNowMs = 1'767'225'600'000;  // 2026-01-01T00:00:00Z

std::string Completion(std::string_view content) {
  json::object body{
      {"id", "gen-1"},
      {"object", "chat.completion"},
      {"created", 1764000000},
      {"model", "openai/gpt-4o-mini"},
      {"choices",
       json::array{json::object{{"index", 0},
                                {"message", json::object{{"role", "assistant"},
                                                         {"content", content}}},
                                {"finish_reason", "stop"}}}},
      {"usage", json::object{{"prompt_tokens", 20},
                             {"completion_tokens", 18},
                             {"total_tokens", 38}}}};
  return json::serialize(body);
}

// A line as `llmcache export` writes it (the same members, in its order).
std::string ExportLine(std::string_view content, std::string_view model,
                       std::string_view ns, int64_t created, int64_t expires,
                       uint64_t flags = 0) {
  json::object line{{"key", std::string(64, 'a')},
                    {"model", model},
                    {"resolved_model", std::string(model) + "-2025"},
                    {"namespace", ns},
                    {"created", created},
                    {"expires", expires},
                    {"flags", flags},
                    {"usage", json::object{{"prompt_tokens", 20},
                                           {"completion_tokens", 18},
                                           {"cached_tokens", 3},
                                           {"cache_write_tokens", 0},
                                           {"cost_nanousd", 1234}}},
                    {"response", Completion(content)}};
  return json::serialize(line);
}

struct Outcome {
  bool ok = false;
  std::string error;
  ImportLine line;
};

Outcome Parse(std::string_view text, bool general, ImportLine start = {}) {
  Outcome o;
  o.line = std::move(start);
  o.ok = general ? ParseImportLineGeneral(text, kNowMs, &o.line, &o.error)
                 : ParseImportLine(text, kNowMs, &o.line, &o.error);
  return o;
}

// Lines ExpectSame saw the direct scan accept.
int scanned_lines = 0;

// Both parsers agree on `text`: acceptance, error message, every field.
void ExpectSame(std::string_view text, ImportLine start = {}) {
  SCOPED_TRACE(std::string(text));
  const Outcome fast = Parse(text, false, start);
  const Outcome general = Parse(text, true, start);
  ASSERT_EQ(fast.ok, general.ok) << general.error;
  ImportLine scanned = start;
  if (ParseExportLayout(text, kNowMs, &scanned)) {
    ASSERT_TRUE(general.ok)
        << "the scan accepts what is rejected: " << general.error;
    ++scanned_lines;
  }
  if (!general.ok) {
    EXPECT_EQ(fast.error, general.error);
    return;
  }
  const ImportLine& a = fast.line;
  const ImportLine& b = general.line;
  EXPECT_EQ(a.key.digest, b.key.digest);
  EXPECT_EQ(a.key.model, b.key.model);
  EXPECT_EQ(a.key.base_model, b.key.base_model);
  EXPECT_EQ(a.body, b.body);
  EXPECT_EQ(a.ns, b.ns);
  EXPECT_EQ(a.resolved_model, b.resolved_model);
  EXPECT_EQ(a.options.usage.prompt_tokens, b.options.usage.prompt_tokens);
  EXPECT_EQ(a.options.usage.completion_tokens,
            b.options.usage.completion_tokens);
  EXPECT_EQ(a.options.usage.cached_tokens, b.options.usage.cached_tokens);
  EXPECT_EQ(a.options.usage.cache_write_tokens,
            b.options.usage.cache_write_tokens);
  EXPECT_EQ(a.options.usage.cost_nanousd, b.options.usage.cost_nanousd);
  EXPECT_EQ(a.options.flags, b.options.flags);
  EXPECT_EQ(a.options.created_ms, b.options.created_ms);
  EXPECT_EQ(a.options.expires_ms, b.options.expires_ms);
  EXPECT_EQ(a.options.ttl_ms, b.options.ttl_ms);
}

TEST(ImportLineTest, ExportedLinesReadAsTheGeneralParserReadsThem) {
  const std::string line = ExportLine("Hello there.", "openai/gpt-4o-mini",
                                      "tenant-1", kNowMs - 1000, 0, 4);
  const Outcome o = Parse(line, false);
  ASSERT_TRUE(o.ok) << o.error;
  ImportLine scanned;
  EXPECT_TRUE(ParseExportLayout(line, kNowMs, &scanned));  // not the fallback
  EXPECT_EQ(o.line.key.model, "openai/gpt-4o-mini");
  EXPECT_EQ(o.line.ns, "tenant-1");
  EXPECT_EQ(o.line.resolved_model, "openai/gpt-4o-mini-2025");
  EXPECT_EQ(o.line.body, Completion("Hello there."));
  EXPECT_EQ(o.line.options.flags, 4 | kEntryFlagImported);
  EXPECT_EQ(o.line.options.usage.cost_nanousd, 1234);
  ASSERT_TRUE(o.line.options.ttl_ms.has_value());
  EXPECT_EQ(*o.line.options.ttl_ms, 0);
  ExpectSame(line);
  ExpectSame(ExportLine("x", "m", "", kNowMs - 5, kNowMs + 60'000));
}

TEST(ImportLineTest, EscapesUnicodeAndOddValuesAgree) {
  for (std::string_view content :
       {"quotes \" and \\ backslashes / slashes", "tab\there\nnew line\r",
        "\b\f control escapes", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
        "\x7F del", "</script>", ""}) {
    const std::string line =
        ExportLine(content, "openai/gpt-4o-mini", "", kNowMs - 1, 0);
    ExpectSame(line);
    ImportLine scanned;
    // Escapes and UTF-8 alike are read by the scan itself.
    EXPECT_EQ(ParseExportLayout(line, kNowMs, &scanned), Parse(line, true).ok)
        << content;
  }
  // Fields the checks reject, one at a time.
  ExpectSame(ExportLine("x", "", "", kNowMs - 1, 0));            // no model
  ExpectSame(ExportLine("x", "a\nb", "", kNowMs - 1, 0));        // control
  ExpectSame(ExportLine("x", "m", "n\x01s", kNowMs - 1, 0));     // control
  ExpectSame(ExportLine("x", "m", "", 0, 0));                    // no created
  ExpectSame(ExportLine("x", "m", "", kNowMs + 600'000, 0));     // future
  ExpectSame(ExportLine("x", "m", "", kNowMs - 1, kNowMs - 2));  // expires
  ExpectSame(ExportLine("x", "m", "", kNowMs - 1, 0, 256));      // flags
  ExpectSame(ExportLine("x", std::string(70000, 'm'), "", kNowMs - 1, 0));
  // Not a completion the service would store.
  std::string error_body = ExportLine("x", "m", "", kNowMs - 1, 0);
  const size_t at = error_body.find("\"response\":");
  error_body =
      error_body.substr(0, at) +
      R"("response":"{\"error\":{\"code\":429,\"message\":\"slow\"}}"})";
  ExpectSame(error_body);
}

TEST(ImportLineTest, ACreatedOfZeroIsNotCalledMissing) {
  const Outcome zero = Parse(ExportLine("x", "m", "", 0, 0), false);
  EXPECT_FALSE(zero.ok);
  EXPECT_THAT(zero.error, HasSubstr("\"created\" must be a time after 1970"));
  std::string none = ExportLine("x", "m", "", kNowMs - 1, 0);
  const size_t at = none.find("\"created\":");
  ASSERT_NE(at, std::string::npos);
  none.erase(at, none.find(',', at) + 1 - at);
  const Outcome missing = Parse(none, false);
  EXPECT_FALSE(missing.ok);
  EXPECT_THAT(missing.error, HasSubstr("missing \"created\""));
}

// Model, resolved model and namespace that fit one by one but not together
// are a malformed line (skipped and reported), not an error of the store
// that stopped the whole import.
TEST(ImportLineTest, MetadataTooLongTogetherIsAMalformedLine) {
  // ExportLine's resolved model is the model and "-2025".
  const size_t fits = (kMaxEntryMetadataBytes - 5) / 2;
  const std::string ok =
      ExportLine("x", std::string(fits, 'm'), "", kNowMs - 1, 0);
  const std::string over =
      ExportLine("x", std::string(fits + 1, 'm'), "", kNowMs - 1, 0);
  ExpectSame(ok);
  ExpectSame(over);
  const Outcome accepted = Parse(ok, false);
  EXPECT_TRUE(accepted.ok) << accepted.error;
  for (bool general : {false, true}) {
    const Outcome refused = Parse(over, general);
    EXPECT_FALSE(refused.ok);
    EXPECT_THAT(refused.error, HasSubstr("bytes together"));
  }
}

// A model that is only a variant suffix (":free", ":") names no model: it
// would be counted as a model with an empty name.
TEST(ImportLineTest, AModelWithNothingBeforeItsVariantIsAMalformedLine) {
  for (const char* model : {":free", ":"}) {
    const std::string line = ExportLine("x", model, "", kNowMs - 1, 0);
    ExpectSame(line);
    for (bool general : {false, true}) {
      const Outcome refused = Parse(line, general);
      EXPECT_FALSE(refused.ok) << model;
      EXPECT_THAT(refused.error, HasSubstr("names no model")) << model;
    }
  }
  const Outcome variant =
      Parse(ExportLine("x", "m/a:free", "", kNowMs - 1, 0), false);
  EXPECT_TRUE(variant.ok) << variant.error;
  EXPECT_EQ(variant.line.key.base_model, "m/a");
}

// An expiry past the year 9999 (older versions wrote some) is read as it
// is, by both readers; the store keeps it as the end of the year 9999.
TEST(ImportLineTest, AnExpiryPastTheYear9999IsRead) {
  for (const std::string& expires :
       {std::to_string(kMaxEntryTimeMs), std::to_string(kMaxEntryTimeMs + 1),
        std::string("9") + std::string(17, '0')}) {
    const std::string line = ExportLine("x", "m", "", kNowMs - 1, 1);
    const size_t at = line.find("\"expires\":1");
    ASSERT_NE(at, std::string::npos);
    const std::string text =
        line.substr(0, at) + "\"expires\":" + expires + line.substr(at + 11);
    ExpectSame(text);
    const Outcome o = Parse(text, false);
    EXPECT_TRUE(o.ok) << o.error;
    EXPECT_EQ(std::to_string(o.line.options.expires_ms), expires);
  }
}

// Raw bytes in the response's text, at each edge of well-formed UTF-8
// (RFC 3629): the scan accepts exactly what Boost.JSON accepts.
TEST(ImportLineTest, Utf8EdgesAgree) {
  const std::string line = ExportLine("[X]", "m", "", kNowMs - 1, 0);
  const size_t at = line.find("[X]");
  ASSERT_NE(at, std::string::npos);
  const std::vector<std::string> sequences = {
      "\x7F", "\x80", "\xBF", "\xC0\x80", "\xC1\xBF", "\xC2\x80", "\xC2\x7F",
      "\xC2\xC0", "\xDF\xBF", "\xE0\x80\x80", "\xE0\x9F\xBF", "\xE0\xA0\x80",
      "\xE1\x80\x80", "\xEC\xBF\xBF", "\xED\x80\x80", "\xED\x9F\xBF",
      "\xED\xA0\x80", "\xED\xBF\xBF", "\xEE\x80\x80", "\xEF\xBF\xBF",
      "\xEF\xBF\xBE", "\xF0\x80\x80\x80", "\xF0\x8F\xBF\xBF",
      "\xF0\x90\x80\x80", "\xF3\xBF\xBF\xBF", "\xF4\x80\x80\x80",
      "\xF4\x8F\xBF\xBF", "\xF4\x90\x80\x80", "\xF5\x80\x80\x80",
      "\xF8\x88\x80\x80\x80", "\xFE", "\xFF",
      // Cut short: at the end of the text, and before a plain byte.
      "\xC3", "\xE2\x82", "\xF0\x9F\x98", "\xE2\x82x", "\xF0\x9Fxy"};
  int scanned_ok = 0;
  for (const std::string& seq : sequences) {
    // Inside the response's text, in the model name and in the namespace.
    const std::string in_text =
        line.substr(0, at) + "[" + seq + "]" + line.substr(at + 3);
    ExpectSame(in_text);
    ExpectSame(ExportLine("x", "m" + seq, "", kNowMs - 1, 0));
    ExpectSame(ExportLine("x", "m", seq + "ns", kNowMs - 1, 0));
    ImportLine scanned;
    if (ParseExportLayout(in_text, kNowMs, &scanned)) ++scanned_ok;
  }
  // The 15 well-formed ones (\x7F among them) were read by the scan.
  EXPECT_EQ(scanned_ok, 15);
}

TEST(ImportLineTest, NumbersAgree) {
  const std::string line =
      ExportLine("x", "m", "", 1'700'000'000'000, 0);  // created: 13 digits
  const size_t at = line.find("1700000000000");
  ASSERT_NE(at, std::string::npos);
  for (std::string_view created :
       {"01700000000000", "1700000000000.0", "1.7e12", "-1700000000000",
        "17000000000000000", "170000000000000000", "1700000000000000000",
        "17000000000000000000", "99999999999999999999", "0", "00", "null",
        "\"1700000000000\"", "1700000000000 "}) {
    ExpectSame(line.substr(0, at) + std::string(created) +
               line.substr(at + 13));
  }
}

// Every one-byte change of an exported line: deleted, replaced by bytes that
// matter to the scan, or the line cut there.
TEST(ImportLineTest, EveryOneByteChangeAgrees) {
  const std::string line = ExportLine("Hi \"you\"\n.", "openai/gpt-4o-mini",
                                      "t", kNowMs - 1000, kNowMs + 1000, 1);
  const std::string replacements[] = {"\"", "\\", " ", "0", "9",    "x",   "}",
                                      ",",  ":",  "{", "[", "\x80", "\x01"};
  for (size_t i = 0; i < line.size(); ++i) {
    ExpectSame(line.substr(0, i));
    ExpectSame(line.substr(0, i) + line.substr(i + 1));
    for (const std::string& r : replacements) {
      ExpectSame(line.substr(0, i) + r + line.substr(i + 1));
    }
    if (HasFailure()) return;  // one position's report is enough
  }
  // Some changes keep the line in the layout (a digit for a digit, a
  // letter in a string): the scan, not only the fallback, was compared.
  EXPECT_GT(scanned_lines, 100);
}

// An ImportLine is reused line after line: nothing of the previous line
// stays in the next.
TEST(ImportLineTest, NothingOfAnEarlierLineStays) {
  const Outcome first = Parse(
      ExportLine("first", "m1", "tenant", kNowMs - 1, kNowMs + 10), false);
  ASSERT_TRUE(first.ok) << first.error;
  ExpectSame(ExportLine("second", "m2", "", kNowMs - 1, 0), first.line);
  const Outcome second =
      Parse(ExportLine("second", "m2", "", kNowMs - 1, 0), false, first.line);
  ASSERT_TRUE(second.ok);
  EXPECT_EQ(second.line.ns, "");
  EXPECT_EQ(second.line.options.expires_ms, 0);
  EXPECT_EQ(second.line.body, Completion("second"));
}

// Each response is checked by the rules of the endpoint its flags name (bits
// 3-4), by both parsers alike.
TEST(ImportLineTest, EveryEndpointIsCheckedByItsOwnRules) {
  const std::vector<std::pair<std::string, uint64_t>> answers = {
      {Completion("chat"), 0},
      {R"({"object":"list","data":[{"object":"embedding","index":0,)"
       R"("embedding":[0.5]}],"model":"m","usage":{"prompt_tokens":1,)"
       R"("total_tokens":1}})",
       1 << 3},
      {R"({"id":"r","object":"response","status":"completed","model":"m",)"
       R"("output":[{"type":"message","role":"assistant","content":[)"
       R"({"type":"output_text","text":"hi"}]}]})",
       2 << 3},
      {R"({"id":"m","type":"message","role":"assistant","model":"m",)"
       R"("content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn"})",
       3 << 3},
  };
  for (const auto& [response, own] : answers) {
    for (uint64_t flags = 0; flags < 32; flags += 8) {
      json::object line = json::parse(ExportLine("x", "m", "", kNowMs - 1, 0,
                                                 flags | kEntryFlagFromStream))
                              .as_object();
      line["response"] = response;
      const std::string text = json::serialize(line);
      ExpectSame(text);
      const Outcome o = Parse(text, false);
      SCOPED_TRACE(text);
      EXPECT_EQ(o.ok, flags == own) << o.error;
      if (o.ok) {
        EXPECT_EQ(o.line.body, response);
        EXPECT_EQ(EntryEndpointValue(o.line.options.flags), flags >> 3);
      } else {
        EXPECT_THAT(o.error, ::testing::StartsWith("\"response\" "));
      }
    }
  }
}

}  // namespace
}  // namespace llmcache::net
