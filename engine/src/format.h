// The on-disk format of an llmcache database: everything persistent is
// defined here, in one place. Private to the engine (and its tests); users
// see entries through llmcache/entry.h.
//
// NEVER CHANGE THE MEANING OF ANY CONSTANT IN THIS FILE. Add new versions,
// flags, names and key prefixes instead; old databases must keep decoding.
//
// Column families
//   "default"            unused by llmcache (RocksDB requires it).
//   "llmcache.meta"      format marker, model <-> column family mapping,
//                        last resolved model per model, statistics counters
//                        (merge operator kAddOperatorName: little-endian
//                        uint64 addition, so signed deltas add up).
//   "llmcache.bymodel"   creation-time index of every entry, ordered by
//                        model first (format 2; see "Format versions"), so
//                        that one model's newest or oldest entries are
//                        found without reading the records of other models,
//                        and flushing a model deletes its records with one
//                        range deletion. Walks over every model (listings,
//                        oldest-first eviction, age-based purges) merge the
//                        models' ranges.
//   "llmcache.time"      formats 1 and 2 only: the same records ordered by
//                        creation time first. Format 3 drops it: its
//                        records (~35 bytes each after compression, most of
//                        them the digest) were ~8% of a database's size.
//   "m.<escaped>"        one per base model (model id without `:variant`);
//                        <escaped> is the model id with every byte outside
//                        [A-Za-z0-9._-] written as %XX (uppercase hex), so
//                        the name is reversible and safe in RocksDB's OPTIONS
//                        file.
//   "llmcache.overflow"  shared by models beyond the column-family bound
//                        (CacheOptions::max_model_column_families).
//   Files of the model and overflow families are written with ZSTD and a
//   dictionary per file (CacheOptions::compression; before: LZ4, ZSTD at
//   the bottom level, no dictionary). Each file records its compression, so
//   files of either kind read; compaction rewrites them with the current one.
//   A model's entries are in one family: its own if it has one, else the
//   overflow family. A model with entries in the overflow family gets no
//   family of its own until they are gone (flushed, purged or expired and
//   compacted away), even when a slot is free.
//
// Entry keys
//   in a model's own column family:  digest (32 bytes)
//   in the overflow column family:   varint32 len(base model) | base model |
//                                    digest (32 bytes)
//   The varint length makes the model prefix prefix-free, so one model's
//   range [prefix, prefix+0xFF..) never covers another model's keys. The
//   digest is the request key (llmcache/key.h, kKeyFormatVersion).
//
// Time index keys ("llmcache.time", formats 1 and 2)
//   created_ms (8 bytes, big endian, so keys sort by age) |
//   varint32 len(base model) | base model | digest (32 bytes)
//   value: expires_ms (8 bytes, little endian; 0 = never).
//
// Per-model time index keys ("llmcache.bymodel")
//   varint32 len(base model) | base model | created_ms (8 bytes, big
//   endian) | digest (32 bytes); value: expires_ms (8 bytes, little
//   endian; 0 = never). Written in the same batch (or the same ingestion)
//   as its entry; in formats 1 and 2 "llmcache.time" got the same record in
//   that batch. A model's records are the range [prefix, prefix + 41 x 0xFF).
//
// Format versions (meta key "format")
//   1  no "llmcache.bymodel".
//   2  "llmcache.bymodel" holds a record for every time-index record. A
//      writer that opens a version-1 database builds it from "llmcache.time"
//      before it accepts writes, then writes "2" (a kill on the way leaves
//      "1": the next open builds it again). Readers of a version-1 database
//      (an inspection beside an older llmcache) walk "llmcache.time" as
//      version 1 did. An older llmcache refuses a version-2 database.
//   3  no "llmcache.time". A writer that opens a version-1 database (or a
//      version-2 one that lost "llmcache.bymodel", first marked "1" with a
//      synced write) builds the per-model index from "llmcache.time" as
//      above; then, for either version, it
//      writes "3" with a synced write and only then drops "llmcache.time".
//      A kill or a power loss before the marker is durable leaves the old
//      version with its time index (a version-1 database is converted
//      again); after it, version 3 beside "llmcache.time", which the next
//      writer drops, as it drops the empty "llmcache.time" an llmcache of
//      format 2 creates when it opens a version-3 database (before it reads
//      the marker and refuses). The conversion also merges a zero delta
//      into the entry counter of every model with records, as walks over
//      every model find the models by their counters. Readers of older
//      versions use the per-model index when it is complete (version 2),
//      else the time index.
//
// Entry value, version 1 (all integers little endian):
//   off  size  field
//   0    1     format version = kEntryFormatV1
//   1    1     flags (EntryFlags, llmcache/entry.h)
//   2    2     header size H: offset of the response body
//   4    8     created_ms          (int64, Unix epoch milliseconds)
//   12   8     expires_ms          (int64; 0 = never expires)
//   20   8     prompt_tokens
//   28   8     completion_tokens
//   36   8     cached_tokens       (usage.prompt_tokens_details.cached_tokens)
//   44   8     cache_write_tokens (...prompt_tokens_details.cache_write_tokens)
//   52   8     cost_nanousd        (int64, usage.cost in 1e-9 USD)
//   60   2+n   model as sent (uint16 length + bytes)
//   ..   2+n   resolved model as reported by the response (uint16 + bytes)
//   ..   2+n   namespace (uint16 + bytes)
//   H    ...   response body (opaque bytes, usually JSON)
//   A decoder accepts H larger than the fields it knows (room for later
//   fields within version 1) and rejects anything inconsistent.
//
// Meta keys ("llmcache.meta")
//   "format"                  -> decimal kDatabaseFormatVersion
//   "cf/<cf name>"            -> base model id (the reverse mapping is
//                                derived). A mapping whose column family
//                                does not exist is a flush interrupted
//                                after the drop; opening finishes it
//                                (deletes the mapping, the model's entry
//                                counters and its overflow range).
//   "resolved/<base model>"   -> last resolved model seen for that model
//   "stat/<name>"             -> int64 LE counter, merge-added; <name> is one
//                                of kCounterNames
//   "stat/bypass/<reason>"    -> int64 LE counter, merge-added; <reason> is
//                                one of kBypassReasonNames
//   "mstat/<name>/<base model>" -> per-model int64 LE counter, merge-added;
//                                <name> is one of kModelCounterNames
//   Counters hold signed deltas' sums (two's complement); readers clamp
//   negative totals to zero. A model's "entries" and "bytes" counters are
//   written in the same batch as its entries, so they are exact after a
//   crash; the others are written by the maintenance thread and on close.

#ifndef LLMCACHE_ENGINE_FORMAT_H_
#define LLMCACHE_ENGINE_FORMAT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "llmcache/entry.h"
#include "llmcache/key.h"
#include "llmcache/status.h"

namespace llmcache {

// ---- Versions ----
inline constexpr uint32_t kDatabaseFormatVersion = 3;
// The first version with "llmcache.bymodel".
inline constexpr uint32_t kModelTimeIndexFormatVersion = 2;
// The first version without "llmcache.time".
inline constexpr uint32_t kNoTimeIndexFormatVersion = 3;
inline constexpr uint8_t kEntryFormatV1 = 1;
inline constexpr size_t kEntryFixedHeaderSize = 60;
// The header's variable part: three 2-byte lengths and the strings
// (llmcache/entry.h, kMaxEntryMetadataBytes).
static_assert(kEntryFixedHeaderSize + 6 + kMaxEntryMetadataBytes == 65535);

// ---- Column families ----
inline constexpr std::string_view kMetaColumnFamily = "llmcache.meta";
inline constexpr std::string_view kTimeColumnFamily = "llmcache.time";
inline constexpr std::string_view kModelTimeColumnFamily = "llmcache.bymodel";
inline constexpr std::string_view kOverflowColumnFamily = "llmcache.overflow";
// The directory inside a database's path where a new database is made
// before its files are moved into place (RocksCache::CreateDb).
inline constexpr std::string_view kCreatingDirectory = "creating.tmp";
inline constexpr std::string_view kModelColumnFamilyPrefix = "m.";

// Names RocksDB records in the database's OPTIONS file.
inline constexpr std::string_view kAddOperatorName = "llmcache.Add64";
inline constexpr std::string_view kTtlFilterFactoryName =
    "llmcache.TtlFilterFactory";

// ---- Meta keys ("llmcache.meta") ----
inline constexpr std::string_view kFormatKey = "format";
inline constexpr std::string_view kCfMetaPrefix = "cf/";
inline constexpr std::string_view kResolvedPrefix = "resolved/";
inline constexpr std::string_view kStatPrefix = "stat/";
inline constexpr std::string_view kBypassStatPrefix = "stat/bypass/";
inline constexpr std::string_view kModelStatPrefix = "mstat/";

// ---- Counter names ----
// Global counters, "stat/<name>"; indexed by Counter (stats.h).
inline constexpr std::array<std::string_view, 10> kCounterNames = {
    "hits",      "misses", "expired",      "inserts",      "flushes",
    "evictions", "purged", "store_errors", "tokens_saved", "cost_saved_nanousd",
};
// Per-model counters, "mstat/<name>/<base model>"; indexed by ModelCounter
// (stats.h).
inline constexpr std::array<std::string_view, 10> kModelCounterNames = {
    "hits",
    "entries",
    "bytes",
    "tokens_saved",
    "cost_saved_nanousd",
    "provider_cache_read_tokens",
    "provider_cache_write_tokens",
    "provider_cache_saved_nanousd",
    "provider_cache_write_premium_nanousd",
    "drift_events",
};
// Bypass reasons, "stat/bypass/<name>"; indexed by BypassReason
// (llmcache/policy.h), and what BypassReasonName() returns.
inline constexpr std::array<std::string_view, 11> kBypassReasonNames = {
    "none",       "no_temperature",    "non_zero_temperature",
    "web_search", "drifting_model",    "debug",
    "mode_never", "previous_response", "store_requested",
    "background", "stored_prompt",
};

// ---- Entry values ----

// Appends the encoded value of (meta, body) to *out.
// InvalidArgument if a string field is longer than 65535 bytes.
Status EncodeEntry(const EntryMeta& meta, std::string_view body,
                   std::string* out);

// Decodes an encoded value. DataLoss with a reason if it is malformed;
// FailedPrecondition if it was written by a newer, unknown format version.
Status DecodeEntry(std::string_view value, Entry* out);

// Whether writing `fresh` over `stored` would change nothing: the same
// bytes, or `fresh` is an import of what is stored (the same bytes but for
// kEntryFlagImported, which a stored entry keeps as it was): importing a
// database's own export rewrites nothing.
bool SameStoredEntry(std::string_view stored, std::string_view fresh);

// Reads only created/expires (the compaction filter's fast path). False if
// the value is too short or of an unknown version.
bool PeekEntryTimes(std::string_view value, int64_t* created_ms,
                    int64_t* expires_ms);

// ---- Keys ----

// Column-family name <-> base model.
std::string ModelToColumnFamilyName(std::string_view base_model);
// InvalidArgument if `name` is not a model column family name.
Result<std::string> ColumnFamilyNameToModel(std::string_view name);

// Overflow / time-index key helpers.
void AppendModelPrefix(std::string_view base_model, std::string* out);
// Parses "varint32 len | model" at the front of *in and advances it.
bool ConsumeModelPrefix(std::string_view* in, std::string_view* model);

// The time-index key of an entry.
std::string TimeIndexKey(int64_t created_ms, std::string_view base_model,
                         const Digest& digest);

// The per-model time-index key of an entry.
std::string ModelTimeIndexKey(std::string_view base_model, int64_t created_ms,
                              const Digest& digest);
// The per-model time-index key of the same record as a time-index key;
// false if `time_key` is not one.
bool TimeKeyToModelTimeKey(std::string_view time_key, std::string* out);
// The bounds [*begin, *end) of every per-model time-index key of a model.
void ModelTimeIndexRange(std::string_view base_model, std::string* begin,
                         std::string* end);

// The meta key of a per-model counter: "mstat/<name>/<base model>".
std::string ModelStatKey(std::string_view counter_name,
                         std::string_view base_model);

void AppendBigEndian64(uint64_t v, std::string* out);
uint64_t ReadBigEndian64(const char* p);
void AppendLittleEndian64(uint64_t v, std::string* out);
uint64_t ReadLittleEndian64(const char* p);

}  // namespace llmcache

#endif  // LLMCACHE_ENGINE_FORMAT_H_
