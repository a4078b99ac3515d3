#include "llmcache/purge.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llmcache/cache.h"
#include "llmcache/clock.h"
#include "testing/status_matchers.h"
#include "testing/test_keys.h"

namespace llmcache {
namespace {

using ::llmcache::testing::StatusIs;
using ::llmcache::testing::TestKey;
using ::testing::HasSubstr;

TEST(ParseDurationTest, ParsesUnitsAndRejectsJunk) {
  EXPECT_EQ(*ParseDuration("90s"), 90'000);
  EXPECT_EQ(*ParseDuration("15m"), 900'000);
  EXPECT_EQ(*ParseDuration("2h"), 7'200'000);
  EXPECT_EQ(*ParseDuration("7d"), 604'800'000);
  EXPECT_EQ(*ParseDuration("1w"), 7 * 86'400'000LL);
  EXPECT_EQ(*ParseDuration("1h30m"), 5'400'000);
  EXPECT_EQ(*ParseDuration("250ms"), 250);
  for (const char* bad : {"", "90", "-5s", "h", "5y", "1.5h", "1h30", " 5s",
                          "99999999999999999d", "999999999999w"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
  EXPECT_THAT(ParseDuration("3 fortnights").status().message(),
              HasSubstr("unknown unit"));
  EXPECT_THAT(ParseDuration("9223372036854775807ms").status().message(),
              HasSubstr("too large"));
}

TEST(PurgeSelectorTest, ParsesEveryKind) {
  EXPECT_EQ(ParsePurgeSelector("model", "openai/gpt-4o")->kind,
            PurgeKind::kModel);
  EXPECT_EQ(ParsePurgeSelector("all", "")->kind, PurgeKind::kAll);
  EXPECT_EQ(ParsePurgeSelector("all", "1")->kind, PurgeKind::kAll);
  EXPECT_EQ(ParsePurgeSelector("namespace", "v2")->kind, PurgeKind::kNamespace);
  EXPECT_EQ(ParsePurgeSelector("expired", "true")->kind, PurgeKind::kExpired);
  auto older = ParsePurgeSelector("older-than", "2h");
  ASSERT_OK(older);
  EXPECT_EQ(older->kind, PurgeKind::kOlderThan);
  EXPECT_EQ(older->age_ms, 7'200'000);
  EXPECT_EQ(older->name, "older_than");
  const RequestKey k = TestKey("m/x", 1);
  auto key = ParsePurgeSelector("key", k.Hex());
  ASSERT_OK(key);
  EXPECT_EQ(key->digest, k.digest);
  EXPECT_THAT(key->Describe(), HasSubstr(k.Hex()));
  EXPECT_THAT(ParsePurgeSelector("model", "*"),
              StatusIs(StatusCode::kInvalidArgument, "all=1"));
}

// A model's family holds its :variants too; the description, which purge
// asks to confirm, names the base model whichever one was given.
TEST(PurgeSelectorTest, ModelDescriptionNamesTheBaseAndItsVariants) {
  EXPECT_EQ(ParsePurgeSelector("model", "vx/base")->Describe(),
            "every entry of model vx/base and of its :variants");
  EXPECT_EQ(ParsePurgeSelector("model", "vx/base:free")->Describe(),
            "every entry of model vx/base and of its :variants "
            "(vx/base:free is one)");
}

TEST(PurgeSelectorTest, RejectsBadSelectors) {
  EXPECT_FALSE(ParsePurgeSelector("model", "").ok());
  EXPECT_FALSE(ParsePurgeSelector("namespace", "").ok());
  EXPECT_FALSE(ParsePurgeSelector("all", "0").ok());
  EXPECT_FALSE(ParsePurgeSelector("expired", "yes please").ok());
  EXPECT_FALSE(ParsePurgeSelector("key", "abc").ok());
  EXPECT_FALSE(ParsePurgeSelector("older_than", "soon").ok());
  // A number without a unit is refused, never taken for seconds (CLI and
  // admin).
  EXPECT_THAT(ParsePurgeSelector("older_than", "30").status().message(),
              HasSubstr("has no unit"));
  EXPECT_THAT(ParsePurgeSelector("everything", "1").status().message(),
              HasSubstr("unknown purge selector"));
}

TEST(PurgeTest, RemovesWhatTheSelectorNames) {
  FakeClock clock(1'000'000'000);
  CacheOptions o;  // memory mode
  o.clock = &clock;
  auto cache = Cache::Open(o);
  ASSERT_OK(cache);
  Cache& c = **cache;
  InsertOptions plain;
  InsertOptions ns;
  ns.ns = "docs";
  InsertOptions short_lived;
  short_lived.ttl_ms = 1'000;
  ASSERT_OK(c.Insert(TestKey("m/a", 1), "{}", plain));
  ASSERT_OK(c.Insert(TestKey("m/a", 2), "{}", ns));
  ASSERT_OK(c.Insert(TestKey("m/a", 3), "{}", short_lived));
  clock.Advance(3'600'000);
  ASSERT_OK(c.Insert(TestKey("m/b", 1), "{}", plain));
  ASSERT_OK(c.Insert(TestKey("m/b", 2), "{}", plain));
  ASSERT_OK(c.Insert(TestKey("m/c", 1), "{}", plain));

  auto purge = [&](std::string_view name, std::string_view value) {
    auto s = ParsePurgeSelector(name, value);
    EXPECT_OK(s);
    auto n = Purge(c, *s);
    EXPECT_OK(n);
    return n.ok() ? *n : 999;
  };
  EXPECT_EQ(purge("key", TestKey("m/a", 1).Hex()), 1u);
  EXPECT_EQ(purge("key", TestKey("m/a", 1).Hex()), 0u);
  EXPECT_EQ(purge("namespace", "docs"), 1u);
  EXPECT_EQ(purge("expired", ""), 1u);
  EXPECT_EQ(purge("model", "m/b:variant"), 2u);
  EXPECT_EQ(purge("older_than", "30m"), 0u);
  clock.Advance(3'600'000);
  EXPECT_EQ(purge("older_than", "30m"), 1u);
  ASSERT_OK(c.Insert(TestKey("m/d", 1), "{}", plain));
  EXPECT_EQ(purge("all", ""), 1u);
  auto left = c.Lookup(TestKey("m/d", 1));
  ASSERT_OK(left);
  EXPECT_FALSE(left->hit());
}

}  // namespace
}  // namespace llmcache
