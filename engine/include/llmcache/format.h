// The on-disk format of an llmcache database. Everything persistent is
// defined here, in one place.
//
// NEVER CHANGE THE MEANING OF ANY CONSTANT IN THIS FILE. Add new versions,
// flags and key prefixes instead; old databases must keep decoding.
//
// Column families
//   "default"        unused by llmcache (RocksDB requires it).
//   "llmcache.meta"  format marker, model <-> column family mapping, last
//                    resolved model per model, statistics counters (merge
//                    operator: little-endian uint64 addition).
//   "llmcache.time"  creation-time index of every entry, for oldest-first
//                    eviction and age-based purges.
//   "m.<escaped>"    one per base model (model id without `:variant`);
//                    <escaped> is the model id with every byte outside
//                    [A-Za-z0-9._-] written as %XX (uppercase hex), so the
//                    name is reversible and safe in RocksDB's OPTIONS file.
//   "llmcache.overflow"  shared by models beyond the column-family bound.
//
// Entry keys
//   in a model's own column family:  digest (32 bytes)
//   in the overflow column family:   varint32 len(base model) | base model |
//                                    digest (32 bytes)
//   The varint length makes the model prefix prefix-free, so one model's
//   range [prefix, prefix+0xFF..) never covers another model's keys.
//
// Time index keys ("llmcache.time")
//   created_ms (8 bytes, big endian, so keys sort by age) |
//   varint32 len(base model) | base model | digest (32 bytes)
//   value: expires_ms (8 bytes, little endian; 0 = never).
//
// Entry value, version 1 (all integers little endian):
//   off  size  field
//   0    1     format version = kEntryFormatV1
//   1    1     flags (EntryFlags)
//   2    2     header size H: offset of the response body
//   4    8     created_ms   (int64, Unix epoch milliseconds)
//   12   8     expires_ms   (int64; 0 = never expires)
//   20   8     prompt_tokens
//   28   8     completion_tokens
//   36   8     cached_tokens        (usage.prompt_tokens_details.cached_tokens)
//   44   8     cache_write_tokens
//   (usage.prompt_tokens_details.cache_write_tokens) 52   8     cost_nanousd
//   (int64, usage.cost in 1e-9 USD) 60   2+n   model as sent (uint16 length +
//   bytes)
//   ..   2+n   resolved model as reported by the response (uint16 + bytes)
//   ..   2+n   namespace (uint16 + bytes)
//   H    ...   response body (opaque bytes, usually JSON)
//   A decoder accepts H larger than the fields it knows (room for later
//   fields within version 1) and rejects anything inconsistent.
//
// Meta keys ("llmcache.meta")
//   "format"              -> decimal kDatabaseFormatVersion
//   "cf/<cf name>"        -> base model id (the reverse mapping is derived)
//   "resolved/<model>"    -> last resolved model seen for that base model
//   "stat/<name>"         -> uint64 LE counter (merge operator add)
//   "mstat/<field>/<model>" -> per-model uint64 counter; <field> is one of
//                            hits, entries, bytes, tokens_saved, cost_saved

#ifndef LLMCACHE_FORMAT_H_
#define LLMCACHE_FORMAT_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "llmcache/status.h"

namespace llmcache {

inline constexpr uint32_t kDatabaseFormatVersion = 1;
inline constexpr uint8_t kEntryFormatV1 = 1;
inline constexpr size_t kEntryFixedHeaderSize = 60;

inline constexpr std::string_view kMetaColumnFamily = "llmcache.meta";
inline constexpr std::string_view kTimeColumnFamily = "llmcache.time";
inline constexpr std::string_view kOverflowColumnFamily = "llmcache.overflow";
inline constexpr std::string_view kModelColumnFamilyPrefix = "m.";

enum EntryFlags : uint8_t {
  kEntryFlagNone = 0,
  kEntryFlagFromStream = 1 << 0,  // stored from a streamed response
  kEntryFlagToolCalls = 1 << 1,   // the response has tool calls
  kEntryFlagImported = 1 << 2,    // written by an import, not a live miss
};

struct Usage {
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
  uint64_t cached_tokens = 0;
  uint64_t cache_write_tokens = 0;
  int64_t cost_nanousd = 0;  // usage.cost (USD) * 1e9, rounded

  double cost_usd() const { return static_cast<double>(cost_nanousd) / 1e9; }
  friend bool operator==(const Usage&, const Usage&) = default;
};

// The metadata stored in front of every response.
struct EntryMeta {
  uint8_t flags = kEntryFlagNone;
  int64_t created_ms = 0;
  int64_t expires_ms = 0;  // 0 = never
  Usage usage;
  std::string model;           // as sent, including any `:variant`
  std::string resolved_model;  // `model` field of the response
  std::string ns;              // namespace the entry was stored under

  bool ExpiredAt(int64_t now_ms) const {
    return expires_ms != 0 && expires_ms <= now_ms;
  }
  friend bool operator==(const EntryMeta&, const EntryMeta&) = default;
};

// A decoded entry.
struct Entry {
  EntryMeta meta;
  std::string body;
  friend bool operator==(const Entry&, const Entry&) = default;
};

// Appends the encoded value of (meta, body) to *out.
// InvalidArgument if a string field is longer than 65535 bytes.
Status EncodeEntry(const EntryMeta& meta, std::string_view body,
                   std::string* out);

// Decodes an encoded value. DataLoss with a reason if it is malformed;
// FailedPrecondition if it was written by a newer, unknown format version.
Status DecodeEntry(std::string_view value, Entry* out);

// Reads only created/expires (the compaction filter's fast path). False if
// the value is too short or of an unknown version.
bool PeekEntryTimes(std::string_view value, int64_t* created_ms,
                    int64_t* expires_ms);

// Column-family name <-> base model.
std::string ModelToColumnFamilyName(std::string_view base_model);
// InvalidArgument if `name` is not a model column family name.
Result<std::string> ColumnFamilyNameToModel(std::string_view name);

// Overflow / time-index key helpers.
void AppendModelPrefix(std::string_view base_model, std::string* out);
// Parses "varint32 len | model" at the front of *in and advances it.
bool ConsumeModelPrefix(std::string_view* in, std::string_view* model);

void AppendBigEndian64(uint64_t v, std::string* out);
uint64_t ReadBigEndian64(const char* p);
void AppendLittleEndian64(uint64_t v, std::string* out);
uint64_t ReadLittleEndian64(const char* p);

}  // namespace llmcache

#endif  // LLMCACHE_FORMAT_H_
