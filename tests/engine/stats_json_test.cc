// CacheStatsJson / ModelStatsJson: the one JSON shape of CacheStats, every
// member checked by name, kind and value.

#include "llmcache/stats_json.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "llmcache/cache.h"
#include "llmcache/options.h"
#include "llmcache/policy.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/test_keys.h"

namespace llmcache {
namespace {

namespace json = boost::json;
using ::llmcache::testing::TestKey;

json::object Parse(const std::string& text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  EXPECT_FALSE(ec) << text;
  EXPECT_TRUE(v.is_object()) << text;
  return v.is_object() ? v.as_object() : json::object();
}

std::vector<std::string> Keys(const json::object& o) {
  std::vector<std::string> keys;
  for (const auto& kv : o) keys.emplace_back(kv.key());
  return keys;
}

uint64_t U(const json::object& o, const char* name) {
  const json::value& v = o.at(name);
  EXPECT_TRUE(v.is_uint64() || v.is_int64()) << name;
  return v.to_number<uint64_t>();
}

double D(const json::object& o, const char* name) {
  const json::value& v = o.at(name);
  EXPECT_TRUE(v.is_double()) << name;
  return v.to_number<double>();
}

ModelStats SampleModel(std::string name, uint64_t base, bool own) {
  ModelStats m;
  m.model = std::move(name);
  m.entries = base + 1;
  m.bytes = base + 2;
  m.hits = base + 3;
  m.tokens_saved = base + 4;
  m.cost_saved_nanousd = 2'500'000'000;  // $2.5
  m.last_resolved_model = own ? "a/b-2025" : "";
  m.own_column_family = own;
  return m;
}

CacheStats SampleStats() {
  CacheStats s;
  s.hits = 30;
  s.misses = 10;
  s.expired = 4;
  s.inserts = 11;
  s.flushes = 2;
  s.evictions = 3;
  s.purged = 5;
  s.store_errors = 6;
  for (size_t i = 0; i < s.bypasses.size(); ++i) s.bypasses[i] = 100 + i;
  s.bypasses[0] = 0;  // kNone is never counted
  s.tokens_saved = 12345;
  s.cost_saved_nanousd = 1'250'000'000;  // $1.25
  s.entries = 7;
  s.bytes = 8000;
  s.disk_bytes = 9000;
  s.stored_bytes = 2000;
  s.memory_tier_entries = 12;
  s.memory_tier_bytes = 13000;
  s.persistent = true;
  s.models = {SampleModel("a/b", 10, true), SampleModel("c/d", 20, false)};
  return s;
}

TEST(StatsJsonTest, CacheStatsHasEveryMemberInOrder) {
  const CacheStats s = SampleStats();
  const json::object o = Parse(CacheStatsJson(s));
  EXPECT_EQ(Keys(o), (std::vector<std::string>{"hits",
                                               "misses",
                                               "expired",
                                               "hit_rate",
                                               "inserts",
                                               "flushes",
                                               "evictions",
                                               "purged",
                                               "store_errors",
                                               "bypasses",
                                               "bypasses_by_reason",
                                               "tokens_saved",
                                               "cost_saved_usd",
                                               "entries",
                                               "bytes",
                                               "disk_bytes",
                                               "stored_bytes",
                                               "compression_ratio",
                                               "memory_tier_entries",
                                               "memory_tier_bytes",
                                               "persistent",
                                               "models"}));
  EXPECT_EQ(U(o, "hits"), 30u);
  EXPECT_EQ(U(o, "misses"), 10u);
  EXPECT_EQ(U(o, "expired"), 4u);
  EXPECT_DOUBLE_EQ(D(o, "hit_rate"), 0.75);
  EXPECT_EQ(U(o, "inserts"), 11u);
  EXPECT_EQ(U(o, "flushes"), 2u);
  EXPECT_EQ(U(o, "evictions"), 3u);
  EXPECT_EQ(U(o, "purged"), 5u);
  EXPECT_EQ(U(o, "store_errors"), 6u);
  EXPECT_EQ(U(o, "tokens_saved"), 12345u);
  EXPECT_DOUBLE_EQ(D(o, "cost_saved_usd"), 1.25);
  EXPECT_EQ(U(o, "entries"), 7u);
  EXPECT_EQ(U(o, "bytes"), 8000u);
  EXPECT_EQ(U(o, "disk_bytes"), 9000u);
  EXPECT_EQ(U(o, "stored_bytes"), 2000u);
  EXPECT_DOUBLE_EQ(D(o, "compression_ratio"), 0.25);
  EXPECT_EQ(U(o, "memory_tier_entries"), 12u);
  EXPECT_EQ(U(o, "memory_tier_bytes"), 13000u);
  ASSERT_TRUE(o.at("persistent").is_bool());
  EXPECT_TRUE(o.at("persistent").as_bool());
}

TEST(StatsJsonTest, BypassesByReasonNamesEveryReasonButNone) {
  const CacheStats s = SampleStats();
  const json::object o = Parse(CacheStatsJson(s));
  const json::object& by = o.at("bypasses_by_reason").as_object();
  std::vector<std::string> expected_keys;
  uint64_t total = 0;
  for (size_t i = 1; i < s.bypasses.size(); ++i) {
    const std::string name(BypassReasonName(static_cast<BypassReason>(i)));
    expected_keys.push_back(name);
    EXPECT_EQ(U(by, name.c_str()), 100u + i) << name;
    total += s.bypasses[i];
  }
  EXPECT_EQ(Keys(by), expected_keys);
  EXPECT_FALSE(by.contains("none"));
  EXPECT_EQ(U(o, "bypasses"), total);
}

TEST(StatsJsonTest, ModelsHaveEveryMember) {
  const CacheStats s = SampleStats();
  const json::object o = Parse(CacheStatsJson(s));
  const json::array& models = o.at("models").as_array();
  ASSERT_EQ(models.size(), 2u);
  for (size_t i = 0; i < models.size(); ++i) {
    const ModelStats& want = s.models[i];
    const json::object& m = models[i].as_object();
    EXPECT_EQ(Keys(m),
              (std::vector<std::string>{
                  "model", "entries", "bytes", "hits", "tokens_saved",
                  "cost_saved_usd", "last_resolved_model", "own_column_family",
                  "provider_cache_read_tokens", "provider_cache_write_tokens",
                  "provider_cache_saved_usd",
                  "provider_cache_write_premium_usd", "drift_events"}));
    EXPECT_EQ(m.at("model").as_string(), want.model);
    EXPECT_EQ(U(m, "entries"), want.entries);
    EXPECT_EQ(U(m, "bytes"), want.bytes);
    EXPECT_EQ(U(m, "hits"), want.hits);
    EXPECT_EQ(U(m, "tokens_saved"), want.tokens_saved);
    EXPECT_DOUBLE_EQ(D(m, "cost_saved_usd"), 2.5);
    EXPECT_EQ(m.at("last_resolved_model").as_string(),
              want.last_resolved_model);
    EXPECT_EQ(m.at("own_column_family").as_bool(), want.own_column_family);
    // The same object on its own.
    EXPECT_EQ(Parse(ModelStatsJson(want)), m);
  }
}

TEST(StatsJsonTest, EmptyStats) {
  const json::object o = Parse(CacheStatsJson(CacheStats{}));
  EXPECT_EQ(U(o, "hits"), 0u);
  EXPECT_DOUBLE_EQ(D(o, "hit_rate"), 0.0);
  EXPECT_DOUBLE_EQ(D(o, "cost_saved_usd"), 0.0);
  EXPECT_EQ(U(o, "bypasses"), 0u);
  EXPECT_EQ(o.at("bypasses_by_reason").as_object().size(),
            static_cast<size_t>(BypassReason::kCount) - 1);
  EXPECT_FALSE(o.at("persistent").as_bool());
  EXPECT_TRUE(o.at("models").as_array().empty());
}

TEST(StatsJsonTest, LargeCountersStayExact) {
  CacheStats s;
  s.hits = UINT64_MAX;
  s.cost_saved_nanousd = -1'500'000'000;  // over-corrected deltas
  const json::object o = Parse(CacheStatsJson(s));
  EXPECT_EQ(o.at("hits").as_uint64(), UINT64_MAX);
  EXPECT_DOUBLE_EQ(D(o, "cost_saved_usd"), -1.5);
}

TEST(StatsJsonTest, PersistentFollowsTheCache) {
  CacheOptions memory;
  auto mem = Cache::Open(memory);
  ASSERT_OK(mem.status());
  auto mem_stats = (*mem)->GetStats();
  ASSERT_OK(mem_stats.status());
  EXPECT_FALSE(mem_stats->persistent);
  EXPECT_FALSE(Parse(CacheStatsJson(*mem_stats)).at("persistent").as_bool());

  testing::TempDir dir;
  CacheOptions disk;
  disk.path = dir.path() + "/db";
  disk.maintenance_interval_ms = 0;
  auto db = Cache::Open(disk);
  ASSERT_OK(db.status());
  InsertOptions io;
  io.resolved_model = "m/a-2025";
  ASSERT_OK((*db)->Insert(TestKey("m/a", 1), "body", io));
  auto db_stats = (*db)->GetStats();
  ASSERT_OK(db_stats.status());
  EXPECT_TRUE(db_stats->persistent);
  const json::object o = Parse(CacheStatsJson(*db_stats));
  EXPECT_TRUE(o.at("persistent").as_bool());
  EXPECT_EQ(U(o, "inserts"), 1u);
  const json::array& models = o.at("models").as_array();
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].at("model").as_string(), "m/a");
  EXPECT_EQ(models[0].at("entries").to_number<uint64_t>(), 1u);
  EXPECT_EQ(models[0].at("last_resolved_model").as_string(), "m/a-2025");
  EXPECT_TRUE(models[0].at("own_column_family").as_bool());
}

}  // namespace
}  // namespace llmcache
