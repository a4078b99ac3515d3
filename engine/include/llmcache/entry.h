// Entry: one cached response and the metadata stored with it, as a Cache
// hands it out (Lookup, Find, ForEachEntry).
//
// How entries are laid out on disk is private to the engine
// (engine/src/format.h); this header holds only what users of the cache see.

#ifndef LLMCACHE_ENTRY_H_
#define LLMCACHE_ENTRY_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "llmcache/key.h"  // Endpoint
#include "llmcache/status.h"

namespace llmcache {

// EntryMeta::flags bits. Stored with every entry: never change a value.
enum EntryFlags : uint8_t {
  kEntryFlagNone = 0,
  kEntryFlagFromStream = 1 << 0,  // stored from a streamed response
  kEntryFlagToolCalls = 1 << 1,   // the response has tool calls
  kEntryFlagImported = 1 << 2,    // written by an import, not a live miss
  // Bits 3-4: the endpoint the entry answers (llmcache/key.h, Endpoint;
  // 0 = chat completions, so entries written before these bits exist read
  // as chat completions). EntryEndpoint / EntryEndpointFlags.
  kEntryFlagEndpointMask = 3 << 3,
};
inline constexpr int kEntryFlagEndpointShift = 3;

// The Endpoint value (0..3) recorded in `flags`, and the flag bits of one.
inline constexpr uint8_t EntryEndpointValue(uint8_t flags) {
  return static_cast<uint8_t>((flags & kEntryFlagEndpointMask) >>
                              kEntryFlagEndpointShift);
}
inline constexpr uint8_t EntryEndpointFlags(uint8_t endpoint_value) {
  return static_cast<uint8_t>((endpoint_value << kEntryFlagEndpointShift) &
                              kEntryFlagEndpointMask);
}
// The endpoint recorded in `flags`.
inline constexpr Endpoint EntryEndpoint(uint8_t flags) {
  return static_cast<Endpoint>(EntryEndpointValue(flags));
}

// What an entry's model, resolved model and namespace may take together, in
// bytes (the stored header that holds them is at most 65535 bytes). Insert
// refuses a longer set with kInvalidArgument.
inline constexpr size_t kMaxEntryMetadataBytes = 65469;
inline constexpr bool EntryMetadataFits(size_t model, size_t resolved_model,
                                        size_t ns) {
  return model <= kMaxEntryMetadataBytes &&
         resolved_model <= kMaxEntryMetadataBytes - model &&
         ns <= kMaxEntryMetadataBytes - model - resolved_model;
}

// Token usage and cost reported by the upstream with a response.
struct Usage {
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
  uint64_t cached_tokens = 0;  // usage.prompt_tokens_details.cached_tokens
  uint64_t cache_write_tokens =
      0;                     // ...prompt_tokens_details.cache_write_tokens
  int64_t cost_nanousd = 0;  // usage.cost (USD) * 1e9, rounded

  double cost_usd() const { return static_cast<double>(cost_nanousd) / 1e9; }
  friend bool operator==(const Usage&, const Usage&) = default;
};

// The metadata stored in front of every response.
struct EntryMeta {
  uint8_t flags = kEntryFlagNone;  // EntryFlags bits
  int64_t created_ms = 0;          // Unix epoch milliseconds
  int64_t expires_ms = 0;          // Unix epoch milliseconds; 0 = never
  Usage usage;
  std::string model;           // as sent, including any `:variant`
  std::string resolved_model;  // `model` field of the response
  std::string ns;              // namespace the entry was stored under

  bool ExpiredAt(int64_t now_ms) const {
    return expires_ms != 0 && expires_ms <= now_ms;
  }
  friend bool operator==(const EntryMeta&, const EntryMeta&) = default;
};

// A cached response with its metadata.
struct Entry {
  EntryMeta meta;
  std::string body;  // the response as received (usually JSON)
  friend bool operator==(const Entry&, const Entry&) = default;
};

// Bytes the entry takes as a stored value (its metadata and body, encoded):
// what EntryView::stored_bytes and the `bytes` statistics count.
size_t StoredSize(const Entry& entry);

// The entry as the engine stores it: one versioned encoding, used on disk,
// in the shared tier (Redis) and by export/verify. EncodeEntryValue fails
// (kInvalidArgument) only for a string field longer than 65535 bytes;
// DecodeEntryValue gives kDataLoss for a malformed value and
// kFailedPrecondition for one written by a newer format version.
Result<std::string> EncodeEntryValue(const Entry& entry);
Result<Entry> DecodeEntryValue(std::string_view value);

}  // namespace llmcache

#endif  // LLMCACHE_ENTRY_H_
