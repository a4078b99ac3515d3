// Tests for IsPlainlyCacheableCompletion (llmcache/net/completion.h): it
// accepts the common clean shape, and never a body that ParseCompletion and
// WhyNotCacheable(200, ...) would refuse, over hand-picked edge cases and a
// few hundred thousand mutations of real shapes.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "llmcache/net/completion.h"

namespace llmcache::net {
namespace {

// What the full path says: parsed, and nothing against caching it.
bool FullPathAccepts(std::string_view body) {
  Result<ParsedCompletion> c = ParseCompletion(body);
  return c.ok() && WhyNotCacheable(200, *c).empty();
}

constexpr char kClean[] =
    R"({"id":"gen-1","provider":"OpenAI","model":"openai/gpt-4o-mini",)"
    R"("object":"chat.completion","created":1764926476,"choices":[)"
    R"({"logprobs":null,"finish_reason":"stop","native_finish_reason":"stop",)"
    R"("index":0,"message":{"role":"assistant","content":"Hello there",)"
    R"("refusal":null,"reasoning":null}}],"system_fingerprint":"fp_1",)"
    R"("usage":{"prompt_tokens":29,"completion_tokens":33,"total_tokens":62,)"
    R"("cost":0.00002415,"prompt_tokens_details":{"cached_tokens":3}}})";

TEST(CompletionCheckTest, AcceptsTheCleanShapes) {
  for (std::string_view body : {
           std::string_view(kClean),
           // Keep-alive whitespace before the body, as the upstream sends.
           std::string_view("\n\n {\"choices\":[{\"message\":{\"content\":"
                            "\"x\"}}]}\n"),
           // Escapes in names and values are decoded first.
           std::string_view(R"({"cho\u0069ces":[{"message":{"c\u006fntent":)"
                            R"("a\"b"},"finish_reason":"\u0065rr"}]})"),
           // A finish_reason that is not a string, later choices of any
           // kind, members in any order, errors deeper down.
           std::string_view(
               R"({"usage":{"error":1},"choices":[{"finish_reason")"
               R"(:null,"message":{"error":"x","content":"ok",)"
               R"("content_x":""}},[1],"two",3,{"index":1}]})"),
       }) {
    EXPECT_TRUE(IsPlainlyCacheableCompletion(body)) << body;
    EXPECT_TRUE(FullPathAccepts(body)) << body;
  }
}

TEST(CompletionCheckTest, LeavesEverythingElseToTheFullParse) {
  for (std::string_view body : {
           // Refused by the full path too.
           std::string_view(""),
           std::string_view("{"),
           std::string_view("[]"),
           std::string_view("\"text\""),
           std::string_view(R"({"choices":[]})"),
           std::string_view(R"({"choices":[{"message":{"content":""}}]})"),
           std::string_view(R"({"choices":[{"message":{"content":null}}]})"),
           std::string_view(R"({"choices":[{"message":{}}]})"),
           std::string_view(R"({"choices":[{}]})"),
           std::string_view(R"({"choices":[1,{"message":{"content":"x"}}]})"),
           std::string_view(R"({"choices":{"message":{"content":"x"}}})"),
           std::string_view(R"({"error":{"code":429,"message":"slow down"},)"
                            R"("choices":[{"message":{"content":"x"}}]})"),
           std::string_view(R"({"choices":[{"message":{"content":"x"}},)"
                            R"({"error":{"code":502,"message":"down"}}]})"),
           std::string_view(R"({"choices":[{"finish_reason":"error",)"
                            R"("message":{"content":"x"}}]})"),
           std::string_view(R"({"choices":[{"finish_reason":"\u0065rror",)"
                            R"("message":{"content":"x"}}]})"),
           std::string_view(R"({"choices":[{"message":{"content":"x"}}]} x)"),
           std::string_view("{\"choices\":[{\"message\":{\"content\":"
                            "\"\xC3\x28\"}}]}"),  // invalid UTF-8
           // Clean for the full path, but not the plain shape: the full
           // parse decides.
           std::string_view(R"({"choices":[{"message":{"content":"",)"
                            R"("refusal":"I can't"}}]})"),
           std::string_view(R"({"choices":[{"message":{"content":[)"
                            R"({"type":"text","text":"x"}]}}]})"),
           std::string_view(R"({"error":null,"choices":[{"message":)"
                            R"({"content":"x"}}]})"),
           // A name twice: which one counts is the tree's business.
           std::string_view(R"({"choices":[{"message":{"content":"x"}}],)"
                            R"("choices":[]})"),
           std::string_view(R"({"choices":[{"message":{"content":"x"},)"
                            R"("message":{"content":""}}]})"),
           std::string_view(R"({"choices":[{"message":{"content":"x",)"
                            R"("content":""}}]})"),
           std::string_view(R"({"choices":[{"finish_reason":"stop",)"
                            R"("finish_reason":"error","message":)"
                            R"({"content":"x"}}]})"),
           // ...where one of the two alone would pass the check.
           std::string_view(R"({"choices":[{"message":{"content":"x"},)"
                            R"("message":{}}]})"),
           std::string_view(R"({"choices":[{"message":{}, "message":)"
                            R"({"content":"x"}}]})"),
           std::string_view(R"({"choices":[{"message":{"content":"x"}}],)"
                            R"("choices":[{}]})"),
           std::string_view(R"({"choices":[{}],"choices":[{"message":)"
                            R"({"content":"x"}}]})"),
       }) {
    EXPECT_FALSE(IsPlainlyCacheableCompletion(body)) << body;
  }
}

TEST(CompletionCheckTest, TooDeepIsRefusedAsByTheFullParse) {
  std::string body = R"({"choices":[{"message":{"content":"x"}}],"deep":)";
  for (int i = 0; i < 300; ++i) body += '[';
  for (int i = 0; i < 300; ++i) body += ']';
  body += '}';
  EXPECT_FALSE(FullPathAccepts(body));
  EXPECT_FALSE(IsPlainlyCacheableCompletion(body));
}

// Pieces the mutations splice in: names the check looks at, values of
// every type, escapes, structure and bytes that break the syntax.
const std::vector<std::string>& Pieces() {
  static const std::vector<std::string> pieces = {
      R"("error":)",
      R"("choices":)",
      R"("message":)",
      R"("content":)",
      R"("finish_reason":)",
      R"("refusal":"no",)",
      R"("error")",
      R"("\u0065rror")",
      R"("err\u006fr":)",
      R"("c\u006fntent":)",
      R"("x":1,)",
      R"("",)",
      R"("stop")",
      R"("text")",
      "null",
      "true",
      "0",
      "-1.5e3",
      "1e400",
      "[",
      "]",
      "{",
      "}",
      ",",
      ":",
      "\"",
      "\\",
      "\xC3\x28",
      "\xE2\x82\xAC",
      " ",
      R"({"content":"y"})",
      R"([{"message":{"content":"z"}}])",
      R"({"code":1,"message":"m"})",
      R"("message":{},)",
      R"("choices":[{}],)",
      R"("choices":[],)",
  };
  return pieces;
}

// One to three random edits of `body`: delete a span, copy one elsewhere,
// or splice a piece in.
std::string Mutate(std::string body, std::mt19937_64& rng) {
  const int edits = 1 + static_cast<int>(rng() % 3);
  for (int e = 0; e < edits; ++e) {
    if (body.empty()) body = "{}";
    const size_t at = rng() % (body.size() + 1);
    const size_t len = rng() % 24;
    switch (rng() % 4) {
      case 0:
        body.erase(std::min(at, body.size()), len);
        break;
      case 1: {
        const std::string span = body.substr(std::min(at, body.size()), len);
        body.insert(rng() % (body.size() + 1), span);
        break;
      }
      default: {
        const std::vector<std::string>& pieces = Pieces();
        body.insert(at, pieces[rng() % pieces.size()]);
        break;
      }
    }
  }
  return body;
}

TEST(CompletionCheckTest, NeverAcceptsWhatTheFullPathRefuses) {
  const std::vector<std::string> seeds = {
      kClean,
      R"({"choices":[{"message":{"content":"x"}}]})",
      R"({"choices":[{"finish_reason":"stop","message":{"role":"assistant",)"
      R"("content":"Hi","tool_calls":[{"id":"c1","type":"function",)"
      R"("function":{"name":"f","arguments":"{}"}}]}},{"index":1,)"
      R"("message":{"content":"second"}}],"usage":{"prompt_tokens":1}})",
  };
  std::mt19937_64 rng(20261205);
  size_t accepted = 0, full_accepts = 0;
  constexpr int kRounds = 200000;
  for (int i = 0; i < kRounds; ++i) {
    const std::string body = Mutate(seeds[i % seeds.size()], rng);
    const bool quick = IsPlainlyCacheableCompletion(body);
    const bool full = FullPathAccepts(body);
    if (quick) {
      ++accepted;
      ASSERT_TRUE(full) << "accepted, but the full path refuses: " << body;
    }
    if (full) ++full_accepts;
  }
  // The mutations reach both sides: bodies the check takes, and clean
  // bodies it leaves to the full parse (and the full path refuses plenty).
  EXPECT_GT(accepted, kRounds / 20u);
  EXPECT_GT(full_accepts, accepted);
  EXPECT_LT(full_accepts, kRounds / 2u);
}

}  // namespace
}  // namespace llmcache::net
