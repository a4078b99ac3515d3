// CachedClient on the other endpoints, as a C++ service uses it without the
// proxy: embeddings batches cached input by input (partial hits, repeated
// inputs, one upstream call per input across concurrent batches), Responses
// and Messages (miss then hit, streams replayed as the endpoint's events),
// the endpoint recorded with each entry and counted per endpoint.

#include <gtest/gtest.h>

#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fake_openrouter.h"
#include "llmcache/net/cached_client.h"
#include "llmcache/net/endpoint.h"
#include "testing/io_loop.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/wait.h"

namespace llmcache::net {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using ::llmcache::fake::FakeOpenRouter;
using ::llmcache::fake::FakeOptions;
using namespace std::chrono_literals;

json::value Json(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  EXPECT_FALSE(ec) << text;
  return v;
}

class CachedEndpointsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto f = FakeOpenRouter::Start(FakeOptions{});
    ASSERT_OK(f);
    fake_ = std::move(f).value();
    CacheOptions co;
    co.path = dir_.path() + "/db";
    co.maintenance_interval_ms = 0;
    auto c = Cache::Open(co);
    ASSERT_OK(c);
    cache_ = std::shared_ptr<Cache>(std::move(c).value());
    ClientOptions o;
    o.base_url = fake_->base_url();
    o.api_key = "k";
    o.max_attempts = 1;
    auto client = Client::Create(loop_.ioc().get_executor(), o);
    ASSERT_OK(client);
    client_ = *client;
    CachedClientOptions cco;
    cco.log = [](std::string_view) {};
    cached_ = CachedClient::Create(cache_, client_, std::move(cco));
  }

  std::future<Result<CachedResponse>> Start(Endpoint endpoint,
                                            const std::string& body,
                                            StreamHandler chunks = nullptr) {
    CachedRequest req;
    req.endpoint = endpoint;
    req.body = body;
    return cached_->AsyncComplete(std::move(req), std::move(chunks),
                                  asio::use_future);
  }
  Result<CachedResponse> Call(Endpoint endpoint, const std::string& body,
                              StreamHandler chunks = nullptr) {
    return Start(endpoint, body, std::move(chunks)).get();
  }
  static std::string Embeddings(const std::string& input,
                                const std::string& model = "openai/emb") {
    return R"({"model":")" + model + R"(","input":)" + input + "}";
  }

  llmcache::testing::TempDir dir_;
  llmcache::testing::IoLoop loop_;
  std::unique_ptr<FakeOpenRouter> fake_;
  std::shared_ptr<Cache> cache_;
  std::shared_ptr<Client> client_;
  std::shared_ptr<CachedClient> cached_;
};

TEST_F(CachedEndpointsTest, EmbeddingsBatchPartialHits) {
  auto first = Call(Endpoint::kEmbeddings, Embeddings(R"(["a1","b2"])"));
  ASSERT_OK(first);
  EXPECT_EQ(first->result, CacheResult::kMiss);
  EXPECT_TRUE(first->stored);
  auto second =
      Call(Endpoint::kEmbeddings, Embeddings(R"(["b2","c3","a1","d4"])"));
  ASSERT_OK(second);
  EXPECT_EQ(second->result, CacheResult::kMiss);
  EXPECT_EQ(fake_->embedded_items(), 4u);
  const json::value s = Json(second->body);
  const json::array& data = s.at("data").as_array();
  ASSERT_EQ(data.size(), 4u);
  const json::value f = Json(first->body);
  EXPECT_EQ(data[0].at("embedding"), f.at("data").at(1).at("embedding"));
  EXPECT_EQ(data[2].at("embedding"), f.at("data").at(0).at("embedding"));
  EXPECT_EQ(data[3].at("index").to_number<int>(), 3);
  // The hits saved what their inputs cost when they were stored.
  EXPECT_EQ(second->usage.prompt_tokens, 2u);  // 1 token each ("a1", "b2")

  auto third = Call(Endpoint::kEmbeddings, Embeddings(R"(["d4","a1"])"));
  ASSERT_OK(third);
  EXPECT_EQ(third->result, CacheResult::kHit);
  const CachedClientStats st = cached_->stats();
  EXPECT_EQ(st.embedding_inputs_hit, 2u + 2u);
  EXPECT_EQ(st.embedding_inputs_missed, 2u + 2u);
  const auto& e = st.endpoints[static_cast<size_t>(Endpoint::kEmbeddings)];
  EXPECT_EQ(e.hits, 1u);
  EXPECT_EQ(e.misses, 2u);
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.misses, 2u);
}

TEST_F(CachedEndpointsTest, ConcurrentBatchesSendEachInputUpstreamOnce) {
  // 30 ms per input upstream: the second batch starts while the first's
  // inputs are in flight and waits for the two they share.
  const std::string model = "fake/embed-delay-30000";
  auto a = Start(Endpoint::kEmbeddings, Embeddings(R"(["p","q","r"])", model));
  auto b = Start(Endpoint::kEmbeddings, Embeddings(R"(["q","r","s"])", model));
  auto ra = a.get();
  auto rb = b.get();
  ASSERT_OK(ra);
  ASSERT_OK(rb);
  EXPECT_EQ(fake_->embedded_items(), 4u);
  EXPECT_EQ(fake_->embeddings(), 2u);
  const json::value ja = Json(ra->body);
  const json::value jb = Json(rb->body);
  EXPECT_EQ(jb.at("data").at(0).at("embedding"),
            ja.at("data").at(1).at("embedding"));
  EXPECT_EQ(jb.at("data").at(1).at("embedding"),
            ja.at("data").at(2).at("embedding"));
  EXPECT_EQ(jb.at("data").at(2).at("index").to_number<int>(), 2);
}

// A no-store batch once led its inputs' flights: a batch that joined them
// got answers nobody stored, and said they were stored.
TEST_F(CachedEndpointsTest, ANoStoreBatchLeadsNoInputFlight) {
  const std::string model = "fake/embed-delay-30000";
  CachedRequest no_store;
  no_store.endpoint = Endpoint::kEmbeddings;
  no_store.body = Embeddings(R"(["p","q"])", model);
  no_store.no_store = true;
  auto a =
      cached_->AsyncComplete(std::move(no_store), nullptr, asio::use_future);
  // B starts while A's call is upstream.
  ASSERT_TRUE(
      llmcache::testing::WaitFor([&] { return fake_->embeddings() == 1; }));
  auto b = Start(Endpoint::kEmbeddings, Embeddings(R"(["p","q"])", model));
  auto ra = a.get();
  auto rb = b.get();
  ASSERT_OK(ra);
  ASSERT_OK(rb);
  EXPECT_FALSE(ra->stored);
  EXPECT_TRUE(rb->stored);
  EXPECT_EQ(fake_->embeddings(), 2u);  // each its own call
  auto again = Call(Endpoint::kEmbeddings, Embeddings(R"(["q","p"])", model));
  ASSERT_OK(again);
  EXPECT_EQ(again->result, CacheResult::kHit);
  EXPECT_EQ(fake_->embeddings(), 2u);
}

TEST_F(CachedEndpointsTest, WaitersOfAFailedInputGoUpstreamThemselves) {
  // Every body fails once, 300 ms late. The bodies B will send on its own
  // ("r" as its lead, then "q" again after A fails) use their failure up
  // first, directly.
  const std::string model = "fake/flaky-500-1-after-300";
  for (const char* input : {"r", "q"}) {
    Request up;
    up.path = "/embeddings";
    up.body = R"({"model":")" + model + R"(","input":[")" + input + R"("]})";
    auto r = client_->AsyncSend(std::move(up), nullptr, asio::use_future).get();
    ASSERT_OK(r);
    ASSERT_EQ(r->status, 500);
  }
  // A leads "p" and "q" and fails; B joins "q" and leads "r".
  auto a = Start(Endpoint::kEmbeddings, Embeddings(R"(["p","q"])", model));
  auto b = Start(Endpoint::kEmbeddings, Embeddings(R"(["q","r"])", model));
  auto ra = a.get();
  auto rb = b.get();
  ASSERT_OK(ra);
  EXPECT_EQ(ra->status, 500);
  EXPECT_FALSE(ra->stored);
  ASSERT_OK(rb);
  ASSERT_EQ(rb->status, 200) << rb->body;
  const json::value jb = Json(rb->body);
  ASSERT_EQ(jb.at("data").as_array().size(), 2u);
  EXPECT_EQ(jb.at("data").at(1).at("index").to_number<int>(), 1);
  // Two warm-ups, A, B's lead and B's own "q".
  EXPECT_EQ(fake_->embeddings(), 5u);
  // "q" and "r" are stored; "p" is not.
  auto again = Call(Endpoint::kEmbeddings, Embeddings(R"(["r","q"])", model));
  ASSERT_OK(again);
  EXPECT_EQ(again->result, CacheResult::kHit);
}

TEST_F(CachedEndpointsTest, AnErrorWithSomeInputsCachedIsTheAnswer) {
  const std::string model = "fake/flaky-500-1";
  // "a" fails once, then is stored.
  auto first = Call(Endpoint::kEmbeddings, Embeddings(R"(["a"])", model));
  ASSERT_OK(first);
  EXPECT_EQ(first->status, 500);
  ASSERT_OK(Call(Endpoint::kEmbeddings, Embeddings(R"(["a"])", model)));
  // "a" cached, "b" fails upstream: the batch gets the upstream's error,
  // and saved nothing (it is sent again whole).
  const uint64_t saved_before = cached_->stats().tokens_saved;
  auto partial = Call(Endpoint::kEmbeddings, Embeddings(R"(["a","b"])", model));
  ASSERT_OK(partial);
  EXPECT_EQ(partial->status, 500);
  EXPECT_FALSE(partial->stored);
  EXPECT_EQ(cached_->stats().tokens_saved, saved_before);
  auto ok = Call(Endpoint::kEmbeddings, Embeddings(R"(["a","b"])", model));
  ASSERT_OK(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(Json(ok->body).at("data").as_array().size(), 2u);
}

TEST_F(CachedEndpointsTest, ATooLargeBatchIsRefusedBeforeAnythingIsSent) {
  std::string inputs = "[";
  for (int i = 0; i < 2049; ++i) {
    inputs += (i ? ",\"" : "\"") + std::to_string(i) + "\"";
  }
  inputs += "]";
  auto r = Call(Endpoint::kEmbeddings, Embeddings(inputs));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(fake_->embeddings(), 0u);
}

TEST_F(CachedEndpointsTest, SingleInputAndBatchShareEntries) {
  ASSERT_OK(Call(Endpoint::kEmbeddings, Embeddings(R"(["x","y"])")));
  auto single = Call(Endpoint::kEmbeddings, Embeddings(R"("y")"));
  ASSERT_OK(single);
  EXPECT_EQ(single->result, CacheResult::kHit);
  auto tokens = Call(Endpoint::kEmbeddings, Embeddings(R"([[1,2,3],[4]])"));
  ASSERT_OK(tokens);
  auto token = Call(Endpoint::kEmbeddings, Embeddings(R"([1,2,3])"));
  ASSERT_OK(token);
  EXPECT_EQ(token->result, CacheResult::kHit);
  EXPECT_EQ(Json(token->body).at("data").at(0).at("embedding"),
            Json(tokens->body).at("data").at(0).at("embedding"));
}

TEST_F(CachedEndpointsTest, EntriesRecordTheirEndpoint) {
  auto r = Call(Endpoint::kEmbeddings, Embeddings(R"("z")"));
  ASSERT_OK(r);
  ASSERT_TRUE(r->stored);
  auto digest = DigestFromHex(r->key_hex);
  ASSERT_OK(digest);
  auto e = cache_->Find(*digest);
  ASSERT_OK(e);
  ASSERT_NE(*e, nullptr);
  EXPECT_EQ(EntryEndpointValue((*e)->meta.flags),
            static_cast<uint8_t>(Endpoint::kEmbeddings));
}

TEST_F(CachedEndpointsTest, ResponsesStreamIsReplayedAsResponsesEvents) {
  const std::string body =
      R"({"model":"openai/gpt-4o-mini","temperature":0,"stream":true,)"
      R"("input":[{"role":"user","content":"hello"}]})";
  std::mutex mu;
  std::vector<std::string> live, replay;
  auto collect = [&mu](std::vector<std::string>* out) {
    return [&mu, out](std::string_view d) {
      std::lock_guard<std::mutex> lock(mu);
      out->emplace_back(d);
      return true;
    };
  };
  auto first = Call(Endpoint::kResponses, body, collect(&live));
  ASSERT_OK(first);
  EXPECT_EQ(first->result, CacheResult::kMiss);
  EXPECT_TRUE(first->stored) << first->not_stored_reason;
  auto second = Call(Endpoint::kResponses, body, collect(&replay));
  ASSERT_OK(second);
  EXPECT_EQ(second->result, CacheResult::kHit);
  ASSERT_FALSE(replay.empty());
  EXPECT_TRUE(IsTerminalEvent(Endpoint::kResponses, replay.back()));
  auto acc = MakeEventAccumulator(Endpoint::kResponses);
  for (const std::string& d : replay) EXPECT_OK(acc->Add(d));
  EXPECT_EQ(Json(acc->ToJson()), Json(first->body));
}

TEST_F(CachedEndpointsTest, MessagesErrorsAreNotStored) {
  const std::string body =
      R"({"model":"fake/fault-500","max_tokens":16,"temperature":0,)"
      R"("messages":[{"role":"user","content":"x"}]})";
  auto first = Call(Endpoint::kMessages, body);
  ASSERT_OK(first);
  EXPECT_EQ(first->status, 500);
  EXPECT_FALSE(first->stored);
  auto second = Call(Endpoint::kMessages, body);
  ASSERT_OK(second);
  EXPECT_EQ(second->result, CacheResult::kMiss);
  EXPECT_EQ(fake_->messages(), 2u);
}

TEST_F(CachedEndpointsTest, MessagesWithoutTemperatureBypass) {
  auto r = Call(Endpoint::kMessages,
                R"({"model":"anthropic/claude-sonnet-4.5","max_tokens":16,)"
                R"("messages":[{"role":"user","content":"x"}]})");
  ASSERT_OK(r);
  EXPECT_EQ(r->result, CacheResult::kBypass);
  EXPECT_EQ(r->bypass_reason, BypassReason::kNoTemperature);
}

}  // namespace
}  // namespace llmcache::net
