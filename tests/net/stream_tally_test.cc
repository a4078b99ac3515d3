// What the cached client keeps of an upstream stream
// (net/cached/src/stream_tally.h): the whole answer under the store limit;
// past it, nothing of the answer, but whether the stream ended whole and
// what its last events said of usage and errors.

#include "stream_tally.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "llmcache/net/endpoint.h"

namespace llmcache::net::internal {
namespace {

std::string Chunk(const std::string& content) {
  return R"({"id":"gen-1","object":"chat.completion.chunk","created":1,)"
         R"("model":"m/a","choices":[{"index":0,"delta":{"content":")" +
         content + R"("},"finish_reason":null}]})";
}

const std::string kFinish =
    R"({"id":"gen-1","object":"chat.completion.chunk","created":1,)"
    R"("model":"m/a","choices":[{"index":0,"delta":{},)"
    R"("finish_reason":"stop"}]})";
const std::string kUsage =
    R"({"id":"gen-1","object":"chat.completion.chunk","created":1,)"
    R"("model":"m/a","choices":[],"usage":{"prompt_tokens":7,)"
    R"("completion_tokens":900,"total_tokens":907}})";
const std::string kError =
    R"({"id":"gen-1","object":"chat.completion.chunk","created":1,)"
    R"("model":"m/a","error":{"code":502,"message":"provider went away"},)"
    R"("choices":[{"index":0,"delta":{"content":""},)"
    R"("finish_reason":"error"}]})";

StreamTally Tally(size_t limit) {
  return StreamTally(MakeEventAccumulator(Endpoint::kChatCompletions),
                     Endpoint::kChatCompletions, limit);
}

TEST(StreamTallyTest, UnderTheLimitTheAnswerIsGathered) {
  StreamTally t = Tally(1 << 20);
  EXPECT_FALSE(t.begun());
  t.Add(Chunk("Hello"));
  t.Add(Chunk(" there"));
  EXPECT_FALSE(t.Whole(false));
  t.Add(kFinish);
  t.Add(kUsage);
  t.Add("[DONE]");
  EXPECT_TRUE(t.begun());
  EXPECT_FALSE(t.over());
  EXPECT_TRUE(t.status().ok());
  EXPECT_TRUE(t.Whole(true));
  EXPECT_FALSE(t.Whole(false));  // chat needs the client's [DONE] too
  const ParsedCompletion p = t.Parsed();
  EXPECT_EQ(p.content, "Hello there");
  ASSERT_TRUE(p.usage.has_value());
  EXPECT_EQ(p.usage->completion_tokens, 900u);
  EXPECT_NE(t.ToJson().find("Hello there"), std::string::npos);
}

// Past the limit nothing of the answer is kept, but the end, the usage and
// an error event still count.
TEST(StreamTallyTest, PastTheLimitOnlyTheEndUsageAndErrorsCount) {
  const std::string big = Chunk(std::string(600, 'x'));
  {
    StreamTally t = Tally(1000);
    t.Add(big);
    EXPECT_FALSE(t.over());
    t.Add(big);  // 1200 bytes: over
    EXPECT_TRUE(t.over());
    t.Add(kFinish);
    t.Add(kUsage);
    EXPECT_FALSE(t.Whole(true));
    t.Add("[DONE]");
    EXPECT_TRUE(t.Whole(true));
    EXPECT_EQ(t.ToJson(), "");
    const ParsedCompletion p = t.Parsed();
    EXPECT_EQ(p.content, "");
    ASSERT_TRUE(p.usage.has_value());
    EXPECT_EQ(p.usage->prompt_tokens, 7u);
    EXPECT_EQ(p.usage->completion_tokens, 900u);
    EXPECT_FALSE(p.error.has_value());
  }
  {
    // Ended by an error event, without [DONE]: not whole, the error kept.
    StreamTally t = Tally(1000);
    t.Add(big);
    t.Add(big);
    t.Add(kError);
    EXPECT_TRUE(t.over());
    EXPECT_FALSE(t.Whole(false));
    const ParsedCompletion p = t.Parsed();
    ASSERT_TRUE(p.error.has_value());
    EXPECT_EQ(p.error->message, "provider went away");
  }
  {
    // "usage":null in every chunk does not use up what is looked at past
    // the limit (1 MiB of small events naming usage or an error).
    StreamTally t = Tally(1000);
    t.Add(big);
    t.Add(big);
    std::string with_null = Chunk("y");
    with_null.insert(with_null.size() - 1, R"(,"usage" : null)");
    for (int i = 0; i < 20000; ++i) t.Add(with_null);  // ~3 MiB
    std::string spaced = kUsage;
    spaced.replace(spaced.find(R"("usage":{)"), 9, R"("usage" : {)");
    t.Add(spaced);
    t.Add("[DONE]");
    const ParsedCompletion p = t.Parsed();
    ASSERT_TRUE(p.usage.has_value());
    EXPECT_EQ(p.usage->completion_tokens, 900u);
  }
  {
    // One event larger than the limit puts it over at once.
    StreamTally t = Tally(100);
    t.Add(big);
    EXPECT_TRUE(t.over());
    EXPECT_TRUE(t.begun());
  }
}

}  // namespace
}  // namespace llmcache::net::internal
