// Compression of the entry column families (CacheOptions::compression):
// entries survive compaction and reopening byte-exact, compacted files are
// ZSTD with a dictionary and smaller than the entries, and a database
// written with the previous layout (LZ4, ZSTD at the bottom, no dictionary)
// opens, reads, and is rewritten with dictionaries by a compaction. Also
// where the table files carry filters.

#include <gtest/gtest.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_reader.h>
#include <rocksdb/table_properties.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "format.h"
#include "llmcache/cache.h"
#include "rocks_cache.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "testing/test_keys.h"

namespace llmcache {
namespace {

using ::llmcache::testing::SplitMix64;
using ::llmcache::testing::TestKey;

constexpr std::string_view kMainModel = "openai/gpt-4o-mini";
constexpr std::string_view kOtherModel = "anthropic/claude-sonnet-4.5";

// A chat completion of varied English-like prose: the same JSON scaffolding
// in every entry, different words, lengths and ids (400..2400 bytes).
std::string Completion(uint64_t i) {
  static constexpr std::array<std::string_view, 48> kWords = {
      "the",     "cache",    "model",   "request",  "answer",    "because",
      "memory",  "server",   "people",  "through",  "between",   "simple",
      "example", "question", "however", "database", "response",  "latency",
      "first",   "would",    "their",   "which",    "could",     "result",
      "explain", "detail",   "problem", "solution", "language",  "document",
      "version", "careful",  "little",  "another",  "important", "together",
      "water",   "number",   "should",  "around",   "before",    "without",
      "write",   "again",    "under",   "always",   "thought",   "house",
  };
  uint64_t state = i * 0x9E3779B97F4A7C15ull + 17;
  std::string text;
  const size_t target = 400 + SplitMix64(&state) % 2000;
  bool start = true;
  while (text.size() < target) {
    std::string word(kWords[SplitMix64(&state) % kWords.size()]);
    if (start) word[0] = static_cast<char>(word[0] - 'a' + 'A');
    if (!start) text += ' ';
    text += word;
    start = SplitMix64(&state) % 11 == 0;
    if (start) text += SplitMix64(&state) % 4 == 0 ? ".\\n\\n" : ".";
  }
  const uint64_t prompt = SplitMix64(&state) % 3000;
  const uint64_t completion = SplitMix64(&state) % 500;
  return R"({"id":"chatcmpl-)" + std::to_string(SplitMix64(&state)) +
         R"(","object":"chat.completion","created":)" +
         std::to_string(1'700'000'000 + i) +
         R"(,"model":"openai/gpt-4o-mini","choices":[{"index":0,"message":)"
         R"({"role":"assistant","content":")" +
         text + R"("},"finish_reason":"stop"}],"usage":{"prompt_tokens":)" +
         std::to_string(prompt) + R"(,"completion_tokens":)" +
         std::to_string(completion) + R"(,"total_tokens":)" +
         std::to_string(prompt + completion) + "}}";
}

// Entry i belongs to the main model (its own column family) or, one in
// four, to the other model (the overflow family: max_model_column_families
// is 1 in these tests).
RequestKey KeyOf(uint64_t i) {
  return TestKey(std::string(i % 4 == 3 ? kOtherModel : kMainModel), i);
}

// What the table properties and the file itself say about one SST file.
struct SstFile {
  std::string column_family;
  std::string compression;          // compression_name, e.g. "ZSTD"
  std::string compression_options;  // "...; max_dict_bytes=131072; ..."
  bool has_dictionary = false;      // a "rocksdb.compression_dict" block
};

// Every live SST file of the entry column families (model and overflow).
std::vector<SstFile> EntryFiles(rocksdb::DB* db) {
  std::vector<rocksdb::LiveFileMetaData> live;
  db->GetLiveFilesMetaData(&live);
  std::vector<SstFile> out;
  for (const rocksdb::LiveFileMetaData& f : live) {
    if (f.column_family_name != kOverflowColumnFamily &&
        !f.column_family_name.starts_with(kModelColumnFamilyPrefix)) {
      continue;
    }
    const std::string path = f.directory + "/" + f.relative_filename;
    SstFile s;
    s.column_family = f.column_family_name;
    rocksdb::Options o;
    rocksdb::SstFileReader reader(o);
    rocksdb::Status st = reader.Open(path);
    EXPECT_TRUE(st.ok()) << path << ": " << st.ToString();
    if (!st.ok()) continue;
    std::shared_ptr<const rocksdb::TableProperties> p =
        reader.GetTableProperties();
    s.compression = p->compression_name;
    s.compression_options = p->compression_options;
    // The dictionary is a meta block of its own, named in the file's
    // (uncompressed) metaindex block; files without one do not name it.
    std::ifstream in(path, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    s.has_dictionary =
        bytes.str().find("rocksdb.compression_dict") != std::string::npos;
    out.push_back(std::move(s));
  }
  return out;
}

class RocksCompressionTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kEntries = 3000;

  CacheOptions Options(StoreCompression c) const {
    CacheOptions o;
    o.path = dir_.path() + "/db";
    o.default_ttl_ms = 0;
    o.maintenance_interval_ms = 0;
    o.memory_tier_bytes = 0;  // every read below is a RocksDB read
    o.max_model_column_families = 1;
    o.compression = c;
    return o;
  }

  void Open(StoreCompression c) { OpenWith(Options(c)); }

  void OpenWith(const CacheOptions& o) {
    cache_.reset();
    auto r = Cache::Open(o);
    ASSERT_OK(r);
    cache_ = std::move(r).value();
  }

  rocksdb::DB* db() { return static_cast<RocksCache&>(*cache_).db(); }

  void InsertAll(uint64_t first, uint64_t last) {
    for (uint64_t i = first; i < last; ++i) {
      ASSERT_OK(cache_->Insert(KeyOf(i), Completion(i), {}));
    }
  }

  // Writes entries [first, last) through one bulk loader.
  void LoadAll(uint64_t first, uint64_t last) {
    auto loader = cache_->NewBulkLoader(BulkLoadOptions{});
    ASSERT_OK(loader);
    for (uint64_t i = first; i < last; ++i) {
      ASSERT_OK((*loader)->Add(KeyOf(i), Completion(i), {}));
    }
    ASSERT_OK((*loader)->Finish());
  }

  // Reads entries [0, last) back and compares them byte for byte.
  void ExpectAll(uint64_t last) {
    uint64_t wrong = 0;
    for (uint64_t i = 0; i < last; ++i) {
      auto r = cache_->Lookup(KeyOf(i));
      ASSERT_OK(r);
      if (!r->hit() || r->from_memory || r->entry->body != Completion(i)) {
        ADD_FAILURE_AT(__FILE__, __LINE__) << "entry " << i << " differs";
        if (++wrong == 5) return;
      }
    }
  }

  ::llmcache::testing::TempDir dir_{"llmcache-compression"};
  std::unique_ptr<Cache> cache_;
};

TEST_F(RocksCompressionTest, CompactedEntriesAreZstdWithADictionary) {
  Open(StoreCompression::kZstdDictionary);
  InsertAll(0, kEntries);
  ASSERT_OK(cache_->Compact());
  cache_.reset();

  Open(StoreCompression::kZstdDictionary);
  ExpectAll(kEntries);

  const std::vector<SstFile> files = EntryFiles(db());
  ASSERT_FALSE(files.empty());
  bool overflow_seen = false;
  for (const SstFile& f : files) {
    SCOPED_TRACE(f.column_family);
    overflow_seen |= f.column_family == kOverflowColumnFamily;
    EXPECT_EQ(f.compression, "ZSTD");
    EXPECT_NE(f.compression_options.find("max_dict_bytes=131072"),
              std::string::npos)
        << f.compression_options;
    EXPECT_TRUE(f.has_dictionary);
  }
  EXPECT_TRUE(overflow_seen);

  auto st = cache_->GetStats();
  ASSERT_OK(st);
  EXPECT_EQ(st->entries, kEntries);
  EXPECT_GT(st->stored_bytes, 0u);
  EXPECT_LT(st->stored_bytes, st->bytes / 2);
  EXPECT_GT(st->compression_ratio(), 0.0);
  EXPECT_LT(st->compression_ratio(), 0.5);
  EXPECT_LE(st->stored_bytes, st->disk_bytes);
}

TEST_F(RocksCompressionTest, DictionaryBeatsThePreviousLayout) {
  Open(StoreCompression::kLz4);
  InsertAll(0, kEntries);
  ASSERT_OK(cache_->Compact());
  auto before = cache_->GetStats();
  ASSERT_OK(before);
  cache_.reset();

  Open(StoreCompression::kZstdDictionary);
  ASSERT_OK(cache_->Compact());  // rewrites every file with the new options
  auto after = cache_->GetStats();
  ASSERT_OK(after);
  EXPECT_EQ(after->bytes, before->bytes);
  EXPECT_LT(after->stored_bytes, before->stored_bytes);
  ExpectAll(kEntries);
}

TEST_F(RocksCompressionTest, DatabaseOfThePreviousLayoutOpensAndReads) {
  // The previous layout: compacted files (bottom level: ZSTD, no dictionary)
  // and flushed ones (LZ4), as a running database has them.
  Open(StoreCompression::kLz4);
  InsertAll(0, kEntries / 2);
  ASSERT_OK(cache_->Compact());
  InsertAll(kEntries / 2, kEntries);
  ASSERT_OK(static_cast<RocksCache&>(*cache_).FlushMemtablesForTest());
  bool lz4_seen = false, zstd_seen = false;
  for (const SstFile& f : EntryFiles(db())) {
    EXPECT_FALSE(f.has_dictionary) << f.column_family;
    lz4_seen |= f.compression == "LZ4";
    zstd_seen |= f.compression == "ZSTD";
  }
  EXPECT_TRUE(lz4_seen);
  EXPECT_TRUE(zstd_seen);
  cache_.reset();

  // Opened with the current default: the old files read as they are...
  Open(StoreCompression::kZstdDictionary);
  ExpectAll(kEntries);
  // ...new writes go beside them...
  const RequestKey extra = KeyOf(kEntries);
  ASSERT_OK(cache_->Insert(extra, Completion(kEntries), {}));
  ASSERT_OK(static_cast<RocksCache&>(*cache_).FlushMemtablesForTest());
  ExpectAll(kEntries + 1);
  // ...and a compaction rewrites everything with dictionaries.
  ASSERT_OK(cache_->Compact());
  for (const SstFile& f : EntryFiles(db())) {
    EXPECT_EQ(f.compression, "ZSTD") << f.column_family;
    EXPECT_TRUE(f.has_dictionary) << f.column_family;
  }
  cache_.reset();
  Open(StoreCompression::kZstdDictionary);
  ExpectAll(kEntries + 1);
}

// Filters are written where a lookup consults them: in every file of the
// entry families (a lookup of a key that is not stored is answered by the
// filters, at every level), and in none of the creation-time indexes (only
// scanned, never looked up by key). Lookups find every entry and miss every
// other key on both levels.
TEST_F(RocksCompressionTest, FiltersOnlyWhereLookupsUseThem) {
  constexpr uint64_t kRecent = 200;
  Open(StoreCompression::kZstdDictionary);
  InsertAll(0, kEntries);
  ASSERT_OK(cache_->Compact());  // every entry to the bottom level
  InsertAll(kEntries, kEntries + kRecent);
  cache_.reset();  // the closing flush writes the recent ones to level 0
  Open(StoreCompression::kZstdDictionary);
  ExpectAll(kEntries + kRecent);
  for (uint64_t i = kEntries + kRecent; i < 2 * kEntries; ++i) {
    auto r = cache_->Lookup(KeyOf(i));
    ASSERT_OK(r);
    ASSERT_FALSE(r->hit()) << "entry " << i << " was never stored";
  }

  std::vector<rocksdb::LiveFileMetaData> live;
  db()->GetLiveFilesMetaData(&live);
  int bottom = 0, upper = 0, index = 0;
  for (const rocksdb::LiveFileMetaData& f : live) {
    const std::string path = f.directory + "/" + f.relative_filename;
    SCOPED_TRACE(f.column_family_name + " level " + std::to_string(f.level));
    rocksdb::Options o;
    rocksdb::SstFileReader reader(o);
    ASSERT_TRUE(reader.Open(path).ok()) << path;
    const uint64_t filter = reader.GetTableProperties()->filter_size;
    if (f.column_family_name == kTimeColumnFamily ||
        f.column_family_name == kModelTimeColumnFamily) {
      EXPECT_EQ(filter, 0u);
      ++index;
    } else if (f.column_family_name == kOverflowColumnFamily ||
               f.column_family_name.starts_with(kModelColumnFamilyPrefix)) {
      EXPECT_GT(filter, 0u);
      ++(f.level == db()->NumberLevels() - 1 ? bottom : upper);
    }
  }
  EXPECT_GE(bottom, 2);  // the model's family and the overflow family
  EXPECT_GE(upper, 2);
  EXPECT_GE(index, 2);
}

TEST_F(RocksCompressionTest, BulkLoadedFilesAreUncompressedUntilACompaction) {
  Open(StoreCompression::kZstdDictionary);
  LoadAll(0, kEntries);
  std::vector<SstFile> files = EntryFiles(db());
  ASSERT_EQ(files.size(), 2u);  // one per family: the batch fits the buffer
  for (const SstFile& f : files) {
    EXPECT_EQ(f.compression, "NoCompression") << f.column_family;
    EXPECT_FALSE(f.has_dictionary) << f.column_family;
  }
  ExpectAll(kEntries);
  auto loaded = cache_->GetStats();
  ASSERT_OK(loaded);
  ASSERT_OK(cache_->Compact());
  for (const SstFile& f : EntryFiles(db())) {
    EXPECT_EQ(f.compression, "ZSTD") << f.column_family;
    EXPECT_TRUE(f.has_dictionary) << f.column_family;
  }
  auto compacted = cache_->GetStats();
  ASSERT_OK(compacted);
  EXPECT_EQ(compacted->entries, kEntries);
  EXPECT_EQ(compacted->bytes, loaded->bytes);
  EXPECT_LT(compacted->stored_bytes, loaded->stored_bytes * 3 / 4);
  cache_.reset();
  Open(StoreCompression::kZstdDictionary);
  ExpectAll(kEntries);
}

// Loaded files take about the entries' raw size until a compaction
// compresses them. A disk budget that the compressed store fits must not
// evict entries because of that: maintenance compresses first, and evicts
// only what still does not fit.
TEST_F(RocksCompressionTest, DiskBudgetCompressesLoadedFilesBeforeEvicting) {
  Open(StoreCompression::kZstdDictionary);
  LoadAll(0, kEntries);
  auto loaded = cache_->GetStats();
  ASSERT_OK(loaded);
  // Compressed, the entries take less than half their size (the tests
  // above); loaded, at least all of it.
  ASSERT_GE(loaded->stored_bytes, loaded->bytes);

  CacheOptions o = Options(StoreCompression::kZstdDictionary);
  o.max_disk_bytes = loaded->disk_bytes * 3 / 4;
  OpenWith(o);
  ASSERT_OK(cache_->RunMaintenance());
  auto after = cache_->GetStats();
  ASSERT_OK(after);
  EXPECT_EQ(after->evictions, 0u);
  EXPECT_EQ(after->entries, kEntries);
  EXPECT_LE(after->disk_bytes, o.max_disk_bytes);
  for (const SstFile& f : EntryFiles(db())) {
    EXPECT_EQ(f.compression, "ZSTD") << f.column_family;
  }
  ExpectAll(kEntries);

  // A budget the compressed store does not fit either still evicts, down
  // to it.
  o.max_disk_bytes = after->disk_bytes / 2;
  OpenWith(o);
  ASSERT_OK(cache_->RunMaintenance());
  auto evicted = cache_->GetStats();
  ASSERT_OK(evicted);
  EXPECT_GT(evicted->evictions, 0u);
  EXPECT_EQ(evicted->entries + evicted->evictions, kEntries);
  EXPECT_LE(evicted->disk_bytes, o.max_disk_bytes);
}

TEST_F(RocksCompressionTest, BulkLoadIntoAnUncompressedStoreStaysUncompressed) {
  Open(StoreCompression::kNone);
  LoadAll(0, 500);
  const std::vector<SstFile> files = EntryFiles(db());
  ASSERT_FALSE(files.empty());
  for (const SstFile& f : files) {
    EXPECT_EQ(f.compression, "NoCompression") << f.column_family;
  }
  ExpectAll(500);
}

TEST_F(RocksCompressionTest, UncompressedStoreReportsItsSize) {
  Open(StoreCompression::kNone);
  InsertAll(0, 500);
  ASSERT_OK(cache_->Compact());
  for (const SstFile& f : EntryFiles(db())) {
    EXPECT_EQ(f.compression, "NoCompression") << f.column_family;
    EXPECT_FALSE(f.has_dictionary) << f.column_family;
  }
  auto st = cache_->GetStats();
  ASSERT_OK(st);
  // Keys, index and filters on top of the values: not below them.
  EXPECT_GE(st->stored_bytes, st->bytes);
  ExpectAll(500);
}

TEST_F(RocksCompressionTest, NothingStoredBeforeTheFirstFlush) {
  Open(StoreCompression::kZstdDictionary);
  InsertAll(0, 10);
  auto st = cache_->GetStats();
  ASSERT_OK(st);
  EXPECT_GT(st->bytes, 0u);
  EXPECT_EQ(st->stored_bytes, 0u);  // all in the memtable
  EXPECT_EQ(st->compression_ratio(), 0.0);
}

}  // namespace
}  // namespace llmcache
