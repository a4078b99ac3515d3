// The on-disk format: round trips, rejection of malformed values, names.

#include "format.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "testing/status_matchers.h"

namespace llmcache {
namespace {

using ::llmcache::testing::StatusIs;

EntryMeta SampleMeta() {
  EntryMeta m;
  m.flags = kEntryFlagFromStream | kEntryFlagToolCalls;
  m.created_ms = 1'700'000'000'123;
  m.expires_ms = 1'700'000'600'123;
  m.usage = Usage{1000, 200, 300, 40, 123456789};
  m.model = "anthropic/claude-sonnet-4.5:floor";
  m.resolved_model = "anthropic/claude-sonnet-4.5-20250929";
  m.ns = "prod-v3";
  return m;
}

TEST(FormatTest, EntryRoundTrips) {
  std::string value;
  ASSERT_OK(EncodeEntry(SampleMeta(), R"({"id":"gen-1"})", &value));
  Entry e;
  ASSERT_OK(DecodeEntry(value, &e));
  EXPECT_EQ(e.meta, SampleMeta());
  EXPECT_EQ(e.body, R"({"id":"gen-1"})");
  int64_t created = 0, expires = 0;
  ASSERT_TRUE(PeekEntryTimes(value, &created, &expires));
  EXPECT_EQ(created, SampleMeta().created_ms);
  EXPECT_EQ(expires, SampleMeta().expires_ms);
}

TEST(FormatTest, LayoutConstantsAreStable) {
  // These bytes are on users' disks: a change here is a format break.
  std::string value;
  EntryMeta m;
  m.created_ms = 0x0102030405060708;
  ASSERT_OK(EncodeEntry(m, "B", &value));
  ASSERT_EQ(value.size(), kEntryFixedHeaderSize + 6 + 1);
  EXPECT_EQ(value[0], '\x01');
  EXPECT_EQ(static_cast<uint8_t>(value[2]), kEntryFixedHeaderSize + 6);
  EXPECT_EQ(value[4], '\x08');  // created_ms, little endian
  EXPECT_EQ(value[11], '\x01');
  EXPECT_EQ(value.back(), 'B');
}

TEST(FormatTest, EveryTruncationIsDataLossNotACrash) {
  std::string value;
  ASSERT_OK(EncodeEntry(SampleMeta(), "body", &value));
  const size_t header =
      static_cast<uint8_t>(value[2]) | (static_cast<uint8_t>(value[3]) << 8);
  for (size_t n = 0; n < header; ++n) {
    Entry e;
    EXPECT_THAT(DecodeEntry(std::string_view(value).substr(0, n), &e),
                StatusIs(StatusCode::kDataLoss))
        << n;
  }
}

TEST(FormatTest, InconsistentHeaderIsDataLoss) {
  std::string value;
  ASSERT_OK(EncodeEntry(SampleMeta(), "body", &value));
  std::string bad = value;
  bad[2] = '\xff';
  bad[3] = '\xff';
  Entry e;
  EXPECT_THAT(DecodeEntry(bad, &e), StatusIs(StatusCode::kDataLoss));
  bad = value;
  bad[kEntryFixedHeaderSize] = '\x7f';  // model length beyond header
  EXPECT_THAT(DecodeEntry(bad, &e), StatusIs(StatusCode::kDataLoss));
  bad = value;
  bad[0] = '\0';
  EXPECT_THAT(DecodeEntry(bad, &e), StatusIs(StatusCode::kDataLoss));
}

TEST(FormatTest, NewerVersionIsFailedPrecondition) {
  std::string value;
  ASSERT_OK(EncodeEntry(SampleMeta(), "body", &value));
  value[0] = '\x02';
  Entry e;
  EXPECT_THAT(DecodeEntry(value, &e),
              StatusIs(StatusCode::kFailedPrecondition, "newer"));
  int64_t c, x;
  EXPECT_FALSE(PeekEntryTimes(value, &c, &x));
}

TEST(FormatTest, OverlongStringsAreRejected) {
  EntryMeta m = SampleMeta();
  m.model.assign(70000, 'm');
  std::string value;
  EXPECT_THAT(EncodeEntry(m, "b", &value),
              StatusIs(StatusCode::kInvalidArgument));
  // Together: exactly kMaxEntryMetadataBytes fit (and decode), one more not,
  // as EntryMetadataFits says for the importers.
  m.model.assign(30000, 'm');
  m.resolved_model.assign(30000, 'r');
  m.ns.assign(kMaxEntryMetadataBytes - 60000, 'n');
  ASSERT_TRUE(
      EntryMetadataFits(m.model.size(), m.resolved_model.size(), m.ns.size()));
  value.clear();
  ASSERT_OK(EncodeEntry(m, "b", &value));
  auto decoded = DecodeEntryValue(value);
  ASSERT_OK(decoded);
  EXPECT_EQ(decoded->meta.ns, m.ns);
  m.ns.push_back('n');
  EXPECT_FALSE(
      EntryMetadataFits(m.model.size(), m.resolved_model.size(), m.ns.size()));
  EXPECT_THAT(EncodeEntry(m, "b", &value),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_FALSE(EntryMetadataFits(SIZE_MAX, 1, 1));  // no wrap-around
}

TEST(FormatTest, ColumnFamilyNamesAreReversible) {
  const std::vector<std::string> models = {"openai/gpt-4o", "weird/模型 x",
                                           "a%b", std::string("\0\xff", 2), ""};
  for (const std::string& model : models) {
    const std::string name = ModelToColumnFamilyName(model);
    for (char c : name) {
      EXPECT_TRUE(isalnum(static_cast<unsigned char>(c)) || c == '.' ||
                  c == '_' || c == '-' || c == '%')
          << name;
    }
    auto back = ColumnFamilyNameToModel(name);
    ASSERT_OK(back);
    EXPECT_EQ(*back, model);
  }
  EXPECT_EQ(ModelToColumnFamilyName("openai/gpt-4o"), "m.openai%2Fgpt-4o");
  EXPECT_THAT(ColumnFamilyNameToModel("llmcache.meta"),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ColumnFamilyNameToModel("m.bad%2"),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ColumnFamilyNameToModel("m.bad%zz"),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(FormatTest, ModelPrefixesArePrefixFree) {
  std::string a, b;
  AppendModelPrefix("ab", &a);
  AppendModelPrefix("abc", &b);
  EXPECT_NE(b.compare(0, a.size(), a), 0);
  std::string long_model(300, 'q');
  std::string p;
  AppendModelPrefix(long_model, &p);
  p += "rest";
  std::string_view in = p;
  std::string_view model;
  ASSERT_TRUE(ConsumeModelPrefix(&in, &model));
  EXPECT_EQ(model, long_model);
  EXPECT_EQ(in, "rest");
  std::string_view truncated = std::string_view(p).substr(0, 10);
  EXPECT_FALSE(ConsumeModelPrefix(&truncated, &model));
}

TEST(FormatTest, StoredSizeIsTheEncodedSize) {
  Entry e;
  e.meta = SampleMeta();
  e.body = R"({"id":"gen-1","choices":[]})";
  std::string value;
  ASSERT_OK(EncodeEntry(e.meta, e.body, &value));
  EXPECT_EQ(StoredSize(e), value.size());
  EXPECT_EQ(StoredSize(Entry{}), kEntryFixedHeaderSize + 6);
}

TEST(FormatTest, TimeIndexKeyLayout) {
  Digest d{};
  for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<uint8_t>(i + 1);
  const std::string k = TimeIndexKey(0x0102030405060708, "m/a", d);
  ASSERT_EQ(k.size(), 8u + 1u + 3u + kDigestSize);
  EXPECT_EQ(ReadBigEndian64(k.data()), 0x0102030405060708u);
  EXPECT_EQ(k[0], '\x01');  // big endian: sorts by age
  std::string_view rest = std::string_view(k).substr(8);
  std::string_view model;
  ASSERT_TRUE(ConsumeModelPrefix(&rest, &model));
  EXPECT_EQ(model, "m/a");
  EXPECT_EQ(rest, std::string_view(reinterpret_cast<const char*>(d.data()),
                                   d.size()));
  EXPECT_LT(TimeIndexKey(1, "z", d), TimeIndexKey(2, "a", d));
}

TEST(FormatTest, PersistentNamesAreStable) {
  // Written into users' databases: a change here loses their data.
  EXPECT_EQ(kMetaColumnFamily, "llmcache.meta");
  EXPECT_EQ(kTimeColumnFamily, "llmcache.time");
  EXPECT_EQ(kOverflowColumnFamily, "llmcache.overflow");
  EXPECT_EQ(kModelColumnFamilyPrefix, "m.");
  EXPECT_EQ(kAddOperatorName, "llmcache.Add64");
  EXPECT_EQ(kTtlFilterFactoryName, "llmcache.TtlFilterFactory");
  EXPECT_EQ(kFormatKey, "format");
  EXPECT_EQ(kCfMetaPrefix, "cf/");
  EXPECT_EQ(kResolvedPrefix, "resolved/");
  EXPECT_EQ(kStatPrefix, "stat/");
  EXPECT_EQ(kBypassStatPrefix, "stat/bypass/");
  EXPECT_EQ(kModelStatPrefix, "mstat/");
  EXPECT_EQ(ModelStatKey("bytes", "a/b"), "mstat/bytes/a/b");
  EXPECT_EQ(
      std::vector<std::string_view>(kCounterNames.begin(), kCounterNames.end()),
      (std::vector<std::string_view>{
          "hits", "misses", "expired", "inserts", "flushes", "evictions",
          "purged", "store_errors", "tokens_saved", "cost_saved_nanousd"}));
  EXPECT_EQ(std::vector<std::string_view>(kModelCounterNames.begin(),
                                          kModelCounterNames.end()),
            (std::vector<std::string_view>{
                "hits", "entries", "bytes", "tokens_saved",
                "cost_saved_nanousd", "provider_cache_read_tokens",
                "provider_cache_write_tokens", "provider_cache_saved_nanousd",
                "provider_cache_write_premium_nanousd", "drift_events"}));
  EXPECT_EQ(std::vector<std::string_view>(kBypassReasonNames.begin(),
                                          kBypassReasonNames.end()),
            (std::vector<std::string_view>{
                "none", "no_temperature", "non_zero_temperature", "web_search",
                "drifting_model", "debug", "mode_never", "previous_response",
                "store_requested", "background", "stored_prompt"}));
}

}  // namespace
}  // namespace llmcache
