// Embeddings batches cut into inputs and put back together
// (net/cached/src/embedding_json.h), and the JSON spans it copies vectors
// with (json_spans.h): order, indices, usage shares, and the same values
// whether the text is copied or parsed.

#include "embedding_json.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "json_spans.h"
#include "testing/status_matchers.h"

namespace llmcache::net::embedding_json {
namespace {

namespace json = boost::json;

TEST(JsonSpansTest, MembersAndElementsOfNestedText) {
  const std::string text =
      R"( { "a" : [1, {"x":"]}\"["}, [2,3]] , "b\"c":"q" ,"d":-1.5e3 } )";
  auto members = json_spans::Members(text);
  ASSERT_TRUE(members.has_value());
  ASSERT_EQ(members->size(), 3u);
  EXPECT_EQ((*members)[0].key, "a");
  EXPECT_EQ((*members)[1].key, R"(b\"c)");
  EXPECT_EQ((*members)[2].value, "-1.5e3");
  auto elements = json_spans::Elements((*members)[0].value);
  ASSERT_TRUE(elements.has_value());
  ASSERT_EQ(elements->size(), 3u);
  EXPECT_EQ((*elements)[1], R"({"x":"]}\"["})");
  EXPECT_EQ((*elements)[2], "[2,3]");
}

TEST(JsonSpansTest, MalformedTextIsRefusedNotOverrun) {
  for (const char* bad :
       {"", "{", "{\"a\"", "{\"a\":}", "{\"a\":1,}", "{\"a\":1} x", "[1,",
        "{\"a\":\"unterminated}", "[[[[", "{\"a\" 1}"}) {
    EXPECT_FALSE(json_spans::Members(bad).has_value()) << bad;
    EXPECT_FALSE(json_spans::Elements(bad).has_value()) << bad;
  }
}

TEST(EmbeddingJsonTest, SplitThenAssembleKeepsVectorsOrderAndUsage) {
  const std::string answer =
      R"({"object":"list","model":"m","id":"gen-1","data":[)"
      R"({"object":"embedding","index":1,"embedding":[0.25,-1e-7]},)"
      R"({"object":"embedding","index":0,"embedding":[1.0,2]}],)"
      R"("usage":{"prompt_tokens":5,"total_tokens":5,"cost":0.000005}})";
  auto split = SplitAnswer(answer, {2, 3});
  ASSERT_OK(split);
  ASSERT_EQ(split->size(), 2u);
  // Shares add up: 5 tokens over weights 2 and 3.
  EXPECT_EQ((*split)[0].usage.prompt_tokens + (*split)[1].usage.prompt_tokens,
            5u);
  EXPECT_EQ((*split)[0].usage.cost_nanousd + (*split)[1].usage.cost_nanousd,
            5000);
  const json::value first = json::parse((*split)[0].body);
  EXPECT_EQ(first.at("data").at(0).at("index").to_number<int>(), 0);
  EXPECT_EQ(first.at("data").at(0).at("embedding"), json::parse("[1.0,2]"));
  EXPECT_EQ(first.at("id").as_string(), "gen-1");
  // Numbers in their plain form (Boost.JSON alone writes 5E-6 and 1E-7).
  for (const InputAnswer& a : *split) {
    EXPECT_EQ(a.body.find("E-"), std::string::npos) << a.body;
  }
  EXPECT_NE((*split)[1].body.find(R"("cost":0.000003)"), std::string::npos)
      << (*split)[1].body;

  // Put back in another order, nothing spent upstream.
  Spent none;
  auto all = Assemble({(*split)[1].body, (*split)[0].body, (*split)[1].body},
                      "", none);
  ASSERT_OK(all);
  const json::value v = json::parse(*all);
  ASSERT_EQ(v.at("data").as_array().size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(v.at("data").at(i).at("index").to_number<int>(), i);
  }
  EXPECT_EQ(v.at("data").at(0).at("embedding"), json::parse("[0.25,-1e-7]"));
  EXPECT_EQ(v.at("usage").at("prompt_tokens").to_number<int>(), 0);
  EXPECT_EQ(v.at("object").as_string(), "list");

  // With an upstream answer: its members, and what was spent.
  Spent spent;
  CompletionUsage u;
  u.prompt_tokens = 3;
  u.total_tokens = 3;
  spent.Add(&u);
  spent.Add(&u);
  auto mixed = Assemble({(*split)[0].body}, answer, spent);
  ASSERT_OK(mixed);
  const json::value m = json::parse(*mixed);
  EXPECT_EQ(m.at("usage").at("prompt_tokens").to_number<int>(), 6);
  EXPECT_EQ(m.at("model").as_string(), "m");
}

TEST(EmbeddingJsonTest, AnswersThatDoNotFitAreRefused) {
  EXPECT_FALSE(SplitAnswer(R"({"data":[]})", {1}).ok());
  EXPECT_FALSE(SplitAnswer(R"({"data":[{"index":0,"embedding":[1]},)"
                           R"({"index":0,"embedding":[2]}]})",
                           {1, 1})
                   .ok());
  EXPECT_FALSE(SplitAnswer(R"({"data":[{"index":0}]})", {1}).ok());
  // A stored body that does not hold one vector.
  Spent none;
  EXPECT_FALSE(Assemble({R"({"data":[]})"}, "", none).ok());
}

TEST(EmbeddingJsonTest, TokenShareCannotUnderflow) {
  // Weights 1, 3, 3 with 3 prompt and 4 total tokens: rounding the totals
  // apart from the prompts would give an input fewer total than prompt
  // tokens.
  const std::string answer =
      R"({"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[2]},)"
      R"({"index":2,"embedding":[3]}],"usage":{"prompt_tokens":3,)"
      R"("total_tokens":4}})";
  auto split = SplitAnswer(answer, {1, 3, 3});
  ASSERT_OK(split);
  uint64_t completion = 0;
  for (const InputAnswer& a : *split) {
    EXPECT_LT(a.usage.completion_tokens, 2u);
    completion += a.usage.completion_tokens;
  }
  EXPECT_EQ(completion, 1u);
}

TEST(EmbeddingJsonTest, SplitRequestKeepsOtherMembersAndRefusesTooMany) {
  auto inputs =
      SplitRequest(R"({"model":"m","dimensions":4,"input":["ab",[1,2,3]]})");
  ASSERT_OK(inputs);
  ASSERT_EQ(inputs->size(), 2u);
  EXPECT_EQ(json::parse((*inputs)[0].body),
            json::parse(R"({"model":"m","dimensions":4,"input":"ab"})"));
  EXPECT_EQ((*inputs)[1].weight, 3u);
  std::string many = R"({"model":"m","input":[)";
  for (size_t i = 0; i <= kMaxInputs; ++i) many += i ? ",\"x\"" : "\"x\"";
  many += "]}";
  EXPECT_FALSE(SplitRequest(many).ok());
}

}  // namespace
}  // namespace llmcache::net::embedding_json
