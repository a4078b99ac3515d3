// CachedClient over a shared tier: what the tier's callbacks hold, and where
// the pipeline's continuations run. A tier answers on its own I/O thread
// and may keep a callback object for a while after calling it (RedisTier's
// client destroys a command's callback after the reply's handling); the
// request must be done with it by then: a client whose last reference
// dropped on the tier's thread would tear down its HTTP client there, maybe
// after the io_context it was made for.

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <vector>

#include "fake_openrouter.h"
#include "llmcache/clock.h"
#include "llmcache/net/cached_client.h"
#include "llmcache/net/shared_tier.h"
#include "testing/io_loop.h"
#include "testing/status_matchers.h"
#include "testing/wait.h"

namespace llmcache::net {
namespace {

namespace asio = boost::asio;
using ::llmcache::testing::WaitFor;

// Answers on a thread of its own: Get with `entry` (null: a miss),
// AcquireLead with the lead. Keeps every callback object it was given,
// called, until Drop(). flush_count() is 0 for its first `flush_at` calls,
// then 1: a flush learned at that point.
class HoldingTier final : public SharedTier {
 public:
  explicit HoldingTier(std::shared_ptr<const Entry> entry,
                       uint64_t flush_at = UINT64_MAX)
      : entry_(std::move(entry)), flush_at_(flush_at) {}
  ~HoldingTier() override {
    pool_.join();
    Drop();
  }

  void Get(const RequestKey&, GetCallback done) override {
    Answer(std::move(done), Result<std::shared_ptr<const Entry>>(entry_));
  }
  void Put(const RequestKey&, std::shared_ptr<const Entry>) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++puts_;
  }
  void AcquireLead(const RequestKey&, std::function<void(Lead)> done) override {
    Answer(std::move(done), Lead{LeadOutcome::kLeader, "token", nullptr});
  }
  void Release(const RequestKey&, const std::string&) override {}
  void Record(std::string_view, SharedOutcome, const Usage&) override {}
  Result<uint64_t> FlushModel(std::string_view) override { return 1; }
  Result<uint64_t> FlushAll() override { return 1; }
  Result<bool> PurgeKey(const Digest&) override { return false; }
  void SetFlushListener(std::function<void(std::string_view)>) override {}
  SharedTierHealth Health() const override { return {}; }
  uint64_t flush_count() const override {
    return flush_count_calls_.fetch_add(1) >= flush_at_ ? 1 : 0;
  }
  uint64_t flush_count_calls() const { return flush_count_calls_.load(); }

  size_t held() {
    std::lock_guard<std::mutex> lock(mu_);
    return held_.size();
  }
  size_t puts() {
    std::lock_guard<std::mutex> lock(mu_);
    return puts_;
  }
  void Drop() {
    std::vector<std::shared_ptr<void>> held;
    std::lock_guard<std::mutex> lock(mu_);
    held.swap(held_);
  }

 private:
  template <typename Callback, typename Arg>
  void Answer(Callback done, Arg arg) {
    auto kept = std::make_shared<Callback>(std::move(done));
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_.push_back(kept);
    }
    asio::post(pool_, [kept, arg = std::move(arg)]() mutable {
      (*kept)(std::move(arg));
    });
  }

  const std::shared_ptr<const Entry> entry_;
  const uint64_t flush_at_;
  mutable std::atomic<uint64_t> flush_count_calls_{0};
  asio::thread_pool pool_{1};
  std::mutex mu_;
  std::vector<std::shared_ptr<void>> held_;
  size_t puts_ = 0;
};

class CachedSharedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto f = fake::FakeOpenRouter::Start(fake::FakeOptions{});
    ASSERT_OK(f);
    fake_ = std::move(*f);
  }

  std::shared_ptr<CachedClient> Make(std::shared_ptr<SharedTier> tier,
                                     std::shared_ptr<Cache>* local = nullptr) {
    auto cache = Cache::Open(CacheOptions{});  // memory only
    EXPECT_OK(cache);
    auto shared_cache = std::shared_ptr<Cache>(std::move(*cache));
    if (local != nullptr) *local = shared_cache;
    ClientOptions o;
    o.base_url = fake_->base_url();
    o.api_key = "k";
    auto client = Client::Create(loop_.ioc().get_executor(), o);
    EXPECT_OK(client);
    CachedClientOptions cco;
    cco.shared = std::move(tier);
    cco.log = [](std::string_view) {};
    return CachedClient::Create(shared_cache, *client, cco);
  }

  // The answer, and whether its callback ran on the client's io_context.
  Result<CachedResponse> Call(CachedClient& c, const std::string& body,
                              Endpoint endpoint, bool* on_loop,
                              bool only_if_cached = false) {
    CachedRequest req;
    req.endpoint = endpoint;
    req.body = body;
    req.only_if_cached = only_if_cached;
    auto p = std::make_shared<std::promise<Result<CachedResponse>>>();
    auto answer = p->get_future();
    auto ioc = &loop_.ioc();
    c.Complete(std::move(req), nullptr,
               [p, ioc, on_loop](Result<CachedResponse> r) {
                 *on_loop = ioc->get_executor().running_in_this_thread();
                 p->set_value(std::move(r));
               });
    if (answer.wait_for(std::chrono::seconds(30)) !=
        std::future_status::ready) {
      return DeadlineExceededError("no answer");
    }
    return answer.get();
  }

  // Drops the test's reference: true once the client is gone (nothing else
  // holds it, the tier least of all).
  static bool Released(std::shared_ptr<CachedClient>& client) {
    std::weak_ptr<CachedClient> weak = client;
    client.reset();
    return WaitFor([&] { return weak.expired(); });
  }

  // Returns once what the loop was running when called has finished (the
  // loop has one thread).
  void DrainLoop() {
    std::promise<void> ran;
    asio::post(loop_.ioc(), [&ran] { ran.set_value(); });
    ran.get_future().wait();
  }

  ::llmcache::testing::IoLoop loop_{1};
  std::unique_ptr<fake::FakeOpenRouter> fake_;
};

std::shared_ptr<Entry> SharedEntry() {
  auto entry = std::make_shared<Entry>();
  entry->meta.model = "m/shared";
  entry->meta.created_ms = Clock::System()->NowMillis();
  entry->body = R"({"id":"x","object":"chat.completion","model":"m/shared",)"
                R"("choices":[{"index":0,"message":{"role":"assistant",)"
                R"("content":"hello"},"finish_reason":"stop"}]})";
  return entry;
}

constexpr char kChat[] = R"({"model":"m/shared","temperature":0,)"
                         R"("messages":[{"role":"user","content":"hi"}]})";

TEST_F(CachedSharedTest, AMissLeavesTheTierHoldingNothingOfTheClient) {
  auto tier = std::make_shared<HoldingTier>(nullptr);
  auto client = Make(tier);
  bool on_loop = false;
  auto r = Call(*client, kChat, Endpoint::kChatCompletions, &on_loop);
  ASSERT_OK(r);
  EXPECT_EQ(r->result, CacheResult::kMiss);
  EXPECT_TRUE(r->stored) << r->not_stored_reason;
  EXPECT_TRUE(on_loop);
  EXPECT_EQ(tier->held(), 2u);  // the GET and the lead, both called
  EXPECT_TRUE(WaitFor([&] { return tier->puts() == 1; }));
  // The tier still holds both callbacks: they must not hold the client.
  EXPECT_TRUE(Released(client));
  EXPECT_EQ(tier->held(), 2u);
}

TEST_F(CachedSharedTest, ASharedHitIsAnsweredOnTheClientsExecutor) {
  auto entry = SharedEntry();
  auto tier = std::make_shared<HoldingTier>(entry);
  auto client = Make(tier);
  bool on_loop = false;
  auto r = Call(*client, kChat, Endpoint::kChatCompletions, &on_loop);
  ASSERT_OK(r);
  EXPECT_EQ(r->result, CacheResult::kHit);
  EXPECT_EQ(r->body, entry->body);
  // Not on the tier's thread: the caller's callback may block or own I/O
  // objects of its own io_context.
  EXPECT_TRUE(on_loop);
  EXPECT_EQ(fake_->completions(), 0u);
  // The local fill ran; then nothing but the test holds the client.
  EXPECT_TRUE(WaitFor([&] { return client->stats().shared_fills == 1; }));
  EXPECT_TRUE(Released(client));
  EXPECT_EQ(tier->held(), 1u);
}

TEST(NotCachedTest, OnlyItsOwnErrorIsNotCached) {
  EXPECT_TRUE(IsNotCached(NotCachedError("not cached")));
  EXPECT_FALSE(IsNotCached(NotFoundError("no price for model m/x")));
  EXPECT_FALSE(IsNotCached(UnavailableError(
      "x, and Cache-Control: only-if-cached forbids asking upstream")));
}

// only-if-cached asks the shared tier (a GET, never a lead) and nothing
// upstream.
TEST_F(CachedSharedTest, OnlyIfCachedAsksTheTierAndNothingElse) {
  auto empty = std::make_shared<HoldingTier>(nullptr);
  auto client = Make(empty);
  bool on_loop = false;
  auto miss = Call(*client, kChat, Endpoint::kChatCompletions, &on_loop,
                   /*only_if_cached=*/true);
  ASSERT_FALSE(miss.ok());
  EXPECT_TRUE(IsNotCached(miss.status())) << miss.status();
  EXPECT_TRUE(on_loop);
  EXPECT_EQ(empty->held(), 1u);  // the GET alone
  auto batch = Call(*client, R"({"model":"m/emb","input":["one","two"]})",
                    Endpoint::kEmbeddings, &on_loop, /*only_if_cached=*/true);
  ASSERT_FALSE(batch.ok());
  EXPECT_TRUE(IsNotCached(batch.status())) << batch.status();
  EXPECT_EQ(empty->held(), 3u);  // and one GET per input
  EXPECT_EQ(fake_->completions(), 0u);
  EXPECT_EQ(fake_->embedded_items(), 0u);
  EXPECT_EQ(client->stats().upstream_errors, 0u);
  EXPECT_TRUE(Released(client));

  auto entry = SharedEntry();
  auto holding = std::make_shared<HoldingTier>(entry);
  client = Make(holding);
  auto hit = Call(*client, kChat, Endpoint::kChatCompletions, &on_loop,
                  /*only_if_cached=*/true);
  ASSERT_OK(hit);
  EXPECT_EQ(hit->result, CacheResult::kHit);
  EXPECT_EQ(hit->body, entry->body);
  EXPECT_EQ(fake_->completions(), 0u);
  EXPECT_TRUE(WaitFor([&] { return client->stats().shared_fills == 1; }));
  EXPECT_TRUE(Released(client));
}

TEST_F(CachedSharedTest, AnEmbeddingsBatchLeavesTheTierHoldingNothing) {
  auto tier = std::make_shared<HoldingTier>(nullptr);
  auto client = Make(tier);
  bool on_loop = false;
  auto r = Call(*client, R"({"model":"m/emb","input":["one","two","three"]})",
                Endpoint::kEmbeddings, &on_loop);
  ASSERT_OK(r);
  EXPECT_EQ(r->result, CacheResult::kMiss);
  EXPECT_TRUE(on_loop);
  EXPECT_EQ(fake_->embedded_items(), 3u);
  EXPECT_GE(tier->held(), 3u);  // one GET per input
  EXPECT_TRUE(Released(client));
}

// An entry read from the shared tier before a flush must not end in the
// local tiers after it: flush_count() is read before the GET (call 0),
// before the local write (call 1) and after it (call 2).
TEST_F(CachedSharedTest, AFillRacingAFlushIsDroppedOrTakenBack) {
  const auto entry = SharedEntry();
  struct Case {
    uint64_t flush_at;
    bool kept;
  };
  for (const Case c : {Case{1, false}, Case{2, false}, Case{3, true}}) {
    SCOPED_TRACE("flush learned at call " + std::to_string(c.flush_at));
    auto tier = std::make_shared<HoldingTier>(entry, c.flush_at);
    std::shared_ptr<Cache> local;
    auto client = Make(tier, &local);
    bool on_loop = false;
    auto r = Call(*client, kChat, Endpoint::kChatCompletions, &on_loop);
    ASSERT_OK(r);
    EXPECT_EQ(r->result, CacheResult::kHit);  // read before the flush
    // The fill reads the count once (dropped) or twice (written).
    const uint64_t calls = c.flush_at == 1 ? 2 : 3;
    ASSERT_TRUE(WaitFor([&] { return tier->flush_count_calls() >= calls; }));
    DrainLoop();
    EXPECT_EQ(tier->flush_count_calls(), calls);
    Result<Digest> digest = DigestFromHex(r->key_hex);
    ASSERT_OK(digest);
    Result<std::shared_ptr<const Entry>> found = local->Find(*digest);
    ASSERT_OK(found);
    EXPECT_EQ(*found != nullptr, c.kept);
    EXPECT_EQ(client->stats().shared_fills, c.kept ? 1u : 0u);
  }
}

}  // namespace
}  // namespace llmcache::net
